"""make_tf over the real middleware: a late listener still gets /tf_static, then answers /tf.

Runs on whichever buffer make_tf picks (tf2_ros when sourced, vggt_ros.tf_buffer otherwise),
through the Transforms interface only.
"""

import math
import threading
import time

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Quaternion, Transform, TransformStamped, Vector3
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from vggt_ros.tf_listener import TF_QOS, make_tf

S = 10**9
C = math.sqrt(0.5)
TIMEOUT = 10.0
# What tf2_ros.StaticTransformBroadcaster publishes with.
STATIC_BROADCAST_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def stamped(parent, child, sec, xyz, xyzw):
    (x, y, z), (qx, qy, qz, qw) = xyz, xyzw
    return TransformStamped(
        header=Header(stamp=Time(sec=sec), frame_id=parent),
        child_frame_id=child,
        transform=Transform(
            # Floats: this rclpy stores an int in a float64 field and sends its bits as a double.
            translation=Vector3(x=float(x), y=float(y), z=float(z)),
            rotation=Quaternion(x=float(qx), y=float(qy), z=float(qz), w=float(qw)),
        ),
    )


@pytest.fixture
def spinning(context):
    """A peer node and a listener node, spun by one executor in a thread."""
    nodes = [rclpy.create_node(name, context=context) for name in ('tf_peer', 'tf_listener')]
    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield nodes
    executor.shutdown()
    thread.join(timeout=5.0)
    for node in nodes:
        node.destroy_node()


def wait_for(condition):
    deadline = time.monotonic() + TIMEOUT
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_late_listener_composes_static_and_dynamic(spinning):
    peer, node = spinning
    static = peer.create_publisher(TFMessage, '/tf_static', STATIC_BROADCAST_QOS)
    # base_link -> optical: z forward = base x, x right = -base y, y down = -base z.
    optical = stamped(
        'base_link', 'camera_optical_frame', 0, (0.1, 0.0, 0.2), (-0.5, 0.5, -0.5, 0.5)
    )
    static.publish(TFMessage(transforms=[optical]))

    transforms, listener = make_tf(node)
    assert wait_for(lambda: transforms.can_transform('base_link', 'camera_optical_frame', 0))
    assert transforms.parent('camera_optical_frame') == 'base_link'

    dynamic = peer.create_publisher(TFMessage, '/tf', TF_QOS)
    assert wait_for(lambda: dynamic.get_subscription_count() > 0)
    dynamic.publish(
        TFMessage(transforms=[stamped('odom', 'base_link', 100, (1, 0, 0), (0, 0, 0, 1))])
    )
    dynamic.publish(
        TFMessage(transforms=[stamped('odom', 'base_link', 102, (3, 2, 0), (0, 0, C, C))])
    )
    assert wait_for(lambda: transforms.can_transform('odom', 'camera_optical_frame', 102 * S))

    # At 101 s base_link is at (2, 1, 0), turned 45 degrees about z: Rz45 @ R_optical, and
    # t = (2, 1, 0) + Rz45 (0.1, 0, 0.2).
    odom_from_optical = np.array(
        [
            [C, 0, C, 2 + 0.1 * C],
            [-C, 0, C, 1 + 0.1 * C],
            [0, -1, 0, 0.2],
            [0, 0, 0, 1],
        ]
    )
    looked_up = transforms.lookup('odom', 'camera_optical_frame', 101 * S)
    assert np.allclose(looked_up, odom_from_optical, atol=1e-9)
    assert transforms.parent('base_link') == 'odom'
    listener.unregister()
