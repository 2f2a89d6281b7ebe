"""Benchmark: linear-time self_bleu against the naive O(n^2) nltk loop.

run as: .venv/bin/python benchmarks/bench_self_bleu.py

Builds seeded random texts (20-word sentences over a 500-word vocabulary; 1,000 by
default), times both implementations on the same full corpus, checks that they
agree to 1e-6, and prints the median times and the speed ratio (target: >= 50x).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from llm_irl.metrics import self_bleu, self_bleu_naive


def make_corpus(n_texts: int, words_per_text: int, vocab_size: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"w{j}" for j in range(vocab_size)]
    return [" ".join(rng.choices(vocab, k=words_per_text)) for _ in range(n_texts)]


def median_time(fn: Callable[[list[str]], float], texts: list[str], repeats: int) -> tuple[float, float]:
    """(value, median seconds) over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn(texts)
        times.append(time.perf_counter() - start)
    return value, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-texts", type=int, default=1000)
    parser.add_argument("--words", type=int, default=20)
    parser.add_argument("--vocab", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast-repeats", type=int, default=5)
    parser.add_argument("--naive-repeats", type=int, default=1, help="the naive loop is slow; 1 by default")
    args = parser.parse_args()

    texts = make_corpus(args.n_texts, args.words, args.vocab, args.seed)
    print(f"corpus: {len(texts)} texts x {args.words} words, vocab {args.vocab}, seed {args.seed}")
    fast_value, fast_s = median_time(self_bleu, texts, args.fast_repeats)
    print(f"fast  self_bleu : {fast_value:.10f}  median {fast_s:.4f} s over {args.fast_repeats} run(s)")
    naive_value, naive_s = median_time(self_bleu_naive, texts, args.naive_repeats)
    print(f"naive nltk loop : {naive_value:.10f}  median {naive_s:.4f} s over {args.naive_repeats} run(s)")

    diff = abs(fast_value - naive_value)
    print(f"|difference|    : {diff:.3e} ({'agree' if diff < 1e-6 else 'DISAGREE'} to 1e-6)")
    print(f"speed ratio     : {naive_s / fast_s:.1f}x (target >= 50x)")
    if diff >= 1e-6:
        raise SystemExit("fast and naive self-BLEU disagree")


if __name__ == "__main__":
    main()
