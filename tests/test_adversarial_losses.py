"""Adversarial losses against hand-computed values and brute-force loops."""

from __future__ import annotations

import math

import pytest
import torch

from llm_irl.adversarial.losses import (
    airl_disc_loss,
    airl_reward,
    binary_entropy,
    discounted_returns,
    gail_disc_loss,
    gail_reward,
    kl_penalty,
    leave_one_out_baseline,
    margin_disc_loss,
    masked_mean,
    policy_advantages,
    ppo_clip_loss,
    reinforce_loss,
    text_distance,
    text_distances,
    whiten,
)

LOG2 = 0.6931471805599453
SOFTPLUS_M2 = 0.12692801104297263  # log(1 + e^-2)
SOFTPLUS_M1 = 0.31326168751822286  # log(1 + e^-1)
SOFTPLUS_2 = 2.1269280110429727  # log(1 + e^2)


# ----------------------------------------------------------------------------- GAIL / AIRL / margin values


def test_gail_disc_loss_all_zero_logits_is_log2():
    loss, stats = gail_disc_loss(torch.zeros(3), torch.zeros(5))
    assert loss.item() == pytest.approx(LOG2)
    assert stats["loss"] == pytest.approx(LOG2)
    # A tie at logit 0 counts as wrong on both sides.
    assert stats["disc_acc_demo"] == 0.0 and stats["disc_acc_policy"] == 0.0


def test_gail_disc_loss_hand_values():
    # demo logit 2 -> -log σ(2) = log(1+e^-2); policy logit -1 -> -log(1-σ(-1)) = log(1+e^-1).
    loss, stats = gail_disc_loss(torch.tensor([2.0]), torch.tensor([-1.0]))
    assert loss.item() == pytest.approx(0.5 * (SOFTPLUS_M2 + SOFTPLUS_M1))  # 0.2200948...
    assert stats["disc_acc_demo"] == 1.0 and stats["disc_acc_policy"] == 1.0
    # Class-balanced: one demo and three identical policy samples weigh like one and one.
    loss2, stats2 = gail_disc_loss(torch.tensor([2.0]), torch.tensor([-1.0, -1.0, 1.0]))
    assert loss2.item() == pytest.approx(0.5 * (SOFTPLUS_M2 + (2 * SOFTPLUS_M1 + 1.3132616875182228) / 3))
    assert stats2["disc_acc_policy"] == pytest.approx(2 / 3)


def test_gail_disc_loss_label_smoothing_and_stats():
    # targets 1 − ε and ε: BCE(ℓ, y) = softplus(ℓ) − y·ℓ
    eps = 0.1
    loss, stats = gail_disc_loss(torch.tensor([2.0]), torch.tensor([-1.0]), label_smoothing=eps)
    demo = SOFTPLUS_2 - (1 - eps) * 2.0
    policy = SOFTPLUS_M1 - eps * -1.0
    assert loss.item() == pytest.approx(0.5 * (demo + policy))
    assert stats["disc_bal_acc"] == 1.0
    # the smoothed loss is smallest at ℓ = ±log((1 − ε)/ε), not at ±∞
    best = math.log((1 - eps) / eps)
    grid = torch.linspace(0, 6, 601)
    losses = [gail_disc_loss(torch.tensor([x]), torch.tensor([-x]), label_smoothing=eps)[0].item() for x in grid]
    assert grid[int(torch.tensor(losses).argmin())].item() == pytest.approx(best, abs=0.01)
    # D undecided: entropy log 2; sure: entropy near 0
    _, undecided = gail_disc_loss(torch.zeros(2), torch.zeros(2))
    assert undecided["disc_entropy"] == pytest.approx(LOG2) and undecided["disc_bal_acc"] == 0.0
    _, half = gail_disc_loss(torch.tensor([3.0, -3.0]), torch.tensor([-3.0, -3.0]))
    assert half["disc_acc_demo"] == 0.5 and half["disc_acc_policy"] == 1.0 and half["disc_bal_acc"] == 0.75


