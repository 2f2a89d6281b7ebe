"""GEM (Li et al., ICLR 2025, "Preserving Diversity in Supervised Fine-tuning of Large Language Models"):
a drop-in replacement for SFT's cross-entropy, on full logits and chunk by chunk through the LM head.

At each action position, with logits z (V entries), taken action a, π = softmax(z) and β > 0:

    q = softmax(z/β),   w_b = 1 (h = "linear") or sigmoid(0.01·(z_b − z_a)) (h = "logsigmoid"),
    loss_t = −Σ_b q_b·w_b·(log π(a) − log π(b)),

with q and w held constant (no gradient), and the loss the token-mean over action positions, as
`losses.sft_loss`. With c = q·w, Σ_b c_b·log π(b) = Σ_b c_b·z_b − (Σ_b c_b)·logsumexp(z), so the
logsumexp cancels and

    loss_t = Σ_b c_b·(z_b − z_a),   ∂loss_t/∂z = c − (Σ_b c_b)·onehot(a):

linear in z given c. With h = "linear" and β = 1, c = π and the gradient is π − onehot(a), the
cross-entropy's; β < 1 sharpens q toward the model's top tokens, whose log-probabilities the loss
pushes down relative to the demonstrated one, which is what keeps the output distribution from
collapsing (the paper's entropy regulariser). The paper's runs use β = 0.7, h = "logsigmoid"
(`llm_irl.defaults.GEM_BETA`, `GEM_H`).

`gem_loss` forms each action row's loss and G = c − (Σ c)·onehot(a) in one no-grad pass over its
logits and saves G for backward (`_GEMLogits`; cross-entropy saves a tensor of that size too).
`chunked_gem_loss` computes the same from (hidden, W, b) of the LM head with `_ChunkedGEM`: forward
makes each chunk's logits, q, w and the per-row loss; backward recomputes them and forms
∂L/∂h = G·W, ∂L/∂W = Gᵀ·h, ∂L/∂b = Σ G with G = g_t·(c − Σc·onehot(a)). Only action rows are
computed and no [B, T, V] tensor exists.
"""

from __future__ import annotations

import torch

from llm_irl.chunked import _chunk_logits, add_head_grads, default_chunk_size
from llm_irl.defaults import GEM_BETA, GEM_H, GEM_H_CHOICES
from llm_irl.soft_q import IGNORE_INDEX, upcast

# the slope inside the logsigmoid weight, sigmoid(0.01·(z_b − z_a)), as in the paper's code
_LOGSIGMOID_SLOPE = 0.01


def _check(beta: float, h: str) -> None:
    if not beta > 0:
        raise ValueError(f"GEM beta must be > 0, got {beta}")
    if h not in GEM_H_CHOICES:
        raise ValueError(f"GEM h must be one of {', '.join(GEM_H_CHOICES)}, got {h!r}")


@torch.no_grad()
def _gem_rows(z: torch.Tensor, targets: torch.Tensor, beta: float, h: str, *, want_loss: bool, want_grad: bool,
              want_entropy: bool = False):
    """GEM at logits rows z [n, V] (at least fp32, overwritten) with taken actions `targets` [n].

    Returns (loss_t, −log π(a), entropy, G), None where not asked: with `want_loss` the per-row loss
    Σ_b c_b·(z_b − z_a), the nll and (with `want_entropy`) the entropy rows; with `want_grad` the
    gradient G = ∂loss_t/∂z = c − (Σ c)·onehot(a) [n, V]. Besides z (which becomes (z − z_a)/β)
    and c (which becomes G), at most one more [n, V] buffer at a time.
    """
    a = targets[:, None]
    z_a = z.gather(-1, a)
    loss = nll = entropy = None
    if want_loss:
        lse = torch.logsumexp(z, dim=-1)
        nll = lse - z_a.squeeze(-1)
        if want_entropy:  # H(π) = −Σ π·log π, log π = z − logsumexp(z)
            log_pi = z - lse[:, None]
            entropy = -torch.einsum("nv,nv->n", log_pi.exp(), log_pi)
            del log_pi
    scaled = z.sub_(z_a).div_(beta)  # softmax is shift-invariant: q = softmax((z − z_a)/β)
    c = torch.softmax(scaled, dim=-1)
    if h == "logsigmoid":  # w_b = sigmoid(0.01·(z_b − z_a)); the loss still needs `scaled`, the gradient not
        slope = _LOGSIGMOID_SLOPE * beta
        c.mul_((torch.mul(scaled, slope) if want_loss else scaled.mul_(slope)).sigmoid_())
    if want_loss:
        loss = beta * torch.einsum("nv,nv->n", c, scaled)
    grad = c.scatter_add_(-1, a, -c.sum(-1, keepdim=True)) if want_grad else None
    return loss, nll, entropy, grad


