"""Sections 7 and 10: the node's own cost and a chaos soak through it, over real rclpy.

Imported only where rclpy is (vggt_ros.bench.cli says it skipped these otherwise).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

from vggt_ros import images, messages
from vggt_ros.bench.blocks import BLOCK_PRESET
from vggt_ros.bench.flops import model_flops
from vggt_ros.bench.harness import ratio, rss_bytes, slope, stats, time_in_turn, timed
from vggt_ros.bench.node_run import NodeRun, RecordingReconstructor
from vggt_ros.frame_size import model_size
from vggt_ros.model import PRESETS, StreamVGGT
from vggt_ros.outputs import FrameOutputs, OutputOptions
from vggt_ros.reconstructor import FrameResult

CLOUD_SIZE = (392, 518)  # height, width of the published depth and cloud
TF_ONLY = {'/tf': TFMessage}  # what the peer listens to: the node computes nothing else
NS_PER_S = 1_000_000_000


def synthetic_result(size: tuple[int, int] = CLOUD_SIZE) -> FrameResult:
    """A FrameResult with plausible values at `size`: conversion costs do not depend on them."""
    height, width = size
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 5, size).astype(np.float32)
    return FrameResult(
        frame_index=0,
        stamp=None,
        world_from_camera=np.eye(4),
        camera_from_world=np.eye(4),
        K=np.array([[300.0, 0, width / 2], [0, 300.0, height / 2], [0, 0, 1]]),
        depth=depth,
        confidence=np.full(size, 10, np.float32),
        colours=rng.integers(0, 256, (*size, 3), dtype=np.uint8),
        world_points=rng.normal(size=(*size, 3)).astype(np.float32),
        world_points_conf=np.full(size, 10, np.float32),
        pose_enc=np.zeros(9, np.float32),
    )


class Publishing:
    """The node's per-frame outputs (depth + CameraInfo, the organised cloud, TF) on a real rclpy
    node, with a subscriber on each topic so that every message is serialised and delivered."""

    def __init__(self, context: rclpy.Context) -> None:
        self.node = rclpy.create_node('vggt_bench_publishing', context=context)
        kinds = {'depth': Image, 'camera_info': CameraInfo, 'points': PointCloud2, 'tf': TFMessage}
        self.publishers = {
            name: self.node.create_publisher(kind, name, 2) for name, kind in kinds.items()
        }
        for name, kind in kinds.items():
            self.node.create_subscription(kind, name, lambda message: None, 2)

    def convert(self, result: FrameResult) -> dict[str, Any]:
        """What StreamNode._publish computes for these outputs."""
        frame = FrameOutputs(result, OutputOptions())
        header = Header(stamp=Time(sec=1), frame_id='camera')
        height, width = frame.size
        transform = messages.matrix_to_transform(frame.pose, header.stamp, 'world', 'camera')
        return {
            'depth': messages.depth_to_image(frame.depth, header),
            'camera_info': messages.intrinsics_to_camera_info(result.K, width, height, header),
            'points': messages.points_to_cloud(*frame.cloud(), header),
            'tf': TFMessage(transforms=[transform]),
        }

    def publish(self, converted: dict[str, Any]) -> None:
        for name, message in converted.items():
            self.publishers[name].publish(message)


def publish_overhead(repeats: int, size: tuple[int, int] = CLOUD_SIZE) -> dict[str, Any]:
    """Per frame: converting a FrameResult at `size` into the node's messages, and publishing
    them, each timed `repeats` times after one untimed frame."""
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        publishing = Publishing(context)
        result = synthetic_result(size)
        publishing.publish(publishing.convert(result))
        times: dict[str, list[float]] = {'convert': [], 'publish': [], 'total': []}
        for _ in range(repeats):
            converted, convert_s = timed(publishing.convert, result)
            publish_s = timed(publishing.publish, converted)[1]
            times['convert'].append(convert_s)
            times['publish'].append(publish_s)
            times['total'].append(convert_s + publish_s)
        publishing.node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    return {'image_size': list(size), 'repeats': repeats} | {
        f'{name}_s': stats(values) for name, values in times.items()
    }


INPUT_SIZES = ((480, 640), (720, 1280))  # camera images, height x width
COST_TARGET = 3.0  # the node's own work per frame at most this many times a memcpy of its bytes


def _message_bytes(message: Any) -> int:
    data = getattr(message, 'data', None)
    if data is not None:
        return len(data)
    return 0  # CameraInfo, TF: a few hundred bytes


def node_cost(repeats: int, sizes: tuple[tuple[int, int], ...] = INPUT_SIZES) -> list[dict]:
    """Per camera image size: the node's own work on a frame (decoding the rgb8 message, building
    the depth, CameraInfo, cloud and TF messages at the model's size, publishing them to
    subscribers) against a memcpy of the bytes it reads and writes, the physical floor; the two
    timed in turn, `repeats` times each after one untimed frame."""
    context = rclpy.Context()
    rclpy.init(context=context)
    rows = []
    try:
        publishing = Publishing(context)
        for size in sizes:
            rng = np.random.default_rng(0)
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            image = messages.array_to_image(pixels, 'rgb8', Header(frame_id='camera'))
            result = synthetic_result(model_size(*size, CLOUD_SIZE[1]))

            def work(image: Image = image, result: FrameResult = result) -> dict[str, Any]:
                images.image_to_rgb(image)
                converted = publishing.convert(result)
                publishing.publish(converted)
                return converted

            moved = len(image.data) + sum(map(_message_bytes, work().values()))
            source, target = np.ones(moved, np.uint8), np.empty(moved, np.uint8)
            times = time_in_turn(
                {'node': work, 'memcpy': lambda s=source, t=target: np.copyto(t, s)}, repeats
            )
            rows.append(
                {
                    'input_size': list(size),
                    'model_size': list(result.depth.shape),
                    'bytes': moved,
                    'node_s': times['node'],
                    'memcpy_s': times['memcpy'],
                    'ratio': ratio(times['node'], times['memcpy']),
                    'target': COST_TARGET,
                }
            )
        publishing.node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    return rows


def end_to_end(reconstructor: RecordingReconstructor, size: tuple[int, int], frames: int) -> dict:
    """Image published -> TF received through real rclpy, one frame at a time (no drops), minus
    the model's time in that step; the first frame is untimed."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    run = NodeRun(reconstructor, TF_ONLY, history=0)
    latency = []
    try:
        for index in range(frames + 1):
            stamp = (index + 1) * NS_PER_S
            sent = run.send_array(rgb, stamp)
            latency.append(run.arrival('/tf', stamp) - sent)
    finally:
        run.close()
    model = [step['model'] for step in reconstructor.steps]
    overhead = [total - inside for total, inside in zip(latency, model, strict=True)]
    return {
        'image_size': list(size),
        'frames': frames,
        'latency_s': stats(latency[1:]),
        'model_s': stats(model[1:]),
        'overhead_s': stats(overhead[1:]),
    }


