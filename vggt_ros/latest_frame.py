"""A one-item mailbox between the subscription callback and the inference thread.

A camera delivers frames faster than the model consumes them; queueing them would only make every
output later and later. The slot keeps the newest frame only: putting a frame replaces the one
still waiting (which the caller counts as dropped), and the worker always takes the freshest.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar('T')


class LatestFrameSlot(Generic[T]):
    """Holds at most one item; `put` never blocks, `take` waits for an item or for `close`."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._item: T | None = None
        self._closed = False

    def put(self, item: T) -> bool:
        """Store `item`; True if it replaced one that was never taken."""
        with self._ready:
            replaced = self._item is not None
            self._item = item
            self._ready.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, removed from the slot; None on timeout or once closed."""
        with self._ready:
            self._ready.wait_for(lambda: self._item is not None or self._closed, timeout)
            if self._closed:
                return None
            item, self._item = self._item, None
            return item

    @property
    def closed(self) -> bool:
        """Whether `close` was called (the node is shutting down)."""
        with self._ready:
            return self._closed

    def close(self) -> None:
        """Wake every waiting `take` for good (shutdown)."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
