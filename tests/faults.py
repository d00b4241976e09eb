"""What must hold of a library after any fault (a SIGKILL, a full disk), shared by the fault tests
and ``bench/fault_injection.py``: it opens, FAISS holds exactly the live units, each live unit has
its thumbnail and its vector, and no file is catalogued twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from glimpse.core.catalogue import Asset, IndexRun, Unit
from glimpse.core.library import Library
from glimpse.core.settings import Settings
from glimpse.core.vocabulary import Status

MODEL = ("--model", "glimpse-tiny", "--pretrained", "none")


def glimpse_command(settings: Settings, *args: str) -> list[str]:
    """``python -m glimpse`` on ``settings``' library, with ``args``."""
    base = [sys.executable, "-m", "glimpse", "--data-dir", str(settings.data_dir)]
    if settings.database_url:
        base += ["--database-url", settings.database_url]
    return base + list(args)


def fast_env(**extra: str) -> dict[str, str]:
    """Environment for an indexer subprocess that commits small chunks often (many kill points)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLIMPSE_")}
    env.update(GLIMPSE_COMMIT_UNITS="4", GLIMPSE_BATCH_SIZE="4", GLIMPSE_WORKERS="1", GLIMPSE_VIDEO_FPS="4")
    env.update(extra)
    return env


def check_invariants(settings: Settings) -> dict[str, int]:
    """Assert every invariant of a library after a fault; returns counts (assets, units, index)."""
    library = Library(settings)
    try:
        snapshot = library.open_index()  # opens (repairing from the shards if the index is stale)
        live = library.live_unit_ids()
        ids = np.sort(snapshot.index.ids())
        assert np.array_equal(ids, live), f"FAISS ids != live units ({len(ids)} vs {len(live)})"
        if library.model_info() is not None and len(live):
            stored, _ = library.vector_store().load(wanted=live)
            assert np.array_equal(stored, live), f"{len(np.setdiff1d(live, stored))} live units lack a vector"
        with library.Session() as s:
            thumbs = dict(s.execute(select(Unit.id, Unit.thumbnail).where(Unit.id.in_(live.tolist()))).all())
            paths = list(s.scalars(select(Asset.path)))
            spans = list(s.execute(select(Unit.asset_id, Unit.t_start)).all())
            assets = s.scalar(select(func.count()).select_from(Asset).where(Asset.status == Status.INDEXED))
        lacking = [u for u in live.tolist() if not thumbs.get(u) or not (library.root / thumbs[u]).is_file()]
        assert not lacking, f"{len(lacking)} live units lack a thumbnail, e.g. {lacking[:3]}"
        doubled = [p for p, n in Counter(paths).items() if n > 1]
        assert not doubled, f"catalogued twice: {doubled[:3]}"
        twice = [span for span, n in Counter(spans).items() if n > 1]
        assert not twice, f"units stored twice (asset, start): {twice[:3]}"
        return {"assets": int(assets or 0), "units": len(live), "index": len(ids)}
    finally:
        library.close()


def last_run(settings: Settings) -> tuple[str, str | None]:
    """(status, message) of the library's latest index run."""
    library = Library(settings)
    try:
        with library.Session() as s:
            run = s.scalars(select(IndexRun).order_by(IndexRun.id.desc()).limit(1)).one()
            return run.status, run.message
    finally:
        library.close()


def units_per_asset(settings: Settings, paths: Iterable[Path]) -> dict[str, int]:
    """How many units each of ``paths`` has (0 when it is not catalogued)."""
    library = Library(settings)
    try:
        with library.Session() as s:
            rows = dict(
                s.execute(
                    select(Asset.path, func.count(Unit.id)).join(Unit, isouter=True).group_by(Asset.path)
                ).all()
            )
        return {str(p): int(rows.get(str(p), 0)) for p in paths}
    finally:
        library.close()


