"""Both trainers train tiny models of many architectures and move every parameter."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import CONFIGS, demos, tiny_lm, tokenizer

from llm_irl import GAILConfig, IQConfig, IQTrainer, SFTConfig, SFTTrainer


def _train(trainer_cls, config_cls, model, tmp_path, **overrides):
    args = config_cls(**{
        "output_dir": str(tmp_path), "max_steps": 4, "per_device_train_batch_size": 8, "learning_rate": 1e-2,
        "logging_steps": 1, "save_strategy": "no", "max_length": 24, "disable_tqdm": True, **overrides,
    })
    trainer = trainer_cls(model=model, args=args, train_dataset=demos(), eval_dataset=demos(16, seed=1),
                          processing_class=tokenizer())
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    return trainer, before


def _unmoved(trainer, before):
    return [n for n, p in trainer.model.named_parameters() if torch.equal(p.detach(), before[n])]


@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2"])
@pytest.mark.parametrize("kind", ["sft", "iq"])
def test_trainer_moves_every_parameter(arch, kind, tmp_path):
    trainer_cls, config_cls = (SFTTrainer, SFTConfig) if kind == "sft" else (IQTrainer, IQConfig)
    trainer, before = _train(trainer_cls, config_cls, tiny_lm(arch), tmp_path)
    assert _unmoved(trainer, before) == []
    logged = trainer.state.log_history[0]
    for key in ["loss", "nll", "entropy"] + (["td", "reward", "v0"] if kind == "iq" else []):
        assert key in logged and logged[key] == logged[key]  # present and not NaN


@pytest.mark.parametrize("arch", sorted(set(CONFIGS) - {"gpt2", "llama", "qwen2"}))
def test_iq_trains_more_architectures(arch, tmp_path):
    trainer, before = _train(IQTrainer, IQConfig, tiny_lm(arch), tmp_path)
    assert _unmoved(trainer, before) == []


def test_value_head_variant_trains_and_saves(tmp_path):
    trainer, before = _train(IQTrainer, IQConfig, tiny_lm("llama"), tmp_path, value_param="head")
    assert "state_head.weight" in before and _unmoved(trainer, before) == []
    trainer.save_model()
    weights = load_file(os.path.join(tmp_path, "model.safetensors"))
    assert "state_head.weight" in weights


def test_a_checkpoint_that_calls_the_head_value_head_still_loads(tmp_path):
    """Checkpoints written before the rename hold `value_head.*`; loaded as Trainer loads them (strict=False),
    their weights land in `state_head`, the rest of the model's too."""
    from llm_irl.state_head import attach_state_head

    trained, _ = _train(IQTrainer, IQConfig, tiny_lm("llama"), tmp_path, value_param="offset")
    saved = {k.replace("state_head.", "value_head.", 1): v.clone() for k, v in trained.model.state_dict().items()}
    assert "value_head.weight" in saved and not any(k.startswith("state_head.") for k in saved)
    fresh = attach_state_head(tiny_lm("llama", seed=1))
    assert not fresh.load_state_dict(saved, strict=False).missing_keys
    for name, value in trained.model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name
    assert fresh.state_head.weight.abs().sum() > 0  # a trained head, not the zero start


def test_td_weight_zero_iq_equals_sft(tmp_path):
    """λ = 0 is behaviour cloning exactly: same losses and same weights, step for step."""
    sft, _ = _train(SFTTrainer, SFTConfig, tiny_lm("llama"), tmp_path / "sft")
    iq, _ = _train(IQTrainer, IQConfig, tiny_lm("llama"), tmp_path / "iq", td_weight=0.0)
    sft_losses = [h["loss"] for h in sft.state.log_history if "loss" in h]
    iq_losses = [h["loss"] for h in iq.state.log_history if "loss" in h]
    assert sft_losses == pytest.approx(iq_losses, rel=1e-5)
    for (n, p), q in zip(sft.model.named_parameters(), iq.model.parameters()):
        assert torch.allclose(p, q, atol=1e-5), n


