"""Soak: 300 frames through the real node (in-process, real rclpy, tiny preset, window 16), sent
in back-to-back pairs (the second may replace the first: a drop), each pair's last frame awaited
on /tf so that the stream keeps moving however loaded the machine is. Nothing may grow once the
window is full, nothing may fail, and every frame received must be published, skipped or counted
as dropped."""

import numpy as np
import pytest
from tf2_msgs.msg import TFMessage

from vggt_ros.bench.harness import rss_bytes
from vggt_ros.bench.node_run import NodeRun, RecordingReconstructor
from vggt_ros.model.synthetic_weights import synthetic_model

FRAMES, WINDOW = 300, 16
SIZE = (42, 70)  # the model's own size at image_width 70: no resizing
WARMUP = 50  # frames sent before the RSS baseline (allocator and middleware pools settle)
RSS_BOUND = 50e6  # bytes; a leak of ~170 kB per frame (one 42x70 float image set) crosses it


pytestmark = pytest.mark.usefixtures('single_torch_thread')


def test_300_frames_through_the_node_leave_nothing_growing():
    reconstructor = RecordingReconstructor(
        synthetic_model('tiny'), image_width=SIZE[1], window=WINDOW
    )
    # Only TF arrival times are kept: what grows is the node's, not the peer's.
    run = NodeRun(
        reconstructor, {'/tf': TFMessage}, history=0, window_size=WINDOW, image_width=SIZE[1]
    )
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (8, *SIZE, 3), dtype=np.uint8)
    stats = run.node._stats
    try:
        for index in range(FRAMES):
            if index == WARMUP:
                baseline = rss_bytes()
            stamp = (index + 1) * 1_000_000_000
            run.send_array(frames[index % len(frames)], stamp)
            if index % 2:
                run.arrival('/tf', stamp)

        def settled():
            counts = stats.snapshot().counts
            accounted = counts['processed'] + counts['dropped'] + counts['skipped']
            published = len(run.arrivals['/tf'])
            return counts['received'] == accounted and published == counts['processed']

        run.wait(settled, 'every received frame published or counted')
        growth = rss_bytes() - baseline
        counts = stats.snapshot().counts
    finally:
        run.close()
    assert counts['failed'] == 0 and counts['resets'] == 0
    assert 0 < counts['received'] <= FRAMES
    assert counts['processed'] >= FRAMES // 2  # the window filled and slid many times
    cache = [step['cache_bytes'] for step in reconstructor.steps]
    assert len(cache) == counts['processed']
    assert len(set(cache[WINDOW:])) == 1  # allocated once the window is full, never again
    assert growth < RSS_BOUND, f'RSS grew {growth / 1e6:.1f} MB after warm-up'
