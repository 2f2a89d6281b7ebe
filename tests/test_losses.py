"""The MDP quantities and losses against a brute-force, loop-by-loop reading of their definitions (docs/design.md)."""

import math

import pytest
import torch
import torch.nn.functional as F

from llm_irl.defaults import IQ_TD_HUBER
from llm_irl.losses import iq_loss, iq_value_head_loss, sft_loss
from llm_irl.soft_q import masked_mean, policy_entropy, token_mdp

EOS = 2
VOCAB = 5


def random_batch(seed=0, B=4, T=7):
    """Random logits with prompts, EOS-terminated rows, a truncated row and right padding."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, VOCAB, generator=g) * 2
    tokens = torch.randint(3, VOCAB, (B, T), generator=g)
    labels = torch.full((B, T), -100)
    # row 0: prompt of 2, completion ends with EOS at t=5, then padding
    labels[0, 2:5] = tokens[0, 2:5]
    labels[0, 5] = EOS
    # row 1: truncated, actions to the very last position, no EOS
    labels[1, 1:] = tokens[1, 1:]
    # row 2: EOS as the last token of the tensor
    labels[2, 3:6] = tokens[2, 3:6]
    labels[2, 6] = EOS
    # row 3: a single action that is EOS right after the prompt
    labels[3, 4] = EOS
    return logits, labels


EOS_WEIGHT = {"include": lambda gamma: 1.0, "absorbing": lambda gamma: 1.0 - gamma, "exclude": lambda gamma: 0.0,
              "centred": lambda gamma: 1.0, "centred_absorbing": lambda gamma: 1.0}
TERMINAL = list(EOS_WEIGHT)


def brute_huber(kappa):
    """Huber's loss of one float: x² within κ, 2κ·|x| − κ² beyond; x² everywhere when κ = 0 (the χ² term)."""
    return lambda x: x * x if kappa == 0 or abs(x) <= kappa else 2 * kappa * abs(x) - kappa * kappa


# the penalty a loss called without `td_huber` applies to r − c (x² while IQ_TD_HUBER is 0)
DEFAULT_PENALTY = brute_huber(IQ_TD_HUBER)


def chi2_mean(weighted_rewards, terminal_td, centre=None, penalty=DEFAULT_PENALTY):
    """Mean over the actions, given as (w, r, is_stop), of w·penalty(r − c) (the χ² term: penalty x²; by default
    the penalty of the default td_huber). c = 0; under `centred` the given centre or else the weighted mean;
    under `centred_absorbing` each group (stop actions, the others) on its own: the given pair (c, c_stop) or else
    each group's minimiser of Σ w·penalty(r − c)."""
    def mean_of(group):
        return sum(w * r for w, r, _ in group) / max(sum(w for w, _, _ in group), 1e-300)

    def minimiser(group):  # of Σ w·penalty(r − c), convex in c: ternary search between the extreme rewards
        lo, hi = min((r for _, r, _ in group), default=0.0), max((r for _, r, _ in group), default=0.0)
        cost = lambda c: sum(w * penalty(r - c) for w, r, _ in group)
        for _ in range(200):
            a, b = lo + (hi - lo) / 3, hi - (hi - lo) / 3
            lo, hi = (a, hi) if cost(a) > cost(b) else (lo, b)
        return (lo + hi) / 2

    stops = [x for x in weighted_rewards if x[2]]
    others = [x for x in weighted_rewards if not x[2]]
    if terminal_td == "centred_absorbing":
        c, c_stop = centre if centre is not None else (minimiser(others), minimiser(stops))
    elif terminal_td == "centred":
        c = c_stop = centre if centre is not None else mean_of(weighted_rewards)
    else:
        c = c_stop = 0.0
    return sum(w * penalty(r - (c_stop if stop else c)) for w, r, stop in weighted_rewards) / len(weighted_rewards)


