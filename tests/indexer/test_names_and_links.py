"""File names that are not UTF-8, and symbolic links: one rule, on SQLite and PostgreSQL.

A name such as ``b"caf\\xe9.png"`` (Latin-1 on a Linux disk) is indexed under a lossless spelling
and served; a link is followed when its target lies inside the media folders (what is indexed
can be served) and skipped, with the reason in the summary, when it leads outside.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from conftest import save_image
from glimpse.core.catalogue import Asset
from glimpse.core.fsutil import path_from_db, path_to_db, printable
from glimpse.core.vocabulary import Status
from glimpse.indexer.pipeline import Indexer
from glimpse.search.api.app import create_app

LATIN1 = os.fsdecode(b"caf\xe9.png")  # not valid UTF-8: Python holds it with a lone surrogate

needs_bytes_names = pytest.mark.skipif(
    sys.platform != "linux", reason="only POSIX file systems accept names that are not UTF-8"
)


def _index(library, encoder, settings, *paths):
    return Indexer(library, encoder, settings).run(list(paths))


def _assets(library) -> dict[str, Asset]:
    with library.Session() as s:
        return {a.path: a for a in s.scalars(select(Asset))}


def _consistent(library) -> bool:
    snapshot = library.open_index(repair=False)
    return np.array_equal(np.sort(snapshot.index.ids()), library.live_unit_ids())


@pytest.mark.parametrize(
    "name", [b"/photos/caf\xe9.png", b"/a/\xff\xfe/b.jpg", "/plain/ünïcode 100%.png".encode(), b"/x/%E9.png"]
)
def test_the_catalogue_spelling_of_a_path_is_lossless(name):
    path = os.fsdecode(name)
    stored = path_to_db(path)
    stored.encode("utf-8")  # valid text for every database
    assert path_from_db(stored) == path and os.fsencode(path_from_db(stored)) == name


@needs_bytes_names
def test_a_name_that_is_not_utf8_is_indexed_served_and_does_not_stop_the_run(
    library, tiny_encoder, make_settings, tmp_path
):
    root = tmp_path / "media"
    save_image(root / "good.png", "red")
    save_image(root / "other.png", "blue")
    odd = Path(os.fsdecode(os.fsencode(root) + b"/" + b"caf\xe9.png"))
    save_image(odd, "green")
    odd_folder = Path(os.fsdecode(os.fsencode(root) + b"/\xff-dir"))
    save_image(odd_folder / "inside.png", "yellow")
    s = make_settings()
    summary = _index(library, tiny_encoder, s, root)
    assert summary.indexed == 4 and summary.failed == []
    assets = _assets(library)
    assert {str(odd), str(odd_folder / "inside.png")} <= set(assets)
    assert all(a.status == Status.INDEXED for a in assets.values())
    assert _consistent(library)
    # The database holds the documented, reversible spelling.
    with library.Session() as sess:
        raw = set(sess.scalars(text("SELECT path FROM assets")))
    assert "fsbytes:" + str(root) + "/caf%E9.png" in raw
    # The second run sees the file as unchanged, not as removed and new.
    again = _index(library, tiny_encoder, s, root)
    assert (again.indexed, again.unchanged, again.removed) == (0, 4, 0)
    # The API serves it, and shows its name as text.
    with TestClient(create_app(s)) as client:
        item = assets[str(odd)].id
        got = client.get(f"/v1/media/{item}")
        assert got.status_code == 200 and got.content == odd.read_bytes()
        shown = client.get(f"/v1/items/{item}").json()
        assert shown["path"].endswith("caf\\xe9.png")
        assert client.get(f"/v1/thumbnails/{_unit_of(library, item)}").status_code == 200


def _unit_of(library, asset_id: int) -> int:
    with library.Session() as s:
        return int(s.scalar(text("SELECT id FROM units WHERE asset_id = :a"), {"a": asset_id}))


@needs_bytes_names
def test_a_bad_file_with_a_name_that_is_not_utf8_is_recorded_as_failed_with_its_reason(
    library, tiny_encoder, make_settings, tmp_path
):
    root = tmp_path / "media"
    save_image(root / "good.png", "red")
    broken = Path(os.fsdecode(os.fsencode(root) + b"/broken-\xe9.jpg"))
    broken.write_bytes(b"not an image")
    summary = _index(library, tiny_encoder, make_settings(), root)
    assert summary.indexed == 1
    report = summary.as_dict()
    assert [f["path"] for f in report["failed"]] == [printable(str(broken))]
    assert _assets(library)[str(broken)].status == Status.FAILED


@needs_bytes_names
def test_the_cli_prints_a_summary_with_a_name_that_is_not_utf8(make_settings, tmp_path):
    root = tmp_path / "media"
    save_image(Path(os.fsdecode(os.fsencode(root) + b"/caf\xe9.png")), "red")
    bad = Path(os.fsdecode(os.fsencode(root) + b"/bad\xe9.jpg"))
    s = make_settings()
    base = [sys.executable, "-m", "glimpse", "--data-dir", str(s.data_dir)]
    if s.database_url:
        base += ["--database-url", s.database_url]
    for extra in ([], ["--json"]):
        bad.write_bytes(b"junk " + str(extra).encode())  # changed: the second run retries it
        done = subprocess.run(
            [*base, "index", str(root), "--model", "glimpse-tiny", *extra],
            capture_output=True,
            timeout=300,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        if extra:
            assert json.loads(done.stdout)["failed"][0]["path"].endswith("bad\\xe9.jpg")
        else:
            assert b"bad\\xe9.jpg" in done.stdout


# -- symbolic links ----------------------------------------------------------------------------


def test_links_inside_the_media_folders_are_followed_and_served_links_outside_are_skipped(
    library, tiny_encoder, make_settings, tmp_path
):
    root = tmp_path / "media"
    outside = tmp_path / "private"
    save_image(root / "real" / "a.png", "red")
    save_image(root / "real" / "b.png", "blue")
    save_image(root / "elsewhere" / "c.png", "green")
    save_image(outside / "secret.png", "yellow")
    (root / "file-link.png").symlink_to(root / "elsewhere" / "c.png")  # inside: a second path, same file
    (root / "dir-link").symlink_to(root / "real")  # inside: the same folder again
    (root / "out-file.png").symlink_to(outside / "secret.png")  # outside
    (root / "out-dir").symlink_to(outside)  # outside
    (root / "real" / "loop").symlink_to(root)  # a loop
    (root / "broken.png").symlink_to(tmp_path / "nothing.png")
    save_image(root / "only-link-target" / "d.png", "white")
    s = make_settings()
    summary = _index(library, tiny_encoder, s, root / "real", root / "elsewhere", root / "file-link.png")
    del summary
    # Index the whole folder: every file once, by its link-free path; outside links skipped.
    summary = _index(library, tiny_encoder, s, root)
    assets = _assets(library)
    paths = {Path(p).relative_to(root).as_posix() for p in assets}
    assert paths == {"real/a.png", "real/b.png", "elsewhere/c.png", "only-link-target/d.png"}
    skipped = dict(summary.skipped)
    assert "outside the media folders" in skipped[str(root / "out-file.png")]
    assert "outside the media folders" in skipped[str(root / "out-dir")]
    assert (
        "loop" in skipped[str(root / "real" / "loop")]
        or "already walked" in skipped[str(root / "real" / "loop")]
    )
    assert "broken" in skipped[str(root / "broken.png")]
    assert str(root / "file-link.png") in skipped  # the same file as elsewhere/c.png
    assert not any("secret" in p for p in assets)
    assert [k["path"] for k in summary.as_dict()["skipped"]]  # and they are in the printed summary
    assert _consistent(library)
    with TestClient(create_app(s)) as client:
        for path, asset in assets.items():
            got = client.get(f"/v1/media/{asset.id}")
            assert got.status_code == 200 and got.content == Path(path).read_bytes()


def test_a_link_reached_only_through_a_link_is_indexed_and_served(
    library, tiny_encoder, make_settings, tmp_path
):
    root = tmp_path / "media"
    store = root / "store"
    save_image(store / "x.png", "red")
    save_image(tmp_path / "private" / "y.png", "blue")
    (root / "view").mkdir()
    (root / "view" / "x.png").symlink_to(store / "x.png")
    (root / "view" / "y.png").symlink_to(tmp_path / "private" / "y.png")
    s = make_settings()
    # Only the view is indexed: x's target lies outside the folder given, so it is skipped too
    # unless the store is a media folder of the library (GLIMPSE_MEDIA_ROOTS).
    summary = _index(library, tiny_encoder, s, root / "view")
    assert summary.indexed == 0 and {Path(p).name for p, _ in summary.skipped} == {"x.png", "y.png"}
    s2 = s.model_copy(update={"media_roots": [store]})
    library.settings = s2
    summary = _index(library, tiny_encoder, s2, root / "view")
    assert summary.indexed == 1 and [Path(p).name for p, _ in summary.skipped] == ["y.png"]
    asset = _assets(library)[str(root / "view" / "x.png")]
    with TestClient(create_app(s2)) as client:
        got = client.get(f"/v1/media/{asset.id}")
        assert got.status_code == 200 and got.content == (store / "x.png").read_bytes()
