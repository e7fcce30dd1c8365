"""The model's depth corrected by the session's recent frames (plane_sweep), on rendered frames
with their true poses, and on any frames at all."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from vggt_ros.plane_sweep import MAX_CORRECTION, RECENT_FRAMES, RecentFrame, corrected_depth
from vggt_ros.pose_from_matches import grey
from vggt_ros.synthetic import make_sequence

FRAMES = RECENT_FRAMES + 1


def rendered(kind: str) -> tuple[list[RecentFrame], np.ndarray, np.ndarray]:
    """The first FRAMES frames of a 60-frame path at 224x168: each as a RecentFrame with its
    true camera_from_first, the last one's true depth, and K."""
    sequence = make_sequence(kind, 60, 224, 168)
    frames = []
    for index in range(FRAMES):
        rgb, depth = sequence.render(index)
        pose = np.linalg.inv(sequence.poses[index]) @ sequence.poses[0]
        frames.append(RecentFrame(grey(rgb), pose))
    return frames, np.nan_to_num(depth).astype(np.float32), sequence.K


@pytest.fixture(scope='module')
def orbit():
    return rendered('orbit')


def abs_rel(depth: np.ndarray, truth: np.ndarray) -> float:
    known = truth > 0
    return float(np.mean(np.abs(depth[known] - truth[known]) / truth[known]))


def test_a_region_of_wrong_depth_is_corrected_from_the_recent_frames(orbit):
    frames, truth, K = orbit
    wrong = truth.copy()
    wrong[:, : wrong.shape[1] // 2] *= 1.6  # the model's kind of error: a region misjudged
    wrong = np.where(truth > 0, wrong, np.median(truth[truth > 0])).astype(np.float32)
    frame = frames[-1]
    corrected = corrected_depth(frame.image, wrong, frame.pose, K, frames[:-1])
    assert abs_rel(corrected, truth) < 0.5 * abs_rel(wrong, truth)
    assert abs_rel(corrected, truth) < 0.1


@pytest.mark.parametrize('kind', ['orbit', 'walk'])
def test_a_true_depth_stays_about_true(kind):
    frames, truth, K = rendered(kind)
    frame = frames[-1]
    corrected = corrected_depth(frame.image, truth, frame.pose, K, frames[:-1])
    # measured 0.017 and 0 (no frame of the walk is far enough yet)
    assert abs_rel(corrected, truth) < 0.03


def test_a_turn_in_place_keeps_the_models_depth():
    """Its recent frames are turned by far more than their parallax: a pose error of a fraction
    of the turn would move the swept depth by many times that fraction."""
    frames, truth, K = rendered('rotate')
    frame = frames[-1]
    wrong = np.where(truth > 0, 1.3 * truth, 1.0).astype(np.float32)
    assert corrected_depth(frame.image, wrong, frame.pose, K, frames[:-1]) is wrong


def test_no_recent_frame_apart_from_it_or_no_pose_keep_the_models_depth(orbit):
    frames, truth, K = orbit
    frame = frames[-1]
    depth = np.where(truth > 0, truth, 1.0).astype(np.float32)
    assert corrected_depth(frame.image, depth, frame.pose, K, []) is depth
    assert corrected_depth(frame.image, depth, frame.pose, K, [frame, frame]) is depth
    no_pose = np.full((4, 4), np.nan)
    assert corrected_depth(frame.image, depth, no_pose, K, frames[:-1]) is depth


images = st.integers(0, 2**32 - 1).map(
    lambda seed: np.random.default_rng(seed).integers(0, 256, (42, 56), dtype=np.uint8)
)
steps = st.tuples(*[st.floats(-0.3, 0.3)] * 6)  # a translation [m] and a rotation vector [rad]


@settings(max_examples=25, deadline=None)
@given(
    frame=images,
    recent=st.lists(st.tuples(images, steps), min_size=0, max_size=FRAMES),
    depth_seed=st.integers(0, 2**32 - 1),
    flat=st.booleans(),
)
def test_any_frames_give_a_finite_positive_depth_of_the_same_shape(frame, recent, depth_seed, flat):
    K = np.array([[40.0, 0, 28], [0, 40.0, 21], [0, 0, 1]])
    rng = np.random.default_rng(depth_seed)
    depth = rng.uniform(0.5, 6.0, frame.shape).astype(np.float32)
    frames = []
    for image, step in recent:
        pose = np.eye(4)
        pose[:3, 3], pose[:3, :3] = step[:3], Rotation.from_rotvec(step[3:]).as_matrix()
        frames.append(RecentFrame(np.zeros_like(image) if flat else image, pose))
    corrected = corrected_depth(frame, depth, np.eye(4), K, frames)
    assert corrected.shape == depth.shape and corrected.dtype == depth.dtype
    assert np.isfinite(corrected).all() and (corrected > 0).all()
    assert np.all(np.abs(np.log(corrected / depth)) <= MAX_CORRECTION + 1e-5)
