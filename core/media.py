"""Safe image decoding shared by the indexer and the upload route, and media type detection."""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from glimpse.core.vocabulary import Kind

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"})
# Only these decoders may run on untrusted files (Pillow would otherwise try every plugin it has).
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG also opens MPO
THUMBNAIL_SIZE = 320

Image.init()  # register every plugin now, so `formats=` below can name them all


class ImageDecodeError(ValueError):
    """An image could not be decoded safely; ``str()`` says why."""


class ImageTooLarge(ImageDecodeError):
    """More pixels than the configured limit (a decompression-bomb guard)."""


def media_kind(path: Path) -> Kind | None:
    """What a file is by its extension (case-insensitive); None for anything Glimpse skips."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return Kind.IMAGE
    if suffix in VIDEO_EXTENSIONS:
        return Kind.VIDEO
    return None


def open_image(
    source: Path | BinaryIO | bytes, max_pixels: int, draft_size: int | None = None
) -> Image.Image:
    """Decode an image safely into upright RGB (see :func:`decode_image`)."""
    return decode_image(source, max_pixels, draft_size)[0]


def decode_image(
    source: Path | BinaryIO | bytes, max_pixels: int, draft_size: int | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an image into upright RGB, refusing anything unsafe before its pixels are read.

    Returns the image and its full-resolution upright (width, height).
    ``draft_size`` lets JPEG decode at a reduced scale (1/2, 1/4, 1/8) while staying at least that
    big on each side: the model needs ~224 px, so decoding a 12 MP photo in full is wasted work.
    """
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its own limit and twice it; we refuse on our limit instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source, formats=ALLOWED_FORMATS)
        width, height = img.size
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"{width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,}"
            )
        if img.format in ("JPEG", "MPO") and draft_size:
            img.draft("RGB", (draft_size, draft_size))
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)  # animated GIF/WebP: the first frame stands for the file
        img.load()
        upright: Image.Image = ImageOps.exif_transpose(img) or img
        if (upright.width < upright.height and width > height) or (
            upright.width > upright.height and width < height
        ):
            width, height = height, width  # EXIF rotated it by 90 degrees
        return to_rgb(upright), (width, height)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(f"not a supported image (allowed: {', '.join(ALLOWED_FORMATS)})") from None
    except Image.DecompressionBombError as exc:
        # Pillow's own guard fired first (far above our limit): same refusal, our wording.
        raise ImageTooLarge(f"image exceeds the limit of {max_pixels:,} pixels ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any mode to 8-bit RGB: CMYK, 16-bit greyscale, palette and alpha (flattened on white)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() if arr.size else 0
        scale = 255.0 / (65535.0 if top > 255 else max(top, 1.0) if img.mode == "F" else 255.0)
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def hash_bytes(data: bytes) -> str:
    """The catalogue's content hash (the scanner computes the same one from the file)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def make_thumbnail(img: Image.Image, size: int = THUMBNAIL_SIZE) -> bytes:
    """A small JPEG of an already decoded image (never decodes the source again)."""
    thumb = img.copy()
    thumb.thumbnail((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=82, optimize=True)
    return buf.getvalue()
