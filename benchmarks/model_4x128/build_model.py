"""A Llama bigger than `builtin:tiny`, over a synthetic expert's words, saved as a local model folder.

run as:
    python -m benchmarks.models --layers 4 --hidden 128   # -> benchmarks/built_models/arithmetic_4x128/
    python -m benchmarks.models --expert markov           # -> benchmarks/built_models/markov_4x128/

The ground-truth study leaves the arithmetic expert out because every arm, SFT included, had
validity 0 with the 2-layer, 64-wide `builtin:tiny-arithmetic`. This writes a wider/deeper
randomly initialised model (safetensors, with the word tokenizer) that recipes name by path, so
`llm-irl compare benchmarks/model_4x128/probe.yaml` can measure how far SFT gets with it. The
folder is git-ignored: it is rebuilt from the seed in seconds.
"""

from __future__ import annotations

import argparse
import os

import torch
from transformers import AutoModelForCausalLM

from llm_irl.builtin import expert_named, tiny_model_config, word_tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))


def build(layers: int, hidden: int, seed: int = 0, expert: str = "arithmetic"):
    tok = word_tokenizer(expert_named(expert).vocab)
    config = tiny_model_config(len(tok))
    config.num_hidden_layers, config.hidden_size, config.intermediate_size = layers, hidden, 2 * hidden
    config.num_attention_heads, config.num_key_value_heads = max(4, hidden // 32), max(2, hidden // 64)
    config.max_position_embeddings = 256
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config), tok


def folder_name(expert: str, layers: int, hidden: int) -> str:
    """`model_4x128` for the arithmetic expert (the first one built), `markov_4x128` and so on for the others."""
    return f"{'model' if expert == 'arithmetic' else expert}_{layers}x{hidden}"


def write_model(out: str, layers: int, hidden: int, seed: int, expert: str) -> None:
    model, tok = build(layers, hidden, seed, expert)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    print(f"{out}: {sum(p.numel() for p in model.parameters()):,} parameters")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--expert", default="arithmetic", help="whose vocabulary: arithmetic, markov or grammar")
    args = parser.parse_args(argv)
    out = os.path.join(HERE, folder_name(args.expert, args.layers, args.hidden))
    write_model(out, args.layers, args.hidden, args.seed, args.expert)


if __name__ == "__main__":
    main()
