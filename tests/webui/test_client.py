"""The UI's HTTP client against a real `glimpse serve`: typed answers, cursors, and clear failures."""

from __future__ import annotations

import pytest

from glimpse.webui.client import ApiHttpError, ApiUnreachable, GlimpseClient, MediaTooLarge, SearchRequest
from webui_support import PRODUCTS, Api, api, catalogue_dir, keyed_api, unused_url  # noqa: F401


@pytest.fixture
def client(api: Api):
    with GlimpseClient(api.url, api_key="") as c:
        yield c


def test_stats_carry_the_facets_the_filters_are_built_from(client):
    stats = client.stats()
    prices = [p for _f, _c, _t, p, _cat in PRODUCTS]
    assert (stats.images, stats.videos) == (len(PRODUCTS), 1)
    assert stats.categories == sorted({cat for *_rest, cat in PRODUCTS})
    assert (stats.price_min, stats.price_max) == (min(prices), max(prices))


def test_cursor_pages_cover_every_result_once_in_order(client):
    everything = client.search(SearchRequest(q="anything", k=200)).results
    seen, cursor = [], None
    while True:
        page = client.search(SearchRequest(q="anything", k=3, cursor=cursor))
        seen.extend(page.results)
        cursor = page.next
        if cursor is None:
            break
    assert [(h.id, h.start) for h in seen] == [(h.id, h.start) for h in everything]
    assert len(everything) > 3


def test_similar_leaves_the_example_out_and_honours_filters(client):
    example = next(h for h in client.search(SearchRequest(q="shoe", media="image")).results)
    similar = client.similar(example.id, SearchRequest(filters={"category": ["dresses"]}, k=10)).results
    assert similar and example.id not in {h.id for h in similar}
    assert {h.metadata.get("category") for h in similar} == {"dresses"}


def test_thumbnails_and_media_come_back_as_bytes(client):
    hit = client.search(SearchRequest(q="boot", media="image", k=1)).results[0]
    assert client.thumbnail(hit.unit_id)[:2] == b"\xff\xd8"  # a JPEG
    original = client.media(hit.id)
    assert len(original) > 100
    with pytest.raises(MediaTooLarge):
        client.media(hit.id, max_bytes=len(original) - 1)


def test_an_http_error_carries_the_api_message(client):
    with pytest.raises(ApiHttpError) as caught:
        client.item(987654)
    assert caught.value.status == 404 and "987654" in caught.value.message


def test_a_bad_request_reports_the_offending_field(client):
    with pytest.raises(ApiHttpError) as caught:
        client.search(SearchRequest(q="x", filters={"colour": "red"}))
    assert caught.value.status == 422 and "colour" in caught.value.message


def test_nothing_listening_is_reported_as_unreachable_with_the_url():
    url = unused_url()
    with GlimpseClient(url, api_key="", timeout=5) as c, pytest.raises(ApiUnreachable) as caught:
        c.stats()
    assert url in str(caught.value) and "unreachable" in str(caught.value)


def test_the_api_key_is_sent_and_a_missing_one_is_refused(keyed_api):
    with GlimpseClient(keyed_api.url, api_key="") as anonymous, pytest.raises(ApiHttpError) as caught:
        anonymous.stats()
    assert caught.value.status == 401 and "API key" in caught.value.message
    with GlimpseClient(keyed_api.url, api_key=keyed_api.key) as allowed:
        assert allowed.stats().total == len(PRODUCTS) + 1
