"""The frontier verdict's two rules side by side: false sides on equal curves, and what changed in benchmarks/.

run as:
    python benchmarks/bench_frontier_rule.py            # ~1 min on one core

`llm_irl.metrics.frontier` declares `above` / `below` when the 95% interval of the mean gap over the
common diversity range clears 0. The rule before it took a side when any one of the grid's point
intervals cleared 0 (`any_point_verdict` below rebuilds it from the same per-point intervals).
1. Equal curves (3 seeds, 3 temperatures, noise per seed and per point, 2,000 draws per noise mix):
   the share of draws that get a side under each rule; 5% is the test's level.
2. Every committed compare under benchmarks/ (results.json with its runs): each frontier verdict
   under both rules, counted as (old, new) pairs.
"""

from __future__ import annotations

import glob
import json
import os
from collections import Counter

import numpy as np

from llm_irl.metrics.frontier import frontier_gap
from llm_irl.report import frontier_verdicts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = [(0.1, -1.0), (0.3, -2.0), (0.5, -3.0)]


def any_point_verdict(result: dict) -> str:
    """The earlier rule: a side wherever one grid point's interval clears 0 (a crossing where both do)."""
    if result["verdict"] == "no overlap":
        return "no overlap"
    above = any((g["lo"] if g["lo"] is not None else g["value"]) > 0 for g in result["gap"])
    below = any((g["hi"] if g["hi"] is not None else g["value"]) < 0 for g in result["gap"])
    return {(True, False): "above", (False, True): "below", (True, True): "crossing"}.get((above, below), "overlapping")


def null_rates(draws: int = 2000) -> None:
    rng = np.random.default_rng(0)
    for sd_seed, sd_point in ((0.3, 0.0), (0.2, 0.2), (0.0, 0.3)):
        def draw():
            return [[(x + rng.normal(0, 0.02), y + shift + rng.normal(0, sd_point)) for x, y in BASE]
                    for shift in rng.normal(0, sd_seed, size=3)]

        new = old = 0
        for _ in range(draws):
            result = frontier_gap(draw(), draw())
            new += result["verdict"] in ("above", "below")
            old += any_point_verdict(result) in ("above", "below")
        print(f"equal curves, noise per seed {sd_seed}, per point {sd_point}: a side in {old / draws:.1%} of "
              f"{draws} draws by any point, {new / draws:.1%} by the mean gap")


def committed_changes() -> None:
    pairs = Counter()
    for path in sorted(glob.glob(os.path.join(ROOT, "benchmarks", "**", "results.json"), recursive=True)):
        if "/runs/" in path:
            continue
        with open(path) as f:
            results = json.load(f)
        if "runs" not in results or "summary" not in results:
            continue
        for result in frontier_verdicts(results):
            pairs[any_point_verdict(result), result["verdict"]] += 1
    print(f"committed verdicts, (any point -> mean gap): {sum(pairs.values())} in all")
    for (old, new), n in sorted(pairs.items()):
        print(f"  {old} -> {new}: {n}")


if __name__ == "__main__":
    null_rates()
    committed_changes()