def _action_rows(labels: torch.Tensor):
    """Mask [B, T-1] of action positions and the taken actions there (HF labels, shifted as `sft_loss`)."""
    actions = labels[:, 1:]
    mask = actions != IGNORE_INDEX
    return mask, actions[mask]


def _per_token(loss_rows, nll_rows, ent_rows, mask, log_entropy):
    """Token-mean over the action positions (`sft_loss`'s normalisation) and the detached stats."""
    count = mask.sum().clamp_min(1)
    loss = loss_rows.sum() / count
    stats = {"gem": loss.detach(), "nll": nll_rows.sum() / count}
    if log_entropy:
        stats["entropy"] = ent_rows.sum() / count if ent_rows.numel() else ent_rows.new_zeros(())
    return loss, stats


class _GEMLogits(torch.autograd.Function):
    """Per-action-row GEM loss, −log π(a) and entropy of full logits [B, T, V] (`mask` [B, T-1]).

    Saves G = ∂loss_t/∂z of the action rows ([N, V] fp32, what cross-entropy's backward keeps too)
    and returns g_t·G in backward, scattered to the action positions of a [B, T, V] gradient.
    """

    @staticmethod
    def forward(ctx, logits, mask, actions, beta: float, h: str, want_entropy: bool):
        z = upcast(logits[:, :-1][mask])  # a fresh [N, V] copy: action positions only
        loss, nll, entropy, grad = _gem_rows(z, actions, beta, h, want_loss=True, want_grad=True,
                                              want_entropy=want_entropy)
        entropy = entropy if want_entropy else loss.new_empty(0)
        ctx.save_for_backward(grad, mask)
        ctx.logits_meta = (logits.shape, logits.dtype)
        ctx.mark_non_differentiable(nll, entropy)
        return loss, nll, entropy

    @staticmethod
    def backward(ctx, g_loss, _g_nll, _g_entropy):
        grad, mask = ctx.saved_tensors
        shape, dtype = ctx.logits_meta
        out = grad.new_zeros(shape, dtype=dtype)
        out[:, :-1][mask] = (grad * g_loss[:, None]).to(dtype)
        return out, None, None, None, None, None


def gem_loss(logits: torch.Tensor, labels: torch.Tensor, *, beta: float = GEM_BETA, h: str = GEM_H,
             log_entropy: bool = True) -> tuple[torch.Tensor, dict]:
    """GEM on full logits [B, T, V] with HF labels [B, T]: token-mean of Σ_b c_b·(z_b − z_a).

    Returns (loss, stats) as `losses.sft_loss` does: stats `gem` (the loss), `nll` (the plain
    −log π(a|s), logged beside it) and, if asked, `entropy`, all detached.
    """
    _check(beta, h)
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on [B, T]")
    mask, actions = _action_rows(labels)
    rows = _GEMLogits.apply(logits, mask, actions, beta, h, log_entropy)
    return _per_token(*rows, mask, log_entropy)


