"""Encoder–decoder models (T5, BART, mT5, Marian, ...) on the token MDP of their decoder.

The state is (encoder input, decoder prefix), the action the next decoder token, the decoder's EOS
the terminal action: the same MDP as a causal LM's, so every loss applies unchanged. Only the row
layout and the model call differ, and both are kept here:

- a seq2seq row is `{"input_ids": prompt (the encoder's), "decoder_input_ids": prefix + completion,
  "labels": -100 on the prefix, then the completion}`: labels stay aligned with the ids they label,
  so `logits[:, t]` scores `labels[:, t+1]` exactly as for a causal LM (`llm_irl.soft_q`);
- the decoder prefix is what `generate` starts the decoder with: `decoder_start_token_id`, and the
  BOS some checkpoints force as the first token (BART's `forced_bos_token_id`). It is context, not an
  action, so training and sampling see the same states;
- a causal row (prompt and completion in one sequence) becomes a seq2seq row by cutting it at its
  first action (`split_row`); truncation happens before the cut, so `max_length` bounds encoder and
  decoder tokens together, as it bounds a causal row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llm_irl.errors import DataError
from llm_irl.modeling import unwrap_model
from llm_irl.soft_q import IGNORE_INDEX

DECODER_KEYS = ("decoder_input_ids", "decoder_attention_mask")


def is_seq2seq(model: nn.Module) -> bool:
    """Whether `model` (under any DDP/PEFT wrapper) is an encoder–decoder."""
    return bool(getattr(getattr(unwrap_model(model), "config", None), "is_encoder_decoder", False))


def decoder_prefix(model: nn.Module) -> list[int] | None:
    """The ids `generate` starts `model`'s decoder with (start token, then any forced BOS); None for a causal LM."""
    if not is_seq2seq(model):
        return None
    inner = unwrap_model(model)
    gen, config = getattr(inner, "generation_config", None), inner.config
    start = getattr(gen, "decoder_start_token_id", None)
    start = start if start is not None else config.decoder_start_token_id
    if start is None:
        raise DataError(f"{config.model_type} model has no decoder_start_token_id: set it in its config")
    forced_bos = getattr(gen, "forced_bos_token_id", None)
    return [int(start)] + ([int(forced_bos)] if forced_bos is not None else [])


def seq2seq_row(prompt_ids, completion_ids, prefix: list[int], completion_labels=None) -> dict[str, list[int]]:
    """A seq2seq row: the prompt for the encoder, prefix + completion for the decoder, the completion's
    tokens the actions (or `completion_labels`, where some decoder tokens are context, e.g. a user turn)."""
    labels = list(completion_ids) if completion_labels is None else list(completion_labels)
    return {"input_ids": list(prompt_ids), "decoder_input_ids": [*prefix, *completion_ids],
            "labels": [IGNORE_INDEX] * len(prefix) + labels}


def split_row(encoded: dict, prefix: list[int], where: str) -> dict[str, list[int]]:
    """A causal row (`input_ids`, `labels`) cut at its first action into a seq2seq row."""
    ids, labels = encoded["input_ids"], encoded["labels"]
    first = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))
    if first == 0:
        raise DataError(f"{where}: the row has no prompt for the encoder (text rows make every token an action); "
                        f"give encoder–decoder models prompt/completion rows")
    return seq2seq_row(ids[:first], ids[first:], prefix, labels[first:])


def check_chat_template(tokenizer, where: str) -> None:
    """Conversations need the tokenizer's chat template on a seq2seq model: the plain `role: content`
    layout a causal LM falls back on is nothing an encoder–decoder checkpoint was trained to read."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"{where}: a conversation (messages) row, but the encoder–decoder model's tokenizer has no "
                        f"chat template; give prompt/completion rows or set tokenizer.chat_template")


def head_inputs(model: nn.Module, batch: dict, head: nn.Linear):
    """(hidden [B, T, H], W, b) of the decoder's output layer for `batch`, without the [B, T, V] logits.

    A pre-hook on the output layer keeps the states it is handed (after any scaling the model applies,
    e.g. T5's d_model^-0.5 with tied embeddings) and lets it compute the last position only. BART's
    `final_logits_bias`, added after the layer, joins the bias. The last position's logits check that
    hidden·Wᵀ + b is what the model outputs; None (and the caller takes the full logits) when not.
    """
    inner = unwrap_model(model)
    kept = {}

    def keep_and_cut(module, args):
        kept["hidden"] = args[0]
        return (args[0][:, -1:],)

    handle = head.register_forward_pre_hook(keep_and_cut)
    try:
        out = model(**batch, output_hidden_states=True, use_cache=False)
    finally:
        handle.remove()
    hidden = kept.get("hidden")
    bias = head.bias
    extra = getattr(inner, "final_logits_bias", None)
    if extra is not None:
        bias = extra.reshape(-1) if bias is None else bias + extra.reshape(-1)
    if hidden is None or hidden.shape[:2] != batch["decoder_input_ids"].shape or out.logits.shape[1] != 1:
        return None
    with torch.no_grad():
        want = out.logits[:, -1].float()
        got = F.linear(hidden[:, -1], head.weight, bias).float()
        tol = 8 * torch.finfo(out.logits.dtype).eps * (1.0 + want.abs().max())
        if not torch.isfinite(want).all() or not torch.allclose(got, want, rtol=0.0, atol=float(tol)):
            return None
    return hidden, bias
