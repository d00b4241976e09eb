"""Collapsing runs of near-identical sampled frames into segments (one vector per segment).

A static shot sampled at 1 frame/s gives dozens of frames whose embeddings are almost the same; storing
them all would fill the index with duplicates and let one shot crowd out every other result. Consecutive
frames whose embedding stays close to the segment being built become one segment.

Choices (documented because search results depend on them):

* A frame joins the current segment when its cosine similarity to the segment's normalised mean is at
  least ``threshold``. Comparing with the mean rather than with the previous frame stops a slow pan from
  chaining frame after frame into one segment whose ends look nothing alike.
* A detected shot change always starts a new segment, however similar the embeddings: a cut is a
  new moment, and a model that sees two shots as alike must not merge them into one long moment.
* The segment's vector is the normalised mean of its members: every member is within the threshold of it,
  and averaging damps the frame-to-frame noise of the encoder.
* The representative frame (``t_best``, whose thumbnail is shown) is the member closest to that mean.
* Segments tile the video: a segment ends where the next one starts, and the last one at ``end_time``
  (the video's duration) when given, else at its last frame. Adjacent segments therefore touch, which is
  what moment merging at query time relies on.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True, eq=False)
class Segment:
    """Consecutive frames ``member_indices`` (into the input) collapsed into one unit of the index."""

    t_start: float
    t_end: float
    t_best: float
    vector: np.ndarray  # float32, unit length
    member_indices: tuple[int, ...]
    shot_start: bool = False  # its first frame follows a detected cut (moments keep cuts in mind)


def collapse_segments(
    times: Sequence[float],
    vectors: np.ndarray,
    threshold: float = 0.95,
    end_time: float | None = None,
    shot_starts: Sequence[bool] | None = None,
) -> list[Segment]:
    """Group consecutive frames (`times` ascending, one row of `vectors` each) into segments.

    `threshold` is the cosine similarity a frame needs with the segment's mean to join it (1.0 keeps
    every frame apart unless identical). ``shot_starts[i]`` marks frame i as the first of a shot:
    it always opens a new segment. Raises ValueError for mismatched or unordered input.
    """
    times = [float(t) for t in times]
    if not times and np.size(vectors) == 0:
        return []
    matrix = _unit_rows(np.asarray(vectors, dtype=np.float32))
    _check(times, matrix, threshold, end_time)
    if shot_starts is not None and len(shot_starts) != len(times):
        raise ValueError(f"{len(shot_starts)} shot flags for {len(times)} frames")
    groups: list[list[int]] = []
    total = np.zeros(matrix.shape[1], np.float64)
    for index, vector in enumerate(matrix):
        new_shot = shot_starts is not None and shot_starts[index]
        if groups and not new_shot and float(_unit(total) @ vector) >= threshold:
            groups[-1].append(index)
            total += vector
        else:
            groups.append([index])
            total = vector.astype(np.float64)
    segments = [_segment(group, groups, times, matrix, end_time, i) for i, group in enumerate(groups)]
    if shot_starts is None:
        return segments
    return [replace(seg, shot_start=bool(shot_starts[seg.member_indices[0]])) for seg in segments]


def _segment(
    members: list[int],
    groups: list[list[int]],
    times: list[float],
    matrix: np.ndarray,
    end_time: float | None,
    position: int,
) -> Segment:
    mean = _unit(matrix[members].astype(np.float64).sum(axis=0)).astype(np.float32)
    best = members[int(np.argmax(matrix[members] @ mean))]
    if position + 1 < len(groups):
        t_end = times[groups[position + 1][0]]
    else:
        t_end = max(times[members[-1]], end_time) if end_time is not None else times[members[-1]]
    return Segment(times[members[0]], t_end, times[best], mean, tuple(members))


def _check(times: list[float], matrix: np.ndarray, threshold: float, end_time: float | None) -> None:
    if matrix.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array (frames x dimensions), got shape {matrix.shape}")
    if len(times) != matrix.shape[0]:
        raise ValueError(f"{len(times)} times but {matrix.shape[0]} vectors")
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    if any(later < earlier for earlier, later in itertools.pairwise(times)):
        raise ValueError("times must be in ascending order")
    if not all(np.isfinite(times)) or (end_time is not None and not np.isfinite(end_time)):
        raise ValueError("times must be finite numbers")
    if not np.isfinite(matrix).all():
        raise ValueError("vectors contain NaN or infinite values")


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    if matrix.ndim != 2:
        return matrix
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)
