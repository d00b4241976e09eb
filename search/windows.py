"""Moments settled from the vector shards' segment lists: the search's fast path for growing a
wave of moments (search/moments.py :class:`Run`) without SQL.

Each seed's window of neighbouring segments is read from its shard (core/vectors.py
``video_windows``), all windows are scored against the query in one matrix product, and every
seed's run is found in one pass (``runs_in_windows``). A run that reaches its window's edge reads
twice as far on that side, past cuts. Seeds whose shard lists no
segments (shards written before shards listed them) are grown through the catalogue instead
(:func:`grow_by_reads`); both paths find the same runs (tests/search/test_moments_archive.py).
"""

from __future__ import annotations

import numpy as np

from glimpse.core.index import VectorIndex
from glimpse.search.moments import (
    BLOCK,
    Reader,
    Run,
    SegmentTable,
    grow_by_reads,
    runs_in_windows,
    settle_runs,
)

SHOT_REACH = 4 * BLOCK
"""Segments read on each side of a seed at most at first, when no cut comes sooner."""


def grow_in_windows(
    runs: list[Run], index: VectorIndex, vector: np.ndarray, skip: np.ndarray, read: Reader
) -> None:
    """Settle ``runs`` (each seed a segment of a video among the search's hits) against the query
    ``vector`` (D,) from the shards of ``index`` (the search's snapshot), leaving out the unit ids
    ``skip`` and rows the snapshot does not serve; ``read`` grows the seeds no shard lists."""
    store, row_map = index.store, index.row_map
    if store is None or row_map is None:
        grow_by_reads(runs, read)
        return
    todo = runs
    # The first window reaches to the cuts around the seed (and one segment past each), so a
    # moment inside one shot, the usual case, is settled by one read.
    before = np.full(len(todo), SHOT_REACH, np.int64)
    after = np.full(len(todo), SHOT_REACH, np.int64)
    stop_at_cuts = np.ones(len(todo), bool)
    unlisted: list[Run] = []
    while todo:
        w = store.video_windows(
            np.array([r.seed.unit_id for r in todo], np.int64),
            np.array([r.seed.asset_id for r in todo], np.int64),
            before,
            after,
            stop_at_cuts,
            row_map,
        )
        # Rows that cannot be scored (gone from the served index, replaced, or the query's own
        # example) are left out of the windows, as the catalogue's reads leave them out.
        usable = w.current
        if len(index) < len(row_map.ids):  # the store holds ids this version does not serve
            usable = usable & index.contains(w.segments["id"])
        if len(skip):
            usable &= ~np.isin(w.segments["id"], skip)
        kept_before = np.concatenate([[0], np.cumsum(usable)])
        bounds = kept_before[w.bounds]
        at = np.maximum(w.seed, 0)
        seed = np.where((w.seed >= 0) & usable[at] if len(usable) else False, kept_before[at], -1)
        seg = w.segments[usable]
        # Scored before the unusable rows go (no copy of the vectors); float64 as the catalogue
        # path scores, so the band's thresholds compare the same bits.
        scores = (w.vectors @ vector[:, None])[usable, 0].astype(np.float64)
        keep = np.array([r.band.keep for r in todo], np.float64)
        high = np.array([r.band.high for r in todo], np.float64)
        lo, hi = runs_in_windows(bounds, seed, scores, seg["cut"], keep, high)
        listed = w.listed
        # A run ending at an edge of its window that is not its video's may go on past it.
        open_before = (lo == bounds[:-1]) & ~w.at_start
        open_after = (hi == bounds[1:] - 1) & ~w.at_end
        again = listed & (lo >= 0) & (open_before | open_after)
        table = SegmentTable(seg["id"], seg["t_start"], seg["t_end"], seg["t_best"], seg["cut"])
        done = listed & (lo >= 0) & ~again
        for run, ok, first in zip(todo, listed.tolist(), lo.tolist(), strict=True):
            if not ok:
                unlisted.append(run)
            elif first < 0:
                run.settled = True  # gone, or below its band: no moment grows here
        at = np.flatnonzero(done)
        settle_runs([todo[j] for j in at.tolist()], table, scores, lo[at], hi[at])
        if not again.any():
            break
        idx = np.flatnonzero(again)
        raw_before, raw_after = w.seed[idx] - w.bounds[idx], w.bounds[idx + 1] - 1 - w.seed[idx]
        before = np.where(open_before[idx], np.maximum(BLOCK, 2 * raw_before), raw_before)
        after = np.where(open_after[idx], np.maximum(BLOCK, 2 * raw_after), raw_after)
        stop_at_cuts = np.zeros(len(idx), bool)  # the run crossed one: read on past cuts
        todo = [todo[j] for j in idx.tolist()]
    if unlisted:
        grow_by_reads(unlisted, read)
