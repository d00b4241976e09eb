"""Dependencies the routes declare (``Annotated`` aliases), API-key authentication among them.

They are all ``async`` and never block: FastAPI would otherwise run each one in its own trip to
the thread pool, and on busy cores every such hand-off can cost a scheduler time slice. A request
thus makes one trip, for the (sync) route itself, which does the blocking work. The engine checks
for a newly published index itself, on every search (``SearchEngine.snapshot``).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from glimpse.core.library import Library
from glimpse.core.settings import Settings
from glimpse.search.api.errors import ApiError
from glimpse.search.api.links import link_secret, verify
from glimpse.search.api.service import LibraryEmpty, SearchService
from glimpse.search.embedding import QueryEmbedder
from glimpse.search.engine import SearchEngine
from glimpse.search.paths import PathDisplay

_bearer = HTTPBearer(auto_error=False, description="An API key from GLIMPSE_API_KEYS.")
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key from GLIMPSE_API_KEYS."
)


async def get_service(request: Request) -> SearchService:
    return request.app.state.service


ServiceDep = Annotated[SearchService, Depends(get_service)]


async def get_settings(service: ServiceDep) -> Settings:
    return service.settings


async def get_library(service: ServiceDep) -> Library:
    return service.library


async def get_engine(service: ServiceDep) -> SearchEngine:
    """The engine (for routes that need no model: items, stats, more-like-this)."""
    return service.engine


async def require_embedder(service: ServiceDep) -> QueryEmbedder:
    """The loaded model; 503 while the library has none (loading it, once, off the event loop)."""
    if service.embedder is not None:
        return service.embedder
    return await run_in_threadpool(embedder_or_503, service)


def embedder_or_503(service: SearchService) -> QueryEmbedder:
    try:
        return service.require_model()
    except LibraryEmpty as exc:
        raise ApiError(503, "library_empty", str(exc)) from None


async def get_query_engine(
    service: ServiceDep, _embedder: Annotated[QueryEmbedder, Depends(require_embedder)]
) -> SearchEngine:
    """The engine, for routes that embed a query: 503 while the library has no model."""
    return service.engine


async def get_path_display(service: ServiceDep) -> PathDisplay:
    return service.path_display()


SettingsDep = Annotated[Settings, Depends(get_settings)]
PathsDep = Annotated[PathDisplay, Depends(get_path_display)]
LibraryDep = Annotated[Library, Depends(get_library)]
EngineDep = Annotated[SearchEngine, Depends(get_engine)]
QueryEngineDep = Annotated[SearchEngine, Depends(get_query_engine)]


async def get_url_prefix(request: Request) -> str:
    """Where the app is mounted (behind a proxy with a path prefix): links in answers start here."""
    return str(request.scope.get("root_path", "")).rstrip("/")


UrlPrefixDep = Annotated[str, Depends(get_url_prefix)]


async def require_api_key(
    service: ServiceDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> None:
    """When ``GLIMPSE_API_KEYS`` is set, every ``/v1`` request must carry one of the keys."""
    keys = service.settings.api_keys
    if not keys:
        return
    given = bearer.credentials if bearer is not None else api_key
    if given is not None and key_matches(given, keys):
        return
    raise ApiError(
        401,
        "unauthorized",
        "missing or invalid API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
        if given is None
        else "invalid API key",
        headers={"WWW-Authenticate": 'Bearer realm="glimpse"'},
    )


async def require_key_or_media_link(
    request: Request,
    service: ServiceDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> None:
    """For an item's file: an API key, or a signed link to this item that has not expired
    (``?expires=...&token=...`` from ``GET /v1/media/{id}/link``)."""
    secret = link_secret(service.settings)
    token, expires = request.query_params.get("token"), request.query_params.get("expires")
    item = request.path_params.get("item_id")
    if secret is not None and token is not None and expires is not None and item is not None:
        try:
            valid = verify(secret, int(item), int(expires), token)
        except ValueError:
            valid = False
        if valid:
            return
        raise ApiError(403, "invalid_link", "the media link is invalid or has expired: ask for a new one")
    await require_api_key(service, bearer, api_key)


def key_matches(given: str, keys: list[str]) -> bool:
    """Constant-time comparison against every configured key (no early exit on a match)."""
    given_b = given.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given_b, key.encode())
    return matched
