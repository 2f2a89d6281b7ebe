"""The start-of-run line: threads set as asked, the loss path and parallelism said, FSDP never silently DDP."""

import json
import logging
from types import SimpleNamespace

import pytest
import torch
from tiny_models import demos, tiny_lm, tokenizer

from llm_irl import IQConfig, IQTrainer
from llm_irl.adversarial import GAILConfig, GAILTrainer
from llm_irl.errors import ConfigError
from llm_irl.run_setup import FILE, fsdp_requested, refuse_silent_ddp

RUN = dict(max_steps=1, per_device_train_batch_size=4, save_strategy="no", max_length=24, disable_tqdm=True,
           report_to="none")


@pytest.fixture
def threads_restored():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _setup_of(trainer_class, config_class, tmp_path, caplog, **overrides):
    args = config_class(output_dir=str(tmp_path), **{**RUN, **overrides})
    trainer = trainer_class(model=tiny_lm(), args=args, train_dataset=demos(8), processing_class=tokenizer())
    with caplog.at_level(logging.INFO, logger="llm_irl"):
        trainer.train()
    with open(tmp_path / FILE) as f:
        return json.load(f), [r.getMessage() for r in caplog.records if r.name == "llm_irl"]


def test_torch_threads_are_set_and_the_run_says_threads_loss_path_and_parallelism(tmp_path, caplog,
                                                                                 threads_restored):
    setup, lines = _setup_of(IQTrainer, IQConfig, tmp_path, caplog, torch_threads=1)
    assert torch.get_num_threads() == 1
    assert setup["torch_threads"] == 1
    assert setup["parallelism"] == "single process"
    assert setup["loss_path"].startswith("chunked LM head")
    assert any(line.startswith("llm-irl run: 1 torch thread(s)") and "chunked LM head" in line for line in lines)


def test_full_logits_are_named_with_their_reason(tmp_path, caplog, threads_restored):
    setup, _ = _setup_of(IQTrainer, IQConfig, tmp_path / "none", caplog, torch_threads=1, loss_chunk_size=None)
    assert setup["loss_path"] == "full logits (loss_chunk_size None)"
    setup, _ = _setup_of(GAILTrainer, GAILConfig, tmp_path / "gail", caplog, torch_threads=1, max_new_tokens=4)
    assert setup["loss_path"].startswith("full logits (this trainer")


def test_bad_thread_count_is_refused_by_name():
    with pytest.raises(ValueError, match="torch_threads must be >= 1"):
        IQConfig(output_dir="unused", torch_threads=0)


def test_fsdp_asked_for_but_not_set_up_is_refused_in_one_line():
    args = SimpleNamespace(fsdp=["full_shard", "auto_wrap"])
    trainer = SimpleNamespace(args=args, is_fsdp_enabled=False, is_deepspeed_enabled=False,
                              accelerator=SimpleNamespace(num_processes=2))
    with pytest.raises(ConfigError, match="FSDP was requested .* would train as DDP, 2 processes"):
        refuse_silent_ddp(trainer)
    refuse_silent_ddp(SimpleNamespace(**{**vars(trainer), "is_fsdp_enabled": True}))  # really sharded: fine
    assert fsdp_requested(SimpleNamespace(fsdp=[]), env={"ACCELERATE_USE_FSDP": "true"})
    assert not fsdp_requested(SimpleNamespace(fsdp=[]), env={})
