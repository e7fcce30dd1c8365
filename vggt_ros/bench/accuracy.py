"""Section 14: the accuracy side of every speed option, with the shipped small model.

Each option is config/small.yaml (the deployed configuration: window 16, re-anchored after 32
frames or 0.5 of the scene depth moved) with one change, scored by
vggt-eval on the same held-out worlds (seeds never trained on, every trajectory kind), every
option on one scene before the next. Beside the speed ratio (the deployed configuration's mean
latency per frame over the option's, re-anchoring's warm-starts included) it gives ΔAbsRel and
ΔATE: the option's mean over the scenes minus the deployed one's (ATE as a fraction of each
scene's static-camera ATE, so scenes of every size weigh alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vggt_ros.training.heldout import CONFIG, HEIGHT, SEEDS, WIDTH, score_scene
from vggt_ros.training.scenes import write_scenes

DEPLOYED = 'deployed (config/small.yaml)'
FIXED = ('--anchor.max_frames', '0', '--anchor.max_distance', '0')
OPTIONS: dict[str, tuple[str, ...]] = {
    DEPLOYED: (),
    'poses from the camera head': ('--pose_source', 'camera_head'),
    "tracking at the model's size (tracking_scale 1)": ('--tracking_scale', '1'),
    'no multi-view depth': ('--multi_view_depth', 'false'),
    'window 4': ('--window_size', '4'),
    'merging on': ('--merging.enabled', 'true'),
    'image width 84 (tracked at 168)': ('--image_width', '84'),
    # Tracked at 168 too: twice that would be beyond the scenes' own 224 px.
    'image width 168 (tracked at 168)': ('--image_width', '168', '--tracking_scale', '1'),
    're-anchor every 8 frames, not by distance': (
        '--anchor.max_frames',
        '8',
        '--anchor.max_distance',
        '0',
    ),
    'no re-anchoring, window 4': (*FIXED, '--window_size', '4'),
    'no re-anchoring, window 8': (*FIXED, '--window_size', '8'),
    'no re-anchoring, window 16': FIXED,
    'no re-anchoring, window 32': (*FIXED, '--window_size', '32'),
    'no re-anchoring, unbounded': (*FIXED, '--window_size', '0'),
}


def _summary(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    return {
        'abs_rel': float(np.mean([row['depth_abs_rel'] for row in rows])),
        'ate_vs_static': float(np.mean([row['ate_vs_static'] for row in rows])),
        'mean_s': float(np.mean([row['latency_mean_ms'] / 1e3 for row in rows])),
    }


def speed_option_accuracy(
    out: Path, frames: int, seeds: range = SEEDS, checkpoint: str | None = None
) -> dict[str, Any]:
    """Every option of OPTIONS on the held-out worlds of `seeds`, `frames` frames each."""
    bags = write_scenes(out / 'scenes', seeds, frames, WIDTH, HEIGHT, False, split='held-out')
    base = ('--params-file', str(CONFIG), *(('--checkpoint', checkpoint) if checkpoint else ()))
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in OPTIONS}
    for bag in bags:  # every option on one scene, then the next: drift hits them alike
        static = None
        for name, change in OPTIONS.items():
            deployed = name == DEPLOYED  # scored first, with the baselines
            metrics = score_scene(bag, out / 'eval' / bag.name, (*base, *change), deployed)
            static = static or metrics['baseline_static_camera_ate']
            rows[name].append({**metrics, 'ate_vs_static': metrics['ate_rmse'] / static})
    options = {name: _summary(scored) for name, scored in rows.items()}
    deployed = options[DEPLOYED]
    for summary in options.values():
        summary['speed_ratio'] = deployed['mean_s'] / summary['mean_s']
        summary['delta_abs_rel'] = summary['abs_rel'] - deployed['abs_rel']
        summary['delta_ate_vs_static'] = summary['ate_vs_static'] - deployed['ate_vs_static']
    return {'scenes': [bag.name for bag in bags], 'frames': frames, 'options': options}


def accuracy_markdown(section: dict[str, Any]) -> list[str]:
    """Section 14's table."""
    lines = [
        '',
        '## 14. Accuracy of the speed options (the shipped small model, held-out worlds)',
        '',
        f'{len(section["scenes"])} held-out scenes ({", ".join(section["scenes"])}), '
        f'{section["frames"]} frames each. Speed: the deployed mean latency per frame over '
        "the option's (above 1 is faster). ATE is a fraction of the static camera's on each scene.",
        '',
        '| option | speed | AbsRel | ΔAbsRel | ATE / static | ΔATE / static |',
        '|---|---|---|---|---|---|',
    ]
    for name, row in section['options'].items():
        lines.append(
            f'| {name} | {row["speed_ratio"]:.2f} | {row["abs_rel"]:.3f} '
            f'| {row["delta_abs_rel"]:+.3f} | {row["ate_vs_static"]:.3f} '
            f'| {row["delta_ate_vs_static"]:+.3f} |'
        )
    return lines
