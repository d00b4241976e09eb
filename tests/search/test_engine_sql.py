"""The SQL a search runs stays cheap however large the catalogue grows (checked with SQLite's planner)."""

from __future__ import annotations

import re

import numpy as np
from sqlalchemy import event

from conftest import tiny_settings
from glimpse.core.library import Library
from glimpse.core.models import ModelRef
from glimpse.indexer.bulk import import_vectors
from glimpse.search import reads
from glimpse.search.embedding import QueryEmbedder
from glimpse.search.engine import SearchEngine
from glimpse.search.query import SearchQuery


def test_an_unfiltered_search_reads_its_hits_by_primary_key_without_walking_the_catalogue(
    tmp_path, tiny_encoder
):
    # SQLite only: PostgreSQL keeps statistics and plans this well by itself.
    settings = tiny_settings(tmp_path / "library")
    library = Library(settings)
    vectors = np.random.default_rng(0).standard_normal((300, 128)).astype(np.float32)
    import_vectors(
        library, ModelRef("glimpse-tiny", None), [f"/elsewhere/{i}.jpg" for i in range(300)], vectors
    )
    engine = SearchEngine(library, settings, QueryEmbedder(tiny_encoder))
    statements: list[tuple[str, tuple]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, tuple(parameters)))

    event.listen(library.engine, "before_cursor_execute", record)
    try:
        page = engine.search(SearchQuery(q="anything", k=10))
    finally:
        event.remove(library.engine, "before_cursor_execute", record)
    assert len(page.results) == 10
    assert statements, "the search read its hits from the catalogue"
    with library.engine.connect() as conn:
        raw = conn.connection.driver_connection
        for statement, parameters in statements:
            # A full-text MATCH is answered by the FTS5 index: SQLite shows it as a SCAN of the
            # virtual table under its MATCH constraint ("INDEX n:M..."), which is no table walk.
            steps = [row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)]
            plan = " | ".join(s for s in steps if not re.match(r"SCAN \w+ VIRTUAL TABLE INDEX \d+:M", s))
            # A SCAN, or a SEARCH on the status index (every indexed asset matches it), costs time
            # in proportion to the whole library: ~0.1 s per search at a million items.
            assert "SCAN" not in plan and "ix_assets_status_kind" not in plan, f"{statement}\n-> {plan}"
    library.close()


def test_the_stats_facets_are_exact_and_seek_their_indexes_instead_of_reading_every_item(
    tmp_path, database_url
):
    library = Library(tiny_settings(tmp_path / "library", database_url))
    snapshot = library.open_index()
    empty = reads.library_stats(library, snapshot)["facets"]
    assert empty == {"categories": [], "price": {"min": None, "max": None}}
    categories = [None, "shoes", "bags", "bags", "shirts", None, "belts"]
    prices = [None, 30.0, 5.5, None, 120.0, 7.0, None]
    vectors = np.random.default_rng(1).standard_normal((len(categories), 128)).astype(np.float32)
    fields = [
        {k: v for k, v in (("category", c), ("price", p)) if v is not None}
        for c, p in zip(categories, prices, strict=True)
    ]
    import_vectors(
        library,
        ModelRef("glimpse-tiny", None),
        [f"/elsewhere/{i}.jpg" for i in range(len(categories))],
        vectors,
        fields=fields,
    )
    statements: list[tuple[str, tuple]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        statements.append((statement, tuple(parameters)))

    event.listen(library.engine, "before_cursor_execute", record)
    try:
        facets = reads.library_stats(library, library.open_index())["facets"]
    finally:
        event.remove(library.engine, "before_cursor_execute", record)
    assert facets["categories"] == sorted({c for c in categories if c is not None})
    assert facets["price"] == {"min": 5.5, "max": 120.0}
    if database_url is None:  # SQLite's planner: the facet statements seek, none walks the items
        with library.engine.connect() as conn:
            raw = conn.connection.driver_connection
            facet_sql = [(s, p) for s, p in statements if "category" in s or "price" in s]
            assert len(facet_sql) == 3, facet_sql
            for statement, parameters in facet_sql:
                plan = " | ".join(
                    row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
                )
                assert "SCAN assets" not in plan, f"{statement}\n-> {plan}"
    library.close()
