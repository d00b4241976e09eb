"""A bad value in one manifest row is reported (line, field, reason); every other row is applied,
with the same answer on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from conftest import save_image
from glimpse.core.catalogue import Asset
from glimpse.indexer.manifest import import_manifest
from glimpse.indexer.pipeline import Indexer


@pytest.fixture
def shop(library, tiny_encoder, make_settings, tmp_path):
    root = tmp_path / "shop"
    for i in range(6):
        save_image(root / f"{i}.png", ("red", "blue", "green")[i % 3], seed=i)
    Indexer(library, tiny_encoder, make_settings()).run([root])
    return root


def _titles(library) -> dict[str, str | None]:
    with library.Session() as s:
        return {a.path.rsplit("/", 1)[1]: a.title for a in s.scalars(select(Asset))}


def test_a_bad_value_in_one_jsonl_row_is_reported_and_the_rest_applied(library, shop):
    rows = [
        {"path": "0.png", "title": "good zero", "price": 3},
        {"path": "1.png", "title": "a\u0000b"},  # NUL: PostgreSQL refuses it in text
        {"path": "2.png", "title": "good two", "sku": "x" * 500},  # longer than the sku column
        {"path": "3.png", "title": "good three", "colour": {"name": "re\u0000d"}},  # NUL in an extra
        {"path": "4.png", "title": "good four", "price": "NaN"},
        {"path": "5.png\u0000", "title": "NUL in the path"},
        {"path": "5.png", "title": "good five"},
    ]
    manifest = shop / "catalogue.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = import_manifest(library, manifest)
    assert report.updated == 2 and report.rows == 7
    invalid = {(r["line"], r["field"]) for r in report.invalid}
    assert invalid == {(2, "title"), (3, "sku"), (4, "colour.name"), (5, "price"), (6, "path")}
    assert all("NUL" in r["error"] for r in report.invalid if r["line"] in (2, 4, 6))
    titles = _titles(library)
    assert titles["0.png"] == "good zero" and titles["5.png"] == "good five"
    assert titles["1.png"] is None and titles["2.png"] is None


def test_a_bad_value_in_one_csv_row_is_reported_and_the_rest_applied(library, shop):
    manifest = shop / "catalogue.csv"
    body = "path,title,price\n0.png,zero,1\n1.png,o\x00ne,2\n2.png,two,inf\n3.png,three,3\n"
    manifest.write_bytes(body.encode() + b"4.png,caf\xe9,4\n5.png,five,5\n")  # Latin-1 byte in row 6
    report = import_manifest(library, manifest)
    assert report.updated == 3
    assert {(r["line"], r["field"]) for r in report.invalid} == {(3, "title"), (4, "price"), (6, "title")}
    titles = _titles(library)
    assert (titles["0.png"], titles["3.png"], titles["5.png"]) == ("zero", "three", "five")


def test_glimpse_index_manifest_reports_the_bad_row_and_exits_zero(make_settings, tmp_path):
    root = tmp_path / "shop"
    save_image(root / "a.png", "red")
    save_image(root / "b.png", "blue")
    (root / "items.jsonl").write_text(
        json.dumps({"path": "a.png", "title": "bad\u0000"})
        + "\n"
        + json.dumps({"path": "b.png", "title": "ok"})
    )
    s = make_settings()
    cmd = [sys.executable, "-m", "glimpse", "--data-dir", str(s.data_dir)]
    if s.database_url:
        cmd += ["--database-url", s.database_url]
    cmd += ["index", str(root), "--manifest", str(root / "items.jsonl"), "--model", "glimpse-tiny", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)["manifest"]
    assert manifest["updated"] == 1
    assert manifest["invalid"] == [
        {"line": 1, "field": "title", "error": "contains a NUL character (\\u0000)"}
    ]
