"""SPIN's loss (Chen et al., ICML 2024, "Self-Play Fine-Tuning Converts Weak Language Models to Strong
Language Models"): the demonstration against the previous iterate's own sample, DPO's logistic form.

For a prompt x with demonstration y ("chosen") and a sample y' ~ π_t(·|x) of the previous iterate
π_t ("rejected"), with sequence log-probabilities log π(y|x) (summed over the completion's actions,
EOS included):

    L = −log σ(β·[(log π_θ(y|x) − log π_t(y|x)) − (log π_θ(y'|x) − log π_t(y'|x))])

averaged over pairs. β·log(π_θ/π_t) is the implicit reward, so SPIN is an inverse-RL method: the
demonstrations' reward is raised against the current policy's own behaviour, as in GAIL, but the
reward is the log-ratio itself and the policy update is closed-form (no discriminator, no PPO).
At π_θ = π_t every ratio is 0, the loss is log 2 and its gradient pushes log π_θ(y) up and
log π_θ(y') down with weight β/2 each. The stats follow TRL's DPO names where it has one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SPIN_BETA = 0.1  # the paper's runs (uclaml/SPIN configs: beta 0.1); SPINConfig.beta's default

__all__ = ["SPIN_BETA", "sequence_logps", "spin_loss"]


def sequence_logps(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log π(y|x) per row: the per-token log-probs [B, T] summed where `mask` [B, T] marks an action."""
    return (token_logps * mask.to(token_logps.dtype)).sum(-1)


def spin_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float = SPIN_BETA,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SPIN's mean logistic loss over pairs [B] of sequence log-probs, and its detached stats.

    Args:
        policy_chosen_logps: log π_θ(y|x) of the demonstrations (carry the gradient).
        policy_rejected_logps: log π_θ(y'|x) of the previous iterate's samples (carry the gradient).
        ref_chosen_logps, ref_rejected_logps: the same under the previous iterate π_t (constants).
        beta: β > 0, the inverse temperature of the logistic loss and the reward's scale.

    Returns:
        (loss, stats): stats are `spin_loss`, `rewards_chosen` and `rewards_rejected` (mean implicit
        rewards β·(log π_θ − log π_t)), `reward_margin` (their mean difference), `reward_accuracy`
        (share of pairs whose demonstration has the larger reward), `logps_chosen`, `logps_rejected`.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    shapes = {tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                                       ref_rejected_logps)}
    if len(shapes) != 1:
        raise ValueError(f"need four log-prob tensors of one shape [B], got shapes {sorted(shapes)}")
    chosen_ratio = policy_chosen_logps - ref_chosen_logps.detach()
    rejected_ratio = policy_rejected_logps - ref_rejected_logps.detach()
    losses = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))
    loss = losses.mean()
    rewards_chosen, rewards_rejected = beta * chosen_ratio.detach(), beta * rejected_ratio.detach()
    stats = {
        "spin_loss": loss.detach(),
        "rewards_chosen": rewards_chosen.mean(),
        "rewards_rejected": rewards_rejected.mean(),
        "reward_margin": (rewards_chosen - rewards_rejected).mean(),
        "reward_accuracy": (rewards_chosen > rewards_rejected).float().mean(),
        "logps_chosen": policy_chosen_logps.detach().mean(),
        "logps_rejected": policy_rejected_logps.detach().mean(),
    }
    return loss, stats
