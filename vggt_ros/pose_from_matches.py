"""Camera poses from matches to the session's first and previous frames and their depth (no ROS).

The flow head says where the point at each patch centre of a frame is in the session's first
frame, about 1.4 px off at 112 px; Lucas-Kanade in the two images, started there, makes most
of them sub-pixel (refine_matches), and the first frame's predicted depth lifts them to 3-D
(lift). The first frame's matches thin out as the camera leaves it (a turn in place keeps
half of them by its fifth frame, a tenth by its twelfth); Lucas-Kanade from the previous
frame, whose depth and pose are known by then, tracks a denser grid that does not
(tracked_points), and points followed since they were first seen (tracks.Tracks) span the
baseline over which the depth's errors show. Solvers:

- solve_pnp: the whole pose by PnP (OpenCV, RANSAC, then Levenberg-Marquardt on the inliers).
- solve_translation: the camera's rotation given (the camera head's), the translation that
  makes the points project onto their pixels; linear, robustly weighted.
- solve_pose: what the Reconstructor uses (pose_source: matches): PnP on the refined and the
  tracked matches and the tracks together where there are enough and it agrees with the head
  or with the previous frame's motion, refined with the points' depths free
  (pose_refinement.refine_pose), else the head's rotation and a solved translation.
- depth_scale: what puts a frame's predicted depth into the first frame's units, from the
  matches PnP solved from: the model's depth of later frames wanders from them by 2.5-18% over
  a session, while PnP's translations are in them.
- level_depth: takes out the lean of the model's depth across the image that comes with the
  content's motion (image_step), before depth_scale hands the scale on: chained from frame to
  frame, the lean walks the depth scale along a turn.

Results: docs/training-experiments.md, "Poses from matches".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from vggt_ros.image_tracking import lucas_kanade, rays, turned_pixels
from vggt_ros.pose_refinement import DEPTH_SIGMA, refine_pose
from vggt_ros.tracks import Tracks, follow

MIN_MATCHES = 6  # EPnP's minimum, and the fewest inliers a pose is accepted from
RANSAC_PIXELS = 3.0  # about a quarter of a patch at the small model's 112 px
ROBUST_ITERATIONS = 10
HUBER_MEDIANS = 1.5  # residuals beyond this many median residuals weigh less (Huber)
# PnP needs this many refined matches on depth (chosen on validation worlds 1,000,010-11)
MIN_REFINED = 16
HEAD_AGREEMENT = 10.0  # [deg] PnP's rotation this close to the head's (a session's are 2-5° apart)
REFINED_RANSAC_PIXELS = 1.0  # for refined matches, 0.1-0.2 px off (0.5 px: level on validation)
TRACK_GRID = 2  # points tracked from the previous frame per patch side (every 7 px at 14 px)
# Beyond this factor either way a frame keeps the model's own depth scale. The model's depth
# drifts in a long session and now and then gets there (4 times in 18 validation scenes, each
# after a steady ramp); the model's scale then measured better than the last frame's carried on
# (docs/training-experiments.md, "Where the turns' scale goes").
MAX_DEPTH_SCALE = 1.5
# A step across the image beyond this fraction of its width (a fast turn is 0.04) counts as this
# when the depth is levelled (level_depth): a wrong pose does not tilt the depth without bound.
MAX_TILT_STEP = 0.06


@dataclass(frozen=True)
class FirstFrame:
    """What poses from matches need of a session's first frame."""

    image: np.ndarray  # HxW uint8 grey (see grey)
    depth: np.ndarray  # HxW predicted depth


