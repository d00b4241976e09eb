"""A full disk while indexing: one clear line (what, where, free space), the run recorded as failed,
nothing committed lost, and the next run finishes the job without duplicates.

Fast versions inject ENOSPC where the writer writes (a thumbnail, a vector shard) and fill a
SQLite catalogue to its page limit; the real one fills a small tmpfs (skipped where this process
may not mount one)."""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
from faults import MODEL, check_invariants, fast_env, glimpse_command, last_run
from sqlalchemy import event

from conftest import save_image
from glimpse.core.fsutil import DiskFull
from glimpse.core.library import Library
from glimpse.core.vectors import VectorStore
from glimpse.core.vocabulary import RunStatus
from glimpse.indexer import writer as writer_module
from glimpse.indexer.pipeline import Indexer

IMAGES = 24


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for i in range(IMAGES):
        save_image(root / f"{i:02d}.png", ("red", "green", "blue", "white")[i % 4], size=(64, 48), seed=i)
    return root


def _fail_after(calls: int, real, path_of):
    """``real`` that raises ENOSPC (as a full disk does) from its call number ``calls + 1`` on."""
    count = {"n": 0}

    def wrapper(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path_of(*args, **kwargs)))
        return real(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("where", ["thumbnail", "shard"])
def test_a_full_disk_fails_the_run_clearly_and_keeps_what_was_committed(
    where, monkeypatch, make_settings, tiny_encoder, photos
):
    s = make_settings(commit_units=4, batch_size=4)
    library = Library(s)
    if where == "thumbnail":  # the 10th thumbnail: two chunks of 4 committed, the third fails
        monkeypatch.setattr(
            writer_module, "atomic_write", _fail_after(9, writer_module.atomic_write, lambda p, **_: p)
        )
    else:  # the 3rd shard
        monkeypatch.setattr(
            VectorStore, "append", _fail_after(2, VectorStore.append, lambda st, *_: st.folder)
        )
    with pytest.raises(DiskFull) as caught:
        Indexer(library, tiny_encoder, s).run([photos])
    message = str(caught.value)
    assert "\n" not in message and message.startswith("disk full while writing in ")
    assert str(library.root) in message and "free there" in message
    status, recorded = last_run(s)
    assert status == RunStatus.FAILED and recorded == message
    counts = check_invariants(s)
    assert counts["assets"] == 8 and counts["units"] == 8  # the two committed chunks, no more, no less
    monkeypatch.undo()
    summary = Indexer(library, tiny_encoder, s).run([photos])
    assert summary.indexed == IMAGES - 8 and summary.unchanged == 8
    assert check_invariants(s)["units"] == IMAGES and last_run(s)[0] == RunStatus.COMPLETED
    library.close()


def test_a_full_sqlite_catalogue_fails_the_run_clearly(make_settings, tiny_encoder, photos, database_url):
    if database_url is not None:
        pytest.skip("SQLite's page limit stands in for a full disk under the catalogue file")
    s = make_settings(commit_units=4, batch_size=4)
    library = Library(s)
    with library.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()

    @event.listens_for(library.engine, "connect")
    def _limit(dbapi_conn, _record):
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    library.engine.dispose()  # new connections get the limit
    with pytest.raises(DiskFull, match=r"disk full while writing the catalogue .*catalogue\.db"):
        Indexer(library, tiny_encoder, s).run([photos])
    event.remove(library.engine, "connect", _limit)
    library.engine.dispose()
    check_invariants(s)
    Indexer(library, tiny_encoder, s).run([photos])
    assert check_invariants(s)["units"] == IMAGES
    library.close()


@pytest.fixture
def small_disk(tmp_path: Path, database_url: str | None):
    """A tmpfs with room for a few chunks (and the SQLite catalogue, when it holds it too),
    unmounted afterwards."""
    mount = tmp_path / f"small-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    size = "1m" if database_url is None else "160k"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_glimpse_index_on_a_full_tmpfs_prints_one_line_and_the_next_run_finishes(
    make_settings, small_disk, tmp_path
):
    root = tmp_path / "big-photos"
    for i in range(60):  # noisy 256 px images: thumbnails that do not compress to nothing
        save_image(root / f"{i:02d}.png", ("red", "green", "blue")[i % 3], size=(256, 192), seed=i)
    s = make_settings().model_copy(update={"data_dir": small_disk / "library"})
    done = subprocess.run(
        glimpse_command(s, "index", str(root), *MODEL),
        capture_output=True,
        text=True,
        timeout=300,
        env=fast_env(),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("WARNING:root:No pretrained")]
    assert len(lines) == 1 and lines[0].startswith("error: disk full while writing"), done.stderr
    assert "free there" in lines[0] and "Traceback" not in done.stderr
    assert last_run(s)[0] == RunStatus.FAILED
    library = Library(s)  # still full: it opens, and serves what was committed (from memory)
    assert np.array_equal(np.sort(library.open_index().index.ids()), library.live_unit_ids())
    library.close()
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    counts = check_invariants(s)  # with room again: the committed units are all there
    again = subprocess.run(
        glimpse_command(s, "index", str(root), "--json"),
        capture_output=True,
        text=True,
        timeout=300,
        env=fast_env(),
    )
    assert again.returncode == 0, again.stderr
    after = check_invariants(s)
    assert after["units"] == 60 and after["units"] >= counts["units"]
    assert last_run(s)[0] == RunStatus.COMPLETED
