"""The one search query, from the HTTP edge to the engine.

:class:`SearchQuery` is what ``POST /v1/search`` accepts as its JSON body, what the engine runs and
what ``glimpse search`` builds. Routes that take flat fields (the query string of ``GET /v1/search``,
the form of an upload, ``/v1/items/{id}/similar``) describe them with :class:`FlatQuery`, which
turns into a :class:`SearchQuery` in one place. Paging cursors are opaque tokens bound to the
query that produced them (:func:`encode_cursor`, :meth:`SearchQuery.start`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from glimpse.search.filters import FilterError, build_conditions

K_DEFAULT = 20
K_MAX = 200
OFFSET_MAX = 10_000  # deep pages cost a top-(offset + k) search each; past this, refine the query
TEXT_MAX = 1_000
MAX_THEN = 4  # steps after the first of a sequence query
DEFAULT_WITHIN = 30.0  # seconds between the steps of a sequence
# The largest id the API takes, wherever it takes one (path, query string, form or JSON body): a
# larger one is a 422 before any lookup, an unused one in range a 404. The catalogues store 64-bit
# ids (SQLite INTEGER, PostgreSQL BIGINT; drivers overflow past 2**63-1), but the bound is 2**53-1:
# the largest integer every JSON client holds exactly (JavaScript's Number; FastAPI's OpenAPI model
# itself keeps bounds as floats, where 2**63-1 would read as 2**63). Ids count up from 1, so no
# catalogue comes near it.
ID_MAX = 2**53 - 1

FILTERS_DOC = (
    "Catalogue filters: field -> value, list (any of) or {operator: value}, e.g. "
    '{"category": ["shoes"], "price": {"lte": 50}}. Fields: category, currency, sku, kind, title '
    "(operators eq, ne, in, contains) and price, width, height, duration (eq, ne, gt, gte, lt, lte, in)."
)


class Media(StrEnum):
    """Which items a search returns."""

    ALL = "all"
    IMAGE = "image"
    VIDEO = "video"


class QueryError(ValueError):
    """The query cannot be run as given (nothing to search for, bad weights...)."""


class CursorError(QueryError):
    """A paging cursor that this service did not hand out for this query."""


def nul_path(value: Any, path: str = "") -> str | None:
    """Where ``value`` (a text, or lists and objects of them at any depth) holds a NUL character:
    ``""`` for the value itself, ``"title.contains"`` inside an object, None where it holds none.

    PostgreSQL cannot store or compare text with NUL (its driver refuses it) while SQLite can, so
    such text is refused at the edge, the same on both backends."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        here = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and "\x00" in key:
            return here
        found = nul_path(item, here)
        if found is not None:
            return found
    return None


class TextInput(BaseModel):
    """A request model whose every text field, at any depth, is refused when it holds a NUL
    character: a 422 naming the field (and the place inside it), on every backend."""

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        where = nul_path(value)
        if where is not None:
            at = f" (at {where})" if where else ""
            raise ValueError(f"contains a NUL character{at}: text may not hold U+0000")
        return value


class Weights(BaseModel):
    """How much each part of a composed query counts (its vector is scaled by this, then summed)."""

    model_config = ConfigDict(extra="forbid")

    text: float = Field(1.0, ge=0.0, le=10.0, description="Weight of `q`.")
    image: float = Field(1.0, ge=0.0, le=10.0, description="Weight of the example (item, segment, upload).")
    negative: float = Field(0.5, ge=0.0, le=10.0, description="Weight subtracted for `negative`.")


