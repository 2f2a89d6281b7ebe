"""A language model as the expert: its likelihood is the model's own, its instruction stays in its context,
and evaluation reads it wherever it reads a synthetic expert."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch

from llm_irl.prompts import prompt_ids
from llm_irl.tasks.lm_expert import LanguageModelExpert
from tests.tiny_models import default_expert, tiny_lm, tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = default_expert().words


def brute_force_logprob(model, tok, context_ids: list[int], completion: str, temperature: float) -> float:
    """log p(completion, EOS | context) one action at a time: the model rerun on every prefix."""
    actions = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids, total = list(context_ids), 0.0
    with torch.no_grad():
        for a in actions:
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
            total += float(torch.log_softmax(logits / temperature, -1)[a])
            ids.append(a)
    return total


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_score_is_the_models_own_likelihood_at_its_temperature(arch, temperature):
    model, tok = tiny_lm(arch, seed=3), tokenizer()
    expert = LanguageModelExpert(model, tok, instruction=f"{WORDS[4]} {WORDS[5]}", temperature=temperature)
    prompts = [f"topic1 {WORDS[0]}", [{"role": "user", "content": f"topic2 {WORDS[1]}"}], f"topic0 {WORDS[2]}"]
    completions = [f"{WORDS[3]} {WORDS[7]}", WORDS[9], ""]
    scores = expert.score_many(prompts, completions)
    for p, c, s in zip(prompts, completions, scores):
        want = brute_force_logprob(model, tok, prompt_ids(tok, expert.context(p)), c, temperature)
        assert math.isclose(s.logprob, want, rel_tol=1e-4, abs_tol=1e-4)
        assert s.num_tokens == len(c.split()) + 1 == expert.completion_length(c)
    assert math.isclose(expert.score(prompts[1], completions[1]).logprob, scores[1].logprob, rel_tol=1e-5)
    # token ids are scored as the actions they are (EOS included by the caller)
    ids = [expert.completion_ids(c) for c in completions]
    assert expert.reads_token_ids(tok)
    assert [s.logprob for s in expert.score_many(prompts, ids)] == pytest.approx([s.logprob for s in scores], rel=1e-5)


def test_the_instruction_is_in_the_experts_context_only():
    model, tok = tiny_lm("llama", seed=1), tokenizer()
    instruction = f"{WORDS[10]} {WORDS[11]} {WORDS[12]}"
    told = LanguageModelExpert(model, tok, instruction=instruction)
    plain = LanguageModelExpert(model, tok)
    conversation = [{"role": "system", "content": "replaced"}, {"role": "user", "content": f"topic3 {WORDS[2]}"}]
    # the instruction takes the system turn's place; a string prompt gets it as a prefix line
    assert told.context(conversation) == [{"role": "system", "content": instruction}, conversation[1]]
    assert told.context("topic3 x") == f"{instruction}\n\ntopic3 x"
    assert plain.context(conversation) == conversation
    with_it = told.score(conversation, WORDS[3]).logprob
    assert with_it != plain.score(conversation, WORDS[3]).logprob
    assert math.isclose(with_it, plain.score(told.context(conversation), WORDS[3]).logprob, rel_tol=1e-6)


def test_samples_are_seeded_and_redrawn_until_they_end():
    model, tok = tiny_lm("llama", seed=2), tokenizer()
    expert = LanguageModelExpert(model, tok, temperature=1.0, max_new_tokens=40, prompts=[f"topic1 {WORDS[0]}"] * 3)
    a = expert.demonstrations(6, seed=5)
    assert a == expert.demonstrations(6, seed=5) and len(a) == 6
    assert a != expert.demonstrations(6, seed=6)
    # a repeated draw from one generator state is served again, and the generator ends where it did
    one, two = np.random.default_rng(9), np.random.default_rng(9)
    first = expert.sample_many(["topic2 x"] * 3, one)
    expert._sample = None  # not called again
    second = expert.sample_many(["topic2 x"] * 3, two)
    assert first == second and one.integers(1000) == two.integers(1000)


def test_a_sample_that_never_ends_is_kept_cut_with_a_warning(caplog):
    model, tok = tiny_lm("llama", seed=2), tokenizer()
    def never_eos(module, args, logits):  # EOS made impossible to draw: every draw runs to the limit
        logits[..., tok.eos_token_id] = -1e9
        return logits

    model.lm_head.register_forward_hook(never_eos)
    expert = LanguageModelExpert(model, tok, max_new_tokens=3, max_redraws=2)
    with caplog.at_level(logging.WARNING, logger="llm_irl.tasks.lm_expert"):
        texts = expert.sample_many([f"topic1 {WORDS[0]}"] * 4, np.random.default_rng(0))
    assert all(len(t.split()) == 3 for t in texts)
    assert expert.last_redraw_share == 2.0  # every prompt drawn twice more
    assert "did not end within 3 tokens" in caplog.text


def test_bad_settings_are_refused():
    model, tok = tiny_lm("llama"), tokenizer()
    with pytest.raises(ValueError, match="temperature must be > 0"):
        LanguageModelExpert(model, tok, temperature=0)
    with pytest.raises(ValueError, match="no prompts"):
        LanguageModelExpert(model, tok).sample_prompts(2, np.random.default_rng(0))


def test_evaluate_reads_a_language_model_expert_exactly(tmp_path):
    """The student *is* the expert (same weights, no instruction, T = 1): forward and reverse KL are zero
    and the expert's log-likelihood of the samples is their own log-probability."""
    from llm_irl.evaluate import eval_config, evaluate_model, load_task
    from llm_irl.generation import generate_samples

    model, tok = tiny_lm("llama", seed=4), tokenizer()
    model.save_pretrained(tmp_path / "expert")
    tok.save_pretrained(tmp_path / "expert")
    rows = LanguageModelExpert(model, tok, max_new_tokens=30,
                               prompts=[f"topic{i % 6} {WORDS[i]}" for i in range(6)]).demonstrations(12, seed=0)
    data = tmp_path / "heldout.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = eval_config({"eval_dataset": str(data), "expert_model": str(tmp_path / "expert"), "num_prompts": 4,
                          "k": 3, "temperatures": [1.0], "max_new_tokens": 30, "n_boot": 50})
    task = load_task(config)
    assert task.references is None and len(task.heldout) == 12  # the expert's own rows judge, not ROUGE
    samples = generate_samples(model, tok, task.prompts, k=3, temperatures=[1.0], max_new_tokens=30, progress=False)
    for s in samples:  # a text that does not tokenise back to the actions: the reverse KL reads the actions
        s.sample += f" {WORDS[0]}"
    result = evaluate_model(model, tok, task, config, samples=samples, progress=False)
    at_1 = result["temperatures"]["1"]
    assert abs(result["metrics"]["forward_kl"]["value"]) < 1e-5
    assert abs(at_1["reverse_kl"]["value"]) < 1e-5
    assert at_1["expert_loglik"]["value"] < 0


