"""Ground-truth and estimated camera trajectories: from a bag's /tf, a pose topic, or TUM files.

Poses are world_from_camera 4x4 matrices keyed by header stamps (nanoseconds), so estimated and
ground-truth frames can be matched by the time the data was taken.
"""

from __future__ import annotations

import os
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader
from scipy.spatial.transform import Rotation

from vggt_ros.evaluation.bag_io import BagError, read_messages, stamp_ns, topic_connections

TF_TYPES = ('tf2_msgs/msg/TFMessage', 'tf/msg/tfMessage')
TF_TOPICS = ('/tf', '/tf_static')
Edge = tuple[str, str]  # (parent frame, child frame)
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
    pose[:3, :3] = Rotation.from_quat(np.asarray(quat_xyzw, dtype=np.float64)).as_matrix()
    pose[:3, 3] = translation
    return pose


def _frame(name: str) -> str:
    return name.lstrip('/')  # ROS 1 bags often spell frames with a leading slash


def _tf_edges(reader: AnyReader) -> tuple[dict[Edge, Trajectory], set[Edge]]:
    """Every (parent, child) edge on /tf and /tf_static as a trajectory; the static ones."""
    samples: dict[Edge, tuple[list[int], list[np.ndarray]]] = defaultdict(lambda: ([], []))
    static: set[Edge] = set()
    for topic in TF_TOPICS:
        if not any(c.topic == topic and c.msgcount for c in reader.connections):
            continue
        for _, _, message in read_messages(reader, topic_connections(reader, topic, TF_TYPES)):
            for stamped in message.transforms:
                edge = (_frame(stamped.header.frame_id), _frame(stamped.child_frame_id))
                t, q = stamped.transform.translation, stamped.transform.rotation
                samples[edge][0].append(stamp_ns(stamped))
                samples[edge][1].append(pose_matrix((t.x, t.y, t.z), (q.x, q.y, q.z, q.w)))
                if topic == '/tf_static':
                    static.add(edge)
    edges = {
        edge: make_trajectory(*series, f'{edge[0]} -> {edge[1]}')
        for edge, series in samples.items()
    }
    return edges, static


def _tf_path(edges: Iterable[Edge], parent: str, child: str) -> list[tuple[Edge, bool]]:
    """Edges leading from parent to child, each True where it is walked child -> parent."""
    neighbours: dict[str, list[tuple[str, Edge, bool]]] = defaultdict(list)
    for edge in edges:
        neighbours[edge[0]].append((edge[1], edge, False))
        neighbours[edge[1]].append((edge[0], edge, True))
    came_from: dict[str, tuple[str, Edge, bool] | None] = {parent: None}
    queue = deque([parent])
    while queue:
        frame = queue.popleft()
        for other, edge, inverted in neighbours[frame]:
            if other not in came_from:
                came_from[other] = (frame, edge, inverted)
                queue.append(other)
    if child not in came_from:
        frames = ', '.join(sorted(neighbours)) or 'none'
        raise BagError(f'no TF chain from {parent} to {child}; frames on /tf: {frames}')
    path, frame = [], child
    while (step := came_from[frame]) is not None:
        frame, edge, inverted = step
        path.append((edge, inverted))
    return path[::-1]


def _nearest(stamps: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index of the stamp nearest to each query (stamps sorted)."""
    right = np.searchsorted(stamps, queries).clip(1, max(len(stamps) - 1, 1))
    left = right - 1
    if len(stamps) == 1:
        return np.zeros(len(queries), np.int64)
    return np.where(queries - stamps[left] <= stamps[right] - queries, left, right)


def from_tf(reader: AnyReader, parent: str, child: str) -> Trajectory:
    """parent -> child through the TF tree of /tf and /tf_static (TUM: world -> kinect -> optical).

    Stamps are those of the chain's moving edge with the most of them (the motion capture, or a
    robot's odom -> base_link beside a sparse map -> odom); other moving edges are taken at their
    nearest stamp, static ones as they are.
    """
    parent, child = _frame(parent), _frame(child)
    if not any(c.topic in TF_TOPICS for c in reader.connections):
        raise BagError(f'ground truth {parent} -> {child}: the bag has no /tf or /tf_static')
    edges, static = _tf_edges(reader)
    path = _tf_path(edges, parent, child)
    moving = [edge for edge, _ in path if edge not in static and len(edges[edge]) > 1]
    if not moving:
        raise BagError(f'the TF chain {parent} -> {child} never moves: no trajectory to score')
    stamps = max((edges[edge].stamps for edge in moving), key=len)
    poses = np.tile(np.eye(4), (len(stamps), 1, 1))
    for edge, inverted in path:
        step = edges[edge].poses[_nearest(edges[edge].stamps, stamps)]
        poses = poses @ (np.linalg.inv(step) if inverted else step)
    return Trajectory(stamps, poses)


def from_pose_topic(reader: AnyReader, topic: str) -> Trajectory:
    """Poses of a PoseStamped, PoseWithCovarianceStamped or Odometry topic."""
    poses, stamps = [], []
    for _, _, message in read_messages(reader, topic_connections(reader, topic, POSE_TYPES)):
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
    quats = Rotation.from_matrix(trajectory.poses[:, :3, :3]).as_quat(canonical=True)
    rows = np.column_stack((trajectory.stamps / 1e9, trajectory.positions, quats))
    np.savetxt(path, rows, fmt='%.9f', header='timestamp tx ty tz qx qy qz qw')
    return Path(path)
