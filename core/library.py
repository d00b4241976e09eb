"""A library on disk: catalogue, vector shards, FAISS index, thumbnails, and the writer lock.

Both the indexer (writer) and the query service (reader) open a library through this class, so
the invariants of ``docs/ARCHITECTURE.md`` are enforced in one place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from glimpse.core.catalogue import Asset, LibraryInfo, MediaRoot, Unit
from glimpse.core.db import make_engine, session_factory, upgrade, wait_for_database
from glimpse.core.fsutil import atomic_write
from glimpse.core.identity import ensure_library_id
from glimpse.core.index import VectorIndex
from glimpse.core.models import ModelRef
from glimpse.core.settings import Settings
from glimpse.core.vectors import VectorStore
from glimpse.core.vocabulary import Status


class LibraryBusy(RuntimeError):
    """Another indexer holds the library's writer lock."""


class ModelMismatch(RuntimeError):
    """The library was built with another embedding model."""


@dataclass(frozen=True)
class IndexSnapshot:
    """One loaded version of the index; the API swaps whole snapshots, never edits one."""

    version: int
    index: VectorIndex
    repaired: bool = False


class Library:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.data_dir.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.library_id = ensure_library_id(self.root)
        self.engine = make_engine(settings.db_url)
        wait_for_database(self.engine, timeout=settings.db_wait_seconds)
        upgrade(self.engine)
        self.Session = session_factory(self.engine)

    # -- layout --------------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.root / "index" / "index.faiss"

    @property
    def state_path(self) -> Path:
        return self.root / "index" / "state.json"

    @property
    def thumbs_dir(self) -> Path:
        return self.root / "thumbs"

    def thumbnail_path(self, unit_id: int) -> Path:
        return self.thumbs_dir / f"{unit_id % 256:02x}" / f"{unit_id}.jpg"

    def close(self) -> None:
        self.engine.dispose()

    # -- model ---------------------------------------------------------------------------
    def model_info(self) -> LibraryInfo | None:
        with self.Session() as s:
            return s.get(LibraryInfo, 1)

    def bind_model(self, ref: ModelRef, dim: int) -> None:
        """Record the library's model on first use; refuse a different one afterwards."""
        with self.Session.begin() as s:
            info = s.get(LibraryInfo, 1)
            if info is None:
                s.add(LibraryInfo(id=1, model_name=ref.name, pretrained=ref.pretrained, dim=dim))
                return
        self.check_model(ref)

    def check_model(self, ref: ModelRef) -> None:
        info = self.model_info()
        if info is None:
            return
        if (info.model_name, info.pretrained) != (ref.name, ref.pretrained):
            raise ModelMismatch(
                f"this library was indexed with {ModelRef(info.model_name, info.pretrained).label}, "
                f"not {ref.label}; vectors of different models cannot be compared. Use "
                f"--model {info.model_name} --pretrained {info.pretrained or 'none'}, "
                "or another --data-dir for the new model."
            )

    def library_model(self) -> ModelRef | None:
        info = self.model_info()
        return ModelRef(info.model_name, info.pretrained) if info else None

    def vector_store(self) -> VectorStore:
        info = self.model_info()
        if info is None:
            raise RuntimeError("the library has no model yet: index something first")
        return VectorStore(self.root / "vectors", info.dim)

    # -- media roots ---------------------------------------------------------------------
    def add_media_roots(self, paths: list[Path]) -> None:
        with self.Session.begin() as s:
            known = set(s.scalars(select(MediaRoot.path)))
            for p in paths:
                if str(p) not in known:  # once, even when two paths given share a folder
                    known.add(str(p))
                    s.add(MediaRoot(path=str(p)))

    def media_roots(self) -> list[Path]:
        with self.Session() as s:
            recorded = [Path(p) for p in s.scalars(select(MediaRoot.path))]
        configured = [p.resolve() for p in self.settings.media_roots]
        return list(dict.fromkeys(configured + recorded))

    # -- writer lock ---------------------------------------------------------------------
    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Only one indexer writes a library at a time; a second fails fast, naming the first."""
        lock_path = self.root / "indexer.lock"
        owner_path = self.root / "indexer.owner"
        lock = FileLock(str(lock_path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            owner = owner_path.read_text().strip() if owner_path.exists() else "unknown"
            raise LibraryBusy(
                f"another indexer ({owner}) is writing to {self.root}; wait for it to finish"
            ) from None
        try:
            owner_path.write_text(f"pid {os.getpid()}")
            yield
        finally:
            lock.release()

    # -- index ---------------------------------------------------------------------------
    def live_unit_ids(self, session: Session | None = None) -> np.ndarray:
        """Ids of every unit of every indexed asset: exactly what the index must hold."""
        stmt = select(Unit.id).join(Asset).where(Asset.status == Status.INDEXED).order_by(Unit.id)
        if session is not None:
            return np.fromiter(session.scalars(stmt), dtype=np.int64)
        with self.Session() as s:
            return np.fromiter(s.scalars(stmt), dtype=np.int64)

    def index_version(self) -> int:
        try:
            return int(json.loads(self.state_path.read_text())["version"])
        except (OSError, ValueError, KeyError):
            return 0

    def rebuild_index(self) -> IndexSnapshot:
        """Build the index from the shards for exactly the live units, then swap it in atomically.

        Units whose vectors are missing from the shards (which the commit order should make
        impossible) are not served: their assets go back to pending for the next indexing run.
        """
        store = self.vector_store()
        live = self.live_unit_ids()
        ids, vectors = store.load(wanted=live)
        missing = np.setdiff1d(live, ids)
        if len(missing):
            self._requeue_units(missing)
        index = VectorIndex.build(ids, vectors, store.dim)
        version = self.index_version() + 1
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        index.save(self.index_path)
        with atomic_write(self.state_path, "w") as fh:
            json.dump({"version": version, "count": len(index), "dim": store.dim}, fh)
        if store.stored_count() > 2 * max(len(ids), 1000):
            store.compact(ids)
        return IndexSnapshot(version, index)

    def _requeue_units(self, unit_ids: np.ndarray) -> None:
        with self.Session.begin() as s:
            asset_ids = set(s.scalars(select(Unit.asset_id).where(Unit.id.in_(unit_ids.tolist()))))
            s.execute(update(Asset).where(Asset.id.in_(asset_ids)).values(status=Status.PENDING))

    def open_index(self, repair: bool = True) -> IndexSnapshot:
        """Load the index and check it against the catalogue; repair from the shards on mismatch.

        Repair needs the writer lock; when an indexer holds it, the on-disk index is served as it
        is (the query path drops any id the catalogue does not know) and the indexer's own
        rebuild brings the two back in line.
        """
        version = self.index_version()
        if self.model_info() is None:
            return IndexSnapshot(version, VectorIndex.build(np.zeros(0, np.int64), np.zeros((0, 1)), 1))
        try:
            index = VectorIndex.load(self.index_path) if self.index_path.exists() else None
        except RuntimeError:
            index = None  # unreadable index file: rebuild it from the shards
        if index is not None and np.array_equal(np.sort(index.ids()), self.live_unit_ids()):
            return IndexSnapshot(version, index)
        if not repair:
            if index is None:
                raise RuntimeError(f"no usable index in {self.index_path.parent}")
            return IndexSnapshot(version, index)
        try:
            with self.writer_lock():
                snapshot = self.rebuild_index()
        except LibraryBusy:
            if index is None:
                raise
            return IndexSnapshot(version, index)
        except OSError:
            # No room to write the repaired index (a full disk): serve it from memory, built from
            # the shards for exactly the live units; the next open with room writes it.
            store = self.vector_store()
            ids, vectors = store.load(wanted=self.live_unit_ids())
            return IndexSnapshot(version, VectorIndex.build(ids, vectors, store.dim))
        return IndexSnapshot(snapshot.version, snapshot.index, repaired=True)
