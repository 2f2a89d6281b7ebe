"""The adversarial trainer (GAIL / AIRL / max-margin): it trains, its discriminator learns, the KL stays sane."""

import math
import os

import pytest
import torch
from tiny_models import demos, tiny_lm, tokenizer
from transformers import AutoModelForSequenceClassification

from llm_irl.trainers.gail import GAILConfig, GAILTrainer, action_mask, demo_prompts, token_logprobs

STATS = ["loss", "disc_loss", "disc_acc_demo", "disc_acc_policy", "reward", "kl", "entropy", "sample_len", "nll",
         "policy_loss"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Models this small gain nothing from intra-op threads, and on a busy machine the threads'
    # synchronisation makes token-by-token sampling several times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _args(tmp_path, **overrides):
    kw = dict(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=8, learning_rate=1e-2,
              disc_learning_rate=1e-3, logging_steps=1, save_strategy="no", max_length=24, disable_tqdm=True,
              kl_coef=0.1, report_to="none")
    kw.update(overrides)
    return GAILConfig(**kw)


def _trainer(tmp_path, arch="llama", model=None, **overrides):
    return GAILTrainer(model=model if model is not None else tiny_lm(arch), args=_args(tmp_path, **overrides),
                       train_dataset=demos(), eval_dataset=demos(16, seed=1), processing_class=tokenizer())


def _train(tmp_path, arch="llama", **overrides):
    trainer = _trainer(tmp_path, arch, **overrides)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    return trainer, before


def _unmoved(trainer, before):
    params = dict(trainer.model.named_parameters())
    return [n for n, p in before.items() if torch.equal(params[n].detach(), p)]


def _logged(trainer):
    return [h for h in trainer.state.log_history if "disc_loss" in h]


def _demo_batch(trainer):
    return trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))


@pytest.mark.parametrize("level", ["sequence", "token"])
@pytest.mark.parametrize("disc_loss", ["gail", "airl", "margin"])
def test_adversarial_rl_alone_moves_every_policy_parameter(disc_loss, level, tmp_path):
    # mle_weight=0: every gradient comes from the discriminator's reward (and the KL penalty)
    trainer, before = _train(tmp_path, disc_loss=disc_loss, disc_level=level, mle_weight=0.0)
    assert _unmoved(trainer, before) == []
    # the frozen reference is a separate copy: untouched, and none of its tensors are the policy's
    ref = dict(trainer.ref_model.named_parameters())
    assert all(torch.equal(ref[n], p) for n, p in before.items())
    policy_ptrs = {p.data_ptr() for p in trainer.model.parameters()}
    assert not any(p.data_ptr() in policy_ptrs for p in trainer.ref_model.parameters())
    for row in _logged(trainer):
        for key in STATS:
            assert key in row and math.isfinite(row[key]), (key, row)


@pytest.mark.parametrize("level", ["sequence", "token"])
@pytest.mark.parametrize("disc_loss", ["gail", "airl", "margin"])
def test_discriminator_loss_falls_on_a_fixed_batch(disc_loss, level, tmp_path):
    trainer = _trainer(tmp_path, disc_loss=disc_loss, disc_level=level, disc_learning_rate=3e-3)
    demo = _demo_batch(trainer)
    samples = trainer.rollout(trainer.model, demo, seed=0)
    losses = [trainer.discriminator_step(demo, samples)["disc_loss"] for _ in range(25)]
    # An absolute fall: sequence-level AIRL starts saturated (its logit f − log π is dominated by a
    # whole completion's −log π, tens of nats) and falls steadily but only by about a nat here.
    assert losses[-1] < losses[0] - 0.3, losses


def test_kl_to_the_reference_stays_bounded(tmp_path):
    trainer, _ = _train(tmp_path, max_steps=8, learning_rate=1e-3, kl_coef=0.2)
    kls = [row["kl"] for row in _logged(trainer)]
    assert kls[0] == pytest.approx(0.0, abs=1e-4)  # first samples come from the reference itself
    assert all(math.isfinite(k) and abs(k) < 2.0 for k in kls), kls  # nats per completion


def test_reinforce_variant_trains(tmp_path):
    trainer, before = _train(tmp_path, policy_update="reinforce", mle_weight=0.0)
    assert _unmoved(trainer, before) == []
    assert all("clip_frac" not in row for row in _logged(trainer))


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
def test_other_architectures_train(arch, tmp_path):
    trainer, before = _train(tmp_path, arch, max_steps=2)
    assert _unmoved(trainer, before) == []
    assert type(trainer.discriminator).__name__.lower().startswith(arch)


def test_saved_discriminator_reloads_and_can_be_reused(tmp_path):
    trainer, _ = _train(tmp_path / "run", max_steps=2)
    trainer.save_model()
    path = tmp_path / "run" / "discriminator"
    assert (path / "model.safetensors").exists() and (path / "config.json").exists()
    reloaded = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True)
    trained = dict(trainer.discriminator.named_parameters())
    for n, p in reloaded.named_parameters():
        assert torch.equal(p, trained[n].cpu()), n
    assert reloaded.config.pad_token_id == tokenizer().pad_token_id
    # a saved discriminator can start another run
    again = _trainer(tmp_path / "again", disc_model_name_or_path=str(path))
    for n, p in again.discriminator.named_parameters():
        assert torch.equal(p.cpu(), trained[n].cpu()), n


