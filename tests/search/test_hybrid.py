"""Keyword + vector search on a generated shop whose pictures and texts each tell only half.

The shop (``training/synthetic.py`` ``make_shop``): red, green and blue circles, squares and
triangles by Acme, Borealis and Corvid in ceramic and enamel, plus other brands' stars, crosses and
rings; titles and descriptions name the brand, the material and the shape, never the colour. So
"red circle Acme" needs the image (red) and the text (Acme) together. Real bulk import of the
glimpse-demo model's image vectors, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import tiny_settings
from glimpse.cli import app as cli_app
from glimpse.core.catalogue import Asset
from glimpse.core.encoder import Encoder
from glimpse.core.library import Library
from glimpse.core.models import ModelRef
from glimpse.indexer.bulk import import_vectors
from glimpse.search.api.app import create_app
from glimpse.search.embedding import QueryEmbedder
from glimpse.search.engine import SearchEngine
from glimpse.search.evaluation import Labelled, evaluate, measures
from glimpse.search.query import Mode, QueryError, SearchQuery, Sort
from glimpse.search.relevance import RELEVANT
from glimpse.training.synthetic import ShopItem, make_shop

ABSENT = "a photo of a zebra"  # neither in any picture nor in any text


@pytest.fixture(scope="module")
def shop(demo_encoder: Encoder) -> tuple[list[ShopItem], np.ndarray]:
    made = make_shop(seed=0)
    return [item for _, item in made], demo_encoder.encode_images([image for image, _ in made])


def _fields(item: ShopItem) -> dict:
    return {
        "sku": item.sku,
        "title": item.title,
        "description": item.description,
        "price": item.price,
        "category": item.category,
    }


@pytest.fixture
def settings(tmp_path, database_url):
    return tiny_settings(tmp_path / "library", database_url, model="glimpse-demo")


@pytest.fixture
def engine(settings, shop, demo_encoder):
    items, vectors = shop
    library = Library(settings)
    import_vectors(
        library,
        ModelRef("glimpse-demo", settings.pretrained),
        [f"/shop/{i.sku}.jpg" for i in items],
        vectors,
        fields=[_fields(i) for i in items],
    )
    yield SearchEngine(library, settings, QueryEmbedder(demo_encoder))
    library.close()


def _labels(items: list[ShopItem]) -> list[Labelled]:
    labels = []
    for brand in ("Acme", "Borealis", "Corvid"):
        for colour, shape in (("red", "circle"), ("blue", "square"), ("green", "triangle")):
            relevant = tuple(
                i.sku for i in items if (i.brand, i.scene.colour, i.scene.shape) == (brand, colour, shape)
            )
            labels.append(Labelled(f"{colour} {shape} {brand}", relevant))
    labels.append(Labelled(ABSENT, ()))
    return labels


def _skus(engine: SearchEngine, results) -> list[str]:
    return [r.metadata["sku"] for r in results]


def test_hybrid_beats_vector_only_and_keyword_only_on_ndcg(engine, shop):
    report = evaluate(engine, _labels(shop[0]), list(Mode), k=10)
    modes = report["modes"]
    assert modes["hybrid"]["ndcg@10"] > modes["vector"]["ndcg@10"]
    assert modes["hybrid"]["ndcg@10"] > modes["keyword"]["ndcg@10"]
    assert modes["hybrid"]["ndcg@10"] >= 0.9 and modes["hybrid"]["mrr"] == 1.0
    assert modes["hybrid"]["false_hits"] == 0 and report["unknown"] == []


def test_glimpse_eval_prints_each_modes_measures_as_json(engine, shop, settings, tmp_path, monkeypatch):
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        "\n".join(json.dumps({"query": x.query, "relevant": list(x.relevant)}) for x in _labels(shop[0]))
    )
    monkeypatch.setenv("GLIMPSE_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("GLIMPSE_DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(cli_app, ["eval", str(labels), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["modes"]) == {"hybrid", "vector", "keyword"}
    assert report["modes"]["hybrid"] == evaluate(engine, _labels(shop[0]), [Mode.HYBRID])["modes"]["hybrid"]


def test_the_measures_follow_their_textbook_definitions():
    m = measures([5, 1, 7, 2], {1, 2, 9}, k=3)
    assert m["recall"] == pytest.approx(1 / 3)
    assert m["rr"] == 0.5
    ideal = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert m["ndcg"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(5)) / ideal)


@pytest.mark.parametrize("mode", [Mode.HYBRID, Mode.KEYWORD, None])
def test_a_sku_puts_that_item_first_and_says_so(engine, shop, mode):
    target = shop[0][40]
    page = engine.search(SearchQuery(q=target.sku.lower(), mode=mode, k=5))
    first = page.results[0]
    assert first.metadata["sku"] == target.sku and first.matched["sku"] is True
    assert first.relevance == 1.0


def test_an_absent_thing_has_no_relevant_results_though_a_raw_top_k_has_k(engine):
    for mode in (Mode.HYBRID, Mode.VECTOR):
        assert len(engine.search(SearchQuery(q=ABSENT, mode=mode, k=10)).results) == 10
        assert engine.search(SearchQuery(q=ABSENT, mode=mode, k=10, relevant_only=True)).results == []
    assert engine.search(SearchQuery(q=ABSENT, mode=Mode.KEYWORD, k=10)).results == []


def test_relevant_only_keeps_what_the_query_names_and_drops_the_rest(engine, shop):
    page = engine.search(SearchQuery(q="red circle", mode=Mode.VECTOR, k=50, relevant_only=True))
    assert page.results and all(r.relevance >= RELEVANT for r in page.results)
    scenes = {r.metadata["sku"]: None for r in page.results}
    by_sku = {i.sku: i for i in shop[0]}
    red_circles = {i.sku for i in shop[0] if (i.scene.colour, i.scene.shape) == ("red", "circle")}
    assert red_circles <= set(scenes), "every red circle is relevant"
    assert not any(by_sku[s].scene.shape in ("star", "cross", "ring") for s in scenes)


def test_each_hit_says_which_rankings_found_it_and_where(engine):
    page = engine.search(SearchQuery(q="red circle Acme", k=5))  # default: hybrid (the shop has text)
    first = page.results[0]
    assert first.title == "Acme circle badge"
    assert first.matched["vector"]["rank"] >= 1 and -1 <= first.matched["vector"]["score"] <= 1
    keyword = first.matched["keyword"]
    assert keyword["field"] == "title" and keyword["snippet"] == "«Acme» «circle» badge"
    assert keyword["all_words"] is False  # "red" is in the picture, not in the text
    assert first.matched["fused"] > 0


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("sort", [Sort.PRICE_ASC, Sort.PRICE_DESC, Sort.NEWEST, Sort.RELEVANCE])
def test_pages_of_a_filtered_sorted_search_add_up_to_one_list_without_duplicates_or_gaps(engine, mode, sort):
    q = "circle" if mode == Mode.KEYWORD else "red circle"  # the picture alone shows "red"
    base = {"q": q, "mode": mode, "sort": sort, "relevant_only": True, "filters": {"price": {"lte": 80}}}
    whole = engine.search(SearchQuery(**base, k=200)).results
    assert whole, "the filtered relevant set is not empty"
    walked, offset = [], 0
    while offset is not None:
        page = engine.search(SearchQuery(**base, k=3), offset=offset)
        walked += page.results
        offset = page.next_offset
    assert [r.id for r in walked] == [r.id for r in whole]
    assert len({r.id for r in walked}) == len(walked)
    assert all(r.metadata["price"] <= 80 and r.relevance >= RELEVANT for r in whole)
    prices = [r.metadata["price"] for r in whole]
    if sort == Sort.PRICE_ASC:
        assert prices == sorted(prices)
    if sort == Sort.PRICE_DESC:
        assert prices == sorted(prices, reverse=True)


def test_keyword_search_needs_words(engine):
    with pytest.raises(QueryError, match="words"):
        engine.search(SearchQuery(image_id=1, mode=Mode.KEYWORD))


def test_a_library_without_text_searches_by_vector_as_before(tmp_path, database_url, shop, demo_encoder):
    items, vectors = shop
    settings = tiny_settings(tmp_path / "bare", database_url, model="glimpse-demo")
    library = Library(settings)
    try:
        import_vectors(
            library,
            ModelRef("glimpse-demo", settings.pretrained),
            [f"/b/{i}.jpg" for i in range(len(items))],
            vectors,
        )
        engine = SearchEngine(library, settings, QueryEmbedder(demo_encoder))
        assert engine.resolve_mode(SearchQuery(q="red circle")) == Mode.VECTOR
        default = engine.search(SearchQuery(q="red circle", k=10)).results
        vector = engine.search(SearchQuery(q="red circle", k=10, mode=Mode.VECTOR)).results
        assert [(r.id, r.score) for r in default] == [(r.id, r.score) for r in vector]
        assert "keyword" not in default[0].matched
    finally:
        library.close()


def test_the_api_takes_mode_relevant_only_and_sort_and_explains_each_hit(engine, settings):
    with TestClient(create_app(settings)) as client:
        r = client.get(
            "/v1/search",
            params={
                "q": "Acme circle",
                "mode": "hybrid",
                "relevant_only": "true",
                "sort": "price_asc",
                "k": 4,
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        prices = [x["metadata"]["price"] for x in body["results"]]
        assert prices == sorted(prices) and body["next"]
        assert all(x["relevance"] >= RELEVANT and x["matched"]["keyword"]["snippet"] for x in body["results"])
        r2 = client.get(
            "/v1/search",
            params={
                "q": "Acme circle",
                "mode": "hybrid",
                "relevant_only": "true",
                "sort": "price_asc",
                "k": 4,
                "cursor": body["next"],
            },
        )
        assert r2.status_code == 200 and r2.json()["results"][0]["metadata"]["price"] >= prices[-1]
        assert client.get("/v1/search", params={"q": "x", "mode": "fuzzy"}).status_code == 422


def test_glimpse_search_takes_mode_relevant_only_and_sort(engine, shop, settings, monkeypatch):
    monkeypatch.setenv("GLIMPSE_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("GLIMPSE_DATABASE_URL", settings.database_url)
    target = shop[0][7]
    result = CliRunner().invoke(cli_app, ["search", target.sku, "--local", "--json", "--mode", "keyword"])
    assert result.exit_code == 0, result.output
    first = json.loads(result.output)["results"][0]
    assert first["title"] == target.title and first["matched"]["sku"] is True
    result = CliRunner().invoke(
        cli_app,
        [
            "search",
            "circle",
            "--local",
            "--json",
            "--mode",
            "keyword",
            "--relevant-only",
            "--sort",
            "price_desc",
        ],
    )
    rows = json.loads(result.output)["results"]
    with engine.library.Session() as s:
        prices = [s.get(Asset, r["id"]).price for r in rows]
    assert rows and prices == sorted(prices, reverse=True) and all(r["relevance"] >= RELEVANT for r in rows)
    bad = CliRunner().invoke(cli_app, ["search", "circle", "--local", "--mode", "fuzzy"])
    assert bad.exit_code != 0 and "mode" in bad.output
