"""A StreamNode in its own rclpy Context beside a peer node, both spun by one executor in a
background thread: what the node tests (as `Harness`), the soak test and the benchmark's node
sections drive the node through, over the real middleware.

The peer records when each message arrives, by topic and stamp, and keeps the messages (all of
them, the last `history` per topic, or none: long runs keep only arrival times, so that what
they measure is the node's memory, not the peer's).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import rclpy
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
from torch import Tensor

from vggt_ros import messages
from vggt_ros.node import StreamNode
from vggt_ros.params import NODE_NAME
from vggt_ros.reconstructor import FrameResult, Reconstructor

NS = f'/{NODE_NAME}'
OUTPUT_TOPICS = {
    '/tf': TFMessage,
    f'{NS}/depth': Image,
    f'{NS}/depth/camera_info': CameraInfo,
    f'{NS}/camera_info': CameraInfo,
    f'{NS}/depth_registered/image': Image,
    f'{NS}/depth_registered/camera_info': CameraInfo,
    f'{NS}/confidence': Image,
    f'{NS}/points': PointCloud2,
    f'{NS}/odometry': Odometry,
    f'{NS}/path': PathMessage,
    f'{NS}/map': PointCloud2,
    f'{NS}/scale': DiagnosticArray,
    '/diagnostics': DiagnosticArray,
}
LATCHED = QoSProfile(depth=1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
TIMEOUT_S = 15.0
POLL_S = 0.001


def stamp_of(message: Any) -> Time:
    """A message's header stamp (a TFMessage's: its first transform's)."""
    return (
        message.transforms[0].header.stamp
        if isinstance(message, TFMessage)
        else message.header.stamp
    )


def stamp_ns(stamp: Time) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class NodeRun:
    """A StreamNode (parameters: `overrides`) and a peer subscribed to `topics` (default: every
    output; the node computes only what someone subscribes to)."""

    def __init__(
        self,
        reconstructor: Reconstructor,
        topics: Mapping[str, type] | None = None,
        *,
        history: int | None = None,
        **overrides: Any,
    ) -> None:
        # No robot around: world_frame -> camera straight away, not after tf_mode odom's wait.
        overrides.setdefault('tf_mode', 'camera')
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = StreamNode(
            reconstructor=reconstructor,
            context=self.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        )
        self.peer = rclpy.create_node('vggt_ros_peer', context=self.context)
        self.received: defaultdict[str, deque] = defaultdict(lambda: deque(maxlen=history))
        self.arrivals: defaultdict[str, dict[int, float]] = defaultdict(dict)  # perf_counter
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
                lambda msg, topic=topic: self._arrived(topic, msg),
                LATCHED if topic.endswith('/map') else 10,
            )
            for topic, kind in (OUTPUT_TOPICS if topics is None else topics).items()
        ]
        # Outputs are computed only for matched subscribers: wait for every match first.
        self.wait(lambda: all(s.get_publisher_count() for s in subscriptions), 'outputs matched')

    def _arrived(self, topic: str, message: Any) -> None:
        self.arrivals[topic][stamp_ns(stamp_of(message))] = time.perf_counter()
        self._store(topic, message)

    def _store(self, topic: str, message: Any) -> None:
        with self._lock:
            self.received[topic].append(message)

    def messages(self, topic: str) -> list:
        with self._lock:
            return list(self.received[topic])

    def logs(self, containing: str = '') -> list[str]:
        """The node's log lines on /rosout that contain `containing`."""
        name = self.node.get_name()
        return [m.msg for m in self.messages('/rosout') if m.name == name and containing in m.msg]

    @staticmethod
    def wait(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT_S) -> None:
        """Until `condition()` is true; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f'timed out waiting for {what}')
            time.sleep(POLL_S)

    def wait_for(self, topic: str, stamp: Time) -> Any:
        """The message on `topic` stamped `stamp`, waiting for it."""
        found = []

        def arrived() -> list:
            found[:] = [m for m in self.messages(topic) if stamp_of(m) == stamp]
            return found

        self.wait(arrived, f'{topic} at {stamp}')
        return found[-1]

    def arrival(self, topic: str, stamp: int, timeout: float = TIMEOUT_S) -> float:
        """When (perf_counter) the message on `topic` stamped `stamp` (ns) arrived, waiting."""
        arrivals = self.arrivals[topic]
        self.wait(lambda: stamp in arrivals, f'{topic} at {stamp} ns', timeout)
        return arrivals[stamp]

    def send(self, message: Image | CompressedImage, wait_topic: str | None = '/tf') -> Any:
        """Publish an image; with a wait_topic, return what arrives there for its stamp."""
        publisher = self.compressed if isinstance(message, CompressedImage) else self.images
        self.wait(lambda: publisher.get_subscription_count(), 'the node to subscribe')
        publisher.publish(message)
        return self.wait_for(wait_topic, message.header.stamp) if wait_topic else None

    def send_array(self, pixels: np.ndarray, stamp: int, frame_id: str = 'camera') -> float:
        """Publish an HxWx3 uint8 frame as rgb8, stamped `stamp` (ns); when (perf_counter)."""
        seconds, nanoseconds = divmod(stamp, 1_000_000_000)
        header = Header(stamp=Time(sec=seconds, nanosec=nanoseconds), frame_id=frame_id)
        message = messages.array_to_image(pixels, 'rgb8', header)
        self.wait(lambda: self.images.get_subscription_count(), 'the node to subscribe')
        sent = time.perf_counter()
        self.images.publish(message)
        return sent

    def diagnostics(
        self, condition: Callable[[dict], bool] = lambda values: True, since: int = 0
    ) -> dict[str, str]:
        """The newest /diagnostics values that satisfy `condition`, from message `since` on."""

        def newest() -> dict[str, str] | None:
            matching = [diagnostic_values(m) for m in self.messages('/diagnostics')[since:]]
            matching = [values for values in matching if condition(values)]
            return matching[-1] if matching else None

        self.wait(newest, '/diagnostics')
        return newest()

    def call(self, future: Any) -> Any:
        self.wait(future.done, 'a response')
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self._spinner.join(timeout=TIMEOUT_S)
        self.node.destroy_node()
        self.peer.destroy_node()
        rclpy.shutdown(context=self.context)


def diagnostic_values(message: DiagnosticArray) -> dict[str, str]:
    (status,) = message.status
    return {kv.key: kv.value for kv in status.values}


class RecordingReconstructor(Reconstructor):
    """A Reconstructor that keeps, per step, its timings and the session's cache bytes (read in
    the worker thread, between steps)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps: list[dict[str, float]] = []

    def step_image(self, image: Tensor, stamp: float | None = None) -> FrameResult:
        result = super().step_image(image, stamp)
        self.steps.append({**result.timings, 'cache_bytes': self.session.cache_bytes})
        return result
