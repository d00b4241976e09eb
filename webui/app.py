"""Glimpse web UI (Streamlit): search a library of images and videos through the search API.

Run with ``glimpse ui`` (or ``streamlit run webui/app.py``). The page is a client of the API over
HTTP only (``glimpse.webui.client``); the browser never talks to the API itself unless
``GLIMPSE_PUBLIC_API_URL`` says where it can (then videos stream straight from the API).

Environment:
- ``GLIMPSE_API_URL`` (default http://127.0.0.1:8000) and ``GLIMPSE_API_KEY``: how this server calls the API.
- ``GLIMPSE_PUBLIC_API_URL``: the API's address as the *browser* sees it. Set it (and no API key) to let
  the video player stream big files directly with range requests; otherwise the UI server relays
  video bytes itself, up to ``GLIMPSE_UI_MAX_VIDEO_MB`` (default 200) per file.
- ``GLIMPSE_UI_PAGE_SIZE``: results per page (default 24).
"""

from __future__ import annotations

import contextlib
import html
import json
import os
from collections.abc import Callable
from typing import Any

import streamlit as st

from glimpse.webui.client import (
    DEFAULT_API_URL,
    ApiError,
    ApiHttpError,
    ApiUnreachable,
    GlimpseClient,
    Hit,
    LibraryStats,
    MediaTooLarge,
    SearchPage,
    SearchRequest,
)

PAGE_SIZE = max(1, min(200, int(os.environ.get("GLIMPSE_UI_PAGE_SIZE", "24"))))
SIMILAR_COUNT = 8
MAX_VIDEO_BYTES = int(float(os.environ.get("GLIMPSE_UI_MAX_VIDEO_MB", "200")) * 1_000_000)
MAX_IMAGE_BYTES = 25_000_000
SEARCH_TTL = 300  # seconds an identical search is answered from the cache
MEDIA_TTL = 3600
MEDIA_LABELS = {"all": "All", "image": "Images", "video": "Videos"}
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"]

CSS = """
<style>
.block-container {padding-top: 2rem;}
.st-key-results img, .st-key-similar img {
  aspect-ratio: 4 / 3; object-fit: contain; width: 100%;
  background: #f3f4f6; border-radius: 0.5rem;
}
.glimpse-title {font-weight: 600; line-height: 1.3; margin: 0.25rem 0 0.1rem 0;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap;}
.glimpse-meta {color: #374151; font-size: 0.92rem;}
.glimpse-price {font-weight: 600; color: #047857;}
.glimpse-chip {display: inline-block; background: #eef2ff; color: #3730a3; border-radius: 999px;
  padding: 0 0.55rem; font-size: 0.8rem; margin-left: 0.25rem;}
.glimpse-moment {display: inline-block; background: #111827; color: #fff; border-radius: 0.35rem;
  padding: 0 0.45rem; font-size: 0.85rem; font-variant-numeric: tabular-nums;}
.glimpse-score {color: #9ca3af; font-size: 0.75rem;}
.glimpse-noimage {aspect-ratio: 4 / 3; display: flex; align-items: center; justify-content: center;
  background: #f3f4f6; border-radius: 0.5rem; color: #9ca3af; font-size: 2rem;}
</style>
"""


# -- API access (cached per request) --------------------------------------------------------
def api_settings() -> tuple[str, str | None]:
    """(API URL, API key) for this server's calls, read on every run so a restart is not needed."""
    return (os.environ.get("GLIMPSE_API_URL") or DEFAULT_API_URL).rstrip("/"), os.environ.get(
        "GLIMPSE_API_KEY"
    ) or None


@st.cache_resource(show_spinner=False)
def _client(url: str, key: str | None) -> GlimpseClient:
    return GlimpseClient(url, key or "")


def client() -> GlimpseClient:
    return _client(*api_settings())


# The cached functions take the URL and key as arguments so that two APIs never share answers;
# failures raise and are therefore never cached.
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
def cached_item(url: str, key: str | None, item_id: int) -> dict[str, Any]:
    return _client(url, key).item(item_id)


@st.cache_data(ttl=SEARCH_TTL, show_spinner=False, max_entries=200)
def cached_similar(url: str, key: str | None, item_id: int, body: str) -> SearchPage:
    return _client(url, key).similar(item_id, SearchRequest(**json.loads(body)))


@st.cache_data(ttl=MEDIA_TTL, show_spinner=False, max_entries=5000)
def cached_thumbnail(url: str, key: str | None, unit_id: int) -> bytes:
    return _client(url, key).thumbnail(unit_id)