def brute_force_iq(logits, labels, gamma, td_weight, alpha, terminal_td="include"):
    """One action at a time with plain floats: V by explicit sum over the vocabulary; the EOS
    action's penalty(r) (r², or Huber's under the default td_huber) weighted 1 (include), 1 − γ (absorbing)
    or 0 (exclude)."""
    eos_weight = EOS_WEIGHT[terminal_td](gamma)
    B, T, V = logits.shape
    def v_of(b, t):
        return alpha * math.log(sum(math.exp(float(logits[b, t, a]) / alpha) for a in range(V)))
    nlls, tds = [], []
    for b in range(B):
        for t in range(T - 1):
            a = int(labels[b, t + 1])
            if a == -100:
                continue
            q = float(logits[b, t, a])
            v = v_of(b, t)
            v_next = 0.0 if a == EOS else v_of(b, t + 1)
            r = q - gamma * v_next
            w = eos_weight if a == EOS else 1.0
            nlls.append(-(q - v) / alpha)
            tds.append((w, r, a == EOS))
    n = len(nlls)
    td = chi2_mean(tds, terminal_td)
    return sum(nlls) / n * alpha + td_weight * td, sum(nlls) / n, td


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("gamma,td_weight,alpha", [(0.99, 0.1, 1.0), (1.0, 0.5, 1.0), (0.9, 1.0, 0.5), (0.95, 0.0, 2.0)])
@pytest.mark.parametrize("terminal_td", TERMINAL)
def test_iq_loss_matches_brute_force(seed, gamma, td_weight, alpha, terminal_td):
    logits, labels = random_batch(seed)
    loss, stats = iq_loss(logits.double(), labels, eos_token_id=EOS, gamma=gamma, td_weight=td_weight, alpha=alpha,
                          terminal_td=terminal_td)
    want_loss, want_nll, want_td = brute_force_iq(logits.double(), labels, gamma, td_weight, alpha, terminal_td)
    assert loss.item() == pytest.approx(want_loss, abs=1e-6)
    assert stats["nll"].item() == pytest.approx(want_nll, abs=1e-6)
    assert stats["td"].item() == pytest.approx(want_td, abs=1e-6)


@pytest.mark.parametrize("terminal_td", TERMINAL)
def test_td_weight_zero_is_cross_entropy(terminal_td):
    logits, labels = random_batch(3)
    loss, _ = iq_loss(logits, labels, eos_token_id=EOS, td_weight=0.0, terminal_td=terminal_td)
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(loss, ce, atol=1e-6)
    assert torch.allclose(sft_loss(logits, labels)[0], ce, atol=1e-6)


def test_terminal_zeroes_next_value_and_truncation_bootstraps():
    logits, labels = random_batch(1)
    mdp = token_mdp(logits, labels, eos_token_id=EOS)
    v_all = torch.logsumexp(logits, -1)
    # row 0: EOS at label position 5 -> action index 4 is terminal with V(s') = 0
    assert mdp.terminal[0, 4] and mdp.v_next[0, 4] == 0
    assert torch.allclose(mdp.v_next[0, 3], v_all[0, 4])
    # row 1 is truncated: the last action bootstraps from the final position's logits
    assert not mdp.terminal[1].any()
    assert torch.allclose(mdp.v_next[1, -1], v_all[1, -1])
    # prompts and padding are never actions
    assert mdp.mask.sum() == (labels[:, 1:] != -100).sum()
    assert not mdp.mask[0, :1].any() and not mdp.mask[0, 5:].any()


def test_several_eos_ids_are_all_terminal():
    logits, labels = random_batch(2)
    labels[1, -1] = 4
    mdp = token_mdp(logits, labels, eos_token_id=[EOS, 4])
    assert mdp.terminal[1, -1]


