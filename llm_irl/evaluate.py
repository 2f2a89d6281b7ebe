"""`llm-irl evaluate`: quality and diversity of one model's samples, across sampling temperatures.

run as (the command line is parsed in `llm_irl.cli`, which calls `evaluate_saved_model`):
    llm-irl evaluate runs/quickstart/runs/iq/seed0 --eval_dataset builtin:markov --k 8 \
        --temperatures 0,0.7,1.0,1.3 --output eval.json --samples samples.jsonl
    llm-irl evaluate runs/quickstart/runs/iq/seed0 --eval_dataset builtin:markov \
        --from_samples samples.jsonl --output again.json

Protocol (docs/design.md). For the first `num_prompts` prompts of the evaluation set (settings and
set: `llm_irl.eval_task`), k samples each at every temperature (0 = greedy). Per-input diversity:
the metric over each prompt's k samples, mean and bootstrap CI over prompts. Across-input
diversity: sample 0 of every prompt, pooled (no CI: resampling texts would add duplicates).
Quality, when the set allows it: the expert's own log-likelihood and validity when the prompts
come from a known synthetic expert (the log-likelihood also standardised to the expert's own
sample lengths, `expert_loglik_std`, since per-token likelihood depends on length by itself),
exact match when answers are checkable, BLEU/ROUGE against references; held-out NLL (and forward
KL under a known expert, also under each sampled temperature: the coverage axis of the frontier)
on the set's demonstrations.
With `embedding_model` set (the `embed` extra), sentence-embedding similarity to the reference and
diversity within a prompt's samples (`llm_irl.metrics.embedding`). Greedy decoding (T = 0) repeats
one decode k times, so what compares a prompt's k samples with each other (`NOT_AT_GREEDY`:
per-input diversity, best-of-k) is not reported there; pooled and quality figures are.
Shape, beside the expert's own: length in tokens (EOS included), share ended with EOS, share
with a loop (`llm_irl.metrics.shape`). From the model's implied reward (`llm_irl.rewards`): the
Spearman correlation of returns with per-sample quality, beside that of the plain log-likelihood
log π(y|x) (at γ = 1 an EOS-ended sample's return telescopes to V(s₀) + α·log π(y|x), so the
difference is what the reward adds), and the gain of best-of-k reranking by return.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, replace

import numpy as np

from llm_irl.eval_task import EvalConfig, EvalTask, eval_config, known_expert, load_task  # noqa: F401 (re-exported)
from llm_irl.generation import Sample, by_temperature, generate_samples, save_jsonl
from llm_irl.metrics import (
    bleu,
    compression_ratio,
    distinct_n,
    ead,
    estimate,
    mean_over_prompts,
    ngram_entropy,
    rouge,
    self_bleu,
    sentence_rouge1,
    spearman,
)
from llm_irl.metrics.catalogue import METRICS, format_estimate, metric_table, reportable, temperature_label
from llm_irl.metrics.embedding import per_prompt_embedding
from llm_irl.metrics.ground_truth import reverse_kl
from llm_irl.metrics.shape import eos_share, length_standardised, loop_share, mean_length
from llm_irl.prompts import prompt_ids
from llm_irl.rewards import best_of_n, implied_rewards
from llm_irl.special_tokens import eos_token_ids

logger = logging.getLogger(__name__)


def _over_prompts(per_prompt: Sequence[float], config: EvalConfig) -> dict:
    return mean_over_prompts(per_prompt, n_boot=config.n_boot, seed=config.sample_seed)


# ---------------------------------------------------------------------------- metrics


REFERENCE_SEED = 0  # the expert's reference lengths: one draw for every run, arm and seed


def expert_lengths(task: EvalTask, config: EvalConfig) -> list[int]:
    """Lengths (words + EOS) of the expert's own k samples per prompt, drawn with one fixed seed so every
    run and arm is standardised to the same reference."""
    rng = np.random.default_rng(REFERENCE_SEED)
    texts = task.expert.sample_many([p for p in task.prompts for _ in range(config.k)], rng)
    return [task.expert.completion_length(t) for t in texts]


def text_metrics(groups: list[list[str]], task: EvalTask, config: EvalConfig, vocab_size: int,
                 reference_lengths: Sequence[int] | None = None) -> dict[str, dict]:
    """Quality and diversity of texts grouped by prompt (k per prompt, in prompt order); with the
    expert's own `reference_lengths`, also its log-likelihood of the samples standardised to them."""
    out: dict[str, dict] = {}
    k = len(groups[0])
    flat = [t for g in groups for t in g]
    if task.expert is not None:
        # one expert pass: each figure below reads these scores
        in_order = iter(task.expert.score_many([task.prompts[i] for i, g in enumerate(groups) for _ in g], flat))
        scored = [[next(in_order) for _ in g] for g in groups]
        out["expert_loglik"] = _over_prompts(  # token-weighted within a prompt, as mean_logprob_per_token
            [sum(s.logprob for s in g) / max(sum(s.num_tokens for s in g), 1) for g in scored], config)
        out["validity"] = _over_prompts([sum(s.valid for s in g) / len(g) for g in scored], config)
        if reference_lengths:
            scores = [s for g in scored for s in g]
            std = length_standardised([s.num_tokens for s in scores], [s.logprob for s in scores], reference_lengths)
            if not math.isnan(std):  # NaN: the samples leave a length bin of the expert's empty
                out["expert_loglik_std"] = estimate(std, n=len(scores))
    if (check := task.checker()) is not None:
        out["exact_match"] = _over_prompts([np.mean([check(i, t) for t in g]) for i, g in enumerate(groups)], config)
    if task.references is not None:
        refs = [task.references[i] for i, g in enumerate(groups) for _ in g]
        out["bleu"] = estimate(bleu(flat, refs), n=len(flat))
        r = rouge(flat, refs)
        out["rouge1"] = _over_prompts(
            [np.mean([sentence_rouge1(t, task.references[i]) for t in g]) for i, g in enumerate(groups)], config)
        out["rougeL"] = estimate(r["rougeL"], n=len(flat))
    if k >= 2:
        out["self_bleu_per_input"] = _over_prompts([self_bleu(g) for g in groups], config)
        out["distinct_2_per_input"] = _over_prompts([distinct_n(g, 2) for g in groups], config)
    if config.embedding_model:
        for name, values in per_prompt_embedding(groups, task.references, config.embedding_model).items():
            out[name] = _over_prompts(values, config)
    across = [g[0] for g in groups]
    if len(across) >= 2:
        out["self_bleu_across"] = estimate(self_bleu(across), n=len(across))
    out["distinct_2_across"] = estimate(distinct_n(across, 2), n=len(across))
    out["ead_2_across"] = estimate(ead(across, 2, vocab_size=vocab_size), n=len(across))
    out["entropy_2_across"] = estimate(ngram_entropy(across, 2), n=len(across))
    if any(across):
        out["compression_across"] = estimate(compression_ratio(across), n=len(across))
    return out