def test_binary_entropy_matches_its_definition():
    logits = torch.tensor([-30.0, -2.0, 0.0, 0.5, 4.0])
    d = torch.sigmoid(logits.double())
    expected = -(d * d.log() + (1 - d) * (1 - d).log())
    assert binary_entropy(logits).tolist() == pytest.approx(expected.tolist(), abs=1e-6)


def test_gail_reward_values():
    logits = torch.tensor([0.0, 2.0, -1.0])
    r = gail_reward(logits)
    assert r.tolist() == pytest.approx([LOG2, SOFTPLUS_2, SOFTPLUS_M1])
    r_log_d = gail_reward(logits, kind="log_d")
    assert r_log_d.tolist() == pytest.approx([-LOG2, -SOFTPLUS_M2, -(1 + SOFTPLUS_M1)])  # log σ(-1) = -log(1+e)
    d = torch.sigmoid(logits)
    assert r.tolist() == pytest.approx((-torch.log1p(-d)).tolist())
    assert r_log_d.tolist() == pytest.approx(torch.log(d).tolist())
    with pytest.raises(ValueError, match="log_d"):
        gail_reward(logits, kind="nope")


def test_airl_discriminator_is_exp_f_over_exp_f_plus_pi():
    f = torch.tensor([1.0, -0.5])
    logpi = torch.log(torch.tensor([0.5, 0.1]))
    d = torch.exp(f) / (torch.exp(f) + torch.exp(logpi))  # D = e^f / (e^f + π)
    r = airl_reward(f, logpi)
    assert r.tolist() == pytest.approx([1.0 + math.log(2), -0.5 + math.log(10)])
    assert r.tolist() == pytest.approx((torch.log(d) - torch.log1p(-d)).tolist())  # log D − log(1−D)
    # f = log π exactly: D = ½ on both sides -> log 2.
    loss, _ = airl_disc_loss(logpi, logpi, logpi, logpi)
    assert loss.item() == pytest.approx(LOG2)
    loss, _ = airl_disc_loss(f[:1], logpi[:1], f[1:], logpi[1:])
    expected = 0.5 * (-math.log(d[0].item()) - math.log(1 - d[1].item()))
    assert loss.item() == pytest.approx(expected)


def test_airl_disc_loss_does_not_backprop_into_policy():
    logpi = torch.tensor([-1.0, -2.0], requires_grad=True)
    f = torch.tensor([0.3, 0.1], requires_grad=True)
    loss, _ = airl_disc_loss(f[:1], logpi[:1], f[1:], logpi[1:])
    loss.backward()
    assert logpi.grad is None and f.grad is not None


def test_margin_disc_loss_hand_values():
    # Satisfied: 0.5 + 0.3 − 1.0 < 0 -> ζ = 0. Violated: 0.9 + 0.3 − 1.0 = 0.2.
    loss, stats = margin_disc_loss(torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.9]), torch.tensor([0.3, 0.3]),
                                   l2_weight=0.0)
    assert loss.item() == pytest.approx(0.1)
    assert stats["slack"] == pytest.approx(0.1) and stats["violation_frac"] == 0.5
    assert stats["margin"] == pytest.approx(0.3)
    loss, _ = margin_disc_loss(
        torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.9]), torch.tensor([0.3, 0.3]), slack_weight=2.0, l2_weight=0.1
    )
    assert loss.item() == pytest.approx(2.0 * 0.1 + 0.1 * (1 + 1 + 0.25 + 0.81) / 2)
    # One demo against K=3 samples by broadcasting.
    loss, _ = margin_disc_loss(torch.tensor([[1.0]]), torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[0.5, 0.5, 0.5]]),
                               l2_weight=0.0)
    assert loss.item() == pytest.approx((0.0 + 0.5 + 1.5) / 3)


def test_text_distance():
    assert text_distance([1, 2, 3], [1, 2, 3]) == 0.0
    assert text_distance([], []) == 0.0
    assert text_distance([], [4, 5]) == 1.0
    assert text_distance(list("kitten"), list("sitting")) == pytest.approx(3 / 7)
    assert text_distance([1, 2, 3, 4], [2, 3, 4]) == pytest.approx(1 / 4)
    assert text_distance([1, 2], [3, 4]) == 1.0
    assert text_distances([[1, 2], [1]], [[1, 2], [2]]).tolist() == [0.0, 1.0]


