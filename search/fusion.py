"""Reciprocal rank fusion: one ranking from several, by rank alone.

Scores from different rankings live on different scales (a cosine, a BM25 sum, a ts_rank), so they
are not mixed; each ranking contributes ``1 / (k + rank)`` for every item it holds (rank from 1),
and the items are ordered by the sum: Cormack, Clarke and Büttcher, "Reciprocal rank fusion
outperforms Condorcet and individual rank learning methods", SIGIR 2009, with their ``k = 60``.
An item found near the top of two rankings beats one found at the top of only one. Any number of
named rankings fuse the same way (vector, keyword, and later OCR text).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

RRF_K = 60
"""The constant of Cormack et al. (2009): it damps the weight of the very first ranks."""


@dataclass
class Fused:
    """One item of the fused ranking: its fused score and its rank (from 1) in each ranking."""

    key: Hashable
    score: float
    ranks: dict[str, int] = field(default_factory=dict)


def rrf(rankings: Mapping[str, Sequence[Hashable]], k: int = RRF_K) -> list[Fused]:
    """The fused ranking of ``rankings`` (name -> keys, best first; a key at most once in each),
    best first. Ties go to the item with the better single rank, then to the one seen first
    (rankings in the given order), so the order is fully determined by the inputs.

    Raises ValueError for ``k < 0`` or a key repeated within one ranking."""
    if k < 0:
        raise ValueError(f"k must be at least 0, got {k}")
    fused: dict[Hashable, Fused] = {}
    for name, keys in rankings.items():
        if len(set(keys)) != len(keys):
            raise ValueError(f"ranking {name!r} holds a key more than once")
        for rank, key in enumerate(keys, 1):
            item = fused.setdefault(key, Fused(key, 0.0))
            item.score += 1.0 / (k + rank)
            item.ranks[name] = rank
    order = {key: i for i, key in enumerate(fused)}
    return sorted(fused.values(), key=lambda f: (-f.score, min(f.ranks.values()), order[f.key]))
