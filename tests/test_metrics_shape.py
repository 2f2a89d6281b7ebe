"""Length, EOS share and loop detection against hand-checked cases and a slow reference."""

import itertools
import math
import random

import pytest

from llm_irl.metrics.shape import eos_share, has_loop, length_standardised, loop_share, mean_length


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


def test_length_standardised_matches_a_slow_reference():


    def slow(lengths, sums, reference, num_bins):
        ordered = sorted(reference)
        cuts = []
        for j in range(1, num_bins):  # numpy's default (linear) quantile, by hand
            pos = j / num_bins * (len(ordered) - 1)
            lo = int(math.floor(pos))
            cut = ordered[lo] + (pos - lo) * (ordered[min(lo + 1, len(ordered) - 1)] - ordered[lo])
            if cut not in cuts:
                cuts.append(cut)

        def bin_of(n):
            return sum(n >= c for c in cuts)

        total = 0.0
        for b in sorted({bin_of(n) for n in reference}):
            share = sum(bin_of(n) == b for n in reference) / len(reference)
            members = [i for i, n in enumerate(lengths) if bin_of(n) == b]
            if not members:
                return float("nan")
            total += share * sum(sums[i] for i in members) / sum(lengths[i] for i in members)
        return total

    rng = random.Random(0)
    for _ in range(200):
        reference = [rng.randint(1, 12) for _ in range(rng.randint(1, 30))]
        lengths = [rng.randint(1, 14) for _ in range(rng.randint(1, 40))]
        sums = [-rng.random() * n for n in lengths]
        bins = rng.randint(1, 5)
        got, want = length_standardised(lengths, sums, reference, bins), slow(lengths, sums, reference, bins)
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)


def test_length_standardised_removes_a_pure_length_effect():
    """Per-token quality that depends on length only: writing shorter must not look better once standardised."""


    def quality(n):  # higher per token for short samples, as the grammar expert's own are
        return -1.0 - 0.02 * n

    reference = list(range(2, 30))
    short, long = list(range(2, 30)) * 3 + [2, 3, 4] * 40, list(range(2, 30)) * 3 + [27, 28, 29] * 40
    raw = {name: sum(quality(n) * n for n in ls) / sum(ls) for name, ls in (("short", short), ("long", long))}
    assert raw["short"] > raw["long"] + 0.05  # unstandardised, the short writer looks better
    std = {name: length_standardised(ls, [quality(n) * n for n in ls], reference, num_bins=28)
           for name, ls in (("short", short), ("long", long))}
    assert std["short"] == pytest.approx(std["long"])
    assert math.isnan(length_standardised([2, 3], [-2.0, -3.0], reference, num_bins=4))  # long bins empty


def test_expert_loglik_std_counts_words_and_eos_on_both_sides():
    """The evaluation standardises samples, as the expert scores them (words + EOS), to the expert's own
    lengths: drawn with the reference seed, the expert's samples are the reference, length for length."""
    import numpy as np

    from llm_irl.evaluate import REFERENCE_SEED, expert_lengths, text_metrics
    from llm_irl.eval_task import eval_config, load_task

    config = eval_config({"eval_dataset": "builtin:markov", "num_prompts": 60, "k": 8})
    task = load_task(config)
    reference = expert_lengths(task, config)
    rng = np.random.default_rng(REFERENCE_SEED)
    groups = [[task.expert.sample_completion(p, rng) for _ in range(config.k)] for p in task.prompts]
    scores = [task.expert.score(p, t) for p, g in zip(task.prompts, groups) for t in g]
    assert [s.num_tokens for s in scores] == reference
    figures = text_metrics(groups, task, config, vocab_size=100, reference_lengths=reference)
    want = length_standardised([s.num_tokens for s in scores], [s.logprob for s in scores], reference)
    assert figures["expert_loglik_std"]["value"] == pytest.approx(want)
