"""Ground-truth and estimated camera trajectories: from a bag's /tf, a pose topic, or TUM files.

Poses are world_from_camera 4x4 matrices keyed by header stamps (nanoseconds), so estimated and
ground-truth frames can be matched by the time the data was taken.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rosbags.highlevel import AnyReader

from vggt_ros.evaluation.bag_io import BagError, read_messages, stamp_ns, topic_connections
from vggt_ros.model.geometry import quat_to_rotation, rotation_to_quat

TF_TYPES = ('tf2_msgs/msg/TFMessage',)
POSE_TYPES = (
    'geometry_msgs/msg/PoseStamped',
    'geometry_msgs/msg/PoseWithCovarianceStamped',
    'nav_msgs/msg/Odometry',
)


@dataclass(frozen=True)
class Trajectory:
    """Camera poses (world_from_camera, [N, 4, 4]) at header stamps ([N] int64 ns), by time."""

    stamps: np.ndarray
    poses: np.ndarray

    def __len__(self) -> int:
        return len(self.stamps)

    @property
    def positions(self) -> np.ndarray:
        return self.poses[:, :3, 3]


def make_trajectory(stamps: list[int], poses: list[np.ndarray], source: str) -> Trajectory:
    """Sorted by stamp; a source with no poses is an error worth naming."""
    if not stamps:
        raise BagError(f'no ground-truth poses found in {source}')
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind='stable')
    return Trajectory(np.asarray(stamps, dtype=np.int64)[order], np.stack(poses)[order])


def pose_matrix(translation: tuple[float, ...], quat_xyzw: tuple[float, ...]) -> np.ndarray:
    """4x4 from a translation and an XYZW quaternion (the ROS and TUM order)."""
    pose = np.eye(4)
    pose[:3, :3] = quat_to_rotation(torch.tensor(quat_xyzw, dtype=torch.float64)).numpy()
    pose[:3, 3] = translation
    return pose


def _frame(name: str) -> str:
    return name.lstrip('/')  # ROS 1 bags often spell frames with a leading slash


def from_tf(reader: AnyReader, parent: str, child: str, topic: str = '/tf') -> Trajectory:
    """The direct parent -> child transforms on /tf (TUM ground truth is recorded this way)."""
    poses, stamps = [], []
    for _, message in read_messages(reader, topic_connections(reader, topic, TF_TYPES)):
        for stamped in message.transforms:
            if (_frame(stamped.header.frame_id), _frame(stamped.child_frame_id)) != (
                _frame(parent),
                _frame(child),
            ):
                continue
            t, q = stamped.transform.translation, stamped.transform.rotation
            poses.append(pose_matrix((t.x, t.y, t.z), (q.x, q.y, q.z, q.w)))
            stamps.append(stamp_ns(stamped))
    return make_trajectory(stamps, poses, f'{topic} ({parent} -> {child})')


def from_pose_topic(reader: AnyReader, topic: str) -> Trajectory:
    """Poses of a PoseStamped, PoseWithCovarianceStamped or Odometry topic."""
    poses, stamps = [], []
    for _, message in read_messages(reader, topic_connections(reader, topic, POSE_TYPES)):
        pose = message.pose.pose if hasattr(message.pose, 'pose') else message.pose
        p, q = pose.position, pose.orientation
        poses.append(pose_matrix((p.x, p.y, p.z), (q.x, q.y, q.z, q.w)))
        stamps.append(stamp_ns(message))
    return make_trajectory(stamps, poses, topic)


def read_tum(path: str | os.PathLike) -> Trajectory:
    """A TUM trajectory file: `timestamp tx ty tz qx qy qz qw` per line, # comments."""
    try:
        rows = np.loadtxt(path, comments='#', ndmin=2)
    except (OSError, ValueError) as exc:
        raise ValueError(f'cannot read TUM trajectory {path}: {exc}') from exc
    if rows.shape[1] != 8:
        raise ValueError(f'{path}: a TUM line has 8 columns, found {rows.shape[1]}')
    stamps = [round(t * 1e9) for t in rows[:, 0]]
    return make_trajectory(stamps, [pose_matrix(r[1:4], r[4:8]) for r in rows], str(path))


def write_tum(trajectory: Trajectory, path: str | os.PathLike) -> Path:
    """Write a trajectory in TUM format (evo_ape/evo_traj read it directly)."""
    quats = rotation_to_quat(torch.from_numpy(trajectory.poses[:, :3, :3])).numpy()
    rows = np.column_stack((trajectory.stamps / 1e9, trajectory.positions, quats))
    np.savetxt(path, rows, fmt='%.9f', header='timestamp tx ty tz qx qy qz qw')
    return Path(path)
