"""Query-fitted moments over a video's scored segments, sequences, and time formatting."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from glimpse.search.moments import (
    Segment,
    fit_moments,
    format_instant,
    format_span,
    format_timestamp,
    sequences,
)


def video(scores: list[float], cuts: tuple[int, ...] = (), seconds: float = 1.0) -> list[Segment]:
    """One segment per score, ``seconds`` long each, tiling the video; ``cuts``: indices after a cut."""
    return [
        Segment(100 + i, i * seconds, (i + 1) * seconds, i * seconds + seconds / 2, s, i in cuts)
        for i, s in enumerate(scores)
    ]


def spans(moments) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    return [(m.start, m.end) for m in moments]


def test_a_scene_that_matches_throughout_is_one_moment_even_if_its_best_hits_are_apart() -> None:
    # The blue square from 10 s to 20 s; its halves peak at both ends (the greedy merge of hits
    # in score order returned two moments, 17-20 s and 10-17 s, for this).
    scores = [0.20] * 10 + [0.56, 0.55, 0.55, 0.54, 0.55, 0.55, 0.55, 0.56, 0.565, 0.56] + [0.22] * 10
    (moment,) = fit_moments("v", video(scores, cuts=(10, 20)))
    assert (moment.start, moment.end) == (10.0, 20.0)
    assert moment.score == 0.565 and moment.best_time == 18.5 and moment.unit_id == 118


def test_a_cut_is_a_boundary_unless_the_query_keeps_matching_on_both_sides() -> None:
    # Scenes of similar scores on both sides of a cut: one subject from two angles stays one moment.
    same_subject = [0.1] * 5 + [0.50, 0.52, 0.51, 0.50, 0.51, 0.52] + [0.1] * 5
    assert spans(fit_moments("v", video(same_subject, cuts=(5, 8, 11)))) == [(5.0, 11.0)]
    # A cut to something merely similar (in the band, not near the peak) ends the moment.
    similar_next = [0.1] * 5 + [0.50, 0.52, 0.51, 0.38, 0.37, 0.38] + [0.1] * 5
    moments = fit_moments("v", video(similar_next, cuts=(5, 8, 11)))
    assert spans(moments) == [(5.0, 8.0), (8.0, 11.0)]
    # Without the cut the weaker stretch stays out of the band... or in it, but then joined.
    assert spans(fit_moments("v", video(similar_next, cuts=(5, 11)))) == [(5.0, 11.0)]


def test_unrelated_scenes_do_not_merge_across_cuts_when_scores_barely_differ() -> None:
    # A random model scores three different scenes alike; cuts keep them apart.
    scores = [0.301, 0.302, 0.300, 0.299, 0.296, 0.297, 0.298, 0.297, 0.300, 0.302, 0.301, 0.299]
    moments = fit_moments("v", video(scores, cuts=(4, 8)), per_video=5)
    assert all(not (m.start < 4.0 < m.end) and not (m.start < 8.0 < m.end) for m in moments)


def test_a_video_that_scores_the_same_everywhere_is_one_moment() -> None:
    (moment,) = fit_moments("v", video([0.4] * 6))
    assert (moment.start, moment.end) == (0.0, 6.0)


def test_nothing_below_the_floor_counts_so_an_absent_subject_gives_no_moment() -> None:
    scores = [0.10, 0.12, 0.30, 0.31, 0.11]
    assert fit_moments("v", video(scores), floor=0.35) == []
    assert spans(fit_moments("v", video(scores), floor=0.305)) == [(3.0, 4.0)]


def test_moments_come_best_first_at_most_per_video() -> None:
    scores = [0.5, 0.1, 0.6, 0.1, 0.55, 0.1, 0.58]
    moments = fit_moments("v", video(scores), per_video=2)
    assert [m.score for m in moments] == [0.6, 0.58]


def test_an_empty_video_has_no_moments_and_bad_input_is_refused() -> None:
    assert fit_moments("v", []) == []
    with pytest.raises(ValueError, match="per_video"):
        fit_moments("v", video([0.5]), per_video=0)
    with pytest.raises(ValueError, match="time order"):
        fit_moments("v", list(reversed(video([0.5, 0.4]))))
    with pytest.raises(ValueError, match="finite"):
        fit_moments("v", [Segment(1, 0.0, 1.0, 0.5, math.nan)])
    with pytest.raises(ValueError, match="t_best"):
        fit_moments("v", [Segment(1, 0.0, 1.0, 2.0, 0.5)])


def test_a_sequence_pairs_a_moment_with_one_that_follows_it_within_the_gap() -> None:
    red = fit_moments("v", video([0.6] * 10 + [0.1] * 20, cuts=(10, 20)))  # 0-10 s
    blue = fit_moments("v", video([0.1] * 10 + [0.6] * 10 + [0.1] * 10, cuts=(10, 20)))  # 10-20 s
    (chain,) = sequences([red, blue], within=5.0)
    assert [(m.start, m.end) for m in chain.steps] == [(0.0, 10.0), (10.0, 20.0)]
    assert (chain.start, chain.end, chain.score) == (0.0, 20.0, 0.6)
    assert sequences([blue, red], within=5.0) == []  # the reversed order does not happen


def test_a_sequence_respects_the_gap_and_the_video() -> None:
    first = fit_moments("v", video([0.6] * 2 + [0.1] * 18))  # 0-2 s
    later = fit_moments("v", video([0.1] * 12 + [0.6] * 2 + [0.1] * 6))  # 12-14 s
    assert sequences([first, later], within=5.0) == []
    assert len(sequences([first, later], within=10.0)) == 1
    elsewhere = fit_moments("w", video([0.1] * 2 + [0.6] * 2 + [0.1] * 6))
    assert sequences([first, elsewhere], within=60.0) == []
    with pytest.raises(ValueError, match="within"):
        sequences([first, later], within=-1.0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "00:00:00"), (59.99, "00:00:59"), (723.9, "00:12:03"), (3600, "01:00:00"), (360000, "100:00:00")],
)
def test_format_timestamp_gives_hours_minutes_seconds(seconds: float, text: str) -> None:
    assert format_timestamp(seconds) == text


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
@pytest.mark.parametrize("fmt", [format_timestamp, format_instant])
def test_a_displayed_time_refuses_impossible_times(fmt: Callable[[float], str], bad: float) -> None:
    with pytest.raises(ValueError):
        fmt(bad)


@pytest.mark.parametrize(
    ("start", "end", "text"),
    [
        (0.0, 0.96, "00:00:00.0–00:00:01.0"),
        (0.0, 0.0, "00:00:00.0–00:00:00.1"),
        (10.0, 20.0, "00:00:10.0–00:00:20.0"),
        (61.25, 65.31, "00:01:01.2–00:01:05.4"),
        (720.0, 1723.2, "00:12:00–00:28:44"),
    ],
)
def test_a_displayed_time_range_is_never_empty(start: float, end: float, text: str) -> None:
    assert format_span(start, end) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(5.04, "00:00:05.0"), (0.0, "00:00:00.0"), (3725.96, "01:02:05.9")]
)
def test_a_best_time_is_shown_to_the_tenth_rounded_down(seconds: float, text: str) -> None:
    assert format_instant(seconds) == text


def test_the_cli_table_shows_where_a_moment_is_best(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    from glimpse.cli import _print_results
    from glimpse.core.settings import Settings

    row = {
        "id": 3, "unit_id": 9, "kind": "video", "path": "dock.mp4", "score": 0.3, "title": None,
        "start": 3.0, "end": 7.0, "best_time": 5.0, "matched": {},
    }  # fmt: skip
    _print_results([row], Settings(data_dir=tmp_path), as_json=False)
    assert "dock.mp4 @ 00:00:03.0–00:00:07.0, best 00:00:05.0" in capsys.readouterr().out