def node_overhead(
    model: StreamVGGT, repeats: int, frames: int, results: list[dict[str, Any]]
) -> dict[str, Any]:
    """Section 7: the node's publishing cost per frame at 518x392, over the 1B step at that size
    (closed-form FLOPs at the rate the 1B run achieved in section 6: an estimate, since that step
    takes tens of seconds on a CPU), and end-to-end latency minus model time (tiny preset)."""
    section = {'publishing': publish_overhead(repeats), 'cost': node_cost(repeats)}
    big = next((result for result in results if result['preset'] == BLOCK_PRESET), None)
    if big is not None:
        rate = big['efficiency']['achieved_flops_per_s']
        step = model_flops(PRESETS[BLOCK_PRESET], CLOUD_SIZE, big['window'])['total'] / rate
        section['model_step_estimate_s'] = step
        section['fraction_of_step'] = section['publishing']['total_s']['median'] / step
    reconstructor = RecordingReconstructor(model, image_width=CLOUD_SIZE[1])
    section['end_to_end'] = end_to_end(reconstructor, CLOUD_SIZE, frames)
    return section


CHAOS_SIZE = (42, 70)  # the model's own size at image_width 70
CHAOS_WINDOW = 16
CHAOS_BAD_EVERY = 20  # 5% bad frames
CHAOS_RSS_SAMPLES = 100
CHAOS_RESET_EVERY, CHAOS_FLIP_EVERY, CHAOS_LOOP_EVERY = 500, 250, 1000
CHAOS_STUCK_S = 5.0  # a frame not accounted for within this is a stuck period
CHAOS_FLIPS = (
    ('merging.enabled', True),
    ('conf_threshold', 5),
    ('merging.enabled', False),
    ('scale', 2.0),
    ('conf_threshold', 3.0),
    ('scale', 1),
)


