"""A cut-down lane for one question: how long are a trained student's samples, and how many end the turn?

run as:
    .venv/bin/python -m benchmarks.lm_expert.probe --td_weight 0.3 --seed 0                 # IQ as the lanes train it
    .venv/bin/python -m benchmarks.lm_expert.probe --td_weight 0.3 --seed 0 --td_huber 1   # any IQConfig key after
    .venv/bin/python -m benchmarks.lm_expert.probe --td_weight 0 --seed 0                  # λ 0: SFT's loss exactly

Trains IQ on the scarce regime's data with the lanes' training keys (`run.recipe`: 128 replies × 3 epochs,
LoRA on the last 8 layers, 48 steps), then samples the held-out prompts at T = 1 (16 prompts × 4 by default,
40 new tokens, as the lanes do) with `llm-irl evaluate` and prints one RESULT line: mean length and the share
ended. About 2.5 min on 2 idle cores, against ~15 core-min for a lane that also scores against the expert.
The training log (trainer_state.json) has `td_reversed`, the share of tokens whose likelihood the χ² term lowers.
`--head_lr_scale` multiplies the value head's learning rate (a lab knob, not an IQConfig key).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from benchmarks.lm_expert.run import recipe

TRAINING_KEYS = ("model_name_or_path", "dataset", "max_length", "max_steps", "per_device_train_batch_size",
                 "learning_rate", "lr_scheduler_type", "warmup_steps", "logging_steps", "use_peft", "lora_r",
                 "lora_alpha", "lora_dropout", "lora_target_modules")


def scale_head_learning_rate(scale: float) -> None:
    """Give the IQ trainer's state head `scale` times the learning rate of the other trainable parameters."""
    import torch

    from llm_irl.trainers.iq import IQTrainer

    plain = IQTrainer.create_optimizer

    def create_optimizer(self):
        if self.optimizer is not None:
            return plain(self)
        trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        head = [p for n, p in trainable if "state_head" in n]
        rest = [p for n, p in trainable if "state_head" not in n]
        lr = self.args.learning_rate
        self.optimizer = torch.optim.AdamW([{"params": rest, "lr": lr}, {"params": head, "lr": lr * scale}],
                                           lr=lr, weight_decay=self.args.weight_decay)
        return self.optimizer

    IQTrainer.create_optimizer = create_optimizer


def main(argv=None) -> int:
    import yaml

    from llm_irl import cli

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--td_weight", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num_prompts", type=int, default=16)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--head_lr_scale", type=float, default=1.0)
    p.add_argument("--output_dir", default=None, help="default: benchmarks/lm_expert/runs/probe/<settings> (git-ignored)")
    a, extra = p.parse_known_args(argv)
    name = f"td{a.td_weight}_seed{a.seed}" + (f"_head{a.head_lr_scale:g}x" if a.head_lr_scale != 1 else "") + \
        "".join(f"_{x.lstrip('-')}" for x in extra)
    out = a.output_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs", "probe", name)
    os.makedirs(out, exist_ok=True)
    lanes = recipe("scarce", out, ("iq",), [a.seed])
    train = {k: lanes[k] for k in TRAINING_KEYS} | {"trainer": "iq", "td_weight": a.td_weight, "seed": a.seed,
                                                     "output_dir": out, "save_strategy": "no", "report_to": "none"}
    with open(os.path.join(out, "train.yaml"), "w") as f:
        yaml.safe_dump(train, f, sort_keys=False)
    if a.head_lr_scale != 1:
        scale_head_learning_rate(a.head_lr_scale)
    start = time.time()
    if rc := cli.main(["train", os.path.join(out, "train.yaml"), *extra]):
        return rc
    trained = time.time() - start
    if rc := cli.main(["evaluate", out, "--eval_dataset", lanes["eval_dataset"], "--num_prompts", str(a.num_prompts),
                       "--k", str(a.k), "--temperatures", "1", "--max_new_tokens", str(lanes["max_new_tokens"]),
                       "--num_heldout", "8", "--sample_seed", str(a.seed), "--output", os.path.join(out, "eval.json")]):
        return rc
    with open(os.path.join(out, "eval.json")) as f:
        at_t1 = json.load(f)["temperatures"]["1"]
    print(f"RESULT {name}: length {at_t1['mean_length']['value']:.2f}, ended {at_t1['terminated']['value']:.3f} "
          f"({a.num_prompts} prompts x {a.k} at T = 1; train {trained:.0f} s, all {time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
