"""results.json -> summary.json: the small file each run folder keeps in git, and the only one reports read.

run as (from the repository root):
    python -m benchmarks.summary                     # every results.json under benchmarks/
    python -m benchmarks.summary benchmarks/sweeps/NAME [more folders]

A compare run's results.json (`llm-irl compare`, `llm-irl merge`, `python -m benchmarks.study`,
`benchmarks/pretrained/run.py`) holds every run's own records; it stays on disk, out of git. This
keeps what BENCHMARKS.md, the study pages and the plots read, floats whole (rounding them, even to 10
digits, moved some figures printed to 3 decimals across a rounding boundary):

- the arms, seeds, training and evaluation settings, interval note, run times;
- `summary` (every figure of every arm, mean and 95% interval over seeds) and `expert` (the
  expert's own samples), as the library's plots read them;
- `frontier`: the library's frontier verdicts against the baseline, without their per-grid arrays;
- `seed_points`: arm -> one {temperature: {metric: value}} per seed (seeds in order), sampled
  temperatures only, for the metrics the frontier axes of `benchmarks.verdicts` read: from these a
  report pairs seeds across folders (SFT at other budgets, seeds pooled from two runs).

Per-run records (`runs`), per-comparison verdicts (`verdicts`) and samples are dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from benchmarks.settings import BENCH, rel

SUMMARY = "summary.json"
# the per-seed figures the frontier axes read (benchmarks.verdicts.FRONTIER_AXES)
# and the per-seed sample length and EOS share (paired gaps in benchmarks.terminal_criterion)
SEED_METRICS = ("self_bleu_per_input", "distinct_2_across", "expert_loglik", "expert_loglik_std", "forward_kl_at_t",
                "mean_length", "terminated")
KEPT = ("arms", "seeds", "common", "eval", "interval", "runtime_s", "seconds_per_run", "rerun", "merged_from",
        "lanes", "timing", "sample_quality", "reference_length")
FRONTIER_KEPT = ("arm", "baseline", "quality", "diversity", "gap_of", "verdict", "locally", "seeds", "x_range",
                 "mean_gap", "text")


def seed_points(results: dict) -> dict[str, list[dict]]:
    """arm -> [{temperature: {metric: value}} for each seed in order], sampled temperatures only."""
    out = {}
    for arm, by_seed in results.get("runs", {}).items():
        per_seed = []
        for seed in sorted(by_seed, key=int):
            temps = by_seed[seed]["temperatures"]
            per_seed.append({t: {m: temps[t][m]["value"] for m in SEED_METRICS
                                 if temps[t].get(m) and temps[t][m].get("value") is not None}
                             for t in temps if float(t) > 0})
        out[arm] = per_seed
    return out


def summarise(results: dict) -> dict:
    """The summary.json content of one results.json."""
    out = {"made_by": "python -m benchmarks.summary (from results.json, which stays out of git)"}
    out.update({k: results[k] for k in KEPT if k in results})
    out["summary"] = results["summary"]
    out["expert"] = results.get("expert")
    out["frontier"] = [{k: f[k] for k in FRONTIER_KEPT if k in f} for f in results.get("frontier") or []]
    out["seed_points"] = seed_points(results)
    return out


def write_summary(folder: str) -> str:
    """FOLDER/results.json -> FOLDER/summary.json; returns the path written."""
    from llm_irl.files import write_atomic

    with open(os.path.join(folder, "results.json")) as f:
        results = json.load(f)
    path = os.path.join(folder, SUMMARY)
    write_atomic(path, json.dumps(summarise(results), separators=(",", ":"), ensure_ascii=False) + "\n")
    return path


def load_summary(folder: str) -> dict | None:
    """FOLDER/summary.json, or None when the folder has none (its run was not made)."""
    path = os.path.join(folder, SUMMARY)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def result_folders(root: str = BENCH, name: str = "results.json") -> list[str]:
    """Every folder under `root` holding a file `name` (the runs/, model and data folders skipped)."""
    found = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ("runs", "model", "data", "built_models", "__pycache__"))
        if name in files:
            found.append(here)
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", help="run folders holding results.json (default: all under benchmarks/)")
    args = parser.parse_args(argv)
    folders = args.folders or result_folders()
    for folder in folders:
        path = write_summary(folder)
        print(f"{rel(path)}: {os.path.getsize(path) / 1024:.0f} KB")
    return 0 if folders else 1


if __name__ == "__main__":
    sys.exit(main())
