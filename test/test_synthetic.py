"""Synthetic scenes: rendered depth is exact geometry, and ground truth survives the bag."""

import json

import numpy as np
import pytest
from rosbags.interfaces import QosDurability
from standin_model import StandInModel

from vggt_ros.evaluation import cli, ground_truth
from vggt_ros.evaluation.bag_io import (
    STORAGES,
    BagError,
    BagWriter,
    open_bag,
    read_messages,
    topic_connections,
)
from vggt_ros.images import depth_to_metres, image_to_rgb
from vggt_ros.reconstructor import Reconstructor
from vggt_ros.synthetic import (
    BASE_FRAME,
    CAMERA_CLEARANCE,
    CAMERA_FRAME,
    GT_BASE_FRAME,
    GT_CAMERA_FRAME,
    HELD_OUT_SEEDS,
    ODOM_FRAME,
    ODOMETRY_PER_FRAME,
    ROBOT_PATHS,
    TF_STATIC_TOPIC,
    TOPICS,
    TRAIN_SEEDS,
    TRAJECTORIES,
    WORLD_FRAME,
    base_trajectory,
    cast_rays,
    clearance,
    default_scene,
    look_at,
    main,
    make_robot_sequence,
    make_sequence,
    pinhole,
    planar_pose,
    random_scene,
    random_world,
    render,
    sample_path,
    trajectory,
    wheel_odometry,
    write_bag,
    write_robot_bag,
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


def test_ground_truth_follows_the_densest_moving_edge(tmp_path):
    sequence = make_sequence('walk', 6, 32, 24)
    with BagWriter(tmp_path / 'robot') as bag:
        for index in (0, 3):  # a localiser's sparse map -> odom, 3 frames apart
            stamp = int(sequence.stamps[index])
            bag.write('/tf', stamp, bag.tf(stamp, 'map', 'odom', np.eye(4)))
        for stamp, pose in zip(sequence.stamps, sequence.poses, strict=True):
            bag.write('/tf', int(stamp), bag.tf(int(stamp), 'odom', CAMERA_FRAME, pose))
    with open_bag(tmp_path / 'robot') as reader:
        truth = ground_truth.from_tf(reader, 'map', CAMERA_FRAME)
    np.testing.assert_array_equal(truth.stamps, sequence.stamps)
    np.testing.assert_allclose(truth.poses, sequence.poses, atol=1e-9)


def test_tum_files_round_trip(tmp_path):
    sequence = make_sequence('rotate', 6, 32, 24)
    written = ground_truth.Trajectory(sequence.stamps, sequence.poses)
    read = ground_truth.read_tum(ground_truth.write_tum(written, tmp_path / 'gt.tum'))
    np.testing.assert_array_equal(read.stamps, written.stamps)
    np.testing.assert_allclose(read.poses, written.poses, atol=1e-8)


# ----------------------------------------------------------------------------------------------
# Robot scenes

NODE_FRAMES = {'vggt_world', 'map'}  # what the node publishes besides odom -> base_link
FOOTPRINT = 0.3  # radius of the robot's base, metres


def relative_to_first(poses: np.ndarray) -> np.ndarray:
    return np.linalg.inv(poses[0]) @ poses


@pytest.mark.parametrize('kind', sorted(ROBOT_PATHS))
def test_robot_drives_level_on_the_floor_heading_where_it_goes(kind):
    sequence = make_robot_sequence(kind, 41, 32, 24)
    base = sequence.base_poses
    np.testing.assert_array_equal(base[:, 2, 3], 0.0)
    np.testing.assert_allclose(base[:, 2, :3], np.tile((0.0, 0.0, 1.0), (41, 1)), atol=1e-12)
    np.testing.assert_allclose(base[:, :3, 2], np.tile((0.0, 0.0, 1.0), (41, 1)), atol=1e-12)
    travel = base[2:, :2, 3] - base[:-2, :2, 3]
    travel /= np.linalg.norm(travel, axis=1, keepdims=True)
    np.testing.assert_allclose((travel * base[1:-1, :2, 0]).sum(1), 1.0, atol=0.01)
    np.testing.assert_allclose(sequence.poses, base @ sequence.mount, atol=1e-12)


def test_default_mount_is_tilted_yawed_and_offset():
    mount = make_robot_sequence('walk', 1, 32, 24).mount
    optical_axis = mount[:3, 2]  # z forward of the optical frame, in the base frame
    assert np.linalg.norm(mount[:3, 3] - (0.2, 0.05, 0.5)) < 1e-12
    assert np.arcsin(-optical_axis[2]) == pytest.approx(0.25)
    assert np.arctan2(optical_axis[1], optical_axis[0]) == pytest.approx(0.1)
    np.testing.assert_allclose(mount[:3, 0] @ (0.0, 0.0, 1.0), 0.0, atol=1e-12)  # no roll


@pytest.mark.parametrize('kind', sorted(ROBOT_PATHS))
def test_robot_paths_keep_clear_of_walls_and_objects(kind):
    assert set(ROBOT_PATHS) == set(TRAJECTORIES)  # --trajectory chooses either
    scene = default_scene()
    sequence = make_robot_sequence(kind, 60, 32, 24)
    base = sequence.base_poses[:, :2, 3]
    assert (base - FOOTPRINT > scene.room_lo[:2]).all() and (
        base + FOOTPRINT < scene.room_hi[:2]
    ).all()
    for box in scene.boxes:
        outside = np.maximum(np.maximum(np.subtract(box.lo[:2], base), base - box.hi[:2]), 0)
        assert np.linalg.norm(outside, axis=1).min() > FOOTPRINT
    for sphere in scene.spheres:
        if sphere.centre[2] - sphere.radius < 1.0:  # one the robot could run into
            gap = np.linalg.norm(base - sphere.centre[:2], axis=1) - sphere.radius
            assert gap.min() > FOOTPRINT


def object_fraction(sequence, index: int) -> float:
    """Share of the pixels of frame `index` that see an object rather than the room."""
    v, u = np.mgrid[0 : sequence.height, 0 : sequence.width].reshape(2, -1).astype(float)
    rays = np.linalg.inv(sequence.K) @ np.stack((u, v, np.ones_like(u)))
    pose = sequence.poses[index]
    _, _, _, materials = cast_rays(sequence.scene, pose[:3, 3:], pose[:3, :3] @ rays)
    return float((materials >= len(sequence.scene.room_materials)).mean())


@pytest.mark.parametrize('kind', sorted(ROBOT_PATHS))
def test_every_robot_camera_sees_the_room_and_some_see_objects(kind):
    sequence = make_robot_sequence(kind, 8, 64, 48)
    for index in range(len(sequence)):
        _, depth = sequence.render(index)
        assert (np.isfinite(depth) & (depth > 0.05)).mean() > 0.99
    seeing = [object_fraction(sequence, index) > 0.02 for index in range(len(sequence))]
    assert sum(seeing) >= 3


def test_wheel_odometry_without_noise_is_the_true_motion_from_the_first_frame():
    sequence = make_robot_sequence('walk', 10, 32, 24)
    np.testing.assert_allclose(
        sequence.wheel_poses, relative_to_first(sequence.base_poses), atol=1e-9
    )
    assert len(sequence.odometry_stamps) == 19
    np.testing.assert_array_equal(sequence.odometry_stamps[::2], sequence.stamps)


def test_noisy_wheel_odometry_drifts_a_bounded_amount_set_by_the_seed():
    base = base_trajectory('orbit', 30, ODOMETRY_PER_FRAME)  # 7.8 m of arc, turning 4.7 rad
    truth = relative_to_first(base)[-1, :3, 3]
    drifts = [
        np.linalg.norm(wheel_odometry(base, 0.02, seed)[-1, :3, 3] - truth) for seed in range(20)
    ]
    assert 0.05 < np.median(drifts) < 0.3 and max(drifts) < 0.6
    noisy = make_robot_sequence('orbit', 30, 32, 24, seed=3, wheel_noise=0.02)
    np.testing.assert_array_equal(noisy.odometry_poses, wheel_odometry(base, 0.02, 3))
    assert not np.array_equal(noisy.wheel_poses, relative_to_first(noisy.base_poses))


@pytest.mark.parametrize('steps', [5, 20])
def test_wheel_noise_is_the_error_std_after_one_metre_whatever_the_rate(steps):
    straight = np.stack([planar_pose(x, 0.0, 0.0) for x in np.linspace(0.0, 1.0, steps + 1)])
    ends = np.array([wheel_odometry(straight, 0.05, seed)[-1, :2, 3] for seed in range(1000)])
    np.testing.assert_allclose(ends.std(0), 0.05, rtol=0.1)


def tf_messages(reader, topic):
    connections = topic_connections(reader, topic, ground_truth.TF_TYPES)
    return connections, [m for _, _, m in read_messages(reader, connections)]


def edge(stamped) -> tuple[str, str]:
    return stamped.header.frame_id, stamped.child_frame_id


@pytest.mark.parametrize(
    ('storage', 'with_wheels'),
    [('mcap', False), ('mcap', True), ('sqlite3', True), ('rosbag1', True)],
)
def test_robot_bag_latches_the_mount_once_and_keeps_truth_off_the_node_frames(
    tmp_path, storage, with_wheels
):
    sequence = make_robot_sequence('rotate', 4, 32, 24, wheel_noise=0.02)
    path = write_robot_bag(
        sequence, tmp_path / ('bag.bag' if storage == 'rosbag1' else 'bag'), storage, with_wheels
    )
    with open_bag(path) as reader:
        (static_connection,), static = tf_messages(reader, TF_STATIC_TOPIC)
        _, moving = tf_messages(reader, TOPICS['tf'])
        truth = ground_truth.from_tf(reader, WORLD_FRAME, GT_CAMERA_FRAME)
        images = topic_connections(reader, TOPICS['image'], ('sensor_msgs/msg/Image',))
        (image,) = [m for _, _, m in read_messages(reader, images)][:1]
    if storage == 'rosbag1':
        assert static_connection.ext.latching == 1
    else:
        (qos,) = static_connection.ext.offered_qos_profiles
        assert qos.durability == QosDurability.TRANSIENT_LOCAL and qos.depth == 1
    (static_message,) = static
    mounts = {edge(s): s.transform for s in static_message.transforms}
    assert set(mounts) == {(BASE_FRAME, CAMERA_FRAME), (GT_BASE_FRAME, GT_CAMERA_FRAME)}
    for transform in mounts.values():
        t, q = transform.translation, transform.rotation
        mount = ground_truth.pose_matrix((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))
        np.testing.assert_allclose(mount, sequence.mount, atol=1e-12)
    edges = [edge(s) for m in moving for s in m.transforms]
    expected = {(WORLD_FRAME, GT_BASE_FRAME)} | (
        {(ODOM_FRAME, BASE_FRAME)} if with_wheels else set()
    )
    assert set(edges) == expected
    assert not NODE_FRAMES & {frame for pair in edges for frame in pair}
    assert edges.count((WORLD_FRAME, GT_BASE_FRAME)) == len(sequence)
    assert image.header.frame_id == CAMERA_FRAME
    np.testing.assert_array_equal(truth.stamps, sequence.stamps)
    np.testing.assert_allclose(truth.poses, sequence.poses, atol=1e-9)
    if with_wheels:
        with open_bag(path) as reader:
            odometry = ground_truth.from_tf(reader, ODOM_FRAME, BASE_FRAME)
        np.testing.assert_array_equal(odometry.stamps, sequence.odometry_stamps)
        np.testing.assert_allclose(odometry.poses, sequence.odometry_poses, atol=1e-9)


def test_vggt_synth_writes_a_ros1_bag_that_vggt_eval_reads(tmp_path, capsys):
    main([str(tmp_path / 'walk'), '--storage', 'rosbag1', '--frames', '3', '--width', '32'])
    printed = capsys.readouterr().out
    assert f'score with vggt-eval {tmp_path / "walk.bag"} ' in printed
    with open_bag(tmp_path / 'walk.bag') as reader:
        assert ground_truth.from_tf(reader, WORLD_FRAME, CAMERA_FRAME).stamps.shape == (3,)


def test_vggt_synth_robot_names_what_it_wrote(tmp_path, capsys):
    main([str(tmp_path / 'robot'), '--robot', '--frames', '3', '--width', '32', '--height', '24'])
    printed = capsys.readouterr().out
    assert f'--gt-tf {WORLD_FRAME}:{GT_CAMERA_FRAME}' in printed
    assert f'{BASE_FRAME} -> {CAMERA_FRAME}' in printed and ODOM_FRAME not in printed
    with open_bag(tmp_path / 'robot') as reader:
        assert {c.topic for c in reader.connections} == {
            TOPICS['image'],
            TOPICS['info'],
            TOPICS['depth'],
            TOPICS['tf'],
            TF_STATIC_TOPIC,
        }


def test_a_perfect_model_scores_zero_error_against_robot_ground_truth(tmp_path):
    sequence = make_robot_sequence('walk', 6, 112, 84, wheel_noise=0.02)
    bag = write_robot_bag(sequence, tmp_path / 'robot', wheel_odometry=True)
    reconstructor = Reconstructor(StandInModel(sequence.model_frame), image_width=112)
    gt = ['--gt-tf', f'{WORLD_FRAME}:{GT_CAMERA_FRAME}', '--depth-topic', TOPICS['depth']]
    args = [str(bag), '--out', str(tmp_path / 'eval'), '--image-width', '112', '--quiet', *gt]
    assert cli.main(args, reconstructor) == 0
    metrics = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    assert metrics['matched_frames'] == len(sequence)
    assert metrics['ate_rmse'] < 1e-4 and metrics['rpe_rot_deg_rmse'] < 1e-3
    assert metrics['depth_abs_rel'] < 1e-4


# ----------------------------------------------------------------------------------------------
# Varied worlds


def geometry(scene) -> tuple:
    """What a scene's shape is made of: the room and every object, without materials or light."""
    return (
        scene.room_lo,
        scene.room_hi,
        tuple((b.lo, b.hi) for b in scene.boxes),
        tuple((s.centre, s.radius) for s in scene.spheres),
    )


def test_the_default_scene_and_trajectories_are_unchanged():
    scene = default_scene()
    assert (scene.room_lo, scene.room_hi) == ((-4.0, -3.0, 0.0), (4.0, 3.0, 3.0))
    assert (len(scene.boxes), len(scene.spheres)) == (3, 3)
    assert scene.spheres[0] == default_scene(5).spheres[0]
    assert (scene.spheres[0].centre, scene.spheres[0].radius) == ((0.4, 0.3, 0.45), 0.45)
    assert (scene.light, scene.ambient) == ((0.5, -0.5, 2.8), 0.35)
    middles = {'walk': (-0.15, 0.0, 1.45), 'orbit': (-1.48492424, 1.48492424, 1.6)}
    middles['rotate'] = (-2.05, 0.0, 1.4)
    for kind, middle in middles.items():
        np.testing.assert_allclose(trajectory(kind, 3)[1, :3, 3], middle, atol=1e-8)
        sequence = make_sequence(kind, 3, 32, 24, seed=4)
        assert geometry(sequence.scene) == geometry(scene)
        np.testing.assert_array_equal(sequence.poses, trajectory(kind, 3))


def test_seeds_vary_the_room_objects_materials_light_and_paths():
    worlds = [random_world(seed) for seed in range(12)]
    scenes = [world.scene for world in worlds]
    assert len({scene.room_hi for scene in scenes}) == 12
    assert len({len(scene.boxes) + len(scene.spheres) for scene in scenes}) >= 4
    assert len({scene.room_materials for scene in scenes}) == 12
    assert len({(scene.light, scene.ambient) for scene in scenes}) == 12
    assert any(scene.spheres for scene in scenes)
    walls = [box for scene in scenes for box in scene.boxes if box.hi[2] == scene.room_hi[2]]
    assert walls  # L-shaped rooms and pillars reach the ceiling
    patterns = {m.pattern for scene in scenes for m in scene.materials}
    assert patterns == {'noise', 'checker', 'stripes'}
    for kind in TRAJECTORIES:
        assert len({world.paths[kind] for world in worlds}) == 12
    assert geometry(random_scene(3)) != geometry(default_scene(3))


def test_a_seed_always_draws_the_same_world():
    first, again = random_world(7), random_world(7)
    assert first == again
    K = pinhole(32, 24, 70.0)
    pose = first.paths['orbit'](0.3)
    for got, expected in zip(
        render(again.scene, pose, K, 24, 32), render(first.scene, pose, K, 24, 32), strict=True
    ):
        np.testing.assert_array_equal(got, expected)


def test_rooms_stay_in_their_size_ranges_and_hold_objects():
    for seed in range(40):
        scene = random_scene(seed)
        size = np.subtract(scene.room_hi, scene.room_lo)
        assert (size >= (5.0, 4.0, 2.4)).all() and (size <= (10.0, 8.0, 4.0)).all()
        assert len(scene.boxes) + len(scene.spheres) >= 2


@pytest.mark.parametrize('kind', sorted(TRAJECTORIES))
def test_every_camera_stays_in_the_room_clear_of_objects_and_sees_it(kind):
    K = pinhole(64, 48, 70.0)
    for seed in range(20):
        world = random_world(seed)
        poses = sample_path(world.paths, kind, 60)
        assert clearance(world.scene, poses[:, :3, 3]).min() >= CAMERA_CLEARANCE
        diagonal = np.linalg.norm(np.subtract(world.scene.room_hi, world.scene.room_lo))
        for pose in poses[::20]:
            _, depth = render(world.scene, pose, K, 48, 64)
            assert (np.isfinite(depth) & (depth > 0.05) & (depth < diagonal)).mean() > 0.99


def test_held_out_worlds_share_no_geometry_with_training_worlds():
    assert TRAIN_SEEDS.stop <= HELD_OUT_SEEDS.start
    training = [geometry(random_scene(seed)) for seed in TRAIN_SEEDS[:200]]
    sizes = {room_hi for _, room_hi, _, _ in training}
    for seed in HELD_OUT_SEEDS[:5]:
        held_out = geometry(random_scene(seed))
        assert held_out[1] not in sizes
        objects = set(held_out[2]) | set(held_out[3])
        assert all(not objects & (set(boxes) | set(spheres)) for _, _, boxes, spheres in training)


def test_vggt_synth_with_a_seed_writes_a_world_of_its_own(tmp_path, capsys):
    args = ['--trajectory', 'orbit', '--frames', '3', '--width', '32', '--height', '24']
    main([str(tmp_path / 'default'), *args])
    assert 'default room' in capsys.readouterr().out
    main([str(tmp_path / 'varied'), *args, '--seed', str(HELD_OUT_SEEDS[0])])
    assert f'world {HELD_OUT_SEEDS[0]}, held out' in capsys.readouterr().out
    with open_bag(tmp_path / 'default') as reader:
        default_truth = ground_truth.from_tf(reader, WORLD_FRAME, CAMERA_FRAME)
    with open_bag(tmp_path / 'varied') as reader:
        varied_truth = ground_truth.from_tf(reader, WORLD_FRAME, CAMERA_FRAME)
        depths = topic_connections(reader, TOPICS['depth'], ('sensor_msgs/msg/Image',))
        depth = depth_to_metres(next(m for _, _, m in read_messages(reader, depths)))
    np.testing.assert_allclose(default_truth.poses, trajectory('orbit', 3), atol=1e-9)
    varied = make_sequence('orbit', 3, 32, 24, seed=HELD_OUT_SEEDS[0], varied=True)
    np.testing.assert_allclose(varied_truth.poses, varied.poses, atol=1e-9)
    assert not np.allclose(varied_truth.poses, default_truth.poses, atol=0.1)
    np.testing.assert_array_equal(depth, varied.render(0)[1])
