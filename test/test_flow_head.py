"""The flow head (presets built with one, such as small): where each patch's content is in the
session's first frame. Streamed frame by frame it says what the causal forward says; a model
without one refuses to run it; fitted to a model's tokens it beats a constant, and the fitted
weights load as the preset's; and a Reconstructor that has it puts the world at the session's
first camera, keeps the camera head's rotations in it and solves the translations, through any
sequence of frames, bad frames and resets. A depth that leans with the turn is fitted the tilt
it leans by, and the weights carry it."""

import contextlib
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from scipy.spatial.transform import Rotation
from standin_model import StandInModel

from vggt_ros import reconstructor as reconstructor_module
from vggt_ros.checkpoints import load_model
from vggt_ros.model.heads import FlowHead
from vggt_ros.model.synthetic_weights import synthetic_model
from vggt_ros.pose_from_matches import MIN_REFINED
from vggt_ros.reconstructor import Reconstructor
from vggt_ros.stream_types import FLOW_HEAD, SessionOptions
from vggt_ros.synthetic import make_sequence, write_bag
from vggt_ros.tracks import Tracks
from vggt_ros.training.data import BagTopics, draw_clip, read_frames
from vggt_ros.training.flow_head import (
    FLOW_HEAD_PREFIX,
    fit_depth_tilt,
    fit_flow_head,
    load_without_flow_head,
    write_with_flow_head,
)
from vggt_ros.training.flow_head import main as flow_head_main

HEADS = ('camera', 'depth', FLOW_HEAD)


@pytest.fixture(scope='module')
def small():
    return synthetic_model('small', seed=2)


@pytest.fixture(scope='module')
def walk(tmp_path_factory):
    return write_bag(make_sequence('walk', 24, 224, 168), tmp_path_factory.mktemp('walk') / 'b')


def test_streamed_flow_is_the_causal_forwards(small):
    images = torch.rand(3, 3, 42, 56, generator=torch.Generator().manual_seed(0))
    causal = small.forward_causal(images, 'fp32', HEADS)['flow']
    session = small.new_session(heads=HEADS, camera_cache='causal')
    streamed = torch.stack([session.step(image)['flow'] for image in images])
    assert causal.shape == (3, 12, 2)
    torch.testing.assert_close(streamed, causal, rtol=1e-4, atol=1e-4)


def test_a_model_without_a_flow_head_refuses_to_run_one():
    tiny = synthetic_model('tiny')
    with pytest.raises(ValueError, match='no flow head'):
        tiny.new_session(heads=HEADS)
    with pytest.raises(ValueError, match='no flow head'):
        tiny.forward_causal(torch.rand(2, 3, 28, 28), 'fp32', HEADS)


def test_the_fitted_head_beats_a_constant_on_what_it_was_fitted_to(small, walk):
    model = synthetic_model('small', seed=2)
    fit_flow_head(model, [walk], clips=3, seed=0)
    frames = read_frames(walk, 112, BagTopics())
    rng = np.random.default_rng(0)
    fitted, constant = [], []
    for _ in range(3):
        clip = draw_clip(frames, 8, 4, rng)
        flow = model.forward_causal(clip.images, 'fp32', HEADS)['flow']
        matched = clip.matches >= 0
        truth = clip.flow[matched]
        fitted.append((flow[matched] - truth).abs().mean())
        constant.append((truth - truth.median(0).values).abs().mean())
    assert np.mean(fitted) < 0.8 * np.mean(constant)


def test_weights_without_a_flow_head_gain_the_fitted_one(small, walk, tmp_path):
    exported = tmp_path / 'exported.safetensors'
    state = {k: v.half() for k, v in small.state_dict().items() if not k.startswith('flow_head')}
    save_file(state, exported, metadata={'description': 'small preset, a test'})
    model = load_without_flow_head(exported, 'small')
    fit_flow_head(model, [walk], clips=1)
    model.flow_head.depth_tilt.fill_(1.5)
    shipped = tmp_path / 'shipped.safetensors'
    write_with_flow_head(model, exported, shipped, 'flow head fitted for a test')
    loaded = load_model(shipped, 'small')
    fitted = model.flow_head.proj.weight.half().float()
    torch.testing.assert_close(loaded.flow_head.proj.weight, fitted)
    assert float(loaded.flow_head.depth_tilt) == 1.5
    assert any(k.startswith(FLOW_HEAD_PREFIX) for k in loaded.state_dict())
    with pytest.raises(ValueError, match='no flow head'):
        load_without_flow_head(exported, 'tiny')