def shape_metrics(groups: list[list[tuple[Sequence[int], bool]]], config: EvalConfig) -> dict[str, dict]:
    """Length (tokens, EOS included), share ended with EOS and share with a loop (`llm_irl.metrics.shape`),
    per prompt then bootstrapped over prompts, from (completion ids, ended with EOS) per sample."""
    def actions(ids, ended):  # a loop is in what was written: the final EOS is not part of it
        return list(ids[:-1]) if ended else list(ids)

    return {
        "mean_length": _over_prompts([mean_length([ids for ids, _ in g]) for g in groups], config),
        "terminated": _over_prompts([eos_share([ended for _, ended in g]) for g in groups], config),
        "loop_share": _over_prompts([loop_share([actions(*sample) for sample in g]) for g in groups], config),
    }


def policy_metrics(groups: list[list[Sample]], model, tokenizer, task: EvalTask, config: EvalConfig) -> dict[str, dict]:
    """What needs the model: entropy, implied-reward returns against quality, best-of-k."""
    flat = [s for g in groups for s in g]
    ids = {g[0].prompt_index: prompt_ids(tokenizer, g[0].prompt) for g in groups}  # one chat rendering per prompt
    r = implied_rewards(model, tokenizer, [ids[s.prompt_index] for s in flat],
                        [s.completion_ids for s in flat], gamma=config.reward_gamma,
                        batch_size=config.sample_batch_size)
    out = {"policy_entropy": estimate(r.mean_entropy, n=sum(len(s.completion_ids) for s in flat))}
    # T = 1 and no nucleus: the samples come from π itself, and their log-probs are log π
    on_policy = flat[0].temperature == 1.0 and flat[0].top_p == 1.0
    if task.expert is not None and on_policy and (rkl := reverse_kl_figure(flat, task, tokenizer)) is not None:
        out["reverse_kl"] = rkl
    if (quality := task.sample_quality()) is not None:
        _, fn = quality
        q = np.array(fn([s.prompt_index for s in flat], [s.sample for s in flat]))
        rho = spearman(r.returns, q)
        if not math.isnan(rho):
            out["reward_quality_spearman"] = estimate(rho, n=len(flat))
        if on_policy:  # the plain log-likelihood log π(y|x), to read what the reward adds to it
            rho = spearman([math.fsum(s.logprobs) for s in flat], q)
            if not math.isnan(rho):
                out["loglik_quality_spearman"] = estimate(rho, n=len(flat))
        k = len(groups[0])
        if k >= 2:
            best = best_of_n(r.returns, k)
            per_prompt = q[best] - q.reshape(-1, k).mean(axis=1)
            out["best_of_k_gain"] = _over_prompts(per_prompt, config)
    return out