def _bad_frame(rgb: np.ndarray, header: Header, kind: int) -> Image:
    """One of the bad-frame classes: unknown encoding, truncated, too small, huge header."""
    message = messages.array_to_image(rgb[:1, :1] if kind == 2 else rgb, 'rgb8', header)
    if kind == 0:
        message.encoding = 'yuv444'
    elif kind == 1:
        message.data = message.data[:10]
    elif kind == 3:
        message.height = message.width = 100_000
    return message


def chaos_soak(model: StreamVGGT, frames: int, seed: int = 0) -> dict[str, Any]:
    """Section 10: `frames` through the node (tiny preset, window 16, real rclpy) with 5% bad
    frames, a ~/reset every 500 frames, a parameter flip every 250 and a looping stamp every
    1000. Each frame is awaited until the node has accounted for it: a frame not accounted for
    within CHAOS_STUCK_S is a stuck period (and sent again, in case the best-effort middleware
    lost it). RSS is sampled CHAOS_RSS_SAMPLES times."""
    width = CHAOS_SIZE[1]
    reconstructor = RecordingReconstructor(model, image_width=width, window=CHAOS_WINDOW)
    run = NodeRun(reconstructor, TF_ONLY, history=0, window_size=CHAOS_WINDOW, image_width=width)
    reset = run.peer.create_client(Trigger, 'vggt_stream/reset')
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (8, *CHAOS_SIZE, 3), dtype=np.uint8)
    stats_ = run.node._stats
    sent, stuck, resends, rss, waits = 0, 0, 0, [], []
    stamp_s = 1_000
    sample_every = max(1, frames // CHAOS_RSS_SAMPLES)
    try:
        run.wait(reset.service_is_ready, 'the reset service')
        for index in range(frames):
            if index and index % CHAOS_RESET_EVERY == 0:
                run.call(reset.call_async(Trigger.Request()))
            if index and index % CHAOS_FLIP_EVERY == 0:
                name, value = CHAOS_FLIPS[(index // CHAOS_FLIP_EVERY) % len(CHAOS_FLIPS)]
                run.node.set_parameters([Parameter(name, value=value)])
            stamp_s = stamp_s - 30 if index % CHAOS_LOOP_EVERY == CHAOS_LOOP_EVERY - 1 else stamp_s
            stamp_s += 0.05
            header = Header(stamp=Time(sec=int(stamp_s), nanosec=round(stamp_s % 1 * 1e9)))
            header.frame_id = 'camera'
            rgb = images[index % len(images)]
            bad = index % CHAOS_BAD_EVERY == CHAOS_BAD_EVERY // 2
            message = (
                _bad_frame(rgb, header, (index // CHAOS_BAD_EVERY) % 4)
                if bad
                else messages.array_to_image(rgb, 'rgb8', header)
            )
            started = time.perf_counter()
            for attempt in range(3):
                run.send(message, wait_topic=None)
                try:
                    done = lambda target=sent + 1: _accounted(stats_, target)  # noqa: E731
                    run.wait(done, 'a frame', CHAOS_STUCK_S)
                    break
                except TimeoutError:
                    stuck += 1
                    resends += attempt < 2
            sent = stats_.snapshot().counts['received']
            waits.append(time.perf_counter() - started)
            if index % sample_every == 0:
                rss.append(rss_bytes())
        snapshot = stats_.snapshot()
    finally:
        run.close()
    cache = [step['cache_bytes'] for step in reconstructor.steps]
    return {
        'frames': frames,
        'image_size': list(CHAOS_SIZE),
        'counts': snapshot.counts,
        'kinds': snapshot.kinds,
        'stuck_periods': stuck,
        'resends': resends,
        'wait_s': stats(waits),
        'rss_first_last': [rss[0], rss[-1]],
        'rss_slope_bytes_per_frame': slope(rss) / sample_every,
        'cache_bytes_distinct_after_fill': len(set(cache[CHAOS_WINDOW:])),
    }


def _accounted(stats_: Any, received: int) -> bool:
    counts = stats_.snapshot().counts
    parts = counts['processed'] + counts['dropped'] + counts['skipped'] + counts['failed']
    return counts['received'] >= received and counts['received'] == parts
