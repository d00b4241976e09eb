"""Items, more-like-this, original files with HTTP Range, thumbnails, and refusing every way out of the
media roots (``..``, encoded, symlinks, sibling prefixes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import update

from api_fixtures import (  # noqa: F401
    api_settings,
    assert_error,
    catalogue,
    client,
    index_into,
    module_database_url,
    price,
    result_ids,
    served,
)
from conftest import save_image
from glimpse.core.catalogue import Asset
from glimpse.core.library import Library
from glimpse.search.api.app import create_app
from glimpse.search.api.errors import ApiError
from glimpse.search.api.files import resolve_inside


# -- items --------------------------------------------------------------------------------------
def test_item_has_all_catalogue_fields_and_its_unit(client, served):
    item_id = served.ids["item-23.jpg"]
    body = client.get(f"/v1/items/{item_id}").json()
    assert body["id"] == item_id and body["kind"] == "image" and body["status"] == "indexed"
    assert (body["title"], body["sku"], body["category"], body["price"]) == (
        "Product 23",
        "SKU-023",
        "shoes",
        price(23),
    )
    # Relative to the media folder it was indexed from: clients never see the server's disk.
    assert body["path"] == "photos/item-23.jpg"
    assert body["width"] == 96 + 23 % 7 and body["height"] == 72
    assert body["media_url"] == f"/v1/media/{item_id}"
    assert len(body["units"]) == 1 and body["thumbnail_url"] == body["units"][0]["thumbnail_url"]


def test_video_item_lists_its_segments_in_time_order(client, served):
    body = client.get(f"/v1/items/{served.ids['scenes.mp4']}").json()
    assert body["kind"] == "video" and body["duration"] == pytest.approx(11.0, abs=0.5)
    starts = [u["start"] for u in body["units"]]
    assert len(starts) >= 2 and starts == sorted(starts)
    for unit in body["units"]:
        assert unit["start"] <= unit["best_time"] <= unit["end"]
        thumb = client.get(unit["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"


def test_unknown_item_is_404_in_the_error_shape(client):
    assert_error(client.get("/v1/items/999999"), 404, "not_found")
    assert_error(client.get("/v1/items/0"), 422, "invalid_request")
    assert_error(client.get("/v1/items/abc"), 422, "invalid_request")


def test_similar_leaves_the_item_out_and_pages(client, served):
    item_id = served.ids["item-30.jpg"]
    first = client.get(f"/v1/items/{item_id}/similar", params={"k": 5, "media": "image"})
    ids = result_ids(first)
    assert len(ids) == 5 and item_id not in ids
    second = client.get(
        f"/v1/items/{item_id}/similar", params={"k": 5, "media": "image", "cursor": first.json()["next"]}
    )
    assert not set(ids) & set(result_ids(second))
    everything = client.get(f"/v1/items/{item_id}/similar", params={"k": 200, "media": "image"})
    assert len(result_ids(everything)) == 59 and result_ids(everything)[:10] == ids + result_ids(second)


def test_similar_honours_filters_and_404s_for_unknown_items(client, served):
    r = client.get(f"/v1/items/{served.ids['item-07.jpg']}/similar", params={"category": "shoes", "k": 10})
    assert sorted(result_ids(r)) == sorted([served.ids["item-23.jpg"], served.ids["item-41.jpg"]])
    assert_error(client.get("/v1/items/999999/similar"), 404, "not_found")


def test_stats_describe_the_library(client):
    body = client.get("/v1/stats").json()
    assert body["items"] == {"image": 60, "video": 2}
    assert body["model"]["name"] == "glimpse-tiny" and body["model"]["dim"] == 128
    assert body["facets"]["categories"] == ["bags", "shirts", "shoes"]
    assert body["facets"]["price"] == {"min": min(map(price, range(60))), "max": max(map(price, range(60)))}
    assert body["index"]["size"] == body["units"] > 62


# -- media --------------------------------------------------------------------------------------
def test_media_serves_the_original_file(client, served):
    path = served.catalogue.photos / "item-04.png"
    r = client.get(f"/v1/media/{served.ids['item-04.png']}")
    assert r.status_code == 200 and r.content == path.read_bytes()
    assert r.headers["content-type"] == "image/png" and r.headers["accept-ranges"] == "bytes"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_video_range_requests_get_206_with_content_range(client, served):
    data = (served.catalogue.clips / "scenes.mp4").read_bytes()
    url = f"/v1/media/{served.ids['scenes.mp4']}"
    r = client.get(url, headers={"Range": "bytes=100-1099"})
    assert r.status_code == 206 and r.content == data[100:1100]
    assert r.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    assert r.headers["content-type"] == "video/mp4"
    tail = client.get(url, headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == data[-500:]
    assert tail.headers["content-range"] == f"bytes {len(data) - 500}-{len(data) - 1}/{len(data)}"
    open_ended = client.get(url, headers={"Range": f"bytes={len(data) - 10}-"})
    assert open_ended.status_code == 206 and open_ended.content == data[-10:]


def test_a_range_past_the_end_is_416(client, served):
    size = (served.catalogue.clips / "dock.mp4").stat().st_size
    r = client.get(f"/v1/media/{served.ids['dock.mp4']}", headers={"Range": f"bytes={size + 10}-{size + 20}"})
    assert r.status_code == 416


def test_unknown_media_and_thumbnails_are_404(client):
    assert_error(client.get("/v1/media/999999"), 404, "not_found")
    assert_error(client.get("/v1/thumbnails/999999"), 404, "not_found")


def test_thumbnail_is_a_small_jpeg(client, served):
    item = client.get(f"/v1/items/{served.ids['item-01.jpg']}").json()
    r = client.get(item["thumbnail_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert "max-age" in r.headers["cache-control"]
    from io import BytesIO

    assert Image.open(BytesIO(r.content)).format == "JPEG"


@pytest.mark.parametrize(
    "url",
    [
        "/v1/media/../../etc/passwd",
        "/v1/media/..%2F..%2Fetc%2Fpasswd",
        "/v1/media/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/v1/media/1%2F..%2F..%2Fcatalogue.db",
        "/v1/thumbnails/..%2F..%2Fcatalogue.db",
        "/v1/thumbnails/%2e%2e/%2e%2e/catalogue.db",
        "/v1/media/%252e%252e%252fetc%252fpasswd",
    ],
)
def test_paths_in_the_url_never_reach_the_file_system(client, url):
    r = client.get(url)
    assert r.status_code in (404, 422), (url, r.status_code)
    assert "error" in r.json() and b"root:" not in r.content


# -- escaping the media roots, with rows that point outside --------------------------------------
@pytest.fixture
def escape_library(tmp_path, database_url, tiny_encoder):
    """A library over media/, beside an outside/ folder, a media2/ sibling and a symlink out."""
    media, outside, sibling = tmp_path / "media", tmp_path / "outside", tmp_path / "media2"
    save_image(media / "inside.jpg", "red")
    secret = save_image(outside / "secret.jpg", "blue", seed=1)
    save_image(sibling / "neighbour.jpg", "green", seed=2)
    os.symlink(secret, media / "link-out.jpg")  # a link in the folder that resolves outside it
    settings = api_settings(tmp_path / "library", database_url)
    index_into(settings, tiny_encoder, media)
    return settings, media, outside, sibling


def _asset_ids(settings) -> dict[str, int]:
    library = Library(settings)
    try:
        with library.Session() as s:
            from sqlalchemy import select

            return {Path(p).name: i for i, p in s.execute(select(Asset.id, Asset.path))}
    finally:
        library.close()


def _point_asset_at(settings, asset_id: int, path: str) -> None:
    """What a tampered or stale catalogue row could say."""
    library = Library(settings)
    try:
        with library.Session.begin() as s:
            s.execute(update(Asset).where(Asset.id == asset_id).values(path=path))
    finally:
        library.close()


def test_symlink_out_of_the_media_root_is_refused(escape_library):
    settings, media, outside, _ = escape_library
    ids = _asset_ids(settings)
    # The indexer skips a link whose target lies outside the media folders (it is listed as
    # skipped in the run summary), so it never reaches the catalogue...
    assert "link-out.jpg" not in ids
    # ...and a catalogue row that names such a link anyway (tampered, or from an older version)
    # is still refused by the API: it serves by where the path resolves, never by its name.
    _point_asset_at(settings, ids["inside.jpg"], str(media / "link-out.jpg"))
    with TestClient(create_app(settings)) as c:
        r = c.get(f"/v1/media/{ids['inside.jpg']}")
        assert_error(r, 403, "outside_media_roots")
        assert (outside / "secret.jpg").read_bytes() not in r.content


@pytest.mark.parametrize("where", ["sibling", "dotdot", "absolute"])
def test_catalogue_paths_outside_the_roots_are_refused(escape_library, where):
    settings, media, outside, sibling = escape_library
    target = {
        "sibling": str(sibling / "neighbour.jpg"),  # /x/media2/... shares the prefix /x/media
        "dotdot": f"{media}/../outside/secret.jpg",
        "absolute": str(outside / "secret.jpg"),
    }[where]
    ids = _asset_ids(settings)
    _point_asset_at(settings, ids["inside.jpg"], target)
    with TestClient(create_app(settings)) as c:
        assert_error(c.get(f"/v1/media/{ids['inside.jpg']}"), 403, "outside_media_roots")


def test_configured_media_roots_are_served_too(escape_library):
    settings, _media, outside, _ = escape_library
    ids = _asset_ids(settings)
    _point_asset_at(settings, ids["inside.jpg"], str(outside / "secret.jpg"))
    with TestClient(create_app(settings.model_copy(update={"media_roots": [outside]}))) as c:
        assert c.get(f"/v1/media/{ids['inside.jpg']}").content == (outside / "secret.jpg").read_bytes()


def test_a_file_removed_since_indexing_is_404(escape_library):
    settings, media, _, _ = escape_library
    ids = _asset_ids(settings)
    (media / "inside.jpg").unlink()
    with TestClient(create_app(settings)) as c:
        assert_error(c.get(f"/v1/media/{ids['inside.jpg']}"), 404, "file_missing")


def test_a_thumbnail_row_pointing_outside_the_thumbs_folder_is_refused(escape_library):
    settings, _media, _outside, _ = escape_library
    from glimpse.core.catalogue import Unit

    library = Library(settings)
    try:
        with library.Session.begin() as s:
            s.execute(update(Unit).values(thumbnail="thumbs/../../outside/secret.jpg"))
        unit_id = int(library.live_unit_ids()[0])
    finally:
        library.close()
    with TestClient(create_app(settings)) as c:
        assert_error(c.get(f"/v1/thumbnails/{unit_id}"), 403, "outside_media_roots")


def test_resolve_inside_compares_whole_components(tmp_path):
    root, sibling = tmp_path / "media", tmp_path / "media2"
    save_image(root / "a.jpg")
    save_image(sibling / "b.jpg")
    assert resolve_inside(root / "a.jpg", [root]) == (root / "a.jpg").resolve()
    (root / "sub").mkdir()
    assert resolve_inside(root / "sub" / ".." / "a.jpg", [root]) == (root / "a.jpg").resolve()
    for escape in (sibling / "b.jpg", root / ".." / "media2" / "b.jpg"):
        with pytest.raises(ApiError) as err:
            resolve_inside(escape, [root])
        assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        resolve_inside(root, [root])  # a folder is not a file
    assert err.value.status == 404
    with pytest.raises(ApiError) as err:
        resolve_inside(root / "missing.jpg", [root])
    assert err.value.status == 404


def test_paths_are_relative_to_their_media_folder_everywhere_unless_full_paths_is_set(served):
    item_id = served.ids["item-23.jpg"]
    absolute = str(served.catalogue.photos.resolve() / "item-23.jpg")
    for full, expected in ((False, "photos/item-23.jpg"), (True, absolute)):
        settings = served.settings.model_copy(update={"full_paths": full})
        with TestClient(create_app(settings)) as c:
            item = c.get(f"/v1/items/{item_id}").json()
            # Vector mode: every image is in its ranking (hybrid takes the top FUSION_DEPTH of it).
            params = {"q": "a shirt", "k": 200, "media": "image", "mode": "vector"}
            hits = c.get("/v1/search", params=params).json()["results"]
            similar = c.get(f"/v1/items/{item_id}/similar", params={"k": 200}).json()["results"]
        assert item["path"] == expected
        shown = [h["path"] for h in hits + similar]
        assert expected in shown
        assert all(p.startswith("/") for p in shown) is full
        assert all(p.startswith(("photos/", "clips/")) for p in shown) is not full
