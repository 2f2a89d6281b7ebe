"""Model handles: loading models and tokenizers (`from_pretrained`, safely, or the builtin one), the
model under its DDP/PEFT wrappers, and eval mode for a block.

What a loss needs from a loaded model's output layer is in `llm_irl.lm_head`; which ids end a
completion or pad a batch is in `llm_irl.special_tokens`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from llm_irl.builtin import is_builtin, load_builtin_model
from llm_irl.special_tokens import ensure_pad_token


def load_model(name_or_model, *, dtype: str = "auto", trust_remote_code: bool = False, seed: int = 0):
    """Model from a name, a local directory, `builtin:tiny`, or an already built model (returned as is).

    Weights load from safetensors only; remote code runs only when asked for.
    """
    if isinstance(name_or_model, torch.nn.Module):
        return name_or_model
    if is_builtin(name_or_model):
        return load_builtin_model(name_or_model, seed=seed)[0]
    _check_local(name_or_model)
    return AutoModelForCausalLM.from_pretrained(
        name_or_model, dtype=dtype, trust_remote_code=trust_remote_code, use_safetensors=True
    )


def load_tokenizer(name_or_model, *, trust_remote_code: bool = False):
    """Tokenizer for a model name/dir (or a built model's `name_or_path`), with a pad token ensured."""
    if is_builtin(name_or_model):
        tok = load_builtin_model(name_or_model)[1]
    else:
        name = name_or_model.name_or_path if isinstance(name_or_model, PreTrainedModel) else name_or_model
        if not name:
            raise ValueError("the model has no name_or_path to load a tokenizer from: pass processing_class=")
        _check_local(name)
        tok = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    return ensure_pad_token(tok)


def _check_local(name: str) -> None:
    """A path-looking name that does not exist is a typo, not a Hub id: say so before any lookup."""
    looks_like_path = name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1]
    if looks_like_path and not os.path.isdir(os.path.expanduser(name)):
        raise FileNotFoundError(f"model directory {name!r} does not exist")


def unwrap_model(model: nn.Module, *, keep_peft: bool = False) -> nn.Module:
    """The model under DDP/DeepSpeed's `.module` and, unless `keep_peft`, PEFT's base model.

    Fully unwrapped it is the transformers model itself (its config, heads and attached
    submodules such as `value_head`, LoRA layers still injected). `keep_peft=True` stops at a
    `PeftModel`, whose own `generate` keeps every kind of adapter active.
    """
    for _ in range(8):
        if isinstance(getattr(model, "module", None), nn.Module):
            model = model.module
        elif not keep_peft and hasattr(model, "get_base_model") and model.get_base_model() is not model:
            model = model.get_base_model()
        else:
            break
    return model


@contextmanager
def eval_mode(model: nn.Module):
    """`model` in eval mode (no dropout) inside the block, its previous mode restored after, even on error."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