@dataclass(frozen=True)
class PreviousFrame:
    """What tracking needs of the session's previous frame, once its pose is solved."""

    image: np.ndarray  # HxW uint8 grey (see grey)
    depth: np.ndarray  # HxW, in the first frame's units where PnP gave its pose
    pose: np.ndarray  # camera_from_first, 4x4
    turn: np.ndarray = field(default_factory=lambda: np.eye(3))  # its step's rotation
    tracks: Tracks = field(default_factory=Tracks.none)  # followed into it (tracks.follow)

    def followed_by(
        self,
        image: np.ndarray,
        depth: np.ndarray,
        pose: np.ndarray,
        tracks: Tracks | None = None,
        K: np.ndarray | None = None,
    ) -> PreviousFrame:
        """The next frame as the previous one of the frame after it, with the `tracks` followed
        into it and new ones where it has none (given K); its turn is NaN, unknown, next to a
        model's non-finite pose."""
        tracks = Tracks.none() if tracks is None or K is None else tracks.spawned(depth, pose, K)
        if not np.isfinite([pose[:3, :3], self.pose[:3, :3]]).all():
            return PreviousFrame(image, depth, pose, np.full((3, 3), np.nan), tracks)
        return PreviousFrame(image, depth, pose, pose[:3, :3] @ self.pose[:3, :3].T, tracks)

    @property
    def next_rotation(self) -> np.ndarray:
        """camera_from_first rotation of the next frame if it turns as this one did."""
        return self.turn @ self.pose[:3, :3]


