"""The body's motion for nav_msgs/Odometry: its twist and the covariances claimed (no ROS).

A fused estimate (robot_localization and the like) weighs each source by its covariance, so the
all-zero covariance of a bare message reads as a perfect sensor. Here each frame's motion is
claimed to be off by `step_error` of itself, translation and rotation alike, over a floor for a
body that barely moves (a random walk in time); the twist's covariance is that step's over the
time between the frames squared, and the pose's grows from the odom origin by every step, to
first order, a heading error swinging the position by the distance travelled since (dead
reckoning). A twist that cannot be known (the first frame, after a jump of the poses) is claimed
with UNKNOWN_VARIANCE, as rtabmap does when lost.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation

UNKNOWN_VARIANCE = 9999.0  # rtabmap's BAD_COVARIANCE: so large that fusion ignores the value
# The error per axis of a body that barely moves, a random walk so that what a still robot claims
# grows with time, not with the frame rate: [m / sqrt(s)] and [rad / sqrt(s)], 5 mm and 0.1 deg
# a frame at the scenes' 15 Hz, above the shipped small model's on the held-out turns (RPE over
# sqrt(3): 2-5 mm and 0.04-0.08 deg a frame).
FLOOR_PER_SQRT_SECOND = np.array([0.005, np.radians(0.1)]) * np.sqrt(15.0)


class Motion(NamedTuple):
    """What ~/odometry says beyond the pose: the twist (None: unknown) and both covariances,
    6x6 over (x, y, z, rotation about x, y, z) as nav_msgs/Odometry orders them."""

    twist: tuple[np.ndarray, np.ndarray] | None
    pose_covariance: np.ndarray
    twist_covariance: np.ndarray


def body_twist(
    previous: np.ndarray, current: np.ndarray, seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    """(linear, angular) velocity of a body between two 4x4 poses `seconds` apart, in the body
    frame at `current`, as nav_msgs/Odometry's twist is given (in child_frame_id)."""
    relative = np.linalg.inv(previous) @ current  # the motion, in the previous body frame
    rotation = current[:3, :3].T @ previous[:3, :3]  # previous body axes into the current ones
    linear = rotation @ relative[:3, 3] / seconds
    angular = Rotation.from_matrix(relative[:3, :3]).as_rotvec() / seconds
    return linear, rotation @ angular


def step_covariance(
    previous: np.ndarray, current: np.ndarray, seconds: float, step_error: float
) -> np.ndarray:
    """6x6 covariance claimed for the motion between two poses `seconds` apart: isotropic, so
    in any axes."""
    relative = np.linalg.inv(previous) @ current
    moved = np.linalg.norm(relative[:3, 3])
    turned = np.linalg.norm(Rotation.from_matrix(relative[:3, :3]).as_rotvec())
    floor = FLOOR_PER_SQRT_SECOND * np.sqrt(seconds)
    spreads = np.hypot(step_error * np.array([moved, turned]), floor)
    return np.diag(np.repeat(spreads**2, 3))


class BodyMotion:
    """Follows one body's poses frame by frame in one (world, body) pair of frames."""

    def __init__(self) -> None:
        self._last: tuple[tuple[str, str], int, np.ndarray] | None = None  # frames, stamp, pose
        self._pose_covariance = np.zeros((6, 6))  # at the odom origin the pose is exact

    def restart(self, origin: bool) -> None:
        """The next pose jumps (its twist is unknown); with `origin`, from a new odom origin."""
        self._last = None
        if origin:
            self._pose_covariance = np.zeros((6, 6))

    def add(
        self, frames: tuple[str, str], stamp_ns: int, pose: np.ndarray, step_error: float
    ) -> Motion:
        """The motion at a new pose of the body (`frames`: world, body) stamped `stamp_ns`."""
        unknown = Motion(None, self._pose_covariance.copy(), UNKNOWN_VARIANCE * np.eye(6))
        if not np.isfinite(pose).all():  # no motion to follow: the last good pose stays
            return unknown
        last, self._last = self._last, (frames, stamp_ns, pose)
        if last is None or last[0] != frames or stamp_ns <= last[1]:
            return unknown
        previous, seconds = last[2], (stamp_ns - last[1]) * 1e-9
        step = step_covariance(previous, pose, seconds, step_error)
        # Position after = before + travelled: a heading error before turns the travelled part.
        propagation = np.eye(6)
        propagation[:3, 3:] = -_cross_matrix(pose[:3, 3] - previous[:3, 3])
        self._pose_covariance = propagation @ self._pose_covariance @ propagation.T + step
        return Motion(
            body_twist(previous, pose, seconds), self._pose_covariance.copy(), step / seconds**2
        )


def _cross_matrix(vector: np.ndarray) -> np.ndarray:
    x, y, z = vector
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
