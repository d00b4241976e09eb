"""Fixtures and helpers for the API tests (imported by each test module: a conftest.py here would
shadow the root one's helpers that tests import as ``conftest``).

A real library for the API tests: 60 generated product images with a catalogue manifest and two
encoded videos, indexed by the real Indexer on SQLite and on PostgreSQL (once per module and
database, since indexing is the slow part), served by the real app through TestClient.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import save_image, tiny_settings
from glimpse.core.encoder import Encoder
from glimpse.core.library import Library
from glimpse.core.settings import Settings
from glimpse.indexer.manifest import import_manifest
from glimpse.indexer.pipeline import Indexer
from glimpse.search.api.app import create_app
from videos import BLUE, GREEN, RED, Scene, coloured_video

PALETTE = ["red", "green", "blue", "yellow", "black", "white"]
# 60 images: 3 shoes (selective filter), 12 bags, the rest shirts; prices 5..300.
CATEGORY_OF = {**dict.fromkeys((7, 23, 41), "shoes"), **dict.fromkeys(range(0, 60, 5), "bags")}


def category(i: int) -> str:
    return CATEGORY_OF.get(i, "shirts")


def price(i: int) -> float:
    return float(5 + (i * 37) % 296)


@dataclass
class Catalogue:
    photos: Path
    clips: Path
    manifest: Path


@dataclass
class Served:
    settings: Settings
    catalogue: Catalogue
    ids: dict[str, int]  # file name -> asset id


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    root = tmp_path_factory.mktemp("catalogue")
    photos, clips = root / "photos", root / "clips"
    rows = []
    for i in range(60):
        name = f"item-{i:02d}.{'png' if i % 4 == 0 else 'jpg'}"
        save_image(photos / name, PALETTE[i % len(PALETTE)], size=(96 + i % 7, 72), seed=i)
        rows.append(
            {
                "path": name,
                "title": f"Product {i}",
                "price": price(i),
                "category": category(i),
                "sku": f"SKU-{i:03d}",
            }
        )
    with open(photos / "catalogue.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    clips.mkdir()
    coloured_video(clips / "scenes.mp4", [Scene(4.0, RED), Scene(3.0, GREEN), Scene(4.0, BLUE)])
    coloured_video(clips / "dock.mp4", [Scene(3.0, BLUE), Scene(3.0, RED)])
    return Catalogue(photos, clips, photos / "catalogue.csv")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Like the root ``database_url`` fixture, but one database per test module (indexing once)."""
    if request.param == "sqlite":
        yield None
        return
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"glimpse_api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(server.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def api_settings(data_dir: Path, database_url: str | None, **overrides) -> Settings:
    return tiny_settings(data_dir, database_url, **{"batch_size": 16, **overrides})


def index_into(settings: Settings, encoder: Encoder, *folders: Path) -> None:
    library = Library(settings)
    try:
        Indexer(library, encoder, settings).run(list(folders))
    finally:
        library.close()


@pytest.fixture(scope="module")
def served(
    catalogue: Catalogue, module_database_url: str | None, tiny_encoder: Encoder, tmp_path_factory
) -> Served:
    settings = api_settings(tmp_path_factory.mktemp("library"), module_database_url)
    library = Library(settings)
    try:
        summary = Indexer(library, tiny_encoder, settings).run([catalogue.photos, catalogue.clips])
        assert not summary.failed, summary.failed
        report = import_manifest(library, catalogue.manifest)
        assert report.updated == 60, report.as_dict()
        with library.Session() as s:
            from sqlalchemy import select

            from glimpse.core.catalogue import Asset

            ids = {Path(p).name: i for i, p in s.execute(select(Asset.id, Asset.path))}
    finally:
        library.close()
    return Served(settings, catalogue, ids)


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[TestClient]:
    with TestClient(create_app(served.settings)) as c:
        yield c


def result_ids(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["results"]]


def assert_error(response, status: int, code: str) -> dict:
    """The stable error shape, with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) >= {"code", "message", "status"}, body
    assert body["error"]["status"] == status
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


def exact_image_ranking(settings: Settings, query, k: int) -> list[tuple[int, float]]:
    """(asset id, score) of the k images closest to ``query``, by brute force over the stored vectors."""
    import numpy as np
    from sqlalchemy import select

    from glimpse.core.catalogue import Asset, Unit

    library = Library(settings)
    try:
        ids, vectors = library.vector_store().load(wanted=library.live_unit_ids())
        with library.Session() as s:
            image_asset = dict(
                s.execute(select(Unit.id, Unit.asset_id).join(Asset).where(Asset.kind == "image")).all()
            )
    finally:
        library.close()
    scores = vectors @ np.asarray(query, dtype=np.float32)
    ranked = sorted(
        (
            (float(sc), image_asset[int(u)])
            for u, sc in zip(ids, scores, strict=True)
            if int(u) in image_asset
        ),
        key=lambda t: -t[0],
    )
    return [(a, sc) for sc, a in ranked[:k]]


def assert_exact_ranking(results: list[dict], exact: list[tuple[int, float]]) -> None:
    """``results`` are a top-k of ``exact`` (the full brute-force ranking): same scores position by
    position, and each id scored as brute force scores it (so near-ties may swap, nothing else)."""
    import pytest

    exact_score = dict(exact)
    assert len(results) == min(len(results), len(exact)) and results
    for position, r in enumerate(results):
        assert r["score"] == pytest.approx(exact[position][1], abs=2e-5), position
        assert exact_score[r["id"]] == pytest.approx(r["score"], abs=2e-5), r["id"]
    assert len({r["id"] for r in results}) == len(results)
