"""Where a trained model's implied reward sits: the stop action's mean reward against the other actions', and
the stop action's share of a demonstration's return, on held-out expert demonstrations.

run as:
    python -m benchmarks.stop_reward FOLDER [FOLDER ...]     # `llm-irl compare` output folders with runs/
    python -m benchmarks.stop_reward LANE [LANE ...] --merge OUT   # one-(arm, seed) compares of one study

For each arm and seed of a compare folder (its models under runs/ARM/seedN/, git-ignored) the held-out
demonstrations of the recipe's eval_dataset (first 200) are scored with `llm_irl.rewards.implied_rewards`,
which reads a state-head model's own reward. Prints one row per arm (mean over seeds) and writes
stop_reward.json beside the folder's summary.json. A treatment whose reward sits in the stop action shows a
stop reward far above the others and a share of the return far from the stop's share of tokens. Beside them, the
model's π(EOS) where each demonstration stops (`stop_probability`): how far training lowered the stop there.
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from llm_irl.batching import labelled_row, pad_batch
from llm_irl.data import encode_rows, read_rows
from llm_irl.defaults import IQ_VALUE_PARAM
from llm_irl.modeling import eval_mode, load_model, load_tokenizer, policy_temperature
from llm_irl.rewards import implied_rewards
from llm_irl.scoring import logits_over_actions
from llm_irl.seq2seq import decoder_prefix
from llm_irl.soft_q import action_mask, token_logprobs
from llm_irl.state_head import PER_STATE, VALUE_PARAM_KEY, restore_state_head

N_DEMOS = 200


def demonstrations(eval_dataset: str, tokenizer, max_length: int) -> tuple[list[list[int]], list[list[int]]]:
    """(prompt ids, completion ids) of the first N_DEMOS held-out rows, as the trainers tokenise them."""
    rows = encode_rows(read_rows(eval_dataset, "test", None), tokenizer, max_length=max_length)[:N_DEMOS]
    prompts, completions = [], []
    for row in rows:
        acting = [i for i, label in enumerate(row["labels"]) if label != -100]
        prompts.append(row["input_ids"][:acting[0]])
        # up to the last action: a chat template may add tokens after the turn's EOS that are not actions
        completions.append(row["input_ids"][acting[0]:acting[-1] + 1])
    return prompts, completions


@torch.no_grad()
def stop_probability(model, tokenizer, prompts, completions, batch_size: int = 64) -> float:
    """The model's mean π(EOS) at the states where the held-out demonstrations stop, teacher-forced (π as sampled
    at T = 1: softmax(logits/α)). No sampling noise, so it resolves what the share of samples ending with EOS
    cannot at a few hundred samples: how far an objective lowered the stop where the expert stops."""
    prefix = decoder_prefix(model)  # None for a causal LM
    rows = [labelled_row(p, c, prefix) for p, c in zip(prompts, completions) if c[-1] == tokenizer.eos_token_id]
    alpha, device, probs = policy_temperature(model), next(model.parameters()).device, []
    with eval_mode(model):
        for start in range(0, len(rows), batch_size):
            batch = {k: v.to(device) for k, v in pad_batch(rows[start:start + batch_size], tokenizer.pad_token_id).items()}
            logits, labels = logits_over_actions(model, batch)
            logp = token_logprobs(logits / alpha, labels)
            last = action_mask(labels).cumsum(-1).argmax(-1)  # each row's last action: its EOS
            probs += logp[torch.arange(len(last)), last].exp().tolist()
    return sum(probs) / len(probs)


def stop_figures(model, tokenizer, prompts, completions, gamma: float) -> dict[str, float]:
    out = implied_rewards(model, tokenizer, prompts, completions, gamma=gamma)
    eos = tokenizer.eos_token_id
    stop, other, total = [], [], 0.0
    for ids, rewards in zip(completions, out.rewards):
        ends = ids[-1] == eos and len(rewards) == len(ids)
        other += rewards[:-1] if ends else rewards
        stop += rewards[-1:] if ends else []
        total += sum(rewards)
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
    # pooled over the demonstrations: a per-row ratio is unstable where a row's return is near 0
    return {"reward_stop": mean(stop), "reward_other": mean(other), "stop_share_of_return": sum(stop) / total,
            "stop_share_of_tokens": len(stop) / (len(stop) + len(other)),
            "stop_probability": stop_probability(model, tokenizer, prompts, completions)}


def seed_figures(folder: str) -> dict[str, list[dict[str, float]]]:
    """Per arm of a compare folder, `stop_figures` of each seed's saved model (a full save or adapters)."""
    with open(os.path.join(folder, "summary.json" if os.path.isfile(os.path.join(folder, "summary.json"))
                           else "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    recipe = {**results["common"], **results["eval"]}
    by_arm = {}
    for arm, spec in results["arms"].items():
        for seed in results["seeds"]:
            path = os.path.join(folder, "runs", arm, f"seed{seed}")
            if not any(os.path.isfile(os.path.join(path, name)) for name in ("config.json", "adapter_config.json")):
                continue
            model = load_model(path)
            value_param = spec.get("value_param", IQ_VALUE_PARAM) if spec.get("trainer") == "iq" else None
            if value_param in PER_STATE and not hasattr(model, "state_head"):
                # saved before llm_irl recorded the key (full saves before it, adapters before they kept it)
                setattr(model.config, VALUE_PARAM_KEY, value_param)
                restore_state_head(model, path)
            tok = load_tokenizer(path)
            prompts, completions = demonstrations(recipe["eval_dataset"], tok, recipe["max_length"])
            by_arm.setdefault(arm, []).append(stop_figures(model, tok, prompts, completions, spec.get("gamma", 0.99)))
    return by_arm


def mean_by_arm(per_arm: dict[str, list[dict[str, float]]]) -> dict[str, dict]:
    """Each figure's mean over seeds; the stop probability per seed too (seeds in order), for paired gaps."""
    return {arm: {k: sum(s[k] for s in seeds) / len(seeds) for k in seeds[0]}
            | {"seeds": len(seeds), "stop_probability_by_seed": [s["stop_probability"] for s in seeds]}
            for arm, seeds in per_arm.items() if seeds}


def folder_figures(folder: str) -> dict[str, dict[str, float]]:
    return mean_by_arm(seed_figures(folder))


def section(folders: list[str], labels: dict[str, str] | None = None) -> list[str]:
    """BENCHMARKS.md's table of the stored stop_reward.json files (a folder without one is left out); a setting is
    named by `labels[folder]`, else by the folder's name."""
    lines = ["| setting | arm | r(stop) | r(other actions) | stop's share of the return | stop's share of the actions "
             "| π(stop) where the demonstration stops |", "|---|---|---|---|---|---|---|"]
    for folder in folders:
        path = os.path.join(folder, "stop_reward.json")
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            for arm, fig in json.load(f).items():
                p_stop = f"{fig['stop_probability']:.3f}" if "stop_probability" in fig else "–"  # files written before it have none
                lines.append(f"| {(labels or {}).get(folder, os.path.basename(folder))} | {arm} | {fig['reward_stop']:+.2f} | "
                             f"{fig['reward_other']:+.2f} | {fig['stop_share_of_return']:+.2f} | "
                             f"{fig['stop_share_of_tokens']:.2f} | {p_stop} |")
    return lines if len(lines) > 2 else []


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+")
    p.add_argument("--merge", metavar="OUT", help="the folders are lanes (one arm, one seed each) of one comparison: "
                                                   "write one stop_reward.json, per arm over every lane, to OUT")
    a = p.parse_args(argv)
    if a.merge:
        per_arm = {}
        for folder in a.folders:
            for arm, seeds in seed_figures(folder).items():
                per_arm.setdefault(arm, []).extend(seeds)
        jobs = [(a.merge, mean_by_arm(per_arm))]
    else:
        jobs = [(folder, folder_figures(folder)) for folder in a.folders]
    for folder, figures in jobs:
        with open(os.path.join(folder, "stop_reward.json"), "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)
        print(f"== {folder}")
        for arm, fig in figures.items():
            print(f"{arm:22s} r(stop) {fig['reward_stop']:+8.2f}  r(other) {fig['reward_other']:+7.2f}  "
                  f"stop share of return {fig['stop_share_of_return']:+7.2f} (of tokens {fig['stop_share_of_tokens']:.2f})  "
                  f"π(stop) where the demonstration stops {fig['stop_probability']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
