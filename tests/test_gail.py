"""The adversarial trainer (GAIL / AIRL / max-margin): it trains, its discriminator learns and steers, PPO clips,
the KL pulls toward the reference, resuming is exact."""

import math

import pytest
import torch
from tiny_models import demos, tiny_lm, tokenizer
from transformers import TrainerCallback

from llm_irl.adversarial import GAILConfig, GAILTrainer
from llm_irl.adversarial.discriminator import Discriminator
from llm_irl.builtin import default_expert

STATS = ["loss", "disc_heldout_loss", "disc_heldout_bal_acc", "disc_heldout_acc_demo", "disc_heldout_acc_policy",
         "disc_heldout_reward_gap", "disc_train_bal_acc", "reward", "kl", "entropy", "sample_len", "nll", "pg_loss"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _args(tmp_path, **overrides):
    kw = dict(output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=8, learning_rate=1e-2,
              disc_learning_rate=1e-3, logging_steps=1, save_strategy="no", max_length=24, disable_tqdm=True,
              kl_coef=0.1, report_to="none")
    kw.update(overrides)
    return GAILConfig(**kw)


def _trainer(tmp_path, arch="llama", model=None, train=None, **overrides):
    return GAILTrainer(model=model if model is not None else tiny_lm(arch), args=_args(tmp_path, **overrides),
                       train_dataset=train if train is not None else demos(), eval_dataset=demos(16, seed=1),
                       processing_class=tokenizer())


def _train(tmp_path, arch="llama", **overrides):
    trainer = _trainer(tmp_path, arch, **overrides)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    return trainer, before


def _unmoved(trainer, before):
    params = dict(trainer.model.named_parameters())
    return [n for n, p in before.items() if torch.equal(params[n].detach(), p)]


def _logged(trainer):
    return [h for h in trainer.state.log_history if "pg_loss" in h]


def _demo_batch(trainer):
    return trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))


# ----------------------------------------------------------------------------- it trains


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


@pytest.mark.parametrize("param", ["ref_ratio", "classifier"])
def test_every_discriminator_parametrisation_trains(param, tmp_path):
    trainer, before = _train(tmp_path, disc_param=param, mle_weight=0.0, samples_per_prompt=2, baseline="per_prompt",
                             kl_estimator="k3", missing_eos_penalty=1.0)
    assert _unmoved(trainer, before) == []
    assert all(math.isfinite(row["disc_heldout_loss"]) for row in _logged(trainer))


@pytest.mark.parametrize("param", ["policy_ratio", "ref_ratio", "classifier"])
@pytest.mark.parametrize("level", ["sequence", "token"])
@pytest.mark.parametrize("disc_loss", ["gail", "airl", "margin"])
def test_discriminator_learns_to_tell_demos_from_samples_on_a_fixed_batch(disc_loss, level, param, tmp_path):
    trainer = _trainer(tmp_path, disc_loss=disc_loss, disc_level=level, disc_param=param, disc_learning_rate=3e-3)
    demo = _demo_batch(trainer)
    samples = trainer.rollout(trainer.model, demo, seed=0)
    first = trainer.discriminator_stats(demo, samples)
    for _ in range(25):
        trainer.discriminator_step(demo, samples)
    last = trainer.discriminator_stats(demo, samples)
    assert last["disc_loss"] < first["disc_loss"] - 0.3, (first, last)
    if disc_loss == "airl" and param == "classifier":
        # saturated: its logit g − log π carries −log π (a few nats a token, tens a completion) against
        # g = 0, so every text looks like a demo for now; its loss falls steadily but slowly (the
        # likelihood-ratio parametrisations start at ℓ = 0 and do not saturate)
        return
    # the right way round: demos called demos and samples called samples (a label swap fails here)
    assert last["disc_reward_gap"] > 0, last
    # and the policy's reward, as the trainer computes it, pays demos more than samples (a sign flip fails)
    demo_reward = trainer.sample_rewards(demo)  # log π of the demos computed as for replayed samples
    assert demo_reward.sum(-1).mean() > trainer.sample_rewards(samples).sum(-1).mean()
    if disc_loss != "margin":
        assert last["disc_acc_demo"] > 0.5 and last["disc_acc_policy"] > 0.5, last


