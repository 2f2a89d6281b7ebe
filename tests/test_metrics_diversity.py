"""Known-answer tests for llm_irl.metrics.diversity and llm_irl.metrics.stats."""

from __future__ import annotations

import ast
import gzip
import importlib.util
import math
import random
from pathlib import Path

import pytest

from llm_irl.metrics import (
    across_input,
    bootstrap_ci,
    compression_ratio,
    distinct_n,
    ead,
    embedding_diversity,
    equalize_counts,
    ngram_entropy,
    per_input,
    policy_entropy,
    self_bleu,
    self_bleu_naive,
)
from llm_irl.metrics.diversity import _closest_other_length


def _random_texts(rng: random.Random, n_texts: int, vocab: int, lengths: list[int]) -> list[str]:
    words = [f"w{j}" for j in range(vocab)]
    return [" ".join(rng.choice(words) for _ in range(rng.choice(lengths))) for _ in range(n_texts)]


# ----------------------------------------------------------------- distinct-n


def test_distinct_n_hand_checked():
    texts = ["a b a", "b a"]
    # unigrams a b a | b a -> 2 unique / 5 total
    assert distinct_n(texts, 1) == pytest.approx(2 / 5)
    # bigrams (a b) (b a) | (b a): never "a b" across the boundary -> 2 unique / 3 total
    assert distinct_n(texts, 2) == pytest.approx(2 / 3)
    # the only trigram is (a b a)
    assert distinct_n(texts, 3) == 1.0


def test_distinct_n_no_ngrams_is_zero():
    assert distinct_n([], 1) == 0.0
    assert distinct_n(["", "a"], 2) == 0.0


def test_distinct_n_custom_tokenizer():
    # characters as tokens: "aab" -> a a b -> 2 unique / 3
    assert distinct_n(["aab"], 1, tokenize=list) == pytest.approx(2 / 3)


