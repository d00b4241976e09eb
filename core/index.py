"""The FAISS index derived from the vector shards: built in one go, searched, atomically replaced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from glimpse.core.fsutil import atomic_write


class VectorIndex:
    """Unit ids -> vectors under inner product (vectors are unit length, so this is cosine).

    Exact (``IndexFlatIP``) at the sizes Glimpse targets today; ``build`` is the one place that
    would choose HNSW or IVF-PQ by size, and callers only see ``search``.
    """

    def __init__(self, index: faiss.Index) -> None:
        # Any: FAISS's bundled stubs type the SWIG base class, not the IndexIDMap2 kept here.
        self._index: Any = index

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, dim: int) -> VectorIndex:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if len(ids):
            index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32),
                np.ascontiguousarray(ids, dtype=np.int64),
            )
        return cls(index)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        return cls(faiss.read_index(str(path)))

    def save(self, path: Path) -> None:
        data = faiss.serialize_index(self._index)
        with atomic_write(path) as fh:
            fh.write(data.tobytes())

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` (all must be present)."""
        return (
            np.stack([self._index.reconstruct(int(i)) for i in ids])
            if len(ids)
            else np.zeros((0, self.dim), dtype=np.float32)
        )

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query, best first; ids are -1 where fewer exist.

        With ``allowed_ids`` the search itself is restricted to them (a FAISS id selector), so a
        selective filter still yields ``k`` hits when ``k`` allowed items exist.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, len(self))) if len(self) else 0
        if k == 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        if allowed_ids is None:
            return self._index.search(queries, k)
        allowed = np.ascontiguousarray(allowed_ids, dtype=np.int64)
        if len(allowed) == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        selector = faiss.IDSelectorBatch(allowed)
        params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]  # SWIG kwargs
        return self._index.search(queries, min(k, len(allowed)), params=params)
