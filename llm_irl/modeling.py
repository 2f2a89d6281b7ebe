"""Model handles: loading models and tokenizers (`from_pretrained`, safely, or the builtin one), the
model under its DDP/PEFT wrappers, eval mode for a block, and the temperature α of the policy a
model was trained as (kept across saves, adapter-only ones included).

What a loss needs from a loaded model's output layer is in `llm_irl.lm_head`; which ids end a
completion or pad a batch is in `llm_irl.special_tokens`.
"""

from __future__ import annotations

import copy
import json
import os
from contextlib import contextmanager

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
)

from llm_irl.builtin import is_builtin, load_builtin_model
from llm_irl.errors import ConfigError
from llm_irl.files import missing_local_path
from llm_irl.special_tokens import ensure_pad_token
from llm_irl.state_head import ABSORBING_VALUE_KEY, PER_STATE, VALUE_PARAM_KEY, restore_state_head, value_param_of


def load_model(name_or_model, *, dtype: str = "auto", trust_remote_code: bool = False, seed: int = 0,
               attn_implementation: str | None = None):
    """Model from a name, a local directory, `builtin:tiny`, or an already built model (returned as is).

    A causal LM or an encoder–decoder (T5, BART, ...), as the checkpoint's config says; any other
    architecture is a one-line error.
    Weights load from safetensors only; remote code runs only when asked for. `attn_implementation`
    (eager, sdpa, ...) goes to `from_pretrained` when given.
    """
    if isinstance(name_or_model, torch.nn.Module):
        return name_or_model
    if is_builtin(name_or_model):
        return load_builtin_model(name_or_model, seed=seed)[0]
    _check_local(name_or_model)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    # the checkpoint's config says which head class: a causal LM, or an encoder–decoder (T5, BART, ...)
    config = AutoConfig.from_pretrained(_config_source(name_or_model), trust_remote_code=trust_remote_code)
    model = auto_model_class(config, name_or_model).from_pretrained(
        name_or_model, dtype=dtype, trust_remote_code=trust_remote_code, use_safetensors=True, **extra
    )
    if os.path.isfile(os.path.join(name_or_model, ADAPTER_CONFIG)):  # the base's config: α is beside the adapter
        restore_policy_temperature(model, name_or_model)
    if os.path.isdir(name_or_model):  # IQ's value head or offsets: from_pretrained leaves them out
        restore_state_head(model, name_or_model)
    return model


def auto_model_class(config, name: str):
    """`AutoModelForSeq2SeqLM` for an encoder–decoder config, `AutoModelForCausalLM` for a causal one (remote
    code included, by its `auto_map`); a one-line error for any other architecture (an encoder-only one, say)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    )

    model_type, remote = getattr(config, "model_type", None), getattr(config, "auto_map", None) or {}
    if model_type in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES or "AutoModelForSeq2SeqLM" in remote:
        return AutoModelForSeq2SeqLM
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or "AutoModelForCausalLM" in remote:
        return AutoModelForCausalLM
    raise ConfigError(f"{name}: a {model_type!r} model is neither a causal LM nor an encoder–decoder (seq2seq) LM, "
                      f"so it cannot generate completions to train")


def _config_source(name: str) -> str:
    """Where a model's config is: the directory or hub name itself, or for a directory of adapters their base's."""
    adapter = os.path.join(name, ADAPTER_CONFIG)
    if os.path.isfile(adapter):
        with open(adapter, encoding="utf-8") as f:
            return json.load(f).get("base_model_name_or_path") or name
    return name


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
    if (why := missing_local_path(name)) is not None:
        raise FileNotFoundError(f"model directory {name!r} does not exist{why}")


def unwrap_model(model: nn.Module, *, keep_peft: bool = False) -> nn.Module:
    """The model under DDP/DeepSpeed's `.module` and, unless `keep_peft`, PEFT's base model.

    Fully unwrapped it is the transformers model itself (its config, heads and attached
    submodules such as `state_head`, LoRA layers still injected). `keep_peft=True` stops at a
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


def is_peft(model: nn.Module) -> bool:
    """Whether `model` (under any DDP wrapper) is a PEFT model, whose `save_pretrained` writes adapters only."""
    return unwrap_model(model, keep_peft=True) is not unwrap_model(model)


