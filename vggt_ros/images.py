"""Pixels out of image messages, as numpy arrays, without ROS.

The fields of sensor_msgs/Image and CompressedImage are the same in rclpy and in rosbags, so the
node and the bag evaluator decode through these functions alike (duck-typed on the fields). The
message buffer is read as a numpy view where the layout allows, honouring ``step`` padding and
``is_bigendian``; colour conversion is cv_bridge's when ROS provides it, else the same OpenCV calls
cv_bridge makes (vision_opencv cv_bridge/src/cv_bridge.cpp, getConversionCodes), so both give
identical bytes.
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import cv2
import numpy as np
from PIL import Image as PILImage

UNSUPPORTED = 'unsupported encoding'
CORRUPT = 'corrupt image'
TOO_LARGE = 'image too large'
ERROR_KINDS = (UNSUPPORTED, CORRUPT, TOO_LARGE)


class ImageError(ValueError):
    """An image that cannot be used; ``kind`` (one of ERROR_KINDS) is what callers count by."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


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


U8, U16 = np.dtype(np.uint8), np.dtype(np.uint16)

# encoding -> (numpy dtype, channels): the plain layouts messages.array_to_image builds.
IMAGE_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    'rgb8': (U8, 3),
    'bgr8': (U8, 3),
    'rgba8': (U8, 4),
    'bgra8': (U8, 4),
    'mono8': (U8, 1),
    '16UC1': (U16, 1),
    'mono16': (U16, 1),
    '32FC1': (np.dtype(np.float32), 1),
}
# Colour encoding -> (dtype, interleaved values per pixel, OpenCV code to RGB or None if already
# RGB). The codes are cv_bridge's; ROS names a Bayer pattern by its top-left 2x2, OpenCV by the
# second row's 2nd and 3rd pixels, hence bayer_rggb8 -> BayerBG. nv12/nv21: 4:2:0, 3/2 rows high.
_LAYOUTS: dict[str, tuple[np.dtype, int, int | None]] = {
    'rgb8': (U8, 3, None),
    'bgr8': (U8, 3, cv2.COLOR_BGR2RGB),
    'rgba8': (U8, 4, cv2.COLOR_RGBA2RGB),
    'bgra8': (U8, 4, cv2.COLOR_BGRA2RGB),
    'mono8': (U8, 1, cv2.COLOR_GRAY2RGB),
    'mono16': (U16, 1, cv2.COLOR_GRAY2RGB),
    'rgb16': (U16, 3, None),
    'bgr16': (U16, 3, cv2.COLOR_BGR2RGB),
    'rgba16': (U16, 4, cv2.COLOR_RGBA2RGB),
    'bgra16': (U16, 4, cv2.COLOR_BGRA2RGB),
    'yuv422': (U8, 2, cv2.COLOR_YUV2RGB_UYVY),
    'yuv422_yuy2': (U8, 2, cv2.COLOR_YUV2RGB_YUY2),
    'bayer_rggb8': (U8, 1, cv2.COLOR_BayerBG2RGB),
    'bayer_bggr8': (U8, 1, cv2.COLOR_BayerRG2RGB),
    'bayer_gbrg8': (U8, 1, cv2.COLOR_BayerGR2RGB),
    'bayer_grbg8': (U8, 1, cv2.COLOR_BayerGB2RGB),
    'nv12': (U8, 1, cv2.COLOR_YUV2RGB_NV12),
    'nv21': (U8, 1, cv2.COLOR_YUV2RGB_NV21),
}
# Other names of the same layouts: generic OpenCV types read as cv_bridge shares them (8UC3 is
# bgr8's CV_8UC3), and the FourCC names sensor_msgs added for the 4:2:2 orders.
_ALIASES = {
    '8UC1': 'mono8',
    '8UC3': 'bgr8',
    '16UC1': 'mono16',
    'uyvy': 'yuv422',
    'yuyv': 'yuv422_yuy2',
}
_PLANAR_420 = ('nv12', 'nv21')
_PAIRED_422 = ('yuv422', 'yuv422_yuy2')
COLOUR_ENCODINGS = (*_LAYOUTS, *_ALIASES)
DEPTH_ENCODINGS = ('32FC1', '16UC1', 'mono16')
COMPRESSED_FORMATS = ('jpeg', 'png')


def unsupported_encoding(encoding: str, supported: tuple[str, ...]) -> ImageError:
    message = f'unsupported image encoding {encoding!r}; supported: {", ".join(supported)}'
    return ImageError(UNSUPPORTED, message)


def _check_size(width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            TOO_LARGE,
            f'{width}x{height} image ({width * height} pixels) is above the limit of '
            f'{max_pixels} pixels',
        )


def _pixels(msg: ImageMessage, dtype: np.dtype, channels: int, rows: int) -> np.ndarray:
    """``rows`` x width (x channels) pixels in native byte order, a view unless swapped."""
    height, width, step = msg.height, msg.width, msg.step
    row_bytes = width * channels * dtype.itemsize
    if height == 0 or width == 0:
        raise ImageError(CORRUPT, f'corrupt {msg.encoding} image: {width}x{height} has no pixels')
    if step < row_bytes or len(msg.data) < rows * step:
        raise ImageError(
            CORRUPT,
            f'corrupt {msg.encoding} image: {width}x{height} needs step >= {row_bytes} and '
            f'{rows * step} bytes, got step {step} and {len(msg.data)} bytes',
        )
    buffer = np.frombuffer(msg.data, dtype=np.uint8, count=rows * step).reshape(rows, step)
    wire = dtype.newbyteorder('>' if msg.is_bigendian else '<')
    pixels = buffer[:, :row_bytes].view(wire)
    if not wire.isnative:
        pixels = pixels.astype(dtype)
    return pixels.reshape(rows, width, channels) if channels > 1 else pixels.reshape(rows, width)


