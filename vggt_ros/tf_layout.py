"""Where the node's pose goes in the TF tree (REP-105), given what the tree holds (no rclpy).

tf_mode:
- odom: the robot's mount base_frame -> camera is looked up at the image stamp, and odom_frame ->
  base_frame is published so that odom -> base -> camera is the model's camera pose, the odom
  origin being the base pose at the world's first frame. A moving mount (pan-tilt, arm) is
  followed: the camera's motion on it is not taken for the base's (a mount whose TF starts after
  the first frame, and whose history does not reach back to it, is taken as at the first frame
  with one). The mount's rotation gives REP-103 axes.
- map: wheel odometry owns odom -> base; map_frame -> odom_frame is published from the model's
  base pose and the odom -> base transform at the image stamp, once the pose has been metric.
- camera: world_frame -> camera (hand-held cameras, bags without a robot).
- none: no TF.
In odom mode, while no base -> camera chain exists, frames wait (no TF) for `tf_timeout` seconds;
then camera mode takes over, but only if the camera frame has no parent: a frame never gets a
second parent, so neither does base_frame (odom) or odom_frame (map) where the tree already gives
it one (wheel odometry, a URDF rooted elsewhere, another localisation). Map mode waits for its
mount as long as it takes, and so does odom mode once it has found one. The decision is said
once. In odom and map mode world_frame, where ~/map lives, hangs under odom_frame or map_frame by
a static transform (the first camera's mount), so the map is connected too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vggt_ros.tf_buffer import Transforms

TF_MODES = ('odom', 'map', 'camera', 'none')


@dataclass(frozen=True)
class Placement:
    """What to publish for one frame.

    transforms: (parent, child, parent_from_child) to put on /tf.
    body: the frame ~/odometry and ~/path describe, and its pose in `world`.
    note: something to say once (the mode in force and why), or a reason no TF went out.
    static: (parent, world_frame, parent_from_world) for /tf_static, in odom and map mode.
    """

    transforms: tuple[tuple[str, str, np.ndarray], ...]
    world: str
    body: str
    body_pose: np.ndarray
    note: str | None = None
    static: tuple[str, str, np.ndarray] | None = None
    note_kind: str = 'tf mode'  # what the note is about: its log lines are throttled per kind


class TfLayout:
    """Decides, frame by frame, which transforms carry the camera pose into the robot's tree."""

    def __init__(self, transforms: Transforms, values: Mapping[str, Any]) -> None:
        self.transforms = transforms
        self.mode = values['tf_mode']
        self._first_frame_s: float | None = None
        self._told = False
        # The world's first frame: its stamp, and its mount (base_from_camera) once known; the
        # odom origin is the base then, whatever the scale. Whether this node publishes the
        # robot's edge yet, and whether the pose has been metric (map mode waits for it).
        self._origin_ns: int | None = None
        self._origin_mount: np.ndarray | None = None
        self._publishing = False
        self._metric = False

    def restart(self) -> None:
        """The world restarts at the next frame's camera (the user's ~/reset)."""
        self._origin_ns = None
        self._origin_mount = None
        self._metric = False

    def place(
        self,
        camera: str,
        pose: np.ndarray,
        world_pose: np.ndarray,
        stamp_ns: int,
        now_s: float,
        values: Mapping[str, Any],
        metric: bool = True,
    ) -> Placement:
        """`pose`: the camera in the model's world (optical axes, published scale);
        `world_pose`: the same in world_frame's axes (world_axes), for camera mode; `metric`:
        whether that scale is metres yet (map mode waits for it)."""
        if self._first_frame_s is None:
            self._first_frame_s = now_s
        if self._origin_ns is None:
            self._origin_ns = stamp_ns
        self._metric = self._metric or metric  # an estimate that lapses keeps the world metric
        if self.mode in ('odom', 'map'):
            return self._robot(camera, pose, world_pose, stamp_ns, now_s, values)
        world = values['world_frame']
        if self.mode != 'camera':
            return Placement((), world, camera, world_pose)
        parent = self.transforms.parent(camera)
        if parent not in (None, world):  # a driver's tree (camera_link -> optical frame)
            refusal = (
                f'{camera} has the parent {parent}: no TF is published (a frame never gets a '
                f'second parent); use tf_mode odom with base_frame {self._root(camera)}'
            )
            return Placement((), world, camera, world_pose, refusal, note_kind='tf refused')
        return Placement(((world, camera, world_pose),), world, camera, world_pose)

    def _root(self, frame: str) -> str:
        """The root of the tree `frame` hangs in."""
        seen = {frame}
        while (parent := self.transforms.parent(frame)) is not None and parent not in seen:
            frame = parent
            seen.add(frame)
        return frame

    def _robot(
        self,
        camera: str,
        pose: np.ndarray,
        world_pose: np.ndarray,
        stamp_ns: int,
        now_s: float,
        values: Mapping[str, Any],
    ) -> Placement:
        base, odom = values['base_frame'], values['odom_frame']
        # The mount at the image stamp, or the latest where the tree holds none then (a moving
        # mount's newest transform not in yet, or already forgotten; a static one has every time).
        mount = self._find(base, camera, stamp_ns)
        if mount is None and (mount := self._find(base, camera, 0)) is None:
            return self._no_mount(camera, pose, world_pose, now_s, values)
        if self._origin_mount is None:
            # The mount at the world's first stamp where the tree has it (a late arm's history
            # does); else this frame's, the first with a mount: exact for a fixed mount.
            self._origin_mount = self._find(base, camera, self._origin_ns)
            if self._origin_mount is None:
                self._origin_mount = mount
        odom_from_base = self._origin_mount @ pose @ np.linalg.inv(mount)
        # world_frame is the first camera in world_axes: its mount-from-optical, then the axes.
        world_from_optical = world_pose @ np.linalg.inv(pose)
        parent = odom if self.mode == 'odom' else values['map_frame']
        static = (
            parent,
            values['world_frame'],
            self._origin_mount @ np.linalg.inv(world_from_optical),
        )
        if self.mode == 'odom':
            published = (odom, base, odom_from_base)
        elif not self._metric:  # a correction of metric wheels by a pose of another scale: none
            reason = f'waiting for the metric scale (scale_source {values["scale_source"]})'
            return Placement((), parent, base, odom_from_base, reason, static, 'tf scale')
        elif (wheel := self._find(odom, base, stamp_ns)) is not None:
            published = (parent, odom, odom_from_base @ np.linalg.inv(wheel))
        else:
            reason = f'no {odom} -> {base} at the image stamp yet'
            return Placement((), parent, base, odom_from_base, reason, static, 'tf odometry')
        if not self._publishing and (taken := self._taken(published[1], odom)):
            return Placement((), parent, base, odom_from_base, taken, static, 'tf refused')
        self._publishing = True
        note = self._once(
            f'tf_mode {self.mode}: {base} -> {camera} found; publishing '
            f'{published[0]} -> {published[1]}'
        )
        return Placement((published,), parent, base, odom_from_base, note, static)

    def _taken(self, child: str, odom: str) -> str | None:
        """Why this node must not publish `child`'s parent edge: someone else does already."""
        parent = self.transforms.parent(child)
        if parent is None:
            return None
        advice = (
            f'use tf_mode map, which leaves {odom} -> {child} to it'
            if self.mode == 'odom' and parent == odom
            else f'use base_frame {self._root(child)}'
            if self.mode == 'odom'
            else f'tf_mode map needs {odom} to be a root: run one localisation'
        )
        return (
            f'{child} already has the parent {parent}: no TF is published (a frame never gets a '
            f'second parent); {advice}'
        )

    def _find(self, target: str, source: str, stamp_ns: int) -> np.ndarray | None:
        """target_from_source at `stamp_ns`, or None: one lookup, not a check and then a lookup,
        so a buffer cleared or pruned meanwhile (by the listener's thread) is no error."""
        try:
            return self.transforms.lookup(target, source, stamp_ns)
        except LookupError:
            return None

    def _no_mount(
        self,
        camera: str,
        pose: np.ndarray,
        world_pose: np.ndarray,
        now_s: float,
        values: Mapping[str, Any],
    ) -> Placement:
        # Until a mount places the base, ~/odometry and ~/path describe what the pose is: the
        # camera in world_frame.
        base, world = values['base_frame'], values['world_frame']
        waited = now_s - self._first_frame_s
        if waited < values['tf_timeout']:
            waiting = f'waiting for {base} -> {camera}'
            return Placement((), world, camera, world_pose, waiting, None, 'tf waiting')
        parent = self.transforms.parent(camera)
        if self.mode == 'map' or self._origin_mount is not None:
            # Wheel odometry is there, or the mount was (a looping bag's TF not back yet): the
            # robot's tree is what was asked for, so no fall back.
            waiting = f'waiting for {base} -> {camera}'
            return Placement((), world, camera, world_pose, waiting, None, 'tf waiting')
        if parent is None:
            self.mode = 'camera'
            note = (
                f'tf_mode camera: no {base} -> {camera} after {values["tf_timeout"]:g} s and '
                f'{camera} has no parent, so {values["world_frame"]} -> {camera} is published '
                f'(rviz: fixed frame {values["world_frame"]})'
            )
            return replace(self.place(camera, pose, world_pose, 0, now_s, values), note=note)
        return Placement(
            (),
            world,
            camera,
            world_pose,
            f'{camera} has the parent {parent} but no chain to {base}: no TF is published '
            f'(a frame never gets a second parent); fix base_frame or the TF tree',
            note_kind='tf refused',
        )

    def _once(self, text: str) -> str | None:
        if self._told:
            return None
        self._told = True
        return text
