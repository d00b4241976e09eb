"""The index version a search reads: loaded once, swapped whole when the indexer publishes another.

A search takes the current :class:`~glimpse.core.library.IndexSnapshot` and keeps it to the end,
so it never sees half an update; checking for a newer version costs one small file read, at most
once a second.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
from sqlalchemy import func, select

from glimpse.core.library import IndexSnapshot, Library
from glimpse.core.ocr_text import OcrText

BACKGROUND_SIZE = 2048  # stored vectors sampled per index version (a fixed seed: reproducible)


class IndexHolder:
    """The served snapshot of a library's index, refreshed when a newer version is published."""

    def __init__(self, library: Library, min_interval: float = 1.0) -> None:
        self.library = library
        self.min_interval = min_interval
        self._snapshot = library.open_index()
        self._swap_lock = threading.Lock()
        self._checked_at = 0.0
        self._background: tuple[int, np.ndarray] | None = None
        self._ocr_text = False
        self._ocr_checked_at = -math.inf

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
            # consistency; ids the catalogue does not know are dropped when hits are read. The
            # base is reused when the new version kept it: only its delta rows are read.
            try:
                self._snapshot = self.library.open_index(repair=False, previous=self._snapshot)
            except (RuntimeError, OSError, ValueError, KeyError):
                return False  # caught mid-publish (a file replaced meanwhile): the next check retries
            return True

    def has_ocr_text(self) -> bool:
        """Whether the catalogue holds text read in pictures (``glimpse index --ocr``), so that a
        search looks its words up there. While it holds none (OCR is off by default) the answer is
        asked again at most once per ``min_interval``, as a new index version is; once it holds
        some, never. The lookup it spares costs a vector search ~0.7 ms of the CPU its query's
        encoding runs on (bench/scale.py, 20,000 vectors, alternated in one process)."""
        now = time.monotonic()
        if not self._ocr_text and now - self._ocr_checked_at >= self.min_interval:
            self._ocr_checked_at = now
            with self.library.Session() as s:
                # max() of the key: one look at the end of the table's b-tree, whatever its size
                self._ocr_text = s.scalar(select(func.max(OcrText.unit_id))) is not None
        return self._ocr_text

    def background(self) -> np.ndarray:
        """A fixed random sample of the served index's vectors, (<= BACKGROUND_SIZE, D) float32:
        what "unrelated content" scores for a query (moments, relevance). Drawn once per version."""
        snapshot = self.current()
        cached = self._background
        if cached is not None and cached[0] == snapshot.version:
            return cached[1]
        ids = snapshot.index.ids()
        if len(ids) > BACKGROUND_SIZE:
            ids = np.sort(np.random.default_rng(0).choice(ids, BACKGROUND_SIZE, replace=False))
        sample = snapshot.index.vectors(ids) if len(ids) else np.zeros((0, snapshot.index.dim), np.float32)
        self._background = (snapshot.version, np.asarray(sample, dtype=np.float32))
        return self._background[1]
