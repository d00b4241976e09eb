"""A small typed HTTP client for the Glimpse search API, used by the web UI.

The UI is just another API client: it imports nothing from the search or indexing code, only this
module (standard library + httpx). Base URL from ``GLIMPSE_API_URL``, key from ``GLIMPSE_API_KEY``.
Every failure is one of two exceptions carrying a message fit to show a person:
:class:`ApiUnreachable` (nothing answered) and :class:`ApiHttpError` (the API answered with an error).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"
Media = Literal["all", "image", "video"]


class ApiError(Exception):
    """Base class: the API call did not give a usable answer."""


class ApiUnreachable(ApiError):
    """Nothing answered at the API's URL (not running, wrong address, timeout)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"the search API at {url} is unreachable: {reason}")


class ApiHttpError(ApiError):
    """The API answered with an error status; ``message`` is the API's own explanation."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
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
    media: Media = "all"
    filters: dict[str, Any] | None = None
    k: int = 24
    cursor: str | None = None
    min_score: float | None = None

    def body(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "", {})}

    def form_fields(self) -> dict[str, str]:
        """The same request as flat fields (multipart form, query string): ``filters`` as a JSON string."""
        return {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in self.body().items()}

    def query_params(self) -> dict[str, str]:
        """Flat fields for ``/v1/items/{id}/similar``, which takes no text and no item id."""
        return {k: v for k, v in self.form_fields().items() if k not in ("q", "negative", "image_id")}


@dataclass(frozen=True)
class Hit:
    """One result: an image, or a moment (start..end seconds) of a video."""

    id: int
    unit_id: int
    kind: str
    path: str
    score: float
    title: str | None = None
    media_url: str | None = None
    thumbnail_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    start: float | None = None
    end: float | None = None
    best_time: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hit:
        return cls(
            id=int(data["id"]),
            unit_id=int(data.get("unit_id", data["id"])),
            kind=str(data.get("kind", "image")),
            path=str(data.get("path", "")),
            score=float(data.get("score", 0.0)),
            title=data.get("title"),
            media_url=data.get("media_url"),
            thumbnail_url=data.get("thumbnail_url"),
            metadata=dict(data.get("metadata") or {}),
            start=data.get("start"),
            end=data.get("end"),
            best_time=data.get("best_time"),
        )

    @property
    def is_video(self) -> bool:
        return self.kind == "video"

    @property
    def name(self) -> str:
        """What to call the item: its catalogue title, else its file name."""
        return self.title or self.path.replace("\\", "/").rsplit("/", 1)[-1] or f"item {self.id}"


@dataclass(frozen=True)
class SearchPage:
    results: list[Hit]
    next: str | None
    took_ms: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchPage:
        return cls([Hit.from_json(r) for r in data.get("results", [])], data.get("next"), data.get("took_ms"))


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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LibraryStats:
        items = data.get("items") or {}
        facets = data.get("facets") or {}
        price = facets.get("price") or {}
        return cls(
            images=int(items.get("image", 0)),
            videos=int(items.get("video", 0)),
            failed=int(data.get("failed") or 0),
            categories=[str(c) for c in facets.get("categories") or []],
            price_min=price.get("min"),
            price_max=price.get("max"),
            model=data.get("model"),
            last_run=data.get("last_run"),
        )

    @property
    def total(self) -> int:
        return self.images + self.videos


class GlimpseClient:
    """Calls the search API; one keep-alive connection pool per client."""

    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, timeout: float = 30.0
    ) -> None:
        self.base_url = (base_url or os.environ.get("GLIMPSE_API_URL") or DEFAULT_API_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("GLIMPSE_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

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
        return LibraryStats.from_json(self._json("GET", "/v1/stats"))

    # -- search --------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> SearchPage:
        return SearchPage.from_json(self._json("POST", "/v1/search", json=request.body()))

    def search_image(
        self, image: bytes, filename: str, request: SearchRequest = SearchRequest()
    ) -> SearchPage:
        """Search with an uploaded example image (plus any text, filters, cursor in ``request``)."""
        files = {"file": (filename, image, _guess_type(filename))}
        return SearchPage.from_json(
            self._json("POST", "/v1/search/image", files=files, data=request.form_fields())
        )

    def similar(self, item_id: int, request: SearchRequest = SearchRequest()) -> SearchPage:
        """More like this: items near ``item_id`` (itself left out), with the request's media, filters, cursor."""
        return SearchPage.from_json(
            self._json("GET", f"/v1/items/{int(item_id)}/similar", params=request.query_params())
        )

    # -- items and media -----------------------------------------------------------------
    def item(self, item_id: int) -> dict[str, Any]:
        return self._json("GET", f"/v1/items/{int(item_id)}")

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

    def media_url(self, item_id: int, public_base: str | None = None) -> str:
        """An absolute URL of the item's file, on ``public_base`` (what a browser reaches) if given."""
        return f"{(public_base or self.base_url).rstrip('/')}/v1/media/{int(item_id)}"

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


def _raise_for_error(response: httpx.Response, read: bool = False) -> None:
    if response.status_code < 400:
        return
    if read:
        response.read()
    code, message = _error_parts(response)
    raise ApiHttpError(response.status_code, code, message)


def _error_parts(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from ``{"error": {...}}``; FastAPI's ``{"detail": ...}`` or plain text otherwise."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()[:300]
        return "http_error", text or response.reason_phrase or "error"
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        return str(err.get("code") or "error"), str(err.get("message") or response.reason_phrase)
    if isinstance(data, dict) and "detail" in data:
        detail = data["detail"]
        if isinstance(detail, list):  # FastAPI validation errors: [{"loc": [...], "msg": ...}]
            detail = "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}"
                if isinstance(d, dict)
                else str(d)
                for d in detail
            )
        return "http_error", str(detail)
    return "http_error", str(data)[:300]


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in str(exc).lower() else (str(exc) or "cannot connect")
    return str(exc) or type(exc).__name__


def _guess_type(filename: str) -> str:
    import mimetypes

    return mimetypes.guess_type(filename)[0] or "application/octet-stream"
