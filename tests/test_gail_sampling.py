"""GAIL sampling away from the policy (temperature ≠ 1, top_p < 1): PPO's ratio compares the same
distribution at both ends, and the discriminator and the KL penalty still see log π itself."""

import math

import pytest
import torch
from tiny_models import demos, tiny_lm, tokenizer

from llm_irl.trainers.gail import GAILConfig, GAILTrainer


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _trainer(tmp_path, **overrides):
    kw = dict(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=8, learning_rate=1e-2,
              disc_learning_rate=1e-3, logging_steps=1, save_strategy="no", max_length=24, disable_tqdm=True,
              kl_coef=0.1, report_to="none", max_new_tokens=8)
    kw.update(overrides)
    return GAILTrainer(model=tiny_lm("llama"), args=GAILConfig(**kw), train_dataset=demos(),
                       processing_class=tokenizer())


@pytest.mark.parametrize(("temperature", "top_p"), [(0.7, 1.0), (1.0, 0.8), (1.4, 0.9)])
def test_first_ppo_ratio_is_exactly_one_at_any_temperature_and_nucleus(temperature, top_p, tmp_path):
    """Fresh samples, dropout off: new and old log-probs are of one distribution, so ρ = 1 on every
    token (approx_kl 0, nothing clipped), however far the sampling temperature is from 1."""
    trainer = _trainer(tmp_path, temperature=temperature, top_p=top_p)
    trainer.train()
    first = next(h for h in trainer.state.log_history if "pg_loss" in h)
    assert first["approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert first["clip_frac"] == 0.0
    # the reference is the policy itself: KL(π ‖ π_ref) of the first samples is 0 whatever they were drawn at
    assert first["kl"] == pytest.approx(0.0, abs=1e-5)
    # policy_ratio starts at q_φ = π: ℓ = 0 on the fresh samples, so the held-out loss is log 2
    assert first["disc_heldout_loss"] == pytest.approx(math.log(2), abs=1e-5)


def test_rollout_keeps_log_pi_apart_from_the_sampling_log_probs(tmp_path):
    trainer = _trainer(tmp_path, temperature=0.6)
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    samples = trainer.rollout(trainer.model, batch, seed=0)
    mask = samples["labels"] != -100
    assert torch.allclose(samples["policy_logprobs"][mask], trainer._logprobs(trainer.model, samples)[mask])
    # at T = 0.6 a sampled token is likelier under the sharpened distribution than under π, on average
    gap = (samples["old_logprobs"] - samples["policy_logprobs"])[mask]
    assert gap.mean() > 0.01
    at_one = _trainer(tmp_path / "t1").rollout(trainer.model, batch, seed=0)
    assert at_one["policy_logprobs"] is at_one["old_logprobs"]  # the sampled distribution is π itself
