"""Diversity metrics over sets of generated texts (docs/design.md, "The evaluation protocol").

All text metrics take ``texts: list[str]`` and an optional ``tokenize`` callable
(default ``str.split``: whitespace tokens); pass ``tokenize=tok.tokenize`` to
count in a Hugging Face tokenizer's units. n-grams never cross text boundaries.

Sentence-embedding diversity (an optional extra) lives in :mod:`llm_irl.metrics.embedding`.

Count-based metrics (distinct-n, EAD, n-gram entropy, self-BLEU) depend on how
many samples are pooled, so compare them only at equal sample counts (see
:mod:`llm_irl.metrics.stats`).
"""

from __future__ import annotations

import bisect
import gzip
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

Tokenize = Callable[[str], list[str]]
NGram = tuple[str, ...]

def _tokenize_all(texts: Sequence[str], tokenize: Tokenize | None) -> list[list[str]]:
    fn = tokenize if tokenize is not None else str.split
    return [list(fn(t)) for t in texts]


def _ngrams(tokens: Sequence[str], n: int) -> Iterator[NGram]:
    """n-grams of one text; none when the text is shorter than ``n``."""
    return zip(*(tokens[k:] for k in range(n)))


def _pooled_counts(texts: Sequence[str], n: int, tokenize: Tokenize | None) -> Counter[NGram]:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    counts: Counter[NGram] = Counter()
    for tokens in _tokenize_all(texts, tokenize):
        counts.update(_ngrams(tokens, n))
    return counts


def distinct_n(texts: Sequence[str], n: int, tokenize: Tokenize | None = None) -> float:
    """Unique n-grams / total n-grams, pooled over ``texts``; 0.0 when there are none."""
    counts = _pooled_counts(texts, n, tokenize)
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def ead(
    texts: Sequence[str],
    n: int = 1,
    *,
    vocab_size: int,
    tokenize: Tokenize | None = None,
) -> float:
    """Expectation-adjusted distinct (Liu et al. 2022, "Rethinking and Refining the Distinct Metric").

    ``EAD = U / (V * (1 - ((V - 1) / V) ** C))`` where ``U`` is the number of unique
    n-grams, ``C`` the total n-gram count and ``V`` the vocabulary size. The
    denominator is the expected number of distinct items when drawing ``C`` items
    uniformly from ``V``, which removes distinct-n's bias against long outputs.
    Limits: ``C = 1`` gives 1.0; ``V -> inf`` recovers distinct-n (``U / C``);
    ``C -> inf`` gives ``U / V``. As in the paper's code, ``V`` is used as given for
    every ``n``; pass the tokenizer's vocabulary size (and tokenize with it).
    Returns 0.0 when there are no n-grams.
    """
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    counts = _pooled_counts(texts, n, tokenize)
    total = sum(counts.values())
    if total == 0:
        return 0.0
    if vocab_size == 1:
        return float(len(counts))  # expected distinct is exactly 1
    # 1 - (1 - 1/V)^C via expm1/log1p: the naive power loses all precision for large V.
    expected = vocab_size * -math.expm1(total * math.log1p(-1.0 / vocab_size))
    return len(counts) / expected


def ngram_entropy(texts: Sequence[str], n: int, tokenize: Tokenize | None = None) -> float:
    """Shannon entropy, in nats, of the pooled n-gram frequency distribution (0.0 if empty)."""
    counts = _pooled_counts(texts, n, tokenize)
    total = sum(counts.values())
    if total == 0:
        return 0.0
    return -math.fsum(c / total * math.log(c / total) for c in counts.values())


def compression_ratio(texts: Sequence[str]) -> float:
    """gzip-compressed size / raw size of the newline-joined UTF-8 texts (lower = more repetitive).

    gzip (DEFLATE) only looks 32 KiB back for repeats, so repetition between texts
    further apart than that is invisible and the ratio drifts with corpus size:
    compare only corpora of equal size.
    """
    raw = "\n".join(texts).encode("utf-8")
    if not raw:
        raise ValueError("compression_ratio of empty text is undefined")
    return len(gzip.compress(raw, mtime=0)) / len(raw)