@st.cache_data(ttl=MEDIA_TTL, show_spinner=False, max_entries=20)
def cached_media(url: str, key: str | None, item_id: int, max_bytes: int) -> bytes:
    return _client(url, key).media(item_id, max_bytes=max_bytes)


# -- formatting -----------------------------------------------------------------------------
def clock(seconds: float | None) -> str:
    """12:03, or 1:02:03 past an hour."""
    total = int(seconds or 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def time_range(hit: Hit) -> str:
    return f"{clock(hit.start)}–{clock(hit.end)}"


def price_text(metadata: dict[str, Any]) -> str | None:
    price = metadata.get("price")
    if price is None:
        return None
    currency = metadata.get("currency") or ""
    symbol = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}.get(str(currency).upper())
    amount = f"{float(price):,.2f}"
    return f"{symbol}{amount}" if symbol else f"{amount} {currency}".strip()


def error_text(exc: ApiError) -> str:
    """What a person should read for a failed call (never a traceback)."""
    if isinstance(exc, ApiUnreachable):
        return (
            f"The search API at {exc.url} is unreachable ({exc.reason}). "
            "Start it with `glimpse serve`, or point the UI at it with `GLIMPSE_API_URL`."
        )
    if isinstance(exc, ApiHttpError) and exc.status in (401, 403):
        return f"The search API refused the request: {exc.message}. Set `GLIMPSE_API_KEY` to a valid key."
    if isinstance(exc, ApiHttpError):
        return f"The search API answered with an error: {exc.message}"
    return str(exc)


# -- session state --------------------------------------------------------------------------
def init_state() -> None:
    defaults = {"query": None, "pages": 1, "request_key": None, "detail": None, "last_request": None}
    for name, value in defaults.items():
        st.session_state.setdefault(name, value)


def set_query(query: dict[str, Any] | None) -> None:
    st.session_state.query = query
    st.session_state.detail = None


def on_text_submit() -> None:
    text = (st.session_state.get("q_input") or "").strip()
    negative = (st.session_state.get("not_input") or "").strip()
    if not text:
        st.session_state.query = {"mode": "blank", "negative": negative} if negative else None
        st.session_state.detail = None
        return
    set_query({"mode": "text", "q": text, "negative": negative or None})


def on_upload() -> None:
    upload = st.session_state.get("upload_input")
    if upload is None:
        if st.session_state.query and st.session_state.query.get("mode") == "image":
            set_query(None)
        return
    set_query({"mode": "image", "name": upload.name, "data": upload.getvalue()})


def show_similar(hit_id: int, name: str) -> None:
    set_query({"mode": "similar", "image_id": hit_id, "label": name})


def open_detail(hit: Hit) -> None:
    st.session_state.detail = {
        "id": hit.id,
        "start": hit.start,
        "end": hit.end,
        "best_time": hit.best_time,
        "name": hit.name,
    }


def close_detail() -> None:
    st.session_state.detail = None


def reset_filters() -> None:
    for name in ("media_filter", "category_filter", "price_filter"):
        st.session_state.pop(name, None)


# -- sidebar: library facts and filters -----------------------------------------------------
def sidebar(stats: LibraryStats) -> tuple[str, dict[str, Any]]:
    """The media kind and the API filters chosen in the sidebar (only what narrows the search)."""
    with st.sidebar:
        st.markdown("### Library")
        parts = [plural(stats.images, "image"), plural(stats.videos, "video")]
        st.caption(" · ".join(parts) + (f" · model `{stats.model['name']}`" if stats.model else ""))
        st.markdown("### Filters")
        media = (
            st.segmented_control(
                "Show",
                ["all", "image", "video"],
                format_func=MEDIA_LABELS.get,
                default="all",
                key="media_filter",
            )
            or "all"
        )
        filters: dict[str, Any] = {}
        if stats.categories:
            chosen = st.multiselect(
                "Category", stats.categories, key="category_filter", placeholder="Any category"
            )
            if chosen:
                filters["category"] = chosen
        if stats.price_min is not None and stats.price_max is not None and stats.price_max > stats.price_min:
            low, high = float(stats.price_min), float(stats.price_max)
            picked = st.slider("Price", low, high, (low, high), key="price_filter", format="%.2f")
            if picked[0] > low or picked[1] < high:
                # A narrowed range also leaves out items without a price, which is what shoppers expect.
                filters["price"] = {"gte": picked[0], "lte": picked[1]}
        st.button("Reset filters", on_click=reset_filters, type="tertiary", icon=":material/restart_alt:")
        if stats.failed:
            st.caption(f":material/warning: {plural(stats.failed, 'file')} could not be indexed.")
    return media, filters


