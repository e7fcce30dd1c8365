"""Stream health numbers and the latest-frame slot between callback and worker."""

import math
import threading

import pytest

from vggt_ros.latest_frame import LatestFrameSlot
from vggt_ros.stats import OK, WARN, StreamStats, window_fill


def test_counters_rate_and_percentiles():
    stats = StreamStats(rate_window=10.0)
    stats.count('received', 5)
    stats.count('dropped', 2)
    for i in range(3):  # frames done at t = 1, 1.5, 2 s, each received 0.1 s earlier
        now = 1.0 + 0.5 * i
        stats.frame_done(model_seconds=0.01 * (i + 1), received_at=now - 0.1, now=now)
    snapshot = stats.snapshot(now=2.0)
    assert snapshot.counts['received'] == 5 and snapshot.counts['processed'] == 3
    assert snapshot.rate_hz == pytest.approx(2.0)
    assert snapshot.model_p50 == pytest.approx(0.02)
    assert snapshot.latency_p95 == pytest.approx(0.1)
    assert snapshot.as_values()['model p50 (ms)'] == '20.0'
    assert snapshot.level(stall_seconds=5.0)[0] == OK


def test_levels_warn_before_images_and_when_stalled():
    stats = StreamStats()
    snapshot = stats.snapshot()
    assert snapshot.level(5.0) == (WARN, 'waiting for images')
    assert math.isnan(snapshot.model_p50) and snapshot.rate_hz == 0.0
    stats.count('received')
    stats.frame_done(0.01, received_at=0.0, now=1.0)
    assert stats.snapshot(now=100.0).level(5.0)[0] == WARN


def test_window_fill():
    assert window_fill(3, 16) == '3/16'
    assert window_fill(40, 16) == '16/16'
    assert window_fill(40, 0) == '40/unbounded'


def test_slot_keeps_the_newest_and_reports_replacements():
    slot = LatestFrameSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.take(timeout=0) == 2
    assert slot.take(timeout=0) is None


def test_close_wakes_a_waiting_take():
    slot = LatestFrameSlot()
    taken = []
    worker = threading.Thread(target=lambda: taken.append(slot.take()))
    worker.start()
    slot.close()
    worker.join(timeout=5)
    assert not worker.is_alive() and taken == [None]
