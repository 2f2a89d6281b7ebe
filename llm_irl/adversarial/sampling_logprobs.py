"""Log-probabilities under the distribution a sample was drawn from: logits / temperature, nucleus-cut.

`llm_irl.rollout` samples from `softmax(logits / (α·T))` cut to its `top_p` nucleus (HF's temperature
and top-p warpers, in that order) and records each token's log-probability there: PPO's old
log-probs. The new log-probs of the ratio must come from the same distribution of the current
logits, or the ratio is off from 1 before the policy has moved. `sampling_logprobs` is that
distribution, teacher-forced and differentiable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llm_irl.soft_q import action_mask, token_logprobs, upcast


def nucleus_mask(scores: torch.Tensor, top_p: float, keep: torch.Tensor | None = None) -> torch.Tensor:
    """True where HF's `TopPLogitsWarper` would cut a token of [N, V] `scores`: the least likely tokens
    whose total probability is at most 1 − top_p (the most likely one always stays). `keep` [N] token
    ids are never cut: a sampled token stays in its own nucleus once the policy has moved."""
    with torch.no_grad():
        ordered, order = torch.sort(scores, dim=-1, descending=False)
        cut_sorted = ordered.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p
        cut_sorted[..., -1] = False
        cut = cut_sorted.scatter(-1, order, cut_sorted)
        if keep is not None:
            cut.scatter_(-1, keep[:, None], False)
    return cut


def sampling_logprobs(logits: torch.Tensor, labels: torch.Tensor, *, temperature: float = 1.0,
                      top_p: float = 1.0) -> torch.Tensor:
    """`log q(labels[t] | s_t)` with q = softmax(logits[:, t − 1] / temperature) cut to its `top_p`
    nucleus and renormalised; labels-aligned [B, T] like `soft_q.token_logprobs` (0 off actions),
    which it is at temperature 1 and top_p 1. `temperature` is the divisor itself (α·T for a policy
    recorded with α). Gradients flow through the kept tokens' logits.

    A sampled token the current logits would cut is kept in its nucleus (its log-prob stays finite):
    at the policy that sampled it, it is always inside, so this changes nothing there.
    """
    if temperature <= 0 or not 0.0 < top_p <= 1.0:
        raise ValueError(f"need temperature > 0 and top_p in (0, 1], got {temperature}, {top_p}")
    if top_p == 1.0:
        return token_logprobs(logits if temperature == 1.0 else upcast(logits) / temperature, labels)
    mask = action_mask(labels)
    at = mask[:, 1:]  # positions of logits that choose an action
    actions = labels[:, 1:][at]
    scores = upcast(logits[:, :-1][at]) / temperature  # [N, V]: only the action states, no [B, T, V] sort
    scores = scores.masked_fill(nucleus_mask(scores, top_p, keep=actions), float("-inf"))
    lp = scores.gather(-1, actions[:, None]).squeeze(-1) - torch.logsumexp(scores, dim=-1)
    out = torch.zeros(at.shape, dtype=lp.dtype, device=lp.device).masked_scatter(at, lp)
    return F.pad(out, (1, 0))
