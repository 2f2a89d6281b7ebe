"""IQ against SFT and against TRL's SFTTrainer: step time, throughput and peak memory, side by side.

run as: .venv/bin/python benchmarks/bench_vs_trl.py [--vocab 32000 --hidden 256 --layers 4 --seq 512 --batch 2]
        (needs the bench extra: .venv/bin/pip install -e '.[bench]', i.e. trl)

Three measurements in one run, on a Llama built from a config (no download) and random
prompt/completion rows (a quarter prompt, EOS-terminated completions):

  (a) IQ vs our SFT, one training step each (forward, loss, backward, AdamW) in a plain loop,
      with the full-logits losses (`losses.iq_loss`/`sft_loss`, `loss_chunk_size: null`) and the
      chunked ones (the trainers' default) (`chunked.chunked_iq_loss`/`chunked_sft_loss` on `lm_head_hidden`).
      Target: IQ/SFT step time <= 1.05 on each path (the paper: 196 ms vs 189 ms).
  (b) IQ tokens/s through a Trainer against TRL's `SFTTrainer`, same model, rows and
      TrainingArguments; time per step from a callback, warm-up steps dropped.
      Target: IQ tokens/s >= TRL SFT's.
  (c) Peak memory of the same two trainers, each in a fresh subprocess (peak RSS growth during
      `train()`, or `torch.cuda.max_memory_allocated` on CUDA), at `--memory-vocabs`; `iq_full`
      (IQ on the full logits, `loss_chunk_size: null`) is shown for reference.
      Target: IQ peak <= TRL SFT's at a 32k vocabulary and sequence 512.

Arms alternate (and swap order every round) so that load on a shared machine hits all alike;
the script prints medians. It runs torch on one thread unless told otherwise (`--threads`), see
the flag's help.
Note that TRL's fused LM head scores only completion positions with its Triton kernel on GPU,
but every position on CPU, so CPU ratios against TRL do not carry over to GPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, PrinterCallback, Trainer, TrainerCallback

from llm_irl.builtin import word_tokenizer
from llm_irl.batching import DemoCollator
from llm_irl.chunked import chunked_iq_loss, chunked_sft_loss
from llm_irl.lm_head import lm_head_hidden
from llm_irl.trainers import IQConfig, IQTrainer
from llm_irl.losses import iq_loss, sft_loss

PAD, EOS = 0, 1  # word_tokenizer puts <pad>, <eos>, <unk>, <bos> first
IQ = dict(gamma=0.99, td_weight=0.1, alpha=1.0, log_entropy=True)


# ------------------------------------------------------------------------------------ set-up


def build_model(a, vocab: int | None = None, seed: int = 0):
    config = LlamaConfig(
        vocab_size=vocab or a.vocab, hidden_size=a.hidden, intermediate_size=4 * a.hidden,
        num_hidden_layers=a.layers, num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=max(a.seq, 128), pad_token_id=PAD, eos_token_id=EOS, bos_token_id=3,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)


def make_rows(a, vocab: int | None = None, n: int | None = None, seed: int = 0) -> list[dict]:
    """Rows of `seq` tokens: a prompt of seq/4 (labels -100), then a completion ending in EOS."""
    g = torch.Generator().manual_seed(seed)
    n = n or a.batch * 4
    ids = torch.randint(4, vocab or a.vocab, (n, a.seq), generator=g)
    ids[:, -1] = EOS
    labels = ids.clone()
    labels[:, : a.seq // 4] = -100
    return [{"input_ids": i, "labels": l} for i, l in zip(ids.tolist(), labels.tolist())]


def tokenizer():
    """Any tokenizer with pad/EOS will do: the rows are already token ids (TRL wants one)."""
    return word_tokenizer([f"w{i}" for i in range(16)])


def common_args(a, out_dir: str, steps: int) -> dict:
    """The TrainingArguments both trainers get. TRL's own defaults differ (bf16 and gradient
    checkpointing on), so everything that matters is set explicitly."""
    return dict(
        output_dir=out_dir, max_steps=steps, per_device_train_batch_size=a.batch, gradient_accumulation_steps=1,
        learning_rate=1e-5, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=not torch.cuda.is_available(),
        eval_strategy="no", save_strategy="no", report_to="none", logging_steps=10_000, disable_tqdm=True,
        dataloader_num_workers=0, remove_unused_columns=False, seed=0,
    )


# ------------------------------------------------------------------------------------ the two trainers


def make_iq_trainer(model, rows: list[dict], args: dict, chunk_size: int | None) -> Trainer:
    """The IQ arm: the library's own IQTrainer (chunk_size None: full logits; 0: chunks sized by the vocabulary)."""
    from datasets import Dataset

    return IQTrainer(model, args=IQConfig(**args, loss_chunk_size=chunk_size, **IQ),
                     train_dataset=Dataset.from_list(rows), processing_class=tokenizer())


