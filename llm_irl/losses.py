"""Training objectives as pure functions of (logits, labels): SFT and offline inverse soft-Q.

Offline IQ-Learn with the χ² regulariser (docs/design.md, "Offline IQ"), with λ = td_weight:

    L(θ) = E_demo[ −(Q(s,a) − V(s)) + λ·(Q(s,a) − γ·V(s'))² ] = E_demo[ −α·log π(a|s) + λ·r(s,a)² ]

λ = 0 is behaviour cloning (SFT) exactly. Every loss is a token-mean over action positions and
returns `(loss, stats)`, stats being detached scalars for logging.

How the terminal (EOS) transition enters the χ² term is `terminal_td` (docs/design.md, the length bias):
with V(s') = 0 after EOS, a χ² term that shrinks every r toward 0 is minimised by the zero-reward
soft Bellman values, under which every non-terminal state is worth its future entropy (> 0) and
stopping is worth 0, so the regulariser prefers policies that never stop. `include` is IQ-Learn's
choice (that bias); `absorbing` weights the terminal transition's χ² by (1 − γ) as LS-IQ's absorbing
state does; `exclude` leaves the reward of stopping free, which removes the bias: on a tabular MDP
with free logits the learned length equals the expert's at every λ (tests/test_terminal_bias.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from llm_irl.defaults import (
    CENTRED,
    IQ_ALPHA,
    IQ_GAMMA,
    IQ_POLICY_TERMINAL_VALUE,
    IQ_TD_HUBER,
    IQ_TD_WEIGHT,
    IQ_TERMINAL_TD,
    POLICY_TERMINAL_VALUE,
    TERMINAL_TD,
)
from llm_irl.soft_q import (
    IGNORE_INDEX,
    TokenMDP,
    first_action_value,
    masked_mean,
    policy_entropy,
    token_mdp,
    upcast,
)

# the χ² term's centre as a caller gives it: c under `centred`, (c, c_stop) under `centred_absorbing`;
# None: the batch's own
Centre = float | tuple[float, float] | None


def sft_loss(logits: torch.Tensor, labels: torch.Tensor, *, log_entropy: bool = True,
             label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Token-mean cross-entropy on the shifted labels (the standard causal-LM loss).

    `label_smoothing` ε mixes in the cross-entropy against the uniform distribution, as
    `TrainingArguments.label_smoothing_factor` does: (1 − ε)·(−log π(a|s)) + ε·mean_b(−log π(b|s)).
    The `nll` stat stays the plain likelihood term either way.
    """
    shifted = labels[:, 1:]
    flat_logits, flat_labels = upcast(logits[:, :-1].flatten(0, 1)), shifted.flatten()
    if not label_smoothing:
        loss = nll = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX)
    else:  # one log-softmax over the logits serves both terms
        logp = F.log_softmax(flat_logits, dim=-1)
        acting = flat_labels != IGNORE_INDEX
        nll = F.nll_loss(logp, flat_labels, ignore_index=IGNORE_INDEX)
        uniform = -(logp.mean(-1) * acting).sum() / acting.sum().clamp_min(1)
        loss = (1 - label_smoothing) * nll + label_smoothing * uniform
    stats = {"nll": nll.detach()}
    if log_entropy:
        stats["entropy"] = policy_entropy(logits[:, :-1], shifted != IGNORE_INDEX)
    return loss, stats


# the weight of the EOS transition's r² in the χ² term, by terminal_td, as a function of γ (the tabular bed's too)
EOS_CHI2_WEIGHT = {"include": lambda gamma: 1.0, "absorbing": lambda gamma: 1.0 - gamma,
                   "exclude": lambda gamma: 0.0, "centred": lambda gamma: 1.0, "centred_absorbing": lambda gamma: 1.0}


