"""Run the Reconstructor over every (stride-selected) frame of a bag's image topic.

Offline replay reads the bag directly, so no frame is ever dropped and two runs give the same
numbers, unlike `ros2 bag play` into the live node (which is for latency and drop checks).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from rosbags.highlevel import AnyReader
from tqdm import tqdm

from vggt_ros.evaluation.bag_io import read_messages, stamp_ns, topic_connections
from vggt_ros.evaluation.ground_truth import Trajectory
from vggt_ros.frame_size import model_size, resized_height
from vggt_ros.images import compressed_to_rgb, depth_to_metres, image_to_rgb
from vggt_ros.mapping import VoxelMap
from vggt_ros.outputs import FrameOutputs, OutputOptions
from vggt_ros.reconstructor import FrameResult, Reconstructor

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
DEPTH_TYPES = ('sensor_msgs/msg/Image',)
STRIP_FRAMES = 4
CLOUD_VOXEL = 0.01  # model units: the model normalises scenes to roughly unit size
CLOUD_MAX_POINTS = 200_000
CLOUD_DECIMATION = 2


@dataclass
class Replay:
    """What the reconstructor said about the selected frames, and what it is compared with."""

    trajectory: Trajectory
    latencies: np.ndarray  # seconds per frame: preprocess + model + postprocess
    wall_seconds: float
    predicted_depth: list[np.ndarray] = field(default_factory=list)  # frames with GT depth
    gt_depth: list[np.ndarray] = field(default_factory=list)  # at model resolution
    strip: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = field(default_factory=list)
    cloud: VoxelMap = field(default_factory=lambda: VoxelMap(CLOUD_VOXEL, CLOUD_MAX_POINTS))


def to_model_resolution(depth: np.ndarray, image_width: int) -> np.ndarray:
    """Nearest-neighbour GT depth at the model's H x W, after the reconstructor's resize and crop.

    Model pixel (u, v) sees the ray of source pixel (u W0 / W, (v + top) H0 / Hr) in the model's
    convention (integer pixel centres, principal point at the image centre), so sampling there
    compares each predicted depth with the depth along the same ray; nearest, not interpolated,
    so depth edges do not invent surfaces.
    """
    src_height, src_width = depth.shape
    height, width = model_size(src_height, src_width, image_width)
    resized = resized_height(src_height, src_width, image_width)
    top = max(resized - image_width, 0) // 2
    rows = np.round((np.arange(height) + top) * src_height / resized).astype(int)
    cols = np.round(np.arange(width) * src_width / width).astype(int)
    return depth[np.ix_(rows.clip(0, src_height - 1), cols.clip(0, src_width - 1))]


def decode_rgb(message: object) -> np.ndarray:
    """HxWx3 uint8 of an Image or CompressedImage (they differ by having a `format` field)."""
    return compressed_to_rgb(message) if hasattr(message, 'format') else image_to_rgb(message)


class DepthIndex:
    """GT depth in metres at model resolution, found by the nearest header stamp within a tolerance.

    RGB-D drivers stamp colour and depth separately (TUM RGB-D: up to ~20 ms apart), so only an
    exact stamp match would leave real bags without any depth to score.
    """

    def __init__(self, depths: dict[int, np.ndarray], max_diff: float) -> None:
        self.stamps = np.array(sorted(depths), np.int64)
        self.depths = depths
        self.max_diff_ns = round(max_diff * 1e9)

    @classmethod
    def from_bag(
        cls, reader: AnyReader, topic: str, image_width: int, max_diff: float
    ) -> DepthIndex:
        connections = topic_connections(reader, topic, DEPTH_TYPES)
        depths = {
            stamp_ns(msg): to_model_resolution(depth_to_metres(msg), image_width)
            for _, msg in read_messages(reader, connections)
        }
        return cls(depths, max_diff)

    def nearest(self, stamp: int) -> np.ndarray | None:
        """The depth image closest in time to `stamp`, or None if none is within the tolerance."""
        if not len(self.stamps):
            return None
        right = int(np.searchsorted(self.stamps, stamp).clip(1, len(self.stamps) - 1))
        best = min(self.stamps[right - 1 : right + 1], key=lambda s: abs(int(s) - stamp))
        return self.depths[int(best)] if abs(int(best) - stamp) <= self.max_diff_ns else None


def selected_frames(
    reader: AnyReader, topic: str, stride: int, max_frames: int | None
) -> tuple[int, Iterator[tuple[int, np.ndarray]]]:
    """(how many, iterator of (stamp ns, rgb)) of every stride-th image, at most max_frames."""
    if stride < 1:
        raise ValueError(f'frame stride must be >= 1, got {stride}')
    connections = topic_connections(reader, topic, IMAGE_TYPES)
    count = -(-sum(c.msgcount for c in connections) // stride)
    count = min(count, max_frames) if max_frames is not None else count

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        messages = read_messages(reader, connections)
        for index, (_, message) in enumerate(messages):
            if index // stride >= count:
                return
            if index % stride == 0:
                yield stamp_ns(message), decode_rgb(message)

    return count, frames()


def _record(replay: Replay, result: FrameResult, gt_depth: np.ndarray | None) -> None:
    """Keep a frame's depth pair and add its confident points to the cloud."""
    if gt_depth is not None:
        replay.predicted_depth.append(result.depth)
        replay.gt_depth.append(gt_depth)
    # Confidence has no absolute scale: keep each frame's more confident half.
    options = OutputOptions(
        conf_threshold=float(np.median(result.confidence)), decimation=CLOUD_DECIMATION
    )
    replay.cloud.insert(*FrameOutputs(result, options).world_points())


def replay(
    reconstructor: Reconstructor,
    reader: AnyReader,
    image_topic: str,
    depth_topic: str | None = None,
    frame_stride: int = 1,
    max_frames: int | None = None,
    max_time_diff: float = 0.01,
    progress: bool = True,
) -> Replay:
    """Step the reconstructor through the selected frames of `image_topic`, in bag order.

    Each frame is paired with the depth image nearest in time within `max_time_diff` seconds.
    """
    depths = (
        DepthIndex.from_bag(reader, depth_topic, reconstructor.image_width, max_time_diff)
        if depth_topic
        else DepthIndex({}, max_time_diff)
    )
    count, frames = selected_frames(reader, image_topic, frame_stride, max_frames)
    strip_at = set(np.linspace(0, count - 1, min(STRIP_FRAMES, count)).round().astype(int))
    stamps, poses, latencies = [], [], []
    out = Replay(Trajectory(np.empty(0, np.int64), np.empty((0, 4, 4))), np.empty(0), 0.0)
    start = time.perf_counter()
    for index, (stamp, rgb) in enumerate(
        tqdm(frames, total=count, unit='frame', disable=not progress)
    ):
        result = reconstructor.step(rgb, stamp / 1e9)
        stamps.append(stamp)
        poses.append(result.world_from_camera)
        latencies.append(sum(result.timings.values()))
        gt_depth = depths.nearest(stamp)
        _record(out, result, gt_depth)
        if index in strip_at:
            out.strip.append((result.colours, result.depth, gt_depth))
    out.wall_seconds = time.perf_counter() - start
    out.trajectory = Trajectory(np.asarray(stamps, np.int64), np.stack(poses))
    out.latencies = np.asarray(latencies)
    return out