@pytest.mark.parametrize("param", ["policy_ratio", "classifier"])
def test_gradient_penalty_and_label_smoothing_regularise_the_discriminator(param, tmp_path):
    stats = {}
    for name, kw in {"plain": {}, "penalty": {"disc_grad_penalty": 10.0}, "smooth": {"disc_label_smoothing": 0.3}}.items():
        trainer = _trainer(tmp_path / name, disc_param=param, disc_loss="gail", disc_learning_rate=3e-3, **kw)
        demo = _demo_batch(trainer)
        samples = trainer.rollout(trainer.model, demo, seed=0)
        for _ in range(15):
            step = trainer.discriminator_step(demo, samples)
        stats[name] = {**step, **trainer.discriminator_stats(demo, samples)}
    assert stats["penalty"]["disc_grad_penalty"] > 0 and "disc_grad_penalty" not in stats["plain"]
    # both keep D less sure of itself on the batch it trains on than the plain BCE does
    assert stats["penalty"]["disc_entropy"] > stats["plain"]["disc_entropy"], stats
    assert stats["smooth"]["disc_entropy"] > stats["plain"]["disc_entropy"], stats


def test_discriminator_starts_undecided_and_its_batches_are_fresh(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, max_steps=1, disc_steps=3, ppo_epochs=1, ppo_minibatches=1)
    seen = []
    original = GAILTrainer.discriminator_step
    monkeypatch.setattr(GAILTrainer, "discriminator_step",
                        lambda self, d, s: seen.append((d["input_ids"].clone(), s["input_ids"].clone()))
                        or original(self, d, s))
    demo = _demo_batch(trainer)
    samples = trainer.rollout(trainer.model, demo, seed=0)
    # policy_ratio: q_φ is a copy of π and the bias is 0, so ℓ ≈ 0 and D = ½ on everything
    logits = trainer.discriminator.logits(trainer._disc_inputs(samples))
    assert logits.abs().max() < 1e-4
    trainer.train()
    assert len(seen) == 3
    demo_batches = [d for d, _ in seen]
    assert not any(torch.equal(demo_batches[i], demo_batches[j]) for i in range(3) for j in range(i))


# ----------------------------------------------------------------------------- it steers: ground truth


WORDS = default_expert().words
ENDING = WORDS[-1]


def _fixed_ending_demos(n: int, seed: int) -> list[dict]:
    """An expert that is easy to tell apart: one random word, then always the same word, then EOS."""
    g = torch.Generator().manual_seed(seed)
    firsts = torch.randint(len(WORDS) - 1, (n,), generator=g).tolist()
    return [{"prompt": r["prompt"], "completion": f"{WORDS[w]} {ENDING}"} for r, w in zip(demos(n, seed=seed), firsts)]


def _ending_logprob(trainer, rows) -> float:
    """Mean log π(ENDING | prompt, first word) over held-out expert rows (teacher-forced)."""
    tok, model = trainer.processing_class, trainer.model
    end_id = tok.convert_tokens_to_ids(ENDING)
    total = 0.0
    with torch.no_grad():
        for r in rows:
            ids = tok(f"{r['prompt']} {r['completion'].split()[0]}")["input_ids"]
            logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0, -1]
            total += torch.log_softmax(logits.float(), -1)[end_id].item()
    return total / len(rows)


