"""Camera poses from matches to the session's first frame and that frame's depth (no ROS).

The flow head says where the point at each patch centre of a frame is in the session's first
frame, and the first frame's predicted depth lifts those points to 3-D. Two solvers:

- solve_translation: the camera's rotation given (the camera head's, smooth frame to frame), the
  translation that makes the points project onto the patch centres; linear, robustly weighted.
  What the Reconstructor uses (pose_source: matches).
- solve_pnp: the whole pose by PnP (OpenCV, RANSAC, then Levenberg-Marquardt on the inliers),
  which tools/session_poses.py uses to measure how far exact matches would take the poses.

Results: docs/training-experiments.md, "Poses from matches".
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_MATCHES = 6  # EPnP's minimum, and the fewest inliers a pose is accepted from
RANSAC_PIXELS = 3.0  # about a quarter of a patch at the small model's 112 px
ROBUST_ITERATIONS = 10
HUBER_MEDIANS = 1.5  # residuals beyond this many median residuals weigh less (Huber)


def patch_centres(height: int, width: int, patch_size: int) -> np.ndarray:
    """[P, 2] pixel (u, v) of every patch centre, row by row as the model's tokens."""
    v, u = np.meshgrid(
        np.arange(height // patch_size) * patch_size + patch_size // 2,
        np.arange(width // patch_size) * patch_size + patch_size // 2,
        indexing='ij',
    )
    return np.stack([u.ravel(), v.ravel()], -1).astype(np.float64)


def matched_points(
    flow: np.ndarray,
    first_depth: np.ndarray,
    K: np.ndarray,
    patch_size: int,
    usable: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The matches that land on valid first-frame depth: [N, 2] patch centres of this frame and
    [N, 3] the matched points in the first camera's frame, lifted with `first_depth` through K."""
    height, width = first_depth.shape
    here = patch_centres(height, width, patch_size)
    there = here + patch_size * np.asarray(flow, np.float64)
    keep = np.isfinite(there).all(1) & (there >= 0).all(1)
    keep &= (there[:, 0] <= width - 1) & (there[:, 1] <= height - 1)
    if usable is not None:
        keep &= usable
    there = there[keep].astype(np.float32)
    depth = cv2.remap(
        first_depth.astype(np.float32), there[:, :1], there[:, 1:], cv2.INTER_LINEAR
    ).reshape(-1)
    valid = np.isfinite(depth) & (depth > 0)
    here, there, depth = here[keep][valid], there[valid].astype(np.float64), depth[valid]
    return here, _rays(there, K) * depth[:, None]


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
    rays = _rays(pixels, K)
    skew = np.zeros((len(rays), 3, 3))
    skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -rays[:, 2], rays[:, 1], -rays[:, 0]
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
    flow: np.ndarray,
    first_depth: np.ndarray,
    K: np.ndarray,
    patch_size: int,
    usable: np.ndarray | None = None,
) -> np.ndarray | None:
    """camera_from_first (4x4) of a frame whose patch centres show the first frame's points at
    `flow` [P, 2] (in patches from each centre), lifted with `first_depth` [H, W] through K; None
    where fewer than MIN_MATCHES usable matches land on valid depth or RANSAC finds no pose.
    The translation is in the units of `first_depth`."""
    here, points = matched_points(flow, first_depth, K, patch_size, usable)
    if len(points) < MIN_MATCHES:
        return None
    found, rvec, tvec, inliers = cv2.solvePnPRansac(
        points, here, K, None, reprojectionError=RANSAC_PIXELS, flags=cv2.SOLVEPNP_EPNP
    )
    if not found or inliers is None or len(inliers) < MIN_MATCHES:
        return None
    inliers = inliers[:, 0]
    _, rvec, tvec = cv2.solvePnP(
        points[inliers], here[inliers], K, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE
    )
    if not (np.isfinite(rvec).all() and np.isfinite(tvec).all()):
        return None
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = cv2.Rodrigues(rvec)[0], tvec[:, 0]
    return pose


def _rays(pixels: np.ndarray, K: np.ndarray) -> np.ndarray:
    """[N, 3] rays (z = 1) through pixels [N, 2]."""
    return np.column_stack([(pixels - K[:2, 2]) / np.diag(K)[:2], np.ones(len(pixels))])
