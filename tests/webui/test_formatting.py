"""What the web UI says, checked as plain functions: no Streamlit, no API."""

from __future__ import annotations

import subprocess
import sys

import pytest

from glimpse.webui.client import ApiHttpError, ApiUnreachable, Hit, LibraryStats
from glimpse.webui.formatting import (
    DEFAULT_UPLOAD_MB,
    NEUTRAL_PLACEHOLDER,
    card_html,
    clock,
    detail_fields,
    error_text,
    field_table,
    file_size,
    moment_caption,
    no_results_text,
    play_label,
    plural,
    point_time,
    price_slider,
    price_text,
    results_summary,
    search_placeholder,
    sequence_text,
    time_range,
    upload_error_text,
    upload_limit_mb,
)


def stats(**fields) -> LibraryStats:
    base = {"images": 3, "videos": 1, "failed": 0, "categories": [], "price_min": None, "price_max": None}
    return LibraryStats(**{**base, **fields})


def hit(**fields) -> Hit:
    base = {
        "id": 7,
        "unit_id": 70,
        "kind": "image",
        "path": "products/red-shoe.jpg",
        "score": 0.3127,
        "media_url": "/v1/media/7",
        "thumbnail_url": "/v1/thumbnails/70",
    }
    return Hit(**{**base, **fields})


def test_the_formatting_module_runs_without_streamlit():
    code = "import sys, glimpse.webui.formatting; sys.exit('streamlit' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- times ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0:00"), (59.9, "0:59"), (723, "12:03"), (3723, "1:02:03"), (36000, "10:00:00")],
)
def test_clock_shows_minutes_and_seconds_and_hours_past_an_hour(seconds, shown):
    assert clock(seconds) == shown


@pytest.mark.parametrize(
    ("start", "end", "shown"),
    [
        (0.0, 0.96, "0:00.0–0:01.0"),  # the range the issue saw as "0:00–0:00"
        (4.0, 7.5, "0:04.0–0:07.5"),
        (0.3, 0.6, "0:00.3–0:00.6"),  # 0.1 * 3 is 0.30000000000000004: still 0:00.3
        (3.45, 6.01, "0:03.4–0:06.1"),  # start rounded down, end up: the span is never cut short
        (55.2, 62.5, "0:55–1:03"),  # past the first minute, whole seconds
        (723.0, 761.0, "12:03–12:41"),
        (60.2, 60.9, "1:00–1:01"),  # whole seconds, still not empty
        (3723.0, 3725.5, "1:02:03–1:02:06"),
    ],
)
def test_a_time_range_is_never_shown_empty(start, end, shown):
    assert time_range(start, end) == shown
    first, _, last = shown.partition("–")
    assert first != last


def test_a_moment_of_no_length_is_shown_as_its_one_instant():
    assert time_range(3.0, 3.0) == "0:03.0"
    assert time_range(None, None) == "0:00.0"


@pytest.mark.parametrize(
    ("seconds", "shown"), [(5.24, "0:05.2"), (0, "0:00.0"), (59.99, "0:59"), (75.4, "1:15")]
)
def test_an_instant_has_tenths_within_the_first_minute(seconds, shown):
    assert point_time(seconds) == shown


def test_play_names_the_best_match_time_and_falls_back_to_the_start():
    assert play_label(hit(kind="video", start=4.0, end=7.5, best_time=5.2)) == "Play 0:05.2"
    assert play_label(hit(kind="video", start=4.0, end=7.5)) == "Play 0:04.0"


def test_the_player_caption_gives_the_moment_and_its_best_instant():
    assert moment_caption(4.0, 7.5, 5.2) == "Moment 0:04.0–0:07.5, best match at 0:05.2"
    assert moment_caption(4.0, 7.5, None) == "Moment 0:04.0–0:07.5"


# -- numbers --------------------------------------------------------------------------------
def test_plural_counts_with_thousands_separators():
    assert (plural(1, "image"), plural(0, "video"), plural(1234, "result")) == (
        "1 image",
        "0 videos",
        "1,234 results",
    )


@pytest.mark.parametrize(
    ("price", "currency", "shown"),
    [(59, "USD", "$59.00"), (1234.5, "eur", "€1,234.50"), (12, "CHF", "12.00 CHF"), (3, None, "3.00")],
)
def test_prices_use_the_currency_symbol_or_its_code(price, currency, shown):
    assert price_text(price, currency) == shown


def test_no_price_shows_nothing():
    assert price_text(None, "USD") is None


@pytest.mark.parametrize(
    ("size", "shown"), [(999, "999 bytes"), (6290, "6.3 kB"), (20_971_520, "21.0 MB"), (3e12, "3000.0 GB")]
)
def test_file_sizes_in_decimal_units(size, shown):
    assert file_size(size) == shown


def test_the_price_slider_moves_in_whole_units_not_cents():
    low, high, step, shown = price_slider(25.0, 89.5)
    assert step == 1 and shown == "%.0f"
    # The dearest item (89.50) stays inside the range when the handle snaps to whole steps.
    assert (low, high) == (25.0, 90.0)


