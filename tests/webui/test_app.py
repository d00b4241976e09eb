"""The Streamlit app, driven by Streamlit's AppTest, against a real `glimpse serve` over a generated library."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

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
    assert shown == [f"{_clock(r['start'])}–{_clock(r['end'])}" for r in expected]
    assert all(re.fullmatch(r"\d+:\d\d–\d+:\d\d", s) for s in shown)


def test_playing_a_moment_opens_a_player_that_starts_at_the_moment(api, open_ui):
    at = open_ui(api.url)
    video = api_search(api, q="harbour", media="video")[0]
    # A moment that starts mid-video, as a search for one scene of a long video returns it.
    at.session_state["detail"] = {"id": video["id"], "start": 3.4, "end": 6.0, "name": VIDEO_NAME}
    at.run()
    assert not at.exception, at.exception
    players = at.get("video")
    assert len(players) == 1 and players[0].proto.start_time == 3
    assert "0:03–0:06" in texts(at.markdown)
    assert not at.error


def test_with_a_browser_visible_api_the_player_streams_straight_from_it(api, open_ui):
    public = "http://media.example.test:8000"
    at = open_ui(api.url, GLIMPSE_PUBLIC_API_URL=public)
    video = api_search(api, q="harbour", media="video")[0]
    at.session_state["detail"] = {"id": video["id"], "start": 4.0, "end": 6.0, "name": VIDEO_NAME}
    at.run()
    players = at.get("video")
    assert len(players) == 1
    assert players[0].proto.url == f"{public}/v1/media/{video['id']}" and players[0].proto.start_time == 4


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


def test_more_like_this_searches_with_the_item_and_leaves_it_out(api, open_ui):
    at = search(open_ui(api.url), "green")
    first = card_titles(at)[0]
    click(at, "More like this")
    request = at.session_state["last_request"]
    item_id = request["image_id"]
    assert "q" not in request and isinstance(item_id, int)
    assert f"Items like **{first}**" in texts(at.markdown)
    shown = card_titles(at)
    assert shown and first not in shown


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


def _clock(seconds: float) -> str:
    total = int(seconds)
    return (
        f"{total // 60}:{total % 60:02d}"
        if total < 3600
        else f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"
    )
