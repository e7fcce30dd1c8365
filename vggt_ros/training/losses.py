"""VGGT's training losses: one clip's predictions against its normalised targets (data.make_clip).

- camera: L1 regression of the pose encoding (translation, quaternion, field of view) after
  every refinement iteration of the camera head, the later ones weighted more;
- depth and points: regression weighted by the predicted confidence c (at least 1), with the
  -alpha log c term that keeps c from growing without bound, plus the same weighted regression on
  the spatial gradients of the error, which makes surfaces sharp and flat where they are;
- depth scale (optional, `vggt-train --depth-scale`): each frame's mean log depth error about
  its clip's mean, the one part of the depth error that chaining sessions compounds.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

CONF_ALPHA = 0.2  # weight of -log(confidence)
ITERATION_GAMMA = 0.6  # later refinement iterations count more
FOV_WEIGHT = 0.5
# VGGT's weights: the camera term counts five times, so that the dense terms' larger gradients
# do not drown it under the shared gradient-norm clip.
# The correspondence terms (training.correspondence, from-scratch runs that ask for them) count as
# much as a dense term, as in the two-frame runs that first taught a pose (weights README).
# The depth scale term's weight is the one `vggt-train --depth-scale` gives.
WEIGHTS = {
    'camera': 5.0,
    'depth': 1.0,
    'depth_grad': 1.0,
    'point': 1.0,
    'point_grad': 1.0,
    'match': 1.0,
    'flow': 1.0,
    'depth_scale': 1.0,
}


def _pose_error(estimate: Tensor, target: Tensor) -> Tensor:
    """L1 of [S, 9] pose encodings (t, quaternion xyzw, fov_h, fov_w), fields of view weighted
    FOV_WEIGHT; the first frame is the origin of both, so it counts like the others."""

    def l1(part: slice) -> Tensor:
        return (estimate[:, part] - target[:, part]).abs().mean()

    return l1(slice(0, 3)) + l1(slice(3, 7)) + FOV_WEIGHT * l1(slice(7, 9))


def camera_loss(iterations: Tensor, target: Tensor) -> Tensor:
    """VGGT's camera loss over the camera head's refinement iterations [n, S, 9]: iteration i
    weighted ITERATION_GAMMA ** (n - 1 - i), averaged over the n."""
    count = len(iterations)
    weighted = (
        ITERATION_GAMMA ** (count - 1 - i) * _pose_error(estimate, target)
        for i, estimate in enumerate(iterations)
    )
    return sum(weighted) / count


def _weighted(error: Tensor, confidence: Tensor, valid: Tensor) -> Tensor:
    """Mean over valid pixels of c * error - alpha * log c."""
    if not valid.any():
        return error.sum() * 0
    c = confidence[valid]
    return (c * error[valid] - CONF_ALPHA * torch.log(c)).mean()


def _gradient_error(difference: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """|d/dx| + |d/dy| of the per-pixel error vector [S, H, W, C], where both neighbours are
    valid (on the pixel grid cropped by one), and that validity."""
    dx = (difference[:, :, 1:] - difference[:, :, :-1]).norm(dim=-1)[:, :-1]
    dy = (difference[:, 1:] - difference[:, :-1]).norm(dim=-1)[:, :, :-1]
    both = (valid[:, :, 1:] & valid[:, :, :-1])[:, :-1] & (valid[:, 1:] & valid[:, :-1])[:, :, :-1]
    return dx + dy, both


def dense_loss(predicted: Tensor, confidence: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """(regression, gradient) losses of [S, H, W, C] predictions against targets with NaN where
    unknown; confidence [S, H, W]."""
    valid = torch.isfinite(target).all(dim=-1)
    difference = predicted - torch.nan_to_num(target)
    regression = _weighted(difference.norm(dim=-1), confidence, valid)
    gradient, both = _gradient_error(difference, valid)
    return regression, _weighted(gradient, confidence[:, :-1, :-1], both)


def depth_scale_loss(predicted: Tensor, target: Tensor, sequences: int) -> Tensor:
    """L1 of each frame's mean log depth error about its clip's mean, for `sequences` clips of
    [S, H, W] depth one after the other (target NaN where unknown).

    In the dense terms a view's scale is one small part of every pixel's error, beside its
    shape; here it is the whole: how much nearer or farther the frame is than the rest of its
    clip, the factor every later session re-anchored on that frame inherits."""
    valid = torch.isfinite(target) & (target > 0)
    log_error = torch.where(
        valid, predicted.clamp_min(1e-6).log() - torch.nan_to_num(target, 1.0).log(), 0
    )
    pixels = valid.flatten(1).sum(1)
    frame_error = (log_error.flatten(1).sum(1) / pixels.clamp_min(1)).view(sequences, -1)
    seen = (pixels > 0).view(sequences, -1).to(frame_error.dtype)
    clip_mean = (frame_error * seen).sum(1, keepdim=True) / seen.sum(1, keepdim=True).clamp_min(1)
    return ((frame_error - clip_mean).abs() * seen).sum() / seen.sum().clamp_min(1)


def clip_loss(
    out: dict[str, Tensor],
    clip,
    extra: Mapping[str, Tensor] | None = None,
    weights: Mapping[str, float] = WEIGHTS,
) -> dict[str, Tensor]:
    """Every term for one clip, with any `extra` ones (named in `weights`), and their weighted
    sum as 'total'."""
    terms = {'camera': camera_loss(out['pose_enc_iterations'], clip.pose_enc)}
    if 'depth' in out:
        terms['depth'], terms['depth_grad'] = dense_loss(
            out['depth'][..., None], out['depth_conf'], clip.depth[..., None]
        )
    if 'world_points' in out:
        terms['point'], terms['point_grad'] = dense_loss(
            out['world_points'], out['world_points_conf'], clip.points
        )
    terms.update(extra or {})
    terms['total'] = sum(weights[name] * value for name, value in terms.items())
    return terms
