"""``glimpse index``: the runner that drives one indexing run, start to end.

Read in this order: :meth:`Indexer.run` takes the writer lock and records the run, plans the scan
(:mod:`glimpse.indexer.scan`: what is new, changed, unchanged, removed), then streams the files
through an embedding stage — on this machine the reader (:mod:`~glimpse.indexer.reader`: decode
and sample, in worker processes) and the mapper (:mod:`~glimpse.indexer.mapper`: the model, in
batches); on a Ray cluster :mod:`~glimpse.indexer.ray_runner` — into the writer
(:mod:`~glimpse.indexer.writer`: shard, thumbnails and SQL in one crash-safe commit), and last
publishes the index. A crash at any point loses at most the uncommitted chunk; the next run redoes
it without duplicates.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from glimpse.core.fsutil import disk_full
from glimpse.core.library import Library
from glimpse.core.settings import Settings
from glimpse.core.vocabulary import RunStatus
from glimpse.indexer.mapper import Mapper
from glimpse.indexer.ocr_fill import fill_unread
from glimpse.indexer.reader import Decoded, Failure, Reader, Stop, ocr_config
from glimpse.indexer.scan import FileEntry, ScanPlan, plan_scan, walk
from glimpse.indexer.writer import CatalogueWriter, Deferred, Embedded, IndexSummary

if TYPE_CHECKING:
    from glimpse.core.encoder import Encoder

__all__ = [
    "COMMIT_SECONDS",
    "INDEX_REFRESH_SECONDS",
    "EmbeddingStage",
    "IndexSummary",
    "Indexer",
    "LocalEmbedding",
]

COMMIT_SECONDS = 20.0  # a chunk commits after this long (or commit_units vectors), so a crash loses little
INDEX_REFRESH_SECONDS = 300.0  # long runs publish the index this often for the API

# What an embedding stage streams to the writer: a finished asset, a file to leave for the next
# run, or None now and then while nothing finished (so chunks still commit on time).
Streamed = Embedded | Deferred | None


class EmbeddingStage(Protocol):
    """Reads, decodes and embeds planned files: on this machine (:class:`LocalEmbedding`) or on a
    cluster (``glimpse.indexer.ray_runner.RayEmbedding``). The runner commits what it streams."""

    def embed(self, todo: list[FileEntry]) -> AbstractContextManager[Iterator[Streamed]]:
        """A context whose value yields each file of ``todo`` once, as an :class:`Embedded`
        (embedded, or failed with the reason) or a :class:`Deferred`; leaving it stops the work.
        Raises when the stage itself breaks (not for a bad file)."""
        ...


class LocalEmbedding:
    """The stage on this machine: decode workers (:mod:`~glimpse.indexer.reader`) feed the model
    (:mod:`~glimpse.indexer.mapper`)."""

    def __init__(self, encoder: Encoder, settings: Settings) -> None:
        self.encoder = encoder
        self.settings = settings

    @contextmanager
    def embed(self, todo: list[FileEntry]) -> Iterator[Iterator[Streamed]]:
        items: queue.Queue[Decoded | Stop | Failure] = queue.Queue(maxsize=8 * self.settings.batch_size)
        reader = Reader(todo, self.encoder.preprocess_config(), self.settings, items)
        mapper = Mapper(self.encoder, self.settings.batch_size)
        try:
            yield mapper.embed(items, len(reader.threads), {str(e.path): e for e in todo})
        finally:
            reader.close()


class Indexer:
    """Indexes files into a library with the library's model; one run at a time per library.

    ``stage`` embeds the planned files (default: :class:`LocalEmbedding`, on this machine); whatever
    it is, this runner plans, commits and publishes, so every invariant holds the same way."""

    def __init__(
        self,
        library: Library,
        encoder: Encoder,
        settings: Settings,
        progress: Callable[[str, int], None] | None = None,
        stage: EmbeddingStage | None = None,
    ) -> None:
        self.library = library
        self.encoder = encoder
        self.settings = settings
        self.progress = progress or (lambda _event, _n: None)
        self.stage = stage or LocalEmbedding(encoder, settings)

    def run(self, paths: list[Path], on_plan: Callable[[ScanPlan], None] | None = None) -> IndexSummary:
        """Index everything below ``paths`` that is new or changed, sweep what was removed, and
        publish the index. Raises FileNotFoundError, LibraryBusy, ModelMismatch, ModelLoadError,
        and DiskFull (core/fsutil.py: one line saying what failed, where, and the space left) when
        a disk fills up; the run is then recorded as failed and every committed chunk is kept."""
        roots = [p.expanduser().resolve() for p in paths]
        for root in roots:
            if not root.exists():
                raise FileNotFoundError(f"no such file or folder: {root}")
        started = time.monotonic()
        summary = IndexSummary()
        writer = CatalogueWriter(self.library, summary, self.settings.segment_threshold, self.progress)
        with self.library.writer_lock():
            self.encoder.load()
            self.library.bind_model(self.encoder.ref, self.encoder.dim)
            self.library.add_media_roots([r if r.is_dir() else r.parent for r in roots])
            run_id: int | None = None
            try:
                run_id = writer.start_run()
                allowed = self.library.media_roots()
                with self.library.Session() as s:
                    entries = walk(roots, skip=self.library.root, allowed=allowed, skipped=summary.skipped)
                    plan = plan_scan(s, roots, entries)
                if on_plan:
                    on_plan(plan)
                summary.unchanged = plan.unchanged
                summary.removed = writer.remove(plan.removed_ids)
                writer.touch(plan.touched)
                self._embed_all(plan.todo, writer)
                if ocr := ocr_config(self.settings):  # text for items indexed with OCR off
                    # The local stage read (or tried) the text of what it embedded; a cluster's did not.
                    local = isinstance(self.stage, LocalEmbedding)
                    done = {str(e.path) for e in plan.todo} if local else set()
                    fill_unread(self.library, self.settings, ocr, roots, summary, self.progress, skip=done)
            except KeyboardInterrupt:
                self._close(writer, run_id, summary, started, RunStatus.INTERRUPTED)
                raise
            except Exception as exc:
                explained = self._explain(exc)
                self._close(writer, run_id, summary, started, RunStatus.FAILED, str(explained))
                if explained is not exc:
                    raise explained from exc
                raise
            late = self._close(writer, run_id, summary, started, RunStatus.COMPLETED)
            if late is not None:
                raise late
        return summary

    def _explain(self, exc: BaseException) -> BaseException:
        """A full disk as one clear :class:`DiskFull` (what, where, free space); else ``exc``."""
        sqlite = self.library.engine.url.database if self.library.engine.dialect.name == "sqlite" else None
        return disk_full(exc, self.library.root, sqlite) or exc

    def _close(
        self,
        writer: CatalogueWriter,
        run_id: int | None,
        summary: IndexSummary,
        started: float,
        status: RunStatus,
        message: str | None = None,
    ) -> BaseException | None:
        """Publish an index that matches what was committed, and record how the run ended.

        Returns the failure of the publishing itself (a full disk, say) when the run had none:
        the run is then recorded as failed. Recording the end is best effort - a run left
        ``running`` (disk full there too, or the process killed) is closed by the next run."""
        failure: BaseException | None = None
        try:
            summary.index_size = self.library.rebuild_index().size
        except Exception as exc:  # noqa: BLE001 - reported below, or after the run's own failure
            failure = self._explain(exc)
            if status == RunStatus.COMPLETED:
                status, message = RunStatus.FAILED, str(failure)
            else:
                failure = None  # the run's own failure is the one to report
        summary.seconds = time.monotonic() - started
        try:
            if run_id is not None:
                writer.finish_run(run_id, status, message[:2000] if message else None)
        except Exception as exc:  # noqa: BLE001 - best effort: the next run closes it
            if failure is None and status == RunStatus.COMPLETED:
                failure = self._explain(exc)
        return failure

    def _embed_all(self, todo: list[FileEntry], writer: CatalogueWriter) -> None:
        """Embed ``todo`` through the stage and commit what it streams (:meth:`_commit_stream`)."""
        if not todo:
            return
        with self.stage.embed(todo) as stream:
            self._commit_stream(stream, writer)

    def _commit_stream(self, stream: Iterator[Streamed], writer: CatalogueWriter) -> None:
        """Commit finished assets in chunks of ``commit_units`` vectors or every ``COMMIT_SECONDS``,
        and publish the index every ``INDEX_REFRESH_SECONDS``: the one commit path of every stage."""
        ready: list[Embedded] = []
        last_commit = last_publish = time.monotonic()
        for item in stream:
            if isinstance(item, Embedded):
                ready.append(item)
            elif isinstance(item, Deferred):
                writer.defer(item)
            now = time.monotonic()
            vectors = sum(len(e.vectors) for e in ready)
            if ready and (vectors >= self.settings.commit_units or now - last_commit > COMMIT_SECONDS):
                writer.commit(ready)
                ready, last_commit = [], now
            if now - last_publish > INDEX_REFRESH_SECONDS:
                self.library.rebuild_index()
                last_publish = now
        writer.commit(ready)
