"""Signed media links: a browser streams one item's file without the API key, until the link expires."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api_fixtures import assert_error, catalogue, client, module_database_url, served  # noqa: F401
from glimpse.search.api.app import create_app
from glimpse.search.api.links import link_secret, sign

KEYS = ["client-key-1"]
AUTH = {"Authorization": f"Bearer {KEYS[0]}"}


@pytest.fixture(scope="module")
def keyed(served) -> Iterator[TestClient]:
    with TestClient(create_app(served.settings.model_copy(update={"api_keys": KEYS}))) as c:
        yield c


def test_a_link_lets_a_keyless_client_fetch_that_file_with_range(keyed, served):
    item = served.ids["scenes.mp4"]
    assert_error(keyed.get(f"/v1/media/{item}"), 401, "unauthorized")
    link = keyed.get(f"/v1/media/{item}/link", headers=AUTH).json()
    assert link["url"].startswith(f"/v1/media/{item}?expires=") and link["expires_at"]
    whole = keyed.get(link["url"])
    assert whole.status_code == 200 and whole.content == (served.catalogue.clips / "scenes.mp4").read_bytes()
    part = keyed.get(link["url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == whole.content[:100]


def test_a_link_opens_only_its_own_item_and_only_until_it_expires(keyed, served):
    item, other = served.ids["scenes.mp4"], served.ids["dock.mp4"]
    url = keyed.get(f"/v1/media/{item}/link", headers=AUTH).json()["url"]
    query = url.split("?", 1)[1]
    assert_error(keyed.get(f"/v1/media/{other}?{query}"), 403, "invalid_link")
    tampered = query[:-2] + ("AA" if not query.endswith("AA") else "BB")
    assert_error(keyed.get(f"/v1/media/{item}?{tampered}"), 403, "invalid_link")
    secret = link_secret(keyed.app.state.service.settings)
    assert secret is not None
    past = int(time.time()) - 1
    expired = f"/v1/media/{item}?expires={past}&token={sign(secret, item, past)}"
    assert_error(keyed.get(expired), 403, "invalid_link")
    # Links open the file, nothing else: other routes still want the key.
    assert_error(keyed.get(f"/v1/items/{item}?{query}"), 401, "unauthorized")


def test_replicas_with_the_same_keys_accept_each_others_links(keyed, served):
    item = served.ids["scenes.mp4"]
    url = keyed.get(f"/v1/media/{item}/link", headers=AUTH).json()["url"]
    with TestClient(create_app(served.settings.model_copy(update={"api_keys": KEYS}))) as replica:
        assert replica.get(url).status_code == 200
    with TestClient(create_app(served.settings.model_copy(update={"api_keys": ["another-key"]}))) as other:
        assert_error(other.get(url), 403, "invalid_link")


def test_without_keys_a_link_is_the_plain_file_address(client, served):
    item = served.ids["scenes.mp4"]
    link = client.get(f"/v1/media/{item}/link").json()
    assert link == {"url": f"/v1/media/{item}", "expires_at": None}
    assert client.get(link["url"]).status_code == 200
    assert_error(client.get("/v1/media/999999/link"), 404, "not_found")
