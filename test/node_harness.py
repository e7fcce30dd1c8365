"""The node under test and its peer: a StreamNode and a test node over the real middleware.

The stand-in model's frames have known poses and depths (POSES, known_source), so what the node
publishes can be checked against what the conventions imply.
"""

import math
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import rclpy
import torch
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMessage
from rcl_interfaces.msg import Log
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSDurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from vggt_ros import messages
from vggt_ros.node import StreamNode

ROOT = Path(__file__).parent.parent
HEIGHT, WIDTH = 70, 126  # multiples of 14: the model sees the image as it is
FX, FY = 100.0, 90.0
CAMERA = 'test_camera_optical_frame'
NS = '/vggt_stream'
TIMEOUT = 15.0
TOPICS = {
    '/tf': TFMessage,
    f'{NS}/depth': Image,
    f'{NS}/depth/camera_info': CameraInfo,
    f'{NS}/confidence': Image,
    f'{NS}/points': PointCloud2,
    f'{NS}/odometry': Odometry,
    f'{NS}/path': PathMessage,
    f'{NS}/map': PointCloud2,
    '/diagnostics': DiagnosticArray,
}
LATCHED = QoSProfile(depth=1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)

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


def stamp_of(message):
    return (
        message.transforms[0].header.stamp
        if isinstance(message, TFMessage)
        else (message.header.stamp)
    )


def diagnostic_values(message):
    (status,) = message.status
    return {kv.key: kv.value for kv in status.values}


class Harness:
    """A StreamNode and a peer node, spun by one executor in a background thread."""

    def __init__(self, reconstructor, topics=None, **overrides):
        topics = topics or TOPICS
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        overrides.setdefault('diagnostics_period', 0.1)
        self.node = StreamNode(
            reconstructor=reconstructor,
            context=self.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        )
        self.peer = rclpy.create_node('vggt_test_peer', context=self.context)
        self.received = defaultdict(list)
        self._lock = threading.Lock()
        self.peer.create_subscription(
            Log, '/rosout', lambda msg: self._store('/rosout', msg), QoSProfile(depth=1000)
        )
        self.executor = SingleThreadedExecutor(context=self.context)
        for node in (self.node, self.peer):
            self.executor.add_node(node)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()
        self.images = self.peer.create_publisher(Image, 'image', 10)
        self.compressed = self.peer.create_publisher(CompressedImage, 'image/compressed', 10)
        subscriptions = [
            self.peer.create_subscription(
                kind,
                topic,
                lambda msg, topic=topic: self._store(topic, msg),
                LATCHED if topic.endswith('/map') else 10,
            )
            for topic, kind in topics.items()
        ]
        # Outputs are computed only for matched subscribers: wait for every match first.
        self.wait(lambda: all(s.get_publisher_count() for s in subscriptions), 'outputs matched')

    def _store(self, topic, message):
        with self._lock:
            self.received[topic].append(message)

    def messages(self, topic):
        with self._lock:
            return list(self.received[topic])

    def logs(self, containing=''):
        """The node's log lines on /rosout that contain `containing`."""
        name = self.node.get_name()
        return [m.msg for m in self.messages('/rosout') if m.name == name and containing in m.msg]

    def wait(self, condition, what, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f'timed out waiting for {what}'
            time.sleep(0.01)

    def wait_for(self, topic, stamp):
        """The message on `topic` stamped `stamp`, waiting for it."""
        found = []

        def arrived():
            found[:] = [m for m in self.messages(topic) if stamp_of(m) == stamp]
            return found

        self.wait(arrived, f'{topic} at {stamp}')
        return found[-1]

    def send(self, message, wait_topic='/tf'):
        """Publish an image; with a wait_topic, return what arrives there for its stamp."""
        publisher = self.compressed if isinstance(message, CompressedImage) else self.images
        self.wait(lambda: publisher.get_subscription_count(), 'the node to subscribe')
        publisher.publish(message)
        return self.wait_for(wait_topic, message.header.stamp) if wait_topic else None

    def diagnostics(self, condition=lambda values: True, since=0):
        """The newest /diagnostics values that satisfy `condition`, from message `since` on."""

        def newest():
            matching = [diagnostic_values(m) for m in self.messages('/diagnostics')[since:]]
            matching = [values for values in matching if condition(values)]
            return matching[-1] if matching else None

        self.wait(newest, '/diagnostics')
        return newest()

    def call(self, future):
        self.wait(future.done, 'a response')
        return future.result()

    def close(self):
        self.executor.shutdown()
        self._spinner.join(timeout=TIMEOUT)
        self.node.destroy_node()
        self.peer.destroy_node()
        rclpy.shutdown(context=self.context)