def make_trl_sft_trainer(model, rows: list[dict], args: dict, seq: int) -> Trainer:
    """TRL's SFTTrainer on the same pre-tokenised rows (it keeps a given `labels` column as is)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(**args, max_length=seq, packing=False)
    return SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer())


def quiet() -> None:
    """Keep the benchmark's own lines readable: no progress bars, no per-run log dicts."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")


class StepTimer(TrainerCallback):
    """Wall time of each optimiser step."""

    def __init__(self):
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def make_trainer(arm: str, a, model, rows, steps: int, out_dir: str) -> Trainer:
    args = common_args(a, out_dir, steps)
    if arm == "iq":
        trainer = make_iq_trainer(model, rows, args, a.chunk_size)
    elif arm == "iq_full":  # today's IQTrainer path, for reference
        trainer = make_iq_trainer(model, rows, args, None)
    elif arm == "trl_sft":
        trainer = make_trl_sft_trainer(model, rows, args, a.seq)
    else:
        raise ValueError(arm)
    trainer.remove_callback(PrinterCallback)
    return trainer


# ------------------------------------------------------------------------------------ (a) step time


def step_time_arms(a) -> dict[str, Callable[[], float]]:
    """One training step per arm on a shared model and batch; each returns its wall time."""
    model = build_model(a)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-5)
    batch = DemoCollator(PAD)(make_rows(a, n=a.batch))
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]

    def full(loss_fn):
        return loss_fn(model(input_ids=ids, attention_mask=mask).logits)

    def chunked(loss_fn):
        head = lm_head_hidden(model, ids, mask)
        return loss_fn(head.hidden, head.weight, lm_head_bias=head.bias, chunk_size=a.chunk_size)

    losses = {
        "sft_full": lambda: full(lambda lg: sft_loss(lg, labels)[0]),
        "iq_full": lambda: full(lambda lg: iq_loss(lg, labels, eos_token_id=EOS, **IQ)[0]),
        "sft_chunked": lambda: chunked(lambda h, w, **kw: chunked_sft_loss(h, w, labels, **kw)[0]),
        "iq_chunked": lambda: chunked(
            lambda h, w, **kw: chunked_iq_loss(h, w, labels, eos_token_id=EOS, **IQ, **kw)[0]),
    }

    def timed(loss):
        def step() -> float:
            start = time.perf_counter()
            loss().backward()
            optim.step()
            optim.zero_grad(set_to_none=True)
            return time.perf_counter() - start
        return step

    return {name: timed(loss) for name, loss in losses.items()}


