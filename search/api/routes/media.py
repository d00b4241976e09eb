"""Original files and thumbnails, served only from inside the library's folders."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import FileResponse

from glimpse.search import reads
from glimpse.search.api.deps import LibraryDep
from glimpse.search.api.files import asset_file, file_response, resolve_inside
from glimpse.search.api.schemas import ErrorResponse
from glimpse.search.query import ID_MAX

router = APIRouter(tags=["media"])

_FILE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "The file lies outside the library's media folders"},
    404: {"model": ErrorResponse, "description": "No such item, or its file is gone"},
}


@router.get(
    "/media/{item_id}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/*": {}, "video/*": {}}},
        206: {"description": "Partial content (Range)"},
        **_FILE_ERRORS,
    },
    summary="The original file (supports HTTP Range, so videos seek)",
)
def media(item_id: Annotated[int, Path(ge=1, le=ID_MAX)], library: LibraryDep) -> FileResponse:
    path = resolve_inside(asset_file(library, item_id), library.media_roots())
    return file_response(path, "private, max-age=3600")


@router.get(
    "/thumbnails/{unit_id}",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, **_FILE_ERRORS},
    summary="A unit's thumbnail (JPEG): an image, or a video segment's best frame",
)
def thumbnail(unit_id: Annotated[int, Path(ge=1, le=ID_MAX)], library: LibraryDep) -> FileResponse:
    unit = reads.get_unit(library, unit_id)
    stored = library.root / unit.thumbnail if unit.thumbnail else library.thumbnail_path(unit_id)
    path = resolve_inside(stored, [library.thumbs_dir])
    # A unit id is never reused, so its thumbnail never changes.
    return file_response(path, "private, max-age=86400, immutable")
