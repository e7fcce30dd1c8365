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


def _evo(trajectory: Trajectory) -> PoseTrajectory3D:
    return PoseTrajectory3D(poses_se3=list(trajectory.poses), timestamps=trajectory.stamps / 1e9)


def trajectory_metrics(
    estimated: Trajectory, ground_truth: Trajectory, max_diff: float = 0.01
) -> dict:
    """ATE (translation, after Sim(3)) and frame-to-frame RPE, matched by stamp within max_diff s.

    Returns scalars plus per-frame arrays for plotting: `ate_errors`, `ate_times` (s) and the
    aligned estimate and ground truth positions.
    """
    gt, est = sync.associate_trajectories(_evo(ground_truth), _evo(estimated), max_diff=max_diff)
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
        **rpe,
        'ate_errors': np.asarray(ape.error),
        'ate_times': gt.timestamps - gt.timestamps[0],
        'aligned_positions': est.positions_xyz,
        'gt_positions': gt.positions_xyz,
    }


def depth_metrics(predicted: list[np.ndarray], ground_truth: list[np.ndarray]) -> dict:
    """AbsRel and delta < 1.25 over all frames, after one median scale for the whole sequence.

    Pixels count where the ground truth is finite and positive and the prediction positive.
    """
    if not predicted:
        raise ValueError('no frame has a matching ground-truth depth image')
    pred = np.concatenate([p.ravel() for p in predicted]).astype(np.float64)
    gt = np.concatenate([g.ravel() for g in ground_truth]).astype(np.float64)
    valid = np.isfinite(gt) & (gt > 0) & np.isfinite(pred) & (pred > 0)
    if not valid.any():
        raise ValueError('no pixel has both a valid predicted and ground-truth depth')
    pred, gt = pred[valid], gt[valid]
    scale = np.median(gt) / np.median(pred)
    pred = pred * scale
    ratio = np.maximum(pred / gt, gt / pred)
    return {
        'depth_abs_rel': float(np.mean(np.abs(pred - gt) / gt)),
        'depth_delta_1.25': float(np.mean(ratio < DELTA_THRESHOLD)),
        'depth_median_scale': float(scale),
        'depth_pixels': int(valid.sum()),
    }


def latency_metrics(latencies: np.ndarray, wall_seconds: float) -> dict:
    """Per-frame latency percentiles (ms) and throughput over the whole run."""
    return {
        'latency_p50_ms': float(np.percentile(latencies, 50) * 1e3),
        'latency_p95_ms': float(np.percentile(latencies, 95) * 1e3),
        'frames_per_second': float(len(latencies) / wall_seconds) if wall_seconds > 0 else 0.0,
    }
