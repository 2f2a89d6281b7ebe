"""Losses of the adversarial IRL family: discriminators, rewards, policy updates (docs/design.md, "The
adversarial family").

Pure functions of tensors, no model code. Three reward losses share one policy update:

- ``gail``:   BCE discriminator, demos = 1, policy samples = 0; reward −log(1 − D) or log D.
- ``airl``:   D = exp(f) / (exp(f) + π), i.e. logit f − log π; reward f − log π.
- ``margin``: structured max-margin with slack, f(demo) ≥ f(sample) + Δ(demo, sample) − ζ.

Policy update: ``ppo_clip_loss`` or ``reinforce_loss`` on (whitened) advantages, with helpers
``whiten``, ``kl_penalty`` and ``discounted_returns``.

Conventions: discriminator scores are 1-D (or any shape; every element is one sample: a sequence,
or a token when the caller selects action tokens with a mask, e.g. ``scores[mask]``). Token-level
tensors are [B, T] with a 0/1 ``mask`` of action tokens; masked means are ``Σ x·m / Σ m``.
Rewards are returned detached: they are constants to the policy update.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from llm_irl.defaults import (
    ADV_CLIP_RANGE,
    ADV_GAMMA,
    ADV_KL_COEF,
    ADV_KL_ESTIMATOR,
    ADV_LABEL_SMOOTHING,
    ADV_MARGIN_L2_WEIGHT,
    ADV_MARGIN_SLACK_WEIGHT,
    ADV_MISSING_EOS_PENALTY,
    ADV_REWARD_KIND,
    ADV_WHITEN_ADVANTAGES,
)
from llm_irl.soft_q import masked_mean

__all__ = [
    "gail_disc_loss",
    "gail_reward",
    "binary_entropy",
    "airl_disc_loss",
    "airl_reward",
    "margin_disc_loss",
    "text_distance",
    "text_distances",
    "ppo_clip_loss",
    "reinforce_loss",
    "whiten",
    "kl_penalty",
    "discounted_returns",
    "leave_one_out_baseline",
    "policy_advantages",
    "masked_mean",
]


# ----------------------------------------------------------------------------- GAIL


def gail_disc_loss(
    demo_logits: Tensor, policy_logits: Tensor, label_smoothing: float = ADV_LABEL_SMOOTHING
) -> tuple[Tensor, dict[str, float]]:
    """Binary cross-entropy of a discriminator D = σ(logit), demos labelled 1, policy samples 0.

        L = ½·( E_demo[−log D] + E_policy[−log(1 − D)] )
          = ½·( E_demo[softplus(−logit)] + E_policy[softplus(logit)] )

    Each class is averaged on its own, so unequal numbers of demos and samples do not tilt D.
    All logits 0 (D = ½ everywhere) give L = log 2 ≈ 0.6931. ``label_smoothing`` ε sets the
    targets to 1 − ε (demos) and ε (samples): ``BCE(ℓ, y) = softplus(ℓ) − y·ℓ``, which bounds the
    optimal logit at ±log((1 − ε)/ε) instead of letting a separable batch push it to infinity.

    Returns ``(loss, stats)``; stats: ``loss``, ``disc_acc_demo`` = P(logit > 0 | demo),
    ``disc_acc_policy`` = P(logit < 0 | policy) (a tie at 0 counts as wrong), ``disc_bal_acc``
    their mean, ``disc_entropy`` the mean binary entropy of D over both classes (log 2 when D is
    undecided, 0 when it is sure).
    """
    eps = label_smoothing
    demo_term = F.softplus(-demo_logits) if eps == 0 else F.softplus(demo_logits) - (1 - eps) * demo_logits
    policy_term = F.softplus(policy_logits) if eps == 0 else F.softplus(policy_logits) - eps * policy_logits
    loss = 0.5 * (demo_term.mean() + policy_term.mean())
    with torch.no_grad():
        acc_demo = (demo_logits > 0).float().mean().item()
        acc_policy = (policy_logits < 0).float().mean().item()
        stats = {
            "loss": loss.item(),
            "disc_acc_demo": acc_demo,
            "disc_acc_policy": acc_policy,
            "disc_bal_acc": 0.5 * (acc_demo + acc_policy),
            "disc_entropy": 0.5 * (binary_entropy(demo_logits).mean() + binary_entropy(policy_logits).mean()).item(),
        }
    return loss, stats


def binary_entropy(logits: Tensor) -> Tensor:
    """Entropy (nats) of D = σ(logit): ``−D·log D − (1 − D)·log(1 − D) = softplus(ℓ) − ℓ·σ(ℓ)``."""
    return F.softplus(logits) - logits * torch.sigmoid(logits)


def gail_reward(disc_logits: Tensor, kind: str = ADV_REWARD_KIND) -> Tensor:
    """Policy reward from discriminator logits (detached), D = σ(logit).

    - ``"neg_log_one_minus_d"``: r = −log(1 − D) = softplus(logit) ∈ (0, ∞). Always positive,
      a survival bonus: longer completions collect more.
    - ``"log_d"``: r = log D = −softplus(−logit) ∈ (−∞, 0). Always negative: favours ending early.

    logit 0 gives log 2 and −log 2 respectively.
    """
    if kind == "neg_log_one_minus_d":
        r = F.softplus(disc_logits)
    elif kind == "log_d":
        r = -F.softplus(-disc_logits)
    else:
        raise ValueError(f"Unknown GAIL reward kind {kind!r}: use 'neg_log_one_minus_d' or 'log_d'.")
    return r.detach()


# ----------------------------------------------------------------------------- AIRL


def airl_disc_loss(
    demo_f: Tensor, demo_logpi: Tensor, policy_f: Tensor, policy_logpi: Tensor
) -> tuple[Tensor, dict[str, float]]:
    """AIRL discriminator ``D = exp(f) / (exp(f) + π)``, trained with the GAIL BCE.

    D's logit is ``log D − log(1 − D) = f − log π``, so this is ``gail_disc_loss`` on
    ``demo_f − demo_logpi`` and ``policy_f − policy_logpi``. ``log π`` (of the whole sequence, or of
    one token, matching what ``f`` scores) is the current policy's and is detached: the
    discriminator step must not move the policy. At optimum f recovers the advantage /
    reward up to shaping (Fu et al. 2018), the MaxEnt-IRL gradient in adversarial form.
    """
    return gail_disc_loss(demo_f - demo_logpi.detach(), policy_f - policy_logpi.detach())


def airl_reward(f: Tensor, logpi: Tensor) -> Tensor:
    """AIRL policy reward ``r = log D − log(1 − D) = f − log π`` (the discriminator logit), detached.

    Maximising E_π[f − log π] is entropy-regularised RL on reward f: the −log π term is the
    entropy bonus that makes the policy the MaxEnt solution.
    """
    return (f - logpi).detach()


# ----------------------------------------------------------------------------- max-margin


def margin_disc_loss(
    demo_f: Tensor,
    policy_f: Tensor,
    delta: Tensor,
    slack_weight: float = ADV_MARGIN_SLACK_WEIGHT,
    l2_weight: float = ADV_MARGIN_L2_WEIGHT,
) -> tuple[Tensor, dict[str, float]]:
    """Structured max-margin with slack (lecture IRL v1) as a hinge loss.

    The constraint ``f(demo) ≥ f(sample) + Δ(demo, sample) − ζ`` with slack ζ ≥ 0 is tightest at

        ζ = relu( f(sample) + Δ(demo, sample) − f(demo) )

    and the loss is ``slack_weight · mean ζ + l2_weight · mean(f(demo)² + f(sample)²)``. The L2
    term keeps the scores bounded (the hinge alone is invariant to adding a constant to f and
    rewards blowing the scale up). ``demo_f``, ``policy_f`` and ``delta`` broadcast: pairs [N], or
    one demo against K samples with ``demo_f`` [N, 1] and ``policy_f``, ``delta`` [N, K].

    Returns ``(loss, stats)``; stats: ``loss``, ``slack`` (mean ζ), ``violation_frac`` (P(ζ > 0)),
    ``margin`` (mean f(demo) − f(sample)).
    """
    demo_f, policy_f, delta = torch.broadcast_tensors(demo_f, policy_f, delta.to(policy_f.dtype))
    slack = F.relu(policy_f + delta - demo_f)
    loss = slack_weight * slack.mean()
    if l2_weight:
        loss = loss + l2_weight * (demo_f.pow(2) + policy_f.pow(2)).mean()
    with torch.no_grad():
        stats = {
            "loss": loss.item(),
            "slack": slack.mean().item(),
            "violation_frac": (slack > 0).float().mean().item(),
            "margin": (demo_f - policy_f).mean().item(),
        }
    return loss, stats


def text_distance(a_tokens: Sequence[int], b_tokens: Sequence[int]) -> float:
    """Δ for the margin loss: normalised token edit distance in [0, 1].

        Δ(a, b) = Levenshtein(a, b) / max(|a|, |b|),   Δ(∅, ∅) = 0

    (insertions, deletions and substitutions cost 1; e.g. "kitten" → "sitting" = 3/7). Word order
    matters, unlike 1 − unigram-F1, and identical texts get 0 so a demo re-sampled exactly by the
    policy asks for no margin. O(|a|·|b|) time, O(|b|) memory.
    """
    a, b = list(a_tokens), list(b_tokens)
    if not a and not b:
        return 0.0
    prev = list(range(len(b) + 1))  # distance from a[:0] to b[:j]
    for i, x in enumerate(a, start=1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1] / max(len(a), len(b))


def text_distances(a_batch: Sequence[Sequence[int]], b_batch: Sequence[Sequence[int]]) -> Tensor:
    """``text_distance`` of each pair (a_i, b_i) as a float32 tensor [N], ready as ``delta``."""
    if len(a_batch) != len(b_batch):
        raise ValueError(f"Need as many demos as samples, got {len(a_batch)} and {len(b_batch)}.")
    return torch.tensor([text_distance(a, b) for a, b in zip(a_batch, b_batch)], dtype=torch.float32)


# ----------------------------------------------------------------------------- policy updates


def _broadcast_advantages(advantages: Tensor, like: Tensor) -> Tensor:
    # Sequence-level advantages [B] apply to every token of their sequence.
    if advantages.dim() == like.dim() - 1:
        advantages = advantages.unsqueeze(-1)
    return advantages.detach().to(like.dtype).expand_as(like)


def ppo_clip_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_range: float = ADV_CLIP_RANGE,
) -> tuple[Tensor, dict[str, float]]:
    """Token-level PPO-clip policy loss (Schulman et al. 2017).

        ρ_t = exp(log π_θ(a_t|s_t) − log π_old(a_t|s_t))
        L   = masked_mean_t( max(−A_t·ρ_t, −A_t·clip(ρ_t, 1−ε, 1+ε)) )

    ``logprobs`` [B, T] carry gradients; ``old_logprobs`` and ``advantages`` ([B, T], or [B] for a
    sequence-level advantage broadcast over tokens) are constants. Returns ``(loss, stats)``;
    stats: ``loss``, ``clip_frac`` = masked share of tokens where the clipped term is the larger
    (and so carries no gradient), ``approx_kl`` = masked mean of ``(ρ − 1) − log ρ`` (the k3
    estimator of KL(π_old ‖ π_θ): non-negative, unbiased, low variance).
    """
    adv = _broadcast_advantages(advantages, logprobs)
    log_ratio = logprobs - old_logprobs.detach()
    ratio = torch.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "loss": loss.item(),
            "clip_frac": masked_mean((clipped > unclipped).to(logprobs.dtype), mask).item(),
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask).item(),
        }
    return loss, stats


def reinforce_loss(logprobs: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """REINFORCE with a baseline: ``L = −masked_mean_t( A_t · log π_θ(a_t|s_t) )``.

    ``advantages`` ([B, T] or [B]) are already baselined (e.g. return − mean return, or whitened)
    and detached here, so the gradient is ``−E[A ∇log π]``.
    """
    adv = _broadcast_advantages(advantages, logprobs)
    return masked_mean(-adv * logprobs, mask)


def whiten(x: Tensor, mask: Tensor | None = None, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Normalise rewards / advantages over the masked elements: ``(x − μ) / sqrt(σ² + eps)``.

    μ and σ² (population variance) are masked statistics. ``shift_mean=False`` only rescales,
    keeping the sign of each reward. Masked-out positions are set to 0 so they cannot leak into a
    later unmasked sum.
    """
    m = torch.ones_like(x) if mask is None else mask.to(x.dtype)
    mean = masked_mean(x, m)
    var = masked_mean((x - mean) ** 2, m)
    out = (x - mean) if shift_mean else x
    return out * torch.rsqrt(var + eps) * m


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor | None = None, kind: str = ADV_KL_ESTIMATOR) -> Tensor:
    """Per-token KL(π_θ ‖ π_ref) estimate on tokens sampled from π_θ, zero where ``mask`` is 0.

    - ``"k1"`` (default): ``log π_θ(a) − log π_ref(a)``; unbiased, can be negative per token. The
      usual RLHF reward penalty ``r_t − β·k1_t``.
    - ``"k3"``: ``(ρ − 1) − log ρ`` with ``ρ = π_ref(a)/π_θ(a)``; unbiased and ≥ 0.
    """
    diff = logprobs - ref_logprobs
    if kind == "k1":
        kl = diff
    elif kind == "k3":
        kl = torch.expm1(-diff) + diff
    else:
        raise ValueError(f"Unknown KL estimator {kind!r}: use 'k1' or 'k3'.")
    return kl if mask is None else kl * mask.to(kl.dtype)


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """Reward-to-go over action tokens: ``G_t = r_t + γ·G_{t'}``, t' the next action position.

    ``rewards``, ``mask`` [B, T]. Positions where ``mask`` is 0 are not steps: their reward is
    ignored, they are not discounted over, and their output is 0. So labels-aligned masks (prompt,
    then completion, then padding) work as is, and the return after the last action is 0, which is
    right for terminated episodes. For a truncated one, add ``γ·V(s_T)`` to its last reward first.
    """
    m = mask.to(rewards.dtype)
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = m[..., t] * (rewards[..., t] + gamma * running) + (1 - m[..., t]) * running
        out[..., t] = m[..., t] * running
    return out


