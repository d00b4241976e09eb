"""The UI's HTTP client against a real `glimpse serve`: typed answers, cursors, and clear failures."""

from __future__ import annotations

import httpx
import pytest

from glimpse.webui.client import (
    ApiHttpError,
    ApiUnreachable,
    GlimpseClient,
    MediaTooLarge,
    SearchRequest,
)
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


def test_media_info_gives_the_originals_type_and_size_without_downloading_it(client, api):
    video = client.search(SearchRequest(q="harbour", media="video", k=1)).results[0]
    info = client.media_info(video.id)
    assert info.content_type == "video/mp4"
    assert info.size == len(client.media(video.id)) > 1000
    with pytest.raises(ApiHttpError) as caught:
        client.media_info(987654)
    assert caught.value.status == 404


def test_similar_to_a_video_moment_leaves_the_video_out(client):
    moment = client.search(SearchRequest(q="harbour", media="video", k=1)).results[0]
    similar = client.similar(moment.id, SearchRequest(unit_id=moment.unit_id, k=20)).results
    assert similar and moment.id not in {h.id for h in similar}


# -- against a scripted API (httpx.MockTransport): answers the real API may not give yet -----------
def scripted(handler) -> GlimpseClient:
    return GlimpseClient("http://api.test", api_key="k", transport=httpx.MockTransport(handler))


def error(status: int, code: str, message: str, fields: tuple[str, ...] = ()) -> httpx.Response:
    details = [
        {"field": f, "message": "Extra inputs are not permitted", "type": "extra_forbidden"} for f in fields
    ]
    body = {"error": {"code": code, "message": message, "status": status, "details": details}}
    return httpx.Response(status, json=body)


PAGE = {"results": [], "next": None, "took_ms": 1.5}


def test_a_moment_as_the_example_is_sent_as_unit_id():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=PAGE)

    with scripted(handler) as api:
        api.similar(12, SearchRequest(unit_id=95, media="image", k=8))
    assert seen[0].url.path == "/v1/items/12/similar"
    assert dict(seen[0].url.params) == {"unit_id": "95", "media": "image", "k": "8"}
    assert SearchRequest(unit_id=95).body() == {"unit_id": 95, "media": "all", "k": 24}


def test_an_api_without_moment_examples_gets_the_whole_item_as_before():
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        if "unit_id" in request.url.params:
            return error(422, "invalid_request", "unit_id: Extra inputs are not permitted", ("unit_id",))
        return httpx.Response(200, json=PAGE)

    with scripted(handler) as api:
        assert api.similar(12, SearchRequest(unit_id=95, k=8)).took_ms == 1.5
    assert seen == [{"unit_id": "95", "media": "all", "k": "8"}, {"media": "all", "k": "8"}]


def test_other_refusals_of_similar_are_not_retried():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return error(422, "invalid_filter", "unknown filter field(s): colour", ("filters",))

    with scripted(handler) as api, pytest.raises(ApiHttpError) as caught:
        api.similar(12, SearchRequest(unit_id=95, filters={"colour": "red"}))
    assert len(calls) == 1 and caught.value.fields == ("filters",)


def test_a_signed_media_link_is_read_and_resolved_against_the_public_address():
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/media/7/link" and request.headers["authorization"] == "Bearer k"
        return httpx.Response(
            200, json={"url": "/v1/media/7?token=abc&expires=1900000000", "expires_at": 1900000000}
        )

    with scripted(handler) as api:
        link = api.media_link(7)
        assert link.expires_at == 1900000000.0
        assert api.public_url(link.url, "https://search.example") == (
            "https://search.example/v1/media/7?token=abc&expires=1900000000"
        )


def test_an_expiry_in_iso_form_is_read_too():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"url": "/v1/media/7?token=a", "expires_at": "2030-01-01T00:00:00+00:00"}
        )

    with scripted(handler) as api:
        assert api.media_link(7).expires_at == 1893456000.0


def test_links_from_an_api_under_a_path_prefix_keep_the_prefix():
    with GlimpseClient("http://api.test") as api:
        assert api.public_url("/glimpse/v1/media/7", "https://host.example/glimpse") == (
            "https://host.example/glimpse/v1/media/7"
        )
        assert api.public_url("https://cdn.example/v1/media/7", "https://host.example") == (
            "https://cdn.example/v1/media/7"
        )


def test_an_answer_of_the_wrong_shape_is_an_api_error_not_a_traceback():
    wrong = scripted(lambda request: httpx.Response(200, json={"results": [{"id": 1}]}))
    with wrong as api, pytest.raises(ApiHttpError) as caught:
        api.search(SearchRequest(q="x"))
    assert caught.value.code == "bad_response" and "/v1/search" in caught.value.message


def test_stats_read_the_upload_limit_and_examples_when_the_api_sends_them():
    body = {
        "items": {"image": 2, "video": 0},
        "failed": 0,
        "units": 2,
        "index": {},
        "facets": {
            "categories": ["rings"],
            "price": {"min": 1.0, "max": 2.0},
            "examples": ["Small blue ring"],
        },
        "limits": {"max_upload_bytes": 20971520, "max_upload_mb": 20.0},
    }
    with scripted(lambda request: httpx.Response(200, json=body)) as api:
        stats = api.stats()
    assert (stats.max_upload_bytes, stats.max_upload_mb, stats.examples) == (
        20971520,
        20.0,
        ["Small blue ring"],
    )
