"""``glimpse index``: the runner that drives one indexing run, start to end.

Read in this order: :meth:`Indexer.run` takes the writer lock and records the run, plans the scan
(:mod:`glimpse.indexer.scan`: what is new, changed, unchanged, removed), then streams the files
through the reader (:mod:`~glimpse.indexer.reader`: decode and sample, in worker processes), the
mapper (:mod:`~glimpse.indexer.mapper`: the model, in batches) and the writer
(:mod:`~glimpse.indexer.writer`: shard, thumbnails and SQL in one crash-safe commit), and last
publishes the index. A crash at any point loses at most the uncommitted chunk; the next run redoes
it without duplicates.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from glimpse.core.library import Library
from glimpse.core.settings import Settings
from glimpse.core.vocabulary import RunStatus
from glimpse.indexer.mapper import Mapper
from glimpse.indexer.reader import Decoded, Failure, Reader, Stop
from glimpse.indexer.scan import FileEntry, ScanPlan, plan_scan, walk
from glimpse.indexer.writer import CatalogueWriter, Embedded, IndexSummary

if TYPE_CHECKING:
    from glimpse.core.encoder import Encoder

__all__ = ["COMMIT_SECONDS", "INDEX_REFRESH_SECONDS", "IndexSummary", "Indexer"]

COMMIT_SECONDS = 20.0  # a chunk commits after this long (or commit_units vectors), so a crash loses little
INDEX_REFRESH_SECONDS = 300.0  # long runs publish the index this often for the API


class Indexer:
    """Indexes files into a library with the library's model; one run at a time per library."""

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
            status = RunStatus.FAILED
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
            finally:
                # Whatever happened, publish an index that matches what was committed.
                snapshot = self.library.rebuild_index()
                summary.index_size = len(snapshot.index)
                summary.seconds = time.monotonic() - started
                writer.finish_run(run_id, status)
        return summary

    def _embed_all(self, todo: list[FileEntry], writer: CatalogueWriter) -> None:
        """Read, embed and commit ``todo``: chunks commit every ``commit_units`` vectors or
        ``COMMIT_SECONDS``, and the index is published every ``INDEX_REFRESH_SECONDS``."""
        if not todo:
            return
        items: queue.Queue[Decoded | Stop | Failure] = queue.Queue(maxsize=8 * self.settings.batch_size)
        reader = Reader(todo, self.encoder.preprocess_config(), self.settings, items)
        mapper = Mapper(self.encoder, self.settings.batch_size)
        ready: list[Embedded] = []
        last_commit = last_publish = time.monotonic()
        try:
            for embedded in mapper.embed(items, len(reader.threads), {str(e.path): e for e in todo}):
                if embedded is not None:
                    ready.append(embedded)
                now = time.monotonic()
                vectors = sum(len(e.vectors) for e in ready)
                if ready and (vectors >= self.settings.commit_units or now - last_commit > COMMIT_SECONDS):
                    writer.commit(ready)
                    ready, last_commit = [], now
                if now - last_publish > INDEX_REFRESH_SECONDS:
                    self.library.rebuild_index()
                    last_publish = now
            writer.commit(ready)
        finally:
            reader.close()
