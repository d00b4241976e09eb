"""API keys: with keys configured every ``/v1`` route needs one; without keys the API is open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api_fixtures import assert_error, catalogue, client, module_database_url, served  # noqa: F401
from glimpse.search.api.app import create_app
from glimpse.search.api.deps import key_matches

KEYS = ["client-key-1", "ui-key-2"]


@pytest.fixture(scope="module")
def keyed(served) -> Iterator[TestClient]:
    with TestClient(create_app(served.settings.model_copy(update={"api_keys": KEYS}))) as c:
        yield c


def _v1_routes(c: TestClient) -> list[tuple[str, str]]:
    """Every (method, concrete url) under /v1, read from the app's own OpenAPI so new routes are covered."""
    found = []
    for path, operations in c.app.openapi()["paths"].items():
        if path.startswith("/v1"):
            url = path.replace("{item_id}", "1").replace("{unit_id}", "1")
            found += [(method.upper(), url) for method in sorted(operations)]
    return found


def test_every_v1_route_needs_a_key(keyed):
    routes = _v1_routes(keyed)
    # search GET+POST, search/image, item, similar, media, media link, thumbnail, embed, stats
    assert len(routes) == 10
    for method, url in routes:
        r = keyed.request(method, url)
        err = assert_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer"), url
        assert "Authorization: Bearer" in err["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"X-API-Key": "wrong"},
        {"Authorization": "Basic Y2xpZW50LWtleS0xOg=="},
        {"Authorization": "client-key-1"},
        {"Authorization": "Bearer client-key-1x"},
        {"Authorization": "Bearer client-key-"},
    ],
)
def test_wrong_or_malformed_keys_are_401(keyed, headers):
    assert_error(keyed.get("/v1/stats", headers=headers), 401, "unauthorized")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer client-key-1"},
        {"Authorization": "bearer ui-key-2"},
        {"X-API-Key": "ui-key-2"},
    ],
)
def test_any_configured_key_in_either_header_is_accepted(keyed, headers):
    assert keyed.get("/v1/stats", headers=headers).status_code == 200
    r = keyed.get("/v1/search", params={"q": "red", "k": 2}, headers=headers)
    assert r.status_code == 200 and len(r.json()["results"]) == 2


def test_with_a_key_every_v1_route_gets_past_auth(keyed):
    for method, url in _v1_routes(keyed):
        r = keyed.request(method, url, headers={"X-API-Key": "client-key-1"})
        assert r.status_code != 401, (method, url)


@pytest.mark.parametrize("url", ["/healthz", "/readyz", "/openapi.json", "/docs"])
def test_probes_and_docs_need_no_key(keyed, url):
    assert keyed.get(url).status_code == 200


def test_without_keys_configured_the_api_is_open(client):
    for method, url in _v1_routes(client):
        assert client.request(method, url).status_code != 401, url


def test_key_comparison_is_exact():
    assert key_matches("ui-key-2", KEYS) and key_matches("client-key-1", KEYS)
    assert (
        not key_matches("ui-key-", KEYS) and not key_matches("", KEYS) and not key_matches("UI-KEY-2", KEYS)
    )
    assert not key_matches("anything", [])
