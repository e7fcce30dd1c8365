"""numpy <-> ROS message conversions and image decoding, pinned by hand-computed bytes."""

import io
import struct
import sys

import numpy as np
import pytest
from message_samples import (
    CLOUD_COLOURS,
    CLOUD_POINTS,
    HEADER,
    QUARTER_TURN_Z_XYZW,
    STAMP,
    WORLD_FROM_CAMERA,
    sample_cloud,
    sample_transform,
)
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage, Image, PointField

from vggt_ros import images, messages

PAD = 0xAA


def raw_image(encoding, width, height, step, payload, big_endian=False):
    return Image(
        header=HEADER,
        width=width,
        height=height,
        encoding=encoding,
        step=step,
        is_bigendian=big_endian,
        data=bytes(payload),
    )


def padded_2x3_rgb8_bytes():
    # Two rows of three pixels, 9 bytes each, padded to a step of 12.
    return list(range(1, 10)) + [PAD] * 3 + list(range(10, 19)) + [PAD] * 3


def test_rgb8_with_step_padding():
    msg = raw_image('rgb8', 3, 2, 12, padded_2x3_rgb8_bytes())
    rgb = images.image_to_rgb(msg)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert rgb[0].tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert rgb[1].tolist() == [[10, 11, 12], [13, 14, 15], [16, 17, 18]]
    assert np.shares_memory(rgb, np.frombuffer(msg.data, np.uint8)), 'rgb8 should be a view'


def test_bgr8_swaps_channels():
    rgb = images.image_to_rgb(raw_image('bgr8', 3, 2, 12, padded_2x3_rgb8_bytes()))
    assert rgb[0].tolist() == [[3, 2, 1], [6, 5, 4], [9, 8, 7]]
    assert rgb[1, 2].tolist() == [18, 17, 16]


@pytest.mark.parametrize(
    'encoding, expected',
    [
        ('rgba8', [[1, 2, 3], [5, 6, 7]]),
        ('bgra8', [[3, 2, 1], [7, 6, 5]]),
    ],
)
def test_four_channel_encodings_drop_alpha(encoding, expected):
    rgb = images.image_to_rgb(raw_image(encoding, 2, 1, 8, [1, 2, 3, 4, 5, 6, 7, 8]))
    assert rgb[0].tolist() == expected


def test_mono8_is_replicated_to_rgb():
    rgb = images.image_to_rgb(raw_image('mono8', 2, 2, 4, [7, 9, PAD, PAD, 11, 13, PAD, PAD]))
    assert rgb[:, :, 0].tolist() == [[7, 9], [11, 13]]
    assert (rgb == rgb[:, :, :1]).all()


@pytest.mark.parametrize('big_endian, expected', [(True, 0x0102), (False, 0x0201)])
def test_16uc1_honours_endianness(big_endian, expected):
    msg = raw_image('16UC1', 2, 1, 6, [1, 2, 0, 0, PAD, PAD], big_endian)
    depth = images.image_to_array(msg)
    assert depth.dtype == np.uint16 and depth.dtype.isnative
    assert depth.tolist() == [[expected, 0]]


def test_32fc1_little_and_big_endian():
    little = raw_image('32FC1', 1, 1, 4, struct.pack('<f', 1.5))
    big = raw_image('32FC1', 1, 1, 4, struct.pack('>f', -2.25), big_endian=True)
    assert images.image_to_array(little).tolist() == [[1.5]]
    assert images.image_to_array(big).tolist() == [[-2.25]]


def test_unsupported_encoding_names_it_and_the_supported_ones():
    with pytest.raises(ValueError, match="'yuv420'.*rgb8.*bgr8.*mono8"):
        images.image_to_rgb(raw_image('yuv420', 2, 1, 4, [0] * 4))
    with pytest.raises(ValueError, match="'32FC1'.*supported: rgb8"):
        images.image_to_rgb(raw_image('32FC1', 1, 1, 4, [0] * 4))


def test_truncated_image_is_a_clear_error():
    with pytest.raises(ValueError, match='corrupt rgb8 image'):
        images.image_to_rgb(raw_image('rgb8', 3, 2, 9, [0] * 10))
    with pytest.raises(ValueError, match='step >= 9'):
        images.image_to_rgb(raw_image('rgb8', 3, 1, 8, [0] * 8))


def encoded(rgb, fmt):
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format=fmt)
    return CompressedImage(header=HEADER, format=fmt.lower(), data=buffer.getvalue())


def test_png_decodes_exactly():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert (images.compressed_to_rgb(encoded(rgb, 'PNG')) == rgb).all()


def test_jpeg_decodes_to_rgb():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200
    decoded = images.compressed_to_rgb(encoded(rgb, 'JPEG'))
    assert decoded.shape == (16, 16, 3)
    assert np.abs(decoded.astype(int) - rgb).max() <= 3


def test_compressed_errors():
    with pytest.raises(ValueError, match="unsupported compressed format 'webp'"):
        images.compressed_to_rgb(CompressedImage(format='webp', data=b'\x00'))
    with pytest.raises(ValueError, match='cannot decode'):
        images.compressed_to_rgb(CompressedImage(format='jpeg', data=b'not a jpeg'))