def reverse_kl_figure(samples: Sequence[Sample], task: EvalTask, tokenizer) -> dict | None:
    """Reverse KL(π ‖ p_E) per token from samples drawn at T = 1, top_p 1 (their log-probs are log π), or None
    when no sample ended or the expert cannot score them action by action (logged). Only samples that ended
    with EOS count: the expert charges the stop action (`terminated` says what share that is)."""
    ended = [s for s in samples if s.terminated]
    if not ended:
        return None
    # the actions taken, where the expert reads them: decode -> encode does not always round-trip
    taken = task.expert.reads_token_ids(tokenizer)
    try:  # else one token per expert word, as for forward KL
        rkl = reverse_kl(task.expert, [s.prompt for s in ended], [s.completion_ids if taken else s.sample for s in ended],
                         [s.logprobs for s in ended])
    except ValueError as e:
        logger.warning("reverse KL skipped: %s", e)
        return None
    return estimate(rkl, n=len(ended))


def heldout_metrics(model, tokenizer, task: EvalTask, temperatures: Sequence[float] = ()) -> tuple[dict, dict]:
    """Figures of the set's held-out demonstrations: ({"heldout_nll", "forward_kl"} at T = 1,
    {temperature key: {"forward_kl_at_t": figure}} for each sampled temperature in `temperatures`).

    Forward KL at T scores the demonstrations under the distribution the samples at T were drawn
    from: the coverage axis of the quality–coverage frontier (`llm_irl.metrics.ground_truth.forward_kl_at`).
    """
    from llm_irl.metrics.ground_truth import forward_kl_at
    from llm_irl.scoring import mean_nll

    if not task.heldout:
        return {}, {}
    prompts, completions = map(list, zip(*task.heldout))
    out = {"heldout_nll": estimate(mean_nll(model, tokenizer, prompts, completions), n=len(prompts))}
    by_t = {}
    if task.expert is not None:
        sampled = sorted({float(t) for t in temperatures if float(t) > 0})  # greedy has no likelihood to score
        try:  # needs one token per expert word; a subword tokenizer cannot be compared action by action
            kl = forward_kl_at(task.expert, model, tokenizer, prompts, completions, sorted({1.0, *sampled}))
            out["forward_kl"] = estimate(kl[1.0], n=len(prompts))
            by_t = {f"{t:g}": {"forward_kl_at_t": estimate(kl[t], n=len(prompts))} for t in sampled}
        except ValueError as e:
            logger.warning("forward KL skipped: %s", e)
    return out, by_t


