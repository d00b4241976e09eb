"""Serving files from disk only from inside allowed folders.

A path from the catalogue is resolved (``..`` collapsed, every symlink followed) before it is
checked, and the check compares whole path components: ``/media2/x`` is not inside ``/media``,
and a symlink in a media root that points outside it is refused.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select
from starlette.responses import FileResponse

from glimpse.core.catalogue import Asset
from glimpse.core.fsutil import printable
from glimpse.core.library import Library
from glimpse.search.api.errors import ApiError

mimetypes.add_type("image/webp", ".webp")
mimetypes.add_type("video/x-matroska", ".mkv")
mimetypes.add_type("video/webm", ".webm")


def resolve_inside(path: str | Path, roots: Iterable[Path]) -> Path:
    """The real path of ``path`` if it is a file inside one of ``roots``; ApiError 403/404 otherwise."""
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        raise ApiError(404, "file_missing", "the file is no longer on disk") from None
    for root in roots:
        try:
            real_root = Path(root).resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if real.is_relative_to(real_root):
            if not real.is_file():
                raise ApiError(404, "file_missing", "not a regular file")
            return real
    raise ApiError(403, "outside_media_roots", "the file lies outside the library's media folders")


def file_response(path: Path, cache_control: str) -> FileResponse:
    """The file with its type, range support (videos seek) and no content sniffing by browsers."""
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(
        path,
        media_type=media_type,
        content_disposition_type="inline",
        filename=printable(path.name),  # a name that is not valid UTF-8 cannot go in a header as is
        headers={"Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"},
    )


def asset_file(library: Library, asset_id: int) -> str:
    """The catalogue path of an item's original file (404 when there is no such item)."""
    with library.Session() as s:
        path = s.scalar(select(Asset.path).where(Asset.id == asset_id))
    if path is None:
        raise ApiError(404, "not_found", f"no item with id {asset_id}")
    return path
