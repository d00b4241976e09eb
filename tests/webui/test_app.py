"""The Streamlit app, driven by Streamlit's AppTest, against a real `glimpse serve` over a generated library."""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from glimpse.webui.client import ApiHttpError, GlimpseClient
from glimpse.webui.formatting import moment_caption, point_time, time_range
from webui_support import (  # noqa: F401  (fixtures are used by name)
    PRODUCTS,
    REPO,
    VIDEO_NAME,
    Api,
    api,
    catalogue_dir,
    empty_api,
    keyed_api,
    unused_url,
)

APP = REPO / "webui" / "app.py"
TITLE = re.compile(r'<div class="glimpse-title" title="([^"]*)">')
MOMENT = re.compile(r'<span class="glimpse-moment">([^<]*)</span>')
SHOES = {title for _f, _c, title, _p, category in PRODUCTS if category == "shoes"}


@pytest.fixture
def open_ui(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., AppTest]]:
    """Start the app against an API URL (and optional env), run it once, fail on any exception."""
    import streamlit as st

    def start(url: str, **env: str) -> AppTest:
        monkeypatch.setenv("GLIMPSE_API_URL", url)
        monkeypatch.delenv("GLIMPSE_API_KEY", raising=False)
        monkeypatch.delenv("GLIMPSE_PUBLIC_API_URL", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        at = AppTest.from_file(str(APP), default_timeout=90)
        at.run()
        assert not at.exception, at.exception
        return at

    yield start
    # Cached answers are keyed by URL, but one test's server must not feed another's.
    st.cache_data.clear()


def search(at: AppTest, text: str, negative: str = "") -> AppTest:
    at.text_input(key="q_input").input(text)
    at.text_input(key="not_input").input(negative)
    next(b for b in at.button if b.label == "Search").click().run()
    assert not at.exception, at.exception
    return at


def click(at: AppTest, label: str, index: int = 0) -> AppTest:
    buttons = [b for b in at.button if b.label == label or b.label.startswith(label)]
    buttons[index].click().run()
    assert not at.exception, at.exception
    return at


def cards(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if TITLE.search(m.value)]


def card_titles(at: AppTest) -> list[str]:
    return [html.unescape(TITLE.search(c).group(1)) for c in cards(at)]


def api_search(api: Api, **body) -> list[dict]:
    """The same search straight from the API, all pages: what the UI should be showing."""
    body.setdefault("k", 200)
    response = httpx.post(f"{api.url}/v1/search", json=body, timeout=60)
    response.raise_for_status()
    return response.json()["results"]


def api_name(result: dict) -> str:
    return result.get("title") or result["path"].rsplit("/", 1)[-1]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_a_query_shows_one_card_per_api_result_with_thumbnail_title_price_and_category(api, open_ui):
    at = search(open_ui(api.url), "red shoes")
    expected = api_search(api, q="red shoes", media="all")
    assert card_titles(at) == [api_name(r) for r in expected]
    # Every card's thumbnail came through the UI server as image bytes.
    assert len(at.image) == len(expected)
    sneaker = next(c for c in cards(at) if "Red running sneaker" in c)
    assert "$59.00" in sneaker and "shoes" in sneaker and re.search(r"score \d\.\d{3}", sneaker)
    assert at.session_state["last_request"] == {"q": "red shoes", "media": "all", "k": 24}


def test_typing_alone_does_not_search_until_the_query_is_submitted(api, open_ui):
    at = open_ui(api.url)
    at.text_input(key="q_input").input("red shoes").run()
    assert at.session_state["last_request"] is None and not cards(at)
    # (AppTest forgets unsubmitted form input between runs, unlike a browser: type it again.)
    search(at, "red shoes")
    assert at.session_state["last_request"]["q"] == "red shoes" and cards(at)


def test_sidebar_filters_go_to_the_api_and_narrow_the_results(api, open_ui):
    at = search(open_ui(api.url), "something to wear")
    everything = set(card_titles(at))
    assert everything > SHOES

    at.multiselect(key="category_filter").set_value(["shoes"]).run()
    assert at.session_state["last_request"]["filters"] == {"category": ["shoes"]}
    assert set(card_titles(at)) == SHOES

    at.slider(key="price_filter").set_value((50.0, 80.0)).run()
    sent = at.session_state["last_request"]["filters"]
    assert sent == {"category": ["shoes"], "price": {"gte": 50.0, "lte": 80.0}}
    in_range = {t for _f, _c, t, price, cat in PRODUCTS if cat == "shoes" and 50 <= price <= 80}
    assert (
        set(card_titles(at))
        == in_range
        == {api_name(r) for r in api_search(api, q="something to wear", filters=sent)}
    )

    at.multiselect(key="category_filter").set_value(["dresses"]).run()
    assert not cards(at)
    assert "No results" in texts(at.info)

    click(at, "Reset filters")
    assert "filters" not in at.session_state["last_request"]
    assert set(card_titles(at)) == everything


def test_media_switch_shows_only_video_moments_with_their_time_range(api, open_ui):
    at = open_ui(api.url)
    at.segmented_control(key="media_filter").set_value("video").run()
    search(at, "boats in a harbour")
    assert at.session_state["last_request"]["media"] == "video"
    expected = api_search(api, q="boats in a harbour", media="video")
    assert expected and all(r["kind"] == "video" for r in expected)
    assert card_titles(at) == [VIDEO_NAME] * len(expected)
    shown = [MOMENT.search(c).group(1) for c in cards(at)]
    assert shown == [time_range(r["start"], r["end"]) for r in expected]
    # The test video is six seconds long: every moment is within the first minute, so in tenths,
    # and no range reads as empty (the issue saw "0:00–0:00" for 0.0-0.96 s).
    for text in shown:
        first, last = re.fullmatch(r"(\d+:\d\d\.\d)–(\d+:\d\d\.\d)", text).groups()
        assert first != last


def test_play_opens_the_moment_at_its_best_match_and_starts_playing(api, open_ui):
    at = open_ui(api.url)
    at.segmented_control(key="media_filter").set_value("video").run()
    search(at, "harbour")
    moment = api_search(api, q="harbour", media="video")[0]
    best = moment["best_time"]
    assert best is not None
    # The button names the instant the player starts at: the best match, not the moment's start.
    click(at, f"Play {point_time(best)}")
    players = at.get("video")
    assert len(players) == 1
    player = players[0].proto
    assert player.start_time == int(best) and player.autoplay and player.muted
    assert moment_caption(moment["start"], moment["end"], best) in texts(at.caption)
    assert not at.error


def test_a_moment_set_in_the_middle_of_a_video_plays_from_its_best_instant(api, open_ui):
    at = open_ui(api.url)
    video = api_search(api, q="harbour", media="video")[0]
    # A moment that starts mid-video, as a search for one scene of a long video returns it.
    at.session_state["detail"] = {
        "id": video["id"],
        "start": 3.4,
        "end": 6.0,
        "best_time": 4.2,
        "unit_id": video["unit_id"],
        "name": VIDEO_NAME,
    }
    at.run()
    assert not at.exception, at.exception
    players = at.get("video")
    assert len(players) == 1 and players[0].proto.start_time == 4
    assert "Moment 0:03.4–0:06.0, best match at 0:04.2" in texts(at.caption)
    assert not at.error


def test_by_default_the_browser_fetches_originals_straight_from_the_api(api, open_ui):
    at = open_ui(api.url)  # no GLIMPSE_PUBLIC_API_URL: the API's own address is the public one
    video = api_search(api, q="harbour", media="video")[0]
    at.session_state["detail"] = {"id": video["id"], "start": 0.0, "end": 3.0, "name": VIDEO_NAME}
    at.run()
    assert at.get("video")[0].proto.url == f"{api.url}/v1/media/{video['id']}"
    # The same for a full-size image: the UI server relays no original, only thumbnails.
    image = api_search(api, q="boot", media="image")[0]
    at.session_state["detail"] = {"id": image["id"], "name": api_name(image)}
    at.run()
    assert not at.exception, at.exception
    assert f"{api.url}/v1/media/{image['id']}" in [url for i in at.image for url in i.value]


def test_with_a_browser_visible_api_the_player_streams_straight_from_it(api, open_ui):
    public = "http://media.example.test:8000"
    at = open_ui(api.url, GLIMPSE_PUBLIC_API_URL=public)
    video = api_search(api, q="harbour", media="video")[0]
    at.session_state["detail"] = {"id": video["id"], "start": 4.0, "end": 6.0, "name": VIDEO_NAME}
    at.run()
    players = at.get("video")
    assert len(players) == 1
    assert players[0].proto.url == f"{public}/v1/media/{video['id']}" and players[0].proto.start_time == 4


def test_with_an_api_key_the_key_never_reaches_the_browser(keyed_api, open_ui):
    at = open_ui(keyed_api.url, GLIMPSE_API_KEY=keyed_api.key)
    auth = {"Authorization": f"Bearer {keyed_api.key}"}
    video = httpx.post(
        f"{keyed_api.url}/v1/search", json={"q": "harbour", "media": "video"}, headers=auth, timeout=60
    ).json()["results"][0]
    at.session_state["detail"] = {"id": video["id"], "start": 0.0, "end": 3.0, "name": VIDEO_NAME}
    at.run()
    assert not at.exception, at.exception
    assert not at.error
    url = at.get("video")[0].proto.url
    assert keyed_api.key not in url
    link = httpx.get(f"{keyed_api.url}/v1/media/{video['id']}/link", headers=auth, timeout=10)
    if link.status_code == 404:
        # An API without signed links: the UI relays the file, from its own media store (a path
        # on the UI server; under AppTest, /mock/media/...).
        assert url.startswith("/") and "/media/" in url and "/v1/" not in url
    else:
        # Signed links: the browser fetches the file from the API, without the key.
        assert url.startswith(f"{keyed_api.url}/v1/media/{video['id']}?")
        assert httpx.get(url, headers={"Range": "bytes=0-99"}, timeout=10).status_code == 206


def test_load_more_follows_the_api_cursor(api, open_ui):
    at = search(open_ui(api.url, GLIMPSE_UI_PAGE_SIZE="3"), "anything")
    expected = [api_name(r) for r in api_search(api, q="anything", media="all")]
    assert len(expected) > 6
    assert card_titles(at) == expected[:3]
    click(at, "Load more")
    assert card_titles(at) == expected[:6]
    while any(b.label == "Load more" for b in at.button):
        click(at, "Load more")
    assert card_titles(at) == expected


def test_the_result_count_says_more_are_available_and_times_the_latest_page(api, open_ui):
    at = search(open_ui(api.url, GLIMPSE_UI_PAGE_SIZE="3"), "anything")
    assert re.fullmatch(r"Showing 3 results · more available · \d+ ms", texts(at.main.caption))
    click(at, "Load more")
    assert re.fullmatch(r"Showing 6 results · more available · last page \d+ ms", texts(at.main.caption))
    while any(b.label == "Load more" for b in at.button):
        click(at, "Load more")
    total = len(api_search(api, q="anything", media="all"))
    assert re.fullmatch(rf"{total} results · last page \d+ ms", texts(at.main.caption))
    assert "so far" not in texts(at.main.caption)


def test_more_like_this_searches_with_the_item_and_leaves_it_out(api, open_ui):
    at = search(open_ui(api.url), "green")
    first = card_titles(at)[0]
    click(at, "More like this")
    request = at.session_state["last_request"]
    item_id = request["image_id"]
    assert "q" not in request and "unit_id" not in request and isinstance(item_id, int)
    assert f"Items like **{first}**" in texts(at.markdown)
    shown = card_titles(at)
    assert shown and first not in shown
    # The box no longer shows "green": these results are like the item, not like the words.
    assert at.text_input(key="q_input").value == ""


def test_more_like_this_on_a_video_moment_searches_with_that_moment(api, open_ui):
    at = search(open_ui(api.url), "harbour")
    moments = [r for r in api_search(api, q="harbour", media="all") if r["kind"] == "video"]
    position = card_titles(at).index(VIDEO_NAME)
    click(at, "More like this", index=position)
    request = at.session_state["last_request"]
    assert (request["image_id"], request["unit_id"]) == (moments[0]["id"], moments[0]["unit_id"])
    moment = time_range(moments[0]["start"], moments[0]["end"])
    assert f"Items like **{VIDEO_NAME}** at {moment}" in texts(at.markdown)
    assert card_titles(at) and VIDEO_NAME not in card_titles(at) and not at.error


def test_videos_with_a_category_filter_explain_why_nothing_matches(api, open_ui):
    at = open_ui(api.url)
    at.segmented_control(key="media_filter").set_value("video").run()
    at.multiselect(key="category_filter").set_value(["shoes"]).run()
    search(at, "harbour")
    assert not cards(at)
    message = texts(at.info)
    assert "No results" in message and "Videos have no price or category" in message


def test_detail_view_shows_the_catalogue_fields_and_similar_items(api, open_ui):
    at = search(open_ui(api.url), "boot")
    position = card_titles(at).index("Blue leather boot")
    details = [b for b in at.button if b.label in ("Details",) or b.label.startswith("Play")]
    details[position].click().run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == "Blue leather boot"
    table = texts(at.markdown)
    assert "| SKU | SKU-001 |" in table and "| Price | $89.50 |" in table and "| Category | shoes |" in table
    similar = card_titles(at)
    assert similar and "Blue leather boot" not in similar
    click(at, "Back to results")
    assert "Blue leather boot" in card_titles(at)


def test_searching_with_an_uploaded_image_shows_results(api, open_ui):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (220, 30, 30)).save(buffer, "PNG")
    at = open_ui(api.url)
    at.file_uploader(key="upload_input").set_value(("red.png", buffer.getvalue(), "image/png")).run()
    assert not at.exception, at.exception
    assert "Items that look like **red.png**" in texts(at.markdown)
    # The cards are the API's own answer to that upload, in the same order.
    response = httpx.post(f"{api.url}/v1/search/image", files={"file": ("red.png", buffer.getvalue(), "image/png")},
                          data={"k": "200"}, timeout=60)  # fmt: skip
    response.raise_for_status()
    expected = [api_name(r) for r in response.json()["results"]]
    assert card_titles(at) == expected[: len(card_titles(at))] and card_titles(at)


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/jpeg") -> AppTest:
    at.file_uploader(key="upload_input").set_value((name, data, mime)).run()
    return at


