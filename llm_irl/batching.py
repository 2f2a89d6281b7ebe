"""Token-id rows to padded tensors and back: `pad` (either side), the labels batch every trainer
consumes (`pad_batch`, `unpad_rows`), and each row's prompt.

A labelled row is `{"input_ids": [...], "labels": [...]}` with HF conventions: labels aligned with
`input_ids`, `IGNORE_INDEX` (-100) where a token is not an action (the prompt is the initial state).
Training batches are right-padded; prompts for `generate` are left-padded.

An encoder–decoder's row adds `decoder_input_ids`, and its labels align with those instead
(`llm_irl.seq2seq`): `input_ids` is then the prompt alone, the encoder's. Every function here takes
either layout; `model_inputs` is what a model's forward gets from a batch of either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from llm_irl.seq2seq import DECODER_KEYS, seq2seq_row
from llm_irl.soft_q import IGNORE_INDEX, action_mask

PADDING_SIDES = ("right", "left")


def pad(
    sequences: Sequence[Sequence[int] | Sequence[float] | torch.Tensor],
    padding_value: int | float,
    padding_side: str = "right",
    pad_to_multiple_of: int | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Rows of unequal length stacked into one [B, T] tensor, filled with `padding_value` on `padding_side`.

    Rows are lists or 1-D tensors; the result has `dtype` (default: the first tensor row's dtype,
    else long) and the first tensor row's device (else CPU). T is the longest row, rounded up to a
    multiple of `pad_to_multiple_of` when given.
    """
    if padding_side not in PADDING_SIDES:
        raise ValueError(f"padding_side must be one of {PADDING_SIDES}, got {padding_side!r}")
    like = next((s for s in sequences if isinstance(s, torch.Tensor)), None)
    dtype = dtype or (like.dtype if like is not None else torch.long)
    device = like.device if like is not None else None
    rows = [torch.as_tensor(s, dtype=dtype, device=device) for s in sequences]
    length = max((len(r) for r in rows), default=0)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    out = torch.full((len(rows), length), padding_value, dtype=dtype, device=device)
    for i, r in enumerate(rows):
        if padding_side == "right":
            out[i, : len(r)] = r
        else:
            out[i, length - len(r):] = r
    return out


def labelled_row(prompt_ids: Sequence[int], completion_ids: Sequence[int],
                 decoder_prefix: list[int] | None = None) -> dict[str, list[int]]:
    """A prompt and its completion as one labelled row: the completion's tokens are the actions. With a
    `decoder_prefix` (`seq2seq.decoder_prefix(model)`, None for a causal LM), an encoder–decoder's row."""
    if decoder_prefix is not None:
        return seq2seq_row(prompt_ids, completion_ids, decoder_prefix)
    return {"input_ids": [*prompt_ids, *completion_ids], "labels": [IGNORE_INDEX] * len(prompt_ids) + [*completion_ids]}


def pad_batch(rows: list[dict], pad_token_id: int, pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad `input_ids` (and an encoder–decoder's `decoder_input_ids`) with the pad id and `labels`
    with -100; build the attention masks."""
    def ids_and_mask(key: str) -> tuple[torch.Tensor, torch.Tensor]:
        ids = [r[key] for r in rows]
        return (pad(ids, pad_token_id, pad_to_multiple_of=pad_to_multiple_of),
                pad([[1] * len(i) for i in ids], 0, pad_to_multiple_of=pad_to_multiple_of))

    batch = dict(zip(("input_ids", "attention_mask"), ids_and_mask("input_ids")))
    if rows and "decoder_input_ids" in rows[0]:
        batch.update(zip(DECODER_KEYS, ids_and_mask("decoder_input_ids")))
    batch["labels"] = pad([r["labels"] for r in rows], IGNORE_INDEX, pad_to_multiple_of=pad_to_multiple_of)
    return batch


def unpad_rows(batch: dict[str, torch.Tensor]) -> list[dict[str, list[int]]]:
    """The labelled rows of a right-padded batch (`input_ids`, `labels`, `attention_mask`, and an
    encoder–decoder's decoder ids and mask), padding dropped."""
    if "decoder_input_ids" in batch:
        return [{"input_ids": i[m.bool()].tolist(), "decoder_input_ids": d[dm.bool()].tolist(),
                 "labels": l[dm.bool()].tolist()}
                for i, m, d, dm, l in zip(batch["input_ids"], batch["attention_mask"], batch["decoder_input_ids"],
                                          batch["decoder_attention_mask"], batch["labels"])]
    return [{"input_ids": i[m.bool()].tolist(), "labels": l[m.bool()].tolist()}
            for i, l, m in zip(batch["input_ids"], batch["labels"], batch["attention_mask"])]


def labelled_ids_key(batch: dict) -> str:
    """The key of the ids the labels align with (and mask, with "attention_mask" in place of "input_ids"): an
    encoder–decoder's decoder ids, else `input_ids`."""
    return "decoder_input_ids" if "decoder_input_ids" in batch else "input_ids"


def labelled_mask(batch: dict) -> torch.Tensor:
    """The attention mask of the labels-aligned ids (an encoder–decoder's decoder mask, else `attention_mask`)."""
    return batch["decoder_attention_mask" if "decoder_input_ids" in batch else "attention_mask"]


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What a model's forward takes from a batch: ids and attention mask, and an encoder–decoder's decoder ids and mask."""
    return {k: batch[k] for k in ("input_ids", "attention_mask", *DECODER_KEYS) if k in batch}


def batch_prompts(batch: dict[str, torch.Tensor]) -> list[list[int]]:
    """Each row's prompt, the state a policy sample continues from: an encoder–decoder's encoder input,
    else `prompts_of` the causal row."""
    if "decoder_input_ids" in batch:
        return [i[m.bool()].tolist() for i, m in zip(batch["input_ids"], batch["attention_mask"])]
    return prompts_of(batch["input_ids"], batch["labels"])


def prompts_of(input_ids: torch.Tensor, labels: torch.Tensor) -> list[list[int]]:
    """Each row's tokens before its first action: the state a policy sample continues from.

    At least one token (a row acting from its first position keeps that token as its state).
    Multi-turn demos give their first assistant turn's context; later turns stay in the demo.
    """
    first = action_mask(labels).int().argmax(dim=1).clamp_min(1).tolist()
    return [row[:n] for row, n in zip(input_ids.tolist(), first)]


@dataclass
class DemoCollator:
    """Batches tokenised demonstrations for the trainers (right padding)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return pad_batch(rows, self.pad_token_id, self.pad_to_multiple_of)
