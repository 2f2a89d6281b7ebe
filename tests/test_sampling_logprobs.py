"""Log-probs of the distribution samples are drawn from (temperature, nucleus): against HF's own warpers,
against what `generate` recorded, and equal to log π at temperature 1 without a nucleus."""

import pytest
import torch
from tiny_models import tiny_lm, tokenizer
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from llm_irl.adversarial.sampling_logprobs import sampling_logprobs
from llm_irl.modeling import record_policy_temperature
from llm_irl.rollout import generate_rollouts
from llm_irl.soft_q import action_mask, token_logprobs

TOK = tokenizer()


def _random_batch(seed=0, B=3, T=6, V=11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(V, (B, T), generator=g)
    labels[:, :2] = -100  # prompt
    labels[1, 4:] = -100  # padding
    return logits, labels


def _brute_force(logits, labels, temperature, top_p):
    """Position by position through HF's TemperatureLogitsWarper and TopPLogitsWarper, as generate does."""
    warpers = [TemperatureLogitsWarper(temperature), TopPLogitsWarper(top_p)]
    out = torch.zeros(labels.shape, dtype=logits.dtype)
    for b in range(labels.shape[0]):
        for t in range(1, labels.shape[1]):
            if labels[b, t] == -100:
                continue
            scores = logits[b, t - 1][None]
            for w in warpers:
                scores = w(None, scores)
            out[b, t] = torch.log_softmax(scores, -1)[0, labels[b, t]]
    return out


@pytest.mark.parametrize(("temperature", "top_p"), [(0.7, 1.0), (1.0, 0.6), (1.6, 0.8), (0.5, 0.3)])
def test_matches_hf_temperature_and_top_p_warpers(temperature, top_p):
    logits, labels = _random_batch()
    got = sampling_logprobs(logits, labels, temperature=temperature, top_p=top_p)
    want = _brute_force(logits, labels, temperature, top_p)
    finite = torch.isfinite(want)
    assert finite.any()
    assert torch.allclose(got[finite], want[finite], atol=1e-12)
    if top_p < 1:
        # a label the warper cuts is kept in its own nucleus: finite, and above every other choice of it
        cut = ~finite
        assert cut.any() and torch.isfinite(got[cut]).all()


def test_a_cut_token_is_renormalised_with_the_nucleus():
    """Logits [3, 2, 1, −5] at top_p 0.5 keep the first token only; a sampled last token joins it."""
    logits = torch.tensor([[[3.0, 2.0, 1.0, -5.0], [0.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    labels = torch.tensor([[-100, 3]])
    got = sampling_logprobs(logits, labels, top_p=0.5)[0, 1]
    assert got.item() == pytest.approx(-5.0 - torch.logsumexp(torch.tensor([3.0, -5.0], dtype=torch.float64), 0).item(), abs=1e-12)
    labels = torch.tensor([[-100, 0]])
    assert sampling_logprobs(logits, labels, top_p=0.5)[0, 1].item() == pytest.approx(0.0, abs=1e-12)


def test_is_token_logprobs_at_temperature_one_without_nucleus_and_differentiable():
    logits, labels = _random_batch(3)
    assert torch.equal(sampling_logprobs(logits, labels), token_logprobs(logits, labels))
    x = logits.clone().requires_grad_(True)
    sampling_logprobs(x, labels, temperature=0.7, top_p=0.8).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0


@pytest.mark.parametrize(("alpha", "temperature", "top_p"), [(1.0, 0.7, 1.0), (1.0, 1.0, 0.7), (0.5, 1.3, 0.9)])
def test_teacher_forced_equals_what_generate_recorded(alpha, temperature, top_p):
    """The old log-probs of a rollout are the new ones of the same model: PPO's first ratio is 1."""
    model = tiny_lm("llama").eval()
    record_policy_temperature(model, alpha)
    prompts = [TOK("topic1 kalo")["input_ids"], TOK("topic2")["input_ids"], TOK("topic3 miru lone")["input_ids"]]
    out = generate_rollouts(model, TOK, prompts, max_new_tokens=8, num_samples=4, temperature=temperature,
                            top_p=top_p, seed=1)
    batch = out.to_batch(TOK.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    new = sampling_logprobs(logits, batch["labels"], temperature=alpha * temperature, top_p=top_p)
    mask = action_mask(batch["labels"])
    assert torch.allclose(new[mask], batch["old_logprobs"][mask], atol=1e-4)
    plain = token_logprobs(logits, batch["labels"])
    assert (plain[mask] - batch["old_logprobs"][mask]).abs().max() > 1e-2  # temperature 1 would be off
