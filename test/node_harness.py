"""The node under test and its peer: `Harness` is the package's NodeRun (a StreamNode and a peer
node over the real middleware, which the benchmark and the soak test drive too), with the
tests' constants and messages.

The stand-in model's frames have known poses and depths (POSES, known_source), so what the node
publishes can be checked against what the conventions imply.
"""

import math
from pathlib import Path

import numpy as np
import torch
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from vggt_ros import messages
from vggt_ros.bench import node_run

Harness = node_run.NodeRun  # the package's harness, under the tests' name
TOPICS, NS, TIMEOUT = node_run.OUTPUT_TOPICS, node_run.NS, node_run.TIMEOUT_S
stamp_of, diagnostic_values = node_run.stamp_of, node_run.diagnostic_values

ROOT = Path(__file__).parent.parent
HEIGHT, WIDTH = 70, 126  # multiples of 14: the model sees the image as it is
FX, FY = 100.0, 90.0
CAMERA = 'test_camera_optical_frame'

# World poses of the stand-in's frames: (rotation about the optical y axis in rad, centre).
# Frame 1 moved +1 along the first camera's optical z; frame 2 also turned.
POSES = [(0.0, (0.0, 0.0, 0.0)), (0.0, (0.0, 0.0, 1.0)), (0.5, (0.3, -0.2, 1.5))]


def rot_y(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def known_depth(height, width):
    v, u = np.mgrid[0:height, 0:width]
    return (2.0 + 0.01 * u + 0.02 * v).astype(np.float32)


def pose_encoding(index, height, width):
    """The raw model output for frame `index`: camera-from-world t, quaternion xyzw, fovs."""
    angle, centre = POSES[index % len(POSES)]
    camera_from_world = rot_y(-angle)
    t = -camera_from_world @ np.array(centre)
    quaternion = (0.0, math.sin(-angle / 2), 0.0, math.cos(-angle / 2))
    fov_h, fov_w = 2 * math.atan(height / 2 / FY), 2 * math.atan(width / 2 / FX)
    return torch.tensor([*t, *quaternion, fov_h, fov_w], dtype=torch.float64)


def known_source(index, height, width):
    return pose_encoding(index, height, width), torch.from_numpy(known_depth(height, width))


def expected_world_points(index):
    """Where the known depth puts every pixel of frame `index`, in the optical world."""
    angle, centre = POSES[index % len(POSES)]
    depth = known_depth(HEIGHT, WIDTH)
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
    camera = np.stack([(u - WIDTH / 2) * depth / FX, (v - HEIGHT / 2) * depth / FY, depth], -1)
    return camera @ rot_y(angle).T + np.array(centre)


def transform_matrix(transform):
    q, t = transform.rotation, transform.translation
    x, y, z, w = q.x, q.y, q.z, q.w
    rotation = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    return rotation, np.array([t.x, t.y, t.z])


def rgb_image(seq, height=HEIGHT, width=WIDTH, encoding='rgb8', stamp=None):
    pixels = np.random.default_rng(seq).integers(0, 256, (height, width, 3), dtype=np.uint8)
    header = Header(stamp=stamp or Time(sec=100 + seq, nanosec=seq), frame_id=CAMERA)
    return messages.array_to_image(pixels, encoding, header)


def sized_image(seq, height, width):
    """An rgb8 image of any size, zero included (array_to_image cannot build a 0-row array)."""
    pixels = np.random.default_rng(seq).integers(0, 256, (height, width, 3), dtype=np.uint8)
    header = Header(stamp=Time(sec=100 + seq, nanosec=seq), frame_id=CAMERA)
    return Image(
        header=header,
        height=height,
        width=width,
        encoding='rgb8',
        step=3 * width,
        data=pixels.tobytes(),
    )


def bad_images(seq, keep_bytes=100):
    """An image of an encoding nobody decodes, and one with truncated data."""
    unsupported = rgb_image(seq)
    unsupported.encoding = 'yuv444'
    truncated = rgb_image(seq + 1)
    truncated.data = truncated.data[:keep_bytes]
    return unsupported, truncated
