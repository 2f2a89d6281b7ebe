"""One scalar per state beside the LM head: the value V_ψ(s) (`value_param: head`) or the offset b(s) of
Q = logits + b(s) (`value_param: offset`).

The IQ trainer attaches it as the submodule `state_head` and records which of the two it is in the
model's config (`llm_irl_value_param`), so it saves with the weights and `load_model` gives it back:
the implied reward a model trained this way was regularised on needs it (`llm_irl.rewards`). An
adapters-only (PEFT) save keeps the head among its `modules_to_save` and the record in its generation
config, and `load_model` gives it back too. Models trained without one read their reward from the logits.
"""

from __future__ import annotations

import json
import os

import torch
from torch import nn


STATE_HEAD = "state_head"
VALUE_PARAM_KEY = "llm_irl_value_param"
# V of the absorbing state after EOS, where the objective learned one (terminal_td centred_absorbing); 0 otherwise
ABSORBING_VALUE_KEY = "llm_irl_absorbing_value"
PER_STATE = ("head", "offset")  # the value_param choices that need a state head
_OLD_NAME = "value_head"  # the head's name in checkpoints written before it held offsets too


def attach_state_head(model: nn.Module) -> nn.Module:
    """Give `model` a zero-initialised `state_head: Linear(hidden, 1)`, one scalar per state (V_ψ(s) for
    value_param 'head', b(s) for 'offset'), if it has none yet."""
    if not hasattr(model, STATE_HEAD):
        hidden = model.get_output_embeddings().weight.shape[1]
        head = nn.Linear(hidden, 1)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        setattr(model, STATE_HEAD, head.to(device=model.device, dtype=model.dtype))
        model.register_load_state_dict_pre_hook(_load_old_name)
        model.register_forward_hook(_emit_state_values)
    return model


def _emit_state_values(module, args, output):
    """A forward that outputs hidden states leaves the head's values on the last of them, [B, T], for
    `state_values` to take: the head runs inside the model's own forward, where DDP expects parameters
    to be used (DDP also needs a static graph for it, which IQConfig turns on). Kept on the module, not in
    the output: DDP rebuilds the output's type from its declared fields."""
    # an encoder–decoder's states are its decoder's (the encoder's are the prompt, not the MDP's states)
    hidden = getattr(output, "decoder_hidden_states", None) or getattr(output, "hidden_states", None)
    if hidden is not None:
        module._state_values = getattr(module, STATE_HEAD)(hidden[-1]).squeeze(-1)
    return output


def _load_old_name(module, state_dict, prefix, *args) -> None:
    """Resuming a checkpoint that calls the head `value_head` loads it into `state_head` (Trainer loads
    with strict=False, so without this the old weights would be skipped silently)."""
    old = f"{prefix}{_OLD_NAME}."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[f"{prefix}{STATE_HEAD}.{key[len(old):]}"] = state_dict.pop(key)


def record_value_param(model: nn.Module, value_param: str) -> None:
    """Mark in `model`'s config where its V comes from, so a loader knows to give it its state head."""
    setattr(model.config, VALUE_PARAM_KEY, value_param)


def record_absorbing_value(model: nn.Module, value: float) -> None:
    """Mark in `model`'s config the absorbing state's learned value v_A, so its implied reward of stopping is
    read back as the objective regularised it: Q(s, EOS) − γ·v_A."""
    setattr(model.config, ABSORBING_VALUE_KEY, float(value))


def absorbing_value_of(model: nn.Module) -> float:
    """v_A recorded in `model`'s config (`record_absorbing_value`), 0 (IQ-Learn's V after EOS) if none."""
    return float(getattr(getattr(model, "config", None), ABSORBING_VALUE_KEY, None) or 0.0)


def value_param_of(model: nn.Module) -> str:
    """'head', 'offset' or 'logits' (any model llm_irl did not train with a state head)."""
    recorded = getattr(getattr(model, "config", None), VALUE_PARAM_KEY, None) or "logits"
    return recorded if recorded in PER_STATE and hasattr(model, STATE_HEAD) else "logits"


def state_values(model: nn.Module) -> torch.Tensor | None:
    """The state head's scalar at every position [B, T] of the bare model's last forward with
    `output_hidden_states=True`, handed over once (None if there is none)."""
    values, model._state_values = getattr(model, "_state_values", None), None
    return values


def restore_state_head(model: nn.Module, directory: str) -> None:
    """Attach the state head a save in `directory` holds and load its weights (safetensors), when the config
    says the model was trained with one; nothing otherwise. A full save keeps the head as `state_head.*`
    (in one of the shards of a sharded one); an adapters-only (PEFT) save among its `modules_to_save`, as
    `base_model.model.state_head.*`."""
    from safetensors import safe_open

    if getattr(model.config, VALUE_PARAM_KEY, None) not in PER_STATE:
        return
    for path, prefix in _head_files(directory):
        with safe_open(path, framework="pt") as f:
            keys = set(f.keys())
            weights = {name: f.get_tensor(f"{prefix}{STATE_HEAD}.{name}") for name in ("weight", "bias")
                       if f"{prefix}{STATE_HEAD}.{name}" in keys}
        if len(weights) == 2:
            getattr(attach_state_head(model), STATE_HEAD).load_state_dict(weights)
            return


def _head_files(directory: str) -> list[tuple[str, str]]:
    """(safetensors file, key prefix) pairs that may hold the state head in a save directory."""
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.isfile(index):  # a sharded save: the head's keys are in one of the shards
        with open(index, encoding="utf-8") as f:
            shard = json.load(f)["weight_map"].get(f"{STATE_HEAD}.weight")
        full = [os.path.join(directory, shard)] if shard else []
    else:
        full = [os.path.join(directory, "model.safetensors")]
    candidates = [(path, "") for path in full] + [(os.path.join(directory, "adapter_model.safetensors"), "base_model.model.")]
    return [(path, prefix) for path, prefix in candidates if os.path.isfile(path)]