def test_q_equals_v_plus_alpha_log_pi():
    logits, labels = random_batch(4)
    alpha = 0.7
    mdp = token_mdp(logits, labels, eos_token_id=EOS, alpha=alpha)
    log_pi = torch.log_softmax(logits[:, :-1] / alpha, -1).gather(-1, mdp.actions.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(mdp.q, mdp.v + alpha * log_pi, atol=1e-5)


def brute_force_mean(logits, labels, reward, gamma, lam, terminal_td, penalty=DEFAULT_PENALTY):
    """Mean over actions of −log π + λ·w·penalty(r − c), with r = reward(b, t, a) written out by each test."""
    logps, weighted = [], []
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1] - 1):
            a = int(labels[b, t + 1])
            if a == -100:
                continue
            logp = float(torch.log_softmax(logits[b, t].double(), -1)[a])
            r = reward(b, t, a)
            w = EOS_WEIGHT[terminal_td](gamma) if a == EOS else 1.0
            logps.append(logp)
            weighted.append((w, r, a == EOS))
    return -sum(logps) / len(logps) + lam * chi2_mean(weighted, terminal_td, penalty=penalty)


@pytest.mark.parametrize("terminal_td", TERMINAL)
def test_value_head_loss_matches_brute_force(terminal_td):
    logits, labels = random_batch(5)
    values = torch.randn(labels.shape, generator=torch.Generator().manual_seed(9))
    gamma, lam = 0.9, 0.3
    loss, stats = iq_value_head_loss(logits.double(), values.double(), labels, eos_token_id=EOS, gamma=gamma,
                                     td_weight=lam, terminal_td=terminal_td)

    def reward(b, t, a):
        logp = float(torch.log_softmax(logits[b, t].double(), -1)[a])
        return logp + float(values[b, t]) - gamma * (0.0 if a == EOS else float(values[b, t + 1]))

    want = brute_force_mean(logits, labels, reward, gamma, lam, terminal_td)
    assert loss.item() == pytest.approx(want, abs=1e-6)


def test_gradient_reaches_next_state_value():
    """The χ² term differentiates through V(s'), as in IQ-Learn, not a stop-gradient target."""
    logits, labels = random_batch(6)
    logits.requires_grad_(True)
    iq_loss(logits, labels, eos_token_id=EOS, td_weight=1.0, terminal_td="include")[0].backward()
    # row 1's final position is only a bootstrap state (no action taken there)
    assert logits.grad[1, -1].abs().sum() > 0
    sft_grad = torch.autograd.grad(sft_loss(logits, labels)[0], logits)[0]
    assert sft_grad[1, -1].abs().sum() == 0


def test_policy_entropy_matches_definition():
    logits, labels = random_batch(7)
    mask = labels[:, 1:] != -100
    p = torch.softmax(logits[:, :-1], -1)
    want = (-(p * p.log()).sum(-1))[mask].mean()
    assert torch.allclose(policy_entropy(logits[:, :-1], mask, chunk=3), want, atol=1e-6)


def brute_force_online(logits, labels, is_policy, gamma, lam, terminal_td="include", reward_scale=1.0,
                       policy_terminal_value="include"):
    B, T, V = logits.shape
    demo_r, mix_v, mix_r2 = [], [], []
    for b in range(B):
        for t in range(T - 1):
            a = int(labels[b, t + 1])
            if a == -100:
                continue
            v = math.log(sum(math.exp(float(logits[b, t, k])) for k in range(V)))
            v_next = 0.0 if a == EOS else math.log(sum(math.exp(float(logits[b, t + 1, k])) for k in range(V)))
            r = float(logits[b, t, a]) - gamma * v_next
            if not is_policy[b]:
                demo_r.append(r)
            left_out = policy_terminal_value == "exclude" and is_policy[b] and a == EOS
            mix_v.append(0.0 if left_out else v - gamma * v_next)  # still a mean over every mixture token
            mix_r2.append((EOS_WEIGHT[terminal_td](gamma) if a == EOS else 1.0, r, a == EOS))
    mean = lambda xs: sum(xs) / len(xs)
    return -reward_scale * mean(demo_r) + mean(mix_v) + lam * chi2_mean(mix_r2, terminal_td)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("terminal_td", TERMINAL)
