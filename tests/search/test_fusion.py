"""Reciprocal rank fusion: rank alone decides, every ranking counts, ties are fully determined."""

import pytest

from glimpse.search.fusion import rrf


def test_a_key_ranked_by_both_rankings_beats_keys_ranked_by_one():
    fused = rrf({"vector": ["a", "b", "c"], "ocr": ["c"]})
    assert [f.key for f in fused] == ["c", "a", "b"]
    assert fused[0].score == pytest.approx(1 / 63 + 1 / 61)
    assert fused[0].ranks == {"vector": 3, "ocr": 1}
    assert fused[1].score == pytest.approx(1 / 61)


def test_equal_fused_scores_keep_the_first_rankings_order_and_keys_only_one_ranking_knows_count():
    fused = rrf({"vector": ["a", "b"], "ocr": ["x", "y"]})
    assert [f.key for f in fused] == ["a", "x", "b", "y"]
    assert rrf({}) == []
    with pytest.raises(ValueError, match="k must be"):
        rrf({"v": ["a"]}, k=-1)
    with pytest.raises(ValueError, match="more than once"):
        rrf({"v": ["a", "a"]})
