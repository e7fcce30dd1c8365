"""Health of the stream: frame counters, processing rate, latency percentiles (pure, thread-safe).

The subscription callback, the worker thread and the diagnostics timer all touch these numbers,
so every access takes one lock. Counters are cumulative since the node started (resets do not
clear them), which is what a dropped-frame budget is judged against. Every received frame ends in
exactly one of processed, dropped, skipped (on purpose: stride, repeated or out-of-order stamps)
or failed (it could not be used), and skipped and failed frames are also counted per kind.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

# Levels as in diagnostic_msgs/DiagnosticStatus.
OK, WARN, ERROR = 0, 1, 2

COUNTERS = ('received', 'skipped', 'dropped', 'failed', 'processed', 'resets', 'reanchors')


@dataclass(frozen=True)
class StatsSnapshot:
    """The stream's numbers at one instant. Latencies in seconds, NaN before the first frame."""

    counts: dict[str, int]
    rate_hz: float
    model_p50: float
    model_p95: float
    latency_p50: float
    latency_p95: float
    seconds_since_frame: float  # inf before the first frame
    kinds: dict[str, int] = field(default_factory=dict)  # 'failed: <kind>', 'skipped: <kind>'
    last_error: str = ''

    def as_values(self) -> dict[str, str]:
        """The numbers as diagnostics key/values (milliseconds for latencies)."""
        return {
            'rate (Hz)': f'{self.rate_hz:.2f}',
            'model p50 (ms)': f'{1e3 * self.model_p50:.1f}',
            'model p95 (ms)': f'{1e3 * self.model_p95:.1f}',
            'latency p50 (ms)': f'{1e3 * self.latency_p50:.1f}',
            'latency p95 (ms)': f'{1e3 * self.latency_p95:.1f}',
            **{name: str(count) for name, count in self.counts.items()},
            **{name: str(count) for name, count in sorted(self.kinds.items())},
            'last error': self.last_error,
        }

    def level(self, stall_seconds: float) -> tuple[int, str]:
        """(level, message) for diagnostics: WARN while waiting for images or when stalled."""
        if self.counts['received'] == 0:
            return WARN, 'waiting for images'
        if self.seconds_since_frame > stall_seconds:
            return WARN, f'no frame processed for {stall_seconds:g} s'
        return OK, f'streaming at {self.rate_hz:.1f} Hz'


class StreamStats:
    """Cumulative counters and the timings of the last `history` processed frames."""

    def __init__(self, history: int = 100, rate_window: float = 5.0) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._kinds: dict[str, int] = {}
        self._last_error = ''
        self._model = deque(maxlen=history)  # seconds in Reconstructor.step
        self._latency = deque(maxlen=history)  # seconds from receipt to published
        self._done = deque(maxlen=history)  # monotonic time each frame was published
        self._rate_window = rate_window

    def count(self, counter: str, n: int = 1) -> None:
        """Add n to one of COUNTERS."""
        with self._lock:
            self._counts[counter] += n

    def skip(self, kind: str) -> None:
        """Count a frame left out on purpose, e.g. 'frame stride' or 'repeated stamp'."""
        self._count_kind('skipped', kind)

    def fail(self, kind: str, error: str) -> None:
        """Count a frame that could not be used, e.g. 'unsupported encoding', and keep its error."""
        with self._lock:
            self._last_error = error
        self._count_kind('failed', kind)

    def _count_kind(self, counter: str, kind: str) -> None:
        with self._lock:
            self._counts[counter] += 1
            key = f'{counter}: {kind}'
            self._kinds[key] = self._kinds.get(key, 0) + 1

    def frame_done(
        self, model_seconds: float, received_at: float, now: float | None = None
    ) -> None:
        """Record a processed frame: its model time and its latency since receipt (monotonic)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._counts['processed'] += 1
            self._model.append(model_seconds)
            self._latency.append(now - received_at)
            self._done.append(now)

    def snapshot(self, now: float | None = None) -> StatsSnapshot:
        """A consistent copy of the counters, the recent rate and the latency percentiles."""
        now = time.monotonic() if now is None else now
        with self._lock:
            counts, kinds, last_error = dict(self._counts), dict(self._kinds), self._last_error
            model, latency, done = list(self._model), list(self._latency), list(self._done)
        recent = [t for t in done if now - t <= self._rate_window]
        span = recent[-1] - recent[0] if len(recent) > 1 else 0.0
        return StatsSnapshot(
            counts=counts,
            rate_hz=(len(recent) - 1) / span if span > 0 else 0.0,
            model_p50=_percentile(model, 50),
            model_p95=_percentile(model, 95),
            latency_p50=_percentile(latency, 50),
            latency_p95=_percentile(latency, 95),
            seconds_since_frame=now - done[-1] if done else float('inf'),
            kinds=kinds,
            last_error=last_error,
        )


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float('nan')


def window_fill(frames_since_reset: int, window_size: int) -> str:
    """Frames in the model's window, as 'n/W' ('n/unbounded' without a window)."""
    if window_size == 0:
        return f'{frames_since_reset}/unbounded'
    return f'{min(frames_since_reset, window_size)}/{window_size}'


class KindThrottle:
    """Lets the first event of each kind through, then at most one per `period` seconds per kind.

    Throttling per kind rather than per call site means one noisy failure can never hide a
    different one that follows within the period; what was held back is counted and reported
    with the next event let through.
    """

    def __init__(self, period: float) -> None:
        self.period = period
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def admit(self, kind: str, now: float | None = None) -> int | None:
        """None to hold this event back, else how many of its kind were held back before it."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now < self._next.get(kind, -math.inf):
                self._held[kind] = self._held.get(kind, 0) + 1
                return None
            self._next[kind] = now + self.period
            return self._held.pop(kind, 0)
