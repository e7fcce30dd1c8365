"""Accuracy on held-out worlds, beside the baselines (`make heldout`).

    python -m vggt_ros.training.heldout out/heldout [--frames N] [vggt-eval options]

Writes the held-out scenes once (worlds of seeds never trained on, every trajectory kind), scores
the model on each with `vggt-eval --baselines` in the deployed configuration (config/small.yaml,
any vggt-eval options given on top), and writes heldout.json and table.md: depth AbsRel
(one scale for the sequence, as the goal counts it, and each frame scaled alone) beside the
scene's mean depth image, a constant depth and random weights; ATE beside a static
camera and random weights; and whether the goal holds on each scene.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from vggt_ros.config_files import config_file
from vggt_ros.evaluation import cli as vggt_eval
from vggt_ros.synthetic import HELD_OUT_SEEDS
from vggt_ros.training.scenes import PATH_FRAMES, write_scenes

CONFIG = config_file('small.yaml')
DEFAULT_EVAL_ARGS = ('--params-file', str(CONFIG))
SEEDS = range(HELD_OUT_SEEDS.start, HELD_OUT_SEEDS.start + 2)
FRAMES, WIDTH, HEIGHT = PATH_FRAMES, 224, 168
GOAL_ABS_REL = 0.20  # and no worse than the scene's own mean depth image
GOAL_ATE_VS_STATIC = 0.1


def goal(metrics: dict) -> dict[str, bool]:
    """Which parts of the goal one scene's metrics meet."""
    abs_rel = metrics['depth_abs_rel']
    return {
        'depth': abs_rel <= GOAL_ABS_REL
        and abs_rel <= metrics['baseline_mean_depth_image_abs_rel'],
        'poses': metrics['ate_rmse'] <= GOAL_ATE_VS_STATIC * metrics['baseline_static_camera_ate'],
    }


def score_scene(bag: Path, out: Path, eval_args: Sequence[str], baselines: bool = True) -> dict:
    """vggt-eval (with its baselines) on one synthetic bag; its metrics."""
    argv = [
        str(bag), '--out', str(out), '--gt-tf', 'world:camera_optical_frame',
        '--depth-topic', '/camera/depth', '--quiet', *(['--baselines'] if baselines else []),
        *eval_args,
    ]  # fmt: skip
    if vggt_eval.main(argv) != 0:
        raise RuntimeError(f'vggt-eval failed on {bag}')
    return json.loads((out / 'metrics.json').read_text())


def score_held_out(
    out: Path,
    eval_args: Sequence[str] = DEFAULT_EVAL_ARGS,
    seeds: range = SEEDS,
    frames: int = FRAMES,
) -> list[dict]:
    """One row per held-out scene: its name, metrics and goal."""
    rows = []
    for bag in write_scenes(out / 'scenes', seeds, frames, WIDTH, HEIGHT, split='held-out'):
        metrics = score_scene(bag, out / 'eval' / bag.name, eval_args)
        rows.append({'scene': bag.name, **metrics, 'goal': goal(metrics)})
    return rows


def table(rows: Sequence[dict]) -> str:
    """The markdown table of `rows`."""
    lines = [
        '| scene | AbsRel | each frame scaled | mean depth image | constant | random | δ<1.25 '
        '| ATE [m] | static camera | random | ATE / static | ATE / length | RPE [m] '
        '| goal depth, poses |',
        '|---|' + '---|' * 13,
    ]
    for row in rows:
        met = ', '.join('yes' if ok else 'no' for ok in row['goal'].values())
        lines.append(
            f'| {row["scene"]} | {row["depth_abs_rel"]:.3f} '
            f'| {row["depth_abs_rel_per_frame"]:.3f} '
            f'| {row["baseline_mean_depth_image_abs_rel"]:.3f} '
            f'| {row["baseline_constant_depth_abs_rel"]:.3f} '
            f'| {row["baseline_random_weights_depth_abs_rel"]:.3f} '
            f'| {row["depth_delta_1.25"]:.3f} | {row["ate_rmse"]:.3f} '
            f'| {row["baseline_static_camera_ate"]:.3f} '
            f'| {row["baseline_random_weights_ate_rmse"]:.3f} '
            f'| {row["ate_rmse"] / row["baseline_static_camera_ate"]:.2f} '
            f'| {row["ate_rmse"] / row["gt_path_length"]:.3f} | {row["rpe_trans_rmse"]:.3f} '
            f'| {met} |'
        )
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], epilog='Other options go to vggt-eval.'
    )
    parser.add_argument('out', type=Path)
    parser.add_argument('--frames', type=int, default=FRAMES, help=f'per scene ({FRAMES})')
    parser.add_argument('--worlds', type=int, default=len(SEEDS), help=f'({len(SEEDS)})')
    args, eval_args = parser.parse_known_args(argv)
    seeds = range(SEEDS.start, SEEDS.start + args.worlds)
    rows = score_held_out(args.out, (*DEFAULT_EVAL_ARGS, *eval_args), seeds, args.frames)
    (args.out / 'heldout.json').write_text(json.dumps(rows, indent=1) + '\n')
    (args.out / 'table.md').write_text(table(rows))
    print(table(rows), end='')


if __name__ == '__main__':
    main()
