"""Where the browser gets an original from (``api_access.browser_url``), against a scripted API.

The real API with signed links is not in this branch yet; these answers follow its contract:
``GET /v1/media/{id}/link`` (with the key) -> ``{"url": "/v1/media/{id}?token=...", "expires_at": ...}``,
404 from an API that has no such route.
"""

from __future__ import annotations

import httpx
import pytest

from glimpse.webui.api_access import LINK_MARGIN_S, browser_url
from glimpse.webui.client import ApiHttpError, GlimpseClient, Item

PUBLIC = "https://search.example"
VIDEO = Item(7, "video", "clips/harbour.mp4", None, "/v1/media/7", (70,), {})


def scripted(handler, key: str = "secret") -> tuple[GlimpseClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return GlimpseClient("http://api.internal:8000", api_key=key, transport=httpx.MockTransport(record)), seen


def signed(expires_at: float | None):
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/media/7/link"
        return httpx.Response(200, json={"url": "/v1/media/7?token=t0k&expires=99", "expires_at": expires_at})

    return handler


def test_without_a_key_the_browser_fetches_the_media_url_from_the_public_address():
    api, seen = scripted(lambda r: httpx.Response(500), key="")
    assert browser_url(api, VIDEO, PUBLIC, {}) == f"{PUBLIC}/v1/media/7"
    assert not seen  # nothing to ask the API for


def test_with_a_key_the_browser_gets_a_signed_link_and_never_the_key():
    api, seen = scripted(signed(1_000_000.0))
    url = browser_url(api, VIDEO, PUBLIC, {}, now=999_000.0)
    assert url == f"{PUBLIC}/v1/media/7?token=t0k&expires=99"
    assert "secret" not in url and seen[0].headers["authorization"] == "Bearer secret"


def test_a_signed_link_is_reused_while_it_lives_so_a_rerun_does_not_restart_the_player():
    api, seen = scripted(signed(1_000_000.0))
    links: dict = {}
    first = browser_url(api, VIDEO, PUBLIC, links, now=999_000.0)
    assert browser_url(api, VIDEO, PUBLIC, links, now=1_000_000.0 - LINK_MARGIN_S - 1) == first
    assert len(seen) == 1
    browser_url(api, VIDEO, PUBLIC, links, now=1_000_000.0 - LINK_MARGIN_S + 1)  # too close to expiry
    assert len(seen) == 2


def test_a_short_lived_link_is_still_reused_for_half_its_life():
    api, seen = scripted(signed(1_000_010.0))  # ten seconds, less than the margin
    links: dict = {}
    browser_url(api, VIDEO, PUBLIC, links, now=1_000_000.0)
    browser_url(api, VIDEO, PUBLIC, links, now=1_000_004.0)
    assert len(seen) == 1


def test_a_link_without_an_expiry_is_not_kept_for_long():
    api, seen = scripted(signed(None))
    links: dict = {}
    browser_url(api, VIDEO, PUBLIC, links, now=0.0)
    browser_url(api, VIDEO, PUBLIC, links, now=10.0)
    browser_url(api, VIDEO, PUBLIC, links, now=120.0)
    assert len(seen) == 2


def test_an_api_without_signed_links_makes_the_ui_relay():
    api, _ = scripted(
        lambda r: httpx.Response(
            404, json={"error": {"code": "not_found", "message": "no such route", "status": 404}}
        )
    )
    assert browser_url(api, VIDEO, PUBLIC, {}) is None


def test_other_refusals_of_the_link_are_shown_not_relayed_around():
    api, _ = scripted(
        lambda r: httpx.Response(
            401, json={"error": {"code": "unauthorized", "message": "invalid API key", "status": 401}}
        )
    )
    with pytest.raises(ApiHttpError) as caught:
        browser_url(api, VIDEO, PUBLIC, {})
    assert caught.value.status == 401
