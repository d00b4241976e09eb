"""Moments: where in a video the query keeps matching, with boundaries fitted to the query.

An analyst asking for "a blue square" in a video that shows one from 10 s to 20 s wants one moment,
10-20 s: not two halves of the scene, and not the whole video. So a moment is not the few hits
an index search happened to return, merged: it is a maximal run of consecutive segments of the
video, scored against the query from their stored vectors, whose score stays near the video's
peak for this query. :func:`fit_table` finds the runs of a whole video; :func:`fit_hits` finds
the same runs by reading outward from each hit, which is what a search does (see the comment
above :class:`Seed`):

* **The band.** A segment belongs to a moment when its score is at least
  ``peak - BAND * (peak - typical)``, where ``typical`` is what the query scores on unrelated
  content: the median of its scores over a fixed background sample of the library (the engine
  passes it; without it, the video's own median stands in, which is right only when the subject
  fills less than half of the video). A segment showing the queried thing scores near the peak;
  one that does not scores near ``typical``. The band adapts to the query and the library, so no
  raw cosine threshold is assumed (raw CLIP scores are not comparable across queries). When the caller gives a ``floor`` (the calibrated relevance cutoff expressed in raw
  score, see :mod:`glimpse.search.relevance`), segments below it never count, so a video that
  does not show the thing at all gives no moment rather than its least bad stretch.
* **Cuts.** A detected cut (a segment that starts a new shot) ends a moment unless the scores on
  both sides stay high (within ``CUT_BAND * (peak - typical)`` of the peak): the same subject
  filmed from two angles is one moment; a cut to something merely similar starts another.
* **Scoring.** A moment scores as its best segment, whose time starts playback and whose frame is
  its thumbnail; a video contributes at most ``per_video`` moments, its best.

Sequence queries ("A then B within N s", :func:`sequences`) pair a moment for A with a later moment
for B of the same video whose start follows A's end by at most N seconds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

BAND = 0.5
"""A segment is in a moment when it scores in the top half of the way from the video's median
score to its peak (for this query)."""

CUT_BAND = 0.25
"""Across a detected cut, both neighbours must score in the top quarter of that way for the moment
to continue."""

FLAT_SPREAD = 1e-4
"""Peak minus median below this (cosine): the video scores the same everywhere for this query, so
it is one moment (a static shot), not noise split into pieces."""


BLOCK = 32
"""Segments read on each side of a hit at first; a moment that reaches the end of what was read
reads as many again on that side (so a run of n segments takes ~log2(n / BLOCK) more reads). At
1 segment/s, one read covers a scene of up to a minute around the hit."""


@dataclass(frozen=True)
class Band:
    """What counts for one query in one video: a segment is in a moment when it scores at least
    ``keep``; a moment continues across a cut when both neighbours score at least ``high``."""

    keep: float
    high: float


def band(peak: float, typical: float, floor: float | None = None) -> Band:
    """The band for a video whose best segment scores ``peak`` for a query that scores
    ``typical`` on unrelated content (see the module; ``floor`` is a lowest score to count)."""
    typical = min(typical, peak)
    spread = peak - typical
    if spread < FLAT_SPREAD:  # the same everywhere: one moment (a static shot), not noise in pieces
        keep = high = -math.inf
    else:
        keep, high = peak - BAND * spread, peak - CUT_BAND * spread
    return Band(keep if floor is None else max(keep, floor), high)


def _joins(scores: np.ndarray, cut_before: np.ndarray, b: Band) -> tuple[np.ndarray, np.ndarray]:
    """(keep, joins), each (n,) bool: segment i is in a moment; segment i continues the run of
    segment i-1 (both kept, and no cut between them unless both score high). joins[0] is False."""
    keep = scores >= b.keep
    high = scores >= b.high
    joins = np.zeros(len(scores), dtype=bool)
    joins[1:] = keep[1:] & keep[:-1] & ~(cut_before[1:] & ~(high[:-1] & high[1:]))
    return keep, joins


@dataclass(frozen=True)
class Segment:
    """One unit of a video, in time order, with its score for the query."""

    unit_id: int
    t_start: float  # seconds
    t_end: float
    t_best: float  # the representative frame's time, t_start <= t_best <= t_end
    score: float
    cut_before: bool = False  # a detected cut comes right before this segment


@dataclass(frozen=True, eq=False)
class SegmentTable:
    """One video's segments in time order, as arrays of length n: what the engine reads once per
    video and scores against each query (a video has up to a few thousand segments, and a page
    scores every segment of a dozen videos, so the work stays in numpy)."""

    unit_id: np.ndarray  # (n,) int64
    t_start: np.ndarray  # (n,) float64 seconds
    t_end: np.ndarray  # (n,) float64
    t_best: np.ndarray  # (n,) float64, t_start <= t_best <= t_end
    cut_before: np.ndarray  # (n,) bool: a detected cut comes right before the segment

    def __len__(self) -> int:
        return len(self.unit_id)

    @classmethod
    def of(cls, segments: Sequence[Segment]) -> SegmentTable:
        return cls(
            np.array([s.unit_id for s in segments], dtype=np.int64),
            np.array([s.t_start for s in segments], dtype=np.float64),
            np.array([s.t_end for s in segments], dtype=np.float64),
            np.array([s.t_best for s in segments], dtype=np.float64),
            np.array([s.cut_before for s in segments], dtype=bool),
        )

    def take(self, keep: np.ndarray) -> SegmentTable:
        """The segments where the boolean mask ``keep`` (n,) is true, still in time order."""
        return self.take_rows(keep)

    def take_rows(self, rows: np.ndarray | slice) -> SegmentTable:
        """The segments selected by ``rows`` (a boolean mask or positions), in that order."""
        return SegmentTable(
            self.unit_id[rows], self.t_start[rows], self.t_end[rows], self.t_best[rows], self.cut_before[rows]
        )

    def check(self) -> None:
        """Raise ValueError unless the times are finite, in order, and each t_best is in its segment."""
        times = np.stack([self.t_start, self.t_end, self.t_best]) if len(self) else np.zeros((3, 0))
        if not np.isfinite(times).all():
            raise ValueError("segments need finite times")
        if ((self.t_best < self.t_start) | (self.t_best > self.t_end)).any():
            raise ValueError("a segment has t_best outside t_start..t_end")
        if (np.diff(self.t_start) < 0).any():
            raise ValueError("segments must be in time order")


@dataclass(frozen=True)
class Moment:
    """A stretch of one video: ``start``..``end`` seconds, played from ``best_time``."""

    asset_id: Hashable
    start: float
    end: float
    best_time: float
    score: float  # the best segment's
    unit_id: int  # the best segment: its thumbnail shows the moment


@dataclass(frozen=True)
class SequenceMatch:
    """Moments of one video in order, one per step of a sequence query ("A then B ...")."""

    steps: tuple[Moment, ...]

    @property
    def score(self) -> float:
        """The weakest step's score: every step must match."""
        return min(m.score for m in self.steps)

    @property
    def start(self) -> float:
        return self.steps[0].start

    @property
    def end(self) -> float:
        return self.steps[-1].end


