"""Conversions between numpy arrays and ROS 2 messages.

Plain numpy, vectorised, so they run the same with or without cv_bridge and
sensor_msgs_py (neither is on PyPI) and a 518x392 cloud never loops over points.
Decoding lives in vggt_ros.images (shared with the ROS-free bag evaluator).
"""

from __future__ import annotations

import array
from collections.abc import Mapping
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose, Quaternion, Transform, TransformStamped, Vector3
from nav_msgs.msg import Odometry
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from vggt_ros.body_motion import Motion
from vggt_ros.images import (
    IMAGE_ENCODINGS,
    unsupported_encoding,
)

# x, y, z, rgb: four float32 fields, rgb packed as 0x00RRGGBB reinterpreted as float32,
# the layout rviz2 and PCL read.
POINT_FIELDS = tuple(
    PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
    for i, name in enumerate(('x', 'y', 'z', 'rgb'))
)
POINT_STEP = 16


def _message_buffer(shape: tuple[int, ...], dtype: np.dtype) -> tuple[array.array, np.ndarray]:
    """A zeroed array.array('B') for a message's data field and a numpy view of it: arrays are
    written straight into the buffer the message will hold (see _with_data)."""
    buffer = array.array('B', bytes(1)) * (int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return buffer, np.frombuffer(buffer, dtype=dtype).reshape(shape)


def _byte_array(pixels: np.ndarray) -> array.array:
    buffer, view = _message_buffer(pixels.shape, pixels.dtype)
    np.copyto(view, pixels)
    return buffer


def _with_data(message_type: type, data: array.array, **fields: Any) -> Any:
    """A message holding `data` itself. Generated constructors copy a data argument, and so do
    setters without field checks (the default since Jazzy); with checks, an array.array('B') is
    kept as it is, so a frame's megabytes are not copied twice more before publishing."""
    checked = {'check_fields': True} if '_check_fields' in message_type.__slots__ else {}
    message = message_type(**checked, **fields)
    message.data = data
    return message


def array_to_image(pixels: np.ndarray, encoding: str, header: Header) -> Image:
    """Build an Image from HxW or HxWxC pixels in ``encoding`` (no padding)."""
    if encoding not in IMAGE_ENCODINGS:
        raise unsupported_encoding(encoding, tuple(IMAGE_ENCODINGS))
    dtype, channels = IMAGE_ENCODINGS[encoding]
    height, width = pixels.shape[:2]
    expected = (height, width, channels) if channels > 1 else (height, width)
    if pixels.shape != expected:
        raise ValueError(f'{encoding} needs shape {expected}, got {pixels.shape}')
    return _with_data(
        Image,
        _byte_array(pixels.astype(dtype, copy=False)),
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=not np.little_endian,
        step=width * channels * dtype.itemsize,
    )


def depth_to_image(depth: np.ndarray, header: Header) -> Image:
    """A 32FC1 depth (or any single-channel float) Image, REP-118 style."""
    return array_to_image(depth, '32FC1', header)


def pack_rgb(colours: np.ndarray) -> np.ndarray:
    """Pack ...x3 uint8 colours into float32 whose bits are 0x00RRGGBB."""
    c = colours.astype(np.uint32)
    return ((c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]).view(np.float32)


def points_to_cloud(
    points: np.ndarray,
    colours: np.ndarray,
    header: Header,
    valid: np.ndarray | None = None,
) -> PointCloud2:
    """An organised HxW PointCloud2 (x, y, z, rgb float32); invalid points are NaN."""
    height, width = points.shape[:2]
    if points.shape != (height, width, 3) or colours.shape != (height, width, 3):
        raise ValueError(
            f'points and colours must be HxWx3, got {points.shape} and {colours.shape}'
        )
    data, cloud = _message_buffer((height, width, 4), np.float32)
    for axis in range(3):  # column by column: three times faster than one strided [..., :3] copy
        cloud[..., axis] = points[..., axis]
    cloud[..., 3] = pack_rgb(colours)
    if valid is not None:
        cloud[~valid, :3] = np.nan
    return _with_data(
        PointCloud2,
        data,
        header=header,
        height=height,
        width=width,
        fields=list(POINT_FIELDS),
        is_bigendian=not np.little_endian,
        point_step=POINT_STEP,
        row_step=POINT_STEP * width,
        is_dense=False,
    )


def cloud_to_arrays(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray]:
    """Read a cloud written by :func:`points_to_cloud`: (HxWx3 xyz, HxWx3 uint8 rgb)."""
    names = [field.name for field in msg.fields]
    if names != ['x', 'y', 'z', 'rgb'] or msg.point_step != POINT_STEP:
        raise ValueError(f'expected fields x, y, z, rgb with point_step 16, got {names}')
    flat = np.frombuffer(msg.data, dtype=np.float32).reshape(msg.height, msg.width, 4)
    rgb = flat[..., 3].view(np.uint32)
    colours = np.stack([(rgb >> 16) & 0xFF, (rgb >> 8) & 0xFF, rgb & 0xFF], axis=-1)
    return flat[..., :3], colours.astype(np.uint8)


def _pose_parts(matrix: np.ndarray) -> tuple[Vector3, Quaternion]:
    x, y, z = (float(v) for v in matrix[:3, 3])
    rotation = Rotation.from_matrix(np.asarray(matrix[:3, :3], dtype=np.float64))
    # Scalar last like ROS; canonical (w >= 0) so one rotation always gives the same message.
    qx, qy, qz, qw = (float(v) for v in rotation.as_quat(canonical=True))
    return Vector3(x=x, y=y, z=z), Quaternion(x=qx, y=qy, z=qz, w=qw)


def matrix_to_transform(
    parent_from_child: np.ndarray, stamp: Time, parent: str, child: str
) -> TransformStamped:
    """TransformStamped parent -> child from a 4x4 rigid transform."""
    translation, rotation = _pose_parts(parent_from_child)
    return TransformStamped(
        header=Header(stamp=stamp, frame_id=parent),
        child_frame_id=child,
        transform=Transform(translation=translation, rotation=rotation),
    )


def matrix_to_pose(parent_from_child: np.ndarray) -> Pose:
    """geometry_msgs/Pose of a 4x4 rigid transform."""
    translation, rotation = _pose_parts(parent_from_child)
    pose = Pose(orientation=rotation)
    pose.position.x, pose.position.y, pose.position.z = translation.x, translation.y, translation.z
    return pose


def matrix_to_odometry(
    parent_from_child: np.ndarray,
    stamp: Time,
    parent: str,
    child: str,
    motion: Motion | None = None,
) -> Odometry:
    """nav_msgs/Odometry of a pose and, when given, its motion: the (linear, angular) twist in
    `child` where known, and both covariances."""
    odometry = Odometry(header=Header(stamp=stamp, frame_id=parent), child_frame_id=child)
    odometry.pose.pose = matrix_to_pose(parent_from_child)
    if motion is None:
        return odometry
    if motion.twist is not None:
        for vector, values in zip(
            (odometry.twist.twist.linear, odometry.twist.twist.angular), motion.twist, strict=True
        ):
            vector.x, vector.y, vector.z = (float(value) for value in values)
    odometry.pose.covariance = [float(v) for v in motion.pose_covariance.reshape(36)]
    odometry.twist.covariance = [float(v) for v in motion.twist_covariance.reshape(36)]
    return odometry


def intrinsics_to_camera_info(K: np.ndarray, width: int, height: int, header: Header) -> CameraInfo:
    """CameraInfo for a pinhole camera without distortion at the given resolution."""
    k = [float(v) for v in np.asarray(K, dtype=np.float64).reshape(9)]
    projection = [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0]
    return CameraInfo(
        header=header,
        width=int(width),
        height=int(height),
        distortion_model='plumb_bob',
        d=[0.0] * 5,
        k=k,
        r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p=projection,
    )


def diagnostic_status(
    name: str, level: int, message: str, hardware_id: str, values: Mapping[str, object]
) -> DiagnosticStatus:
    """DiagnosticStatus with level 0 OK, 1 WARN, 2 ERROR, 3 STALE; values become strings."""
    return DiagnosticStatus(
        level=bytes([level]),
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=key, value=str(value)) for key, value in values.items()],
    )