def chi2_weights(mdp: TokenMDP, *, gamma: float, terminal_td: str) -> torch.Tensor:
    """Weight of each transition's r² in the χ² term: 1 for every non-terminal action, and for the
    EOS action 1 (`include` and the centred ones), 1 − γ (`absorbing`) or 0 (`exclude`); 0 off the action positions."""
    if terminal_td not in TERMINAL_TD:
        raise ValueError(f"terminal_td must be one of {TERMINAL_TD}, got {terminal_td!r}")
    eos_weight = EOS_CHI2_WEIGHT[terminal_td](gamma)
    weights = mdp.mask.to(mdp.q.dtype)
    return weights if eos_weight == 1.0 else weights.masked_fill(mdp.terminal, eos_weight)


def chi2_term(r: torch.Tensor, mdp: TokenMDP, *, gamma: float, terminal_td: str,
              reward_centre: Centre = None,
              td_huber: float = IQ_TD_HUBER) -> tuple[torch.Tensor, dict]:
    """Σ w·(r − c)² over the batch's actions divided by their number (token-mean, like the NLL beside it),
    and its stats; c = 0 except under the centred treatments.

    `centred` regularises the spread of the implied reward around a shared constant c instead of its
    distance from 0 (docs/design.md, "Terminal transitions"): c is `reward_centre` when given (the
    trainer passes the previous step's mean over every process), else this batch's own weighted mean,
    taken without gradient, which gives exactly the gradient of the weighted variance. Its stats carry
    Σ w·r and Σ w (`chi2_reward_sum`, `chi2_weight_sum`) for such a running centre, and the c used.

    `centred_absorbing` also learns the absorbing state's value v_A (V after EOS, 0 otherwise): the stop
    reward is Q(s, EOS) − γ·v_A, and the v_A that minimises the χ² term centres the stop rewards on their own
    centre c_stop while the other actions centre on theirs, c. So each group is centred on its own minimiser
    (its mean, or under `td_huber` its Huber location: `reward_centres`; `reward_centre` is then the pair
    (c, c_stop)), the stats add the stop group's sums
    (`chi2_stop_reward_sum`, `chi2_stop_weight_sum`) and v_A = (c_stop − c)/γ (`absorbing_value`). Without
    it the stop action's mean residual is one-sided on real text (EOS is a confident token) and the χ² term
    lowers EOS's likelihood at every stop (docs/design.md, "How large a td_weight").

    `td_huber` κ > 0 replaces (r − c)² by Huber's loss, (r − c)² within κ of c and 2κ·|r − c| − κ² beyond:
    the same value and gradient near the centre, a gradient bounded by 2κ far from it.
    """
    weights = chi2_weights(mdp, gamma=gamma, terminal_td=terminal_td)
    if terminal_td not in CENTRED:
        return (weights * huber(r, td_huber)).sum() / mdp.mask.sum().clamp_min(1), {}
    centre, stats = reward_centres(r, weights, mdp, gamma=gamma, terminal_td=terminal_td, given=reward_centre,
                                   td_huber=td_huber)
    td = (weights * huber(r - centre, td_huber)).sum() / mdp.mask.sum().clamp_min(1)
    return td, {**stats, "centres": centre}  # each position's c, for `reversed_share`: callers drop it from the logs


