"""Bulk import of precomputed embeddings: items and their vectors straight into a library.

For vectors computed elsewhere (another pipeline, an earlier export) and for building very large
libraries for benchmarks without embedding a million files. It keeps the library's invariants the
same way the indexer does: the writer lock, one model per library, shard first, SQL in one
transaction, then the FAISS index rebuilt from the shards.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from glimpse.core import fulltext
from glimpse.core.catalogue import Asset, Unit, utcnow
from glimpse.core.library import Library
from glimpse.core.models import ModelRef
from glimpse.core.vocabulary import Kind, Status

_CHUNK = 20_000  # rows per INSERT round trip: big enough to be fast, small enough for memory
CATALOGUE_FIELDS = (
    "sku",
    "title",
    "description",
    "price",
    "currency",
    "category",
    "url",
    "width",
    "height",
    "duration",
)


class BulkImportError(ValueError):
    """The vectors or items cannot be imported as given; the message says which and why."""


@dataclass
class BulkSummary:
    items: int
    units: int
    index_size: int
    seconds: float


def import_vectors(
    library: Library,
    model: ModelRef,
    paths: Sequence[str],
    vectors: np.ndarray,
    *,
    kind: str = Kind.IMAGE,
    fields: Sequence[dict[str, Any]] | None = None,
) -> BulkSummary:
    """Add one item per path with its vector (one unit each), then publish a new index.

    ``vectors`` is (N, D) with D the model's dimension; rows are L2-normalised on the way in (the
    index ranks by inner product). ``fields`` optionally gives each item's catalogue fields
    (``title``, ``price``, ``category``...; anything else goes to ``extra``). Paths must be new to
    the library. Everything is one SQL transaction: it lands whole or not at all.
    """
    started = time.monotonic()
    vectors = _unit_rows(vectors, len(paths))
    if kind not in (Kind.IMAGE, Kind.VIDEO):
        raise BulkImportError(f"kind must be {Kind.IMAGE!r} or {Kind.VIDEO!r}, got {kind!r}")
    if fields is not None and len(fields) != len(paths):
        raise BulkImportError(f"{len(fields)} field rows for {len(paths)} paths")
    if len(set(paths)) != len(paths):
        raise BulkImportError("paths must be unique")
    with library.writer_lock():
        library.bind_model(model, vectors.shape[1])
        dim = library.model_info().dim  # type: ignore[union-attr]
        if vectors.shape[1] != dim:
            raise BulkImportError(
                f"vectors have {vectors.shape[1]} dimensions, the library's model has {dim}"
            )
        store = library.vector_store()
        try:
            with library.Session.begin() as s:
                asset_ids = _insert_assets(s, paths, kind, fields)
                if fields is not None:
                    texts = (
                        fulltext.text_row(int(i), _text_fields(f))
                        for i, f in zip(asset_ids, fields, strict=True)
                    )
                    fulltext.sync_rows(s, [t for t in texts if t is not None])
                unit_ids = _insert_units(s, asset_ids)
                # Shard before the SQL commit: a crash in between leaves orphan vectors, never
                # units without vectors (the same order the indexer keeps).
                store.append(unit_ids, vectors)
        except IntegrityError:
            raise BulkImportError("some paths are already in the library; nothing was imported") from None
        snapshot = library.rebuild_index()
    return BulkSummary(len(paths), len(unit_ids), len(snapshot.index), time.monotonic() - started)


def _unit_rows(vectors: np.ndarray, n: int) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != n:
        raise BulkImportError(f"expected vectors of shape ({n}, dim), got {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise BulkImportError("vectors contain NaN or infinity")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if (norms < 1e-12).any():
        raise BulkImportError(f"{int((norms < 1e-12).sum())} vectors are all zeros")
    return vectors / norms


def _insert_assets(
    s: Session, paths: Sequence[str], kind: str, fields: Sequence[dict[str, Any]] | None
) -> np.ndarray:
    now = utcnow()
    ids: list[int] = []
    for start in range(0, len(paths), _CHUNK):
        rows = [
            _asset_row(paths[i], kind, fields[i] if fields is not None else {}, now)
            for i in range(start, min(start + _CHUNK, len(paths)))
        ]
        # sort_by_parameter_order: the returned ids line up with the rows (SQLite and PostgreSQL).
        result = s.execute(insert(Asset).returning(Asset.id, sort_by_parameter_order=True), rows)
        ids.extend(result.scalars())
    return np.asarray(ids, dtype=np.int64)


def _asset_row(path: str, kind: str, values: dict[str, Any], now: datetime) -> dict[str, Any]:
    file = Path(path)
    try:
        st = file.stat()
        size, mtime_ns = st.st_size, st.st_mtime_ns
    except OSError:
        size, mtime_ns = 0, 0  # vectors of files that are not on this machine
    known = {k: values.get(k) for k in CATALOGUE_FIELDS}
    extra = {k: v for k, v in values.items() if k not in CATALOGUE_FIELDS}
    return {
        "path": str(path),
        "kind": kind,
        "size": size,
        "mtime_ns": mtime_ns,
        "status": Status.INDEXED,
        "indexed_at": now,
        "updated_at": now,
        "extra": extra or None,
        **known,
    }


def _text_fields(values: dict[str, Any]) -> dict[str, Any]:
    """An item's catalogue fields as :func:`glimpse.core.fulltext.text_row` reads them."""
    extra = {k: v for k, v in values.items() if k not in CATALOGUE_FIELDS}
    return {**values, "extra": extra or None}


def _insert_units(s: Session, asset_ids: np.ndarray) -> np.ndarray:
    ids: list[int] = []
    for start in range(0, len(asset_ids), _CHUNK):
        rows = [{"asset_id": int(a)} for a in asset_ids[start : start + _CHUNK]]
        result = s.execute(insert(Unit).returning(Unit.id, sort_by_parameter_order=True), rows)
        ids.extend(result.scalars())
    return np.asarray(ids, dtype=np.int64)
