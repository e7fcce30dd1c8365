"""A frame's pose refined together with the depths of the points it was solved from (no ROS).

PnP takes the points' 3-D positions as given, so the model's errors in the shape of its depth
become errors in the pose: on an orbit the per-frame turn came out 10-40% off for a dozen
frames at a time, the arc bending with it. Here each point may slide along the ray it was
lifted on, from the camera centre it was seen from, held to where the model put it by a prior
on its log depth. Where the camera has moved far enough from that centre the images pin the
point, and the pose with it; where it has not (a turn in place) the prior does, and nothing
changes. The point's posterior spread is handed back so that a point followed over many frames
(tracks.Tracks) grows surer as its baseline grows, a depth filter in the manner of SVO's.

Gauss-Newton on the pose, each point's depth eliminated (the Schur complement: a point's depth
couples only to the pose), robust to wrong matches by Huber weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation

from vggt_ros.image_tracking import project

DEPTH_SIGMA = 0.1  # prior spread of a point's log depth as the model gives it (a frame's AbsRel)
PIXEL_SIGMA = 0.3  # [px] a refined or tracked match's error (0.1-0.2 px measured, and drift)
GATE_PIXELS = 1.0  # [px] PnP's inliers (pose_from_matches.REFINED_RANSAC_PIXELS) take part
HUBER = 2.0  # residuals beyond this many sigmas weigh less
ITERATIONS = 8
MIN_POINTS = 16  # as PnP (pose_from_matches.MIN_REFINED)


class RefinedPose(NamedTuple):
    """A pose and the points it was refined with (refine_pose)."""

    pose: np.ndarray  # camera_from_first, 4x4
    points: np.ndarray  # [N, 3] moved along their rays
    sigmas: np.ndarray  # [N] their log depths' posterior spread


def refine_pose(
    pose: np.ndarray,
    pixels: np.ndarray,
    points: np.ndarray,
    origins: np.ndarray,
    sigmas: np.ndarray,
    K: np.ndarray,
) -> RefinedPose:
    """`pose` (camera_from_first, from PnP) and `points` [N, 3] refined so that the frame sees
    them at `pixels` [N, 2], each point free along the ray from its `origins` [N, 3] (the
    camera centre it was lifted from) under a prior of spread `sigmas` [N] on its log depth.
    Points off by GATE_PIXELS under `pose` stay as they are; with fewer than MIN_POINTS left,
    or a step that does not lower the cost, the input comes back unchanged."""
    unchanged = RefinedPose(pose, points, sigmas)
    if not (np.isfinite(pose).all() and np.isfinite(K).all()):
        return unchanged
    seen = points @ pose[:3, :3].T + pose[:3, 3]
    front = seen[:, 2] > 0
    off = np.full(len(points), np.inf)
    off[front] = np.linalg.norm(project(seen[front], K) - pixels[front], axis=1)
    used = off < GATE_PIXELS
    if used.sum() < MIN_POINTS:
        return unchanged
    problem = _Problem(pixels[used], origins[used], points[used] - origins[used], sigmas[used], K)
    rotation, translation = pose[:3, :3], pose[:3, 3]
    log_depths = np.zeros(used.sum())
    cost = problem.cost(rotation, translation, log_depths)
    for _ in range(ITERATIONS):
        step = problem.step(rotation, translation, log_depths)
        if step is None:
            break
        turn, shift, change = step
        candidate = (Rotation.from_rotvec(turn).as_matrix() @ rotation, translation + shift)
        candidate_cost = problem.cost(*candidate, log_depths + change)
        if not candidate_cost < cost:
            break
        (rotation, translation), log_depths, cost = candidate, log_depths + change, candidate_cost
    refined = np.eye(4)
    refined[:3, :3], refined[:3, 3] = rotation, translation
    moved, spread = points.copy(), sigmas.copy()
    moved[used] = problem.points(log_depths)
    spread[used] = problem.posterior_sigmas(rotation, translation, log_depths)
    return RefinedPose(refined, moved, spread)


@dataclass(frozen=True)
class _Problem:
    """The residuals of refine_pose and their Gauss-Newton step: each point is its origin plus
    its offset (to where it was lifted) times e^(its log depth's change)."""

    pixels: np.ndarray
    origins: np.ndarray
    offsets: np.ndarray
    sigmas: np.ndarray
    K: np.ndarray

    def points(self, log_depths: np.ndarray) -> np.ndarray:
        return self.origins + self.offsets * np.exp(log_depths)[:, None]

    def _residuals(self, rotation, translation, log_depths):
        """Reprojection residuals [N, 2] in sigmas, the camera-frame points and their
        Huber weights."""
        seen = self.points(log_depths) @ rotation.T + translation
        with np.errstate(divide='ignore', invalid='ignore'):  # behind the camera: cost is inf
            residuals = (project(seen, self.K) - self.pixels) / PIXEL_SIGMA
        size = np.linalg.norm(residuals, axis=1)
        weights = np.minimum(1.0, HUBER / np.maximum(size, 1e-12))
        return residuals, seen, weights

    def cost(self, rotation, translation, log_depths) -> float:
        residuals, seen, weights = self._residuals(rotation, translation, log_depths)
        if not (seen[:, 2] > 0).all():
            return np.inf
        size = np.linalg.norm(residuals, axis=1)
        robust = np.where(size <= HUBER, size**2, 2 * HUBER * size - HUBER**2)
        return float(robust.sum() + ((log_depths / self.sigmas) ** 2).sum())

    def _jacobians(self, rotation, translation, log_depths):
        residuals, seen, weights = self._residuals(rotation, translation, log_depths)
        x, y, z = seen.T
        fx, fy = self.K[0, 0], self.K[1, 1]
        projection = np.zeros((len(seen), 2, 3))  # d pixel / d camera-frame point, in sigmas
        projection[:, 0, 0], projection[:, 0, 2] = fx / z, -fx * x / z**2
        projection[:, 1, 1], projection[:, 1, 2] = fy / z, -fy * y / z**2
        projection /= PIXEL_SIGMA
        skew = np.zeros((len(seen), 3, 3))  # d seen / d turn (applied on the left): -[seen - t]x
        rotated = seen - translation
        skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = rotated[:, 2], -rotated[:, 1], rotated[:, 0]
        skew -= skew.transpose(0, 2, 1)
        pose_jacobian = np.concatenate([projection @ skew, projection], axis=2)  # [N, 2, 6]
        along_ray = (self.offsets * np.exp(log_depths)[:, None]) @ rotation.T
        depth_jacobian = np.einsum('nij,nj->ni', projection, along_ray)  # [N, 2]
        return residuals, weights, pose_jacobian, depth_jacobian

    def step(self, rotation, translation, log_depths):
        """The Gauss-Newton step (turn, shift, log-depth change) with the depths eliminated."""
        residuals, weights, pose_j, depth_j = self._jacobians(rotation, translation, log_depths)
        w = weights[:, None]
        h_pose = np.einsum('nij,nik->jk', pose_j * w[:, :, None], pose_j)
        h_cross = np.einsum('nij,ni->nj', pose_j * w[:, :, None], depth_j)  # [N, 6]
        h_depth = (w * depth_j**2).sum(1) + 1 / self.sigmas**2
        g_pose = np.einsum('nij,ni->j', pose_j * w[:, :, None], residuals)
        g_depth = (w * depth_j * residuals).sum(1) + log_depths / self.sigmas**2
        reduced = h_pose - np.einsum('nj,nk->jk', h_cross / h_depth[:, None], h_cross)
        rhs = g_pose - (h_cross * (g_depth / h_depth)[:, None]).sum(0)
        try:
            delta = -np.linalg.solve(reduced, rhs)
        except np.linalg.LinAlgError:
            return None
        change = -(g_depth + h_cross @ delta) / h_depth
        if not (np.isfinite(delta).all() and np.isfinite(change).all()):
            return None
        return delta[:3], delta[3:], change

    def posterior_sigmas(self, rotation, translation, log_depths) -> np.ndarray:
        """Each point's log-depth spread given this frame, the pose held (a depth filter's
        update): the prior's information plus what the frame's reprojection adds."""
        _, weights, _, depth_j = self._jacobians(rotation, translation, log_depths)
        information = 1 / self.sigmas**2 + (weights[:, None] * depth_j**2).sum(1)
        return 1 / np.sqrt(information)