def reward_centres(r: torch.Tensor, weights: torch.Tensor, mdp: TokenMDP, *, gamma: float, terminal_td: str,
                   given: Centre, td_huber: float = 0.0) -> tuple[torch.Tensor, dict]:
    """(the centre of each position's reward [B, T] or a scalar, the stats `chi2_term` describes), without
    gradient: the given centre(s), else the batch's own.

    `centred`: the weighted mean. `centred_absorbing`: each group's minimiser of Σ w·huber(r − c), the
    Huber location (the mean when κ = 0). With two free levels the reward's overall level is a flat direction
    of the loss, and a centre off the loss's own minimiser leaves a constant pull along it that drifts the
    level without end (tabular, γ 0.9: −24 to −78 nats after 20,000 steps). The location is the fixed point
    of "the mean of the rewards clipped to c ± κ", so the stats' sums are of those clipped rewards: the trainer's
    next centre, their mean, is one step of that iteration per optimiser step.
    """
    split = terminal_td == "centred_absorbing"
    if split and given is not None and not isinstance(given, (tuple, list)):
        raise ValueError("terminal_td 'centred_absorbing' takes reward_centre as the pair (c, c_stop)")
    with torch.no_grad():
        as_tensor = lambda x: torch.as_tensor(x, dtype=r.dtype, device=r.device)
        stops = weights * mdp.terminal if split else torch.zeros_like(weights)
        actions = weights - stops
        kappa = td_huber if split else 0.0
        centre = huber_location(r, actions, kappa) if given is None else as_tensor(given[0] if split else given)
        reward_sum, weight_sum = (actions * clipped(r, centre, kappa)).sum(), actions.sum()
        stats = {"chi2_reward_sum": reward_sum, "chi2_weight_sum": weight_sum, "reward_centre": centre}
        if not split:
            return centre, stats
        stop_centre = huber_location(r, stops, kappa) if given is None else as_tensor(given[1])
        stats.update(chi2_stop_reward_sum=(stops * clipped(r, stop_centre, kappa)).sum(),
                     chi2_stop_weight_sum=stops.sum(), absorbing_value=(stop_centre - centre) / gamma)
        return torch.where(mdp.terminal, stop_centre, centre), stats


def clipped(r: torch.Tensor, centre: torch.Tensor, kappa: float) -> torch.Tensor:
    """r clipped to within κ of the centre (r itself when κ = 0)."""
    return r if kappa == 0 else centre + (r - centre).clamp(-kappa, kappa)


def huber_location(r: torch.Tensor, weights: torch.Tensor, kappa: float, iterations: int = 200) -> torch.Tensor:
    """The c minimising Σ w·huber_κ(r − c) (the weighted mean when κ = 0; 0 when the weights are all 0): from the
    mean, the fixed-point iteration c ← mean of r clipped to c ± κ, which never increases the loss."""
    total = weights.sum().clamp_min(1e-300)
    centre = (weights * r).sum() / total
    for _ in range(iterations if kappa > 0 else 0):
        step = (weights * (r - centre).clamp(-kappa, kappa)).sum() / total
        centre = centre + step
        if step.abs() < 1e-12:
            break
    return centre


def huber(x: torch.Tensor, kappa: float) -> torch.Tensor:
    """x² where |x| ≤ κ, 2κ·|x| − κ² beyond (continuous, with a continuous gradient); x² everywhere when κ = 0."""
    if kappa == 0:
        return x.square()
    if kappa < 0:
        raise ValueError(f"td_huber must be >= 0, got {kappa}")
    size = x.abs()
    return torch.where(size <= kappa, x.square(), 2 * kappa * size - kappa ** 2)


def _iq_stats(mdp: TokenMDP, nll: torch.Tensor, r: torch.Tensor, td: torch.Tensor) -> dict:
    with torch.no_grad():
        return {
            "nll": nll.detach(),
            "td": td.detach(),
            "reward": masked_mean(r, mdp.mask).detach(),
            "v0": first_action_value(mdp).detach(),
        }


# -------------------------------------------------------------- objectives over a TokenMDP
# Shared by the full-logits losses below and the chunked ones (llm_irl.chunked), which differ only
# in how they obtain Q, V and V(s').


