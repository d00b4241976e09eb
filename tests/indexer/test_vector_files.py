"""`glimpse import-vectors` / `export-vectors`: clip-retrieval's layout in and out, streamed, whole
batches or nothing, and a clear refusal of vectors of another size or model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import tiny_settings
from glimpse.cli import app
from glimpse.core.library import Library

DIM = 128  # glimpse-tiny


def _vectors(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def clip_retrieval_folder(root: Path, sizes=(30, 20), dim: int = DIM, bad_row: int | None = None) -> Path:
    """Two parts as clip-retrieval writes them: parquet metadata, then a CSV one."""
    (root / "img_emb").mkdir(parents=True)
    (root / "metadata").mkdir()
    n = 0
    for part, size in enumerate(sizes):
        np.save(root / "img_emb" / f"img_emb_{part}.npy", _vectors(size, part, dim).astype(np.float16))
        rows = [
            {"image_path": f"/shop/{n + i}.jpg", "caption": f"thing {n + i}", "price": float(n + i)}
            for i in range(size)
        ]
        if bad_row is not None and part == 1:
            rows[bad_row]["image_path"] = ""
        if part == 0:
            pq.write_table(pa.Table.from_pylist(rows), root / "metadata" / "metadata_0.parquet")
        else:
            lines = ["image_path,caption,price"] + [
                f"{r['image_path']},{r['caption']},{r['price']}" for r in rows
            ]
            (root / "metadata" / f"metadata_{part}.csv").write_text("\n".join(lines) + "\n")
        n += size
    return root


def run(data_dir: Path, database_url: str | None, *args: str):
    opts = ["--data-dir", str(data_dir)] + (["--database-url", database_url] if database_url else [])
    return CliRunner().invoke(app, [*opts, *args])


def _open(data_dir: Path, database_url: str | None) -> Library:
    return Library(tiny_settings(data_dir, database_url))


def test_imports_clip_retrieval_output_and_exports_it_back_the_same(tmp_path, database_url):
    source = clip_retrieval_folder(tmp_path / "emb")
    lib_dir = tmp_path / "lib"
    result = run(
        lib_dir,
        database_url,
        "import-vectors",
        str(source),
        "--model",
        "glimpse-tiny",
        "--pretrained",
        "none",
        "--chunk",
        "8",
    )
    assert result.exit_code == 0, result.output
    lib = _open(lib_dir, database_url)
    try:
        ids = lib.live_unit_ids()
        assert len(ids) == 50 and np.array_equal(lib.open_index().index.ids(), ids)
        stats = run(lib_dir, database_url, "stats", "--json")
        assert json.loads(stats.output)["index"]["size"] == 50
    finally:
        lib.close()
    out = tmp_path / "export"
    result = run(lib_dir, database_url, "export-vectors", str(out), "--part-rows", "32")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "glimpse.json").read_text())["model"] == "glimpse-tiny"
    exported = np.concatenate([np.load(out / "img_emb" / f"img_emb_{i}.npy") for i in (0, 1)])
    meta = pq.read_table(out / "metadata" / "metadata_0.parquet").to_pylist()
    assert (
        meta[3]["image_path"] == "/shop/3.jpg" and meta[3]["title"] == "thing 3" and meta[3]["price"] == 3.0
    )
    original = np.concatenate([_vectors(30, 0), _vectors(20, 1)]).astype(np.float16)
    np.testing.assert_array_equal(exported, original)
    # the export imports into another library as it is (its glimpse.json names the model)
    again = tmp_path / "lib2"
    result = run(again, None, "import-vectors", str(out))
    assert result.exit_code == 0, result.output
    lib = _open(again, None)
    try:
        assert len(lib.live_unit_ids()) == 50 and lib.library_model().name == "glimpse-tiny"
    finally:
        lib.close()


def test_vectors_of_another_size_or_model_are_refused_before_anything_is_imported(tmp_path, database_url):
    lib_dir = tmp_path / "lib"
    wide = clip_retrieval_folder(tmp_path / "wide", dim=64)
    result = run(
        lib_dir, database_url, "import-vectors", str(wide), "--model", "glimpse-tiny", "--pretrained", "none"
    )
    assert (
        result.exit_code == 1 and "64-dimensional vectors" in result.output and "makes 128" in result.output
    )
    good = clip_retrieval_folder(tmp_path / "good")
    assert (
        run(
            lib_dir,
            database_url,
            "import-vectors",
            str(good),
            "--model",
            "glimpse-tiny",
            "--pretrained",
            "none",
        ).exit_code
        == 0
    )
    other = clip_retrieval_folder(tmp_path / "other", sizes=(3,))
    result = run(lib_dir, database_url, "import-vectors", str(other), "--model", "glimpse-demo")
    assert result.exit_code == 1 and "indexed with glimpse-tiny" in result.output
    lib = _open(lib_dir, database_url)
    try:
        assert len(lib.live_unit_ids()) == 50
    finally:
        lib.close()


def test_a_cut_import_keeps_whole_batches_and_resumes_with_skip_existing(tmp_path, database_url):
    lib_dir = tmp_path / "lib"
    broken = clip_retrieval_folder(tmp_path / "broken", bad_row=5)
    result = run(
        lib_dir,
        database_url,
        "import-vectors",
        str(broken),
        "--model",
        "glimpse-tiny",
        "--pretrained",
        "none",
        "--chunk",
        "10",
    )
    assert result.exit_code == 1 and "row 6" in result.output
    lib = _open(lib_dir, database_url)
    try:
        assert len(lib.live_unit_ids()) == 30  # the parquet part's three batches; none of the CSV's
        assert np.array_equal(lib.open_index().index.ids(), lib.live_unit_ids())  # index == catalogue
    finally:
        lib.close()
    fixed = clip_retrieval_folder(tmp_path / "fixed")
    result = run(lib_dir, database_url, "import-vectors", str(fixed), "--skip-existing")
    assert result.exit_code == 0 and "30 already there" in result.output, result.output
    result = run(lib_dir, database_url, "import-vectors", str(fixed))
    assert result.exit_code == 1 and "already in the library" in result.output
    lib = _open(lib_dir, database_url)
    try:
        assert len(lib.live_unit_ids()) == 50
        assert np.array_equal(lib.open_index().index.ids(), lib.live_unit_ids())
    finally:
        lib.close()


def test_an_index_type_faiss_cannot_build_is_refused_up_front(tmp_path):
    source = clip_retrieval_folder(tmp_path / "emb", sizes=(3,))
    result = run(
        tmp_path / "lib",
        None,
        "import-vectors",
        str(source),
        "--model",
        "glimpse-tiny",
        "--pretrained",
        "none",
        "--index",
        "IVF,bogus",
    )
    assert result.exit_code == 1 and "cannot build index 'IVF,bogus'" in result.output


@pytest.mark.parametrize("missing", ["img_emb", "metadata"])
def test_a_folder_not_in_the_layout_is_refused_with_what_is_missing(tmp_path, missing):
    source = clip_retrieval_folder(tmp_path / "emb", sizes=(3,))
    import shutil

    shutil.rmtree(source / missing)
    result = run(
        tmp_path / "lib",
        None,
        "import-vectors",
        str(source),
        "--model",
        "glimpse-tiny",
        "--pretrained",
        "none",
    )
    assert result.exit_code == 1 and ("img_emb" in result.output)


def test_a_bulk_import_into_a_new_library_builds_its_index_without_loading_torch(tmp_path):
    """Building the index widens the stored float16 rows; only a process that holds torch for its
    encoder already widens through it. A bulk import holds none and would load it for that (~0.5 GB)."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from glimpse.core.library import Library\n"
        "from glimpse.core.settings import Settings\n"
        "from glimpse.core.models import ModelRef\n"
        "from glimpse.indexer.bulk import Batch, import_stream\n"
        f"library = Library(Settings(data_dir={str(tmp_path / 'lib')!r}, model='glimpse-tiny', device='cpu'))\n"
        "v = np.random.default_rng(0).normal(size=(50, 128)).astype(np.float32)\n"
        "batch = Batch([f'/shop/{i}.jpg' for i in range(50)], v / np.linalg.norm(v, axis=1, keepdims=True))\n"
        "import_stream(library, ModelRef('glimpse-tiny', 'none'), [batch])\n"
        "assert len(library.open_index().index.ids()) == 50\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    tests = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tests
    )
    assert done.returncode == 0, done.stderr + done.stdout
