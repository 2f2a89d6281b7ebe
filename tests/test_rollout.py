"""Rollouts: EOS handling, length limit, teacher-forced log-probs, seeding, wrappers, architectures."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import transformers

from llm_irl.rollout import Rollouts, generate_rollouts
from llm_irl.special_tokens import resolve_eos_pad

VOCAB, EOS, EOS2, PAD = 64, 3, 4, 0
PROMPTS = [[1, 10, 11, 12, 13], [1, 20], [1, 30, 31]]  # unequal lengths: left padding matters


def _config(arch: str) -> transformers.PretrainedConfig:
    ids = dict(bos_token_id=1, eos_token_id=EOS)
    if arch == "llama":
        return transformers.LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, **ids,
        )
    if arch == "qwen2":
        return transformers.Qwen2Config(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, **ids,
        )
    if arch == "gpt2":
        return transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, **ids)
    raise ValueError(arch)


def tiny_model(arch: str = "llama", eos_bias: dict[int, float] | None = None) -> torch.nn.Module:
    """Tiny random LM; ``eos_bias`` adds a constant to some logits (an lm_head bias, via a hook)."""
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(_config(arch))
    model.generation_config.eos_token_id = EOS
    if eos_bias:
        bias = torch.zeros(VOCAB)
        for i, b in eos_bias.items():
            bias[i] = b
        model.lm_head.register_forward_hook(lambda module, args, out: out + bias)
    return model


TOK = SimpleNamespace(eos_token_id=EOS, pad_token_id=PAD)


def _sampling_log_softmax(logits: torch.Tensor, temperature: float, top_p: float, banned=()) -> torch.Tensor:
    """log of softmax(logits / temperature) cut to its top_p nucleus (the smallest set of most likely
    tokens holding at least top_p of the mass) and renormalised; `banned` ids get probability 0."""
    scaled = logits / temperature
    scaled[..., list(banned)] = -float("inf")
    p_sorted, order = torch.softmax(scaled, dim=-1).sort(dim=-1, descending=True)
    keep_sorted = (p_sorted.cumsum(-1) - p_sorted) < top_p  # the mass before the token is still short of top_p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return torch.log_softmax(scaled.masked_fill(~keep, -float("inf")), dim=-1)


def _teacher_forced_logprobs(model: torch.nn.Module, batch: dict[str, torch.Tensor], temperature: float = 1.0,
                             top_p: float = 1.0, banned=()) -> torch.Tensor:
    """log p(labels[t] | ...) from logits[t-1] under the sampling distribution (temperature, nucleus
    top_p, banned ids), in eval mode, aligned with labels, 0 where labels == -100."""
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    labels = batch["labels"]
    out = torch.zeros(labels.shape)
    lp = _sampling_log_softmax(logits[:, :-1], temperature, top_p, banned)
    tgt = labels[:, 1:].clamp_min(0)
    # where, not a product: off the actions a token outside the nucleus has log p = −inf, and −inf·0 is nan
    out[:, 1:] = torch.where(labels[:, 1:] != -100, lp.gather(-1, tgt[..., None]).squeeze(-1), 0.0)
    return out


def _check_structure(r: Rollouts, eos_ids: set[int], max_new_tokens: int) -> None:
    for c, lp, term in zip(r.completion_ids, r.logprobs, r.terminated):
        assert 1 <= len(c) <= max_new_tokens and len(lp) == len(c)
        assert all(t not in eos_ids for t in c[:-1]), "nothing may follow the first EOS"
        assert term == (c[-1] in eos_ids)
        if not term:
            assert len(c) == max_new_tokens


# ----------------------------------------------------------------------------- EOS and length


def test_forced_eos_stops_immediately():
    model = tiny_model(eos_bias={EOS: 30.0})
    r = generate_rollouts(model, TOK, PROMPTS, max_new_tokens=8, seed=0)
    assert r.completion_ids == [[EOS]] * 3
    assert r.terminated == [True] * 3
    assert r.prompt_ids == PROMPTS
    assert all(lp[0] == pytest.approx(0.0, abs=1e-6) for lp in r.logprobs)


def test_stops_at_eos_and_respects_max_new_tokens():
    model = tiny_model(eos_bias={EOS: 2.0})  # P(EOS) ≈ 0.1 per step: a mix of lengths
    r = generate_rollouts(model, TOK, PROMPTS, max_new_tokens=12, num_samples=4, batch_size=5, seed=0)
    assert len(r) == 12
    _check_structure(r, {EOS}, 12)
    assert any(r.terminated) and not all(r.terminated)
    assert len({len(c) for c in r.completion_ids}) > 2


def test_never_eos_runs_to_max_new_tokens():
    model = tiny_model(eos_bias={EOS: 3.0})
    # (bad_words_ids would not do: HF drops EOS from bad words.) The log-probs are those of the
    # distribution sampled, which gives EOS no mass.
    r = generate_rollouts(model, TOK, PROMPTS, max_new_tokens=7, seed=0, suppress_tokens=[EOS])
    assert r.terminated == [False] * 3
    assert all(len(c) == 7 and EOS not in c for c in r.completion_ids)
    batch = r.to_batch(PAD)
    assert torch.allclose(batch["old_logprobs"], _teacher_forced_logprobs(model, batch, banned=[EOS]), atol=1e-4)
    assert not torch.allclose(batch["old_logprobs"], _teacher_forced_logprobs(model, batch), atol=1e-2)


def test_eos_list_and_missing_pad():
    model = tiny_model(eos_bias={EOS: 1.5, EOS2: 1.5})
    tok = SimpleNamespace(eos_token_id=[EOS2, EOS], pad_token_id=None)
    eos, pad = resolve_eos_pad(model, tok)
    assert eos == [EOS2, EOS] and pad == EOS2
    r = generate_rollouts(model, tok, PROMPTS, max_new_tokens=10, num_samples=4, seed=1)
    _check_structure(r, {EOS, EOS2}, 10)
    assert {c[-1] for c, t in zip(r.completion_ids, r.terminated) if t} == {EOS, EOS2}
    # No tokenizer: the model's generation config decides.
    assert resolve_eos_pad(model, None) == ([EOS], EOS)


def test_rejects_empty_prompt():
    with pytest.raises(ValueError, match="Empty prompt"):
        generate_rollouts(tiny_model(), TOK, [[1], []])


# ----------------------------------------------------------------------------- log-probs and batches


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 0.9), (1.3, 1.0)])
def test_old_logprobs_are_the_sampling_distribution_in_eval_mode(arch, temperature, top_p):
    """Old log-probs are those of the distribution sampled (tempered, nucleus-cut), with dropout off."""
    model = tiny_model(arch, eos_bias={EOS: 2.0})
    model.train()  # sampling must switch dropout off (GPT-2 has some) and switch training back on
    r = generate_rollouts(model, TOK, PROMPTS, max_new_tokens=10, num_samples=3, batch_size=4, seed=0,
                          temperature=temperature, top_p=top_p)
    assert model.training
    _check_structure(r, {EOS}, 10)
    batch = r.to_batch(PAD)
    expected = _teacher_forced_logprobs(model, batch, temperature, top_p)
    assert torch.allclose(batch["old_logprobs"], expected, atol=1e-4)
    if arch == "gpt2":  # dropout on would change them
        model.train()
        with torch.no_grad():
            noisy = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        assert not torch.allclose(noisy, model.eval()(input_ids=batch["input_ids"],
                                                      attention_mask=batch["attention_mask"]).logits, atol=1e-4)


def test_to_batch_layout():
    r = Rollouts(
        prompt_ids=[[1, 2], [1]],
        completion_ids=[[5, EOS], [6, 7, 8]],
        logprobs=[[-0.5, -1.0], [-0.1, -0.2, -0.3]],
        terminated=[True, False],
    )
    b = r.to_batch(PAD)
    assert b["input_ids"].tolist() == [[1, 2, 5, EOS], [1, 6, 7, 8]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1]]
    assert b["labels"].tolist() == [[-100, -100, 5, EOS], [-100, 6, 7, 8]]
    assert b["old_logprobs"][0].tolist() == pytest.approx([0.0, 0.0, -0.5, -1.0])
    assert b["old_logprobs"][1].tolist() == pytest.approx([0.0, -0.1, -0.2, -0.3])
    assert b["terminated"].tolist() == [True, False] and b["terminated"].dtype == torch.bool
    r2 = Rollouts([[1]], [[9]], [[-2.0]], [False])
    b2 = Rollouts(r.prompt_ids + r2.prompt_ids, r.completion_ids + r2.completion_ids,
                  r.logprobs + r2.logprobs, r.terminated + r2.terminated).to_batch(PAD)
    assert b2["input_ids"][2].tolist() == [1, 9, PAD, PAD]
    assert b2["attention_mask"][2].tolist() == [1, 1, 0, 0]
    assert b2["labels"][2].tolist() == [-100, 9, -100, -100]
    assert b2["old_logprobs"][2].tolist() == pytest.approx([0.0, -2.0, 0.0, 0.0])


# ----------------------------------------------------------------------------- seeding, modes, wrappers


def test_seeding_is_reproducible_and_leaves_global_rng_alone():
    model = tiny_model(eos_bias={EOS: 1.0})
    state = torch.get_rng_state()
    a = generate_rollouts(model, TOK, PROMPTS, max_new_tokens=8, num_samples=2, seed=123)
    b = generate_rollouts(model, TOK, PROMPTS, max_new_tokens=8, num_samples=2, seed=123)
    c = generate_rollouts(model, TOK, PROMPTS, max_new_tokens=8, num_samples=2, seed=124)
    assert torch.equal(state, torch.get_rng_state())
    assert a.completion_ids == b.completion_ids and a.logprobs == b.logprobs
    assert a.completion_ids != c.completion_ids


def test_eval_mode_is_kept():
    model = tiny_model()
    model.eval()
    generate_rollouts(model, TOK, PROMPTS[:1], max_new_tokens=2, seed=0)
    assert not model.training


def test_ddp_style_wrapper_is_unwrapped():
    class Wrapper(torch.nn.Module):  # what DDP / accelerate.prepare put around the model
        def __init__(self, module):
            super().__init__()
            self.module = module

    model = tiny_model(eos_bias={EOS: 2.0})
    direct = generate_rollouts(model, TOK, PROMPTS, max_new_tokens=6, seed=5)
    wrapped = generate_rollouts(Wrapper(model), TOK, PROMPTS, max_new_tokens=6, seed=5)
    assert direct.completion_ids == wrapped.completion_ids


def test_peft_model():
    peft = pytest.importorskip("peft")
    base = tiny_model(eos_bias={EOS: 2.0})
    model = peft.get_peft_model(base, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.1))
    with torch.no_grad():  # non-zero LoRA B so the adapter changes the policy
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    model.train()
    r = generate_rollouts(model, TOK, PROMPTS, max_new_tokens=8, num_samples=2, seed=0)
    assert model.training
    _check_structure(r, {EOS}, 8)
    batch = r.to_batch(PAD)
    assert torch.allclose(batch["old_logprobs"], _teacher_forced_logprobs(model, batch), atol=1e-4)
