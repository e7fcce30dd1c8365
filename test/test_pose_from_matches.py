"""vggt_ros.pose_from_matches: a frame's pose from its patches' matches to the session's first
frame and that frame's depth. True matches and depth give the true pose (by PnP, or the
translation given the rotation); the translation survives a fifth of the matches being wrong;
too few matches, or a model's NaN, give no answer rather than a guess or an exception.
The points seen from the true pose put a frame's depth, wrong by a factor, into the first
frame's units, unless the factor is too large to be the depth's. Matches a pixel or two off are
made sub-pixel in the images, and solve_pose then beats a head a few degrees off, but keeps a
head's rotation that PnP disagrees with by far, unless the previous frame's turn agrees with
PnP. Tracking from the previous frame solves a frame that has no match left to the first. A
turn moves the content across the image by its angle, and levelling takes out of the depth the
lean that such a step gives it."""

import warnings

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vggt_ros.pose_from_matches import (
    MAX_TILT_STEP,
    MIN_MATCHES,
    FirstFrame,
    PreviousFrame,
    depth_scale,
    grey,
    head_matches,
    image_step,
    level_depth,
    matched_points,
    refine_matches,
    solve_pnp,
    solve_pose,
    solve_translation,
)
from vggt_ros.reconstructor import to_rgb8
from vggt_ros.synthetic import make_sequence, write_bag
from vggt_ros.training.data import PATCH_SIZE, BagTopics, make_clip, read_frames


@pytest.fixture(scope='module')
def walk(tmp_path_factory):
    """Frames 0 and 5 of a 60-frame walk (steps twice the 120-frame scenes'): the true matches
    of frame 5's patches, the first frame's true depth, K, camera_from_first, the two grey
    images as the model sees them (frame 5's, the first's) and frame 5's true depth."""
    bag = write_bag(make_sequence('walk', 60, 224, 168), tmp_path_factory.mktemp('walk') / 'b')
    frames = read_frames(bag, 112, BagTopics())
    clip = make_clip(frames, [0, 5])
    truth = np.linalg.inv(frames.poses[5]) @ frames.poses[0]
    first_depth = np.nan_to_num(frames.depths[0].numpy())  # metres, as the true pose
    first, image = (grey(to_rgb8(i)) for i in clip.images)
    matched = clip.matches[1].numpy() >= 0
    depth = np.nan_to_num(frames.depths[5].numpy())
    return clip.flow[1].numpy(), matched, first_depth, frames.K, truth, image, first, depth


@pytest.fixture(scope='module')
def session(walk):
    """flow, matched, first_depth, K, truth"""
    return walk[:5]


@pytest.fixture(scope='module')
def images(walk):
    """frame 5's grey image, the first's"""
    return walk[5:7]


def test_pnp_on_true_matches_and_depth_gives_the_true_pose(session):
    flow, matched, depth, K, truth = session
    pose = solve_pnp(*matched_points(flow, depth, K, PATCH_SIZE, matched), K)
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
    assert solve_pnp(pixels, points, K) is None


def test_depth_wrong_by_a_factor_is_put_into_the_first_frames_units(session, walk):
    flow, matched, first_depth, K, truth = session
    pixels, points = matched_points(flow, first_depth, K, PATCH_SIZE, matched)
    depth = walk[7]
    assert depth_scale(truth, pixels, points, 0.7 * depth) == pytest.approx(1 / 0.7, rel=0.01)
    assert depth_scale(truth, pixels[:5], points[:5], depth) is None
    assert depth_scale(truth, pixels, points, 3 * depth) is None  # the pose is wrong, not it
    assert depth_scale(truth, pixels, points, np.full_like(depth, np.nan)) is None


def test_a_non_finite_rotation_or_k_gives_no_translation(session):
    flow, matched, depth, K, truth = session
    pixels, points = matched_points(flow, depth, K, PATCH_SIZE, matched)
    assert solve_translation(np.full((3, 3), np.nan), pixels, points, K) is None
    assert solve_translation(truth[:3, :3], pixels, points, np.full((3, 3), np.nan)) is None