def test_online_iq_loss_matches_brute_force(seed, terminal_td):
    from llm_irl.losses import online_iq_loss

    logits, labels = random_batch(seed)
    is_policy = torch.tensor([False, True, False, True])
    loss, stats = online_iq_loss(logits.double(), labels, is_policy, eos_token_id=EOS, gamma=0.9, td_weight=0.3,
                                 terminal_td=terminal_td, policy_terminal_value="include")
    want = brute_force_online(logits.double(), labels, is_policy, 0.9, 0.3, terminal_td)
    assert loss.item() == pytest.approx(want, abs=1e-6)
    # the named terms are the loss, summed
    parts = stats["reward_loss"] + stats["value_loss"] + stats["chi2_loss"]
    assert parts.item() == pytest.approx(loss.item(), abs=1e-9)
    assert "reward_policy" in stats


@pytest.mark.parametrize("seed", range(3))
def test_online_iq_policy_terminal_value_matches_brute_force(seed):
    """'exclude' drops exactly the policy rows' EOS transitions from the value term: demonstrations keep
    theirs (their reward term cancels it into log π(EOS|s)), and without policy rows nothing changes."""
    from llm_irl.losses import online_iq_loss, online_iq_objective

    logits, labels = random_batch(seed)
    kw = dict(gamma=0.9, td_weight=0.3, terminal_td="exclude")
    for is_policy in (torch.tensor([True, False, True, False]), torch.tensor([False, True, False, True])):
        mdp = token_mdp(logits.double(), labels, eos_token_id=EOS)
        loss, stats = online_iq_objective(mdp, is_policy, policy_terminal_value="exclude", **kw)
        want = brute_force_online(logits.double(), labels, is_policy, 0.9, 0.3, "exclude",
                                  policy_terminal_value="exclude")
        assert loss.item() == pytest.approx(want, abs=1e-6)
        from_logits, _ = online_iq_loss(logits.double(), labels, is_policy, eos_token_id=EOS,
                                        policy_terminal_value="exclude", **kw)
        assert from_logits.item() == pytest.approx(want, abs=1e-6)
        included, _ = online_iq_objective(mdp, is_policy, policy_terminal_value="include", **kw)
        policy_ends_with_eos = bool((mdp.terminal & is_policy[:, None]).any())
        assert (abs(loss.item() - included.item()) > 1e-3) == policy_ends_with_eos
    demos_only = torch.zeros(4, dtype=torch.bool)
    a, _ = online_iq_objective(mdp, demos_only, policy_terminal_value="exclude", **kw)
    b, _ = online_iq_objective(mdp, demos_only, policy_terminal_value="include", **kw)
    assert a.item() == b.item()


@pytest.mark.parametrize("reward_scale", [0.0, 0.37, 2.5])
def test_online_iq_reward_scale_matches_brute_force(reward_scale):
    """reward_scale multiplies the demo reward term alone; the logged terms stay unscaled."""
    from llm_irl.losses import online_iq_loss, online_iq_objective

    logits, labels = random_batch(5)
    is_policy = torch.tensor([True, False, False, True])
    kw = dict(eos_token_id=EOS, gamma=0.9, td_weight=0.3, terminal_td="absorbing", policy_terminal_value="include")
    mdp = token_mdp(logits.double(), labels, eos_token_id=EOS)
    loss, stats = online_iq_objective(mdp, is_policy, gamma=0.9, td_weight=0.3, terminal_td="absorbing",
                                      reward_scale=reward_scale, policy_terminal_value="include")
    want = brute_force_online(logits.double(), labels, is_policy, 0.9, 0.3, "absorbing", reward_scale)
    assert loss.item() == pytest.approx(want, abs=1e-6)
    _, plain = online_iq_loss(logits.double(), labels, is_policy, **kw)
    for name in ("reward_loss", "value_loss", "chi2_loss", "reward", "td"):
        assert stats[name].item() == pytest.approx(plain[name].item(), abs=1e-12), name
    scaled = reward_scale * stats["reward_loss"] + stats["value_loss"] + stats["chi2_loss"]
    assert scaled.item() == pytest.approx(loss.item(), abs=1e-9)


