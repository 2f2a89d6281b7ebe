"""Which imitation method wins when a weaker student imitates a real language model? (BENCHMARKS.md "Real
language, known expert").

run as:
    .venv/bin/python -m benchmarks.lm_expert.prepare                  # once: the expert's demonstrations
    .venv/bin/python -m benchmarks.lm_expert.run --quick              # a few minutes: checks the pipeline
    nohup .venv/bin/python -m benchmarks.lm_expert.run > benchmarks/lm_expert/run.log 2>&1 &

Every arm fine-tunes the student (SmolLM2-135M-Instruct without the expert's instruction, LoRA on the
last layers: weaker than the expert, which is the whole model with the instruction in context) on the
expert's replies, then is sampled on held-out prompts and judged by the expert itself, all through
`llm-irl compare` with `expert_model`, `expert_instruction` and `expert_temperature`:
- quality: the expert's log-likelihood of the samples (per token; read beside length and loops);
- coverage: forward KL on the expert's held-out replies, at each sampled temperature;
- precision: reverse KL at T = 1;
- diversity within a prompt's samples (Self-BLEU, distinct-2) and across prompts.
Regimes: `scarce`, 128 demonstrations, 3 epochs (SFT overfits here if anywhere); `plentiful` (`--regime
plentiful`), one pass over 512. Lanes (one arm, one
seed) run two at a time with one torch thread each, reused when finished under the same recipe;
writes results/REGIME/{recipe.yaml, report.md, results.json} (`python -m benchmarks.summary` keeps
the summary.json BENCHMARKS.md reads).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from benchmarks.lm_expert.prepare import DATA, INSTRUCTION, MODEL, TEMPERATURE
from benchmarks.pretrained.run import ROOT, evaluation_and_lanes, lora_training, merge_lane_results, run_lanes, write_yaml

HERE = os.path.dirname(os.path.abspath(__file__))
BY = "benchmarks/lm_expert/run.py"

REGIMES = {
    "scarce": {"demos": 128, "epochs": 3, "batch": 8, "seeds": [0, 1, 2], "num_prompts": 16, "k": 4,
               "temperatures": [0, 0.7, 1.0, 1.3], "max_new_tokens": 40, "num_heldout": 48},
    # one pass over four times the demonstrations (sized to the CPU budget: 512 is ~9 min of the expert's sampling)
    "plentiful": {"demos": 512, "epochs": 1, "batch": 8, "seeds": [0, 1, 2], "num_prompts": 16, "k": 4,
                  "temperatures": [0, 0.7, 1.0, 1.3], "max_new_tokens": 40, "num_heldout": 48},
    "quick": {"demos": 128, "epochs": 1, "batch": 8, "seeds": [0], "num_prompts": 4, "k": 2,
              "temperatures": [0, 1.0], "max_new_tokens": 16, "num_heldout": 8, "steps": 3},
}
ARMS = {
    "sft": {"trainer": "sft"},
    # the library's defaults when these lanes ran: IQ-Learn's χ² term, pinned since td_huber's default became 0.5,
    # and `terminal_td: centred` (every IQ arm here but the absorbing one), pinned since it became `centred_absorbing`
    "iq": {"trainer": "iq", "td_huber": 0.0, "terminal_td": "centred"},
    "gem": {"trainer": "sft", "loss_type": "gem"},
    "online_iq": {"trainer": "iq", "policy_mix": 0.1, "max_new_tokens": 40, "td_huber": 0.0,  # the paper's mix-in
                  "terminal_td": "centred"},
    "iq_td0.3": {"trainer": "iq", "td_weight": 0.3, "td_huber": 0.0, "terminal_td": "centred"},
    # the same with the χ² term made Huber's loss (docs/design.md, "How large a td_weight")
    "iq_td0.3_huber": {"trainer": "iq", "td_weight": 0.3, "td_huber": 1.0, "terminal_td": "centred"},
    "iq_td0.3_huber0.5": {"trainer": "iq", "td_weight": 0.3, "td_huber": 0.5, "terminal_td": "centred"},
    "iq_td0.3_huber0.25": {"trainer": "iq", "td_weight": 0.3, "td_huber": 0.25, "terminal_td": "centred"},
    # the defaults at λ 0.3: the absorbing state's value learned too, so the stop rewards centre on their own
    "iq_td0.3_absorbing": {"trainer": "iq", "td_weight": 0.3, "td_huber": 0.5, "terminal_td": "centred_absorbing"},
    "iq_td0.3_absorbing_huber0.25": {"trainer": "iq", "td_weight": 0.3, "td_huber": 0.25,
                                     "terminal_td": "centred_absorbing"},
    # the defaults as they stand (λ 0.03, Huber κ 0.5, `centred_absorbing`)
    "iq_absorbing": {"trainer": "iq", "td_huber": 0.5, "terminal_td": "centred_absorbing"},
    "gail": {"trainer": "gail"},
    "spin": {"trainer": "spin"},
}
DEFAULT_ARMS = ("sft", "iq", "gem", "online_iq")


def recipe(regime: str, out_dir: str, arms, seeds, draws: int = 1) -> dict:
    s = REGIMES[regime]
    steps = s.get("steps", s["epochs"] * s["demos"] // s["batch"])
    rel = lambda path: os.path.relpath(path, ROOT)  # compare runs from the repository root
    return {
        "model_name_or_path": rel(MODEL),
        "dataset": rel(os.path.join(DATA, f"train_{s['demos']}.jsonl")),
        "eval_dataset": rel(os.path.join(DATA, "heldout.jsonl")),
        "expert_model": rel(MODEL),
        "expert_instruction": INSTRUCTION,
        "expert_temperature": TEMPERATURE,
        "max_length": 160,
        **lora_training(steps, s["batch"], max(1, steps // 20), max(1, steps // 12)),
        **evaluation_and_lanes(s, out_dir, {a: ARMS[a] for a in arms}, seeds),
        "sample_draws": s.get("sample_draws", draws),
    }


def finished_draws(lane_dir: str, lane_recipe: dict) -> int:
    """How many sampling draws a lane finished under this recipe (its draws aside) holds; 0 when it has not."""
    import yaml

    path = os.path.join(lane_dir, "recipe.yaml")
    if not (os.path.isfile(os.path.join(lane_dir, "results.json")) and os.path.isfile(path)):
        return 0
    with open(path) as f:
        old = yaml.safe_load(f)
    return old.get("sample_draws", 1) if {**old, "sample_draws": lane_recipe["sample_draws"]} == lane_recipe else 0


def add_draws(lane_dir: str, lane_recipe: dict) -> bool:
    """A lane that finished under this recipe but with fewer sampling draws (it ran before `sample_draws`) gets
    the missing draws from its saved adapter, as `compare` would have drawn them (`llm_irl.evaluate.draw_seed`,
    `sample_figures`, `mean_over_draws`); then its recipe is this one. Returns whether it drew."""
    draws = lane_recipe["sample_draws"]
    if not 0 < finished_draws(lane_dir, lane_recipe) < draws:
        return False
    done, path = os.path.join(lane_dir, "results.json"), os.path.join(lane_dir, "recipe.yaml")
    from dataclasses import replace

    from llm_irl.compare import interval_note, summarize
    from llm_irl.evaluate import EvalConfig, draw_path, draw_seed, load_task, mean_over_draws, sample_figures
    from llm_irl.modeling import load_model, load_tokenizer

    start = time.time()
    with open(done) as f:
        results = json.load(f)
    config = EvalConfig(**{**results["eval"], "sample_draws": 1})
    task = load_task(config)
    for arm, by_seed in results["runs"].items():
        for seed, result in by_seed.items():
            run_dir = os.path.join(lane_dir, "runs", arm, f"seed{seed}")
            model, tokenizer = load_model(run_dir), load_tokenizer(run_dir)
            first = result.get("draws", [result["temperatures"]])
            per_draw = list(first)
            for d in range(len(first), draws):
                figures = sample_figures(model, tokenizer, task, replace(config, sample_seed=draw_seed(int(seed), d)),
                                         samples_path=draw_path(os.path.join(run_dir, "samples.jsonl"), d))
                # what a draw does not sample (forward KL at T) is draw 0's
                per_draw.append({t: {**first[0][t], **figures[t]} for t in figures})
            by_seed[seed] = {**result, "temperatures": mean_over_draws(per_draw), "draws": per_draw,
                             "sample_draws": draws}
    results["eval"]["sample_draws"] = draws
    results["summary"] = {arm: summarize(list(by_seed.values())) for arm, by_seed in results["runs"].items()}
    results["interval"] = interval_note(len(results["seeds"]), draws)
    results["runtime_s"] += time.time() - start
    with open(done + ".tmp", "w") as f:
        json.dump(results, f)
    os.replace(done + ".tmp", done)
    write_yaml(lane_recipe, path, by=BY)
    return True


def lane_has(lane_dir: str, lane_recipe: dict) -> bool:
    """A lane finished under this recipe, or under it with more sampling draws than it asks for (their first
    `sample_draws` are what `first_draws` reads)."""
    return finished_draws(lane_dir, lane_recipe) >= lane_recipe["sample_draws"]


def first_draws(results: dict, draws: int) -> dict:
    """A lane's results read with its first `draws` sampling draws only (each run's figures their mean)."""
    from llm_irl.compare import interval_note, summarize
    from llm_irl.evaluate import mean_over_draws

    if results["eval"].get("sample_draws", 1) == draws:
        return results
    runs = {arm: {seed: {**r, "temperatures": r["draws"][0] if draws == 1 else mean_over_draws(r["draws"][:draws]),
                         "draws": r["draws"][:draws], "sample_draws": draws} for seed, r in by_seed.items()}
            for arm, by_seed in results["runs"].items()}
    return {**results, "eval": {**results["eval"], "sample_draws": draws}, "runs": runs,
            "summary": {arm: summarize(list(by_seed.values())) for arm, by_seed in runs.items()},
            "interval": interval_note(len(results["seeds"]), draws)}


def fill_reverse_kl(lanes: dict) -> list[str]:
    """Lanes evaluated before the reverse KL read the student's token ids (it was skipped: decode -> encode does
    not round-trip for SmolLM2's tokenizer) get it from their saved T = 1 samples, with the library's own
    `reverse_kl_figure`; returns the lanes filled. The other figures are untouched."""
    from llm_irl.evaluate import EvalConfig, load_task, reverse_kl_figure
    from llm_irl.generation import by_temperature, load_jsonl
    from llm_irl.modeling import load_tokenizer

    filled, task, tokenizer = [], None, None
    for (arm, seed), lane_dir in lanes.items():
        path = os.path.join(lane_dir, "results.json")
        with open(path) as f:
            results = json.load(f)
        at_1 = results["runs"][arm][str(seed)]["temperatures"].get("1")
        if at_1 is None or "reverse_kl" in at_1:
            continue
        if task is None:  # one expert for every lane: the settings are the recipe's, the same in each
            task = load_task(EvalConfig(**results["eval"]))
            tokenizer = load_tokenizer(results["common"]["model_name_or_path"])
        samples = by_temperature(load_jsonl(os.path.join(lane_dir, "runs", arm, f"seed{seed}", "samples.jsonl")))[1.0]
        if (figure := reverse_kl_figure([x for g in samples for x in g], task, tokenizer)) is not None:
            at_1["reverse_kl"] = figure
            with open(path, "w") as f:
                json.dump(results, f)
            filled.append(f"{arm}_seed{seed}")
    return filled


def untrained_forward_kl(eval_settings: dict, temperatures=(0.7, 1.0, 1.3)) -> dict[str, float]:
    """The student before training (the base model, no instruction): forward KL on the expert's held-out replies
    at each T, the floor every arm starts from."""
    from llm_irl.evaluate import EvalConfig, load_task
    from llm_irl.metrics.ground_truth import forward_kl_at
    from llm_irl.modeling import load_model, load_tokenizer

    task = load_task(EvalConfig(**eval_settings))
    prompts, replies = map(list, zip(*task.heldout))
    kl = forward_kl_at(task.expert, load_model(MODEL), load_tokenizer(MODEL), prompts, replies, list(temperatures))
    return {f"{t:g}": v for t, v in kl.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few minutes: checks the pipeline, not the claim")
    p.add_argument("--regime", default="scarce", choices=[r for r in REGIMES if r != "quick"])
    p.add_argument("--arms", default=",".join(DEFAULT_ARMS), help="comma-separated, from " + ",".join(ARMS))
    p.add_argument("--seeds", default=None, help="comma-separated, replaces the regime's")
    p.add_argument("--draws", type=int, default=1,
                   help="sampling draws per trained model (finished lanes get the missing ones from their adapters); "
                        "results go to results/REGIME_drawsN when N > 1")
    a = p.parse_args()
    regime = "quick" if a.quick else a.regime
    if not os.path.isfile(os.path.join(DATA, "manifest.json")):
        sys.exit(f"{DATA}: no demonstrations; run: .venv/bin/python -m benchmarks.lm_expert.prepare")
    arms = tuple(a.arms.split(","))
    if unknown := [x for x in arms if x not in ARMS]:
        sys.exit(f"unknown arms {unknown}; known: {', '.join(ARMS)}")
    seeds = [int(x) for x in a.seeds.split(",")] if a.seeds else REGIMES[regime]["seeds"]
    name = regime if a.draws == 1 else f"{regime}_draws{a.draws}"
    out_dir = os.path.join(HERE, "results", name) if regime != "quick" else os.path.join(HERE, "runs", "quick")
    lanes_dir = os.path.join(HERE, "runs", regime, "lanes")
    os.makedirs(out_dir, exist_ok=True)
    write_yaml(recipe(regime, out_dir, arms, seeds, a.draws), os.path.join(out_dir, "recipe.yaml"), by=BY)
    start = time.time()
    lanes = {(arm, seed): os.path.join(lanes_dir, f"{arm}_seed{seed}") for seed in seeds for arm in arms}
    todo = []
    for (arm, seed), lane_dir in lanes.items():
        os.makedirs(lane_dir, exist_ok=True)
        lane_recipe = recipe(regime, lane_dir, (arm,), [seed], a.draws)
        if add_draws(lane_dir, lane_recipe):
            print(f"{arm} seed {seed}: drew the missing sampling draws from the saved adapter", flush=True)
        if lane_has(lane_dir, lane_recipe):
            print(f"{arm} seed {seed}: reusing {os.path.relpath(lane_dir, ROOT)}", flush=True)
            continue
        write_yaml(lane_recipe, os.path.join(lane_dir, "recipe.yaml"), by=BY)
        todo.append((arm, seed))
    run_lanes(lanes, todo, start)
    filled = fill_reverse_kl(lanes)
    lane_results = {}
    for key, lane_dir in lanes.items():
        with open(os.path.join(lane_dir, "results.json")) as f:
            lane_results[key] = first_draws(json.load(f), a.draws)
    results = merge_lane_results(list(lane_results.values()))
    lane_s = {f"{arm}_seed{seed}": r["runtime_s"] for (arm, seed), r in lane_results.items()}
    results["runtime_s"] = sum(lane_s.values()) / 2
    results["untrained_forward_kl"] = untrained_forward_kl(results["eval"])
    results["timing"] = {"lanes_s": {k: round(v) for k, v in lane_s.items()}, "this_call_s": round(time.time() - start),
                         "reverse_kl_from_saved_samples": filled}
    from llm_irl.report import write_report

    paths = write_report(results, out_dir, title=f"lm_expert {name}")
    untrained = ", ".join(f"{v:.3f} at T = {t}" for t, v in results["untrained_forward_kl"].items())
    with open(paths["report"], "a", encoding="utf-8") as f:
        f.write(f"\nThe student before training (the base model, no instruction): forward KL on the expert's held-out "
                f"replies {untrained} (nats/token).\n")
    print(f"wrote {out_dir}: recipe.yaml, report.md, results.json ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