def reversed_share(r: torch.Tensor, mdp: TokenMDP, *, gamma: float, td_weight: float, terminal_td: str,
                   centre: torch.Tensor | float = 0.0, td_huber: float = IQ_TD_HUBER) -> torch.Tensor:
    """Share of the action tokens where the χ² term's pull on log π(a|s) outweighs the likelihood's.

    With r = α·log π(a|s) + V(s) − γ·V(s') and V not read from the softmax (a value head), the offline
    loss's gradient on log π(a|s) is −α·(1 − 2λ·w·(r − c))/N: where 2λ·w·(r − c) > 1 the loss lowers the
    likelihood of a demonstrated token, the ones the model already predicts better than V explains. Tens of
    percent flatten the policy (longer samples, fewer EOS): `td_weight` is too large for how fast V fits
    (docs/design.md, "How large a td_weight"). With V from the logits it is the reward term's part of that pull.
    Under `td_huber` κ the pull is 2λ·w·clip(r − c, −κ, κ), so none is past the line while 2λ·κ ≤ 1.
    """
    with torch.no_grad():
        weights = chi2_weights(mdp, gamma=gamma, terminal_td=terminal_td)
        residual = r - centre
        if td_huber > 0:
            residual = residual.clamp(-td_huber, td_huber)
        return masked_mean((2 * td_weight * weights * residual > 1).to(r.dtype), mdp.mask)


def iq_objective(mdp: TokenMDP, *, gamma: float, td_weight: float, terminal_td: str = IQ_TERMINAL_TD,
                 reward_centre: Centre = None, td_huber: float = IQ_TD_HUBER):
    """Token-mean of `−(Q(s,a) − V(s)) + td_weight·w·(r − c)²` over the action positions of `mdp`
    (w, c and the Huber form under `td_huber` from `chi2_term`)."""
    r = mdp.reward(gamma)
    nll = masked_mean(-mdp.log_pi, mdp.mask)
    td, centring = chi2_term(r, mdp, gamma=gamma, terminal_td=terminal_td, reward_centre=reward_centre,
                             td_huber=td_huber)
    reversed_ = reversed_share(r, mdp, gamma=gamma, td_weight=td_weight, terminal_td=terminal_td,
                               centre=centring.pop("centres", 0.0), td_huber=td_huber)
    # −(Q − V) = −α·log π, so the first term is α times the NLL
    return mdp.alpha * nll + td_weight * td, {**_iq_stats(mdp, nll, r, td), **centring, "td_reversed": reversed_}


def value_head_objective(mdp: TokenMDP, values: torch.Tensor, *, gamma: float, td_weight: float,
                         terminal_td: str = IQ_TERMINAL_TD, reward_centre: Centre = None,
                         td_huber: float = IQ_TD_HUBER):
    """The (π, V_ψ) form: `−α·log π + λ·(α·log π + V_ψ(s) − γ·V_ψ(s'))²`, V_ψ(s') = 0 after EOS.

    `values` [B, T] is the head's V_ψ at every position; the policy still comes from `mdp`.
    """
    return iq_objective(value_head_mdp(mdp, values), gamma=gamma, td_weight=td_weight, terminal_td=terminal_td,
                        reward_centre=reward_centre, td_huber=td_huber)


def value_head_mdp(mdp: TokenMDP, values: torch.Tensor) -> TokenMDP:
    """The (π, V_ψ) MDP: V = V_ψ [B, T] at every state (0 after EOS), Q = V_ψ(s) + α·log π(a|s), so that its
    `reward` is α·log π + V_ψ(s) − γ·V_ψ(s'), the reward the value-head objective regularises."""
    values = upcast(values)
    v, v_next = values[:, :-1], values[:, 1:].masked_fill(mdp.terminal, 0.0)
    return TokenMDP(q=v + mdp.alpha * mdp.log_pi, v=v, v_next=v_next, mask=mdp.mask, terminal=mdp.terminal,
                    actions=mdp.actions, alpha=mdp.alpha)


def offset_mdp(mdp: TokenMDP, offsets: torch.Tensor) -> TokenMDP:
    """The MDP of Q = logits + b(s): Q, V and V(s') carry the per-state offset b [B, T] (0 after EOS)."""
    b = upcast(offsets)
    return TokenMDP(q=mdp.q + b[:, :-1], v=mdp.v + b[:, :-1],
                    v_next=(mdp.v_next + b[:, 1:]).masked_fill(mdp.terminal, 0.0),
                    mask=mdp.mask, terminal=mdp.terminal, actions=mdp.actions, alpha=mdp.alpha)


