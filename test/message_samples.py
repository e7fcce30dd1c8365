"""Known messages with hand-computed contents, shared by the conversion tests and the
separate-process middleware test."""

import numpy as np
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from vggt_ros.messages import array_to_image, matrix_to_transform, points_to_cloud

STAMP = Time(sec=1700000000, nanosec=123456789)
HEADER = Header(stamp=STAMP, frame_id='camera_optical_frame')

IMAGE_RGB = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
CLOUD_POINTS = np.array(
    [[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], [[-1.0, -2.0, 0.5], [6.0, 7.0, 8.0]]], dtype=np.float32
)
CLOUD_COLOURS = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [1, 2, 3]]], dtype=np.uint8)
CLOUD_VALID = np.array([[True, True], [True, False]])
# A quarter turn about z and a translation: a transform with a hand-known quaternion.
WORLD_FROM_CAMERA = np.array(
    [[0.0, -1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 1.0, 3.0], [0.0, 0.0, 0.0, 1.0]]
)
QUARTER_TURN_Z_XYZW = (0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5))


def sample_image():
    return array_to_image(IMAGE_RGB, 'rgb8', HEADER)


def sample_cloud():
    return points_to_cloud(CLOUD_POINTS, CLOUD_COLOURS, HEADER, CLOUD_VALID)


def sample_transform():
    return matrix_to_transform(WORLD_FROM_CAMERA, STAMP, 'vggt_world', 'camera_optical_frame')
