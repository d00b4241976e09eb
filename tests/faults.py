"""What must hold of a library after any fault (a SIGKILL, a full disk), shared by the fault tests
and ``bench/fault_injection.py``: it opens, FAISS holds exactly the live units, each live unit has
its thumbnail and its vector, and no file is catalogued twice."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterable
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
            assets = s.scalar(select(func.count()).select_from(Asset).where(Asset.status == Status.INDEXED))
        lacking = [u for u in live.tolist() if not thumbs.get(u) or not (library.root / thumbs[u]).is_file()]
        assert not lacking, f"{len(lacking)} live units lack a thumbnail, e.g. {lacking[:3]}"
        doubled = [p for p, n in Counter(paths).items() if n > 1]
        assert not doubled, f"catalogued twice: {doubled[:3]}"
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
