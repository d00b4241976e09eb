"""A small typed HTTP client for the Glimpse search API, used by the web UI.

The UI is just another API client: it imports nothing from the search or indexing code, only this
module (standard library + httpx). Base URL from ``GLIMPSE_API_URL``, key from ``GLIMPSE_API_KEY``.
Every failure is an :class:`ApiError` carrying a message fit to show a person:
:class:`ApiUnreachable` (nothing answered), :class:`ApiHttpError` (the API answered with an error,
or with something that is not the answer it documents) and :class:`MediaTooLarge`.
Answers are read as the API's schemas (``search/api/schemas.py``) define them: a required field that
is missing is a bad answer, not something to guess around.
"""

from __future__ import annotations

import json
import mimetypes
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, TypeVar
from urllib.parse import urljoin

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"
Media = Literal["all", "image", "video"]
SearchMode = Literal["hybrid", "vector", "keyword"]
SortOrder = Literal["relevance", "price_asc", "price_desc", "newest"]


class ApiError(Exception):
    """Base class: the API call did not give a usable answer."""


class ApiUnreachable(ApiError):
    """Nothing answered at the API's URL (not running, wrong address, timeout)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"the search API at {url} is unreachable: {reason}")


class ApiHttpError(ApiError):
    """The API answered with an error status; ``message`` is the API's own explanation.

    ``fields`` names the request fields a validation error (422) was about, from the error's
    ``details``, so a caller can tell "this API does not know that parameter" from other refusals.
    """

    def __init__(self, status: int, code: str, message: str, fields: tuple[str, ...] = ()) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        super().__init__(f"{message} (HTTP {status}, {code})")


class MediaTooLarge(ApiError):
    """A media file is bigger than the UI is willing to relay through its own server."""

    def __init__(self, item_id: int, size: int, limit: int) -> None:
        self.item_id = item_id
        self.size = size
        self.limit = limit
        super().__init__(
            f"item {item_id} is {size / 1e6:.0f} MB, more than the {limit / 1e6:.0f} MB the UI relays"
        )


@dataclass(frozen=True)
class SearchRequest:
    """One search as the API's JSON body; ``None`` fields are left out of the request."""

    q: str | None = None
    negative: str | None = None
    image_id: int | None = None
    # A video segment (a hit's ``unit_id``) as the example, instead of a whole item.
    unit_id: int | None = None
    media: Media = "all"
    filters: dict[str, Any] | None = None
    k: int = 24
    cursor: str | None = None
    min_score: float | None = None
    # A sequence: q, then each of these texts, each step within ``within`` seconds of the last.
    then: tuple[str, ...] = ()
    within: float | None = None

    # None leaves the API's default: hybrid when the library has catalogue text, else vector.
    mode: SearchMode | None = None
    relevant_only: bool | None = None
    sort: SortOrder | None = None

    def body(self) -> dict[str, Any]:
        body = {k: v for k, v in self.__dict__.items() if v is not None and v != "" and v != {} and v != ()}
        if "then" in body:
            body["then"] = list(body["then"])
        return body

    def form_fields(self) -> dict[str, str]:
        """The same request as flat fields (multipart form, query string): ``filters`` as a JSON string.
        A sequence's ``then`` has no flat form here: only the JSON body carries it."""
        return {
            k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in self.body().items() if k != "then"
        }

    def query_params(self) -> dict[str, str]:
        """Flat fields for ``/v1/items/{id}/similar``: no text and no item id, but a segment may narrow
        the example from the whole item to that moment (``unit_id``)."""
        return {k: v for k, v in self.form_fields().items() if k not in ("q", "negative", "image_id")}


