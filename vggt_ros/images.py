"""Pixels out of image messages, as numpy arrays, without ROS.

The fields of sensor_msgs/Image and CompressedImage are the same in rclpy and in rosbags, so the
node and the bag evaluator decode through these functions alike (duck-typed on the fields). Plain
numpy: a view of the message buffer where the layout allows, honouring ``step`` padding and
``is_bigendian``.
"""

from __future__ import annotations

import io
from typing import Any, Protocol

import numpy as np


class ImageMessage(Protocol):
    """The fields of sensor_msgs/Image that decoding reads."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: Any


class CompressedImageMessage(Protocol):
    """The fields of sensor_msgs/CompressedImage that decoding reads."""

    format: str
    data: Any


# encoding -> (numpy dtype, channels)
IMAGE_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    'rgb8': (np.dtype(np.uint8), 3),
    'bgr8': (np.dtype(np.uint8), 3),
    'rgba8': (np.dtype(np.uint8), 4),
    'bgra8': (np.dtype(np.uint8), 4),
    'mono8': (np.dtype(np.uint8), 1),
    '16UC1': (np.dtype(np.uint16), 1),
    'mono16': (np.dtype(np.uint16), 1),
    '32FC1': (np.dtype(np.float32), 1),
}
COLOUR_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')
DEPTH_ENCODINGS = ('32FC1', '16UC1', 'mono16')
COMPRESSED_FORMATS = ('jpeg', 'png')


def unsupported_encoding(encoding: str, supported: tuple[str, ...]) -> ValueError:
    return ValueError(f'unsupported image encoding {encoding!r}; supported: {", ".join(supported)}')


def image_to_array(msg: ImageMessage) -> np.ndarray:
    """Return the pixels of an Image as HxW or HxWxC in native byte order.

    A view of the message buffer whenever no byte swap is needed.
    """
    if msg.encoding not in IMAGE_ENCODINGS:
        raise unsupported_encoding(msg.encoding, tuple(IMAGE_ENCODINGS))
    dtype, channels = IMAGE_ENCODINGS[msg.encoding]
    height, width, step = msg.height, msg.width, msg.step
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes or len(msg.data) < height * step:
        raise ValueError(
            f'corrupt {msg.encoding} image: {width}x{height} needs step >= {row_bytes} and '
            f'{height * step} bytes, got step {step} and {len(msg.data)} bytes'
        )
    rows = np.frombuffer(msg.data, dtype=np.uint8, count=height * step).reshape(height, step)
    wire = dtype.newbyteorder('>' if msg.is_bigendian else '<')
    pixels = rows[:, :row_bytes].view(wire)
    if not wire.isnative:
        pixels = pixels.astype(dtype)
    return (
        pixels.reshape(height, width, channels) if channels > 1 else pixels.reshape(height, width)
    )


def image_to_rgb(msg: ImageMessage) -> np.ndarray:
    """Return a colour Image as HxWx3 uint8 RGB (a view for rgb8)."""
    if msg.encoding not in COLOUR_ENCODINGS:
        raise unsupported_encoding(msg.encoding, COLOUR_ENCODINGS)
    pixels = image_to_array(msg)
    if msg.encoding == 'mono8':
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if msg.encoding.startswith('bgr'):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return pixels[:, :, :3]


def compressed_to_rgb(msg: CompressedImageMessage) -> np.ndarray:
    """Decode a jpeg or png CompressedImage to HxWx3 uint8 RGB."""
    from PIL import Image as PILImage

    fmt = msg.format.lower()
    if not any(name in fmt for name in COMPRESSED_FORMATS):
        raise ValueError(
            f'unsupported compressed format {msg.format!r}; supported: '
            f'{", ".join(COMPRESSED_FORMATS)}'
        )
    try:
        with PILImage.open(io.BytesIO(bytes(msg.data))) as decoded:
            return np.asarray(decoded.convert('RGB'))
    except (OSError, SyntaxError) as error:
        raise ValueError(f'cannot decode {msg.format!r} image: {error}') from error


def depth_to_metres(msg: ImageMessage, millimetres: float = 0.001) -> np.ndarray:
    """HxW float32 metres from a 32FC1 (metres) or 16UC1/mono16 (millimetres) depth Image.

    Invalid pixels (0, negative, non-finite) become NaN, as REP-117/118 read them.
    """
    if msg.encoding not in DEPTH_ENCODINGS:
        raise unsupported_encoding(msg.encoding, DEPTH_ENCODINGS)
    pixels = image_to_array(msg)
    if msg.encoding == '32FC1':
        depth = pixels.astype(np.float32, copy=True)
    else:
        depth = pixels.astype(np.float32) * np.float32(millimetres)
    depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth
