"""GEM vs SFT training-step time on the same model and data, on the chunked and the full-logits paths.

run as: .venv/bin/python -m benchmarks.bench_gem_vs_sft [--vocab 32000 --seq 256 --batch 4 --repeats 10]

One step = forward, loss, backward, AdamW step, with SFTTrainer's loss for each `loss_type` and its
default logging (policy entropy on): `chunked_*` runs the loss through the LM head chunk by chunk
(`loss_chunk_size: 0`, the default), `full_*` on the model's [B, T, V] logits (`loss_chunk_size: null`).
GEM's defaults (β 0.7, h logsigmoid). The four arms alternate step by step, in an order reversed
every repeat, so machine noise hits them alike; the script prints medians and GEM/SFT per path, by
wall-clock time and by this process's CPU time (steadier on a shared machine, where wall-clock steps
also wait for other processes).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.bench_setup import add_size_args, model_and_batch
from llm_irl.chunked import chunked_sft_loss
from llm_irl.gem import chunked_gem_loss, gem_loss
from llm_irl.lm_head import lm_head_hidden
from llm_irl.losses import sft_loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_size_args(p, repeats=10)
    a = p.parse_args()
    model, optim, input_ids, labels = model_and_batch(a)

    def chunked(loss_fn):
        def run():
            head = lm_head_hidden(model, input_ids)
            assert head is not None, "the chunked path needs a plain LM head"
            return loss_fn(head.hidden, head.weight, labels, lm_head_bias=head.bias)[0]
        return run

    def full(loss_fn):
        return lambda: loss_fn(model(input_ids=input_ids).logits, labels)[0]

    arms = {"chunked_sft": chunked(chunked_sft_loss), "chunked_gem": chunked(chunked_gem_loss),
            "full_sft": full(sft_loss), "full_gem": full(gem_loss)}

    def step(name: str) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        arms[name]().backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        return time.perf_counter() - start, time.process_time() - cpu

    for name in arms:  # warm-up
        step(name)
    wall: dict[str, list[float]] = {name: [] for name in arms}
    cpu: dict[str, list[float]] = {name: [] for name in arms}
    for i in range(a.repeats):
        for name in (list(arms) if i % 2 == 0 else list(reversed(arms))):
            w, c = step(name)
            wall[name].append(w)
            cpu[name].append(c)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, vocab={a.vocab} hidden={a.hidden} "
          f"layers={a.layers} batch={a.batch} seq={a.seq} repeats={a.repeats}")
    for name in arms:
        print(f"{name:>12} step median {statistics.median(wall[name]) * 1000:8.1f} ms wall, "
              f"{statistics.median(cpu[name]) * 1000:8.1f} ms CPU")
    for path in ("chunked", "full"):
        for label, times in (("wall", wall), ("CPU", cpu)):
            gem, sft = times[f"{path}_gem"], times[f"{path}_sft"]
            paired = statistics.median(g / s for g, s in zip(gem, sft))
            print(f"{path:>7}: GEM/SFT step-time ratio by {label:<4} {statistics.median(gem) / statistics.median(sft):.3f} "
                  f"(median of paired ratios {paired:.3f})")


if __name__ == "__main__":
    main()
