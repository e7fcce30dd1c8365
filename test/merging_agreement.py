"""How far merged outputs are from unmerged ones: numbers to report, not to assert on."""

import torch


def agreement(merged: dict, unmerged: dict) -> dict[str, float]:
    """Relative depth difference and pose differences over the frames of two streams [S, ...].

    Rotation: angle between the (normalised) quaternions; translation: in the model's scale.
    """
    depth = (merged['depth'] - unmerged['depth']).abs() / unmerged['depth']
    quat_m, quat_u = (
        torch.nn.functional.normalize(p['pose_enc'][:, 3:7], dim=-1) for p in (merged, unmerged)
    )
    cosine = (quat_m * quat_u).sum(-1).abs().clamp(max=1)
    translation = (merged['pose_enc'][:, :3] - unmerged['pose_enc'][:, :3]).norm(dim=-1)
    return {
        'depth_rel_mean': depth.mean().item(),
        'depth_rel_max_frame_mean': depth.flatten(1).mean(1).max().item(),
        'rotation_deg_max': torch.rad2deg(2 * cosine.acos()).max().item(),
        'translation_max': translation.max().item(),
        'translation_norm_mean': unmerged['pose_enc'][:, :3].norm(dim=-1).mean().item(),
    }


def report(label: str, merged: dict, unmerged: dict) -> dict[str, float]:
    """Print the agreement (visible with pytest -s) and return it."""
    numbers = agreement(merged, unmerged)
    print(f'\n{label}: ' + ', '.join(f'{name} {value:.3g}' for name, value in numbers.items()))
    return numbers
