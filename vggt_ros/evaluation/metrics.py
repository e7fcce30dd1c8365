"""Trajectory, depth and latency metrics, as the papers and evo compute them.

The model's world is its first camera and its scale is arbitrary, so trajectories are compared
after a Sim(3) Umeyama alignment (evo_ape -as) and depth after one median scale per sequence
(the video-depth protocol): both remove exactly the gauge freedom, nothing more.
"""

from __future__ import annotations

import numpy as np
from evo.core import metrics, sync
from evo.core.trajectory import PoseTrajectory3D

from vggt_ros.evaluation.ground_truth import Trajectory

DELTA_THRESHOLD = 1.25
RESERVOIR_PIXELS = 2_000_000  # 16 MB of float32 pairs: about 10 frames at 518x392, exactly


def _evo(trajectory: Trajectory) -> PoseTrajectory3D:
    return PoseTrajectory3D(poses_se3=list(trajectory.poses), timestamps=trajectory.stamps / 1e9)


def trajectory_metrics(
    estimated: Trajectory, ground_truth: Trajectory, max_diff: float = 0.01
) -> dict:
    """ATE (translation, after Sim(3)) and frame-to-frame RPE, matched by stamp within max_diff s.

    Returns scalars plus per-frame arrays for plotting: `ate_errors`, `ate_times` (s) and the
    aligned estimate and ground truth positions.
    """
    try:
        gt, est = sync.associate_trajectories(
            _evo(ground_truth), _evo(estimated), max_diff=max_diff
        )
    except sync.SyncException as error:  # no stamp matches at all
        raise ValueError(f'no estimated frame matches a ground-truth pose: {error}') from error
    if gt.num_poses < 3:
        raise ValueError(
            f'only {gt.num_poses} estimated frames match a ground-truth pose within {max_diff} s;'
            ' Sim(3) alignment needs at least 3'
        )
    _, _, scale = est.align(gt, correct_scale=True)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((gt, est))
    rpe = {}
    for name, relation in (
        ('rpe_trans_rmse', metrics.PoseRelation.translation_part),
        ('rpe_rot_deg_rmse', metrics.PoseRelation.rotation_angle_deg),
    ):
        metric = metrics.RPE(relation, delta=1, delta_unit=metrics.Unit.frames)
        metric.process_data((gt, est))
        rpe[name] = float(metric.get_statistic(metrics.StatisticsType.rmse))
    return {
        'matched_frames': int(gt.num_poses),
        'ate_rmse': float(ape.get_statistic(metrics.StatisticsType.rmse)),
        'ate_mean': float(ape.get_statistic(metrics.StatisticsType.mean)),
        'ate_max': float(ape.get_statistic(metrics.StatisticsType.max)),
        'sim3_scale': float(scale),
        'gt_path_length': float(np.linalg.norm(np.diff(gt.positions_xyz, axis=0), axis=1).sum()),
        **rpe,
        'ate_errors': np.asarray(ape.error),
        'ate_times': gt.timestamps - gt.timestamps[0],
        'aligned_positions': est.positions_xyz,
        'gt_positions': gt.positions_xyz,
    }


class DepthAccumulator:
    """AbsRel and delta < 1.25 after one median scale for the whole sequence, at constant memory.

    The sequence scale needs every frame's pixels at once, so valid (predicted, true) pixel pairs
    go into a uniform reservoir of `capacity` pairs (Vitter's algorithm R, vectorised per frame,
    seeded): exact while the sequence has fewer valid pixels than that, an unbiased sample of
    them after. Pixels count where the truth is finite and positive and the prediction positive.

    Beside it, each frame scaled alone (running sums): its AbsRel, what a single view gets right,
    and the spread of the frames' log scales, what the sequence loses by not keeping one scale.
    """

    def __init__(self, capacity: int = RESERVOIR_PIXELS, seed: int = 0) -> None:
        self.capacity = capacity
        # Touched now, not as it fills: the evaluator's memory is constant from the first frame.
        self._pairs = np.zeros((capacity, 2), np.float32)
        self._pairs.fill(0.0)
        self._filled = 0
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._frames = 0
        self._frame_abs_rel = 0.0
        self._log_scale = np.zeros(2)  # sum, sum of squares

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        """One frame's predicted and true depth, of one shape."""
        valid = np.isfinite(truth) & (truth > 0) & np.isfinite(predicted) & (predicted > 0)
        pairs = np.stack([predicted[valid], truth[valid]], axis=1)
        room = min(self.capacity - self._filled, len(pairs))
        self._pairs[self._filled : self._filled + room] = pairs[:room]
        self._filled += room
        rest = pairs[room:]
        if len(rest):
            index = self.seen + room + np.arange(len(rest))  # each pair's place in the sequence
            keep = self._rng.random(len(rest)) < self.capacity / (index + 1)
            slots = self._rng.integers(0, self.capacity, int(keep.sum()))
            self._pairs[slots] = rest[keep]
        self.seen += len(pairs)
        if len(pairs):
            self._add_frame(*pairs.astype(np.float64).T)

    def _add_frame(self, pred: np.ndarray, gt: np.ndarray) -> None:
        log_scale = np.log(np.median(gt) / np.median(pred))
        self._frame_abs_rel += float(np.mean(np.abs(pred * np.exp(log_scale) - gt) / gt))
        self._log_scale += [log_scale, log_scale**2]
        self._frames += 1

    def result(self) -> dict:
        if not self.seen:
            raise ValueError('no pixel has both a valid predicted and ground-truth depth')
        pred, gt = self._pairs[: self._filled].astype(np.float64).T
        scale = np.median(gt) / np.median(pred)
        mean, mean_square = self._log_scale / self._frames
        variance = mean_square - mean**2
        pred = pred * scale
        ratio = np.maximum(pred / gt, gt / pred)
        return {
            'depth_abs_rel': float(np.mean(np.abs(pred - gt) / gt)),
            'depth_delta_1.25': float(np.mean(ratio < DELTA_THRESHOLD)),
            'depth_median_scale': float(scale),
            'depth_pixels': int(self.seen),
            'depth_abs_rel_per_frame': self._frame_abs_rel / self._frames,
            'depth_scale_log_std': float(np.sqrt(max(variance, 0.0))),
        }


def latency_metrics(latencies: np.ndarray, wall_seconds: float) -> dict:
    """Per-frame latency percentiles (ms) and throughput over the whole run."""
    return {
        'latency_mean_ms': float(np.mean(latencies) * 1e3),
        'latency_p50_ms': float(np.percentile(latencies, 50) * 1e3),
        'latency_p95_ms': float(np.percentile(latencies, 95) * 1e3),
        'frames_per_second': float(len(latencies) / wall_seconds) if wall_seconds > 0 else 0.0,
    }
