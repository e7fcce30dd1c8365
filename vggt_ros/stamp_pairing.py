"""Side topics paired with camera images by stamp (no ROS): a metric depth image, a CameraInfo.

The side message usually carries the image's very stamp (a depth camera registered to colour, a
driver's CameraInfo); a small tolerance admits drivers that stamp them apart, but stays well under
a frame period so a neighbouring frame's message is never taken. Missing messages are normal.
"""

from __future__ import annotations

import bisect
import threading
from typing import Generic, TypeVar

T = TypeVar('T')

PAIRING_TOLERANCE_NS = 10_000_000  # 10 ms: a third of a frame at 30 Hz
PAIRING_HISTORY = 30  # messages kept: a second at 30 Hz, more than a frame's inference takes
# A stamp this much older than the newest held is not a late message but time gone back (a
# looping bag): what is held belongs to the old time and goes.
BACKWARD_JUMP_NS = 1_000_000_000


class StampPairing(Generic[T]):
    """The last PAIRING_HISTORY messages of one topic by stamp; put from the callback thread,
    `nearest` from the worker."""

    def __init__(self, history: int = PAIRING_HISTORY) -> None:
        self._history = history
        self._stamps: list[int] = []
        self._items: list[T] = []
        self._lock = threading.Lock()

    def put(self, stamp_ns: int, item: T) -> None:
        with self._lock:
            if self._stamps and stamp_ns < self._stamps[-1] - BACKWARD_JUMP_NS:
                self._stamps.clear()
                self._items.clear()
            index = bisect.bisect(self._stamps, stamp_ns)
            self._stamps.insert(index, stamp_ns)
            self._items.insert(index, item)
            if len(self._stamps) > self._history:  # the oldest go first
                del self._stamps[0], self._items[0]

    def clear(self) -> None:
        """Forget every message (time went back: a looping bag)."""
        with self._lock:
            self._stamps.clear()
            self._items.clear()

    def latest(self) -> T | None:
        """The newest message: a CameraInfo that rarely changes stands in for a missing one."""
        with self._lock:
            return self._items[-1] if self._items else None

    def nearest(self, stamp_ns: int, tolerance_ns: int = PAIRING_TOLERANCE_NS) -> T | None:
        """The message stamped closest to `stamp_ns`, if within the tolerance."""
        with self._lock:
            index = bisect.bisect(self._stamps, stamp_ns)
            candidates = [i for i in (index - 1, index) if 0 <= i < len(self._stamps)]
            if not candidates:
                return None
            best = min(candidates, key=lambda i: abs(self._stamps[i] - stamp_ns))
            if abs(self._stamps[best] - stamp_ns) > tolerance_ns:
                return None
            return self._items[best]