@pytest.mark.parametrize("reward_scale", [0.5, 1.0, 3.0])
def test_online_iq_reward_scale_equals_the_two_call_reweighting(reward_scale):
    """One call with reward_scale = the form IQTrainer used before (the objective once more over no demo
    rows to isolate the reward term, then reweighted): same loss, same gradient."""
    from llm_irl.losses import online_iq_objective

    logits, labels = random_batch(6)
    is_policy = torch.tensor([False, True, False, True])
    kw = dict(gamma=0.95, td_weight=0.2, terminal_td="exclude", policy_terminal_value="include")
    results = []
    for form in ("two_calls", "one_call"):
        x = logits.double().clone().requires_grad_(True)
        mdp = token_mdp(x, labels, eos_token_id=EOS)
        if form == "two_calls":
            loss, _ = online_iq_objective(mdp, is_policy, **kw)
            value_and_chi2, _ = online_iq_objective(mdp, torch.ones_like(is_policy), **kw)
            loss = value_and_chi2 + reward_scale * (loss - value_and_chi2)
        else:
            loss, _ = online_iq_objective(mdp, is_policy, reward_scale=reward_scale, **kw)
        loss.backward()
        results.append((loss.detach(), x.grad))
    (old, old_grad), (new, new_grad) = results
    assert new.item() == pytest.approx(old.item(), abs=1e-12)
    assert old_grad.abs().max() > 0 and torch.allclose(new_grad, old_grad, atol=1e-12)


def test_online_iq_without_policy_rows_is_offline_iq():
    from llm_irl.losses import online_iq_loss

    logits, labels = random_batch(11)
    none = torch.zeros(labels.shape[0], dtype=torch.bool)
    online, _ = online_iq_loss(logits.double(), labels, none, eos_token_id=EOS, gamma=0.95, td_weight=0.2,
                               terminal_td="include", policy_terminal_value="include")
    offline, _ = iq_loss(logits.double(), labels, eos_token_id=EOS, gamma=0.95, td_weight=0.2, terminal_td="include")
    assert online.item() == pytest.approx(offline.item(), abs=1e-9)


@pytest.mark.parametrize("terminal_td", TERMINAL)
def test_offset_objective_matches_brute_force(terminal_td):
    """Q = logits + b(s): the policy is the logits', V and Q carry the per-state offset b."""
    from llm_irl.losses import offset_objective

    logits, labels = random_batch(8)
    offsets = torch.randn(labels.shape, generator=torch.Generator().manual_seed(4)).double()
    gamma, lam = 0.9, 0.4
    mdp = token_mdp(logits.double(), labels, eos_token_id=EOS)
    loss, stats = offset_objective(mdp, offsets, gamma=gamma, td_weight=lam, terminal_td=terminal_td)

    def reward(b, t, a):
        q = float(logits[b, t, a]) + float(offsets[b, t])
        v_next = float(torch.logsumexp(logits[b, t + 1].double(), -1)) + float(offsets[b, t + 1])
        return q - gamma * (0.0 if a == EOS else v_next)

    want = brute_force_mean(logits, labels, reward, gamma, lam, terminal_td)
    assert loss.item() == pytest.approx(want, abs=1e-6)
    zero, _ = offset_objective(mdp, torch.zeros_like(offsets), gamma=gamma, td_weight=lam, terminal_td=terminal_td)
    plain, _ = iq_loss(logits.double(), labels, eos_token_id=EOS, gamma=gamma, td_weight=lam, terminal_td=terminal_td)
    assert zero.item() == pytest.approx(plain.item(), abs=1e-9)  # a zero offset is the logits form


def test_label_smoothing_matches_brute_force():
    """(1 − ε)·(−log π(a|s)) + ε·mean_b(−log π(b|s)), token-mean over actions; `nll` stays the plain term."""
    logits, labels = random_batch(5)
    eps = 0.2
    logp = torch.log_softmax(logits.double(), -1)
    terms = []
    for b in range(logits.shape[0]):
        for t in range(1, logits.shape[1]):
            if labels[b, t] != -100:
                row = logp[b, t - 1]
                terms.append((1 - eps) * -row[labels[b, t]] + eps * -row.mean())
    loss, stats = sft_loss(logits.double(), labels, label_smoothing=eps)
    torch.testing.assert_close(loss, torch.stack(terms).mean())
    torch.testing.assert_close(stats["nll"], sft_loss(logits.double(), labels)[0])


