"""Points followed from frame to frame since they were first seen, and the depth's lean that
they find (no ROS).

A grid tracked from the previous frame alone (pose_from_matches.tracked_points) gives PnP a
baseline of one frame's step, over which the model's depth errors cannot be seen. A track keeps
its point from the frame it was first seen in and is followed, frame by frame, for as long as
its content stays in view; once the camera has moved TRACK_BASELINE of the point's depth from
where it was seen, the pair spans enough parallax for pose_refinement to correct the point's
depth, and the point, refined, stays corrected for the frames after. The tracks whose depths
have become sure then say how the frame's depth leans across and down the image, and
straightened_depth takes that out (docs/training-experiments.md, "Tracks").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vggt_ros.image_tracking import lucas_kanade, rays, turned_pixels
from vggt_ros.pose_refinement import DEPTH_SIGMA

# The camera must have moved this fraction of a point's depth since the point was first seen
# for it to take part (chosen on validation worlds 1,000,010-15: 0.05 let drifting tracks
# into the turns, which have no such baseline).
TRACK_BASELINE = 0.1
TRACK_SPACING = 7  # [px] one track per cell of this size (two per patch side at 14 px)
# Tracks whose log depth is this sure (from the prior's 0.1) correct the frame's depth's lean
# (straightened_depth; chosen on validation worlds 1,000,010-15 over 0.07).
SURE_SIGMA = 0.05
MIN_SURE = 16
LEAN_ITERATIONS = 4
# The most lean a plane may take out, in log depth per image width (a factor e across the image):
# sure tracks bunched in one spot fit any slope, and a plane extrapolated from them would not be
# bounded at the far edge.
MAX_LEAN = 1.0


@dataclass(frozen=True)
class Tracks:
    """Points being followed: where each was last seen, and what it was first seen as."""

    pixels: np.ndarray  # [N, 2] in the frame they were last followed into
    points: np.ndarray  # [N, 3] in the first camera's frame
    origins: np.ndarray  # [N, 3] the camera centres they were first seen from
    sigmas: np.ndarray  # [N] their log depths' spread (pose_refinement)

    @classmethod
    def none(cls) -> Tracks:
        return cls(np.empty((0, 2)), np.empty((0, 3)), np.empty((0, 3)), np.empty(0))

    def __len__(self) -> int:
        return len(self.pixels)

    def kept(self, mask: np.ndarray, pixels: np.ndarray) -> Tracks:
        """The tracks of `mask`, now seen at `pixels` [mask.sum(), 2]."""
        return Tracks(pixels, self.points[mask], self.origins[mask], self.sigmas[mask])

    def with_points(self, mask: np.ndarray, points: np.ndarray, sigmas: np.ndarray) -> Tracks:
        """The same tracks, those of `mask` with their points and spreads refined."""
        moved, spread = self.points.copy(), self.sigmas.copy()
        moved[mask], spread[mask] = points, sigmas
        return Tracks(self.pixels, moved, self.origins, spread)

    def with_baseline(self, centre: np.ndarray) -> np.ndarray:
        """[N] mask of the tracks a camera at `centre` sees with TRACK_BASELINE or more."""
        baseline = np.linalg.norm(self.origins - centre, axis=1)
        return baseline >= TRACK_BASELINE * np.linalg.norm(self.points - self.origins, axis=1)

    def spawned(self, depth: np.ndarray, pose: np.ndarray, K: np.ndarray) -> Tracks:
        """These tracks and new ones at the centre of every TRACK_SPACING cell of a frame
        (`depth` HxW in the first frame's units, `pose` camera_from_first) that holds none,
        lifted with its depth; none at all after a non-finite pose or K (a model's NaN)."""
        if not (np.isfinite(pose).all() and np.isfinite(K).all()):
            return Tracks.none()
        rows, columns = np.array(depth.shape) // TRACK_SPACING
        taken = np.zeros((rows, columns), bool)
        cells = np.floor(self.pixels / TRACK_SPACING).astype(int)
        inside = ((cells >= 0) & (cells < [columns, rows])).all(1)
        taken[cells[inside, 1], cells[inside, 0]] = True
        row, column = np.nonzero(~taken)
        pixels = np.column_stack([column, row]) * TRACK_SPACING + TRACK_SPACING // 2
        seen = depth[pixels[:, 1], pixels[:, 0]]
        valid = np.isfinite(seen) & (seen > 0)
        pixels, seen = pixels[valid].astype(np.float64), seen[valid]
        first_from_camera = np.linalg.inv(pose)
        points = rays(pixels, K) * seen[:, None] @ first_from_camera[:3, :3].T
        points += first_from_camera[:3, 3]
        origins = np.broadcast_to(first_from_camera[:3, 3], points.shape)
        return Tracks(
            np.concatenate([self.pixels, pixels]),
            np.concatenate([self.points, points]),
            np.concatenate([self.origins, origins]),
            np.concatenate([self.sigmas, np.full(len(points), DEPTH_SIGMA)]),
        )


def follow(
    tracks: Tracks,
    previous_image: np.ndarray,
    image: np.ndarray,
    turns: list[np.ndarray],
    K: np.ndarray,
    patch_size: int,
) -> Tracks:
    """The tracks followed from grey `previous_image` into grey `image` by Lucas-Kanade, each
    started where each of `turns` (3x3, this camera from the previous one) alone would put it;
    the turn that keeps the most wins. Tracks lost or leaving the image end."""
    height, width = image.shape
    best = Tracks.none()
    for turn in turns:
        if not np.isfinite(turn).all():  # an unknown turn
            continue
        guess, front = turned_pixels(tracks.pixels, turn, K)
        front &= ((guess >= 0) & (guess <= [width - 1, height - 1])).all(1)
        landed, kept = lucas_kanade(
            previous_image, image, tracks.pixels[front], guess[front], patch_size
        )
        kept &= ((landed >= 0) & (landed <= [width - 1, height - 1])).all(1)
        if kept.sum() > len(best):
            mask = np.zeros(len(tracks), bool)
            mask[np.flatnonzero(front)[kept]] = True
            best = tracks.kept(mask, landed[kept])
    return best


def straightened_depth(
    depth: np.ndarray, tracks: Tracks, pose: np.ndarray, K: np.ndarray
) -> np.ndarray:
    """`depth` (HxW) with the lean across and down the image that the sure tracks (spread under
    SURE_SIGMA: their depths corrected over a baseline) find in it taken out: a plane in log
    depth, fitted robustly to the log of each track's depth seen from `pose` (camera_from_first)
    over the frame's depth at its pixel. Its offset, the frame's scale, is left to
    pose_from_matches.depth_scale; with fewer than MIN_SURE sure tracks, `depth` as it is."""
    sure = tracks.sigmas < SURE_SIGMA
    pixels = np.round(tracks.pixels[sure]).astype(int)
    seen = tracks.points[sure] @ pose[2, :3] + pose[2, 3]
    predicted = depth[pixels[:, 1], pixels[:, 0]]
    usable = np.isfinite(seen) & (seen > 0) & np.isfinite(predicted) & (predicted > 0)
    if usable.sum() < MIN_SURE:
        return depth
    width = depth.shape[1]
    offsets = (pixels[usable] - K[:2, 2]) / width  # across and down, in image widths
    design = np.column_stack([np.ones(len(offsets)), offsets])
    ratios = np.log(seen[usable] / predicted[usable])
    weights = np.ones(len(ratios))
    for _ in range(LEAN_ITERATIONS):  # Huber: tracks far off the plane weigh less
        root = np.sqrt(weights)
        plane = np.linalg.lstsq(design * root[:, None], ratios * root, rcond=None)[0]
        residuals = np.abs(ratios - design @ plane)
        weights = np.minimum(1.0, 1.5 * np.median(residuals) / np.maximum(residuals, 1e-12))
    if not np.isfinite(plane).all():
        return depth
    slope_across, slope_down = np.clip(plane[1:], -MAX_LEAN, MAX_LEAN)
    across = (np.arange(width) - K[0, 2]) / width
    down = (np.arange(depth.shape[0]) - K[1, 2]) / width
    lean = slope_across * across[None, :] + slope_down * down[:, None]
    return depth * np.exp(lean).astype(np.float32)
