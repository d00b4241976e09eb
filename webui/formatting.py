"""What the web UI says, as plain functions: times, prices, counts, sizes, the detail table, cards.

No Streamlit here: the views put these strings on the page, and plain unit tests
(``tests/webui/test_formatting.py``) pin them down without running the app.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

from glimpse.webui.client import ApiError, ApiHttpError, ApiUnreachable, Hit, LibraryStats

DEFAULT_UPLOAD_MB = 20  # the API's default limit, for an API that does not state its own
NEUTRAL_PLACEHOLDER = "Describe what you are looking for"
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
# Float noise (0.1 * 3 = 0.30000000000000004) must not push a time into the next tenth.
_EPSILON = 1e-6


# -- times ----------------------------------------------------------------------------------
def clock(seconds: float, tenths: bool = False) -> str:
    """12:03, or 1:02:03 past an hour; with ``tenths`` 0:05.2 (rounded to the nearest tenth)."""
    if tenths:
        whole, tenth = divmod(round(seconds * 10), 10)
    else:
        whole, tenth = int(seconds), 0
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return f"{text}.{tenth}" if tenths else text


def point_time(seconds: float) -> str:
    """One instant: tenths of a second within the first minute (0:05.2), whole seconds after."""
    return clock(seconds, tenths=True) if round(seconds, 1) < 60 else clock(seconds)


def time_range(start: float | None, end: float | None) -> str:
    """A moment's span, never shown empty.

    Within the first minute in tenths, start rounded down and end up (0.0-0.96 s is
    0:00.0–0:01.0, not 0:00–0:00); past it in whole seconds, rounded the same way (12:03–12:41).
    A moment of no length at all (one frame) is shown as its one instant.
    """
    low = max(0.0, start or 0.0)
    high = max(low, end if end is not None else low)
    if high < 60:
        first = math.floor(low * 10 + _EPSILON) / 10
        last = math.ceil(high * 10 - _EPSILON) / 10
        shown = clock(first, tenths=True), clock(last, tenths=True)
    else:
        shown = clock(math.floor(low + _EPSILON)), clock(math.ceil(high - _EPSILON))
    return shown[0] if shown[0] == shown[1] else f"{shown[0]}–{shown[1]}"


def best_time(hit_start: float | None, hit_best: float | None) -> float:
    """Where a moment plays from: its best-matching instant, else its start."""
    return hit_best if hit_best is not None else hit_start or 0.0


def sequence_text(hit: Hit) -> str:
    """A sequence hit's steps in order: "0:03.0–0:05.0 → 0:12.0–0:15.0"."""
    return " → ".join(time_range(start, end) for start, end in hit.steps)


def play_label(hit: Hit) -> str:
    """The card's button for a video moment names the instant the player starts at."""
    return f"Play {point_time(best_time(hit.start, hit.best_time))}"


def example_moment(hit: Hit) -> str | None:
    """A video hit used as the example of "more like this" is that moment: its span, for the banner."""
    return time_range(hit.start, hit.end) if hit.is_video else None


def moment_caption(start: float | None, end: float | None, best: float | None) -> str:
    """Under the player: the whole moment and where in it playback started."""
    caption = f"Moment {time_range(start, end)}"
    return caption + (f", best match at {point_time(best)}" if best is not None else "")


# -- numbers --------------------------------------------------------------------------------
def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def price_text(price: float | None, currency: str | None) -> str | None:
    if price is None:
        return None
    symbol = CURRENCY_SYMBOLS.get(str(currency or "").upper())
    amount = f"{float(price):,.2f}"
    return f"{symbol}{amount}" if symbol else f"{amount} {currency or ''}".strip()


