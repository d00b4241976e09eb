"""Search by text, by an indexed item, by an uploaded image, or any mix of them."""

from __future__ import annotations

import hashlib
import time
from typing import Annotated

from fastapi import APIRouter, Form, Query

from glimpse.search.api.deps import EncoderDep, QueryEngineDep, SettingsDep, UrlPrefixDep
from glimpse.search.api.querying import run_search, spec_from_body, spec_from_flat
from glimpse.search.api.schemas import (
    ErrorResponse,
    ImageSearchForm,
    SearchParams,
    SearchRequest,
    SearchResponse,
)
from glimpse.search.api.uploads import decode_upload, read_upload

router = APIRouter(tags=["search"])

_SEARCH_ERRORS = {
    404: {"model": ErrorResponse, "description": "`image_id` is not an indexed item"},
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
    params: Annotated[SearchParams, Query()], engine: QueryEngineDep, prefix: UrlPrefixDep
) -> SearchResponse:
    """`filters` is a JSON object in a string; `category` (repeatable), `price_min` and `price_max`
    are shortcuts merged into it."""
    return run_search(engine, spec_from_flat(params), prefix)


@router.post("/search", response_model=SearchResponse, responses=_SEARCH_ERRORS, summary="Search (JSON body)")
def search_post(body: SearchRequest, engine: QueryEngineDep, prefix: UrlPrefixDep) -> SearchResponse:
    return run_search(engine, spec_from_body(body), prefix)


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
    form: Annotated[ImageSearchForm, Form()],
    engine: QueryEngineDep,
    encoder: EncoderDep,
    settings: SettingsDep,
    prefix: UrlPrefixDep,
) -> SearchResponse:
    """Multipart: `file` plus any of the query-string fields (`q`, `negative`, `filters`...)."""
    started = time.perf_counter()
    data = read_upload(form.file, settings.max_upload_bytes)
    spec = spec_from_flat(form, image_digest=hashlib.blake2b(data, digest_size=16).hexdigest())
    image = decode_upload(data, settings.max_image_pixels, form.file.filename)
    vector = encoder.encode_images([image])[0]
    return run_search(engine, spec, prefix, image_vector=vector, started=started)
