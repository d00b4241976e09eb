"""The writer: embedded assets in, committed catalogue rows, thumbnails and vectors out.

The one place that writes a library during a run, in the order that keeps it crash-safe. For each
chunk of finished assets, inside one SQL transaction:

1. the asset rows are filled in and their new units get ids (a flush);
2. each unit's thumbnail is written (temp file, fsync, rename) and its folder fsynced;
3. the vectors are appended as one shard (fsync, rename);
4. the transaction commits.

A crash before 4 leaves orphan thumbnails and vectors that no row names (ignored, and never
served); after 4, everything a row names is on disk. Publishing the index is the runner's job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from glimpse.core import fulltext, ocr_text
from glimpse.core.catalogue import Asset, IndexRun, Unit, utcnow
from glimpse.core.fsutil import atomic_write, fsync_dir, printable
from glimpse.core.library import Library
from glimpse.core.ocr import OcrResult
from glimpse.core.vectors import segment_rows
from glimpse.core.vocabulary import Kind, RunStatus, Status
from glimpse.indexer.decode import DecodedImage, VideoDone
from glimpse.indexer.scan import FileEntry
from glimpse.indexer.segments import collapse_segments

IN_CHUNK = 500  # ids per SQL ``IN (...)``: small enough for every backend


@dataclass
class IndexSummary:
    """What a run did; ``failed``, ``warnings`` and ``skipped`` (links not followed, see
    indexer/scan.py ``walk``) are (path, reason) pairs."""

    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    units: int = 0
    index_size: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "indexed": self.indexed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            # Paths as text: a name that is not valid UTF-8 shows its odd bytes as \xe9.
            "failed": [{"path": printable(p), "error": printable(e)} for p, e in self.failed],
            "warnings": [{"path": printable(p), "warning": printable(w)} for p, w in self.warnings],
            "skipped": [{"path": printable(p), "reason": printable(r)} for p, r in self.skipped],
            "units": self.units,
            "index_size": self.index_size,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Embedded:
    """An asset with a vector for each of its frames (an image has one), or with the reason its
    decoding failed (``done.error``)."""

    entry: FileEntry
    done: DecodedImage | VideoDone | None = None
    times: list[float] = field(default_factory=list)  # seconds into a video; 0 for an image
    vectors: list[np.ndarray] = field(default_factory=list)  # (D,) float32, unit length
    thumbnails: list[bytes] = field(default_factory=list)  # JPEG
    shot_starts: list[bool] = field(default_factory=list)  # a cut comes right before the frame
    ocr: list[OcrResult | None] = field(default_factory=list)  # the text read in each frame (OCR on)

    def add(
        self,
        time: float,
        vector: np.ndarray,
        thumbnail: bytes,
        shot_start: bool,
        ocr: OcrResult | None = None,
    ) -> None:
        self.times.append(time)
        self.vectors.append(vector)
        self.thumbnails.append(thumbnail)
        self.shot_starts.append(shot_start)
        self.ocr.append(ocr)

    @property
    def error(self) -> str | None:
        if self.done is None:
            return "the file was never decoded"
        return self.done.error


@dataclass(frozen=True)
class Deferred:
    """A file this run could not read for a reason outside the file itself (a cluster node that
    does not see the media): reported with the run and left as the catalogue has it, so the next
    run tries it again instead of recording it as a broken file."""

    path: str
    reason: str


@dataclass(frozen=True)
class NewUnit:
    """A unit to store: a whole image, or a video segment from ``t_start`` to ``t_end`` seconds."""

    t_start: float | None
    t_end: float | None
    t_best: float | None
    vector: np.ndarray
    thumbnail: bytes
    shot_start: bool = False
    ocr: OcrResult | None = None  # the text read in it; None: not read (OCR off)


class CatalogueWriter:
    """Commits embedded assets, removes and touches assets, and records runs, for one library."""

    def __init__(
        self,
        library: Library,
        summary: IndexSummary,
        segment_threshold: float,
        progress: Callable[[str, int], None] | None = None,
    ) -> None:
        self.library = library
        self.summary = summary
        self.segment_threshold = segment_threshold
        self.progress = progress or (lambda _event, _n: None)

    # -- assets ----------------------------------------------------------------------------
    def commit(self, finished: Sequence[Embedded]) -> None:
        """One transaction and one vector shard for a chunk of finished assets (see the module)."""
        if not finished:
            return
        store = self.library.vector_store()
        summary = self.summary
        with self.library.Session.begin() as s:
            # One lookup and one flush for the whole chunk: a query per asset autoflushed every
            # pending row one by one (0.45 s of a 0.55 s commit for 192 images).
            existing = _existing_assets(s, [str(e.entry.path) for e in finished])
            for ids in _chunks([a.id for a in existing.values()]):
                # noted before the commit: the next index version checks them (cost ~ change)
                self.library.note_removed(list(s.scalars(select(Unit.id).where(Unit.asset_id.in_(ids)))))
                s.execute(delete(Unit).where(Unit.asset_id.in_(ids)))
            stored: list[tuple[Unit, NewUnit]] = []
            written: list[Asset] = []
            for embedded in finished:
                asset = existing.get(str(embedded.entry.path))
                if asset is None:
                    asset = Asset(path=str(embedded.entry.path), kind=embedded.entry.kind)
                    s.add(asset)
                error = _fill_asset(asset, embedded)
                written.append(asset)
                if error:
                    summary.failed.append((asset.path, error))
                    continue
                summary.indexed += 1
                if isinstance(embedded.done, VideoDone) and embedded.done.warning:
                    summary.warnings.append((asset.path, embedded.done.warning))
                units = self.units_of(embedded)
                if problem := ocr_text.problem([new.ocr for new in units]):
                    summary.warnings.append((asset.path, problem))
                for new in units:
                    unit = Unit(
                        asset=asset,
                        t_start=new.t_start,
                        t_end=new.t_end,
                        t_best=new.t_best,
                        shot_start=new.shot_start,
                    )
                    s.add(unit)
                    stored.append((unit, new))
            s.flush()
            # The item's text rows follow its fields (kept, or cleared when a file became another).
            fulltext.sync(s, [a.id for a in written])
            ocr_text.store(s, [(unit.id, new.ocr) for unit, new in stored if new.ocr is not None])
            self._write_thumbnails(stored)
            if stored:
                unit_ids = np.array([unit.id for unit, _ in stored], dtype=np.int64)
                # Each asset's units whole and in time order: a shard lists a video's segments
                # so that a moment reads its neighbours there (core/vectors.py).
                segments = segment_rows(
                    unit_ids,
                    [
                        {
                            "asset_id": unit.asset_id,
                            "t_start": new.t_start,
                            "t_end": new.t_end,
                            "t_best": new.t_best,
                            "shot_start": new.shot_start,
                        }
                        for unit, new in stored
                    ],
                )
                store.append(unit_ids, np.stack([new.vector for _, new in stored]), segments)
        summary.units += len(stored)
        self.progress("committed", len(finished))

    def defer(self, deferred: Deferred) -> None:
        """Report a :class:`Deferred` file with the run's failures; the catalogue is not touched."""
        self.summary.failed.append((deferred.path, deferred.reason))
        self.progress("deferred", 1)

    def _write_thumbnails(self, stored: list[tuple[Unit, NewUnit]]) -> None:
        folders: set[Path] = set()
        for unit, new in stored:
            path = self.library.thumbnail_path(unit.id)
            with atomic_write(path, sync_dir=False) as fh:
                fh.write(new.thumbnail)
            folders.add(path.parent)
            unit.thumbnail = str(path.relative_to(self.library.root))
        for folder in folders:  # the renames are durable before the rows that name them
            fsync_dir(folder)

    def units_of(self, embedded: Embedded) -> list[NewUnit]:
        """An image's one unit, or a video's frames collapsed into segments (indexer/segments.py)."""
        if embedded.entry.kind == Kind.IMAGE:
            text = embedded.ocr[0] if embedded.ocr else None
            return [NewUnit(None, None, None, embedded.vectors[0], embedded.thumbnails[0], ocr=text)]
        order = np.argsort(embedded.times)
        times = [embedded.times[i] for i in order]
        thumbs = [embedded.thumbnails[i] for i in order]
        texts = [embedded.ocr[i] if embedded.ocr else None for i in order]
        end = embedded.done.duration if isinstance(embedded.done, VideoDone) else None
        segments = collapse_segments(
            times,
            np.stack([embedded.vectors[i] for i in order]),
            self.segment_threshold,
            end_time=end,
            shot_starts=[embedded.shot_starts[i] for i in order],
        )
        return [
            NewUnit(
                seg.t_start,
                seg.t_end,
                seg.t_best,
                seg.vector,
                thumbs[times.index(seg.t_best)],
                seg.shot_start,
                ocr_text.merge_frames([texts[i] for i in seg.member_indices]),
            )
            for seg in segments
        ]

    def remove(self, asset_ids: list[int]) -> int:
        """Delete assets (and their units and thumbnails) whose files are gone."""
        if not asset_ids:
            return 0
        unit_ids: list[int] = []
        with self.library.Session.begin() as s:
            for ids in _chunks(asset_ids):
                unit_ids += s.scalars(select(Unit.id).where(Unit.asset_id.in_(ids)))
                s.execute(delete(Unit).where(Unit.asset_id.in_(ids)))
                s.execute(delete(Asset).where(Asset.id.in_(ids)))
            self.library.note_removed(unit_ids)  # before the commit (see Library.note_removed)
        for unit_id in unit_ids:
            self.library.thumbnail_path(unit_id).unlink(missing_ok=True)
        return len(asset_ids)

    def touch(self, touched: dict[str, int]) -> None:
        """Record new mtimes of files whose content did not change (path -> mtime_ns)."""
        if not touched:
            return
        with self.library.Session.begin() as s:
            for path, mtime_ns in touched.items():
                s.execute(update(Asset).where(Asset.path == path).values(mtime_ns=mtime_ns))

    # -- run records -----------------------------------------------------------------------
    def start_run(self) -> int:
        """Record a new run (the caller holds the writer lock). A run still recorded as running
        was stopped before it could say how it ended (killed, or its disk was full): it is
        recorded as failed now."""
        with self.library.Session.begin() as s:
            s.execute(
                update(IndexRun)
                .where(IndexRun.status == RunStatus.RUNNING)
                .values(
                    status=RunStatus.FAILED,
                    message="stopped before it finished (killed, or it could not write)",
                )
            )
            run = IndexRun(status=RunStatus.RUNNING)
            s.add(run)
            s.flush()
            return run.id

    def finish_run(self, run_id: int, status: RunStatus, message: str | None = None) -> None:
        summary = self.summary
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
                    message=message,
                )
            )


