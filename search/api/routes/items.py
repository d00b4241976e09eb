"""One item with its units, and items like it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from glimpse.core import ocr_text
from glimpse.search import reads
from glimpse.search.api.deps import EngineDep, LibraryDep, PathsDep, UrlPrefixDep
from glimpse.search.api.errors import ApiError
from glimpse.search.api.querying import run_search
from glimpse.search.api.schemas import ErrorResponse, ItemOut, SearchResponse, SimilarParams
from glimpse.search.query import ID_MAX

router = APIRouter(tags=["items"])

ItemId = Annotated[int, Path(ge=1, le=ID_MAX, description="The item (asset) id from a search result's `id`.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No item with this id"},
    422: {"model": ErrorResponse, "description": "Invalid parameters"},
}


@router.get("/items/{item_id}", response_model=ItemOut, responses=_NOT_FOUND, summary="An item, all fields")
def get_item(item_id: ItemId, library: LibraryDep, prefix: UrlPrefixDep, paths: PathsDep) -> ItemOut:
    asset, units = reads.get_item(library, item_id)
    with library.Session() as s:
        text = ocr_text.unit_lines(s, [u.id for u in units])
    return ItemOut.build(asset, units, prefix, paths, text)


@router.get(
    "/items/{item_id}/similar",
    response_model=SearchResponse,
    responses=_NOT_FOUND,
    summary="More like this",
)
def similar(
    item_id: ItemId,
    params: Annotated[SimilarParams, Query()],
    engine: EngineDep,
    library: LibraryDep,
    prefix: UrlPrefixDep,
    paths: PathsDep,
) -> SearchResponse:
    """Items closest to this one (a video: the mean of its segments; with `unit_id`, that segment
    alone), the item itself left out."""
    if params.unit_id is None:
        query = params.to_query(image_id=item_id)
    else:
        if reads.get_unit(library, params.unit_id).asset_id != item_id:
            raise ApiError(404, "not_found", f"unit {params.unit_id} is not part of item {item_id}")
        query = params.to_query(unit_id=params.unit_id)
    return run_search(engine, query, prefix, paths, exclude_items=(item_id,))
