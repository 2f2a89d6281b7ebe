"""Sample completions from the current policy (online IQ, GAIL/AIRL/margin trainers).

A rollout is one episode of the token MDP (docs/design.md): the prompt is the initial state, each
generated token an action, EOS the terminal action. A completion cut at ``max_new_tokens`` is
*truncated*, not terminal, and ``Rollouts.terminated`` records which is which so that a trainer
can bootstrap ``V(s')`` on truncated samples.

Sampling goes through ``model.generate`` (KV cache, left-padded prompts) so it costs what plain HF
generation costs; ``benchmarks/bench_rollout.py`` checks the overhead stays under 5%.

Temperature: a model trained with entropy temperature α is the policy π = softmax(logits/α)
(`modeling.policy_temperature`, 1 for any model not trained with another α), and ``temperature``
is relative to π: the logits are divided by ``α·temperature``, so ``temperature=1`` samples π itself
(at λ = 0, where IQ fits π to the demonstrations as SFT does, samples follow them whatever α).

Log-probabilities: ``Rollouts.logprobs`` are those of the distribution each token was actually
sampled from: ``softmax(logits / (α·temperature))`` cut to its ``top_p`` nucleus and renormalised,
after any logits processor passed through ``generate_kwargs`` (e.g. ``suppress_tokens``). They come
from ``generate``'s processed scores, computed in eval mode (no dropout), so they are the behaviour
policy's: the right ``old_logprobs`` for PPO ratios, and ``log π`` itself when ``temperature=1`` and
``top_p=1`` (tests check both against a teacher-forced pass to 1e-4). Greedy decoding
(``do_sample=False``) has no sampling distribution: its log-probs are log π. A trainer that compares
them with new log-probs must compute those at the same temperature (and nucleus).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from llm_irl.batching import labelled_row, pad, pad_batch
from llm_irl.modeling import eval_mode, policy_temperature, unwrap_model
from llm_irl.seeding import seeded
from llm_irl.seq2seq import decoder_prefix
from llm_irl.special_tokens import resolve_eos_pad

__all__ = ["Rollouts", "completion_text", "generate_rollouts"]

# Checkpoint defaults neutralised (HF's global top_k=50, a repo's repetition_penalty, ...): on-policy
# samples must come from softmax(logits / temperature), optionally nucleus-cut, and nothing else.
PURE_SAMPLING: dict[str, Any] = {
    "do_sample": True, "top_k": 0, "min_p": None, "top_h": None, "typical_p": 1.0, "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "num_beams": 1,
    "num_return_sequences": 1, "use_cache": True, "forced_eos_token_id": None,
}


@dataclass
class Rollouts:
    """Sampled completions, one entry per sample (sample ``k`` of prompt ``i`` at ``i*num_samples+k``).

    Attributes:
        prompt_ids: prompt token ids (no padding).
        completion_ids: generated ids up to and including the first EOS; nothing after it.
        logprobs: log-probability of each completion token under the distribution it was sampled
            from (tempered by α·temperature, nucleus-cut; ``log π`` at temperature 1, top_p 1).
            Same length as ``completion_ids``.
        terminated: True when the completion ended with EOS, False when cut at ``max_new_tokens``.
        decoder_prefix: an encoder–decoder's decoder prefix (``seq2seq.decoder_prefix``), None for a
            causal LM: prompts were then the encoder's input and completions the decoder's actions.
    """

    prompt_ids: list[list[int]] = field(default_factory=list)
    completion_ids: list[list[int]] = field(default_factory=list)
    logprobs: list[list[float]] = field(default_factory=list)
    terminated: list[bool] = field(default_factory=list)
    decoder_prefix: list[int] | None = None

    def __len__(self) -> int:
        return len(self.completion_ids)

    def to_batch(self, pad_token_id: int) -> dict[str, torch.Tensor]:
        """Right-padded training batch (the project's convention: labels aligned with input_ids).

        Returns:
            input_ids [B, T] long: prompt + completion, then ``pad_token_id``.
            attention_mask [B, T] long: 1 on prompt and completion tokens.
            labels [B, T] long: completion ids, -100 on prompt and padding (prompt tokens are the
                initial state, not actions).
            old_logprobs [B, T] float32: the sampling log-probability of the token at the same
                position (see ``Rollouts.logprobs``), 0 where the label is -100. Note the HF shift: it
                pairs with ``logits[:, t-1]`` and ``labels[:, t]``.
            terminated [B] bool.
        """
        if len(self) == 0:
            raise ValueError("Rollouts is empty: nothing to batch.")
        prefix = self.decoder_prefix
        batch = pad_batch([labelled_row(p, c, prefix) for p, c in zip(self.prompt_ids, self.completion_ids)],
                          pad_token_id)
        # aligned with the labels: after the prompt (causal) or the decoder prefix (encoder–decoder)
        batch["old_logprobs"] = pad([[0.0] * len(p if prefix is None else prefix) + list(lp)
                                     for p, lp in zip(self.prompt_ids, self.logprobs)], 0.0, dtype=torch.float32)
        batch["terminated"] = torch.tensor(self.terminated, dtype=torch.bool)
        return batch


def completion_text(tokenizer: Any, completion_ids: Sequence[int], terminated: bool) -> str:
    """A completion as text: every action except the EOS that ended it.

    Other special tokens stay in the text: a model that emits `<pad>` mid-sentence took that
    action, and the expert and the metrics must charge it for it rather than never see it.
    """
    ids = list(completion_ids[:-1]) if terminated else list(completion_ids)
    return tokenizer.decode(ids, skip_special_tokens=False)


def _token_logprob(scores: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(scores / temperature)[token] per row, in fp32; [B, V] scores, [B] tokens."""
    scores = scores.float() if temperature == 1.0 else scores.float() / temperature
    return scores.gather(-1, tokens[:, None]).squeeze(-1) - torch.logsumexp(scores, dim=-1)


def _sample_batch(
    model: Any,
    prompts: Sequence[Sequence[int]],
    eos: list[int],
    pad_id: int,
    gen_kwargs: dict[str, Any],
) -> tuple[list[list[int]], list[list[float]], list[bool]]:
    device = next(model.parameters()).device
    prefix = decoder_prefix(model)  # None for a causal LM
    # a causal LM continues its prompts, so they end together (left padding); an encoder reads them
    # whole, right-padded as in training (left padding would shift absolute positions, BART's)
    side = "left" if prefix is None else "right"
    input_ids = pad(prompts, pad_id, side).to(device)
    attention_mask = pad([[1] * len(p) for p in prompts], 0, side).to(device)
    decoder = {} if prefix is None else {"decoder_input_ids": torch.tensor([prefix] * len(prompts), device=device)}
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        output_scores=True,
        return_dict_in_generate=True,
        **decoder,
        **gen_kwargs,
    )
    # [B, T_gen]; finished rows are padded by generate. The sequences continue the prompt (causal) or
    # the decoder prefix (encoder–decoder)
    gen = out.sequences[:, input_ids.shape[1] if prefix is None else len(prefix):]
    # The scores are the logits after every processor and warper (temperature, top_p: −inf outside
    # the nucleus), i.e. the distribution each token was drawn from. One step at a time, so we never
    # hold a second [B, T, V] tensor next to the one generate already returned.
    # Greedy decoding applies no temperature, so its scores are divided by α here: log π = log softmax(logits/α).
    alpha = 1.0 if gen_kwargs.get("do_sample", True) else policy_temperature(model)
    logprobs = torch.stack([_token_logprob(step, gen[:, t], alpha) for t, step in enumerate(out.scores)], dim=1)
    # Cut after the first EOS: what generate writes after it is padding, not actions.
    is_eos = torch.isin(gen, torch.tensor(eos, device=gen.device))
    terminated = is_eos.any(dim=1)
    lengths = torch.where(terminated, is_eos.int().argmax(dim=1) + 1, gen.shape[1])
    gen_l, lp_l, len_l = gen.tolist(), logprobs.float().tolist(), lengths.tolist()  # one device sync each
    return (
        [g[:n] for g, n in zip(gen_l, len_l)],
        [lp[:n] for lp, n in zip(lp_l, len_l)],
        terminated.tolist(),
    )


