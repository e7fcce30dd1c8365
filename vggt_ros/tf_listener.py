"""The rclpy side of TF: fill a buffer from /tf and /tf_static, tf2_ros's when it is installed.

A sourced ROS 2 has tf2_ros; a pip environment has only tf2_msgs, so :func:`make_tf` falls back
to vggt_ros.tf_buffer. Either way callers get a :class:`~vggt_ros.tf_buffer.Transforms`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import yaml
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from tf2_msgs.msg import TFMessage

from vggt_ros.tf_buffer import (
    ExtrapolationError,
    FrameNotFound,
    TransformBuffer,
    Transforms,
    transform_to_matrix,
)

# What tf2_ros subscribes with; late joiners get every static transform published so far.
TF_QOS = QoSProfile(
    depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE
)
TF_STATIC_QOS = QoSProfile(
    depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class TransformListener:
    """tf2_ros.TransformListener for a :class:`TransformBuffer`."""

    def __init__(self, buffer: TransformBuffer, node: Node) -> None:
        self._buffer, self._node = buffer, node
        # Reentrant, as tf2_ros: a callback waiting for a transform must not block its arrival.
        group = ReentrantCallbackGroup()
        self._subscriptions = [
            node.create_subscription(
                TFMessage, topic, partial(self._receive, static=static), qos, callback_group=group
            )
            for topic, qos, static in (('/tf', TF_QOS, False), ('/tf_static', TF_STATIC_QOS, True))
        ]

    def _receive(self, message: TFMessage, static: bool) -> None:
        for reason in self._buffer.add_message(message, static):
            self._node.get_logger().warning(reason, throttle_duration_sec=5.0)

    def unregister(self) -> None:
        """Stop listening (the name tf2_ros uses)."""
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        self._subscriptions.clear()


class Tf2Transforms:
    """A tf2_ros.Buffer seen as :class:`Transforms`: 4x4 matrices and this package's errors."""

    def __init__(self, buffer: Any) -> None:
        import tf2_ros

        self._buffer, self._tf2 = buffer, tf2_ros

    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int) -> np.ndarray:
        try:
            stamped = self._buffer.lookup_transform(
                target_frame, source_frame, Time(nanoseconds=stamp_ns)
            )
        except self._tf2.ExtrapolationException as error:
            raise ExtrapolationError(str(error)) from error
        except self._tf2.TransformException as error:
            raise FrameNotFound(str(error)) from error
        return transform_to_matrix(stamped.transform)

    def can_transform(self, target_frame: str, source_frame: str, stamp_ns: int) -> bool:
        return self._buffer.can_transform(target_frame, source_frame, Time(nanoseconds=stamp_ns))

    def clear(self) -> None:
        self._buffer.clear()  # tf2 keeps the static transforms

    def parent(self, frame: str) -> str | None:
        # tf2_py exposes parents only through its YAML dump of the tree.
        tree = yaml.safe_load(self._buffer.all_frames_as_yaml()) or {}
        return tree.get(frame, {}).get('parent')


def make_tf(node: Node, cache_time: float = 10.0) -> tuple[Transforms, Any]:
    """(transforms, listener) on tf2_ros if importable, else on vggt_ros.tf_buffer.

    Keep the listener referenced: tf2_ros's unsubscribes when it is garbage-collected.
    """
    try:
        import tf2_ros
    except ImportError:
        buffer = TransformBuffer(cache_time)
        return buffer, TransformListener(buffer, node)
    buffer = tf2_ros.Buffer(cache_time=Duration(nanoseconds=round(cache_time * 1e9)))
    return Tf2Transforms(buffer), tf2_ros.TransformListener(buffer, node)
