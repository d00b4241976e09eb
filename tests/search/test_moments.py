"""Merging video hits into moments, and formatting timestamps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from glimpse.search.moments import Moment, format_timestamp, merge_moments


@dataclass(frozen=True)
class Hit:
    unit_id: int
    asset_id: int
    t_start: float
    t_end: float
    t_best: float
    score: float


def hit(
    unit_id: int, asset_id: int, start: float, end: float, score: float, best: float | None = None
) -> Hit:
    return Hit(unit_id, asset_id, start, end, start if best is None else best, score)


def test_adjacent_and_overlapping_hits_of_one_video_merge_into_one_moment() -> None:
    hits = [
        hit(1, 7, 10.0, 12.0, 0.30),
        hit(2, 7, 12.0, 15.0, 0.50, best=13.5),  # touches the first
        hit(3, 7, 14.0, 18.0, 0.40),  # overlaps the second
    ]
    (moment,) = merge_moments(hits, gap=0.0, per_video=3)
    assert (moment.asset_id, moment.start, moment.end) == (7, 10.0, 18.0)
    assert moment.score == 0.50 and moment.best_time == 13.5
    assert moment.unit_id == 2
    assert [h.unit_id for h in moment.hits] == [1, 2, 3]


def test_hits_further_apart_than_the_gap_stay_separate_moments() -> None:
    hits = [hit(1, 7, 0.0, 1.0, 0.9), hit(2, 7, 2.5, 3.0, 0.8)]
    assert len(merge_moments(hits, gap=1.0, per_video=5)) == 2
    assert len(merge_moments(hits, gap=1.5, per_video=5)) == 1


def test_single_frame_hits_within_the_gap_merge() -> None:
    hits = [hit(i, 3, t, t, 0.5 + i / 100) for i, t in enumerate([4.0, 5.0, 6.0, 20.0])]
    moments = merge_moments(hits, gap=1.0, per_video=5)
    spans = sorted((m.start, m.end) for m in moments)
    assert spans == [(4.0, 6.0), (20.0, 20.0)]


def test_hits_of_different_videos_never_merge() -> None:
    hits = [hit(1, 1, 0.0, 5.0, 0.7), hit(2, 2, 0.0, 5.0, 0.6)]
    moments = merge_moments(hits, gap=10.0, per_video=3)
    assert [(m.asset_id, m.score) for m in moments] == [(1, 0.7), (2, 0.6)]


def test_each_video_returns_at_most_per_video_moments_its_best_ones() -> None:
    hits = [hit(i, 9, i * 100.0, i * 100.0 + 1, score) for i, score in enumerate([0.2, 0.9, 0.5, 0.7, 0.1])]
    hits.append(hit(99, 4, 0.0, 1.0, 0.3))
    moments = merge_moments(hits, gap=1.0, per_video=2)
    assert [(m.asset_id, m.score) for m in moments] == [(9, 0.9), (9, 0.7), (4, 0.3)]


def test_moments_come_best_first_and_equal_scores_keep_time_order() -> None:
    hits = [hit(1, 5, 50.0, 51.0, 0.4), hit(2, 5, 10.0, 11.0, 0.4), hit(3, 6, 0.0, 1.0, 0.8)]
    moments = merge_moments(hits, gap=0.0, per_video=5)
    assert [(m.asset_id, m.start) for m in moments] == [(6, 0.0), (5, 10.0), (5, 50.0)]


def test_hit_order_does_not_change_the_moments() -> None:
    hits = [hit(1, 7, 0.0, 2.0, 0.3), hit(2, 7, 2.0, 4.0, 0.6), hit(3, 7, 9.0, 10.0, 0.5)]
    forward = merge_moments(hits, gap=0.0, per_video=3)
    backward = merge_moments(list(reversed(hits)), gap=0.0, per_video=3)
    assert [(m.start, m.end, m.score) for m in forward] == [(m.start, m.end, m.score) for m in backward]


def test_no_hits_give_no_moments() -> None:
    assert merge_moments([], gap=1.0, per_video=3) == []


def test_a_moment_of_hits_without_unit_ids_has_none() -> None:
    @dataclass
    class Bare:
        asset_id: str
        t_start: float
        t_end: float
        t_best: float
        score: float

    (moment,) = merge_moments([Bare("clip.mp4", 1.0, 2.0, 1.5, 0.3)])
    assert isinstance(moment, Moment) and moment.unit_id is None and moment.asset_id == "clip.mp4"


@pytest.mark.parametrize(
    "bad",
    [
        hit(1, 1, 5.0, 4.0, 0.5, best=4.5),
        hit(1, 1, 0.0, 1.0, 0.5, best=3.0),
        hit(1, 1, math.nan, 1.0, 0.5, best=0.5),
    ],
)
def test_hits_with_impossible_times_are_refused(bad: Hit) -> None:
    with pytest.raises(ValueError):
        merge_moments([bad])


@pytest.mark.parametrize("kwargs", [{"gap": -1.0}, {"gap": math.inf}, {"per_video": 0}])
def test_invalid_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        merge_moments([hit(1, 1, 0.0, 1.0, 0.5)], **kwargs)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "00:00:00"),
        (59.999, "00:00:59"),
        (60, "00:01:00"),
        (723.9, "00:12:03"),
        (3600, "01:00:00"),
        (36_000 + 61, "10:01:01"),
        (100 * 3600 + 5, "100:00:05"),
    ],
)
def test_format_timestamp_gives_hours_minutes_seconds(seconds: float, text: str) -> None:
    assert format_timestamp(seconds) == text


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_format_timestamp_refuses_impossible_times(bad: float) -> None:
    with pytest.raises(ValueError):
        format_timestamp(bad)


def test_with_a_margin_weak_neighbours_do_not_stretch_a_moment() -> None:
    # Segments tile a video; only the 3-7 s shot matches. Its neighbours were fetched too.
    hits = [
        hit(1, 9, 0.0, 3.0, 0.25),
        hit(2, 9, 3.0, 7.0, 0.70),
        hit(3, 9, 7.0, 11.0, 0.68),
        hit(4, 9, 11.0, 14.0, 0.20),
    ]
    best, *rest = merge_moments(hits, gap=0.0, per_video=3, margin=0.05)
    assert (best.start, best.end, best.score) == (3.0, 11.0, 0.70)  # the close runner-up joins
    assert sorted((m.start, m.end) for m in rest) == [(0.0, 3.0), (11.0, 14.0)]
    unbounded = merge_moments(hits, gap=0.0, per_video=3)
    assert [(m.start, m.end) for m in unbounded] == [(0.0, 14.0)]
