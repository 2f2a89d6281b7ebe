"""Sampling for evaluation: k samples per prompt at several temperatures, saved as JSONL.

Sampling itself is `llm_irl.rollout.generate_rollouts` (KV cache, left-padded batches, pure
sampling from softmax(logits/T) with nucleus top_p, T relative to the policy the model was trained
as). This module adds what evaluation needs on top: a sweep over temperatures, greedy decoding as
the point T = 0, a progress bar, a seed per batch derived from one run seed
(`llm_irl.seeding.derive_seed`), and one JSONL row per sample, so every text metric can be
recomputed later without sampling again. Prompts are strings or conversations (`llm_irl.prompts`).

Greedy (T = 0): each prompt is decoded once (argmax at every step) and that completion is
repeated k times, so every figure keeps its usual shape: per-input diversity is then trivially
none (k copies of one text; `llm_irl.evaluate` does not report it there), across-input diversity
(one text per prompt) still means something.

run as (through the CLI):
    llm-irl evaluate runs/quickstart/iq --samples samples.jsonl

Each JSONL row holds: prompt_index, prompt (a string or a list of messages), sample_index, sample
(decoded text, special tokens kept: the metrics charge every action), temperature (0 = greedy),
top_p, seed (the run seed), logprobs (of each generated token under the distribution it was drawn
from, see `llm_irl.rollout`: log π itself at T = 1 and top_p = 1; greedy: the untempered logits'),
completion_ids (the generated token ids, EOS included when it ended the sample; kept because decode
→ encode does not round-trip for every tokenizer, and rewards must score the exact actions) and
terminated.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from llm_irl.files import write_atomic
from llm_irl.prompts import Prompt, prompt_ids
from llm_irl.rollout import completion_text, generate_rollouts
from llm_irl.seeding import derive_seed

# greedy decoding: argmax at every step (top_k None: pure sampling's top_k=0 would be reported as an unused flag)
GREEDY = {"do_sample": False, "top_k": None}


@dataclass
class Sample:
    """One sampled completion of one prompt at one temperature."""

    prompt_index: int
    prompt: Prompt
    sample_index: int  # 0..k-1 among the prompt's samples at this temperature
    sample: str
    temperature: float
    top_p: float
    seed: int
    logprobs: list[float]
    completion_ids: list[int]
    terminated: bool


def generate_samples(
    model,
    tokenizer,
    prompts: Sequence[Prompt],
    *,
    k: int,
    temperatures: Sequence[float],
    top_p: float = 1.0,
    max_new_tokens: int = 64,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
) -> list[Sample]:
    """`k` samples of every prompt at every temperature, ordered by temperature, prompt, sample;
    temperature 0 is greedy decoding (one decode per prompt, repeated k times).

    Prompts go to `generate_rollouts` a few at a time (`batch_size // k` prompts, so one
    generate call holds about `batch_size` sequences) so the progress bar moves, and each call
    gets its own seed, `derive_seed(seed, temperature_index, batch_index)`: same model, prompts, k,
    batch_size and seed give the same samples.
    """
    from tqdm.auto import tqdm

    if k < 1:
        raise ValueError(f"k (samples per prompt) must be >= 1, got {k}")
    if not temperatures or any(t < 0 for t in temperatures):
        raise ValueError(f"temperatures must be a non-empty list of values >= 0 (0 = greedy), got {list(temperatures)}")
    ids = [prompt_ids(tokenizer, p) for p in prompts]
    per_call = max(1, batch_size // k)
    starts = range(0, len(prompts), per_call)
    samples: list[Sample] = []
    with tqdm(total=len(temperatures) * len(starts), desc="sampling", unit="batch", disable=not progress,
              leave=False) as bar:
        for t_index, temperature in enumerate(temperatures):
            for b_index, start in enumerate(starts):
                greedy = temperature == 0
                out = generate_rollouts(
                    model, tokenizer, ids[start: start + per_call], max_new_tokens=max_new_tokens,
                    temperature=1.0 if greedy else temperature, top_p=1.0 if greedy else top_p,
                    num_samples=1 if greedy else k, batch_size=per_call * k,
                    seed=derive_seed(seed, t_index, b_index), **(GREEDY if greedy else {}),
                )
                rows = zip(out.completion_ids, out.logprobs, out.terminated)
                if greedy:  # k copies of the one greedy completion of each prompt
                    rows = [(list(c), list(lp), ended) for c, lp, ended in rows for _ in range(k)]
                for j, (completion, logprobs, terminated) in enumerate(rows):
                    i = start + j // k
                    samples.append(Sample(
                        prompt_index=i, prompt=prompts[i], sample_index=j % k,
                        sample=completion_text(tokenizer, completion, terminated),
                        temperature=float(temperature), top_p=1.0 if greedy else float(top_p), seed=seed,
                        logprobs=logprobs, completion_ids=completion, terminated=terminated,
                    ))
                bar.update()
    return samples


def printable_text(tokenizer, completion_ids: Sequence[int], terminated: bool) -> str:
    """A completion as a reader expects it: special tokens (`<pad>`, `<unk>`, EOS) left out. The
    samples and the metrics keep them (`completion_text`); this is for printing only."""
    ids = list(completion_ids[:-1]) if terminated else list(completion_ids)
    return tokenizer.decode(ids, skip_special_tokens=True)


def save_jsonl(samples: Sequence[Sample], path: str) -> None:
    """One JSON object per line, written atomically (a crash never leaves half a file)."""
    write_atomic(path, "".join(json.dumps(asdict(s)) + "\n" for s in samples))


def load_jsonl(path: str) -> list[Sample]:
    """Samples written by `save_jsonl`."""
    with open(path, encoding="utf-8") as f:
        return [Sample(**json.loads(line)) for line in f if line.strip()]


def by_temperature(samples: Sequence[Sample]) -> dict[float, list[list[Sample]]]:
    """{temperature: samples grouped by prompt (in prompt order), each group in sample order}."""
    table: dict[float, dict[int, list[Sample]]] = {}
    for s in samples:
        table.setdefault(s.temperature, {}).setdefault(s.prompt_index, []).append(s)
    return {
        t: [sorted(group, key=lambda s: s.sample_index) for _, group in sorted(groups.items())]
        for t, groups in table.items()
    }
