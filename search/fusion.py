"""Reciprocal rank fusion: several rankings of the same things into one, by rank alone.

Scores from different rankers (a cosine, BM25, ``ts_rank_cd``) live on different scales, so they are
never mixed; each ranking contributes ``1 / (k + rank)`` for every key it ranks (Cormack, Clarke and
Büttcher, SIGIR 2009; k = 60 as there).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

RRF_K = 60


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[K]], k: int = RRF_K) -> list[tuple[K, float]]:
    """Fuse named rankings (each best first, keys unique within a ranking) into (key, fused score)
    pairs, best first; ties keep the order in which keys were first seen (the first ranking's
    order first). A key missing from a ranking gets nothing from it. Raises ValueError for k < 0."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    fused: dict[K, float] = {}
    for ranking in rankings.values():
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    order = {key: i for i, key in enumerate(fused)}
    return sorted(fused.items(), key=lambda kv: (-kv[1], order[kv[0]]))
