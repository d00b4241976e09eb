"""``/v1/search`` (GET and POST): results, filters, pagination, moments, errors, against a real library."""

from __future__ import annotations

import itertools
import json

import pytest

from api_fixtures import (  # noqa: F401 - fixtures
    assert_error,
    assert_exact_ranking,
    catalogue,
    category,
    client,
    exact_image_ranking,
    module_database_url,
    price,
    result_ids,
    served,
)
from glimpse.core.encoder import Encoder
from glimpse.search.engine import FUSION_DEPTH


def _names(served, response) -> list[str]:
    by_id = {v: k for k, v in served.ids.items()}
    return [by_id[i] for i in result_ids(response)]


def _index_of(name: str) -> int:
    return int(name.split("-")[1].split(".")[0])


def test_text_search_returns_results_in_the_documented_shape(client):
    r = client.get("/v1/search", params={"q": "a red shirt", "k": 5, "mode": "vector"})
    body = r.json()
    assert r.status_code == 200 and set(body) == {"results", "next", "took_ms"}
    assert len(body["results"]) == 5 and body["next"] is not None and body["took_ms"] >= 0
    first = body["results"][0]
    assert {
        "id",
        "unit_id",
        "kind",
        "path",
        "title",
        "score",
        "media_url",
        "thumbnail_url",
        "metadata",
        "start",
        "end",
        "best_time",
        "relevance",
        "matched",
    } <= set(first)
    assert first["matched"]["vector"]["rank"] == 1 and first["matched"]["keyword"] is None
    assert first["media_url"] == f"/v1/media/{first['id']}"
    assert first["thumbnail_url"] == f"/v1/thumbnails/{first['unit_id']}"
    scores = [x["score"] for x in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_results_equal_an_exact_search_over_the_stored_vectors(client, served, tiny_encoder: Encoder):
    """The design invariant: the flat index is exact, so the API's vector ranking is the brute-force one."""
    exact = exact_image_ranking(served.settings, tiny_encoder.encode_texts(["a blue bag"])[0], 60)
    r = client.post("/v1/search", json={"q": "a blue bag", "media": "image", "k": 10, "mode": "vector"})
    assert len(result_ids(r)) == 10
    assert_exact_ranking(r.json()["results"], exact)


def test_get_and_post_agree(client):
    get = client.get("/v1/search", params={"q": "green", "k": 7, "media": "image"})
    post = client.post("/v1/search", json={"q": "green", "k": 7, "media": "image"})
    assert result_ids(get) == result_ids(post)


def test_selective_filter_returns_every_match_even_when_rare(client, served):
    """3 of 60 items are shoes: k=10 must return exactly those 3 (the filter restricts the search)."""
    r = client.post("/v1/search", json={"q": "anything", "k": 10, "filters": {"category": ["shoes"]}})
    names = _names(served, r)
    assert sorted(_index_of(n) for n in names) == [7, 23, 41]
    assert r.json()["next"] is None


def test_filter_with_more_matches_than_k_returns_k(client, served):
    r = client.post("/v1/search", json={"q": "a bag", "k": 5, "filters": {"category": "bags"}})
    names = _names(served, r)
    assert len(names) == 5 and all(category(_index_of(n)) == "bags" for n in names)
    assert r.json()["next"] is not None


def test_price_range_filter_and_get_shortcuts(client, served):
    body = client.post(
        "/v1/search", json={"q": "shirt", "k": 200, "filters": {"price": {"gte": 50, "lte": 120}}}
    )
    names = _names(served, body)
    expected = sorted(f"{i}" for i in range(60) if 50 <= price(i) <= 120)
    assert sorted(str(_index_of(n)) for n in names) == expected
    shortcut = client.get("/v1/search", params={"q": "shirt", "k": 200, "price_min": 50, "price_max": 120})
    as_json = client.get(
        "/v1/search",
        params={"q": "shirt", "k": 200, "filters": json.dumps({"price": {"gte": 50, "lte": 120}})},
    )
    assert result_ids(shortcut) == result_ids(body) == result_ids(as_json)


def test_repeated_category_params_mean_any_of(client, served):
    r = client.get(
        "/v1/search", params=[("q", "x"), ("k", "200"), ("category", "shoes"), ("category", "bags")]
    )
    cats = {category(_index_of(n)) for n in _names(served, r)}
    assert cats == {"shoes", "bags"} and len(r.json()["results"]) == 15


def test_shortcut_combines_with_json_filters(client, served):
    r = client.get(
        "/v1/search", params={"q": "x", "k": 200, "filters": '{"category": "bags"}', "price_max": 100}
    )
    names = _names(served, r)
    assert names and all(category(_index_of(n)) == "bags" and price(_index_of(n)) <= 100 for n in names)


@pytest.mark.parametrize(
    ("filters", "named"),
    [
        ({"colour": ["red"]}, "colour"),
        ({"price": {"between": [1, 2]}}, "between"),
        ({"category": {"gt": "a"}}, "gt"),
        ({"price": {"lte": "cheap"}}, "price"),
    ],
)
def test_unknown_filter_fields_and_operators_are_422_naming_them(client, filters, named):
    err = assert_error(client.post("/v1/search", json={"q": "x", "filters": filters}), 422, "invalid_filter")
    assert named in err["message"]
    err = assert_error(
        client.get("/v1/search", params={"q": "x", "filters": json.dumps(filters)}), 422, "invalid_filter"
    )
    assert named in err["message"]


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"shoes"'])
def test_filters_param_must_be_a_json_object(client, raw):
    assert_error(client.get("/v1/search", params={"q": "x", "filters": raw}), 422, "invalid_filter")


def test_same_operator_twice_is_refused(client):
    err = assert_error(
        client.get("/v1/search", params={"q": "x", "filters": '{"price": {"gte": 1}}', "price_min": 3}),
        422,
        "invalid_filter",
    )
    assert "twice" in err["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"q": "x", "k": 0}, "k"),
        ({"q": "x", "k": 201}, "k"),
        ({"q": "x", "offset": -1}, "offset"),
        ({"q": "x", "media": "audio"}, "media"),
        ({"q": "x", "limit": 5}, "limit"),
        ({"q": "x", "min_score": 2}, "min_score"),
        ({"q": "x" * 1001}, "q"),
        ({"q": "x", "weights": {"text": -1}}, "weights.text"),
    ],
)
def test_invalid_parameters_are_422_in_the_error_shape(client, body, field):
    err = assert_error(client.post("/v1/search", json=body), 422, "invalid_request")
    assert field in [d["field"] for d in err["details"]]
    assert field in err["message"]
    params = {k: v for k, v in body.items() if not isinstance(v, dict)}
    if field != "weights.text":
        assert_error(client.get("/v1/search", params=params), 422, "invalid_request")


