"""Request and response bodies of the ``/v1`` API (pydantic); their examples feed the OpenAPI docs.

Responses are built from the engine's own objects by the schema (``ResultOut.build``,
``ItemOut.build``): one place says how a result or an item becomes JSON.
"""

from __future__ import annotations

from typing import Any

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import inspect

from glimpse.core.catalogue import Asset, Unit
from glimpse.core.ocr import OcrLine
from glimpse.search.engine import Result
from glimpse.search.paths import PathDisplay
from glimpse.search.query import ID_MAX, TEXT_MAX, FlatPage, FlatQuery
from glimpse.search.text_input import TextInput


# -- requests -------------------------------------------------------------------------------
# The search itself is one model, search.query.SearchQuery (the JSON body of POST /v1/search) and
# its flat form search.query.FlatQuery (query strings and forms); these are the other requests.
class SimilarParams(FlatPage):
    """``GET /v1/items/{id}/similar`` query parameters: the page and filters of "more like this"."""

    model_config = ConfigDict(extra="forbid")

    unit_id: int | None = Field(
        None,
        ge=1,
        le=ID_MAX,
        description="Search like this segment of the item (a moment's `unit_id`) instead of the whole item.",
    )


class ImageSearchForm(FlatQuery):
    """``POST /v1/search/image`` multipart form: the image file, and any field of the search."""

    model_config = ConfigDict(extra="forbid")

    file: UploadFile = Field(description="The query image (JPEG, PNG, WebP, GIF, BMP or TIFF).")


class EmbedRequest(TextInput):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": "a red circle"}]})

    text: str = Field(min_length=1, max_length=TEXT_MAX, description="Not blank.")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # The same rule as a search's `q`: only white space is no text at all.
        if not value.strip():
            raise ValueError("text is blank: give some words to embed")
        return value


# -- responses ------------------------------------------------------------------------------
class StepOut(BaseModel):
    start: float = Field(description="Seconds.")
    end: float
    best_time: float
    score: float
    unit_id: int


class VectorMatchOut(BaseModel):
    rank: int = Field(description="The item's rank (from 1) in the vector ranking.")
    score: float = Field(description="Cosine similarity to the query.")


class KeywordMatchOut(BaseModel):
    rank: int = Field(description="The item's rank (from 1) in the keyword ranking.")
    score: float = Field(description="The full-text engine's score (SQLite: -BM25; PostgreSQL: ts_rank).")
    all_words: bool = Field(description="Whether the item's text holds every word of the query.")
    field: str | None = Field(None, description="Where it matched: title, sku, category, description, extra.")
    snippet: str | None = Field(
        None, description="That field around the match, each matched word between « and »."
    )


class MatchedOut(BaseModel):
    """Why a result is there: which rankings found it, and where."""

    vector: VectorMatchOut | None = None
    keyword: KeywordMatchOut | None = None
    sku: bool = Field(False, description="The query is this item's SKU (it comes first).")
    fused: float | None = Field(None, description="Hybrid: the reciprocal rank fusion score (k=60).")


class TextMatchOut(BaseModel):
    """Where a result's text matched the query."""

    source: str = Field(description="`ocr`: text read in the picture or video frame.")
    text: str = Field(description="The line that matched, as read.")
    snippet: str = Field(description="The matching text, each matched word between `**`.")
    time: float | None = Field(None, description="Videos: the second of the frame the text was read on.")
    unit_id: int = Field(description="The image or video segment the text was read in.")
    label: str = Field(description="For people: `OCR: 'OPEN 24 HOURS' at 00:03:12`.")