def alternate(arms: dict[str, Callable[[], float]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run every arm once per round, rotating the order each round; drop `warmup` rounds."""
    names = list(arms)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        order = order if r % 2 == 0 else order[::-1]
        for name in order:
            t = arms[name]()
            if r >= warmup:
                times[name].append(t)
    return times


def paired_ratio(num: list[float], den: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(num, den))


# ------------------------------------------------------------------------------------ (b) throughput


def trainer_throughput(a) -> dict[str, list[float]]:
    """Per-run median step time of each trainer arm, runs alternating in order."""
    rows = make_rows(a, n=a.batch * (a.warmup_steps + a.steps))
    per_run: dict[str, list[float]] = {"iq": [], "trl_sft": []}
    with tempfile.TemporaryDirectory() as out_dir:
        for r in range(a.runs):
            for arm in (["iq", "trl_sft"] if r % 2 == 0 else ["trl_sft", "iq"]):
                timer = StepTimer()
                trainer = make_trainer(arm, a, build_model(a), rows, a.warmup_steps + a.steps, out_dir)
                trainer.add_callback(timer)
                trainer.train()
                per_run[arm].append(statistics.median(timer.times[a.warmup_steps:]))
    return per_run


# ------------------------------------------------------------------------------------ (c) memory


def _proc_status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            line = next(l for l in f if l.startswith(field + ":"))
        return int(line.split()[1]) * 1024  # kB
    except (OSError, StopIteration):
        return None


def _reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM, so the peak seen is that of `train()` alone."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child_memory(a) -> None:
    """In a fresh process: build one trainer, train `--memory-steps` steps, print peak growth as JSON."""
    cuda = torch.cuda.is_available()
    rows = make_rows(a, vocab=a.vocab, n=a.batch * a.memory_steps)
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = make_trainer(a.child, a, build_model(a, vocab=a.vocab), rows, a.memory_steps, out_dir)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        elif _reset_peak_rss() and _proc_status_bytes("VmRSS") is not None:
            before = _proc_status_bytes("VmRSS")
        else:  # no resettable peak: the peak so far (model and trainer built) is the baseline
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        trainer.train()
        if cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = _proc_status_bytes("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"growth": peak - before, "peak": peak, "unit": "cuda" if cuda else "rss"}))


def measure_memory(a, arm: str, vocab: int) -> dict:
    cmd = [sys.executable, __file__, "--child", arm, "--vocab", str(vocab), "--hidden", str(a.hidden),
           "--layers", str(a.layers), "--seq", str(a.seq), "--batch", str(a.batch),
           "--memory-steps", str(a.memory_steps), "--threads", str(a.threads), "--chunk-size", str(a.chunk_size)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if out.returncode != 0:
        raise RuntimeError(f"{arm} at vocab {vocab} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ main


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--chunk-size", type=int, default=0, help="rows per LM-head chunk (0: sized by the vocabulary)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads. 1 by default: on a small shared machine a 2-thread parallel region stalls "
                        "whenever either thread is descheduled, which swamps the differences being measured")
    p.add_argument("--rounds", type=int, default=5, help="(a) measured rounds of the four step arms")
    p.add_argument("--runs", type=int, default=3, help="(b) trainer runs per arm")
    p.add_argument("--steps", type=int, default=4, help="(b) measured steps per trainer run")
    p.add_argument("--warmup-steps", type=int, default=1, help="(b) steps dropped at the start of each run")
    p.add_argument("--memory-vocabs", type=int, nargs="*", default=[32000, 128000], help="(c) vocabularies")
    p.add_argument("--memory-steps", type=int, default=2, help="(c) steps per subprocess")
    p.add_argument("--memory-arms", nargs="*", default=["iq", "trl_sft", "iq_full"],
                   help="(c) arms; iq_full is IQ on the full logits (today's IQTrainer), for reference")
    p.add_argument("--skip", nargs="*", default=[], choices=["a", "b", "c"])
    p.add_argument("--child", choices=["iq", "trl_sft", "iq_full"], help=argparse.SUPPRESS)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    quiet()
    if a.child:
        return child_memory(a)

    import trl

    print(f"torch {torch.__version__}, trl {trl.__version__}, {a.threads} thread(s), "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}; llama hidden={a.hidden} layers={a.layers} "
          f"vocab={a.vocab} seq={a.seq} batch={a.batch} (prompt {a.seq // 4}), chunk={a.chunk_size or 'auto'}")
    start = time.perf_counter()

    if "a" not in a.skip:
        times = alternate(step_time_arms(a), a.rounds)
        med = {n: statistics.median(t) for n, t in times.items()}
        print(f"\n(a) one training step, medians of {a.rounds} alternating rounds")
        for name, m in med.items():
            print(f"  {name:<12} {m * 1000:9.1f} ms")
        for path in ("full", "chunked"):
            r = med[f"iq_{path}"] / med[f"sft_{path}"]
            paired = paired_ratio(times[f"iq_{path}"], times[f"sft_{path}"])
            print(f"  IQ/SFT step time, {path:<7}: {r:.3f} (median paired {paired:.3f})"
                  f"  target <= 1.05: {verdict(r <= 1.05)}")
        print(f"  chunked/full step time: IQ {med['iq_chunked'] / med['iq_full']:.3f}, "
              f"SFT {med['sft_chunked'] / med['sft_full']:.3f}")

    if "b" not in a.skip:
        per_run = trainer_throughput(a)
        tokens = a.batch * a.seq
        tps = {arm: tokens / statistics.median(t) for arm, t in per_run.items()}
        print(f"\n(b) Trainer throughput, {a.runs} alternating runs x {a.steps} steps (+{a.warmup_steps} warm-up)")
        for arm, t in per_run.items():
            print(f"  {arm:<8} {statistics.median(t) * 1000:9.1f} ms/step  {tps[arm]:9.1f} tokens/s  "
                  f"(runs: {', '.join(f'{x * 1000:.0f}' for x in t)} ms)")
        r = tps["iq"] / tps["trl_sft"]
        print(f"  IQ/TRL-SFT tokens/s: {r:.3f}  target >= 1: {verdict(r >= 1.0)}")

    if "c" not in a.skip and a.memory_vocabs:
        unit = "torch.cuda.max_memory_allocated" if torch.cuda.is_available() else "peak RSS (VmHWM)"
        print(f"\n(c) memory growth during train() over the memory at its start, {unit}; "
              f"{a.memory_steps} steps, fresh process per arm")
        for vocab in a.memory_vocabs:
            mem = {arm: measure_memory(a, arm, vocab) for arm in a.memory_arms}
            mib = {arm: m["growth"] / 2**20 for arm, m in mem.items()}
            line = f"  vocab {vocab:>6}: " + ", ".join(
                f"{arm} {mib[arm]:.1f} MiB (peak {m['peak'] / 2**20:.0f})" for arm, m in mem.items())
            if "iq" in mib and "trl_sft" in mib:
                r = mib["iq"] / max(mib["trl_sft"], 1e-9)
                line += f"  IQ/TRL {r:.3f}"
                if vocab == 32000 and a.seq == 512:
                    line += f"  target <= 1: {verdict(r <= 1.0)}"
            print(line)

    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