@contextmanager
def eval_mode(model: nn.Module):
    """`model` in eval mode (no dropout) inside the block, its previous mode restored after, even on error."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def disable_dropout(model: nn.Module) -> None:
    """Dropout off for good (as TRL does for PPO): nn.Dropout modules and the rates modules read at each
    forward (attention dropout; T5's and BART's attention and layers keep theirs as `dropout` and
    `activation_dropout` floats)."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        for rate in ("attention_dropout", "dropout", "activation_dropout"):
            if isinstance(getattr(m, rate, None), float):
                setattr(m, rate, 0.0)


POLICY_TEMPERATURE_KEY = "llm_irl_alpha"  # in the model's config.json (an adapter's generation_config.json)
ADAPTER_CONFIG = "adapter_config.json"  # PEFT's: a directory of adapters, its base model named inside


def policy_temperature(model: nn.Module) -> float:
    """α of the policy `model` was trained as, π = softmax(logits/α): 1 unless llm_irl trained it with another.

    Sampling at temperature T *relative to π* means dividing the logits by α·T; `llm_irl.rollout`
    does so, and any other sampler or scorer of a trained model should too. Read from the config
    attribute `llm_irl_alpha`, which `record_policy_temperature` writes and `save_pretrained` keeps.
    """
    config = getattr(unwrap_model(model), "config", None)
    return float(getattr(config, POLICY_TEMPERATURE_KEY, None) or 1.0)


def record_policy_temperature(model: nn.Module, alpha: float) -> None:
    """Mark `model` as the policy softmax(logits/α), in its config and in its generation config.

    `config.llm_irl_alpha = α`, and `generation_config.temperature` becomes α times the temperature
    it had relative to the previous α (a checkpoint's default 0.7 stays 0.7 relative to π), with
    `do_sample=True`, so a plain `model.generate(do_sample=True)` samples π. Nothing changes when
    α is the one already recorded (a model never trained with α ≠ 1 is left untouched at α = 1).
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    base = unwrap_model(model)
    previous = policy_temperature(base)
    if alpha == previous:
        return
    setattr(base.config, POLICY_TEMPERATURE_KEY, float(alpha))
    gen = getattr(base, "generation_config", None)
    if gen is not None:
        relative = (gen.temperature if gen.temperature is not None else 1.0) / previous
        gen.temperature = float(alpha * relative)
        gen.do_sample = True  # a temperature without sampling is refused by GenerationConfig.save_pretrained


def save_policy_temperature(model: nn.Module, directory: str) -> None:
    """Write `model`'s generation config, with α as `llm_irl_alpha`, to `directory`.

    For adapter-only (PEFT) saves, which keep neither the config that records α nor the generation
    config whose temperature samples π: loading the adapters onto their base (plain `transformers`
    or `peft`) gives the base's α and temperature. `load_model` restores both from this file; with
    plain `peft` call `restore_policy_temperature`; other samplers read `temperature` here.
    """
    base = unwrap_model(model)
    saved = copy.deepcopy(base.generation_config) if base.generation_config is not None else GenerationConfig()
    saved._from_model_config = False  # else GenerationConfig drops the attribute it does not know on reload
    setattr(saved, POLICY_TEMPERATURE_KEY, policy_temperature(base))
    if value_param_of(base) in PER_STATE:  # the state head's weights are among the adapters (modules_to_save)
        setattr(saved, VALUE_PARAM_KEY, value_param_of(base))
    if (absorbing := getattr(base.config, ABSORBING_VALUE_KEY, None)) is not None:
        setattr(saved, ABSORBING_VALUE_KEY, absorbing)
    saved.save_pretrained(directory)


def restore_policy_temperature(model: nn.Module, directory: str) -> None:
    """Give `model` (adapters loaded from `directory`) the α and generation config `save_policy_temperature`
    wrote there; nothing changes when the directory has none (adapters not saved by llm_irl)."""
    if not os.path.isfile(os.path.join(directory, "generation_config.json")):
        return
    saved = GenerationConfig.from_pretrained(directory)
    alpha = saved.__dict__.pop(POLICY_TEMPERATURE_KEY, None)
    recorded = {key: saved.__dict__.pop(key, None) for key in (VALUE_PARAM_KEY, ABSORBING_VALUE_KEY)}
    if alpha is None:
        return
    base = unwrap_model(model)
    setattr(base.config, POLICY_TEMPERATURE_KEY, float(alpha))
    for key, value in recorded.items():
        if value is not None:
            setattr(base.config, key, value)
    base.generation_config = saved