def image_to_array(msg: ImageMessage) -> np.ndarray:
    """Return the pixels of a plain-layout Image as HxW or HxWxC in native byte order.

    A view of the message buffer whenever no byte swap is needed.
    """
    if msg.encoding not in IMAGE_ENCODINGS:
        raise unsupported_encoding(msg.encoding, tuple(IMAGE_ENCODINGS))
    dtype, channels = IMAGE_ENCODINGS[msg.encoding]
    return _pixels(msg, dtype, channels, msg.height)


def _check_parity(msg: ImageMessage, encoding: str) -> None:
    """Chroma is shared by pixel pairs (4:2:2) or 2x2 blocks (4:2:0), so they cannot be odd."""
    if encoding in _PAIRED_422 and msg.width % 2:
        need = 'an even width'
    elif encoding in _PLANAR_420 and (msg.width % 2 or msg.height % 2):
        need = 'an even width and height'
    else:
        return
    raise ImageError(
        CORRUPT, f'corrupt {msg.encoding} image: {msg.width}x{msg.height}, chroma needs {need}'
    )


def image_to_rgb(msg: ImageMessage, max_pixels: int | None = None) -> np.ndarray:
    """Return a colour Image (any of COLOUR_ENCODINGS) as HxWx3 uint8 RGB; a view for rgb8.

    The size is checked against ``max_pixels`` before the data is read. YUV is BT.601 video range
    (OpenCV's, as cv_bridge). 16 bits go to 8 as cv_bridge's convertTo(CV_8U, 255 / 65535):
    round(value * 255 / 65535), so 0, 128, 129, 65535 -> 0, 0, 1, 255.
    """
    _check_size(msg.width, msg.height, max_pixels)
    encoding = _ALIASES.get(msg.encoding, msg.encoding)
    if encoding not in _LAYOUTS:
        raise unsupported_encoding(msg.encoding, COLOUR_ENCODINGS)
    _check_parity(msg, encoding)
    dtype, channels, _ = _LAYOUTS[encoding]
    rows = msg.height * 3 // 2 if encoding in _PLANAR_420 else msg.height
    pixels = _pixels(msg, dtype, channels, rows)
    return pixels if encoding == 'rgb8' else _convert(pixels, encoding)


@functools.cache
def _cv_bridge() -> Callable[[np.ndarray, str, str], np.ndarray] | None:
    """cv_bridge's conversion (imgmsg_to_cv2's second half), if a sourced ROS 2 provides it."""
    try:
        from cv_bridge.boost.cv_bridge_boost import cvtColor2
    except ImportError:
        return None
    return cvtColor2


def _convert(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """RGB of decoded pixels: cv_bridge's own conversion when available, else the same in OpenCV."""
    bridge = _cv_bridge()
    if bridge is not None and encoding not in _PLANAR_420:  # cv_bridge has no nv12/nv21
        return bridge(np.ascontiguousarray(pixels), encoding, 'rgb8')
    code = _LAYOUTS[encoding][2]
    pixels = _to_8bit(pixels)
    return pixels if code is None else cv2.cvtColor(pixels, code)


def _to_8bit(pixels: np.ndarray) -> np.ndarray:
    # convertScaleAbs rounds and saturates like cv_bridge's convertTo (values are non-negative).
    return cv2.convertScaleAbs(pixels, alpha=255 / 65535) if pixels.dtype == U16 else pixels


def _header_size(data: bytes, fmt: str) -> tuple[int, int]:
    """(width, height) from the header alone, before anything decodes or allocates pixels.

    A PNG's first chunk is IHDR, at a fixed offset; Pillow finds a JPEG's frame header. Pillow's
    own decompression-bomb refusal is an 'image too large' too; its warning is silenced, since
    the caller checks the size against max_pixels.
    """
    if data[:8] == b'\x89PNG\r\n\x1a\n' and data[12:16] == b'IHDR' and len(data) >= 24:
        return struct.unpack('>II', data[16:24])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data), formats=('JPEG',)) as header:
                return header.size
    except PILImage.DecompressionBombError as error:
        raise ImageError(TOO_LARGE, f'{fmt!r} image too large: {error}') from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(CORRUPT, f'cannot decode {fmt!r} image: {error}') from None


_DECODED_TO_RGB = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}


def compressed_to_rgb(msg: CompressedImageMessage, max_pixels: int | None = None) -> np.ndarray:
    """Decode a jpeg or png CompressedImage (8 or 16 bits) to HxWx3 uint8 RGB.

    The header's size is checked against ``max_pixels`` first, so a decompression bomb is refused
    without decoding. 16-bit PNGs go to 8 bits by image_to_rgb's rule, not saturated.
    """
    fmt = msg.format.lower()
    if not any(name in fmt for name in COMPRESSED_FORMATS):
        raise ImageError(
            UNSUPPORTED,
            f'unsupported compressed format {msg.format!r}; supported: '
            f'{", ".join(COMPRESSED_FORMATS)}',
        )
    data = bytes(msg.data)
    _check_size(*_header_size(data, msg.format), max_pixels)
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise ImageError(CORRUPT, f'cannot decode {msg.format!r} image: {error}') from None
    channels = 0 if decoded is None else 1 if decoded.ndim == 2 else decoded.shape[2]
    if channels not in _DECODED_TO_RGB:
        raise ImageError(CORRUPT, f'cannot decode {msg.format!r} image: OpenCV could not read it')
    return cv2.cvtColor(_to_8bit(decoded), _DECODED_TO_RGB[channels])


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
