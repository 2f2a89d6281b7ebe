"""Add coverage (forward KL at each sampled temperature) to compare results whose models are still on
disk, and rewrite their reports: the quality–coverage frontier for runs that predate it.

run as:
    python benchmarks/add_coverage.py benchmarks/sweeps/NAME [more folders] [--runs ROOT ...]

`llm-irl compare` records `forward_kl_at_t` itself now; this is for folders written before it did.
Each (arm, seed) model is looked for in FOLDER/runs/ARM/seedS and FOLDER/rerun/runs/ARM/seedS, then
under each ROOT with the folder's path inside it (ROOT/FOLDER/runs/...: a copy of the tree the run
was made in). A model is used only when it reproduces the held-out forward KL that results.json
recorded for that run (to 1e-4), so every figure added comes from the model that was evaluated;
a run without such a model is named, and its folder keeps its old report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from llm_irl.compare import summarize  # noqa: E402
from llm_irl.evaluate import heldout_metrics  # noqa: E402
from llm_irl.eval_task import EvalConfig, load_task  # noqa: E402
from llm_irl.report import write_report  # noqa: E402

TOLERANCE = 1e-4


def candidates(folder: str, arm: str, seed: str, roots: list[str]) -> list[str]:
    inside = [os.path.join("runs", arm, f"seed{seed}"), os.path.join("rerun", "runs", arm, f"seed{seed}")]
    bases = [folder, *(os.path.join(root, os.path.relpath(os.path.abspath(folder), os.getcwd())) for root in roots)]
    return [os.path.join(b, i) for b in bases for i in inside if os.path.exists(os.path.join(b, i, "config.json"))]


def coverage_of_run(run_dirs: list[str], recorded: float, task, temps: list[float]) -> dict | None:
    """{temperature key: {"forward_kl_at_t": figure}} from the first model that reproduces `recorded`."""
    from llm_irl.modeling import load_model, load_tokenizer

    for run_dir in run_dirs:
        model, tok = load_model(run_dir), load_tokenizer(run_dir)
        metrics, by_t = heldout_metrics(model, tok, task, temps)
        if abs(metrics["forward_kl"]["value"] - recorded) <= TOLERANCE:
            return by_t
    return None


def add_coverage(folder: str, roots: list[str]) -> bool:
    path = os.path.join(folder, "results.json")
    with open(path) as f:
        results = json.load(f)
    task = load_task(EvalConfig(**results["eval"]))
    missing = []
    for arm, by_seed in results["runs"].items():
        for seed, run in by_seed.items():
            temps = [float(t) for t in run["temperatures"] if float(t) > 0]
            if all("forward_kl_at_t" in run["temperatures"][t] for t in run["temperatures"] if float(t) > 0):
                continue
            recorded = run["metrics"].get("forward_kl", {}).get("value")
            found = None if recorded is None else coverage_of_run(candidates(folder, arm, seed, roots), recorded,
                                                                    task, temps)
            if found is None:
                missing.append(f"{arm}/seed{seed}")
                continue
            for t, figures in found.items():
                run["temperatures"][t].update(figures)
    if missing:
        print(f"{folder}: no model reproducing the recorded forward KL for {', '.join(missing)}; left as it was")
        return False
    results["summary"] = {arm: summarize(list(by_seed.values())) for arm, by_seed in results["runs"].items()}
    with open(os.path.join(folder, "report.md")) as f:
        first = f.readline()
    title = first[first.rfind("(") + 1 : first.rfind(")")] if "(" in first else "compare"
    write_report(results, folder, title=title)
    print(f"{folder}: coverage added")
    return True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="compare output folders holding results.json")
    parser.add_argument("--runs", nargs="*", default=[], help="roots of tree copies that hold the runs/ folders")
    args = parser.parse_args(argv)
    failed = [f for f in args.folders if not add_coverage(f, args.runs)]
    if failed:
        sys.exit(f"{len(failed)} folder(s) left without coverage: {', '.join(failed)}")


if __name__ == "__main__":
    main()
