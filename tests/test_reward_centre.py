"""`terminal_td: centred` in the trainer: every micro-batch of a step is centred on the previous step's mean
implied reward (0 before the first), the centre is checkpointed, and a model trained with a state head
gives its reward back after saving and loading. `centred_absorbing` keeps a second centre for the stop
actions, and its saved model reads the stop reward back against the absorbing state's learned value."""

from __future__ import annotations


import pytest
import torch

from llm_irl import IQConfig, IQTrainer
from llm_irl.losses import value_head_mdp
from llm_irl.modeling import load_model
from llm_irl.rewards import implied_rewards
from llm_irl.soft_q import token_mdp
from tiny_models import demos, tiny_lm, tokenizer


def _trainer(tmp_path, **overrides):
    args = IQConfig(**{"output_dir": str(tmp_path), "max_steps": 4, "per_device_train_batch_size": 8,
                       "learning_rate": 1e-2, "logging_steps": 1, "save_strategy": "no", "max_length": 24,
                       "disable_tqdm": True, "terminal_td": "centred", "value_param": "head", "td_weight": 0.3,
                       "report_to": [], **overrides})
    return IQTrainer(model=tiny_lm("llama"), args=args, train_dataset=demos(), processing_class=tokenizer())


def test_each_step_is_centred_on_the_previous_steps_mean_reward(tmp_path):
    trainer = _trainer(tmp_path)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "reward_centre" in h]
    assert len(logs) == 4 and logs[0]["reward_centre"] == 0.0
    for before, now in zip(logs, logs[1:]):  # offline, the χ² term's weighted mean is the logged `reward`
        assert now["reward_centre"] == pytest.approx(before["reward"], rel=1e-5)
    assert trainer.reward_centre.value == pytest.approx(logs[-1]["reward"], rel=1e-5)


def test_centred_absorbing_centres_the_stop_actions_on_their_own_previous_mean(tmp_path):
    """Each step's two centres are the previous step's mean reward of the other actions and of the stop actions (each
    reward clipped to within κ of the centre in use: one step toward the Huber location), read back from the
    reported sums: the logged `reward` mixes both groups, so it is neither."""
    seen = []
    trainer = _trainer(tmp_path, terminal_td="centred_absorbing", max_steps=12)
    observe = trainer.reward_centre.observe
    trainer.reward_centre.observe = lambda stats, training: (seen.append({k: float(v) for k, v in stats.items()
                                                                           if k.startswith("chi2_")}),
                                                              observe(stats, training=training))[1]
    centres = []
    end_step = trainer.reward_centre.end_step
    trainer.reward_centre.end_step = lambda reduce: (centres.append((trainer.reward_centre.value,
                                                                     trainer.reward_centre.stop_value)),
                                                      end_step(reduce))[1]
    trainer.train()
    assert centres[0] == (0.0, 0.0) and len(seen) == 12
    for step, sums in enumerate(seen[:-1]):
        c, c_stop = centres[step + 1]
        assert c == pytest.approx(sums["chi2_reward_sum"] / sums["chi2_weight_sum"])
        assert c_stop == pytest.approx(sums["chi2_stop_reward_sum"] / sums["chi2_stop_weight_sum"])
        # under td_huber κ (0.5 by default) the sums are of rewards clipped to the centre ± κ: a step moves it ≤ κ
        assert abs(c - centres[step][0]) <= 0.5 + 1e-9 and abs(c_stop - centres[step][1]) <= 0.5 + 1e-9
    assert any(abs(c - c_stop) > 1e-3 for c, c_stop in centres)  # two centres, not one
    logs = [h for h in trainer.state.log_history if "absorbing_value" in h]
    assert len(logs) == 12 and logs[1]["absorbing_value"] == pytest.approx((centres[1][1] - centres[1][0]) / 0.99,
                                                                          rel=1e-5)


def test_resuming_restores_the_centre_and_ends_on_the_uninterrupted_weights(tmp_path):
    whole = _trainer(tmp_path / "whole")
    whole.train()
    first = _trainer(tmp_path / "parts", save_strategy="steps", save_steps=2)
    first.train()
    checkpoint = tmp_path / "parts" / "checkpoint-2"
    assert (checkpoint / "reward_centre.json").is_file()
    resumed = _trainer(tmp_path / "parts")
    resumed.train(resume_from_checkpoint=str(checkpoint))
    for name, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    # the control: a resume that forgets the centre (0 again) ends elsewhere
    forgetful = _trainer(tmp_path / "forgetful")
    forgetful.reward_centre.load = lambda path: None
    forgetful.train(resume_from_checkpoint=str(checkpoint))
    assert any(not torch.equal(forgetful.model.state_dict()[n], v) for n, v in whole.model.state_dict().items())


def test_a_saved_value_head_model_loads_with_its_head_and_reads_its_reward(tmp_path):
    trainer = _trainer(tmp_path)
    trainer.train()
    trainer.save_model()
    loaded = load_model(str(tmp_path))
    assert torch.equal(loaded.state_head.weight, trainer.model.state_head.weight)
    tok = tokenizer()
    prompts = [tok("a b")["input_ids"], tok("c")["input_ids"]]
    completions = [tok("d e")["input_ids"] + [tok.eos_token_id], tok("f g h")["input_ids"]]
    got = implied_rewards(loaded, tok, prompts, completions, gamma=0.99)
    # by hand, for the first sample: r = α·log π + V_ψ(s) − γ·V_ψ(s'), V_ψ(s') = 0 after its EOS
    ids = torch.tensor([prompts[0] + completions[0]])
    labels = torch.tensor([[-100] * len(prompts[0]) + completions[0]])
    with torch.no_grad():
        out = loaded(input_ids=ids, output_hidden_states=True)
        mdp = token_mdp(out.logits, labels, eos_token_id=tok.eos_token_id)
        want = value_head_mdp(mdp, loaded.state_head(out.hidden_states[-1]).squeeze(-1)).reward(0.99)[mdp.mask]
        from_logits = mdp.reward(0.99)[mdp.mask]
    torch.testing.assert_close(torch.tensor(got.rewards[0]), want.float())
    assert not torch.allclose(torch.tensor(got.rewards[0]), from_logits.float())


def test_a_saved_centred_absorbing_model_reads_its_stop_reward_against_the_absorbing_value(tmp_path):
    """The stop reward the objective regularised is Q(s, EOS) − γ·v_A; the saved config records v_A =
    (c_stop − c)/γ and `implied_rewards` reads it, moving the stop reward alone."""
    trainer = _trainer(tmp_path, terminal_td="centred_absorbing", max_steps=12)
    trainer.train()
    trainer.save_model()
    centre = trainer.reward_centre
    v_a = (centre.stop_value - centre.value) / 0.99
    assert abs(v_a) > 1e-3
    loaded = load_model(str(tmp_path))
    assert loaded.config.llm_irl_absorbing_value == pytest.approx(v_a)
    tok = tokenizer()
    prompts, completions = [tok("a b")["input_ids"]], [tok("d e")["input_ids"] + [tok.eos_token_id]]
    got = implied_rewards(loaded, tok, prompts, completions, gamma=0.99).rewards[0]
    loaded.config.llm_irl_absorbing_value = None  # read as IQ-Learn's V = 0 after EOS
    plain = implied_rewards(loaded, tok, prompts, completions, gamma=0.99).rewards[0]
    assert got[:-1] == pytest.approx(plain[:-1])
    assert got[-1] == pytest.approx(plain[-1] - 0.99 * v_a, abs=1e-5)
