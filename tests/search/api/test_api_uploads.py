"""Uploaded query images and ``/v1/embed``: what is accepted, and a clear 4xx (never a 500) for the rest."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api_fixtures import (  # noqa: F401 - fixtures
    assert_error,
    assert_exact_ranking,
    catalogue,
    client,
    exact_image_ranking,
    module_database_url,
    result_ids,
    served,
)
from glimpse.core.media import open_image
from glimpse.search.api.app import create_app


def _png_bytes(width: int, height: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels: a decompression bomb's calling card."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _upload(c: TestClient, data: bytes, name: str = "query.png", content_type: str = "image/png", **fields):
    return c.post("/v1/search/image", files={"file": (name, data, content_type)}, data=fields)


@pytest.fixture(scope="module")
def small_limits(served) -> Iterator[TestClient]:
    settings = served.settings.model_copy(update={"max_upload_bytes": 20_000, "max_image_pixels": 100 * 100})
    with TestClient(create_app(settings)) as c:
        yield c


# -- search by image ------------------------------------------------------------------------------
def test_upload_search_ranks_like_an_exact_search_with_the_images_vector(client, served, tiny_encoder):
    data = (served.catalogue.photos / "item-08.png").read_bytes()
    r = _upload(client, data, k="8", media="image")
    vector = tiny_encoder.encode_images([open_image(data, 10**8)])[0]
    assert len(result_ids(r)) == 8
    assert_exact_ranking(r.json()["results"], exact_image_ranking(served.settings, vector, 60))


def test_upload_search_takes_filters_text_and_cursor_fields(client, served):
    data = (served.catalogue.photos / "item-01.jpg").read_bytes()
    shoes = _upload(client, data, "q.jpg", "image/jpeg", q="shoe", filters='{"category": ["shoes"]}', k="10")
    assert sorted(result_ids(shoes)) == sorted(served.ids[f"item-{i:02d}.jpg"] for i in (7, 23, 41))
    first = _upload(client, data, "q.jpg", "image/jpeg", k="4", media="image", category="bags")
    second = _upload(
        client,
        data,
        "q.jpg",
        "image/jpeg",
        k="4",
        media="image",
        category="bags",
        cursor=first.json()["next"],
    )
    assert len(result_ids(second)) == 4 and not set(result_ids(first)) & set(result_ids(second))
    other_image = (served.catalogue.photos / "item-02.jpg").read_bytes()
    reused = _upload(
        client,
        other_image,
        "q.jpg",
        "image/jpeg",
        k="4",
        media="image",
        category="bags",
        cursor=first.json()["next"],
    )
    assert_error(reused, 422, "invalid_cursor")  # a cursor belongs to the image it was issued for


def test_a_file_over_the_upload_limit_is_413(small_limits):
    data = _png_bytes(120, 120)  # ~43 KB of noise: over 20,000 bytes, under the form overhead allowance
    assert len(data) > 20_000
    err = assert_error(_upload(small_limits, data), 413, "upload_too_large")
    assert "20,000" in err["message"]


def test_a_body_far_over_the_limit_is_cut_off_at_413(small_limits):
    assert_error(_upload(small_limits, b"\xff\xd8\xff" + b"\0" * 500_000), 413, "payload_too_large")


def test_a_chunked_body_without_length_is_counted_and_cut_off(small_limits):
    def chunks() -> Iterator[bytes]:
        yield b'{"q": "'
        for _ in range(40):
            yield b"x" * 65_536
        yield b'"}'

    r = small_limits.post("/v1/search", content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413, "payload_too_large")


def test_too_many_pixels_is_413(small_limits):
    buf = io.BytesIO()
    Image.new("RGB", (150, 150), (200, 30, 30)).save(buf, "PNG")  # a few hundred bytes, 22,500 pixels
    err = assert_error(_upload(small_limits, buf.getvalue()), 413, "image_too_large")
    assert "10,000" in err["message"]


def test_a_decompression_bomb_is_refused_before_decoding(client):
    bomb = _png_header_claiming(50_000, 50_000)  # 2.5 gigapixels in 100 bytes
    assert len(bomb) < 200
    err = assert_error(_upload(client, bomb), 413, "image_too_large")
    assert "exceeds" in err["message"] and "query.png" in err["message"]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.txt", b"a shopping list, not an image\n" * 10),
        ("doc.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n"),
        ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
        ("photo.jpg", b"<html><script>alert(1)</script></html>"),  # the name lies
        ("icon.ico", b"\x00\x00\x01\x00\x01\x00\x10\x10" + b"\x00" * 64),
    ],
)
def test_formats_outside_the_allow_list_are_415(client, name, data):
    err = assert_error(_upload(client, data, name, "image/png"), 415, "unsupported_media_type")
    assert "JPEG" in err["message"]


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8\xff\xe0" + b"garbage" * 20,  # a JPEG signature, then nonsense
        _png_bytes(40, 40)[:120],  # truncated PNG
        b"GIF89a" + b"\x00" * 3,
    ],
)
def test_corrupt_images_are_422(client, data):
    assert_error(_upload(client, data), 422, "invalid_image")


def test_empty_or_missing_file_is_422(client):
    assert_error(_upload(client, b""), 422, "invalid_image")
    err = assert_error(client.post("/v1/search/image", data={"q": "x"}), 422, "invalid_request")
    assert "file" in err["message"]


def test_upload_field_validation_uses_the_error_shape(client, served):
    data = (served.catalogue.photos / "item-01.jpg").read_bytes()
    assert_error(_upload(client, data, "a.jpg", "image/jpeg", k="0"), 422, "invalid_request")
    assert_error(_upload(client, data, "a.jpg", "image/jpeg", filters="{oops"), 422, "invalid_filter")


# -- embed ------------------------------------------------------------------------------------------
def test_embed_text_returns_the_models_vector(client, tiny_encoder):
    body = client.post("/v1/embed", json={"text": "a red circle"}).json()
    assert body["model"] == {"name": "glimpse-tiny", "pretrained": None} and body["dim"] == 128
    expected = tiny_encoder.encode_texts(["a red circle"])[0]
    assert np.allclose(body["vector"], expected, atol=1e-6)
    assert np.linalg.norm(body["vector"]) == pytest.approx(1.0, abs=1e-5)


def test_embed_image_returns_the_models_vector(client, served, tiny_encoder):
    data = (served.catalogue.photos / "item-05.jpg").read_bytes()
    body = client.post("/v1/embed", files={"file": ("a.jpg", data, "image/jpeg")}).json()
    expected = tiny_encoder.encode_images([open_image(data, 10**8)])[0]
    assert body["dim"] == 128 and np.allclose(body["vector"], expected, atol=1e-5)


def test_embed_refuses_what_it_cannot_embed(client):
    assert_error(client.post("/v1/embed", json={}), 422, "invalid_request")
    assert_error(client.post("/v1/embed", json={"text": ""}), 422, "invalid_request")
    assert_error(
        client.post("/v1/embed", content=b"hello", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    assert_error(
        client.post("/v1/embed", files={"file": ("x.txt", b"plain text", "text/plain")}),
        415,
        "unsupported_media_type",
    )
    assert_error(
        client.post("/v1/embed", files={"other": ("x.png", b"x", "image/png")}), 422, "invalid_request"
    )
    assert_error(
        client.post(
            "/v1/embed", files={"file": ("x.png", _png_header_claiming(40_000, 40_000), "image/png")}
        ),
        413,
        "image_too_large",
    )
