"""The shipped small model: it loads without a checkpoint, in its deployed configuration, and on a
held-out world it reads depth from the images and moves the camera the right way; on its walk
the poses meet the pose half of issue 14's goal (ATE <= 0.1x a static camera's).

What is asserted is what the shipped model reaches, not yet the whole goal on every scene
(AbsRel <= 0.20 and no worse than the scene's mean depth image, too): see
vggt_ros/weights/README.md for where it stands."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy.spatial.transform import Rotation

from vggt_ros import params
from vggt_ros.checkpoints import load_model, weights_description
from vggt_ros.reconstructor import Reconstructor
from vggt_ros.synthetic import HELD_OUT_SEEDS
from vggt_ros.training import heldout
from vggt_ros.training.data import BagTopics, read_frames
from vggt_ros.training.scenes import write_scenes
from vggt_ros.weights import shipped_weights

MAX_BYTES = 30_000_000
# A held-out world that neither the README's table nor the choice of config/small.yaml used.
TEST_SEEDS = range(HELD_OUT_SEEDS.start + 2, HELD_OUT_SEEDS.start + 3)
TEST_FRAMES = 24


def test_the_small_preset_loads_its_shipped_weights_without_a_checkpoint():
    path = shipped_weights('small')
    assert path is not None and path.stat().st_size <= MAX_BYTES
    shipped = load_file(path)
    model = load_model(None, 'small').state_dict()
    assert set(model) == set(shipped)
    assert all(torch.equal(model[name], shipped[name].float()) for name in shipped)
    assert 'trained from scratch by vggt-train' in weights_description('', 'small')
    assert shipped_weights('tiny') is None and weights_description('', 'tiny') is None


def test_the_deployed_configuration_is_a_valid_params_file():
    values = {**params.DEFAULTS, **params.read_params_file(heldout.CONFIG)}
    assert values['preset'] == 'small' and values['checkpoint'] == ''
    assert not params.validate(values) and not params.validate_combination(values)


@pytest.fixture(scope='module')
def rows(tmp_path_factory):
    return heldout.score_held_out(
        tmp_path_factory.mktemp('heldout'), seeds=TEST_SEEDS, frames=TEST_FRAMES
    )


def test_on_a_held_out_world_depth_is_read_from_the_image(rows):
    for row in rows:  # a constant depth is what a model that ignores the image can do best
        assert row['depth_abs_rel'] < row['baseline_constant_depth_abs_rel'], row['scene']
        assert row['depth_abs_rel'] < row['baseline_random_weights_depth_abs_rel'], row['scene']
    mean = sum(row['depth_abs_rel'] for row in rows) / len(rows)
    constant = sum(row['baseline_constant_depth_abs_rel'] for row in rows) / len(rows)
    assert mean <= 0.3 * constant  # measured 0.082 against 0.324 (the previous model: 0.123)


def test_on_a_held_out_world_the_camera_moves_as_the_truth_does(rows):
    for row in rows:  # after Sim(3), a camera that stays put scores the spread of the truth;
        # measured 0.10-0.40 of it over these 24 frames
        assert row['ate_rmse'] < 0.6 * row['baseline_static_camera_ate'], row['scene']


def test_on_a_held_out_walk_the_poses_meet_the_goal(rows):
    (walk,) = [row for row in rows if row['scene'].startswith('walk')]
    # measured 0.048 over these 24 frames (its depth, 0.063, misses the mean depth image's 0.048)
    assert walk['goal']['poses'], walk['ate_rmse'] / walk['baseline_static_camera_ate']


def test_on_a_held_out_walk_poses_from_matches_turn_as_the_truth_does(tmp_path):
    """Within one 8-frame session, PnP on the refined matches (pose_source: matches, as
    deployed) turns the camera far closer to the truth than the camera head does."""
    bags = write_scenes(tmp_path, TEST_SEEDS, 8, heldout.WIDTH, heldout.HEIGHT, False, 'held-out')
    frames = read_frames(next(bag for bag in bags if bag.name.startswith('walk')), 112, BagTopics())
    truth = [np.linalg.inv(pose) @ frames.poses[0] for pose in frames.poses]  # camera_from_first
    deployed = {**params.DEFAULTS, **params.read_params_file(heldout.CONFIG)}
    model = load_model(None, 'small')
    errors = {}
    for source in params.POSE_SOURCES:
        options = params.session_options({**deployed, 'pose_source': source})
        reconstructor = Reconstructor(model, image_width=deployed['image_width'], options=options)
        poses = [reconstructor.step_image(image).camera_from_world for image in frames.images]
        errors[source] = np.mean(
            [
                Rotation.from_matrix(
                    pose[:3, :3] @ np.linalg.inv(poses[0])[:3, :3] @ true[:3, :3].T
                ).magnitude()
                for pose, true in zip(poses[1:], truth[1:], strict=True)
            ]
        )
    assert errors['matches'] < 0.5 * errors['camera_head'], errors