DRAW_SEED_STRIDE = 10_000  # draw d samples with seed sample_seed + d·stride: draw 0 is the single-draw run


def draw_seed(sample_seed: int, draw: int) -> int:
    return sample_seed + DRAW_SEED_STRIDE * draw


def draw_path(samples_path: str | None, draw: int) -> str | None:
    """samples.jsonl for draw 0 (what a single-draw run writes), samples.draw1.jsonl for draw 1, ..."""
    if samples_path is None or draw == 0:
        return samples_path
    root, ext = os.path.splitext(samples_path)
    return f"{root}.draw{draw}{ext}"


def mean_over_draws(draws: list[dict]) -> dict:
    """One temperature section {T: {figure: estimate}} from several sampling draws of one model: each figure's
    value, lo and hi averaged over the draws (lo/hi stay each draw's interval over prompts, so they are
    conservative for the mean), `n` the draws' sum. Figures missing from any draw are left out."""

    def mean(estimates: list[dict]) -> dict:
        bounds = {b: None if any(e[b] is None for e in estimates) else float(np.mean([e[b] for e in estimates]))
                  for b in ("lo", "hi")}
        return {"value": float(np.mean([e["value"] for e in estimates])), **bounds,
                "n": sum(e.get("n") or 0 for e in estimates)}

    return {t: {name: mean([d[t][name] for d in draws]) for name in draws[0][t] if all(name in d[t] for d in draws)}
            for t in draws[0]}


def sample_figures(model, tokenizer, task: EvalTask, config: EvalConfig, *, samples_path: str | None = None,
                   samples: list[Sample] | None = None, progress: bool = True) -> dict:
    """The per-temperature figures of one sampling draw (drawn with `config.sample_seed` unless `samples` are
    given): {"0.7": {figure: estimate}, ...}, before the held-out figures are added."""
    if samples is None:
        samples = generate_samples(model, tokenizer, task.prompts, k=config.k, temperatures=config.temperatures,
                                   top_p=config.top_p, max_new_tokens=config.max_new_tokens, seed=config.sample_seed,
                                   batch_size=config.sample_batch_size, progress=progress)
        if samples_path:
            save_jsonl(samples, samples_path)
    vocab_size = len(tokenizer)
    reference = expert_lengths(task, config) if task.expert is not None else None
    per_t = {}
    for t, groups in by_temperature(samples).items():
        figures = {**text_metrics([[s.sample for s in g] for g in groups], task, config, vocab_size, reference),
                   **shape_metrics([[(s.completion_ids, s.terminated) for s in g] for g in groups], config),
                   **policy_metrics(groups, model, tokenizer, task, config)}
        # greedy: each prompt's k samples are one decode repeated, so what compares them with each other
        # is trivial (Self-BLEU 1, or below 1 for short copies under its smoothing; best-of-k gain 0)
        per_t[f"{t:g}"] = reportable(t, figures)
    return per_t


