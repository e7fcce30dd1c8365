"""PNG figures of an evaluation (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def trajectory_top_view(aligned: np.ndarray, gt: np.ndarray, path: Path) -> Path:
    """x-y view of the Sim(3)-aligned estimate over the ground truth (world z is up)."""
    figure, axes = plt.subplots(figsize=(6, 5))
    axes.plot(gt[:, 0], gt[:, 1], 'k-', label='ground truth')
    axes.plot(aligned[:, 0], aligned[:, 1], 'r--', label='estimate (Sim(3) aligned)')
    axes.set(xlabel='x [m]', ylabel='y [m]', title='Trajectory, top view', aspect='equal')
    axes.legend()
    return _save(figure, path)


def series(times: np.ndarray, values: np.ndarray, ylabel: str, title: str, path: Path) -> Path:
    """One quantity over time (ATE per frame, latency per frame)."""
    figure, axes = plt.subplots(figsize=(7, 3))
    axes.plot(times, values, '.-')
    axes.set(xlabel='time [s]', ylabel=ylabel, title=title)
    axes.grid(True, alpha=0.3)
    return _save(figure, path)


def depth_strip(
    frames: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]], scale: float, path: Path
) -> Path:
    """Rows of (image, median-scaled predicted depth, ground-truth depth) on one colour scale."""
    figure, grid = plt.subplots(len(frames), 3, figsize=(9, 2.4 * len(frames)), squeeze=False)
    for row, (rgb, predicted, gt) in zip(grid, frames, strict=True):
        shown = [predicted * scale] + ([gt] if gt is not None else [])
        high = max(np.nanpercentile(d, 99) for d in shown)
        row[0].imshow(rgb)
        for axes, depth in zip(row[1:], shown, strict=False):
            axes.imshow(depth, cmap='turbo', vmin=0, vmax=high)
        for axes, title in zip(row, ('image', 'predicted depth', 'ground truth'), strict=True):
            axes.set_title(title, fontsize=9)
            axes.axis('off')
    return _save(figure, path)
