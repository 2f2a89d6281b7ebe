"""Ground-truth metrics against a synthetic expert whose likelihood is exact (docs/design.md, "Ground-truth
measures").

* coverage: `forward_kl` = E_{x~p_E}[log p_E(x) − log p_θ(x)] on held-out expert samples;
* precision: `expert_nll_of_samples`, `validity_rate` and `reverse_kl` =
  E_{x~p_θ}[log p_θ(x) − log p_E(x)] on the model's own samples;
* diversity relative to the expert's own: `relative_diversity`.

Conventions. Every KL or NLL here is a Monte Carlo estimate from a finite sample, normalised
per token: summed log-probabilities over all samples divided by the total number of expert
actions (words plus the EOS action), i.e. nats per action, token-weighted. The estimate of a KL
can come out slightly negative on a small sample. The `*_from_logprobs` functions are the pure
arithmetic, on numbers; the others fetch the numbers from an expert (and a model) first.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

from llm_irl.tasks.base import ExpertScore, SyntheticExpert

Groups = Sequence[Sequence[str]]


def _per_token_gap(minuend: Sequence[float], subtrahend: Sequence[float], num_tokens: Sequence[int]) -> float:
    """(Σ minuend − Σ subtrahend) / Σ num_tokens, checking the three are aligned."""
    if not len(minuend) == len(subtrahend) == len(num_tokens):
        raise ValueError(
            f"need one log-prob of each kind and one token count per sample, got "
            f"{len(minuend)}, {len(subtrahend)} and {len(num_tokens)}"
        )
    total = sum(num_tokens)
    if total <= 0:
        raise ValueError("need at least one sample with at least one token")
    return (math.fsum(minuend) - math.fsum(subtrahend)) / total


def forward_kl_from_logprobs(
    expert_logprobs: Sequence[float], model_logprobs: Sequence[float], num_tokens: Sequence[int]
) -> float:
    """Per-token forward KL estimate from per-sample sums: (Σ log p_E − Σ log p_θ) / Σ tokens.

    The samples must be drawn from the expert; each log-prob is the sum over the completion's
    tokens including EOS.
    """
    return _per_token_gap(expert_logprobs, model_logprobs, num_tokens)


def reverse_kl_from_logprobs(
    model_logprobs: Sequence[float], expert_logprobs: Sequence[float], num_tokens: Sequence[int]
) -> float:
    """Per-token reverse KL estimate from per-sample sums: (Σ log p_θ − Σ log p_E) / Σ tokens.

    The samples must be drawn from the model.
    """
    return _per_token_gap(model_logprobs, expert_logprobs, num_tokens)


def _expert_scores(expert: SyntheticExpert, prompts: Sequence[str], texts: Sequence[str]) -> list[ExpertScore]:
    return expert.score_many(list(prompts), list(texts))


def forward_kl(
    expert: SyntheticExpert,
    model,
    tokenizer,
    prompts: Sequence[str],
    completions: Sequence[str],
    **logprob_kw,
) -> float:
    """Monte Carlo estimate of the per-token forward KL(p_E ‖ p_θ), in nats per token.

    `prompts`/`completions` must be held-out samples from the expert (e.g.
    `expert.demonstrations(n, seed)` with an unused seed); the estimate is
    mean over those tokens of log p_E − log p_θ, with the model's teacher-forced log-probs from
    `llm_irl.scoring.completion_logprobs` (extra keywords go there). Low forward KL means the
    model covers what the expert says. The tokenizer must give one token per expert word (the
    word tokenizer of `llm_irl.builtin`); a token count that differs from the expert's, e.g.
    from truncation at `max_length`, raises instead of comparing different actions.
    """
    return forward_kl_at(expert, model, tokenizer, prompts, completions, (1.0,), **logprob_kw)[1.0]


def forward_kl_at(
    expert: SyntheticExpert,
    model,
    tokenizer,
    prompts: Sequence[str],
    completions: Sequence[str],
    temperatures: Sequence[float],
    **logprob_kw,
) -> dict[float, float]:
    """`forward_kl` against the model's sampling distribution at each temperature T, softmax(logits/(α·T)):
    {T: nats per token}, from one teacher-forced pass (`llm_irl.scoring.completion_logprobs_at`).

    This is coverage where the model is sampled: lowering T sharpens the samples and drops what
    the expert also says, so forward KL rises below the model's best temperature (and above it,
    as the distribution flattens). Against the expert's log-likelihood of samples at the same T it
    gives a quality–coverage curve whose both axes are per-token likelihoods, neither counting
    n-grams, so neither rewards short samples as Self-BLEU does.
    """
    from llm_irl.scoring import completion_logprobs_at  # torch-side import only when a model is scored

    scores = _expert_scores(expert, prompts, completions)
    by_t = completion_logprobs_at(model, tokenizer, list(prompts), list(completions), temperatures, **logprob_kw)
    for i, (s, (_, n_model)) in enumerate(zip(scores, next(iter(by_t.values())))):
        if n_model != s.num_tokens:
            raise ValueError(
                f"sample {i}: the model scored {n_model} tokens where the expert scored {s.num_tokens} "
                f"actions (truncated by max_length, or not a one-token-per-word tokenizer?)"
            )
    expert_side, counts = [s.logprob for s in scores], [s.num_tokens for s in scores]
    return {t: forward_kl_from_logprobs(expert_side, [lp for lp, _ in side], counts) for t, side in by_t.items()}


def expert_nll_of_samples(expert: SyntheticExpert, prompts: Sequence[str], samples: Sequence[str]) -> float:
    """Expert negative log-likelihood of (model) samples, nats per token incl. EOS; lower is better."""
    scores = _expert_scores(expert, prompts, samples)
    return -math.fsum(s.logprob for s in scores) / max(sum(s.num_tokens for s in scores), 1)


def validity_rate(expert: SyntheticExpert, prompts: Sequence[str], samples: Sequence[str]) -> float:
    """Fraction of samples the unsmoothed expert could have produced (every action allowed)."""
    scores = _expert_scores(expert, prompts, samples)
    return sum(s.valid for s in scores) / max(len(scores), 1)


def reverse_kl(
    expert: SyntheticExpert,
    prompts: Sequence[str],
    samples: Sequence[str],
    sample_logprobs: Sequence[float | Sequence[float]],
) -> float:
    """Monte Carlo estimate of the per-token reverse KL(p_θ ‖ p_E), in nats per token.

    `samples` are the model's own completions of `prompts` and `sample_logprobs` the model's
    log-probabilities of them: per sample either the sum over its tokens including the EOS that
    ended it, or the list of per-token log-probs (then its length must equal the expert's
    count, words + EOS). Samples cut off before EOS should be dropped or given their EOS
    log-prob, since the expert always charges the stop action. The reverse KL is defined here
    (finite) only because every expert is smoothed: p_E > 0 for every text, so log p_E is
    finite even on a model's mistakes. Low reverse KL means precision: the model says only
    what the expert would.
    """
    scores = _expert_scores(expert, prompts, samples)
    if len(sample_logprobs) != len(scores):
        raise ValueError(f"need one model log-prob entry per sample, got {len(sample_logprobs)} for {len(scores)}")
    model_sums = []
    for i, (lp, s) in enumerate(zip(sample_logprobs, scores)):
        if isinstance(lp, numbers.Real) or getattr(lp, "ndim", None) == 0:  # a sum (also numpy/torch scalars)
            model_sums.append(float(lp))
            continue
        per_token = [float(x) for x in lp]
        if len(per_token) != s.num_tokens:
            raise ValueError(
                f"sample {i}: {len(per_token)} model log-probs for {s.num_tokens} expert actions (words + EOS)"
            )
        model_sums.append(math.fsum(per_token))
    return reverse_kl_from_logprobs(model_sums, [s.logprob for s in scores], [s.num_tokens for s in scores])


def relative_diversity(
    model_groups: Groups | Sequence[str],
    expert_groups: Groups | Sequence[str],
    metric: Callable[[list[str]], float],
) -> float:
    """Model diversity over expert diversity: mean of `metric` over the model's groups divided by
    the same over the expert's, at equal sample counts.

    Groups are aligned (e.g. the k samples for each prompt); a flat list of strings is one
    pooled group (across-input). Count-sensitive metrics (distinct-n, self-BLEU, ...) are only
    comparable at equal counts, so the number of groups and each aligned pair of group sizes must
    match (see `llm_irl.metrics.stats.equalize_counts`). 1.0 means as diverse as the expert by
    this metric; for metrics where higher means *less* diverse (self-BLEU) read it inverted.
    Returns NaN when the expert's metric is 0 (the ratio is undefined).
    """
    model = _as_groups(model_groups)
    expert = _as_groups(expert_groups)
    if len(model) != len(expert):
        raise ValueError(
            f"relative_diversity needs equal counts: {len(model)} model groups vs {len(expert)} expert groups"
        )
    for i, (m, e) in enumerate(zip(model, expert)):
        if len(m) != len(e):
            raise ValueError(
                f"relative_diversity needs equal counts: "
                f"group {i} has {len(m)} model samples vs {len(e)} expert samples"
            )
    if not model:
        raise ValueError("relative_diversity needs at least one group")
    model_value = sum(metric(list(g)) for g in model) / len(model)
    expert_value = sum(metric(list(g)) for g in expert) / len(expert)
    return math.nan if expert_value == 0 else model_value / expert_value


def _as_groups(groups: Groups | Sequence[str]) -> list[list[str]]:
    if isinstance(groups, str):
        raise TypeError("expected groups of texts or a list of texts, got a single string")
    groups = list(groups)
    if groups and all(isinstance(g, str) for g in groups):
        return [groups]  # a flat list of texts: one pooled group
    return [list(g) for g in groups]