def test_centred_chi2_is_the_weighted_variance_and_its_exact_gradient():
    """Centred on the batch's own mean (taken without gradient) the χ² term is the rewards' variance, and its
    gradient is the variance's exactly; centred on a given constant it is the mean of (r − c)²."""
    from llm_irl.losses import chi2_term

    logits, labels = random_batch(6)
    logits = logits.double().requires_grad_()
    mdp = token_mdp(logits, labels, eos_token_id=EOS)
    r = mdp.reward(0.95)
    rewards = r[mdp.mask]
    td, stats = chi2_term(r, mdp, gamma=0.95, terminal_td="centred", td_huber=0.0)
    variance = rewards.var(unbiased=False)  # with gradient through the mean
    assert td.item() == pytest.approx(variance.item(), abs=1e-12)
    got = torch.autograd.grad(td, logits, retain_graph=True)[0]
    want = torch.autograd.grad(variance, logits, retain_graph=True)[0]
    torch.testing.assert_close(got, want)
    assert stats["chi2_reward_sum"].item() == pytest.approx(rewards.sum().item())
    assert stats["chi2_weight_sum"].item() == rewards.numel()
    given, stats = chi2_term(r, mdp, gamma=0.95, terminal_td="centred", reward_centre=-1.5, td_huber=0.0)
    assert given.item() == pytest.approx((rewards + 1.5).square().mean().item(), abs=1e-12)
    assert stats["reward_centre"].item() == -1.5
    # a constant added to every reward changes nothing under centred, everything under include
    shifted = TokenMDPShift(mdp, 3.0)
    chi2 = dict(gamma=0.95, td_huber=0.0)
    assert chi2_term(shifted.reward(0.95), mdp, terminal_td="centred", **chi2)[0].item() == pytest.approx(td.item())
    assert chi2_term(shifted.reward(0.95), mdp, terminal_td="include", **chi2)[0].item() != pytest.approx(
        chi2_term(r, mdp, terminal_td="include", **chi2)[0].item())


class TokenMDPShift:
    """An MDP whose every implied reward is its own plus a constant (Q raised by it, V(s') unchanged)."""

    def __init__(self, mdp, constant):
        self.mdp, self.constant = mdp, constant

    def reward(self, gamma):
        return self.mdp.reward(gamma) + self.constant


