"""The page as Streamlit renders it: sidebar, search form, result grid, detail view with the player.

Views read the session state (``state``), call the API through ``api_access`` and say things
through ``formatting``; every failed call shows the API's message (``formatting.error_text``),
never a traceback.
"""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import Callable
from typing import Any

import streamlit as st

from glimpse.webui.api_access import (
    cached_image_search,
    cached_item,
    cached_media_info,
    cached_search,
    cached_similar,
    cached_stats,
    cached_thumbnail,
    config,
    original_source,
)
from glimpse.webui.client import (
    ApiError,
    ApiHttpError,
    Hit,
    Item,
    LibraryStats,
    MediaTooLarge,
    SearchPage,
    SearchRequest,
)
from glimpse.webui.config import UiConfig
from glimpse.webui.formatting import (
    best_time,
    card_html,
    error_text,
    example_moment,
    field_table,
    library_caption,
    moment_caption,
    no_results_text,
    play_label,
    plural,
    price_slider,
    results_summary,
    search_placeholder,
    time_range,
    upload_error_text,
    upload_limit_mb,
)
from glimpse.webui.state import (
    AUTO,
    DEFAULT_WITHIN,
    Detail,
    Query,
    Ranking,
    clear_query,
    close_detail,
    init_state,
    load_more,
    on_text_submit,
    on_upload,
    open_detail,
    reset_filters,
    show_similar,
)

