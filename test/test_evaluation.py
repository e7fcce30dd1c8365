"""The evaluator end to end: a ground-truth stand-in proves conventions, alignment and metrics."""

import json

import numpy as np
import pytest
import torch
from standin_model import StandInModel

from vggt_ros.evaluation import cli
from vggt_ros.evaluation.bag_io import BagWriter
from vggt_ros.reconstructor import Reconstructor
from vggt_ros.synthetic import CAMERA_FRAME, WORLD_FRAME, make_sequence, write_bag

# 224x168 at image_width 112 is an exact halving, so GT depth sampled nearest-neighbour at the
# model's 112x84 lies on the very rays the stand-in renders.
IMAGE_WIDTH = 112
GT_ARGS = ['--gt-tf', f'{WORLD_FRAME}:{CAMERA_FRAME}', '--depth-topic', '/camera/depth']


@pytest.fixture(scope='module')
def sequence():
    return make_sequence('walk', 12, 224, 168)


@pytest.fixture(scope='module')
def bag(sequence, tmp_path_factory):
    return write_bag(sequence, tmp_path_factory.mktemp('bags') / 'walk')


def evaluate(bag, out, source, *extra):
    reconstructor = Reconstructor(StandInModel(source), image_width=IMAGE_WIDTH)
    args = [str(bag), '--out', str(out), '--image-width', str(IMAGE_WIDTH), '--quiet', *extra]
    assert cli.main([*args, *GT_ARGS], reconstructor) == 0
    return json.loads((out / 'metrics.json').read_text())


