"""The stream node: camera images in; camera pose (TF), depth, points, odometry, path, map and
diagnostics out, all stamped with the input image's stamp.

Plumbing only. The parameters are vggt_ros.params, kept on the server by
vggt_ros.node_parameters. The subscription callback only drops the newest image into a
LatestFrameSlot, and one worker thread runs the Reconstructor on it and publishes, so inference
never blocks the executor (parameter and service requests are answered meanwhile) and frames that
arrive during inference replace each other instead of queueing. What becomes of a frame
is the StreamPipeline's decision (vggt_ros.pipeline, shared with the evaluator); its messages and
TF are vggt_ros.node_publishing's, built only for outputs somebody subscribes to.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import ExternalShutdownException
from rclpy.logging import LoggingSeverity
from rclpy.node import Node
from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
)
from rclpy.utilities import get_rmw_implementation_identifier
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger

from vggt_ros import images, params
from vggt_ros.checkpoints import missing_checkpoint, weights_description
from vggt_ros.config_files import transport_note
from vggt_ros.continuity import RESET_REQUESTED
from vggt_ros.latest_frame import LatestFrameSlot
from vggt_ros.metric_scale import ScaleEstimate
from vggt_ros.node_parameters import NodeParameters, StartupError
from vggt_ros.node_publishing import NodePublishing
from vggt_ros.pipeline import MetricSample, StreamPipeline, reconstructor_from_parameters
from vggt_ros.reconstructor import Reconstructor
from vggt_ros.stamp_pairing import StampPairing
from vggt_ros.stats import KindThrottle, StreamStats
from vggt_ros.tf_listener import make_tf

FALLBACK_CAMERA_FRAME = 'vggt_camera_optical_frame'
# Latest wins: a deeper queue would only hand the worker stale frames. sensor_data (REP-2003)
# matches every publisher; reliable only reliable ones, but lets a reliable writer repair loss.
IMAGE_QOS = {
    name: QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=reliability,
        durability=QoSDurabilityPolicy.VOLATILE,
    )
    for name, reliability in (
        ('sensor_data', QoSReliabilityPolicy.BEST_EFFORT),
        ('reliable', QoSReliabilityPolicy.RELIABLE),
    )
}
LOG_THROTTLE_S = 5.0
SHUTDOWN_WAIT_S = 3.0  # the longest destroy_node waits for the frame in hand


class FrameIdError(ValueError):
    """The camera frame is the world frame: publishing it would make a frame its own parent."""

    kind = 'frame id'


@dataclass(frozen=True)
class _Frame:
    msg: Image | CompressedImage
    received_at: float  # time.monotonic() when the callback stored it
    received_ns: int  # the node's clock then (sim time under use_sim_time), for unstamped images


def _decode(msg: Image | CompressedImage, max_pixels: int) -> np.ndarray:
    if isinstance(msg, CompressedImage):
        return images.compressed_to_rgb(msg, max_pixels)
    return images.image_to_rgb(msg, max_pixels)


def _nanoseconds(stamp: Time) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class StreamNode(Node):
    """Runs StreamVGGT on a camera stream and publishes its geometry.

    `reconstructor` replaces the model the parameters describe (tests inject a stand-in); the
    remaining keyword arguments go to rclpy's Node (context, parameter_overrides, ...).
    """

    def __init__(self, *, reconstructor: Reconstructor | None = None, **node_options: Any) -> None:
        super().__init__(params.NODE_NAME, **node_options)
        try:
            self._node_parameters = NodeParameters(self)
            reconstructor = reconstructor or self._load_reconstructor(self._values)
        except StartupError as error:
            self.get_logger().fatal(str(error))
            super().destroy_node()
            raise
        values = self._values
        if warning := params.combination_warning(values):
            self.get_logger().warning(warning)
        if note := transport_note(get_rmw_implementation_identifier(), os.environ):
            self.get_logger().info(note)
        self._stats = StreamStats()
        self._throttle = KindThrottle(LOG_THROTTLE_S)
        self._slot: LatestFrameSlot[_Frame] = LatestFrameSlot()
        self._pipeline = StreamPipeline(reconstructor, values)
        self._transforms, self._tf_listener = make_tf(self)
        self._images_seen = 0  # by the callback, for frame_stride
        self._last_image_ns = 0  # the newest image stamp seen, for backward jumps
        self._publishing = NodePublishing(
            self, self._pipeline, self._stats, self._transforms, values, self._report
        )
        self._subscribe(values['image_transport'], IMAGE_QOS[values['image_qos']])
        self._depths: StampPairing[Image] = StampPairing()
        if values['scale_source'] == 'depth':
            self.create_subscription(Image, 'depth', self._on_depth, IMAGE_QOS[values['image_qos']])
        self._scale: ScaleEstimate | None = None  # the last frame's metric scale
        # The camera's calibration: ~/depth_registered's, and a check on the model's view.
        self._camera_infos: StampPairing[CameraInfo] = StampPairing()
        self.create_subscription(
            CameraInfo,
            'camera_info',
            lambda msg: self._camera_infos.put(_nanoseconds(msg.header.stamp), msg),
            IMAGE_QOS['sensor_data'],
        )
        self.create_service(Trigger, '~/reset', self._on_reset)
        self.create_timer(
            values['diagnostics_period'],
            lambda: self._publishing.diagnostics(self._values, self._scale),
        )
        self._worker = threading.Thread(target=self._work, name='vggt_inference', daemon=True)
        self._worker.start()

    @property
    def _values(self) -> dict[str, Any]:
        """The parameters now: one consistent snapshot, read once per frame."""
        return self._node_parameters.values

    def _load_reconstructor(self, values: dict[str, Any]) -> Reconstructor:
        if reason := missing_checkpoint(values['checkpoint'], values['preset']):
            raise StartupError(f'cannot load the model: {reason}')
        weights = weights_description(values['checkpoint'], values['preset'])
        self.get_logger().info(
            f'loading {weights or "preset " + values["preset"] + " with RANDOM weights"} '
            f'on device {values["device"]}'
        )
        try:
            reconstructor = reconstructor_from_parameters(values)
        except Exception as error:  # noqa: BLE001 - whatever fails here, the node cannot start
            raise StartupError(f'cannot load the model: {error}') from error
        if weights is None:
            self.get_logger().warning(
                f'preset {values["preset"]} without a checkpoint: RANDOM weights, the outputs '
                'are meaningless (use it to check the pipeline only)'
            )
        return reconstructor

    # Topics and services --------------------------------------------------------------------

    def _subscribe(self, transport: str, qos: QoSProfile) -> None:
        message_type, topic = (
            (Image, 'image') if transport == 'raw' else (CompressedImage, 'image/compressed')
        )
        subscription = self.create_subscription(message_type, topic, self._on_image, qos)
        self.get_logger().info(f'waiting for images on {subscription.topic_name}')

    def _on_image(self, msg: Image | CompressedImage) -> None:
        """Store the image for the worker; never waits for inference."""
        self._stats.count('received')
        self._images_seen += 1
        self._forget_old_transforms(_nanoseconds(msg.header.stamp))
        if (self._images_seen - 1) % self._values['frame_stride']:
            self._stats.skip('frame stride')
            return
        frame = _Frame(msg, time.monotonic(), self.get_clock().now().nanoseconds)
        if self._slot.put(frame):
            self._stats.count('dropped')

    def _forget_old_transforms(self, stamp_ns: int) -> None:
        """On a backward jump of the stamps (a looping bag), before the frame is processed:
        clear the TF buffer, which would refuse the new loop's transforms as older than its
        history (tf2's TF_OLD_DATA) until time caught up. Static transforms stay."""
        last, self._last_image_ns = self._last_image_ns, stamp_ns or self._last_image_ns
        if stamp_ns and last and last - stamp_ns > self._values['time_jump_tolerance'] * 1e9:
            self._transforms.clear()

    def _on_depth(self, msg: Image) -> None:
        """Keep a metric depth image for the camera image of its stamp."""
        self._depths.put(_nanoseconds(msg.header.stamp), msg)

    def _metric_sample(
        self, stamp_ns: int, camera: str, values: dict[str, Any]
    ) -> MetricSample | None:
        """What the frame brings for scale_source: the depth image of its stamp, or where the
        other odometry (odom_frame -> camera through the mount) puts the camera then."""
        if values['scale_source'] == 'depth':
            message = self._depths.nearest(stamp_ns)
            if message is None:
                return None
            try:
                return MetricSample(depth=images.depth_to_metres(message))
            except images.ImageError as error:
                self._report('depth', LoggingSeverity.WARN, f'ignoring a depth image: {error}')
                return None
        if values['scale_source'] == 'odometry':
            try:  # one lookup: the listener's thread may prune or clear the buffer meanwhile
                odometry = self._transforms.lookup(values['odom_frame'], camera, stamp_ns)
            except LookupError:
                return None
            return MetricSample(odometry_camera=odometry)
        return None

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        # The worker resets before its next frame, so a reset never races a running step.
        self._pipeline.request_reset()
        response.success = True
        response.message = 'the next frame starts a new world'
        return response

    # The worker -----------------------------------------------------------------------------

    def _work(self) -> None:
        while (frame := self._slot.take()) is not None:
            try:
                self._process(frame)
            except Exception:  # noqa: BLE001 - one bad frame must not end the stream
                if self._slot.closed:
                    return  # shutting down: the publishers are going
                self._fail(
                    'unexpected', f'unexpected error on a frame, skipped:\n{traceback.format_exc()}'
                )

    def _process(self, frame: _Frame) -> None:
        """Decode the frame, hand it to the pipeline, and publish or count what became of it."""
        values = self._values
        header = frame.msg.header
        try:
            rgb = _decode(frame.msg, values['max_image_pixels'])
            camera = self._camera_frame(header.frame_id, values)
        except (images.ImageError, FrameIdError) as error:
            self._fail(error.kind, f'skipping an image: {error}')
            return
        if camera == FALLBACK_CAMERA_FRAME and not header.frame_id:
            self._report(
                'no frame_id',
                LoggingSeverity.WARN,
                f'the image has no frame_id and camera_frame is not set: its pose is published '
                f'for {FALLBACK_CAMERA_FRAME}, which no robot tree holds; set camera_frame to '
                "the camera's optical frame",
            )
        stamp_ns = _nanoseconds(header.stamp)
        outcome = self._pipeline.process(
            rgb,
            stamp_ns,
            frame.received_ns,
            values,
            update_map=self._publishing.map_wanted(values),
            metric=self._metric_sample(stamp_ns, camera, values),
        )
        if self._slot.closed:  # shut down while the model ran: the publishers are going
            return
        self._scale = outcome.scale or self._scale
        if outcome.warning:
            self._log(LoggingSeverity.WARN, outcome.warning)
        if outcome.reset:
            self._log_reset(outcome.reset)
        if outcome.history_cleared:
            self._publishing.clear_history(world_restarted=outcome.reset == RESET_REQUESTED)
        if outcome.status == 'skipped':
            self._stats.skip(outcome.kind)
            self._report(outcome.kind, LoggingSeverity.INFO, f'skipping a frame: {outcome.kind}')
        elif outcome.status == 'failed':
            prefix = '' if outcome.kind == 'model' else 'skipping an image: '
            self._fail(outcome.kind, prefix + outcome.error)
        else:
            self._publishing.frame(
                outcome.stamp_ns,
                camera,
                outcome.frame,
                rgb.shape[:2],
                values,
                self._scale,
                self._camera_infos.nearest(outcome.stamp_ns) or self._camera_infos.latest(),
            )
            timings = outcome.frame.result.timings  # a re-anchoring's warm-start included
            model_s = timings.get('model', float('nan')) + timings.get('reanchor', 0.0)
            self._stats.frame_done(model_s, frame.received_at)
            if outcome.reanchored:
                self._stats.count('reanchors')

    @staticmethod
    def _camera_frame(frame_id: str, values: dict[str, Any]) -> str:
        camera = values['camera_frame'] or frame_id or FALLBACK_CAMERA_FRAME
        if camera == values['world_frame']:
            raise FrameIdError(
                f'the camera frame {camera!r} is world_frame: set camera_frame or world_frame'
            )
        return camera

    def _log_reset(self, cause: str) -> None:
        """Say why a new session started, once (never throttled)."""
        if cause == RESET_REQUESTED:
            self._log(LoggingSeverity.INFO, f'{cause}: starting a new session at the origin')
        else:
            self._log(LoggingSeverity.WARN, f'{cause}: starting a new session at the last pose')
        self._stats.count('resets')

    def _fail(self, kind: str, error: str) -> None:
        self._stats.fail(kind, error)
        self._report(
            kind,
            LoggingSeverity.ERROR if kind in ('model', 'unexpected') else LoggingSeverity.WARN,
            error,
        )

    def _report(self, kind: str, severity: LoggingSeverity, text: str) -> None:
        """Log `text`, throttled per kind so that distinct problems never hide each other."""
        held = self._throttle.admit(kind)
        if held is not None:
            self._log(severity, f'{text} ({held} more of this kind held back)' if held else text)

    def _log(self, severity: LoggingSeverity, text: str) -> None:
        # rclpy fixes the severity of each call site: one call per severity, so it never raises.
        logger = self.get_logger()
        if severity == LoggingSeverity.ERROR:
            logger.error(text)
        elif severity == LoggingSeverity.WARN:
            logger.warning(text)
        else:
            logger.info(text)

    # Shutdown -------------------------------------------------------------------------------

    def destroy_node(self) -> None:
        """Stop the worker before the publishers go: it finishes the frame in hand, for up to
        SHUTDOWN_WAIT_S (ros2 launch escalates to SIGTERM after 5 s); a longer one is left to
        end on its own, publishing nothing more."""
        self._slot.close()
        self._worker.join(timeout=SHUTDOWN_WAIT_S)
        if self._worker.is_alive():
            self.get_logger().warning(
                f'the frame in hand is still running after {SHUTDOWN_WAIT_S:g} s: not waiting'
            )
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the node until Ctrl-C or shutdown; exit status 1 if it cannot start."""
    rclpy.init(args=args)  # a context manager only from Kilted's rclpy on, so shut down by hand
    try:
        try:
            node = StreamNode()
        except StartupError:
            return 1  # the node has logged why
        try:
            rclpy.spin(node)
        except ExternalShutdownException:
            pass
        finally:
            node.destroy_node()
    except KeyboardInterrupt:
        pass
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
