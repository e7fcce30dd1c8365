"""The shipped small model: it loads without a checkpoint, in its deployed configuration, and on a
held-out world it reads depth from the images and moves the camera the right way; on its walk
the poses meet the pose half of issue 14's goal (ATE <= 0.1x a static camera's), and within a
session its frames' depths keep the first frame's scale.

What is asserted is what the shipped model reaches, not yet the whole goal on every scene
(AbsRel <= 0.20 and no worse than the scene's mean depth image, too): see
vggt_ros/weights/README.md for where it stands."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from scipy.spatial.transform import Rotation

from vggt_ros import config_files, param_options, params
from vggt_ros.checkpoints import load_model, weights_description
from vggt_ros.reconstructor import Reconstructor, to_rgb8
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
    values = {**params.DEFAULTS, **config_files.read_params_file(heldout.CONFIG)}
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
    assert mean <= 0.3 * constant  # measured 0.061 against 0.324


def test_on_a_held_out_world_the_camera_moves_as_the_truth_does(rows):
    for row in rows:  # after Sim(3), a camera that stays put scores the spread of the truth;
        # measured 0.01-0.13 of it over these 24 frames (the turn: 0.13)
        assert row['ate_rmse'] < 0.6 * row['baseline_static_camera_ate'], row['scene']


def test_on_a_held_out_walk_the_poses_meet_the_goal(rows):
    (walk,) = [row for row in rows if row['scene'].startswith('walk')]
    # measured 0.008 over these 24 frames (its depth, 0.053, misses the mean depth image's 0.048)
    assert walk['goal']['poses'], walk['ate_rmse'] / walk['baseline_static_camera_ate']


@pytest.fixture(scope='module')
def paths(tmp_path_factory):
    """The first 12 frames of each path of the held-out test world, by kind: the camera's
    images (HxWx3 uint8, as a driver sends them) and the truth at the size the deployed model
    sees."""
    folder = tmp_path_factory.mktemp('paths')
    bags = write_scenes(folder, TEST_SEEDS, 12, heldout.WIDTH, heldout.HEIGHT, False, 'held-out')
    frames = {}
    for bag in bags:
        camera = read_frames(bag, heldout.WIDTH, BagTopics()).images
        truth = read_frames(bag, 112, BagTopics())
        frames[bag.name.split('-')[0]] = replace(truth, images=[to_rgb8(i) for i in camera])
    return frames


@pytest.fixture(scope='module')
def walk(paths):
    return paths['walk']


@pytest.fixture(scope='module')
def deployed():
    """A Reconstructor factory: the shipped model in config/small.yaml, with `changes`."""
    values = {**params.DEFAULTS, **config_files.read_params_file(heldout.CONFIG)}
    model = load_model(None, 'small')

    def reconstructor(**changes) -> Reconstructor:
        return Reconstructor(model, **param_options.reconstructor_options({**values, **changes}))

    return reconstructor


def test_on_a_held_out_walk_poses_from_matches_turn_as_the_truth_does(walk, deployed):
    """Within one 8-frame session, PnP on the refined and tracked matches (pose_source: matches, as
    deployed) turns the camera far closer to the truth than the camera head does."""
    images, poses_true = walk.images[:8], walk.poses[:8]
    truth = [np.linalg.inv(pose) @ poses_true[0] for pose in poses_true]  # camera_from_first
    errors = {}
    for source in params.POSE_SOURCES:
        reconstructor = deployed(pose_source=source)
        poses = [reconstructor.step(image).camera_from_world for image in images]
        errors[source] = np.mean(
            [
                Rotation.from_matrix(
                    pose[:3, :3] @ np.linalg.inv(poses[0])[:3, :3] @ true[:3, :3].T
                ).magnitude()
                for pose, true in zip(poses[1:], truth[1:], strict=True)
            ]
        )
    assert errors['matches'] < 0.5 * errors['camera_head'], errors  # measured 0.05° against 0.58°


def test_on_a_held_out_walk_depth_from_matches_keeps_the_first_frames_scale(walk, deployed):
    """Within one 8-frame session the model's depth of later frames drifts from the first
    frame's scale; with poses from matches each is put back into it (depth_scale), so the
    frames' median scale against the truth wanders half as far as the raw depth's."""
    drift = {}
    for source in params.POSE_SOURCES:
        reconstructor = deployed(pose_source=source)
        log_scales = []
        for image, truth in zip(walk.images[:8], walk.depths[:8].numpy(), strict=True):
            depth = reconstructor.step(image).depth
            known = np.isfinite(truth) & (truth > 0)
            log_scales.append(np.log(np.median(depth[known] / truth[known])))
        drift[source] = np.mean(np.abs(np.array(log_scales[1:]) - log_scales[0]))
    assert drift['matches'] < 0.75 * drift['camera_head'], drift  # measured 0.016 against 0.028


def test_on_a_held_out_orbit_the_recent_frames_correct_the_depths_shape_not_its_scale(
    paths, deployed
):
    """With multi_view_depth (as deployed) the depth of the frames that have recent frames to
    sweep against is closer to the truth, each frame scaled alone, than the model's own; its
    scale against the truth stays the one the matches gave each frame."""
    orbit = paths['orbit']
    errors, log_scales = {}, {}
    for enabled in (False, True):
        reconstructor = deployed(multi_view_depth=enabled)
        frame_errors, log_scales[enabled] = [], []
        for image, truth in zip(orbit.images, orbit.depths.numpy(), strict=True):
            depth = reconstructor.step(image).depth
            known = np.isfinite(truth) & (truth > 0)
            scale = np.median(truth[known] / depth[known])
            frame_errors.append(np.mean(np.abs(depth[known] * scale - truth[known]) / truth[known]))
            log_scales[enabled].append(np.log(scale))
        errors[enabled] = np.mean(frame_errors[2:])  # from the first with a baseline to sweep
    assert errors[True] < 0.95 * errors[False], errors  # measured 0.039 against 0.043
    # the sweep's baselines set its scale; the matches' is kept (measured at most 0.020 here; the
    # bias it guards against grows over long paths: 30% over a validation orbit's 120 frames)
    assert np.max(np.abs(np.subtract(log_scales[True], log_scales[False]))) < 0.05, log_scales


@settings(max_examples=20, deadline=None)
@given(st.lists(st.sampled_from(['frame'] * 4 + ['bad', 'reset']), min_size=1, max_size=14))
def test_poses_from_matches_through_bad_frames_and_resets(walk, deployed, events):
    """At the deployed size PnP runs and the depth is levelled; a bad frame (rejected before the
    model) changes nothing, and a reset leaves nothing of the session before, so the poses and
    depths equal those of a twin that never saw a bad frame and is made anew at each reset; after
    each reset the next frame is the origin again; every pose is finite. Frames move on along the
    walk across resets."""
    tested, twin = deployed(), deployed()
    frames = iter(walk.images)
    first = True
    for event in events:
        if event == 'reset':
            tested.reset()
            twin = deployed()
            first = True
        elif event == 'bad':
            with pytest.raises(ValueError):
                tested.step(np.zeros((84, 112), np.uint8))  # no colour channels
        else:
            image = next(frames, None)
            if image is None:
                break
            result, twins = tested.step(image), twin.step(image)
            pose = result.camera_from_world
            np.testing.assert_array_equal(pose, twins.camera_from_world)
            np.testing.assert_array_equal(result.depth, twins.depth)
            assert np.isfinite(pose).all()
            if first:
                np.testing.assert_allclose(pose, np.eye(4))
            first = False


def test_tracking_at_the_cameras_size_keeps_the_outputs_at_the_models(walk, deployed):
    """config/small.yaml matches and tracks the camera's 224-px image while the model sees 112
    (tracking_scale 2): depth, colours and K still come at the model's size, and the camera
    moves the way the truth does at least as closely as when tracking in the model's image."""
    truth = [np.linalg.inv(walk.poses[0]) @ pose for pose in walk.poses[:8]]  # first_from_camera
    errors = {}
    for scale in (1, 2):
        reconstructor = deployed(tracking_scale=scale)
        results = [reconstructor.step(image) for image in walk.images[:8]]
        for result in results:
            assert result.depth.shape == result.colours.shape[:2] == walk.depths.shape[1:]
            np.testing.assert_allclose(result.K[:2, 2], walk.K[:2, 2], atol=1.0)
        errors[scale] = np.mean(
            [
                degrees_apart(result.world_from_camera[:3, 3], true[:3, 3])
                for result, true in zip(results[1:], truth[1:], strict=True)
            ]
        )
    assert errors[2] <= errors[1], errors  # measured 1.2° against 1.9° over these 8 frames


def degrees_apart(a: np.ndarray, b: np.ndarray) -> float:
    """The angle between two vectors (here: where the camera moved, estimated and true)."""
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))