def api_refusal(api: Api, name: str, data: bytes) -> str:
    """The API's own message for this upload, asked directly."""
    response = httpx.post(
        f"{api.url}/v1/search/image", files={"file": (name, data, "image/jpeg")}, timeout=60
    )
    assert response.status_code in (413, 415, 422), response.text
    return response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.jpg", b"These are my shopping notes, not a picture.\n" * 20),  # 415
        ("broken.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 400),  # a JPEG signature, then nothing: 422
        ("huge.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * (21 * 1024 * 1024)),  # over the API's 20 MiB: 413
    ],
    ids=["not-an-image", "corrupt", "too-large"],
)
def test_an_upload_the_api_refuses_shows_its_message_not_a_traceback(api, open_ui, name, data):
    at = upload(open_ui(api.url), name, data)
    assert not at.exception, at.exception
    message = texts(at.error)
    reason = api_refusal(api, name, data).removeprefix(f"{name}: ")
    assert f"The search API did not accept {name}: {reason}" in message
    assert not at.image  # the refused file was never decoded to show it
    assert not cards(at)


def test_the_uploader_states_the_apis_upload_limit_in_mb(api, open_ui):
    at = open_ui(api.url)
    limits = httpx.get(f"{api.url}/v1/stats", timeout=10).json().get("limits")
    # An API that states its limit sets it; one that does not gets its default, 20 MB.
    expected = math.floor(limits["max_upload_mb"]) if limits else 20
    assert at.file_uploader(key="upload_input").proto.max_upload_size_mb == expected