def file_size(size: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # unreachable: GB is the last unit; kept for the type checker


def price_slider(low: float, high: float) -> tuple[float, float, float, str]:
    """(min, max, step, format) of the price slider over the catalogue's prices.

    The step is a round number about a hundredth of the range (1 for prices from 25 to 90),
    not a cent; the ends are widened to whole steps so the cheapest and dearest items stay
    reachable when the handles snap to steps.
    """
    span = max(high - low, 0.01)
    step = max(0.01, 10.0 ** (math.floor(math.log10(span)) - 1))
    first = round(math.floor(low / step + _EPSILON) * step, 2)
    last = round(math.ceil(high / step - _EPSILON) * step, 2)
    decimals = 0 if step >= 1 else 1 if step >= 0.1 else 2
    return first, last, step, f"%.{decimals}f"


def upload_limit_mb(stats: LibraryStats) -> int:
    """The upload limit in whole MB, as the API states it (rounded down so the uploader never
    allows what the API refuses); 20 MB from an API that does not state it."""
    if stats.max_upload_mb:
        megabytes = float(stats.max_upload_mb)
    elif stats.max_upload_bytes:
        megabytes = stats.max_upload_bytes / 1_000_000
    else:
        return DEFAULT_UPLOAD_MB
    return max(1, math.floor(megabytes + _EPSILON))


# -- page texts -----------------------------------------------------------------------------
def library_caption(stats: LibraryStats) -> str:
    parts = [plural(stats.images, "image"), plural(stats.videos, "video")]
    return " · ".join(parts) + (f" · model `{stats.model['name']}`" if stats.model else "")


def search_placeholder(stats: LibraryStats) -> str:
    """An example taken from this library (a sample title, else a category), never a made-up one."""
    samples = stats.examples or stats.categories
    example = samples[0].strip() if samples else ""
    if not example:
        return NEUTRAL_PLACEHOLDER
    # "Small blue ring" reads as part of the sentence; "SKU-9" and "USB cable" keep their capitals.
    if not example[:2].isupper():
        example = example[:1].lower() + example[1:]
    return f"{NEUTRAL_PLACEHOLDER}, e.g. {example}"


def results_summary(count: int, more: bool, took_ms: float | None, pages: int) -> str:
    """ "Showing 24 results · more available · 159 ms": how many are on the page, whether more
    exist, and how long the API took for the page loaded last (the one "Load more" just added)."""
    text = f"Showing {plural(count, 'result')} · more available" if more else plural(count, "result")
    if took_ms is not None:
        text += f" · {took_ms:.0f} ms" if pages == 1 else f" · last page {took_ms:.0f} ms"
    return text


def no_results_text(media: str, filters: Mapping[str, Any], relevant_only: bool = False) -> str:
    """Why a search came back empty, as far as the UI can tell.

    Videos carry no price or category, so either filter leaves every video out: say so when
    videos were asked for, instead of a bare "No results".
    """
    narrowed = bool(filters) or media != "all"
    text = f"No results. Try other words{' or widen the filters' if narrowed else ''}."
    if relevant_only:
        text = (
            "Nothing stands out as relevant to this search. Try other words"
            f"{', widen the filters' if narrowed else ''}, or turn off *Relevant only* to see the "
            "closest matches anyway."
        )
    catalogue_filters = [name for name in ("price", "category") if name in filters]
    if media in ("video", "all") and catalogue_filters:
        named = " and ".join(catalogue_filters)
        text += f" Videos have no price or category, so the {named} filter leaves every video out" + (
            ": clear it to search the videos." if media == "video" else "."
        )
    return text


def error_text(exc: ApiError) -> str:
    """What a person should read for a failed call (never a traceback)."""
    if isinstance(exc, ApiUnreachable):
        return (
            f"The search API at {exc.url} is unreachable ({exc.reason}). "
            "Start it with `glimpse serve`, or point the UI at it with `GLIMPSE_API_URL`."
        )
    if isinstance(exc, ApiHttpError) and exc.status == 401:  # the API's only answer about keys
        return f"The search API refused the request: {exc.message}. Set `GLIMPSE_API_KEY` to a valid key."
    if isinstance(exc, ApiHttpError):
        return f"The search API answered with an error: {exc.message}"
    return str(exc)


def upload_error_text(filename: str, exc: ApiError) -> str:
    """An upload the API refused (too big 413, not an image 415, corrupt 422): the API's reason."""
    if isinstance(exc, ApiHttpError) and exc.status in (413, 415, 422):
        # The API names the file in some messages ("notes.jpg: not an image ..."): once is enough.
        return f"The search API did not accept {filename}: {exc.message.removeprefix(f'{filename}: ')}"
    return error_text(exc)


# -- result cards ---------------------------------------------------------------------------
def why_matched(hit: Hit) -> str:
    """One line of plain text saying which rankings found a hit and where, e.g.
    ``SKU · words in title: «Vans» canvas shoe · picture #3``; empty when the API says nothing."""
    matched = hit.matched
    parts = []
    if matched.get("sku"):
        parts.append("SKU")
    keyword = matched.get("keyword")
    if keyword:
        where = f" in {keyword['field']}: {keyword['snippet']}" if keyword.get("field") else ""
        parts.append(f"words{where}")
    vector = matched.get("vector")
    if vector:
        parts.append(f"picture #{vector['rank']}")
    return " · ".join(parts)


def _marked(text: str) -> str:
    """``text`` escaped for HTML, with the API's «» match marks as <mark> elements."""
    escaped = html.escape(text)
    return escaped.replace("«", "<mark>").replace("»", "</mark>")


def card_html(hit: Hit) -> str:
    """Title, then price / category or the moment's time range, then the score in small print."""
    meta = hit.metadata
    title = html.escape(hit.name)
    lines = [f'<div class="glimpse-title" title="{title}">{title}</div>']
    details = []
    if hit.steps:
        details.append(f'<span class="glimpse-moment">{html.escape(sequence_text(hit))}</span>')
    elif hit.is_video:
        details.append(f'<span class="glimpse-moment">{time_range(hit.start, hit.end)}</span>')
    price = price_text(meta.get("price"), meta.get("currency"))
    if price:
        details.append(f'<span class="glimpse-price">{html.escape(price)}</span>')
    if meta.get("category"):
        details.append(f'<span class="glimpse-chip">{html.escape(str(meta["category"]))}</span>')
    if details:
        lines.append(f'<div class="glimpse-meta">{" ".join(details)}</div>')
    why = why_matched(hit)
    if why:
        lines.append(f'<div class="glimpse-why">{_marked(why)}</div>')
    lines += [text_match_html(match) for match in hit.text_matches[:2]]
    score = f"score {hit.score:.3f}"
    if hit.relevance is not None:
        score += f" · relevance {hit.relevance:.2f}"
    lines.append(f'<div class="glimpse-score">{score}</div>')
    return "\n".join(lines)


def text_match_html(match: Mapping[str, Any]) -> str:
    """Where the query's words were found in the picture: ``OCR: “…OPEN 24 HOURS…” at 0:20``, the
    matched words marked (the API's snippet has them between ``**``)."""
    parts = html.escape(str(match.get("snippet") or match.get("text") or "")).split("**")
    snippet = "".join(f"<mark>{p}</mark>" if i % 2 else p for i, p in enumerate(parts))
    when = match.get("time")
    at = f" at {point_time(float(when))}" if when is not None else ""
    return f'<div class="glimpse-text">OCR: “{snippet}”{at}</div>'


# -- the detail table -----------------------------------------------------------------------
SHOWN_FIELDS = (
    "sku",
    "price",
    "currency",
    "category",
    "description",
    "url",
    "kind",
    "width",
    "height",
    "duration",
    "fps",
    "size",
    "path",
    "indexed_at",
    "status",
    "error",
)
# Shown elsewhere (title), or links and structures that mean nothing to a person.
HIDDEN_FIELDS = {"id", "title", "metadata", "units", "media_url", "thumbnail_url"}
FIELD_LABELS = {
    "sku": "SKU",
    "url": "Link",
    "fps": "Frame rate",
    "indexed_at": "Indexed",
    "size": "File size",
    "text": "Text in the picture",
}


def detail_fields(item: Mapping[str, Any]) -> dict[str, Any]:
    """Every catalogue field of an item (``GET /v1/items/{id}``) as the table shows it, the
    shopper's ones first; nested structures stay out, paths are shown as the API sends them."""
    merged = {**item, **item["metadata"]}
    fields: dict[str, Any] = {}
    for name in (*SHOWN_FIELDS, *sorted(merged)):
        value = merged.get(name)
        if name in fields or name in HIDDEN_FIELDS or value in (None, "") or isinstance(value, (dict, list)):
            continue
        fields[name] = value
    if fields.get("status") == "indexed":
        del fields["status"]  # the normal case says nothing; "failed" and its error do
    if "price" in fields:
        fields["price"] = price_text(fields["price"], merged.get("currency")) or fields["price"]
        fields.pop("currency", None)
    if "duration" in fields:
        fields["duration"] = clock(float(fields["duration"]))
    if isinstance(fields.get("size"), (int, float)):
        fields["size"] = file_size(fields["size"])
    if isinstance(fields.get("width"), int) and isinstance(fields.get("height"), int):
        # One "160 × 120 px" row where the width row was.
        pixels = f"{fields['width']} × {fields.pop('height')} px"
        fields = {
            ("dimensions" if k == "width" else k): (pixels if k == "width" else v) for k, v in fields.items()
        }
    if isinstance(fields.get("indexed_at"), str):
        fields["indexed_at"] = fields["indexed_at"][:16].replace("T", " ")  # to the minute
    if isinstance(fields.get("fps"), float):
        fields["fps"] = f"{fields['fps']:.3g} fps"
    if text := read_text_summary(item):
        fields["text"] = text
    return fields


def read_text_summary(item: Mapping[str, Any]) -> str:
    """The text read in an item's units (OCR), each distinct line once, in order, a video's with
    the time it shows: ``DEPARTURES (0:04.0) · PLATFORM 2 (0:09.0)``; empty when none was read."""
    seen: dict[str, str] = {}
    for unit in item.get("units") or []:
        for line in unit.get("text") or []:
            text = str(line.get("text") or "").strip()
            if text and text not in seen:
                when = line.get("time")
                seen[text] = f"{text} ({point_time(float(when))})" if when is not None else text
    return " · ".join(seen.values())


def field_label(name: str) -> str:
    return FIELD_LABELS.get(name) or html.escape(name.replace("_", " ").capitalize())


def field_cell(name: str, value: Any) -> str:
    """A value as one Markdown table cell: pipes and newlines cannot break the table."""
    text = str(value).replace("|", "\\|").replace("\n", " ")
    if name == "url" and text.startswith(("http://", "https://")):
        return f"[{html.escape(text)}]({text})"
    return html.escape(text)


def field_table(item: Mapping[str, Any]) -> str:
    """The item's fields as a two-column Markdown table."""
    rows = "\n".join(f"| {field_label(k)} | {field_cell(k, v)} |" for k, v in detail_fields(item).items())
    return "| Field | Value |\n|---|---|\n" + rows
