"""Safe image decoding: every kind of bad input gets a clear error, odd modes become RGB."""

import io

import numpy as np
import pytest
from PIL import Image

from glimpse.core.media import ImageDecodeError, ImageTooLarge, decode_image, open_image

LIMIT = 10_000_000


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_refuses_a_truncated_jpeg_with_a_clear_reason():
    data = _bytes(Image.new("RGB", (200, 200), "red"), "JPEG")
    with pytest.raises(ImageDecodeError, match=r"truncated|corrupt"):
        open_image(data[: len(data) // 2], LIMIT)


def test_refuses_an_empty_file():
    with pytest.raises(ImageDecodeError):
        open_image(b"", LIMIT)


def test_refuses_text_renamed_to_jpg(tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not an image")
    with pytest.raises(ImageDecodeError, match="not a supported image"):
        open_image(fake, LIMIT)


def test_refuses_formats_outside_the_allow_list():
    data = _bytes(Image.new("RGB", (8, 8)), "PPM")
    with pytest.raises(ImageDecodeError, match="not a supported image"):
        open_image(data, LIMIT)


def test_refuses_a_decompression_bomb_before_decoding_it():
    # 20000 x 20000 pixels of one colour compress to a few hundred KB of PNG.
    bomb = _bytes(Image.new("L", (20_000, 20_000)), "PNG", optimize=True)
    with pytest.raises(ImageTooLarge, match="exceeds the limit"):
        open_image(bomb, LIMIT)


def test_converts_cmyk_to_rgb():
    img = open_image(_bytes(Image.new("CMYK", (10, 10), (0, 255, 255, 0)), "JPEG"), LIMIT)
    assert img.mode == "RGB"
    r, g, b = img.getpixel((5, 5))
    assert r > 200 and g < 60 and b < 60  # cyan-free, magenta+yellow = red


def test_scales_16_bit_greyscale_into_8_bit():
    arr = np.full((10, 10), 65535, dtype=np.uint16)
    img = open_image(_bytes(Image.fromarray(arr), "PNG"), LIMIT)
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (255, 255, 255)


def test_flattens_transparency_on_white():
    img = open_image(_bytes(Image.new("RGBA", (10, 10), (255, 0, 0, 0)), "PNG"), LIMIT)
    assert img.getpixel((0, 0)) == (255, 255, 255)


def test_applies_exif_orientation_and_reports_the_upright_size():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    data = _bytes(Image.new("RGB", (40, 20), "blue"), "JPEG", exif=exif.tobytes())
    img, size = decode_image(data, LIMIT)
    assert img.size == (20, 40) and size == (20, 40)


def test_reads_the_first_frame_of_an_animated_gif():
    frames = [Image.new("P", (10, 10), i) for i in (1, 2)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert open_image(buf.getvalue(), LIMIT).size == (10, 10)


def test_draft_mode_decodes_big_jpegs_smaller_but_reports_full_size():
    data = _bytes(Image.new("RGB", (2000, 1600), "green"), "JPEG")
    img, size = decode_image(data, LIMIT, draft_size=224)
    assert size == (2000, 1600)
    assert 224 <= min(img.size) < 1600
