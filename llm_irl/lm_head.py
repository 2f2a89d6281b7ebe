"""A causal LM's (or an encoder–decoder's) output layer and the hidden states it consumes, so a loss can skip the [B, T, V] logits.

`lm_head_hidden(model, ...)` runs the model (wrappers and all) and returns (hidden, W, b) with
logits = hidden·Wᵀ + b, or None when the model's logits are not exactly that (soft-capping,
logit scaling, a LoRA-wrapped or quantised head); the caller then takes the full logits.
`llm_irl.chunked` turns (hidden, W, b) into losses chunk by chunk.

Under FSDP2 (`torch.distributed.fsdp.fully_shard`) the head's W is a DTensor shard outside the
forward pass. It is gathered once per call (`full_gather`), which costs the all-gather FSDP does
for the forward anyway, and the gradient flows back to the shards through DTensor's own backward,
a reduce-scatter averaging over processes as FSDP2 averages every other parameter's gradient.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from llm_irl.modeling import unwrap_model
from llm_irl.seq2seq import head_inputs
from llm_irl.state_head import state_values


class LMHeadInputs(NamedTuple):
    """What a causal LM's output layer consumes: logits = hidden·weightᵀ + bias."""

    hidden: torch.Tensor  # [B, T, H]
    weight: torch.Tensor  # [V, H]
    bias: torch.Tensor | None  # [V] or None
    state_values: torch.Tensor | None = None  # [B, T] when the model has IQ's state head (llm_irl.state_head)


# config fields that post-process h·Wᵀ (Gemma 2/3 soft-capping, Cohere and Granite scaling, ...)
_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_softcapping", "logit_scale", "logits_scaling", "output_mult")
_NOT_PLAIN = weakref.WeakSet()  # models whose lm_head check failed once: no second wasted forward
logger = logging.getLogger(__name__)


def _give_up(model: nn.Module, why: str) -> None:
    """Remember `model` as one whose loss takes the full logits, and say so once (the start-of-run line said chunked)."""
    _NOT_PLAIN.add(unwrap_model(model))
    logger.warning("the loss falls back to full [batch, seq, vocab] logits: %s", why)


def full_gather(param: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """`param` as one plain tensor in `dtype`: an FSDP2 shard (DTensor) all-gathered, anything else as is.

    The backward of the gather reduce-scatters the gradient onto the shards, averaged over the
    processes (`Partial("avg")`), as FSDP2 averages the gradients of the parameters it gathers itself.
    """
    if param is None or type(param).__name__ != "DTensor":
        return param
    from torch.distributed.tensor import Partial

    return param.full_tensor(grad_placements=[Partial("avg")] * param.device_mesh.ndim).to(dtype)


def _fully_sharded(module: nn.Module) -> bool:
    """True for a module `fully_shard` was applied to (its class becomes an FSDP subclass of the original)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # a torch without FSDP2
        return False
    return isinstance(module, FSDPModule)


def plain_lm_head(model: nn.Module) -> nn.Linear | None:
    """The model's output layer if its logits are exactly hidden·Wᵀ + b, by config; else None.

    None for logits post-processed by the config, a head that is not a plain `nn.Linear` (a
    LoRA-wrapped head trains adapters this path would bypass; quantised heads pack W), or a
    forward without `logits_to_keep`. An FSDP2-sharded W is fine: `lm_head_hidden` gathers it.
    """
    inner = unwrap_model(model)
    if inner in _NOT_PLAIN:
        return None
    config = getattr(inner, "config", None)
    if config is None:
        return None
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in _LOGIT_POSTPROCESSING:
        if getattr(text_config, name, None) not in (None, 1, 1.0):
            return None
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    # FSDP2's fully_shard swaps the class for FSDPLinear, a subclass (ZeRO-3 empties W outside forward,
    # which lm_head_hidden's shape check catches)
    if type(head) is not nn.Linear and not (isinstance(head, nn.Linear) and _fully_sharded(head)):
        return None
    # encoder–decoders have no logits_to_keep: `llm_irl.seq2seq.head_inputs` cuts the head's input instead
    if not getattr(config, "is_encoder_decoder", False) and "logits_to_keep" not in inspect.signature(inner.forward).parameters:
        return None
    return head


def lm_head_hidden(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **decoder_inputs
) -> LMHeadInputs | None:
    """(hidden [B, T, H], W, b) of a causal LM's forward pass, without its [B, T, V] logits.

    Runs `model` (wrappers and all, so DDP hooks fire) with `logits_to_keep=1`, so only the last
    position's logits are computed, and takes `hidden_states[-1]`, the final-normed state the
    head consumes (Llama, Qwen2, Mistral, Gemma, Phi-3, GPT-2, GPT-NeoX, OPT). The last
    position's logits double as a check: if `hidden[:, -1]·Wᵀ + b` does not reproduce them the
    model is remembered as unsupported and None is returned, and the caller runs its
    full-logits path (one wasted forward, once per model).

    An encoder–decoder takes its `decoder_input_ids` (and mask) too; hidden is then the decoder's
    (`llm_irl.seq2seq.head_inputs`), aligned with them.
    """
    head = plain_lm_head(model)
    if head is None:
        return None
    if decoder_inputs:
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, **decoder_inputs}
        found = head_inputs(model, batch, head)
        if found is None:
            _NOT_PLAIN.add(unwrap_model(model))
            return None
        return LMHeadInputs(found[0], head.weight, found[1], state_values(unwrap_model(model)))
    out = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=1, output_hidden_states=True,
                use_cache=False)
    hidden = out.hidden_states[-1] if out.hidden_states else None
    shapes_fit = hidden is not None and hidden.shape[:2] == input_ids.shape
    if not shapes_fit or head.weight.shape != (out.logits.shape[-1], hidden.shape[-1]):
        _give_up(model, "the model's last hidden state or LM head weight is not the shape its logits need")
        return None
    weight, bias = full_gather(head.weight, hidden.dtype), full_gather(head.bias, hidden.dtype)
    with torch.no_grad():
        want = out.logits[:, -1].float()
        if not torch.isfinite(want).all():  # nothing to check against: let the full path surface the NaN
            return None
        got = F.linear(hidden[:, -1], weight, bias).float()
        tol = 8 * torch.finfo(out.logits.dtype).eps * (1.0 + want.abs().max())
        if not torch.allclose(got, want, rtol=0.0, atol=float(tol)):
            _give_up(model, "hidden·Wᵀ + b does not reproduce the model's logits")
            return None
    return LMHeadInputs(hidden, weight, bias, state_values(unwrap_model(model)))
