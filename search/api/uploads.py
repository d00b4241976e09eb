"""Uploaded query images: size limit, format allow-list by content, safe decoding.

Each refusal has its own status: too many bytes 413, a format outside the allow-list 415 (judged by
the file's own signature, not the name or declared type a client sends), too many pixels (a
decompression bomb) 413, a corrupt or truncated file 422. None of them can become a 500.
"""

from __future__ import annotations

from PIL import Image
from starlette.datastructures import UploadFile

from glimpse.core.media import ALLOWED_FORMATS, ImageDecodeError, ImageTooLarge, open_image
from glimpse.search.api.errors import ApiError

# File signatures of the formats core.media lets Pillow decode.
_SIGNATURES: tuple[tuple[str, bytes, int], ...] = (
    ("JPEG", b"\xff\xd8\xff", 0),
    ("PNG", b"\x89PNG\r\n\x1a\n", 0),
    ("GIF", b"GIF87a", 0),
    ("GIF", b"GIF89a", 0),
    ("WEBP", b"WEBP", 8),  # RIFF....WEBP
    ("BMP", b"BM", 0),
    ("TIFF", b"II*\x00", 0),
    ("TIFF", b"MM\x00*", 0),
)


def sniff_image_format(head: bytes) -> str | None:
    """The allowed format whose signature ``head`` starts with, else None."""
    for name, magic, at in _SIGNATURES:
        if head[at : at + len(magic)] == magic and (name != "WEBP" or head[:4] == b"RIFF"):
            return name
    return None


def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    """All bytes of an upload, refusing more than ``max_bytes`` without reading the excess."""
    upload.file.seek(0)
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(413, "upload_too_large", f"the upload is larger than the limit of {max_bytes:,} bytes")
    if not data:
        raise ApiError(422, "invalid_image", "the uploaded file is empty")
    return data


def decode_upload(data: bytes, max_pixels: int, filename: str | None = None) -> Image.Image:
    """Decode an uploaded image into RGB, or raise the ApiError that says why not."""
    name = f"{filename}: " if filename else ""
    if sniff_image_format(data[:16]) is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{name}not an image in an accepted format (accepted: {', '.join(sorted(set(ALLOWED_FORMATS)))})",
        )
    try:
        return open_image(data, max_pixels)
    except ImageTooLarge as exc:
        raise ApiError(413, "image_too_large", f"{name}{exc}") from None
    except ImageDecodeError as exc:
        raise ApiError(422, "invalid_image", f"{name}{exc}") from None
