"""Loading models and tokenizers: the standard `from_pretrained` path, safely, or the builtin one."""

from __future__ import annotations

import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from llm_irl.builtin import is_builtin, load_builtin_model


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


def ensure_pad_token(tok):
    if tok.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token; set tokenizer.eos_token so completions can end")
    if tok.pad_token_id is None:
        # padding positions are masked out of every loss, so reusing EOS as padding is safe
        tok.pad_token = tok.eos_token
    return tok


def _check_local(name: str) -> None:
    """A path-looking name that does not exist is a typo, not a Hub id: say so before any lookup."""
    looks_like_path = name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1]
    if looks_like_path and not os.path.isdir(os.path.expanduser(name)):
        raise FileNotFoundError(f"model directory {name!r} does not exist")
