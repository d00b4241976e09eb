"""The keyword index: each database's own full-text engine, kept in step with the catalogue."""

from __future__ import annotations

import numpy as np
from sqlalchemy import delete, insert, select

from glimpse.core import fulltext
from glimpse.core.catalogue import Asset, SearchText
from glimpse.core.db import make_engine, upgrade
from glimpse.core.library import Library
from glimpse.core.models import ModelRef
from glimpse.indexer.bulk import import_vectors
from glimpse.indexer.manifest import import_manifest

ITEMS = [
    {"title": "Ceramic coffee mug", "sku": "GL-4471", "category": "kitchen", "brand": "Vans"},
    {"title": "Enamel camping mug", "sku": "GL-4472", "category": "outdoor", "description": "Light steel"},
    {"title": "Running shoes", "sku": "SH-100", "category": "shoes", "description": "Ceramic grey sole"},
    {"price": 5.0},  # no text at all
]


def _import(library: Library, items=ITEMS) -> list[int]:
    vectors = np.random.default_rng(0).standard_normal((len(items), 128)).astype(np.float32)
    paths = [f"/elsewhere/{i}.jpg" for i in range(len(items))]
    import_vectors(library, ModelRef("glimpse-tiny", None), paths, vectors, fields=items)
    with library.Session() as s:
        return [s.scalar(select(Asset.id).where(Asset.path == p)) for p in paths]


def test_bulk_imported_items_are_found_by_any_word_with_the_title_ranked_above_the_description(library):
    ids = _import(library)
    with library.Session() as s:
        ranked = fulltext.keyword_ranking(s, fulltext.query_terms("a ceramic mug"), [], 10)
        # Every word first (both in the title), then some words: the title above the description.
        assert [(i, every) for i, _, every in ranked] == [(ids[0], True), (ids[1], False), (ids[2], False)]
        assert fulltext.keyword_ranking(s, ["vans"], [], 10)[0][0] == ids[0]  # extra manifest column
        assert fulltext.keyword_ranking(s, ["mugs"], [], 10)  # stemmed: mugs finds mug
        assert [i for i, _, _ in fulltext.keyword_ranking(s, ["mug"], [Asset.category == "outdoor"], 10)] == [
            ids[1]
        ]
        assert fulltext.keyword_ranking(s, ["zebra"], [], 10) == []
        assert s.scalar(select(SearchText).where(SearchText.asset_id == ids[3])) is None
        assert fulltext.has_text(s)


def test_a_match_names_its_field_and_highlights_the_words(library):
    ids = _import(library)
    with library.Session() as s:
        found = fulltext.matches(s, ["ceramic"], ids)
    assert found[ids[0]] == fulltext.KeywordMatch("title", "«Ceramic» coffee mug")
    assert found[ids[2]].field == "description" and "«Ceramic»" in found[ids[2]].snippet
    assert ids[1] not in found


def test_an_exact_sku_is_found_whatever_its_case_and_only_whole(library):
    ids = _import(library)
    with library.Session() as s:
        assert fulltext.exact_sku(s, " gl-4471 ", []) == [ids[0]]
        assert fulltext.exact_sku(s, "GL", []) == []
        assert fulltext.exact_sku(s, "GL-4471", [Asset.category == "shoes"]) == []


def test_the_index_follows_manifest_changes_and_removals(library, tmp_path):
    ids = _import(library)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,title,colour\n/elsewhere/0.jpg,Porcelain teapot,teal\n")
    assert import_manifest(library, manifest).updated == 1
    with library.Session.begin() as s:
        assert [r[0] for r in fulltext.keyword_ranking(s, ["teapot"], [], 5)] == [ids[0]]
        assert [r[0] for r in fulltext.keyword_ranking(s, ["teal"], [], 5)] == [ids[0]]
        assert [r[0] for r in fulltext.keyword_ranking(s, ["ceramic"], [], 5)] == [ids[2]]  # old title gone
        s.execute(delete(Asset).where(Asset.id == ids[2]))  # removal cascades into the index
    with library.Session() as s:
        assert fulltext.keyword_ranking(s, ["ceramic"], [], 5) == []
        assert fulltext.keyword_ranking(s, ["shoes"], [], 5) == []


def test_the_migration_indexes_items_catalogued_before_it(tmp_path, database_url):
    url = database_url or f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0004")
    row = {"path": "/x.jpg", "kind": "image", "size": 1, "mtime_ns": 1, "status": "indexed"}
    with engine.begin() as conn:
        conn.execute(insert(Asset.__table__), [{**row, "title": "Linen shirt", "extra": {"brand": "Acme"}}])
    upgrade(engine)
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        assert len(fulltext.keyword_ranking(s, ["linen"], [], 5)) == 1
        assert len(fulltext.keyword_ranking(s, ["acme"], [], 5)) == 1
    engine.dispose()