def generate_rollouts(
    model: Any,
    tokenizer: Any | None,
    prompts: list[list[int]],
    *,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    num_samples: int = 1,
    batch_size: int = 32,
    seed: int | None = None,
    **generate_kwargs: Any,
) -> Rollouts:
    """Sample ``num_samples`` completions per prompt from ``model`` with ``model.generate``.

    Args:
        model: a HF causal LM or encoder–decoder (prompts go to its encoder), possibly wrapped by accelerate/DDP (``.module`` is unwrapped) or a
            peft ``PeftModel``. Put in eval mode for sampling (no dropout), then restored.
        tokenizer: anything with ``eos_token_id`` (int or list) and ``pad_token_id`` (may be None),
            or None to use ``model.generation_config``; see ``special_tokens.resolve_eos_pad``.
        prompts: token ids per prompt (non-empty; they are left-padded per batch).
        max_new_tokens: length limit; a completion reaching it without EOS is truncated.
        temperature, top_p: sampling distribution ``softmax(logits/(α·temperature))`` with nucleus
            ``top_p``; α is ``modeling.policy_temperature(model)``, so ``temperature`` is relative to
            the policy the model was trained as. Everything else is pure sampling (top_k off, no
            repetition penalty), whatever the checkpoint's ``generation_config`` says, so samples
            come from the policy itself.
        num_samples: samples per prompt; sample ``k`` of prompt ``i`` is at index ``i*num_samples+k``.
        batch_size: sequences per ``generate`` call.
        seed: if given, sampling draws from ``seeding.seeded(seed)`` (the global RNG state is left
            untouched). Same seed, prompts and batch_size -> same samples.
        **generate_kwargs: passed to ``generate`` (e.g. ``min_new_tokens``, ``bad_words_ids``); they
            change what is sampled, and ``logprobs`` follow (they are the sampling distribution's).

    Returns:
        Rollouts (see its docstring; ``logprobs`` are the sampling distribution's).
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"num_samples and batch_size must be >= 1, got {num_samples}, {batch_size}.")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("Empty prompt: every prompt needs at least one token (e.g. BOS).")

    # DDP / accelerate wrappers hide generate() behind `.module`; a PeftModel has its own generate
    # (adapters active), so it stays.
    model = unwrap_model(model, keep_peft=True)
    eos, pad_id = resolve_eos_pad(model, tokenizer)
    gen_kwargs: dict[str, Any] = dict(
        PURE_SAMPLING, temperature=policy_temperature(model) * temperature, top_p=top_p, max_new_tokens=max_new_tokens,
        eos_token_id=eos, pad_token_id=pad_id,
    )
    gen_kwargs.update(generate_kwargs)
    if not gen_kwargs["do_sample"]:  # greedy: no sampling distribution to set (generate warns of unused flags)
        gen_kwargs.pop("temperature"), gen_kwargs.pop("top_p")

    expanded = [list(p) for p in prompts for _ in range(num_samples)]
    result = Rollouts(decoder_prefix=decoder_prefix(model))
    device = next(model.parameters()).device
    with eval_mode(model), torch.no_grad(), seeded(seed, device):
        for start in range(0, len(expanded), batch_size):
            chunk = expanded[start: start + batch_size]
            completions, logprobs, terminated = _sample_batch(model, chunk, eos, pad_id, gen_kwargs)
            result.prompt_ids += chunk
            result.completion_ids += completions
            result.logprobs += logprobs
            result.terminated += terminated
    return result
