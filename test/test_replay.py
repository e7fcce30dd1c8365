"""Scoring at constant memory: the streaming depth join and the sequence-scale accumulator."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vggt_ros.evaluation.metrics import DepthAccumulator
from vggt_ros.evaluation.replay import MAX_PENDING, DepthMatcher

MS = 1_000_000


def reference_metrics(predicted, truth):
    """The whole-sequence protocol over every pixel at once."""
    pred = np.concatenate([p.ravel() for p in predicted]).astype(np.float64)
    gt = np.concatenate([g.ravel() for g in truth]).astype(np.float64)
    valid = np.isfinite(gt) & (gt > 0) & np.isfinite(pred) & (pred > 0)
    pred, gt = pred[valid], gt[valid]
    pred = pred * np.median(gt) / np.median(pred)
    return np.mean(np.abs(pred - gt) / gt), np.mean(np.maximum(pred / gt, gt / pred) < 1.25)


def frames(count, seed=0):
    rng = np.random.default_rng(seed)
    truth = [rng.uniform(0.5, 5.0, (12, 16)).astype(np.float32) for _ in range(count)]
    predicted = [(t * rng.uniform(0.8, 1.25, t.shape) / 3).astype(np.float32) for t in truth]
    truth[0][0, :4] = [np.nan, 0.0, -1.0, np.inf]  # invalid truth never counts
    return predicted, truth


def test_the_accumulator_is_exact_below_its_capacity():
    predicted, truth = frames(6)
    accumulator = DepthAccumulator(capacity=10_000)
    for p, t in zip(predicted, truth, strict=True):
        accumulator.add(p, t)
    result = accumulator.result()
    abs_rel, delta = reference_metrics(predicted, truth)
    assert result['depth_abs_rel'] == pytest.approx(abs_rel, rel=1e-6)
    assert result['depth_delta_1.25'] == pytest.approx(delta)
    assert result['depth_pixels'] == 6 * 12 * 16 - 4


def test_a_full_reservoir_estimates_the_whole_sequence():
    predicted, truth = frames(200, seed=1)
    accumulator = DepthAccumulator(capacity=5_000)
    for p, t in zip(predicted, truth, strict=True):
        accumulator.add(p, t)
    abs_rel, delta = reference_metrics(predicted, truth)
    result = accumulator.result()
    assert result['depth_pixels'] == 200 * 12 * 16 - 4  # counted: all; kept: 5,000
    assert result['depth_abs_rel'] == pytest.approx(abs_rel, rel=0.03)
    assert result['depth_delta_1.25'] == pytest.approx(delta, abs=0.02)


def test_frames_scaled_alone_show_what_one_view_gets_right_and_how_far_their_scales_spread():
    predicted, truth = frames(5, seed=2)
    factors = np.exp([0.0, 0.1, -0.2, 0.3, 0.0])
    accumulator = DepthAccumulator(capacity=10_000)
    for t, factor in zip(truth, factors, strict=True):
        accumulator.add(t * factor, t)  # each frame right up to its own scale
    result = accumulator.result()
    assert result['depth_abs_rel_per_frame'] == pytest.approx(0.0, abs=1e-6)
    assert result['depth_scale_log_std'] == pytest.approx(np.log(factors).std(), rel=1e-4)
    assert result['depth_abs_rel'] > 0.05  # one scale for the sequence cannot fit them all
    consistent = DepthAccumulator(capacity=10_000)
    for p, t in zip(predicted, truth, strict=True):
        consistent.add(p, t)
    pairs = zip(predicted, truth, strict=True)
    per_frame = np.mean([reference_metrics([p], [t])[0] for p, t in pairs])
    assert consistent.result()['depth_abs_rel_per_frame'] == pytest.approx(per_frame, rel=1e-6)


def test_no_valid_pixel_is_an_error():
    accumulator = DepthAccumulator(capacity=10)
    accumulator.add(np.ones((2, 2), np.float32), np.full((2, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match='no pixel'):
        accumulator.result()


def nearest_within(stamp, truths, max_diff):
    """Brute force: the truth nearest `stamp` within max_diff (the earliest among ties)."""
    gaps = [(abs(t - stamp), i) for i, t in enumerate(truths) if abs(t - stamp) <= max_diff]
    return min(gaps)[1] if gaps else None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 400), min_size=1, max_size=30, unique=True),
    st.lists(st.integers(-15, 15), max_size=30),
    st.integers(0, 20),
)
def test_the_streaming_join_finds_the_nearest_truth_as_a_full_index_would(
    frames_ms, lags, max_diff
):
    """Truths lag their frames by up to 15 ms either way, and arrive in stamp order."""
    frames_ms = sorted(frames_ms)
    truths = sorted(f + lag for f, lag in zip(frames_ms, lags, strict=False))
    events = sorted(
        [(t, 'truth', i) for i, t in enumerate(truths)]
        + [(f, 'frame', i) for i, f in enumerate(frames_ms)]
    )
    paired = {}
    matcher = DepthMatcher(max_diff * MS, lambda frame, truth: paired.__setitem__(frame, truth))
    for stamp, kind, index in events:
        if kind == 'truth':
            matcher.add_truth(stamp * MS, index)
        else:
            matcher.add_prediction(stamp * MS, index)
    matcher.finish()
    assert sorted(paired) == list(range(len(frames_ms)))
    for index, stamp in enumerate(frames_ms):
        expected = nearest_within(stamp, truths, max_diff)
        got = paired[index]
        if expected is None:
            assert got is None
        else:
            assert got is not None and abs(truths[got] - stamp) == abs(truths[expected] - stamp)


def test_frames_without_any_depth_image_are_settled_not_held():
    settled = []
    matcher = DepthMatcher(10 * MS, lambda frame, truth: settled.append((frame, truth)))
    for index in range(100):  # the depth stream stopped: no truth ever comes
        matcher.add_prediction(index * 30 * MS, index)
    assert len(settled) >= 100 - MAX_PENDING and all(truth is None for _, truth in settled)
    matcher.finish()
    assert [frame for frame, _ in settled] == list(range(100))
