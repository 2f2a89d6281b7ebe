"""`llm-irl quickstart`: SFT against inverse soft-Q on the embedded default, offline, in minutes.

Each arm trains the same tiny Llama from the same initialisation on the same Markov-expert
demonstrations with the same budget; the recipes in `recipes/quickstart_*.yaml` hold exactly
these settings (a test keeps them equal), so `llm-irl train` reproduces any arm on its own.
Because the expert's likelihood is exact, sample quality is measured as the expert's own
log-likelihood of what each model writes.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from llm_irl.builtin import builtin_dataset, default_expert
from llm_irl.metrics import distinct_n
from llm_irl.recipe import build
from llm_irl.rollout import generate_rollouts
from llm_irl.scoring import mean_nll

COMMON = {
    "model_name_or_path": "builtin:tiny",
    "dataset": "builtin:markov",
    "eval_dataset": "builtin:markov",
    "max_length": 32,
    "max_steps": 300,
    "per_device_train_batch_size": 32,
    "learning_rate": 0.003,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 10,
    "logging_steps": 50,
    "save_strategy": "no",
    "seed": 0,
}
ARMS = {
    "sft": {"trainer": "sft"},
    "iq": {"trainer": "iq", "gamma": 0.99, "td_weight": 0.1},
}


def recipe(arm: str, output_root: str = "runs/quickstart") -> dict:
    """The full recipe of one arm, as `recipes/quickstart_<arm>.yaml` spells it."""
    return {**ARMS[arm], **COMMON, "output_dir": os.path.join(output_root, arm)}


def sample_and_score(model, tokenizer, prompts: list[str], *, num_samples: int, seed: int) -> dict:
    expert = default_expert()
    ids = [tokenizer(p)["input_ids"] for p in prompts]
    rollouts = generate_rollouts(model, tokenizer, ids, max_new_tokens=COMMON["max_length"], num_samples=num_samples,
                                 seed=seed)
    texts = [tokenizer.decode(c, skip_special_tokens=True) for c in rollouts.completion_ids]
    repeated = [p for p in prompts for _ in range(num_samples)]
    return {
        "expert_loglik": expert.mean_logprob_per_token(repeated, texts),
        "valid": expert.validity_rate(repeated, texts),
        "distinct_2": distinct_n(texts, 2),
        "mean_len": float(np.mean([len(t.split()) for t in texts])),
    }


def main(argv: list[str] | None = None) -> int:
    from llm_irl.trainers import TRAINERS

    p = argparse.ArgumentParser(prog="llm-irl quickstart", description=__doc__.splitlines()[0])
    p.add_argument("--output_dir", default="runs/quickstart")
    p.add_argument("--max_steps", type=int, default=COMMON["max_steps"])
    p.add_argument("--num_prompts", type=int, default=100)
    p.add_argument("--num_samples", type=int, default=4)
    a = p.parse_args(argv)

    test = builtin_dataset("builtin:markov", "test")
    prompts = [r["prompt"] for r in test[: a.num_prompts]]
    expert = default_expert()
    rng = np.random.default_rng(123)
    expert_texts = [expert.sample_completion(q, rng) for q in prompts for _ in range(a.num_samples)]
    rows = {"expert": {"heldout_nll": float("nan"),
                       "expert_loglik": expert.mean_logprob_per_token([q for q in prompts for _ in range(a.num_samples)],
                                                                      expert_texts),
                       "valid": 1.0, "distinct_2": distinct_n(expert_texts, 2),
                       "mean_len": float(np.mean([len(t.split()) for t in expert_texts]))}}
    for arm in ARMS:
        start = time.time()
        script, config = build(recipe(arm, a.output_dir), {"max_steps": str(a.max_steps), "disable_tqdm": "true"},
                               TRAINERS)
        trainer = TRAINERS[arm][0](model=script.model_name_or_path, args=config, train_dataset=script.dataset)
        print(f"[{arm}] training {config.max_steps} steps ...", flush=True)
        trainer.train()
        trainer.save_model()
        trainer.save_state()
        model, tok = trainer.model, trainer.processing_class
        row = {"heldout_nll": mean_nll(model, tok, [r["prompt"] for r in test], [r["completion"] for r in test])}
        row.update(sample_and_score(model, tok, prompts, num_samples=a.num_samples, seed=0))
        rows[arm] = row
        print(f"[{arm}] done in {time.time() - start:.0f}s", flush=True)
    print(format_table(rows))
    print("heldout_nll: nats/token on held-out expert demos (lower is better); expert_loglik: the expert's "
          "log-likelihood per token of model samples (higher is better); distinct_2 over "
          f"{a.num_prompts}x{a.num_samples} samples at temperature 1 (compare with the expert's own).")
    return 0


def format_table(rows: dict[str, dict[str, float]]) -> str:
    cols = list(next(iter(rows.values())))
    lines = ["| arm | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += ["| " + name + " | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |" for name, r in rows.items()]
    return "\n".join(lines)
