"""Length, EOS share and loop detection against hand-checked cases and a slow reference."""

import itertools
import random

import pytest

from llm_irl.metrics.shape import eos_share, has_loop, loop_share, mean_length


def slow_has_loop(tokens, max_n, min_repeats):
    """Reference: every start, every n, compare the repeated block as a whole slice."""
    for n, i in itertools.product(range(1, max_n + 1), range(len(tokens))):
        if tokens[i : i + n * min_repeats] == tokens[i : i + n] * min_repeats and i + n * min_repeats <= len(tokens):
            return True
    return False


def test_hand_checked_loops():
    assert has_loop("mipi mipi mipi".split())
    assert has_loop("a b c a b c a b c d".split())
    assert not has_loop("mipi mipi rune mipi".split())
    assert not has_loop("a b a b".split())  # two repeats are not a loop at min_repeats=3
    assert has_loop("a b a b".split(), min_repeats=2)
    assert not has_loop("a b c d e a b c d e a b c d e".split(), max_n=4)  # a 5-gram loop is beyond max_n


def test_matches_slow_reference_on_random_sequences():
    rng = random.Random(0)
    for _ in range(500):
        tokens = [rng.randrange(3) for _ in range(rng.randrange(0, 14))]
        for max_n, reps in ((1, 3), (2, 2), (4, 3)):
            assert has_loop(tokens, max_n, reps) == slow_has_loop(tokens, max_n, reps), (tokens, max_n, reps)


def test_shares_and_lengths():
    samples = [[1, 1, 1], [1, 2], [3]]
    assert loop_share(samples) == pytest.approx(1 / 3)
    assert mean_length(samples) == pytest.approx(2.0)
    assert eos_share([True, False, True, True]) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        loop_share([])
