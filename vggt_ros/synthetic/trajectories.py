"""Camera trajectories through the default room, and the pinhole intrinsics the model assumes.

A trajectory is a smooth function of s in [0, 1] giving a pose (camera position and the point
looked at), sampled evenly in time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np


def look_at(position: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """world_from_camera (optical axes) of a camera at `position` looking at `target`; z up."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, c * down - s * right
    pose = np.eye(4)
    pose[:3, :3] = np.stack((right, down, forward), axis=1)
    pose[:3, 3] = position
    return pose


def _walk(s: float) -> np.ndarray:
    """Forward along the room's length, swaying sideways and bobbing like a hand-held camera."""
    position = np.array(
        (-2.8 + 5.3 * s, 0.6 * np.sin(2 * np.pi * s), 1.45 + 0.05 * np.sin(6 * np.pi * s))
    )
    target = position + (
        1.0,
        0.35 * np.sin(2 * np.pi * s + 1.0),
        -0.25 + 0.1 * np.cos(2 * np.pi * s),
    )
    return look_at(position, target, roll=0.04 * np.sin(4 * np.pi * s))


def _orbit(s: float) -> np.ndarray:
    """Three quarters of a circle around the objects in the middle, always looking at them."""
    angle = 1.5 * np.pi * s
    position = np.array(
        (2.1 * np.cos(angle), 2.1 * np.sin(angle), 1.6 + 0.2 * np.sin(2 * np.pi * s))
    )
    return look_at(position, np.array((0.0, 0.0, 0.4)))


def _rotate(s: float) -> np.ndarray:
    """Mostly rotation: a full turn of yaw with nodding pitch while drifting on a small circle."""
    position = np.array((-1.8 + 0.25 * np.cos(2 * np.pi * s), 0.25 * np.sin(2 * np.pi * s), 1.4))
    yaw = 2 * np.pi * s
    pitch = 0.25 * np.sin(4 * np.pi * s)
    heading = np.array((np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)))
    return look_at(position, position + heading, roll=0.1 * np.sin(2 * np.pi * s))


TRAJECTORIES: dict[str, Callable[[float], np.ndarray]] = {
    'walk': _walk,
    'orbit': _orbit,
    'rotate': _rotate,
}


def sample_path(
    paths: Mapping[str, Callable[[float], np.ndarray]], kind: str, frames: int, substeps: int = 1
) -> np.ndarray:
    """Poses of the path named `kind` in `paths` at `frames` evenly spaced values of s, with
    `substeps - 1` more evenly between each two (sensors faster than the camera): [(frames - 1)
    * substeps + 1, 4, 4]."""
    if kind not in paths:
        raise ValueError(f'unknown trajectory {kind!r}; choose one of {", ".join(paths)}')
    if frames < 1:
        raise ValueError(f'need at least one frame, got {frames}')
    samples = (frames - 1) * substeps + 1
    return np.stack([paths[kind](s) for s in np.linspace(0.0, 1.0, samples)])


def trajectory(kind: str, frames: int) -> np.ndarray:
    """world_from_camera poses [frames, 4, 4] of a named trajectory, evenly spaced in time."""
    return sample_path(TRAJECTORIES, kind, frames)


def pinhole(width: int, height: int, horizontal_fov_deg: float) -> np.ndarray:
    """Intrinsics with square pixels and the principal point at (W/2, H/2), as the model assumes."""
    focal = (width / 2) / np.tan(np.radians(horizontal_fov_deg) / 2)
    return np.array(((focal, 0.0, width / 2), (0.0, focal, height / 2), (0.0, 0.0, 1.0)))


def scale_intrinsics(
    K: np.ndarray, size_hw: tuple[int, int], new_size_hw: tuple[int, int]
) -> np.ndarray:
    """Intrinsics after resizing an image from size_hw to new_size_hw (principal point centred)."""
    (height, width), (new_height, new_width) = size_hw, new_size_hw
    scaled = np.asarray(K, float).copy()
    scaled[0, 0] *= new_width / width
    scaled[1, 1] *= new_height / height
    scaled[:2, 2] = new_width / 2, new_height / 2
    return scaled
