"""Calibrated relevance: how far a similarity stands above the query's own score distribution.

A raw cosine is not a relevance: CLIP scores of one query bunch around a level of their own (one
text scores 0.18 on everything, another 0.30), so no fixed cutoff works across queries (Immich
issues #5996 and #11819; Frigate's docs say the same). Instead each query is scored against a
fixed background sample of the library (:meth:`~glimpse.search.snapshots.IndexHolder.background`:
up to 2,048 stored vectors drawn with a fixed seed per index version, the same sample that gives
query-fitted moments their "typical" score), and a hit's score becomes a robust z-score:

    z = (score - median) / (1.4826 * MAD)      (MAD: median absolute deviation of the sample)

Median and MAD stand for the bulk of unrelated items even when the query matches a good part of
the library (up to half of it). The z-score maps to 0..1 with a logistic curve centred on
:data:`Z_CUT`:

    relevance = 1 / (1 + exp(-(z - Z_CUT) / Z_SCALE))

so relevance 0.5 means "Z_CUT robust standard deviations above the typical item", and
``relevant_only`` keeps hits at or above 0.5 (:data:`RELEVANT`). A keyword match of every word of
the query, or an exact SKU, is relevant by itself (relevance 1.0).

Limits: the noise of a very large library reaches further into the tail (the best of a million
unrelated items stands ~4.7 standard deviations up if scores were normal), so an absent thing can
keep some "relevant" hits there; a library where most items match part of the query (all shapes,
all red) has a wide spread and a modest z for the real matches; a library of near-duplicates has a
tiny MAD (floored at :data:`MIN_SPREAD`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z_CUT = 2.0
"""Robust standard deviations above the query's typical score where relevance is 0.5. Chosen on the
generated shop (``training/synthetic.py`` ``make_shop``, glimpse-demo model): what a query names
stands 2.1-3.2 deviations up, items sharing only its colour or shape 1.3-2.0, and things the shop
does not hold ("a zebra", "a photo of a cat") at most 1.4. Measure your own with ``glimpse eval``."""

Z_SCALE = 0.5
"""Width of the logistic: relevance 0.12 at Z_CUT - 1, 0.88 at Z_CUT + 1."""

MIN_SPREAD = 1e-3
"""Floor of the robust standard deviation (cosine units), for libraries of near-identical items."""

RELEVANT = 0.5
"""``relevant_only`` keeps hits with at least this relevance."""

MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True)
class Calibration:
    """One query's score distribution over the background sample."""

    typical: float  # median score, cosine
    spread: float  # robust standard deviation, cosine

    @classmethod
    def of(cls, background_scores: np.ndarray) -> Calibration | None:
        """From the query's scores over the background sample (n,); None when it is empty."""
        scores = np.asarray(background_scores, dtype=np.float64)
        if not len(scores):
            return None
        median = float(np.median(scores))
        mad = float(np.median(np.abs(scores - median)))
        return cls(median, max(MAD_TO_SIGMA * mad, MIN_SPREAD))

    def z(self, score: float) -> float:
        return (score - self.typical) / self.spread

    def relevance(self, score: float) -> float:
        """0..1; :data:`RELEVANT` exactly at :attr:`cutoff`."""
        x = (self.z(score) - Z_CUT) / Z_SCALE
        return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0

    @property
    def cutoff(self) -> float:
        """The raw score (cosine) at relevance :data:`RELEVANT`."""
        return self.typical + Z_CUT * self.spread
