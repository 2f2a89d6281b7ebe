"""Reward extraction: implied rewards against a brute-force pass per prefix; returns; best-of-N."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import transformers

from llm_irl.rewards import best_of_n, discounted_return, implied_rewards

VOCAB, EOS, PAD = 32, 2, 0
TOK = SimpleNamespace(eos_token_id=EOS, pad_token_id=PAD)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, eos_token_id=EOS)
    return transformers.AutoModelForCausalLM.from_config(config).eval()


# prompts and completions of different lengths (padding matters); the second is truncated (no EOS)
PROMPTS = [[1, 5, 6], [1, 7], [1, 8, 9, 10]]
COMPLETIONS = [[11, 12, EOS], [13, 14, 15, 16], [EOS]]


def brute_force(model, prompt, completion, gamma):
    """r_t = Q(s_t, a_t) − γ·V(s_{t+1}) with one unpadded forward pass per state."""
    rewards, entropies = [], []
    for t, action in enumerate(completion):
        with torch.no_grad():
            q_s = model(torch.tensor([prompt + completion[:t]])).logits[0, -1]
            q_next = model(torch.tensor([prompt + completion[: t + 1]])).logits[0, -1]
        v_next = 0.0 if action == EOS else torch.logsumexp(q_next, -1).item()
        rewards.append(q_s[action].item() - gamma * v_next)
        p = q_s.softmax(-1)
        entropies.append(-(p * p.log()).sum().item())
    return rewards, entropies


def test_implied_rewards_match_brute_force(model):
    gamma = 0.9
    out = implied_rewards(model, TOK, PROMPTS, COMPLETIONS, gamma=gamma, batch_size=2)  # two batches
    all_entropies = []
    for i, (p, c) in enumerate(zip(PROMPTS, COMPLETIONS)):
        expected, entropies = brute_force(model, p, c, gamma)
        all_entropies += entropies
        assert out.rewards[i] == pytest.approx(expected, abs=1e-4)
        assert out.returns[i] == pytest.approx(sum(gamma**t * r for t, r in enumerate(expected)), abs=1e-4)
    assert out.mean_entropy == pytest.approx(sum(all_entropies) / len(all_entropies), abs=1e-4)


def test_undiscounted_return_telescopes_to_value_plus_loglik(model):
    # with γ = 1 the sum of Q(s_t,a_t) − V(s_{t+1}) is V(s_0) + log π(completion) for a terminated sample
    prompt, completion = PROMPTS[0], COMPLETIONS[0]
    out = implied_rewards(model, TOK, [prompt], [completion], gamma=1.0)
    with torch.no_grad():
        logits = model(torch.tensor([prompt + completion])).logits[0]
    logp = torch.log_softmax(logits, -1)
    n = len(prompt)
    loglik = sum(logp[n - 1 + t, a].item() for t, a in enumerate(completion))
    assert out.returns[0] == pytest.approx(torch.logsumexp(logits[n - 1], -1).item() + loglik, abs=1e-4)


def test_implied_rewards_refuses_mismatched_or_empty_inputs(model):
    with pytest.raises(ValueError, match="prompts but"):
        implied_rewards(model, TOK, PROMPTS, COMPLETIONS[:2], gamma=0.9)
    with pytest.raises(ValueError, match="at least one token"):
        implied_rewards(model, TOK, [[1]], [[]], gamma=0.9)


def test_discounted_return_and_best_of_n():
    assert discounted_return([1.0, 2.0, 4.0], 0.5) == pytest.approx(1 + 1 + 1)
    assert best_of_n([1, 3, 2, 5, 5, 0], k=3) == [1, 3]  # the first of tied maxima
    with pytest.raises(ValueError, match="groups of k=4"):
        best_of_n([1, 2, 3], k=4)
