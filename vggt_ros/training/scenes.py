"""The training set of `make train` (and the held-out set): varied synthetic worlds
(vggt-synth --seed) as rosbags.

`python -m vggt_ros.training.scenes OUT --seeds 1 60` writes one bag per seed and trajectory kind
from a pool of worker processes, one per core (a vggt-synth per bag would spend more time
importing than rendering). Each split accepts only its own seeds, so held-out worlds stay unseen
by training.
"""

from __future__ import annotations

import argparse
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from vggt_ros.evaluation.bag_io import BagError, open_bag
from vggt_ros.synthetic import (
    HELD_OUT_SEEDS,
    TOPICS,
    TRAIN_SEEDS,
    TRAJECTORIES,
    make_sequence,
    write_bag,
)

SPLITS = {'train': TRAIN_SEEDS, 'held-out': HELD_OUT_SEEDS}
# Frames per whole path: 8 s at 15 fps, about 3 degrees a frame when rotating in place and 4-6 cm
# when walking. At 40 a frame turned 10 degrees, too far for frames to be related.
PATH_FRAMES = 120


def _write_bag(path: Path, seed: int, kind: str, frames: int, width: int, height: int) -> None:
    """The first `frames` of the (seed, kind) path sampled max(frames, PATH_FRAMES) times."""
    sequence = make_sequence(kind, max(frames, PATH_FRAMES), width, height, seed=seed, varied=True)
    write_bag(
        replace(sequence, poses=sequence.poses[:frames], stamps=sequence.stamps[:frames]), path
    )


def write_scenes(
    out: Path,
    seeds: range,
    frames: int,
    width: int,
    height: int,
    progress: bool = True,
    split: str = 'train',
    workers: int = 1,
) -> list[Path]:
    """One bag per (seed, trajectory kind) under `out`, seeds of `split` only, rendered by
    `workers` processes; their paths. A bag already there is kept if it is whole and has
    `frames` images, else written again (an interrupted run, another --frames)."""
    foreign = [seed for seed in seeds if seed not in SPLITS[split]]
    if foreign:
        raise ValueError(f'seeds {foreign[:3]}... are not in the {split} split')
    jobs = {out / f'{kind}-{seed}': (seed, kind) for seed in seeds for kind in sorted(TRAJECTORIES)}
    missing = [
        (path, *job, frames, width, height)
        for path, job in jobs.items()
        if not _holds(path, frames)
    ]
    for path, *_ in missing:
        shutil.rmtree(path, ignore_errors=True)
    if missing:
        with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
            written = (pool.map if pool else map)(_write_bag, *zip(*missing, strict=True))
            for _ in tqdm(written, total=len(missing), unit='bag', disable=not progress):
                pass
    return list(jobs)


def _holds(path: Path, frames: int) -> bool:
    """Whether `path` is a whole bag of `frames` images (a half-written one cannot be opened)."""
    if not path.exists():
        return False
    try:
        with open_bag(path) as reader:
            images = [c.msgcount for c in reader.connections if c.topic == TOPICS['image']]
    except BagError:
        return False
    return images == [frames]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out', type=Path)
    parser.add_argument('--seeds', type=int, nargs=2, default=(1, 60), metavar=('FIRST', 'LAST'))
    parser.add_argument('--frames', type=int, default=PATH_FRAMES)
    parser.add_argument('--width', type=int, default=224)
    parser.add_argument('--height', type=int, default=168)
    parser.add_argument(
        '--workers',
        type=int,
        default=os.cpu_count() or 1,
        help='rendering processes (one per core)',
    )
    parser.add_argument(
        '--split', choices=sorted(SPLITS), default='train', help='the seeds must be of this split'
    )
    args = parser.parse_args(argv)
    first, last = args.seeds
    bags = write_scenes(
        args.out, range(first, last + 1), args.frames, args.width, args.height,
        split=args.split, workers=args.workers,
    )  # fmt: skip
    print(f'{len(bags)} bags in {args.out}')


if __name__ == '__main__':
    main()