def make_media(root: Path, images: int, videos: int = 1, seed: int = 0) -> int:
    """``images`` small images and ``videos`` short videos below ``root``; returns the file count."""
    from tests.conftest import save_image
    from tests.videos import h264_mp4

    for i in range(images):
        save_image(
            root / f"img-{i:03d}.png", ("red", "green", "blue", "white")[i % 4], size=(64, 48), seed=seed + i
        )
    (root / "videos").mkdir(parents=True, exist_ok=True)
    for i in range(videos):
        h264_mp4(root / "videos" / f"clip-{i}.mp4", seconds=4.0, fps=10)
    return images + videos


@dataclass
class KillReport:
    """What a series of SIGKILL trials did: kills landed, runs that finished first, the files each
    killed run had committed, the final counts."""

    trials: int = 0
    killed: int = 0
    finished_first: int = 0
    committed_at_kill: list[int] = field(default_factory=list)
    final: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _committed_since(library: Library, since: datetime) -> int:
    """Files committed (indexed or failed) since ``since``: the progress of the running indexer."""
    with library.Session() as s:
        return int(s.scalar(select(func.count()).select_from(Asset).where(Asset.indexed_at >= since)) or 0)


def change_some(media: Path, rng: random.Random, count: int) -> int:
    """Give ``count`` random files of ``media`` new content (images redrawn, the video re-encoded
    at another length), so the next run has work: returns how many files changed."""
    from tests.conftest import save_image
    from tests.videos import h264_mp4

    files = sorted(p for p in media.rglob("*") if p.is_file())
    chosen = rng.sample(files, min(count, len(files)))
    for path in chosen:
        if path.suffix == ".mp4":
            h264_mp4(path, seconds=rng.choice([3.0, 4.0, 5.0]), fps=10)
        else:
            save_image(
                path,
                ("red", "green", "blue", "white")[rng.randrange(4)],
                size=(64, 48),
                seed=rng.randrange(10**6),
            )
    return len(chosen)


def kill_trials(
    settings: Settings, media: Path, files: int, trials: int, rng: random.Random, changes: int = 8
) -> KillReport:
    """SIGKILL a real ``glimpse index`` at random points, ``trials`` times, checking every
    invariant (:func:`check_invariants`) after each kill; then let one run finish and check that
    every file is catalogued once, as it is on disk. Before each trial after the first, ``changes``
    random files get new content, so every run has work (re-embedding replaces units: the case
    where a duplicate would show). The kill point is random: after a random number of files this
    run committed (0 = while it starts and scans), plus up to 0.3 s more (between commits too)."""
    report = KillReport()
    started = time.monotonic()
    env = fast_env()
    pending = files
    for trial in range(trials):
        report.trials += 1
        if trial:
            pending = change_some(media, rng, changes)
        target = rng.randint(0, max(pending - 1, 0))
        library = Library(settings)
        since = datetime.now(UTC)
        args = ("index", str(media), *MODEL) if trial == 0 else ("index", str(media))
        proc = subprocess.Popen(
            glimpse_command(settings, *args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if target == 0 or _committed_since(library, since) >= target:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            report.killed += 1
        else:
            report.finished_first += 1
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            assert proc.returncode == 0, err
        if proc.stderr:
            proc.stderr.close()
        report.committed_at_kill.append(_committed_since(library, since))
        library.close()
        check_invariants(settings)
    done = subprocess.run(
        glimpse_command(settings, "index", str(media), "--json"), env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    report.final = check_invariants(settings)
    assert report.final["assets"] == files, report.final
    library = Library(settings)
    try:
        with library.Session() as s:
            stored = {a.path: (a.size, a.mtime_ns) for a in s.scalars(select(Asset))}
    finally:
        library.close()
    on_disk = {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in media.rglob("*") if p.is_file()}
    assert stored == on_disk, "the catalogue does not describe the files as they are"
    report.seconds = time.monotonic() - started
    return report
