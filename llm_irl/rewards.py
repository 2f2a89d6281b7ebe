"""The reward any causal LM carries, and what it is good for (docs/design.md, "Reward extraction").

Logits are Q-values, so every transition has an implied reward r(s_t, a_t) = Q(s_t, a_t) − γ·V(s_{t+1}),
with V(s') = 0 after EOS (or the absorbing state's value v_A, where the objective learned one) and
bootstrapped from the last state's logits when a sample was cut at the length limit. A sample's return
is Σ_t γ^t r_t. Returns rank a prompt's samples (best-of-N) and, if the reward means something,
correlate with quality: Wulfmeier et al. (2024) report a Spearman correlation of 0.64 between IQ
returns and ROUGE-1 against −0.05 for MLE.

    from llm_irl.metrics.stats import spearman
    from llm_irl.rewards import best_of_n, implied_rewards
    out = implied_rewards(model, tok, prompt_ids, completion_ids, gamma=0.99)
    best = best_of_n(out.returns, k=8)          # index of the top-return sample of each prompt
    rho = spearman(out.returns, quality_per_sample)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from llm_irl.batching import labelled_row, model_inputs, pad_batch
from llm_irl.losses import offset_mdp, value_head_mdp
from llm_irl.modeling import eval_mode, policy_temperature, unwrap_model
from llm_irl.seq2seq import decoder_prefix
from llm_irl.soft_q import policy_entropy, token_mdp
from llm_irl.special_tokens import resolve_eos_pad
from llm_irl.state_head import absorbing_value_of, state_values, value_param_of


@dataclass
class ImpliedRewards:
    """Per-sample rewards and returns; the policy entropy comes from the same forward pass."""

    rewards: list[list[float]]  # r_t of each completion token, EOS included when it ended the sample
    returns: list[float]  # Σ_t γ^t r_t
    mean_entropy: float  # token-mean entropy (nats) of π(·|s_t) over every completion token's state


@torch.no_grad()
def implied_rewards(
    model,
    tokenizer,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    *,
    gamma: float,
    alpha: float | None = None,
    batch_size: int = 64,
) -> ImpliedRewards:
    """Teacher-forced implied rewards of completions (their ids exactly as sampled).

    A completion that ends with one of the model's EOS ids is terminal; any other was truncated
    and its last V(s') bootstraps. `alpha` is the entropy temperature the model was trained with;
    None reads it from the model (`modeling.policy_temperature`: 1 for SFT and the IQ default).
    A model IQ trained with a state head (`value_param` head or offset, `llm_irl.state_head`) is read the
    way its objective regularised it: r = α·log π + V_ψ(s) − γ·V_ψ(s') with the value head, Q and V
    shifted by b(s) with offsets. Any other model's V comes from its logits. One trained with
    `terminal_td: centred_absorbing` recorded the absorbing state's value v_A: its stop reward is
    Q(s, EOS) − γ·v_A.
    """
    alpha = policy_temperature(model) if alpha is None else alpha
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions")
    if any(len(c) == 0 for c in completion_ids):
        raise ValueError("every completion needs at least one token (the first action)")
    eos, pad = resolve_eos_pad(model, tokenizer)
    per_state = value_param_of(unwrap_model(model))
    absorbing = absorbing_value_of(unwrap_model(model))
    device = next(model.parameters()).device
    prefix = decoder_prefix(model)  # None for a causal LM
    rewards: list[list[float]] = []
    entropy_sum, entropy_count = 0.0, 0
    with eval_mode(model):
        for start in range(0, len(prompt_ids), batch_size):
            rows = [labelled_row(p, c, prefix)  # the prompt is the initial state, not actions
                    for p, c in zip(prompt_ids[start: start + batch_size], completion_ids[start: start + batch_size])]
            batch = {k: v.to(device) for k, v in pad_batch(rows, pad).items()}
            out = model(**model_inputs(batch), output_hidden_states=per_state != "logits")
            logits = out.logits
            mdp = token_mdp(logits, batch["labels"], eos_token_id=eos, alpha=alpha)
            if per_state != "logits":
                values = state_values(unwrap_model(model))
                mdp = value_head_mdp(mdp, values) if per_state == "head" else offset_mdp(mdp, values)
            r = (mdp.reward(gamma) - gamma * absorbing * mdp.terminal).float().cpu()
            mask = mdp.mask.cpu()
            rewards += [row[m].tolist() for row, m in zip(r, mask)]
            n = int(mask.sum())
            entropy_sum += float(policy_entropy(logits[:, :-1], mdp.mask, alpha=alpha)) * n
            entropy_count += n
    return ImpliedRewards(rewards=rewards, returns=[discounted_return(r, gamma) for r in rewards],
                          mean_entropy=entropy_sum / max(entropy_count, 1))


def discounted_return(rewards: Sequence[float], gamma: float) -> float:
    """Σ_t γ^t r_t."""
    return float(np.sum(np.asarray(rewards, dtype=float) * gamma ** np.arange(len(rewards))))


def best_of_n(scores: Sequence[float], k: int) -> list[int]:
    """Flat index of the highest-scoring sample in each consecutive group of `k` (first on ties)."""
    if k < 1 or len(scores) % k:
        raise ValueError(f"{len(scores)} scores do not split into groups of k={k}")
    groups = np.asarray(scores, dtype=float).reshape(-1, k)
    return (groups.argmax(axis=1) + np.arange(len(groups)) * k).tolist()
