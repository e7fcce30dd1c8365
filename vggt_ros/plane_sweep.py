"""The model's depth corrected by the images: a sweep over the session's recent frames (no ROS).

The small model reads a room's layout but blurs what stands in it, and now and then misjudges a
whole region (a wall read as near as the box before it). Once poses from matches have placed the
session's recent frames, those frames see the same surfaces from a baseline: sweeping each
pixel's depth through a range and warping the recent frames onto the frame at each depth, the
images agree (zero-mean normalised cross-correlation over a window) where the depth is right.
Pixel by pixel that measurement is noisy, region by region it is sure, so it does not replace
the model's depth: where it is clear (a good match, one clear minimum, enough texture, enough
parallax for a step to show) it gives the log-ratio to the model's depth, and that ratio,
smoothed over the frame, corrects the model's depth everywhere. A turn in place has little
parallax for the rotation between its frames, so there the small errors of the poses' rotation
would decide the depth: frames turned by far more than their parallax are not swept against.

Results: vggt_ros/weights/README.md, "Depth from the recent frames".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

# The recent frames swept against: those nearest these baselines, in units of the frame's median
# depth (a short one that resolves fine steps, a long one that resolves depth, one between).
BASELINES = (0.05, 0.10, 0.15)
BASELINE_TOLERANCE = 1.6  # a frame counts for a baseline within this factor of it
RECENT_FRAMES = 12  # kept per session: a slow walk moves 0.15 of the depth in about 10
STEPS = 41  # depths swept per pixel
LOG_SPAN = 1.4  # about the frame's median depth, either way: a factor of 4
WINDOW = 7  # [px] the correlation window at the tracked size (224 px for the small model)
MIN_CORRELATION = 0.6  # the best depth's correlation
MIN_UNIQUENESS = 0.05  # its cost below the best one more than two steps away
MIN_TEXTURE = 4.0  # grey variance in the window: flat regions match at every depth
MIN_STEP_PIXELS = 0.5  # how far one step moves the pixel in the frame of the shortest baseline
# A recent frame turned from the frame by more than this times its parallax (baseline over depth,
# both in radians) is not swept against: a pose error of a fraction of the turn moves the swept
# depth by this many times that fraction. The validation worlds' orbits and walks sweep at
# 0.3-2.2 (5th-95th percentile), their turns at 5-18 (docs/training-experiments.md).
MAX_ROTATION_PER_PARALLAX = 3.0
MIN_CONFIDENT = 0.05  # of the pixels, for a correction at all
SMOOTHING = 10.0  # [px] Gaussian sigma of the correction field
MAX_CORRECTION = 0.7  # |log| of one pixel's ratio: a wrong match moves the field by at most this


@dataclass(frozen=True)
class RecentFrame:
    """A frame of the session as the sweep needs it once its pose is known."""

    image: np.ndarray  # HxW uint8 grey, at the tracked size
    pose: np.ndarray  # camera_from_first, 4x4


def corrected_depth(
    image: np.ndarray,
    depth: np.ndarray,
    pose: np.ndarray,
    K: np.ndarray,
    recent: Sequence[RecentFrame],
) -> np.ndarray:
    """The frame's `depth` (HxW, in the units of `pose`'s translation) corrected where the
    `recent` frames (oldest first) show it; as it was where they do not."""
    if not np.isfinite(pose).all():
        return depth
    sources = _sources(recent, pose, float(np.median(depth)))
    if not sources:
        return depth
    swept, confident = swept_depth(image, depth, pose, K, sources)
    if confident.mean() < MIN_CONFIDENT:
        return depth
    ratio = np.clip(np.log(swept / depth), -MAX_CORRECTION, MAX_CORRECTION)
    weight = cv2.GaussianBlur(confident.astype(np.float32), (0, 0), SMOOTHING)
    field = cv2.GaussianBlur(np.where(confident, ratio, 0).astype(np.float32), (0, 0), SMOOTHING)
    field = np.where(weight > 1e-3, field / np.maximum(weight, 1e-3), 0)
    return (depth * np.exp(field)).astype(depth.dtype)


def _sources(recent: Sequence[RecentFrame], pose: np.ndarray, depth: float) -> list[RecentFrame]:
    """The `recent` frames nearest BASELINES from the frame at `pose` with median `depth`,
    shortest first; none for a baseline no frame is within BASELINE_TOLERANCE of, and none
    turned by more than MAX_ROTATION_PER_PARALLAX times its parallax."""
    if not recent:
        return []
    centre = np.linalg.inv(pose)[:3, 3]
    apart = np.array([np.linalg.norm(np.linalg.inv(f.pose)[:3, 3] - centre) for f in recent])
    parallax = np.maximum(apart / depth, 1e-9)
    turned = Rotation.from_matrix([f.pose[:3, :3] @ pose[:3, :3].T for f in recent]).magnitude()
    log_off = np.abs(np.log(parallax[:, None] / np.array(BASELINES)))
    log_off[turned > MAX_ROTATION_PER_PARALLAX * parallax] = np.inf
    chosen: list[int] = []
    for column in log_off.T:
        nearest = int(np.argmin(column))
        if column[nearest] < np.log(BASELINE_TOLERANCE) and nearest not in chosen:
            chosen.append(nearest)
    return [recent[index] for index in chosen]


def swept_depth(
    image: np.ndarray,
    depth: np.ndarray,
    pose: np.ndarray,
    K: np.ndarray,
    sources: Sequence[RecentFrame],
) -> tuple[np.ndarray, np.ndarray]:
    """(HxW depth of the best match per pixel, HxW where it is clear) over depths about the
    median of `depth`, the cost being 1 - the correlation averaged over `sources`."""
    height, width = image.shape
    reference = image.astype(np.float32)
    mean, variance = _window_moments(reference)
    log_depths = np.log(np.median(depth)) + np.linspace(-LOG_SPAN, LOG_SPAN, STEPS)
    source_from_frame = [source.pose @ np.linalg.inv(pose) for source in sources]
    images = [source.image.astype(np.float32) for source in sources]
    ones = np.ones_like(reference)
    costs = np.empty((STEPS, height, width), np.float32)
    for step, log_depth in enumerate(log_depths):
        total = np.zeros((height, width), np.float32)
        seen = np.zeros((height, width), np.float32)
        for source, transform in zip(images, source_from_frame, strict=True):
            homography = _plane_homography(transform, K, float(np.exp(log_depth)))
            warped = _warp(source, homography)
            inside = _box(_warp(ones, homography)) > 0.99
            cost = _correlation_cost(reference, mean, variance, warped)
            total += np.where(inside, cost, 0)
            seen += inside
        costs[step] = np.where(seen > 0, total / np.maximum(seen, 1), np.inf)
    best = np.argmin(costs, 0)
    cost = np.take_along_axis(costs, best[None], 0)[0]
    far_from_best = np.abs(np.arange(STEPS)[:, None, None] - best) > 2
    runner_up = np.where(far_from_best, costs, np.inf).min(0)
    with np.errstate(invalid='ignore'):  # inf - inf where no source sees the pixel
        uniqueness = runner_up - cost
    confident = (
        np.isfinite(cost)
        & (cost < 1 - MIN_CORRELATION)
        & (uniqueness > MIN_UNIQUENESS)
        & (best > 0)
        & (best < STEPS - 1)
        & (variance > MIN_TEXTURE)
        & (_step_pixels(image.shape, log_depths, source_from_frame[0], K) >= MIN_STEP_PIXELS)
    )
    swept = np.exp(log_depths[best] + _sub_step(costs, best) * (log_depths[1] - log_depths[0]))
    return swept.astype(np.float32), confident


def _window_moments(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = _box(image)
    return mean, _box(image * image) - mean * mean


def _box(image: np.ndarray) -> np.ndarray:
    return cv2.boxFilter(image, -1, (WINDOW, WINDOW), borderType=cv2.BORDER_REFLECT)


def _plane_homography(transform: np.ndarray, K: np.ndarray, depth: float) -> np.ndarray:
    """Pixel of the frame -> pixel of the camera `transform` leads to, for points at `depth`
    (a plane facing the frame's camera)."""
    facing = np.outer(transform[:3, 3], [0.0, 0.0, 1.0 / depth])
    return K @ (transform[:3, :3] + facing) @ np.linalg.inv(K)


def _warp(image: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """`image` sampled where `homography` takes each pixel of the frame (0 outside it)."""
    height, width = image.shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpPerspective(image, homography, (width, height), flags=flags)


def _correlation_cost(
    reference: np.ndarray, mean: np.ndarray, variance: np.ndarray, warped: np.ndarray
) -> np.ndarray:
    """1 - the windowed zero-mean normalised correlation of the frame with `warped`."""
    warped_mean, warped_variance = _window_moments(warped)
    covariance = _box(reference * warped) - mean * warped_mean
    return 1 - covariance / np.sqrt(np.maximum(variance * warped_variance, 1e-6))


def _step_pixels(
    shape: tuple[int, int], log_depths: np.ndarray, transform: np.ndarray, K: np.ndarray
) -> np.ndarray:
    """How far one step of the sweep moves each pixel in the frame `transform` leads to."""
    v, u = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    pixels = np.stack([u, v], -1).reshape(-1, 1, 2)
    ends = [
        cv2.perspectiveTransform(pixels, _plane_homography(transform, K, np.exp(log_depth)))
        for log_depth in (log_depths[0], log_depths[-1])
    ]
    travel = np.linalg.norm(ends[1] - ends[0], axis=-1).reshape(shape)
    return np.where(np.isfinite(travel), travel, 0) / (len(log_depths) - 1)


def _sub_step(costs: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Where between steps the minimum lies (a parabola through best and its neighbours)."""
    steps = len(costs)
    before = np.take_along_axis(costs, np.clip(best - 1, 0, steps - 1)[None], 0)[0]
    at = np.take_along_axis(costs, best[None], 0)[0]
    after = np.take_along_axis(costs, np.clip(best + 1, 0, steps - 1)[None], 0)[0]
    with np.errstate(invalid='ignore', divide='ignore'):
        curvature = before - 2 * at + after
        offset = 0.5 * (before - after) / curvature
    usable = np.isfinite(offset) & (curvature > 1e-6)
    return np.clip(np.where(usable, offset, 0), -0.5, 0.5)
