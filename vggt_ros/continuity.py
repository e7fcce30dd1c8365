"""Whether a frame continues the stream, starts a new world, or is skipped (no ROS, no torch).

A stream is continuous while frames keep one size and their stamps move forward. This policy sees
only frames that are already decoded and valid, so a frame the model cannot use never resets the
world. It decides first (`admit`) and changes its state only once the caller has acted
(`started_new_world`, `processed`): a frame whose model step fails leaves the state as it was.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

RESET_REQUESTED = 'reset requested on ~/reset'
REPEATED_STAMP = 'repeated stamp'
OUT_OF_ORDER = 'out-of-order stamp'
TIME_JUMPED_BACK = 'time jumped backwards'  # how that reset's cause begins


@dataclass(frozen=True)
class Admission:
    """What to do with one frame.

    stamp_ns: the stamp to process and publish it with (the receipt time for unstamped frames).
    reset: why the world restarts before this frame, or None to continue it.
    skip: the kind of skip (REPEATED_STAMP, OUT_OF_ORDER), or None to process the frame.
    warning: something to tell the user once, or None.
    """

    stamp_ns: int
    reset: str | None = None
    skip: str | None = None
    warning: str | None = None


class StreamContinuity:
    """The stream policy: size changes and backward time jumps reset; repeats are skipped.

    A backward jump of at most `tolerance` seconds is a frame delivered out of order (skipped); a
    larger one is a new stream, such as a looping bag (reset). Stamp 0 means an unstamped driver:
    such frames get their receipt time, with one warning. `request_reset` may be called from any
    thread; the reset happens before the next admitted frame.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset_requested = False
        self._last_size: tuple[int, int] | None = None
        self._last_stamp_ns: int | None = None
        self._warned_unstamped = False

    def request_reset(self) -> None:
        with self._lock:
            self._reset_requested = True

    def admit(
        self, size: tuple[int, int], stamp_ns: int, received_ns: int, tolerance: float
    ) -> Admission:
        """Decide about a valid frame of `size` stamped `stamp_ns`; changes nothing yet."""
        with self._lock:
            warning = None
            if stamp_ns == 0:
                stamp_ns, warning = received_ns, self._unstamped_warning()
            if self._reset_requested:
                return Admission(stamp_ns, reset=RESET_REQUESTED, warning=warning)
            return Admission(stamp_ns, *self._continuation(size, stamp_ns, tolerance), warning)

    def _unstamped_warning(self) -> str | None:
        if self._warned_unstamped:
            return None
        self._warned_unstamped = True
        return (
            'images are stamped 0 (an unstamped driver?): their outputs carry the time they '
            'were received instead; this is said once'
        )

    def _continuation(
        self, size: tuple[int, int], stamp_ns: int, tolerance: float
    ) -> tuple[str | None, str | None]:
        """(reset cause, skip kind) for a frame that follows the last processed one."""
        last_size, last_stamp = self._last_size, self._last_stamp_ns
        if last_size is None or last_stamp is None:
            return None, None
        if size != last_size:
            return f'image size changed from {_wxh(last_size)} to {_wxh(size)}', None
        if stamp_ns == last_stamp:
            return None, REPEATED_STAMP
        back = (last_stamp - stamp_ns) * 1e-9
        if back > tolerance:
            return f'{TIME_JUMPED_BACK} by {back:.3f} s (a looping bag?)', None
        if back > 0:
            return None, OUT_OF_ORDER
        return None, None

    def started_new_world(self, answered_request: bool) -> None:
        """The world was reset: forget the last frame, and the reset request if this reset
        answered it (an automatic reset does not: a ~/reset meanwhile still restarts the world)."""
        with self._lock:
            if answered_request:
                self._reset_requested = False
            self._last_size = self._last_stamp_ns = None

    def processed(self, size: tuple[int, int], stamp_ns: int) -> None:
        """A frame of `size` at `stamp_ns` is now the last one of the stream."""
        with self._lock:
            self._last_size, self._last_stamp_ns = size, stamp_ns


def _wxh(size: tuple[int, int]) -> str:
    height, width = size
    return f'{width}x{height}'
