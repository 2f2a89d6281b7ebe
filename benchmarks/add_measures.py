"""Add the measures that compare records since 2026-11-26 to compare folders written before, from the
models and samples still on disk, and rewrite their reports:

- coverage, `forward_kl_at_t`: the expert's held-out text under each run's model at each sampled T
  (needs the model);
- `expert_loglik_std`: the expert's log-likelihood of the samples standardised to the expert's own
  lengths (needs samples.jsonl), and the expert's own figure beside.

run as (from the repository root):
    python -m benchmarks.add_measures benchmarks/sweeps/NAME [more folders] [--runs ROOT ...]

Each (arm, seed) run is looked for in FOLDER/runs/ARM/seedS and FOLDER/rerun/runs/ARM/seedS, then
under each ROOT with the folder's path inside it (ROOT/FOLDER/runs/...: a copy of the tree the run
was made in). A model is used only when it reproduces the held-out forward KL that results.json
recorded for the run (to 1e-4), samples only when they reproduce its expert log-likelihood at every
temperature (to 1e-9): every figure added comes from what was evaluated. A folder with a run
lacking either is named and keeps its old report. A folder that gains measures gets its
summary.json rewritten too (`benchmarks.summary`), since reports read only that.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from benchmarks.summary import write_summary
from llm_irl.compare import summarize
from llm_irl.eval_task import EvalConfig, load_task
from llm_irl.evaluate import expert_lengths, heldout_metrics, text_metrics
from llm_irl.generation import by_temperature, load_jsonl
from llm_irl.metrics.shape import length_standardised
from llm_irl.metrics.stats import estimate
from llm_irl.report import write_report

KL_TOLERANCE, LOGLIK_TOLERANCE = 1e-4, 1e-9


def candidates(folder: str, arm: str, seed: str, roots: list[str]) -> list[str]:
    inside = [os.path.join("runs", arm, f"seed{seed}"), os.path.join("rerun", "runs", arm, f"seed{seed}")]
    bases = [folder, *(os.path.join(root, os.path.relpath(os.path.abspath(folder), os.getcwd())) for root in roots)]
    return [os.path.join(b, i) for b in bases for i in inside if os.path.exists(os.path.join(b, i, "config.json"))]


def coverage_of_run(run_dir: str, run: dict, task, temps: list[float]) -> dict | None:
    """{temperature key: {"forward_kl_at_t": figure}}, or None when the model is not the run's."""
    from llm_irl.modeling import load_model, load_tokenizer

    recorded = run["metrics"].get("forward_kl", {}).get("value")
    model, tok = load_model(run_dir), load_tokenizer(run_dir)
    metrics, by_t = heldout_metrics(model, tok, task, temps)
    return by_t if recorded is not None and abs(metrics["forward_kl"]["value"] - recorded) <= KL_TOLERANCE else None


def length_std_of_run(run_dir: str, run: dict, task, reference: list[int]) -> dict | None:
    """{temperature key: {"expert_loglik_std": figure}} from the run's samples, or None when they are not
    the run's (their expert log-likelihood differs from the recorded one at some temperature)."""
    path = os.path.join(run_dir, "samples.jsonl")
    if not os.path.exists(path):
        return None
    out = {}
    for t, groups in by_temperature(load_jsonl(path)).items():
        key = f"{t:g}"
        texts = [[s.sample for s in g] for g in groups]
        per_prompt = [task.expert.mean_logprob_per_token([task.prompts[i]] * len(g), g) for i, g in enumerate(texts)]
        if key not in run["temperatures"] or abs(np.mean(per_prompt) - run["temperatures"][key]["expert_loglik"]["value"]) > LOGLIK_TOLERANCE:
            return None
        scores = [task.expert.score(task.prompts[i], x) for i, g in enumerate(texts) for x in g]
        std = length_standardised([s.num_tokens for s in scores], [s.logprob for s in scores], reference)
        out[key] = {} if np.isnan(std) else {"expert_loglik_std": estimate(std, n=len(scores))}
    return out


MEASURES = {  # name -> whether a run still lacks it
    "coverage": lambda run: any("forward_kl_at_t" not in f for t, f in run["temperatures"].items() if float(t) > 0),
    "length_std": lambda run: all("expert_loglik_std" not in f for f in run["temperatures"].values()),
}


def add_measures(folder: str, roots: list[str]) -> bool:
    path = os.path.join(folder, "results.json")
    with open(path) as f:
        results = json.load(f)
    config = EvalConfig(**results["eval"])
    task = load_task(config)
    reference = expert_lengths(task, config)
    missing = []
    for arm, by_seed in results["runs"].items():
        for seed, run in by_seed.items():
            temps = [float(t) for t in run["temperatures"] if float(t) > 0]
            for name, needed in MEASURES.items():
                if not needed(run):
                    continue
                for run_dir in candidates(folder, arm, seed, roots):
                    found = (coverage_of_run(run_dir, run, task, temps) if name == "coverage"
                             else length_std_of_run(run_dir, run, task, reference))
                    if found is not None:
                        for t, figures in found.items():
                            run["temperatures"][t].update(figures)
                        break
                else:
                    missing.append(f"{arm}/seed{seed} ({name})")
    if missing:
        print(f"{folder}: no model or samples that reproduce the recorded figures for {', '.join(missing)}; "
              "left as it was")
        return False
    results["summary"] = {arm: summarize(list(by_seed.values())) for arm, by_seed in results["runs"].items()}
    if results.get("expert"):  # the expert's own samples, as `evaluate_expert` draws them
        rng = np.random.default_rng(config.sample_seed)
        groups = [[task.expert.sample_completion(p, rng) for _ in range(config.k)] for p in task.prompts]
        own = text_metrics(groups, task, config, vocab_size=1, reference_lengths=reference)
        figures = results["expert"]["temperatures"]["expert"]
        if abs(own["expert_loglik"]["value"] - figures["expert_loglik"]["value"]) > LOGLIK_TOLERANCE:
            print(f"{folder}: the expert's samples differ from the recorded ones; left as it was")
            return False
        figures.update({k: own[k] for k in ("expert_loglik_std",) if k in own})
    with open(os.path.join(folder, "report.md")) as f:
        first = f.readline()
    title = first[first.rfind("(") + 1 : first.rfind(")")] if "(" in first else "compare"
    write_report(results, folder, title=title)
    write_summary(folder)
    print(f"{folder}: measures added")
    return True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="compare output folders holding results.json")
    parser.add_argument("--runs", nargs="*", default=[], help="roots of tree copies that hold the runs/ folders")
    args = parser.parse_args(argv)
    failed = [f for f in args.folders if not add_measures(f, args.runs)]
    if failed:
        sys.exit(f"{len(failed)} folder(s) left as they were: {', '.join(failed)}")


if __name__ == "__main__":
    main()
