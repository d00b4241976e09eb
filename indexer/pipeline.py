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

from glimpse.core.library import Library
from glimpse.core.settings import Settings
from glimpse.core.vocabulary import RunStatus
from glimpse.indexer.mapper import Mapper
from glimpse.indexer.reader import Decoded, Failure, Reader, Stop
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
        publish the index. Raises FileNotFoundError, LibraryBusy, ModelMismatch, ModelLoadError."""
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
            run_id = writer.start_run()
            status, message = RunStatus.FAILED, None
            try:
                with self.library.Session() as s:
                    plan = plan_scan(s, roots, walk(roots, skip=self.library.root))
                if on_plan:
                    on_plan(plan)
                summary.unchanged = plan.unchanged
                summary.removed = writer.remove(plan.removed_ids)
                writer.touch(plan.touched)
                self._embed_all(plan.todo, writer)
                status = RunStatus.COMPLETED
            except KeyboardInterrupt:
                status = RunStatus.INTERRUPTED
                raise
            except Exception as exc:
                message = str(exc)[:2000]  # the run record says why it failed
                raise
            finally:
                # Whatever happened, publish an index that matches what was committed.
                summary.index_size = self.library.rebuild_index().size
                summary.seconds = time.monotonic() - started
                writer.finish_run(run_id, status, message)
        return summary

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