def _distinct_slow(texts: list[str], n: int) -> float:
    grams = []
    for t in texts:
        toks = t.split()
        grams += [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def test_distinct_n_matches_slow_reference():
    rng = random.Random(1)
    for _ in range(30):
        texts = _random_texts(rng, rng.randint(1, 10), rng.choice([3, 10, 50]), [0, 1, 2, 5, 12])
        for n in (1, 2, 3, 4):
            assert distinct_n(texts, n) == pytest.approx(_distinct_slow(texts, n))


# ----------------------------------------------------------------- self-BLEU


def test_self_bleu_hand_checked_identical_and_disjoint():
    assert self_bleu(["a b c d", "a b c d"]) == pytest.approx(1.0)
    # no unigram overlap -> nltk returns 0 regardless of smoothing
    assert self_bleu(["a b c d", "e f g h"]) == 0.0


def test_self_bleu_hand_checked_smoothing():
    # "a b c d" vs "a b c e" (symmetric): p1 = 3/4, p2 = 2/3, p3 = 1/2,
    # p4 = 0 matches of 1 -> method1 gives 0.1/1; equal lengths -> BP = 1.
    expected = (0.75 * (2 / 3) * 0.5 * 0.1) ** 0.25  # 0.025 ** 0.25 = 0.39764
    assert self_bleu(["a b c d", "a b c e"]) == pytest.approx(expected)


def test_self_bleu_hand_checked_short_hypotheses():
    # hyp "a b c" vs {"a b", "a b"}: p1 = 2/3, p2 = 1/2, p3 = 0/1 -> 0.1, p4 (too short) = 0/1 -> 0.1;
    #   closest ref length 2 < 3 -> BP = 1; BLEU = (1/300) ** 0.25 = 0.24028
    # hyp "a b" vs {"a b c", "a b"}: p1 = 1, p2 = 1, p3 = p4 = 0.1; closest length 2 -> BP = 1;
    #   BLEU = 0.01 ** 0.25 = 0.31623 (twice)
    expected = ((1 / 300) ** 0.25 + 2 * 0.01**0.25) / 3  # 0.29091
    assert self_bleu(["a b c", "a b", "a b"]) == pytest.approx(expected)


def test_self_bleu_hand_checked_brevity_penalty():
    # hyp "a b" vs "a b c d": p = (1, 1, 0.1, 0.1), r = 4 > h = 2 -> BP = exp(1 - 4/2) = e^-1
    # hyp "a b c d" vs "a b": p = (2/4, 1/3, 0.1/2, 0.1/1), h = 4 > r = 2 -> BP = 1
    expected = (0.01**0.25 * math.exp(-1) + (0.5 / 3 * 0.05 * 0.1) ** 0.25) / 2  # 0.14312
    assert self_bleu(["a b", "a b c d"]) == pytest.approx(expected)


def test_closest_other_length_excludes_self_and_breaks_ties_short():
    assert _closest_other_length([2, 3, 4], 3) == 2  # tie 2 vs 4 -> shorter
    assert _closest_other_length([2, 3, 3, 4], 3) == 3  # another text of the same length
    assert _closest_other_length([3, 7], 3) == 7
    assert _closest_other_length([0, 3], 3) == 0
    assert _closest_other_length([1, 5, 6], 6) == 5


def test_self_bleu_needs_two_texts():
    with pytest.raises(ValueError, match="at least 2"):
        self_bleu(["a b c"])


@pytest.mark.parametrize("seed", range(6))
def test_self_bleu_matches_nltk_on_random_corpora(seed: int):
    pytest.importorskip("nltk")
    rng = random.Random(seed)
    for _ in range(25):
        texts = _random_texts(rng, rng.randint(2, 12), rng.choice([2, 4, 10, 40]), [0, 1, 2, 3, 4, 6, 10, 20])
        if rng.random() < 0.4:  # exact duplicates stress the "second highest count" path
            texts += rng.sample(texts, k=rng.randint(1, len(texts)))
        for max_n in (1, 2, 4):
            assert abs(self_bleu(texts, max_n=max_n) - self_bleu_naive(texts, max_n=max_n)) < 1e-6


def test_self_bleu_matches_nltk_on_edge_corpora():
    pytest.importorskip("nltk")
    corpora = [
        ["", "a"],
        ["", "", "a b"],
        ["a", "a"],
        ["a", "b", "a"],
        ["a a a a", "a a", "a"],
        ["a b a b a b", "a b a b", "b a"],
        ["x y z w v", "x y z w v", "x y z w v"],
    ]
    for texts in corpora:
        assert abs(self_bleu(texts) - self_bleu_naive(texts)) < 1e-6, texts


# ----------------------------------------------------------------- EAD, entropy, compression


def test_ead_hand_checked():
    # "a b a": U = 2, C = 3, V = 2 -> expected distinct = 2 * (1 - (1/2)^3) = 1.75
    assert ead(["a b a"], vocab_size=2) == pytest.approx(2 / 1.75)


def test_ead_limits():
    texts = ["a b a c", "b d"]
    # V -> infinity: the expected distinct count tends to C, so EAD -> distinct-n
    for n in (1, 2):
        assert ead(texts, n, vocab_size=10**12) == pytest.approx(distinct_n(texts, n), rel=1e-6)
    # a single token: expected distinct is exactly 1
    assert ead(["a"], vocab_size=50_000) == pytest.approx(1.0)
    # C >> V: expected distinct -> V, so EAD -> U / V
    assert ead([" ".join("abc" * 1000)], vocab_size=3) == pytest.approx(1.0)
    assert ead([""], vocab_size=10) == 0.0


def test_ngram_entropy_uniform_is_log_k():
    assert ngram_entropy(["a b c d"], 1) == pytest.approx(math.log(4))
    # bigrams (a b) (b c) | (c d): 3 equiprobable
    assert ngram_entropy(["a b c", "c d"], 2) == pytest.approx(math.log(3))
    assert ngram_entropy(["a a a"], 1) == 0.0
    assert ngram_entropy([""], 1) == 0.0


def test_ngram_entropy_hand_checked():
    # a:2, b:1, c:1 of 4 -> -(1/2 ln 1/2 + 2 * 1/4 ln 1/4) = 1.5 ln 2
    assert ngram_entropy(["a b", "a c"], 1) == pytest.approx(1.5 * math.log(2))


def test_compression_ratio():
    texts = ["the cat sat", "on the mat"]
    raw = "the cat sat\non the mat".encode()
    assert compression_ratio(texts) == pytest.approx(len(gzip.compress(raw)) / len(raw))
    rng = random.Random(0)
    repetitive = ["the same sentence again"] * 200
    varied = _random_texts(rng, 200, 500, [4])
    assert compression_ratio(repetitive) < compression_ratio(varied)
    with pytest.raises(ValueError):
        compression_ratio([""])


# ----------------------------------------------------------------- policy entropy


def test_policy_entropy_uniform_and_mask():
    torch = pytest.importorskip("torch")
    logits = torch.zeros(2, 3, 5)
    logits[0, 2] = torch.tensor([100.0, 0, 0, 0, 0])  # near one-hot: entropy ~ 0, masked out
    logits[1, 0] = torch.tensor([0.0, 0, float("-inf"), float("-inf"), float("-inf")])  # uniform over 2
    mask = torch.tensor([[True, True, False], [True, False, False]])
    # positions kept: log 5, log 5, log 2
    expected = (2 * math.log(5) + math.log(2)) / 3
    assert policy_entropy(logits, mask).item() == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------- embedding extra


def test_optional_dependencies_only_imported_lazily():
    # Module-level imports of the metrics package must not pull in the optional
    # embed extra (sentence-transformers) or the dev-only nltk. Checked statically:
    # importing llm_irl in a subprocess would pay for torch and transformers.
    import llm_irl.metrics as metrics

    for path in Path(metrics.__file__).parent.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in {"sentence_transformers", "nltk"}, (path.name, name)


def test_embedding_diversity_missing_extra_is_clear():
    if importlib.util.find_spec("sentence_transformers") is not None:
        pytest.skip("sentence-transformers is installed")
    with pytest.raises(ImportError, match=r"pip install 'llm_irl\[embed\]'"):
        embedding_diversity(["a", "b"])


# ----------------------------------------------------------------- stats


def test_bootstrap_ci_contains_mean_and_shrinks():
    rng = random.Random(0)
    small = [rng.gauss(0, 1) for _ in range(20)]
    large = [rng.gauss(0, 1) for _ in range(2000)]
    mean_s, lo_s, hi_s = bootstrap_ci(small)
    mean_l, lo_l, hi_l = bootstrap_ci(large)
    assert mean_s == pytest.approx(sum(small) / len(small))
    assert lo_s <= mean_s <= hi_s and lo_l <= mean_l <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 3  # width ~ 1/sqrt(n): 10x narrower expected
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)
    assert bootstrap_ci([2.0]) == (2.0, 2.0, 2.0)


