"""What one training step and one round of sampling cost on SmolLM2-135M-Instruct: sizes the study.

run as (after benchmarks/pretrained/prepare.py):
    .venv/bin/python -m benchmarks.pretrained.bench_step train --arm sft --lora 16 --batch 8
    .venv/bin/python -m benchmarks.pretrained.bench_step train --arm iq --lora 16 --batch 8
    .venv/bin/python -m benchmarks.pretrained.bench_step train --arm online_iq --lora 16 --batch 8
    .venv/bin/python -m benchmarks.pretrained.bench_step train --arm sft --lora 0 --batch 8     # full fine-tune
    .venv/bin/python -m benchmarks.pretrained.bench_step ratio --lora 16 --batch 8       # library loss vs plain HF
    .venv/bin/python -m benchmarks.pretrained.bench_step generate --prompts 8 --k 4 --max_new_tokens 48

`train` runs the library's trainer (SFTTrainer / IQTrainer) on the first rows of
data/train_pc.jsonl for `--warmup` + `--steps` optimiser steps and prints the median seconds of
the timed steps and the process's peak RSS. `ratio` times forward + backward of one fixed batch
through plain HF cross-entropy and through each library loss, interleaved. `generate` samples k completions of the first
held-out prompts with `llm_irl.generation.generate_samples` and with plain `model.generate`
(same prompts, same length limit, pure sampling at T = 1) and prints seconds and tokens of each.
One configuration per process, so each peak RSS is its own. Prints one JSON line at the end.
The machine is shared: the load average is printed beside every figure, and process CPU seconds
beside wall seconds; compare ratios. Under load, `--threads 2` ran 3-7x slower than `--threads 1`
(OpenMP threads waiting on each other on oversubscribed cores): time with `--threads 1`, whose CPU
seconds approximate the wall time of one idle core, and run two processes side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "model")
DATA = os.path.join(HERE, "data")


def read_jsonl(path: str, n: int) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line, _ in zip(f, range(n))]


def lora_config(a):
    """LoRA on q, k, v, o of every layer, or of the last `--lora_layers` only (backward stops below them)."""
    if not a.lora:
        return None
    from peft import LoraConfig

    layers = None
    if a.lora_layers:
        with open(os.path.join(MODEL, "config.json")) as f:
            n = json.load(f)["num_hidden_layers"]
        layers = list(range(n - a.lora_layers, n))
    return LoraConfig(r=a.lora, lora_alpha=2 * a.lora, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], layers_to_transform=layers)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def bench_train(a) -> dict:
    from transformers import TrainerCallback

    from llm_irl import IQConfig, IQTrainer, SFTConfig, SFTTrainer

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.cpu, self._t = [], [], None

        def on_step_begin(self, args, state, control, **kw):
            self._t, self._c = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self._t)
            self.cpu.append(time.process_time() - self._c)

    steps = a.warmup + a.steps
    rows = read_jsonl(os.path.join(DATA, a.data), a.batch * steps)
    common = dict(output_dir=tempfile.mkdtemp(prefix="bench_step_"), per_device_train_batch_size=a.batch,
                  max_steps=steps, max_length=a.max_length, learning_rate=2e-4 if a.lora else 2e-5,
                  logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, seed=0,
                  disable_tqdm=True, dataloader_num_workers=0)
    if a.chunk is not None:
        common["loss_chunk_size"] = None if a.chunk < 0 else a.chunk
    if a.arm == "sft":
        trainer_cls, config = SFTTrainer, SFTConfig(**common)
    else:
        online = dict(policy_mix=0.1, max_new_tokens=a.max_new_tokens) if a.arm == "online_iq" else {}
        trainer_cls, config = IQTrainer, IQConfig(**common, td_weight=a.td_weight, **online)
    peft_config = lora_config(a)
    t0 = time.perf_counter()
    trainer = trainer_cls(MODEL, args=config, train_dataset=rows, peft_config=peft_config)
    setup = time.perf_counter() - t0
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    timed = timer.times[a.warmup:]
    logs = [h for h in trainer.state.log_history if "loss" in h]
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return {"arm": a.arm, "lora_r": a.lora, "lora_layers": a.lora_layers, "data": a.data, "batch": a.batch, "max_length": a.max_length, "chunk": a.chunk,
            "setup_s": round(setup, 1), "step_s_median": round(statistics.median(timed), 2),
            "step_s_all": [round(t, 2) for t in timer.times],
            "step_cpu_s_median": round(statistics.median(timer.cpu[a.warmup:]), 2), "trainable_params": trainable,
            "peak_rss_mib": round(peak_rss_mib()), "first_logs": logs[:2], "last_log": logs[-1:]}


def bench_ratio(a) -> dict:
    """Forward + backward of one fixed batch: plain HF cross-entropy against the library's losses, interleaved.

    Every round times each variant once in turn, so load from other processes hits them alike;
    the medians' ratios to the plain step are what to quote on a shared machine.
    """
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from llm_irl import IQConfig, IQTrainer, SFTConfig, SFTTrainer
    from llm_irl.data import DemoCollator, load_demonstrations
    from llm_irl.modeling import load_tokenizer

    tok = load_tokenizer(MODEL)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    if a.lora:
        model = get_peft_model(model, lora_config(a))
    model.train()
    rows = read_jsonl(os.path.join(DATA, a.data), a.batch)
    batch = DemoCollator(tok.pad_token_id)(list(load_demonstrations(rows, tok, max_length=a.max_length)))
    common = dict(output_dir=tempfile.mkdtemp(prefix="bench_ratio_"), report_to=[], use_cpu=True,
                  max_length=a.max_length)
    trainers = {
        "sft_chunked": SFTTrainer(model, args=SFTConfig(**common), train_dataset=rows, processing_class=tok),
        "sft_full_logits": SFTTrainer(model, args=SFTConfig(**common, loss_chunk_size=None), train_dataset=rows,
                                      processing_class=tok),
        "iq_chunked": IQTrainer(model, args=IQConfig(**common, td_weight=a.td_weight), train_dataset=rows,
                                processing_class=tok),
        "iq_full_logits": IQTrainer(model, args=IQConfig(**common, td_weight=a.td_weight, loss_chunk_size=None),
                                    train_dataset=rows, processing_class=tok),
    }

    def plain():
        return model(**batch).loss  # HF's own shifted cross-entropy over the same labels

    variants = {"plain_hf_ce": plain}
    for name, trainer in trainers.items():
        variants[name] = lambda t=trainer: t.compute_loss(model, batch)
    times = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    for rnd in range(a.warmup + a.steps):
        for name, fn in variants.items():
            model.zero_grad(set_to_none=True)
            t0, c0 = time.perf_counter(), time.process_time()
            fn().backward()
            if rnd >= a.warmup:
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    med = {name: statistics.median(t) for name, t in times.items()}
    tokens = int(batch["attention_mask"].sum())
    return {"lora_r": a.lora, "batch": a.batch, "padded_shape": list(batch["input_ids"].shape), "tokens": tokens,
            "fwd_bwd_s_median": {k: round(v, 2) for k, v in med.items()},
            "fwd_bwd_cpu_s_median": {k: round(statistics.median(v), 2) for k, v in cpu.items()},
            "ratio_to_plain": {k: round(v / med["plain_hf_ce"], 2) for k, v in med.items()},
            "peak_rss_mib": round(peak_rss_mib())}


def bench_generate(a) -> dict:
    from transformers import AutoModelForCausalLM

    from llm_irl.generation import generate_samples
    from llm_irl.modeling import load_tokenizer
    from llm_irl.batching import pad as pad_rows
    from llm_irl.special_tokens import resolve_eos_pad

    tok = load_tokenizer(MODEL)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
    prompts = [r["prompt"] for r in read_jsonl(os.path.join(DATA, a.heldout), a.prompts)]
    out = {"prompts": a.prompts, "k": a.k, "max_new_tokens": a.max_new_tokens, "heldout": a.heldout,
           "mean_prompt_tokens": round(float(np.mean([len(tok(p)["input_ids"]) for p in prompts])), 1)}
    for rep in range(a.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        samples = generate_samples(model, tok, prompts, k=a.k, temperatures=[1.0], max_new_tokens=a.max_new_tokens,
                                   seed=rep, batch_size=a.prompts * a.k, progress=False)
        lib_s, lib_cpu = time.perf_counter() - t0, time.process_time() - c0
        lib_tokens = sum(len(s.completion_ids) for s in samples)

        eos, pad = resolve_eos_pad(model, tok)
        rows = [tok(p)["input_ids"] for p in prompts for _ in range(a.k)]
        ids = pad_rows(rows, pad, padding_side="left")
        mask = pad_rows([[1] * len(r) for r in rows], 0, padding_side="left")
        torch.manual_seed(rep)
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            seqs = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0,
                                  top_p=1.0, max_new_tokens=a.max_new_tokens, eos_token_id=eos, pad_token_id=pad)
        plain_s, plain_cpu = time.perf_counter() - t0, time.process_time() - c0
        gen = seqs[:, ids.shape[1]:]
        ended = torch.isin(gen, torch.tensor(eos)).int()
        plain_tokens = int(torch.where(ended.any(1), ended.argmax(1) + 1, gen.shape[1]).sum())
        out[f"rep{rep}"] = {"library_s": round(lib_s, 2), "library_cpu_s": round(lib_cpu, 2),
                            "library_tokens": lib_tokens,
                            "library_terminated": sum(s.terminated for s in samples),
                            "plain_s": round(plain_s, 2), "plain_cpu_s": round(plain_cpu, 2),
                            "plain_tokens": plain_tokens,
                            "plain_steps": gen.shape[1]}
    out["example"] = samples[0].sample[:200]
    out["peak_rss_mib"] = round(peak_rss_mib())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["train", "ratio", "generate"])
    p.add_argument("--arm", choices=["sft", "iq", "online_iq"], default="sft")
    p.add_argument("--lora", type=int, default=16, help="LoRA rank on q,k,v,o; 0 = full fine-tune")
    p.add_argument("--lora_layers", type=int, default=0, help="LoRA on the last this many layers only; 0 = all")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--max_length", type=int, default=128)
    p.add_argument("--td_weight", type=float, default=0.1)
    p.add_argument("--chunk", type=int, default=None, help="loss_chunk_size; -1 = full logits; default: the config's")
    p.add_argument("--data", default="train_pc.jsonl", help="a file in data/, or a path")
    p.add_argument("--heldout", default="heldout_pc.jsonl", help="prompts for `generate`: a file in data/, or a path")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--max_new_tokens", type=int, default=48)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    load_before = os.getloadavg()[0]
    result = {"train": bench_train, "ratio": bench_ratio, "generate": bench_generate}[a.what](a)
    result.update(threads=a.threads, loadavg_before=round(load_before, 2), loadavg_after=round(os.getloadavg()[0], 2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
