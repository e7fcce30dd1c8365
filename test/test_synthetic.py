"""Synthetic scenes: rendered depth is exact geometry, and ground truth survives the bag."""

import numpy as np
import pytest

from vggt_ros.evaluation import ground_truth
from vggt_ros.evaluation.bag_io import (
    STORAGES,
    BagError,
    BagWriter,
    open_bag,
    read_messages,
    topic_connections,
)
from vggt_ros.images import depth_to_metres, image_to_rgb
from vggt_ros.synthetic import (
    CAMERA_FRAME,
    TOPICS,
    WORLD_FRAME,
    cast_rays,
    default_scene,
    look_at,
    make_sequence,
    pinhole,
    render,
    trajectory,
    write_bag,
)


def test_rays_hit_walls_floor_and_sphere_at_analytic_distances():
    scene = default_scene()
    origins_dirs_t = [
        ((0.0, 0.0, 2.0), (1.0, 0.0, 0.0), 4.0),  # wall x = 4
        ((0.0, 0.0, 2.0), (0.0, 0.0, -1.0), 2.0),  # floor z = 0
        ((0.4, 0.3, 2.5), (0.0, 0.0, -1.0), 2.5 - 0.9),  # top of the sphere at (0.4, 0.3, 0.45)
        ((-2.0, 0.3, 0.45), (1.0, 0.0, 0.0), 2.4 - 0.45),  # the same sphere from the side
    ]
    for origin, direction, expected in origins_dirs_t:
        t, _, _, _ = cast_rays(scene, np.array(origin)[:, None], np.array(direction)[:, None])
        assert t[0] == pytest.approx(expected, abs=1e-9)


def test_rendered_depth_of_a_facing_wall_is_its_distance_everywhere():
    K = pinhole(64, 48, 40.0)
    pose = look_at(np.array((1.0, 0.0, 1.5)), np.array((4.0, 0.0, 1.5)))
    rgb, depth = render(default_scene(), pose, K, 48, 64)
    np.testing.assert_allclose(depth, 3.0, atol=1e-5)  # z-depth, not distance along the ray
    assert rgb.shape == (48, 64, 3) and rgb.std() > 5  # textured, not flat


def test_trajectories_are_rigid_optical_poses():
    for kind in ('walk', 'orbit', 'rotate'):
        poses = trajectory(kind, 5)
        rotations = poses[:, :3, :3]
        np.testing.assert_allclose(
            rotations @ rotations.transpose(0, 2, 1), np.eye(3)[None].repeat(5, 0), atol=1e-12
        )
        np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)


@pytest.mark.parametrize('storage', STORAGES)
def test_ground_truth_round_trips_through_the_bag(tmp_path, storage):
    sequence = make_sequence('orbit', 4, 64, 48)
    path = tmp_path / ('bag.bag' if storage == 'rosbag1' else 'bag')
    write_bag(sequence, path, storage)
    with open_bag(path) as reader:
        truth = ground_truth.from_tf(reader, WORLD_FRAME, CAMERA_FRAME)
        images = [
            m
            for _, _, m in read_messages(
                reader, topic_connections(reader, TOPICS['image'], ('sensor_msgs/msg/Image',))
            )
        ]
        depths = [
            m
            for _, _, m in read_messages(
                reader, topic_connections(reader, TOPICS['depth'], ('sensor_msgs/msg/Image',))
            )
        ]
    np.testing.assert_array_equal(truth.stamps, sequence.stamps)
    np.testing.assert_allclose(truth.poses, sequence.poses, atol=1e-12)
    rgb, depth = sequence.render(3)
    np.testing.assert_array_equal(image_to_rgb(images[3]), rgb)
    np.testing.assert_array_equal(depth_to_metres(depths[3]), depth)


def test_ground_truth_chains_moving_and_static_tf_edges(tmp_path):
    sequence = make_sequence('walk', 5, 32, 24)
    body_from_camera = look_at(np.array((0.1, 0.0, 0.2)), np.array((1.0, 0.3, 0.1)))
    with BagWriter(tmp_path / 'tf') as bag:
        stamp = int(sequence.stamps[0])
        bag.write('/tf_static', stamp, bag.tf(stamp, 'body', CAMERA_FRAME, body_from_camera))
        for stamp, pose in zip(sequence.stamps, sequence.poses, strict=True):
            body = pose @ np.linalg.inv(body_from_camera)
            bag.write('/tf', int(stamp), bag.tf(int(stamp), '/map', 'body', body))
    with open_bag(tmp_path / 'tf') as reader:
        forward = ground_truth.from_tf(reader, 'map', CAMERA_FRAME)
        backward = ground_truth.from_tf(reader, CAMERA_FRAME, 'map')
        with pytest.raises(BagError, match='no TF chain from map to elsewhere'):
            ground_truth.from_tf(reader, 'map', 'elsewhere')
    np.testing.assert_array_equal(forward.stamps, sequence.stamps)
    np.testing.assert_allclose(forward.poses, sequence.poses, atol=1e-9)
    np.testing.assert_allclose(backward.poses, np.linalg.inv(sequence.poses), atol=1e-9)


def test_tum_files_round_trip(tmp_path):
    sequence = make_sequence('rotate', 6, 32, 24)
    written = ground_truth.Trajectory(sequence.stamps, sequence.poses)
    read = ground_truth.read_tum(ground_truth.write_tum(written, tmp_path / 'gt.tum'))
    np.testing.assert_array_equal(read.stamps, written.stamps)
    np.testing.assert_allclose(read.poses, written.poses, atol=1e-8)
