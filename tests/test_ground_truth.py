"""Ground-truth metrics: the pure arithmetic on numbers, and forward KL through real models."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from llm_irl.metrics.ground_truth import (
    expert_nll_of_samples,
    forward_kl,
    forward_kl_from_logprobs,
    relative_diversity,
    reverse_kl,
    reverse_kl_from_logprobs,
    validity_rate,
)
from llm_irl.tasks import GrammarExpert, MarkovExpert


def _distinct_1(texts: list[str]) -> float:
    words = [w for t in texts for w in t.split()]
    return len(set(words)) / max(len(words), 1)


# ----------------------------------------------------------------------------- pure pieces
def test_kl_from_logprobs_is_a_per_token_mean():
    assert forward_kl_from_logprobs([-3.0, -5.0], [-3.0, -5.0], [2, 3]) == 0.0
    # (Σ log p_E − Σ log p_θ) / Σ tokens = ((-3 - 5) - (-4 - 9)) / 5
    assert forward_kl_from_logprobs([-3.0, -5.0], [-4.0, -9.0], [2, 3]) == pytest.approx(1.0)
    assert reverse_kl_from_logprobs([-4.0, -9.0], [-3.0, -5.0], [2, 3]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="1, 2 and 2"):
        forward_kl_from_logprobs([-1.0], [-1.0, -2.0], [1, 1])
    with pytest.raises(ValueError, match="at least one"):
        forward_kl_from_logprobs([], [], [])


def test_expert_side_metrics():
    e = MarkovExpert(num_words=20, seed=0)
    rows = e.demonstrations(50, seed=1)
    prompts, texts = [r["prompt"] for r in rows], [r["completion"] for r in rows]
    assert expert_nll_of_samples(e, prompts, texts) == pytest.approx(-e.mean_logprob_per_token(prompts, texts))
    assert validity_rate(e, prompts, texts) == e.validity_rate(prompts, texts)
    assert validity_rate(e, prompts[:2], ["kalo nope", texts[1]]) <= 0.5
    with pytest.raises(ValueError, match="2 prompts and 1 completions"):
        expert_nll_of_samples(e, prompts[:2], texts[:1])


def test_reverse_kl_of_the_expert_itself_is_zero():
    """A 'model' that is the expert, scoring its own samples: reverse KL is exactly 0; per-token
    lists and per-sample sums give the same answer."""
    e = GrammarExpert(seed=0)
    rows = e.demonstrations(40, seed=2)
    prompts, texts = [r["prompt"] for r in rows], [r["completion"] for r in rows]
    sums = [e.score(p, c).logprob for p, c in zip(prompts, texts)]
    assert reverse_kl(e, prompts, texts, sums) == pytest.approx(0.0, abs=1e-12)
    per_token = []
    for p, c in zip(prompts, texts):  # the chain rule, one action at a time
        words = c.split()
        dists = [e.action_distribution(p, " ".join(words[:t])) for t in range(len(words) + 1)]
        per_token.append([math.log(d[a]) for d, a in zip(dists, words + [None])])
    assert reverse_kl(e, prompts, texts, per_token) == pytest.approx(0.0, abs=1e-9)
    assert reverse_kl(e, prompts, texts, [np.float32(s) for s in sums]) == pytest.approx(0.0, abs=1e-5)
    # a model more confident than the expert on these samples: positive gap per token
    n_tokens = sum(len(c.split()) + 1 for c in texts)
    assert reverse_kl(e, prompts, texts, [s + 1.0 for s in sums]) == pytest.approx(len(texts) / n_tokens)
    with pytest.raises(ValueError, match="model log-probs for"):
        reverse_kl(e, prompts[:1], texts[:1], [per_token[0][:-1]])


def test_relative_diversity_needs_equal_counts():
    model = [["a b", "a b"], ["c d", "c e"]]
    expert = [["a b", "e f"], ["c d", "g h"]]
    # model: distinct-1 = 2/4, 3/4 -> mean 0.625; expert: 4/4, 4/4 -> 1
    assert relative_diversity(model, expert, _distinct_1) == pytest.approx(0.625)
    assert relative_diversity(expert, expert, _distinct_1) == 1.0
    assert relative_diversity(["a b", "a b"], ["a b", "c d"], _distinct_1) == pytest.approx(0.5)  # pooled
    with pytest.raises(ValueError, match="2 model groups vs 1 expert groups"):
        relative_diversity(model, expert[:1], _distinct_1)
    with pytest.raises(ValueError, match="group 1 has 1 model samples vs 2 expert samples"):
        relative_diversity([model[0], model[1][:1]], expert, _distinct_1)
    assert math.isnan(relative_diversity(["a"], ["b"], lambda texts: 0.0))


# ----------------------------------------------------------------------------- through models
torch = pytest.importorskip("torch")


class _ExactMarkovModel(torch.nn.Module):
    """A causal 'LM' whose next-token distribution is exactly the Markov expert's."""

    def __init__(self, expert: MarkovExpert, tokenizer):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # completion_logprobs asks for a device
        vocab = tokenizer.get_vocab()
        self.topic_of = {vocab[t]: k for k, t in enumerate(expert.topics)}
        self.word_of = {vocab[w]: i for i, w in enumerate(expert.words)}
        action_ids = [vocab[w] for w in expert.words] + [tokenizer.eos_token_id]
        table = torch.full((*expert._action_probs.shape[:2], len(vocab)), -1e9, dtype=torch.float64)
        table[:, :, action_ids] = torch.from_numpy(np.log(expert._action_probs))
        self.table = table

    def forward(self, input_ids, attention_mask=None):
        logits = torch.full((*input_ids.shape, self.table.shape[-1]), -1e9, dtype=torch.float64)
        for b, row in enumerate(input_ids.tolist()):
            topic = next(self.topic_of[i] for i in row if i in self.topic_of)
            for t, i in enumerate(row):
                if i in self.word_of:
                    logits[b, t] = self.table[topic, self.word_of[i]]
        return SimpleNamespace(logits=logits)


