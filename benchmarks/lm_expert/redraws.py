"""How far a second sampling draw of the same trained model moves its figures, against how far the seeds spread.

run as:
    .venv/bin/python -m benchmarks.lm_expert.redraws            # after lanes got a second draw (run.py --draws 2)

For every scarce lane with two draws (`llm_irl.evaluate` `sample_draws`; draw d seeded sample_seed + 10000·d),
the absolute change draw 1 − draw 0 of each sampled figure at each temperature, beside the standard deviation
over seeds of the same arm's draw-0 figures (the spread the intervals over seeds read). Writes
results/scarce/redraws.json and prints the table BENCHMARKS.md's reading quotes.
"""

from __future__ import annotations

import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
LANES = os.path.join(HERE, "runs", "scarce", "lanes")
FIGURES = ("expert_loglik", "self_bleu_per_input", "mean_length", "terminated", "reverse_kl")


def lane_runs() -> dict[str, dict[str, dict]]:
    """arm -> seed -> run record, for every finished scarce lane."""
    out: dict[str, dict[str, dict]] = {}
    for name in sorted(os.listdir(LANES)):
        path = os.path.join(LANES, name, "results.json")
        if os.path.isfile(path):
            with open(path) as f:
                for arm, by_seed in json.load(f)["runs"].items():
                    out.setdefault(arm, {}).update(by_seed)
    return out


def redraw_table(runs: dict[str, dict[str, dict]]) -> list[dict]:
    rows = []
    for arm, by_seed in runs.items():
        redrawn = {s: r["draws"] for s, r in by_seed.items() if len(r.get("draws", [])) >= 2}
        if not redrawn:
            continue
        for t in ("0.7", "1", "1.3"):
            for name in FIGURES:
                first = [r.get("draws", [r["temperatures"]])[0][t].get(name, {}).get("value") for r in by_seed.values()]
                moves = [abs(d[1][t][name]["value"] - d[0][t][name]["value"]) for d in redrawn.values()
                         if name in d[0][t] and name in d[1][t]]
                if moves and None not in first and len(first) >= 2:
                    rows.append({"arm": arm, "T": t, "figure": name, "redrawn_seeds": sorted(redrawn),
                                 "mean_abs_redraw_change": float(np.mean(moves)),
                                 "sd_over_seeds": float(np.std(first, ddof=1)), "seeds": len(first)})
    return rows


def main() -> None:
    rows = redraw_table(lane_runs())
    out = os.path.join(HERE, "results", "scarce", "redraws.json")
    with open(out, "w") as f:
        json.dump(rows, f, indent=1)
    print("| arm | T | figure | seeds redrawn | mean |draw 1 − draw 0| | SD over seeds (draw 0) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | {r['T']} | {r['figure']} | {', '.join(r['redrawn_seeds'])} | "
              f"{r['mean_abs_redraw_change']:.3f} | {r['sd_over_seeds']:.3f} ({r['seeds']} seeds) |")
    print(f"wrote {os.path.relpath(out)}")


if __name__ == "__main__":
    main()