def fit_moments(
    asset_id: Hashable,
    segments: Sequence[Segment],
    *,
    per_video: int = 3,
    floor: float | None = None,
    typical: float | None = None,
) -> list[Moment]:
    """The moments of one video for one query, best first (see the module for the method).

    ``segments`` are the video's units in time order (they tile the video), each with its score;
    ``floor`` is the lowest score that can count as a match at all; ``typical`` the query's score
    on unrelated content (default: the video's median). Raises ValueError for unordered segments,
    bad times or scores, or a ``per_video`` below 1. :func:`fit_table` is the same on arrays.
    """
    scores = np.array([s.score for s in segments], dtype=np.float64)
    return fit_table(
        asset_id, SegmentTable.of(segments), scores, per_video=per_video, floor=floor, typical=typical
    )


def fit_table(
    asset_id: Hashable,
    table: SegmentTable,
    scores: np.ndarray,
    *,
    per_video: int = 3,
    floor: float | None = None,
    typical: float | None = None,
) -> list[Moment]:
    """:func:`fit_moments` over a :class:`SegmentTable` and its scores (n,) for one query."""
    if per_video < 1:
        raise ValueError(f"per_video must be at least 1, got {per_video!r}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(table),):
        raise ValueError(f"expected {len(table)} scores, got shape {scores.shape}")
    table.check()
    if not np.isfinite(scores).all():
        raise ValueError("segments need finite scores")
    if not len(table):
        return []
    peak = float(scores.max())
    keep, joins = _joins(
        scores, table.cut_before, band(peak, float(np.median(scores)) if typical is None else typical, floor)
    )
    starts = np.flatnonzero(keep & ~joins)
    if not len(starts):
        return []
    ends = np.flatnonzero(keep & ~np.append(joins[1:], False))  # inclusive, one per start
    # A run's best score is the maximum over [its start, the next start): the segments between
    # runs were not kept, so they score lower than anything kept.
    best_scores = np.maximum.reduceat(scores, starts)
    order = np.lexsort((table.t_start[starts], -best_scores))[:per_video]
    moments = []
    for j in order:
        first, last = int(starts[j]), int(ends[j])
        best = first + int(np.argmax(scores[first : last + 1]))  # first of equals: the earliest
        moments.append(
            Moment(
                asset_id=asset_id,
                start=float(table.t_start[first]),
                end=float(table.t_end[last]),
                best_time=float(table.t_best[best]),
                score=float(scores[best]),
                unit_id=int(table.unit_id[best]),
            )
        )
    return moments


# -- moments grown from the hits -----------------------------------------------------------------
# Scoring every segment of every video among the hits costs a read and a score per segment (a
# page of an hour-long archive: ~70,000), while a moment is a run of a few dozen around a hit. The
# runs are the same when grown outward from the hits: the band needs only the video's peak, which
# is its best hit (an exact search returns every segment scoring above its last hit, so a video's
# best segment is among its hits), and ``typical``, which comes from the library's background
# sample. A run with no hit in it scores below every hit, so it can only rank after the hits
# that were fetched; the engine fetches more hits while the page is not full.


@dataclass(slots=True)
class Seed:
    """One hit, in the index's score order: a video segment a moment grows from (``video``), or
    an image, taken as it is. Not frozen, as :class:`~glimpse.search.reads.Hit` (one per hit)."""

    asset_id: int
    unit_id: int
    score: float
    t_start: float = 0.0  # seconds, for a video segment
    video: bool = True


@dataclass(frozen=True)
class Read:
    """Ask for up to ``count`` segments of one video next to the segment keyed
    ``(t_start, unit_id)``: those after it (and it too, when ``inclusive``) or those before it."""

    asset_id: int
    t_start: float
    unit_id: int
    after: bool
    count: int
    inclusive: bool = False


@dataclass(frozen=True)
class Rows:
    """The answer to a :class:`Read`: the segments found that can be scored, in time order, and
    their scores (n,); ``edge``, the key ``(t_start, unit_id)`` of the farthest segment read
    (scorable or not; None when none was); ``complete``, true when fewer than asked exist, so the
    video ends (or starts) there."""

    table: SegmentTable
    scores: np.ndarray
    edge: tuple[float, int] | None
    complete: bool


Reader = Callable[[list[Read]], list[Rows]]
"""Answers a batch of reads, one :class:`Rows` each, in order (one database round trip)."""


@dataclass(eq=False)
class Run:
    """A moment being grown from one seed: the segments read around it so far; once known,
    ``moment`` (None when the seed is below its band or gone) and the keys of its ends."""

    seed: Seed
    band: Band
    table: SegmentTable | None = None
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    first: tuple[float, int] | None = None  # the farthest segment read before / after the seed
    last: tuple[float, int] | None = None
    at_start: bool = False  # nothing before `first`
    at_end: bool = False
    read_before: int = 0  # segments read on each side, to read as many again
    read_after: int = 0
    moment: Moment | None = None
    span: tuple[tuple[float, int], tuple[float, int]] | None = None  # first and last key of the run
    members: np.ndarray | None = None  # the unit ids of the moment's segments
    settled: bool = False  # grown as far as it goes: `moment` is final (None: no moment here)

    def settle(self, table: SegmentTable, scores: np.ndarray, lo: int, hi: int) -> None:
        """The run is segments ``lo..hi`` (inclusive) of ``table`` (time order) and ``scores``."""
        settle_runs([self], table, scores, np.array([lo]), np.array([hi]))

    def reads(self) -> list[Read]:
        """What to read next: both sides at first, then the side(s) the run reaches the end of;
        none once the run is known (then ``moment`` is set, or stays None: no moment here)."""
        s = self.seed
        if self.table is None:
            return [
                Read(s.asset_id, s.t_start, s.unit_id, after=False, count=BLOCK),
                Read(s.asset_id, s.t_start, s.unit_id, after=True, count=BLOCK + 1, inclusive=True),
            ]
        table, scores = self.table, self.scores
        at = np.flatnonzero(table.unit_id == s.unit_id)
        if not len(at) or not scores[at[0]] >= self.band.keep:
            self.settled = True
            return []  # gone from the catalogue, or below the band: no moment grows here
        pos = int(at[0])
        _, joins = _joins(scores, table.cut_before, self.band)
        breaks = np.flatnonzero(~joins[1 : pos + 1])
        lo = int(breaks[-1]) + 1 if len(breaks) else 0
        breaks = np.flatnonzero(~joins[pos + 1 :])
        hi = pos + int(breaks[0]) if len(breaks) else len(table) - 1
        wanted = []
        if lo == 0 and not self.at_start and self.first is not None:
            wanted.append(Read(s.asset_id, *self.first, after=False, count=max(BLOCK, self.read_before)))
        if hi == len(table) - 1 and not self.at_end and self.last is not None:
            wanted.append(Read(s.asset_id, *self.last, after=True, count=max(BLOCK, self.read_after)))
        if not wanted:
            self.settle(table, scores, lo, hi)
        return wanted

    def add(self, read: Read, rows: Rows) -> None:
        """Take the rows a read returned: before or after what is held, in time order."""
        held = self.table if self.table is not None else rows.table.take(np.zeros(len(rows.table), bool))
        if read.after:
            self.table, self.scores = _concat(held, rows.table), np.concatenate([self.scores, rows.scores])
            self.last, self.at_end = rows.edge or self.last, rows.complete
            self.read_after += read.count
            if self.first is None:  # the seed's own row was read: the side before starts there
                self.first = (read.t_start, read.unit_id)
        else:
            self.table, self.scores = _concat(rows.table, held), np.concatenate([rows.scores, self.scores])
            self.first, self.at_start = rows.edge or self.first, rows.complete
            self.read_before += read.count
            if self.last is None:
                self.last = (read.t_start, read.unit_id)


def settle_runs(
    runs: Sequence[Run], table: SegmentTable, scores: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> None:
    """Settle each of ``runs`` as segments ``lo[j]..hi[j]`` (inclusive; (n,) each) of ``table``
    (time order) and ``scores``: its moment, span and members. A page settles ~20 runs at once,
    reading each field for all of them in one step (per run, numpy's per-call overhead was most of
    the cost)."""
    if not len(runs):
        return
    lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
    best = np.array(
        [
            first + int(np.argmax(scores[first : last + 1]))
            for first, last in zip(lo.tolist(), hi.tolist(), strict=True)
        ],
        np.int64,
    )  # first of equals: the earliest
    fields = zip(
        runs,
        lo.tolist(),
        hi.tolist(),
        table.t_start[lo].tolist(),
        table.t_end[hi].tolist(),
        table.t_start[hi].tolist(),
        table.t_best[best].tolist(),
        np.asarray(scores, np.float64)[best].tolist(),
        table.unit_id[best].tolist(),
        table.unit_id[lo].tolist(),
        table.unit_id[hi].tolist(),
        strict=True,
    )
    for run, first, last, start, end, last_start, best_time, score, unit_id, first_id, last_id in fields:
        s = run.seed
        run.moment = Moment(s.asset_id, start, end, best_time, score, unit_id)
        run.span = ((start, first_id), (last_start, last_id))
        run.members = table.unit_id[first : last + 1]
        run.settled = True


def _concat(a: SegmentTable, b: SegmentTable) -> SegmentTable:
    return SegmentTable(
        *(
            np.concatenate([getattr(a, f), getattr(b, f)])
            for f in ("unit_id", "t_start", "t_end", "t_best", "cut_before")
        )
    )


def runs_in_windows(
    bounds: np.ndarray,
    seed: np.ndarray,
    scores: np.ndarray,
    cut_before: np.ndarray,
    keep: np.ndarray,
    high: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The run around each seed, for many windows at once (what :meth:`Run.reads` finds in one).

    Window j is the flat rows ``bounds[j]:bounds[j + 1]`` (n + 1,) of consecutive segments of one
    video in time order, with ``scores`` and ``cut_before`` (m,); its seed is flat row
    ``seed[j]`` (-1: none) and its band ``keep[j]``, ``high[j]`` (:class:`Band`). Returns (lo,
    hi), each (n,) int64: the first and last flat row of the run of segments in band that holds
    the seed, -1 where the seed is missing or below its band. A run ending at its window's edge
    may go on past it (the caller reads further)."""
    n = len(seed)
    window = np.repeat(np.arange(n), np.diff(bounds))
    kept = scores >= keep[window]
    both_high = scores >= high[window]
    joins = np.zeros(len(scores), bool)
    joins[1:] = (
        kept[1:]
        & kept[:-1]
        & ~(cut_before[1:] & ~(both_high[:-1] & both_high[1:]))
        & (window[1:] == window[:-1])
    )
    starts = np.flatnonzero(~joins)  # every window's first row starts a run
    at = seed.clip(0)
    ok = (seed >= 0) & (kept[at] if len(scores) else False)
    k = starts.searchsorted(at, "right")
    lo = starts[(k - 1).clip(0)] if len(starts) else np.zeros(n, np.int64)
    hi = np.append(starts, len(scores))[k.clip(0, len(starts))] - 1
    return np.where(ok, lo, -1), np.where(ok, hi, -1)


def grow_by_reads(runs: list[Run], read: Reader) -> None:
    """Grow every run until it is settled, all runs' reads batched into one call per round."""
    pending = [(run, r) for run in runs for r in run.reads()]
    while pending:
        answers = read([r for _, r in pending])
        if len(answers) != len(pending):
            raise ValueError(f"the reader answered {len(answers)} of {len(pending)} reads")
        for (run, r), rows in zip(pending, answers, strict=True):
            run.add(r, rows)
        grown = {id(run): run for run, _ in pending}
        pending = [(run, r) for run in grown.values() for r in run.reads()]


def hits_to_read(
    video: np.ndarray, shot: np.ndarray, need: int, per_video: int, taken: Mapping[int, int] | None = None
) -> int:
    """How many of a ranking's next hits (best first) to read for ``need`` more results: the
    shortest prefix that reaches ``need`` places a result can come from, or all of them.

    A place is a shot of a video (``video``, ``shot``: (n,) int64 as the shards list them, see
    ``VectorStore.segments_of_ids``), at most ``per_video`` a video less the moments ``taken`` already
    holds for it (video id -> moments), or a hit outside any listed shot (-1: an image, or a
    segment of a shard that lists none), each its own. Hits of one shot mostly fall in one
    moment: a query that matches a scene returns most of its seconds, so counting hits instead
    would read a scene's seconds from the catalogue only for :func:`fit_hits` to skip them as
    covered. Only how much is read depends on this; which results come does not (more are read
    while the page is not full)."""
    if need <= 0:
        return 0
    taken = taken or {}
    places = 0
    shots: set[int] = set()
    per: dict[int, int] = {}
    for i, (v, s) in enumerate(zip(video.tolist(), shot.tolist(), strict=True)):
        if s < 0:
            places += 1
        elif s not in shots:
            shots.add(s)
            held = per.get(v, taken.get(v, 0))
            if held < per_video:
                per[v] = held + 1
                places += 1
        if places >= need:
            return i + 1
    return len(video)


def fit_hits(
    hits: Sequence[Seed],
    *,
    want: int,
    per_video: int,
    bands: Mapping[int, Band],
    read: Reader,
    grown: dict[int, Run] | None = None,
    grow: Callable[[list[Run]], None] | None = None,
) -> list[tuple[Seed, Moment | None]]:
    """The first ``want`` results of a page, best first, from ``hits`` in the index's score order:
    images as they are (``None``), and for video segments the moment each one grows into
    (:class:`Run`), skipping a hit that falls in a moment already taken, that is below its
    video's band, or whose video already has ``per_video`` moments.

    The moments are those :func:`fit_table` finds with the same band, read around the hits only
    (see the comment above :class:`Seed`). Reads are batched: a wave grows as many hits as the
    page still needs, one per video, all at once; the next wave fills the room left by hits that
    fell in a moment already taken. ``bands`` maps each video among the hits to its band; ``grown``
    keeps runs across calls (the engine calls again with more hits when the page is not full);
    ``grow``, when given, settles a wave's runs instead of reading through ``read`` (the engine's
    reads many windows at once from the shards, :func:`runs_in_windows`).
    Raises ValueError for a ``per_video`` below 1.
    """
    if per_video < 1:
        raise ValueError(f"per_video must be at least 1, got {per_video!r}")
    grown = {} if grown is None else grown
    taken: list[tuple[Seed, Moment | None]] = []
    items: set[int] = set()
    spans: dict[int, list[tuple[tuple[float, int], tuple[float, int]]]] = defaultdict(list)

    def covered(seed: Seed) -> bool:
        key = (seed.t_start, seed.unit_id)
        return len(spans[seed.asset_id]) >= per_video or any(a <= key <= b for a, b in spans[seed.asset_id])

    def full() -> bool:  # the page holds `want` results, and no hit left can beat the last one
        if len(taken) < want:
            return False
        last = sorted((s.score for s, _ in taken), reverse=True)[want - 1]
        return not pending or hits[pending[0]].score < last

    pending = list(range(len(hits)))  # hits not yet decided, in score order
    while pending and not full():
        wave: list[Run] = []
        in_wave: set[int] = set()
        later: list[int] = []
        for at in pending:
            seed = hits[at]
            if len(wave) >= max(1, want - len(taken)) or seed.asset_id in in_wave:
                # One hit per video a wave: hits of one video often fall in one moment, which
                # the next wave then skips instead of reading it again.
                later.append(at)
            elif not seed.video:
                if seed.asset_id not in items:
                    items.add(seed.asset_id)
                    taken.append((seed, None))
            elif not covered(seed) and seed.score >= bands[seed.asset_id].keep:
                run = grown.get(seed.unit_id)
                if run is None or run.band != bands[seed.asset_id]:
                    run = grown[seed.unit_id] = Run(seed, bands[seed.asset_id])
                wave.append(run)
                in_wave.add(seed.asset_id)
        pending = later
        unsettled = [run for run in wave if not run.settled]
        if unsettled:
            (grow or (lambda runs: grow_by_reads(runs, read)))(unsettled)
        for run in wave:
            if run.moment is not None and run.span is not None and not covered(run.seed):
                spans[run.seed.asset_id].append(run.span)
                taken.append((run.seed, run.moment))
    taken.sort(key=lambda t: -t[0].score if t[1] is None else -t[1].score)
    return taken[:want]


def sequences(steps: Sequence[Sequence[Moment]], within: float) -> list[SequenceMatch]:
    """Chains of moments, one per step, in one video, each starting after the previous one ended
    and at most ``within`` seconds later (moments of consecutive scenes touch: 0 s apart). For
    each moment of the first step, the best chain that follows it; best chains first."""
    if not (within >= 0 and math.isfinite(within)):
        raise ValueError(f"within must be a finite number of seconds >= 0, got {within!r}")
    if not steps:
        return []
    chains = [SequenceMatch((m,)) for m in steps[0]]
    for candidates in steps[1:]:
        extended = []
        for chain in chains:
            last = chain.steps[-1]
            followers = [
                m
                for m in candidates
                if m.asset_id == last.asset_id and last.end - 1e-6 <= m.start <= last.end + within
            ]
            if followers:
                best = max(followers, key=lambda m: (m.score, -m.start))
                extended.append(SequenceMatch((*chain.steps, best)))
        chains = extended
    chains.sort(key=lambda c: (-c.score, c.start))
    return chains


def format_timestamp(seconds: float) -> str:
    """``HH:MM:SS`` for a time in seconds, rounded down (the frame shown is at or after it):
    723.9 -> ``"00:12:03"``; hours keep counting past 99."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a timestamp needs a finite number of seconds >= 0, got {seconds!r}")
    whole = math.floor(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def format_span(start: float, end: float) -> str:
    """A time range that is never empty: ``00:00:00.0–00:00:01.0`` below a minute's length,
    ``HH:MM:SS–HH:MM:SS`` (end rounded up) above: 0.0-0.96 s is not "00:00:00-00:00:00"."""
    if end - start < 60:
        return f"{_tenths(start)}–{_tenths(max(end, start + 0.1), up=True)}"
    return f"{format_timestamp(start)}–{format_timestamp(math.ceil(end))}"


def format_instant(seconds: float) -> str:
    """A time to the tenth of a second, rounded down: 5.04 -> ``"00:00:05.0"`` (where a moment's
    best frame is); ValueError as :func:`format_timestamp`."""
    format_timestamp(seconds)  # the same checks
    return _tenths(seconds)


def _tenths(seconds: float, up: bool = False) -> str:
    tenths = math.ceil(seconds * 10 - 1e-9) if up else math.floor(seconds * 10 + 1e-9)
    whole, tenth = divmod(tenths, 10)
    return f"{format_timestamp(whole)}.{tenth}"
