"""SIGKILL a real `glimpse index` at random points of runs over images and a video, on SQLite and
PostgreSQL: after every kill the library opens, FAISS holds exactly the live units, each live
unit has its thumbnail and vector, and the next run finishes without duplicates.

``bench/fault_injection.py`` runs the same trials by the hundred (and disk-full ones)."""

from __future__ import annotations

import random

import pytest
from faults import kill_trials, make_media

# Each trial starts a real indexer process (seconds each); both backends together run past a
# minute on a shared CI machine.
pytestmark = pytest.mark.slow

TRIALS = 5  # per backend: 10 kills in all
IMAGES = 16


def test_sigkill_at_random_points_keeps_every_invariant_and_the_next_run_finishes(make_settings, tmp_path):
    media = tmp_path / "media"
    files = make_media(media, IMAGES, videos=1)
    settings = make_settings()
    report = kill_trials(settings, media, files, TRIALS, random.Random(20261206), changes=5)
    print(
        f"{report.trials} trials: {report.killed} killed mid-run, {report.finished_first} finished first; "
        f"files committed by each run before its kill {report.committed_at_kill}; {report.seconds:.0f}s"
    )
    assert report.killed >= TRIALS // 2  # the trials really interrupt runs
    assert report.final["assets"] == files