class ResultOut(BaseModel):
    id: int = Field(description="The item (asset) id: an image, or the video a moment belongs to.")
    unit_id: int = Field(description="The matching image or video segment (its thumbnail shows the hit).")
    kind: str
    path: str = Field(
        description="The file, relative to the media folder it was indexed from (its name first); "
        "the server's full path when GLIMPSE_FULL_PATHS=true."
    )
    title: str | None = None
    score: float = Field(
        description="Cosine similarity to the query (higher is closer); with mode=keyword, the "
        "full-text engine's score."
    )
    media_url: str = Field(
        description="The original file (`GET /v1/media/{id}`, with HTTP Range). For a video moment it "
        "ends in `#t=<best_time>` (a W3C Media Fragments start time, never sent to the server), so "
        "a browser or player opening it starts at the moment's best time."
    )
    thumbnail_url: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    start: float | None = Field(None, description="Video moments: start, in seconds.")
    end: float | None = Field(None, description="Video moments: end, in seconds.")
    best_time: float | None = Field(None, description="Video moments: where to start playing.")
    width: int | None = None
    height: int | None = None
    steps: list[StepOut] | None = Field(
        None, description="Sequence queries: the moment matching each step, in order."
    )
    relevance: float | None = Field(
        None,
        description="Calibrated relevance 0..1: 0.5 where the similarity stands 2 robust standard "
        "deviations above the query's scores over a background sample of the library; 1 for a "
        "keyword match of every word or the SKU, or words read in the picture (OCR). "
        "`relevant_only` keeps >= 0.5.",
    )
    matched: MatchedOut = Field(default_factory=MatchedOut, description="Why it matched.")
    text_matches: list[TextMatchOut] = Field(
        default_factory=list, description="Where the query's words were found in the result's text."
    )

    @classmethod
    def build(cls, result: Result, prefix: str, paths: PathDisplay) -> ResultOut:
        """The JSON of an engine result; links start at ``prefix`` (where the API is mounted)."""
        media_url = f"{prefix}/v1/media/{result.id}"
        if result.best_time is not None:
            media_url += f"#t={_npt(result.best_time)}"
        shown = {
            "path": paths.show(result.path),
            "media_url": media_url,
            "thumbnail_url": f"{prefix}/v1/thumbnails/{result.unit_id}",
        }
        return cls.model_validate({**vars(result), **shown})


