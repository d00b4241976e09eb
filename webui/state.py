"""The page's session state: what is being searched, which item is open, and the callbacks that change it.

Widgets call these callbacks before the page runs again, so every run renders from one settled state.
Keys kept in ``st.session_state``:

- ``query``: the search being shown (:class:`Query`), or None before the first one;
- ``detail``: the item open in the detail view (:class:`Detail`), or None for the results;
- ``pages``: how many result pages "Load more" has asked for; ``request_key`` tells when the
  search changed, so the count starts again at one;
- ``last_request``: the body of the last search sent (tests read it to see what the API got);
- ``media_links``: signed media links still valid, by item id (kept by ``api_access``);
- the widgets' own keys: ``q_input``, ``not_input``, ``then_input``, ``within_input``,
  ``upload_input``, ``media_filter``, ``category_filter``, ``price_filter``.
"""

from __future__ import annotations

from typing import Literal, TypedDict

import streamlit as st

from glimpse.webui.client import Hit

Mode = Literal["text", "blank", "image", "similar"]


class Query(TypedDict, total=False):
    mode: Mode
    q: str | None  # text mode
    negative: str | None  # text and blank modes
    then: list[str]  # text mode: a sequence's later steps (videos only), in order
    within: float  # text mode: most seconds between one step and the next
    image_id: int  # similar mode: the example item
    unit_id: int | None  # similar mode: the example moment of a video, else None
    label: str  # similar mode: what the example is called
    moment: str | None  # similar mode: the example moment's span, shown beside the label
    name: str  # image mode: the uploaded file's name
    data: bytes  # image mode: its bytes


class Detail(TypedDict, total=False):
    id: int
    name: str
    start: float | None  # a video moment's span and best instant; None for images
    end: float | None
    best_time: float | None
    unit_id: int | None  # the moment's segment, for "more like this" from the detail view


def init_state() -> None:
    defaults = {"query": None, "pages": 1, "request_key": None, "detail": None, "last_request": None}
    for name, value in defaults.items():
        st.session_state.setdefault(name, value)


def set_query(query: Query | None) -> None:
    st.session_state.query = query
    st.session_state.detail = None


def clear_query() -> None:
    set_query(None)


def _clear_search_box() -> None:
    """A search by example does not use the typed words; leaving them in the box would say it did."""
    st.session_state.q_input = ""
    st.session_state.not_input = ""


def on_text_submit() -> None:
    text = (st.session_state.get("q_input") or "").strip()
    negative = (st.session_state.get("not_input") or "").strip()
    if not text:
        st.session_state.query = Query(mode="blank", negative=negative) if negative else None
        st.session_state.detail = None
        return
    query = Query(mode="text", q=text, negative=negative or None)
    steps = sequence_steps(st.session_state.get("then_input") or "")
    if steps:
        query["then"] = steps
        query["within"] = float(st.session_state.get("within_input") or DEFAULT_WITHIN)
    set_query(query)


DEFAULT_WITHIN = 30.0  # seconds, the API's own default
MAX_STEPS = 4  # steps after the first, the API's own limit


def sequence_steps(text: str) -> list[str]:
    """The "then" box's steps: texts separated by ';' (blank ones dropped), at most the API's four."""
    return [step.strip() for step in text.split(";") if step.strip()][:MAX_STEPS]


def on_upload() -> None:
    upload = st.session_state.get("upload_input")
    if upload is None:
        if st.session_state.query and st.session_state.query.get("mode") == "image":
            set_query(None)
        return
    _clear_search_box()
    set_query(Query(mode="image", name=upload.name, data=upload.getvalue()))


def show_similar(item_id: int, label: str, unit_id: int | None = None, moment: str | None = None) -> None:
    """More like this item, or like one moment (``unit_id``, spanning ``moment``) of a video."""
    _clear_search_box()
    set_query(Query(mode="similar", image_id=item_id, unit_id=unit_id, label=label, moment=moment))


def open_detail(hit: Hit) -> None:
    st.session_state.detail = Detail(
        id=hit.id,
        name=hit.name,
        start=hit.start,
        end=hit.end,
        best_time=hit.best_time,
        unit_id=hit.unit_id if hit.is_video else None,
    )


def close_detail() -> None:
    st.session_state.detail = None


def reset_filters() -> None:
    for name in ("media_filter", "category_filter", "price_filter"):
        st.session_state.pop(name, None)


def load_more() -> None:
    st.session_state.pages += 1
