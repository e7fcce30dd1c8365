"""Re-anchoring: the similarity fit, when the anchor has aged, and the proof that chained sessions,
each with its own anchor and scale, publish one world that follows the ground truth."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation
from standin_model import SessionScaledStandIn, indexed_image

from vggt_ros import params
from vggt_ros.anchoring import Anchoring, Similarity, fit_similarity
from vggt_ros.pipeline import StreamPipeline
from vggt_ros.reconstructor import Reconstructor
from vggt_ros.stream_types import FrameResult

HEIGHT, WIDTH = 42, 56  # the model's own size: frames reach the stand-in unresampled
LOOP_FRAMES = 600


def rigid(rotation, translation):
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rotation, translation
    return pose


def loop(frames):
    """A closed loop of radius 3 m with height and heading changing along it."""
    angle = np.linspace(0, 2 * np.pi, frames, endpoint=False)
    centres = np.stack([3 * np.cos(angle), 3 * np.sin(angle), 0.3 * np.sin(3 * angle)], 1)
    rotations = Rotation.from_euler(
        'zyx', np.stack([angle, 0.2 * np.sin(2 * angle), 0.1 * np.cos(angle)], 1)
    )
    return np.stack([rigid(r, c) for r, c in zip(rotations.as_matrix(), centres, strict=True)])


def true_depth(index, height, width):
    v, u = np.mgrid[0:height, 0:width]
    return (
        2.0 + 0.5 * np.sin(2 * np.pi * (u / width + index / 50)) + 0.3 * np.cos(np.pi * v / height)
    )


def run(model, frames, **values):
    values = {**params.DEFAULTS, 'window_size': 8, 'map.max_points': 5000, **values}
    pipeline = StreamPipeline(Reconstructor(model, image_width=WIDTH), values)
    outcomes = []
    for index in range(frames):
        stamp = 1_000_000_000 + index * 50_000_000
        outcomes.append(pipeline.process(indexed_image(index, HEIGHT, WIDTH), stamp, stamp, values))
    return outcomes


def random_similarity(rng):
    return Similarity(
        float(rng.uniform(0.1, 10)),
        Rotation.random(random_state=rng).as_matrix(),
        rng.normal(0, 5, 3),
    )


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(1, 8), still=st.booleans())
def test_the_fit_recovers_a_similarity_from_any_overlap(seed, frames, still):
    """Moving or still (centres coincide: rotation from the orientations alone), 1 to 8 frames."""
    rng = np.random.default_rng(seed)
    truth = random_similarity(rng)
    centres = np.zeros((frames, 3)) if still else rng.normal(0, 1, (frames, 3))
    rotations = Rotation.random(frames, random_state=rng).as_matrix()
    session = np.stack([rigid(r, c) for r, c in zip(rotations, centres, strict=True)])
    depths = [rng.uniform(0.5, 5, (6, 8)) for _ in range(frames)]
    fitted = fit_similarity(
        session,
        np.stack([truth.pose(p) for p in session]),
        depths,
        [truth.scale * d for d in depths],
    )
    assert fitted.scale == pytest.approx(truth.scale, rel=1e-9)
    np.testing.assert_allclose(fitted.rotation, truth.rotation, atol=1e-9)
    np.testing.assert_allclose(fitted.translation, truth.translation, atol=1e-8 * truth.scale)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(2, 8))
def test_centres_a_few_frames_apart_do_not_turn_a_fit_the_orientations_fix(seed, frames):
    """Exact orientations; centres 2% of the depth apart, each off by 1% of it (what a model's
    translation does over a short overlap): the rotation stays within half a degree."""
    rng = np.random.default_rng(seed)
    truth, depth = random_similarity(rng), 2.0
    centres = rng.normal(0, 0.02 * depth, (frames, 3))
    rotations = Rotation.random(frames, random_state=rng).as_matrix()
    session = np.stack([rigid(r, c) for r, c in zip(rotations, centres, strict=True)])
    world = np.stack([truth.pose(p) for p in session])
    world[:, :3, 3] += truth.scale * rng.normal(0, 0.01 * depth, (frames, 3))
    depths = [np.full((6, 8), depth) for _ in range(frames)]
    fitted = fit_similarity(session, world, depths, [truth.scale * d for d in depths])
    error = Rotation.from_matrix(fitted.rotation.T @ truth.rotation).magnitude()
    assert np.degrees(error) < 0.5


def test_a_similarity_moves_poses_and_scales_depth_and_points():
    rng = np.random.default_rng(1)
    similarity = random_similarity(rng)
    pose = rigid(Rotation.random(random_state=rng).as_matrix(), rng.normal(0, 1, 3))
    points = rng.normal(0, 1, (2, 2, 3)).astype(np.float32)
    result = FrameResult(
        0, None, pose, np.linalg.inv(pose), np.eye(3), np.ones((2, 2), np.float32),
        np.ones((2, 2), np.float32), np.zeros((2, 2, 3), np.uint8), np.zeros(9), points,
    )  # fmt: skip
    moved = similarity.result(result)
    np.testing.assert_allclose(moved.world_from_camera, similarity.pose(pose))
    np.testing.assert_allclose(
        moved.camera_from_world @ moved.world_from_camera, np.eye(4), atol=1e-9
    )
    np.testing.assert_allclose(moved.depth, similarity.scale, rtol=1e-6)
    expected = similarity.scale * points @ similarity.rotation.T + similarity.translation
    np.testing.assert_allclose(moved.world_points, expected, rtol=1e-5, atol=1e-5)


def frame_at(centre, depth=2.0):
    """A FrameResult at `centre` with a constant depth, for the policy."""
    pose = rigid(np.eye(3), centre)
    ones = np.ones((2, 2), np.float32)
    return FrameResult(0, None, pose, np.linalg.inv(pose), np.eye(3), depth * ones, ones,
                       np.zeros((2, 2, 3), np.uint8), np.zeros(9))  # fmt: skip


def test_the_anchor_ages_by_frames_or_by_distance_in_scene_depths():
    by_frames = {'anchor.max_frames': 5, 'anchor.max_distance': 0.0}
    by_distance = {'anchor.max_frames': 0, 'anchor.max_distance': 0.5}  # 0.5 x depth 2 = 1 m
    anchoring = Anchoring(overlap=2)
    due = []
    for index in range(8):
        anchoring.record(None, frame_at([0.3 * index, 0, 0]))
        due.append((anchoring.due(by_frames), anchoring.due(by_distance)))
    # Frames since the anchor: 5 at index 5; distance 1.2 > 1 m at index 4 (0.9 at index 3).
    assert [d[0] for d in due] == [False] * 5 + [True] * 3
    assert [d[1] for d in due] == [False] * 4 + [True] * 4
    anchoring.reanchored()  # the anchor is now index 6, one frame old
    assert anchoring.frames_since_anchor == 1 and not anchoring.due(by_distance)
    assert not anchoring.due({'anchor.max_frames': 0, 'anchor.max_distance': 0.0})
    anchoring.forget()
    assert not anchoring.due(by_frames)


def test_chained_sessions_follow_the_ground_truth_on_a_600_frame_loop():
    """Each session has its own anchor and scale; a re-anchoring every 50 frames chains them."""
    poses = loop(LOOP_FRAMES)
    model = SessionScaledStandIn(poses, true_depth)
    outcomes = run(model, LOOP_FRAMES, **{'anchor.max_frames': 50, 'anchor.overlap': 4})
    assert all(o.status == 'processed' and o.reset is None for o in outcomes)
    assert sum(o.reanchored for o in outcomes) >= LOOP_FRAMES // 50
    assert max(model.scales) / min(model.scales) > 3  # the sessions' units really differ
    # The published world is the first session's: the truth from frame 0, in its scale.
    first_scale = model.scales[0]
    expected = np.stack([np.linalg.inv(poses[0]) @ p for p in poses])
    expected[:, :3, 3] *= first_scale
    published = np.stack([o.frame.result.world_from_camera for o in outcomes])
    errors = np.linalg.norm(published[:, :3, 3] - expected[:, :3, 3], axis=1)
    length = np.linalg.norm(np.diff(expected[:, :3, 3], axis=0), axis=1).sum()
    assert np.sqrt((errors**2).mean()) <= 1e-3 * length
    rotation_error = Rotation.from_matrix(
        published[:, :3, :3] @ expected[:, :3, :3].transpose(0, 2, 1)
    )
    assert rotation_error.magnitude().max() < 1e-4
    depth = np.stack([o.frame.result.depth for o in outcomes])
    truth = np.stack([true_depth(i, HEIGHT, WIDTH) for i in range(LOOP_FRAMES)])
    np.testing.assert_allclose(depth, first_scale * truth, rtol=1e-4)


def test_without_re_anchoring_one_session_anchors_every_frame():
    model = SessionScaledStandIn(loop(120), true_depth)
    outcomes = run(model, 120)
    assert not any(o.reanchored for o in outcomes) and len(model.scales) == 1


def test_a_failed_warm_start_continues_from_the_last_pose():
    model = SessionScaledStandIn(loop(50), true_depth)
    model.fail_on_repeat = {17}  # frame 17 is in the overlap of the first re-anchoring (at 21)
    outcomes = run(model, 50, **{'anchor.max_frames': 20, 'anchor.overlap': 4})
    failed = [i for i, o in enumerate(outcomes) if o.reset]
    assert failed == [21] and 're-anchoring failed' in outcomes[21].reset
    assert outcomes[21].status == 'processed' and not outcomes[21].history_cleared
    # An automatic reset: the new session starts at the last published pose, without a jump.
    np.testing.assert_allclose(
        outcomes[21].frame.result.world_from_camera,
        outcomes[20].frame.result.world_from_camera,
        atol=1e-12,
    )
    assert sum(o.reanchored for o in outcomes) == 1  # the next anchor aged and re-anchored


def test_a_warm_start_is_a_fresh_session_in_the_same_buffers(tiny_model):
    reconstructor = Reconstructor(tiny_model, image_width=56, window=4)
    images = [torch.rand(3, 42, 56, generator=torch.Generator().manual_seed(i)) for i in range(6)]
    for image in images:
        reconstructor.step_image(image)
    allocated = reconstructor.session.cache_bytes
    warm = reconstructor.restart(images[-3:], [None] * 3)
    assert [r.frame_index for r in warm] == [0, 1, 2] and reconstructor.frame_index == 3
    assert reconstructor.session.cache_bytes == allocated
    fresh = Reconstructor(tiny_model, image_width=56, window=4)
    for image, result in zip(images[-3:], warm, strict=True):
        expected = fresh.step_image(image)
        np.testing.assert_array_equal(result.world_from_camera, expected.world_from_camera)
        np.testing.assert_array_equal(result.depth, expected.depth)


def test_an_anchor_without_depth_is_not_aged_by_distance():
    """No valid depth in the anchor: distance has no measure (and would re-anchor every frame)."""
    anchoring = Anchoring(overlap=2)
    for index in range(4):
        anchoring.record(None, frame_at([0.3 * index, 0, 0], depth=0.0 if index == 0 else 2.0))
    assert not anchoring.due({'anchor.max_frames': 0, 'anchor.max_distance': 0.5})
    assert anchoring.due({'anchor.max_frames': 3, 'anchor.max_distance': 0.5})
