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
from typing import Any

import numpy as np
from filelock import FileLock, Timeout
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from glimpse.core.catalogue import Asset, LibraryInfo, MediaRoot, Unit
from glimpse.core.db import make_engine, session_factory, upgrade, wait_for_database
from glimpse.core.fsutil import atomic_write, fsync_dir
from glimpse.core.identity import ensure_library_id
from glimpse.core.index import (
    AUTO_FLAT_MAX,
    DELTA_MAX,
    MERGE_FRACTION,
    RETRAIN_GROWTH,
    BaseInfo,
    VectorIndex,
    build_base,
    choose_factory,
    merge_into,
    tune,
)
from glimpse.core.models import ModelRef
from glimpse.core.settings import Settings
from glimpse.core.vectors import VectorStore, shard_seq
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
        """The published base index file (``index/<base>.faiss``; ids beside it in ``.ids.npy``)."""
        base = self.index_state().get("base")
        name = base.get("name") if isinstance(base, dict) else None
        return self.root / "index" / f"{name or 'index'}.faiss"

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
        """Record the library's model on first use; refuse a different one afterwards.

        Also checks the ``index`` setting against the model's dimension (IndexSpecError), so a
        run fails before its work, not when it publishes."""
        choose_factory(AUTO_FLAT_MAX + 1, dim, self.settings.index)
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

    def vector_store(self, clean: bool = True) -> VectorStore:
        """The vector shards; ``clean`` (the writer only) removes what a crashed write left."""
        info = self.model_info()
        if info is None:
            raise RuntimeError("the library has no model yet: index something first")
        return VectorStore(self.root / "vectors", info.dim, clean=clean)

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

    def index_state(self) -> dict[str, Any]:
        """The published index version's description (``{}`` before the first one)."""
        try:
            state = json.loads(self.state_path.read_text())
            return state if isinstance(state, dict) else {}
        except (OSError, ValueError):
            return {}

    def index_version(self) -> int:
        try:
            return int(self.index_state()["version"])
        except (KeyError, TypeError, ValueError):
            return 0

    def rebuild_index(self, full: bool = False) -> IndexSnapshot:
        """Publish an index version holding exactly the live units (the writer's lock held).

        Work grows with the change: units stored since the base was built become the new
        version's exact delta and removed ones its tombstones (two small files); the base is
        merged (delta added, tombstones dropped, training kept) only past ``MERGE_FRACTION`` /
        ``DELTA_MAX``, and rebuilt from the shards (trained again when approximate) only when the
        library grew ``RETRAIN_GROWTH`` times, crossed the ``AUTO_FLAT_MAX`` size, or the
        ``index`` setting asks for another type; ``full`` forces that. See :mod:`glimpse.core.index`.

        Units whose vectors are missing from the shards (which the commit order should make
        impossible) are not served: their assets go back to pending for the next indexing run.
        """
        store = self.vector_store()
        live = self.live_unit_ids()
        row_map = store.row_map()
        found, pos = row_map.locate(live)
        if not found.all():
            self._requeue_units(live[~found])
            live, pos = live[found], pos[found]
        state = self.index_state()
        version = int(state.get("version", 0)) + 1
        seqs = np.array([shard_seq(p) for p in row_map.shards], dtype=np.int64)
        watermark = int(seqs.max()) if len(seqs) else 0
        # An explicit setting (flag or GLIMPSE_INDEX) wins and is remembered; otherwise the one
        # the library was last published with, so a later plain run does not switch types.
        setting = (
            self.settings.index if "index" in self.settings.model_fields_set else state.get("setting", "auto")
        )
        factory = choose_factory(len(live), store.dim, setting)
        base = self._current_base(state, factory, len(live), store.dim, setting) if not full else None
        folder = self.index_path.parent
        folder.mkdir(parents=True, exist_ok=True)
        if base is not None:
            base_ids = np.load(folder / f"{base.name}.ids.npy", allow_pickle=False)
            newer = seqs[row_map.shard[pos]] > base.watermark if len(pos) else np.zeros(0, bool)
            delta = live[newer]
            hidden = np.union1d(
                np.setdiff1d(base_ids, live, assume_unique=True), np.intersect1d(base_ids, delta)
            )
            changed = len(delta) + len(hidden)
            if changed <= MERGE_FRACTION * len(base_ids) and len(delta) <= DELTA_MAX:
                return self._publish_delta(version, base, delta, hidden, len(live), store, setting)
            if not base.exact:
                merged = merge_into(
                    folder / f"{base.name}.faiss",
                    base,
                    base_ids,
                    delta,
                    hidden,
                    store,
                    f"base-{version:06d}",
                    watermark,
                )
                return self._publish_base(version, tune(merged, store, live), store, setting)
        if store.stored_count() > 2 * max(len(live), 1000):
            store.compact(live)  # a new base reads one shard; its watermark covers it
            watermark = max((shard_seq(p) for p in store.shards()), default=0)
        index = build_base(store, live, factory, f"base-{version:06d}", watermark)
        return self._publish_base(version, tune(index, store, live), store, setting)

    def _current_base(
        self, state: dict[str, Any], factory: str, live: int, dim: int, setting: str
    ) -> BaseInfo | None:
        """The published base if it can stay (right type for the size and setting, not stale)."""
        raw = state.get("base")
        if not isinstance(raw, dict):
            return None
        try:
            base = BaseInfo.from_dict(raw)
        except TypeError:
            return None
        folder = self.index_path.parent
        if not (folder / f"{base.name}.faiss").exists() or not (folder / f"{base.name}.ids.npy").exists():
            return None
        if base.exact != (factory == "Flat"):
            return None
        if choose_factory(base.trained_n, dim, setting) != base.factory:
            return None  # the setting now asks for another type
        if not base.exact and not (
            base.trained_n / RETRAIN_GROWTH <= live <= base.trained_n * RETRAIN_GROWTH
        ):
            return None  # grown (or shrunk) past what its lists were trained for
        return base

    def _publish_delta(
        self,
        version: int,
        base: BaseInfo,
        delta: np.ndarray,
        hidden: np.ndarray,
        count: int,
        store: VectorStore,
        setting: str,
    ) -> IndexSnapshot:
        folder = self.index_path.parent
        files: dict[str, str | None] = {"delta": None, "hidden": None}
        for key, ids in (("delta", delta), ("hidden", hidden)):
            if len(ids):
                files[key] = f"{key}-{version:06d}.npy"
                with atomic_write(folder / files[key], sync_dir=False) as fh:  # type: ignore[operator]
                    np.save(fh, np.asarray(ids, dtype=np.int64))
        fsync_dir(folder)
        self._write_state(version, count, store.dim, base, {**files, "setting": setting})
        return IndexSnapshot(version, self.load_index(self.index_state(), store=store))

    def _publish_base(
        self, version: int, index: VectorIndex, store: VectorStore, setting: str
    ) -> IndexSnapshot:
        folder = self.index_path.parent
        index.save(folder / f"{index.info.name}.faiss")
        files = {"delta": None, "hidden": None, "setting": setting}
        self._write_state(version, len(index), store.dim, index.info, files)
        return IndexSnapshot(version, index)

    def _write_state(
        self, version: int, count: int, dim: int, base: BaseInfo, files: dict[str, str | None]
    ) -> None:
        """Commit a version (one atomic rename), then drop files no recent version names."""
        previous = self.index_state()
        state = {"version": version, "count": count, "dim": dim, "base": base.as_dict(), **files}
        with atomic_write(self.state_path, "w") as fh:
            json.dump(state, fh)
        keep = {"state.json"} | _files_of(state) | _files_of(previous)  # a reader may be opening it
        for path in self.state_path.parent.iterdir():
            if path.name not in keep and not path.name.startswith("."):
                path.unlink(missing_ok=True)

    def _requeue_units(self, unit_ids: np.ndarray) -> None:
        with self.Session.begin() as s:
            asset_ids = set(s.scalars(select(Unit.asset_id).where(Unit.id.in_(unit_ids.tolist()))))
            s.execute(update(Asset).where(Asset.id.in_(asset_ids)).values(status=Status.PENDING))

    def load_index(
        self, state: dict[str, Any], previous: IndexSnapshot | None = None, store: VectorStore | None = None
    ) -> VectorIndex:
        """The index a state describes, reusing ``previous``'s base when it is the same one: a new
        version then costs reading its delta rows, never the base again. Raises on a missing or
        unreadable file (RuntimeError, OSError, ValueError, KeyError)."""
        base = BaseInfo.from_dict(state["base"])
        folder = self.index_path.parent
        if store is None and previous is not None and previous.index.store is not None:
            store = previous.index.store  # its row map already knows every older shard
        store = store or self.vector_store(clean=False)
        if previous is not None and previous.index.info.name == base.name:
            current = previous.index
        else:
            current = VectorIndex.load(folder / f"{base.name}.faiss", base, store)
        delta = (
            np.load(folder / state["delta"], allow_pickle=False)
            if state.get("delta")
            else np.zeros(0, np.int64)
        )
        hidden = (
            np.load(folder / state["hidden"], allow_pickle=False)
            if state.get("hidden")
            else np.zeros(0, np.int64)
        )
        return current.with_changes(delta, hidden, store)

    def open_index(self, repair: bool = True, previous: IndexSnapshot | None = None) -> IndexSnapshot:
        """Load the published index; with ``repair``, check it against the catalogue and publish
        a matching one from the shards on mismatch.

        Repair needs the writer lock; when an indexer holds it, the on-disk index is served as it
        is (the query path drops any id the catalogue does not know) and the indexer's own
        publishing brings the two back in line.
        """
        state = self.index_state()
        version = int(state.get("version", 0))
        if self.model_info() is None:
            return IndexSnapshot(version, VectorIndex.build(np.zeros(0, np.int64), np.zeros((0, 1)), 1))
        try:
            index: VectorIndex | None = self.load_index(state, previous)
        except (RuntimeError, OSError, ValueError, KeyError, TypeError):
            index = None  # no usable index (or an older layout): publish one from the shards
        if not repair:
            if index is None:
                raise RuntimeError(f"no usable index in {self.index_path.parent}")
            return IndexSnapshot(version, index)
        if index is not None and np.array_equal(index.ids(), self.live_unit_ids()):
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


def _files_of(state: dict[str, Any]) -> set[str]:
    names = {state.get("delta"), state.get("hidden")}
    base = state.get("base")
    if isinstance(base, dict) and base.get("name"):
        names |= {f"{base['name']}.faiss", f"{base['name']}.ids.npy"}
    return {n for n in names if isinstance(n, str)}