def test_a_non_finite_prediction_is_returned_as_it_is_not_raised(session, images):
    flow, _, depth, K, _ = session
    image, first = images
    predicted = np.full((4, 4), np.nan)
    pose, pnp_matches, _ = solve_pose(
        predicted, flow, image, FirstFrame(first, depth), K, PATCH_SIZE
    )
    assert pnp_matches is None and np.isnan(pose).all()


def test_matches_outside_the_first_frame_or_its_depth_are_dropped(session):
    flow, matched, depth, K, _ = session
    away = flow.copy()
    away[0] = (-100, 0)  # far left of the first frame
    holed = depth.copy()
    holed[:] = np.nan
    assert len(matched_points(away, depth, K, PATCH_SIZE)[1]) == len(flow) - 1
    assert len(matched_points(flow, holed, K, PATCH_SIZE)[1]) == 0
    assert len(matched_points(np.full_like(flow, np.nan), depth, K, PATCH_SIZE)[1]) == 0


def test_refinement_makes_matches_two_pixels_off_sub_pixel(session, images):
    flow, matched, depth, K, _ = session
    noisy = flow + np.random.default_rng(0).normal(0, 2 / PATCH_SIZE, flow.shape)
    here, there = head_matches(np.where(matched[:, None], noisy, np.nan), depth.shape, PATCH_SIZE)
    true_there = head_matches(np.where(matched[:, None], flow, np.nan), depth.shape, PATCH_SIZE)[1]
    refined_here, refined = refine_matches(*images, here, there, PATCH_SIZE)
    assert len(refined) > 0.7 * len(here)
    kept = (here[:, None] == refined_here[None]).all(-1).any(1)
    assert np.median(np.linalg.norm(there - true_there, axis=1)) > 1.5
    assert np.median(np.linalg.norm(refined - true_there[kept], axis=1)) < 0.5


def _degrees_off(pose, truth):
    return np.degrees(Rotation.from_matrix(pose[:3, :3] @ truth[:3, :3].T).magnitude())


def _turned(truth, degrees):
    head = truth.copy()
    head[:3, :3] = Rotation.from_euler('y', degrees, degrees=True).as_matrix() @ truth[:3, :3]
    return head


def test_solve_pose_beats_a_head_a_few_degrees_off_and_keeps_one_far_off(session, images):
    flow, matched, depth, K, truth = session
    noisy = flow + np.random.default_rng(1).normal(0, 1.5 / PATCH_SIZE, flow.shape)
    noisy = np.where(matched[:, None], noisy, np.nan)
    for degrees, solved in ((3, True), (30, False)):
        head = _turned(truth, degrees)
        image, first = images
        pose, pnp_matches, _ = solve_pose(
            head, noisy, image, FirstFrame(first, depth), K, PATCH_SIZE
        )
        assert (pnp_matches is not None) == solved
        if solved:
            assert _degrees_off(pose, truth) < 0.5
            assert np.linalg.norm(pose[:3, 3] - truth[:3, 3]) < 0.1 * np.linalg.norm(truth[:3, 3])
        else:
            np.testing.assert_allclose(pose[:3, :3], head[:3, :3])


def test_tracking_from_the_previous_frame_solves_a_frame_with_no_match_to_the_first(
    session, images
):
    _, _, depth, K, truth = session
    image, first = images
    lost = np.full((len(session[0]), 2), np.nan)  # the flow head finds nothing in the first
    previous = PreviousFrame(first, depth, np.eye(4))
    for head in (_turned(truth, 3), _turned(truth, -3)):
        pose, pnp_matches, _ = solve_pose(
            head, lost, image, FirstFrame(first, depth), K, PATCH_SIZE, previous
        )
        assert pnp_matches is not None and len(pnp_matches[0]) > 50
        assert _degrees_off(pose, truth) < 0.5
        assert np.linalg.norm(pose[:3, 3] - truth[:3, 3]) < 0.1 * np.linalg.norm(truth[:3, 3])
    pose, pnp_matches, _ = solve_pose(truth, lost, image, FirstFrame(first, depth), K, PATCH_SIZE)
    assert pnp_matches is None and np.array_equal(pose, truth)  # nothing to solve from


