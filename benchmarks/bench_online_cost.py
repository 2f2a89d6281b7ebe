"""What learning from one's own samples costs: online IQ, GAIL and SPIN against their offline twins, per demo token.

Every arm trains the same model on the same demonstrations at the same batch size, so one
optimiser step consumes the same demonstration tokens in every arm, and the ratio of two arms'
seconds per step is their ratio per demonstration token. The seconds are process CPU seconds at
one torch thread (the wall time of an idle core; other processes' load barely moves them), wall
seconds beside them. Arms alternate within each repeat (order reversed every other repeat);
each run's mean over its timed steps, the median over repeats. A step is timed from one `on_step_end` to the next, so online
IQ's and SPIN's sampling (done while fetching the step's batches) is inside it. Each online
arm's phase shares (`time_<phase>_share`, docs/logs.md: rollout, scoring, discriminator, update)
say where its step goes.

Ratios (the issue's targets in brackets): online IQ at policy share 0.1 and 0.5 / offline IQ
(SmolLM2: ≤ 1.15, ≤ 1.4; embedded default: 0.5 ≤ 2), GAIL / SFT and SPIN / SFT (≤ 2).

run as:
    .venv/bin/python -m benchmarks.bench_online_cost --setting tiny       # embedded default (~3 min)
    .venv/bin/python -m benchmarks.bench_online_cost --setting smollm2    # SmolLM2-135M + LoRA (~10 min)
    .venv/bin/python -m benchmarks.bench_online_cost --setting tiny --threads-check  # lone run, 1 vs 2 threads
SmolLM2 needs benchmarks/pretrained/prepare.py's model and data (`--pretrained DIR` to point elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from llm_irl.trainers import TRAINERS

HERE = os.path.dirname(os.path.abspath(__file__))

# the quickstart's settings (recipes/quickstart_*.yaml); IQ as in its online recipe for both IQ arms
TINY = dict(model="builtin:tiny", batch=32, max_length=32, max_new_tokens=32, learning_rate=3e-3, lora=0)
SMOLLM2 = dict(model=None, batch=8, max_length=128, max_new_tokens=48, learning_rate=2e-4, lora=16)
IQ = dict(gamma=0.99, td_weight=0.03, terminal_td="exclude", value_param="logits", policy_terminal_value="exclude")
GAIL = dict(disc_loss="airl", disc_param="policy_ratio", disc_level="sequence", disc_steps=4, disc_learning_rate=1e-3,
            gamma=0.5, ppo_epochs=2, ppo_minibatches=1, kl_coef=0.05, mle_weight=1.0, sft_steps=0)
ARMS = {
    "sft": ("sft", {}),
    "iq": ("iq", IQ),
    "online_iq_0.1": ("iq", {**IQ, "policy_mix": 0.1}),
    "online_iq_0.5": ("iq", {**IQ, "policy_mix": 0.5}),
    # one batched call draws the policy rows of 8 steps: decode's per-step overhead shared by 8x the rows
    "online_iq_0.1_every8": ("iq", {**IQ, "policy_mix": 0.1, "rollout_every": 8}),
    "online_iq_0.5_every8": ("iq", {**IQ, "policy_mix": 0.5, "rollout_every": 8}),
    "gail": ("gail", GAIL),
    "spin": ("spin", dict(spin_iterations=1, beta=0.1)),
}
# (arm, baseline, target per setting)
ONLINE_TARGETS = {0.1: {"smollm2": 1.15}, 0.5: {"smollm2": 1.4, "tiny": 2.0}}
RATIOS = [(arm, "iq", ONLINE_TARGETS[spec["policy_mix"]]) for arm, (_, spec) in ARMS.items() if spec.get("policy_mix")]
RATIOS += [("gail", "sft", {"smollm2": 2.0, "tiny": 2.0}), ("spin", "sft", {"smollm2": 2.0, "tiny": 2.0})]


class StepClock(TrainerCallback):
    """Wall and process CPU seconds at the end of each optimiser step (sampling in get_batch_samples included)."""

    def __init__(self):
        self.ends: list[tuple[float, float]] = []

    def on_train_begin(self, args, state, control, **kw):
        self.ends = [(time.perf_counter(), time.process_time())]

    def on_step_end(self, args, state, control, **kw):
        self.ends.append((time.perf_counter(), time.process_time()))

    def per_step(self, skip: int) -> tuple[float, float]:
        """Mean (wall, CPU) seconds of the steps after the first `skip`."""
        (w0, c0), (w1, c1), n = self.ends[skip], self.ends[-1], len(self.ends) - 1 - skip
        return (w1 - w0) / n, (c1 - c0) / n


def training_rows(setting: dict, pretrained: str, n: int):
    if setting["model"] == "builtin:tiny":
        return "builtin:markov"
    with open(os.path.join(pretrained, "data", "train_pc.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line, _ in zip(f, range(n))]


def lora(setting: dict):
    if not setting["lora"]:
        return None
    from peft import LoraConfig

    return LoraConfig(r=setting["lora"], lora_alpha=2 * setting["lora"], lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


def run_arm(name: str, setting: dict, rows, warmup: int, steps: int) -> dict:
    """Train one arm for `warmup` + `steps` optimiser steps: the mean seconds of the timed steps (a mean, not a
    median: GAIL and `rollout_every` sample on some steps only) and their mean share of sampling."""
    trainer_name, overrides = ARMS[name]
    trainer_cls, config_cls = TRAINERS[trainer_name]
    args = config_cls(output_dir=tempfile.mkdtemp(prefix="bench_online_"), per_device_train_batch_size=setting["batch"],
                      max_steps=warmup + steps, max_length=setting["max_length"], learning_rate=setting["learning_rate"],
                      logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, seed=0, disable_tqdm=True,
                      **({"max_new_tokens": setting["max_new_tokens"]} if trainer_name != "sft" else {}),
                      **overrides)
    trainer = trainer_cls(setting["model"], args=args, train_dataset=rows, peft_config=lora(setting))
    clock = StepClock()
    trainer.add_callback(clock)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    wall, cpu = clock.per_step(warmup)
    logs = [h for h in trainer.state.log_history if "time_step" in h and h["step"] > warmup]
    phases = [k[5:] for k in (logs[0] if logs else {}) if k.startswith("time_") and k != "time_step"
              and not k.endswith("_share")]
    shares = {p: sum(h[f"time_{p}"] for h in logs) / sum(h["time_step"] for h in logs) for p in phases}
    return {"wall_s": wall, "cpu_s": cpu, "shares": shares}


def warm_start(setting: dict, rows, steps: int) -> str:
    """An SFT checkpoint after `steps` steps: every arm starts from it, as the quickstart's GAIL and SPIN do.

    From a random start the policy's samples run to max_new_tokens (3x a demonstration's length on the
    embedded default) and cost the online arms more than they will once the policy has learned to stop.
    """
    trainer_cls, config_cls = TRAINERS["sft"]
    out = tempfile.mkdtemp(prefix="bench_online_warm_")
    args = config_cls(output_dir=out, per_device_train_batch_size=setting["batch"], max_steps=steps,
                      max_length=setting["max_length"], learning_rate=setting["learning_rate"], save_strategy="no",
                      report_to=[], use_cpu=True, seed=0, disable_tqdm=True, lr_scheduler_type="constant")
    trainer = trainer_cls(setting["model"], args=args, train_dataset=rows)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    trainer.save_model(out)
    return out


def demo_tokens_per_step(setting: dict, rows) -> float:
    """Mean action tokens of a batch of demonstrations (the same batches in every arm)."""
    from llm_irl.data import load_demonstrations
    from llm_irl.modeling import load_tokenizer

    tok = load_tokenizer(setting["model"])
    data = load_demonstrations(rows, tok, max_length=setting["max_length"], split="train")
    sample = [data[i] for i in range(min(len(data), 512))]
    actions = statistics.mean(sum(label != -100 for label in r["labels"][1:]) for r in sample)
    return actions * setting["batch"]


def measure(setting_name: str, setting: dict, arms: list[str], repeats: int, warmup: int, steps: int, rows) -> dict:
    """Each arm's median over repeats of its mean step seconds, arms alternating (reversed every other repeat)."""
    runs = {arm: [] for arm in arms}
    for r in range(repeats):
        for arm in (arms if r % 2 == 0 else arms[::-1]):
            out = run_arm(arm, setting, rows, warmup, steps)
            runs[arm].append(out)
            print(f"  {setting_name} repeat {r} {arm}: {out['cpu_s']:.3f} CPU s/step, {out['wall_s']:.3f} wall s/step "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    return {arm: {"cpu_s": statistics.median(o["cpu_s"] for o in outs),
                  "wall_s": statistics.median(o["wall_s"] for o in outs),
                  "shares": {p: statistics.mean(o["shares"][p] for o in outs) for p in outs[0]["shares"]}}
            for arm, outs in runs.items()}


def report(setting_name: str, result: dict, tokens: float) -> None:
    """Per-arm costs and the ratios, on process CPU seconds: with one thread they are the wall time of an idle
    core, and another process's load barely moves them (wall seconds beside them, for reference)."""
    print(f"\n{setting_name}: {tokens:.0f} demonstration action tokens per step")
    print(f"{'arm':22s} {'CPU s/step':>10s} {'wall s/step':>11s} {'CPU ms/demo token':>17s}  shares of the step "
          "(docs/logs.md)")
    for arm, r in result.items():
        shares = ", ".join(f"{p} {v:.2f}" for p, v in r["shares"].items())
        print(f"{arm:22s} {r['cpu_s']:10.3f} {r['wall_s']:11.3f} {1e3 * r['cpu_s'] / tokens:17.3f}  {shares}")
    for arm, base, targets in RATIOS:
        if arm in result and base in result:
            ratio = result[arm]["cpu_s"] / result[base]["cpu_s"]
            wall = result[arm]["wall_s"] / result[base]["wall_s"]
            target = targets.get(setting_name.split()[0])
            verdict = "" if target is None else f" (target <= {target}: {'met' if ratio <= target else 'NOT met'})"
            print(f"{arm} / {base} = {ratio:.2f}x per demonstration token (wall {wall:.2f}x){verdict}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--setting", choices=["tiny", "smollm2"], default="tiny")
    p.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of " + ", ".join(ARMS))
    p.add_argument("--repeats", type=int, default=None, help="default: 3 (tiny), 1 (smollm2)")
    p.add_argument("--warmup", type=int, default=0,
                   help="untimed steps per arm run, a multiple of 8: the timed steps must hold whole sampling "
                        "periods (a period's rows are drawn at its first step; the run's last period is cut at "
                        "max_steps, so the timed steps end the run)")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per arm run, a multiple of 8 (the rollout_every arms' period); default 24 (tiny), "
                        "8 (smollm2)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--threads-check", action="store_true",
                   help="instead: online IQ (0.5) and offline IQ at 1 and at 2 threads, alternating")
    p.add_argument("--warm_start", type=int, default=None,
                   help="SFT steps before the arms start (from their end); default 150 (tiny), 0 (smollm2)")
    p.add_argument("--pretrained", default=os.path.join(HERE, "pretrained"), help="folder with model/ and data/")
    a = p.parse_args()
    tiny = a.setting == "tiny"
    setting = dict(TINY if tiny else SMOLLM2)
    if not tiny:
        setting["model"] = os.path.join(a.pretrained, "model")
    repeats, warmup, steps = a.repeats or (3 if tiny else 1), a.warmup, a.steps or (24 if tiny else 8)
    arms = a.arms.split(",")
    if unknown := [arm for arm in arms if arm not in ARMS]:
        raise SystemExit(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    rows = training_rows(setting, a.pretrained, 4096)
    print(f"torch {torch.__version__}, setting {a.setting}, batch {setting['batch']}, max_length "
          f"{setting['max_length']}, max_new_tokens {setting['max_new_tokens']}, LoRA r {setting['lora'] or 'none'}, "
          f"{repeats} repeat(s) of {warmup} + {steps} steps per arm, load average {os.getloadavg()[0]:.2f}")
    tokens = demo_tokens_per_step(setting, rows)
    warm = a.warm_start if a.warm_start is not None else (150 if tiny else 0)
    if warm:
        torch.set_num_threads(a.threads)
        setting["model"] = warm_start(setting, rows, warm)
        print(f"every arm starts from SFT after {warm} steps")
    if a.threads_check:
        for threads in (1, 2, 1, 2):
            torch.set_num_threads(threads)
            result = measure(f"{a.setting} {threads} thread(s)", setting, ["iq", "online_iq_0.5"], 1, warmup, steps,
                             rows)
            report(f"{a.setting} {threads} thread(s)", result, tokens)
        return
    torch.set_num_threads(a.threads)
    print(f"{a.threads} torch thread(s)")
    result = measure(a.setting, setting, arms, repeats, warmup, steps, rows)
    report(a.setting, result, tokens)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
