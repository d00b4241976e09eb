"""Request and response bodies of the ``/v1`` API (pydantic); their examples feed the OpenAPI docs."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field

Media = Literal["all", "image", "video"]

K_DEFAULT = 20
K_MAX = 200
OFFSET_MAX = 10_000  # deep pages cost a top-(offset + k) search each; past this, refine the query
TEXT_MAX = 1_000

FILTERS_DOC = (
    "Catalogue filters: field -> value, list (any of) or {operator: value}, e.g. "
    '{"category": ["shoes"], "price": {"lte": 50}}. Fields: category, currency, sku, kind, title '
    "(operators eq, ne, in, contains) and price, width, height, duration (eq, ne, gt, gte, lt, lte, in)."
)


# -- requests -------------------------------------------------------------------------------
class Paging(BaseModel):
    k: int = Field(K_DEFAULT, ge=1, le=K_MAX, description="Results per page.")
    offset: int = Field(0, ge=0, le=OFFSET_MAX, description="Results to skip (or use `cursor`).")
    cursor: str | None = Field(
        None, max_length=512, description="The `next` value of the previous page (opaque)."
    )


class ResultFilters(BaseModel):
    media: Media = Field("all", description="Only images, only videos, or both.")
    min_score: float | None = Field(
        None, ge=-1.0, le=1.0, description="Drop results whose cosine similarity is lower."
    )


class QueryTerms(BaseModel):
    q: str | None = Field(None, max_length=TEXT_MAX, description="What to look for, in words.")
    negative: str | None = Field(None, max_length=TEXT_MAX, description="Move away from this text.")
    image_id: int | None = Field(None, ge=1, description="An indexed item to search like (more like this).")


class Weights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: float = Field(1.0, ge=0.0, le=10.0)
    image: float = Field(1.0, ge=0.0, le=10.0, description="Weight of image_id / the uploaded image.")
    negative: float = Field(0.5, ge=0.0, le=10.0)


class FlatFilters(BaseModel):
    """Filters as plain parameters (query string, form fields): JSON string plus shortcuts."""

    filters: str | None = Field(
        None,
        max_length=10_000,
        description=f"JSON object. {FILTERS_DOC}",
        examples=['{"category": ["shoes"], "price": {"lte": 50}}'],
    )
    category: list[str] = Field(default_factory=list, description="Shortcut: any of these categories.")
    price_min: float | None = Field(None, description="Shortcut: price >= this.")
    price_max: float | None = Field(None, description="Shortcut: price <= this.")


class FlatWeights(BaseModel):
    text_weight: float = Field(1.0, ge=0.0, le=10.0)
    image_weight: float = Field(1.0, ge=0.0, le=10.0)
    negative_weight: float = Field(0.5, ge=0.0, le=10.0)


class SearchRequest(Paging, ResultFilters, QueryTerms):
    """``POST /v1/search``: text, an item, or both, with optional negative text and filters."""

    model_config = ConfigDict(
        extra="forbid",
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

    weights: Weights = Field(default_factory=Weights)
    filters: dict[str, Any] | None = Field(None, description=FILTERS_DOC)


class SearchParams(Paging, ResultFilters, FlatWeights, FlatFilters, QueryTerms):
    """``GET /v1/search`` query parameters."""

    model_config = ConfigDict(extra="forbid")


class ImageSearchForm(Paging, ResultFilters, FlatWeights, FlatFilters, QueryTerms):
    """``POST /v1/search/image`` multipart fields: the image file plus optional text and filters."""

    model_config = ConfigDict(extra="forbid")

    file: UploadFile = Field(description="The query image (JPEG, PNG, WebP, GIF, BMP or TIFF).")


class SimilarParams(Paging, ResultFilters, FlatFilters):
    """``GET /v1/items/{id}/similar`` query parameters."""

    model_config = ConfigDict(extra="forbid")


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": "a red circle"}]})

    text: str = Field(min_length=1, max_length=TEXT_MAX)


# -- responses ------------------------------------------------------------------------------
class ResultOut(BaseModel):
    id: int = Field(description="The item (asset) id: an image, or the video a moment belongs to.")
    unit_id: int = Field(description="The matching image or video segment (its thumbnail shows the hit).")
    kind: str
    path: str
    title: str | None = None
    score: float = Field(description="Cosine similarity to the query (higher is closer).")
    media_url: str
    thumbnail_url: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    start: float | None = Field(None, description="Video moments: start, in seconds.")
    end: float | None = Field(None, description="Video moments: end, in seconds.")
    best_time: float | None = Field(None, description="Video moments: where to start playing.")
    width: int | None = None
    height: int | None = None


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
                            "path": "/photos/dress.jpg",
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
                            "path": "/archive/dock.mp4",
                            "title": None,
                            "score": 0.27,
                            "media_url": "/v1/media/12",
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


class UnitOut(BaseModel):
    unit_id: int
    start: float | None = None
    end: float | None = None
    best_time: float | None = None
    thumbnail_url: str


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


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_filter"])
    message: str = Field(examples=["unknown filter field(s): colour; allowed: category, ..."])
    status: int = Field(examples=[422])


class ErrorResponse(BaseModel):
    error: ErrorDetail


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str
    checks: dict[str, Any]