@pytest.mark.parametrize("chunk", [5, None])
def test_sft_honours_label_smoothing_factor(chunk, tmp_path):
    """TrainingArguments.label_smoothing_factor reaches SFT's loss on both paths (transformers' Trainer applies it
    in the compute_loss ours replaces, so it would otherwise be dropped without a word)."""
    from llm_irl.losses import sft_loss

    args = SFTConfig(output_dir=str(tmp_path), max_length=24, per_device_train_batch_size=8, loss_chunk_size=chunk,
                     label_smoothing_factor=0.5, disable_tqdm=True)
    trainer = SFTTrainer(model=tiny_lm("llama"), args=args, train_dataset=demos(), processing_class=tokenizer())
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    with torch.no_grad():
        got = trainer.compute_loss(trainer.model, batch)
        logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        smoothed, plain = (sft_loss(logits, batch["labels"], label_smoothing=e)[0] for e in (0.5, 0.0))
    assert abs(smoothed - plain) > 1e-3  # the check below can tell the two apart
    torch.testing.assert_close(got, smoothed, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("config_cls", [IQConfig, GAILConfig])
def test_label_smoothing_is_refused_outside_sft(config_cls, tmp_path):
    with pytest.raises(ValueError, match="label_smoothing_factor is honoured by the SFT trainer only"):
        config_cls(output_dir=str(tmp_path), label_smoothing_factor=0.1)


def test_output_dir_is_standard_and_pickle_free(tmp_path):
    trainer, _ = _train(IQTrainer, IQConfig, tiny_lm("qwen2"), tmp_path)
    trainer.save_model()
    trainer.save_state()
    files = set(os.listdir(tmp_path))
    assert {"model.safetensors", "config.json", "tokenizer.json", "trainer_state.json", "training_args.json"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pth", ".pkl")) for f in files)
    state = json.load(open(tmp_path / "trainer_state.json"))
    assert any("td" in h for h in state["log_history"])
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, use_safetensors=True)
    for (n, p), q in zip(trainer.model.named_parameters(), reloaded.parameters()):
        assert torch.equal(p.cpu(), q), n


def test_evaluate_logs_components(tmp_path):
    trainer, _ = _train(IQTrainer, IQConfig, tiny_lm("llama"), tmp_path)
    metrics = trainer.evaluate()
    assert {"eval_loss", "eval_nll", "eval_td"} <= set(metrics)


def test_prompts_of_and_policy_rows():
    from llm_irl.batching import prompts_of
    from llm_irl.trainers.rollout_pool import policy_rows_due

    ids = torch.tensor([[5, 6, 7, 8], [5, 9, 0, 0]])
    labels = torch.tensor([[-100, -100, 7, 8], [5, 9, -100, -100]])
    assert prompts_of(ids, labels) == [[5, 6], [5]]
    assert [policy_rows_due(n, 0.1) for n in (1, 4, 5, 9, 13, 14, 18)] == [0, 0, 1, 1, 1, 2, 2]
    assert policy_rows_due(8, 0.5) == 8 and policy_rows_due(3, 0.25) == 1 and policy_rows_due(5, 0.0) == 0


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_online_iq_trains_with_policy_samples(arch, tmp_path):
    trainer, before = _train(IQTrainer, IQConfig, tiny_lm(arch), tmp_path, policy_mix=0.25, max_new_tokens=8,
                             rollout_every=2)
    assert _unmoved(trainer, before) == []
    logged = [h for h in trainer.state.log_history if "reward_policy" in h]
    assert logged and all(0 < h["sample_len"] <= 8 for h in logged)


def test_policy_mix_zero_is_offline_iq(tmp_path):
    offline, _ = _train(IQTrainer, IQConfig, tiny_lm("llama"), tmp_path / "a")
    explicit, _ = _train(IQTrainer, IQConfig, tiny_lm("llama"), tmp_path / "b", policy_mix=0.0, max_new_tokens=4)
    for p, q in zip(offline.model.parameters(), explicit.model.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("kind", ["sft", "iq", "iq_head"])
def test_chunked_and_full_logits_paths_train_alike(kind, tmp_path):
    trainer_cls, config_cls = (SFTTrainer, SFTConfig) if kind == "sft" else (IQTrainer, IQConfig)
    extra = {"value_param": "head"} if kind == "iq_head" else {}
    chunked, _ = _train(trainer_cls, config_cls, tiny_lm("qwen2"), tmp_path / "c", loss_chunk_size=5, **extra)
    full, _ = _train(trainer_cls, config_cls, tiny_lm("qwen2"), tmp_path / "f", loss_chunk_size=None, **extra)
    losses = [[h["loss"] for h in t.state.log_history if "loss" in h] for t in (chunked, full)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    # float-rounding differences of the two paths, amplified a little by Adam over 4 steps
    for (n, p), q in zip(chunked.model.named_parameters(), full.model.parameters()):
        assert torch.allclose(p, q, atol=1e-4), n
    assert chunked.state.log_history[0]["entropy"] == pytest.approx(full.state.log_history[0]["entropy"], rel=1e-5)


def test_gradient_checkpointing_gives_the_same_training(tmp_path):
    plain, _ = _train(IQTrainer, IQConfig, tiny_lm("llama"), tmp_path / "p")
    ckpt, before = _train(IQTrainer, IQConfig, tiny_lm("llama"), tmp_path / "c", gradient_checkpointing=True)
    assert _unmoved(ckpt, before) == []
    losses = [[h["loss"] for h in t.state.log_history if "loss" in h] for t in (plain, ckpt)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


# ----------------------------------------------------------------------------- online IQ: the mixture


def _record_mixtures(monkeypatch) -> list[torch.Tensor]:
    """Record the `is_policy` row flags of every batch the online objective sees."""
    import llm_irl.trainers.iq as iq

    seen, objective = [], iq.online_iq_objective

    def spy(mdp, is_policy, **kw):
        seen.append(is_policy.detach().cpu())
        return objective(mdp, is_policy, **kw)

    monkeypatch.setattr(iq, "online_iq_objective", spy)
    return seen


@pytest.mark.parametrize(("batch", "steps"), [(1, 18), (4, 9), (3, 7)])
def test_policy_share_over_steps_is_policy_mix(batch, steps, tmp_path, monkeypatch):
    """policy rows / all rows = policy_mix within half a row, at any batch size (a per-batch ceil gave
    50% at batch 1 and 20% at batch 4 for policy_mix 0.1)."""
    seen = _record_mixtures(monkeypatch)
    mix = 0.1
    _train(IQTrainer, IQConfig, tiny_lm("llama"), tmp_path, policy_mix=mix, max_new_tokens=4, max_steps=steps,
           per_device_train_batch_size=batch)
    policy = sum(int(f.sum()) for f in seen)
    demo = sum(len(f) for f in seen) - policy
    assert demo == batch * steps
    assert abs(policy - demo * mix / (1 - mix)) <= 0.5, (policy, demo)


def _fixed_rollouts(model, tokenizer, prompts, **kw):
    """Stand-in for sampling: the same completion for every prompt, so runs can be compared exactly."""
    from llm_irl.rollout import Rollouts

    completion = tokenizer("mise lone kalo", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    n = len(prompts)
    return Rollouts([list(p) for p in prompts], [completion] * n, [[0.0] * len(completion)] * n, [True] * n)


def test_online_iq_accumulated_step_equals_one_big_batch(tmp_path, monkeypatch):
    """Two micro-batches of 4 demonstrations (+1 policy row each) update the model as one batch of 8
    (+2 policy rows): each term of the online loss is normalised by its own token count over the step."""
    import llm_irl.trainers.iq as iq

    monkeypatch.setattr(iq, "generate_rollouts", _fixed_rollouts)
    completions = ["mise", "lone kalo mise lone kalo mise", "kalo", "mise lone kalo mise lone kalo mise lone",
                   "lone lone", "kalo mise lone kalo", "mise lone", "lone kalo mise lone kalo mise lone kalo"]
    rows = [{"prompt": "topic1 kalo", "completion": c} for c in completions]  # one prompt: the same policy rows
    runs = {}
    for name, batch, accum in (("big", 8, 1), ("accumulated", 4, 2)):
        args = IQConfig(output_dir=str(tmp_path / name), max_steps=1, per_device_train_batch_size=batch,
                        gradient_accumulation_steps=accum, learning_rate=1.0, optim="sgd", max_grad_norm=0.0,
                        policy_mix=0.2, max_length=24, save_strategy="no", disable_tqdm=True, report_to=[])
        trainer = IQTrainer(model=tiny_lm("llama"), args=args, train_dataset=rows, processing_class=tokenizer())
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        trainer.train()
        runs[name] = {n: p.detach() - before[n] for n, p in trainer.model.named_parameters()}
    for n, step in runs["big"].items():
        assert step.abs().max() > 0, n
        assert torch.allclose(runs["accumulated"][n], step, rtol=1e-4, atol=1e-7), n
