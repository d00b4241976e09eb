"""Probes, OpenAPI docs, an empty library, a library being indexed while served (live index swaps)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from api_fixtures import (  # noqa: F401
    api_settings,
    assert_error,
    catalogue,
    client,
    index_into,
    module_database_url,
    served,
)
from conftest import save_image
from glimpse.core.library import Library
from glimpse.search.api.app import create_app


def test_healthz_and_readyz_on_a_served_library(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    body = client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] and body["checks"]["model"]["name"] == "glimpse-tiny"
    assert body["checks"]["index"]["ok"] and body["checks"]["index"]["size"] > 60


def test_openapi_documents_every_route_with_examples(client):
    spec = client.get("/openapi.json").json()
    assert {
        "/healthz",
        "/readyz",
        "/v1/search",
        "/v1/search/image",
        "/v1/items/{item_id}",
        "/v1/items/{item_id}/similar",
        "/v1/media/{item_id}",
        "/v1/thumbnails/{unit_id}",
        "/v1/embed",
        "/v1/stats",
    } <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert schemas["SearchQuery"]["examples"] and schemas["SearchResponse"]["examples"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
    search_422 = spec["paths"]["/v1/search"]["post"]["responses"]["422"]
    assert search_422["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert "multipart/form-data" in spec["paths"]["/v1/embed"]["post"]["requestBody"]["content"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_unknown_routes_and_methods_use_the_error_shape(client):
    err = assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    assert "/v1/nothing-here" in err["message"]
    assert_error(client.delete("/v1/search"), 405, "method_not_allowed")


def test_an_empty_library_serves_health_and_empty_stats(tmp_path, database_url):
    with TestClient(create_app(api_settings(tmp_path / "empty", database_url))) as c:
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        err = assert_error(ready, 503, "not_ready")
        assert "nothing indexed" in err["message"] and ready.json()["checks"]["model"]["ok"] is False
        stats = c.get("/v1/stats").json()
        assert stats["items"] == {"image": 0, "video": 0} and stats["units"] == 0 and stats["model"] is None
        assert_error(c.get("/v1/search", params={"q": "red"}), 503, "library_empty")
        assert_error(c.post("/v1/embed", json={"text": "red"}), 503, "library_empty")
        assert_error(c.get("/v1/items/1"), 404, "not_found")


def test_an_index_published_while_serving_is_served_without_restart(tmp_path, database_url, tiny_encoder):
    """Start on an empty library; an indexer (here in-process) publishes twice; the API follows."""
    settings = api_settings(tmp_path / "live", database_url)
    first, second = tmp_path / "first", tmp_path / "second"
    for i in range(3):
        save_image(first / f"a{i}.jpg", "red", seed=i)
        save_image(second / f"b{i}.jpg", "blue", seed=10 + i)
    with TestClient(create_app(settings)) as c:
        assert_error(c.get("/v1/search", params={"q": "red"}), 503, "library_empty")
        index_into(settings, tiny_encoder, first)
        time.sleep(1.1)  # the engine checks for a new index at most once a second
        r = c.get("/v1/search", params={"q": "red", "k": 50})
        assert r.status_code == 200 and len(r.json()["results"]) == 3
        assert c.get("/readyz").status_code == 200
        index_into(settings, tiny_encoder, first, second)
        time.sleep(1.1)
        paths = {
            x["path"].rsplit("/", 1)[-1]
            for x in c.get("/v1/search", params={"q": "red", "k": 50}).json()["results"]
        }
        assert paths == {"a0.jpg", "a1.jpg", "a2.jpg", "b0.jpg", "b1.jpg", "b2.jpg"}
        assert c.get("/v1/stats").json()["index"]["version"] == 2


def test_readyz_fails_while_the_served_index_disagrees_with_the_catalogue(
    tmp_path, database_url, tiny_encoder
):
    settings = api_settings(tmp_path / "lib", database_url)
    folder = tmp_path / "photos"
    for i in range(3):
        save_image(folder / f"{i}.jpg", "green", seed=i)
    index_into(settings, tiny_encoder, folder)
    save_image(folder / "late.jpg", "white", seed=9)
    library = Library(settings)
    try:
        # An indexer committed a new item to SQL and still holds the lock (no index published yet):
        # the API cannot repair, and serves the last published index.
        with library.writer_lock():
            from glimpse.core.catalogue import Asset, Unit
            from glimpse.core.vocabulary import Status

            with library.Session.begin() as s:
                s.add(
                    Unit(
                        asset=Asset(
                            path=str(folder / "late.jpg"),
                            kind="image",
                            size=1,
                            mtime_ns=1,
                            status=Status.INDEXED,
                        )
                    )
                )
            with TestClient(create_app(settings)) as c:
                ready = c.get("/readyz")
                assert_error(ready, 503, "not_ready")
                assert ready.json()["checks"]["index"]["ok"] is False
                assert len(c.get("/v1/search", params={"q": "x", "k": 50}).json()["results"]) == 3
    finally:
        library.close()
