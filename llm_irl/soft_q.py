"""Token generation as an MDP whose logits are Q-values.

State s_t: prompt plus tokens so far; action a_t: the next token; deterministic transition.
With temperature α:

    Q(s, ·) = logits(s)            V(s) = α·logsumexp(Q(s, ·)/α)
    π(a|s)  = softmax(Q(s, ·)/α)   Q(s, a) = V(s) + α·log π(a|s)
    r(s, a) = Q(s, a) − γ·V(s'),   V(s') = 0 when a is EOS (terminal)

Labels follow the HF convention: aligned with `input_ids`, -100 where a token is not an action
(prompt, padding, user turns). The action `labels[:, t+1]` is taken in the state whose Q-values
are `logits[:, t]`, and its next state's value comes from `logits[:, t+1]`. A completion cut at
the length limit has no EOS: it is truncated, not terminal, so its last V(s') bootstraps from
the final position's logits, which every forward pass already produces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


@dataclass
class TokenMDP:
    """Per-position MDP quantities of a batch, each [B, T-1] and aligned with the actions.

    `q`, `v` and `v_next` carry gradients; `mask`, `terminal` and `actions` do not.
    """

    q: torch.Tensor  # Q(s_t, a_t) of the taken action
    v: torch.Tensor  # V(s_t)
    v_next: torch.Tensor  # V(s_{t+1}), zero after EOS
    mask: torch.Tensor  # bool: position holds an action
    terminal: torch.Tensor  # bool: the action is EOS
    actions: torch.Tensor  # token ids, 0 where not an action
    alpha: float

    @property
    def log_pi(self) -> torch.Tensor:
        return (self.q - self.v) / self.alpha

    def reward(self, gamma: float) -> torch.Tensor:
        """Implied reward r = Q(s, a) − γ·V(s')."""
        return self.q - gamma * self.v_next


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``Σ x·m / max(Σ m, 1)`` (0 for an empty mask); plain mean when ``mask`` is None."""
    if mask is None:
        return x.mean()
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def eos_mask(tokens: torch.Tensor, eos_token_id: int | Sequence[int] | None) -> torch.Tensor:
    """True where `tokens` is an end-of-sequence id (several ids allowed, as in Llama 3)."""
    if eos_token_id is None:
        raise ValueError("eos_token_id is required to tell terminal from truncated sequences")
    ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    return torch.isin(tokens, torch.tensor(ids, device=tokens.device))


def upcast(x: torch.Tensor) -> torch.Tensor:
    """At least fp32: half-precision logsumexp over a large vocabulary loses the small terms."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def soft_value(logits: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """V(s) = α·logsumexp(Q(s, ·)/α) in at least fp32, over the last dimension."""
    logits = upcast(logits)
    if alpha == 1.0:
        return torch.logsumexp(logits, dim=-1)
    return alpha * torch.logsumexp(logits / alpha, dim=-1)


def token_mdp(
    logits: torch.Tensor, labels: torch.Tensor, *, eos_token_id: int | Sequence[int], alpha: float = 1.0
) -> TokenMDP:
    """Q, V and V(s') of every action in a [B, T, V] logits batch with [B, T] HF labels.

    One logsumexp over the whole [B, T, V] tensor gives V at every position: the V of each state
    and, shifted by one, the bootstrap V(s') of the previous action. No second pass over the
    vocabulary is made.
    """
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on [B, T]")
    values = soft_value(logits, alpha)  # [B, T]
    actions = labels[:, 1:]
    mask = actions != IGNORE_INDEX
    safe_actions = actions.masked_fill(~mask, 0)
    q = upcast(logits[:, :-1].gather(-1, safe_actions.unsqueeze(-1)).squeeze(-1))
    terminal = eos_mask(safe_actions, eos_token_id) & mask
    v_next = values[:, 1:].masked_fill(terminal, 0.0)
    return TokenMDP(q=q, v=values[:, :-1], v_next=v_next, mask=mask, terminal=terminal, actions=safe_actions, alpha=alpha)


@torch.no_grad()
def policy_entropy(logits: torch.Tensor, mask: torch.Tensor, alpha: float = 1.0, chunk: int = 4096) -> torch.Tensor:
    """Mean entropy (nats) of π = softmax(logits/α) over the positions where `mask` is true.

    `logits` is [..., V] and `mask` its leading shape. Chunked so that logging the entropy never
    holds a second fp32 copy of the full logits.
    """
    selected = logits[mask]
    if selected.numel() == 0:
        return torch.zeros((), device=logits.device)
    total = torch.zeros((), device=logits.device, dtype=upcast(logits[:0]).dtype)
    for part in selected.split(chunk):
        # entr(0) = 0, so −inf logits (banned tokens) give no 0·(−inf) = nan
        total += torch.special.entr(torch.softmax(upcast(part) / alpha, dim=-1)).sum()
    return total / selected.shape[0]


def first_action_value(mdp: TokenMDP) -> torch.Tensor:
    """Mean V(s_0) over rows: the value of the state in which each row's first action is taken."""
    has_action = mdp.mask.any(-1)
    first = mdp.mask.int().argmax(-1)
    v0 = mdp.v.gather(-1, first.unsqueeze(-1)).squeeze(-1)
    return v0[has_action].mean() if has_action.any() else v0.new_zeros(())


def action_mask(labels: torch.Tensor) -> torch.Tensor:
    """True where ``labels[:, t]`` is an action. Position 0 never is: no logits predict it."""
    mask = labels != IGNORE_INDEX
    mask[:, 0] = False
    return mask


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log π(labels[t] | s_t)`` from ``logits[:, t − 1]``, aligned with labels (as ``old_logprobs``), 0 off actions.

    gather − logsumexp rather than a full log_softmax: one [B, T] result, no second [B, T, V] tensor.
    """
    mask = action_mask(labels)
    actions = labels[:, 1:].masked_fill(~mask[:, 1:], 0)
    logits = upcast(logits[:, :-1])
    lp = logits.gather(-1, actions.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return F.pad(lp, (1, 0)).masked_fill(~mask, 0.0)
