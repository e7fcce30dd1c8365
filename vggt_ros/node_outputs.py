"""Every topic the node publishes, in one table: name, switch, message type, topic, QoS, builder.

A new output is one row and one builder. A row's `switch` is its publish_* parameter (described
in vggt_ros.params.OUTPUTS); per-frame rows are built only when switched on and, unless they are
`always` published, only while somebody subscribes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from copy import copy
from dataclasses import dataclass, field
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path
from rclpy.qos import QoSDurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from vggt_ros import messages
from vggt_ros.body_motion import Motion
from vggt_ros.metric_scale import ScaleEstimate
from vggt_ros.outputs import FrameOutputs
from vggt_ros.registration import register_depth
from vggt_ros.tf_layout import Placement

OUTPUT_QOS = QoSProfile(depth=2)  # reliable: reaches reliable and best-effort subscribers alike
MAP_QOS = QoSProfile(depth=1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
TF_QOS = QoSProfile(depth=100)  # what tf2_ros.TransformBroadcaster uses
TF_STATIC_QOS = QoSProfile(depth=1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)  # as tf2_ros
DIAGNOSTICS_QOS = QoSProfile(depth=10)


@dataclass(frozen=True)
class Stamped:
    """One processed frame and what its messages are stamped and framed with."""

    frame: FrameOutputs
    placement: Placement  # where the pose goes in the TF tree (vggt_ros.tf_layout)
    world: Header  # the image's stamp, the frame the body's pose is given in
    camera: Header  # the image's stamp, the camera frame
    path: Sequence[PoseStamped]  # the path of the body so far, this frame included
    motion: Motion | None = None  # the body's twist since the last frame and covariances
    scale: ScaleEstimate | None = None  # the metric scale in force (scale_source)
    values: Mapping[str, Any] = field(default_factory=dict)  # the parameters for this frame
    input_size: tuple[int, int] = (0, 0)  # (height, width) of the camera image
    camera_info: CameraInfo | None = None  # the camera's own, paired by stamp (or the latest)


@dataclass(frozen=True)
class Output:
    name: str
    switch: str
    kind: type
    topic: str
    qos: QoSProfile
    build: Callable[[Stamped], Any] | None  # None: published by the node on its own schedule;
    # a builder returning None has nothing to publish for this frame
    always: bool = False  # published whether or not anybody listens (TF: tf2 buffers it)


def _tf(out: Stamped) -> TFMessage | None:
    stamp = out.world.stamp
    transforms = [
        messages.matrix_to_transform(pose, stamp, parent, child)
        for parent, child, pose in out.placement.transforms
    ]
    return TFMessage(transforms=transforms) if transforms else None


def _odometry(out: Stamped) -> Odometry:
    placement = out.placement
    return messages.matrix_to_odometry(
        placement.body_pose, out.world.stamp, placement.world, placement.body, out.motion
    )


def _depth(out: Stamped) -> Image:
    return messages.depth_to_image(out.frame.depth, out.camera)


def _camera_info(out: Stamped) -> CameraInfo:
    height, width = out.frame.size
    return messages.intrinsics_to_camera_info(out.frame.result.K, width, height, out.camera)


def _depth_registered(out: Stamped) -> Image | None:
    """Depth at the camera image's resolution and frame (depth.registered), for consumers that
    pair it with the colour image and the camera's own CameraInfo (depth_image_proc)."""
    if not out.values['depth.registered']:
        return None
    depth = register_depth(out.frame.depth, out.input_size, out.frame.size[1])
    return messages.depth_to_image(depth, out.camera)


def _registered_camera_info(out: Stamped) -> CameraInfo | None:
    """The camera's own CameraInfo, stamped and framed like the registered depth."""
    info = out.camera_info
    if not out.values['depth.registered'] or info is None:
        return None
    if (info.height, info.width) != tuple(out.input_size):
        return None  # calibrated for another resolution: it would unproject wrongly
    registered = copy(info)  # the calibration as the camera sent it, under the image's header
    registered.header = out.camera
    return registered


def _confidence(out: Stamped) -> Image:
    return messages.array_to_image(out.frame.result.confidence, '32FC1', out.camera)


def _points(out: Stamped) -> PointCloud2:
    return messages.points_to_cloud(*out.frame.cloud(), out.camera)


def _path(out: Stamped) -> Path:
    return Path(header=out.world, poses=list(out.path))


def scale_values(scale: ScaleEstimate | None, values: Mapping[str, Any]) -> dict[str, str]:
    """The metric scale as diagnostics key/values: its source, whether the outputs are metric,
    the estimate (metres per model unit) and its relative spread."""
    if values['scale_source'] == 'fixed':
        return {'scale source': 'fixed', 'metric': 'unknown', 'scale': f'{values["scale"]:g}'}
    estimate = scale or ScaleEstimate(values['scale_source'])
    return {
        'scale source': estimate.source,
        'metric': 'yes' if estimate.metric else 'no (no estimate yet)',
        'scale': f'{estimate.value:.6g}' if estimate.metric else f'{values["scale"]:g} (guess)',
        'scale spread': f'{estimate.spread:.3g}',
        'scale frames': str(estimate.frames),
    }


def _scale(out: Stamped) -> DiagnosticArray | None:
    """~/scale: stamped like the frame, WARN while the outputs are not metric."""
    if out.scale is None:
        return None
    values = scale_values(out.scale, out.values)
    status = messages.diagnostic_status(
        name='metric scale',
        level=0 if out.scale.metric else 1,
        message=f'{values["scale source"]}: {values["scale"]} m per model unit',
        hardware_id='',
        values=values,
    )
    return DiagnosticArray(header=out.world, status=[status])


OUTPUTS: tuple[Output, ...] = (
    Output('tf', 'tf', TFMessage, '/tf', TF_QOS, _tf, always=True),
    Output('tf_static', 'tf', TFMessage, '/tf_static', TF_STATIC_QOS, None, always=True),
    Output('depth', 'depth', Image, '~/depth', OUTPUT_QOS, _depth),
    Output('camera_info', 'depth', CameraInfo, '~/depth/camera_info', OUTPUT_QOS, _camera_info),
    # The same, where image_transport (depth_image_proc, rviz2) looks for ~/depth's camera_info.
    Output('depth_info', 'depth', CameraInfo, '~/camera_info', OUTPUT_QOS, _camera_info),
    Output(
        'depth_registered',
        'depth',
        Image,
        '~/depth_registered/image',
        OUTPUT_QOS,
        _depth_registered,
    ),
    Output(
        'depth_registered_info',
        'depth',
        CameraInfo,
        '~/depth_registered/camera_info',
        OUTPUT_QOS,
        _registered_camera_info,
    ),
    Output('confidence', 'confidence', Image, '~/confidence', OUTPUT_QOS, _confidence),
    Output('points', 'points', PointCloud2, '~/points', OUTPUT_QOS, _points),
    Output('odometry', 'odometry', Odometry, '~/odometry', OUTPUT_QOS, _odometry),
    Output('path', 'path', Path, '~/path', OUTPUT_QOS, _path),
    Output('map', 'map', PointCloud2, '~/map', MAP_QOS, None),
    Output('scale', 'scale', DiagnosticArray, '~/scale', OUTPUT_QOS, _scale),
    Output('diagnostics', 'diagnostics', DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS, None),
)
