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
        self._rows: tuple[np.ndarray, np.ndarray] | None = None  # (sorted ids, their rows), lazily

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

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """A boolean mask (n,): which of ``ids`` (n,) the index holds."""
        ids = np.asarray(ids, dtype=np.int64)
        sorted_ids, _ = self._id_rows()
        if not len(sorted_ids) or not len(ids):
            return np.zeros(len(ids), dtype=bool)
        at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        return np.asarray(sorted_ids[at] == ids)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors (n, D) float32 of ``ids`` (n,); raises KeyError for an id not held.

        One gather from the flat index's storage when the index is exact (a video's few thousand
        segments in one call, not one FAISS call each); otherwise one reconstruct per id.
        """
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return np.zeros((0, self.dim), dtype=np.float32)
        if not self.contains(ids).all():
            raise KeyError(f"ids not in the index: {ids[~self.contains(ids)][:5].tolist()}")
        base = faiss.downcast_index(self._index.index)
        if not isinstance(base, faiss.IndexFlat):
            return np.stack([self._index.reconstruct(int(i)) for i in ids])
        sorted_ids, rows = self._id_rows()
        storage = faiss.rev_swig_ptr(base.get_xb(), base.ntotal * base.d).reshape(base.ntotal, base.d)
        return np.array(storage[rows[np.searchsorted(sorted_ids, ids)]], dtype=np.float32)

    def scores(self, ids: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """Inner products (n, nq) of the stored vectors of ``ids`` (n,) with ``queries`` (nq, D).

        A video's segments usually sit in consecutive rows of the flat storage (they are added
        together, in time order): each such run is scored as a view, without copying its vectors,
        which is what makes scoring every segment of a dozen long videos per search cheap.
        Raises KeyError for an id not held.
        """
        ids = np.asarray(ids, dtype=np.int64)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        base = faiss.downcast_index(self._index.index) if len(ids) else None
        if not isinstance(base, faiss.IndexFlat):
            return self.vectors(ids) @ queries.T
        if not self.contains(ids).all():
            raise KeyError(f"ids not in the index: {ids[~self.contains(ids)][:5].tolist()}")
        sorted_ids, rows = self._id_rows()
        at = rows[np.searchsorted(sorted_ids, ids)]
        storage = faiss.rev_swig_ptr(base.get_xb(), base.ntotal * base.d).reshape(base.ntotal, base.d)
        breaks = np.flatnonzero(np.diff(at) != 1) + 1
        if len(breaks) > len(at) // 64:  # scattered rows: one gather is cheaper than many views
            return np.asarray(storage[at] @ queries.T)
        out = np.empty((len(at), len(queries)), dtype=np.float32)
        for first, last in zip(np.r_[0, breaks], np.r_[breaks, len(at)], strict=True):
            out[first:last] = storage[at[first] : at[first] + (last - first)] @ queries.T
        return out

    def _id_rows(self) -> tuple[np.ndarray, np.ndarray]:
        # The index is never changed in place (a new version is a new object), so this stays true.
        if self._rows is None:
            ids = self.ids()
            order = np.argsort(ids, kind="stable")
            self._rows = (ids[order], order)
        return self._rows

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