def leave_one_out_baseline(returns: Tensor, k: int) -> Tensor:
    """Per-prompt baseline of RLOO (Ahmadian et al. 2024): each sample's baseline is the mean return
    of the *other* k − 1 samples of its prompt.

    ``returns`` [N] with sample ``j`` of prompt ``i`` at ``i·k + j``. The baseline does not depend
    on the sample's own actions, so ``return − baseline`` is an unbiased advantage, and it removes
    what the prompt alone explains (an easy topic scores high whatever the policy writes).
    """
    if k < 2 or returns.shape[0] % k:
        raise ValueError(f"leave_one_out_baseline needs k >= 2 dividing {returns.shape[0]} returns, got k={k}")
    groups = returns.reshape(-1, k)
    return ((groups.sum(-1, keepdim=True) - groups) / (k - 1)).reshape(returns.shape)


def policy_advantages(
    rewards: Tensor,
    mask: Tensor,
    *,
    logprobs: Tensor | None = None,
    ref_logprobs: Tensor | None = None,
    kl_coef: float = ADV_KL_COEF,
    kl_estimator: str = ADV_KL_ESTIMATOR,
    terminated: Tensor | None = None,
    missing_eos_penalty: float | None = ADV_MISSING_EOS_PENALTY,
    normalize_rewards: str | None = None,
    gamma: float = ADV_GAMMA,
    group_size: int | None = None,
    whiten_advantages: bool = ADV_WHITEN_ADVANTAGES,
) -> tuple[Tensor, dict[str, float]]:
    """Per-token advantages [N, T] of a rollout batch from its rewards: [N, T] per token, or [N] per sequence
    (placed on each sequence's last action token).

        R_t = r_t − p·[cut without EOS]·[t last] − β·KL_t,    G_t = Σ_{t'≥t} γ^(t'−t)·R_t',
        A_t = G_t − b,  b = the mean G over the batch's action tokens or, with ``group_size`` k (RLOO),
                        the mean G_0 of the k − 1 other samples of the same prompt (``leave_one_out_baseline``),

    then whitened over the batch's action tokens (``whiten_advantages``). KL_t is ``kl_penalty`` of
    ``logprobs`` (the sampling policy's) against ``ref_logprobs`` with ``kl_estimator``; p is
    ``missing_eos_penalty``, charged where ``terminated`` is False. ``normalize_rewards``: None,
    "token" (whiten r over action tokens) or "sequence" (whiten each sequence's total r; the shift
    goes on its last token), before the penalties. With β = 0, γ = 1 and a sequence reward, every token
    of a completion gets its sequence's reward. Stats: ``reward`` (mean total r of a sample, as given)
    and, with a reference, ``kl`` (the mean k1 estimate of KL(π‖π_ref) of a whole completion).
    """
    last = (torch.arange(mask.shape[1], device=mask.device) * mask.long()).argmax(1, keepdim=True)
    at_last = torch.zeros_like(mask).scatter(1, last, True) & mask
    r = rewards.float()
    if r.dim() == 1:
        r = r.unsqueeze(1) * at_last
    stats = {"reward": r.sum(-1).mean().item()}
    if normalize_rewards == "token":
        r = whiten(r, mask)
    elif normalize_rewards == "sequence":
        total = r.sum(-1, keepdim=True)
        r = (r - total.mean() * at_last) / total.std(unbiased=False).clamp_min(1e-8)
    elif normalize_rewards is not None:
        raise ValueError(f"normalize_rewards must be None, 'token' or 'sequence', got {normalize_rewards!r}")
    if missing_eos_penalty is not None:
        r = r - missing_eos_penalty * (~terminated).unsqueeze(1) * at_last
    if ref_logprobs is not None and kl_coef > 0:
        r = r - kl_coef * kl_penalty(logprobs, ref_logprobs, mask, kind=kl_estimator)
        stats["kl"] = ((logprobs - ref_logprobs) * mask).sum(-1).mean().item()  # k1, whatever the penalty uses
    returns = discounted_returns(r, mask, gamma=gamma)
    if group_size is not None:
        first = returns.gather(1, mask.int().argmax(1, keepdim=True)).squeeze(1)  # G_0 of each sample
        adv = returns - leave_one_out_baseline(first, group_size).unsqueeze(1)
    else:
        adv = returns - masked_mean(returns, mask)
    return (whiten(adv, mask) if whiten_advantages else adv * mask), stats