def file_name(path: str) -> str:
    """The last component of a path as the API sends it (relative or absolute, either separator)."""
    return path.replace("\\", "/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Hit:
    """One result: an image, or a moment (start..end seconds) of a video."""

    id: int
    unit_id: int
    kind: str
    path: str
    score: float
    media_url: str
    thumbnail_url: str
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    start: float | None = None
    end: float | None = None
    best_time: float | None = None
    # A sequence query's hit: the moment of each step, in order ((start, end) seconds).
    steps: tuple[tuple[float, float], ...] = ()
    relevance: float | None = None  # calibrated 0..1 (0.5: the relevance cutoff)
    matched: dict[str, Any] = field(default_factory=dict)  # which rankings found it, and where
    text_matches: list[dict[str, Any]] = field(default_factory=list)  # where its text was found (OCR)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hit:
        return cls(
            id=int(data["id"]),
            unit_id=int(data["unit_id"]),
            kind=str(data["kind"]),
            path=str(data["path"]),
            score=float(data["score"]),
            title=data.get("title"),
            media_url=str(data["media_url"]),
            thumbnail_url=str(data["thumbnail_url"]),
            metadata=dict(data["metadata"]),
            start=data.get("start"),
            end=data.get("end"),
            best_time=data.get("best_time"),
            steps=tuple((float(s["start"]), float(s["end"])) for s in data.get("steps") or ()),
            relevance=data.get("relevance"),
            matched=dict(data.get("matched") or {}),
            text_matches=list(data.get("text_matches") or []),
        )

    @property
    def is_video(self) -> bool:
        return self.kind == "video"

    @property
    def name(self) -> str:
        """What to call the item: its catalogue title, else its file name."""
        return self.title or file_name(self.path) or f"item {self.id}"


@dataclass(frozen=True)
class SearchPage:
    results: list[Hit]
    next: str | None
    took_ms: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchPage:
        return cls([Hit.from_json(r) for r in data["results"]], data["next"], data["took_ms"])


@dataclass(frozen=True)
class Item:
    """One item (``GET /v1/items/{id}``): the fields the UI acts on, and all of them in ``fields``."""

    id: int
    kind: str
    path: str
    title: str | None
    media_url: str
    unit_ids: tuple[int, ...]
    fields: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Item:
        return cls(
            id=int(data["id"]),
            kind=str(data["kind"]),
            path=str(data["path"]),
            title=data.get("title"),
            media_url=str(data["media_url"]),
            unit_ids=tuple(int(u["unit_id"]) for u in data["units"]),
            fields=data,
        )

    @property
    def is_video(self) -> bool:
        return self.kind == "video"

    @property
    def name(self) -> str:
        return self.title or file_name(self.path) or f"item {self.id}"


@dataclass(frozen=True)
class MediaInfo:
    """What the API would serve for an item's original: its type and size in bytes."""

    content_type: str
    size: int


@dataclass(frozen=True)
class MediaLink:
    """A signed link to an item's original that a browser may fetch without the API key.

    ``url`` is as the API wrote it (usually a path on the API); ``expires_at`` is a POSIX time,
    or None when the API did not say.
    """

    url: str
    expires_at: float | None


@dataclass(frozen=True)
class LibraryStats:
    """What the library holds, and the facets the UI builds its filters from."""

    images: int
    videos: int
    failed: int
    categories: list[str]
    price_min: float | None
    price_max: float | None
    model: dict[str, Any] | None = None
    last_run: dict[str, Any] | None = None
    # Sample titles from the catalogue (``facets.examples``), where the API offers them.
    examples: list[str] = field(default_factory=list)
    # The API's upload limit (``limits``); None from an API that does not state it.
    max_upload_bytes: int | None = None
    max_upload_mb: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LibraryStats:
        items = data["items"]
        facets = data["facets"]
        price = facets["price"]
        # ``limits`` and ``facets.examples`` are newer than the rest: an older API leaves them out.
        limits = data.get("limits") or {}
        return cls(
            images=int(items["image"]),
            videos=int(items["video"]),
            failed=int(data["failed"]),
            categories=[str(c) for c in facets["categories"]],
            price_min=price["min"],
            price_max=price["max"],
            model=data.get("model"),
            last_run=data.get("last_run"),
            examples=[str(e) for e in facets.get("examples") or []],
            max_upload_bytes=limits.get("max_upload_bytes"),
            max_upload_mb=limits.get("max_upload_mb"),
        )

    @property
    def total(self) -> int:
        return self.images + self.videos


class GlimpseClient:
    """Calls the search API; one keep-alive connection pool per client."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``transport`` replaces the network (tests answer with ``httpx.MockTransport``)."""
        self.base_url = (base_url or os.environ.get("GLIMPSE_API_URL") or DEFAULT_API_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("GLIMPSE_API_KEY")
        self.keyed = bool(key)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GlimpseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- service -------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")

    def ready(self) -> dict[str, Any]:
        return self._json("GET", "/readyz")

    def stats(self) -> LibraryStats:
        return _parsed("/v1/stats", LibraryStats.from_json, self._json("GET", "/v1/stats"))

    # -- search --------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> SearchPage:
        return _parsed(
            "/v1/search", SearchPage.from_json, self._json("POST", "/v1/search", json=request.body())
        )

    def search_image(
        self, image: bytes, filename: str, request: SearchRequest = SearchRequest()
    ) -> SearchPage:
        """Search with an uploaded example image (plus any text, filters, cursor in ``request``)."""
        files = {"file": (filename, image, _guess_type(filename))}
        data = self._json("POST", "/v1/search/image", files=files, data=request.form_fields())
        return _parsed("/v1/search/image", SearchPage.from_json, data)

    def similar(self, item_id: int, request: SearchRequest = SearchRequest()) -> SearchPage:
        """More like this: items near ``item_id`` (itself left out), with the request's media, filters, cursor.

        With ``request.unit_id`` the example is that segment of the item (a video's moment), not
        the whole item. An API older than segment examples refuses the parameter by name (422); the
        whole item is then the example, as it was before.
        """
        path = f"/v1/items/{int(item_id)}/similar"
        try:
            data = self._json("GET", path, params=request.query_params())
        except ApiHttpError as exc:
            if request.unit_id is None or exc.status != 422 or "unit_id" not in exc.fields:
                raise
            data = self._json("GET", path, params=replace(request, unit_id=None).query_params())
        return _parsed(path, SearchPage.from_json, data)

    # -- items and media -----------------------------------------------------------------
    def item(self, item_id: int) -> Item:
        path = f"/v1/items/{int(item_id)}"
        return _parsed(path, Item.from_json, self._json("GET", path))

    def thumbnail(self, unit_id: int) -> bytes:
        return self._bytes(f"/v1/thumbnails/{int(unit_id)}")

    def media(self, item_id: int, max_bytes: int | None = None) -> bytes:
        """The item's original file; :class:`MediaTooLarge` beyond ``max_bytes`` (read no further)."""
        path = f"/v1/media/{int(item_id)}"
        try:
            with self._http.stream("GET", path) as response:
                _raise_for_error(response, read=True)
                declared = int(response.headers.get("content-length") or 0)
                if max_bytes is not None and declared > max_bytes:
                    raise MediaTooLarge(item_id, declared, max_bytes)
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise MediaTooLarge(item_id, size, max_bytes)
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TransportError as exc:
            raise ApiUnreachable(self.base_url, _reason(exc)) from None

    def media_info(self, item_id: int) -> MediaInfo:
        """The type and size of the item's original, asking for one byte of it (the route has no HEAD).

        Raises :class:`ApiHttpError` 404 when the file is gone, 403 when it lies outside the media
        folders: what a browser fetching it would get, found out before sending the browser there.
        """
        path = f"/v1/media/{int(item_id)}"
        try:
            with self._http.stream("GET", path, headers={"Range": "bytes=0-0"}) as response:
                if response.status_code == 416:  # an empty file has no first byte
                    return MediaInfo(response.headers.get("content-type", "application/octet-stream"), 0)
                _raise_for_error(response, read=True)
                content_type = response.headers.get("content-type", "application/octet-stream")
                total = response.headers.get("content-range", "").rpartition("/")[2]
                size = total if total.isdigit() else response.headers.get("content-length", "0")
                return MediaInfo(content_type.split(";")[0].strip(), int(size))
        except httpx.TransportError as exc:
            raise ApiUnreachable(self.base_url, _reason(exc)) from None

    def media_link(self, item_id: int) -> MediaLink:
        """A short-lived signed link to the item's original, for a browser that has no API key.

        An API without signed links answers 404 (no such route): :class:`ApiHttpError`.
        """
        path = f"/v1/media/{int(item_id)}/link"
        return _parsed(path, _media_link, self._json("GET", path))

    def public_url(self, link: str, public_base: str | None = None) -> str:
        """A link from an answer (``media_url``, a signed link) as a browser at ``public_base`` must ask for it.

        Resolved the way a browser resolves a link on a page of the API: an absolute path keeps the
        API's own prefix (an API mounted under ``/glimpse`` writes ``/glimpse/v1/...``), an absolute
        URL stays as it is.
        """
        return urljoin(f"{(public_base or self.base_url).rstrip('/')}/", link)

    # -- plumbing ------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiUnreachable(self.base_url, _reason(exc)) from None
        _raise_for_error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        try:
            data = response.json()
        except ValueError:
            raise ApiHttpError(
                response.status_code, "bad_response", f"{path} did not answer with JSON"
            ) from None
        if not isinstance(data, dict):
            raise ApiHttpError(
                response.status_code, "bad_response", f"{path} answered {type(data).__name__}, not an object"
            )
        return data

    def _bytes(self, path: str) -> bytes:
        return self._send("GET", path).content


T = TypeVar("T")


def _parsed(path: str, parse: Callable[[dict[str, Any]], T], data: dict[str, Any]) -> T:
    """``parse(data)``, or an :class:`ApiHttpError` saying the answer lacked what the API documents
    (another service at the URL, or an incompatible version): a message, never a traceback."""
    try:
        return parse(data)
    except (KeyError, TypeError, ValueError) as exc:
        what = f"no field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ApiHttpError(200, "bad_response", f"{path} answered in an unexpected shape ({what})") from None


def _media_link(data: dict[str, Any]) -> MediaLink:
    expires = data.get("expires_at")
    if isinstance(expires, str):
        try:
            when: float | None = datetime.fromisoformat(expires).timestamp()
        except ValueError:
            when = None
    else:
        when = float(expires) if isinstance(expires, (int, float)) else None
    return MediaLink(str(data["url"]), when)


def _raise_for_error(response: httpx.Response, read: bool = False) -> None:
    if response.status_code < 400:
        return
    if read:
        response.read()
    code, message, fields = _error_parts(response)
    raise ApiHttpError(response.status_code, code, message, fields)


def _error_parts(response: httpx.Response) -> tuple[str, str, tuple[str, ...]]:
    """(code, message, fields) from the API's ``{"error": {...}}``.

    Anything else came from something in front of the API (a proxy's 502 page, another service):
    its text, shortened, is the message.
    """
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()[:300]
        return "http_error", text or response.reason_phrase or "error", ()
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        details = err.get("details") if isinstance(err.get("details"), list) else []
        fields = tuple(str(d["field"]) for d in details if isinstance(d, dict) and d.get("field"))
        return str(err.get("code") or "error"), str(err.get("message") or response.reason_phrase), fields
    return "http_error", str(data)[:300], ()


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in str(exc).lower() else (str(exc) or "cannot connect")
    return str(exc) or type(exc).__name__


def _guess_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"
