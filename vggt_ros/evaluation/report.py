"""The output folder of an evaluation: metrics.json, TUM trajectory, PLY cloud, PNGs, report.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vggt_ros.evaluation import plots
from vggt_ros.evaluation.ground_truth import write_tum
from vggt_ros.evaluation.replay import Replay

RANDOM_WEIGHTS_BANNER = (
    'RANDOM WEIGHTS: no checkpoint was given, so these numbers check the pipeline, '
    'not the accuracy of the model.'
)


def write_ply(points: np.ndarray, colours: np.ndarray, path: Path) -> Path:
    """Binary little-endian PLY of Nx3 float32 points with Nx3 uint8 colours (one write)."""
    vertex = np.dtype([('xyz', '<f4', 3), ('rgb', 'u1', 3)])
    data = np.empty(len(points), vertex)
    data['xyz'], data['rgb'] = points, colours
    header = (
        'ply\nformat binary_little_endian 1.0\n'
        f'element vertex {len(points)}\n'
        'property float x\nproperty float y\nproperty float z\n'
        'property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n'
    )
    path.write_bytes(header.encode() + data.tobytes())
    return path


def write_plots(replay: Replay, metrics: dict, out: Path) -> dict[str, Path]:
    """Every figure the available ground truth allows, by caption."""
    times = (replay.trajectory.stamps - replay.trajectory.stamps[0]) / 1e9
    figures = {
        'Latency per frame': plots.series(
            times, replay.latencies * 1e3, 'latency [ms]', 'Latency', out / 'latency.png'
        )
    }
    if 'ate_errors' in metrics:
        figures['Trajectory, top view'] = plots.trajectory_top_view(
            metrics['aligned_positions'], metrics['gt_positions'], out / 'trajectory.png'
        )
        figures['ATE over time'] = plots.series(
            metrics['ate_times'], metrics['ate_errors'], 'ATE [m]', 'ATE', out / 'ate.png'
        )
    if replay.strip:
        scale = metrics.get('depth_median_scale', 1.0)
        figures['Depth'] = plots.depth_strip(replay.strip, scale, out / 'depth.png')
    return figures


def scalars(metrics: dict) -> dict:
    """The JSON-able part of the metrics (per-frame arrays go to the plots)."""
    return {k: v for k, v in metrics.items() if not isinstance(v, np.ndarray)}


def write_markdown(summary: dict, figures: dict[str, Path], out: Path) -> Path:
    """A one-page report.md that says which model ran and links the figures and files."""
    lines = ['# vggt_ros evaluation', '']
    if summary['random_weights']:
        lines += [f'> **{RANDOM_WEIGHTS_BANNER}**', '']
    else:
        lines += [f'Model: {summary["model"]}.', '']
    lines += ['| metric | value |', '|---|---|']
    lines += [
        f'| {k} | {v:.6g} |' if isinstance(v, float) else f'| {k} | {v} |'
        for k, v in summary.items()
    ]
    lines += [
        '',
        'Files: [metrics.json](metrics.json), [trajectory.tum](trajectory.tum)'
        ' (TUM, model world and scale), [cloud.ply](cloud.ply).',
        '',
    ]
    lines += [f'## {caption}\n\n![{caption}]({path.name})\n' for caption, path in figures.items()]
    path = out / 'report.md'
    path.write_text('\n'.join(lines))
    return path


def write_report(replay: Replay, metrics: dict, model: str | None, out: Path) -> Path:
    """Write every output file into `out` and return the report's path; `model` says what ran
    (None: random weights)."""
    out.mkdir(parents=True, exist_ok=True)
    summary = {'random_weights': model is None, 'model': model or 'random weights'}
    summary |= scalars(metrics)
    (out / 'metrics.json').write_text(json.dumps(summary, indent=2) + '\n')
    write_tum(replay.trajectory, out / 'trajectory.tum')
    write_ply(replay.cloud.points, replay.cloud.colours, out / 'cloud.ply')
    return write_markdown(summary, write_plots(replay, metrics, out), out)
