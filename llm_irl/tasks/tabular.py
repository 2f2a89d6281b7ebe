"""A tabular token MDP: the smallest setting where a terminal treatment's effect on length is exact.

A Markov expert over S states (the state is the last token) that stops with probability 0.2 per step,
its demonstrations as HF-style rows, and a model with free logits Q[s, ·] per state, so whatever length
it learns is the objective's choice, not a capacity limit. The IQ loss depends on the demonstrations
only through how often each transition (s, a) occurs, so `tabular_iq_loss` computes it from the
(S + 1) × (S + 1) count matrix: the same value and gradient as `llm_irl.losses.iq_loss` on the rows
(tests/test_terminal_convergence.py), at a cost that makes 20,000 optimiser steps take seconds.
Online IQ (`tabular_online_iq_loss`) mixes in the current policy's transitions: `expected_policy_counts`
gives their exact expectation (its occupancy from the uniform start times π), so the tabular online
objective is the population one, with no sampling noise.
Used by the terminal-bias tests and `python -m benchmarks.terminal_convergence`.
"""

from __future__ import annotations

import torch

from llm_irl.losses import EOS_CHI2_WEIGHT, huber, huber_location

S, EOS = 4, 4  # tokens 0..S-1 are the states, token S is EOS
STOP = 0.2  # the expert's stopping probability in every state


def expert_rows(n: int = 2000, seed: int = 0, max_len: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels) [n, width] of n expert episodes (`episode_rows`)."""
    g = torch.Generator().manual_seed(seed)
    successors = torch.softmax(torch.randn(S, S, generator=g) * 1.5, -1) * (1 - STOP)
    return episode_rows(torch.cat([successors, torch.full((S, 1), STOP)], -1), n, g, max_len)


def episode_rows(policy: torch.Tensor, n: int, g: torch.Generator, max_len: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels) [n, width] of n episodes of `policy` [S, S + 1] (rows: π(·|s)) from a uniform start state,
    EOS-padded, labels −100 on the start state and the padding; an episode still going at `max_len` tokens is cut."""
    rows = []
    for _ in range(n):
        row = [int(torch.randint(S, (1,), generator=g))]
        while row[-1] != EOS and len(row) < max_len:
            row.append(int(torch.multinomial(policy[row[-1]], 1, generator=g)))
        rows.append(row)
    width = max(map(len, rows))
    input_ids = torch.full((n, width), EOS)
    labels = torch.full((n, width), -100)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        labels[i, 1: len(row)] = torch.tensor(row[1:])
    return input_ids, labels


def occupancy(q: torch.Tensor) -> torch.Tensor:
    """Expected visits [S] to each state in one episode of the policy softmax(q[:S]) from a uniform start state:
    (I − Pᵀ)⁻¹·start, P the state-to-state part of the transition matrix."""
    transitions = torch.softmax(q[:S], -1)[:, :S]
    start = torch.full((S,), 1.0 / S, dtype=q.dtype)
    return torch.linalg.solve(torch.eye(S, dtype=q.dtype) - transitions.T, start)


def expected_length(q: torch.Tensor) -> float:
    """Expected number of actions (EOS included) of the policy softmax(q[:S]) from a uniform start state."""
    return float(occupancy(q).sum())


def expected_policy_counts(q: torch.Tensor, rows: float) -> torch.Tensor:
    """C_π[s, a] [S, S + 1]: the expected transition counts of `rows` episodes of the policy softmax(q[:S]),
    without gradient (policy samples are data to the loss)."""
    with torch.no_grad():
        return rows * occupancy(q)[:, None] * torch.softmax(q[:S], -1)