def offset_objective(mdp: TokenMDP, offsets: torch.Tensor, *, gamma: float, td_weight: float,
                     terminal_td: str = IQ_TERMINAL_TD, reward_centre: Centre = None,
                     td_huber: float = IQ_TD_HUBER):
    """IQ with `Q(s, ·) = logits(s, ·) + b(s)`: a learned scalar b per state, which the softmax never sees.

    A bias-free LM head can shift all of a state's logits together only by moving its hidden state,
    so when the χ² term asks for a lower V(s') the cheapest move left is to lower the logits along
    π(·|s'), which flattens the policy there and, before an EOS, delays stopping. The offset b(s)
    makes that shift free, as it is in a tabular MDP, while π, and so the likelihood term, are those
    of the logits. `offsets` [B, T] is b at every position (zero-initialised head: the logits form).
    """
    return iq_objective(offset_mdp(mdp, offsets), gamma=gamma, td_weight=td_weight, terminal_td=terminal_td,
                        reward_centre=reward_centre, td_huber=td_huber)


def online_iq_objective(mdp: TokenMDP, is_policy: torch.Tensor, *, gamma: float, td_weight: float,
                        terminal_td: str = IQ_TERMINAL_TD, reward_scale: float = 1.0,
                        policy_terminal_value: str = IQ_POLICY_TERMINAL_VALUE, reward_centre: Centre = None,
                        td_huber: float = IQ_TD_HUBER):
    """Online IQ-Learn (χ²) on a batch mixing demonstrations and policy samples.

        L = −E_demo[Q(s,a) − γ·V(s')] + E_mix[V(s) − γ·V(s')] + λ·E_mix[r²]

    `is_policy` [B] marks the rows sampled from the current policy. The reward term runs over
    the demonstrations only, the value and χ² terms over the mixture (IQ-Learn's "value" loss
    with its "regularize" option). With no policy rows the value terms telescope and this is
    the offline objective (−(Q − V) = −α·log π) up to float rounding.

    `reward_scale` multiplies the reward term alone (the value and χ² terms are means over the
    mixture, the reward term over demo tokens: under gradient accumulation they weigh micro-batches
    differently, see `IQTrainer._online_loss`); the stats report the unscaled terms.

    `policy_terminal_value="include"` (the default, IQ-Learn's) keeps the policy rows' EOS transitions in the
    value term: along a policy row the value terms telescope to V(s_0) + (1 − γ)·Σ_t V(s_t). "exclude" leaves
    them out, so the state where a sample stops keeps −γ·V(s_T) in place of (1 − γ)·V(s_T) and the loss raises V
    there; under `centred` that keeps the stop action's reward high and the length off the expert's (tabular,
    tests/test_terminal_convergence.py). Demonstrations keep theirs (with the reward term it is log π(EOS|s)).
    The mean stays over every mixture token.
    """
    if policy_terminal_value not in POLICY_TERMINAL_VALUE:
        raise ValueError(f"policy_terminal_value must be one of {POLICY_TERMINAL_VALUE}, got {policy_terminal_value!r}")
    demo = mdp.mask & ~is_policy[:, None]
    r = mdp.reward(gamma)
    td, centring = chi2_term(r, mdp, gamma=gamma, terminal_td=terminal_td, reward_centre=reward_centre,
                             td_huber=td_huber)
    centring.pop("centres", None)
    reward_loss = -masked_mean(r, demo)  # raise the demonstrations' implied reward
    value_terms = mdp.mask if policy_terminal_value == "include" else mdp.mask & ~(is_policy[:, None] & mdp.terminal)
    # lower V along the mixture's states (a mean over all its action tokens)
    value_loss = (mdp.v - gamma * mdp.v_next).mul(value_terms).sum() / mdp.mask.sum().clamp_min(1)
    chi2_loss = td_weight * td  # keep implied rewards small (χ² divergence)
    loss = reward_scale * reward_loss + value_loss + chi2_loss
    stats = {**_iq_stats(mdp, masked_mean(-mdp.log_pi, demo), r, td), **centring}
    stats.update(reward_loss=reward_loss.detach(), value_loss=value_loss.detach(), chi2_loss=chi2_loss.detach())
    stats["reward"] = masked_mean(r, demo).detach()
    stats["reward_policy"] = masked_mean(r, mdp.mask & is_policy[:, None]).detach()
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
    gamma: float = IQ_GAMMA,
    td_weight: float = IQ_TD_WEIGHT,
    alpha: float = IQ_ALPHA,
    terminal_td: str = IQ_TERMINAL_TD,
    log_entropy: bool = True,
    reward_centre: Centre = None,
    td_huber: float = IQ_TD_HUBER,
) -> tuple[torch.Tensor, dict]:
    """Offline inverse soft-Q loss with V taken from the logits.

    Returns the token-mean over action tokens of `−(Q(s,a) − V(s)) + td_weight·w·r²` (w: 1, or the
    `terminal_td` weight on EOS actions) and stats
    `nll` (mean −log π), `td` (mean r²), `reward` (mean r), `v0` (mean V of each row's first
    action state) and, if asked, `entropy` (mean policy entropy at action states).
    """
    mdp = token_mdp(logits, labels, eos_token_id=eos_token_id, alpha=alpha)
    result = iq_objective(mdp, gamma=gamma, td_weight=td_weight, terminal_td=terminal_td, reward_centre=reward_centre,
                          td_huber=td_huber)
    return _with_entropy(result, logits, mdp, log_entropy)