# -- search form ----------------------------------------------------------------------------
def search_form() -> None:
    with st.form("search", border=False, enter_to_submit=True):
        cols = st.columns([6, 3, 1.2], vertical_alignment="bottom")
        cols[0].text_input(
            "Search", key="q_input", placeholder="Describe what you are looking for, e.g. a red summer dress"
        )
        cols[1].text_input("Not", key="not_input", placeholder="leave out, e.g. stripes")
        cols[2].form_submit_button("Search", type="primary", on_click=on_text_submit, width="stretch")
    with st.expander("Search with an image", icon=":material/image_search:"):
        st.file_uploader(
            "Find items that look like this picture",
            type=UPLOAD_TYPES,
            key="upload_input",
            on_change=on_upload,
        )


# -- running a search -----------------------------------------------------------------------
def build_request(query: dict[str, Any], media: str, filters: dict[str, Any]) -> SearchRequest:
    return SearchRequest(
        q=query.get("q"),
        negative=query.get("negative"),
        image_id=query.get("image_id"),
        media=media,  # type: ignore[arg-type]
        filters=filters or None,
        k=PAGE_SIZE,
    )


def page_fetcher(query: dict[str, Any], request: SearchRequest) -> Callable[[str | None], SearchPage]:
    url, key = api_settings()

    def fetch(cursor: str | None) -> SearchPage:
        body = json.dumps({**request.body(), **({"cursor": cursor} if cursor else {})}, sort_keys=True)
        if query["mode"] == "image":
            return cached_image_search(url, key, query["data"], query["name"], body)
        if query["mode"] == "similar":
            # The similar route leaves the example itself out, and takes the same filters and cursor.
            return cached_similar(url, key, query["image_id"], body)
        return cached_search(url, key, body)

    return fetch


def load_pages(
    fetch: Callable[[str | None], SearchPage], count: int
) -> tuple[list[Hit], str | None, float | None]:
    """The first ``count`` pages, following the API's cursors (cached, so reruns cost nothing)."""
    hits: list[Hit] = []
    cursor: str | None = None
    took: float | None = None
    for _ in range(count):
        page = fetch(cursor)
        hits.extend(page.results)
        took = page.took_ms if took is None else took
        cursor = page.next
        if not cursor:
            break
    return hits, cursor, took


def load_more() -> None:
    st.session_state.pages += 1


def results_section(query: dict[str, Any], media: str, filters: dict[str, Any]) -> None:
    if query["mode"] == "blank":
        st.info("Type what you are looking for in the search box (the *Not* field only leaves things out).")
        return
    request = build_request(query, media, filters)
    request_key = json.dumps(
        {"q": request.body(), "image": query.get("name"), "size": len(query.get("data") or b"")},
        sort_keys=True,
    )
    if st.session_state.request_key != request_key:
        st.session_state.request_key = request_key
        st.session_state.pages = 1
    st.session_state.last_request = request.body()
    query_banner(query)
    try:
        with st.spinner("Searching…"):
            hits, cursor, took = load_pages(page_fetcher(query, request), st.session_state.pages)
    except ApiError as exc:
        st.error(error_text(exc), icon=":material/error:")
        return
    if not hits:
        hint = " or widen the filters" if filters or media != "all" else ""
        st.info(f"No results. Try other words{hint}.", icon=":material/search_off:")
        return
    summary = plural(len(hits), "result") + (" so far" if cursor else "")
    st.caption(summary + (f" · {took:.0f} ms" if took is not None else ""))
    result_grid(hits, key="results")
    if cursor:
        st.button("Load more", on_click=load_more, icon=":material/expand_more:", key="load_more")


def query_banner(query: dict[str, Any]) -> None:
    if query["mode"] == "similar":
        cols = st.columns([8, 2], vertical_alignment="center")
        cols[0].markdown(f"Items like **{html.escape(query['label'])}**")
        cols[1].button(
            "Clear", on_click=set_query, args=(None,), icon=":material/close:", key="clear_similar"
        )
    elif query["mode"] == "image":
        cols = st.columns([1, 7], vertical_alignment="center")
        cols[0].image(query["data"], width=72)
        cols[1].markdown(f"Items that look like **{html.escape(query['name'])}**")


# -- result cards ---------------------------------------------------------------------------
def result_grid(hits: list[Hit], key: str) -> None:
    grid = st.grid("auto", min_column_width=210, gap="small", border=True, key=key)
    for position, hit in enumerate(hits):
        with grid.cell():
            result_card(hit, f"{key}-{position}")