def umeyama_rmse(source: np.ndarray, target: np.ndarray) -> float:
    """RMSE left after the best similarity taking source points onto target points."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    u, d, vt = np.linalg.svd(t.T @ s / len(s))
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / (s**2).sum(1).mean()
    residual = t - scale * s @ rotation.T
    return float(np.sqrt((residual**2).sum(1).mean()))


def test_exact_stand_in_scores_zero_error(bag, sequence, tmp_path):
    metrics = evaluate(bag, tmp_path, sequence.model_frame)
    assert metrics['frames'] == metrics['matched_frames'] == len(sequence)
    assert metrics['ate_rmse'] < 1e-4 and metrics['rpe_trans_rmse'] < 1e-4
    assert metrics['rpe_rot_deg_rmse'] < 1e-3
    assert metrics['depth_abs_rel'] < 1e-4 and metrics['depth_delta_1.25'] == 1.0
    assert metrics['sim3_scale'] == pytest.approx(1.0, abs=1e-5)
    assert not metrics['random_weights']
    for name in (
        'report.md',
        'trajectory.tum',
        'cloud.ply',
        'trajectory.png',
        'ate.png',
        'latency.png',
        'depth.png',
    ):
        assert (tmp_path / name).stat().st_size > 0


def test_sim3_and_median_scaling_remove_a_global_scale(bag, sequence, tmp_path):
    def doubled(index, height, width):
        pose_enc, depth = sequence.model_frame(index, height, width)
        pose_enc[:3] *= 2
        return pose_enc, depth * 2

    metrics = evaluate(bag, tmp_path, doubled)
    assert metrics['ate_rmse'] < 1e-4 and metrics['depth_abs_rel'] < 1e-4
    assert metrics['sim3_scale'] == pytest.approx(0.5, rel=1e-5)
    assert metrics['depth_median_scale'] == pytest.approx(0.5, rel=1e-5)


def test_a_camera_frame_offset_shows_as_its_sim3_residual(bag, sequence, tmp_path):
    offset = torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64)

    def shifted(index, height, width):
        pose_enc, depth = sequence.model_frame(index, height, width)
        pose_enc[:3] += offset  # camera_from_world t + e: the camera moves by -e along its x axis
        return pose_enc, depth

    metrics = evaluate(bag, tmp_path, shifted)
    positions = sequence.poses[:, :3, 3]
    moved = positions - sequence.poses[:, :3, :3] @ offset.numpy()
    expected = umeyama_rmse(moved, positions)
    assert expected > 0.01  # the walk turns, so the shift is not a rigid motion of the path
    assert metrics['ate_rmse'] == pytest.approx(expected, rel=1e-4)
    assert metrics['depth_abs_rel'] < 1e-4


@pytest.mark.parametrize('storage', ['sqlite3', 'rosbag1'])
def test_other_bag_formats_evaluate_alike(sequence, tmp_path, storage):
    short = make_sequence('walk', 5, 224, 168)
    path = write_bag(short, tmp_path / ('bag.bag' if storage == 'rosbag1' else 'bag'), storage)
    metrics = evaluate(path, tmp_path / 'out', short.model_frame)
    assert metrics['frames'] == 5 and metrics['ate_rmse'] < 1e-4 and metrics['depth_abs_rel'] < 1e-4


def test_depth_pairs_with_the_nearest_stamp_within_the_tolerance(sequence, tmp_path, capsys):
    lag = 4_000_000  # ns: RGB-D drivers stamp depth apart from colour
    path = tmp_path / 'lagged'
    with BagWriter(path) as bag:
        for index in range(4):
            stamp = int(sequence.stamps[index])
            rgb, depth = sequence.render(index)
            pose = bag.tf(stamp, WORLD_FRAME, CAMERA_FRAME, sequence.poses[index])
            bag.write('/tf', stamp, pose)
            bag.write('/camera/image_raw', stamp, bag.image(stamp, CAMERA_FRAME, rgb, 'rgb8'))
            lagged = bag.image(stamp + lag, CAMERA_FRAME, depth, '32FC1')
            bag.write('/camera/depth', stamp + lag, lagged)
    assert evaluate(path, tmp_path / 'near', sequence.model_frame)['depth_abs_rel'] < 1e-4
    strict = evaluate(path, tmp_path / 'strict', sequence.model_frame, '--max-time-diff', '0.002')
    assert 'depth_abs_rel' not in strict and strict['ate_rmse'] < 1e-4
    assert 'depth is not scored' in capsys.readouterr().err


def test_unmatched_poses_and_unregistered_depth_still_give_a_report(sequence, tmp_path, capsys):
    path = tmp_path / 'unmatched'
    with BagWriter(path) as bag:
        for index in range(4):
            stamp = int(sequence.stamps[index])
            rgb, depth = sequence.render(index)
            late = stamp + 100_000_000_000  # the ground truth on another clock
            bag.write('/tf', late, bag.tf(late, WORLD_FRAME, CAMERA_FRAME, sequence.poses[index]))
            bag.write('/camera/image_raw', stamp, bag.image(stamp, CAMERA_FRAME, rgb, 'rgb8'))
            other_view = np.ascontiguousarray(depth[:, :120])  # not registered to the colour
            bag.write('/camera/depth', stamp, bag.image(stamp, CAMERA_FRAME, other_view, '32FC1'))
    metrics = evaluate(path, tmp_path / 'out', sequence.model_frame)
    assert metrics['frames'] == 4 and metrics['frames depth skipped: another view'] == 4
    assert 'ate_rmse' not in metrics and 'depth_abs_rel' not in metrics
    err = capsys.readouterr().err
    assert 'poses are not scored: no estimated frame matches' in err and 'Traceback' not in err
    assert (tmp_path / 'out' / 'report.md').exists()


@pytest.mark.parametrize('storage', ['mcap', 'rosbag1'])
def test_a_distorted_camera_is_warned_about(sequence, tmp_path, capsys, storage):
    path = tmp_path / ('bag.bag' if storage == 'rosbag1' else 'bag')
    with BagWriter(path, storage) as bag:
        for index in range(3):
            stamp = int(sequence.stamps[index])
            rgb, depth = sequence.render(index)
            bag.write('/tf', stamp, bag.tf(stamp, WORLD_FRAME, CAMERA_FRAME, sequence.poses[index]))
            bag.write('/camera/image_raw', stamp, bag.image(stamp, CAMERA_FRAME, rgb, 'rgb8'))
            bag.write('/camera/depth', stamp, bag.image(stamp, CAMERA_FRAME, depth, '32FC1'))
            info = bag.camera_info(stamp, CAMERA_FRAME, sequence.K, 224, 168, [-0.2, 0.05, 0, 0, 0])
            bag.write('/camera/camera_info', stamp, info)
    evaluate(path, tmp_path / 'out', sequence.model_frame)
    err = capsys.readouterr().err
    assert 'distorted (plumb_bob: -0.2, 0.05, 0, 0, 0)' in err and 'image_rect' in err


def test_a_pinhole_camera_is_not_warned_about(bag, sequence, tmp_path, capsys):
    evaluate(bag, tmp_path, sequence.model_frame)  # the synthetic bags' camera_info: no distortion
    assert 'distorted' not in capsys.readouterr().err


def expect_error(capsys, argv, message):
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and 'Traceback' not in err


def test_bag_problems_are_one_line_errors(bag, tmp_path, capsys):
    args = ['--preset', 'tiny', '--image-width', '28', '--out', str(tmp_path / 'out')]
    expect_error(capsys, [str(bag), '--image-topic', '/nope', *args], 'topic /nope is not in bag')
    empty = tmp_path / 'empty'
    with BagWriter(empty):
        pass
    expect_error(capsys, [str(empty), *args], 'the bag is empty')
    corrupt = tmp_path / 'corrupt.bag'
    corrupt.write_bytes(b'#ROSBAG V2.0\n' + bytes(range(256)) * 4)
    expect_error(capsys, [str(corrupt), *args], 'cannot read bag')
    expect_error(capsys, [str(tmp_path / 'missing'), *args], 'bag not found')
    robot = tmp_path / 'robot.yaml'  # as a robot runs it: wheel odometry owns odom
    robot.write_text('/**:\n  ros__parameters:\n    tf_mode: map\n    scale_source: odometry\n')
    odometry = [str(bag), *args, '--params-file', str(robot)]
    expect_error(capsys, odometry, 'scale_source odometry needs the robot')
    expect_error(capsys, [str(bag), *args, '--scale_source', 'depth'], 'needs --depth-topic')


def test_tiny_preset_end_to_end_writes_the_report(bag, tmp_path, capsys):
    out = tmp_path / 'report'
    argv = [
        str(bag),
        '--out',
        str(out),
        '--preset',
        'tiny',
        '--image-width',
        '56',
        '--max-frames',
        '4',
        '--frame-stride',
        '2',
        '--quiet',
        *GT_ARGS,
    ]
    assert cli.main(argv) == 0
    assert 'RANDOM WEIGHTS' in capsys.readouterr().err
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['random_weights'] and metrics['frames'] == 4
    assert 'RANDOM WEIGHTS' in (out / 'report.md').read_text()
    assert (out / 'trajectory.tum').read_text().count('\n') == 5  # header + 4 poses


def test_scale_source_depth_scores_a_metric_trajectory(bag, sequence, tmp_path):
    """As deployed with a depth camera: the bag's depth topic feeds the metric scale."""

    def doubled(index, height, width):
        pose_enc, depth = sequence.model_frame(index, height, width)
        pose_enc[:3] *= 2
        return pose_enc, depth * 2

    metrics = evaluate(bag, tmp_path, doubled, '--scale_source', 'depth')
    assert metrics['sim3_scale'] == pytest.approx(1.0, rel=1e-3)
    assert metrics['depth_median_scale'] == pytest.approx(1.0, rel=1e-3)
    assert metrics['frames'] == len(sequence)
