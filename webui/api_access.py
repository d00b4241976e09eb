"""The page's calls to the search API: one client per API, cached answers, and where media comes from.

The cached functions take the API's URL and key as arguments so that two APIs never share answers;
a failed call raises, so failures are never cached and the next run asks again.

Media: the browser fetches originals (videos, full-size images) straight from the API, which answers
range requests, so a video seeks without the UI server relaying a byte (``browser_url``). Thumbnails
are small and go through the UI server, which is what lets them work with an API key.
"""

from __future__ import annotations

import json
import time
from collections.abc import MutableMapping

import streamlit as st

from glimpse.webui.client import (
    ApiHttpError,
    GlimpseClient,
    Item,
    LibraryStats,
    MediaInfo,
    SearchPage,
    SearchRequest,
)
from glimpse.webui.config import UiConfig

SEARCH_TTL = 300  # seconds an identical search is answered from the cache
MEDIA_TTL = 3600
MAX_RELAY_IMAGE_BYTES = 25_000_000
# A signed link is handed to the browser again while it has this long to live; a new link would
# be a new player URL, and a rerun would then restart a playing video.
LINK_MARGIN_S = 30.0
LINK_DEFAULT_LIFE_S = 60.0  # when the API does not say when its link expires


def config() -> UiConfig:
    return UiConfig.from_env()


@st.cache_resource(show_spinner=False)
def _client(url: str, key: str | None) -> GlimpseClient:
    return GlimpseClient(url, key or "")


def client(cfg: UiConfig) -> GlimpseClient:
    return _client(cfg.api_url, cfg.api_key)


@st.cache_data(ttl=10, show_spinner=False)
def cached_stats(url: str, key: str | None) -> LibraryStats:
    return _client(url, key).stats()


@st.cache_data(ttl=SEARCH_TTL, show_spinner=False, max_entries=500)
def cached_search(url: str, key: str | None, body: str) -> SearchPage:
    return _client(url, key).search(SearchRequest(**json.loads(body)))


@st.cache_data(ttl=SEARCH_TTL, show_spinner=False, max_entries=50)
def cached_image_search(url: str, key: str | None, image: bytes, filename: str, body: str) -> SearchPage:
    return _client(url, key).search_image(image, filename, SearchRequest(**json.loads(body)))


@st.cache_data(ttl=SEARCH_TTL, show_spinner=False, max_entries=200)
def cached_item(url: str, key: str | None, item_id: int) -> Item:
    return _client(url, key).item(item_id)


@st.cache_data(ttl=SEARCH_TTL, show_spinner=False, max_entries=200)
def cached_similar(url: str, key: str | None, item_id: int, body: str) -> SearchPage:
    return _client(url, key).similar(item_id, SearchRequest(**json.loads(body)))


@st.cache_data(ttl=MEDIA_TTL, show_spinner=False, max_entries=5000)
def cached_thumbnail(url: str, key: str | None, unit_id: int) -> bytes:
    return _client(url, key).thumbnail(unit_id)


@st.cache_data(ttl=60, show_spinner=False, max_entries=200)
def cached_media_info(url: str, key: str | None, item_id: int) -> MediaInfo:
    return _client(url, key).media_info(item_id)


@st.cache_data(ttl=MEDIA_TTL, show_spinner=False, max_entries=20)
def cached_media(url: str, key: str | None, item_id: int, max_bytes: int) -> bytes:
    """The original's bytes, relayed by the UI server: only for an API with keys but no signed links."""
    return _client(url, key).media(item_id, max_bytes=max_bytes)


def browser_url(
    api: GlimpseClient,
    item: Item,
    public_base: str,
    links: MutableMapping[int, tuple[str, float]],
    now: float | None = None,
) -> str | None:
    """The URL a browser fetches the item's original from, or None when the UI must relay it.

    Without an API key it is the item's ``media_url`` on the API's public address. With a key,
    the key never goes to the browser: the API signs a short-lived link (``/v1/media/{id}/link``),
    kept in ``links`` and given out again while it has ``LINK_MARGIN_S`` left. An API without
    signed links answers that route with 404: then None, and the caller relays the bytes.
    """
    if not api.keyed:
        return api.public_url(item.media_url, public_base)
    now = time.time() if now is None else now
    cached = links.get(item.id)
    if cached is not None and cached[1] > now:
        return cached[0]
    try:
        link = api.media_link(item.id)
    except ApiHttpError as exc:
        if exc.status == 404:
            return None
        raise
    expires = link.expires_at if link.expires_at is not None else now + LINK_DEFAULT_LIFE_S
    url = api.public_url(link.url, public_base)
    # Keep a margin for the browser to start fetching; half the life of a link shorter than that.
    links[item.id] = (url, expires - min(LINK_MARGIN_S, (expires - now) / 2))
    return url


def original_source(cfg: UiConfig, item: Item) -> str | bytes:
    """What ``st.video`` / ``st.image`` get for the item's original: a URL for the browser, or the
    bytes relayed through this server from an API that has keys but no signed links."""
    links = st.session_state.setdefault("media_links", {})
    url = browser_url(client(cfg), item, cfg.public_api_url, links)
    if url is not None:
        return url
    limit = cfg.max_relay_video_bytes if item.is_video else MAX_RELAY_IMAGE_BYTES
    return cached_media(cfg.api_url, cfg.api_key, item.id, limit)
