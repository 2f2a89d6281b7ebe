"""Aggregation of metrics over prompts: bootstrap CIs, per-input and across-input protocols.

Sample-count caveat: distinct-n, EAD, n-gram entropy and self-BLEU all change with
the number of texts pooled (distinct-n falls as more samples from the same source
are added), so two systems are comparable only at equal counts -- the same number
of samples per prompt for :func:`per_input`, the same number of prompts for
:func:`across_input`. :func:`equalize_counts` truncates two runs to common counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Groups = Sequence[Sequence[str]]


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

    Returns ``{"mean", "lo", "hi", "n": prompts, "k": samples per prompt}``. Groups
    of unequal size are refused, since the metric's value depends on k.
    """
    if not groups:
        raise ValueError("per_input needs at least one group")
    sizes = Counter(len(g) for g in groups)
    if len(sizes) > 1:
        detail = ", ".join(f"{count} group(s) of {size}" for size, count in sorted(sizes.items()))
        raise ValueError(f"per_input needs equal samples per prompt, got {detail}")
    scores = [metric_fn(list(g), **kw) for g in groups]
    mean, lo, hi = bootstrap_ci(scores, n_boot=n_boot, alpha=alpha, seed=seed)
    return {"mean": mean, "lo": lo, "hi": hi, "n": len(groups), "k": len(groups[0])}


def across_input(metric_fn: Callable[..., float], texts: Sequence[str], **kw: Any) -> dict[str, float | int]:
    """Apply ``metric_fn`` once to one sample per prompt, pooled: ``{"value", "n": texts}``.

    No CI: resampling texts with replacement would add duplicates and bias the metric.
    """
    return {"value": float(metric_fn(list(texts), **kw)), "n": len(texts)}


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
