"""A search looks its words up in the text read in pictures only when the catalogue holds some:
OCR is off by default, and the lookup costs a vector search CPU its encoding runs on. Text
stored later is found once the holder checks again (at most once per ``min_interval``, as a new
index version is found)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

import glimpse.search.engine as engine_module
from conftest import save_image
from glimpse.core import ocr_text
from glimpse.core.catalogue import Asset, Unit
from glimpse.core.ocr import OcrLine, OcrResult
from glimpse.indexer.pipeline import Indexer
from glimpse.search.embedding import QueryEmbedder
from glimpse.search.engine import SearchEngine
from glimpse.search.query import Mode, SearchQuery
from glimpse.search.snapshots import IndexHolder


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The queries the engine looked up in the text read in pictures."""
    asked: list[str] = []
    real = engine_module.text_hits_of

    def counting(library, query, want):  # type: ignore[no-untyped-def]
        asked.append(query)
        return real(library, query, want)

    monkeypatch.setattr(engine_module, "text_hits_of", counting)
    return asked


def _plain_pictures(library, tiny_encoder, settings, root: Path) -> None:  # type: ignore[no-untyped-def]
    root.mkdir()
    for i, colour in enumerate(["red", "green", "blue"]):
        save_image(root / f"plain{i}.jpg", colour, seed=i)
    Indexer(library, tiny_encoder, settings).run([root])


def _read_in(library, name: str, words: str) -> None:  # type: ignore[no-untyped-def]
    """Store ``words`` as the text read in the picture called ``name`` (as `glimpse index --ocr` does)."""
    with library.Session.begin() as s:
        unit_id = s.scalar(select(Unit.id).join(Asset).where(Asset.path.endswith(name)))
        box = [[0.0, 0.0], [10.0, 0.0], [10.0, 5.0], [0.0, 5.0]]
        ocr_text.store(s, [(unit_id, OcrResult(lines=[OcrLine(words, 0.99, box)]))])


@pytest.mark.parametrize("mode", [Mode.VECTOR, Mode.HYBRID])
def test_a_library_without_text_in_pictures_is_never_asked_for_it(
    library, tiny_encoder, make_settings, tmp_path, lookups, mode
):
    settings = make_settings()
    _plain_pictures(library, tiny_encoder, settings, tmp_path / "plain")
    engine = SearchEngine(library, settings, QueryEmbedder(tiny_encoder), index=IndexHolder(library, 0.0))
    for query in ("pizzeria", "a red picture", "laundry open late"):
        assert len(engine.search(SearchQuery(q=query, k=3, mode=mode)).results) == 3
    assert lookups == []


def test_text_read_in_a_picture_later_is_found_once_the_holder_checks_again(
    library, tiny_encoder, make_settings, tmp_path, lookups
):
    settings = make_settings()
    _plain_pictures(library, tiny_encoder, settings, tmp_path / "plain")
    checks_now = IndexHolder(library, 0.0)
    checks_hourly = IndexHolder(library, 3600.0)
    now, hourly = (
        SearchEngine(library, settings, QueryEmbedder(tiny_encoder), index=holder)
        for holder in (checks_now, checks_hourly)
    )
    for engine in (now, hourly):
        assert not any(r.text_matches for r in engine.search(SearchQuery(q="pizzeria", k=3)).results)
    _read_in(library, "plain1.jpg", "PIZZERIA")
    top = now.search(SearchQuery(q="pizzeria", k=3)).results[0]
    assert Path(top.path).name == "plain1.jpg" and top.text_matches
    assert lookups == ["pizzeria"]
    # The other holder asked within its interval: it has not looked again yet.
    assert not any(r.text_matches for r in hourly.search(SearchQuery(q="pizzeria", k=3)).results)
    assert lookups == ["pizzeria"]
