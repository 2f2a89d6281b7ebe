"""Demonstrations from a real language-model expert, by context distillation (BENCHMARKS.md "Real language,
known expert").

run as:
    .venv/bin/python -m benchmarks.pretrained.prepare      # once: SmolLM2-135M-Instruct and the chat prompts
    .venv/bin/python -m benchmarks.lm_expert.prepare       # the expert's samples (a few minutes, one thread)

The expert is SmolLM2-135M-Instruct with `INSTRUCTION` as its system turn, sampled at `TEMPERATURE`
(top_p 1) on real human first turns (`benchmarks/pretrained/data`, conversations split into train and
held-out there); the student is the same model without the instruction. Its likelihood is exact
(`llm_irl.tasks.lm_expert.LanguageModelExpert`), so quality (the expert's log-likelihood of a student's
samples), coverage (forward KL on held-out expert samples) and precision (reverse KL) are exact figures
on real language.

Written under `data/` (git-ignored), `{"messages": [user turn, expert reply]}` rows:
- `train_{N}.jsonl` for each N in `--train`: the expert's replies to the first N training prompts (the
  prompts of a smaller set are the first ones of a larger set, the replies are drawn per set);
- `heldout.jsonl`: its replies to the first `--heldout` held-out prompts, for the forward KL and as the
  prompts the students are sampled on;
- `manifest.json`: settings, counts, lengths, the share of draws redrawn for not ending within
  `MAX_NEW_TOKENS`, and seconds. A set already drawn under the same settings is kept, so adding a size draws
  only that set; a changed setting redraws every set (`--force` redoes them anyway).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PRETRAINED = os.path.join(os.path.dirname(HERE), "pretrained")
MODEL = os.path.join(PRETRAINED, "model")
CHAT = os.path.join(PRETRAINED, "data")
DATA = os.path.join(HERE, "data")

INSTRUCTION = "You are a cheerful pirate. Answer every message in one short sentence of pirate speak."
TEMPERATURE = 0.7
MAX_NEW_TOKENS = 48  # the instruction asks for one short sentence: ~80% end within 48 at T 0.7 (probe)
SEED = 0


def expert(batch_size: int = 32):
    from llm_irl.tasks.lm_expert import LanguageModelExpert

    return LanguageModelExpert(MODEL, instruction=INSTRUCTION, temperature=TEMPERATURE,
                               max_new_tokens=MAX_NEW_TOKENS, batch_size=batch_size)


def first_turns(path: str, n: int) -> list[list[dict]]:
    """The first `n` distinct opening user turns of a prepared chat file, each as a one-turn conversation."""
    seen, out = set(), []
    with open(path, encoding="utf-8") as f:
        for line in f:
            turn = json.loads(line)["messages"][0]
            if turn["role"] == "user" and turn["content"] not in seen:
                seen.add(turn["content"])
                out.append([{"role": "user", "content": turn["content"]}])
            if len(out) == n:
                return out
    sys.exit(f"{path} has {len(out)} distinct opening user turns, fewer than the {n} asked for")


def stream(name: str) -> int:
    """The random stream a set is drawn from: train_128 and heldout keep the streams (0 and 1) they were first
    drawn with, every other train_N draws from stream N, so adding a set never redraws another."""
    return {"train_128": 0, "heldout": 1}.get(name) or int(name.split("_")[1])


def write_rows(path: str, prompts: list, replies: list[str]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for prompt, reply in zip(prompts, replies, strict=True):
            f.write(json.dumps({"messages": [*prompt, {"role": "assistant", "content": reply}]}) + "\n")
    os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", default="128,512", help="comma-separated demonstration set sizes")
    p.add_argument("--heldout", type=int, default=48)
    p.add_argument("--force", action="store_true")
    a = p.parse_args()
    if not os.path.isfile(os.path.join(MODEL, "prepared.json")):
        sys.exit(f"{MODEL}: not prepared; run: .venv/bin/python -m benchmarks.pretrained.prepare")
    import torch

    torch.set_num_threads(1)
    sizes = sorted(int(n) for n in a.train.split(","))
    settings = {"instruction": INSTRUCTION, "temperature": TEMPERATURE, "max_new_tokens": MAX_NEW_TOKENS,
                "seed": SEED, "heldout": a.heldout}
    manifest_path = os.path.join(DATA, "manifest.json")
    manifest = {}
    if not a.force and os.path.isfile(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
        # a set drawn under other settings is stale, and so is every other set: draw them all again
        if {k: v for k, v in manifest["settings"].items() if k != "train"} != settings:
            manifest = {}
    counts = manifest.get("sets", {})
    os.makedirs(DATA, exist_ok=True)
    e = None
    sets = {f"train_{n}": (os.path.join(CHAT, "train.jsonl"), n) for n in sizes}
    sets["heldout"] = (os.path.join(CHAT, "heldout.jsonl"), a.heldout)
    for name, (source, n) in sets.items():
        if name in counts and os.path.isfile(os.path.join(DATA, f"{name}.jsonl")):
            print(f"{name}: already drawn under these settings")
            continue
        e = e or expert()
        start = time.time()
        prompts = first_turns(source, n)
        replies = e.sample_many(prompts, np.random.default_rng([SEED, stream(name)]))
        write_rows(os.path.join(DATA, f"{name}.jsonl"), prompts, replies)
        lengths = [e.completion_length(r) for r in replies]
        counts[name] = {"rows": n, "mean_tokens": float(np.mean(lengths)), "redrawn_share": e.last_redraw_share,
                        "seconds": round(time.time() - start)}
        print(f"{name}: {counts[name]}", flush=True)
        with open(manifest_path, "w") as f:  # after every set: an interrupted run keeps what it drew
            trained = sorted(int(k.split("_")[1]) for k in counts if k.startswith("train_"))
            json.dump({"settings": {**settings, "train": trained}, "sets": counts,
                       "model": os.path.relpath(MODEL, HERE)}, f, indent=1)


if __name__ == "__main__":
    main()
