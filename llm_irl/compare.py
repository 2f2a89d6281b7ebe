"""`llm-irl compare`: train every arm with the same data, budget and seeds, and evaluate them alike.

run as:
    llm-irl compare recipes/compare_quickstart.yaml
    llm-irl compare recipes/compare_quickstart.yaml --seeds 1 --max_steps 50 --output_dir runs/try
    llm-irl merge runs/all runs/seeds01 runs/seed2      (one report from runs of one recipe on other seeds)

A compare recipe is a training recipe without `trainer` and `seed`, plus evaluation keys and an
`arms:` mapping (see recipes/compare_quickstart.yaml):

    model_name_or_path: builtin:tiny     # every key that is not a compare or evaluation key is a
    dataset: builtin:markov              # training key, common to all arms
    max_steps: 300                       # the budget
    seeds: 3                             # a count (0, 1, 2) or a list [0, 7, 9]
    temperatures: [0.7, 1.0, 1.3]        # evaluation keys: see llm_irl.evaluate.EvalConfig
    k: 8
    num_prompts: 50
    arms:                                # arm name -> trainer and trainer-specific overrides
      sft: {trainer: sft}
      iq: {trainer: iq, td_weight: 0.1}
    other_trainers: true                 # also run every other trainer in llm_irl.trainers.TRAINERS

An arm may not override what makes the comparison fair: model, data, budget, length, seed.
Each (arm, seed) trains from the same initialisation seed and samples with that seed; the figures
of an arm are the mean over seeds with a 95% Student-t interval over seeds (with one seed: the
run's own bootstrap interval over prompts). `eval_dataset` must be named (see
`llm_irl.eval_task`). Output: report.md, results.json and PNG plots in output_dir, with the
frontier verdict of every arm against the first (`llm_irl.report`); each run's model,
trainer_state.json (its loss curves), samples.jsonl and eval.json in output_dir/runs/ARM/seedS.
(The command line is parsed in `llm_irl.cli`; the report is written by `llm_irl.report`.)
"""

from __future__ import annotations

import gc
import json
import os
import time
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from llm_irl.errors import ConfigError
from llm_irl.evaluate import EvalConfig, EvalTask, eval_config, evaluate_expert, evaluate_model, load_task
from llm_irl.files import write_atomic
from llm_irl.metrics.stats import seed_interval
from llm_irl.recipe import build, machine_defaults, parse_bool