@pytest.mark.parametrize("disc_loss", ["gail", "airl", "margin"])
def test_gail_alone_moves_the_policy_toward_an_expert_it_can_tell_apart(disc_loss, tmp_path):
    """Ground truth, mle_weight = 0: nothing but the discriminator's reward can teach the policy that the
    expert's completions end with one fixed word. A flipped reward sign or swapped labels push the
    policy away from it instead, and the test fails."""
    heldout = _fixed_ending_demos(32, seed=5)
    trainer = _trainer(tmp_path, train=_fixed_ending_demos(256, seed=0), disc_loss=disc_loss, mle_weight=0.0,
                       kl_coef=0.0, max_steps=40, per_device_train_batch_size=32, learning_rate=3e-3,
                       disc_learning_rate=3e-3, max_new_tokens=3, lr_scheduler_type="constant", eval_disc=False)
    before = _ending_logprob(trainer, heldout)
    trainer.train()
    after = _ending_logprob(trainer, heldout)
    assert after > before + 1.0, (before, after)  # nats: the expert's word became e× more likely or more


def _exact_kl_on_demo_states(trainer) -> float:
    """Mean over the demos' states of KL(π(·|s) ‖ π_ref(·|s)), summed over the whole vocabulary."""
    batch = _demo_batch(trainer)
    kw = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    with torch.no_grad():
        logp = torch.log_softmax(trainer.model(**kw).logits.float(), -1)
        logq = torch.log_softmax(trainer.ref_model(**kw).logits.float(), -1)
    return (logp.exp() * (logp - logq)).sum(-1)[batch["attention_mask"].bool()].mean().item()


def test_kl_penalty_pulls_the_policy_back_to_its_reference(tmp_path):
    """Only the KL term can move the policy here (a classifier discriminator that never trains gives every
    sample the same reward) and the reference starts away from the policy, so the exact KL falls; a flipped
    KL sign makes it grow instead. γ = 0: each token answers for its own KL, the low-variance signal."""
    trainer = _trainer(tmp_path, max_steps=24, disc_param="classifier", disc_learning_rate=1e-30, mle_weight=0.0,
                       kl_coef=1.0, gamma=0.0, per_device_train_batch_size=32, learning_rate=3e-3,
                       lr_scheduler_type="constant", max_new_tokens=8, eval_disc=False)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in trainer.ref_model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    before = _exact_kl_on_demo_states(trainer)
    trainer.train()
    after = _exact_kl_on_demo_states(trainer)
    assert after < 0.95 * before, (before, after)


def test_kl_to_the_reference_stays_bounded(tmp_path):
    trainer, _ = _train(tmp_path, max_steps=8, learning_rate=1e-3, kl_coef=0.2)
    kls = [row["kl"] for row in _logged(trainer)]
    assert kls[0] == pytest.approx(0.0, abs=1e-4)  # first samples come from the reference itself
    assert all(math.isfinite(k) and abs(k) < 2.0 for k in kls), kls  # nats per completion


# ----------------------------------------------------------------------------- the policy update


