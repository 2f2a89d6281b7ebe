"""Ground-truth study: does IQ beat SFT, and where? Regenerates BENCHMARKS.md from scratch.

run as:
    .venv/bin/python benchmarks/study.py            # the full study: 3 seeds, every expert and regime
    .venv/bin/python benchmarks/study.py --quick    # minutes: 1 seed, fewer steps, prompts and arms;
                                                    # writes runs/study_quick/, never BENCHMARKS.md

For each synthetic expert (markov, grammar, arithmetic; their likelihood is exact) and each data
regime (scarce demonstrations, where overfitting bites, and plentiful ones), `llm-irl compare`
trains every arm on the same tiny Llama, data, budget and seeds, then measures forward KL on
held-out expert text (coverage), the expert's log-likelihood of model samples, reverse KL and
validity (precision), Self-BLEU and distinct-2 (diversity, next to the expert's own at equal
counts), sample length, share ended with EOS and loops beside the expert's, the quality–diversity
frontier verdict of each arm against SFT over the temperature sweep (llm_irl.metrics.frontier,
seeds paired), and the Spearman correlation of each model's implied-reward returns with sample
quality. Settings run in parallel processes (`--jobs`), one torch thread each. Every number in
BENCHMARKS.md comes from this run's results.json files; nothing is typed in by hand: study_figures.py
reads them and study_report.py writes BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from llm_irl.quickstart import ARMS as QUICKSTART_ARMS
from llm_irl.quickstart import COMMON

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERTS = {"markov": 32, "grammar": 48, "arithmetic": 80}  # expert -> max_length covering ~99% of demos
REGIMES = {"scarce": 150, "plentiful": 5000}  # training demonstrations
ARMS = {
    "sft": {"trainer": "sft"},
    "iq": {"trainer": "iq"},  # IQConfig's defaults, whatever they are: the study checks them
    "iq_include": {"trainer": "iq", "terminal_td": "include", "td_weight": 0.1},  # the defaults before issue 11
    "iq_td0.3": {"trainer": "iq", "td_weight": 0.3},
    # the paper's share; IQ-Learn's EOS value terms, as the committed results were trained (the default is now exclude)
    "online_iq": {"trainer": "iq", "policy_mix": 0.1, "policy_terminal_value": "include"},
    "gail": dict(QUICKSTART_ARMS["gail"]),  # SFT warm start, then the adversarial loop, as the quickstart runs it
}
QUICK_ARMS = ("sft", "iq", "iq_include")
# offline IQ's grid (issue 11): terminal handling × λ × where V comes from, run on its own with --grid
GRID_ARMS = {
    **{f"excl_{lam}": {"trainer": "iq", "terminal_td": "exclude", "td_weight": lam} for lam in (0.01, 0.03, 0.1, 0.3)},
    **{f"excl_{lam}_head": {"trainer": "iq", "terminal_td": "exclude", "td_weight": lam, "value_param": "head"}
       for lam in (0.03, 0.1, 0.3)},
    **{f"incl_{lam}": {"trainer": "iq", "terminal_td": "include", "td_weight": lam} for lam in (0.03, 0.1)},
}


def grid_study(model_size: str | None = None) -> str:
    """Folder of `study.py --grid` (on `builtin:tiny`, or with `--model_size`)."""
    return os.path.join(ROOT, "benchmarks", "study_grid" + (f"_{model_size}" if model_size else ""))


GRID_STUDY = grid_study()
BIGGER_SIZE = "4x128"  # study.py --grid --model_size 4x128: the grid on a model that learns the experts better
GRID_STUDY_BIGGER = grid_study(BIGGER_SIZE)
TEMPERATURES = [0.7, 1.0, 1.3]  # the frontier's points


def bigger_model(expert: str, size: str) -> str:
    """Path (from the repo root) of a LAYERSxHIDDEN Llama over the expert's words, built from seed 0 if missing."""
    here = os.path.join(ROOT, "benchmarks", "arithmetic")
    if here not in sys.path:
        sys.path.insert(0, here)
    from build_model import folder_name, write_model

    try:
        layers, hidden = (int(n) for n in size.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--model_size {size!r}: expected LAYERSxHIDDEN, e.g. 4x128") from None
    path = os.path.join("benchmarks", "arithmetic", folder_name(expert, layers, hidden))
    if not os.path.exists(os.path.join(ROOT, path, "config.json")):
        write_model(os.path.join(ROOT, path), layers, hidden, 0, expert)
    return path


def setting_recipe(expert: str, regime: str, quick: bool, out_root: str, names=None, model_size=None) -> dict:
    max_length = EXPERTS[expert]
    names = names or (QUICK_ARMS if quick else tuple(ARMS))
    arms = {k: dict({**ARMS, **GRID_ARMS}[k]) for k in names}  # copies: edited per expert
    for spec in arms.values():
        if spec["trainer"] == "iq" and spec.get("policy_mix"):
            spec["max_new_tokens"] = max_length
    budget = {k: v for k, v in COMMON.items() if k != "seed"}  # the quickstart's steps, batch and optimiser
    return {
        **budget,
        "model_name_or_path": bigger_model(expert, model_size) if model_size
        else "builtin:tiny" if expert == "markov" else f"builtin:tiny-{expert}",
        "dataset": f"builtin:{expert}:{REGIMES[regime]}",
        "eval_dataset": f"builtin:{expert}",
        "max_length": max_length,
        "max_steps": 60 if quick else COMMON["max_steps"],
        "temperatures": TEMPERATURES,
        "k": 8,
        "num_prompts": 20 if quick else 50,
        "max_new_tokens": max_length,
        "seeds": 1 if quick else 3,
        "output_dir": os.path.join(out_root, f"{expert}_{regime}"),
        "other_trainers": False,
        "arms": arms,
    }


def run_setting(recipe: dict) -> tuple[str, float, int]:
    """One `llm-irl compare` in its own process (one torch thread), so settings run side by side."""
    os.makedirs(recipe["output_dir"], exist_ok=True)
    path = os.path.join(recipe["output_dir"], "recipe.json")  # JSON is YAML: compare reads it as a recipe
    with open(path, "w") as f:
        json.dump(recipe, f, indent=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.time()
    with open(os.path.join(recipe["output_dir"], "log.txt"), "w") as log:
        proc = subprocess.run([sys.executable, "-m", "llm_irl.cli", "compare", path], stdout=log,
                              stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return recipe["output_dir"], time.time() - start, proc.returncode


def merge_rerun(setting_dir: str, rerun_dir: str) -> dict:
    """The setting's results with the arms of a rerun (same recipe apart from `arms`) put in their place:
    runs, summary and timings of those arms replaced, every other arm kept as it was."""
    with open(os.path.join(setting_dir, "results.json")) as f:
        merged = json.load(f)
    with open(os.path.join(rerun_dir, "results.json")) as f:
        rerun = json.load(f)
    if rerun["seeds"] != merged["seeds"] or rerun["common"] != merged["common"] or rerun["eval"] != merged["eval"]:
        raise SystemExit(f"{rerun_dir}: the rerun's seeds, training or evaluation settings differ from {setting_dir}'s")
    old_seconds = sum(merged["seconds_per_run"].get(arm, 0.0) for arm in rerun["arms"]) * len(merged["seeds"])
    for key in ("arms", "runs", "summary", "seconds_per_run"):
        merged[key] = {**merged[key], **rerun[key]}
    merged["runtime_s"] += rerun["runtime_s"] - old_seconds  # compute time of the settings as they now stand
    merged["rerun"] = {**merged.get("rerun", {}), **{arm: os.path.relpath(rerun_dir, setting_dir) for arm in rerun["arms"]}}
    return merged


class _NoPool:
    """Stands in for the process pool when only the report is rebuilt: runs nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items):
        return []


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="1 seed, 60 steps, 20 prompts, 3 arms: minutes; writes under runs/study_quick/ unless told")
    p.add_argument("--jobs", type=int, default=2, help="settings run at once (one torch thread each)")
    p.add_argument("--output_dir", default=None, help="default: benchmarks/study (runs/study_quick with --quick)")
    p.add_argument("--benchmarks_md", default=None,
                   help="default: BENCHMARKS.md (runs/study_quick/BENCHMARKS.md with --quick)")
    p.add_argument("--experts", default=",".join(EXPERTS))
    p.add_argument("--arms", default=None, help=f"comma-separated subset of {','.join(ARMS)} (sft first)")
    p.add_argument("--grid", action="store_true",
                   help=f"SFT and offline IQ's grid ({', '.join(GRID_ARMS)}) into benchmarks/study_grid/ and its "
                        "own BENCHMARKS.md, summarised in the main one")
    p.add_argument("--model_size", default=None,
                   help="LAYERSxHIDDEN (e.g. 4x128): a bigger Llama over each expert's words "
                        "(benchmarks/arithmetic/build_model.py) in place of builtin:tiny; with --grid the "
                        f"default folder is benchmarks/study_grid_SIZE (e.g. {os.path.relpath(GRID_STUDY_BIGGER, ROOT)})")
    p.add_argument("--report_only", action="store_true",
                   help="rebuild BENCHMARKS.md (and each setting's report.md and plots) from the results.json "
                        "files a previous run of this script wrote")
    p.add_argument("--rerun_arms", default=None,
                   help="comma-separated arms to train and evaluate again (e.g. after a fix that touches only them) "
                        "and put in place of their rows in the existing settings; every other arm is kept")
    a = p.parse_args()
    if a.grid:
        a.arms = a.arms or ",".join(["sft", *GRID_ARMS])
        if not a.quick:
            grid_dir = grid_study(a.model_size)
            a.output_dir = a.output_dir or grid_dir
            a.benchmarks_md = a.benchmarks_md or os.path.join(grid_dir, "BENCHMARKS.md")
    quick_root = os.path.join(ROOT, "runs", "study_quick")  # a quick run never overwrites the committed study
    a.output_dir = a.output_dir or (quick_root if a.quick else os.path.join(ROOT, "benchmarks", "study"))
    a.benchmarks_md = a.benchmarks_md or os.path.join(quick_root if a.quick else ROOT, "BENCHMARKS.md")

    names = a.arms.split(",") if a.arms else None
    recipes = [setting_recipe(e, r, a.quick, a.output_dir, names, a.model_size) for e in a.experts.split(",") for r in REGIMES]
    if a.rerun_arms:  # the same recipes with only those arms, each into its setting's rerun/ folder
        rerun_names = a.rerun_arms.split(",")
        reruns = [{**setting_recipe(e, r, a.quick, a.output_dir, rerun_names, a.model_size),
                   "output_dir": os.path.join(a.output_dir, f"{e}_{r}", "rerun")}
                  for e in a.experts.split(",") for r in REGIMES]
    start = time.time()
    runtimes, failed = {}, []
    with _NoPool() if a.report_only else ThreadPoolExecutor(max_workers=a.jobs) as pool:
        for out_dir, seconds, code in pool.map(run_setting, reruns if a.rerun_arms else recipes):
            name = os.path.basename(os.path.dirname(out_dir) if a.rerun_arms else out_dir)
            if not a.rerun_arms:  # a rerun's settings take their compute time from the merged results below
                runtimes[name] = seconds
            print(f"{name}: {'ok' if code == 0 else f'FAILED ({code}), see {out_dir}/log.txt'} in {seconds / 60:.1f} min",
                  flush=True)
            if code != 0:
                failed.append(name)
    from llm_irl.report import write_report
    from study_report import write_benchmarks  # imported here: study_report reads this module's constants

    all_results = {}
    for recipe in recipes:
        path = os.path.join(recipe["output_dir"], "results.json")
        if os.path.exists(path):
            with open(path) as f:
                results = json.load(f)
            rerun_dir = os.path.join(recipe["output_dir"], "rerun")
            if a.rerun_arms and os.path.exists(os.path.join(rerun_dir, "results.json")):
                results = merge_rerun(recipe["output_dir"], rerun_dir)
            if a.rerun_arms or a.report_only:  # report.md and plots of the setting as it now stands
                write_report(results, recipe["output_dir"], title="recipe.json")
            name = os.path.basename(recipe["output_dir"])
            all_results[name] = {**results, "output_dir": recipe["output_dir"]}
            runtimes.setdefault(name, results["runtime_s"])
    if not all_results:
        print("no setting produced results", file=sys.stderr)
        return 1
    command = "python benchmarks/study.py" + (" --quick" if a.quick else "") + (
        f" --experts {a.experts}" if a.experts != ",".join(EXPERTS) else "") + (
        f" --model_size {a.model_size}" if a.model_size else "") + (f" --arms {a.arms}" if a.arms else "") + (
        f" --rerun_arms {a.rerun_arms}" if a.rerun_arms else "")
    command = command.replace(f" --arms {','.join(['sft', *GRID_ARMS])}", " --grid") if a.grid else command
    run_record = os.path.join(a.output_dir, "study.json")  # the last run that trained: command and wall time
    last = json.load(open(run_record)) if os.path.exists(run_record) else {"command": command, "wall_s": None}
    if a.rerun_arms:  # the full run stays the record; reruns are listed beside it
        last["reruns"] = [*last.get("reruns", []), {"command": command, "wall_s": time.time() - start}]
    elif not a.report_only:
        last = {"command": command, "wall_s": time.time() - start}
    if not a.report_only:
        with open(run_record, "w") as f:
            json.dump(last, f)
    write_benchmarks(all_results, runtimes, last, a.benchmarks_md)
    print(f"wrote {a.benchmarks_md}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