def evaluate_model(model, tokenizer, task: EvalTask, config: EvalConfig, *, samples_path: str | None = None,
                   samples: list[Sample] | None = None, progress: bool = True) -> dict:
    """Every figure of one model: {"metrics": {...}, "temperatures": {"0.7": {...}, ...}}.

    Samples are drawn (and saved to `samples_path` if given) unless `samples` are passed, e.g.
    read back with `llm_irl.generation.load_jsonl` to recompute the figures without sampling again.
    Each figure is {"value", "lo", "hi", "n"} (`llm_irl.metrics.stats.estimate`); lo/hi are a 95% bootstrap interval
    over prompts where the metric is per prompt, None where it is pooled.
    With `config.sample_draws` D > 1 (and no `samples` passed) the model is sampled D times (`draw_seed`; draw d
    saved to `draw_path(samples_path, d)`), each draw's figures are kept under "draws" and "temperatures" holds
    their mean (`mean_over_draws`): sampling noise averaged within the model, so intervals over seeds are
    narrower by what the draws remove. The held-out figures do not sample and are computed once.
    """
    draws = 1 if samples is not None else config.sample_draws
    per_draw = [sample_figures(model, tokenizer, task, replace(config, sample_seed=draw_seed(config.sample_seed, d)),
                               samples_path=draw_path(samples_path, d), samples=samples, progress=progress)
                for d in range(draws)]
    per_t = mean_over_draws(per_draw) if draws > 1 else per_draw[0]
    heldout, coverage = heldout_metrics(model, tokenizer, task, [float(t) for t in per_t])
    for t, figures in coverage.items():
        per_t[t].update(figures)
    extra = {"draws": per_draw, "sample_draws": draws} if draws > 1 else {}
    return {"metrics": heldout, "temperatures": per_t, **extra,
            "sample_quality": (task.sample_quality() or (None,))[0]}


def evaluate_expert(task: EvalTask, config: EvalConfig, tokenizer) -> dict | None:
    """The expert's own samples under the same text and shape metrics: the reference point of every
    table and plot. Lengths count the model's tokens (`tokenizer`), EOS included: the expert's
    samples always end with it."""
    if task.expert is None:
        return None
    rng = np.random.default_rng(config.sample_seed)
    texts = task.expert.sample_many([p for p in task.prompts for _ in range(config.k)], rng)
    groups = [texts[i * config.k:(i + 1) * config.k] for i in range(len(task.prompts))]
    eos = eos_token_ids(tokenizer)[0]
    shapes = [[(tokenizer(t, add_special_tokens=False)["input_ids"] + [eos], True) for t in g] for g in groups]
    reference = expert_lengths(task, config)
    return {"metrics": {}, "temperatures": {"expert": {**text_metrics(groups, task, config, len(tokenizer), reference),
                                                       **shape_metrics(shapes, config)}}}


def evaluate_saved_model(name: str, task: EvalTask, config: EvalConfig, *, trust_remote_code: bool = False,
                         samples_path: str | None = None, samples: list[Sample] | None = None) -> dict:
    """Load a model by name (directory, hub name or builtin:tiny) on the GPU when there is one and
    evaluate it, with the expert's own samples beside when the set has one: the content of
    `llm-irl evaluate --output`, its settings included."""
    import torch

    from llm_irl.modeling import load_model, load_tokenizer

    tok = load_tokenizer(name, trust_remote_code=trust_remote_code)
    model = load_model(name, trust_remote_code=trust_remote_code)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    return {"model": name, "settings": asdict(config),
            **evaluate_model(model, tok, task, config, samples_path=samples_path, samples=samples),
            "expert": evaluate_expert(task, config, tok)}


def format_table(result: dict) -> str:
    """Rows = metrics, columns = temperatures (then the expert's own samples, when known); each cell a
    value and its 95% CI over prompts."""
    temps = list(result["temperatures"])
    columns = {temperature_label(t): result["temperatures"][t] for t in temps}
    if result.get("expert"):
        columns["expert (own samples)"] = result["expert"]["temperatures"]["expert"]
    names = [n for n in METRICS if any(n in c for c in columns.values())]
    overall = [[METRICS[n].label, METRICS[n].sense, f"{format_estimate(e)} (all T)", *[""] * (len(columns) - 1)]
               for n, e in result["metrics"].items()]
    return "\n".join(metric_table(columns, names, overall))
