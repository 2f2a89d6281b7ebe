"""Running the study's settings: one `llm-irl compare` per setting, in its own process, and merging reruns.

Used by `python -m benchmarks.study` (the command line); not run on its own. A setting's recipe
(`recipe.json`, which `llm-irl compare` reads as YAML) is written into its folder beside the
compare output (results.json, report.md, log.txt, runs/); `benchmarks.summary` then keeps the
small summary.json that reports read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from benchmarks.models import model_path
from benchmarks.settings import ARMS, BUDGET, EXPERTS, GRID_ARMS, QUICK_ARMS, REGIMES, ROOT, TEMPERATURES


def setting_recipe(expert: str, regime: str, quick: bool, out_root: str, names=None, model_size=None) -> dict:
    """The compare recipe of one setting: every arm in `names` on the same model, data, budget and seeds."""
    max_length = EXPERTS[expert]
    names = names or (QUICK_ARMS if quick else tuple(ARMS))
    arms = {k: dict({**ARMS, **GRID_ARMS}[k]) for k in names}  # copies: edited per expert
    for spec in arms.values():
        if spec["trainer"] == "iq" and spec.get("policy_mix"):
            spec["max_new_tokens"] = max_length
    return {
        **BUDGET,
        "model_name_or_path": model_path(expert, model_size) if model_size
        else "builtin:tiny" if expert == "markov" else f"builtin:tiny-{expert}",
        "dataset": f"builtin:{expert}:{REGIMES[regime]}",
        "eval_dataset": f"builtin:{expert}",
        "max_length": max_length,
        "max_steps": 60 if quick else BUDGET["max_steps"],
        "temperatures": TEMPERATURES,
        "k": 8,
        "num_prompts": 20 if quick else 50,
        "max_new_tokens": max_length,
        "seeds": 1 if quick else 3,
        "output_dir": os.path.join(out_root, f"{expert}_{regime}"),
        "other_trainers": False,
        "torch_threads": 1,  # settings run side by side, one core each (the library's key; the env below covers numpy)
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
