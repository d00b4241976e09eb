"""One item with its units, and items like it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from glimpse.search.api.deps import EngineDep, UrlPrefixDep
from glimpse.search.api.querying import item_out, run_search, spec_for_similar
from glimpse.search.api.schemas import ErrorResponse, ItemOut, SearchResponse, SimilarParams

router = APIRouter(tags=["items"])

ItemId = Annotated[int, Path(ge=1, description="The item (asset) id from a search result's `id`.")]
_NOT_FOUND = {404: {"model": ErrorResponse, "description": "No item with this id"}}


@router.get("/items/{item_id}", response_model=ItemOut, responses=_NOT_FOUND, summary="An item, all fields")
def get_item(item_id: ItemId, engine: EngineDep, prefix: UrlPrefixDep) -> ItemOut:
    asset, units = engine.item(item_id)
    return item_out(asset, units, prefix)


@router.get(
    "/items/{item_id}/similar",
    response_model=SearchResponse,
    responses={**_NOT_FOUND, 422: {"model": ErrorResponse, "description": "Invalid parameters"}},
    summary="More like this",
)
def similar(
    item_id: ItemId, params: Annotated[SimilarParams, Query()], engine: EngineDep, prefix: UrlPrefixDep
) -> SearchResponse:
    """Items closest to this one (a video: the mean of its segments), the item itself left out."""
    return run_search(engine, spec_for_similar(item_id, params), prefix)
