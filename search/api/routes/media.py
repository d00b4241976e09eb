"""Original files and thumbnails, served only from inside the library's folders."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.responses import FileResponse

from glimpse.search import reads
from glimpse.search.api.deps import LibraryDep, SettingsDep, UrlPrefixDep
from glimpse.search.api.files import asset_file, file_response, resolve_inside
from glimpse.search.api.links import link_secret, sign
from glimpse.search.api.schemas import ErrorResponse, MediaLinkOut
from glimpse.search.query import ID_MAX

router = APIRouter(tags=["media"])
# The file itself also answers a signed link instead of a key (see search/api/links.py).
files_router = APIRouter(tags=["media"])

_FILE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "The file lies outside the library's media folders"},
    404: {"model": ErrorResponse, "description": "No such item, or its file is gone"},
}


@files_router.get(
    "/media/{item_id}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/*": {}, "video/*": {}}},
        206: {"description": "Partial content (Range)"},
        400: {"model": ErrorResponse, "description": "A malformed byte range (`invalid_range`)"},
        416: {
            "model": ErrorResponse,
            "description": "The range starts past the end of the file",
            "headers": {"Content-Range": {"description": "`bytes */<size>`", "schema": {"type": "string"}}},
        },
        **_FILE_ERRORS,
    },
    summary="The original file (supports HTTP Range, so videos seek)",
)
def media(
    item_id: Annotated[int, Path(ge=1, le=ID_MAX)],
    library: LibraryDep,
    expires: Annotated[
        int | None, Query(ge=0, le=ID_MAX, description="Of a signed link: its expiry (Unix seconds).")
    ] = None,
    token: Annotated[
        str | None,
        Query(max_length=100, pattern="^[A-Za-z0-9_-]*$", description="Of a signed link: its signature."),
    ] = None,
) -> FileResponse:
    """With an API key, or with the `expires` and `token` of a link from `/v1/media/{item_id}/link`."""
    path = resolve_inside(asset_file(library, item_id), library.media_roots())
    return file_response(path, "private, max-age=3600")


@router.get(
    "/media/{item_id}/link",
    response_model=MediaLinkOut,
    responses=_FILE_ERRORS,
    summary="A signed link to the item's file, usable without a key until it expires",
)
def media_link(
    item_id: Annotated[int, Path(ge=1, le=ID_MAX)],
    library: LibraryDep,
    settings: SettingsDep,
    prefix: UrlPrefixDep,
) -> MediaLinkOut:
    """For a page that holds the API key on its server: the browser streams the file from this
    link (with Range) instead of the page relaying it."""
    asset_file(library, item_id)  # 404 for an unknown item
    url = f"{prefix}/v1/media/{item_id}"
    secret = link_secret(settings)
    if secret is None:  # no API keys: media needs no link
        return MediaLinkOut(url=url, expires_at=None)
    expires = int(time.time()) + settings.media_link_seconds
    return MediaLinkOut(
        url=f"{url}?expires={expires}&token={sign(secret, item_id, expires)}",
        expires_at=datetime.fromtimestamp(expires, tz=UTC).isoformat(),
    )


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