def result_card(hit: Hit, key: str) -> None:
    thumbnail(hit)
    st.markdown(card_html(hit), unsafe_allow_html=True)
    row = st.container(horizontal=True, gap="xxsmall")
    label = f"Play {clock(hit.start)}" if hit.is_video else "Details"
    row.button(
        label,
        key=f"open-{key}",
        on_click=open_detail,
        args=(hit,),
        type="tertiary",
        icon=":material/play_arrow:" if hit.is_video else ":material/info:",
    )
    row.button(
        "More like this",
        key=f"more-{key}",
        on_click=show_similar,
        args=(hit.id, hit.name),
        type="tertiary",
        icon=":material/auto_awesome:",
    )


def thumbnail(hit: Hit) -> None:
    url, key = api_settings()
    try:
        data = cached_thumbnail(url, key, hit.unit_id)
    except ApiError:
        # A missing thumbnail should not hide the result; show a neutral tile instead.
        icon = "🎬" if hit.is_video else "🖼️"
        st.markdown(f'<div class="glimpse-noimage">{icon}</div>', unsafe_allow_html=True)
        return
    st.image(data, width="stretch")


def card_html(hit: Hit) -> str:
    """Title, then price / category or the moment's time range, then the score in small print."""
    meta = hit.metadata
    title = html.escape(hit.name)
    lines = [f'<div class="glimpse-title" title="{title}">{title}</div>']
    details = []
    if hit.is_video:
        details.append(f'<span class="glimpse-moment">{time_range(hit)}</span>')
    price = price_text(meta)
    if price:
        details.append(f'<span class="glimpse-price">{html.escape(price)}</span>')
    if meta.get("category"):
        details.append(f'<span class="glimpse-chip">{html.escape(str(meta["category"]))}</span>')
    if details:
        lines.append(f'<div class="glimpse-meta">{" ".join(details)}</div>')
    lines.append(f'<div class="glimpse-score">score {hit.score:.3f}</div>')
    return "\n".join(lines)


# -- detail view ----------------------------------------------------------------------------
def detail_view(detail: dict[str, Any]) -> None:
    url, key = api_settings()
    st.button("Back to results", on_click=close_detail, icon=":material/arrow_back:", key="back")
    try:
        with st.spinner("Loading…"):
            item = cached_item(url, key, detail["id"])
    except ApiError as exc:
        st.error(error_text(exc), icon=":material/error:")
        return
    kind = item.get("kind", "image")
    name = (
        item.get("title") or str(item.get("path", "")).replace("\\", "/").rsplit("/", 1)[-1] or detail["name"]
    )
    left, right = st.columns([3, 2], gap="large")
    with left:
        if kind == "video":
            video_player(item, detail.get("start"))
        else:
            large_image(item)
    with right:
        st.subheader(name)
        if kind == "video" and detail.get("start") is not None:
            best = detail.get("best_time")
            st.markdown(
                f'Moment <span class="glimpse-moment">{clock(detail["start"])}–{clock(detail.get("end"))}</span>'
                + (f" · best match at {clock(best)}" if best is not None else ""),
                unsafe_allow_html=True,
            )
        field_table(item)
        st.button(
            "More like this",
            key="detail-more",
            on_click=show_similar,
            args=(int(item.get("id", detail["id"])), name),
            icon=":material/auto_awesome:",
            type="primary",
        )
    st.markdown("#### Similar items")
    try:
        similar = cached_similar(url, key, detail["id"], json.dumps({"k": SIMILAR_COUNT}))
    except ApiError as exc:
        st.error(error_text(exc), icon=":material/error:")
        return
    if similar.results:
        result_grid(similar.results, key="similar")
    else:
        st.caption("Nothing similar found.")


def large_image(item: dict[str, Any]) -> None:
    url, key = api_settings()
    try:
        st.image(cached_media(url, key, int(item["id"]), MAX_IMAGE_BYTES), width="stretch")
        return
    except ApiError as exc:
        # The original may be gone or huge; the thumbnail still shows what the item is.
        fallback = f" ({exc})" if not isinstance(exc, ApiHttpError) or exc.status != 404 else ""
    unit_id = first_unit_id(item)
    if unit_id is not None:
        with contextlib.suppress(ApiError):
            st.image(cached_thumbnail(url, key, unit_id), width="stretch")
    st.caption(f"The original file is not available{fallback}.")


def first_unit_id(item: dict[str, Any]) -> int | None:
    for unit in item.get("units") or []:
        if isinstance(unit, dict) and unit.get("unit_id") is not None:
            return int(unit["unit_id"])
    return None


