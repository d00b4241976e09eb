"""Text in pictures (OCR while indexing): read in real fonts, stored per unit, found by search.

glimpse-tiny's vectors are random, so when a query for a word finds the one picture showing it,
the text ranking (the database's own full-text engine, fused with the vector ranking) found it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import func, select

from conftest import save_image
from glimpse.core import ocr_text
from glimpse.core.catalogue import Asset, Unit
from glimpse.core.ocr import OcrConfig, read_text
from glimpse.core.vocabulary import Status
from glimpse.indexer.pipeline import Indexer
from glimpse.search.embedding import QueryEmbedder
from glimpse.search.engine import SearchEngine
from glimpse.search.query import SearchQuery
from glimpse.search.snapshots import IndexHolder
from textpics import BUDGET, font, text_picture
from videos import write_video


def _index(library, encoder, settings, *paths):
    return Indexer(library, encoder, settings).run(list(paths))


@pytest.fixture
def shop_signs(tmp_path: Path) -> Path:
    """Three pictures with a word each (fonts, sizes and angles differ) among three without text."""
    root = tmp_path / "signs"
    root.mkdir()
    text_picture("PIZZERIA", font_size=44).save(root / "a.jpg", quality=92)
    text_picture("Bakery", font_name="DejaVuSerif-Bold.ttf", font_size=36, angle=8).save(root / "b.png")
    text_picture(
        "LAUNDRY",
        font_name="DejaVuSansMono-Bold.ttf",
        font_size=30,
        angle=-12,
        background=(40, 60, 90),
        ink=(250, 250, 240),
    ).save(root / "c.jpg", quality=92)
    for i, colour in enumerate(["red", "green", "blue"]):
        save_image(root / f"plain{i}.jpg", colour, size=(160, 120), seed=i)
    return root


def test_the_text_of_a_picture_is_read_with_confidence_and_a_box_around_it():
    picture = text_picture("PIZZERIA", size=(400, 300), font_size=44)
    result = read_text(picture, OcrConfig(budget_seconds=BUDGET))
    assert result.error is None, result.error
    assert [line.text for line in result.lines] == ["PIZZERIA"]
    line = result.lines[0]
    assert 0.6 <= line.confidence <= 1.0
    xs, ys = [x for x, _ in line.box], [y for _, y in line.box]
    # The word is centred: its box lies around the middle, inside the picture.
    assert 0 <= min(xs) < 200 < max(xs) <= 400 and 0 <= min(ys) < 150 < max(ys) <= 300


def test_a_word_only_in_one_pictures_text_finds_that_picture_first(
    library, tiny_encoder, make_settings, shop_signs
):
    settings = make_settings(ocr=True, ocr_budget_seconds=BUDGET)
    summary = _index(library, tiny_encoder, settings, shop_signs)
    assert summary.indexed == 6 and not summary.failed and not summary.warnings
    engine = SearchEngine(library, settings, QueryEmbedder(tiny_encoder))
    for query, name in [("pizzeria", "a.jpg"), ("a bakery", "b.png"), ("LAUNDRY open late", "c.jpg")]:
        page = engine.search(SearchQuery(q=query, k=6))
        top = page.results[0]
        assert Path(top.path).name == name, (query, [Path(r.path).name for r in page.results])
        assert len(page.results) == 6  # the vector ranking still ranks the rest
        match = top.text_matches[0]
        assert match["source"] == "ocr" and match["time"] is None
        assert match["label"].lower() == f"ocr: '{match['text'].lower()}'"
        assert "**" in match["snippet"]
    # Pictures without text never get a text match.
    page = engine.search(SearchQuery(q="pizzeria", k=6))
    assert all(not r.text_matches for r in page.results if r.path.endswith(("plain0.jpg", "plain1.jpg")))
    with library.Session() as s:
        read = s.scalar(select(func.count()).select_from(ocr_text.OcrText))
        lines = s.scalar(select(func.count()).select_from(ocr_text.OcrLineRow))
    assert read == 6  # every picture was read once, the three plain ones with nothing legible
    assert lines == 3


def test_pages_of_a_fused_ranking_follow_each_other_without_gaps_or_repeats(
    library, tiny_encoder, make_settings, shop_signs
):
    settings = make_settings(ocr=True, ocr_budget_seconds=BUDGET)
    _index(library, tiny_encoder, settings, shop_signs)
    engine = SearchEngine(library, settings, QueryEmbedder(tiny_encoder))
    query = "laundry or bakery or pizzeria"
    whole = [r.id for r in engine.search(SearchQuery(q=query, k=6)).results]
    paged, offset = [], 0
    while offset is not None:
        page = engine.search(SearchQuery(q=query, k=2), offset=offset)
        paged += [r.id for r in page.results]
        offset = page.next_offset
    assert paged == whole and len(set(whole)) == 6
    names = [Path(r.path).name for r in engine.search(SearchQuery(q=query, k=6)).results]
    assert set(names[:3]) == {"a.jpg", "b.png", "c.jpg"}  # the three with text come first


def test_a_word_shown_during_20_to_25_s_of_a_video_finds_a_moment_covering_that_time(
    library, tiny_encoder, make_settings, tmp_path
):
    # Three shots: a yard, the sign (20-25 s), the yard at dusk; 30 s at 2 frames/s.
    yard = np.asarray(Image.new("RGB", (320, 180), (60, 90, 70)))
    dusk = np.asarray(Image.new("RGB", (320, 180), (200, 120, 40)))
    sign = np.asarray(
        text_picture(
            "WAREHOUSE", size=(320, 180), font_size=34, background=(20, 30, 120), ink=(250, 240, 200)
        )
    )
    frames = [yard] * 40 + [sign] * 10 + [dusk] * 10
    (tmp_path / "media").mkdir()
    video = write_video(tmp_path / "media" / "dock.mp4", frames, fps=2)
    settings = make_settings(ocr=True, ocr_budget_seconds=BUDGET)
    summary = _index(library, tiny_encoder, settings, video.parent)
    assert summary.indexed == 1 and not summary.warnings
    engine = SearchEngine(library, settings, QueryEmbedder(tiny_encoder))
    page = engine.search(SearchQuery(q="warehouse", k=5))
    top = page.results[0]
    assert top.kind == "video" and top.start is not None and top.end is not None
    assert top.start <= 21 and top.end >= 24, (top.start, top.end)
    assert top.best_time is not None and 20 <= top.best_time < 25
    match = top.text_matches[0]
    assert match["text"] == "WAREHOUSE" and 20 <= match["time"] < 25
    assert match["label"] == f"OCR: 'WAREHOUSE' at 00:00:{int(match['time']):02d}"
    # The text is stored with the segments that show it, and only with them.
    with library.Session() as s:
        rows = s.execute(
            select(Unit.t_start, Unit.t_end, ocr_text.OcrText.text).join(
                ocr_text.OcrText, ocr_text.OcrText.unit_id == Unit.id
            )
        ).all()
    assert rows and all((text == "WAREHOUSE") == (start < 25 and end > 20) for start, end, text in rows), rows


def test_a_model_that_cannot_load_is_reported_and_a_later_run_reads_without_re_embedding(
    library, tiny_encoder, make_settings, shop_signs, tmp_path
):
    broken = tmp_path / "no-models"
    broken.mkdir()
    summary = _index(
        library,
        tiny_encoder,
        make_settings(ocr=True, ocr_budget_seconds=BUDGET, ocr_models=str(broken)),
        shop_signs,
    )
    assert summary.indexed == 6 and not summary.failed
    assert len(summary.warnings) == 6
    assert all("OCR: the OCR model cannot load" in w for _, w in summary.warnings)
    with library.Session() as s:
        assert s.scalar(select(func.count()).select_from(ocr_text.OcrText)) == 0  # nothing marked read
        assert {a.status for a in s.scalars(select(Asset))} == {Status.INDEXED}
    before = _units_and_shards(library)

    # The model is back: the text is filled in, nothing is embedded again.
    summary = _index(library, tiny_encoder, make_settings(ocr=True, ocr_budget_seconds=BUDGET), shop_signs)
    assert summary.indexed == 0 and summary.unchanged == 6 and not summary.warnings
    assert _units_and_shards(library) == before
    engine = SearchEngine(library, make_settings(), QueryEmbedder(tiny_encoder))
    assert Path(engine.search(SearchQuery(q="pizzeria", k=3)).results[0].path).name == "a.jpg"


def test_turning_ocr_on_later_fills_in_text_without_re_embedding_and_only_once(
    library, tiny_encoder, make_settings, shop_signs, tmp_path
):
    blank = np.asarray(Image.new("RGB", (320, 180), (30, 30, 30)))
    sign = np.asarray(text_picture("GARAGE", size=(320, 180), background=(30, 30, 30), ink=(240, 240, 240)))
    write_video(shop_signs / "clip.mp4", [blank] * 6 + [sign] * 6, fps=2)
    summary = _index(library, tiny_encoder, make_settings(), shop_signs)
    assert summary.indexed == 7
    # A holder that looks for text read in pictures on every search: a served API looks at most
    # once a second while it has found none (tests/search/test_ocr_presence.py).
    engine = SearchEngine(
        library, make_settings(), QueryEmbedder(tiny_encoder), index=IndexHolder(library, min_interval=0.0)
    )
    assert not any(r.text_matches for r in engine.search(SearchQuery(q="pizzeria", k=7)).results)
    before = _units_and_shards(library)

    summary = _index(library, tiny_encoder, make_settings(ocr=True, ocr_budget_seconds=BUDGET), shop_signs)
    assert summary.indexed == 0 and summary.unchanged == 7 and not summary.warnings
    assert _units_and_shards(library) == before
    assert Path(engine.search(SearchQuery(q="pizzeria", k=3)).results[0].path).name == "a.jpg"
    top = engine.search(SearchQuery(q="garage", k=3)).results[0]
    assert top.kind == "video" and top.text_matches[0]["time"] >= 3
    with library.Session() as s:
        assert ocr_text.unread_units(s) == []
        read = s.scalar(select(func.count()).select_from(ocr_text.OcrText))
    assert read == len(before[0])

    # Once read, unchanged files are not read again.
    summary = _index(library, tiny_encoder, make_settings(ocr=True, ocr_budget_seconds=BUDGET), shop_signs)
    assert summary.unchanged == 7 and not summary.warnings
    with library.Session() as s:
        assert s.scalar(select(func.count()).select_from(ocr_text.OcrText)) == read


def test_a_picture_over_its_time_budget_is_reported_and_still_indexed(
    library, tiny_encoder, make_settings, tmp_path
):
    page = Image.new("RGB", (640, 480), "white")
    draw = ImageDraw.Draw(page)
    face = font("DejaVuSans.ttf", 14)
    for row in range(20):
        draw.text(
            (10, 10 + 23 * row), f"line {row} of a page of small print in a photo", font=face, fill="black"
        )
    page.save(tmp_path / "page.png")
    summary = _index(
        library, tiny_encoder, make_settings(ocr=True, ocr_budget_seconds=1e-6), tmp_path / "page.png"
    )
    assert summary.indexed == 1 and not summary.failed
    assert len(summary.warnings) == 1 and "OCR stopped at its budget" in summary.warnings[0][1]
    with library.Session() as s:
        row = s.scalars(select(ocr_text.OcrText)).one()
    assert row.text == "" and "budget" in (row.error or "")  # recorded: not read again next run


def test_removing_a_file_removes_its_text_from_the_search(library, tiny_encoder, make_settings, shop_signs):
    settings = make_settings(ocr=True, ocr_budget_seconds=BUDGET)
    _index(library, tiny_encoder, settings, shop_signs)
    (shop_signs / "a.jpg").unlink()
    _index(library, tiny_encoder, settings, shop_signs)
    with library.Session() as s:
        assert ocr_text.search(s, "pizzeria") == []
        assert [h.line for h in ocr_text.search(s, "bakery")] == ["Bakery"]


def _units_and_shards(library) -> tuple[list[int], list[str]]:
    with library.Session() as s:
        units = list(s.scalars(select(Unit.id).order_by(Unit.id)))
    shards = sorted(p.name for p in (library.root / "vectors").rglob("*") if p.is_file())
    return units, shards
