"""Memory-lean SFT and IQ losses: the LM head applied chunk by chunk, never a [B, T, V] tensor.

The full-logits path (`soft_q.token_mdp`) holds fp32 logits of every position, B·T·V floats
(2 × 512 × 128k fp32 is 0.5 GiB, and backward holds a softmax of the same size). Yet every
objective (docs/design.md, "Offline IQ") needs only two numbers per position from the vocabulary axis:

    V(s_t)    = α·logsumexp(z_t/α),   z_t = W·h_t (+ b)      (every state an action or V(s') needs)
    Q(s_t, a) = z_t[a]                                       (the taken action only)

and their gradients are

    ∂V/∂z = softmax(z/α) = π(·|s),   ∂Q/∂z = onehot(a),
    ∂L/∂h_t = g_t·W,   ∂L/∂W = Σ_t g_tᵀ·h_t,   g_t = ∂L/∂V_t·π_t + ∂L/∂Q_t·onehot(a_t).

So `_ChunkedSoftQ` computes (V, Q) over chunks of rows in forward, saves only the hidden rows and
V, and in backward recomputes each chunk's logits to form g. Peak extra memory is O(chunk·V)
instead of O(B·T·V), for one extra LM-head matmul per chunk. Only rows whose V or Q a loss reads
are computed at all (each action's state and, for IQ, its next state): prompt and padding rows
are skipped, which pays back much of that extra matmul ("completion-only positions").

`llm_irl.lm_head.lm_head_hidden` gets (hidden, W, b) from a Hugging Face causal LM without the
full logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from llm_irl.defaults import IQ_ALPHA, IQ_GAMMA, IQ_TD_HUBER, IQ_TD_WEIGHT, IQ_TERMINAL_TD
from llm_irl.losses import Centre, iq_objective
from llm_irl.soft_q import IGNORE_INDEX, TokenMDP, eos_mask, upcast

# logits of 2^23 fp32 floats (32 MiB) per chunk: 256 rows at a 32k vocabulary, 64 at 128k
_CHUNK_ELEMENTS = 1 << 23


def default_chunk_size(vocab_size: int) -> int:
    """Rows per chunk so that one chunk's fp32 logits stay near 32 MiB (at least 16 rows)."""
    return max(16, _CHUNK_ELEMENTS // max(vocab_size, 1))


# ---------------------------------------------------------------------------------- the kernel


def _chunk_logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """z = h·Wᵀ + b in the model's dtype (as its lm_head computes it), upcast to at least fp32."""
    return upcast(F.linear(h, weight, bias))


def add_head_grads(grads: tuple, dz: torch.Tensor, scale: torch.Tensor, h: torch.Tensor, weight: torch.Tensor,
                   rows: slice) -> None:
    """Add one chunk's share of the LM head's gradients, for ∂L/∂z = diag(scale)·dz.

    `grads` is (grad_h, grad_w, grad_b), each None when not needed, summed in at least fp32; `dz` [chunk, V]
    in the model's dtype, `scale` [chunk, 1], `h` [chunk, H] the chunk's hidden rows. The diagonal scaling
    goes on the small [chunk, H] operands rather than on dz, so dz is only read, by the matmuls.
    """
    grad_h, grad_w, grad_b = grads
    if grad_h is None and grad_w is None and grad_b is None:
        return
    acc = next(g for g in grads if g is not None).dtype
    if grad_h is not None:
        grad_h[rows] = scale * (dz @ weight).to(acc)
    if grad_w is not None and dz.dtype == acc:
        grad_w.addmm_(dz.T, scale * h)
    elif grad_w is not None:
        grad_w += (dz.T @ (scale * h).to(h.dtype)).to(acc)
    if grad_b is not None:
        grad_b += (scale.squeeze(-1).to(h.dtype) @ dz).to(acc)


class _ChunkedSoftQ(torch.autograd.Function):
    """(V, Q, entropy) of selected hidden rows [N, H] under the head (W [V, H], b), chunk by chunk.

    `targets` [N] is the taken action of each row, -1 for rows whose V alone is needed (Q is 0
    there). The entropy output carries no gradient and is empty unless asked for.

    Per chunk, forward makes one [chunk, V] matmul and a few in-place passes over its result;
    backward makes the same matmul again and two gradient matmuls. Everything about the one-hot
    ∂Q/∂z is done once for all rows, outside the loop: it is a gather of W's rows, not a
    [chunk, V] operation.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, alpha: float, chunk_size: int, want_entropy: bool):
        n = hidden.shape[0]
        out_dtype = upcast(hidden[:0]).dtype
        v = hidden.new_empty(n, dtype=out_dtype)
        q = hidden.new_zeros(n, dtype=out_dtype)
        entropy = hidden.new_empty(n if want_entropy else 0, dtype=out_dtype)
        starts = range(0, n, chunk_size)
        # acting rows (sorted), and where each chunk's share of them begins: one host sync in all
        acting = (targets >= 0).nonzero().squeeze(1)
        bounds = torch.searchsorted(acting, torch.tensor([*starts, n], device=acting.device)).tolist()
        for i, s in enumerate(starts):
            e = min(s + chunk_size, n)
            z = _chunk_logits(hidden[s:e], weight, bias)
            # Q from the very logits V is made of, so log π = (Q − V)/α ≤ 0 in any precision
            rows = acting[bounds[i]:bounds[i + 1]]
            q[rows] = z[rows - s, targets[rows]]
            # the chunk's logits are ours to overwrite: each step below is one in-place pass
            if alpha != 1.0:
                z.div_(alpha)
            m = z.amax(-1, keepdim=True)
            y = z.sub_(m)  # y = z − max, so exp never overflows
            if want_entropy:  # H(π) = log S − Σ e·y / S, with e = exp(y), S = Σ e
                p = y.exp()
                total = p.sum(-1)
                entropy[s:e] = total.log() - p.mul_(y).sum(-1) / total
            else:
                total = y.exp_().sum(-1)
            v[s:e] = alpha * (m.squeeze(-1) + total.log())
        ctx.save_for_backward(hidden, weight, bias, targets, v)
        ctx.alpha, ctx.chunk_size = alpha, chunk_size
        ctx.set_materialize_grads(False)  # a loss that reads only Q (or only V) skips the other half
        ctx.mark_non_differentiable(entropy)
        return v, q, entropy

    @staticmethod
    def backward(ctx, g_v, g_q, _g_entropy):
        hidden, weight, bias, targets, v = ctx.saved_tensors
        alpha, chunk_size = ctx.alpha, ctx.chunk_size
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        # sums over chunks in at least fp32: half-precision partial sums would drift
        acc = upcast(hidden[:0]).dtype
        grad_h = torch.zeros_like(hidden, dtype=acc) if need_h else None
        grad_w = torch.zeros_like(weight, dtype=acc) if need_w else None
        grad_b = torch.zeros_like(bias, dtype=acc) if need_b else None
        n = hidden.shape[0]
        # ∂L/∂z = diag(∂L/∂V)·π + diag(∂L/∂Q)·onehot(a). The diagonal scaling goes on the small
        # [chunk, H] operands rather than the [chunk, V] softmax, so the only [chunk, V] passes
        # are the recomputed matmul and one exp.
        if g_v is not None:
            for s in range(0, n, chunk_size):
                e = min(s + chunk_size, n)
                h, gv = hidden[s:e], g_v[s:e, None]
                z = _chunk_logits(h, weight, bias)
                if alpha != 1.0:
                    z.div_(alpha)
                pi = z.sub_((v[s:e] / alpha)[:, None]).exp_().to(hidden.dtype)
                add_head_grads((grad_h, grad_w, grad_b), pi, gv, h, weight, slice(s, e))
        # the one-hot part, for all acting rows at once: a gather and a scatter of W's rows
        if g_q is not None:
            rows = (targets >= 0).nonzero().squeeze(1)
            a, gq = targets[rows], g_q[rows, None]
            if need_h:
                grad_h[rows] += gq * weight[a].to(acc)
            if need_w:
                grad_w.index_add_(0, a, gq * hidden[rows].to(acc))
            if need_b:
                grad_b.index_add_(0, a, gq.squeeze(1))
        return (
            grad_h.to(hidden.dtype) if need_h else None,
            grad_w.to(weight.dtype) if need_w else None,
            grad_b.to(bias.dtype) if need_b else None,
            None, None, None, None,
        )


# ---------------------------------------------------------------------------------- token MDP


def _select_rows(labels: torch.Tensor, eos_token_id, with_next: bool):
    """Flat [B·T] rows whose logits a loss needs, and the action each row takes (-1: V only).

    Row b·T + t is the state of action `labels[b, t+1]`; with `with_next`, row b·T + t + 1 is
    also needed for that action's V(s') unless the action is EOS (terminal, V(s') = 0).
    """
    actions = labels[:, 1:]
    mask = actions != IGNORE_INDEX
    safe = actions.masked_fill(~mask, 0)
    terminal = eos_mask(safe, eos_token_id) & mask if with_next else torch.zeros_like(mask)
    need = torch.zeros_like(labels, dtype=torch.bool)
    need[:, :-1] |= mask
    if with_next:
        need[:, 1:] |= mask & ~terminal
    target = torch.full_like(labels, -1)
    target[:, :-1] = torch.where(mask, safe, -1)
    rows = need.flatten().nonzero().squeeze(1)
    return rows, target.flatten()[rows], mask, terminal, safe


def _chunked_values(hidden, weight, bias, labels, *, eos_token_id, alpha, chunk_size, with_next, want_entropy):
    """V and Q scattered back to [B, T] (0 on rows not computed), plus mask, terminal, actions, entropy."""
    if hidden.shape[:2] != labels.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and labels {tuple(labels.shape)} disagree on [B, T]")
    if weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"lm_head weight {tuple(weight.shape)} does not take hidden size {hidden.shape[-1]}")
    B, T = labels.shape
    chunk_size = chunk_size or default_chunk_size(weight.shape[0])
    rows, targets, mask, terminal, actions = _select_rows(labels, eos_token_id, with_next)
    selected = hidden.reshape(B * T, -1).index_select(0, rows)
    v_rows, q_rows, ent_rows = _ChunkedSoftQ.apply(selected, weight, bias, targets, alpha, chunk_size, want_entropy)
    zeros = v_rows.new_zeros(B * T)
    values = zeros.index_copy(0, rows, v_rows).view(B, T)
    q = zeros.index_copy(0, rows, q_rows).view(B, T)[:, :-1]
    entropy = None
    if want_entropy:
        acting = ent_rows[targets >= 0]
        entropy = acting.mean() if acting.numel() else v_rows.new_zeros(())
    return values, q, mask, terminal, actions, entropy


def chunked_token_mdp(
    hidden: torch.Tensor, lm_head_weight: torch.Tensor, labels: torch.Tensor, *, eos_token_id: int | Sequence[int],
    alpha: float = 1.0, chunk_size: int | None = None, lm_head_bias: torch.Tensor | None = None,
) -> TokenMDP:
    """`soft_q.token_mdp(hidden @ Wᵀ + b, labels, ...)` without the [B, T, V] logits.

    `hidden` [B, T, H] is what the model's lm_head consumes (final-normed last hidden states),
    `lm_head_weight` [V, H]. Q, V and V(s') agree with `token_mdp` at action positions; at
    positions that are not actions (prompt, padding) they are 0 instead, which every loss masks.
    `chunk_size` rows of logits exist at a time (default: `default_chunk_size(V)`).
    """
    return chunked_mdp_and_entropy(hidden, lm_head_weight, labels, eos_token_id=eos_token_id, alpha=alpha,
                                   chunk_size=chunk_size, lm_head_bias=lm_head_bias)[0]


def chunked_mdp_and_entropy(
    hidden, lm_head_weight, labels, *, eos_token_id, alpha=1.0, chunk_size=None, lm_head_bias=None,
    log_entropy: bool = False,
) -> tuple[TokenMDP, torch.Tensor | None]:
    """`chunked_token_mdp` plus, if asked, the mean policy entropy at action states (same pass)."""
    values, q, mask, terminal, actions, entropy = _chunked_values(
        hidden, lm_head_weight, lm_head_bias, labels, eos_token_id=eos_token_id, alpha=alpha,
        chunk_size=chunk_size, with_next=True, want_entropy=log_entropy,
    )
    v_next = values[:, 1:].masked_fill(terminal, 0.0)
    mdp = TokenMDP(q=q, v=values[:, :-1], v_next=v_next, mask=mask, terminal=terminal, actions=actions, alpha=alpha)
    return mdp, entropy


@torch.no_grad()
def chunked_policy_entropy(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    mask: torch.Tensor,
    *,
    alpha: float = 1.0,
    chunk_size: int | None = None,
    lm_head_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean entropy (nats) of π = softmax((h·Wᵀ + b)/α) over the rows of `hidden` where `mask` is true.

    `hidden` is [..., H] and `mask` its leading shape (as `soft_q.policy_entropy`, for logging).
    The chunked losses compute the same number inside their forward pass, at no extra matmul.
    """
    rows = hidden[mask]
    if rows.shape[0] == 0:
        return rows.new_zeros((), dtype=upcast(rows[:0]).dtype)
    chunk_size = chunk_size or default_chunk_size(lm_head_weight.shape[0])
    targets = torch.full((rows.shape[0],), -1, device=rows.device, dtype=torch.long)
    _, _, entropy = _ChunkedSoftQ.apply(rows, lm_head_weight, lm_head_bias, targets, alpha, chunk_size, True)
    return entropy.mean()


# ---------------------------------------------------------------------------------- losses


def chunked_sft_loss(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    log_entropy: bool = True,
    chunk_size: int | None = None,
    lm_head_bias: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, dict]:
    """`losses.sft_loss` on the logits h·Wᵀ + b: token-mean of −log π(a|s) = V(s) − Q(s, a).

    Label smoothing's uniform term, mean_b(−log π(b|s)) = V(s) − mean_b Q(s, b), needs no chunks:
    the mean logit is linear in h, h·mean_b(W_b) + mean(b).
    """
    values, q, mask, _, _, entropy = _chunked_values(
        hidden, lm_head_weight, lm_head_bias, labels, eos_token_id=None, alpha=1.0,
        chunk_size=chunk_size, with_next=False, want_entropy=log_entropy,
    )
    count = mask.sum().clamp_min(1)
    nll = ((values[:, :-1] - q) * mask).sum() / count
    loss = nll
    if label_smoothing:
        mean_q = F.linear(hidden[:, :-1], lm_head_weight.mean(0, keepdim=True),
                          None if lm_head_bias is None else lm_head_bias.mean(0, keepdim=True)).squeeze(-1)
        uniform = ((values[:, :-1] - upcast(mean_q)) * mask).sum() / count
        loss = (1 - label_smoothing) * nll + label_smoothing * uniform
    stats = {"nll": nll.detach()}
    if log_entropy:
        stats["entropy"] = entropy
    return loss, stats


def chunked_iq_loss(
    hidden: torch.Tensor, lm_head_weight: torch.Tensor, labels: torch.Tensor, *, eos_token_id: int | Sequence[int],
    gamma: float = IQ_GAMMA, td_weight: float = IQ_TD_WEIGHT, alpha: float = IQ_ALPHA,
    terminal_td: str = IQ_TERMINAL_TD, log_entropy: bool = True, chunk_size: int | None = None,
    lm_head_bias: torch.Tensor | None = None, reward_centre: Centre = None, td_huber: float = IQ_TD_HUBER,
) -> tuple[torch.Tensor, dict]:
    """`losses.iq_loss` on the logits h·Wᵀ + b, same value, gradients and stats:

        L = E_demo[ −α·log π(a|s) + λ·(Q(s, a) − γ·V(s'))² ]

    token-mean over action tokens; stats `nll`, `td`, `reward`, `v0` and, if asked, `entropy`.
    """
    mdp, entropy = chunked_mdp_and_entropy(
        hidden, lm_head_weight, labels, eos_token_id=eos_token_id, alpha=alpha, chunk_size=chunk_size,
        lm_head_bias=lm_head_bias, log_entropy=log_entropy,
    )
    loss, stats = iq_objective(mdp, gamma=gamma, td_weight=td_weight, terminal_td=terminal_td,
                               reward_centre=reward_centre, td_huber=td_huber)
    if log_entropy:
        stats["entropy"] = entropy
    return loss, stats
