"""Training objectives as pure functions of (logits, labels): SFT and offline inverse soft-Q.

Offline IQ-Learn with the χ² regulariser (DESIGN.md §3), with λ = td_weight:

    L(θ) = E_demo[ −(Q(s,a) − V(s)) + λ·(Q(s,a) − γ·V(s'))² ] = E_demo[ −α·log π(a|s) + λ·r(s,a)² ]

λ = 0 is behaviour cloning (SFT) exactly. Every loss is a token-mean over action positions and
returns `(loss, stats)`, stats being detached scalars for logging.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from llm_irl.soft_q import IGNORE_INDEX, TokenMDP, first_action_value, policy_entropy, token_mdp, upcast


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp_min(1)


def sft_loss(logits: torch.Tensor, labels: torch.Tensor, *, log_entropy: bool = True) -> tuple[torch.Tensor, dict]:
    """Token-mean cross-entropy on the shifted labels (the standard causal-LM loss)."""
    shifted = labels[:, 1:]
    loss = F.cross_entropy(upcast(logits[:, :-1].flatten(0, 1)), shifted.flatten(), ignore_index=IGNORE_INDEX)
    stats = {"nll": loss.detach()}
    if log_entropy:
        stats["entropy"] = policy_entropy(logits[:, :-1], shifted != IGNORE_INDEX)
    return loss, stats


def _iq_stats(mdp: TokenMDP, nll: torch.Tensor, r: torch.Tensor, td: torch.Tensor) -> dict:
    with torch.no_grad():
        return {
            "nll": nll.detach(),
            "td": td.detach(),
            "reward": _masked_mean(r, mdp.mask).detach(),
            "v0": first_action_value(mdp).detach(),
        }


# -------------------------------------------------------------- objectives over a TokenMDP
# Shared by the full-logits losses below and the chunked ones (llm_irl.chunked), which differ only
# in how they obtain Q, V and V(s').


def iq_objective(mdp: TokenMDP, *, gamma: float, td_weight: float) -> tuple[torch.Tensor, dict]:
    """Token-mean of `−(Q(s,a) − V(s)) + td_weight·r²` over the action positions of `mdp`."""
    r = mdp.reward(gamma)
    nll = _masked_mean(-mdp.log_pi, mdp.mask)
    td = _masked_mean(r.square(), mdp.mask)
    # −(Q − V) = −α·log π, so the first term is α times the NLL
    return mdp.alpha * nll + td_weight * td, _iq_stats(mdp, nll, r, td)


def value_head_objective(mdp: TokenMDP, values: torch.Tensor, *, gamma: float, td_weight: float):
    """The (π, V_ψ) form: `−α·log π + λ·(α·log π + V_ψ(s) − γ·V_ψ(s'))²`, V_ψ(s') = 0 after EOS.

    `values` [B, T] is the head's V_ψ at every position; the policy still comes from `mdp`.
    """
    alpha, log_pi = mdp.alpha, mdp.log_pi
    values = upcast(values)
    v_next = values[:, 1:].masked_fill(mdp.terminal, 0.0)
    r = alpha * log_pi + values[:, :-1] - gamma * v_next
    nll = _masked_mean(-log_pi, mdp.mask)
    td = _masked_mean(r.square(), mdp.mask)
    head_mdp = TokenMDP(q=mdp.q, v=values[:, :-1], v_next=v_next, mask=mdp.mask, terminal=mdp.terminal,
                        actions=mdp.actions, alpha=alpha)
    return alpha * nll + td_weight * td, _iq_stats(head_mdp, nll, r, td)


def online_iq_objective(mdp: TokenMDP, is_policy: torch.Tensor, *, gamma: float, td_weight: float):
    """Online IQ-Learn (χ²) on a batch mixing demonstrations and policy samples.

        L = −E_demo[Q(s,a) − γ·V(s')] + E_mix[V(s) − γ·V(s')] + λ·E_mix[r²]

    `is_policy` [B] marks the rows sampled from the current policy. The reward term runs over
    the demonstrations only, the value and χ² terms over the mixture (IQ-Learn's "value" loss
    with its "regularize" option). With no policy rows the value terms telescope and this is
    the offline objective (−(Q − V) = −α·log π) up to float rounding.
    """
    demo = mdp.mask & ~is_policy[:, None]
    r = mdp.reward(gamma)
    td = _masked_mean(r.square(), mdp.mask)
    loss = -_masked_mean(r, demo) + _masked_mean(mdp.v - gamma * mdp.v_next, mdp.mask) + td_weight * td
    stats = _iq_stats(mdp, _masked_mean(-mdp.log_pi, demo), r, td)
    stats["reward"] = _masked_mean(r, demo).detach()
    stats["reward_policy"] = _masked_mean(r, mdp.mask & is_policy[:, None]).detach()
    return loss, stats


# -------------------------------------------------------------- the same, from full logits


def _with_entropy(result, logits: torch.Tensor, mdp: TokenMDP, log_entropy: bool):
    loss, stats = result
    if log_entropy:
        stats["entropy"] = policy_entropy(logits[:, :-1], mdp.mask, mdp.alpha)
    return loss, stats


def iq_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    eos_token_id: int | Sequence[int],
    gamma: float = 0.99,
    td_weight: float = 0.1,
    alpha: float = 1.0,
    log_entropy: bool = True,
) -> tuple[torch.Tensor, dict]:
    """Offline inverse soft-Q loss with V taken from the logits.

    Returns the token-mean over action tokens of `−(Q(s,a) − V(s)) + td_weight·r²` and stats
    `nll` (mean −log π), `td` (mean r²), `reward` (mean r), `v0` (mean V of each row's first
    action state) and, if asked, `entropy` (mean policy entropy at action states).
    """
    mdp = token_mdp(logits, labels, eos_token_id=eos_token_id, alpha=alpha)
    return _with_entropy(iq_objective(mdp, gamma=gamma, td_weight=td_weight), logits, mdp, log_entropy)


def iq_value_head_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    labels: torch.Tensor,
    *,
    eos_token_id: int | Sequence[int],
    gamma: float = 0.99,
    td_weight: float = 0.1,
    alpha: float = 1.0,
    log_entropy: bool = True,
) -> tuple[torch.Tensor, dict]:
    """`value_head_objective` from full logits and the head's values [B, T] (the lecture's min over π, V)."""
    mdp = token_mdp(logits, labels, eos_token_id=eos_token_id, alpha=alpha)
    return _with_entropy(value_head_objective(mdp, values, gamma=gamma, td_weight=td_weight), logits, mdp,
                         log_entropy)


def online_iq_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    is_policy: torch.Tensor,
    *,
    eos_token_id: int | Sequence[int],
    gamma: float = 0.99,
    td_weight: float = 0.1,
    alpha: float = 1.0,
    log_entropy: bool = True,
) -> tuple[torch.Tensor, dict]:
    """`online_iq_objective` from the full logits of a batch mixing demonstrations and policy samples."""
    mdp = token_mdp(logits, labels, eos_token_id=eos_token_id, alpha=alpha)
    return _with_entropy(online_iq_objective(mdp, is_policy, gamma=gamma, td_weight=td_weight), logits, mdp,
                         log_entropy)
