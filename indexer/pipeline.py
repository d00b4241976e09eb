"""``glimpse index``: scan, decode (overlapped with the model), embed, and commit crash-safely.

Commit order for every chunk of finished assets: vectors shard (fsync + rename), then the SQL
transaction, then, at the end of the run (and every few minutes), the FAISS index. A crash at any
point loses at most the uncommitted chunk; the next run redoes it without duplicates.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from glimpse.core.catalogue import FAILED, IMAGE, INDEXED, VIDEO, Asset, IndexRun, Unit, utcnow
from glimpse.core.fsutil import atomic_write, fsync_dir
from glimpse.core.library import Library
from glimpse.core.preprocess import PreprocessConfig
from glimpse.core.settings import Settings
from glimpse.indexer.decode import (
    DecodedImage,
    VideoDone,
    VideoFrames,
    decode_image_file,
    lower_priority,
    lower_thread_priority,
    video_frames,
)
from glimpse.indexer.scan import FileEntry, ScanPlan, plan_scan, walk

if TYPE_CHECKING:
    from glimpse.core.encoder import Encoder

COMMIT_SECONDS = 20.0  # ...or this often, so a crash loses little
INDEX_REFRESH_SECONDS = 300.0  # long runs publish the index this often for the API
SMALL_RUN = 64  # images; fewer are decoded in a thread instead of worker processes


@dataclass
class IndexSummary:
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    units: int = 0
    index_size: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "indexed": self.indexed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "failed": [{"path": p, "error": e} for p, e in self.failed],
            "warnings": [{"path": p, "warning": w} for p, w in self.warnings],
            "units": self.units,
            "index_size": self.index_size,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Pending:
    """An asset being embedded: its frames arrive in chunks, its vectors after each batch."""

    entry: FileEntry
    times: list[float] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    thumbnails: list[bytes] = field(default_factory=list)
    shot_starts: list[bool] = field(default_factory=list)  # video frames that open a new shot
    awaiting: int = 0  # frames sent to the model and not yet back
    done: VideoDone | DecodedImage | None = None


class _Stop:
    """Sentinel put on the queue by each producer when it has nothing more."""


@dataclass
class _Failure:
    """A producer broke (not a bad file: a bug or a resource error); the run must not go on."""

    exc: BaseException


class Indexer:
    def __init__(
        self,
        library: Library,
        encoder: Encoder,
        settings: Settings,
        progress: Callable[[str, int], None] | None = None,
    ) -> None:
        self.library = library
        self.encoder = encoder
        self.settings = settings
        self.progress = progress or (lambda _event, _n: None)

    # -- public ----------------------------------------------------------------------------
    def run(self, paths: list[Path], on_plan: Callable[[ScanPlan], None] | None = None) -> IndexSummary:
        roots = [p.expanduser().resolve() for p in paths]
        for root in roots:
            if not root.exists():
                raise FileNotFoundError(f"no such file or folder: {root}")
        started = time.monotonic()
        with self.library.writer_lock():
            self.encoder.load()
            self.library.bind_model(self.encoder.ref, self.encoder.dim)
            self.library.add_media_roots([r if r.is_dir() else r.parent for r in roots])
            run_id = self._start_run()
            summary = IndexSummary()
            status = "failed"
            try:
                with self.library.Session() as s:
                    plan = plan_scan(s, roots, walk(roots, skip=self.library.root))
                if on_plan:
                    on_plan(plan)
                summary.unchanged = plan.unchanged
                summary.removed = self._remove(plan.removed_ids)
                self._touch(plan.touched)
                self._embed_all(plan.todo, summary)
                status = "completed"
            except KeyboardInterrupt:
                status = "interrupted"
                raise
            finally:
                # Whatever happened, publish an index that matches what was committed.
                snapshot = self.library.rebuild_index()
                summary.index_size = len(snapshot.index)
                summary.seconds = time.monotonic() - started
                self._finish_run(run_id, status, summary)
        return summary

    # -- run bookkeeping -------------------------------------------------------------------
    def _start_run(self) -> int:
        with self.library.Session.begin() as s:
            run = IndexRun(status="running")
            s.add(run)
            s.flush()
            return run.id

    def _finish_run(self, run_id: int, status: str, summary: IndexSummary) -> None:
        with self.library.Session.begin() as s:
            s.execute(
                update(IndexRun)
                .where(IndexRun.id == run_id)
                .values(
                    status=status,
                    finished_at=utcnow(),
                    indexed=summary.indexed,
                    unchanged=summary.unchanged,
                    removed=summary.removed,
                    failed=len(summary.failed),
                )
            )

    def _remove(self, asset_ids: list[int]) -> int:
        if not asset_ids:
            return 0
        with self.library.Session.begin() as s:
            unit_ids = list(s.scalars(select(Unit.id).where(Unit.asset_id.in_(asset_ids))))
            s.execute(delete(Unit).where(Unit.asset_id.in_(asset_ids)))
            s.execute(delete(Asset).where(Asset.id.in_(asset_ids)))
        for unit_id in unit_ids:
            self.library.thumbnail_path(unit_id).unlink(missing_ok=True)
        return len(asset_ids)

    def _touch(self, touched: dict[str, int]) -> None:
        if not touched:
            return
        with self.library.Session.begin() as s:
            for path, mtime_ns in touched.items():
                s.execute(update(Asset).where(Asset.path == path).values(mtime_ns=mtime_ns))

    # -- the pipeline ----------------------------------------------------------------------
    def _embed_all(self, todo: list[FileEntry], summary: IndexSummary) -> None:
        if not todo:
            return
        cfg = self.encoder.preprocess_config()
        images = [e for e in todo if e.kind == IMAGE]
        videos = [e for e in todo if e.kind == VIDEO]
        by_path = {str(e.path): e for e in todo}
        items: queue.Queue = queue.Queue(maxsize=8 * self.settings.batch_size)
        stop = threading.Event()
        producers = [
            threading.Thread(target=self._produce_images, args=(images, cfg, items, stop), daemon=True),
            threading.Thread(target=self._produce_videos, args=(videos, cfg, items, stop), daemon=True),
        ]
        for t in producers:
            t.start()
        try:
            self._consume(items, len(producers), by_path, summary)
        finally:
            stop.set()
            _drain(items)
            for t in producers:
                t.join(timeout=5)

    def _workers(self) -> int:
        # One per core: they run below the model's priority (decode.DECODER_NICENESS), so on a
        # CPU-only machine they decode in the model's idle time and, between batches, on every core.
        return self.settings.workers or os.cpu_count() or 1

    def _produce_images(
        self, entries: list[FileEntry], cfg: PreprocessConfig, out: queue.Queue, stop
    ) -> None:
        lower_thread_priority()  # this thread receives and unpickles decoded images
        try:
            if entries:
                self._decode_images(entries, cfg, out, stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises
            _put(out, _Failure(exc), stop)
        finally:
            _put(out, _Stop(), stop)

    def _decode_images(self, entries: list[FileEntry], cfg: PreprocessConfig, out: queue.Queue, stop) -> None:
        """Decode in worker processes, a bounded window ahead of the model, results in order."""
        window = 4 * self._workers() + self.settings.batch_size
        args = (cfg, self.settings.max_image_pixels)
        # Starting worker processes costs seconds; a small incremental run decodes in a thread
        # (Pillow releases the GIL while decoding), a big one in processes.
        small = len(entries) <= SMALL_RUN
        # A decoding thread inherits this thread's lowered priority (Linux sets it per thread).
        pool = ThreadPoolExecutor(1) if small else _decode_pool(self._workers())
        try:
            inflight: deque[tuple[str, Future]] = deque()
            todo = deque(str(e.path) for e in entries)
            while (todo or inflight) and not stop.is_set():
                while todo and len(inflight) < window:
                    path = todo.popleft()
                    inflight.append((path, pool.submit(decode_image_file, path, *args)))
                path, fut = inflight.popleft()
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    # A decoder crashed (a hostile file can segfault a C library). Every job in
                    # flight died with it: retry each alone so only the culprit is marked failed.
                    pool.shutdown(cancel_futures=True)
                    pool = _decode_pool(self._workers())
                    todo.extendleft(reversed([p for p, _ in inflight]))
                    inflight.clear()
                    result = _decode_isolated(path, args)
                _put(out, result, stop)
        finally:
            pool.shutdown(cancel_futures=True)

    def _produce_videos(
        self, entries: list[FileEntry], cfg: PreprocessConfig, out: queue.Queue, stop
    ) -> None:
        lower_thread_priority()  # the decoder's own threads, started from here, inherit it
        s = self.settings
        try:
            for entry in entries:
                for item in video_frames(
                    str(entry.path), cfg, s.video_fps, s.video_max_frames, s.video_sampling
                ):
                    if stop.is_set():
                        return
                    _put(out, item, stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises
            _put(out, _Failure(exc), stop)
        finally:
            _put(out, _Stop(), stop)

    def _consume(
        self, items: queue.Queue, producers: int, by_path: dict[str, FileEntry], summary: IndexSummary
    ) -> None:
        pending: dict[str, _Pending] = {}
        ready: list[_Pending] = []
        batch: list[tuple[str, float, np.ndarray, bytes, bool]] = []
        last_commit = last_refresh = time.monotonic()
        stopped = 0

        def flush_batch() -> None:
            if not batch:
                return
            vectors = self.encoder.encode_image_tensors(np.stack([b[2] for b in batch]))
            for (path, t, _px, thumb, shot), vec in zip(batch, vectors, strict=True):
                p = pending[path]
                p.times.append(t)
                p.vectors.append(vec)
                p.thumbnails.append(thumb)
                p.shot_starts.append(shot)
                p.awaiting -= 1
                if p.awaiting == 0 and p.done is not None:
                    ready.append(pending.pop(path))
            batch.clear()

        while stopped < producers:
            try:
                item = items.get(timeout=0.05)
            except queue.Empty:
                flush_batch()  # the decoders are behind: don't keep the model waiting for a full batch
                item = None
            if isinstance(item, _Failure):
                raise RuntimeError(f"decoding stopped: {item.exc}") from item.exc
            if isinstance(item, _Stop):
                stopped += 1
            elif isinstance(item, DecodedImage):
                p = pending.setdefault(item.path, _Pending(by_path[item.path]))
                p.done = item
                if item.error:
                    ready.append(pending.pop(item.path))
                else:
                    p.awaiting += 1
                    batch.append((item.path, 0.0, item.pixels, item.thumbnail, False))
            elif isinstance(item, VideoFrames):
                p = pending.setdefault(item.path, _Pending(by_path[item.path]))
                p.awaiting += len(item.times)
                batch.extend(
                    zip(
                        [item.path] * len(item.times),
                        item.times,
                        item.pixels,
                        item.thumbnails,
                        item.shot_changes,
                        strict=True,
                    )
                )
            elif isinstance(item, VideoDone):
                p = pending.setdefault(item.path, _Pending(by_path[item.path]))
                p.done = item
                if p.awaiting == 0:
                    ready.append(pending.pop(item.path))
            if len(batch) >= self.settings.batch_size:
                flush_batch()
            now = time.monotonic()
            if ready and (
                sum(len(r.vectors) for r in ready) >= self.settings.commit_units
                or now - last_commit > COMMIT_SECONDS
            ):
                self._commit(ready, summary)
                ready.clear()
                last_commit = now
            if now - last_refresh > INDEX_REFRESH_SECONDS:
                self.library.rebuild_index()
                last_refresh = now
        flush_batch()
        ready.extend(p for p in pending.values() if p.done is not None and p.awaiting == 0)
        if ready:
            self._commit(ready, summary)

    # -- commit ----------------------------------------------------------------------------
    def _commit(self, finished: list[_Pending], summary: IndexSummary) -> None:
        """One transaction + one shard for a chunk of finished assets (shard first)."""
        store = self.library.vector_store()
        with self.library.Session.begin() as s:
            # One lookup and one flush for the whole chunk: a query per asset autoflushed every
            # pending row one by one (0.45 s of a 0.55 s commit for 192 images).
            existing = _existing_assets(s, [str(p.entry.path) for p in finished])
            for ids in _chunks([a.id for a in existing.values()]):
                s.execute(delete(Unit).where(Unit.asset_id.in_(ids)))
            new_units: list[tuple[Unit, np.ndarray, bytes]] = []
            for p in finished:
                asset = existing.get(str(p.entry.path))
                if asset is None:
                    asset = Asset(path=str(p.entry.path), kind=p.entry.kind)
                    s.add(asset)
                error = self._fill_asset(asset, p)
                if error:
                    summary.failed.append((asset.path, error))
                    continue
                summary.indexed += 1
                for t_start, t_end, t_best, vec, thumb in self._units_of(p):
                    unit = Unit(asset=asset, t_start=t_start, t_end=t_end, t_best=t_best)
                    s.add(unit)
                    new_units.append((unit, vec, thumb))
            s.flush()
            folders: set[Path] = set()
            for unit, _vec, thumb in new_units:
                path = self.library.thumbnail_path(unit.id)
                with atomic_write(path, sync_dir=False) as fh:
                    fh.write(thumb)
                folders.add(path.parent)
                unit.thumbnail = str(path.relative_to(self.library.root))
            for folder in folders:  # the renames are durable before the rows that name them
                fsync_dir(folder)
            if new_units:
                store.append(
                    np.array([u.id for u, _, _ in new_units], dtype=np.int64),
                    np.stack([v for _, v, _ in new_units]),
                )
        summary.units += len(new_units)
        self.progress("committed", len(finished))

    def _fill_asset(self, asset: Asset, p: _Pending) -> str | None:
        """Copy what decoding learned onto the asset row; returns the error if it failed."""
        done = p.done
        asset.kind = p.entry.kind
        asset.size = p.entry.size
        asset.mtime_ns = p.entry.mtime_ns
        asset.content_hash = done.content_hash
        asset.width, asset.height = done.width, done.height
        if isinstance(done, VideoDone):
            asset.duration, asset.fps = done.duration, done.fps
            error = done.error
        else:
            error = done.error
        asset.status = FAILED if error else INDEXED
        asset.error = error or (done.warning if isinstance(done, VideoDone) else None)
        asset.indexed_at = utcnow()
        return error

    def _units_of(self, p: _Pending):
        if p.entry.kind == IMAGE:
            yield None, None, None, p.vectors[0], p.thumbnails[0]
            return
        from glimpse.indexer.segments import collapse_segments

        order = np.argsort(p.times)
        times = [p.times[i] for i in order]
        vectors = np.stack([p.vectors[i] for i in order])
        thumbs = [p.thumbnails[i] for i in order]
        shots = [p.shot_starts[i] for i in order]
        end = p.done.duration if isinstance(p.done, VideoDone) else None
        for seg in collapse_segments(
            times, vectors, self.settings.segment_threshold, end_time=end, shot_starts=shots
        ):
            best = times.index(seg.t_best)
            yield seg.t_start, seg.t_end, seg.t_best, seg.vector, thumbs[best]


def _chunks(values: list, size: int = 500) -> Iterator[list]:
    """Slices of ``values`` small enough for one SQL ``IN (...)`` on every backend."""
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _existing_assets(s: Session, paths: list[str]) -> dict[str, Asset]:
    """The catalogue rows of ``paths`` that already exist, by path."""
    return {
        a.path: a for chunk in _chunks(paths) for a in s.scalars(select(Asset).where(Asset.path.in_(chunk)))
    }


def _decode_isolated(path: str, args: tuple) -> DecodedImage:
    with _decode_pool(1) as pool:
        try:
            return pool.submit(decode_image_file, path, *args).result()
        except BrokenProcessPool:
            return DecodedImage(path, error="the image decoder crashed on this file")


def _put(out: queue.Queue, item: object, stop: threading.Event) -> None:
    """Put, but give up when the consumer has stopped (so producers never hang on a full queue)."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _drain(q: queue.Queue) -> None:
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass


def _decode_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=_mp_context(), initializer=lower_priority)


def _mp_context():
    import multiprocessing

    # fork after torch has started its thread pools can deadlock; forkserver is safe and cheap.
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # Preload only the (torch-free) decode module: the default also re-imports __main__, which in
    # a script that imports torch costs seconds of CPU taken from the model.
    ctx.set_forkserver_preload(["glimpse.indexer.decode"])
    return ctx