def video_player(item: dict[str, Any], start: float | None) -> None:
    """Play the video from the moment's start.

    Default: this server fetches the file from the API and hands the bytes to ``st.video``
    (Streamlit then serves them to the browser with range requests). That works when the browser
    cannot reach the API or the API needs a key. For big files, set ``GLIMPSE_PUBLIC_API_URL`` to
    the API's browser-visible address and leave ``GLIMPSE_API_KEY`` unset: the player then streams
    straight from the API's ``/v1/media/{id}`` (which answers range requests) and nothing is relayed.
    """
    url, key = api_settings()
    item_id = int(item["id"])
    begin = int(start or 0)
    mime = item.get("mime") or item.get("content_type") or guess_video_type(str(item.get("path", "")))
    public = os.environ.get("GLIMPSE_PUBLIC_API_URL")
    if public and not key:
        st.video(client().media_url(item_id, public), format=mime, start_time=begin)
        return
    try:
        with st.spinner("Loading video…"):
            data = cached_media(url, key, item_id, MAX_VIDEO_BYTES)
    except MediaTooLarge as exc:
        st.warning(
            f"{exc}. Set `GLIMPSE_PUBLIC_API_URL` (the API as the browser reaches it) to stream big videos "
            "directly, or raise `GLIMPSE_UI_MAX_VIDEO_MB`."
        )
        return
    except ApiError as exc:
        st.error(error_text(exc), icon=":material/error:")
        return
    st.video(data, format=mime, start_time=begin)


def guess_video_type(path: str) -> str:
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return {
        "webm": "video/webm",
        "ogv": "video/ogg",
        "mov": "video/quicktime",
        "mkv": "video/x-matroska",
    }.get(suffix, "video/mp4")


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
HIDDEN_FIELDS = {"id", "title", "metadata", "units", "moments", "media_url", "thumbnail_url"}
FIELD_LABELS = {
    "sku": "SKU",
    "url": "Link",
    "fps": "Frame rate",
    "indexed_at": "Indexed",
    "size": "File size",
}


def field_table(item: dict[str, Any]) -> None:
    """Every catalogue field of the item, the shopper's ones first; nested structures stay out."""
    metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
    merged = {**item, **metadata}
    fields: dict[str, Any] = {}
    for name in (*SHOWN_FIELDS, *sorted(merged)):
        value = merged.get(name)
        if name in fields or name in HIDDEN_FIELDS or value in (None, "") or isinstance(value, (dict, list)):
            continue
        fields[name] = value
    if fields.get("status") == "indexed":
        del fields["status"]  # the normal case says nothing; "failed" and its error do
    if "price" in fields:
        fields["price"] = price_text(merged) or fields["price"]
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
    rows = "\n".join(f"| {field_label(k)} | {cell(k, v)} |" for k, v in fields.items())
    st.markdown("| Field | Value |\n|---|---|\n" + rows)


def file_size(size: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def field_label(name: str) -> str:
    return FIELD_LABELS.get(name) or html.escape(name.replace("_", " ").capitalize())


def cell(name: str, value: Any) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    if name == "url" and text.startswith(("http://", "https://")):
        return f"[{html.escape(text)}]({text})"
    return html.escape(text)


# -- page -----------------------------------------------------------------------------------
def library_stats() -> LibraryStats | None:
    """The library's facts, or None after showing why they could not be had."""
    try:
        return cached_stats(*api_settings())
    except ApiError as exc:
        st.error(error_text(exc), icon=":material/cloud_off:")
        # Failures are never cached, so a rerun asks the API again.
        st.button("Try again", icon=":material/refresh:", key="retry")
        return None


def empty_library() -> None:
    st.info(
        "The library is empty: nothing has been indexed yet.\n\n"
        "Index a folder of images and videos, then search here:\n\n"
        "```\nglimpse index PATH\n```\n"
        "Add `--manifest catalogue.csv` to attach titles, prices and categories.",
        icon=":material/inventory_2:",
    )


def welcome(stats: LibraryStats) -> None:
    st.caption(
        f"Search {stats.total:,} items by describing them in your own words, or drop in a picture. "
        "Use the sidebar to narrow by category, price or media kind."
    )


def main() -> None:
    st.set_page_config(page_title="Glimpse search", page_icon=":material/image_search:", layout="wide")
    st.markdown(CSS, unsafe_allow_html=True)
    init_state()
    st.title(":material/image_search: Glimpse")
    stats = library_stats()
    if stats is None:
        return
    if stats.total == 0:
        empty_library()
        return
    media, filters = sidebar(stats)
    search_form()
    if st.session_state.detail:
        detail_view(st.session_state.detail)
    elif st.session_state.query:
        results_section(st.session_state.query, media, filters)
    else:
        welcome(stats)


main()
