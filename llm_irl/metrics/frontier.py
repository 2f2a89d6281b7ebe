"""The quality–diversity frontier verdict: is an arm's curve above, below or crossing the baseline's?

Each arm is evaluated at several sampling temperatures; at each it has a diversity (x, higher =
more diverse, e.g. 1 − Self-BLEU) and a quality (y, higher = better, e.g. the expert's log-likelihood
of the samples). A curve is those points. Diversity alone is won by gibberish and quality alone
by greedy decoding, so arms are compared at *matched diversity*: both curves are interpolated
(piecewise linearly in x) on a grid over the x range every curve covers, and the quality gap
arm − baseline is read at each grid point. Seeds are paired (seed i of the arm with seed i of the
baseline, as `compare` and the study run them), and each grid point's gap gets a Student-t
interval over seeds. The verdict:

- `above`: the mean gap over the grid (the area between the curves over their common width) has an
  interval above 0, and no grid point's interval lies below 0;
- `below`: the reverse;
- `crossing`: some grid point's interval lies above 0 and another's below 0;
- `overlapping`: anything else (the mean gap's interval covers 0);
- `no overlap`: the curves share no diversity range, so no matched comparison exists.

The mean gap is one test per comparison. Reading a side off any one of the grid's 21 correlated
point intervals, as this module did before, declared one in 11–31% of 2,000 draws of two equal
curves (3 seeds, 3 temperatures, noise per seed and per point), the mean gap in 4–5%
(benchmarks/bench_frontier_rule.py; tests/test_frontier.py checks the latter). What the point intervals
say is kept beside the verdict (`locally`: "above" or "below" where some point's interval clears
0 one way only) and stated in the sentence, so an `overlapping` verdict that is locally below
still reads as such.

With one seed there is no interval and the verdict reads the sign of the point gaps (said so).

The same machinery reads coverage at matched quality (`gap_name="coverage"`): x = the expert's
log-likelihood of samples, y = −forward KL of the expert's held-out text under the model at the
same T. Quality falls monotonically with T, so every curve is a function of it; coverage is best
near a model's calibrated temperature and flat there, so quality read at matched coverage would
come off a nearly vertical curve. Neither axis counts n-grams, so short samples buy nothing on
the coverage side.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llm_irl.metrics.stats import estimate, seed_interval

Curve = Sequence[tuple[float, float]]  # (diversity, quality) points, one per temperature


def _interpolate(curve: Curve, grid: np.ndarray) -> np.ndarray:
    points = sorted((float(x), float(y)) for x, y in curve)
    xs, ys = zip(*points)
    return np.interp(grid, xs, ys)


def _bounds(figure: dict) -> tuple[float, float]:
    """(lo, hi) of a figure; its value twice when it has no interval (one seed)."""
    return (figure["value"], figure["value"]) if figure["lo"] is None else (figure["lo"], figure["hi"])


def frontier_gap(arm: Sequence[Curve], baseline: Sequence[Curve], grid_size: int = 21) -> dict:
    """Quality gap arm − baseline at matched diversity, per grid point and averaged, with the verdict.

    `arm` and `baseline` hold one curve per seed, paired by position. Returns
    `{"verdict", "seeds", "x_range", "grid", "gap": [figure per grid point], "mean_gap": figure}`
    where a figure is `{"value", "lo", "hi", "n"}` (lo/hi None with one seed).
    """
    if len(arm) != len(baseline) or not arm:
        raise ValueError(f"frontier_gap pairs seeds: got {len(arm)} arm curves and {len(baseline)} baseline curves")
    curves = list(arm) + list(baseline)
    if any(len(c) < 1 for c in curves):
        raise ValueError("every curve needs at least one (diversity, quality) point")
    lo = max(min(x for x, _ in c) for c in curves)
    hi = min(max(x for x, _ in c) for c in curves)
    seeds = len(arm)
    if lo > hi:
        return {"verdict": "no overlap", "locally": None, "seeds": seeds, "x_range": None, "grid": [], "gap": [],
                "mean_gap": None}
    grid = np.linspace(lo, hi, grid_size) if hi > lo else np.array([lo])
    gaps = np.stack([_interpolate(a, grid) - _interpolate(b, grid) for a, b in zip(arm, baseline)])  # [seeds, grid]
    if seeds > 1:
        per_point = [seed_interval(gaps[:, j]) for j in range(len(grid))]
        mean_gap = seed_interval(gaps.mean(axis=1))
    else:  # no interval: a figure's bounds are its value, so the verdict reads signs
        per_point = [estimate(g) for g in gaps[0]]
        mean_gap = estimate(gaps[0].mean())
    point_above = any(_bounds(f)[0] > 0 for f in per_point)
    point_below = any(_bounds(f)[1] < 0 for f in per_point)
    crossing = point_above and point_below
    above = _bounds(mean_gap)[0] > 0 and not point_below
    below = _bounds(mean_gap)[1] < 0 and not point_above
    verdict = "crossing" if crossing else "above" if above else "below" if below else "overlapping"
    locally = None if crossing else "above" if point_above else "below" if point_below else None
    return {"verdict": verdict, "locally": locally, "seeds": seeds, "x_range": (float(lo), float(hi)),
            "grid": grid.tolist(), "gap": per_point, "mean_gap": mean_gap}


def describe_verdict(result: dict, arm: str, baseline: str = "sft", gap_name: str = "quality") -> str:
    """One plain sentence for reports, e.g. 'iq's frontier lies above sft's (mean quality gap +0.12 [0.03, 0.2],
    3 seeds)'; `gap_name` names the y axis ("coverage" for coverage at matched quality)."""
    verdict = result["verdict"]
    if verdict == "no overlap":
        matched = "quality" if gap_name == "coverage" else "diversity"
        return f"{arm} and {baseline} share no {matched} range: no matched comparison"
    words = {"above": "lies above", "below": "lies below", "crossing": "crosses",
             "overlapping": "is not distinguishable from"}[verdict]
    if verdict == "overlapping" and result.get("locally"):
        words = f"is {result['locally']} over part of the range but on average not distinguishable from"
    gap = result["mean_gap"]
    interval = "" if gap["lo"] is None else f" [{gap['lo']:+.3g}, {gap['hi']:+.3g}]"
    basis = f"{result['seeds']} seeds" if result["seeds"] > 1 else "one seed, no interval"
    return f"{arm}'s frontier {words} {baseline}'s (mean {gap_name} gap {gap['value']:+.3g}{interval}, {basis})"
