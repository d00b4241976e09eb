"""Moments grown from the hits (``fit_hits``) are the moments ``fit_table`` finds over the whole
video, read from around the hits only: checked against it on random archives, with the early
stop, the per-video cap, unscorable segments and long scenes, and counting what was read."""

from __future__ import annotations

import numpy as np
import pytest

from glimpse.search.moments import (
    BLOCK,
    Moment,
    Read,
    Rows,
    Seed,
    SegmentTable,
    _joins,
    band,
    fit_hits,
    fit_table,
    hits_to_read,
    runs_in_windows,
)

TYPICAL = 0.1


def random_video(rng: np.random.Generator, first_id: int, n: int) -> tuple[SegmentTable, np.ndarray]:
    """``n`` one-second segments in scenes of 1-120 s; each scene matches the query to a random
    degree (a few strongly), with noise per segment; most scenes start with a detected cut, and
    some scenes have a cut inside them (another camera angle)."""
    scores, cuts = np.empty(n), np.zeros(n, bool)
    t = 0
    while t < n:
        length = min(int(rng.integers(1, 121)), n - t)
        level = rng.choice([0.1, 0.15, 0.2, 0.3, 0.45])
        scores[t : t + length] = level + rng.normal(0, 0.03, length)
        cuts[t] = t > 0 and rng.random() < 0.8
        if length > 10 and rng.random() < 0.2:
            cuts[t + int(rng.integers(1, length))] = True
        t += length
    times = np.arange(n, dtype=np.float64)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    return SegmentTable(ids, times, times + 1, times + 0.5, cuts), scores


class MemoryReader:
    """Answers reads from whole tables in memory, as the catalogue would; counts the rows read.
    ``hidden`` ids are read but cannot be scored (not in the served index)."""

    def __init__(self, videos: dict[int, tuple[SegmentTable, np.ndarray]], hidden: set[int] | None = None):
        self.videos, self.hidden, self.rows_read, self.calls = videos, hidden or set(), 0, 0

    def __call__(self, reads: list[Read]) -> list[Rows]:
        self.calls += 1
        out = []
        for r in reads:
            table, scores = self.videos[r.asset_id]
            keys = list(zip(table.t_start.tolist(), table.unit_id.tolist(), strict=True))
            anchor = (r.t_start, r.unit_id)
            if r.after:
                at = [i for i, k in enumerate(keys) if (k >= anchor if r.inclusive else k > anchor)][
                    : r.count
                ]
            else:
                at = [i for i, k in enumerate(keys) if k < anchor][::-1][: r.count][::-1]
            self.rows_read += len(at)
            edge = None if not at else keys[at[-1] if r.after else at[0]]
            ok = np.array([i for i in at if int(table.unit_id[i]) not in self.hidden], dtype=np.int64)
            mask = np.zeros(len(table), bool)
            mask[ok] = True
            out.append(Rows(table.take(mask), scores[mask], edge, len(at) < r.count))
        return out


def hits_of(
    videos: dict[int, tuple[SegmentTable, np.ndarray]], m: int, hidden: set[int] = frozenset()
) -> list[Seed]:  # type: ignore[assignment]
    """The top ``m`` segments of the archive, best first: what an exact index search returns."""
    every = [
        Seed(asset, int(t.unit_id[i]), float(s[i]), float(t.t_start[i]))
        for asset, (t, s) in videos.items()
        for i in range(len(t))
        if int(t.unit_id[i]) not in hidden
    ]
    return sorted(every, key=lambda h: -h.score)[:m]


def bands_of(hits: list[Seed], floor: float | None = None) -> dict[int, object]:
    peaks: dict[int, float] = {}
    for h in hits:
        peaks[h.asset_id] = max(peaks.get(h.asset_id, h.score), h.score)
    return {a: band(p, TYPICAL, floor) for a, p in peaks.items()}


def whole_video_moments(
    videos: dict[int, tuple[SegmentTable, np.ndarray]],
    hits: list[Seed],
    per_video: int,
    floor: float | None = None,
    hidden: set[int] = frozenset(),  # type: ignore[assignment]
) -> list[Moment]:
    """The oracle: fit_table over every (scorable) segment of each video among the hits, keeping
    the moments that score at least the last hit (a moment below it has no hit in it)."""
    last = hits[-1].score
    found = []
    for asset in {h.asset_id for h in hits}:
        table, scores = videos[asset]
        ok = ~np.isin(table.unit_id, list(hidden))
        found += [
            m
            for m in fit_table(
                asset, table.take(ok), scores[ok], per_video=per_video, typical=TYPICAL, floor=floor
            )
            if m.score >= last
        ]
    return sorted(found, key=lambda m: -m.score)