def test_per_input_hand_checked():
    groups = [["a a", "a a"], ["a b", "c d"]]  # distinct-1: 1/4 and 4/4
    result = per_input(distinct_n, groups, n=1)
    assert result["value"] == pytest.approx(0.625)
    assert result["lo"] <= result["value"] <= result["hi"]
    assert (result["n"], result["k"]) == (2, 2)


def test_per_input_refuses_unequal_groups():
    with pytest.raises(ValueError, match=r"2 group\(s\) of 3, 1 group\(s\) of 4"):
        per_input(distinct_n, [["a"] * 3, ["b"] * 4, ["c"] * 3], n=1)


def test_across_input_pools():
    assert across_input(distinct_n, ["a b", "a c"], n=1) == {"value": 0.75, "lo": None, "hi": None, "n": 2}


def test_distinct_depends_on_sample_count():
    # The caveat behind equal-count comparisons: more samples from the same source
    # repeat more n-grams, so distinct-2 falls although the source is unchanged.
    rng = random.Random(0)
    texts = _random_texts(rng, 1000, 30, [8])
    d10, d100, d1000 = (distinct_n(texts[:k], 2) for k in (10, 100, 1000))
    assert d10 > d100 > d1000


def test_equalize_counts():
    a = [["a1", "a2", "a3"], ["b1", "b2", "b3"], ["c1", "c2", "c3"]]
    b = [["x1", "x2"], ["y1", "y2", "y3"]]
    ea, eb = equalize_counts(a, b)
    assert ea == [["a1", "a2"], ["b1", "b2"]]
    assert eb == [["x1", "x2"], ["y1", "y2"]]
    per_input(distinct_n, ea, n=1)  # now accepted