# ----------------------------------------------------------------------------- discriminators learn


def _fixed_batch(seed: int = 0, n: int = 32, dim: int = 8):
    g = torch.Generator().manual_seed(seed)
    demo_x = torch.randn(n, dim, generator=g) + 1.0
    policy_x = torch.randn(n, dim, generator=g) - 1.0
    return demo_x, policy_x, g


def _train(loss_fn, dim: int = 8, steps: int = 50) -> tuple[float, float]:
    torch.manual_seed(0)
    scorer = torch.nn.Linear(dim, 1)
    opt = torch.optim.Adam(scorer.parameters(), lr=0.05)
    losses = []
    for _ in range(steps):
        loss = loss_fn(scorer)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


def test_gail_disc_loss_falls():
    demo_x, policy_x, _ = _fixed_batch()
    first, last = _train(lambda s: gail_disc_loss(s(demo_x).squeeze(-1), s(policy_x).squeeze(-1))[0])
    assert last < 0.5 * first and last < 0.2


def test_airl_disc_loss_falls():
    demo_x, policy_x, g = _fixed_batch()
    demo_logpi = -torch.rand(len(demo_x), generator=g) * 3
    policy_logpi = -torch.rand(len(policy_x), generator=g) * 3
    first, last = _train(
        lambda s: airl_disc_loss(s(demo_x).squeeze(-1), demo_logpi, s(policy_x).squeeze(-1), policy_logpi)[0]
    )
    assert last < 0.5 * first and last < 0.2


def test_margin_disc_loss_falls():
    demo_x, policy_x, g = _fixed_batch()
    delta = torch.rand(len(demo_x), generator=g)
    first, last = _train(
        lambda s: margin_disc_loss(s(demo_x).squeeze(-1), s(policy_x).squeeze(-1), delta, l2_weight=1e-3)[0]
    )
    assert last < 0.5 * first and last < 0.1


# ----------------------------------------------------------------------------- policy losses vs loops


def _policy_batch(seed: int = 0, B: int = 3, T: int = 6):
    g = torch.Generator().manual_seed(seed)
    logprobs = -torch.rand(B, T, generator=g) * 3
    old = logprobs + torch.randn(B, T, generator=g) * 0.3  # some ratios outside [0.8, 1.2]
    adv = torch.randn(B, T, generator=g)
    mask = (torch.rand(B, T, generator=g) > 0.3).float()
    mask[0, 0] = 1.0
    return logprobs, old, adv, mask


def test_ppo_clip_loss_matches_loop():
    logprobs, old, adv, mask = _policy_batch()
    eps = 0.2
    total, n, clipped, kl = 0.0, 0, 0, 0.0
    for i in range(logprobs.shape[0]):
        for t in range(logprobs.shape[1]):
            if mask[i, t] == 0:
                continue
            r = math.exp(logprobs[i, t].item() - old[i, t].item())
            a = adv[i, t].item()
            un, cl = -a * r, -a * min(max(r, 1 - eps), 1 + eps)
            total += max(un, cl)
            clipped += cl > un
            kl += (r - 1) - math.log(r)
            n += 1
    loss, stats = ppo_clip_loss(logprobs, old, adv, mask, clip_range=eps)
    assert loss.item() == pytest.approx(total / n, rel=1e-5)
    assert stats["clip_frac"] == pytest.approx(clipped / n)
    assert 0 < stats["clip_frac"] < 1
    assert stats["approx_kl"] == pytest.approx(kl / n, rel=1e-4)


def test_ppo_clip_gradient_vanishes_on_clipped_tokens():
    # A > 0 and ρ = e^0.5 > 1.2: clipped, no gradient. A > 0 and ρ = 1: gradient −A.
    logprobs = torch.tensor([[0.5, 0.0]], requires_grad=True)
    loss, stats = ppo_clip_loss(logprobs, torch.zeros(1, 2), torch.tensor([[1.0, 2.0]]), torch.ones(1, 2))
    loss.backward()
    assert logprobs.grad[0].tolist() == pytest.approx([0.0, -1.0])  # mean over 2 tokens: −2/2
    assert stats["clip_frac"] == 0.5


