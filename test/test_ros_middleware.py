"""Messages cross a process boundary over the real ROS 2 middleware (no mocks)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from message_samples import CLOUD_COLOURS, IMAGE_RGB, QUARTER_TURN_Z_XYZW, STAMP
from sensor_msgs.msg import Image, PointCloud2
from tf2_msgs.msg import TFMessage

from vggt_ros import images, messages

TEST_DIR = Path(__file__).parent


@pytest.fixture
def peer():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TEST_DIR.parent), str(TEST_DIR)]))
    process = subprocess.Popen([sys.executable, str(TEST_DIR / 'ros_peer.py')], env=env)
    yield process
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def node():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('vggt_ros_test_listener', context=context)
    yield node
    node.destroy_node()
    rclpy.shutdown(context=context)


def receive_one_of_each(node, topics, timeout=30.0):
    received = {}
    for topic, message_type in topics.items():
        node.create_subscription(
            message_type, topic, lambda msg, topic=topic: received.setdefault(topic, msg), 10
        )
    executor = rclpy.executors.SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    deadline = time.monotonic() + timeout
    while len(received) < len(topics) and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    return received


def test_image_cloud_and_tf_cross_processes(peer, node):
    topics = {'peer/image': Image, 'peer/points': PointCloud2, 'peer/tf': TFMessage}
    received = receive_one_of_each(node, topics)
    assert peer.poll() is None, 'the publisher process died'
    assert set(received) == set(topics), f'only received {sorted(received)}'

    image = received['peer/image']
    assert image.header.stamp == STAMP
    assert np.array_equal(images.image_to_rgb(image), IMAGE_RGB)

    points, colours = messages.cloud_to_arrays(received['peer/points'])
    assert points.shape == (2, 2, 3) and np.array_equal(colours, CLOUD_COLOURS)
    assert np.isnan(points[1, 1]).all() and points[0, 1].tolist() == [3.0, 4.0, 5.0]

    (transform,) = received['peer/tf'].transforms
    assert transform.child_frame_id == 'camera_optical_frame'
    q = transform.transform.rotation
    assert np.allclose((q.x, q.y, q.z, q.w), QUARTER_TURN_Z_XYZW)