class _ChunkedGEM(torch.autograd.Function):
    """Per-row GEM loss, −log π(a) and entropy of hidden rows [N, H] under the head (W [V, H], b).

    `targets` [N] is each row's taken action (every row acts). Only the loss carries a gradient.
    Saves hidden, W, b and the targets; backward recomputes each chunk's logits and G.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, beta: float, h: str, chunk_size: int, want_entropy: bool):
        n = hidden.shape[0]
        out_dtype = upcast(hidden[:0]).dtype
        loss = hidden.new_empty(n, dtype=out_dtype)
        nll = hidden.new_empty(n, dtype=out_dtype)
        entropy = hidden.new_empty(n if want_entropy else 0, dtype=out_dtype)
        for s in range(0, n, chunk_size):
            e = min(s + chunk_size, n)
            z = _chunk_logits(hidden[s:e], weight, bias)
            loss[s:e], nll[s:e], ent, _ = _gem_rows(z, targets[s:e], beta, h, want_loss=True, want_grad=False,
                                                    want_entropy=want_entropy)
            if want_entropy:
                entropy[s:e] = ent
        ctx.save_for_backward(hidden, weight, bias, targets)
        ctx.beta, ctx.h, ctx.chunk_size = beta, h, chunk_size
        ctx.mark_non_differentiable(nll, entropy)
        return loss, nll, entropy

    @staticmethod
    def backward(ctx, g_loss, _g_nll, _g_entropy):
        hidden, weight, bias, targets = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        acc = upcast(hidden[:0]).dtype  # sums over chunks in at least fp32
        grad_h = torch.zeros_like(hidden, dtype=acc) if need_h else None
        grad_w = torch.zeros_like(weight, dtype=acc) if need_w else None
        grad_b = torch.zeros_like(bias, dtype=acc) if need_b else None
        n = hidden.shape[0]
        for s in range(0, n, chunk_size := ctx.chunk_size):
            e = min(s + chunk_size, n)
            h, g = hidden[s:e], g_loss[s:e, None].to(acc)
            z = _chunk_logits(h, weight, bias)
            # G = ∂loss_t/∂z; g_t scales the small [chunk, H] operands, not the [chunk, V] G
            G = _gem_rows(z, targets[s:e], ctx.beta, ctx.h, want_loss=False, want_grad=True)[3].to(hidden.dtype)
            add_head_grads((grad_h, grad_w, grad_b), G, g, h, weight, slice(s, e))
        return (
            grad_h.to(hidden.dtype) if need_h else None,
            grad_w.to(weight.dtype) if need_w else None,
            grad_b.to(bias.dtype) if need_b else None,
            None, None, None, None, None,
        )


def chunked_gem_loss(
    hidden: torch.Tensor, lm_head_weight: torch.Tensor, labels: torch.Tensor, *, beta: float = GEM_BETA,
    h: str = GEM_H, log_entropy: bool = True, chunk_size: int | None = None, lm_head_bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """`gem_loss` on the logits hidden·Wᵀ + b, same value, gradients and stats, without [B, T, V] logits.

    `hidden` [B, T, H] is what the model's lm_head consumes (`lm_head.lm_head_hidden`), `lm_head_weight`
    [V, H]; `chunk_size` rows of logits exist at a time (default: `chunked.default_chunk_size(V)`).
    """
    _check(beta, h)
    if hidden.shape[:2] != labels.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and labels {tuple(labels.shape)} disagree on [B, T]")
    if lm_head_weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"lm_head weight {tuple(lm_head_weight.shape)} does not take hidden size {hidden.shape[-1]}")
    mask, actions = _action_rows(labels)
    rows = hidden[:, :-1][mask]  # [N, H]: prompt and padding rows never reach the head
    chunk_size = chunk_size or default_chunk_size(lm_head_weight.shape[0])
    per_row, nll_rows, ent_rows = _ChunkedGEM.apply(rows, lm_head_weight, lm_head_bias, actions, beta, h,
                                                    chunk_size, log_entropy)
    return _per_token(per_row, nll_rows, ent_rows, mask, log_entropy)
