"""vggt_ros.pose_from_matches: a frame's pose from its patches' matches to the session's first
frame and that frame's depth. True matches and depth give the true pose (by PnP, or the
translation given the rotation); the translation survives a fifth of the matches being wrong;
too few matches, or a model's NaN, give no answer rather than a guess or an exception."""

import numpy as np
import pytest

from vggt_ros.pose_from_matches import matched_points, solve_pnp, solve_translation
from vggt_ros.synthetic import make_sequence, write_bag
from vggt_ros.training.data import PATCH_SIZE, BagTopics, make_clip, read_frames


@pytest.fixture(scope='module')
def session(tmp_path_factory):
    """Frames 0 and 5 of a 24-frame walk (steps larger than the 120-frame scenes'): the true
    matches of frame 5's patches, the first frame's true depth, K and camera_from_first."""
    bag = write_bag(make_sequence('walk', 24, 224, 168), tmp_path_factory.mktemp('walk') / 'b')
    frames = read_frames(bag, 112, BagTopics())
    clip = make_clip(frames, [0, 5])
    truth = np.linalg.inv(frames.poses[5]) @ frames.poses[0]
    first_depth = np.nan_to_num(frames.depths[0].numpy())  # metres, as the true pose
    return clip.flow[1].numpy(), clip.matches[1].numpy() >= 0, first_depth, frames.K, truth


def test_pnp_on_true_matches_and_depth_gives_the_true_pose(session):
    flow, matched, depth, K, truth = session
    pose = solve_pnp(flow, depth, K, PATCH_SIZE, matched)
    assert np.abs(pose[:3, :3] - truth[:3, :3]).max() < 1e-3
    # to the interpolation of the first frame's depth at the matches
    assert np.linalg.norm(pose[:3, 3] - truth[:3, 3]) < 0.01 * np.linalg.norm(truth[:3, 3])


def test_the_translation_given_the_rotation_is_the_true_one(session):
    flow, matched, depth, K, truth = session
    pixels, points = matched_points(flow, depth, K, PATCH_SIZE, matched)
    assert len(points) > 20
    translation = solve_translation(truth[:3, :3], pixels, points, K)
    assert np.linalg.norm(translation - truth[:3, 3]) < 0.01 * np.linalg.norm(truth[:3, 3])


def test_a_fifth_of_the_matches_wrong_barely_moves_the_translation(session):
    flow, matched, depth, K, truth = session
    pixels, points = matched_points(flow, depth, K, PATCH_SIZE, matched)
    rng = np.random.default_rng(0)
    wrong = rng.random(len(pixels)) < 0.2
    pixels = pixels.copy()
    pixels[wrong] += rng.uniform(-30, 30, (wrong.sum(), 2))
    translation = solve_translation(truth[:3, :3], pixels, points, K)
    assert np.linalg.norm(translation - truth[:3, 3]) < 0.1 * np.linalg.norm(truth[:3, 3])


def test_too_few_matches_give_no_pose(session):
    flow, matched, depth, K, truth = session
    few = matched & (np.cumsum(matched) <= 5)
    pixels, points = matched_points(flow, depth, K, PATCH_SIZE, few)
    assert len(points) == 5
    assert solve_translation(truth[:3, :3], pixels, points, K) is None
    assert solve_pnp(flow, depth, K, PATCH_SIZE, few) is None


def test_a_non_finite_rotation_or_k_gives_no_translation(session):
    flow, matched, depth, K, truth = session
    pixels, points = matched_points(flow, depth, K, PATCH_SIZE, matched)
    assert solve_translation(np.full((3, 3), np.nan), pixels, points, K) is None
    assert solve_translation(truth[:3, :3], pixels, points, np.full((3, 3), np.nan)) is None


def test_matches_outside_the_first_frame_or_its_depth_are_dropped(session):
    flow, matched, depth, K, _ = session
    away = flow.copy()
    away[0] = (-100, 0)  # far left of the first frame
    holed = depth.copy()
    holed[:] = np.nan
    assert len(matched_points(away, depth, K, PATCH_SIZE)[1]) == len(flow) - 1
    assert len(matched_points(flow, holed, K, PATCH_SIZE)[1]) == 0