COMPARE_KEYS = ("arms", "seeds", "other_trainers", "output_dir")
EVAL_KEYS = tuple(f.name for f in fields(EvalConfig) if f.name != "sample_seed")  # each run samples with its seed
SHARED_KEYS = ("eval_dataset", "eval_split", "dataset_config")  # read by both training and evaluation
# what an arm may not change, or it would not be the same data, budget and seeds
FAIR_KEYS = ("model_name_or_path", "dataset", "dataset_split", "dataset_config", "max_steps", "num_train_epochs",
             "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "seed", "output_dir")


@dataclass
class ComparePlan:
    """A validated compare recipe: what to train, how often, and how to evaluate it."""

    common: dict  # training keys shared by every arm
    arms: dict[str, dict]  # arm -> {"trainer": name, **overrides}
    seeds: list[int]
    eval: EvalConfig
    output_dir: str

    def run_dir(self, arm: str, seed: int) -> str:
        return os.path.join(self.output_dir, "runs", arm, f"seed{seed}")

    def training_recipe(self, arm: str, seed: int) -> dict:
        return {**self.common, **self.arms[arm], "seed": seed, "output_dir": self.run_dir(arm, seed)}


def parse_seeds(value) -> list[int]:
    """`3` -> [0, 1, 2]; `[0, 7]`, "0,7" or "[0, 7]" -> [0, 7]; "2," or "[2]" -> [2] (a bare "2" is a count)."""
    if isinstance(value, str):
        text = value.strip()
        as_list = "," in text or text.startswith("[")
        parts = [p.strip() for p in text.strip("[]").split(",") if p.strip()]
        try:
            value = [int(p) for p in parts] if as_list else int(text)
        except ValueError:
            raise ConfigError(f"seeds must be a count or a list of integers, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, list)):
        raise ConfigError(f"seeds must be a count or a list of integers, got {value!r}")
    seeds = list(range(value)) if isinstance(value, int) else [int(v) for v in value]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be at least one distinct integer, got {value!r}")
    return seeds


def make_plan(recipe: dict, overrides: dict[str, str] | None = None, source: str = "recipe") -> ComparePlan:
    """Split a compare recipe into common training keys, arms, seeds and evaluation; check every arm."""
    from llm_irl.trainers import TRAINERS  # read at run time: other trainers register themselves there

    merged = {**recipe, **(overrides or {})}
    for key in ("trainer", "seed"):
        if key in merged:
            raise ConfigError(f"{source}: a compare recipe has no {key!r}: arms name their trainer, "
                              "'seeds' lists the seeds")
    arms_spec = merged.get("arms") or {}
    if not isinstance(arms_spec, dict):
        raise ConfigError(f"{source}: 'arms' must map arm names to trainer overrides, e.g. iq: {{trainer: iq}}")
    arms = {}
    for name, spec in arms_spec.items():
        spec = dict(spec or {})
        spec.setdefault("trainer", name)
        if unfair := [k for k in FAIR_KEYS if k in spec]:
            raise ConfigError(f"{source}: arm {name!r} may not set {', '.join(unfair)}: every arm gets the same "
                              "model, data, budget and seeds (set them at the top level)")
        arms[str(name)] = spec
    if parse_bool(merged.get("other_trainers", True)):
        used = {spec["trainer"] for spec in arms.values()}
        arms.update({t: {"trainer": t} for t in TRAINERS if t not in used and t not in arms})
    if not arms:
        raise ConfigError(f"{source}: no arms to compare")
    evaluation = eval_config({k: merged[k] for k in EVAL_KEYS if k in merged}, source=source)
    if not evaluation.eval_dataset:  # say so now, not after the first arm has trained
        raise ConfigError(f"{source}: no eval_dataset: name the prompts every arm is evaluated on "
                          "(e.g. eval_dataset: data/test.jsonl, or builtin:markov for the embedded expert)")
    common = {k: v for k, v in merged.items() if k not in COMPARE_KEYS and (k not in EVAL_KEYS or k in SHARED_KEYS)}
    plan = ComparePlan(common=common, arms=arms, seeds=parse_seeds(merged.get("seeds", 3)), eval=evaluation,
                       output_dir=str(merged.get("output_dir", "runs/compare")))
    for arm in plan.arms:  # fail on a bad key now, not after hours of training the arms before it
        build(plan.training_recipe(arm, plan.seeds[0]), {}, TRAINERS, source=f"{source}: arm {arm!r}")
    return plan


def train_and_evaluate(plan: ComparePlan, arm: str, seed: int, train_rows, task: EvalTask, *,
                       progress: bool) -> dict:
    """Train one (arm, seed), save the model and its trainer_state.json (loss curves), evaluate it; the
    run's eval.json is its record."""
    from llm_irl.trainers import TRAINERS

    import torch

    recipe = {**machine_defaults(os.environ, torch.cuda.is_available()), **plan.training_recipe(arm, seed)}
    script, config = build(recipe, {"disable_tqdm": str(not progress)}, TRAINERS)
    trainer = TRAINERS[script.trainer][0](model=script.model_name_or_path, args=config, train_dataset=train_rows,
                                          peft_config=script.peft_config())
    trainer.train()
    trainer.save_model()
    trainer.save_state()
    run_dir = plan.run_dir(arm, seed)
    result = evaluate_model(trainer.model, trainer.processing_class, task, replace(plan.eval, sample_seed=seed),
                            samples_path=os.path.join(run_dir, "samples.jsonl"), progress=progress)
    write_atomic(os.path.join(run_dir, "eval.json"), json.dumps(result, indent=1))
    del trainer  # free the model and optimiser before the next arm
    gc.collect()
    return result


def run_compare(plan: ComparePlan, *, progress: bool = True, log=print) -> dict:
    """Train and evaluate every (arm, seed), then summarise over seeds. Returns results.json's content."""
    from llm_irl.data import read_rows
    from llm_irl.modeling import load_tokenizer

    start = time.time()
    # read once: every arm trains on exactly these rows and is judged on exactly these prompts
    train_rows = read_rows(plan.common["dataset"], plan.common.get("dataset_split", "train"),
                           plan.common.get("dataset_config"))
    task = load_task(plan.eval, trust_remote_code=bool(plan.common.get("trust_remote_code", False)))
    # the expert's own samples, under the same metrics (lengths and EAD-2 in the model's tokens)
    expert = evaluate_expert(task, plan.eval, load_tokenizer(plan.common["model_name_or_path"]))
    runs: dict[str, dict[str, dict]] = {arm: {} for arm in plan.arms}
    seconds: dict[str, list[float]] = {arm: [] for arm in plan.arms}
    total, done = len(plan.arms) * len(plan.seeds), 0
    for seed in plan.seeds:  # seed-major: a stopped run still has every arm on its first seeds
        for arm, spec in plan.arms.items():
            done += 1
            log(f"[{done}/{total}] {arm} (trainer {spec['trainer']}), seed {seed}: training "
                f"{plan.common.get('max_steps', '?')} steps, then sampling and scoring ...")
            t0 = time.time()
            runs[arm][str(seed)] = train_and_evaluate(plan, arm, seed, train_rows, task, progress=progress)
            seconds[arm].append(time.time() - t0)
            log(f"[{done}/{total}] {arm}, seed {seed}: done in {seconds[arm][-1]:.0f}s")
    return {
        "arms": plan.arms,
        "seeds": plan.seeds,
        "common": plan.common,
        "eval": asdict(plan.eval),
        "interval": interval_note(len(plan.seeds), plan.eval.sample_draws),
        "sample_quality": (task.sample_quality() or (None,))[0],
        "summary": {arm: summarize(list(by_seed.values())) for arm, by_seed in runs.items()},
        "expert": expert,
        "runs": runs,
        "seconds_per_run": {arm: float(np.mean(s)) for arm, s in seconds.items()},
        "runtime_s": time.time() - start,
    }


def merge_seed_results(parts: list[dict], names: list[str]) -> dict:
    """One compare result from runs of the same recipe on different seeds (say, one process or machine
    per seed): runs pooled, every summary recomputed over all seeds, compute time added up. `names` (one
    per part, e.g. its folder) go into the error that refuses parts of different recipes."""
    first = parts[0]
    for name, part in zip(names[1:], parts[1:]):
        for key in ("arms", "common", "eval"):
            if part[key] != first[key]:
                raise ConfigError(f"{name}: its {key!r} differ from {names[0]}'s: only runs of one recipe on "
                                  "different seeds can be merged")
    seeds = [s for part in parts for s in part["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{', '.join(names)}: seeds {seeds} repeat; merge runs of different seeds")
    runs = {arm: {str(s): part["runs"][arm][str(s)] for part in parts for s in part["seeds"]} for arm in first["arms"]}
    seconds = {arm: sum(p["seconds_per_run"][arm] * len(p["seeds"]) for p in parts) / len(seeds) for arm in first["arms"]}
    return {**{k: v for k, v in first.items() if k not in ("verdicts", "frontier")},
            "seeds": seeds, "interval": interval_note(len(seeds), first["eval"].get("sample_draws", 1)),
            "summary": {arm: summarize(list(by_seed.values())) for arm, by_seed in runs.items()},
            "runs": runs, "seconds_per_run": seconds, "runtime_s": sum(p["runtime_s"] for p in parts),
            "merged_from": list(names)}


# ---------------------------------------------------------------------------- statistics over seeds


def interval_note(num_seeds: int, draws: int = 1) -> str:
    """How a compare's intervals were made, for every report: over seeds, and what each seed's figure is."""
    per_seed = (f"each seed's figure the mean of {draws} sampling draws" if draws > 1
                else "each seed with one sampling draw of its own, so sampling noise is inside the interval")
    if num_seeds >= 2:
        return f"mean over {num_seeds} seeds, 95% Student-t interval over seeds ({per_seed})"
    return (f"one seed: 95% bootstrap interval over prompts where the metric is per prompt, "
            f"no interval where it is pooled{f' (the mean of {draws} sampling draws)' if draws > 1 else ''}")


def summarize(results: list[dict]) -> dict:
    """An arm's figures over its seeds, in the shape of one evaluation result."""

    def combine(per_seed: list[dict]) -> dict:
        return per_seed[0] if len(per_seed) == 1 else seed_interval([e["value"] for e in per_seed])

    def section(sections: list[dict]) -> dict:
        names = [n for n in sections[0] if all(n in s for s in sections)]
        return {n: combine([s[n] for s in sections]) for n in names}

    temps = results[0]["temperatures"]
    return {"metrics": section([r["metrics"] for r in results]),
            "temperatures": {t: section([r["temperatures"][t] for r in results]) for t in temps}}
