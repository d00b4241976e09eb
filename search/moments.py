"""Moments: where in a video the query keeps matching, with boundaries fitted to the query.

An analyst asking for "a blue square" in a video that shows one from 10 s to 20 s wants one moment,
10-20 s: not two halves of the scene, and not the whole video. So a moment is not grown from the
few hits an index search happened to return. For each video among the top hits, *every* segment
of the video is scored against the query (the vectors are stored; a video has at most a few
thousand segments), and a moment is a maximal run of consecutive segments whose score stays near
the video's peak for this query:

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
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

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
        return SegmentTable(
            self.unit_id[keep], self.t_start[keep], self.t_end[keep], self.t_best[keep], self.cut_before[keep]
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
    typical = float(np.median(scores)) if typical is None else min(typical, peak)
    spread = peak - typical
    if spread < FLAT_SPREAD:
        keep = np.ones(len(scores), dtype=bool)
        high = keep
    else:
        keep = scores >= peak - BAND * spread
        high = scores >= peak - CUT_BAND * spread
    if floor is not None:
        keep &= scores >= floor
    # Segment i continues the run of i-1 when both are kept, unless a cut lies between them and
    # the scores do not stay high on both sides.
    joins = np.zeros(len(scores), dtype=bool)
    joins[1:] = keep[1:] & keep[:-1] & ~(table.cut_before[1:] & ~(high[:-1] & high[1:]))
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


def _tenths(seconds: float, up: bool = False) -> str:
    tenths = math.ceil(seconds * 10 - 1e-9) if up else math.floor(seconds * 10 + 1e-9)
    whole, tenth = divmod(tenths, 10)
    return f"{format_timestamp(whole)}.{tenth}"
