"""A stand-in for StreamVGGT with known outputs, in the model's raw conventions.

Random weights cannot show that the conventions downstream are right (pose inversion,
TF direction, depth units, point clouds, world axes). This stand-in returns, frame by
frame, a pose encoding (camera-from-world, OpenCV axes) and a z-depth map given by the
test, exactly as the real model would report them, so the node and the evaluator can be
checked against what those conventions imply.
"""

from collections.abc import Callable

import torch

from vggt_ros.model.geometry import depth_to_world_points, pose_encoding_to_extri_intri

# frame index -> (pose_enc [9], depth [H, W]) for a model input of that size
FrameSource = Callable[[int, int, int], tuple[torch.Tensor, torch.Tensor]]


class StandInSession:
    def __init__(self, source: FrameSource, merging=None) -> None:
        self.source = source
        self.frames_seen = 0
        self.merging = merging  # recorded only: the stand-in's outputs do not depend on it

    def set_merging(self, merging) -> None:
        self.merging = merging

    def reset(self) -> None:
        self.frames_seen = 0

    def step(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = image.shape[-2:]
        pose_enc, depth = self.source(self.frames_seen, height, width)
        pose_enc = pose_enc.to(torch.float32)
        depth = depth.to(torch.float32)
        extrinsic, intrinsic = pose_encoding_to_extri_intri(pose_enc.double(), (height, width))
        points = depth_to_world_points(depth.double(), extrinsic, intrinsic).float()
        self.frames_seen += 1
        confidence = torch.full_like(depth, 10.0)
        return {
            'pose_enc': pose_enc,
            'depth': depth,
            'depth_conf': confidence,
            'world_points': points,
            'world_points_conf': confidence.clone(),
        }


class StandInModel(torch.nn.Module):
    """Drop-in for StreamVGGT where only sessions are used (Reconstructor, node, evaluator)."""

    def __init__(self, source: FrameSource) -> None:
        super().__init__()
        self.source = source
        self.anchor = torch.nn.Parameter(torch.zeros(()), requires_grad=False)  # marks the device

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    def new_session(self, options=None, **fields) -> StandInSession:
        return StandInSession(self.source, fields.get('merging', options and options.merging))