def test_ppo_on_policy_equals_reinforce_and_sequence_advantages_broadcast():
    logprobs, _, adv, mask = _policy_batch(1)
    seq_adv = adv[:, 0]
    lp1 = logprobs.clone().requires_grad_(True)
    lp2 = logprobs.clone().requires_grad_(True)
    loss, stats = ppo_clip_loss(lp1, logprobs, seq_adv, mask)
    assert stats["approx_kl"] == pytest.approx(0.0, abs=1e-7) and stats["clip_frac"] == 0.0
    loss.backward()
    reinforce_loss(lp2, seq_adv[:, None].expand_as(lp2), mask).backward()
    assert torch.allclose(lp1.grad, lp2.grad, atol=1e-6)


def test_reinforce_loss_matches_loop():
    logprobs, _, adv, mask = _policy_batch(2)
    terms = [
        -adv[i, t].item() * logprobs[i, t].item()
        for i in range(logprobs.shape[0])
        for t in range(logprobs.shape[1])
        if mask[i, t]
    ]
    assert reinforce_loss(logprobs, adv, mask).item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    seq = torch.tensor([1.0, -2.0, 0.5])
    terms = [-seq[i].item() * logprobs[i, t].item() for i in range(3) for t in range(6) if mask[i, t]]
    assert reinforce_loss(logprobs, seq, mask).item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_whiten():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, -7.0, 6.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 1]])
    w = whiten(x, mask)
    vals = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    mu = sum(vals) / 6
    sd = math.sqrt(sum((v - mu) ** 2 for v in vals) / 6)
    assert w[0, :3].tolist() == pytest.approx([(v - mu) / sd for v in vals[:3]], rel=1e-5)
    assert w[0, 3].item() == 0.0 and w[1, 2].item() == 0.0
    assert masked_mean(w, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert masked_mean(w**2, mask).item() == pytest.approx(1.0, rel=1e-5)
    assert whiten(x, mask, shift_mean=False)[0, 0].item() == pytest.approx(1.0 / sd, rel=1e-5)


def test_kl_penalty():
    lp = torch.log(torch.tensor([[0.5, 0.2, 0.9]]))
    ref = torch.log(torch.tensor([[0.25, 0.4, 0.9]]))
    mask = torch.tensor([[1, 1, 0]])
    assert kl_penalty(lp, ref, mask).tolist()[0] == pytest.approx([math.log(2), math.log(0.5), 0.0])
    # k3 with ρ = π_ref/π: (ρ − 1) − log ρ.
    assert kl_penalty(lp, ref, mask, kind="k3").tolist()[0] == pytest.approx(
        [(0.5 - 1) - math.log(0.5), (2 - 1) - math.log(2), 0.0], rel=1e-5
    )


def test_discounted_returns_matches_loop():
    g = torch.Generator().manual_seed(3)
    rewards = torch.randn(3, 7, generator=g)
    # labels-aligned masks: prompt, completion, padding; one with a gap.
    mask = torch.tensor([[0, 0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1, 1], [1, 1, 0, 1, 1, 0, 0]])
    gamma = 0.9
    out = discounted_returns(rewards, mask, gamma)
    for i in range(3):
        steps = [t for t in range(7) if mask[i, t]]
        for k, t in enumerate(steps):
            expected = sum(gamma**j * rewards[i, s].item() for j, s in enumerate(steps[k:]))
            assert out[i, t].item() == pytest.approx(expected, rel=1e-5)
        assert all(out[i, t].item() == 0.0 for t in range(7) if not mask[i, t])
    assert discounted_returns(torch.ones(1, 3), torch.ones(1, 3), 1.0).tolist() == [[3.0, 2.0, 1.0]]


def test_leave_one_out_baseline():
    returns = torch.tensor([1.0, 2.0, 6.0, 10.0, 20.0, 30.0])
    assert leave_one_out_baseline(returns, 3).tolist() == pytest.approx([4.0, 3.5, 1.5, 25.0, 20.0, 15.0])
    with pytest.raises(ValueError, match="k >= 2"):
        leave_one_out_baseline(returns, 4)


def _rollout():
    # two samples: the action mask marks positions 1..2 (row 0) and 1 (row 1, then padding)
    mask = torch.tensor([[False, True, True], [False, True, False]])
    logprobs = torch.tensor([[0.0, -1.0, -2.0], [0.0, -1.0, 0.0]])
    ref = torch.tensor([[0.0, -1.5, -1.0], [0.0, -1.0, 0.0]])
    return mask, logprobs, ref


def test_policy_advantages_known_answers():
    mask, logprobs, ref = _rollout()
    adv, stats = policy_advantages(torch.tensor([1.0, 3.0]), mask, logprobs=logprobs, ref_logprobs=ref, kl_coef=0.5,
                                   terminated=torch.tensor([True, False]), missing_eos_penalty=2.0, gamma=1.0,
                                   whiten_advantages=False)
    # row 0: k1 = (0.5, −1.0), penalties (−0.25, +0.5), reward 1 on the last token: returns (1.25, 1.5)
    # row 1: reward 3, cut without EOS −2, k1 0: return 1.0; baseline the mean over the three actions
    b = (1.25 + 1.5 + 1.0) / 3
    assert adv.flatten().tolist() == pytest.approx([0.0, 1.25 - b, 1.5 - b, 0.0, 1.0 - b, 0.0])
    assert stats == pytest.approx({"reward": 2.0, "kl": (0.5 - 1.0) / 2})
    # a per-token reward [N, T] that sums to the same sequence reward, γ = 1: the same return from the first
    # action on (the baselines, means over every action token, differ by a constant)
    dense = torch.tensor([[0.0, 0.4, 0.6], [0.0, 3.0, 0.0]])
    adv_dense, _ = policy_advantages(dense, mask, gamma=1.0, whiten_advantages=False)
    adv_seq, _ = policy_advantages(torch.tensor([1.0, 3.0]), mask, gamma=1.0, whiten_advantages=False)
    shift = adv_dense[:, 1] - adv_seq[:, 1]
    assert shift[0].item() == pytest.approx(shift[1].item())
    # k3: never negative, so a policy equal to its reference pays nothing and one that differs pays
    adv3, _ = policy_advantages(torch.zeros(2), mask, logprobs=logprobs, ref_logprobs=ref, kl_coef=1.0,
                                kl_estimator="k3", gamma=0.0, whiten_advantages=False)
    k3 = kl_penalty(logprobs, ref, mask, kind="k3")
    assert (adv3 + k3 - masked_mean(k3, mask) * mask).abs().max() < 1e-6


def test_policy_advantages_whitened_grouped_and_normalised():
    mask = torch.tensor([[False, True]] * 4)
    adv, _ = policy_advantages(torch.tensor([1.0, 3.0, 10.0, 20.0]), mask, group_size=2, gamma=1.0,
                               whiten_advantages=False)
    assert adv[:, 1].tolist() == pytest.approx([-2.0, 2.0, -10.0, 10.0])  # each minus its sibling
    white, _ = policy_advantages(torch.tensor([1.0, 3.0, 10.0, 20.0]), mask, gamma=1.0)
    assert masked_mean(white, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert masked_mean(white**2, mask).item() == pytest.approx(1.0, rel=1e-4)
    seq, _ = policy_advantages(torch.tensor([1.0, 3.0, 10.0, 20.0]), mask, normalize_rewards="sequence",
                               gamma=1.0, whiten_advantages=False)
    z = torch.tensor([1.0, 3.0, 10.0, 20.0])
    z = (z - z.mean()) / z.std(unbiased=False)
    assert seq[:, 1].tolist() == pytest.approx((z - z.mean()).tolist(), rel=1e-5)
    with pytest.raises(ValueError, match="normalize_rewards"):
        policy_advantages(torch.zeros(4), mask, normalize_rewards="batch")