def test_ppo_minibatches_and_epochs_reuse_each_rollout_and_clip(tmp_path, monkeypatch):
    calls = []
    original = GAILTrainer.rollout
    monkeypatch.setattr(GAILTrainer, "rollout", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    trainer, _ = _train(tmp_path, max_steps=8, ppo_epochs=2, ppo_minibatches=2, learning_rate=3e-2)
    assert len(calls) == 2  # 8 steps / (2 epochs × 2 minibatches)
    rows = _logged(trainer)
    assert rows[0]["approx_kl"] == pytest.approx(0.0, abs=1e-6)  # fresh samples, dropout off: ratio exactly 1
    assert rows[1]["approx_kl"] > 0  # the second minibatch sees the policy the first one moved
    assert max(row["clip_frac"] for row in rows) > 0  # and the clip acts


def test_dropout_is_off_so_the_first_ratio_is_exactly_one(tmp_path):
    model = tiny_lm("gpt2")
    model.config.resid_pdrop = model.config.embd_pdrop = model.config.attn_pdrop = 0.5
    model = type(model)(model.config)  # rebuilt with dropout 0.5 everywhere
    trainer, _ = _train(tmp_path, "gpt2", model=model, max_steps=1)
    assert _logged(trainer)[0]["approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert all(m.p == 0 for m in trainer.model.modules() if isinstance(m, torch.nn.Dropout))


def _samples(old, ref, labels, terminated):
    return {"old_logprobs": torch.tensor(old), "policy_logprobs": torch.tensor(old), "ref_logprobs": torch.tensor(ref),
            "labels": torch.tensor(labels), "terminated": torch.tensor(terminated)}


def test_advantages_known_answers(tmp_path):
    trainer = _trainer(tmp_path, kl_coef=0.5, whiten_advantages=False, gamma=1.0, missing_eos_penalty=2.0)
    # two samples: prompt at position 0, actions at 1..2 (row 0) and 1..1 (row 1, then padding)
    s = _samples([[0.0, -1.0, -2.0], [0.0, -1.0, 0.0]], [[0.0, -1.5, -1.0], [0.0, -1.0, 0.0]],
                 [[-100, 5, 6], [-100, 5, -100]], [True, False])
    adv, stats = trainer.advantages(torch.tensor([1.0, 3.0]), s)
    # rewards R: row 0 KL terms -0.5·(0.5, -1.0) = (-0.25, 0.5), r_disc 1 at the last token -> returns (1.25, 1.5);
    # row 1: r_disc 3, no EOS: -2, KL 0 -> return 1.0; the batch baseline is the mean over actions 3.75/3
    baseline = (1.25 + 1.5 + 1.0) / 3
    assert adv[0, 1:].tolist() == pytest.approx([1.25 - baseline, 1.5 - baseline])
    assert adv[1, 1].item() == pytest.approx(1.0 - baseline)
    assert adv[0, 0] == 0 and adv[1, 2] == 0
    assert stats["kl"] == pytest.approx((0.5 - 1.0 + 0.0) / 2)  # k1 summed per completion, mean over samples
    assert stats["reward"] == pytest.approx(2.0)


def test_per_prompt_baseline_is_the_other_samples_mean(tmp_path):
    trainer = _trainer(tmp_path, kl_coef=0.0, whiten_advantages=False, samples_per_prompt=2, baseline="per_prompt")
    s = _samples([[0.0, -1.0]] * 4, [[0.0, -1.0]] * 4, [[-100, 5]] * 4, [True] * 4)
    adv, _ = trainer.advantages(torch.tensor([1.0, 3.0, 10.0, 20.0]), s)
    assert adv[:, 1].tolist() == pytest.approx([1 - 3, 3 - 1, 10 - 20, 20 - 10])


def test_reinforce_variant_trains(tmp_path):
    trainer, before = _train(tmp_path, policy_update="reinforce", mle_weight=0.0)
    assert _unmoved(trainer, before) == []
    assert all("clip_frac" not in row for row in _logged(trainer))


def test_gradient_accumulation_samples_per_micro_batch(tmp_path, monkeypatch):
    calls = []
    original = GAILTrainer.rollout
    monkeypatch.setattr(GAILTrainer, "rollout", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    _train(tmp_path, max_steps=2, per_device_train_batch_size=4, gradient_accumulation_steps=2, ppo_epochs=1,
           ppo_minibatches=1)
    assert len(calls) == 4


# ----------------------------------------------------------------------------- warm start


def test_sft_phase_then_its_end_is_the_reference_and_the_discriminator_start(tmp_path, monkeypatch):
    calls, snapshot = [], {}
    original = GAILTrainer.rollout
    monkeypatch.setattr(GAILTrainer, "rollout", lambda self, *a, **k: calls.append(self.state.global_step)
                        or original(self, *a, **k))

    class Snap(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            if state.global_step == 3:
                snapshot.update({n: p.detach().clone() for n, p in model.named_parameters()})

    trainer = _trainer(tmp_path, sft_steps=3, max_steps=5, ppo_epochs=1, ppo_minibatches=1, eval_disc=False)
    trainer.add_callback(Snap())
    trainer.train()
    assert calls == [3, 4]  # no sampling during the SFT phase
    rows = trainer.state.log_history
    assert all("pg_loss" not in r for r in rows[:3] if "loss" in r) and "pg_loss" in rows[3]
    ref = dict(trainer.ref_model.named_parameters())
    assert all(torch.equal(ref[n], p) for n, p in snapshot.items())
    assert _logged(trainer)[0]["kl"] == pytest.approx(0.0, abs=1e-4)


def test_adversarial_learning_rate_scales_the_schedule_after_the_sft_phase(tmp_path):
    trainer, _ = _train(tmp_path, sft_steps=2, max_steps=4, learning_rate=1e-2, adversarial_learning_rate=1e-3,
                        lr_scheduler_type="constant", eval_disc=False)
    lrs = [r["learning_rate"] for r in trainer.state.log_history if "learning_rate" in r]
    assert lrs == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3])


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


def test_peft_with_an_sft_phase_is_refused(tmp_path):
    from peft import LoraConfig

    with pytest.raises(ValueError, match="sft_steps"):
        GAILTrainer(model=tiny_lm("llama"), args=_args(tmp_path, sft_steps=2), train_dataset=demos(),
                    processing_class=tokenizer(), peft_config=LoraConfig(r=4, target_modules=["q_proj"]))


# ----------------------------------------------------------------------------- saving, resuming, evaluating


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
def test_other_architectures_train(arch, tmp_path):
    trainer, before = _train(tmp_path, arch, max_steps=2)
    assert _unmoved(trainer, before) == []
    assert type(trainer.discriminator.net).__name__.lower().startswith(arch)


@pytest.mark.parametrize("param", ["policy_ratio", "classifier"])
def test_saved_discriminator_reloads_and_scores_texts_alike(param, tmp_path):
    trainer, _ = _train(tmp_path / "run", max_steps=2, disc_param=param)
    trainer.save_model()
    reloaded = Discriminator.load(str(tmp_path / "run" / "discriminator"))
    batch = trainer._disc_inputs(trainer.rollout(trainer.model, _demo_batch(trainer), seed=0))
    trainer.discriminator.eval()
    with torch.no_grad():
        expected = trainer.discriminator.reward(trainer.discriminator.logits(batch), batch)
        got = reloaded.to(expected.device).eval().reward(reloaded.logits(batch), batch)
    assert torch.allclose(got, expected, atol=1e-5)


def test_a_saved_classifier_can_start_another_run(tmp_path):
    trainer, _ = _train(tmp_path / "run", max_steps=2, disc_param="classifier")
    trainer.save_model()
    again = _trainer(tmp_path / "again", disc_param="classifier",
                     disc_model_name_or_path=str(tmp_path / "run" / "discriminator"))
    trained = dict(trainer.discriminator.net.named_parameters())
    for n, p in again.discriminator.net.named_parameters():
        assert torch.equal(p.cpu(), trained[n].cpu()), n


@pytest.mark.parametrize("sft_steps", [0, 2])
def test_resume_is_exact(sft_steps, tmp_path):
    """Four steps in one go, or two, a checkpoint, and two more: the same policy and discriminator, bit for bit
    (the discriminator's AdamW state, the replay buffer, the demo stream and the pending PPO minibatches are all
    in the checkpoint; with an SFT phase the reference is too)."""
    # rollouts every 2 steps, a checkpoint at step 3: one PPO minibatch is pending when it is written
    kw = dict(sft_steps=sft_steps, ppo_epochs=1, ppo_minibatches=2, eval_disc=False, lr_scheduler_type="constant")
    straight = _trainer(tmp_path / "straight", max_steps=4, **kw)
    straight.train()
    first = _trainer(tmp_path / "resumed", max_steps=3, save_strategy="steps", save_steps=3, **kw)
    first.train()
    resumed = _trainer(tmp_path / "resumed", max_steps=4, **kw)
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-3"))
    for a, b in [(straight.model, resumed.model), (straight.discriminator, resumed.discriminator)]:
        pb = dict(b.named_parameters())
        for n, p in a.named_parameters():
            assert torch.equal(p, pb[n]), n
    if sft_steps:
        pb = dict(resumed.ref_model.named_parameters())
        assert all(torch.equal(p, pb[n]) for n, p in straight.ref_model.named_parameters())


def test_evaluate_reports_heldout_discriminator_accuracy(tmp_path):
    trainer = _trainer(tmp_path)
    metrics = trainer.evaluate()
    assert metrics["eval_nll"] == pytest.approx(metrics["eval_loss"])
    assert 0.0 <= metrics["eval_disc_bal_acc"] <= 1.0 and math.isfinite(metrics["eval_disc_loss"])


def test_evaluate_without_eval_disc_samples_nothing(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, eval_disc=False)
    monkeypatch.setattr(GAILTrainer, "rollout", lambda *a, **k: pytest.fail("evaluation sampled"))
    metrics = trainer.evaluate()
    assert metrics["eval_nll"] == pytest.approx(metrics["eval_loss"]) and "eval_disc_bal_acc" not in metrics


@pytest.mark.parametrize(
    "field, value",
    [("disc_loss", "wgan"), ("disc_param", "mlp"), ("reward_kind", "d"), ("policy_update", "a2c"),
     ("disc_level", "word"), ("gamma", 1.5), ("clip_range", 0.0), ("ppo_epochs", 0), ("ppo_minibatches", 0),
     ("kl_coef", -0.1), ("kl_estimator", "k2"), ("mle_weight", -1.0), ("disc_steps", 0), ("disc_batch_size", 0),
     ("disc_replay_size", 0), ("disc_learning_rate", 0.0), ("disc_label_smoothing", 0.5),
     ("disc_grad_penalty", -1.0), ("max_new_tokens", 0), ("temperature", 0.0), ("top_p", 1.5),
     ("margin_slack_weight", 0.0), ("margin_l2_weight", -1.0), ("sft_steps", -1), ("samples_per_prompt", 0),
     ("baseline", "critic"), ("missing_eos_penalty", -1.0), ("adversarial_learning_rate", 1e-3)],
)
def test_config_refuses_bad_values_by_name(field, value, tmp_path):
    with pytest.raises(ValueError, match=field):
        GAILConfig(output_dir=str(tmp_path), **{field: value})


def test_per_prompt_baseline_needs_several_samples_per_prompt(tmp_path):
    with pytest.raises(ValueError, match="samples_per_prompt"):
        GAILConfig(output_dir=str(tmp_path), baseline="per_prompt")


# ----------------------------------------------------------------------------- the embedded default


@pytest.mark.slow
def test_gail_alone_from_the_sft_warm_start_on_the_markov_expert(tmp_path):
    """recipes/quickstart_gail.yaml with mle_weight = 0: after its SFT phase only the discriminator's reward
    (and the KL penalty) move the policy. Every 25 steps the discriminator is scored on 200 held-out demos
    against as many fresh samples (balanced accuracy ≥ 0.6 throughout: it keeps telling them apart), and
    the expert's log-likelihood per token of the policy's samples must not fall below its value at the
    end of the SFT phase, while the KL to that warm start stays bounded."""
    import yaml

    from llm_irl.batching import pad_batch
    from llm_irl.builtin import builtin_dataset
    from llm_irl.data import encode_prompt_completion
    from llm_irl.rollout import completion_text

    with open("recipes/quickstart_gail.yaml") as f:
        recipe = yaml.safe_load(f)
    script_keys = {"trainer", "model_name_or_path", "dataset", "eval_dataset", "output_dir"}
    args = GAILConfig(output_dir=str(tmp_path), disable_tqdm=True, report_to="none", **{
        **{k: v for k, v in recipe.items() if k not in script_keys}, "mle_weight": 0.0, "adversarial_learning_rate": 3e-4,
        "kl_coef": 0.1,
        "logging_steps": 25})
    test = builtin_dataset("builtin:markov", "test")
    expert, rows = default_expert(), []

    class Probe(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if state.global_step < args.sft_steps or (state.global_step - args.sft_steps) % 25:
                return
            tok = trainer.processing_class
            demos_ = {k: v.to(a.device) for k, v in pad_batch([encode_prompt_completion(
                tok, r["prompt"], r["completion"], max_length=args.max_length) for r in test], tok.pad_token_id).items()}
            samples = trainer.rollout(trainer.model, demos_, seed=11)
            texts = [completion_text(tok, ids[lab != -100].tolist(), t) for ids, lab, t in
                     zip(samples["input_ids"].cpu(), samples["labels"].cpu(), samples["terminated"].tolist())]
            disc = trainer.discriminator_stats(demos_, samples) if state.global_step > args.sft_steps else {}
            rows.append({"step": state.global_step, "disc_bal_acc": disc.get("disc_bal_acc"),
                         "expert_ll": expert.mean_logprob_per_token([r["prompt"] for r in test], texts),
                         "kl": state.log_history[-1].get("kl") if state.log_history else None})

    trainer = GAILTrainer(model=recipe["model_name_or_path"], args=args, train_dataset=builtin_dataset(recipe["dataset"]),
                          callbacks=[Probe()])
    trainer.train()
    for row in rows:
        print(row)
    start, adversarial = rows[0], rows[1:]
    assert len(adversarial) >= 5
    assert all(r["disc_bal_acc"] >= 0.6 for r in adversarial), rows
    assert adversarial[-1]["expert_ll"] >= start["expert_ll"], rows
    kls = [h["kl"] for h in trainer.state.log_history if "kl" in h]
    assert kls and all(math.isfinite(k) and -0.1 < k < 5.0 for k in kls), kls  # nats per completion


# ---------------------------------------------------------------- sampling away from the policy
# (temperature ≠ 1, top_p < 1): PPO's ratio compares the same distribution at both ends, and the
# discriminator and the KL penalty still see log π itself


@pytest.mark.parametrize(("temperature", "top_p"), [(0.7, 1.0), (1.0, 0.8), (1.4, 0.9)])
def test_first_ppo_ratio_is_exactly_one_at_any_temperature_and_nucleus(temperature, top_p, tmp_path):
    """Fresh samples, dropout off: new and old log-probs are of one distribution, so ρ = 1 on every
    token (approx_kl 0, nothing clipped), however far the sampling temperature is from 1."""
    trainer = _trainer(tmp_path, temperature=temperature, top_p=top_p, max_steps=1, max_new_tokens=8)
    trainer.train()
    first = next(h for h in trainer.state.log_history if "pg_loss" in h)
    assert first["approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert first["clip_frac"] == 0.0
    # the reference is the policy itself: KL(π ‖ π_ref) of the first samples is 0 whatever they were drawn at
    assert first["kl"] == pytest.approx(0.0, abs=1e-5)
    # policy_ratio starts at q_φ = π: ℓ = 0 on the fresh samples, so the held-out loss is log 2
    assert first["disc_heldout_loss"] == pytest.approx(math.log(2), abs=1e-5)


def test_rollout_keeps_log_pi_apart_from_the_sampling_log_probs(tmp_path):
    trainer = _trainer(tmp_path, temperature=0.6, max_steps=1, max_new_tokens=8)
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    samples = trainer.rollout(trainer.model, batch, seed=0)
    mask = samples["labels"] != -100
    assert torch.allclose(samples["policy_logprobs"][mask], trainer._logprobs(trainer.model, samples)[mask])
    # at T = 0.6 a sampled token is likelier under the sharpened distribution than under π, on average
    gap = (samples["old_logprobs"] - samples["policy_logprobs"])[mask]
    assert gap.mean() > 0.01
    at_one = _trainer(tmp_path / "t1", max_steps=1, max_new_tokens=8).rollout(trainer.model, batch, seed=0)
    assert at_one["policy_logprobs"] is at_one["old_logprobs"]  # the sampled distribution is π itself