class SearchQuery(TextInput):
    """A search: text, an example item or segment (or an uploaded image, passed beside it), filters
    and paging. Every part is optional except that something must be searched for."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "q": "red summer dress",
                    "filters": {"category": ["dresses"], "price": {"lte": 50}},
                    "k": 24,
                },
                {"q": "a truck at a loading dock at night", "media": "video", "k": 10},
                {"image_id": 42, "q": "in blue", "weights": {"image": 1.0, "text": 0.5}},
                {"q": "sneakers", "cursor": "eyJvIjoyNCwiZiI6IjEyMzQ1Njc4OTBhYmNkZWYifQ"},
            ]
        },
    )

    q: str | None = Field(None, max_length=TEXT_MAX, description="What to look for, in words.")
    negative: str | None = Field(None, max_length=TEXT_MAX, description="Move away from this text.")
    image_id: int | None = Field(
        None, ge=1, le=ID_MAX, description="An indexed item to search like (more like this)."
    )
    unit_id: int | None = Field(
        None,
        ge=1,
        le=ID_MAX,
        description="A unit to search like: a video segment (a moment's `unit_id`) or an image.",
    )
    weights: Weights = Field(default_factory=Weights)
    media: Media = Field(Media.ALL, description="Only images, only videos, or both.")
    filters: dict[str, Any] | None = Field(None, description=FILTERS_DOC)
    k: int = Field(K_DEFAULT, ge=1, le=K_MAX, description="Results per page.")
    offset: int = Field(0, ge=0, le=OFFSET_MAX, description="Results to skip (or use `cursor`).")
    cursor: str | None = Field(
        None, max_length=512, description="The `next` value of the previous page (opaque)."
    )
    min_score: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        allow_inf_nan=False,
        description="Drop results whose cosine similarity is lower.",
    )
    then: list[str] = Field(
        default_factory=list,
        max_length=MAX_THEN,
        description="A sequence: what must follow the query in the same video, in order "
        '("a red circle", then ["a blue square"]). Results are videos only, one per matching chain.',
    )
    within: float = Field(
        DEFAULT_WITHIN,
        gt=0,
        le=86_400,
        allow_inf_nan=False,
        description="Of a sequence: the longest gap in seconds between one step's end and the next's start.",
    )

    @field_validator("then")
    @classmethod
    def _steps_are_text(cls, steps: list[str]) -> list[str]:
        for step in steps:
            if not step.strip() or len(step) > TEXT_MAX:
                raise ValueError(f"each step of `then` is a non-blank text of at most {TEXT_MAX} characters")
        return steps

    def fingerprint(self, **context: Any) -> str:
        """What identifies the result list (not the page): a cursor is only valid for its query.

        ``context`` adds what the query itself does not hold (an uploaded image's digest, an item
        the route leaves out)."""
        identity = {
            **self.model_dump(mode="json", exclude={"k", "offset", "cursor"}),
            "q": (self.q or "").strip(),
            "negative": (self.negative or "").strip(),
            **context,
        }
        raw = json.dumps(identity, sort_keys=True, default=str).encode()
        return hashlib.blake2b(raw, digest_size=8).hexdigest()

    def start(self, **context: Any) -> int:
        """The offset to start at, the cursor's when one was given, after checking the filters
        and the cursor (bound to this query and ``context``): a bad request fails here, before
        any embedding work. Raises FilterError or CursorError."""
        build_conditions(self.filters)
        if self.cursor is None:
            return self.offset
        if self.offset:
            raise CursorError("give either offset or cursor, not both")
        return decode_cursor(self.cursor, self.fingerprint(**context))


class FlatPage(TextInput):
    """The page and filters of a search as flat fields (a query string or a multipart form):
    ``filters`` is a JSON object in a string, and ``category`` / ``price_min`` / ``price_max`` are
    shortcuts merged into it."""

    model_config = ConfigDict(extra="forbid")

    media: Media = Field(Media.ALL, description="Only images, only videos, or both.")
    filters: str | None = Field(
        None,
        max_length=10_000,
        description=f"JSON object. {FILTERS_DOC}",
        examples=['{"category": ["shoes"], "price": {"lte": 50}}'],
    )
    category: list[str] = Field(default_factory=list, description="Shortcut: any of these categories.")
    price_min: float | None = Field(None, allow_inf_nan=False, description="Shortcut: price >= this.")
    price_max: float | None = Field(None, allow_inf_nan=False, description="Shortcut: price <= this.")
    k: int = Field(K_DEFAULT, ge=1, le=K_MAX, description="Results per page.")
    offset: int = Field(0, ge=0, le=OFFSET_MAX, description="Results to skip (or use `cursor`).")
    cursor: str | None = Field(
        None, max_length=512, description="The `next` value of the previous page (opaque)."
    )
    min_score: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        allow_inf_nan=False,
        description="Drop results whose cosine similarity is lower.",
    )

    def to_query(self, **terms: Any) -> SearchQuery:
        """The one query model; ``terms`` add what is searched for (``q``, ``image_id``...)."""
        return SearchQuery(
            media=self.media,
            filters=merge_flat_filters(self),
            k=self.k,
            offset=self.offset,
            cursor=self.cursor,
            min_score=self.min_score,
            **terms,
        )


class FlatQuery(FlatPage):
    """A whole search as flat fields: what to look for, the weights as ``*_weight``, and the page."""

    q: str | None = Field(None, max_length=TEXT_MAX, description="What to look for, in words.")
    negative: str | None = Field(None, max_length=TEXT_MAX, description="Move away from this text.")
    image_id: int | None = Field(
        None, ge=1, le=ID_MAX, description="An indexed item to search like (more like this)."
    )
    unit_id: int | None = Field(
        None, ge=1, le=ID_MAX, description="A unit to search like (a moment's `unit_id`, or an image)."
    )
    text_weight: float = Field(1.0, ge=0.0, le=10.0)
    image_weight: float = Field(1.0, ge=0.0, le=10.0)
    negative_weight: float = Field(0.5, ge=0.0, le=10.0)
    then: list[str] = Field(
        default_factory=list, max_length=MAX_THEN, description="Sequence steps after `q` (repeatable)."
    )
    within: float = Field(DEFAULT_WITHIN, gt=0, le=86_400, allow_inf_nan=False)

    def to_query(self, **terms: Any) -> SearchQuery:
        return super().to_query(
            q=self.q,
            negative=self.negative,
            image_id=self.image_id,
            unit_id=self.unit_id,
            then=self.then,
            within=self.within,
            weights=Weights(text=self.text_weight, image=self.image_weight, negative=self.negative_weight),
            **terms,
        )


def merge_flat_filters(flat: FlatPage) -> dict[str, Any] | None:
    """``filters`` (a JSON object in a string) plus the ``category``/``price_min``/``price_max`` shortcuts."""
    filters: dict[str, Any] = {}
    if flat.filters and flat.filters.strip():
        try:
            parsed = json.loads(flat.filters)
        except json.JSONDecodeError as exc:
            raise FilterError(f"filters is not valid JSON: {exc.msg} (at {exc.pos})") from None
        if not isinstance(parsed, dict):
            raise FilterError("filters must be a JSON object of field -> condition")
        filters = parsed
    if flat.category:
        _add_condition(filters, "category", "in", list(flat.category))
    if flat.price_min is not None:
        _add_condition(filters, "price", "gte", flat.price_min)
    if flat.price_max is not None:
        _add_condition(filters, "price", "lte", flat.price_max)
    return filters or None


def _add_condition(filters: dict[str, Any], name: str, op: str, value: Any) -> None:
    spec = filters.get(name)
    if spec is None:
        filters[name] = {op: value}
        return
    if not isinstance(spec, dict):
        spec = {"in": spec} if isinstance(spec, list) else {"eq": spec}
    if op in spec:
        raise FilterError(f"filter {name!r} {op!r} is given twice (in filters and as a parameter)")
    filters[name] = {**spec, op: value}


# -- cursors ------------------------------------------------------------------------------------
def encode_cursor(offset: int, fingerprint: str) -> str:
    """An opaque token for "this query, from ``offset``" (base64url JSON; not a secret)."""
    raw = json.dumps({"o": offset, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, fingerprint: str) -> int:
    """The offset a cursor stands for; :class:`CursorError` when it is not one for this query."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        offset, owner = int(data["o"]), str(data["f"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise CursorError("the cursor is not one this API handed out") from None
    if owner != fingerprint:
        raise CursorError("the cursor belongs to another query: repeat the query it came from")
    if not 0 <= offset <= OFFSET_MAX:
        raise CursorError(f"the cursor points past the deepest page ({OFFSET_MAX} results)")
    return offset
