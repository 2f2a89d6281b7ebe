"""What the loss-speed scripts share: the random Llama they time and its batch (`bench_iq_vs_sft`, `bench_gem_vs_sft`).

A `bench_*` module like them: a random Llama of any size is their tool, not a study model (`benchmarks.models`).

Not run on its own. The Llama is random (speed does not depend on the weights), built from a config of the
command line's size; every row of the batch ends with EOS and its first quarter is prompt.
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoModelForCausalLM, LlamaConfig


def add_size_args(p: argparse.ArgumentParser, repeats: int) -> None:
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=repeats)


def model_and_batch(a: argparse.Namespace):
    """(model, AdamW over it, input_ids, labels) for the sizes in `a`, seeded."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=4 * a.hidden,
                         num_hidden_layers=a.layers, num_attention_heads=4, num_key_value_heads=4, eos_token_id=2)
    model = AutoModelForCausalLM.from_config(config)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-5)
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, a.vocab, (a.batch, a.seq), generator=g)
    input_ids[:, -1] = 2  # EOS ends every row
    labels = input_ids.clone()
    labels[:, : a.seq // 4] = -100
    return model, optim, input_ids, labels
