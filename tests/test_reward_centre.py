"""`terminal_td: centred` in the trainer: every micro-batch of a step is centred on the previous step's mean
implied reward (0 before the first), the centre is checkpointed, and a model trained with a state head
gives its reward back after saving and loading."""

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
