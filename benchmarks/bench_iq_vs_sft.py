"""IQ vs SFT training-step time on the same model and data, measured side by side.

run as: .venv/bin/python -m benchmarks.bench_iq_vs_sft [--vocab 32000 --seq 256 --batch 4 --repeats 15]

One step = forward, loss, backward, AdamW step, with each trainer's own loss function and its
default logging (policy entropy on for both). Arms alternate step by step so machine noise hits
both alike; the script prints medians and the IQ/SFT ratio (target <= 1.05, the paper's ~1.04).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.bench_setup import add_size_args, model_and_batch
from llm_irl.losses import iq_loss, sft_loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_size_args(p, repeats=15)
    a = p.parse_args()
    model, optim, input_ids, labels = model_and_batch(a)
    losses = {
        "sft": lambda logits: sft_loss(logits, labels)[0],
        "iq": lambda logits: iq_loss(logits, labels, eos_token_id=2, gamma=0.99, td_weight=0.1)[0],
    }

    def step(name: str) -> float:
        start = time.perf_counter()
        logits = model(input_ids=input_ids).logits
        losses[name](logits).backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    for name in losses:  # warm-up
        step(name)
    times: dict[str, list[float]] = {name: [] for name in losses}
    for i in range(a.repeats):
        order = list(losses) if i % 2 == 0 else list(reversed(losses))
        for name in order:
            times[name].append(step(name))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, vocab={a.vocab} hidden={a.hidden} "
          f"layers={a.layers} batch={a.batch} seq={a.seq} repeats={a.repeats}")
    for name, m in med.items():
        print(f"{name:>4} step median {m * 1000:8.1f} ms")
    ratios = sorted(ti / ts for ti, ts in zip(times["iq"], times["sft"]))
    print(f"IQ/SFT step-time ratio: {med['iq'] / med['sft']:.3f} (median of paired ratios "
          f"{statistics.median(ratios):.3f}; target <= 1.05)")


if __name__ == "__main__":
    main()