def test_the_command_make_train_runs_fits_the_head_and_the_tilt(small, walk, tmp_path):
    """`python -m vggt_ros.training.flow_head` as make train and tools/train_on_gpu.sh run it,
    on the real model: the tilt's fit streams a depth-only session (once broken by a check
    that every session has cameras)."""
    exported = tmp_path / 'exported.safetensors'
    state = {k: v.half() for k, v in small.state_dict().items() if not k.startswith('flow_head')}
    save_file(state, exported, metadata={'description': 'small preset, a test'})
    shipped = tmp_path / 'shipped.safetensors'
    flow_head_main([str(exported), str(walk), '--out', str(shipped), '--clips', '1'])
    loaded = load_model(shipped, 'small')
    assert np.isfinite(float(loaded.flow_head.depth_tilt))
    assert loaded.flow_head.proj.weight.abs().sum() > 0


def test_a_depth_leaning_with_the_turn_is_fitted_the_tilt_it_leans_by(tmp_path):
    """The lean is made from the camera's turn about its y axis (about 3 degrees a frame, in
    place) as the step at the image's centre; the fit takes the step of all its pixels, up to
    1 / cos^2(35 deg), a half, larger towards the sides of a 70-degree view: a tenth in all."""
    turn = make_sequence('rotate', 120, 224, 168)
    poses = turn.poses[:10].copy()
    poses[:, :3, 3] = poses[0, :3, 3]
    bag = write_bag(replace(turn, poses=poses, stamps=turn.stamps[:10]), tmp_path / 'b')
    frames = read_frames(bag, 112, BagTopics())
    K, width = frames.K, frames.depths.shape[-1]
    offsets = torch.from_numpy((np.arange(width) - K[0, 2]) / width)
    tilt = 1.7

    def leaning(index: int, *_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        previous_from_this = np.linalg.inv(frames.poses[max(index - 1, 0)]) @ frames.poses[index]
        turned = Rotation.from_matrix(previous_from_this[:3, :3]).as_rotvec()[1]
        step = -K[0, 0] * turned / width  # image widths the content moved (+: right)
        depth = frames.depths[index].double() * torch.exp(tilt * step * offsets)
        return torch.tensor([0, 0, 0, 0, 0, 0, 1, 1.2, 1.0]), depth

    model = StandInModel(leaning)
    model.flow_head = FlowHead(8)
    assert fit_depth_tilt(model, [bag]) == 9
    assert float(model.flow_head.depth_tilt) == pytest.approx(tilt / 1.1, rel=0.05)


def test_with_the_flow_head_the_world_is_the_first_camera_and_rotations_are_the_heads(small):
    """At 56x42 a frame has 12 patches, fewer than PnP needs (MIN_REFINED): the rotations stay
    the head's (test_pose_from_matches covers PnP)."""
    assert 12 < MIN_REFINED
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (42, 56, 3), dtype=np.uint8) for _ in range(4)]
    options = SessionOptions(camera_cache='causal')
    by_head = Reconstructor(small, image_width=56, options=options, heads=('camera', 'depth'))
    by_matches = Reconstructor(small, image_width=56, options=options, heads=HEADS)
    head = [by_head.step(frame).camera_from_world for frame in frames]
    matches = [by_matches.step(frame).camera_from_world for frame in frames]
    np.testing.assert_allclose(matches[0], np.eye(4))
    for head_pose, pose in zip(head[1:], matches[1:], strict=True):
        relative = head_pose[:3, :3] @ head[0][:3, :3].T
        np.testing.assert_allclose(pose[:3, :3], relative, atol=1e-6)
        assert np.isfinite(pose).all()