@pytest.mark.parametrize(
    ("low", "high", "step"), [(4.5, 320.0, 10.0), (1.0, 4.0, 0.1), (0.05, 0.5, 0.01), (100, 20000, 1000)]
)
def test_the_price_step_is_about_a_hundredth_of_the_range(low, high, step):
    first, last, chosen, _ = price_slider(low, high)
    assert chosen == pytest.approx(step)
    assert first <= low and last >= high and (last - first) / chosen <= 300


@pytest.mark.parametrize(
    ("limits", "megabytes"),
    [
        ({}, DEFAULT_UPLOAD_MB),  # an API that does not state its limit
        ({"max_upload_mb": 20.0, "max_upload_bytes": 20_971_520}, 20),
        ({"max_upload_mb": 7.5}, 7),  # rounded down: the uploader never allows what the API refuses
        ({"max_upload_bytes": 5_000_000}, 5),
        ({"max_upload_bytes": 300_000}, 1),  # Streamlit's smallest limit
    ],
)
def test_the_upload_limit_is_the_apis_in_whole_megabytes(limits, megabytes):
    assert upload_limit_mb(stats(**limits)) == megabytes


# -- page texts -----------------------------------------------------------------------------
def test_the_placeholder_comes_from_the_library():
    assert search_placeholder(stats(examples=["Small blue ring"], categories=["rings"])) == (
        "Describe what you are looking for, e.g. small blue ring"
    )
    assert search_placeholder(stats(categories=["badges", "tiles"])).endswith("e.g. badges")
    assert search_placeholder(stats(examples=["USB cable"])).endswith("e.g. USB cable")
    assert search_placeholder(stats()) == NEUTRAL_PLACEHOLDER


def test_the_result_count_says_whether_more_exist_and_times_the_latest_page():
    assert results_summary(24, True, 159.4, 1) == "Showing 24 results · more available · 159 ms"
    assert results_summary(48, True, 41.0, 2) == "Showing 48 results · more available · last page 41 ms"
    assert results_summary(7, False, 12.0, 1) == "7 results · 12 ms"
    assert "so far" not in results_summary(24, True, 1.0, 1)


def test_no_results_explains_that_videos_have_no_price_or_category():
    plain = no_results_text("all", {})
    assert plain == "No results. Try other words."
    assert "widen the filters" in no_results_text("image", {})
    videos = no_results_text("video", {"category": ["shoes"]})
    assert "Videos have no price or category" in videos and "clear it" in videos
    both = no_results_text("all", {"price": {"lte": 50}, "category": ["shoes"]})
    assert "price and category filter leaves every video out" in both
    assert "Videos" not in no_results_text("image", {"price": {"lte": 50}})


def test_errors_read_as_sentences_with_the_apis_message():
    unreachable = error_text(ApiUnreachable("http://127.0.0.1:9", "connection refused"))
    assert "http://127.0.0.1:9" in unreachable and "glimpse serve" in unreachable
    refused = error_text(ApiHttpError(401, "unauthorized", "invalid API key"))
    assert "invalid API key" in refused and "GLIMPSE_API_KEY" in refused
    outside = error_text(ApiHttpError(403, "outside_media_roots", "the file lies outside"))
    assert "GLIMPSE_API_KEY" not in outside and "the file lies outside" in outside


@pytest.mark.parametrize("status", [413, 415, 422])
def test_a_refused_upload_names_the_file_once_and_gives_the_apis_reason(status):
    expected = "The search API did not accept notes.jpg: not an image in an accepted format"
    assert (
        upload_error_text("notes.jpg", ApiHttpError(status, "x", "not an image in an accepted format"))
        == expected
    )
    named = ApiHttpError(status, "x", "notes.jpg: not an image in an accepted format")
    assert upload_error_text("notes.jpg", named) == expected


# -- cards and the detail table -------------------------------------------------------------
def test_a_product_card_shows_title_price_category_and_score():
    card = card_html(
        hit(title="Red <b>shoe</b>", metadata={"price": 59, "currency": "USD", "category": "shoes"})
    )
    assert "Red &lt;b&gt;shoe&lt;/b&gt;" in card and "$59.00" in card and "shoes" in card
    assert "score 0.313" in card and "glimpse-moment" not in card


def test_a_video_card_shows_the_moments_span():
    card = card_html(hit(kind="video", path="clips/harbour.mp4", start=0.0, end=0.96))
    assert '<span class="glimpse-moment">0:00.0–0:01.0</span>' in card and "harbour.mp4" in card


ITEM = {
    "id": 7,
    "kind": "image",
    "path": "products/red-shoe.jpg",
    "status": "indexed",
    "error": None,
    "title": "Red shoe",
    "sku": "SKU-7",
    "price": 59.0,
    "currency": "USD",
    "category": "shoes",
    "url": "https://shop.example/red-shoe",
    "width": 160,
    "height": 120,
    "size": 6290,
    "indexed_at": "2026-11-29T22:23:09.118698",
    "metadata": {"colour": "red"},
    "media_url": "/v1/media/7",
    "thumbnail_url": "/v1/thumbnails/70",
    "units": [{"unit_id": 70, "thumbnail_url": "/v1/thumbnails/70"}],
}


