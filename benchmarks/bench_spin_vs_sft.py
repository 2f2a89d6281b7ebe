"""One SPIN iteration against one SFT epoch on the same data: what self-play costs, on the embedded default.

run as: .venv/bin/python benchmarks/bench_spin_vs_sft.py [--rows 1000 --repeats 5 --threads 1]

Both arms start from the same briefly SFT-trained tiny Llama (`--warm_steps` steps of SFT on the data,
so SPIN's samples have the lengths of a model that has learnt to stop) and go once through the same
`--rows` Markov-expert demonstrations at batch 32 (max_length 32): SFT is one epoch of SFTTrainer; SPIN
is one iteration of SPINTrainer of one epoch, i.e. a sample of the previous iterate for every
demonstration (batched generation, max_new_tokens 32), π_t's log-probs of both sides, and the pair
loss on demonstration and sample. Each repeat trains both arms from the same start, in an order that
alternates between repeats; timed is `trainer.train()` alone (not loading or tokenising). Printed:
medians of wall-clock and of this process's CPU time (steadier on a shared machine), the SPIN/SFT
ratios, and SPIN's split into sampling (generate), π_t's log-probs, and the rest.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warm_steps", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    import llm_irl.trainers.spin as spin_module
    from llm_irl import SFTConfig, SFTTrainer, SPINConfig, SPINTrainer
    from llm_irl.builtin import builtin_dataset

    split = {"generate": 0.0, "reference": 0.0}

    def timed(name, fn):
        def run(*args, **kw):
            start = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                split[name] += time.perf_counter() - start
        return run

    spin_module.generate_rollouts = timed("generate", spin_module.generate_rollouts)
    spin_module.SPINTrainer._reference_logps = timed("reference", spin_module.SPINTrainer._reference_logps)

    data = builtin_dataset(f"builtin:markov:{a.rows}")
    common = dict(max_length=32, per_device_train_batch_size=32, save_strategy="no", report_to=[], disable_tqdm=True,
                  logging_steps=10_000, seed=0, learning_rate=3e-3)
    start_dir = tempfile.mkdtemp(prefix="bench_spin_start_")
    warm = SFTTrainer(model="builtin:tiny", train_dataset=data,
                      args=SFTConfig(output_dir=start_dir, max_steps=a.warm_steps, **common))
    warm.train()
    warm.save_model()

    def sft():
        return SFTTrainer(model=start_dir, train_dataset=data,
                          args=SFTConfig(output_dir=tempfile.mkdtemp(), num_train_epochs=1, **common))

    def spin():
        return SPINTrainer(model=start_dir, train_dataset=data,
                           args=SPINConfig(output_dir=tempfile.mkdtemp(), num_train_epochs=1, spin_iterations=1,
                                           max_new_tokens=32, **{**common, "learning_rate": 3e-4}))

    arms = {"sft_epoch": sft, "spin_iteration": spin}
    wall = {name: [] for name in arms}
    cpu = {name: [] for name in arms}
    spin_split, sample_lens = [], []
    for i in range(a.repeats):
        for name in (list(arms) if i % 2 == 0 else list(reversed(arms))):
            trainer = arms[name]()
            split.update(generate=0.0, reference=0.0)
            t, c = time.perf_counter(), time.process_time()
            trainer.train()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
            if name == "spin_iteration":
                spin_split.append(dict(split, total=wall[name][-1]))
                sample_lens.append(statistics.mean(len(p.completion) for p in trainer.samples.pairs.values()))
            del trainer

    steps = -(-a.rows // 32)
    print(f"{a.rows} demonstrations, {steps} steps of batch 32, {a.repeats} repeats, {a.threads} thread(s); "
          f"SPIN's mean sample length {statistics.mean(sample_lens):.1f} tokens")
    for name in arms:
        print(f"  {name:<15} wall {statistics.median(wall[name]):7.2f} s   cpu {statistics.median(cpu[name]):7.2f} s")
    ratio = {kind: statistics.median(t["spin_iteration"]) / statistics.median(t["sft_epoch"])
             for kind, t in (("wall", wall), ("cpu", cpu))}
    print(f"  SPIN iteration / SFT epoch: wall {ratio['wall']:.2f}x, cpu {ratio['cpu']:.2f}x")
    for part in ("generate", "reference"):
        share = statistics.median(s[part] / s["total"] for s in spin_split)
        print(f"  SPIN's share in {part}: {share:.0%}")


if __name__ == "__main__":
    main()
