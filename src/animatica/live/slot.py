"""A mailbox of one: how a live session never falls behind its camera.

A queue between a camera and a slower engine grows without end, and every frame in it adds
delay. A `LatestSlot` holds only the newest item: putting one while the previous is unread
replaces it (and counts it as dropped), so the engine always works on the most recent frame
and memory holds at most one waiting frame, however slow the engine is.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Thread-safe; any number of producers and consumers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Offer ``item``; True if it replaced one nobody took (that one is dropped).

        After `close` the item is ignored (a producer racing the end must not fail).
        """
        with self._cond:
            if self._closed:
                return False
            replaced = self._full
            if replaced:
                self.dropped += 1
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, waiting up to ``timeout`` seconds (``None``: until one comes);
        ``None`` on timeout or once the slot is closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._closed, timeout):
                return None
            if self._closed:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake every waiting `take` (they return ``None``) and let go of the unread item."""
        with self._cond:
            self._closed = True
            self._item, self._full = None, False
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> bool:
        """Whether an item is waiting (at most one ever is)."""
        return self._full
