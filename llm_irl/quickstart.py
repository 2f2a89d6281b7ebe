"""The quickstart's settings: SFT against inverse soft-Q (and GAIL) on the embedded default, offline, in minutes.

run as:
    llm-irl quickstart                 # one seed (the README gives its measured time)
    llm-irl quickstart --max_steps 20 --num_prompts 10 --num_samples 2   # a smoke test: ~1 min on 2 CPU cores
    llm-irl quickstart --seeds 3       # what recipes/compare_quickstart.yaml runs (minus other trainers)

Each arm trains the same tiny Llama from the same initialisation on the same Markov-expert
demonstrations with the same budget; the recipes in `recipes/quickstart_*.yaml` hold exactly
these settings (a test keeps them equal), so `llm-irl train` reproduces any arm on its own.
The arms then go through the compare pipeline (`llm_irl.compare`): greedy decoding and samples at
three temperatures, quality, diversity, length, EOS share and loops with intervals beside the
expert's own, each arm's quality–diversity frontier against SFT's (printed at the end), report.md
and plots in the output folder. Because the expert's likelihood is exact, sample quality is the
expert's own log-likelihood of what each model writes.
"""

from __future__ import annotations

import os

from llm_irl.compare import ComparePlan, make_plan

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
    # IQConfig's defaults, spelled out: the χ² term centred, the stop rewards on their own centre (the value after EOS
    # learned), Huber's beyond 0.5 nats, V from a value head
    "iq": {"trainer": "iq", "gamma": 0.99, "td_weight": 0.03, "td_huber": 0.5, "terminal_td": "centred_absorbing",
           "value_param": "head"},
    # online: half of each batch sampled from the current policy (the paper used a tenth), every other setting
    # IQConfig's default, their stops in the value term as IQ-Learn has them (BENCHMARKS.md "Online IQ with the
    # defaults in the quickstart's setting")
    "online_iq": {"trainer": "iq", "gamma": 0.99, "td_weight": 0.03, "td_huber": 0.5, "terminal_td": "centred_absorbing",
                  "value_param": "head", "policy_mix": 0.5, "policy_terminal_value": "include", "max_new_tokens": 32},
    # SFT warm start, then a likelihood-ratio discriminator's per-token reward and PPO (benchmarks/gail_notes.md)
    "gail": {"trainer": "gail", "sft_steps": 150, "disc_loss": "airl", "disc_param": "policy_ratio",
             "disc_level": "sequence", "disc_steps": 4, "disc_learning_rate": 0.001, "gamma": 0.5, "policy_update": "ppo",
             "ppo_epochs": 2, "ppo_minibatches": 1, "kl_coef": 0.05, "mle_weight": 1.0},
}


def recipe(arm: str, output_root: str = "runs/quickstart") -> dict:
    """The full recipe of one arm, as `recipes/quickstart_<arm>.yaml` spells it."""
    return {**ARMS[arm], **COMMON, "output_dir": os.path.join(output_root, arm)}


# how every arm is evaluated: samples up to the training length, greedy decoding (T = 0) and three
# temperatures around 1: the points of each arm's quality–diversity frontier
EVAL = {"temperatures": [0, 0.7, 1.0, 1.3], "k": 8, "num_prompts": 100, "max_new_tokens": COMMON["max_length"]}


def compare_recipe(seeds: int = 1, other_trainers: bool = False, output_dir: str = "runs/quickstart") -> dict:
    """The comparison of ARMS on COMMON, as `recipes/compare_quickstart.yaml` spells it (seeds=3, other
    trainers on, output_dir runs/compare_quickstart). Compare recipes name seeds, not one seed."""
    common = {k: v for k, v in COMMON.items() if k != "seed"}
    return {**common, **EVAL, "seeds": seeds, "output_dir": output_dir, "other_trainers": other_trainers,
            "arms": {arm: dict(spec) for arm, spec in ARMS.items()}}


def quickstart_plan(*, seeds: int = 1, output_dir: str = "runs/quickstart", max_steps: int = COMMON["max_steps"],
                    num_prompts: int = EVAL["num_prompts"], k: int = EVAL["k"]) -> ComparePlan:
    """The quickstart's comparison of ARMS, with the budget and evaluation size the command line chose."""
    spec = {**compare_recipe(seeds, output_dir=output_dir), "max_steps": max_steps, "num_prompts": num_prompts, "k": k}
    return make_plan(spec, source="quickstart")
