"""Spearman's rank correlation and its average ranks, against hand-computed values."""

from __future__ import annotations

import math

import pytest

from llm_irl.metrics.stats import average_ranks, spearman


def test_average_ranks_share_ties():
    assert average_ranks([10, 20, 20, 20, 5]).tolist() == [2, 4, 4, 4, 1]


def test_spearman_by_hand():
    # x ranks [1, 2.5, 2.5, 4], y ranks [3, 1, 2, 4]; centred: dx = [-1.5, 0, 0, 1.5], dy = [.5, -1.5, -.5, 1.5]
    # Σdx·dy = 1.5, Σdx² = 4.5, Σdy² = 5  ->  ρ = 1.5 / sqrt(22.5) = 1 / sqrt(10)
    assert spearman([1, 2, 2, 4], [3, 1, 2, 5]) == pytest.approx(1 / math.sqrt(10))
    assert spearman([1, 2, 3], [10, 100, 1000]) == pytest.approx(1.0)  # any monotone map
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="paired"):
        spearman([1, 2], [1])