def policy_entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean per-token entropy (nats) of ``softmax(logits)`` over positions where ``mask`` is true.

    ``logits``: ``[..., vocab]``; ``mask``: ``[...]`` (bool or 0/1). Returns a 0-dim tensor. The
    trainers' own `llm_irl.soft_q.policy_entropy`, imported lazily to keep the text metrics light.
    """
    from llm_irl.soft_q import policy_entropy as soft_q_entropy

    return soft_q_entropy(logits, mask.bool())


# --------------------------------------------------------------------------- self-BLEU
#
# nltk semantics of sentence_bleu(refs, hyp, weights=(1/N,)*N, SmoothingFunction().method1):
#   p_n = sum_g min(count_hyp(g), max_ref count_ref(g)) / max(1, #hyp n-grams)
#   a zero numerator becomes 0.1 / denominator (method1's epsilon), so a hypothesis
#   shorter than n contributes p_n = 0.1;
#   BLEU = 0 when no unigram matches (this includes the empty hypothesis);
#   BP = 1 if h > r else exp(1 - r / h), r = reference length closest to h, ties -> shorter.

_EPSILON = 0.1  # SmoothingFunction().method1 default


class _NGramMax:
    """Per n-gram: highest count over texts, which text holds it, and the second highest.

    The max count over "all texts except i" is then O(1): the second highest when
    text i holds the highest, the highest otherwise.
    """

    def __init__(self, per_text: list[Counter[NGram]]) -> None:
        self.best: dict[NGram, tuple[int, int]] = {}  # ngram -> (count, text index)
        self.second: dict[NGram, int] = {}
        for i, counts in enumerate(per_text):
            for g, c in counts.items():
                top = self.best.get(g)
                if top is None:
                    self.best[g] = (c, i)
                elif c > top[0]:
                    self.second[g] = top[0]
                    self.best[g] = (c, i)
                elif c > self.second.get(g, 0):
                    self.second[g] = c

    def max_excluding(self, g: NGram, i: int) -> int:
        count, holder = self.best[g]
        return self.second.get(g, 0) if holder == i else count


def _closest_other_length(sorted_lengths: list[int], own: int) -> int:
    """Closest length to ``own`` among all lengths but one occurrence of ``own``; ties -> shorter."""
    lo = bisect.bisect_left(sorted_lengths, own)
    hi = bisect.bisect_right(sorted_lengths, own)
    if hi - lo >= 2:  # another text has the same length
        return own
    below = sorted_lengths[lo - 1] if lo > 0 else None
    above = sorted_lengths[hi] if hi < len(sorted_lengths) else None
    if above is None or (below is not None and own - below <= above - own):
        return below  # type: ignore[return-value]  # at least one other text exists
    return above


def self_bleu(texts: Sequence[str], max_n: int = 4, tokenize: Tokenize | None = None) -> float:
    """Mean over i of sentence BLEU-``max_n`` of text i against all other texts (higher = less diverse).

    Exactly nltk's ``sentence_bleu`` with uniform weights and ``method1`` smoothing
    (see :func:`self_bleu_naive`), but in time linear in corpus size instead of
    quadratic: clipping uses :class:`_NGramMax`, and the closest other reference
    length is found by bisecting the sorted text lengths.
    """
    if len(texts) < 2:
        raise ValueError(f"self_bleu needs at least 2 texts, got {len(texts)}")
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    tokenized = _tokenize_all(texts, tokenize)
    per_order = [[Counter(_ngrams(t, n)) for t in tokenized] for n in range(1, max_n + 1)]
    maxima = [_NGramMax(per_text) for per_text in per_order]
    sorted_lengths = sorted(len(t) for t in tokenized)
    weight = 1.0 / max_n

    scores = []
    for i, tokens in enumerate(tokenized):
        matched = [
            sum(min(c, table.max_excluding(g, i)) for g, c in per_text[i].items())
            for per_text, table in zip(per_order, maxima)
        ]
        if matched[0] == 0:  # nltk short-circuit; also covers the empty hypothesis
            scores.append(0.0)
            continue
        totals = [max(1, sum(per_text[i].values())) for per_text in per_order]
        log_p = [math.log((m or _EPSILON) / t) for m, t in zip(matched, totals)]
        h = len(tokens)
        r = _closest_other_length(sorted_lengths, h)
        bp = 1.0 if h > r else math.exp(1 - r / h)
        scores.append(bp * math.exp(math.fsum(weight * lp for lp in log_p)))
    return math.fsum(scores) / len(scores)


def self_bleu_naive(texts: Sequence[str], max_n: int = 4, tokenize: Tokenize | None = None) -> float:
    """Reference O(n^2) self-BLEU: the plain nltk loop (nltk is a dev-only dependency)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    if len(texts) < 2:
        raise ValueError(f"self_bleu needs at least 2 texts, got {len(texts)}")
    tokenized = _tokenize_all(texts, tokenize)
    weights = (1.0 / max_n,) * max_n
    smoothing = SmoothingFunction().method1
    scores = [
        sentence_bleu(tokenized[:i] + tokenized[i + 1 :], hyp, weights=weights, smoothing_function=smoothing)
        for i, hyp in enumerate(tokenized)
    ]
    return math.fsum(scores) / len(scores)