def test_forward_kl_of_the_expert_as_a_model_is_zero():
    pytest.importorskip("llm_irl.data")
    from llm_irl.builtin import word_tokenizer

    e = MarkovExpert(num_words=12, num_topics=3, seed=0)
    tok = word_tokenizer(e.vocab)
    rows = e.demonstrations(30, seed=5)
    prompts, texts = [r["prompt"] for r in rows], [r["completion"] for r in rows]
    kl = forward_kl(e, _ExactMarkovModel(e, tok), tok, prompts, texts, batch_size=8)
    assert kl == pytest.approx(0.0, abs=1e-5)


def _random_grammar_llama():
    """The grammar expert, its word tokenizer and an untrained 32-wide Llama over that vocabulary."""
    pytest.importorskip("llm_irl.data")
    from transformers import AutoModelForCausalLM

    from llm_irl.builtin import tiny_model_config, word_tokenizer

    e = GrammarExpert(seed=0)
    tok = word_tokenizer(e.vocab)
    config = tiny_model_config(len(tok))
    config.hidden_size, config.intermediate_size = 32, 64
    torch.manual_seed(0)
    return e, tok, AutoModelForCausalLM.from_config(config).eval()


def test_forward_kl_of_a_random_tiny_llama_is_positive():
    e, tok, model = _random_grammar_llama()
    rows = e.demonstrations(16, seed=3)
    prompts, texts = [r["prompt"] for r in rows], [r["completion"] for r in rows]
    kl = forward_kl(e, model, tok, prompts, texts)
    # an untrained model is near uniform over the vocabulary: much worse than the expert
    assert math.isfinite(kl) and kl > 0.5
    with pytest.raises(ValueError, match="truncated by max_length"):
        forward_kl(e, model, tok, prompts, texts, max_length=6)


def test_forward_kl_at_each_temperature_matches_a_token_by_token_reference():
    """Coverage at T: the demonstrations scored under softmax(logits/(α·T)), against a slow loop over one
    row and one action at a time, for a model trained as α = 0.5 (so T is relative to π)."""
    e, tok, model = _random_grammar_llama()
    from llm_irl.data import encode_prompt_completion
    from llm_irl.metrics.ground_truth import forward_kl_at
    from llm_irl.modeling import record_policy_temperature

    record_policy_temperature(model, 0.5)
    rows = e.demonstrations(6, seed=3)
    prompts, texts = [r["prompt"] for r in rows], [r["completion"] for r in rows]
    temperatures = [0.5, 1.0, 1.7]
    got = forward_kl_at(e, model, tok, prompts, texts, temperatures, batch_size=4)

    expert_sum = math.fsum(e.score(p, c).logprob for p, c in zip(prompts, texts))
    tokens = sum(e.score(p, c).num_tokens for p, c in zip(prompts, texts))
    for t in temperatures:
        model_sum = 0.0
        for p, c in zip(prompts, texts):
            row = encode_prompt_completion(tok, p, c, max_length=512)
            ids, labels = torch.tensor([row["input_ids"]]), row["labels"]
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0].double()
            for pos, label in enumerate(labels):
                if label != -100:  # an action: chosen by the logits one position earlier
                    model_sum += float(torch.log_softmax(logits[pos - 1] / (0.5 * t), dim=-1)[label])
        assert got[t] == pytest.approx((expert_sum - model_sum) / tokens, rel=1e-4, abs=1e-6)
    # sharpening or flattening a (random) model moves its coverage; T = 1 is forward_kl itself
    assert got[1.0] == pytest.approx(forward_kl(e, model, tok, prompts, texts), abs=1e-6)  # other batches: fp32
    assert len(set(got.values())) == 3
