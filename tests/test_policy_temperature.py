"""A model trained with entropy temperature α is the policy softmax(logits/α): it says so in its saved
config, and every sampler and scorer reads it (rollouts, plain `generate`, rewards, held-out NLL).

The check throughout: a model A recorded with α = 0.5 against a copy B whose logits are doubled and
whose α is 1. Both are the same policy, softmax(2·logits), so they must sample and score alike.
"""

from __future__ import annotations

import copy

import pytest
import torch
from tiny_models import demos, tiny_lm, tokenizer
from transformers import AutoModelForCausalLM

import llm_irl.rollout as rollout
from llm_irl import IQConfig, IQTrainer, SFTConfig, SFTTrainer
from llm_irl.modeling import policy_temperature, record_policy_temperature
from llm_irl.rewards import implied_rewards
from llm_irl.rollout import generate_rollouts
from llm_irl.scoring import completion_logprobs

ALPHA = 0.5
TOK = tokenizer()
PROMPTS = [TOK("topic1 kalo")["input_ids"], TOK("topic2")["input_ids"]]


def twin_models():
    """(A: α recorded, B: the same policy as plain logits, α = 1)."""
    a = tiny_lm("llama").eval()
    b = copy.deepcopy(a)
    with torch.no_grad():
        b.lm_head.weight.mul_(1 / ALPHA)  # exact in floating point for α = 0.5
    record_policy_temperature(a, ALPHA)
    return a, b


def test_record_and_read_policy_temperature(tmp_path):
    model = tiny_lm("llama")
    assert policy_temperature(model) == 1.0
    record_policy_temperature(model, 1.0)  # nothing to record: the config stays as it was
    assert not hasattr(model.config, "llm_irl_alpha") and model.generation_config.temperature is None
    record_policy_temperature(model, ALPHA)
    assert model.config.llm_irl_alpha == ALPHA
    assert model.generation_config.temperature == ALPHA and model.generation_config.do_sample
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert policy_temperature(reloaded) == ALPHA and reloaded.generation_config.temperature == ALPHA
    # a checkpoint's own default (0.7 relative to π) stays 0.7 relative to π under a new α, and
    # recording twice does not compound
    reloaded.generation_config.temperature = 0.7 * ALPHA
    record_policy_temperature(reloaded, 0.25)
    record_policy_temperature(reloaded, 0.25)
    assert reloaded.generation_config.temperature == pytest.approx(0.7 * 0.25)
    record_policy_temperature(reloaded, 1.0)
    assert policy_temperature(reloaded) == 1.0 and reloaded.generation_config.temperature == pytest.approx(0.7)


@pytest.mark.parametrize("temperature", [1.0, 0.8])
def test_rollouts_sample_the_policy_at_a_temperature_relative_to_it(temperature):
    a, b = twin_models()
    kw = dict(max_new_tokens=8, num_samples=4, seed=3, temperature=temperature)
    ra, rb = generate_rollouts(a, TOK, PROMPTS, **kw), generate_rollouts(b, TOK, PROMPTS, **kw)
    assert ra.completion_ids == rb.completion_ids
    assert torch.allclose(torch.tensor(sum(ra.logprobs, [])), torch.tensor(sum(rb.logprobs, [])), atol=1e-5)


def test_greedy_rollouts_report_log_pi():
    a, b = twin_models()
    kw = dict(max_new_tokens=6, do_sample=False, top_k=None)
    ra, rb = generate_rollouts(a, TOK, PROMPTS, **kw), generate_rollouts(b, TOK, PROMPTS, **kw)
    assert ra.completion_ids == rb.completion_ids
    assert torch.allclose(torch.tensor(sum(ra.logprobs, [])), torch.tensor(sum(rb.logprobs, [])), atol=1e-5)


def test_plain_generate_samples_the_policy():
    a, b = twin_models()
    ids = torch.tensor([PROMPTS[0]])
    out = []
    for model in (a, b):
        torch.manual_seed(0)
        # top_k=0: HF's default top-k cut is not part of the policy
        out.append(model.generate(ids, do_sample=True, top_k=0, max_new_tokens=12, pad_token_id=TOK.pad_token_id))
    assert torch.equal(out[0], out[1])


def test_rewards_and_logprobs_use_the_recorded_alpha():
    a, b = twin_models()
    completions = [TOK("mise lone", add_special_tokens=False)["input_ids"] + [TOK.eos_token_id],
                   TOK("lodo", add_special_tokens=False)["input_ids"]]
    # rewards scale with α (r = Q − γV and V = α·logsumexp(Q/α)): A's are α times B's
    ra = implied_rewards(a, TOK, PROMPTS, completions, gamma=0.9)
    rb = implied_rewards(b, TOK, PROMPTS, completions, gamma=0.9)
    assert ra.returns == pytest.approx([ALPHA * r for r in rb.returns], rel=1e-5)
    assert ra.mean_entropy == pytest.approx(rb.mean_entropy, rel=1e-5)
    prompts, texts = ["topic1 kalo", "topic2"], ["mise lone", "lodo"]
    la, lb = completion_logprobs(a, TOK, prompts, texts), completion_logprobs(b, TOK, prompts, texts)
    assert [s for s, _ in la] == pytest.approx([s for s, _ in lb], rel=1e-5)


def test_iq_trainer_samples_at_alpha_times_t_and_saves_alpha(tmp_path, monkeypatch):
    seen = []
    original = rollout._sample_batch

    def spy(model, prompts, eos, pad_id, gen_kwargs):
        seen.append(gen_kwargs["temperature"])
        return original(model, prompts, eos, pad_id, gen_kwargs)

    monkeypatch.setattr(rollout, "_sample_batch", spy)
    args = IQConfig(output_dir=str(tmp_path / "iq"), max_steps=2, per_device_train_batch_size=4, alpha=ALPHA,
                    policy_mix=0.25, temperature=0.8, max_new_tokens=4, max_length=24, save_strategy="no",
                    disable_tqdm=True, report_to=[])
    iq = IQTrainer(model=tiny_lm("llama"), args=args, train_dataset=demos(8), processing_class=tokenizer())
    iq.train()
    assert seen and all(t == pytest.approx(ALPHA * 0.8) for t in seen)
    iq.save_model()
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "iq")
    assert policy_temperature(saved) == ALPHA and saved.generation_config.temperature == ALPHA
    # SFT fits softmax(logits): training such a model by SFT records α = 1 again
    sft = SFTTrainer(model=saved, args=SFTConfig(output_dir=str(tmp_path / "sft"), report_to=[]),
                     processing_class=tokenizer())
    assert policy_temperature(sft.model) == 1.0 and sft.model.generation_config.temperature == 1.0
