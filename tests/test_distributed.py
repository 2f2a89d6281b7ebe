"""Two CPU processes (gloo DDP) end where one process with the same global batch ends, and log the
mean of both processes' loss terms."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from safetensors.torch import load_file

TESTS = os.path.dirname(os.path.abspath(__file__))

# Variable-length demonstrations on purpose: a per-process token-mean would weight tokens unequally
# across processes; the trainers normalise by the global action-token count instead.
SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    from tiny_models import demos, tiny_lm, tokenizer
    from llm_irl import IQConfig, IQTrainer
    out, batch, accum = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    value_param = sys.argv[4] if len(sys.argv) > 4 else "head"
    args = IQConfig(output_dir=out, max_steps=3, per_device_train_batch_size=batch, gradient_accumulation_steps=accum,
                    value_param=value_param,
                    learning_rate=1e-3, save_strategy="no", max_length=24, disable_tqdm=True, ddp_backend="gloo" if "WORLD_SIZE" in os.environ else None,
                    use_cpu=True, dataloader_drop_last=True, seed=0)
    trainer = IQTrainer(model=tiny_lm("llama"), args=args, train_dataset=demos(96), processing_class=tokenizer())
    trainer.train()
    trainer.save_model()
""").format(tests=TESTS)


def _run(cmd, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    _run([sys.executable, str(script), one, "8", "1"], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
          str(script), two, "4", "1"], tmp_path)
    a, b = load_file(os.path.join(one, "model.safetensors")), load_file(os.path.join(two, "model.safetensors"))
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-5, f"largest weight difference {worst}"


# With the value head one weight of 20k differs by ~2e-5 after 3 steps (float rounding of a near-zero
# gradient that Adam normalises up); a wrong normalisation moves thousands by ~lr = 1e-3.
@pytest.mark.parametrize(("value_param", "tolerance"), [("logits", 1e-5), ("head", 1e-4)])
def test_gradient_accumulation_equals_a_big_batch(tmp_path, value_param, tolerance):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    big, accum = str(tmp_path / "big"), str(tmp_path / "accum")
    _run([sys.executable, str(script), big, "8", "1", value_param], tmp_path)
    _run([sys.executable, str(script), accum, "2", "4", value_param], tmp_path)
    a, b = load_file(os.path.join(big, "model.safetensors")), load_file(os.path.join(accum, "model.safetensors"))
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < tolerance, f"largest weight difference {worst}"
    assert sum(int(((a[k] - b[k]).abs() > 1e-6).sum()) for k in a) < 10


# One step on two processes, each with its own 4 of the 8 demonstrations. Each process saves the
# batch it trained on and what it logged, so the test can recompute each one's loss terms alone.
METRICS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {tests!r})
    from safetensors.torch import save_file
    from tiny_models import demos, tiny_lm, tokenizer
    from llm_irl import IQConfig, IQTrainer
    out, rank = sys.argv[1], int(os.environ["RANK"])

    class Recording(IQTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            save_file({{k: v.contiguous() for k, v in inputs.items()}}, os.path.join(out, f"batch{{rank}}.safetensors"))
            return super().compute_loss(model, inputs, *args, **kwargs)

    args = IQConfig(output_dir=out, max_steps=1, logging_steps=1, per_device_train_batch_size=4, learning_rate=1e-3,
                    save_strategy="no", max_length=24, disable_tqdm=True, ddp_backend="gloo", use_cpu=True,
                    dataloader_drop_last=True, seed=0, report_to=[])
    trainer = Recording(model=tiny_lm("llama"), args=args, train_dataset=demos(8), processing_class=tokenizer())
    trainer.train()
    with open(os.path.join(out, f"logged{{rank}}.json"), "w") as f:
        json.dump(trainer.state.log_history[0], f)
""").format(tests=TESTS)


def test_logged_loss_terms_are_the_mean_over_processes(tmp_path):
    from tiny_models import tiny_lm, tokenizer

    from llm_irl import IQConfig, IQTrainer

    script = tmp_path / "train.py"
    script.write_text(METRICS_SCRIPT)
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29518",
          str(script), str(tmp_path)], tmp_path)
    logged = [json.load(open(tmp_path / f"logged{r}.json")) for r in (0, 1)]
    # each process's batch alone, through the same loss, in this single process
    alone = IQTrainer(model=tiny_lm("llama"), processing_class=tokenizer(),
                      args=IQConfig(output_dir=str(tmp_path / "alone"), max_length=24, use_cpu=True, report_to=[]))
    per_rank = [alone.demo_loss(alone.model, load_file(str(tmp_path / f"batch{r}.safetensors")))[1] for r in (0, 1)]
    for name in ("nll", "td", "reward"):
        own = [float(stats[name]) for stats in per_rank]
        assert abs(own[0] - own[1]) > 1e-3 * abs(own[0]), f"{name}: both processes saw the same numbers"
        for r in (0, 1):  # every process logs the mean over both, not its own
            assert logged[r][name] == pytest.approx(sum(own) / 2, rel=1e-5), (name, r, own)
