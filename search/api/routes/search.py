"""Search by text, by an indexed item or segment, by an uploaded image, or any mix of them."""

from __future__ import annotations

import hashlib
import time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query

from glimpse.search.api.deps import PathsDep, QueryEngineDep, SettingsDep, UrlPrefixDep
from glimpse.search.api.errors import ApiError
from glimpse.search.api.querying import run_search
from glimpse.search.api.schemas import ErrorResponse, ImageSearchForm, SearchResponse
from glimpse.search.api.uploads import decode_upload, read_upload
from glimpse.search.query import FlatQuery, SearchQuery

router = APIRouter(tags=["search"])

_SEARCH_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "`image_id` / `unit_id` is not an indexed item or unit"},
    422: {
        "model": ErrorResponse,
        "description": "Invalid parameters, filter (`invalid_filter`), query or cursor",
    },
    503: {"model": ErrorResponse, "description": "The library has nothing indexed yet (`library_empty`)"},
}


@router.get(
    "/search", response_model=SearchResponse, responses=_SEARCH_ERRORS, summary="Search (query string)"
)
def search_get(
    params: Annotated[FlatQuery, Query()], engine: QueryEngineDep, prefix: UrlPrefixDep, paths: PathsDep
) -> SearchResponse:
    """`filters` is a JSON object in a string; `category` (repeatable), `price_min` and `price_max`
    are shortcuts merged into it. An example (`image_id`, `unit_id`) is never returned itself."""
    return run_search(engine, params.to_query(), prefix, paths)


@router.post(
    "/search",
    response_model=SearchResponse,
    responses={**_SEARCH_ERRORS, 413: {"model": ErrorResponse, "description": "The body is over 1 MiB"}},
    summary="Search (JSON body)",
)
def search_post(
    body: SearchQuery, engine: QueryEngineDep, prefix: UrlPrefixDep, paths: PathsDep
) -> SearchResponse:
    return run_search(engine, body, prefix, paths)


@router.post(
    "/search/image",
    response_model=SearchResponse,
    summary="Search with an uploaded example image",
    responses={
        **_SEARCH_ERRORS,
        413: {"model": ErrorResponse, "description": "The file or its pixel count is over the limit"},
        415: {"model": ErrorResponse, "description": "Not an image in an accepted format"},
        422: {"model": ErrorResponse, "description": "Corrupt image, or invalid fields"},
    },
)
def search_image(
    form: Annotated[ImageSearchForm, Form(media_type="multipart/form-data")],
    params: Annotated[FlatQuery, Query()],
    engine: QueryEngineDep,
    settings: SettingsDep,
    prefix: UrlPrefixDep,
    paths: PathsDep,
) -> SearchResponse:
    """Multipart: the image in `file`. Every other field of `GET /v1/search` (`q`, `k`, `filters`,
    `cursor`...) may come in the query string or as a form field, not both."""
    started = time.perf_counter()
    data = read_upload(form.file, settings.max_upload_bytes)
    flat = _merge(params, FlatQuery(**form.model_dump(exclude={"file"}, exclude_unset=True)))
    identity = {"upload": hashlib.blake2b(data, digest_size=16).hexdigest()}
    image = decode_upload(data, settings.max_image_pixels, form.file.filename)
    return run_search(engine, flat.to_query(), prefix, paths, image=image, identity=identity, started=started)


def _merge(from_url: FlatQuery, from_form: FlatQuery) -> FlatQuery:
    """One set of fields from both places; a field given in both is refused (which would win?)."""
    twice = sorted(from_url.model_fields_set & from_form.model_fields_set)
    if twice:
        raise ApiError(
            422,
            "invalid_request",
            f"{', '.join(twice)}: given both in the query string and as a form field; give each once",
        )
    return FlatQuery(
        **from_url.model_dump(exclude_unset=True),
        **from_form.model_dump(exclude_unset=True),
    )
