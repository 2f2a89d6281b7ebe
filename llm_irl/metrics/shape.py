"""What samples look like, beside the expert's own figures: length, share ended with EOS, loops.

IQ's terminal-state bias (docs/design.md, "Terminal transitions and the length bias") shows first
here: longer samples, fewer EOS, and loops such as `mipi mipi mipi`. A loop is an n-gram
(n ≤ `max_n`) repeated `min_repeats` times in a row; an expert may loop too (a Markov chain with
self-transitions does), which is why these figures are only read next to the expert's.
"""

from __future__ import annotations

from collections.abc import Sequence


def has_loop(tokens: Sequence, max_n: int = 4, min_repeats: int = 3) -> bool:
    """True when some n-gram (1 ≤ n ≤ max_n) occurs `min_repeats` times back to back."""
    tokens = list(tokens)
    for n in range(1, max_n + 1):
        span = n * min_repeats
        for i in range(len(tokens) - span + 1):
            gram = tokens[i : i + n]
            if all(tokens[i + k * n : i + (k + 1) * n] == gram for k in range(1, min_repeats)):
                return True
    return False


def loop_share(token_lists: Sequence[Sequence], max_n: int = 4, min_repeats: int = 3) -> float:
    """Share of samples that contain a loop (see `has_loop`)."""
    if not token_lists:
        raise ValueError("loop_share needs at least one sample")
    return sum(has_loop(t, max_n, min_repeats) for t in token_lists) / len(token_lists)


def mean_length(token_lists: Sequence[Sequence]) -> float:
    """Mean number of tokens per sample."""
    if not token_lists:
        raise ValueError("mean_length needs at least one sample")
    return sum(len(t) for t in token_lists) / len(token_lists)


def eos_share(terminated: Sequence[bool]) -> float:
    """Share of samples that ended with EOS (the rest were cut at the length limit)."""
    if not terminated:
        raise ValueError("eos_share needs at least one sample")
    return sum(bool(t) for t in terminated) / len(terminated)


def length_standardised(lengths: Sequence[int], sums: Sequence[float], reference_lengths: Sequence[int],
                        num_bins: int = 4) -> float:
    """Σ sums / Σ lengths within each length bin, averaged with the bins' shares of `reference_lengths`.

    Direct standardisation, as rates are compared across populations of different age: a per-token
    figure (e.g. the expert's log-likelihood of samples) can depend on sample length by itself, so
    two models that write different lengths are compared as if both wrote the reference's (the
    expert's) lengths. Bins are the reference's quantiles (`num_bins` of them; ties merge bins).
    NaN when the samples leave a bin the reference uses empty: no figure rather than a guess.
    """
    if not len(lengths) == len(sums) or not lengths or not reference_lengths:
        raise ValueError(f"need one sum per sample and some samples and reference lengths, got {len(lengths)} "
                         f"lengths, {len(sums)} sums, {len(reference_lengths)} reference lengths")
    import numpy as np

    inner = np.unique(np.quantile(np.asarray(reference_lengths, dtype=float), np.linspace(0, 1, num_bins + 1)[1:-1]))
    ref_bins = np.searchsorted(inner, reference_lengths, side="right")
    bins = np.searchsorted(inner, lengths, side="right")
    lengths, sums = np.asarray(lengths, dtype=float), np.asarray(sums, dtype=float)
    total = 0.0
    for b in np.unique(ref_bins):
        here = bins == b
        if not here.any():
            return float("nan")
        total += np.mean(ref_bins == b) * sums[here].sum() / lengths[here].sum()
    return float(total)