def test_depth_image_bytes():
    depth = np.array([[1.5, np.nan]], dtype=np.float32)
    msg = messages.depth_to_image(depth, HEADER)
    assert (msg.encoding, msg.width, msg.height, msg.step) == ('32FC1', 2, 1, 8)
    assert msg.header.stamp == STAMP
    assert bytes(msg.data)[:4] == struct.pack('=f', 1.5)
    assert np.isnan(struct.unpack('=f', bytes(msg.data)[4:])[0])


def test_image_round_trip_and_shape_check():
    rgb = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    assert (images.image_to_rgb(messages.array_to_image(rgb, 'rgb8', HEADER)) == rgb).all()
    with pytest.raises(ValueError, match='needs shape'):
        messages.array_to_image(rgb[..., 0], 'rgb8', HEADER)


def test_2x2_cloud_field_by_field():
    msg = sample_cloud()
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (2, 2, 16, 32)
    assert msg.is_dense is False
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ('x', 0, PointField.FLOAT32, 1),
        ('y', 4, PointField.FLOAT32, 1),
        ('z', 8, PointField.FLOAT32, 1),
        ('rgb', 12, PointField.FLOAT32, 1),
    ]
    data = bytes(msg.data)
    assert len(data) == 64
    assert struct.unpack('=fffI', data[0:16]) == (0.0, 1.0, 2.0, 0xFF0000)
    assert struct.unpack('=fffI', data[16:32]) == (3.0, 4.0, 5.0, 0x00FF00)
    assert struct.unpack('=fffI', data[32:48]) == (-1.0, -2.0, 0.5, 0x0000FF)
    x, y, z, rgb = struct.unpack('=fffI', data[48:64])
    assert np.isnan([x, y, z]).all() and rgb == 0x010203


def test_cloud_reads_back():
    points, colours = messages.cloud_to_arrays(sample_cloud())
    assert (colours == CLOUD_COLOURS).all()
    assert np.array_equal(points[:1], CLOUD_POINTS[:1])
    assert np.isnan(points[1, 1]).all()


def count_lines_run(module_file, fn):
    lines = 0

    def tracer(frame, event, arg):
        nonlocal lines
        if frame.f_code.co_filename != module_file:
            return None
        if event == 'line':
            lines += 1
        return tracer

    sys.settrace(tracer)
    try:
        result = fn()
    finally:
        sys.settrace(None)
    return result, lines


def test_full_resolution_cloud_is_vectorised():
    h, w = 392, 518
    rng = np.random.default_rng(2)
    points = rng.normal(size=(h, w, 3)).astype(np.float32)
    colours = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    msg, lines = count_lines_run(
        messages.__file__, lambda: messages.points_to_cloud(points, colours, HEADER)
    )
    assert lines < 100, f'{lines} lines executed for {h * w} points: a per-point loop?'
    back, back_colours = messages.cloud_to_arrays(msg)
    assert np.array_equal(back, points) and np.array_equal(back_colours, colours)


def test_transform_of_a_quarter_turn():
    tf = sample_transform()
    assert (tf.header.frame_id, tf.child_frame_id) == ('vggt_world', 'camera_optical_frame')
    assert tf.header.stamp == STAMP
    t, q = tf.transform.translation, tf.transform.rotation
    assert (t.x, t.y, t.z) == (1.0, 2.0, 3.0)
    assert np.allclose((q.x, q.y, q.z, q.w), QUARTER_TURN_Z_XYZW)


def test_quaternions_keep_a_non_negative_real_part():
    # q and -q are one rotation; w >= 0 (as the model's rotation_to_quat) keeps messages stable.
    pose = np.eye(4)
    for angle in (0.5, 2.0, 3.0, -3.0, 4.0):
        c, s = np.cos(angle), np.sin(angle)
        pose[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
        q = messages.matrix_to_pose(pose).orientation
        half = np.arctan2(s, c) / 2
        assert np.allclose((q.x, q.y, q.z, q.w), (0.0, 0.0, np.sin(half), np.cos(half)))


def test_odometry_carries_the_pose():
    odom = messages.matrix_to_odometry(WORLD_FROM_CAMERA, STAMP, 'vggt_world', 'cam')
    assert (odom.header.frame_id, odom.child_frame_id) == ('vggt_world', 'cam')
    p, q = odom.pose.pose.position, odom.pose.pose.orientation
    assert (p.x, p.y, p.z) == (1.0, 2.0, 3.0)
    assert np.allclose((q.x, q.y, q.z, q.w), QUARTER_TURN_Z_XYZW)


def test_camera_info_from_intrinsics():
    K = np.array([[300.0, 0.0, 259.0], [0.0, 310.0, 196.0], [0.0, 0.0, 1.0]])
    info = messages.intrinsics_to_camera_info(K, 518, 392, HEADER)
    assert (info.width, info.height, info.header.frame_id) == (518, 392, HEADER.frame_id)
    assert list(info.k) == [300.0, 0.0, 259.0, 0.0, 310.0, 196.0, 0.0, 0.0, 1.0]
    assert list(info.p) == [300.0, 0.0, 259.0, 0.0, 0.0, 310.0, 196.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert list(info.d) == [0.0] * 5 and info.distortion_model == 'plumb_bob'
