"""A TF buffer of the package's own, for environments without tf2_ros (pip installs).

It answers the questions the node asks of tf2 (``lookup``, ``can_transform``, ``parent``) with
tf2's semantics, so the node behaves the same whichever buffer it runs on. ROS-free: messages are
read duck-typed, so the core is testable without rclpy.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

# tf2 ignores transforms whose quaternion norm is further than this from 1.
QUATERNION_TOLERANCE = 1e-2
_RIGID_TOLERANCE = 1e-6


class FrameNotFound(LookupError):
    """A frame is unknown, or two frames are in trees that do not connect."""


class ExtrapolationError(LookupError):
    """A lookup time lies outside the stored history of a dynamic transform."""


class Transforms(Protocol):
    """What the node needs of a TF buffer; TransformBuffer and the tf2_ros adapter both are."""

    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int) -> np.ndarray: ...

    def can_transform(self, target_frame: str, source_frame: str, stamp_ns: int) -> bool: ...

    def parent(self, frame: str) -> str | None: ...

    def clear(self) -> None: ...


@dataclass
class _Edge:
    """A child's link to its parent: one static transform or a time-ordered history."""

    parent: str
    child: str
    static: bool
    stamps: list[int] = field(default_factory=list)
    matrices: list[np.ndarray] = field(default_factory=list)


def _seconds(stamp_ns: int) -> str:
    return f'{stamp_ns // 10**9}.{stamp_ns % 10**9:09d} s'


def _strip(frame: str) -> str:
    return frame.lstrip('/')


def _inverse(matrix: np.ndarray) -> np.ndarray:
    inverse = np.eye(4)
    inverse[:3, :3] = matrix[:3, :3].T
    inverse[:3, 3] = -matrix[:3, :3].T @ matrix[:3, 3]
    return inverse