def test_the_search_placeholder_comes_from_the_library(api, open_ui):
    at = open_ui(api.url)
    facets = httpx.get(f"{api.url}/v1/stats", timeout=10).json()["facets"]
    example = (facets.get("examples") or facets["categories"])[0]
    placeholder = at.text_input(key="q_input").proto.placeholder
    assert placeholder.lower().endswith(f"e.g. {example.lower()}")
    assert "summer dress" not in placeholder


def test_the_price_slider_moves_in_whole_units(api, open_ui):
    slider = open_ui(api.url).slider(key="price_filter").proto
    prices = [price for *_rest, price, _cat in PRODUCTS]
    assert slider.step == 1
    assert slider.min <= min(prices) and slider.max >= max(prices) and slider.max - max(prices) < 1


def test_an_item_the_api_does_not_know_shows_its_message(api, open_ui):
    at = open_ui(api.url)
    at.session_state["detail"] = {"id": 987654, "name": "gone"}
    at.run()
    assert not at.exception, at.exception
    assert "no item with id 987654" in texts(at.error)


def test_a_missing_original_shows_the_thumbnail_and_the_apis_reason(api, open_ui, monkeypatch):
    # The library's files stay in place for the other tests, so the API's answer for a deleted
    # original (client tests check its real shape) is given here by the client itself.
    def gone(self, item_id):
        raise ApiHttpError(404, "file_missing", "the file is no longer on disk")

    monkeypatch.setattr(GlimpseClient, "media_info", gone)
    import streamlit as st

    st.cache_data.clear()
    image = api_search(api, q="boot", media="image")[0]
    at = open_ui(api.url)
    at.session_state["detail"] = {"id": image["id"], "name": api_name(image)}
    at.run()
    assert not at.exception, at.exception
    assert "The original file is not available: the file is no longer on disk." in texts(at.caption)
    shown = [url for i in at.image for url in i.value]
    assert shown and not any("/v1/media/" in url for url in shown)  # the thumbnail, relayed
    assert not at.error