def patch_centres(height: int, width: int, patch_size: int) -> np.ndarray:
    """[P, 2] pixel (u, v) of every patch centre, row by row as the model's tokens."""
    v, u = np.meshgrid(
        np.arange(height // patch_size) * patch_size + patch_size // 2,
        np.arange(width // patch_size) * patch_size + patch_size // 2,
        indexing='ij',
    )
    return np.stack([u.ravel(), v.ravel()], -1).astype(np.float64)


def head_matches(
    flow: np.ndarray, shape: tuple[int, int], patch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The flow head's matches: [N, 2] patch centres of a frame of `shape` and [N, 2] where the
    head puts them in the first frame (flow [P, 2] in patches); non-finite ones left out."""
    here = patch_centres(*shape, patch_size)
    there = here + patch_size * np.asarray(flow, np.float64)
    finite = np.isfinite(there).all(1)
    return here[finite], there[finite]


def refine_matches(
    image: np.ndarray,
    first_image: np.ndarray,
    here: np.ndarray,
    there: np.ndarray,
    patch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Matches (here, there: [N, 2] pixels) made sub-pixel by pyramidal Lucas-Kanade (OpenCV)
    from this frame's grey image to the first frame's, each started at its guess; only the kept.

    Textureless and occluded ones are dropped (image_tracking.lucas_kanade). The flow head
    alone is about 1.4 px off at 112 px, the refined matches about 0.1 px on textured scenes
    (docs/training-experiments.md).
    """
    tracked, kept = lucas_kanade(image, first_image, here, there, patch_size)
    return here[kept], tracked[kept]


def grey(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW uint8 grey, what refine_matches tracks in."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def lift(
    here: np.ndarray, there: np.ndarray, first_depth: np.ndarray, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The matches that land on valid first-frame depth: their [N, 2] pixels in this frame and
    [N, 3] points in the first camera's frame, lifted with `first_depth` through K."""
    height, width = first_depth.shape
    inside = (there >= 0).all(1) & (there[:, 0] <= width - 1) & (there[:, 1] <= height - 1)
    here, there = here[inside], there[inside].astype(np.float32)
    if not len(there):  # cv2.remap refuses an empty map
        return np.empty((0, 2)), np.empty((0, 3))
    depth = cv2.remap(
        first_depth.astype(np.float32), there[:, :1], there[:, 1:], cv2.INTER_LINEAR
    ).reshape(-1)
    valid = np.isfinite(depth) & (depth > 0)
    return here[valid], rays(there[valid].astype(np.float64), K) * depth[valid, None]


def matched_points(
    flow: np.ndarray,
    first_depth: np.ndarray,
    K: np.ndarray,
    patch_size: int,
    usable: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The patch centres' flow-head matches (those `usable` [P]) lifted (see lift)."""
    if usable is not None:
        flow = np.where(np.asarray(usable)[:, None], flow, np.nan)
    return lift(*head_matches(flow, first_depth.shape, patch_size), first_depth, K)


def refined_points(
    flow: np.ndarray, image: np.ndarray, first: FirstFrame, K: np.ndarray, patch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The flow head's matches of a frame (grey `image`) refined in the images (refine_matches)
    and lifted (lift): [N, 2] pixels and [N, 3] points in the first camera's frame."""
    here, there = head_matches(flow, image.shape, patch_size)
    return lift(*refine_matches(image, first.image, here, there, patch_size), first.depth, K)


def tracked_points(
    image: np.ndarray,
    previous: PreviousFrame,
    predicted: np.ndarray,
    K: np.ndarray,
    patch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A grid of this frame's pixels (TRACK_GRID per patch side) tracked into the previous frame
    (refine_matches) and lifted with its depth: [N, 2] pixels and [N, 3] points in the first
    camera's frame.

    Each point is started where the camera's rotation alone would put it (the parallax of one
    frame's step is a pixel or so), trying the `predicted` rotation (camera_from_first), the
    previous frame's turn again and none; the guess that keeps the most matches wins, so that
    one frame's wrong head costs nothing."""
    grid = patch_centres(*image.shape, patch_size // TRACK_GRID)
    here, there = np.empty((0, 2)), np.empty((0, 2))
    for rotation in (predicted[:3, :3], previous.next_rotation, previous.pose[:3, :3]):
        if not np.isfinite(rotation).all():  # an unknown turn
            continue
        guess, front = turned_pixels(grid, previous.pose[:3, :3] @ rotation.T, K)
        matches = refine_matches(image, previous.image, grid[front], guess[front], patch_size)
        if len(matches[0]) > len(here):
            here, there = matches
    pixels, points = lift(here, there, previous.depth, K)
    first_from_previous = np.linalg.inv(previous.pose)
    return pixels, points @ first_from_previous[:3, :3].T + first_from_previous[:3, 3]


def solve_translation(
    rotation: np.ndarray, pixels: np.ndarray, points: np.ndarray, K: np.ndarray
) -> np.ndarray | None:
    """t such that the camera [rotation | t] (camera_from_first) sees `points` [N, 3] at
    `pixels` [N, 2]; None with fewer than MIN_MATCHES.

    Each match asks that the ray m through its pixel be parallel to R X + t, i.e. m x t =
    -m x R X: three linear equations in t, divided by the point's distance so that each weighs
    as its angular error. Iteratively reweighted (Huber) so that wrong matches count little. A
    non-finite rotation or K (a model's NaN) gives None too, never an exception."""
    if len(points) < MIN_MATCHES or not (np.isfinite(rotation).all() and np.isfinite(K).all()):
        return None
    directions = rays(pixels, K)
    skew = np.zeros((len(directions), 3, 3))
    x, y, z = directions.T
    skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -z, y, -x
    skew -= skew.transpose(0, 2, 1)
    rotated = points @ rotation.T
    scale = 1 / np.linalg.norm(points, axis=1)[:, None, None]
    a = (skew * scale).reshape(-1, 3)
    b = -(skew @ rotated[:, :, None] * scale).reshape(-1)
    weights = np.ones(len(points))
    for _ in range(ROBUST_ITERATIONS):
        row_weights = np.repeat(np.sqrt(weights), 3)
        t = np.linalg.lstsq(a * row_weights[:, None], b * row_weights, rcond=None)[0]
        residuals = np.linalg.norm((a @ t - b).reshape(-1, 3), axis=1)
        limit = HUBER_MEDIANS * np.median(residuals) + 1e-12
        weights = np.minimum(1.0, limit / np.maximum(residuals, 1e-12))
    return t if np.isfinite(t).all() else None


def solve_pnp(
    pixels: np.ndarray,
    points: np.ndarray,
    K: np.ndarray,
    ransac_pixels: float = RANSAC_PIXELS,
) -> np.ndarray | None:
    """camera_from_first (4x4) of a frame that sees the first camera's `points` [N, 3] at
    `pixels` [N, 2]: PnP (RANSAC with inliers within `ransac_pixels`, then Levenberg-Marquardt
    on the inliers); None with fewer than MIN_MATCHES points or inliers. The translation is in
    the units of the points."""
    if len(points) < MIN_MATCHES:
        return None
    found, rvec, tvec, inliers = cv2.solvePnPRansac(
        points, pixels, K, None, reprojectionError=ransac_pixels, flags=cv2.SOLVEPNP_EPNP
    )
    if not found or inliers is None or len(inliers) < MIN_MATCHES:
        return None
    inliers = inliers[:, 0]
    _, rvec, tvec = cv2.solvePnP(
        points[inliers], pixels[inliers], K, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE
    )
    if not (np.isfinite(rvec).all() and np.isfinite(tvec).all()):
        return None
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = cv2.Rodrigues(rvec)[0], tvec[:, 0]
    return pose


class SolvedPose(NamedTuple):
    """A frame's pose from matches (solve_pose)."""

    pose: np.ndarray  # camera_from_first, 4x4
    # The refined and tracked matches (pixels [N, 2], first-frame points [N, 3]) PnP solved it
    # from; None where it fell back to the predicted rotation.
    pnp_matches: tuple[np.ndarray, np.ndarray] | None
    # The previous frame's tracks followed into this one, their points refined with the pose.
    tracks: Tracks = Tracks.none()


def solve_pose(
    predicted: np.ndarray,
    flow: np.ndarray,
    image: np.ndarray,
    first: FirstFrame,
    K: np.ndarray,
    patch_size: int,
    previous: PreviousFrame | None = None,
) -> SolvedPose:
    """camera_from_first of a frame (grey `image`) from its flow head's matches to the
    session's first frame, its tracked matches to the `previous` one and the previous frame's
    tracks followed into it; the matches where PnP gave it, and the tracks.

    By PnP on the refined (refine_matches) and the tracked (tracked_points) matches and the
    tracks seen over a baseline (tracks.Tracks.with_baseline) where at least MIN_REFINED of
    them land on depth and the result is within HEAD_AGREEMENT of the `predicted` rotation
    (camera_from_first: the camera head's, corrected by the session's last PnP pose) or of the
    previous frame's turn continued: fewer matches leave PnP free to trade rotation for
    translation. PnP's pose is then refined with the points' depths free along their rays
    (pose_refinement.refine_pose), and the tracks keep their refined points. Otherwise the
    predicted rotation, with the translation solved from the flow head's unrefined matches
    (chosen on validation worlds 1,000,010-11 over the refined ones); with too few of those,
    the predicted pose.
    """
    pixels, points = refined_points(flow, image, first, K, patch_size)
    # (pixels, first-frame points, the centres they were lifted from, their log depths' spread)
    groups = [(pixels, points, np.zeros_like(points), np.full(len(points), DEPTH_SIGMA))]
    expected = [predicted[:3, :3]]
    tracks, far = Tracks.none(), np.zeros(0, bool)
    if previous is not None and all(np.isfinite(a).all() for a in (predicted, K, previous.pose)):
        centre = np.linalg.inv(previous.pose)[:3, 3]
        pixels, points = tracked_points(image, previous, predicted, K, patch_size)
        spreads = np.full(len(points), DEPTH_SIGMA)
        groups.append((pixels, points, np.broadcast_to(centre, points.shape), spreads))
        turns = [predicted[:3, :3] @ previous.pose[:3, :3].T, previous.turn, np.eye(3)]
        tracks = follow(previous.tracks, previous.image, image, turns, K, patch_size)
        far = tracks.with_baseline(centre)
        groups.append(
            (tracks.pixels[far], tracks.points[far], tracks.origins[far], tracks.sigmas[far])
        )
        expected.append(previous.next_rotation)
    pixels, points, origins, sigmas = (np.concatenate(parts) for parts in zip(*groups, strict=True))
    enough = len(pixels) >= MIN_REFINED
    pose = solve_pnp(pixels, points, K, REFINED_RANSAC_PIXELS) if enough else None
    if pose is not None and np.isfinite(predicted).all():  # a model's NaN: no check, no PnP
        if any(_degrees_apart(pose[:3, :3], rotation) <= HEAD_AGREEMENT for rotation in expected):
            refined = refine_pose(pose, pixels, points, origins, sigmas, K)
            followed = len(points) - far.sum()  # the tracks come last
            tracks = tracks.with_points(far, refined.points[followed:], refined.sigmas[followed:])
            return SolvedPose(refined.pose, (pixels, points), tracks)
    pose = predicted.copy()
    pixels, points = matched_points(flow, first.depth, K, patch_size)
    translation = solve_translation(pose[:3, :3], pixels, points, K)
    if translation is not None:
        pose[:3, 3] = translation
    return SolvedPose(pose, None, tracks)


def depth_scale(
    pose: np.ndarray, pixels: np.ndarray, points: np.ndarray, depth: np.ndarray
) -> float | None:
    """The factor that puts a frame's `depth` (HxW) into the first frame's units: the median
    ratio, over the matches (`pixels` [N, 2] at integer pixels, first-frame `points`
    [N, 3]), of each point's depth seen from the frame's `pose` (camera_from_first) to the
    frame's depth at its pixel; None with fewer than MIN_MATCHES usable matches, or beyond
    MAX_DEPTH_SCALE either way."""
    seen = points @ pose[2, :3] + pose[2, 3]
    column, row = np.round(pixels).astype(int).T
    predicted = depth[row, column]
    usable = np.isfinite(seen) & (seen > 0) & np.isfinite(predicted) & (predicted > 0)
    if usable.sum() < MIN_MATCHES:
        return None
    scale = float(np.median(seen[usable] / predicted[usable]))
    return scale if 1 / MAX_DEPTH_SCALE <= scale <= MAX_DEPTH_SCALE else None


def image_step(
    previous_pose: np.ndarray, pixels: np.ndarray, points: np.ndarray, K: np.ndarray, width: int
) -> float | None:
    """How far the matched content moved across an image `width` pixels wide since the previous
    frame, as a signed fraction of the width (+: to the right): the median, over the matches
    (`pixels` [N, 2] here, first-frame `points` [N, 3]), of a match's column minus the one the
    previous frame's pose (camera_from_first) sees its point at; None with fewer than
    MIN_MATCHES points in front of it, or from a non-finite pose or K (a model's NaN)."""
    seen = points @ previous_pose[:3, :3].T + previous_pose[:3, 3]
    front = seen[:, 2] > 0
    if front.sum() < MIN_MATCHES:
        return None
    column = seen[front, 0] / seen[front, 2] * K[0, 0] + K[0, 2]
    step = float(np.median(pixels[front, 0] - column)) / width
    return step if np.isfinite(step) else None


def level_depth(depth: np.ndarray, step: float, tilt: float, K: np.ndarray) -> np.ndarray:
    """`depth` (HxW) with the lean a model of `tilt` (FlowHead.depth_tilt) gives it after an
    image `step` (image_step, clipped at MAX_TILT_STEP) taken out: the log depth of a column x
    image widths right of the principal point less tilt * step * x."""
    width = depth.shape[1]
    offsets = (np.arange(width) - K[0, 2]) / width
    lean = tilt * float(np.clip(step, -MAX_TILT_STEP, MAX_TILT_STEP)) * offsets
    return depth * np.exp(-lean).astype(np.float32)


def _degrees_apart(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(Rotation.from_matrix(a @ b.T).magnitude()))
