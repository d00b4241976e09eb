"""What the API process holds for its lifetime: the library, the loaded model and the search engine.

Built once at start-up (the model loads then, not per request). An empty library still serves
health and stats; the model is loaded as soon as an indexer has recorded one. Concurrency is
composed here, not inherited: the engine is given a micro-batching text encoder and searcher.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from sqlalchemy import text

from glimpse.core.encoder import Encoder
from glimpse.core.library import IndexSnapshot, Library
from glimpse.core.models import ModelRef
from glimpse.core.settings import Settings
from glimpse.search.batching import SearchBatcher, TextBatcher, use_blas_for_query_batches
from glimpse.search.embedding import QueryEmbedder
from glimpse.search.engine import SearchEngine
from glimpse.search.paths import PathDisplay


class LibraryEmpty(RuntimeError):
    """Nothing has been indexed yet, so there is no model to embed a query with."""


class SearchService:
    def __init__(self, settings: Settings, *, batching: bool = True) -> None:
        self.settings = settings
        self.library = Library(settings)
        self._batching = batching
        self._model_lock = threading.Lock()
        self._agrees: dict[int, bool] = {}  # index version -> matched the catalogue when checked
        self._paths: tuple[int, PathDisplay] | None = None  # for an index version
        self.search_batcher = SearchBatcher() if batching else None
        if batching:
            use_blas_for_query_batches()
        self.text_batcher: TextBatcher | None = None
        # Until something is indexed the engine answers only what needs no model (stats, items).
        self.engine = SearchEngine(self.library, settings, searcher=self.search_batcher)
        self.embedder: QueryEmbedder | None = None
        ref = self.library.library_model()
        if ref is not None:
            self._use_model(ref)

    # -- model -----------------------------------------------------------------------------
    def _use_model(self, ref: ModelRef) -> QueryEmbedder:
        s = self.settings
        encoder = Encoder(
            ref.name, ref.pretrained, s.device, s.query_cache_size, pack_text=s.pack_text_weights
        ).load()
        self.text_batcher = TextBatcher(encoder) if self._batching else None
        self.embedder = self.engine.embedder = QueryEmbedder(encoder, text=self.text_batcher)
        return self.embedder

    def require_model(self) -> QueryEmbedder:
        """The loaded model; loads the library's model if an indexer recorded one since start-up."""
        with self._model_lock:
            if self.embedder is not None:  # loaded already, maybe by a request this one waited for
                return self.embedder
            ref = self.library.library_model()
            if ref is None:
                raise LibraryEmpty(
                    f"the library at {self.library.root} has nothing indexed yet: "
                    "run `glimpse index PATH` first"
                )
            return self._use_model(ref)

    def path_display(self) -> PathDisplay:
        """How paths are shown to clients; media folders are re-read when the index changes
        (an indexer run that added a folder published a new version)."""
        version = self.engine.snapshot.version
        if self._paths is None or self._paths[0] != version:
            roots = self.library.media_roots()
            self._paths = (version, PathDisplay(roots, full=self.settings.full_paths))
        return self._paths[1]

    @property
    def model_ref(self) -> ModelRef | None:
        return self.embedder.ref if self.embedder is not None else None

    # -- readiness -------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {}
        try:
            with self.library.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the message says which
            checks["database"] = {"ok": False, "error": str(exc).splitlines()[0]}
        ref = self.model_ref
        checks["model"] = (
            {"ok": True, "name": ref.name, "pretrained": ref.pretrained}
            if ref is not None
            else {"ok": False, "error": "no model loaded: the library has nothing indexed yet"}
        )
        snapshot = self.engine.snapshot
        agrees = checks["database"]["ok"] and self._index_agrees(snapshot)
        checks["index"] = {"ok": agrees, "version": snapshot.version, "size": len(snapshot.index)}
        if not agrees:
            checks["index"]["error"] = "the loaded index and the catalogue hold different units"
        return all(c["ok"] for c in checks.values()), checks

    def _index_agrees(self, snapshot: IndexSnapshot) -> bool:
        """Whether the served snapshot holds exactly the catalogue's indexed units.

        Checked once per index version (an exact id comparison); a mismatch is checked again on
        the next call, since an indexer publishing a new version is the usual cause.
        """
        if self._agrees.get(snapshot.version):
            return True
        live = self.library.live_unit_ids()
        ok = bool(np.array_equal(np.sort(snapshot.index.ids()), live))
        if ok:
            self._agrees[snapshot.version] = True
        return ok

    def close(self) -> None:
        for batcher in (self.text_batcher, self.search_batcher):
            if batcher is not None:
                batcher.close()
        self.library.close()