def test_an_unreachable_api_shows_a_message_not_a_traceback(open_ui):
    url = unused_url()
    at = open_ui(url)
    message = texts(at.error)
    assert "unreachable" in message and url in message and "glimpse serve" in message
    assert not at.text_input  # nothing to type into while there is nothing to search
    click(at, "Try again")
    assert "unreachable" in texts(at.error)


def test_an_empty_library_explains_how_to_index(empty_api, open_ui):
    at = open_ui(empty_api.url)
    assert "glimpse index PATH" in texts(at.info)
    assert not at.error


def test_an_api_error_is_shown_as_the_api_message(keyed_api, open_ui):
    refused = open_ui(keyed_api.url)
    message = texts(refused.error)
    assert "refused" in message and "GLIMPSE_API_KEY" in message and "Traceback" not in message
    allowed = search(open_ui(keyed_api.url, GLIMPSE_API_KEY=keyed_api.key), "shoes")
    assert card_titles(allowed) and not allowed.error


def test_a_sequence_query_sends_its_steps_and_shows_each_steps_moment(api, open_ui):
    at = open_ui(api.url)
    # The generated video shows red for 3 s, then blue: "red" then "blue" is a chain of two moments.
    at.text_input(key="then_input").input(" blue ; ")
    at.number_input(key="within_input").set_value(20.0)
    at = search(at, "red")
    sent = at.session_state["last_request"]
    assert sent["then"] == ["blue"] and sent["within"] == 20.0
    expected = api_search(api, q="red", then=["blue"], within=20.0)
    assert expected, "the generated video should hold a red moment followed by a blue one"
    assert card_titles(at) == [api_name(r) for r in expected]
    shown = [MOMENT.search(c).group(1) for c in cards(at)]
    steps = [" → ".join(time_range(s["start"], s["end"]) for s in r["steps"]) for r in expected]
    assert shown == [html.escape(s) for s in steps] and all(s.count("→") == 1 for s in shown)


def test_an_empty_then_box_is_a_plain_search(api, open_ui):
    at = open_ui(api.url)
    at.text_input(key="then_input").input(" ; ")
    at = search(at, "red shoes")
    assert "then" not in at.session_state["last_request"]
