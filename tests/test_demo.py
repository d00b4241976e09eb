"""`glimpse demo`: an offline library whose search results obviously match the query."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from glimpse.core.library import Library
from glimpse.demo import build_demo_library
from glimpse.search.embedding import QueryEmbedder
from glimpse.search.engine import SearchEngine
from glimpse.search.query import SearchQuery

pytestmark = pytest.mark.slow

ITEMS, VIDEOS = 60, 1


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from glimpse.core.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("demo") / "data", device="cpu", workers=1)
    built = build_demo_library(settings, items=ITEMS, videos=VIDEOS)
    return settings.model_copy(update={"model": "glimpse-demo", "pretrained": None}), built


def test_builds_an_indexed_catalogue_with_shop_fields_and_videos(demo):
    _, built = demo
    assert built.summary.failed == [] and built.summary.indexed == ITEMS + VIDEOS
    assert built.manifest_rows == ITEMS


def test_colour_and_shape_queries_return_that_colour_and_shape_first(demo, demo_encoder):
    settings, built = demo
    # The generated titles name what each image shows ("Small red circle badge"): the ground truth.
    with built.manifest.open(newline="") as fh:
        shown = Counter(tuple(row["title"].lower().split()[1:3]) for row in csv.DictReader(fh))
    library = Library(settings)
    try:
        engine = SearchEngine(library, settings, QueryEmbedder(demo_encoder))
        for (colour, shape), count in shown.most_common(4):
            page = engine.search(SearchQuery(q=f"{colour} {shape}", media="image", k=count))
            titles = [(r.title or "").lower() for r in page.results]
            # The best hit is exactly right, every hit has the colour, and most have the shape too.
            assert _shows(titles[0], colour, shape), (colour, shape, titles)
            assert all(colour in t.split() for t in titles), (colour, shape, titles)
            assert sum(_shows(t, colour, shape) for t in titles) >= 0.66 * count, (colour, shape, titles)
    finally:
        library.close()


def _shows(title: str, colour: str, shape: str) -> bool:
    words = title.lower().split()
    return colour in words and shape in words


def test_the_cli_builds_the_demo_without_serving_and_a_search_finds_products(tmp_path):
    env = {**os.environ, "GLIMPSE_DATA_DIR": str(tmp_path / "data"), "GLIMPSE_WORKERS": "1"}
    glimpse = [sys.executable, "-m", "glimpse"]
    built = subprocess.run(
        [*glimpse, "demo", "--items", "24", "--videos", "0", "--no-serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    found = subprocess.run(
        [*glimpse, "search", "a red circle", "-k", "3", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    results = json.loads(found.stdout)["results"]
    assert len(results) == 3 and all(r["kind"] == "image" for r in results)
    # The CLI's JSON shows paths as the API does: from the media folder, not the server's root.
    assert all(r["path"].startswith("demo-media/catalogue/") for r in results), results
