"""The tiny-model builders of the benchmarks: a Llama (or a T5) over a synthetic expert's words, any depth and width.

run as (from the repository root):
    python -m benchmarks.models --expert arithmetic --layers 4 --hidden 128   # -> benchmarks/built_models/arithmetic_4x128/
    python -m benchmarks.models --expert markov                              # -> benchmarks/built_models/markov_4x128/
    python -m benchmarks.models --expert markov --arch t5 --layers 1 --hidden 64   # -> benchmarks/built_models/markov_t5_1x64/

`builtin:tiny` (2 layers, hidden 64) learns the Markov and grammar experts only in part and the
arithmetic expert not at all (every arm, SFT included, had validity 0 with it). This writes a
wider/deeper randomly initialised model (safetensors, with the word tokenizer) that recipes name
by path, e.g. `benchmarks/model_4x128/*.yaml` and `python -m benchmarks.study --model_size 4x128`.
The folder is git-ignored: it is rebuilt from the seed in seconds, bit for bit.
"""

from __future__ import annotations

import argparse
import os

from benchmarks.settings import built_model_dir, parse_size, rel


def build(layers: int, hidden: int, seed: int = 0, expert: str = "arithmetic"):
    """(model, tokenizer): `builtin:tiny`'s config over the expert's words, LAYERS deep and HIDDEN wide."""
    import torch
    from transformers import AutoModelForCausalLM

    from llm_irl.builtin import expert_named, tiny_model_config, word_tokenizer

    tok = word_tokenizer(expert_named(expert).vocab)
    config = tiny_model_config(len(tok))
    config.num_hidden_layers, config.hidden_size, config.intermediate_size = layers, hidden, 2 * hidden
    config.num_attention_heads, config.num_key_value_heads = max(4, hidden // 32), max(2, hidden // 64)
    config.max_position_embeddings = 256
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config), tok


def build_t5(layers: int, hidden: int, seed: int = 0, expert: str = "markov"):
    """(model, tokenizer): a T5 over the expert's words, LAYERS deep on each side (encoder and decoder),
    HIDDEN wide, FFN and heads as `build`'s Llama: 1x64 has about the parameters of `builtin:tiny` (2x64)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, T5Config

    from llm_irl.builtin import expert_named, word_tokenizer

    tok = word_tokenizer(expert_named(expert).vocab)
    heads = max(4, hidden // 32)
    config = T5Config(vocab_size=len(tok), d_model=hidden, d_kv=hidden // heads, d_ff=2 * hidden, num_layers=layers,
                      num_heads=heads, dropout_rate=0.0, tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    return AutoModelForSeq2SeqLM.from_config(config), tok


BUILDERS = {"llama": build, "t5": build_t5}


def write_model(out: str, layers: int, hidden: int, seed: int, expert: str, arch: str = "llama") -> None:
    model, tok = BUILDERS[arch](layers, hidden, seed, expert)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    print(f"{rel(out)}: {sum(p.numel() for p in model.parameters()):,} parameters")


def model_path(expert: str, size: str, seed: int = 0, arch: str = "llama") -> str:
    """Path (from the repo root) of a LAYERSxHIDDEN Llama (or T5) over the expert's words, built from `seed` if missing."""
    layers, hidden = parse_size(size)
    out = built_model_dir(expert, layers, hidden, arch)
    if not os.path.exists(os.path.join(out, "config.json")):
        write_model(out, layers, hidden, seed, expert, arch)
    return rel(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--expert", default="arithmetic", help="whose vocabulary: arithmetic, markov or grammar")
    parser.add_argument("--arch", default="llama", choices=sorted(BUILDERS), help="a causal Llama or an encoder–decoder T5")
    args = parser.parse_args(argv)
    write_model(built_model_dir(args.expert, args.layers, args.hidden, args.arch), args.layers, args.hidden, args.seed,
                args.expert, args.arch)


if __name__ == "__main__":
    main()
