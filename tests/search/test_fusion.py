"""Reciprocal rank fusion: rank alone decides, every ranking counts, ties keep the first order."""

import pytest

from glimpse.search.fusion import reciprocal_rank_fusion


def test_a_key_ranked_by_both_rankings_beats_keys_ranked_by_one():
    fused = reciprocal_rank_fusion({"vector": ["a", "b", "c"], "ocr": ["c"]})
    assert [key for key, _ in fused] == ["c", "a", "b"]
    assert fused[0][1] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[1][1] == pytest.approx(1 / 61)


def test_equal_fused_scores_keep_the_first_rankings_order_and_keys_only_one_ranking_knows_count():
    fused = reciprocal_rank_fusion({"vector": ["a", "b"], "ocr": ["x", "y"]})
    assert [key for key, _ in fused] == ["a", "x", "b", "y"]
    assert reciprocal_rank_fusion({}) == []
    with pytest.raises(ValueError, match="k must be"):
        reciprocal_rank_fusion({"v": ["a"]}, k=-1)
