"""`glimpse index` on images: incremental, crash-safe, and never stopped by one bad file."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from sqlalchemy import func, select

from conftest import save_image
from glimpse.core.catalogue import Asset, Unit
from glimpse.core.library import Library
from glimpse.core.vocabulary import Status
from glimpse.indexer.pipeline import Indexer


def _index(library, encoder, settings, *paths):
    return Indexer(library, encoder, settings).run(list(paths))


def _assets(library):
    with library.Session() as s:
        return {a.path: a for a in s.scalars(select(Asset))}


def _consistent(library) -> bool:
    snapshot = library.open_index(repair=False)
    return np.array_equal(np.sort(snapshot.index.ids()), library.live_unit_ids())


def test_indexes_good_files_and_records_bad_ones_with_reasons(
    library, tiny_encoder, make_settings, image_folder
):
    (image_folder / "truncated.jpg").write_bytes((image_folder / "red.png").read_bytes()[:200])
    (image_folder / "empty.jpg").write_bytes(b"")
    (image_folder / "notes.jpg").write_text("not an image")
    (image_folder / "readme.txt").write_text("ignored: not media")
    summary = _index(library, tiny_encoder, make_settings(), image_folder)
    assert summary.indexed == 6 and summary.units == 6
    failed = dict(summary.failed)
    assert set(failed) == {str(image_folder / n) for n in ("truncated.jpg", "empty.jpg", "notes.jpg")}
    assert "empty" in failed[str(image_folder / "empty.jpg")]
    assets = _assets(library)
    assert assets[str(image_folder / "notes.jpg")].status == Status.FAILED
    assert "not a supported image" in assets[str(image_folder / "notes.jpg")].error
    assert _consistent(library)


def test_keeps_metadata_aligned_when_an_image_fails_to_load(library, tiny_encoder, make_settings, tmp_path):
    root = tmp_path / "mixed"
    for i in range(12):
        save_image(root / f"{i:02d}.jpg", ("red", "blue")[i % 2], seed=i)
    (root / "05.jpg").write_bytes(b"garbage")
    _index(library, tiny_encoder, make_settings(batch_size=4), root)
    snapshot = library.open_index()
    with library.Session() as s:
        rows = s.execute(select(Unit.id, Asset.path).join(Asset)).all()
    # Each unit's stored vector is the embedding of its own file, not a neighbour's.
    from glimpse.core.media import open_image

    for unit_id, path in rows:
        expected = tiny_encoder.encode_images([open_image(path, 10**8)])[0]
        got = snapshot.index.vectors(np.array([unit_id]))[0]
        assert float(expected @ got) > 0.999, path


def test_a_second_run_re_embeds_nothing(library, tiny_encoder, make_settings, image_folder):
    _index(library, tiny_encoder, make_settings(), image_folder)
    stored = library.vector_store().stored_count()
    again = _index(library, tiny_encoder, make_settings(), image_folder)
    assert (again.indexed, again.unchanged, again.units) == (0, 6, 0)
    assert library.vector_store().stored_count() == stored


def test_a_touched_file_with_the_same_content_is_not_re_embedded(
    library, tiny_encoder, make_settings, image_folder
):
    _index(library, tiny_encoder, make_settings(), image_folder)
    target = image_folder / "red.png"
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = _index(library, tiny_encoder, make_settings(), image_folder)
    assert again.units == 0 and again.unchanged == 6


def test_changed_files_are_re_embedded_and_removed_files_swept(
    library, tiny_encoder, make_settings, image_folder
):
    _index(library, tiny_encoder, make_settings(), image_folder)
    before = _assets(library)
    save_image(image_folder / "red.png", "blue", size=(120, 90), seed=99)
    (image_folder / "nested" / "green.jpg").unlink()
    again = _index(library, tiny_encoder, make_settings(), image_folder)
    assert (again.indexed, again.removed, again.unchanged) == (1, 1, 4)
    after = _assets(library)
    assert str(image_folder / "nested" / "green.jpg") not in after
    assert after[str(image_folder / "red.png")].id == before[str(image_folder / "red.png")].id
    assert after[str(image_folder / "red.png")].width == 120
    assert _consistent(library) and len(library.open_index().index) == 5


def test_a_failed_file_is_not_retried_until_it_changes(library, tiny_encoder, make_settings, tmp_path):
    root = tmp_path / "p"
    (root).mkdir()
    (root / "broken.jpg").write_bytes(b"xx")
    assert len(_index(library, tiny_encoder, make_settings(), root).failed) == 1
    assert _index(library, tiny_encoder, make_settings(), root).unchanged == 1
    save_image(root / "broken.jpg", "red")
    fixed = _index(library, tiny_encoder, make_settings(), root)
    assert fixed.indexed == 1 and _assets(library)[str(root / "broken.jpg")].status == Status.INDEXED


def test_a_missing_path_is_a_clear_error(library, tiny_encoder, make_settings, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        _index(library, tiny_encoder, make_settings(), tmp_path / "nope")


def test_repairs_an_index_that_disagrees_with_the_catalogue(
    library, tiny_encoder, make_settings, image_folder
):
    _index(library, tiny_encoder, make_settings(), image_folder)
    library.index_path.unlink()  # e.g. lost, or left behind by a crash before the rebuild
    snapshot = library.open_index()
    assert snapshot.repaired and len(snapshot.index) == 6 and _consistent(library)


def _glimpse(settings, *args):
    base = [sys.executable, "-m", "glimpse", "--data-dir", str(settings.data_dir)]
    if settings.database_url:
        base += ["--database-url", settings.database_url]
    return base + list(args)


@pytest.mark.slow
def test_sigkill_mid_run_leaves_a_library_that_opens_and_resumes_without_duplicates(make_settings, tmp_path):
    root = tmp_path / "many"
    for i in range(240):
        save_image(root / f"{i:03d}.png", ("red", "green", "blue")[i % 3], size=(64, 48), seed=i)
    s = make_settings()
    env = {**os.environ, "GLIMPSE_COMMIT_UNITS": "8", "GLIMPSE_BATCH_SIZE": "8", "GLIMPSE_WORKERS": "1"}
    proc = subprocess.Popen(
        _glimpse(s, "index", str(root), "--model", "glimpse-tiny", "--pretrained", "none"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    library = Library(s)
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        with library.Session() as sess:
            committed = sess.scalar(select(func.count()).select_from(Asset)) or 0
        if committed >= 16:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the indexer finished before it could be killed: {proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The library opens and serves exactly what was committed.
    snapshot = library.open_index()
    assert np.array_equal(np.sort(snapshot.index.ids()), library.live_unit_ids())
    assert 0 < len(snapshot.index) < 240
    # A second run finishes the job without duplicating anything.
    done = subprocess.run(_glimpse(s, "index", str(root), "--json"), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with library.Session() as sess:
        assert sess.scalar(select(func.count()).select_from(Asset)) == 240
        assert sess.scalar(select(func.count()).select_from(Unit)) == 240
    assert len(library.open_index().index) == 240
    library.close()


def test_two_indexers_at_once_the_second_fails_fast(make_settings, image_folder, library):
    s = make_settings()
    with library.writer_lock():
        done = subprocess.run(
            _glimpse(s, "index", str(image_folder), "--model", "glimpse-tiny", "--pretrained", "none"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert "another indexer" in done.stderr


def test_the_summary_prints_paths_and_reasons_as_text_not_markup(make_settings, tmp_path):
    # Rich reads "[...]" as a style: a folder named "[2024]" or a reason quoting an extra must
    # print as it is, in the summary and in error messages.
    root = tmp_path / "[2024] [red]trip"
    save_image(root / "good.png", "red")
    (root / "bad [b].jpg").write_bytes(b"not an image")
    s = make_settings()
    done = subprocess.run(
        _glimpse(s, "index", str(root), "--model", "glimpse-tiny", "--pretrained", "none"),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "500"},
    )
    assert done.returncode == 0, done.stderr
    assert f"failed {root / 'bad [b].jpg'}: not a supported image" in done.stdout
    missing = subprocess.run(
        _glimpse(s, "index", str(root / "[gone]")), capture_output=True, text=True, timeout=300
    )
    assert missing.returncode == 1 and "[gone]" in missing.stderr
