"""GAIL on the Markov expert from an SFT warm start: does the discriminator keep learning, and does it steer?

run as:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_gail_markov.py [--set mle_weight=0 --set kl_coef=0.05 ...]

One run of `llm-irl train recipes/quickstart_gail.yaml`'s settings (builtin:tiny on builtin:markov),
overridden by `--set key=value`. Every `--every` optimiser steps, from the end of the SFT phase
on, it prints the expert's mean log-likelihood per token of samples of the current policy for
`--prompts` held-out prompts (temperature 1; higher is closer to the expert), their mean length,
and the training log's held-out discriminator balanced accuracy (fresh demos against fresh
samples before the discriminator trains on them), its training accuracy and the KL to the
reference (nats per completion). Nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import yaml
from transformers import TrainerCallback

from llm_irl.batching import pad_batch
from llm_irl.builtin import builtin_dataset, default_expert
from llm_irl.data import encode_prompt_completion
from llm_irl.modeling import unwrap_model
from llm_irl.rollout import completion_text, generate_rollouts
from llm_irl.adversarial import GAILConfig, GAILTrainer

SCRIPT_KEYS = {"trainer", "model_name_or_path", "dataset", "eval_dataset", "output_dir"}


def expert_loglik(model, tok, prompts: list[str], max_new_tokens: int, seed: int) -> tuple[float, float]:
    """(expert log-likelihood per token, mean tokens incl. EOS) of one sample per prompt."""
    expert = default_expert()
    ids = [tok(p, add_special_tokens=True)["input_ids"] for p in prompts]
    out = generate_rollouts(unwrap_model(model, keep_peft=True), tok, ids, max_new_tokens=max_new_tokens,
                            batch_size=len(ids), seed=seed)
    texts = [completion_text(tok, c, t) for c, t in zip(out.completion_ids, out.terminated)]
    return expert.mean_logprob_per_token(prompts, texts), statistics.mean(len(c) for c in out.completion_ids)


def heldout_disc(trainer, demos: dict) -> dict:
    """The discriminator's loss and balanced accuracy on held-out demos against fresh samples for their prompts."""
    samples = trainer.rollout(trainer.model, demos, seed=11)
    samples["policy_logprobs"] = samples.pop("old_logprobs")
    return trainer.discriminator_stats(demos, samples)


class Probe(TrainerCallback):
    def __init__(self, trainer_ref, prompts, demos, every, sft_steps, max_new_tokens):
        self.t, self.prompts, self.demos, self.every = trainer_ref, prompts, demos, every
        self.sft_steps, self.max_new = sft_steps, max_new_tokens
        self.rows = []

    def on_step_end(self, args, state, control, **kw):
        step = state.global_step
        if step >= self.sft_steps and (step - self.sft_steps) % self.every == 0:
            trainer = self.t[0]
            ll, length = expert_loglik(trainer.model, trainer.processing_class, self.prompts, self.max_new, seed=7)
            logs = [h for h in state.log_history if "disc_heldout_bal_acc" in h]
            window = logs[-self.every:] if logs and step > self.sft_steps else []
            mean = lambda k: statistics.mean(h[k] for h in window) if window else float("nan")  # noqa: E731
            disc = heldout_disc(trainer, self.demos) if step > self.sft_steps else {}
            row = dict(step=step, expert_ll=ll, length=length,
                       D_bal_acc_heldout=disc.get("disc_bal_acc", float("nan")),
                       D_loss_heldout=disc.get("disc_loss", float("nan")),
                       **{k: mean(k) for k in ("disc_heldout_bal_acc", "disc_train_bal_acc", "kl", "reward",
                                               "clip_frac")})
            self.rows.append(row)
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="recipes/quickstart_gail.yaml")
    p.add_argument("--set", action="append", default=[], help="key=value override (YAML value)")
    p.add_argument("--every", type=int, default=25)
    p.add_argument("--prompts", type=int, default=200)
    p.add_argument("--output_dir", default="runs/bench_gail_markov")
    a = p.parse_args()
    with open(a.recipe) as f:
        recipe = yaml.safe_load(f)
    for kv in a.set:
        k, v = kv.split("=", 1)
        recipe[k] = yaml.safe_load(v)
    recipe["logging_steps"] = 1
    args = GAILConfig(output_dir=a.output_dir, disable_tqdm=True, report_to="none",
                      **{k: v for k, v in recipe.items() if k not in SCRIPT_KEYS})
    test = builtin_dataset("builtin:markov", "test")[: a.prompts]
    prompts = [r["prompt"] for r in test]
    ref = []
    probe = Probe(ref, prompts, None, a.every, args.sft_steps, args.max_length - 3)
    trainer = GAILTrainer(model=recipe["model_name_or_path"], args=args,
                          train_dataset=builtin_dataset(recipe["dataset"]), callbacks=[probe])
    ref.append(trainer)
    probe.demos = {k: v.to(args.device) for k, v in pad_batch(
        [encode_prompt_completion(trainer.processing_class, r["prompt"], r["completion"], max_length=args.max_length)
         for r in test], trainer.processing_class.pad_token_id).items()}
    print({k: recipe[k] for k in sorted(recipe) if k not in SCRIPT_KEYS}, flush=True)
    start = time.time()
    if args.sft_steps == 0:
        probe.on_step_end(args, trainer.state, None)
    trainer.train()
    first, last = probe.rows[0], probe.rows[-1]
    accs = [r["D_bal_acc_heldout"] for r in probe.rows[1:]] or [float("nan")]
    print(f"expert loglik/token {first['expert_ll']:.3f} -> {last['expert_ll']:.3f} "
          f"(best {max(r['expert_ll'] for r in probe.rows):.3f}); length {first['length']:.2f} -> {last['length']:.2f}; "
          f"held-out D balanced accuracy ({len(test)} demos vs as many samples) min {min(accs):.3f}, "
          f"mean {statistics.mean(accs):.3f}; KL to the reference at the end {last['kl']:.3f} nats; "
          f"{time.time() - start:.0f}s", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
