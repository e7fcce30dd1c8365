"""Validation while training: pose R² and depth AbsRel of fixed clips from bags not trained on.

ATE after Sim(3) flatters a model that has learned no pose: the alignment makes a small constant
drift look like a third of a static camera's error. The coefficient of determination of the pose
encoding against the truth does not: it is 0 for a model that always predicts the mean pose and 1
for a perfect one, so a run shows when (and whether) its camera head starts to read the images.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vggt_ros.evaluation.metrics import DepthAccumulator
from vggt_ros.model import StreamVGGT
from vggt_ros.training.data import Clip, Frames, draw_clip
from vggt_ros.training.losses import depth_scale_loss

CLIPS_PER_BAG = 4
SEED = 123  # the same clips for every run, and for every step of one
COLUMNS = ('step', 'depth_abs_rel', 'depth_scale_error', 'pose_r2_translation', 'pose_r2_rotation')
TRANSLATION, ROTATION = slice(0, 3), slice(3, 6)  # of the pose encoding; rotation: quaternion xyz


def validation_clips(frames: list[Frames], length: int, max_stride: int) -> list[Clip]:
    """CLIPS_PER_BAG clips of `length` frames from each bag, strides 1..max_stride, seeded."""
    rng = np.random.default_rng(SEED)
    return [draw_clip(bag, length, max_stride, rng) for bag in frames for _ in range(CLIPS_PER_BAG)]


def r_squared(predicted: Tensor, truth: Tensor) -> float:
    """1 - residual / total sum of squares, pooled over the columns of [N, D]; each column's
    total is about its own mean."""
    total = float(((truth - truth.mean(dim=0)) ** 2).sum())
    if total == 0.0:
        raise ValueError('R² needs targets that vary')
    return 1.0 - float(((predicted - truth) ** 2).sum()) / total


@torch.no_grad()
def validate(model: StreamVGGT, clips: list[Clip]) -> dict[str, float]:
    """Pose R² of every frame after each clip's first (the first is the origin by construction),
    and the mean over clips of depth AbsRel after one median scale per clip, as vggt-eval scales
    a sequence, and of the frames' depth scale error (losses.depth_scale_loss). The model is
    back in the mode it was in."""
    was_training = model.training
    model.eval()
    predicted, truth, abs_rel, scale_error = [], [], [], []
    for clip in clips:
        out = model.forward_causal(clip.images, 'fp32', ('camera', 'depth'))
        predicted.append(out['pose_enc'][1:].float().cpu())
        truth.append(clip.pose_enc[1:])
        depth = DepthAccumulator(capacity=clip.depth.numel())  # exact, and no larger
        estimates = out['depth'].float().cpu().numpy()
        for estimate, target in zip(estimates, clip.depth.numpy(), strict=True):
            depth.add(estimate, target)
        abs_rel.append(depth.result()['depth_abs_rel'])
        scale_error.append(float(depth_scale_loss(out['depth'].float().cpu(), clip.depth, 1)))
    model.train(was_training)
    predicted, truth = torch.cat(predicted), torch.cat(truth)
    return {
        'depth_abs_rel': float(np.mean(abs_rel)),
        'depth_scale_error': float(np.mean(scale_error)),
        'pose_r2_translation': r_squared(predicted[:, TRANSLATION], truth[:, TRANSLATION]),
        'pose_r2_rotation': r_squared(predicted[:, ROTATION], truth[:, ROTATION]),
    }
