"""Append-only float16 vector shards: the embedding truth from which any index can be rebuilt."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import numpy as np

from glimpse.core.fsutil import atomic_write, remove_stale_temp_files

_SHARD = re.compile(r"^shard-(\d{8})-[0-9a-f]{8}\.npz$")


class VectorStore:
    """Shards of (unit ids, float16 vectors) written once and never modified.

    When one id appears in several shards the newest shard wins: a unit that was re-embedded, or
    an id that SQLite handed out again after a rolled-back transaction, resolves to its latest vector.
    """

    def __init__(self, folder: Path, dim: int) -> None:
        self.folder = folder
        self.dim = dim
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(folder)

    def shards(self) -> list[Path]:
        found = [p for p in self.folder.iterdir() if _SHARD.match(p.name)]
        return sorted(found, key=lambda p: int(_SHARD.match(p.name).group(1)))  # type: ignore[union-attr]

    def _next_seq(self) -> int:
        shards = self.shards()
        return int(_SHARD.match(shards[-1].name).group(1)) + 1 if shards else 1  # type: ignore[union-attr]

    def append(self, ids: np.ndarray, vectors: np.ndarray) -> Path | None:
        """Durably write one shard; returns its path (None when there is nothing to write)."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors)
        if len(ids) == 0:
            return None
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        path = self.folder / f"shard-{self._next_seq():08d}-{uuid.uuid4().hex[:8]}.npz"
        with atomic_write(path) as fh:
            np.savez(fh, ids=ids, vectors=vectors.astype(np.float16))
        return path

    def load(self, wanted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All (sorted ids, float32 vectors), newest shard winning; only ``wanted`` ids when given."""
        id_blocks, vec_blocks = [], []
        for path in self.shards():
            with np.load(path, allow_pickle=False) as data:
                id_blocks.append(data["ids"])
                vec_blocks.append(data["vectors"])
        if not id_blocks:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), dtype=np.float32)
        ids = np.concatenate(id_blocks)
        # np.unique keeps the first occurrence: look from the end so the newest shard wins.
        unique_ids, first_from_end = np.unique(ids[::-1], return_index=True)
        rows = len(ids) - 1 - first_from_end
        if wanted is not None:
            keep = np.isin(unique_ids, np.asarray(wanted, dtype=np.int64))
            unique_ids, rows = unique_ids[keep], rows[keep]
        vectors = np.concatenate(vec_blocks)[rows].astype(np.float32)
        return unique_ids, vectors

    def compact(self, live_ids: np.ndarray) -> None:
        """Rewrite all shards as one holding only ``live_ids`` (drops vectors of removed units).

        The new shard is written before the old ones are unlinked: a crash in between leaves
        duplicates of identical vectors, which is harmless.
        """
        old = self.shards()
        if not old:
            return
        ids, vecs = self.load(wanted=live_ids)
        new = self.append(ids, vecs)
        for path in old:
            if path != new:
                path.unlink(missing_ok=True)

    def stored_count(self) -> int:
        total = 0
        for path in self.shards():
            with np.load(path, allow_pickle=False) as data:
                total += len(data["ids"])
        return total
