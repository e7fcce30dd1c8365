"""Training sequences from rosbags with ground truth, read as vggt-eval reads them.

A bag gives frames: the camera image at the model's size (the Reconstructor's own preprocessing),
the depth topic sampled at the model's pixels, the ground-truth camera pose (TF chain) and the
camera's intrinsics (its CameraInfo, rescaled as the model sees the image). A clip is S
consecutive frames; its targets are VGGT's: poses and points in the first camera's frame, all
divided by the mean distance of the valid points from that camera (VGGT's normalisation), so the
model learns its normalised scale.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from vggt_ros.evaluation import ground_truth
from vggt_ros.evaluation.bag_io import open_bag, read_messages, stamp_ns, topic_connections
from vggt_ros.evaluation.replay import DEPTH_TYPES, IMAGE_TYPES, decode_rgb
from vggt_ros.images import depth_to_metres
from vggt_ros.model.geometry import extri_intri_to_pose_encoding
from vggt_ros.reconstructor import preprocess
from vggt_ros.registration import to_model_grid
from vggt_ros.synthetic import scale_intrinsics

INFO_TYPES = ('sensor_msgs/msg/CameraInfo',)
PATCH_SIZE = 14  # every preset's
MATCH_DEPTH_TOLERANCE = 0.05  # relative: a farther or nearer surface there occludes the point


@dataclass(frozen=True)
class BagTopics:
    """Where a bag keeps what training needs (the synthetic scenes' names by default)."""

    image: str = '/camera/image_raw'
    depth: str = '/camera/depth'
    info: str = '/camera/camera_info'
    gt_parent: str = 'world'
    gt_child: str = 'camera_optical_frame'


@dataclass(frozen=True)
class Frames:
    """One bag's frames at the model's size."""

    images: Tensor  # [N, 3, H, W] in [0, 1]
    depths: Tensor  # [N, H, W] metres, NaN where unknown
    poses: np.ndarray  # [N, 4, 4] world_from_camera (optical)
    K: np.ndarray  # [3, 3] at the model's size

    def __len__(self) -> int:
        return len(self.images)


def read_frames(path: str | os.PathLike, image_width: int, topics: BagTopics) -> Frames:
    """Every image of the bag with its depth (same stamp) and ground-truth pose (nearest stamp)."""
    with open_bag(path) as reader:
        truth = ground_truth.from_tf(reader, topics.gt_parent, topics.gt_child)
        connections = [
            *topic_connections(reader, topics.image, IMAGE_TYPES),
            *topic_connections(reader, topics.depth, DEPTH_TYPES),
            *topic_connections(reader, topics.info, INFO_TYPES),
        ]
        images, depths, info = {}, {}, None
        for topic, _, message in read_messages(reader, connections):
            if topic == topics.image:
                images[stamp_ns(message)] = preprocess(decode_rgb(message), image_width)
            elif topic == topics.depth:
                depths[stamp_ns(message)] = depth_to_metres(message)
            else:
                info = message
    if info is None:
        raise ValueError(f'{path}: no CameraInfo on {topics.info}')
    stamps = sorted(set(images) & set(depths))
    if not stamps:
        raise ValueError(f'{path}: no image with a depth image of the same stamp')
    nearest = [int(np.argmin(np.abs(truth.stamps - stamp))) for stamp in stamps]
    model_hw = images[stamps[0]].shape[-2:]
    K = np.asarray(info.k, float).reshape(3, 3)
    return Frames(
        images=torch.stack([images[s] for s in stamps]),
        depths=torch.stack(
            [torch.from_numpy(to_model_grid(depths[s], image_width)) for s in stamps]
        ),
        poses=truth.poses[nearest],
        K=scale_intrinsics(K, (info.height, info.width), model_hw),
    )


@dataclass(frozen=True)
class Clip:
    """S frames and their VGGT targets; a batch is `sequences` clips one after the other."""

    images: Tensor  # [S, 3, H, W]
    pose_enc: Tensor  # [S, 9] camera-from-first, normalised translation
    depth: Tensor  # [S, H, W] normalised, NaN where unknown
    points: Tensor  # [S, H, W, 3] in the first camera's frame, normalised
    scale: Tensor  # [sequences] metres per normalised unit
    matches: Tensor  # [S, P] the first frame's patch showing each patch's centre, or -1
    flow: Tensor  # [S, P, 2] where that point is in the first frame, in patches from the centre
    sequences: int = 1

    def to(self, device: torch.device | str) -> Clip:
        """The same clip with its tensors on `device`."""
        return replace(
            self,
            **{name: getattr(self, name).to(device, non_blocking=True) for name in TENSOR_FIELDS},
        )

    def pin_memory(self) -> Clip:
        """The same clip in page-locked memory, for a data loader that feeds a GPU."""
        return replace(self, **{name: getattr(self, name).pin_memory() for name in TENSOR_FIELDS})


TENSOR_FIELDS = ('images', 'pose_enc', 'depth', 'points', 'scale', 'matches', 'flow')


def batch_clips(clips: Sequence[Clip]) -> Clip:
    """Clips of equal length as one batch: each stays its own causal sequence, normalised alone."""
    if len({len(clip.images) for clip in clips}) != 1:
        raise ValueError('a batch needs clips of one length')
    tensors = {name: torch.cat([getattr(clip, name) for clip in clips]) for name in TENSOR_FIELDS}
    return Clip(**tensors, sequences=len(clips))


def make_clip(frames: Frames, indices: Sequence[int], patch_size: int = PATCH_SIZE) -> Clip:
    """The clip of `frames` at `indices`, normalised as VGGT normalises ground truth, with each
    later frame's patch correspondences to the first (first_frame_matches)."""
    poses = frames.poses[list(indices)]
    first_from_camera = np.linalg.inv(poses[0]) @ poses
    depth = frames.depths[list(indices)].double()
    height, width = depth.shape[-2:]
    K = torch.from_numpy(frames.K)
    v, u = torch.meshgrid(torch.arange(height), torch.arange(width), indexing='ij')
    rays = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    camera_points = rays.double() * depth[..., None]
    transform = torch.from_numpy(first_from_camera)
    points = (
        camera_points @ transform[:, None, :3, :3].transpose(-1, -2)
        + transform[:, None, None, :3, 3]
    )
    valid = torch.isfinite(depth) & (depth > 0)
    scale = float(points[valid].norm(dim=-1).mean()) if valid.any() else 1.0
    camera_from_first = torch.from_numpy(np.linalg.inv(first_from_camera))
    camera_from_first[:, :3, 3] /= scale
    intrinsics = K.expand(len(indices), 3, 3)
    pose_enc = extri_intri_to_pose_encoding(camera_from_first[:, :3], intrinsics, (height, width))
    matches, flow = first_frame_matches(points, depth, K, patch_size)
    return Clip(
        images=frames.images[list(indices)],
        pose_enc=pose_enc.float(),
        depth=(depth / scale).float(),
        points=(points / scale).float(),
        scale=torch.tensor([scale]),
        matches=matches,
        flow=flow,
    )


def first_frame_matches(
    points: Tensor, depth: Tensor, K: Tensor, patch_size: int
) -> tuple[Tensor, Tensor]:
    """For every patch of frames 1.., the first frame's patch that shows its centre pixel, and
    where (in patches, from the patch's own centre): [S, P] indices, -1 where the point is outside
    the first view, occluded there (its depth differs by over MATCH_DEPTH_TOLERANCE) or unknown,
    and [S, P, 2] offsets, zero where there is no match. The first frame matches nothing.

    points: [S, H, W, 3] in the first camera's frame; depth: [S, H, W] (same units).
    """
    height, width = depth.shape[-2:]
    rows, cols = height // patch_size, width // patch_size
    v = torch.arange(rows) * patch_size + patch_size // 2
    u = torch.arange(cols) * patch_size + patch_size // 2
    centres = points[:, v][:, :, u].reshape(len(points), -1, 3).double()  # [S, P, 3]
    z = centres[..., 2]
    u0 = K[0, 0] * centres[..., 0] / z + K[0, 2]
    v0 = K[1, 1] * centres[..., 1] / z + K[1, 2]
    seen = torch.isfinite(u0) & torch.isfinite(v0) & (z > 0)
    column = torch.where(seen, (u0 + 0.5).floor(), torch.full_like(u0, -1)).long()
    row = torch.where(seen, (v0 + 0.5).floor(), torch.full_like(v0, -1)).long()
    seen &= (column >= 0) & (column < cols * patch_size) & (row >= 0) & (row < rows * patch_size)
    first_depth = depth[0][row.clamp(0, height - 1), column.clamp(0, width - 1)]
    seen &= (first_depth - z).abs() < MATCH_DEPTH_TOLERANCE * z  # NaN depth compares False
    seen[0] = False
    matches = (row // patch_size) * cols + column // patch_size
    own_u, own_v = u.repeat(rows).double(), v.repeat_interleave(cols).double()
    offsets = torch.stack([u0 - own_u, v0 - own_v], dim=-1) / patch_size
    flow = torch.where(seen[..., None], offsets, torch.zeros_like(offsets)).float()
    return torch.where(seen, matches, torch.full_like(matches, -1)), flow


def clip_indices(length: int, frames: int, stride: int, rng: np.random.Generator) -> list[int]:
    """`frames` indices `stride` apart from a random start within a sequence of `length`."""
    span = (frames - 1) * stride + 1
    if span > length:
        raise ValueError(f'a clip of {frames} frames {stride} apart needs {span}, got {length}')
    start = int(rng.integers(0, length - span + 1))
    return list(range(start, start + span, stride))


def draw_clip(frames: Frames, length: int, max_stride: int, rng: np.random.Generator) -> Clip:
    """A clip of `length` frames at a random stride of 1..max_stride (no wider than the bag
    allows) from a random start."""
    stride = int(rng.integers(1, max_stride + 1))
    stride = min(stride, max(1, (len(frames) - 1) // max(1, length - 1)))
    return make_clip(frames, clip_indices(len(frames), length, stride, rng))
