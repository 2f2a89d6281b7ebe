"""LoRA: only adapters train, adapters save and reload, extra heads train in full."""

import os

import pytest
import torch
from peft import LoraConfig, PeftModel
from tiny_models import demos, tiny_lm, tokenizer

from llm_irl import IQConfig, IQTrainer, SFTConfig, SFTTrainer


def _lora_train(trainer_cls, config_cls, tmp_path, **overrides):
    args = config_cls(output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=8, learning_rate=1e-2,
                      logging_steps=1, save_strategy="no", max_length=24, disable_tqdm=True, **overrides)
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = trainer_cls(model=tiny_lm("llama"), args=args, train_dataset=demos(), processing_class=tokenizer(),
                          peft_config=peft_config)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    return trainer, before


@pytest.mark.parametrize("kind", ["sft", "iq"])
def test_lora_moves_only_adapters(kind, tmp_path):
    trainer_cls, config_cls = (SFTTrainer, SFTConfig) if kind == "sft" else (IQTrainer, IQConfig)
    trainer, before = _lora_train(trainer_cls, config_cls, tmp_path)
    moved = {n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    adapters = {n for n in before if "lora_" in n}
    # IQ's default value head trains in full beside the adapters (peft's modules_to_save copy of it)
    head = {n for n in before if "state_head.modules_to_save" in n} if kind == "iq" else set()
    assert adapters and moved == adapters | head


def test_lora_adapters_save_and_reload(tmp_path):
    trainer, _ = _lora_train(IQTrainer, IQConfig, tmp_path)
    trainer.save_model()
    assert os.path.exists(tmp_path / "adapter_model.safetensors")
    reloaded = PeftModel.from_pretrained(tiny_lm("llama"), str(tmp_path))
    ids = torch.tensor([[5, 6, 7, 8]])
    trainer.model.eval()
    assert torch.allclose(trainer.model(input_ids=ids).logits, reloaded(input_ids=ids).logits, atol=1e-6)


def test_value_head_trains_in_full_under_lora(tmp_path):
    trainer, before = _lora_train(IQTrainer, IQConfig, tmp_path, value_param="head")
    head = [n for n in before if "state_head" in n and "modules_to_save" in n]
    assert head and all(not torch.equal(dict(trainer.model.named_parameters())[n], before[n]) for n in head)