@pytest.mark.parametrize("terminal_td", TERMINAL)
def test_td_reversed_is_the_share_of_actions_whose_likelihood_the_loss_lowers(terminal_td):
    """With V from a value head, `td_reversed` counts exactly the demonstrated tokens where the loss's
    gradient on log π(a|s) is positive, read here from autograd (λ large enough that some are)."""
    from llm_irl.losses import iq_objective, value_head_mdp

    logits, labels = random_batch(7)
    values = 3 * torch.randn(labels.shape, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    mdp = token_mdp(logits.double(), labels, eos_token_id=EOS, alpha=0.5)
    head = value_head_mdp(mdp, values)
    log_pi = mdp.log_pi.detach().clone().requires_grad_(True)  # a leaf the reward and the likelihood share
    leaf = type(head)(q=head.v + head.alpha * log_pi, v=head.v, v_next=head.v_next, mask=head.mask,
                      terminal=head.terminal, actions=head.actions, alpha=head.alpha)
    loss, stats = iq_objective(leaf, gamma=0.9, td_weight=0.4, terminal_td=terminal_td, td_huber=0.0)
    loss.backward()
    lowered = (log_pi.grad > 0)[head.mask].double().mean().item()
    assert 0 < lowered < 1
    assert stats["td_reversed"].item() == pytest.approx(lowered)


@pytest.mark.parametrize("terminal_td", ["include", "centred", "exclude"])
def test_td_huber_value_matches_brute_force(terminal_td):
    """κ > 0: the χ² term's (r − c)² becomes Huber's loss of the same residual, one action at a time."""
    logits, labels = random_batch(8)
    values = 3 * torch.randn(labels.shape, generator=torch.Generator().manual_seed(12))
    gamma, lam, kappa = 0.9, 0.3, 0.7
    loss, _ = iq_value_head_loss(logits.double(), values.double(), labels, eos_token_id=EOS, gamma=gamma,
                                 td_weight=lam, terminal_td=terminal_td, td_huber=kappa, log_entropy=False)

    def reward(b, t, a):
        logp = float(torch.log_softmax(logits[b, t].double(), -1)[a])
        return logp + float(values[b, t]) - gamma * (0.0 if a == EOS else float(values[b, t + 1]))

    want = brute_force_mean(logits, labels, reward, gamma, lam, terminal_td, penalty=brute_huber(kappa))
    assert loss.item() == pytest.approx(want, abs=1e-9)
    # κ is crossed: the Huber value is not the squared one
    squared = brute_force_mean(logits, labels, reward, gamma, lam, terminal_td, penalty=brute_huber(0.0))
    assert abs(want - squared) > 1e-3


def test_td_huber_bounds_the_pull_on_the_likelihood_so_none_is_lowered():
    """With 2λκ < 1 no demonstrated token's log π has a positive gradient, where the plain χ² term lowers some."""
    from llm_irl.losses import iq_objective, value_head_mdp

    logits, labels = random_batch(7)
    values = 3 * torch.randn(labels.shape, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    mdp = value_head_mdp(token_mdp(logits.double(), labels, eos_token_id=EOS), values)
    lowered = {}
    for kappa in (0.0, 1.0):
        log_pi = mdp.log_pi.detach().clone().requires_grad_(True)
        leaf = type(mdp)(q=mdp.v + log_pi, v=mdp.v, v_next=mdp.v_next, mask=mdp.mask, terminal=mdp.terminal,
                         actions=mdp.actions, alpha=1.0)
        loss, stats = iq_objective(leaf, gamma=0.9, td_weight=0.4, terminal_td="centred", td_huber=kappa)
        loss.backward()
        lowered[kappa] = (log_pi.grad > 0)[mdp.mask].double().mean().item()
        assert stats["td_reversed"].item() == pytest.approx(lowered[kappa])
    assert lowered[0.0] > 0 and lowered[1.0] == 0


@pytest.mark.parametrize("td_huber", [0.0, 0.5])
def test_centred_absorbing_leaves_the_stop_actions_no_net_pull_from_the_chi2_term(td_huber):
    """With V from a value head the χ² term's pull on a demonstrated log π(a|s) is 2λ·ψ(r − c) (ψ the identity, or
    the clip at ±κ under Huber's loss): under `centred` the stop actions share one sign of pull when their rewards
    sit apart from the rest, under `centred_absorbing` (their own centre, the absorbing state's value learned)
    their pulls sum to zero, and so do the other actions'."""
    from llm_irl.losses import iq_objective, value_head_mdp

    logits, labels = random_batch(7)
    values = 3 * torch.randn(labels.shape, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    values[labels == EOS] += 2.0  # a predictable value gap before each stop, as on real text
    mdp = value_head_mdp(token_mdp(logits.double(), labels, eos_token_id=EOS), values)
    pull = {}
    for terminal_td in ("centred", "centred_absorbing"):
        log_pi = mdp.log_pi.detach().clone().requires_grad_(True)
        leaf = type(mdp)(q=mdp.v + log_pi, v=mdp.v, v_next=mdp.v_next, mask=mdp.mask, terminal=mdp.terminal,
                         actions=mdp.actions, alpha=1.0)
        td, _ = iq_objective(leaf, gamma=0.9, td_weight=1.0, terminal_td=terminal_td, td_huber=td_huber)
        nll = masked_mean(-log_pi, mdp.mask)
        (td - nll).backward()  # the χ² term's part of the gradient alone
        pull[terminal_td] = (log_pi.grad[mdp.terminal].sum().item(),
                             log_pi.grad[mdp.mask & ~mdp.terminal].sum().item())
    assert abs(pull["centred"][0]) > 1e-3
    assert pull["centred_absorbing"] == pytest.approx((0.0, 0.0), abs=1e-10)