def _npt(seconds: float) -> str:
    """Seconds as a Media Fragments normal-play-time value: ``730``, ``12.5`` (to the millisecond,
    never in exponent form)."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


class SearchResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {
                            "id": 7,
                            "unit_id": 7,
                            "kind": "image",
                            "path": "photos/dress.jpg",
                            "title": "Red summer dress",
                            "score": 0.31,
                            "media_url": "/v1/media/7",
                            "thumbnail_url": "/v1/thumbnails/7",
                            "metadata": {"price": 39.0, "category": "dresses"},
                            "start": None,
                            "end": None,
                            "best_time": None,
                            "width": 800,
                            "height": 1200,
                        },
                        {
                            "id": 12,
                            "unit_id": 95,
                            "kind": "video",
                            "path": "archive/dock.mp4",
                            "title": None,
                            "score": 0.27,
                            "media_url": "/v1/media/12#t=730",
                            "thumbnail_url": "/v1/thumbnails/95",
                            "metadata": {"duration": 600.0},
                            "start": 723.0,
                            "end": 741.0,
                            "best_time": 730.0,
                            "width": 1280,
                            "height": 720,
                        },
                    ],
                    "next": "eyJvIjoyLCJmIjoiMTIzNDU2Nzg5MGFiY2RlZiJ9",
                    "took_ms": 12.5,
                }
            ]
        }
    )

    results: list[ResultOut]
    next: str | None = Field(description="Cursor of the next page; null on the last page.")
    took_ms: float


class TextLineOut(BaseModel):
    text: str
    confidence: float = Field(description="0..1.")
    box: list[list[float]] = Field(
        description="4 corners [x, y] in the file's pixels, clockwise from top left."
    )
    time: float | None = Field(None, description="Videos: the second of the frame it was read on.")


class UnitOut(BaseModel):
    unit_id: int
    start: float | None = None
    end: float | None = None
    best_time: float | None = None
    thumbnail_url: str
    text: list[TextLineOut] = Field(default_factory=list, description="The text read in it (OCR).")

    @classmethod
    def build(cls, unit: Unit, prefix: str, lines: list[OcrLine] | None = None) -> UnitOut:
        return cls(
            unit_id=unit.id,
            start=unit.t_start,
            end=unit.t_end,
            best_time=unit.t_best,
            thumbnail_url=f"{prefix}/v1/thumbnails/{unit.id}",
            text=[
                TextLineOut(text=ln.text, confidence=ln.confidence, box=ln.box, time=ln.time)
                for ln in lines or []
            ],
        )


class ItemOut(BaseModel):
    id: int
    kind: str
    path: str
    status: str
    error: str | None = None
    title: str | None = None
    sku: str | None = None
    description: str | None = None
    price: float | None = None
    currency: str | None = None
    category: str | None = None
    url: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    fps: float | None = None
    size: int
    indexed_at: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, description="Extra catalogue fields.")
    media_url: str
    thumbnail_url: str | None = None
    units: list[UnitOut] = Field(description="The image, or the video's segments in time order.")

    @classmethod
    def build(
        cls,
        asset: Asset,
        units: list[Unit],
        prefix: str,
        paths: PathDisplay,
        text: dict[int, list[OcrLine]] | None = None,
    ) -> ItemOut:
        """The JSON of a catalogue item: its columns by name, extra manifest fields as ``metadata``,
        each unit with the ``text`` read in it (unit id -> lines)."""
        unit_rows = [UnitOut.build(u, prefix, (text or {}).get(u.id)) for u in units]
        columns = {
            c.key: getattr(asset, c.key) for c in inspect(Asset).column_attrs if c.key in cls.model_fields
        }
        return cls.model_validate(
            {
                **columns,
                "path": paths.show(asset.path),
                "indexed_at": asset.indexed_at.isoformat() if asset.indexed_at else None,
                "metadata": dict(asset.extra or {}),
                "media_url": f"{prefix}/v1/media/{asset.id}",
                "thumbnail_url": unit_rows[0].thumbnail_url if unit_rows else None,
                "units": unit_rows,
            }
        )


class MediaLinkOut(BaseModel):
    url: str = Field(description="Where the browser fetches the file (relative to the API's address).")
    expires_at: str | None = Field(description="When the link stops working (ISO 8601); null: never.")


class ModelOut(BaseModel):
    name: str
    pretrained: str | None = None


class EmbedResponse(BaseModel):
    model: ModelOut
    dim: int
    vector: list[float] = Field(description="L2-normalised embedding.")
    took_ms: float


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class StatsOut(_Open):
    """What the library holds; ``facets`` are what a UI builds its filter controls from."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "items": {"image": 1200, "video": 14},
                    "failed": 2,
                    "units": 1890,
                    "model": {"name": "ViT-B-32", "pretrained": "laion2b_s34b_b79k", "dim": 512},
                    "index": {"type": "flat-ip (exact)", "size": 1890, "version": 3},
                    "facets": {"categories": ["dresses", "shoes"], "price": {"min": 4.5, "max": 320.0}},
                    "last_run": None,
                }
            ]
        },
    )

    items: dict[str, int]
    failed: int
    units: int
    model: dict[str, Any] | None = None
    index: dict[str, Any]
    facets: dict[str, Any]
    last_run: dict[str, Any] | None = None
    library: dict[str, Any] = Field(
        default_factory=dict, description="`id`: the library's identity (the same for every replica)."
    )
    limits: dict[str, Any] = Field(
        default_factory=dict, description="`max_upload_bytes` and `max_upload_mb` (10^6 bytes) of uploads."
    )


class FieldErrorOut(BaseModel):
    field: str = Field(description="The offending field as a dotted path; empty for the body as a whole.")
    message: str
    type: str = Field(description="pydantic's error type, e.g. `missing`, `int_parsing`, `json_invalid`.")


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_filter"])
    message: str = Field(examples=["unknown filter field(s): colour; allowed: category, ..."])
    status: int = Field(examples=[422])
    details: list[FieldErrorOut] | None = Field(
        None, description="400 `invalid_json` and 422 `invalid_request`: each offending field."
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str
    checks: dict[str, Any]
