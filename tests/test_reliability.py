"""No lost work: exact resume after SIGKILL, SIGTERM leaves a checkpoint, NaN losses stop or skip."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from transformers import TrainerCallback
from safetensors.torch import load_file
from tiny_models import demos, tiny_lm, tokenizer

from llm_irl import IQConfig, IQTrainer
from llm_irl.quickstart import recipe
from llm_irl.errors import NonFiniteLossError
from llm_irl.reliability import COMPLETE_MARKER, last_complete_checkpoint

CLI = os.path.join(os.path.dirname(sys.executable), "llm-irl")

# Runs the CLI in a child process that a callback kills with `signum` right after step `step`
# (after its checkpoint, when one is due): a real signal, delivered at a known point.
KILLER = textwrap.dedent("""
    import os, signal, sys
    from transformers import TrainerCallback
    from llm_irl.trainers.base import DemoTrainer
    step, signum = int(sys.argv[1]), int(sys.argv[2])
    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == step: os.kill(os.getpid(), signum)
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == step and signum != signal.SIGKILL: os.kill(os.getpid(), signum)
    init = DemoTrainer.__init__
    def patched(self, *a, **k):
        init(self, *a, **k)
        self.add_callback(Kill())
    DemoTrainer.__init__ = patched
    from llm_irl.cli import main
    sys.exit(main(sys.argv[3:]))
""")


def _recipe(tmp_path, name, **changes):
    r = {**recipe("iq", str(tmp_path / name)), "max_steps": 8, "save_strategy": "steps", "save_steps": 2,
         "per_device_train_batch_size": 8, "eval_dataset": None, "logging_steps": 1, **changes}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(r))
    return str(path), r["output_dir"]


def _run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)


def _weights(output_dir):
    return load_file(os.path.join(output_dir, "model.safetensors"))


@pytest.mark.parametrize("extra", [{}, {"policy_mix": 0.2, "max_new_tokens": 6}], ids=["offline", "online"])
def test_resume_after_sigkill_is_bit_identical(tmp_path, extra):
    straight, straight_dir = _recipe(tmp_path, "straight", **extra)
    assert _run([CLI, "train", straight]).returncode == 0

    killed, killed_dir = _recipe(tmp_path, "killed", **extra)
    proc = _run([sys.executable, "-c", KILLER, "4", str(int(signal.SIGKILL)), "train", killed])
    assert proc.returncode == -signal.SIGKILL
    assert last_complete_checkpoint(killed_dir).endswith("checkpoint-4")
    assert not os.path.exists(os.path.join(killed_dir, "model.safetensors"))

    resumed = _run([CLI, "train", killed, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = _weights(straight_dir), _weights(killed_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_saves_a_usable_checkpoint(tmp_path):
    path, out = _recipe(tmp_path, "term", max_steps=1000, save_strategy="no")
    proc = _run([sys.executable, "-c", KILLER, "3", str(int(signal.SIGTERM)), "train", path])
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    assert "stopped by signal 15" in proc.stderr and "--resume" in proc.stderr
    checkpoint = last_complete_checkpoint(out)
    assert checkpoint is not None and int(checkpoint.rsplit("-", 1)[1]) in (3, 4)
    resumed = _run([CLI, "train", path, "--resume", "--max_steps", "6"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert os.path.exists(os.path.join(out, "model.safetensors"))


def test_incomplete_checkpoint_is_never_latest(tmp_path):
    for step, complete in [(2, True), (4, False)]:
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if complete:
            (d / COMPLETE_MARKER).write_text("complete\n")
    assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-2")


class NaNAtStep(TrainerCallback):
    """Make the LM head output NaN during one training step, as a diverging run would."""

    def __init__(self, model, step: int):
        self.step, self.active = step, False
        model.get_output_embeddings().register_forward_hook(
            lambda module, args, out: out * float("nan") if self.active else out)

    def on_step_begin(self, args, state, control, **kwargs):
        self.active = state.global_step == self.step

    def on_step_end(self, args, state, control, **kwargs):
        self.active = False


def _nan_trainer(tmp_path, **kw):
    args = IQConfig(output_dir=str(tmp_path), max_steps=5, per_device_train_batch_size=8, learning_rate=1e-2,
                    logging_steps=1, save_strategy="steps", save_steps=1, max_length=24, disable_tqdm=True, **kw)
    model = tiny_lm("llama")
    return IQTrainer(model=model, args=args, train_dataset=demos(), processing_class=tokenizer(),
                     callbacks=[NaNAtStep(model, 2)])


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path):
    trainer = _nan_trainer(tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 2.*checkpoint-2"):
        trainer.train()
    weights = load_file(os.path.join(last_complete_checkpoint(str(tmp_path)), "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_nan_loss_skipped_on_request(tmp_path):
    trainer = _nan_trainer(tmp_path, nan_policy="skip")
    trainer.train()
    assert trainer.state.global_step == 5
    assert sum(h.get("skipped_steps", 0) for h in trainer.state.log_history) == 1
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
