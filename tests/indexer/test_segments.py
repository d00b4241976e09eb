"""Collapsing consecutive near-identical frame embeddings into segments."""

from __future__ import annotations

import numpy as np
import pytest

from glimpse.indexer.segments import collapse_segments


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def near(base: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """`base` plus a little noise: cosine ~0.99 to it for noise 0.01 in 64 dimensions."""
    return unit(base + rng.normal(0, noise, base.shape))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_static_shots_collapse_into_one_segment_each(rng: np.random.Generator) -> None:
    shot_a, shot_b = unit(rng.normal(size=64)), unit(rng.normal(size=64))
    vectors = np.stack(
        [near(shot_a, rng, 0.01) for _ in range(5)] + [near(shot_b, rng, 0.01) for _ in range(3)]
    )
    times = [float(t) for t in range(8)]
    segments = collapse_segments(times, vectors, threshold=0.95, end_time=8.5)
    assert [s.member_indices for s in segments] == [(0, 1, 2, 3, 4), (5, 6, 7)]
    assert [(s.t_start, s.t_end) for s in segments] == [(0.0, 5.0), (5.0, 8.5)]
    assert segments[0].vector @ shot_a > 0.99 and segments[1].vector @ shot_b > 0.99


def test_a_shot_change_starts_a_new_segment_even_when_the_frames_look_alike(rng: np.random.Generator) -> None:
    look = unit(rng.normal(size=64))
    vectors = np.stack([near(look, rng, 0.01) for _ in range(6)])
    shots = [False, False, False, True, False, False]  # a cut before frame 3
    segments = collapse_segments([float(t) for t in range(6)], vectors, threshold=0.95, shot_starts=shots)
    assert [s.member_indices for s in segments] == [(0, 1, 2), (3, 4, 5)]
    assert [(s.t_start, s.t_end) for s in segments] == [(0.0, 3.0), (3.0, 5.0)]


def test_shot_flags_must_match_the_frames(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="shot flags"):
        collapse_segments([0.0, 1.0], np.stack([unit(rng.normal(size=8))] * 2), shot_starts=[True])


def test_segment_vector_is_the_normalised_mean_and_best_is_the_member_nearest_it() -> None:
    vectors = np.array([[1.0, 0.0, 0.0], [0.96, 0.28, 0.0], [0.99, 0.14, 0.0]], np.float32)
    (segment,) = collapse_segments([0.0, 1.0, 2.0], vectors, threshold=0.9)
    mean = vectors.sum(axis=0) / np.linalg.norm(vectors.sum(axis=0))
    np.testing.assert_allclose(segment.vector, mean, atol=1e-6)
    assert np.linalg.norm(segment.vector) == pytest.approx(1.0)
    assert segment.t_best == 2.0  # [0.99, 0.14] is the member closest to the mean direction
    assert segment.vector.dtype == np.float32


def test_frames_below_the_threshold_stay_apart(rng: np.random.Generator) -> None:
    vectors = np.stack([unit(rng.normal(size=64)) for _ in range(4)])  # unrelated: cosine ~0
    segments = collapse_segments([0.0, 1.0, 2.0, 3.0], vectors, threshold=0.95)
    assert [s.member_indices for s in segments] == [(0,), (1,), (2,), (3,)]
    assert [s.t_best for s in segments] == [0.0, 1.0, 2.0, 3.0]


def test_the_threshold_decides_whether_similar_frames_merge() -> None:
    angle = np.deg2rad(20)  # cosine 0.94
    vectors = np.array([[1.0, 0.0], [np.cos(angle), np.sin(angle)]])
    assert len(collapse_segments([0.0, 1.0], vectors, threshold=0.95)) == 2
    assert len(collapse_segments([0.0, 1.0], vectors, threshold=0.9)) == 1


def test_a_slow_drift_does_not_chain_into_one_segment() -> None:
    # Each frame is 5 degrees (cosine 0.996) from the previous one; after 90 degrees the last frame
    # has nothing in common with the first, so they must not share a segment.
    angles = np.deg2rad(np.arange(0, 95, 5))
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    segments = collapse_segments([float(t) for t in range(len(angles))], vectors, threshold=0.95)
    assert len(segments) > 1
    for segment in segments:
        members = vectors[list(segment.member_indices)]
        assert (members @ segment.vector).min() >= 0.95


def test_the_same_look_returning_later_is_a_new_segment(rng: np.random.Generator) -> None:
    shot_a, shot_b = unit(rng.normal(size=64)), unit(rng.normal(size=64))
    vectors = np.stack([shot_a, shot_a, shot_b, shot_a])
    segments = collapse_segments([0.0, 1.0, 2.0, 3.0], vectors)
    assert [s.member_indices for s in segments] == [(0, 1), (2,), (3,)]


def test_segments_tile_the_video_and_the_last_ends_at_its_last_frame_without_end_time() -> None:
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    segments = collapse_segments([0.0, 1.5, 3.0], vectors)
    assert [(s.t_start, s.t_end) for s in segments] == [(0.0, 3.0), (3.0, 3.0)]


def test_t_best_is_exactly_one_of_the_input_times() -> None:
    times = [0.0, 0.9333333333333333, 2.0333333333333334]
    segments = collapse_segments(times, np.ones((3, 4)), end_time=3.0)
    assert segments[0].t_best in times
    assert segments[0].member_indices == (0, 1, 2)


def test_no_frames_give_no_segments() -> None:
    assert collapse_segments([], np.zeros((0, 8))) == []


@pytest.mark.parametrize(
    ("times", "vectors", "message"),
    [
        ([0.0, 1.0], np.ones((3, 4)), "2 times but 3 vectors"),
        ([1.0, 0.0], np.ones((2, 4)), "ascending"),
        ([0.0, 1.0], np.ones(4), "2-D"),
        ([0.0, 1.0], np.array([[1.0, np.nan], [1.0, 0.0]]), "NaN"),
    ],
)
def test_malformed_input_is_refused(times: list[float], vectors: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        collapse_segments(times, vectors)


def test_threshold_outside_the_cosine_range_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        collapse_segments([0.0], np.ones((1, 2)), threshold=1.5)
