"""Camera trajectories (walk, orbit, rotate) and the pinhole intrinsics the model assumes.

A trajectory is a smooth function of s in [0, 1] giving a pose (camera position and the point
looked at), sampled evenly in time. Each kind is a dataclass of its parameters, whose defaults
are the path through the default room; varied worlds (`variety`) fit them to their own room.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Walk:
    """Forward along a straight line, swaying sideways and bobbing like a hand-held camera."""

    start: tuple[float, float] = (-2.8, 0.0)
    heading: float = 0.0  # direction of travel, radians from +x
    length: float = 5.3
    sway: float = 0.6  # sideways amplitude, metres
    sway_phase: float = 0.0
    height: float = 1.45
    look_sway: float = 0.35  # sideways amplitude of the point looked at, 1 m ahead
    look_down: float = 0.25  # how far below the camera that point is, metres

    def _axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors forward and to the left of the direction of travel."""
        return (
            np.array((np.cos(self.heading), np.sin(self.heading), 0.0)),
            np.array((-np.sin(self.heading), np.cos(self.heading), 0.0)),
        )

    def position(self, s: float) -> np.ndarray:
        forward, sideways = self._axes()
        position = (
            np.array((*self.start, 0.0))
            + self.length * s * forward
            + self.sway * np.sin(2 * np.pi * s + self.sway_phase) * sideways
        )
        position[2] = self.height + 0.05 * np.sin(6 * np.pi * s)
        return position

    def __call__(self, s: float) -> np.ndarray:
        forward, sideways = self._axes()
        position = self.position(s)
        target = (
            position
            + forward
            + self.look_sway * np.sin(2 * np.pi * s + 1.0) * sideways
            + (0.0, 0.0, -self.look_down + 0.1 * np.cos(2 * np.pi * s))
        )
        return look_at(position, target, roll=0.04 * np.sin(4 * np.pi * s))


@dataclass(frozen=True)
class Orbit:
    """Part of an ellipse around a centre, bobbing up and down, always looking at the centre
    (by default three quarters of a circle around the middle of the default room)."""

    centre: tuple[float, float] = (0.0, 0.0)
    radii: tuple[float, float] = (2.1, 2.1)
    start_angle: float = 0.0
    sweep: float = 1.5 * np.pi  # angle travelled, radians (negative: clockwise)
    height: float = 1.6
    target_height: float = 0.4

    def position(self, s: float) -> np.ndarray:
        angle = self.start_angle + self.sweep * s
        return np.array(
            (
                self.centre[0] + self.radii[0] * np.cos(angle),
                self.centre[1] + self.radii[1] * np.sin(angle),
                self.height + 0.2 * np.sin(2 * np.pi * s),
            )
        )

    def __call__(self, s: float) -> np.ndarray:
        return look_at(self.position(s), np.array((*self.centre, self.target_height)))


@dataclass(frozen=True)
class Rotate:
    """Mostly rotation: a full turn of yaw with nodding pitch while drifting on a small circle."""

    spot: tuple[float, float] = (-1.8, 0.0)
    drift: float = 0.25  # radius of the circle drifted on, metres
    height: float = 1.4
    start_yaw: float = 0.0
    turn: float = 1.0  # +1 turns left (counter-clockwise seen from above), -1 right
    nod: float = 0.25  # pitch amplitude, radians

    def position(self, s: float) -> np.ndarray:
        return np.array(
            (
                self.spot[0] + self.drift * np.cos(2 * np.pi * s),
                self.spot[1] + self.drift * np.sin(2 * np.pi * s),
                self.height,
            )
        )

    def __call__(self, s: float) -> np.ndarray:
        position = self.position(s)
        yaw = self.start_yaw + self.turn * 2 * np.pi * s
        pitch = self.nod * np.sin(4 * np.pi * s)
        heading = np.array(
            (np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch))
        )
        return look_at(position, position + heading, roll=0.1 * np.sin(2 * np.pi * s))


Path = Walk | Orbit | Rotate

TRAJECTORIES: dict[str, Path] = {
    'walk': Walk(),
    'orbit': Orbit(),
    'rotate': Rotate(),
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