@settings(max_examples=15, deadline=None)
@given(st.lists(st.sampled_from(['frame', 'bad', 'reset']), min_size=1, max_size=8))
def test_through_bad_frames_and_resets_each_world_starts_at_its_first_camera(small, events):
    """A bad frame changes nothing (it raises before the model); after every reset the next frame
    is the world's origin again, and the rotations stay the camera head's in that world (12
    patches a frame, fewer than PnP needs)."""
    rng = np.random.default_rng(len(events))
    options = SessionOptions(camera_cache='causal')
    by_head = Reconstructor(small, image_width=56, options=options, heads=('camera', 'depth'))
    by_matches = Reconstructor(small, image_width=56, options=options, heads=HEADS)
    first = None
    for event in events:
        if event == 'reset':
            by_head.reset()
            by_matches.reset()
            first = None
        elif event == 'bad':
            for reconstructor in (by_head, by_matches):
                with pytest.raises(ValueError):
                    reconstructor.step(np.zeros((42, 56), np.uint8))  # no colour channels
        else:
            frame = rng.integers(0, 256, (42, 56, 3), dtype=np.uint8)
            head = by_head.step(frame).camera_from_world
            pose = by_matches.step(frame).camera_from_world
            if first is None:
                first = head
                np.testing.assert_allclose(pose, np.eye(4))
            relative = head[:3, :3] @ first[:3, :3].T
            np.testing.assert_allclose(pose[:3, :3], relative, atol=1e-6)
            assert np.isfinite(pose).all()


@pytest.fixture(scope='module')
def walk_frames():
    sequence = make_sequence('walk', 8, 112, 84)
    return [sequence.render(index)[0] for index in range(len(sequence))]


@contextlib.contextmanager
def faulty(fault):
    """Poses from matches failing part-way through a frame: 'nan', a non-finite pose from the
    solver (caught only once everything is updated); 'raise', an error where the tracks are
    spawned (after the first frame is taken, or the head's correction and the step updated)."""
    if fault == 'good':
        yield
        return
    original_solve, original_spawned = reconstructor_module.solve_pose, Tracks.spawned

    def nan_pose(*args, **kwargs):
        solved = original_solve(*args, **kwargs)
        return solved._replace(pose=np.full((4, 4), np.nan))

    def broken(*args, **kwargs):
        raise RuntimeError('injected')

    if fault == 'nan':
        reconstructor_module.solve_pose = nan_pose
    else:
        Tracks.spawned = broken
    try:
        yield
    finally:
        reconstructor_module.solve_pose, Tracks.spawned = original_solve, original_spawned


@settings(max_examples=12, deadline=None)
@given(st.lists(st.sampled_from(['good', 'nan', 'raise']), min_size=1, max_size=8))
def test_a_frame_that_fails_in_poses_from_matches_is_as_if_it_never_came(
    small, walk_frames, faults
):
    """The model's step and the state carried from frame to frame are kept only with a finite
    pose: after any run of failed frames, the first one included, the outputs are a twin's that
    only saw the good ones."""
    options = SessionOptions(camera_cache='causal')
    deployed = {'options': options, 'heads': HEADS, 'multi_view_depth': True}
    stream = Reconstructor(small, image_width=112, **deployed)
    twin = Reconstructor(small, image_width=112, **deployed)
    for frame, fault in zip(walk_frames, faults, strict=False):
        failing_frame = fault == 'raise' or (fault == 'nan' and stream.frame_index > 0)
        with faulty(fault):
            if failing_frame:
                with pytest.raises((RuntimeError, FloatingPointError)):
                    stream.step(frame)
                continue
            result = stream.step(frame)
        expected = twin.step(frame)
        assert result.frame_index == expected.frame_index == stream.session.frames_seen - 1
        np.testing.assert_array_equal(result.camera_from_world, expected.camera_from_world)
        np.testing.assert_array_equal(result.depth, expected.depth)


def test_a_failed_frame_is_not_kept_among_the_recent_frames_the_depth_is_swept_against(
    small, walk_frames
):
    options = SessionOptions(camera_cache='causal')
    stream = Reconstructor(
        small, image_width=112, options=options, heads=HEADS, multi_view_depth=True
    )
    for frame in walk_frames[:2]:
        stream.step(frame)
    recent = stream._recent
    with faulty('raise'), pytest.raises(RuntimeError):
        stream.step(walk_frames[2])
    assert stream._recent is recent
