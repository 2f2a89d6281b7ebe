"""The contract every synthetic expert honours: seeded sampling and an exact log-likelihood.

Texts are whitespace-separated words and every word is one token of the embedded tokenizer
(see `llm_irl.builtin`), so the expert and the model score the same action sequence. A
completion's likelihood includes the decision to stop (the EOS action), so an expert that
would have kept talking is charged for a sample that stops early.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ExpertScore:
    """Exact log-likelihood of one completion under the expert."""

    logprob: float  # log p_E(completion, EOS | prompt), natural log
    num_tokens: int  # words plus the EOS action
    valid: bool  # True when every action had probability above the expert's smoothing floor

    @property
    def logprob_per_token(self) -> float:
        return self.logprob / max(self.num_tokens, 1)


class SyntheticExpert(ABC):
    """A seeded demonstrator whose likelihood of any text is exact."""

    #: every word the expert can emit or condition on; the embedded tokenizer's vocabulary
    vocab: list[str]

    @abstractmethod
    def sample_prompts(self, n: int, rng: np.random.Generator) -> list[str]:
        """Draw `n` prompts from the task's prompt distribution."""

    @abstractmethod
    def sample_completion(self, prompt: str, rng: np.random.Generator) -> str:
        """Draw one completion (without the EOS marker) from p_E(· | prompt)."""

    @abstractmethod
    def score(self, prompt: str, completion: str) -> ExpertScore:
        """Exact log p_E(completion followed by EOS | prompt)."""

    def sample_many(self, prompts: Sequence, rng: np.random.Generator) -> list[str]:
        """One completion per prompt; experts that batch (a language model) override it."""
        return [self.sample_completion(p, rng) for p in prompts]

    def score_many(self, prompts: Sequence, completions: Sequence[str]) -> list[ExpertScore]:
        """`score` of each pair; experts that batch (a language model) override it."""
        if len(prompts) != len(completions):
            raise ValueError(f"need one completion per prompt, got {len(prompts)} prompts and "
                             f"{len(completions)} completions")
        return [self.score(p, c) for p, c in zip(prompts, completions)]

    def reads_token_ids(self, tokenizer) -> bool:
        """True when `score_many` can take a model's token ids as they are (the expert shares the model's
        tokenizer), so a sample is judged on the actions taken, not on its text tokenised again."""
        return False

    def completion_length(self, completion: str) -> int:
        """Actions in a completion: its words plus the EOS action."""
        return len(completion.split()) + 1

    def demonstrations(self, n: int, seed: int) -> list[dict[str, str]]:
        """`n` prompt/completion rows, reproducible from `seed`."""
        rng = np.random.default_rng(seed)
        prompts = self.sample_prompts(n, rng)
        return [{"prompt": p, "completion": c} for p, c in zip(prompts, self.sample_many(prompts, rng))]

    def mean_logprob_per_token(self, prompts: list[str], completions: list[str]) -> float:
        """Token-weighted mean expert log-likelihood of samples (higher = closer to the expert)."""
        scores = self.score_many(prompts, completions)
        total = sum(s.logprob for s in scores)
        return total / max(sum(s.num_tokens for s in scores), 1)

    def validity_rate(self, prompts: list[str], completions: list[str]) -> float:
        """Fraction of samples the unsmoothed expert could have produced."""
        scores = self.score_many(prompts, completions)
        return sum(s.valid for s in scores) / max(len(scores), 1)


def log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf
