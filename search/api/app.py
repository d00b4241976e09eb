"""The FastAPI application: ``create_app(settings)`` wires routes, auth, limits and error handling.

The library, the model and the engine are created once in the lifespan (the model loads before the
first request is accepted) and kept on ``app.state.service``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import anyio
from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from glimpse.core.settings import Settings
from glimpse.search.api.deps import require_api_key, require_key_or_media_link
from glimpse.search.api.errors import install_error_handlers
from glimpse.search.api.limits import BodyLimitMiddleware
from glimpse.search.api.methods import add_head_routes
from glimpse.search.api.openapi import install_openapi
from glimpse.search.api.routes import embed, health, items, media, search, stats
from glimpse.search.api.schemas import ErrorResponse
from glimpse.search.api.service import SearchService

UPLOAD_PATHS = frozenset({"/v1/search/image", "/v1/embed"})

DESCRIPTION = """\
Semantic search over images and video: natural-language queries, example images and "more like
this", with catalogue filters and cursor pagination. Video hits are *moments* (start, end and the
best time to start playing).

When the server has API keys (`GLIMPSE_API_KEYS`), every `/v1` route needs one, as
`Authorization: Bearer <key>` or `X-API-Key: <key>`. Errors always have the shape
`{"error": {"code": "...", "message": "...", "status": 422}}`.

Every `GET` route also answers `HEAD` (the same headers, no body), and `OPTIONS` on any path lists
its methods in `Allow`. Ids (`{item_id}`, `image_id`, ...) are integers from 1 to 2^53-1: a larger
one is a 422, an unused one a 404. No text may hold a NUL character (U+0000): a 422 naming the field.
"""

TAGS = [
    {"name": "search", "description": "Text, image and mixed queries."},
    {"name": "items", "description": "Items and more-like-this."},
    {"name": "media", "description": "Original files (with Range) and thumbnails."},
    {"name": "embed", "description": "Raw embeddings in the library's vector space."},
    {"name": "library", "description": "What the library holds."},
    {"name": "health", "description": "Probes for orchestrators (no key needed)."},
]


def _version() -> str:
    try:
        return version("glimpse-search")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Opening the library (migrations, index check) and loading the model block: keep them
        # off the event loop even though no request is being served yet.
        service = await anyio.to_thread.run_sync(SearchService, settings)
        app.state.service = service
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(service.close)

    # Swagger UI and ReDoc from files installed with the package (fastapi-offline), not a CDN:
    # /docs works on a machine without internet, as the offline demo promises.
    app = FastAPIOffline(
        title="Glimpse search API",
        version=_version(),
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, upload_limit=settings.max_upload_bytes, upload_paths=UPLOAD_PATHS)
    if settings.cors_origins:  # off unless configured; added last so it wraps everything
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Range"],
            expose_headers=["Content-Range", "Accept-Ranges", "Content-Length"],
        )

    for module in (health, search, items, media, embed, stats):
        add_head_routes(module.router)
    add_head_routes(media.files_router)
    app.include_router(health.router)
    v1 = APIRouter(
        prefix="/v1",
        dependencies=[Depends(require_api_key)],
        responses={401: {"model": ErrorResponse, "description": "Missing or invalid API key"}},
    )
    for module in (search, items, media, embed, stats):
        v1.include_router(module.router)
    app.include_router(v1)
    files = APIRouter(
        prefix="/v1",
        dependencies=[Depends(require_key_or_media_link)],
        responses={
            401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
            403: {"model": ErrorResponse, "description": "Invalid or expired media link"},
        },
    )
    files.include_router(media.files_router)
    app.include_router(files)
    add_head_routes(app.router)  # /docs and /redoc (/openapi.json is a Starlette route: it has HEAD)
    install_openapi(app)
    return app