def test_resume_restores_the_discriminator(tmp_path):
    trainer, _ = _train(tmp_path, max_steps=2, save_strategy="steps", save_steps=2)
    saved = {n: p.detach().clone() for n, p in trainer.discriminator.named_parameters()}
    resumed = _trainer(tmp_path, save_strategy="no")
    resumed._load_from_checkpoint(str(tmp_path / "checkpoint-2"))  # what train(resume_from_checkpoint=...) calls
    for n, p in resumed.discriminator.named_parameters():
        assert torch.equal(p, saved[n]), n


def test_peft_reference_is_the_base_model_with_adapters_off(tmp_path):
    from peft import LoraConfig

    trainer = GAILTrainer(model=tiny_lm("llama"), args=_args(tmp_path, max_steps=2),
                          train_dataset=demos(), processing_class=tokenizer(),
                          peft_config=LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert trainer.ref_model is None  # no second copy
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert _unmoved(trainer, before) == [] and all("lora" in n for n in before)
    kls = [row["kl"] for row in _logged(trainer)]
    assert kls[0] == pytest.approx(0.0, abs=1e-4)  # LoRA starts as the identity: π = π_ref
    assert all(math.isfinite(k) for k in kls)


def test_ppo_epochs_reuse_each_rollout_batch(tmp_path, monkeypatch):
    calls = []
    original = GAILTrainer.rollout
    monkeypatch.setattr(GAILTrainer, "rollout", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    trainer, _ = _train(tmp_path, max_steps=4, ppo_epochs=2, learning_rate=3e-2)
    assert len(calls) == 2
    rows = _logged(trainer)
    assert rows[0]["approx_kl"] == pytest.approx(0.0, abs=1e-6)  # fresh samples: ratio 1
    assert rows[1]["approx_kl"] > 0  # the second epoch sees the policy the first one moved


def test_gradient_accumulation_samples_per_micro_batch(tmp_path, monkeypatch):
    calls = []
    original = GAILTrainer.rollout
    monkeypatch.setattr(GAILTrainer, "rollout", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    _train(tmp_path, max_steps=2, per_device_train_batch_size=4, gradient_accumulation_steps=2)
    assert len(calls) == 4


def test_evaluate_reports_demo_nll_without_sampling(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path)
    monkeypatch.setattr(GAILTrainer, "rollout", lambda *a, **k: pytest.fail("evaluation sampled"))
    metrics = trainer.evaluate()
    assert metrics["eval_nll"] == pytest.approx(metrics["eval_loss"])


def test_prompts_and_logprobs_follow_the_labels():
    ids = torch.tensor([[5, 6, 7, 8, 0], [5, 9, 10, 0, 0]])
    labels = torch.tensor([[-100, -100, 7, 8, -100], [5, 9, 10, -100, -100]])  # row 2: a "text" row
    assert demo_prompts(ids, labels) == [[5, 6], [5]]
    assert action_mask(labels).tolist() == [[False, False, True, True, False], [False, True, True, False, False]]
    logits = torch.randn(2, 5, 12)
    lp = token_logprobs(logits, labels)
    assert lp[0, 2] == pytest.approx(torch.log_softmax(logits[0, 1], -1)[7].item(), abs=1e-6)
    assert lp[0, 0] == 0 and lp[0, 4] == 0 and lp[1, 0] == 0


@pytest.mark.parametrize(
    "field, value",
    [("disc_loss", "wgan"), ("reward_kind", "d"), ("policy_update", "a2c"), ("disc_level", "word"),
     ("gamma", 1.5), ("clip_range", 0.0), ("ppo_epochs", 0), ("kl_coef", -0.1), ("mle_weight", -1.0), ("disc_steps", 0),
     ("disc_learning_rate", 0.0), ("max_new_tokens", 0), ("temperature", 0.0), ("top_p", 1.5),
     ("margin_slack_weight", 0.0), ("margin_l2_weight", -1.0)],
)
def test_config_refuses_bad_values_by_name(field, value, tmp_path):
    with pytest.raises(ValueError, match=field):
        GAILConfig(output_dir=str(tmp_path), **{field: value})


@pytest.mark.slow
def test_gail_raises_its_discriminator_reward_on_the_embedded_default(tmp_path):
    """recipes/quickstart_gail.yaml (builtin:tiny, builtin:markov): the policy catches up with its
    discriminator, so the mean raw reward of its samples rises from the first logging window to the
    last, while the KL to the reference stays finite and bounded."""
    import yaml

    from llm_irl.builtin import builtin_dataset

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "recipes", "quickstart_gail.yaml")) as f:
        recipe = yaml.safe_load(f)
    script_keys = {"trainer", "model_name_or_path", "dataset", "eval_dataset", "output_dir"}
    args = GAILConfig(output_dir=str(tmp_path), disable_tqdm=True, report_to="none",
                      **{k: v for k, v in recipe.items() if k not in script_keys})
    trainer = GAILTrainer(model=recipe["model_name_or_path"], args=args,
                          train_dataset=builtin_dataset(recipe["dataset"]))
    trainer.train()
    rows = _logged(trainer)
    for row in rows:
        print({k: round(row[k], 4) for k in STATS + ["step"] if k in row})
    assert rows[-1]["reward"] > rows[0]["reward"]
    # the reference is the untrained model (near uniform over ~50 words): imitation has to move away
    # from it, but by less than log(vocab) ≈ 3.9 nats per sampled token
    assert all(math.isfinite(r["kl"]) and r["kl"] < 3.0 * r["sample_len"] for r in rows)
