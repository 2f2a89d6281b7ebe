"""Throughput of ``generate_rollouts`` against a plain ``model.generate`` on the same batch.

Both arms sample the same 16 prompts x 64 new tokens (``min_new_tokens`` forces equal lengths,
same seed, same sampling settings) from a small random Llama; arms alternate over the repeats so
drift in machine load hits both equally. The rollout arm's extra work (keeping the raw logits,
log π of each token, cutting at EOS, Python lists) should cost under 5%.

run as: .venv/bin/python benchmarks/bench_rollout.py
"""

from __future__ import annotations

import statistics
import time
from types import SimpleNamespace

import torch
import transformers

from llm_irl.rollout import generate_rollouts

BATCH, PROMPT_LEN, NEW_TOKENS, REPEATS, SEED = 16, 32, 64, 7, 0


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = transformers.LlamaConfig(
        vocab_size=8000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, bos_token_id=1, eos_token_id=2,
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).to(device).eval()
    tok = SimpleNamespace(eos_token_id=2, pad_token_id=0)
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(3, cfg.vocab_size, (BATCH, PROMPT_LEN), generator=g)
    prompt_lists = prompts.tolist()
    sampling = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, temperature=1.0, top_p=1.0)

    def plain() -> None:
        torch.manual_seed(SEED)
        with torch.no_grad():
            out = model.generate(
                input_ids=prompts.to(device), attention_mask=torch.ones_like(prompts, device=device),
                do_sample=True, top_k=0, eos_token_id=[2], pad_token_id=0, **sampling,
            )
        out.tolist()  # same device sync and host copy the rollout arm pays

    def rollout() -> None:
        r = generate_rollouts(model, tok, prompt_lists, batch_size=BATCH, seed=SEED, **sampling)
        assert all(len(c) == NEW_TOKENS for c in r.completion_ids)

    def timed(fn) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    plain(), rollout()  # warm-up
    times: dict[str, list[float]] = {"plain": [], "rollout": []}
    for i in range(REPEATS):
        order = [("plain", plain), ("rollout", rollout)] if i % 2 == 0 else [("rollout", rollout), ("plain", plain)]
        for name, fn in order:
            times[name].append(timed(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    tokens = BATCH * NEW_TOKENS
    print(f"device={device} torch={torch.__version__} transformers={transformers.__version__} threads={torch.get_num_threads()}")
    print(f"batch={BATCH} prompt_len={PROMPT_LEN} new_tokens={NEW_TOKENS} repeats={REPEATS}")
    for k in ("plain", "rollout"):
        print(f"{k:8s} median {med[k] * 1e3:8.1f} ms  {tokens / med[k]:8.0f} tok/s  (all: {', '.join(f'{t * 1e3:.0f}' for t in times[k])} ms)")
    print(f"ratio rollout/plain = {med['rollout'] / med['plain']:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