def test_an_expert_model_beside_a_builtin_expert_is_refused(tmp_path):
    from llm_irl.errors import ConfigError
    from llm_irl.evaluate import eval_config, load_task

    with pytest.raises(ConfigError, match="has its own expert"):
        load_task(eval_config({"eval_dataset": "builtin:markov", "expert_model": str(tmp_path)}))
    with pytest.raises(ValueError, match="needs expert_model"):
        eval_config({"eval_dataset": "builtin:markov", "expert_instruction": "be brief"})


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_scoring_builds_logits_only_from_the_earliest_action_on(arch):
    """The cut pass gives the full pass's log-probs, and its logits start at the last prompt position."""
    from llm_irl.batching import pad_batch
    from llm_irl.scoring import logits_over_actions, scored_row
    from llm_irl.soft_q import token_logprobs

    model, tok = tiny_lm(arch, seed=5).eval(), tokenizer()  # eval: GPT-2's dropout would part the two passes
    rows = [scored_row(tok, f"topic1 {WORDS[0]} {WORDS[1]} {WORDS[2]}", WORDS[3]),
            scored_row(tok, f"topic2 {WORDS[4]}", f"{WORDS[5]} {WORDS[6]} {WORDS[7]}")]
    batch = pad_batch(rows, tok.pad_token_id)
    with torch.no_grad():
        logits, labels = logits_over_actions(model, batch)
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    shortest_prompt = min(len(r["input_ids"]) - sum(x != -100 for x in r["labels"]) for r in rows)
    assert logits.shape[1] == batch["labels"].shape[1] - shortest_prompt + 1
    assert torch.allclose(token_logprobs(logits, labels).sum(-1), token_logprobs(full, batch["labels"]).sum(-1),
                          atol=1e-5)
