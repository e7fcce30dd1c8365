"""The stream pipeline without ROS: what the node publishes and the evaluator scores."""

import numpy as np
import pytest
from node_harness import HEIGHT, WIDTH, known_source
from standin_model import StandInModel

from vggt_ros import params
from vggt_ros.pipeline import StreamPipeline
from vggt_ros.reconstructor import Reconstructor

SECOND = 1_000_000_000
VALUES = {**params.DEFAULTS, 'conf_threshold': 0.0}


def pipeline(source=known_source, **values):
    reconstructor = Reconstructor(StandInModel(source), image_width=WIDTH)
    return StreamPipeline(reconstructor, {**VALUES, **values})


def frame(height=HEIGHT, width=WIDTH, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def z(outcome):
    return outcome.frame.pose[2, 3]


def test_frames_continue_the_world_and_fill_the_map():
    stream = pipeline()
    outcomes = [stream.process(frame(), (1 + i) * SECOND, 0, VALUES) for i in range(2)]
    assert [o.status for o in outcomes] == ['processed'] * 2
    assert [z(o) for o in outcomes] == pytest.approx([0.0, 1.0])
    assert len(stream.map) > 0 and not any(o.history_cleared for o in outcomes)
    timings = outcomes[1].frame.result.timings  # what the latency counts: preprocessing too
    assert set(timings) == {'preprocess', 'model', 'postprocess'}


def test_a_frame_too_small_fails_before_the_policy_sees_it():
    stream = pipeline()
    stream.process(frame(), SECOND, 0, VALUES)
    small = stream.process(frame(HEIGHT, 10), 2 * SECOND, 0, VALUES)
    assert (small.status, small.kind, small.reset) == ('failed', 'image too small', None)
    assert z(stream.process(frame(), 3 * SECOND, 0, VALUES)) == pytest.approx(1.0)


def test_a_model_failure_is_undone_and_keeps_the_map():
    failed = []

    def failing_once(index, height, width):
        if index == 1 and not failed:
            failed.append(index)
            raise RuntimeError('out of memory')
        return known_source(index, height, width)

    stream = pipeline(failing_once)
    stream.process(frame(), SECOND, 0, VALUES)
    points = len(stream.map)
    outcome = stream.process(frame(), 2 * SECOND, 0, VALUES)
    assert (outcome.status, outcome.kind) == ('failed', 'model')
    assert 'out of memory' in outcome.error and not outcome.history_cleared
    assert len(stream.map) == points
    assert z(stream.process(frame(), 3 * SECOND, 0, VALUES)) == pytest.approx(1.0)


def test_a_non_finite_pose_fails_its_frame_and_anchors_nothing():
    """A NaN camera (a model's overflow) is no pose: the frame fails, and a reset after it
    still anchors the new session at the last good pose."""

    def nan_on_frame_two(index, height, width):
        encoding, depth = known_source(index, height, width)
        return (encoding * np.nan if index == 2 else encoding), depth

    stream = pipeline(nan_on_frame_two)
    good = [stream.process(frame(), (1 + i) * SECOND, 0, VALUES) for i in range(2)]
    bad = stream.process(frame(), 3 * SECOND, 0, VALUES)
    assert (bad.status, bad.kind) == ('failed', 'model') and 'non-finite' in bad.error
    resized = stream.process(frame(HEIGHT - 14), 4 * SECOND, 0, VALUES)
    np.testing.assert_allclose(resized.frame.pose, good[1].frame.pose, atol=1e-12)


def test_an_unusable_array_fails_without_resetting_the_world():
    stream = pipeline()
    stream.process(frame(), SECOND, 0, VALUES)
    grey = frame()[..., 0]  # 2-D, and of another size than the stream's frames
    outcome = stream.process(grey[:-14], 2 * SECOND, 0, VALUES)
    assert (outcome.status, outcome.kind, outcome.reset) == ('failed', 'unusable image', None)
    assert z(stream.process(frame(), 3 * SECOND, 0, VALUES)) == pytest.approx(1.0)


@pytest.mark.parametrize('source', ['depth', 'odometry'])
def test_with_a_metric_source_scale_is_a_guess_and_changing_it_clears_nothing(source):
    stream = pipeline(scale_source=source)
    values = {**VALUES, 'scale_source': source}
    stream.process(frame(), SECOND, 0, values)
    changed = stream.process(frame(), 2 * SECOND, 0, {**values, 'scale': 2.0})
    assert not changed.history_cleared and len(stream.map) > 0


def test_an_automatic_reset_continues_from_the_last_pose_turned_and_all():
    stream = pipeline()
    poses = [stream.process(frame(), (1 + i) * SECOND, 0, VALUES).frame.pose for i in range(3)]
    resized = stream.process(frame(HEIGHT - 14), 4 * SECOND, 0, VALUES)
    assert resized.reset.startswith('image size changed') and not resized.history_cleared
    np.testing.assert_allclose(resized.frame.pose, poses[2], atol=1e-12)
    # The new session's second frame moved +1 along its first camera's optical z, which is the
    # turned camera of the old session's third frame.
    moved = stream.process(frame(HEIGHT - 14), 5 * SECOND, 0, VALUES).frame.pose
    np.testing.assert_allclose(moved[:3, 3], poses[2][:3, 3] + poses[2][:3, 2], atol=1e-6)
    stream.request_reset()
    restarted = stream.process(frame(HEIGHT - 14), 6 * SECOND, 0, VALUES)
    assert restarted.history_cleared  # the map holds this frame's voxels only
    assert 0 < len(stream.map) <= len(restarted.frame.world_points()[0])
    np.testing.assert_allclose(restarted.frame.pose, np.eye(4), atol=1e-12)


def test_new_units_clear_the_history_without_a_reset():
    stream = pipeline()
    stream.process(frame(), SECOND, 0, VALUES)
    doubled = stream.process(frame(), 2 * SECOND, 0, {**VALUES, 'scale': 2.0})
    assert doubled.history_cleared and doubled.reset is None
    assert z(doubled) == pytest.approx(2.0)


def test_resets_skips_and_merging_follow_the_values():
    stream = pipeline()
    stream.process(frame(), 10 * SECOND, 0, VALUES)
    last = stream.process(frame(), 11 * SECOND, 0, VALUES)
    late = stream.process(frame(), 11 * SECOND - 1, 0, VALUES)
    assert (late.status, late.kind) == ('skipped', 'out-of-order stamp')
    points = len(stream.map)
    looped = stream.process(frame(), SECOND, 0, VALUES)
    assert looped.reset and not looped.history_cleared and len(stream.map) >= points
    np.testing.assert_array_equal(looped.frame.pose, last.frame.pose)  # no jump at the reset
    merged = {**VALUES, 'merging.enabled': True}
    stream.process(frame(), 2 * SECOND, 0, merged)
    assert stream.merging and stream.reconstructor.session.merging is not None
    stream.request_reset()
    assert stream.process(frame(), 3 * SECOND, 0, VALUES).reset == 'reset requested on ~/reset'
    assert not stream.merging
