"""Pictures with text rendered in real fonts (Debian's fonts-dejavu-core, which .ci/run installs)
for the OCR tests: words at angles and sizes, on plain backgrounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

FONTS = Path("/usr/share/fonts/truetype/dejavu")
# Generous: the test machines' two cores are shared, and a slow read must not fail a test (the
# budget itself is tested with a tiny one).
BUDGET = 60.0


def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    path = FONTS / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: install Debian's fonts-dejavu-core (.ci/run does)")
    return ImageFont.truetype(str(path), size)


def text_picture(
    word: str,
    *,
    size: tuple[int, int] = (320, 240),
    font_name: str = "DejaVuSans-Bold.ttf",
    font_size: int = 40,
    angle: float = 0.0,
    background: tuple[int, int, int] = (235, 230, 210),
    ink: tuple[int, int, int] = (20, 20, 30),
) -> Image.Image:
    """``word`` rendered in a real font, turned by ``angle`` degrees, centred on a plain picture."""
    face = font(font_name, font_size)
    left, top, right, bottom = face.getbbox(word)
    label = Image.new("RGBA", (right - left + 24, bottom - top + 24), (0, 0, 0, 0))
    ImageDraw.Draw(label).text((12 - left, 12 - top), word, font=face, fill=(*ink, 255))
    label = label.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    picture = Image.new("RGB", size, background)
    picture.paste(label, ((size[0] - label.width) // 2, (size[1] - label.height) // 2), label)
    return picture
