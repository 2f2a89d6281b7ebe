"""`llm-irl evaluate`: quality and diversity of one model's samples, across sampling temperatures.

run as (the command line is parsed in `llm_irl.cli`, which calls `evaluate_saved_model`):
    llm-irl evaluate runs/quickstart/runs/iq/seed0 --eval_dataset builtin:markov --k 8 \
        --temperatures 0.7,1.0,1.3 --output eval.json --samples samples.jsonl
    llm-irl evaluate runs/quickstart/runs/iq/seed0 --from_samples samples.jsonl --output again.json

Protocol (DESIGN.md §4). For the first `num_prompts` prompts of the evaluation set, k samples each
at every temperature. Per-input diversity: the metric over each prompt's k samples, mean and
bootstrap CI over prompts. Across-input diversity: sample 0 of every prompt, pooled (no CI:
resampling texts would add duplicates). Quality, when the set allows it: the expert's own
log-likelihood and validity when the prompts come from a known synthetic expert (builtin:markov),
exact match when answers are checkable, BLEU/ROUGE against references; held-out NLL (and forward
KL under a known expert) on the set's demonstrations. From the model's implied reward
(`llm_irl.rewards`): the Spearman correlation of returns with per-sample quality, and the gain
of best-of-k reranking by return over a random sample.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from llm_irl.data import read_rows
from llm_irl.errors import DataError
from llm_irl.generation import Sample, by_temperature, generate_samples, save_jsonl
from llm_irl.metrics import (
    bleu,
    compression_ratio,
    distinct_n,
    ead,
    estimate,
    extract_last_number,
    mean_over_prompts,
    ngram_entropy,
    rouge,
    self_bleu,
    sentence_rouge1,
)
from llm_irl.metrics.catalogue import METRICS, format_estimate, metric_table
from llm_irl.metrics.ground_truth import reverse_kl
from llm_irl.recipe import parse_config
from llm_irl.rewards import best_of_n, implied_rewards, spearman
from llm_irl.tasks import SyntheticExpert

logger = logging.getLogger(__name__)

EXACT_MATCH = ("none", "text", "number")


@dataclass
class EvalConfig:
    """How a model is evaluated; the same keys sit at the top level of a compare recipe."""

    eval_dataset: str = field(
        default="builtin:markov",
        metadata={"help": "Prompts (and held-out demonstrations): a .jsonl/.json/.csv/.parquet file of "
                          "{prompt[, completion]} rows, a datasets name, or builtin:markov."})
    eval_split: str = field(default="test", metadata={"help": "Split of eval_dataset (builtin:markov: test)."})
    dataset_config: str | None = field(default=None, metadata={"help": "Config name of a datasets name."})
    num_prompts: int = field(default=50, metadata={"help": "Evaluate on the first this many prompts."})
    k: int = field(default=8, metadata={"help": "Samples per prompt (per-input diversity needs k >= 2)."})
    temperatures: list[float] = field(default_factory=lambda: [0.7, 1.0, 1.3],
                                      metadata={"help": "Sampling temperatures, each > 0."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass, in (0, 1]."})
    max_new_tokens: int = field(default=64, metadata={"help": "Length limit of a sample, in tokens."})
    sample_seed: int = field(default=0, metadata={"help": "Seed of the sampling run."})
    sample_batch_size: int = field(default=64, metadata={"help": "Sequences per generate / scoring batch."})
    reward_gamma: float = field(
        default=0.99, metadata={"help": "Discount γ of the implied reward r = Q − γV(s') and of returns; "
                                        "one value for every model, so their rewards compare."})
    references: bool | None = field(
        default=None, metadata={"help": "Score BLEU/ROUGE against the rows' completions. Default: when the "
                                        "rows have completions and no synthetic expert is known."})
    exact_match: str = field(
        default="none", metadata={"help": "Exact match against the rows' completions: none, text (stripped "
                                          "strings) or number (last number). Experts with checkable answers "
                                          "(arithmetic) are always checked."})
    num_heldout: int = field(default=1000, metadata={"help": "Held-out demonstrations for NLL (first N rows)."})
    n_boot: int = field(default=1000, metadata={"help": "Bootstrap resamples for CIs over prompts."})

    def __post_init__(self):
        if self.num_prompts < 1 or self.k < 1:
            raise ValueError(f"num_prompts and k must be >= 1, got {self.num_prompts} and {self.k}")
        if not self.temperatures or any(t <= 0 for t in self.temperatures):
            raise ValueError(f"temperatures must be a non-empty list of values > 0, got {self.temperatures}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.exact_match not in EXACT_MATCH:
            raise ValueError(f"exact_match must be one of {', '.join(EXACT_MATCH)}, got {self.exact_match!r}")
        if not 0.0 < self.reward_gamma <= 1.0:
            raise ValueError(f"reward_gamma must be in (0, 1], got {self.reward_gamma}")


def eval_config(values: dict, source: str = "recipe") -> EvalConfig:
    """EvalConfig from YAML values or `--key value` strings, through the recipes' parser (`parse_config`);
    lists may also be given as "a,b,c"."""
    list_keys = {f.name for f in fields(EvalConfig) if "list" in str(f.type)}
    values = {k: (v.split(",") if k in list_keys and isinstance(v, str) else v) for k, v in values.items()}
    (config,) = parse_config((EvalConfig,), values, source=source)
    return config


def _over_prompts(per_prompt: Sequence[float], config: EvalConfig) -> dict:
    return mean_over_prompts(per_prompt, n_boot=config.n_boot, seed=config.sample_seed)


# ---------------------------------------------------------------------------- the task


@dataclass
class EvalTask:
    """Prompts, and whatever the evaluation set offers to judge samples by."""

    prompts: list[str]
    references: list[str] | None  # one per prompt, for BLEU/ROUGE
    answers: list[str] | None  # one per prompt, for exact match against the rows
    heldout: list[tuple[str, str]]  # (prompt, completion) demonstrations for held-out NLL
    expert: SyntheticExpert | None
    exact_match: str  # none | text | number

    def checker(self) -> Callable[[int, str], bool] | None:
        """correct(prompt_index, sample), when answers are checkable."""
        if self.expert is not None and hasattr(self.expert, "is_correct"):
            return lambda i, text: bool(self.expert.is_correct(self.prompts[i], text))
        if self.answers is not None and self.exact_match != "none":
            extract = extract_last_number if self.exact_match == "number" else str.strip
            return lambda i, text: (a := extract(text)) is not None and a == extract(self.answers[i])
        return None

    def sample_quality(self) -> tuple[str, Callable[[int, str], float]] | None:
        """(name, quality(prompt_index, sample)) per sample, to correlate rewards with."""
        if self.expert is not None:
            return "expert_loglik", lambda i, text: self.expert.score(self.prompts[i], text).logprob_per_token
        if (check := self.checker()) is not None:
            return "exact_match", lambda i, text: float(check(i, text))
        if self.references is not None:
            return "rouge1", lambda i, text: sentence_rouge1(text, self.references[i])
        return None


def known_expert(source: str) -> SyntheticExpert | None:
    """The synthetic expert behind a builtin dataset, whose likelihood is exact; None otherwise."""
    from llm_irl.builtin import expert_of

    return expert_of(source)


def load_task(config: EvalConfig) -> EvalTask:
    rows = read_rows(config.eval_dataset, config.eval_split, config.dataset_config)
    for row in rows:
        if not isinstance(row.fields, dict) or not isinstance(row.fields.get("prompt"), str):
            raise DataError(f"{row.where}: evaluation needs rows with a string 'prompt' (and optionally 'completion')")
    chosen = [r.fields for r in rows[: config.num_prompts]]
    if len(chosen) < config.num_prompts:
        logger.warning("%s has %d prompts, fewer than num_prompts=%d", config.eval_dataset, len(chosen),
                       config.num_prompts)
    has_completions = all(isinstance(r.get("completion"), str) for r in chosen)
    expert = known_expert(config.eval_dataset)
    use_refs = config.references if config.references is not None else (has_completions and expert is None)
    if (use_refs or config.exact_match != "none") and not has_completions:
        raise DataError(f"{config.eval_dataset}: references or exact_match need a string 'completion' in every row")
    completions = [r["completion"] for r in chosen] if has_completions else None
    heldout = [(r.fields["prompt"], r.fields["completion"]) for r in rows[: config.num_heldout]
               if isinstance(r.fields.get("completion"), str)]
    return EvalTask(prompts=[r["prompt"] for r in chosen], references=completions if use_refs else None,
                    answers=completions, heldout=heldout, expert=expert, exact_match=config.exact_match)


# ---------------------------------------------------------------------------- metrics


def text_metrics(groups: list[list[str]], task: EvalTask, config: EvalConfig, vocab_size: int) -> dict[str, dict]:
    """Quality and diversity of texts grouped by prompt (k per prompt, in prompt order)."""
    out: dict[str, dict] = {}
    k = len(groups[0])
    flat = [t for g in groups for t in g]
    if task.expert is not None:
        per_prompt = [([task.prompts[i]] * len(g), g) for i, g in enumerate(groups)]
        out["expert_loglik"] = _over_prompts([task.expert.mean_logprob_per_token(*pg) for pg in per_prompt], config)
        out["validity"] = _over_prompts([task.expert.validity_rate(*pg) for pg in per_prompt], config)
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
    across = [g[0] for g in groups]
    if len(across) >= 2:
        out["self_bleu_across"] = estimate(self_bleu(across), n=len(across))
    out["distinct_2_across"] = estimate(distinct_n(across, 2), n=len(across))
    out["ead_2_across"] = estimate(ead(across, 2, vocab_size=vocab_size), n=len(across))
    out["entropy_2_across"] = estimate(ngram_entropy(across, 2), n=len(across))
    if any(across):
        out["compression_across"] = estimate(compression_ratio(across), n=len(across))
    return out


def policy_metrics(groups: list[list[Sample]], model, tokenizer, task: EvalTask, config: EvalConfig) -> dict[str, dict]:
    """What needs the model: entropy, implied-reward returns against quality, best-of-k."""
    flat = [s for g in groups for s in g]
    prompt_ids = [tokenizer(s.prompt, add_special_tokens=True)["input_ids"] for s in flat]
    r = implied_rewards(model, tokenizer, prompt_ids, [s.completion_ids for s in flat], gamma=config.reward_gamma,
                        batch_size=config.sample_batch_size)
    out = {
        "policy_entropy": estimate(r.mean_entropy, n=sum(len(s.completion_ids) for s in flat)),
        "mean_length": estimate(np.mean([len(s.completion_ids) for s in flat]), n=len(flat)),
        "terminated": estimate(np.mean([s.terminated for s in flat]), n=len(flat)),
    }
    on_policy = flat[0].temperature == 1.0 and flat[0].top_p == 1.0
    if task.expert is not None and on_policy:
        # reverse KL needs samples from π itself (T = 1, no nucleus) and the expert's EOS charge, so
        # only samples that ended with EOS count; `terminated` says what fraction that is
        ended = [s for s in flat if s.terminated]
        if ended:
            try:  # one token per expert word, as for forward KL
                rkl = reverse_kl(task.expert, [s.prompt for s in ended], [s.sample for s in ended],
                                 [s.logprobs for s in ended])
                out["reverse_kl"] = estimate(rkl, n=len(ended))
            except ValueError as e:
                logger.warning("reverse KL skipped: %s", e)
    if (quality := task.sample_quality()) is not None:
        _, fn = quality
        q = np.array([fn(s.prompt_index, s.sample) for s in flat])
        rho = spearman(r.returns, q)
        if not math.isnan(rho):
            out["reward_quality_spearman"] = estimate(rho, n=len(flat))
        k = len(groups[0])
        if k >= 2:
            best = best_of_n(r.returns, k)
            per_prompt = q[best] - q.reshape(-1, k).mean(axis=1)
            out["best_of_k_gain"] = _over_prompts(per_prompt, config)
    return out


def heldout_metrics(model, tokenizer, task: EvalTask) -> dict[str, dict]:
    from llm_irl.metrics.ground_truth import forward_kl
    from llm_irl.scoring import mean_nll

    if not task.heldout:
        return {}
    prompts, completions = map(list, zip(*task.heldout))
    out = {"heldout_nll": estimate(mean_nll(model, tokenizer, prompts, completions), n=len(prompts))}
    if task.expert is not None:
        try:  # needs one token per expert word; a subword tokenizer cannot be compared action by action
            kl = forward_kl(task.expert, model, tokenizer, prompts, completions)
            out["forward_kl"] = estimate(kl, n=len(prompts))
        except ValueError as e:
            logger.warning("forward KL skipped: %s", e)
    return out


def evaluate_model(model, tokenizer, task: EvalTask, config: EvalConfig, *, samples_path: str | None = None,
                   samples: list[Sample] | None = None, progress: bool = True) -> dict:
    """Every figure of one model: {"metrics": {...}, "temperatures": {"0.7": {...}, ...}}.

    Samples are drawn (and saved to `samples_path` if given) unless `samples` are passed, e.g.
    read back with `llm_irl.generation.load_jsonl` to recompute the figures without sampling again.
    Each figure is {"value", "lo", "hi", "n"} (`llm_irl.metrics.stats.estimate`); lo/hi are a 95% bootstrap interval
    over prompts where the metric is per prompt, None where it is pooled.
    """
    if samples is None:
        samples = generate_samples(model, tokenizer, task.prompts, k=config.k, temperatures=config.temperatures,
                                   top_p=config.top_p, max_new_tokens=config.max_new_tokens, seed=config.sample_seed,
                                   batch_size=config.sample_batch_size, progress=progress)
        if samples_path:
            save_jsonl(samples, samples_path)
    vocab_size = len(tokenizer)
    per_t = {}
    for t, groups in by_temperature(samples).items():
        per_t[f"{t:g}"] = {**text_metrics([[s.sample for s in g] for g in groups], task, config, vocab_size),
                           **policy_metrics(groups, model, tokenizer, task, config)}
    return {"metrics": heldout_metrics(model, tokenizer, task), "temperatures": per_t,
            "sample_quality": (task.sample_quality() or (None,))[0]}


def evaluate_expert(task: EvalTask, config: EvalConfig, vocab_size: int) -> dict | None:
    """The expert's own samples under the same text metrics: the reference point of every plot."""
    if task.expert is None:
        return None
    rng = np.random.default_rng(config.sample_seed)
    groups = [[task.expert.sample_completion(p, rng) for _ in range(config.k)] for p in task.prompts]
    return {"metrics": {}, "temperatures": {"expert": text_metrics(groups, task, config, vocab_size)}}