def archive(seed: int, videos: int = 6) -> dict[int, tuple[SegmentTable, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {a: random_video(rng, 10_000 * a, int(rng.integers(50, 3000))) for a in range(1, videos + 1)}


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("floor", [None, 0.4])
def test_moments_grown_from_the_hits_are_the_whole_video_moments(seed: int, floor: float | None) -> None:
    videos = archive(seed)
    hits = hits_of(videos, 200)
    expected = whole_video_moments(videos, hits, per_video=3, floor=floor)
    taken = fit_hits(hits, want=10_000, per_video=3, bands=bands_of(hits, floor), read=MemoryReader(videos))
    assert sorted((m for _, m in taken), key=lambda m: -m.score) == expected  # type: ignore[arg-type,return-value]
    assert expected, "the archive has moments to find"


@pytest.mark.parametrize("seed", range(6))
def test_segments_the_index_does_not_serve_are_left_out_as_in_the_whole_video(seed: int) -> None:
    videos = archive(seed)
    rng = np.random.default_rng(seed)
    every = np.concatenate([t.unit_id for t, _ in videos.values()])
    hidden = set(rng.choice(every, len(every) // 5, replace=False).tolist())
    hits = hits_of(videos, 150, hidden)
    expected = whole_video_moments(videos, hits, per_video=2, hidden=hidden)
    taken = fit_hits(hits, want=10_000, per_video=2, bands=bands_of(hits), read=MemoryReader(videos, hidden))
    assert sorted((m for _, m in taken), key=lambda m: -m.score) == expected  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize("want", [1, 5, 12])
def test_a_page_stops_growing_once_it_is_full_and_holds_the_best(want: int) -> None:
    videos = archive(3)
    hits = hits_of(videos, 200)
    everything = whole_video_moments(videos, hits, per_video=3)
    reader = MemoryReader(videos)
    taken = fit_hits(hits, want=want, per_video=3, bands=bands_of(hits), read=reader)
    assert [m for _, m in taken] == everything[:want]
    full = MemoryReader(videos)
    fit_hits(hits, want=10_000, per_video=3, bands=bands_of(hits), read=full)
    assert reader.rows_read < full.rows_read


def test_reads_grow_with_the_moment_not_the_video() -> None:
    # One hour at 1 segment/s; the query matches one 20 s scene, and one 700 s scene elsewhere.
    n = 3600
    scores = np.full(n, 0.1) + np.random.default_rng(0).normal(0, 0.01, n)
    scores[1000:1020] = 0.5
    scores[2000:2700] = 0.45
    times = np.arange(n, dtype=np.float64)
    cuts = np.isin(np.arange(n), [1000, 1020, 2000, 2700])
    table = SegmentTable(np.arange(n, dtype=np.int64), times, times + 1, times + 0.5, cuts)
    videos = {1: (table, scores)}
    hits = hits_of(videos, 5)  # all in the short scene
    reader = MemoryReader(videos)
    (only,) = fit_hits(hits, want=10, per_video=3, bands=bands_of(hits), read=reader)
    assert (only[1].start, only[1].end) == (1000.0, 1020.0)  # type: ignore[union-attr]
    assert reader.rows_read <= 2 * (2 * BLOCK + 1) and reader.calls == 1
    long_hits = [Seed(1, 2350, 0.45, 2350.0)]
    reader = MemoryReader(videos)
    (long,) = fit_hits(long_hits, want=10, per_video=3, bands={1: band(0.45, TYPICAL)}, read=reader)
    assert (long[1].start, long[1].end) == (2000.0, 2700.0)  # type: ignore[union-attr]
    assert reader.rows_read < 3 * 700 and reader.calls <= 6  # reads double: a few round trips


def test_hits_in_one_moment_give_one_result_and_a_video_gives_at_most_per_video() -> None:
    videos = {1: random_video(np.random.default_rng(7), 0, 2000)}
    hits = hits_of(videos, 300)
    taken = fit_hits(hits, want=50, per_video=2, bands=bands_of(hits), read=MemoryReader(videos))
    assert len(taken) == 2
    (_, ma), (_, mb) = taken
    assert ma is not None and mb is not None and (ma.end <= mb.start or mb.end <= ma.start)


def test_images_are_taken_as_they_are_and_count_toward_the_page() -> None:
    videos = archive(1, videos=2)
    video_hits = hits_of(videos, 40)
    images = [Seed(100 + i, 900_000 + i, h.score + 1e-9, video=False) for i, h in enumerate(video_hits[::4])]
    hits = sorted(video_hits + images + images[:1], key=lambda h: -h.score)  # one image hit twice
    taken = fit_hits(hits, want=8, per_video=3, bands=bands_of(video_hits), read=MemoryReader(videos))
    assert len(taken) == 8
    kinds = [m is None for _, m in taken]
    assert any(kinds) and not all(kinds)
    assert len({s.asset_id for s, m in taken if m is None}) == kinds.count(True)


def test_a_bad_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="per_video"):
        fit_hits([], want=1, per_video=0, bands={}, read=MemoryReader({}))


@pytest.mark.parametrize("seed", range(8))
def test_runs_found_in_many_windows_at_once_are_each_window_s_run_around_its_seed(seed: int) -> None:
    """``runs_in_windows`` (the shards' path, all of a wave's windows in one pass) against a walk
    outward from the seed over each window alone, with the band's joins."""
    rng = np.random.default_rng(seed)
    tables, scores, cuts, bounds, seeds, bands = [], [], [], [0], [], []
    for _ in range(int(rng.integers(1, 30))):
        table, s = random_video(rng, 0, int(rng.integers(1, 400)))
        lo = int(rng.integers(0, len(table)))
        hi = int(rng.integers(lo + 1, len(table) + 1))
        tables.append(table.take_rows(slice(lo, hi)))
        scores.append(s[lo:hi])
        cuts.append(table.cut_before[lo:hi])
        seeds.append(bounds[-1] + int(rng.integers(0, hi - lo)) if rng.random() < 0.95 else -1)
        bounds.append(bounds[-1] + hi - lo)
        bands.append(band(float(s[lo:hi].max()) + rng.choice([0.0, 0.05]), TYPICAL))
    flat = np.concatenate(scores)
    got_lo, got_hi = runs_in_windows(
        np.array(bounds),
        np.array(seeds),
        flat,
        np.concatenate(cuts),
        np.array([b.keep for b in bands]),
        np.array([b.high for b in bands]),
    )
    for j, at in enumerate(seeds):
        start, stop = bounds[j], bounds[j + 1]
        if at < 0 or flat[at] < bands[j].keep:
            assert (got_lo[j], got_hi[j]) == (-1, -1)
            continue
        _, joins = _joins(flat[start:stop], cuts[j], bands[j])
        lo = hi = at - start
        while lo > 0 and joins[lo]:
            lo -= 1
        while hi + 1 < stop - start and joins[hi + 1]:
            hi += 1
        assert (got_lo[j], got_hi[j]) == (start + lo, start + hi)


def _places(*pairs: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([v for v, _ in pairs], np.int64), np.array([s for _, s in pairs], np.int64)


def test_the_hits_read_for_a_page_reach_as_many_shots_as_it_needs_not_as_many_hits() -> None:
    """A scene that matches sends most of its seconds: they are one place for a result, not many."""
    video, shot = _places((1, 10), (1, 10), (1, 10), (2, 20), (1, 10), (2, 20), (3, 30), (3, 30))
    assert hits_to_read(video, shot, 1, per_video=3) == 1
    assert hits_to_read(video, shot, 2, per_video=3) == 4  # the 4th hit opens the second shot
    assert hits_to_read(video, shot, 3, per_video=3) == 7
    assert hits_to_read(video, shot, 4, per_video=3) == len(video)  # fewer places than needed: all
    assert hits_to_read(video, shot, 0, per_video=3) == 0


def test_a_video_s_shots_count_up_to_its_cap_less_the_moments_it_already_has() -> None:
    video, shot = _places((1, 10), (1, 11), (1, 12), (2, 20))
    assert hits_to_read(video, shot, 2, per_video=1) == 4  # shots 11 and 12 add no place
    assert hits_to_read(video, shot, 2, per_video=2) == 2
    assert hits_to_read(video, shot, 2, per_video=2, taken={1: 1}) == 4
    assert hits_to_read(video, shot, 1, per_video=2, taken={1: 2}) == 4


def test_a_hit_outside_any_listed_shot_is_a_place_of_its_own() -> None:
    """An image, or a segment whose shard lists none: nothing says it shares a moment."""
    video, shot = _places((-1, -1), (-1, -1), (1, 10), (1, 10))
    assert hits_to_read(video, shot, 2, per_video=3) == 2
    assert hits_to_read(video, shot, 3, per_video=3) == 3
