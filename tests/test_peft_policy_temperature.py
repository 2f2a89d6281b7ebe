"""An adapters-only (LoRA) save keeps the policy temperature α it was trained with.

`save_pretrained` of a PEFT model writes adapters only; the config that records α and the generation
config whose temperature samples π are the base model's, so loading the adapters onto their base used
to give α = 1: the library then sampled and scored softmax(logits) instead of softmax(logits/α).
"""

import os

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tiny_models import demos, tiny_lm, tokenizer
from transformers import AutoModelForCausalLM, GenerationConfig

from llm_irl import IQConfig, IQTrainer, SFTConfig, SFTTrainer
from llm_irl.generation import generate_samples
from llm_irl.modeling import load_model, load_tokenizer, policy_temperature, record_policy_temperature, \
    restore_policy_temperature

ALPHA = 0.5
PROMPTS = ["topic1 kalo", "topic2", "topic3 miru"]


def _base_dir(tmp_path, alpha: float = 1.0) -> str:
    path = str(tmp_path / "base")
    model = tiny_lm("llama")
    record_policy_temperature(model, alpha)
    model.save_pretrained(path)
    tokenizer().save_pretrained(path)
    return path


def _lora_run(trainer_cls, config_cls, base: str, out: str, **overrides):
    args = config_cls(output_dir=out, max_steps=2, per_device_train_batch_size=4, learning_rate=1e-2,
                      save_strategy="no", max_length=24, disable_tqdm=True, report_to=[], **overrides)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = trainer_cls(model=base, args=args, train_dataset=demos(8), peft_config=lora)
    trainer.train()
    trainer.save_model()
    assert os.path.exists(os.path.join(out, "adapter_model.safetensors"))
    assert not os.path.exists(os.path.join(out, "config.json"))  # adapters only: transformers loads the base
    return trainer


def _samples(model, tok):
    samples = generate_samples(model.eval(), tok, PROMPTS, k=4, temperatures=[1.0], max_new_tokens=8, seed=0,
                               progress=False)
    return [s.completion_ids for s in samples]


def test_iq_lora_save_reloads_with_its_alpha_through_load_model(tmp_path):
    """evaluate and generate load through `load_model`: the reloaded adapters sample what the trained model did."""
    base, out = _base_dir(tmp_path), str(tmp_path / "iq")
    trainer = _lora_run(IQTrainer, IQConfig, base, out, alpha=ALPHA)
    assert policy_temperature(trainer.model) == ALPHA
    reloaded = load_model(out)
    assert policy_temperature(reloaded) == ALPHA
    assert reloaded.generation_config.temperature == ALPHA and reloaded.generation_config.do_sample
    ids = torch.tensor([[5, 6, 7, 8]])
    trainer.model.eval()
    assert torch.allclose(trainer.model(input_ids=ids).logits, reloaded(input_ids=ids).logits, atol=1e-6)
    assert _samples(reloaded, load_tokenizer(out)) == _samples(trainer.model, trainer.processing_class)
    # readers of the directory's generation config (plain HF samplers) see the policy's temperature too
    assert GenerationConfig.from_pretrained(out).temperature == ALPHA


def test_iq_lora_save_reloads_with_its_alpha_through_peft(tmp_path):
    """Plain peft loads the base's config (α = 1); restore_policy_temperature applies the saved α."""
    base, out = _base_dir(tmp_path), str(tmp_path / "iq")
    trainer = _lora_run(IQTrainer, IQConfig, base, out, alpha=ALPHA)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), out)
    assert policy_temperature(model) == 1.0  # what peft alone gives: the base's
    restore_policy_temperature(model, out)
    assert policy_temperature(model) == ALPHA and model.generation_config.temperature == ALPHA
    assert _samples(model, load_tokenizer(out)) == _samples(trainer.model, trainer.processing_class)


def test_sft_lora_on_an_alpha_base_records_alpha_one(tmp_path):
    """SFT fits softmax(logits): its adapters say α = 1 even though the base directory records 0.5."""
    base, out = _base_dir(tmp_path, alpha=ALPHA), str(tmp_path / "sft")
    _lora_run(SFTTrainer, SFTConfig, base, out)
    assert policy_temperature(AutoModelForCausalLM.from_pretrained(base)) == ALPHA
    reloaded = load_model(out)
    assert policy_temperature(reloaded) == 1.0
    assert reloaded.generation_config.temperature == pytest.approx(1.0)


def test_adapters_saved_elsewhere_keep_the_base_alpha(tmp_path):
    """A directory of adapters without llm_irl's record (saved by peft itself) leaves the base's α as it is."""
    base, out = _base_dir(tmp_path, alpha=ALPHA), str(tmp_path / "plain")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora).save_pretrained(out)
    assert policy_temperature(load_model(out)) == ALPHA


def test_iq_lora_save_reloads_its_value_head_through_load_model(tmp_path):
    """The value head trains in full beside the adapters and saves among them; `load_model` attaches it again,
    so the reward read back (`llm_irl.rewards`) is the one the model was regularised on, not the logits' own;
    the absorbing state's learned value (`centred_absorbing`) comes back with it."""
    from llm_irl.rewards import implied_rewards
    from llm_irl.state_head import absorbing_value_of, value_param_of

    base, out = _base_dir(tmp_path), str(tmp_path / "iq")
    trainer = _lora_run(IQTrainer, IQConfig, base, out, value_param="head", terminal_td="centred_absorbing",
                        td_huber=0.0)  # the centres move by the mean reward at once (under κ, by ≤ κ a step)
    trained = trainer.model.base_model.model.state_head.modules_to_save["default"]
    reloaded = load_model(out)
    assert value_param_of(reloaded) == "head"
    v_a = (trainer.reward_centre.stop_value - trainer.reward_centre.value) / 0.99
    assert v_a != 0 and absorbing_value_of(reloaded) == pytest.approx(v_a)
    assert torch.equal(reloaded.state_head.weight, trained.weight) and torch.equal(reloaded.state_head.bias, trained.bias)
    assert trained.weight.abs().sum() > 0  # trained away from its zero start, so the comparison means something
    tok = load_tokenizer(out)
    prompts, completions = [[5, 6], [7]], [[8, 9, tok.eos_token_id], [10, 11]]
    trainer.model.eval()
    want = implied_rewards(trainer.model, tok, prompts, completions, gamma=0.99).rewards
    got = implied_rewards(reloaded.eval(), tok, prompts, completions, gamma=0.99).rewards
    assert all(w == pytest.approx(g, abs=1e-5) for ws, gs in zip(want, got) for w, g in zip(ws, gs))
