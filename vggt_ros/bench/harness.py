"""Timing side by side: repeated steps, the things compared taking turns, stats and slopes.

Every figure is min/median/max over repeats; ratios are of medians. Sessions advance as Lanes,
frame by frame, each recording a Series; a timed frame is stepped `repeats` times, every time
from a copy of the session's state, so every repeat measures the same step.
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from torch import Tensor

# The reference-style step must give our outputs: same keys, values and kernels (so far bitwise).
EQUAL = dict(rtol=1e-5, atol=1e-6)


class Steppable(Protocol):
    """What a lane steps: a StreamSession, or a baseline that steps like one."""

    model: Any

    @property
    def cache_bytes(self) -> int: ...

    def step(self, image: Tensor) -> dict[str, Tensor]: ...


SessionT = TypeVar('SessionT', bound=Steppable)


@dataclass
class Series:
    """Per-frame measurements of one session, from `first_frame` on. Frame n (from 1) attends
    over n cached frames, the current one included (fewer once a window is full)."""

    first_frame: int = 1
    step_s: list[list[float]] = field(default_factory=list)  # per frame: one time per repeat
    cache_bytes: list[int] = field(default_factory=list)  # per frame, after it

    def at(self, frame: int) -> list[float]:
        return self.step_s[frame - self.first_frame]


@dataclass
class Lane:
    """A session stepped through the stream, up to and including frame `last_frame`."""

    session: Steppable
    series: Series
    last_frame: int

    @property
    def next_frame(self) -> int:
        return self.series.first_frame + len(self.series.step_s)


def stats(values: Sequence[float]) -> dict[str, float]:
    return {'min': min(values), 'median': statistics.median(values), 'max': max(values)}


def ratio(numerator: dict[str, float], denominator: dict[str, float]) -> float:
    return numerator['median'] / denominator['median']


def check_settings(frames: tuple[int, ...], repeats: int) -> None:
    """Windows and cached frames hold the anchor and the new frame at least; one repeat at least."""
    if min(frames) < 2 or repeats < 1:
        raise ValueError(
            f'need windows and cached frames >= 2, repeats >= 1; got {frames}, {repeats}'
        )


def timed(function: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = function(*args)
    return out, time.perf_counter() - start


def in_turn(names: list[str], shift: int) -> list[str]:
    """The order in which the things compared step: rotated by `shift`, so that none always goes
    first (or right after another's allocations)."""
    shift %= len(names)
    return names[shift:] + names[:shift]


def time_in_turn(steps: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, float]]:
    """Each step once untimed (first-touch allocations), then `repeats` times, the steps taking
    turns (who goes first rotating) so that the machine's load hits them alike."""
    names = list(steps)
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in in_turn(names, repeat):
            times[name].append(timed(steps[name])[1])
    return {name: stats(values) for name, values in times.items()}


def copy_session(session: SessionT) -> SessionT:
    """An independent copy of a session's state, caches included; the model is shared."""
    return copy.deepcopy(session, memo={id(session.model): session.model})


def max_difference(actual: dict[str, Tensor], expected: dict[str, Tensor]) -> float:
    """Largest absolute difference; raises if any output is not equal (to float rounding)."""
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, **EQUAL, msg=f'{name} differs')
    return max((actual[name] - value).abs().max().item() for name, value in expected.items())


def step_lanes(lanes: dict[str, Lane], images: Tensor, repeats: int, turn: int) -> float:
    """Step each lane's next frame, in turn (who goes first rotates with `turn`). With repeats > 1
    each lane steps that frame `repeats` times, every time from a fresh copy of its state, and
    goes on from the last copy. Returns the largest reference-style vs ours output difference."""
    names = list(lanes)
    states = {name: lane.session for name, lane in lanes.items()}
    times: dict[str, list[float]] = {name: [] for name in names}
    difference = 0.0
    for repeat in range(repeats):
        outputs = {}
        for name in in_turn(names, turn + repeat):
            lane = lanes[name]
            lane.session = copy_session(states[name]) if repeats > 1 else states[name]
            outputs[name], seconds = timed(lane.session.step, images[lane.next_frame - 1])
            times[name].append(seconds)
        if 'reference' in outputs:
            difference = max(difference, max_difference(outputs['reference'], outputs['unbounded']))
    for name, lane in lanes.items():
        lane.series.step_s.append(times[name])
        lane.series.cache_bytes.append(lane.session.cache_bytes)
    return difference


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc; elsewhere the peak from resource)."""
    try:
        pages = int(Path('/proc/self/statm').read_text().split()[1])
        return pages * os.sysconf('SC_PAGE_SIZE')
    except OSError:
        import resource  # noqa: PLC0415 - only where /proc is missing

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fitted_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares growth of y per unit of x."""
    return float(np.polyfit(np.asarray(x, dtype=float), np.asarray(y, dtype=float), 1)[0])


def slope(values: Sequence[float]) -> float:
    """Least-squares growth per sample over the second half of `values` (the window full)."""
    half = values[len(values) // 2 :]
    return fitted_slope(range(len(half)), half)