def evaluate_saved_model(name: str, task: EvalTask, config: EvalConfig, *, trust_remote_code: bool = False,
                         samples_path: str | None = None, samples: list[Sample] | None = None) -> dict:
    """Load a model by name (directory, hub name or builtin:tiny) on the GPU when there is one and
    evaluate it: the content of `llm-irl evaluate`'s eval.json, its settings included."""
    import torch

    from llm_irl.modeling import load_model, load_tokenizer

    tok = load_tokenizer(name, trust_remote_code=trust_remote_code)
    model = load_model(name, trust_remote_code=trust_remote_code)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    return {"model": name, "settings": asdict(config),
            **evaluate_model(model, tok, task, config, samples_path=samples_path, samples=samples)}


def format_table(result: dict) -> str:
    """Rows = metrics, columns = temperatures; each cell a value and its 95% CI over prompts."""
    temps = list(result["temperatures"])
    columns = {f"T={t}": result["temperatures"][t] for t in temps}
    names = [n for n in METRICS if any(n in c for c in columns.values())]
    overall = [[METRICS[n].label, METRICS[n].sense, f"{format_estimate(e)} (all T)", *[""] * (len(temps) - 1)]
               for n, e in result["metrics"].items()]
    return "\n".join(metric_table(columns, names, overall))
