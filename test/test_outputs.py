"""What the node publishes for a frame, checked against hand-computed values."""

import numpy as np
import pytest
import torch

from vggt_ros.model.geometry import depth_to_camera_points
from vggt_ros.outputs import BODY_FROM_OPTICAL, FrameOutputs, OutputOptions, scaled_pose
from vggt_ros.reconstructor import FrameResult

H, W = 4, 6
K = np.array([[10.0, 0.0, W / 2], [0.0, 20.0, H / 2], [0.0, 0.0, 1.0]])


def translation(x, y, z):
    pose = np.eye(4)
    pose[:3, 3] = x, y, z
    return pose


def frame(world_from_camera=None, depth=None, confidence=None):
    world_from_camera = np.eye(4) if world_from_camera is None else world_from_camera
    depth = np.full((H, W), 2.0, np.float32) if depth is None else depth
    confidence = np.full((H, W), 5.0, np.float32) if confidence is None else confidence
    colours = np.arange(H * W * 3, dtype=np.uint8).reshape(H, W, 3)
    return FrameResult(
        frame_index=0,
        stamp=None,
        world_from_camera=world_from_camera,
        camera_from_world=np.linalg.inv(world_from_camera),
        K=K,
        depth=depth,
        confidence=confidence,
        colours=colours,
        world_points=np.zeros((H, W, 3), np.float32),
        world_points_conf=confidence,
        pose_enc=np.zeros(9, np.float32),
    )


def test_body_axes_follow_rep_103():
    # A level camera looks along body x; its right is body -y and its down is body -z.
    rotation = BODY_FROM_OPTICAL[:3, :3]
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    assert rotation @ [0, 0, 1] == pytest.approx([1, 0, 0])
    assert rotation @ [1, 0, 0] == pytest.approx([0, -1, 0])
    assert rotation @ [0, 1, 0] == pytest.approx([0, 0, -1])


def test_forward_motion_is_optical_z_or_body_x():
    forward = translation(0, 0, 1)
    assert scaled_pose(forward, 'optical', 1.0)[:3, 3] == pytest.approx([0, 0, 1])
    assert scaled_pose(forward, 'ros', 1.0)[:3, 3] == pytest.approx([1, 0, 0])


def test_scale_multiplies_translation_only():
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    pose = translation(1, 2, 3)
    pose[:3, :3] = rotation
    scaled = scaled_pose(pose, 'optical', 2.5)
    assert scaled[:3, 3] == pytest.approx([2.5, 5.0, 7.5])
    assert scaled[:3, :3] == pytest.approx(rotation)
    assert pose[:3, 3] == pytest.approx([1, 2, 3])  # the input is left alone


def test_depth_is_scaled_and_nan_below_the_threshold():
    confidence = np.full((H, W), 5.0, np.float32)
    confidence[0, :] = 1.5
    out = FrameOutputs(frame(confidence=confidence), OutputOptions(conf_threshold=3.0, scale=2.0))
    assert out.depth.dtype == np.float32
    assert np.isnan(out.depth[0]).all()
    assert out.depth[1:] == pytest.approx(np.full((H - 1, W), 4.0))


def test_a_non_finite_depth_is_invalid_everywhere_it_goes():
    depth = np.full((H, W), 2.0, np.float32)
    depth[0, 0], depth[0, 1] = np.inf, np.nan
    out = FrameOutputs(frame(depth=depth), OutputOptions())
    assert not out.valid[0, :2].any() and out.valid[1:].all()
    points, _ = out.world_points()
    assert len(points) == H * W - 2 and np.isfinite(points).all()


def test_camera_points_unproject_the_published_depth():
    depth = np.arange(1, H * W + 1, dtype=np.float32).reshape(H, W)
    out = FrameOutputs(frame(depth=depth), OutputOptions())
    v, u = 3, 1  # pixel (u, v) sits at integer coordinates
    d = depth[v, u]
    expected = [(u - K[0, 2]) * d / K[0, 0], (v - K[1, 2]) * d / K[1, 1], d]
    assert out.camera_points[v, u] == pytest.approx(expected)


def test_camera_points_match_the_model_unprojection():
    # The numpy unprojection must not drift from the model's torch one (same pixel convention).
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.1, 50.0, (H, W)).astype(np.float32)
    confidence = rng.uniform(0.0, 2.0, (H, W)).astype(np.float32)
    out = FrameOutputs(frame(depth=depth, confidence=confidence), OutputOptions(1.0, scale=0.7))
    expected = depth_to_camera_points(torch.from_numpy(out.depth), torch.from_numpy(K)).numpy()
    assert out.camera_points.dtype == np.float32
    np.testing.assert_allclose(out.camera_points, expected, rtol=1e-6, equal_nan=True)


def test_cloud_is_decimated_and_keeps_invalid_points_as_nan():
    confidence = np.full((H, W), 5.0, np.float32)
    confidence[2, 2] = 0.0
    out = FrameOutputs(
        frame(confidence=confidence), OutputOptions(conf_threshold=1.0, decimation=2)
    )
    points, colours = out.cloud()
    assert points.shape == (2, 3, 3) and colours.shape == (2, 3, 3)
    assert np.isnan(points[1, 1]).all() and np.isfinite(points[0]).all()
    assert np.array_equal(colours, out.result.colours[::2, ::2])


def test_world_points_land_where_the_pose_puts_the_depth():
    pose = translation(1.0, 0.0, 2.0)
    out = FrameOutputs(frame(world_from_camera=pose), OutputOptions(world_axes='ros', scale=3.0))
    points, colours = out.world_points()
    assert points.shape == (H * W, 3) and colours.shape == (H * W, 3)
    # The centre pixel looks straight ahead: 2 units (6 after scale) beyond the camera.
    centre = int(H / 2) * W + int(W / 2)
    camera_optical = np.array([3.0, 0.0, 6.0])  # pose translation after scale
    expected_optical = camera_optical + [0, 0, 6.0]
    assert points[centre] == pytest.approx(BODY_FROM_OPTICAL[:3, :3] @ expected_optical)


def test_bad_options_are_refused():
    with pytest.raises(ValueError):
        OutputOptions(world_axes='enu')
    with pytest.raises(ValueError):
        OutputOptions(scale=0.0)
