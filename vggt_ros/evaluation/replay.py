"""Replay a bag's camera frames through the node's StreamPipeline, in one pass at constant memory.

Offline replay reads the bag directly, so no frame is ever dropped and two runs give the same
numbers, unlike `ros2 bag play` into the live node (which is for latency and drop checks). The
frames go through the very pipeline the node runs (size checks, resets on looping stamps, skips
of repeated ones, merging, scale, map), configured by the same parameters. Only the trajectory
is kept per frame; depth is scored as it streams by, against the ground-truth depth image
nearest in stamp.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader
from tqdm import tqdm

from vggt_ros.evaluation.bag_io import read_messages, stamp_ns, topic_connections
from vggt_ros.evaluation.ground_truth import Trajectory
from vggt_ros.evaluation.metrics import DepthAccumulator
from vggt_ros.images import ImageError, compressed_to_rgb, depth_to_metres, image_to_rgb
from vggt_ros.mapping import VoxelMap
from vggt_ros.pipeline import MetricSample, Outcome, StreamPipeline
from vggt_ros.registration import to_model_grid
from vggt_ros.stamp_pairing import StampPairing

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
DEPTH_TYPES = ('sensor_msgs/msg/Image',)
STRIP_FRAMES = 4
MAX_PENDING = 16  # predictions waiting for their depth image, at most


@dataclass
class Replay:
    """What the pipeline said about the selected frames, and what it was compared with."""

    trajectory: Trajectory
    latencies: np.ndarray  # seconds per processed frame: preprocess + model + postprocess
    wall_seconds: float
    depth: DepthAccumulator = field(default_factory=DepthAccumulator)
    strip: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = field(default_factory=list)
    cloud: VoxelMap | None = None
    counts: Counter = field(default_factory=Counter)  # processed, resets, 'failed: kind', ...
    depth_stamps: list[int] = field(default_factory=list)  # of the GT depth images scored


def decode_rgb(message: object, max_pixels: int | None = None) -> np.ndarray:
    """HxWx3 uint8 of an Image or CompressedImage (they differ by having a `format` field)."""
    if hasattr(message, 'format'):
        return compressed_to_rgb(message, max_pixels)
    return image_to_rgb(message, max_pixels)


@dataclass
class _Pending:
    stamp: int
    payload: Any
    best: tuple[int, object] | None = None  # (|stamp difference|, depth message)


class DepthMatcher:
    """Pairs each prediction with the GT depth message nearest in stamp within `max_diff_ns`, in
    one pass over a bag in time order, holding only what is still within reach.

    RGB-D drivers stamp colour and depth separately (TUM RGB-D: up to ~20 ms apart), so the truth
    may come just before or just after its frame. A prediction is settled once a truth stamped
    more than max_diff after it has been seen, once MAX_PENDING later predictions wait behind it
    (a depth stream that stopped must not hold every frame), or at `finish()`;
    `on_pair(payload, message)` then gets it, with None when nothing was within reach.
    """

    def __init__(self, max_diff_ns: int, on_pair: Callable[[Any, object | None], None]) -> None:
        self.max_diff_ns = max_diff_ns
        self.on_pair = on_pair
        self._truths: deque[tuple[int, object]] = deque()
        self._pending: deque[_Pending] = deque()

    def add_truth(self, stamp: int, message: object) -> None:
        self._truths.append((stamp, message))
        for pending in self._pending:
            self._consider(pending, stamp, message)
        self._settle(latest_truth=stamp)

    def add_prediction(self, stamp: int, payload: Any) -> None:
        pending = _Pending(stamp, payload)
        while self._truths and self._truths[0][0] < stamp - self.max_diff_ns:
            self._truths.popleft()  # too old for this frame and for every later one
        for truth_stamp, message in self._truths:
            self._consider(pending, truth_stamp, message)
        self._pending.append(pending)
        self._settle(latest_truth=self._truths[-1][0] if self._truths else None)

    def finish(self) -> None:
        self._settle(latest_truth=None, everything=True)

    def _consider(self, pending: _Pending, stamp: int, message: object) -> None:
        gap = abs(stamp - pending.stamp)
        if gap <= self.max_diff_ns and (pending.best is None or gap < pending.best[0]):
            pending.best = (gap, message)

    def _settle(self, latest_truth: int | None, everything: bool = False) -> None:
        while self._pending and (
            everything
            or len(self._pending) > MAX_PENDING
            or (
                latest_truth is not None
                and latest_truth > self._pending[0].stamp + self.max_diff_ns
            )
        ):
            pending = self._pending.popleft()
            self.on_pair(pending.payload, pending.best[1] if pending.best else None)


def bag_frames(
    reader: AnyReader,
    image_topic: str,
    depth_topic: str | None,
    stride: int,
    max_frames: int | None,
) -> tuple[int, Iterator[tuple[str, int, object]]]:
    """(how many images are selected, iterator of (topic, bag time, message)) over the image and
    depth topics in bag order, stopping before the image after the last selected one (every
    stride-th image, at most `max_frames` of them)."""
    images = topic_connections(reader, image_topic, IMAGE_TYPES)
    depths = topic_connections(reader, depth_topic, DEPTH_TYPES) if depth_topic else []
    count = -(-sum(c.msgcount for c in images) // stride)
    count = min(count, max_frames) if max_frames is not None else count

    def messages() -> Iterator[tuple[str, int, object]]:
        seen = 0
        for topic, recorded, message in read_messages(reader, [*images, *depths]):
            if topic == image_topic:
                if seen // stride >= count:
                    return
                seen += 1
            yield topic, recorded, message

    return count, messages()


def replay(
    pipeline: StreamPipeline,
    values: Mapping[str, Any],
    reader: AnyReader,
    image_topic: str,
    depth_topic: str | None = None,
    max_frames: int | None = None,
    max_time_diff: float = 0.01,
    progress: bool = True,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> Replay:
    """Every frame_stride-th image of `image_topic` through `pipeline`, in bag order.

    `values` are the node's parameters; `on_outcome` sees what became of each frame.
    """
    image_width = pipeline.reconstructor.image_width
    out = Replay(Trajectory(np.empty(0, np.int64), np.empty((0, 4, 4))), np.empty(0), 0.0)

    def score(payload: tuple[np.ndarray, int | None], message: object | None) -> None:
        predicted, strip_slot = payload
        truth = None
        if message is not None:
            truth = to_model_grid(depth_to_metres(message), image_width)
            if truth.shape != predicted.shape:  # not registered to the colour image
                out.counts['depth skipped: another view'] += 1
                truth = None
            else:
                out.depth.add(predicted, truth)
                out.depth_stamps.append(stamp_ns(message))
                out.counts['depth scored'] += 1
        if strip_slot is not None:
            colours, depth, _ = out.strip[strip_slot]
            out.strip[strip_slot] = (colours, depth, truth)

    matcher = DepthMatcher(round(max_time_diff * 1e9), score)
    stride = values['frame_stride']
    count, messages = bag_frames(reader, image_topic, depth_topic, stride, max_frames)
    strip_at = set(np.linspace(0, count - 1, min(STRIP_FRAMES, count)).round().astype(int))
    stamps, poses, latencies = [], [], []
    # With scale_source depth the depth topic is also the node's metric depth input: an image
    # waits (at most until the next image) for its depth image, which a bag may hold after it.
    depths: StampPairing[object] | None = StampPairing() if metric_depth(values) else None
    held: tuple[object, int, int] | None = None

    def run(message: object, recorded: int, selected: int) -> None:
        metric = None
        if depths is not None and (depth := depths.nearest(stamp_ns(message))) is not None:
            metric = MetricSample(depth=depth_to_metres(depth))
        outcome = _process(pipeline, values, message, recorded, out.counts, metric)
        if on_outcome is not None:
            on_outcome(outcome)
        if outcome.status != 'processed':
            return
        result = outcome.frame.result
        stamps.append(outcome.stamp_ns)
        poses.append(outcome.frame.pose)
        latencies.append(sum(result.timings.values()))
        slot = None
        if selected in strip_at:
            slot = len(out.strip)
            out.strip.append((result.colours, result.depth, None))
        if depth_topic:
            matcher.add_prediction(outcome.stamp_ns, (result.depth, slot))

    index = -1
    start = time.perf_counter()
    with tqdm(total=count, unit='frame', disable=not progress) as bar:
        for topic, recorded, message in messages:
            if topic != image_topic:
                matcher.add_truth(stamp_ns(message), message)
                if depths is not None:
                    depths.put(stamp_ns(message), message)
                    if held is not None and depths.nearest(stamp_ns(held[0])) is not None:
                        run(*held)
                        held = None
                continue
            index += 1
            if index % stride:
                out.counts['skipped: frame stride'] += 1
                continue
            bar.update()
            if held is not None:
                run(*held)  # its depth never came
                held = None
            if depths is not None and depths.nearest(stamp_ns(message)) is None:
                held = (message, recorded, index // stride)
            else:
                run(message, recorded, index // stride)
        if held is not None:
            run(*held)
    matcher.finish()
    out.wall_seconds = time.perf_counter() - start
    poses = np.stack(poses) if poses else np.empty((0, 4, 4))
    out.trajectory = Trajectory(np.asarray(stamps, np.int64), poses)
    out.latencies = np.asarray(latencies)
    out.cloud = pipeline.map
    return out


def metric_depth(values: Mapping[str, Any]) -> bool:
    """Whether the depth topic also feeds the metric scale, as the node's depth input would."""
    return values['scale_source'] == 'depth'


def _process(
    pipeline: StreamPipeline,
    values: Mapping[str, Any],
    message: object,
    recorded: int,
    counts: Counter,
    metric: MetricSample | None = None,
) -> Outcome:
    """One image message through the pipeline, as the node does (the bag's record time stands
    for the time of receipt), counting what became of it."""
    stamp = stamp_ns(message)
    try:
        rgb = decode_rgb(message, values['max_image_pixels'])
    except ImageError as error:
        outcome = Outcome('failed', stamp, kind=error.kind, error=str(error))
    else:
        outcome = pipeline.process(rgb, stamp, recorded, values, metric=metric)
    counts['resets'] += outcome.reset is not None
    kind = '' if outcome.status == 'processed' else f': {outcome.kind}'
    counts[outcome.status + kind] += 1
    return outcome
