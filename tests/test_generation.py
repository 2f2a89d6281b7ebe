"""Evaluation sampling: shape and order of the sweep, seeding, and the JSONL round trip."""

from __future__ import annotations

import pytest

from llm_irl.builtin import load_builtin_model
from llm_irl.generation import by_temperature, generate_samples, load_jsonl, save_jsonl

PROMPTS = ["topic0 kalo", "topic1 mira", "topic2 ruse"]


@pytest.fixture(scope="module")
def model_and_tok():
    return load_builtin_model("builtin:tiny", seed=0)


def _sample(model_and_tok, **kw):
    model, tok = model_and_tok
    args = dict(k=2, temperatures=[0.7, 1.3], max_new_tokens=6, seed=0, batch_size=4, progress=False)
    return generate_samples(model, tok, PROMPTS, **{**args, **kw})


@pytest.fixture(scope="module")
def samples(model_and_tok):
    return _sample(model_and_tok)


def test_every_prompt_gets_k_samples_at_every_temperature(model_and_tok, samples):
    _, tok = model_and_tok
    assert [(s.temperature, s.prompt_index, s.sample_index) for s in samples] == [
        (t, i, j) for t in (0.7, 1.3) for i in range(3) for j in range(2)
    ]
    for s in samples:
        assert s.prompt == PROMPTS[s.prompt_index]
        assert len(s.logprobs) == len(s.completion_ids) <= 6
        assert all(lp <= 0 for lp in s.logprobs)
        assert s.terminated == (s.completion_ids[-1] == tok.eos_token_id)
        # every action but the final EOS is in the text, special tokens included
        actions = s.completion_ids[:-1] if s.terminated else s.completion_ids
        assert s.sample == tok.decode(actions, skip_special_tokens=False)
    groups = by_temperature(samples)
    assert list(groups) == [0.7, 1.3]
    assert [[s.sample_index for s in g] for g in groups[1.3]] == [[0, 1]] * 3


def test_seeded_and_independent_of_global_rng(model_and_tok, samples):
    import torch

    torch.manual_seed(123)  # must not matter
    assert _sample(model_and_tok) == samples
    assert _sample(model_and_tok, seed=1) != samples


def test_jsonl_round_trip(samples, tmp_path):
    path = tmp_path / "out" / "samples.jsonl"
    save_jsonl(samples, str(path))
    assert load_jsonl(str(path)) == samples
    first = path.read_text().splitlines()[0]
    for key in ("prompt", "sample", "temperature", "seed", "logprobs"):
        assert f'"{key}"' in first
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temporary file left behind


def test_refuses_bad_settings(model_and_tok):
    with pytest.raises(ValueError, match="temperatures"):
        _sample(model_and_tok, temperatures=[-0.5])
    with pytest.raises(ValueError, match="k"):
        _sample(model_and_tok, k=0)


def test_temperature_zero_is_greedy_repeated_k_times(model_and_tok):
    import torch

    model, tok = model_and_tok
    samples = _sample(model_and_tok, temperatures=[0.0], k=3, max_new_tokens=5)
    again = _sample(model_and_tok, temperatures=[0.0], k=3, max_new_tokens=5, seed=7)
    assert [s.completion_ids for s in again] == [s.completion_ids for s in samples]  # no randomness
    for i in range(len(PROMPTS)):
        group = [s for s in samples if s.prompt_index == i]
        assert [s.sample_index for s in group] == [0, 1, 2]
        assert all(s.completion_ids == group[0].completion_ids and s.temperature == 0.0 for s in group)
        # every action is the argmax of the logits in its state
        ids = tok(PROMPTS[i])["input_ids"] + group[0].completion_ids
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        n = len(tok(PROMPTS[i])["input_ids"])
        assert logits[n - 1: len(ids) - 1].argmax(-1).tolist() == group[0].completion_ids


def test_conversation_prompts_are_sampled_and_kept(model_and_tok, tmp_path):
    conversation = [{"role": "user", "content": "topic1 kalo"}]
    samples = generate_samples(*model_and_tok, [conversation, "topic2 ruse"], k=2, temperatures=[1.0],
                               max_new_tokens=4, progress=False)
    assert samples[0].prompt == conversation and samples[2].prompt == "topic2 ruse"
    save_jsonl(samples, str(tmp_path / "s.jsonl"))
    assert load_jsonl(str(tmp_path / "s.jsonl")) == samples


def test_printable_text_leaves_special_tokens_out(model_and_tok):
    from llm_irl.generation import printable_text
    from llm_irl.rollout import completion_text

    _, tok = model_and_tok
    ids = tok.convert_tokens_to_ids(["kalo", "<pad>", "kami", "<unk>", "<bos>", "<eos>"])
    assert completion_text(tok, ids, True) == "kalo <pad> kami <unk> <bos>"  # what the metrics charge
    assert printable_text(tok, ids, True) == "kalo kami"
