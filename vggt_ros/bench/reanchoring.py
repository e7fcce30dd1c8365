"""Section 13: the cost of re-anchoring. Two StreamPipelines over one synthetic loop, stepped in
turn frame by frame: the anchor kept for ever vs re-anchored every `every` frames (each warm-start
`overlap` extra model steps, charged to the frame it precedes). Per-frame latency p50/p95/max of
the whole pipeline step, and the chained trajectory's ATE after Sim(3) against the ground truth.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from vggt_ros import param_options, params
from vggt_ros.bench.harness import in_turn, timed
from vggt_ros.evaluation.ground_truth import make_trajectory
from vggt_ros.evaluation.metrics import trajectory_metrics
from vggt_ros.model import StreamVGGT
from vggt_ros.pipeline import StreamPipeline
from vggt_ros.reconstructor import Reconstructor
from vggt_ros.synthetic import make_sequence

REANCHOR_WINDOW = 8
REANCHOR_EVERY = 50
REANCHOR_OVERLAP = 4
REANCHOR_TRAJECTORY = 'orbit'


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = np.sort(seconds)
    return {
        'p50': float(np.percentile(ordered, 50)),
        'p95': float(np.percentile(ordered, 95)),
        'max': float(ordered[-1]),
    }


def reanchoring_cost(
    model: StreamVGGT,
    preset: str,
    image_size: tuple[int, int],
    frames: int,
    every: int = REANCHOR_EVERY,
    overlap: int = REANCHOR_OVERLAP,
    window: int = REANCHOR_WINDOW,
) -> dict[str, Any]:
    """Render a `frames`-frame loop at `image_size` (H, W; W a multiple of 14, the model's width)
    and run it through both pipelines of one model, frame by frame in turn."""
    height, width = image_size
    sequence = make_sequence(REANCHOR_TRAJECTORY, frames, width, height)
    base = {
        **params.DEFAULTS,
        'window_size': window,
        'image_width': width,
        'anchor.overlap': overlap,
    }
    values = {'fixed anchor': base, 're-anchoring': {**base, 'anchor.max_frames': every}}
    pipelines = {
        name: StreamPipeline(Reconstructor(model, **param_options.reconstructor_options(v)), v)
        for name, v in values.items()
    }
    seconds: dict[str, list[float]] = {name: [] for name in pipelines}
    poses: dict[str, list[np.ndarray]] = {name: [] for name in pipelines}
    warm_starts: list[float] = []
    for index in range(frames):
        rgb, _ = sequence.render(index)
        stamp = int(sequence.stamps[index])
        for name in in_turn(list(pipelines), index):
            outcome, took = timed(pipelines[name].process, rgb, stamp, stamp, values[name])
            seconds[name].append(took)
            poses[name].append(outcome.frame.result.world_from_camera)
            if outcome.reanchored:
                warm_starts.append(outcome.frame.result.timings['reanchor'])
    truth = make_trajectory(list(sequence.stamps), list(sequence.poses), 'ground truth')
    length = float(np.linalg.norm(np.diff(sequence.poses[:, :3, 3], axis=0), axis=1).sum())
    lanes = {}
    for name in pipelines:
        estimate = make_trajectory(list(sequence.stamps), poses[name], name)
        ate = trajectory_metrics(estimate, truth)['ate_rmse']
        lanes[name] = {
            **_percentiles(seconds[name]),
            'ate_rmse': ate,
            'ate_of_length': ate / length,
        }
    return {
        'preset': preset,
        'image_size': list(image_size),
        'frames': frames,
        'window': window,
        'every': every,
        'overlap': overlap,
        'trajectory': REANCHOR_TRAJECTORY,
        'trajectory_length_m': length,
        'lanes': lanes,
        'reanchors': len(warm_starts),
        'warm_start_median_s': statistics.median(warm_starts) if warm_starts else float('nan'),
        'p50_ratio': lanes['re-anchoring']['p50'] / lanes['fixed anchor']['p50'],
        'p95_ratio': lanes['re-anchoring']['p95'] / lanes['fixed anchor']['p95'],
    }


def reanchoring_markdown(section: dict[str, Any]) -> list[str]:
    """Section 13 as Markdown."""
    height, width = section['image_size']
    lines = [
        '',
        f'## 13. Re-anchoring ({section["preset"]}, {height}x{width}, window {section["window"]}, '
        f'{section["frames"]}-frame {section["trajectory"]})',
        '',
        f'Two pipelines of one model stepped in turn, frame by frame: the first frame the anchor '
        f'for ever vs a re-anchoring every {section["every"]} frames, warm-started with '
        f'{section["overlap"]} frames ({section["reanchors"]} re-anchorings, a warm-start '
        f'{1e3 * section["warm_start_median_s"]:.1f} ms median, charged to the next frame). '
        'Latency: the whole pipeline step per frame. ATE: after Sim(3), random weights.',
        '',
        '| anchor | p50 | p95 | max | ATE RMSE | ATE / length |',
        '|---|---|---|---|---|---|',
    ]
    for name, lane in section['lanes'].items():
        lines.append(
            f'| {name} | {1e3 * lane["p50"]:.1f} ms | {1e3 * lane["p95"]:.1f} ms '
            f'| {1e3 * lane["max"]:.1f} ms | {lane["ate_rmse"]:.3f} m '
            f'| {lane["ate_of_length"]:.3f} |'
        )
    lines += [
        '',
        f'Re-anchoring / fixed: p50 **{section["p50_ratio"]:.2f}**, p95 '
        f'**{section["p95_ratio"]:.2f}** (trajectory {section["trajectory_length_m"]:.1f} m).',
    ]
    return lines