def test_the_detail_table_puts_the_shoppers_fields_first_and_hides_plumbing():
    fields = detail_fields(ITEM)
    assert list(fields)[:4] == ["sku", "price", "category", "url"]
    assert fields["price"] == "$59.00" and "currency" not in fields
    assert fields["dimensions"] == "160 × 120 px" and "height" not in fields
    assert fields["size"] == "6.3 kB" and fields["indexed_at"] == "2026-11-29 22:23"
    assert fields["colour"] == "red"  # extra catalogue fields come along
    assert fields["path"] == "products/red-shoe.jpg"  # as the API sends it, relative
    assert not {"id", "title", "status", "units", "media_url", "metadata"} & set(fields)


def test_a_failed_item_shows_its_status_and_error():
    fields = detail_fields({**ITEM, "status": "failed", "error": "truncated file"})
    assert fields["status"] == "failed" and fields["error"] == "truncated file"


def test_the_detail_table_keeps_pipes_and_newlines_inside_their_cells():
    table = field_table({**ITEM, "description": "a | b\nc", "url": "https://shop.example/x"})
    assert "| Description | a \\| b c |" in table
    assert "| Link | [https://shop.example/x](https://shop.example/x) |" in table


def test_a_card_found_by_its_text_shows_the_snippet_with_the_words_marked_and_escaped():
    match = {"source": "ocr", "text": "OPEN <24> HOURS", "snippet": "**OPEN** <24> HOURS", "time": 192.4}
    card = card_html(hit(kind="video", path="clips/street.mp4", start=190.0, end=200.0, text_matches=[match]))
    assert '<div class="glimpse-text">OCR: “<mark>OPEN</mark> &lt;24&gt; HOURS” at 3:12</div>' in card
    image = card_html(hit(text_matches=[{**match, "time": None}]))
    assert "OCR: “<mark>OPEN</mark> &lt;24&gt; HOURS”</div>" in image
    assert "glimpse-text" not in card_html(hit())


def test_a_sequence_hit_shows_each_steps_moment_in_order_instead_of_one_span():
    seq = hit(kind="video", start=2.0, end=9.0, best_time=2.5, steps=((2.0, 3.1), (7.4, 9.0)))
    assert sequence_text(seq) == "0:02.0–0:03.1 → 0:07.4–0:09.0"
    assert "0:02.0–0:03.1 → 0:07.4–0:09.0" in card_html(seq) and "0:02.0–0:09.0" not in card_html(seq)


def test_the_then_box_splits_steps_on_semicolons_and_keeps_at_most_the_apis_four():
    from glimpse.webui.state import sequence_steps

    assert sequence_steps(" a blue square ; ;a green triangle;") == ["a blue square", "a green triangle"]
    assert sequence_steps("a;b;c;d;e") == ["a", "b", "c", "d"]
    assert sequence_steps("  ") == []


def test_the_why_line_names_each_ranking_and_marks_the_matched_words_safely():
    from glimpse.webui.client import Hit
    from glimpse.webui.formatting import card_html, why_matched

    hit = Hit(
        id=1,
        unit_id=1,
        kind="image",
        path="a.jpg",
        score=0.31,
        media_url="/v1/media/1",
        thumbnail_url="/v1/thumbnails/1",
        title="<b>Vans</b> mug",
        relevance=0.93,
        matched={
            "sku": True,
            "keyword": {
                "rank": 1,
                "score": 3.2,
                "all_words": True,
                "field": "title",
                "snippet": "<b>«Vans»</b> mug",
            },
            "vector": {"rank": 4, "score": 0.31},
        },
    )
    assert why_matched(hit) == "SKU · words in title: <b>«Vans»</b> mug · picture #4"
    card = card_html(hit)
    assert (
        '<div class="glimpse-why">SKU · words in title: &lt;b&gt;<mark>Vans</mark>&lt;/b&gt; mug · picture #4</div>'
        in card
    )
    assert "relevance 0.93" in card and "<b>" not in card
    assert why_matched(Hit(1, 1, "image", "a.jpg", 0.1, "/m", "/t")) == ""


def test_the_detail_table_lists_the_text_read_in_an_item_once_per_line_with_video_times():
    line = {"confidence": 0.9, "box": [[0, 0], [1, 0], [1, 1], [0, 1]]}
    units = [
        {"unit_id": 1, "text": [{**line, "text": "DEPARTURES", "time": 4.0}]},
        {
            "unit_id": 2,
            "text": [{**line, "text": "DEPARTURES", "time": 6.0}, {**line, "text": "Gate 2", "time": 9.5}],
        },
        {"unit_id": 3, "text": []},
    ]
    fields = detail_fields({**ITEM, "kind": "video", "units": units})
    assert fields["text"] == "DEPARTURES (0:04.0) · Gate 2 (0:09.5)"
    assert "| Text in the picture | DEPARTURES (0:04.0) · Gate 2 (0:09.5) |" in field_table(
        {**ITEM, "units": units}
    )
    assert "text" not in detail_fields({**ITEM, "units": [{"unit_id": 7, "text": []}]})
    assert "text" not in detail_fields(ITEM)
