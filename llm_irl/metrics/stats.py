"""Figures with intervals: the one figure shape, bootstrap CIs over prompts, Student-t intervals over
seeds, the per-input and across-input protocols, and Spearman's rank correlation.

A figure is ``{"value", "lo", "hi", "n"}`` (:func:`estimate`): the point estimate, its 95%
interval (``lo``/``hi`` None where there is none, e.g. a pooled metric) and the count behind it.

Sample-count caveat: distinct-n, EAD, n-gram entropy and self-BLEU all change with
the number of texts pooled (distinct-n falls as more samples from the same source
are added), so two systems are comparable only at equal counts -- the same number
of samples per prompt for :func:`per_input`, the same number of prompts for
:func:`across_input`. :func:`equalize_counts` truncates two runs to common counts.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Groups = Sequence[Sequence[str]]


def estimate(value: float, lo: float | None = None, hi: float | None = None, n: int = 1) -> dict:
    """One figure: a point estimate with its 95% interval when it has one, and the count behind it."""
    return {"value": float(value), "lo": None if lo is None else float(lo), "hi": None if hi is None else float(hi),
            "n": int(n)}


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """Percentile bootstrap of the mean over items: ``(mean, lo, hi)`` at level ``1 - alpha``."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"bootstrap_ci needs a non-empty 1-d sequence, got shape {x.shape}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(x.mean()), float(lo), float(hi)


def mean_over_prompts(values: Sequence[float], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict:
    """A figure from one value per prompt: their mean with its bootstrap interval, ``n`` = prompts."""
    mean, lo, hi = bootstrap_ci(values, n_boot=n_boot, alpha=alpha, seed=seed)
    return estimate(mean, lo, hi, len(values))


def per_input(
    metric_fn: Callable[..., float],
    groups: Groups,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    **kw: Any,
) -> dict[str, float | int]:
    """Apply ``metric_fn(group, **kw)`` to each prompt's k samples; bootstrap over prompts.

    Returns a figure (:func:`estimate`, ``n`` = prompts) with ``"k"``: samples per prompt. Groups
    of unequal size are refused, since the metric's value depends on k.
    """
    if not groups:
        raise ValueError("per_input needs at least one group")
    sizes = Counter(len(g) for g in groups)
    if len(sizes) > 1:
        detail = ", ".join(f"{count} group(s) of {size}" for size, count in sorted(sizes.items()))
        raise ValueError(f"per_input needs equal samples per prompt, got {detail}")
    scores = [metric_fn(list(g), **kw) for g in groups]
    return {**mean_over_prompts(scores, n_boot=n_boot, alpha=alpha, seed=seed), "k": len(groups[0])}


def across_input(metric_fn: Callable[..., float], texts: Sequence[str], **kw: Any) -> dict[str, float | int]:
    """Apply ``metric_fn`` once to one sample per prompt, pooled: a figure with ``n`` = texts, no interval.

    No CI: resampling texts with replacement would add duplicates and bias the metric.
    """
    return estimate(metric_fn(list(texts), **kw), n=len(texts))


def equalize_counts(groups_a: Groups, groups_b: Groups) -> tuple[list[list[str]], list[list[str]]]:
    """Truncate two runs (aligned by prompt) to common counts so count-sensitive metrics compare.

    Keeps the first ``m`` prompts (``m`` = the smaller number of prompts) and the first
    ``k`` samples of each (``k`` = the smallest group in either run).
    """
    m = min(len(groups_a), len(groups_b))
    if m == 0:
        raise ValueError("equalize_counts needs at least one group in each run")
    k = min(len(g) for g in [*groups_a[:m], *groups_b[:m]])
    if k == 0:
        raise ValueError("equalize_counts found a prompt with no samples")
    return [list(g[:k]) for g in groups_a[:m]], [list(g[:k]) for g in groups_b[:m]]


@functools.lru_cache(maxsize=None)  # ~60 quadratures per call, asked for the same few (p, df) by every report
def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t for p in (0.5, 1); scipy is not a dependency.

    With t = √df·tan θ the density becomes c·cos^(df−1) θ on [0, π/2): bounded and smooth, so
    Simpson's rule on 2000 panels is accurate to ~1e-9, and bisection on θ finds the quantile.
    """
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(math.pi)

    def cdf(theta: float) -> float:
        f = np.cos(np.linspace(0.0, theta, 2001)) ** (df - 1)
        return 0.5 + c * theta / 6000 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())

    lo, hi = 0.0, math.pi / 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return math.sqrt(df) * math.tan((lo + hi) / 2)


def seed_interval(values: Sequence[float], level: float = 0.95) -> dict:
    """Mean over seeds with its Student-t interval, mean ± t·s/√n, as a figure."""
    x = np.asarray(values, dtype=float)
    half = t_quantile(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return estimate(x.mean(), x.mean() - half, x.mean() + half, len(x))


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of the ranks they span (as scipy.stats.rankdata)."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    new_run = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    run_of = np.cumsum(new_run) - 1  # which run of equal values each sorted position is in
    starts = np.flatnonzero(new_run)
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = ((starts + ends + 1) / 2)[run_of]  # mean of the 1-based ranks start+1 .. end
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: the Pearson correlation of average ranks. NaN when either side is constant."""
    if len(x) != len(y):
        raise ValueError(f"spearman needs paired values, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return float("nan")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("spearman needs finite values")
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")
