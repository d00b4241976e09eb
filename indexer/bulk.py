"""Bulk import of precomputed embeddings: items and their vectors straight into a library.

For vectors computed elsewhere (another pipeline, an earlier export) and for building very large
libraries for benchmarks without embedding a million files. It keeps the library's invariants the
same way the indexer does: the writer lock, one model per library, shard first, SQL in one
transaction, then the FAISS index rebuilt from the shards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from glimpse.core import fulltext
from glimpse.core.catalogue import Asset, Unit, utcnow
from glimpse.core.library import Library
from glimpse.core.models import ModelRef
from glimpse.core.vectors import SEGMENT_DTYPE
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
    skipped: int = 0


@dataclass
class Batch:
    """One chunk of a streamed import: paths, their (n, D) vectors, optional catalogue fields."""

    paths: Sequence[str]
    vectors: np.ndarray
    fields: Sequence[dict[str, Any]] | None = None


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
    return import_stream(library, model, [Batch(paths, vectors, fields)], kind=kind)


def import_stream(
    library: Library,
    model: ModelRef,
    batches: Iterable[Batch],
    *,
    kind: str = Kind.IMAGE,
    skip_existing: bool = False,
    progress: Callable[[int], None] | None = None,
) -> BulkSummary:
    """Import batches one transaction (and one vector shard) each, then publish the index once.

    Only one batch is in memory at a time, so the size of an import is bounded by disk, not RAM.
    A crash leaves the batches committed so far (each whole: shard first, SQL commit last, as
    the indexer does) and the index is published at the next open; run the import again with
    ``skip_existing`` to add the rest. Without it a path already in the library is refused
    (BulkImportError), and that batch imports nothing.
    """
    started = time.monotonic()
    if kind not in (Kind.IMAGE, Kind.VIDEO):
        raise BulkImportError(f"kind must be {Kind.IMAGE!r} or {Kind.VIDEO!r}, got {kind!r}")
    items = units = skipped = 0
    with library.writer_lock():
        for batch in batches:
            paths, fields = list(batch.paths), batch.fields
            vectors = _unit_rows(batch.vectors, len(paths))
            if fields is not None and len(fields) != len(paths):
                raise BulkImportError(f"{len(fields)} field rows for {len(paths)} paths")
            if len(set(paths)) != len(paths):
                raise BulkImportError("paths must be unique")
            if not paths:
                continue
            library.bind_model(model, vectors.shape[1])
            dim = library.model_info().dim  # type: ignore[union-attr]
            if vectors.shape[1] != dim:
                raise BulkImportError(
                    f"vectors have {vectors.shape[1]} dimensions, the library's model "
                    f"({model.label}) has {dim}; nothing more was imported"
                )
            store = library.vector_store()
            try:
                with library.Session.begin() as s:
                    if skip_existing:
                        keep = _new_rows(s, paths)
                        skipped += len(paths) - len(keep)
                        paths = [paths[i] for i in keep]
                        vectors = vectors[keep]
                        fields = [fields[i] for i in keep] if fields is not None else None
                    if not paths:
                        continue
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
                    store.append(unit_ids, vectors, np.zeros(0, SEGMENT_DTYPE))  # one unit an item
            except IntegrityError:
                raise BulkImportError(
                    "some paths are already in the library; nothing from this batch was imported"
                    + (f" ({items} items of earlier batches were; --skip-existing resumes)" if items else "")
                ) from None
            items += len(paths)
            units += len(unit_ids)
            if progress is not None:
                progress(len(paths))
        size = library.rebuild_index().size if library.model_info() is not None else 0
    return BulkSummary(items, units, size, time.monotonic() - started, skipped)


def _new_rows(s: Session, paths: list[str]) -> list[int]:
    """Positions of the ``paths`` not yet in the catalogue."""
    known: set[str] = set()
    for start in range(0, len(paths), 500):
        chunk = paths[start : start + 500]
        known.update(s.scalars(select(Asset.path).where(Asset.path.in_(chunk))))
    return [i for i, p in enumerate(paths) if p not in known]


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