def _check_rigid(matrix: np.ndarray) -> np.ndarray:
    matrix = np.array(matrix, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise ValueError(f'a transform must be a finite 4x4 matrix, got {matrix.shape}')
    rotation = matrix[:3, :3]
    rigid = np.allclose(rotation.T @ rotation, np.eye(3), atol=_RIGID_TOLERANCE)
    if not rigid or np.linalg.det(rotation) < 0 or not np.allclose(matrix[3], [0, 0, 0, 1]):
        raise ValueError(f'not a rigid transform:\n{matrix}')
    return matrix


def transform_to_matrix(transform: Any) -> np.ndarray:
    """4x4 of a geometry_msgs/Transform-like object; like tf2, refuses a denormalised quaternion."""
    t, q = transform.translation, transform.rotation
    quaternion = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    norm = np.linalg.norm(quaternion)
    if not np.isfinite(norm) or abs(norm - 1.0) > QUATERNION_TOLERANCE:
        raise ValueError(f'quaternion (x, y, z, w) = {quaternion.tolist()} is not normalised')
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_quat(quaternion).as_matrix()
    matrix[:3, 3] = t.x, t.y, t.z
    return matrix


def _interpolate(one: np.ndarray, two: np.ndarray, ratio: float) -> np.ndarray:
    rotations = Rotation.from_matrix(np.stack([one[:3, :3], two[:3, :3]]))
    matrix = np.eye(4)
    matrix[:3, :3] = Slerp([0.0, 1.0], rotations)(ratio).as_matrix()
    matrix[:3, 3] = (1.0 - ratio) * one[:3, 3] + ratio * two[:3, 3]
    return matrix


class TransformBuffer:
    """tf2's BufferCore in small: frames in a forest, each child with one parent.

    As in tf2, a transform naming a new parent for a child re-parents it, and a static transform
    replaces a dynamic link and vice versa; the link's history goes with it (tf2 keeps the old
    parent for older stamps, so only lookups from before the change differ). Static transforms
    hold at all times; dynamic ones are interpolated between neighbouring stamps (linear
    translation, slerp rotation), never extrapolated, and kept for cache_time seconds behind the
    link's newest. Stamps are integer nanoseconds; stamp 0 in a lookup means the latest time all
    links of the chain share, as tf2's Time(). Thread-safe: a listener fills it from an executor
    thread while the node looks up.
    """

    def __init__(self, cache_time: float = 10.0) -> None:
        if cache_time <= 0:
            raise ValueError(f'cache_time must be positive, got {cache_time}')
        self._cache_ns = round(cache_time * 1e9)
        self._edges: dict[str, _Edge] = {}
        self._lock = threading.Lock()

    def set_transform(
        self,
        parent: str,
        child: str,
        stamp_ns: int,
        parent_from_child: np.ndarray,
        static: bool = False,
    ) -> None:
        """Store parent_from_child at stamp_ns; ValueError for one tf2 would ignore or a loop."""
        parent, child = _strip(parent), _strip(child)
        if not parent or not child or parent == child:
            raise ValueError(f'parent {parent!r} and child {child!r} must be distinct frame ids')
        matrix = _check_rigid(parent_from_child)
        with self._lock:
            self._refuse_loop(parent, child)
            edge = self._edges.get(child)
            if edge is None or static or edge.static or edge.parent != parent:
                edge = self._edges[child] = _Edge(parent, child, static)
            self._insert(edge, int(stamp_ns), matrix)

    def _refuse_loop(self, parent: str, child: str) -> None:
        chain = [parent]
        while chain[-1] in self._edges and chain[-1] != child:
            chain.append(self._edges[chain[-1]].parent)
        if chain[-1] == child:
            path = ' -> '.join([child, *chain])
            raise ValueError(f'{parent!r} as parent of {child!r} would make a loop: {path}')

    def _insert(self, edge: _Edge, stamp_ns: int, matrix: np.ndarray) -> None:
        index = bisect_left(edge.stamps, stamp_ns)
        if index < len(edge.stamps) and edge.stamps[index] == stamp_ns:
            edge.matrices[index] = matrix
        else:
            edge.stamps.insert(index, stamp_ns)
            edge.matrices.insert(index, matrix)
        oldest_kept = bisect_left(edge.stamps, edge.stamps[-1] - self._cache_ns)
        del edge.stamps[:oldest_kept], edge.matrices[:oldest_kept]

    def add_message(self, tf_message: Any, static: bool) -> list[str]:
        """Store every transform of a tf2_msgs/TFMessage; the reasons for those refused.

        One bad transform does not stop the others, as in tf2, which logs and ignores it.
        """
        refused = []
        for stamped in tf_message.transforms:
            stamp = stamped.header.stamp
            try:
                self.set_transform(
                    stamped.header.frame_id,
                    stamped.child_frame_id,
                    stamp.sec * 10**9 + stamp.nanosec,
                    transform_to_matrix(stamped.transform),
                    static,
                )
            except ValueError as error:
                names = f'{stamped.header.frame_id!r} -> {stamped.child_frame_id!r}'
                refused.append(f'ignoring transform {names}: {error}')
        return refused

    def clear(self) -> None:
        """Forget every dynamic transform, keeping the static ones (tf2's clear(), what
        tf2_ros does when ROS time jumps back)."""
        with self._lock:
            self._edges = {child: edge for child, edge in self._edges.items() if edge.static}

    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int) -> np.ndarray:
        """target_from_source at stamp_ns (0: latest common time), through the common ancestor."""
        if target_frame == source_frame:
            return np.eye(4)  # tf2 answers this even for frames it has never heard of
        with self._lock:
            up_from_source, up_from_target = self._paths(target_frame, source_frame)
            edges = up_from_source + up_from_target
            if stamp_ns == 0:
                stamp_ns = min((e.stamps[-1] for e in edges if not e.static), default=0)
            where = f'{target_frame!r} <- {source_frame!r} at {_seconds(stamp_ns)}'
            common_from_source = self._compose(up_from_source, stamp_ns, where)
            common_from_target = self._compose(up_from_target, stamp_ns, where)
        return _inverse(common_from_target) @ common_from_source

    def can_transform(self, target_frame: str, source_frame: str, stamp_ns: int) -> bool:
        """Whether :meth:`lookup` would answer."""
        try:
            self.lookup(target_frame, source_frame, stamp_ns)
        except LookupError:
            return False
        return True

    def parent(self, frame: str) -> str | None:
        """The frame's parent; None for a root or a frame never seen."""
        with self._lock:
            edge = self._edges.get(frame)
            return edge.parent if edge else None

    def frames(self) -> list[str]:
        """Every frame seen, as child or as parent, sorted."""
        with self._lock:
            return sorted({*self._edges, *(edge.parent for edge in self._edges.values())})

    def _chain(self, frame: str) -> list[str]:
        known = frame in self._edges or any(e.parent == frame for e in self._edges.values())
        if not known:
            raise FrameNotFound(f'frame {frame!r} does not exist (known: {sorted(self._edges)})')
        chain = [frame]
        while chain[-1] in self._edges:
            chain.append(self._edges[chain[-1]].parent)
        return chain

    def _paths(self, target_frame: str, source_frame: str) -> tuple[list[_Edge], list[_Edge]]:
        """The links from each frame up to their common ancestor, nearest first."""
        source_chain, target_chain = self._chain(source_frame), self._chain(target_frame)
        common = next((frame for frame in source_chain if frame in target_chain), None)
        if common is None:
            raise FrameNotFound(
                f'{target_frame!r} and {source_frame!r} are not connected: their trees have '
                f'roots {target_chain[-1]!r} and {source_chain[-1]!r}'
            )
        up = source_chain[: source_chain.index(common)], target_chain[: target_chain.index(common)]
        return [self._edges[f] for f in up[0]], [self._edges[f] for f in up[1]]

    def _compose(self, edges: list[_Edge], stamp_ns: int, where: str) -> np.ndarray:
        """ancestor_from_frame of a path of links, nearest first."""
        matrix = np.eye(4)
        for edge in edges:
            matrix = self._at(edge, stamp_ns, where) @ matrix
        return matrix

    def _at(self, edge: _Edge, stamp_ns: int, where: str) -> np.ndarray:
        if edge.static:
            return edge.matrices[0]
        stamps = edge.stamps
        if not stamps[0] <= stamp_ns <= stamps[-1]:
            direction = 'past' if stamp_ns < stamps[0] else 'future'
            raise ExtrapolationError(
                f'lookup {where} would extrapolate into the {direction}: {edge.parent!r} -> '
                f'{edge.child!r} has data from {_seconds(stamps[0])} to {_seconds(stamps[-1])}'
            )
        index = bisect_left(stamps, stamp_ns)
        if stamps[index] == stamp_ns:
            return edge.matrices[index]
        ratio = (stamp_ns - stamps[index - 1]) / (stamps[index] - stamps[index - 1])
        return _interpolate(edge.matrices[index - 1], edge.matrices[index], ratio)