def transition_counts(input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """C[s, a] [S, S + 1]: how often the demonstrations take action a in state s."""
    counts = torch.zeros(S + 1, S + 1, dtype=torch.float64)
    acting = labels[:, 1:] != -100
    states, actions = input_ids[:, :-1][acting], labels[:, 1:][acting]
    counts.index_put_((states, actions), torch.ones_like(states, dtype=torch.float64), accumulate=True)
    return counts[:S]


def values_and_rewards(q: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(V [S + 1], V(s') [S + 1] per action, r [S, S + 1]): r(s, a) = Q[s, a] − γ·V(a), the state after action a
    being a, nothing after EOS."""
    v = torch.logsumexp(q, -1)
    v_next = torch.cat([v[:S], v.new_zeros(1)])
    return v, v_next, q[:S] - gamma * v_next[None, :]


def chi2_sum(counts: torch.Tensor, r: torch.Tensor, *, gamma: float, terminal_td: str,
             td_huber: float = 0.0) -> torch.Tensor:
    """Σ counts·w·huber(r − c), w and c as `losses.chi2_term` has them (c the detached weighted mean under
    `centred`, the Huber location of the stop actions and of the others under `centred_absorbing`, else 0;
    huber(x) = x² when `td_huber` is 0)."""
    w = torch.ones_like(counts)
    w[:, EOS] = EOS_CHI2_WEIGHT[terminal_td](gamma)
    weighted = counts * w
    centre = torch.zeros_like(r)
    if terminal_td == "centred":  # the weighted mean
        centre += huber_location(r.detach(), weighted, 0.0)
    elif terminal_td == "centred_absorbing":  # each group on its Huber location (its mean when κ = 0)
        stop = torch.zeros_like(r)
        stop[:, EOS] = 1.0
        location = lambda group: huber_location(r.detach(), weighted * group, td_huber)
        centre = stop * location(stop) + (1 - stop) * location(1 - stop)
    return (weighted * huber(r - centre, td_huber)).sum()


def tabular_iq_loss(q: torch.Tensor, counts: torch.Tensor, *, td_weight: float, gamma: float,
                    terminal_td: str, td_huber: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(`iq_loss` from transition counts, the implied rewards r [S, S + 1]): the count-weighted mean of
    −log π(a|s) + λ·w·huber(r − c)."""
    v, _, r = values_and_rewards(q, gamma)
    log_pi = q[:S] - v[:S, None]
    chi2 = chi2_sum(counts, r, gamma=gamma, terminal_td=terminal_td, td_huber=td_huber)
    return (-(counts * log_pi).sum() + td_weight * chi2) / counts.sum(), r


def tabular_online_iq_loss(q: torch.Tensor, demo_counts: torch.Tensor, policy_counts: torch.Tensor, *,
                           td_weight: float, gamma: float, terminal_td: str,
                           policy_terminal_value: str, td_huber: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(`online_iq_loss` from transition counts, r [S, S + 1]): −(demo mean of r) + (mixture mean of V(s) − γV(s'))
    + λ·(mixture mean of w·(r − c)²), the policy's EOS transitions out of the value term under
    `policy_terminal_value="exclude"`; every mean over the mixture's actions, as `losses.online_iq_objective`."""
    v, v_next, r = values_and_rewards(q, gamma)
    mix = demo_counts + policy_counts
    valued = demo_counts + policy_counts
    if policy_terminal_value == "exclude":
        valued[:, EOS] = demo_counts[:, EOS]
    value_sum = (valued * (v[:S, None] - gamma * v_next)).sum()
    chi2 = chi2_sum(mix, r, gamma=gamma, terminal_td=terminal_td, td_huber=td_huber)
    return -(demo_counts * r).sum() / demo_counts.sum() + (value_sum + td_weight * chi2) / mix.sum(), r


def train_tabular(counts: torch.Tensor, *, td_weight: float, gamma: float, terminal_td: str,
                  checkpoints: tuple[int, ...], lr: float = 0.05, policy_share: float = 0.0,
                  policy_terminal_value: str = "include", td_huber: float = 0.0) -> dict[int, dict[str, float]]:
    """Full-batch Adam from Q = 0; at each checkpoint step the expected length and the mean implied reward of
    the stop action and of the other actions (demonstration-weighted; the stop reward read back against the
    learned absorbing value under `centred_absorbing`). With `policy_share` m > 0 the objective is
    online IQ's on a mixture whose policy rows are m of all rows (their exact expected counts under the current
    policy, redrawn every step)."""
    q = torch.zeros(S + 1, S + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([q], lr=lr)
    demo_rows = float(counts[:, EOS].sum())  # every expert episode ends with EOS (none reach the cut)
    out = {}
    for step in range(1, max(checkpoints) + 1):
        opt.zero_grad()
        if policy_share > 0:
            policy = expected_policy_counts(q, demo_rows * policy_share / (1 - policy_share))
            loss, r = tabular_online_iq_loss(q, counts, policy, td_weight=td_weight, gamma=gamma,
                                             terminal_td=terminal_td, policy_terminal_value=policy_terminal_value,
                                             td_huber=td_huber)
        else:
            loss, r = tabular_iq_loss(q, counts, td_weight=td_weight, gamma=gamma, terminal_td=terminal_td,
                                      td_huber=td_huber)
        loss.backward()
        opt.step()
        if step in checkpoints:
            with torch.no_grad():
                stop = (counts[:, EOS] * r[:, EOS]).sum() / counts[:, EOS].sum()
                other = (counts[:, :S] * r[:, :S]).sum() / counts[:, :S].sum()
                if terminal_td == "centred_absorbing":  # read back as Q(s, EOS) − γ·v_A, v_A = (c_stop − c)/γ
                    mix = counts + policy if policy_share > 0 else counts  # the counts the χ² term centres on
                    c_stop = huber_location(r[:, EOS], mix[:, EOS], td_huber)
                    stop = stop - (c_stop - huber_location(r[:, :S], mix[:, :S], td_huber))
            out[step] = {"length": expected_length(q.detach()), "reward_stop": float(stop),
                         "reward_other": float(other)}
    return out
