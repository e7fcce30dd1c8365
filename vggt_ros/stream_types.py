"""What a stream is configured with and what it returns per frame (numpy only: no torch, no ROS).

The model, the Reconstructor, the node's parameter table and the evaluator all take one
SessionOptions and speak FrameResult, so a stream option is defined, checked and defaulted here
once instead of being retyped in every signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16')
CAMERA_CACHES = ('official', 'causal')
HEADS = ('camera', 'depth', 'point')
# Only models built with one (StreamVGGTConfig.flow_head) have it: each patch's match in the
# session's first frame. With it in a Reconstructor's heads, poses are solved from those matches.
FLOW_HEAD = 'flow'
# What the Reconstructor's consumers read: the node and the evaluator unproject depth, so the
# point head (about 5-8% of a 1B step, and its copy to the host) runs only on request.
RECONSTRUCTOR_HEADS = ('camera', 'depth')


@dataclass(frozen=True)
class SessionOptions:
    """How a StreamSession runs.

    window: None keeps every frame (the reference); W >= 2 keeps the anchor (first) frame and
        the W - 1 most recent ones.
    camera_cache: 'official' reproduces the reference inference(), 'causal' forward_causal.
    merging: FastVGGT token merging, a MergingConfig or a mapping of its fields; None is off.
    precision: autocast dtype of the aggregator; the heads always run in fp32.
    heads: which heads run ('camera' gives pose_enc, 'depth' depth and depth_conf, 'point'
        world_points and world_points_conf, 'flow' flow [P, 2]); fixed for a session.
    """

    window: int | None = None
    camera_cache: str = 'official'
    merging: Mapping[str, Any] | Any | None = None
    precision: str = 'auto'
    heads: tuple[str, ...] = HEADS

    def __post_init__(self) -> None:
        if self.window is not None and self.window < 2:
            raise ValueError(
                f'window must be at least 2 (the anchor and the current frame), got {self.window}'
            )
        if self.camera_cache not in CAMERA_CACHES:
            raise ValueError(
                f'camera_cache must be one of {CAMERA_CACHES}, got {self.camera_cache!r}'
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {PRECISIONS}, got {self.precision!r}')
        if not self.heads or not set(self.heads) <= {*HEADS, FLOW_HEAD}:
            raise ValueError(f'heads must be some of {(*HEADS, FLOW_HEAD)}, got {self.heads!r}')


@dataclass(frozen=True)
class FrameResult:
    """Everything the model says about one frame, as numpy arrays at model resolution (H, W).

    Poses are in the world of the session (the first camera after a reset, OpenCV axes) and in the
    model's normalised, non-metric scale. The point head's outputs are None unless it ran.
    """

    frame_index: int
    stamp: float | None
    world_from_camera: np.ndarray  # 4x4 float64, the camera pose (inverse extrinsic)
    camera_from_world: np.ndarray  # 4x4 float64, the extrinsic
    K: np.ndarray  # 3x3 float64, principal point at (W/2, H/2)
    depth: np.ndarray  # HxW float32, z-depth
    confidence: np.ndarray  # HxW float32, depth confidence in (1, inf), higher is better
    colours: np.ndarray  # HxWx3 uint8, the image the model saw
    pose_enc: np.ndarray  # 9 float32: t, quaternion xyzw, fov_h, fov_w
    world_points: np.ndarray | None = None  # HxWx3 float32, from the point head
    world_points_conf: np.ndarray | None = None  # HxW float32
    timings: dict[str, float] = field(default_factory=dict)  # s: preprocess, model, postprocess
