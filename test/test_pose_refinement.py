"""vggt_ros.pose_refinement: a pose refined with its points' depths free along their rays.

Its Gauss-Newton with the depths eliminated reaches the minimum a general least-squares solver
finds for the same cost. Over a baseline it takes out most of what a depth leaning across the
image does to PnP's pose, and moves the points towards the truth; the points grow surer with
the baseline and not without one. A turn in place, where the images say nothing about depth,
keeps PnP's rotation. Matches off by more than the gate, too few matches and non-finite poses
change nothing, and a trial step that puts a point onto the camera is refused without a warning."""

import warnings

import cv2
import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from vggt_ros.pose_refinement import (
    DEPTH_SIGMA,
    GATE_PIXELS,
    MIN_POINTS,
    PIXEL_SIGMA,
    _Problem,
    refine_pose,
)

K = np.array([[80.0, 0, 56], [0, 80, 42], [0, 0, 1]])
SIZE = np.array([112, 84])


def _scene(seed: int, turn_degrees: float, shift: list[float], points: int = 150):
    """Points seen by a first camera at the origin (pixels, true points) and where a second
    camera (truth, camera_from_first) sees them, with 0.1 px of noise."""
    rng = np.random.default_rng(seed)
    first_pixels = rng.uniform([0, 0], SIZE, (points, 2))
    depth = rng.uniform(2, 5, points)
    true_points = (
        np.column_stack([(first_pixels - K[:2, 2]) / 80, np.ones(points)]) * depth[:, None]
    )
    truth = np.eye(4)
    truth[:3, :3] = Rotation.from_euler('y', turn_degrees, degrees=True).as_matrix()
    truth[:3, 3] = shift
    seen = true_points @ truth[:3, :3].T + truth[:3, 3]
    pixels = seen[:, :2] / seen[:, 2:] * 80 + K[:2, 2] + rng.normal(0, 0.1, (points, 2))
    return first_pixels, true_points, truth, pixels


def _leaning(first_pixels, points, lean=0.15):
    """The points with their depth leaning across the first image, as the model's can."""
    return points * np.exp(lean * (first_pixels[:, :1] - K[0, 2]) / SIZE[0])


def _pnp(points, pixels):
    _, rvec, tvec = cv2.solvePnP(points, pixels, K, None, flags=cv2.SOLVEPNP_ITERATIVE)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = cv2.Rodrigues(rvec)[0], tvec[:, 0]
    return pose


def _errors(pose, truth):
    degrees = np.degrees(Rotation.from_matrix(pose[:3, :3] @ truth[:3, :3].T).magnitude())
    return degrees, np.linalg.norm(pose[:3, 3] - truth[:3, 3])


def test_the_step_reaches_the_minimum_of_a_general_solver():
    first_pixels, true_points, truth, pixels = _scene(0, -8, [-0.5, 0.02, 0.05])
    points = _leaning(first_pixels, true_points)
    start = _pnp(points, pixels)
    sigmas = np.full(len(points), DEPTH_SIGMA)
    refined = refine_pose(start, pixels, points, np.zeros_like(points), sigmas, K)

    def residuals(x):
        moved = points * np.exp(x[6:])[:, None]
        seen = moved @ Rotation.from_rotvec(x[:3]).as_matrix().T + x[3:6]
        projected = seen[:, :2] / seen[:, 2:] * 80 + K[:2, 2]
        return np.concatenate([((projected - pixels) / PIXEL_SIGMA).ravel(), x[6:] / sigmas])

    x0 = np.concatenate([Rotation.from_matrix(start[:3, :3]).as_rotvec(), start[:3, 3]])
    general = least_squares(residuals, np.concatenate([x0, np.zeros(len(points))])).x
    np.testing.assert_allclose(refined.pose[:3, 3], general[3:6], atol=1e-6)
    np.testing.assert_allclose(
        Rotation.from_matrix(refined.pose[:3, :3]).as_rotvec(), general[:3], atol=1e-7
    )
    np.testing.assert_allclose(refined.points, points * np.exp(general[6:])[:, None], atol=1e-5)


@pytest.mark.parametrize('lean', [0.15, -0.3])
def test_over_a_baseline_a_leaning_depth_costs_the_pose_much_less(lean):
    first_pixels, true_points, truth, pixels = _scene(1, -8, [-0.5, 0.02, 0.05])
    points = _leaning(first_pixels, true_points, lean)
    start = _pnp(points, pixels)
    sigmas = np.full(len(points), DEPTH_SIGMA)
    refined = refine_pose(start, pixels, points, np.zeros_like(points), sigmas, K)
    assert _errors(refined.pose, truth)[1] < 0.4 * _errors(start, truth)[1]
    before = np.abs(np.log(np.linalg.norm(points, axis=1) / np.linalg.norm(true_points, axis=1)))
    after = np.log(np.linalg.norm(refined.points, axis=1) / np.linalg.norm(true_points, axis=1))
    assert np.median(np.abs(after)) < 0.6 * np.median(before)
    assert (refined.sigmas <= sigmas).all() and np.median(refined.sigmas) < 0.5 * DEPTH_SIGMA


def test_a_turn_in_place_keeps_its_rotation_and_learns_nothing_of_depth():
    first_pixels, true_points, truth, pixels = _scene(2, 10, [0, 0, 0])
    points = _leaning(first_pixels, true_points)
    start = _pnp(points, pixels)
    sigmas = np.full(len(points), DEPTH_SIGMA)
    refined = refine_pose(start, pixels, points, np.zeros_like(points), sigmas, K)
    assert _errors(refined.pose, truth)[0] < 0.05
    assert _errors(refined.pose, truth)[1] <= _errors(start, truth)[1] + 1e-3
    assert refined.sigmas.min() > 0.9 * DEPTH_SIGMA


def test_what_it_cannot_use_it_leaves_alone():
    first_pixels, true_points, truth, pixels = _scene(3, -8, [-0.5, 0.02, 0.05])
    origins, sigmas = np.zeros_like(true_points), np.full(len(true_points), DEPTH_SIGMA)
    wrong = pixels.copy()
    wrong[:10] += 3 * GATE_PIXELS  # ten matches far off
    refined = refine_pose(truth, wrong, true_points, origins, sigmas, K)
    np.testing.assert_array_equal(refined.points[:10], true_points[:10])
    np.testing.assert_array_equal(refined.sigmas[:10], sigmas[:10])
    assert _errors(refined.pose, truth)[1] < 0.01
    few = slice(0, MIN_POINTS - 1)
    kept = refine_pose(truth, pixels[few], true_points[few], origins[few], sigmas[few], K)
    np.testing.assert_array_equal(kept.pose, truth)
    np.testing.assert_array_equal(kept.points, true_points[few])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        broken = np.full((4, 4), np.nan)
        assert refine_pose(broken, pixels, true_points, origins, sigmas, K).pose is broken


def test_a_step_that_puts_a_point_onto_the_camera_costs_infinity_quietly():
    """A trial step may put a point in the camera's plane (depth 0): its cost is infinite, so
    the step is refused, with no division warning."""
    first_pixels, true_points, truth, pixels = _scene(4, -8, [-0.5, 0.02, 0.05])
    problem = _Problem(pixels, np.zeros_like(true_points), true_points, np.full(150, 0.1), K)
    onto = np.array([0.0, 0.0, -true_points[0, 2]])  # the first point at depth 0
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert problem.cost(np.eye(3), onto, np.zeros(150)) == np.inf
