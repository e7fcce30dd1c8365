"""The training set of `make train`: varied synthetic worlds (vggt-synth --seed) as rosbags.

`python -m vggt_ros.training.scenes OUT --seeds 1 60` writes one bag per seed and trajectory kind
in one process (a vggt-synth per bag would spend more time importing than rendering). Only
training seeds are accepted, so held-out worlds stay unseen.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from vggt_ros.synthetic import HELD_OUT_SEEDS, TRAJECTORIES, make_sequence, write_bag


def write_scenes(
    out: Path, seeds: range, frames: int, width: int, height: int, progress: bool = True
) -> list[Path]:
    """One bag per (seed, trajectory kind) under `out`; the paths written."""
    held_out = [seed for seed in seeds if seed in HELD_OUT_SEEDS]
    if held_out:
        raise ValueError(f'seeds {held_out[:3]}... are held out for evaluation, not training')
    bags = []
    jobs = [(seed, kind) for seed in seeds for kind in sorted(TRAJECTORIES)]
    for seed, kind in tqdm(jobs, unit='bag', disable=not progress):
        path = out / f'{kind}-{seed}'
        if not path.exists():
            sequence = make_sequence(kind, frames, width, height, seed=seed, varied=True)
            write_bag(sequence, path)
        bags.append(path)
    return bags


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out', type=Path)
    parser.add_argument('--seeds', type=int, nargs=2, default=(1, 60), metavar=('FIRST', 'LAST'))
    parser.add_argument('--frames', type=int, default=40)
    parser.add_argument('--width', type=int, default=224)
    parser.add_argument('--height', type=int, default=168)
    args = parser.parse_args(argv)
    first, last = args.seeds
    bags = write_scenes(args.out, range(first, last + 1), args.frames, args.width, args.height)
    print(f'{len(bags)} bags in {args.out}')


if __name__ == '__main__':
    main()