def _fill_asset(asset: Asset, embedded: Embedded) -> str | None:
    """Copy what decoding learned onto the asset row; returns the error if it failed."""
    done, entry = embedded.done, embedded.entry
    asset.kind = entry.kind
    asset.size = entry.size
    asset.mtime_ns = entry.mtime_ns
    error = embedded.error
    if done is not None:
        asset.content_hash = done.content_hash
        asset.width, asset.height = done.width, done.height
    if isinstance(done, VideoDone):
        asset.duration, asset.fps = done.duration, done.fps
    asset.status = Status.FAILED if error else Status.INDEXED
    asset.error = error or (done.warning if isinstance(done, VideoDone) else None)
    asset.indexed_at = utcnow()
    return error


def _chunks(values: list[int], size: int = IN_CHUNK) -> Iterator[list[int]]:
    """Slices of ``values`` small enough for one SQL ``IN (...)`` on every backend."""
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _existing_assets(s: Session, paths: list[str]) -> dict[str, Asset]:
    """The catalogue rows of ``paths`` that already exist, by path."""
    found: dict[str, Asset] = {}
    for start in range(0, len(paths), IN_CHUNK):
        chunk = paths[start : start + IN_CHUNK]
        found.update((a.path, a) for a in s.scalars(select(Asset).where(Asset.path.in_(chunk))))
    return found
