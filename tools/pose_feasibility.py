"""What the pose goal (ATE <= 0.1x a static camera's) asks of the images, from ground truth only.

For each scene: the static camera's ATE and the goal, the camera's step a frame and its baseline
over one re-anchored session, and both as parallax at the scene's median depth, in pixels at
`--width`: how far the content moves over a session against how far the goal lets an estimate
be off. Results and what they show: vggt_ros/weights/README.md.

    python tools/pose_feasibility.py out/heldout/scenes/* --width 112
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vggt_ros.evaluation.baselines import static_camera_ate
from vggt_ros.training.data import BagTopics, read_frames

GOAL = 0.1  # the pose goal, as a fraction of the static camera's ATE
SESSION = 8  # frames between re-anchorings in config/small.yaml


def scene_figures(bag: Path, width: int) -> dict[str, float]:
    """The table's figures for one scene, in metres and pixels at `width`."""
    frames = read_frames(bag, width, BagTopics())
    centres = frames.poses[:, :3, 3]
    static = static_camera_ate(centres)
    baseline = float(
        np.median(np.linalg.norm(centres[SESSION - 1 :] - centres[: 1 - SESSION], axis=1))
    )
    depth = float(np.nanmedian(frames.depths.numpy()))
    pixels = frames.K[0, 0] / depth  # parallax per metre of baseline at the median depth
    return {
        'static': static,
        'goal': GOAL * static,
        'step': float(np.median(np.linalg.norm(np.diff(centres, axis=0), axis=1))),
        'baseline': baseline,
        'depth': depth,
        'parallax': pixels * baseline,
        'goal_parallax': pixels * GOAL * static,
    }


def markdown_row(name: str, figures: dict[str, float]) -> str:
    f = figures
    return (
        f'| {name} | {f["static"]:.3f} | {f["goal"]:.3f} | {f["step"]:.3f} | '
        f'{f["baseline"]:.3f} | {f["depth"]:.2f} | {f["parallax"]:.1f} | {f["goal_parallax"]:.1f} |'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('bags', nargs='+', type=Path, help='synthetic scenes (vggt-synth bags)')
    parser.add_argument('--width', type=int, default=112, help='image width the model sees')
    args = parser.parse_args()
    print(
        f"| scene | static camera ATE [m] | goal [m] | step a frame [m] | {SESSION} frames' "
        'baseline [m] | median depth [m] | its parallax [px] | the goal as parallax [px] |'
    )
    print('|---' * 8 + '|')
    for bag in args.bags:
        print(markdown_row(bag.name, scene_figures(bag, args.width)), flush=True)


if __name__ == '__main__':
    main()
