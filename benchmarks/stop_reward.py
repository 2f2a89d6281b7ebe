"""Where a trained model's implied reward sits: the stop action's mean reward against the other actions', and
the stop action's share of a demonstration's return, on held-out expert demonstrations.

run as:
    python -m benchmarks.stop_reward FOLDER [FOLDER ...]     # `llm-irl compare` output folders with runs/

For each arm and seed of a compare folder (its models under runs/ARM/seedN/, git-ignored) the held-out
demonstrations of the recipe's eval_dataset (first 200) are scored with `llm_irl.rewards.implied_rewards`,
which reads a state-head model's own reward. Prints one row per arm (mean over seeds) and writes
stop_reward.json beside the folder's summary.json. A treatment whose reward sits in the stop action shows a
stop reward far above the others and a share of the return far from the stop's share of tokens.
"""

from __future__ import annotations

import argparse
import json
import os

from llm_irl.data import encode_rows, read_rows
from llm_irl.modeling import load_model, load_tokenizer
from llm_irl.rewards import implied_rewards
from llm_irl.state_head import PER_STATE, VALUE_PARAM_KEY, restore_state_head

N_DEMOS = 200


def demonstrations(eval_dataset: str, tokenizer, max_length: int) -> tuple[list[list[int]], list[list[int]]]:
    """(prompt ids, completion ids) of the first N_DEMOS held-out rows, as the trainers tokenise them."""
    rows = encode_rows(read_rows(eval_dataset, "test", None), tokenizer, max_length=max_length)[:N_DEMOS]
    prompts, completions = [], []
    for row in rows:
        first = next(i for i, label in enumerate(row["labels"]) if label != -100)
        prompts.append(row["input_ids"][:first])
        completions.append(row["input_ids"][first:])
    return prompts, completions


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
            "stop_share_of_tokens": len(stop) / (len(stop) + len(other))}


def folder_figures(folder: str) -> dict[str, dict[str, float]]:
    with open(os.path.join(folder, "summary.json" if os.path.isfile(os.path.join(folder, "summary.json"))
                           else "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    recipe = {**results["common"], **results["eval"]}
    by_arm = {}
    for arm, spec in results["arms"].items():
        per_seed = []
        for seed in results["seeds"]:
            path = os.path.join(folder, "runs", arm, f"seed{seed}")
            if not os.path.isfile(os.path.join(path, "config.json")):
                continue
            model = load_model(path)
            if spec.get("value_param") in PER_STATE and not hasattr(model, "state_head"):
                setattr(model.config, VALUE_PARAM_KEY, spec["value_param"])  # saved before the key was recorded
                restore_state_head(model, path)
            tok = load_tokenizer(path)
            prompts, completions = demonstrations(recipe["eval_dataset"], tok, recipe["max_length"])
            per_seed.append(stop_figures(model, tok, prompts, completions, spec.get("gamma", 0.99)))
        if per_seed:
            by_arm[arm] = {k: sum(s[k] for s in per_seed) / len(per_seed) for k in per_seed[0]} | {"seeds": len(per_seed)}
    return by_arm


def section(folders: list[str]) -> list[str]:
    """BENCHMARKS.md's table of the stored stop_reward.json files (a folder without one is left out)."""
    lines = ["| setting | arm | r(stop) | r(other actions) | stop's share of the return | stop's share of the actions |",
             "|---|---|---|---|---|---|"]
    for folder in folders:
        path = os.path.join(folder, "stop_reward.json")
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            for arm, fig in json.load(f).items():
                lines.append(f"| {os.path.basename(folder)} | {arm} | {fig['reward_stop']:+.2f} | {fig['reward_other']:+.2f} | "
                             f"{fig['stop_share_of_return']:+.2f} | {fig['stop_share_of_tokens']:.2f} |")
    return lines if len(lines) > 2 else []


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+")
    a = p.parse_args(argv)
    for folder in a.folders:
        figures = folder_figures(folder)
        with open(os.path.join(folder, "stop_reward.json"), "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)
        print(f"== {folder}")
        for arm, fig in figures.items():
            print(f"{arm:22s} r(stop) {fig['reward_stop']:+8.2f}  r(other) {fig['reward_other']:+7.2f}  "
                  f"stop share of return {fig['stop_share_of_return']:+7.2f} (of tokens {fig['stop_share_of_tokens']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