def test_malformed_json_body_is_400_as_documented(client):
    # README: 400 for a body that cannot be parsed (test_api_edges.py covers every route's parser)
    r = client.post("/v1/search", content=b"{bad", headers={"content-type": "application/json"})
    assert_error(r, 400, "invalid_json")


def test_a_query_with_nothing_to_search_for_is_422(client):
    err = assert_error(client.post("/v1/search", json={"k": 3}), 422, "invalid_query")
    assert "nothing to search for" in err["message"]
    assert_error(client.get("/v1/search", params={"q": "   "}), 422, "invalid_query")


def test_walking_all_pages_with_the_cursor_equals_one_big_page(client):
    query = {"q": "a yellow shirt", "media": "image"}
    big = client.post("/v1/search", json={**query, "k": 200}).json()
    # A hybrid search takes the top FUSION_DEPTH items of its vector ranking, and the keyword matches.
    assert big["next"] is None and FUSION_DEPTH <= len(big["results"]) <= 60
    walked, cursor, pages = [], None, 0
    while True:
        body = client.post(
            "/v1/search", json={**query, "k": 7, **({"cursor": cursor} if cursor else {})}
        ).json()
        walked += [(r["id"], r["unit_id"]) for r in body["results"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
    assert pages == -(-len(big["results"]) // 7)  # ceil(n / 7)
    assert walked == [(r["id"], r["unit_id"]) for r in big["results"]]
    assert len(set(walked)) == len(walked)


def test_get_pages_with_cursor_and_offset_agree(client):
    first = client.get("/v1/search", params={"q": "white", "k": 4})
    second = client.get("/v1/search", params={"q": "white", "k": 4, "cursor": first.json()["next"]})
    by_offset = client.get("/v1/search", params={"q": "white", "k": 4, "offset": 4})
    assert result_ids(second) == result_ids(by_offset)
    assert not set(result_ids(first)) & set(result_ids(second))


def test_video_pages_walk_without_duplicates_or_gaps(client):
    query = {"q": "a truck at night", "media": "video"}
    big = client.post("/v1/search", json={**query, "k": 200}).json()["results"]
    walked, cursor = [], None
    while True:
        body = client.post(
            "/v1/search", json={**query, "k": 1, **({"cursor": cursor} if cursor else {})}
        ).json()
        walked += [(r["id"], r["start"], r["end"]) for r in body["results"]]
        if (cursor := body["next"]) is None:
            break
    assert walked == [(r["id"], r["start"], r["end"]) for r in big]


@pytest.mark.parametrize(
    "cursor",
    ["garbage!", "eyJvIjogM30", "e30"],  # not base64 JSON / no fingerprint / empty object
)
def test_a_cursor_this_api_did_not_issue_is_422(client, cursor):
    assert_error(client.get("/v1/search", params={"q": "x", "cursor": cursor}), 422, "invalid_cursor")


def test_a_cursor_only_continues_its_own_query(client):
    nxt = client.post("/v1/search", json={"q": "red", "k": 3}).json()["next"]
    err = assert_error(
        client.post("/v1/search", json={"q": "blue", "k": 3, "cursor": nxt}), 422, "invalid_cursor"
    )
    assert "another query" in err["message"]
    other_filter = {"q": "red", "k": 3, "cursor": nxt, "filters": {"category": "bags"}}
    assert_error(client.post("/v1/search", json=other_filter), 422, "invalid_cursor")
    assert_error(
        client.post("/v1/search", json={"q": "red", "k": 3, "cursor": nxt, "offset": 3}),
        422,
        "invalid_cursor",
    )
    # the page size may change between pages
    assert client.post("/v1/search", json={"q": "red", "k": 5, "cursor": nxt}).status_code == 200


def test_video_hits_are_moments_inside_their_video(client, served):
    body = client.post("/v1/search", json={"q": "a green scene", "media": "video", "k": 20}).json()
    results = body["results"]
    assert results and all(r["kind"] == "video" for r in results)
    videos = {served.ids["scenes.mp4"], served.ids["dock.mp4"]}
    assert {r["id"] for r in results} <= videos
    for r in results:
        assert r["start"] <= r["best_time"] <= r["end"]
        assert r["start"] >= 0 and r["end"] <= r["metadata"]["duration"] + 0.5
        # A player opening media_url starts at the best time (the fragment stays with the client).
        url, _, fragment = r["media_url"].partition("#")
        assert url == f"/v1/media/{r['id']}" and fragment.startswith("t=")
        assert float(fragment[2:]) == pytest.approx(r["best_time"], abs=5e-4)
        assert client.get(r["media_url"], headers={"Range": "bytes=0-9"}).status_code == 206
        item = client.get(f"/v1/items/{r['id']}").json()
        assert r["unit_id"] in [u["unit_id"] for u in item["units"]]
    per_video = {}
    for r in results:
        per_video.setdefault(r["id"], []).append((r["start"], r["end"]))
    for spans in per_video.values():  # moments of one video never overlap
        spans.sort()
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
        assert len(spans) <= served.settings.moments_per_video


def test_media_all_mixes_images_and_moments(client):
    kinds = {r["kind"] for r in client.post("/v1/search", json={"q": "x", "k": 200}).json()["results"]}
    assert kinds == {"image", "video"}


def test_min_score_drops_weaker_results(client):
    full = client.post("/v1/search", json={"q": "red", "k": 200, "media": "image"}).json()["results"]
    cut = sorted(r["score"] for r in full)[len(full) // 2]
    kept = client.post("/v1/search", json={"q": "red", "k": 200, "media": "image", "min_score": cut}).json()
    assert kept["results"] and all(r["score"] >= cut for r in kept["results"])
    assert [r["id"] for r in kept["results"]] == [r["id"] for r in full if r["score"] >= cut]


def test_more_like_this_by_image_id_and_combined_with_text(client, served):
    item = served.ids["item-12.png"]
    alone = client.post("/v1/search", json={"image_id": item, "k": 60, "media": "image"})
    scores = {r["id"]: r["score"] for r in alone.json()["results"]}
    # One rule for "more like this" everywhere: the example itself is never a result, and the
    # search route gives what /similar gives.
    assert item not in scores and len(scores) == 59 and max(scores.values()) <= 1.0 + 1e-3
    similar = client.get(f"/v1/items/{item}/similar", params={"k": 60, "media": "image"})
    assert result_ids(similar) == result_ids(alone)
    mixed = client.post(
        "/v1/search",
        json={
            "image_id": item,
            "q": "blue",
            "weights": {"image": 1.0, "text": 3.0},
            "k": 60,
            "media": "image",
        },
    )
    text_only = client.post("/v1/search", json={"q": "blue", "k": 60, "media": "image"})
    assert result_ids(mixed) != result_ids(alone) and result_ids(mixed) != result_ids(text_only)


def test_negative_text_changes_the_ranking(client):
    # Vector mode: all 60 images are in its ranking (hybrid takes the top FUSION_DEPTH of it).
    query = {"q": "shirt", "k": 60, "media": "image", "mode": "vector"}
    plain = client.post("/v1/search", json=query)
    negated = client.post("/v1/search", json={**query, "negative": "red", "weights": {"negative": 2.0}})
    assert result_ids(plain) != result_ids(negated)
    assert sorted(result_ids(plain)) == sorted(result_ids(negated))


def test_image_id_of_an_unknown_item_is_404(client):
    err = assert_error(client.post("/v1/search", json={"image_id": 999999}), 404, "not_found")
    assert "999999" in err["message"]
