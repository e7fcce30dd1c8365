"""Section 12: the evaluator's memory over a long bag. vggt-eval replays a bag through the node's
StreamPipeline in one pass and scores depth as it streams by, so its memory must stay flat but
for the trajectory it keeps (a stamp and a pose per frame): RSS is sampled as the frames go by.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from vggt_ros.bench.harness import fitted_slope, rss_bytes, timed
from vggt_ros.evaluation import cli
from vggt_ros.model import StreamVGGT
from vggt_ros.param_options import reconstructor_options
from vggt_ros.pipeline import Outcome
from vggt_ros.reconstructor import Reconstructor
from vggt_ros.synthetic import TOPICS, make_sequence, write_bag

EVAL_SIZE = (42, 56)  # height, width of the bag's frames, the model's own size at width 56
EVAL_WINDOW = 16
EVAL_WARMUP = 0.1  # the first 10% of frames: allocator, caches and map settle
EVAL_RSS_SAMPLES = 200


def evaluator_memory(
    model: StreamVGGT,
    preset: str,
    frames: int,
    seed: int = 0,
    size: tuple[int, int] = EVAL_SIZE,
) -> dict[str, Any]:
    """Write a `frames`-frame synthetic RGB-D bag, replay it as vggt-eval does (its parameters
    parsed by vggt-eval's own CLI: `model`, of `preset`, window EVAL_WINDOW, depth scored), and
    sample RSS every frames / EVAL_RSS_SAMPLES frames; the slope is fitted after warm-up."""
    height, width = size
    warmup = max(1, round(EVAL_WARMUP * frames))
    every = max(1, frames // EVAL_RSS_SAMPLES)
    if frames - warmup < 2 * every:
        raise ValueError(f'need a few RSS samples after warm-up; got {frames} frames')
    samples: list[tuple[int, int]] = []  # (frames replayed, RSS)
    replayed = 0

    def sample(_: Outcome) -> None:
        nonlocal replayed
        replayed += 1
        if replayed % every == 0 or replayed in (warmup, frames):
            samples.append((replayed, rss_bytes()))

    with tempfile.TemporaryDirectory(prefix='vggt_bench_eval_') as folder:
        sequence = make_sequence('walk', frames, width, height, seed=seed)
        bag, write_s = timed(write_bag, sequence, Path(folder) / 'walk')
        bag_bytes = sum(path.stat().st_size for path in bag.rglob('*') if path.is_file())
        args = cli.parse_args(
            [str(bag), '--depth-topic', TOPICS['depth'], '--quiet']
            + ['--preset', preset, '--window-size', str(EVAL_WINDOW)]
            + ['--image-width', str(width)]
        )
        values = cli.parameter_values(args)
        reconstructor = Reconstructor(model, **reconstructor_options(values))
        result, _ = cli.replay_bag(args, values, reconstructor, on_outcome=sample)
    after = [(frame, rss) for frame, rss in samples if frame >= warmup]
    return {
        'preset': preset,
        'image_size': list(size),
        'window': EVAL_WINDOW,
        'frames': frames,
        'bag_bytes': bag_bytes,
        'write_s': write_s,
        'replay_s': result.wall_seconds,
        'processed': result.counts['processed'],
        'depth_scored': result.counts['depth scored'],
        'trajectory_bytes': result.trajectory.stamps.nbytes + result.trajectory.poses.nbytes,
        'warmup_frames': warmup,
        'rss_every': every,
        'rss_warmup_end': after[0][1],
        'rss_end': after[-1][1],
        'rss_slope_bytes_per_frame': fitted_slope(*zip(*after, strict=True)),
    }
