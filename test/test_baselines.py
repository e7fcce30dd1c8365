"""vggt-eval --baselines: each baseline recomputed here from the scene's own ground truth."""

import json

import numpy as np
import pytest
from standin_model import StandInModel

from vggt_ros.evaluation import cli
from vggt_ros.reconstructor import Reconstructor
from vggt_ros.registration import to_model_grid
from vggt_ros.synthetic import CAMERA_FRAME, WORLD_FRAME, make_sequence, write_bag

IMAGE_WIDTH = 112


@pytest.fixture(scope='module')
def sequence():
    return make_sequence('orbit', 10, 224, 168, seed=1_000_000, varied=True)


@pytest.fixture(scope='module')
def metrics(sequence, tmp_path_factory):
    out = tmp_path_factory.mktemp('eval')
    bag = write_bag(sequence, out / 'orbit')
    argv = [
        str(bag), '--out', str(out / 'report'), '--gt-tf', f'{WORLD_FRAME}:{CAMERA_FRAME}',
        '--depth-topic', '/camera/depth', '--preset', 'tiny', '--image-width', str(IMAGE_WIDTH),
        '--quiet', '--baselines',
    ]  # fmt: skip
    exact = Reconstructor(StandInModel(sequence.model_frame), image_width=IMAGE_WIDTH)
    assert cli.main(argv, exact) == 0
    return json.loads((out / 'report' / 'metrics.json').read_text())


def median_scaled_abs_rel(predicted: np.ndarray, truth: np.ndarray) -> float:
    valid = np.isfinite(truth) & (truth > 0)
    predicted, truth = np.broadcast_to(predicted, truth.shape)[valid], truth[valid]
    predicted = predicted * np.median(truth) / np.median(predicted)
    return float(np.mean(np.abs(predicted - truth) / truth))


def test_depth_baselines_are_the_scenes_mean_image_and_a_constant(sequence, metrics):
    truths = np.stack(
        [to_model_grid(sequence.render(i)[1], IMAGE_WIDTH) for i in range(len(sequence))]
    )
    mean_image = np.nanmean(np.where(truths > 0, truths, np.nan), axis=0)
    assert metrics['baseline_mean_depth_image_abs_rel'] == pytest.approx(
        median_scaled_abs_rel(mean_image, truths), rel=1e-4
    )
    assert metrics['baseline_constant_depth_abs_rel'] == pytest.approx(
        median_scaled_abs_rel(np.ones(truths.shape[1:]), truths), rel=1e-4
    )
    # The exact stand-in beats both; a mean image beats a constant on a moving camera too.
    assert metrics['depth_abs_rel'] < 1e-4
    assert metrics['baseline_mean_depth_image_abs_rel'] < metrics['baseline_constant_depth_abs_rel']


def test_a_static_camera_scores_the_spread_of_the_true_centres(sequence, metrics):
    centres = sequence.poses[:, :3, 3]
    spread = np.sqrt(((centres - centres.mean(axis=0)) ** 2).sum(axis=1).mean())
    assert metrics['baseline_static_camera_ate'] == pytest.approx(spread, rel=1e-6)
    assert metrics['gt_path_length'] == pytest.approx(
        np.linalg.norm(np.diff(centres, axis=0), axis=1).sum(), rel=1e-6
    )


def test_random_weights_are_replayed_on_the_same_frames(metrics):
    assert metrics['ate_rmse'] < 1e-4
    assert (
        metrics['baseline_random_weights_ate_rmse'] > 0.05 * metrics['baseline_static_camera_ate']
    )
    assert metrics['baseline_random_weights_depth_abs_rel'] > 0.05