SIMILAR_COUNT = 8
MEDIA_LABELS = {"all": "All", "image": "Images", "video": "Videos"}
MODE_LABELS = {
    AUTO: "Words and picture",
    "hybrid": "Hybrid",
    "vector": "Picture only",
    "keyword": "Words only",
}
SORT_LABELS = {
    "relevance": "Relevance",
    "price_asc": "Price: low to high",
    "price_desc": "Price: high to low",
    "newest": "Newest",
}
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
.glimpse-why {color: #6b7280; font-size: 0.75rem; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap;}
.glimpse-why mark {background: #fef08a; padding: 0 1px;}
.glimpse-text {color: #374151; font-size: 0.82rem; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap;}
.glimpse-text mark {background: #fef08a; padding: 0 0.1rem;}
.glimpse-noimage {aspect-ratio: 4 / 3; display: flex; align-items: center; justify-content: center;
  background: #f3f4f6; border-radius: 0.5rem; color: #9ca3af; font-size: 2rem;}
/* The detail table fits its column: long values (paths, links) wrap instead of scrolling sideways. */
.st-key-details table {table-layout: fixed; width: 100%;}
.st-key-details th:first-child, .st-key-details td:first-child {width: 30%;}
.st-key-details td {overflow-wrap: anywhere; word-break: break-word;}
</style>
"""


# -- page -----------------------------------------------------------------------------------
def main() -> None:
    st.set_page_config(page_title="Glimpse search", page_icon=":material/image_search:", layout="wide")
    st.markdown(CSS, unsafe_allow_html=True)
    init_state()
    cfg = config()
    st.title(":material/image_search: Glimpse")
    stats = library_stats(cfg)
    if stats is None:
        return
    if stats.total == 0:
        empty_library()
        return
    media, filters, ranking = sidebar(stats)
    search_form(stats)
    if st.session_state.detail:
        detail_view(cfg, st.session_state.detail)
    elif st.session_state.query:
        results_section(cfg, st.session_state.query, media, filters, ranking)
    else:
        welcome(stats)


def library_stats(cfg: UiConfig) -> LibraryStats | None:
    """The library's facts, or None after showing why they could not be had."""
    try:
        return cached_stats(cfg.api_url, cfg.api_key)
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


# -- sidebar: library facts and filters -----------------------------------------------------
def sidebar(stats: LibraryStats) -> tuple[str, dict[str, Any], Ranking]:
    """The media kind, the API filters (only what narrows the search) and the ranking chosen in
    the sidebar."""
    with st.sidebar:
        st.markdown("### Library")
        st.caption(library_caption(stats))
        ranking = ranking_controls()
        st.markdown("### Filters")
        media = (
            st.segmented_control(
                "Show",
                ["all", "image", "video"],
                format_func=lambda kind: MEDIA_LABELS[kind],
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
            low, high, step, shown = price_slider(float(stats.price_min), float(stats.price_max))
            picked = st.slider("Price", low, high, (low, high), step=step, key="price_filter", format=shown)
            if picked[0] > stats.price_min or picked[1] < stats.price_max:
                # A narrowed range also leaves out items without a price, which is what shoppers expect.
                filters["price"] = {"gte": picked[0], "lte": picked[1]}
        st.button("Reset filters", on_click=reset_filters, type="tertiary", icon=":material/restart_alt:")
        if stats.failed:
            st.caption(f":material/warning: {plural(stats.failed, 'file')} could not be indexed.")
    return media, filters, ranking


def ranking_controls() -> Ranking:
    """Search mode, "relevant only" (on unless turned off) and the sort order."""
    st.markdown("### Results")
    mode = st.selectbox(
        "Search by", list(MODE_LABELS), format_func=lambda m: MODE_LABELS[m], key="mode_input"
    )
    relevant_only = st.toggle(
        "Relevant only",
        key="relevant_input",
        help="Hide results that do not stand out from the rest of the library for this search.",
    )
    sort = st.selectbox("Sort by", list(SORT_LABELS), format_func=lambda m: SORT_LABELS[m], key="sort_input")
    return Ranking(mode=mode or AUTO, relevant_only=bool(relevant_only), sort=sort or "relevance")


# -- search form ----------------------------------------------------------------------------
def search_form(stats: LibraryStats) -> None:
    with st.form("search", border=False, enter_to_submit=True):
        cols = st.columns([6, 3, 1.2], vertical_alignment="bottom")
        cols[0].text_input("Search", key="q_input", placeholder=search_placeholder(stats))
        cols[1].text_input("Not", key="not_input", placeholder="what to leave out")
        cols[2].form_submit_button("Search", type="primary", on_click=on_text_submit, width="stretch")
        with st.expander("Then… (find a sequence of events in videos)", icon=":material/timeline:"):
            cols = st.columns([6, 3], vertical_alignment="bottom")
            cols[0].text_input(
                "Then",
                key="then_input",
                placeholder="what comes next, e.g. a blue square; a green triangle",
                help="Videos where the search above is followed by each of these, in order.",
            )
            cols[1].number_input(
                "Within (seconds)",
                min_value=1.0,
                max_value=86_400.0,
                value=DEFAULT_WITHIN,
                step=5.0,
                key="within_input",
            )
    with st.expander("Search with an image", icon=":material/image_search:"):
        # The uploader states the API's own limit (in MB) and refuses bigger files before sending.
        st.file_uploader(
            "Find items that look like this picture",
            type=UPLOAD_TYPES,
            key="upload_input",
            on_change=on_upload,
            max_upload_size=upload_limit_mb(stats),
        )


# -- running a search -----------------------------------------------------------------------
def build_request(
    cfg: UiConfig, query: Query, media: str, filters: dict[str, Any], ranking: Ranking | None = None
) -> SearchRequest:
    ranking = ranking or Ranking(mode=AUTO, relevant_only=True, sort="relevance")
    # The mode choice is about words; a search by example is by picture whatever it says.
    mode = ranking["mode"] if query["mode"] == "text" and ranking["mode"] != AUTO else None
    return SearchRequest(
        q=query.get("q"),
        negative=query.get("negative"),
        image_id=query.get("image_id"),
        unit_id=query.get("unit_id"),
        media=media,  # type: ignore[arg-type]
        filters=filters or None,
        k=cfg.page_size,
        then=tuple(query.get("then") or ()),
        within=query.get("within") if query.get("then") else None,
        mode=mode,  # type: ignore[arg-type]
        relevant_only=ranking["relevant_only"] or None,
        sort=None if ranking["sort"] == "relevance" else ranking["sort"],  # type: ignore[arg-type]
    )


def page_fetcher(cfg: UiConfig, query: Query, request: SearchRequest) -> Callable[[str | None], SearchPage]:
    url, key = cfg.api_url, cfg.api_key

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
) -> tuple[list[Hit], bool, float | None, int]:
    """The first ``count`` pages, following the API's cursors (cached, so reruns cost nothing):
    (hits, whether more exist, the last page's time, pages loaded)."""
    hits: list[Hit] = []
    cursor: str | None = None
    took: float | None = None
    pages = 0
    for _ in range(count):
        page = fetch(cursor)
        pages += 1
        hits.extend(page.results)
        took = page.took_ms
        cursor = page.next
        if not cursor:
            break
    return hits, cursor is not None, took, pages


def results_section(
    cfg: UiConfig, query: Query, media: str, filters: dict[str, Any], ranking: Ranking
) -> None:
    if query["mode"] == "blank":
        st.info("Type what you are looking for in the search box (the *Not* field only leaves things out).")
        return
    request = build_request(cfg, query, media, filters, ranking)
    request_key = json.dumps(
        {"q": request.body(), "image": query.get("name"), "size": len(query.get("data") or b"")},
        sort_keys=True,
    )
    if st.session_state.request_key != request_key:
        st.session_state.request_key = request_key
        st.session_state.pages = 1
    st.session_state.last_request = request.body()
    # An upload is shown only once the API accepted it (decoding it here could fail on a file that
    # is not an image); the "Items like" banner with its Clear button stands whatever the answer.
    banner = st.container()
    if query["mode"] == "similar":
        with banner:
            similar_banner(query)
    try:
        with st.spinner("Searching…"):
            hits, more, took, pages = load_pages(page_fetcher(cfg, query, request), st.session_state.pages)
    except ApiError as exc:
        message = upload_error_text(query["name"], exc) if query["mode"] == "image" else error_text(exc)
        st.error(message, icon=":material/error:")
        return
    if query["mode"] == "image":
        with banner:
            upload_banner(query)
    if not hits:
        st.info(
            no_results_text(media, filters, relevant_only=bool(request.relevant_only)),
            icon=":material/search_off:",
        )
        return
    st.caption(results_summary(len(hits), more, took, pages))
    result_grid(hits, key="results")
    if more:
        st.button("Load more", on_click=load_more, icon=":material/expand_more:", key="load_more")


def similar_banner(query: Query) -> None:
    """What the results are like, when it is not the text in the search box."""
    cols = st.columns([8, 2], vertical_alignment="center")
    moment = query.get("moment")
    cols[0].markdown(f"Items like **{html.escape(query['label'])}**" + (f" at {moment}" if moment else ""))
    cols[1].button("Clear", on_click=clear_query, icon=":material/close:", key="clear_similar")


def upload_banner(query: Query) -> None:
    """The accepted upload, small, beside its name (the API has decoded it: it is an image)."""
    cols = st.columns([1, 7], vertical_alignment="center")
    upload_preview(cols[0], query["data"])
    cols[1].markdown(f"Items that look like **{html.escape(query['name'])}**")


def upload_preview(place: Any, data: bytes) -> None:
    """A small picture of the accepted upload. Streamlit decodes it with Pillow, which the API has
    done already; should it still fail (Pillow raises many unrelated types), the results stand
    without the picture."""
    try:
        place.image(data, width=72)
    except Exception:  # noqa: BLE001  (a preview is decoration; its failure must not hide results)
        place.markdown(":material/image:")


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
    row.button(
        play_label(hit) if hit.is_video else "Details",
        key=f"open-{key}",
        on_click=open_detail,
        args=(hit,),
        type="tertiary",
        icon=":material/play_arrow:" if hit.is_video else ":material/info:",
    )
    # A video hit is one moment: more like that moment, not like the whole video.
    row.button(
        "More like this",
        key=f"more-{key}",
        on_click=show_similar,
        args=(hit.id, hit.name, hit.unit_id if hit.is_video else None, example_moment(hit)),
        type="tertiary",
        icon=":material/auto_awesome:",
    )


def thumbnail(hit: Hit) -> None:
    cfg = config()
    try:
        data = cached_thumbnail(cfg.api_url, cfg.api_key, hit.unit_id)
    except ApiError:
        # A missing thumbnail should not hide the result; show a neutral tile instead.
        icon = "🎬" if hit.is_video else "🖼️"
        st.markdown(f'<div class="glimpse-noimage">{icon}</div>', unsafe_allow_html=True)
        return
    st.image(data, width="stretch")


# -- detail view ----------------------------------------------------------------------------
def detail_view(cfg: UiConfig, detail: Detail) -> None:
    st.button("Back to results", on_click=close_detail, icon=":material/arrow_back:", key="back")
    try:
        with st.spinner("Loading…"):
            item = cached_item(cfg.api_url, cfg.api_key, detail["id"])
    except ApiError as exc:
        st.error(error_text(exc), icon=":material/error:")
        return
    unit_id = detail.get("unit_id")
    moment = time_range(detail.get("start"), detail.get("end")) if unit_id is not None else None
    left, right = st.columns([3, 2], gap="large")
    with left:
        original(cfg, item, detail)
    with right:
        st.subheader(item.name)
        with st.container(key="details"):
            st.markdown(field_table(item.fields))
        st.button(
            "More like this",
            key="detail-more",
            on_click=show_similar,
            args=(item.id, item.name, unit_id, moment),
            icon=":material/auto_awesome:",
            type="primary",
        )
    st.markdown("#### Similar items")
    request = SearchRequest(k=SIMILAR_COUNT, unit_id=unit_id)
    try:
        similar = cached_similar(
            cfg.api_url, cfg.api_key, item.id, json.dumps(request.body(), sort_keys=True)
        )
    except ApiError as exc:
        st.error(error_text(exc), icon=":material/error:")
        return
    if similar.results:
        result_grid(similar.results, key="similar")
    else:
        st.caption("Nothing similar found.")


def original(cfg: UiConfig, item: Item, detail: Detail) -> None:
    """The video player, from the moment's best instant and playing, or the full-size image.

    The API is asked first whether the file is there (one byte of it): a browser sent to a missing
    file would show a broken player, where the thumbnail and the reason say more.
    """
    try:
        info = cached_media_info(cfg.api_url, cfg.api_key, item.id)
        with st.spinner("Loading…"):
            source = original_source(cfg, item)
    except MediaTooLarge as exc:
        st.warning(
            f"{exc}. This API has keys but no signed media links, so the UI would have to relay the "
            "file itself: update the API, or raise `GLIMPSE_UI_MAX_VIDEO_MB`.",
            icon=":material/warning:",
        )
        return
    except ApiHttpError as exc:
        if exc.status not in (403, 404):
            st.error(error_text(exc), icon=":material/error:")
            return
        # The original is gone or outside the media folders; the thumbnail still shows what it is.
        if item.unit_ids:
            with contextlib.suppress(ApiError):  # without the thumbnail, the caption says enough
                st.image(cached_thumbnail(cfg.api_url, cfg.api_key, item.unit_ids[0]), width="stretch")
        st.caption(f"The original file is not available: {exc.message}.")
        return
    except ApiError as exc:
        st.error(error_text(exc), icon=":material/error:")
        return
    if not item.is_video:
        st.image(source, width="stretch")
        return
    start, end, best = detail.get("start"), detail.get("end"), detail.get("best_time")
    # Play where the search said the moment matches best (the card's "Play" time), at once: the
    # click on "Play" asked for it. Muted, because browsers refuse to start a video with sound
    # by itself; the player's own control turns the sound on.
    st.video(
        source,
        format=info.content_type,
        start_time=int(best_time(start, best)),
        autoplay=True,
        muted=True,
    )
    if start is not None:
        st.caption(moment_caption(start, end, best))
