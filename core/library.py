"""A library on disk: catalogue, vector shards, FAISS index, thumbnails, and the writer lock.

Both the indexer (writer) and the query service (reader) open a library through this class, so
the invariants of ``docs/ARCHITECTURE.md`` are enforced in one place.
"""

from __future__ import annotations

import json
import os
import time
import uuid
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
from glimpse.core.vectors import VectorStore, segment_rows, shard_seq
from glimpse.core.vocabulary import Kind, Status


class LibraryBusy(RuntimeError):
    """Another indexer holds the library's writer lock."""


class ModelMismatch(RuntimeError):
    """The library was built with another embedding model."""


@dataclass(frozen=True)
class Published:
    """What publishing an index version made: its number and how many units it serves."""

    version: int
    size: int


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

    def rebuild_index(self, full: bool = False, from_catalogue: bool = False) -> Published:
        """Publish an index version holding exactly the live units (the writer's lock held).

        Work grows with the change: units stored since the base was built become the new
        version's exact delta and removed ones its tombstones (two small files); the base is
        merged (delta added, tombstones dropped, training kept) only past ``MERGE_FRACTION`` /
        ``DELTA_MAX``, and rebuilt from the shards (trained again when approximate) only when the
        library grew ``RETRAIN_GROWTH`` times, crossed the ``AUTO_FLAT_MAX`` size, or the
        ``index`` setting asks for another type; ``full`` forces that. ``from_catalogue`` reads
        every live id instead of trusting the changes noted since the last version (a repair).
        See :mod:`glimpse.core.index`.

        Units whose vectors are missing from the shards (which the commit order should make
        impossible) are not served: their assets go back to pending for the next indexing run.
        """
        store = self.vector_store()
        self._list_segments(store)
        state = self.index_state()
        version = int(state.get("version", 0)) + 1
        # An explicit setting (flag or GLIMPSE_INDEX) wins and is remembered; otherwise the one
        # the library was last published with, so a later plain run does not switch types.
        setting = (
            self.settings.index if "index" in self.settings.model_fields_set else state.get("setting", "auto")
        )
        removals = sorted(self.removed_dir.glob("*.npy")) if self.removed_dir.is_dir() else []
        if not full and not from_catalogue:
            quick = self._publish_changes(version, state, store, setting, removals)
            if quick is not None:
                return quick
        published = self._publish_from_catalogue(version, state, store, setting, full)
        for path in removals:  # the catalogue itself was read: these notes are spent
            path.unlink(missing_ok=True)
        return published

    def _list_segments(self, store: VectorStore) -> None:
        """Give each shard written before shards listed their video segments its ``segments.npy``
        from the catalogue (a range scan of its ids), so moments read there, not SQL. Each shard
        is checked once (``vectors/segments-listed`` keeps the last one checked); best effort:
        without a list, moments read the catalogue, so a full disk here fails nothing."""
        mark = store.folder / "segments-listed"
        try:
            checked = int(mark.read_text()) if mark.exists() else 0
        except ValueError:
            checked = 0
        shards = [p for p in store.shards() if shard_seq(p) > checked]
        if not shards:
            return
        with self.Session() as s:
            # A library of images (millions, bulk-imported) has nothing to list: one index seek
            # on ix_assets_status_kind instead of a range scan of every shard's ids.
            videos = s.scalar(
                select(Asset.id).where(Asset.status.in_(list(Status)), Asset.kind == Kind.VIDEO).limit(1)
            )
        try:
            for path in shards if videos is not None else []:
                self._list_shard_segments(store, path)
            with atomic_write(mark, "w") as fh:
                fh.write(str(shard_seq(shards[-1])))
        except OSError:
            return

    def _list_shard_segments(self, store: VectorStore, path: Path) -> None:
        if path.suffix == ".npz" or (path / "segments.npy").exists():
            return
        ids = store.read_ids(path)
        if not len(ids):
            return
        query = (
            select(Unit.id, Unit.asset_id, Unit.t_start, Unit.t_end, Unit.t_best, Unit.shot_start)
            .where(Unit.id >= int(ids.min()), Unit.id <= int(ids.max()), Unit.t_start.is_not(None))
            .order_by(Unit.id)
        )
        with self.Session() as s:
            units = s.execute(query).mappings().all()
        if not units:  # no video segments here (a shard of images): nothing to list
            return
        # Units whose ids the catalogue no longer has are not listed (never read: not served).
        found = np.array([u["id"] for u in units], dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        at = order[np.searchsorted(ids, found, sorter=order).clip(0, len(ids) - 1)]
        mine = np.flatnonzero(ids[at] == found)  # the range holds other shards' ids too
        segments = segment_rows(found[mine], [units[int(i)] for i in mine])
        segments["row"] = at[mine][segments["row"]]  # their rows in this shard
        store.add_segments(path, segments)

    def _publish_changes(
        self, version: int, state: dict[str, Any], store: VectorStore, setting: str, removals: list[Path]
    ) -> Published | None:
        """A delta version from what changed since the last one, never reading the whole catalogue:
        the ids of shards written since (``state["seen"]``) and of the removal notes, checked
        against SQL. None when the base must be merged or rebuilt (or the state predates this)."""
        base = self._current_base(state, store.dim, setting)
        if base is None:
            return None
        seen = state.get("seen")
        if seen is None and not state.get("delta") and not state.get("hidden"):
            seen = base.watermark  # a version that is just its base covers the shards it read
        if not isinstance(seen, int):
            return None
        folder = self.index_path.parent
        try:
            # Mapped, not read: a few binary searches touch a few pages of the base's ids, where
            # reading them whole is 8 bytes a vector of the library (40 MB at 5M) on every add.
            base_ids = np.load(folder / f"{base.name}.ids.npy", allow_pickle=False, mmap_mode="r")
            prev_delta = np.load(folder / state["delta"]) if state.get("delta") else np.zeros(0, np.int64)
            prev_hidden = np.load(folder / state["hidden"]) if state.get("hidden") else np.zeros(0, np.int64)
            noted = [np.load(p, allow_pickle=False) for p in removals]
        except (OSError, ValueError):
            return None
        shards = store.shards()
        new = [p for p in shards if shard_seq(p) > seen]
        added = np.unique(np.concatenate([store.read_ids(p) for p in new] + [np.zeros(0, np.int64)]))
        check = np.union1d(added, np.concatenate([*noted, np.zeros(0, np.int64)]))
        live = self._live_among(check)
        dead = np.setdiff1d(check, live, assume_unique=True)
        delta = np.union1d(np.setdiff1d(prev_delta, dead), np.intersect1d(added, live))
        in_base = np.union1d(dead, delta)
        in_base = in_base[_member(in_base, base_ids)]
        hidden = np.union1d(prev_hidden, in_base)
        count = len(base_ids) - len(hidden) + len(delta)
        if (choose_factory(count, store.dim, setting) == "Flat") != base.exact or not _fits(base, count):
            return None
        if len(delta) + len(hidden) > MERGE_FRACTION * len(base_ids) or len(delta) > DELTA_MAX:
            return None
        watermark = max((shard_seq(p) for p in shards), default=seen)
        published = self._publish_delta(version, base, delta, hidden, count, store, setting, watermark)
        for path in removals:
            path.unlink(missing_ok=True)
        return published

    def _live_among(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` are units of indexed assets (ascending), by primary-key lookups only.

        Two key lookups and the status checked here, not in SQL: given ``status = ?`` beside
        ``id IN (...)``, SQLite (without ANALYZE statistics) walks ix_assets_status_kind over every
        indexed asset: 160 s for 1,000 ids at 1M (the same trap search/reads.py avoids).
        """
        found: list[int] = []
        with self.Session() as s:
            for start in range(0, len(ids), 500):
                chunk = [int(i) for i in ids[start : start + 500]]
                units = dict(
                    s.execute(select(Unit.id, Unit.asset_id).where(Unit.id.in_(chunk))).tuples().all()
                )
                rows = s.execute(select(Asset.id, Asset.status).where(Asset.id.in_(set(units.values()))))
                indexed = {a for a, status in rows.tuples() if status == Status.INDEXED}
                found.extend(u for u, a in units.items() if a in indexed)
        return np.unique(np.asarray(found, dtype=np.int64))

    @property
    def removed_dir(self) -> Path:
        return self.root / "index" / "removed"

    def note_removed(self, unit_ids: np.ndarray | list[int]) -> None:
        """Record units about to leave the catalogue, *before* the SQL commit that removes them.

        The next publish checks these ids (and those of new shards) against SQL instead of reading
        every live id, so its cost follows the change. Noted too early is harmless (the check
        finds them still live); every writer path that deletes units or takes an asset out of
        ``indexed`` must call this.
        """
        ids = np.unique(np.asarray(unit_ids, dtype=np.int64))
        if len(ids):
            path = self.removed_dir / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npy"
            with atomic_write(path) as fh:
                np.save(fh, ids)

    def _publish_from_catalogue(
        self, version: int, state: dict[str, Any], store: VectorStore, setting: str, full: bool
    ) -> Published:
        """Publish from every live id (SQL) and the whole row map: a merge or a new base."""
        live = self.live_unit_ids()
        row_map = store.row_map()
        found, pos = row_map.locate(live)
        if not found.all():
            self._requeue_units(live[~found])
            live, pos = live[found], pos[found]
        seqs = np.array([shard_seq(p) for p in row_map.shards], dtype=np.int64)
        watermark = int(seqs.max()) if len(seqs) else 0
        factory = choose_factory(len(live), store.dim, setting)
        base = None if full else self._current_base(state, store.dim, setting)
        if base is not None and ((factory == "Flat") != base.exact or not _fits(base, len(live))):
            base = None
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
                return self._publish_delta(version, base, delta, hidden, len(live), store, setting, watermark)
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

    def _current_base(self, state: dict[str, Any], dim: int, setting: str) -> BaseInfo | None:
        """The published base if its files are there and the setting still asks for its type."""
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
        if choose_factory(base.trained_n, dim, setting) != base.factory:
            return None  # the setting now asks for another type
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
        seen: int,
    ) -> Published:
        folder = self.index_path.parent
        files: dict[str, Any] = {"delta": None, "hidden": None, "seen": seen}
        for key, ids in (("delta", delta), ("hidden", hidden)):
            if len(ids):
                files[key] = f"{key}-{version:06d}.npy"
                with atomic_write(folder / files[key], sync_dir=False) as fh:
                    np.save(fh, np.asarray(ids, dtype=np.int64))
        fsync_dir(folder)
        self._write_state(version, count, store.dim, base, {**files, "setting": setting})
        return Published(version, count)

    def _publish_base(self, version: int, index: VectorIndex, store: VectorStore, setting: str) -> Published:
        folder = self.index_path.parent
        index.save(folder / f"{index.info.name}.faiss")
        files = {"delta": None, "hidden": None, "setting": setting, "seen": index.info.watermark}
        self._write_state(version, len(index), store.dim, index.info, files)
        return Published(version, len(index))

    def _write_state(self, version: int, count: int, dim: int, base: BaseInfo, files: dict[str, Any]) -> None:
        """Commit a version (one atomic rename), then drop files no recent version names."""
        previous = self.index_state()
        state = {"version": version, "count": count, "dim": dim, "base": base.as_dict(), **files}
        with atomic_write(self.state_path, "w") as fh:
            json.dump(state, fh)
        keep = {"state.json"} | _files_of(state) | _files_of(previous)  # a reader may be opening it
        for path in self.state_path.parent.iterdir():
            if path.name not in keep and not path.name.startswith(".") and path.is_file():
                path.unlink(missing_ok=True)

    def _requeue_units(self, unit_ids: np.ndarray) -> None:
        with self.Session.begin() as s:
            asset_ids = set(s.scalars(select(Unit.asset_id).where(Unit.id.in_(unit_ids.tolist()))))
            self.note_removed(list(s.scalars(select(Unit.id).where(Unit.asset_id.in_(asset_ids)))))
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
                published = self.rebuild_index(full=index is None, from_catalogue=True)
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
        return IndexSnapshot(published.version, self.load_index(self.index_state()), repaired=True)


def _member(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Which of ``ids`` are in ``sorted_ids`` (ascending): a binary search, not a set."""
    if not len(sorted_ids):
        return np.zeros(len(ids), bool)
    pos = np.searchsorted(sorted_ids, ids).clip(0, len(sorted_ids) - 1)
    return np.asarray(sorted_ids[pos] == ids)


def _fits(base: BaseInfo, live: int) -> bool:
    """Whether an approximate base's training still suits ``live`` vectors (``RETRAIN_GROWTH``)."""
    return base.exact or base.trained_n / RETRAIN_GROWTH <= live <= base.trained_n * RETRAIN_GROWTH


def _files_of(state: dict[str, Any]) -> set[str]:
    names = {state.get("delta"), state.get("hidden")}
    base = state.get("base")
    if isinstance(base, dict) and base.get("name"):
        names |= {f"{base['name']}.faiss", f"{base['name']}.ids.npy"}
    return {n for n in names if isinstance(n, str)}