def test_a_head_far_off_is_overruled_only_where_the_previous_frames_turn_agrees(session, images):
    flow, _, depth, K, truth = session
    image, first = images
    head = _turned(truth, 30)
    for turn, solved in ((truth[:3, :3], True), (head[:3, :3], False)):
        previous = PreviousFrame(first, depth, np.eye(4), turn)
        pose, pnp_matches, _ = solve_pose(
            head, flow, image, FirstFrame(first, depth), K, PATCH_SIZE, previous
        )
        assert (pnp_matches is not None) == solved
        if solved:
            assert _degrees_off(pose, truth) < 0.5
        else:
            np.testing.assert_allclose(pose[:3, :3], head[:3, :3])


def test_the_previous_frame_passes_on_its_turn():
    step = Rotation.from_euler('z', 4, degrees=True).as_matrix()
    before = np.eye(4)
    before[:3, :3] = Rotation.from_euler('x', 20, degrees=True).as_matrix()
    after = before.copy()
    after[:3, :3] = step @ before[:3, :3]
    image, depth = np.zeros((84, 112), np.uint8), np.ones((84, 112))
    previous = PreviousFrame(image, depth, before).followed_by(image, depth, after)
    np.testing.assert_allclose(previous.turn, step, atol=1e-12)
    np.testing.assert_allclose(previous.next_rotation, step @ step @ before[:3, :3], atol=1e-12)


def test_a_previous_frame_after_a_models_non_finite_pose_is_not_tracked_from(session, images):
    """A model's inf or NaN pose is skipped quietly: no tracking from it, no turn from it, and no
    arithmetic on it (every warning is an error here)."""
    flow, _, depth, K, truth = session
    image, first = images
    start = PreviousFrame(first, depth, np.eye(4))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        broken = start.followed_by(first, depth, np.full((4, 4), np.inf))
        pose, pnp_matches, _ = solve_pose(
            truth, flow, image, FirstFrame(first, depth), K, PATCH_SIZE, broken
        )
        after = broken.followed_by(first, depth, np.eye(4))  # its turn is unknown
        solved = solve_pose(truth, flow, image, FirstFrame(first, depth), K, PATCH_SIZE, after)
    assert np.isnan(broken.turn).all() and np.isnan(after.turn).all()
    assert pnp_matches is not None and np.isfinite(pose).all()
    assert solved.pnp_matches is not None and len(solved.pnp_matches[0]) > len(pnp_matches[0])


def test_a_turn_moves_the_content_across_the_image_by_its_angle(session):
    K, width = session[3], 112
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(-1, 1, (50, 2)), rng.uniform(2, 4, 50)])
    pixels = points[:, :2] / points[:, 2:] * np.diag(K)[:2] + K[:2, 2]  # seen from the first
    expected = K[0, 0] * np.radians(3) / width
    # The previous camera looked left of this one: this one has turned right since, and the
    # content moved left across the image.
    left, right = _turned(np.eye(4), 3), _turned(np.eye(4), -3)
    assert image_step(left, pixels, points, K, width) == pytest.approx(-expected, rel=0.05)
    assert image_step(right, pixels, points, K, width) == pytest.approx(expected, rel=0.05)
    assert image_step(_turned(np.eye(4), 180), pixels, points, K, width) is None  # all behind
    few = slice(MIN_MATCHES - 1)
    assert image_step(left, pixels[few], points[few], K, width) is None
    assert image_step(left, pixels, points, np.full((3, 3), np.nan), width) is None


@pytest.mark.parametrize('step', [0.04, -0.02, 0.0])
def test_levelling_takes_out_the_lean_that_a_step_gives_the_depth(walk, step):
    depth, K = walk[7], walk[3]
    offsets = (np.arange(depth.shape[1]) - K[0, 2]) / depth.shape[1]
    leaning = depth * np.exp(1.7 * step * offsets)
    np.testing.assert_allclose(level_depth(leaning, step, 1.7, K), depth, rtol=1e-5)
    assert np.array_equal(level_depth(leaning, step, 0.0, K), leaning)


def test_a_step_beyond_the_fastest_turn_levels_as_that_turn(walk):
    depth, K = walk[7], walk[3]
    fastest = level_depth(depth, MAX_TILT_STEP, 1.7, K)
    np.testing.assert_array_equal(level_depth(depth, 10 * MAX_TILT_STEP, 1.7, K), fastest)
    assert not np.array_equal(fastest, depth)
