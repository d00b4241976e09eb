"""Moments: hits from one video that touch in time become one result (start, end, best time).

An analyst searching an archive wants "this video, 00:12:03-00:12:40", not forty hits on consecutive
segments of the same scene. Hits of one video whose time ranges overlap, touch, or lie within `gap`
seconds of each other merge; a moment scores as its best hit, starts playback at that hit's best time,
and each video contributes at most `per_video` moments (its best ones).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol


class TimedHit(Protocol):
    """What a hit needs for merging: the video it belongs to, its time range and its score."""

    asset_id: Hashable
    t_start: float
    t_end: float
    t_best: float
    score: float


@dataclass(frozen=True)
class Moment:
    """A stretch of one video. `best_hit` is the hit the score and `best_time` come from; `hits` are
    all merged hits in time order."""

    asset_id: Hashable
    start: float
    end: float
    best_time: float
    score: float
    best_hit: Any
    hits: tuple[Any, ...]

    @property
    def unit_id(self) -> Any:
        """The best hit's ``unit_id`` (None for hits that have none): whose thumbnail to show."""
        return getattr(self.best_hit, "unit_id", None)


def merge_moments(
    hits: Iterable[TimedHit], gap: float = 1.0, per_video: int = 3, margin: float | None = None
) -> list[Moment]:
    """Merge each video's hits into moments; best first, at most `per_video` per video.

    Two hits of a video merge when the later one starts no more than `gap` seconds after the moment
    built so far ends (0: only overlapping or touching ranges merge; the default of 1 s matches the
    default sampling interval, for hits that are single frames). Ties in score keep the earlier moment
    first.

    With ``margin``, a hit only extends a moment whose best score it is within ``margin`` of:
    moments grow from the best hits outwards, so a weak neighbouring segment (fetched because the
    search over-fetches) does not stretch a 3-second moment to the whole video.
    """
    if not (gap >= 0 and math.isfinite(gap)):
        raise ValueError(f"gap must be a finite number of seconds >= 0, got {gap!r}")
    if per_video < 1:
        raise ValueError(f"per_video must be at least 1, got {per_video!r}")
    by_video: dict[Hashable, list[TimedHit]] = defaultdict(list)
    for hit in hits:
        _check(hit)
        by_video[hit.asset_id].append(hit)
    moments: list[Moment] = []
    for video_hits in by_video.values():
        merged = (
            _merge_one_video(video_hits, gap) if margin is None else _grow_moments(video_hits, gap, margin)
        )
        merged.sort(key=lambda m: (-m.score, m.start))
        moments.extend(merged[:per_video])
    moments.sort(key=lambda m: -m.score)  # stable: equal scores keep their video's time order
    return moments


def _merge_one_video(hits: list[TimedHit], gap: float) -> list[Moment]:
    ordered = sorted(hits, key=lambda h: (h.t_start, h.t_end))
    groups: list[list[TimedHit]] = []
    group_end = -math.inf
    for hit in ordered:
        if groups and hit.t_start <= group_end + gap:
            groups[-1].append(hit)
            group_end = max(group_end, hit.t_end)
        else:
            groups.append([hit])
            group_end = hit.t_end
    return [_moment(group) for group in groups]


def _grow_moments(hits: list[TimedHit], gap: float, margin: float) -> list[Moment]:
    groups: list[list[TimedHit]] = []
    for hit in sorted(hits, key=lambda h: (-h.score, h.t_start)):  # best first: seeds are peaks
        for group in groups:
            start, end = min(h.t_start for h in group), max(h.t_end for h in group)
            near = hit.t_start <= end + gap and hit.t_end >= start - gap
            if near and hit.score >= group[0].score - margin:
                group.append(hit)
                break
        else:
            groups.append([hit])
    return [_moment(group) for group in groups]


def _moment(group: list[TimedHit]) -> Moment:
    best = max(group, key=lambda h: h.score)  # first of equals: the earliest
    return Moment(
        asset_id=best.asset_id,
        start=min(h.t_start for h in group),
        end=max(h.t_end for h in group),
        best_time=best.t_best,
        score=best.score,
        best_hit=best,
        hits=tuple(group),
    )


def _check(hit: TimedHit) -> None:
    times = (hit.t_start, hit.t_end, hit.t_best)
    if any(t is None or not math.isfinite(t) for t in times):
        raise ValueError(f"hit {hit!r} needs finite t_start, t_end and t_best")
    if not hit.t_start <= hit.t_best <= hit.t_end:
        raise ValueError(f"hit {hit!r} has t_best outside t_start..t_end")


def format_timestamp(seconds: float) -> str:
    """``HH:MM:SS`` for a time in seconds, rounded down (the frame shown is at or after it):
    723.9 -> ``"00:12:03"``; hours keep counting past 99."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a timestamp needs a finite number of seconds >= 0, got {seconds!r}")
    whole = math.floor(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"
