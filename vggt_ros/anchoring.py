"""Re-anchoring: one world for an unbounded trajectory, the model's anchor kept recent (no ROS).

A StreamVGGT session predicts every pose against its first frame, the anchor. With a bounded
window the anchor stays for ever, and once the robot has left it behind every pose is predicted
against a frame it no longer overlaps. Re-anchoring starts a new session at a recent frame,
warm-starts it with the last `anchor.overlap` frames, and fits the similarity (each session has its
own normalised scale) that takes the new session's poses of those frames onto the ones already
published, so the published world goes on without a jump. The warm-start reuses the session's
buffers: memory stays flat, and its cost is bounded by `anchor.overlap` model steps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from vggt_ros.stream_types import FrameResult


@dataclass(frozen=True)
class Similarity:
    """x -> scale * rotation @ x + translation: a session's world in the published one."""

    scale: float = 1.0
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @classmethod
    def at_pose(cls, pose: np.ndarray, scale: float = 1.0) -> Similarity:
        """The similarity of the given scale putting a session's origin at `pose` (4x4 rigid)."""
        return cls(scale, pose[:3, :3].copy(), pose[:3, 3].copy())

    @property
    def is_identity(self) -> bool:
        return (
            self.scale == 1.0
            and np.array_equal(self.rotation, np.eye(3))
            and not self.translation.any()
        )

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Nx3 points from the session's world into the published one."""
        return self.scale * points @ self.rotation.T + self.translation

    def inverse(self) -> Similarity:
        rotation = self.rotation.T
        return Similarity(1 / self.scale, rotation, -rotation @ self.translation / self.scale)

    def pose(self, session_pose: np.ndarray) -> np.ndarray:
        """A camera pose (4x4 rigid) from the session's world into the published one."""
        pose = np.eye(4)
        pose[:3, :3] = self.rotation @ session_pose[:3, :3]
        pose[:3, 3] = self.scale * self.rotation @ session_pose[:3, 3] + self.translation
        return pose

    def result(self, result: FrameResult) -> FrameResult:
        """A frame's result in the published world: its pose moved, its depth and points scaled."""
        if self.is_identity:
            return result
        world_from_camera = self.pose(result.world_from_camera)
        points = result.world_points
        if points is not None:
            points = self.apply(points).astype(np.float32)
        return replace(
            result,
            world_from_camera=world_from_camera,
            camera_from_world=np.linalg.inv(world_from_camera),
            depth=result.depth * np.float32(self.scale),
            world_points=points,
        )


def fit_similarity(
    session_poses: np.ndarray,
    world_poses: np.ndarray,
    session_depths: Sequence[np.ndarray],
    world_depths: Sequence[np.ndarray],
) -> Similarity:
    """The similarity taking the session's poses of the overlapping frames onto their world poses.

    Scale: the median per-pixel ratio of the two depth maps of the same frames, which share the
    poses' scale and are far better conditioned than camera centres a few frames apart. Rotation:
    one fit (Kabsch, as in Umeyama) of the cameras' unit axes and of their centres about the
    centroid in units of the scene depth: a centre's error grows with the depth, so the direction
    between centres a small fraction of it apart is mostly noise and weighs as little.
    Translation: the centroids then coincide.
    """
    scale = _depth_ratio(session_depths, world_depths)
    session_centres, world_centres = session_poses[:, :3, 3], world_poses[:, :3, 3]
    session_offsets = session_centres - session_centres.mean(0)
    world_offsets = world_centres - world_centres.mean(0)
    # Row j of a pose's rotation transposed is the camera's j-th axis in that world.
    axes_session = session_poses[:, :3, :3].transpose(0, 2, 1).reshape(-1, 3)
    axes_world = world_poses[:, :3, :3].transpose(0, 2, 1).reshape(-1, 3)
    depth = float(np.median(np.concatenate([d[np.isfinite(d) & (d > 0)] for d in world_depths])))
    axes_session = np.concatenate([axes_session, scale * session_offsets / depth])
    axes_world = np.concatenate([axes_world, world_offsets / depth])
    rotation = Rotation.align_vectors(axes_world, axes_session)[0].as_matrix()
    translation = world_centres.mean(0) - scale * rotation @ session_centres.mean(0)
    return Similarity(scale, rotation, translation)


def _depth_ratio(session_depths: Sequence[np.ndarray], world_depths: Sequence[np.ndarray]) -> float:
    ratios = []
    for session, world in zip(session_depths, world_depths, strict=True):
        valid = np.isfinite(session) & np.isfinite(world) & (session > 0) & (world > 0)
        ratios.append(world[valid] / session[valid])
    ratios = np.concatenate(ratios)
    if not ratios.size:
        raise ValueError('the overlapping frames have no valid depth in common')
    return float(np.median(ratios))


@dataclass
class RecentFrame:
    """A processed frame as a new session needs it: the model's input and what was published."""

    image: Any  # the preprocessed model input (a torch tensor on the model's device)
    stamp: float | None
    pose: np.ndarray  # world_from_camera in the published world (model units)
    depth: np.ndarray  # HxW depth in the published world's units


class Anchoring:
    """When to re-anchor, and the ring of recent frames a new session is warm-started with.

    Aged anchor: `anchor.max_frames` frames since it (0: never), or the camera more than
    `anchor.max_distance` times the anchor's median depth away from it (0: never).
    """

    def __init__(self, overlap: int) -> None:
        self.recent: deque[RecentFrame] = deque(maxlen=overlap)
        self._anchor_centre: np.ndarray | None = None
        self._anchor_depth = 0.0
        self.frames_since_anchor = 0

    def forget(self) -> None:
        """A new world without overlap (a reset): the next frame is the anchor."""
        self.recent.clear()
        self._anchor_centre = None
        self.frames_since_anchor = 0

    def record(self, image: Any, result: FrameResult) -> None:
        """A frame processed by the current session, `result` in the published world."""
        self.recent.append(RecentFrame(image, result.stamp, result.world_from_camera, result.depth))
        if self._anchor_centre is None:
            self._anchored_at(self.recent[0])
        else:
            self.frames_since_anchor += 1

    def due(self, values: Mapping[str, Any]) -> bool:
        """Whether the anchor has aged (and the ring can warm-start a new session)."""
        if self._anchor_centre is None or len(self.recent) < self.recent.maxlen:
            return False
        max_frames, max_distance = values['anchor.max_frames'], values['anchor.max_distance']
        if max_frames and self.frames_since_anchor >= max_frames:
            return True
        moved = np.linalg.norm(self.recent[-1].pose[:3, 3] - self._anchor_centre)
        # An anchor without depth gives distance no measure: re-anchoring on every frame would
        # cost anchor.overlap extra model steps each.
        depth = self._anchor_depth
        return bool(max_distance) and depth > 0 and moved > max_distance * depth

    def reanchored(self) -> None:
        """The oldest recent frame is the new session's anchor."""
        self._anchored_at(self.recent[0])
        self.frames_since_anchor = len(self.recent) - 1

    def _anchored_at(self, frame: RecentFrame) -> None:
        self._anchor_centre = frame.pose[:3, 3].copy()
        valid = frame.depth[np.isfinite(frame.depth) & (frame.depth > 0)]
        self._anchor_depth = float(np.median(valid)) if valid.size else 0.0