def iq_value_head_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    labels: torch.Tensor,
    *,
    eos_token_id: int | Sequence[int],
    gamma: float = IQ_GAMMA,
    td_weight: float = IQ_TD_WEIGHT,
    alpha: float = IQ_ALPHA,
    terminal_td: str = IQ_TERMINAL_TD,
    log_entropy: bool = True,
    reward_centre: Centre = None,
    td_huber: float = IQ_TD_HUBER,
) -> tuple[torch.Tensor, dict]:
    """`value_head_objective` from full logits and the head's values [B, T] (the lecture's min over π, V)."""
    mdp = token_mdp(logits, labels, eos_token_id=eos_token_id, alpha=alpha)
    result = value_head_objective(mdp, values, gamma=gamma, td_weight=td_weight, terminal_td=terminal_td,
                                  reward_centre=reward_centre, td_huber=td_huber)
    return _with_entropy(result, logits, mdp, log_entropy)


def online_iq_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    is_policy: torch.Tensor,
    *,
    eos_token_id: int | Sequence[int],
    gamma: float = IQ_GAMMA,
    td_weight: float = IQ_TD_WEIGHT,
    alpha: float = IQ_ALPHA,
    terminal_td: str = IQ_TERMINAL_TD,
    policy_terminal_value: str = IQ_POLICY_TERMINAL_VALUE,
    log_entropy: bool = True,
    reward_centre: Centre = None,
    td_huber: float = IQ_TD_HUBER,
) -> tuple[torch.Tensor, dict]:
    """`online_iq_objective` from the full logits of a batch mixing demonstrations and policy samples."""
    mdp = token_mdp(logits, labels, eos_token_id=eos_token_id, alpha=alpha)
    result = online_iq_objective(mdp, is_policy, gamma=gamma, td_weight=td_weight, terminal_td=terminal_td,
                                 policy_terminal_value=policy_terminal_value, reward_centre=reward_centre,
                                 td_huber=td_huber)
    return _with_entropy(result, logits, mdp, log_entropy)
