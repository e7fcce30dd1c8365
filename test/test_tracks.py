"""vggt_ros.tracks: points followed from frame to frame since they were first seen.

New tracks fill every cell that holds none, lifted so that the frame sees each at its pixel,
and never double a cell; a non-finite pose or K starts none. Followed into a shifted image,
tracks land where their content went, those that leave the image end, and the turn that keeps
the most wins. A track counts once the camera has moved far enough from where it was seen.
Tracks whose depths are sure take the depth's lean out, not its scale, and a fifth of them far
off hardly moves it; unsure or too few leave the depth as it is.
Through solve_pose, tracks first seen on a depth that leans across the image come out of a
baseline corrected, and correct the pose."""

import cv2
import numpy as np
import pytest
from test_pose_from_matches import walk  # noqa: F401 - the fixture

from vggt_ros.image_tracking import project
from vggt_ros.pose_from_matches import FirstFrame, PreviousFrame, solve_pnp, solve_pose
from vggt_ros.tracks import (
    MAX_LEAN,
    TRACK_BASELINE,
    TRACK_SPACING,
    Tracks,
    follow,
    straightened_depth,
)
from vggt_ros.training.data import PATCH_SIZE

K = np.array([[80.0, 0, 56], [0, 80, 42], [0, 0, 1]])
CELLS = (84 // TRACK_SPACING) * (112 // TRACK_SPACING)


def _pose(shift):
    pose = np.eye(4)
    pose[:3, 3] = shift
    return pose


def _project(points, pose, camera=K):
    return project(points @ pose[:3, :3].T + pose[:3, 3], camera)


def _texture(seed=0):
    noise = np.random.default_rng(seed).uniform(0, 255, (84, 112)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 1.5).clip(0, 255).astype(np.uint8)


def test_new_tracks_fill_the_empty_cells_once_lifted_to_their_pixels():
    depth = np.full((84, 112), 3.0, np.float32)
    depth[:, :7] = np.nan  # no depth in the first column of cells
    pose = _pose([0.2, -0.1, 0.3])
    tracks = Tracks.none().spawned(depth, pose, K)
    assert len(tracks) == CELLS - 84 // TRACK_SPACING
    np.testing.assert_allclose(_project(tracks.points, pose), tracks.pixels, atol=1e-9)
    np.testing.assert_allclose(tracks.origins, np.broadcast_to(-pose[:3, 3], (len(tracks), 3)))
    again = tracks.spawned(np.full((84, 112), 3.0, np.float32), pose, K)
    assert len(again) == CELLS  # only the empty column is filled
    cells = np.floor(again.pixels / TRACK_SPACING)
    assert len(np.unique(cells, axis=0)) == CELLS
    assert not len(tracks.spawned(depth, np.full((4, 4), np.nan), K))
    assert not len(tracks.spawned(depth, pose, np.full((3, 3), np.nan)))


def test_followed_tracks_land_where_their_content_went_and_end_where_it_leaves():
    image = _texture()
    moved = cv2.warpAffine(image, np.float32([[1, 0, 3.0], [0, 1, 1.0]]), (112, 84))
    tracks = Tracks.none().spawned(np.full((84, 112), 3.0, np.float32), np.eye(4), K)
    wrong = np.array([[0.9, 0, 0.4], [0, 1, 0], [-0.4, 0, 0.9]])  # a turn far off
    followed = follow(tracks, image, moved, [wrong, np.eye(3)], K, PATCH_SIZE)
    inside = ((tracks.pixels + [3, 1] <= [111 - 4, 83 - 4]) & (tracks.pixels >= 4)).all(1)
    assert len(followed) >= 0.9 * inside.sum()
    assert ((followed.pixels >= 0) & (followed.pixels <= [111, 83])).all()
    started = followed.pixels - [3, 1] - TRACK_SPACING // 2  # on the grid of cell centres
    off_grid = np.abs(started / TRACK_SPACING - np.round(started / TRACK_SPACING)) * TRACK_SPACING
    assert (off_grid < 0.1).all(1).mean() > 0.95  # a tenth of a pixel, bar a few at the edges
    assert len(followed) < len(tracks)  # the rightmost column left the image


def test_a_track_counts_once_the_camera_has_moved_far_enough_from_where_it_was_seen():
    tracks = Tracks.none().spawned(np.full((84, 112), 2.0, np.float32), np.eye(4), K)
    distance = np.linalg.norm(tracks.points, axis=1)
    assert not tracks.with_baseline(np.zeros(3)).any()
    centre = np.array([TRACK_BASELINE * 2.2, 0, 0])  # enough for the points near the centre
    counted = tracks.with_baseline(centre)
    np.testing.assert_array_equal(counted, TRACK_BASELINE * distance <= np.linalg.norm(centre))
    assert counted.any() and not counted.all()


def test_tracks_first_seen_on_a_leaning_depth_are_corrected_over_a_baseline(walk):  # noqa: F811
    """Tracks started on the first frame's depth, leaning across the image, are followed into
    frame 5; solving frame 5 against itself as the previous frame then sees each track over
    the baseline from the first camera, and corrects the points and, with them, the pose."""
    flow, _, first_depth, K, truth, image, first, depth = walk
    columns = (np.arange(first_depth.shape[1]) - K[0, 2]) / first_depth.shape[1]
    lean = np.exp(0.3 * columns).astype(np.float32)
    tracks = Tracks.none().spawned(first_depth * lean, np.eye(4), K)
    lost = np.full_like(flow, np.nan)  # no matches to the first frame: the tracks must do
    start = PreviousFrame(first, first_depth * lean, np.eye(4), tracks=tracks)
    _, _, followed = solve_pose(truth, lost, image, FirstFrame(first, first_depth), K, 14, start)
    assert not followed.with_baseline(np.zeros(3)).any() and len(followed) > 100
    at_frame_5 = PreviousFrame(image, depth * lean, truth, tracks=followed)
    pose, pnp_matches, refined = solve_pose(
        truth, lost, image, FirstFrame(first, first_depth), K, PATCH_SIZE, at_frame_5
    )
    counted = refined.with_baseline(np.linalg.inv(truth)[:3, 3])
    assert pnp_matches is not None and counted.sum() > 50

    def lean_of(points):  # the slope of their log depth error across the first image
        pixels = _project(points, np.eye(4), K).round().astype(int)
        inside = ((pixels >= 0) & (pixels < [112, 84])).all(1)
        error = np.log(points[inside, 2] / first_depth[pixels[inside, 1], pixels[inside, 0]])
        across = (pixels[inside, 0] - K[0, 2]) / 112
        return np.polyfit(across, error, 1)[0]

    assert lean_of(followed.points[counted]) == pytest.approx(0.3, abs=1e-3)
    assert abs(lean_of(refined.points[counted])) < 0.7 * 0.3
    assert (refined.sigmas[counted] <= followed.sigmas[counted]).all()
    assert np.median(refined.sigmas[counted]) < 0.9 * np.median(followed.sigmas[counted])
    pnp = solve_pnp(*pnp_matches, K, 1.0)
    translation_error = np.linalg.norm(pose[:3, 3] - truth[:3, 3])
    assert translation_error < 0.7 * np.linalg.norm(pnp[:3, 3] - truth[:3, 3])


@pytest.mark.parametrize('tracks', [Tracks.none()])
def test_nothing_to_follow_follows_nothing(tracks):
    image = _texture()
    assert not len(follow(tracks, image, image, [np.eye(3)], K, PATCH_SIZE))


def _leaning_depth(plane):
    """A wall 3 m away, its log depth leaning by `plane` (across, down: per image width)."""
    across = (np.arange(112) - K[0, 2]) / 112
    down = (np.arange(84) - K[1, 2]) / 112
    lean = plane[0] * across[None, :] + plane[1] * down[:, None]
    return np.full((84, 112), 3.0, np.float32) * np.exp(lean).astype(np.float32)


def _sure_tracks(sigma=0.01):
    """Tracks on the true wall, 3 m away, their depths sure."""
    tracks = Tracks.none().spawned(np.full((84, 112), 3.0, np.float32), np.eye(4), K)
    return Tracks(tracks.pixels, tracks.points, tracks.origins, np.full(len(tracks), sigma))


def test_sure_tracks_take_the_depths_lean_out_and_leave_its_scale():
    leaning = _leaning_depth((0.3, -0.2)) * 1.5  # leaning, and at another scale
    straight = straightened_depth(leaning, _sure_tracks(), np.eye(4), K)
    np.testing.assert_allclose(straight / straight.mean(), 1.0, atol=1e-4)
    assert straight.mean() == pytest.approx(leaning.mean(), rel=0.02)


def test_a_fifth_of_the_tracks_far_off_hardly_moves_the_lean():
    tracks = _sure_tracks()
    wrong = np.random.default_rng(0).random(len(tracks)) < 0.2
    points = tracks.points.copy()
    points[wrong] *= 1.5
    straight = straightened_depth(
        _leaning_depth((0.3, -0.2)),
        Tracks(tracks.pixels, points, tracks.origins, tracks.sigmas),
        np.eye(4),
        K,
    )
    assert np.ptp(np.log(straight)) < 0.1 * np.ptp(np.log(_leaning_depth((0.3, -0.2))))


def test_unsure_or_too_few_tracks_leave_the_depth_as_it_is():
    leaning = _leaning_depth((0.3, -0.2))
    unsure = _sure_tracks(sigma=0.1)
    assert straightened_depth(leaning, unsure, np.eye(4), K) is leaning
    few = _sure_tracks()
    few = few.kept(np.arange(len(few)) < 15, few.pixels[:15])
    assert straightened_depth(leaning, few, np.eye(4), K) is leaning
    assert straightened_depth(leaning, Tracks.none(), np.eye(4), K) is leaning


def test_tracks_bunched_in_one_spot_cannot_bend_the_far_edge_without_bound():
    """40 sure tracks within 3 px, their depths noisy: any slope fits them, and the plane is
    extrapolated across the whole image; the lean taken out stays within MAX_LEAN."""
    rng = np.random.default_rng(0)
    pixels = np.array([56.0, 42.0]) + rng.uniform(-1.5, 1.5, (40, 2))
    rays = np.column_stack([(pixels - K[:2, 2]) / np.diag(K)[:2], np.ones(40)])
    points = rays * 2.0 * np.exp(rng.normal(0, 0.3, 40))[:, None]
    bunched = Tracks(pixels, points, np.zeros_like(points), np.full(40, 0.01))
    flat = np.full((84, 112), 2.0, np.float32)
    straight = straightened_depth(flat, bunched, np.eye(4), K)
    assert np.isfinite(straight).all()
    assert np.ptp(np.log(straight)) <= MAX_LEAN * (1 + 84 / 112) + 1e-6
