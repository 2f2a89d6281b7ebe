"""Prompt-conditioned sparse Markov chains over a small word vocabulary: the embedded expert.

Each prompt names a topic and a first word. Under topic k the next word after word w is drawn
from a sparse distribution over `branching` successors (Dirichlet weights), and the chain stops
with probability `stop_prob` after every word. A small `smoothing` mass spread uniformly over all
actions keeps every likelihood finite, so the expert's log-probability of any text, including a
model's mistakes, is exact and comparable. Entropy is tuned by `branching` and `concentration`.
"""

from __future__ import annotations

import math

import numpy as np

from llm_irl.tasks.base import ExpertScore, SyntheticExpert

_SYLLABLES = ["ka", "lo", "mi", "ru", "se", "ta", "vo", "ne", "pi", "zu", "ba", "do"]


def _make_words(n: int) -> list[str]:
    """Distinct two-syllable words, deterministic, so vocabularies are stable across runs."""
    words = [a + b for a in _SYLLABLES for b in _SYLLABLES if a != b]
    if n > len(words):
        raise ValueError(f"at most {len(words)} words are available, asked for {n}")
    return words[:n]


class MarkovExpert(SyntheticExpert):
    def __init__(
        self,
        num_words: int = 40,
        num_topics: int = 6,
        branching: int = 3,
        concentration: float = 1.0,
        stop_prob: float = 0.12,
        smoothing: float = 1e-3,
        seed: int = 0,
    ):
        if not 0.0 < stop_prob < 1.0:
            raise ValueError(f"stop_prob must be in (0, 1), got {stop_prob}")
        if not 0.0 < smoothing < 1.0:
            raise ValueError(f"smoothing must be in (0, 1), got {smoothing}")
        rng = np.random.default_rng(seed)
        self.words = _make_words(num_words)
        self.topics = [f"topic{k}" for k in range(num_topics)]
        self.vocab = self.topics + self.words
        self.stop_prob = stop_prob
        self.smoothing = smoothing
        self._index = {w: i for i, w in enumerate(self.words)}
        # next-word probabilities given (topic, previous word), before stopping and smoothing
        probs = np.zeros((num_topics, num_words, num_words))
        for k in range(num_topics):
            for w in range(num_words):
                succ = rng.choice(num_words, size=branching, replace=False)
                probs[k, w, succ] = rng.dirichlet(np.full(branching, concentration))
        self._next = probs
        # one action distribution over words + EOS (last index), smoothed
        sparse = np.concatenate([(1 - stop_prob) * probs, np.full((num_topics, num_words, 1), stop_prob)], -1)
        self._action_probs = (1 - smoothing) * sparse + smoothing / (num_words + 1)
        self._floor = smoothing / (num_words + 1)

    def sample_prompts(self, n: int, rng: np.random.Generator) -> list[str]:
        topics = rng.integers(len(self.topics), size=n)
        firsts = rng.integers(len(self.words), size=n)
        return [f"{self.topics[k]} {self.words[w]}" for k, w in zip(topics, firsts)]

    def _parse_prompt(self, prompt: str) -> tuple[int, int]:
        parts = prompt.split()
        if len(parts) != 2 or parts[0] not in self.topics or parts[1] not in self._index:
            raise ValueError(f"not a prompt of this expert: {prompt!r}")
        return self.topics.index(parts[0]), self._index[parts[1]]

    def sample_completion(self, prompt: str, rng: np.random.Generator) -> str:
        topic, prev = self._parse_prompt(prompt)
        eos = len(self.words)
        out: list[str] = []
        while True:
            action = int(rng.choice(eos + 1, p=self._action_probs[topic, prev]))
            if action == eos:
                return " ".join(out)
            out.append(self.words[action])
            prev = action

    def score(self, prompt: str, completion: str) -> ExpertScore:
        topic, prev = self._parse_prompt(prompt)
        eos = len(self.words)
        total, valid = 0.0, True
        words = completion.split()
        for word in words + [None]:
            # a word outside the vocabulary cannot be emitted: charge it the smoothing floor
            action = eos if word is None else self._index.get(word)
            p = self._floor if action is None else self._action_probs[topic, prev, action]
            valid &= p > self._floor * 1.0000001
            total += math.log(p)
            if action is not None and action != eos:
                prev = action
        return ExpertScore(logprob=total, num_tokens=len(words) + 1, valid=bool(valid))

    def entropy_rate(self) -> float:
        """Mean per-action entropy (nats) of the expert, averaged uniformly over (topic, word)."""
        p = self._action_probs
        return float(-(p * np.log(p)).sum(-1).mean())
