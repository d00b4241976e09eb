"""The index version a search reads: loaded once, swapped whole when the indexer publishes another.

A search takes the current :class:`~glimpse.core.library.IndexSnapshot` and keeps it to the end,
so it never sees half an update; checking for a newer version costs one small file read, at most
once a second.
"""

from __future__ import annotations

import threading
import time

from glimpse.core.library import IndexSnapshot, Library


class IndexHolder:
    """The served snapshot of a library's index, refreshed when a newer version is published."""

    def __init__(self, library: Library, min_interval: float = 1.0) -> None:
        self.library = library
        self.min_interval = min_interval
        self._snapshot = library.open_index()
        self._swap_lock = threading.Lock()
        self._checked_at = 0.0

    def current(self) -> IndexSnapshot:
        """The newest published snapshot (checked for at most once per ``min_interval`` seconds)."""
        self.refresh()
        return self._snapshot

    def refresh(self) -> bool:
        """Swap in a newer index if the indexer published one; returns whether it did."""
        now = time.monotonic()
        if now - self._checked_at < self.min_interval:
            return False
        self._checked_at = now
        if self.library.index_version() == self._snapshot.version:
            return False
        with self._swap_lock:
            if self.library.index_version() == self._snapshot.version:
                return False
            # No repair here: the indexer that published this version owns the lock and the
            # consistency; ids the catalogue does not know are dropped when hits are read.
            self._snapshot = self.library.open_index(repair=False)
            return True
