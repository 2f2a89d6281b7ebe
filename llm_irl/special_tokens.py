"""Which token ids end a completion (EOS) and which one pads a batch, from a tokenizer and its model,
and a text's ids with the tokenizer's special tokens but one BOS.

One home for the question every layer asks: the data pipeline (the EOS appended to a completion,
where an assistant turn's actions stop), the trainers (which actions are terminal), sampling (when
to stop, what to pad with) and rewards.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from llm_irl.errors import DataError

_PROBE = "llm_irl probe reply"
# tokenizer -> (chat template, its end-of-turn ids): rendering a template costs a jinja pass, and the
# trainers ask for the EOS ids at every step
_END_OF_TURN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _id_list(x: int | Sequence[int] | None) -> list[int]:
    if x is None:
        return []
    if isinstance(x, int):
        return [x]
    return [int(i) for i in x]


def chat_end_of_turn_ids(tokenizer: Any | None) -> list[int]:
    """The special token the tokenizer's chat template closes an assistant turn with, as a list
    (empty without a template, or when the turn ends with no special token).

    Found by rendering a probe conversation: the first special token after the assistant's text
    (ChatML's `<|im_end|>`, Llama-3's `<|eot_id|>`, Gemma's `<end_of_turn>`). Qwen2.5 base keeps
    `<|endoftext|>` as its eos_token while its template ends turns with `<|im_end|>`, so the eos_token
    alone misses it.
    """
    template = getattr(tokenizer, "chat_template", None)
    if not template or not hasattr(tokenizer, "apply_chat_template"):
        return []
    try:
        cached = _END_OF_TURN.get(tokenizer)
    except TypeError:  # not weak-referenceable: no cache
        cached = None
    if cached is not None and cached[0] == template:
        return list(cached[1])
    ids = _probe_end_of_turn(tokenizer)
    try:
        _END_OF_TURN[tokenizer] = (template, ids)
    except TypeError:
        pass
    return list(ids)


def _probe_end_of_turn(tokenizer: Any) -> list[int]:
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _PROBE}]
    try:
        text = tokenizer.apply_chat_template(conversation, tokenize=False)
    except Exception:  # a template may refuse a conversation shape (e.g. one that needs a system turn)
        return []
    if not isinstance(text, str) or _PROBE not in text:
        return []
    after = text[text.rindex(_PROBE) + len(_PROBE):]
    special = set(getattr(tokenizer, "all_special_ids", None) or [])
    special |= {i for i, t in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items()
                if getattr(t, "special", False)}
    for i in tokenizer(after, add_special_tokens=False)["input_ids"]:
        if i in special:
            return [int(i)]
    return []


def eos_token_ids(tokenizer: Any | None, model: Any | None = None) -> list[int]:
    """Every id that ends a completion: the tokenizer's `eos_token_id` (an int or a list), the token
    its chat template ends an assistant turn with (`chat_end_of_turn_ids`), then the model's
    `generation_config.eos_token_id`, without repeats.

    Chat models often list several end-of-turn ids in their generation config (Llama-3, Qwen2.5),
    and stopping on any of them is what users expect. The first id is the tokenizer's own: the one
    appended to a demonstration's completion. Raises `DataError` when there is none.
    """
    gen_cfg = getattr(model, "generation_config", None)
    eos: list[int] = []
    for source in (getattr(tokenizer, "eos_token_id", None), chat_end_of_turn_ids(tokenizer),
                   getattr(gen_cfg, "eos_token_id", None)):
        eos += [i for i in _id_list(source) if i not in eos]
    if not eos:
        raise DataError("the tokenizer has no eos_token: set one (tokenizer.eos_token = ...) or "
                        "model.generation_config.eos_token_id so completions can end")
    return eos


def resolve_eos_pad(model: Any | None, tokenizer: Any | None) -> tuple[list[int], int]:
    """`eos_token_ids(tokenizer, model)` and the pad id for a batch.

    Pad: the tokenizer's `pad_token_id`, else the generation config's, else the first EOS id
    (padding never reaches a loss or an attention unmasked, so reusing EOS is safe).
    """
    eos = eos_token_ids(tokenizer, model)
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(getattr(model, "generation_config", None), "pad_token_id", None)
    if isinstance(pad, (list, tuple)):
        pad = pad[0] if pad else None
    return eos, int(pad) if pad is not None else eos[0]


def ensure_pad_token(tokenizer):
    """The tokenizer, given its EOS as pad token if it has none (it must have an EOS)."""
    eos_token_ids(tokenizer)
    if tokenizer.pad_token_id is None:
        # padding positions are masked out of every loss, so reusing EOS as padding is safe
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def ids_with_special_tokens(tokenizer: Any, text: str) -> list[int]:
    """`tokenizer(text)`'s ids with its special tokens, and one BOS when the text already starts with it:
    a chat template rendered to text carries its own BOS and a BOS-adding tokenizer adds another, which
    the model never saw in pre-training. Training rows and evaluation prompts both come through here."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    bos, bos_text = tokenizer.bos_token_id, tokenizer.bos_token
    if bos is not None and bos_text and text.startswith(bos_text) and ids[:2] == [bos, bos]:
        return ids[1:]
    return ids
