"""Serving files from disk only from inside allowed folders.

A path from the catalogue is resolved (``..`` collapsed, every symlink followed) before it is
checked, and the check compares whole path components: ``/media2/x`` is not inside ``/media``,
and a symlink in a media root that points outside it is refused.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select
from starlette.datastructures import Headers
from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable, Response
from starlette.types import Receive, Scope, Send

from glimpse.core.catalogue import Asset
from glimpse.core.fsutil import printable
from glimpse.core.library import Library
from glimpse.search.api.errors import ApiError, error_response

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


class RangeFileResponse(FileResponse):
    """Starlette's file response (Range, If-Range, HEAD), with the API's own answers to a bad Range.

    A Range in another unit than bytes (``items=0-5``) is ignored, so the whole file comes back
    (RFC 9110 §14.2: a server ignores a range unit it does not support); a malformed byte range
    (``bytes=5-4``) is a 400 and one past the end a 416 with ``Content-Range: bytes */size``, both
    in the JSON error shape (Starlette answers them in plain text).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._range_refusal(Headers(scope=scope))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _range_refusal(self, headers: Headers) -> Response | None:
        http_range, if_range = headers.get("range"), headers.get("if-range")
        if http_range is None or self.stat_result is None:
            return None
        if if_range is not None and not self._should_use_range(if_range):
            return None  # the file changed since the client's copy: the whole file, as Starlette does
        try:
            self._parse_range_header(http_range, self.stat_result.st_size)
        except MalformedRangeHeader as exc:
            return error_response(400, "invalid_range", f"Range {http_range!r}: {exc.content}")
        except RangeNotSatisfiable:
            size = self.stat_result.st_size
            return error_response(
                416,
                "range_not_satisfiable",
                f"Range {http_range!r} starts past the end of the file ({size} bytes)",
                headers={"Content-Range": f"bytes */{size}"},
            )
        return None

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        unit, sep, _ = http_range.partition("=")
        if sep and unit.strip().lower() != "bytes":
            return []  # an unknown unit: no ranges, the whole file
        return super()._parse_range_header(http_range, file_size)


def file_response(path: Path, cache_control: str) -> FileResponse:
    """The file with its type, range support (videos seek) and no content sniffing by browsers."""
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return RangeFileResponse(
        path,
        media_type=media_type,
        content_disposition_type="inline",
        filename=printable(path.name),  # a name that is not valid UTF-8 cannot go in a header as is
        headers={"Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"},
        stat_result=os.stat(path),
    )


def asset_file(library: Library, asset_id: int) -> str:
    """The catalogue path of an item's original file (404 when there is no such item)."""
    with library.Session() as s:
        path = s.scalar(select(Asset.path).where(Asset.id == asset_id))
    if path is None:
        raise ApiError(404, "not_found", f"no item with id {asset_id}")
    return path
