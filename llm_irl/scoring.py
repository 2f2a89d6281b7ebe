"""Teacher-forced log-likelihood of completions under a model (held-out NLL, forward KL)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch

from llm_irl.batching import labelled_row, model_inputs, pad_batch
from llm_irl.data import encode_prompt_completion
from llm_irl.modeling import eval_mode, policy_temperature, unwrap_model
from llm_irl.prompts import Prompt, prompt_ids
from llm_irl.seq2seq import decoder_prefix, split_row
from llm_irl.soft_q import action_mask, token_logprobs
from llm_irl.special_tokens import eos_token_ids
from llm_irl.truncation import fit_to_length


def scored_row(tokenizer, prompt: Prompt, completion: str | Sequence[int], max_length: int | None = None,
               prefix: list[int] | None = None) -> dict:
    """A (prompt, completion) pair as training labels it: a string prompt with the tokenizer's special tokens,
    a conversation rendered up to the assistant's reply (`llm_irl.prompts`); a string completion tokenised on
    its own, then EOS, or token ids taken as the actions they are (EOS included where it was taken); cut at the
    completion's end past `max_length`. With an encoder–decoder's decoder `prefix` (`seq2seq.decoder_prefix`),
    split into its encoder and decoder rows."""
    if isinstance(prompt, str) and isinstance(completion, str):
        return encode_prompt_completion(tokenizer, prompt, completion, max_length=max_length, decoder_prefix=prefix)
    if isinstance(completion, str):
        actions = tokenizer(completion, add_special_tokens=False)["input_ids"] + [eos_token_ids(tokenizer)[0]]
    else:
        actions = [int(a) for a in completion]
    row = labelled_row(prompt_ids(tokenizer, prompt), actions)
    row = fit_to_length(row, max_length=max_length, prompt_truncation="error", where="scored pair")[0]
    return row if prefix is None else split_row(row, prefix, "scored pair")


def logits_over_actions(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of a right-padded batch from the last position before its earliest action on: the
    prompts' shared part predicts nothing that is scored, and at a vocabulary of 49k its [B, T, V] logits cost
    more than the rest of the pass (`logits_to_keep`; models without it, and encoder–decoders, give all)."""
    labels = batch["labels"]
    has_action = action_mask(labels)
    if "decoder_input_ids" in batch or not has_action.any(-1).all() or not _keeps_logits(model):
        return model(**model_inputs(batch)).logits, labels
    keep = labels.shape[1] - int(has_action.float().argmax(-1).min()) + 1
    return model(**model_inputs(batch), logits_to_keep=keep).logits, labels[:, -keep:]


def _keeps_logits(model) -> bool:
    return "logits_to_keep" in inspect.signature(unwrap_model(model).forward).parameters


def completion_logprobs(
    model, tokenizer, prompts: list[Prompt], completions: list[str], *, batch_size: int = 64,
    max_length: int | None = 512,
) -> list[tuple[float, int]]:
    """(sum of log π over completion tokens incl. EOS, number of those tokens) per pair.

    Prompts are strings or conversations (`scored_row`). The completion is tokenised exactly as in
    training (EOS appended), so this is the model-side counterpart of an expert's `score`. π = softmax(logits/α), α the temperature the
    model was trained as (`modeling.policy_temperature`).
    """
    return completion_logprobs_at(model, tokenizer, prompts, completions, (1.0,), batch_size=batch_size,
                                  max_length=max_length)[1.0]


@torch.no_grad()
def completion_logprobs_at(
    model, tokenizer, prompts: list[Prompt], completions: list[str], temperatures, *, batch_size: int = 64,
    max_length: int | None = 512,
) -> dict[float, list[tuple[float, int]]]:
    """`completion_logprobs` under the sampling distribution of each temperature T, softmax(logits/(α·T)),
    from one forward pass: {T: [(sum of log-probs, token count) per pair]}. Scoring the expert's
    held-out demonstrations at the temperatures a model is sampled at gives its coverage there."""
    temperatures = [float(t) for t in temperatures]
    if any(t <= 0 for t in temperatures):
        raise ValueError(f"temperatures must be > 0 to score under them (greedy has no likelihood), got {temperatures}")
    alpha = policy_temperature(model)
    device = next(model.parameters()).device
    prefix = decoder_prefix(model)
    rows = [scored_row(tokenizer, p, c, max_length, prefix) for p, c in zip(prompts, completions, strict=True)]
    out: dict[float, list[tuple[float, int]]] = {t: [] for t in temperatures}
    with eval_mode(model):
        for start in range(0, len(rows), batch_size):
            batch = pad_batch(rows[start : start + batch_size], tokenizer.pad_token_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            logits, labels = logits_over_actions(model, batch)
            counts = action_mask(labels).sum(-1)
            for t in temperatures:
                scaled = logits if alpha * t == 1.0 else logits / (alpha * t)
                sums = token_logprobs(scaled, labels).sum(-1)  # zero off actions
                out[t].extend((float(s), int(n)) for s, n in zip(sums, counts))
    return out


def mean_nll(model, tokenizer, prompts: list[Prompt], completions: list[str], **kw) -> float:
    """Token-mean negative log-likelihood of the completions (nats per token)."""
    scores = completion_logprobs(model, tokenizer, prompts, completions, **kw)
    return -sum(s for s, _ in scores) / max(sum(n for _, n in scores), 1)
