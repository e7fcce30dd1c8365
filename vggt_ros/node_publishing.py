"""The node's publishers: what the pipeline made of a frame turned into messages and TF.

Per-frame messages come from the table in vggt_ros.node_outputs, built only for outputs that are
switched on and listened to (or always published); the map and the diagnostics follow their own
periods. What the messages carry from frame to frame lives here too: the path, the last body pose
(for the twist) and the transform latched on /tf_static.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.logging import LoggingSeverity
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from vggt_ros import messages
from vggt_ros.body_motion import BodyMotion
from vggt_ros.calibration import calibrated_focal, distortion_note, focal_check
from vggt_ros.metric_scale import ScaleEstimate
from vggt_ros.node_outputs import OUTPUTS, Output, Stamped, scale_values
from vggt_ros.outputs import FrameOutputs, scaled_pose
from vggt_ros.pipeline import StreamPipeline
from vggt_ros.stats import StreamStats, window_fill
from vggt_ros.tf_buffer import Transforms
from vggt_ros.tf_layout import Placement, TfLayout

MAP, DIAGNOSTICS, TF_STATIC = (
    next(o for o in OUTPUTS if o.name == name) for name in ('map', 'diagnostics', 'tf_static')
)

Report = Callable[[str, LoggingSeverity, str], None]
"""Logs a text throttled per kind: (kind, severity, text)."""


def _stamp(nanoseconds: int) -> Time:
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


class NodePublishing:
    """Creates every publisher of the table on `node` and publishes each processed frame.

    The pipeline's voxel map is ~/map; its model and `stats` feed the diagnostics; `report` logs
    the TF layout's notes.
    """

    def __init__(
        self,
        node: Node,
        pipeline: StreamPipeline,
        stats: StreamStats,
        transforms: Transforms,
        values: dict[str, Any],
        report: Report,
    ) -> None:
        self._node = node
        self._pipeline = pipeline
        self._stats = stats
        self._report = report
        self._layout = TfLayout(transforms, values)
        self._static: tuple[str, str, np.ndarray] | None = None  # on /tf_static
        self._motion = BodyMotion()
        self._focal: str | None = None  # the model's focal length against the calibration
        # Frames in the model's window as of the last frame published: the worker's, as the
        # reconstructor's own count passes through 0 while it re-anchors.
        self._window_frames = 0
        self._distortion: str | None = None  # what was said about a distorted camera
        self._path: deque[PoseStamped] = deque(maxlen=values['path.max_length'])
        self._next_map_publish = 0.0
        self._pub = {
            output.name: node.create_publisher(output.kind, output.topic, output.qos)
            for output in OUTPUTS
        }

    def map_wanted(self, values: dict[str, Any]) -> bool:
        """Whether ~/map is published, so that the pipeline accumulates the map only then."""
        return self._wanted(MAP, values)

    def clear_history(self, world_restarted: bool) -> None:
        """Start ~/path and the twist again (the pipeline cleared its history, so the next pose
        jumps); after the user's ~/reset (`world_restarted`) the odom origin too."""
        self._path.clear()
        self._window_frames = 0
        self._motion.restart(origin=world_restarted)
        if world_restarted:
            self._layout.restart()

    def _wanted(self, output: Output, values: dict[str, Any]) -> bool:
        """Whether `output` is switched on and somebody listens (or it is always published)."""
        return values[f'publish_{output.switch}'] and (
            output.always or self._pub[output.name].get_subscription_count() > 0
        )

    def frame(
        self,
        stamp_ns: int,
        camera: str,
        frame: FrameOutputs,
        input_size: tuple[int, int],
        values: dict[str, Any],
        scale: ScaleEstimate | None,
        camera_info: CameraInfo | None,
    ) -> None:
        """Every per-frame output that is switched on and listened to, from the table."""
        stamp = _stamp(stamp_ns)
        metric = scale is None or scale.metric  # None: a fixed scale, the user's word
        placement = self._place(stamp, stamp_ns, camera, frame, values, metric)
        world = Header(stamp=stamp, frame_id=placement.world)
        if self._path and self._path[-1].header.frame_id != placement.world:
            self._path.clear()  # the tf_mode changed: the old path is in another frame
        pose = messages.matrix_to_pose(placement.body_pose)
        self._path.append(PoseStamped(header=world, pose=pose))
        camera_header = Header(stamp=stamp, frame_id=camera)
        motion = self._motion.add(
            (placement.world, placement.body),
            stamp_ns,
            placement.body_pose,
            values['odometry.step_error'],
        )
        stamped = Stamped(
            frame,
            placement,
            world,
            camera_header,
            self._path,
            motion,
            scale,
            values,
            input_size,
            camera_info,
        )
        self._check_calibration(frame, camera_info, input_size)
        self._window_frames = frame.result.frame_index + 1
        for output in OUTPUTS:
            if output.build is not None and self._wanted(output, values):
                message = output.build(stamped)
                if message is not None:
                    self._pub[output.name].publish(message)
        if self._wanted(MAP, values):
            self._publish_map(Header(stamp=stamp, frame_id=values['world_frame']), values)

    def _place(
        self,
        stamp: Time,
        stamp_ns: int,
        camera: str,
        frame: FrameOutputs,
        values: dict[str, Any],
        metric: bool,
    ) -> Placement:
        """Where this frame's pose goes in the TF tree; world_frame hung under it once."""
        options = frame.options
        optical = scaled_pose(frame.result.world_from_camera, 'optical', options.scale)
        placement = self._layout.place(
            camera, optical, frame.pose, stamp_ns, time.monotonic(), values, metric
        )
        if placement.note:
            self._report(placement.note_kind, LoggingSeverity.INFO, placement.note)
        static = placement.static
        if values['publish_tf'] and static is not None and not self._same_static(static):
            transform = messages.matrix_to_transform(static[2], stamp, static[0], static[1])
            self._pub[TF_STATIC.name].publish(TFMessage(transforms=[transform]))
            self._static = static
        return placement

    def _check_calibration(
        self,
        frame: FrameOutputs,
        info: CameraInfo | None,
        input_size: tuple[int, int],
    ) -> None:
        """The model's focal length against the camera's (a calibration of this image size),
        for /diagnostics; a distorted camera said once."""
        calibrated = None
        if info is not None and (info.height, info.width) == tuple(input_size):
            K = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
            calibrated = calibrated_focal(K, input_size[1], frame.size[1])
        self._focal = focal_check(float(frame.result.K[0, 0]), calibrated)
        note = None if info is None else distortion_note(info.distortion_model, info.d)
        if note is not None and note != self._distortion:
            self._report('camera distortion', LoggingSeverity.WARN, note)
        self._distortion = note

    def _same_static(self, static: tuple[str, str, np.ndarray]) -> bool:
        old = self._static
        return old is not None and old[:2] == static[:2] and np.allclose(old[2], static[2])

    def _publish_map(self, header: Header, values: dict[str, Any]) -> None:
        """The accumulated map, every map.period seconds."""
        voxels = self._pipeline.map
        now = time.monotonic()
        if now < self._next_map_publish or not len(voxels):
            return
        self._next_map_publish = now + values['map.period']
        self._pub[MAP.name].publish(
            messages.points_to_cloud(voxels.points[None], voxels.colours[None], header)
        )

    def diagnostics(self, values: dict[str, Any], scale: ScaleEstimate | None) -> None:
        """The stream's health on /diagnostics (every diagnostics_period, by the node's timer)."""
        if not values['publish_diagnostics']:
            return
        snapshot = self._stats.snapshot()
        level, message = snapshot.level(stall_seconds=max(5.0, 5 * values['diagnostics_period']))
        device = self._pipeline.reconstructor.device
        status = messages.diagnostic_status(
            name=f'{self._node.get_fully_qualified_name().lstrip("/")}: stream',
            level=level,
            message=message,
            hardware_id=str(device),
            values={
                **snapshot.as_values(),
                'window': window_fill(self._window_frames, values['window_size']),
                'merging': 'on' if self._pipeline.merging else 'off',
                'device': str(device),
                'preset': values['preset'],
                'image_width': values['image_width'],
                **({'focal': self._focal} if self._focal else {}),
                **scale_values(scale, values),
            },
        )
        self._pub[DIAGNOSTICS.name].publish(
            DiagnosticArray(
                header=Header(stamp=self._node.get_clock().now().to_msg()), status=[status]
            )
        )
