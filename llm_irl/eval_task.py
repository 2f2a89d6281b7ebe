"""What an evaluation runs on: its settings (`EvalConfig`) and the evaluation set (`EvalTask`): prompts,
and whatever the set offers to judge samples by.

The set is named, never guessed: `eval_dataset` has no default, so a user's model is not scored
against the embedded Markov expert by accident. Only what applies is measured: the expert's
log-likelihood, validity and the KLs only when an expert is known (the synthetic expert of a
`builtin:` dataset, or a language model named by `expert_model`: `llm_irl.tasks.lm_expert`),
BLEU/ROUGE when the rows carry reference completions, exact match when asked for (or when the expert's answers are checkable). Rows are prompt/completion strings,
`messages` conversations or TRL's conversational prompt/completion (`llm_irl.prompts`). Embedding
figures only when `embedding_model` names an encoder (`llm_irl.metrics.embedding`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

from llm_irl.defaults import IQ_GAMMA
from llm_irl.errors import ConfigError, DataError
from llm_irl.metrics import extract_last_number, sentence_rouge1
from llm_irl.metrics.embedding import require_encoder
from llm_irl.prompts import Prompt, prompt_and_reference
from llm_irl.recipe import parse_config
from llm_irl.tasks import SyntheticExpert

logger = logging.getLogger(__name__)

EXACT_MATCH = ("none", "text", "number")


@dataclass
class EvalConfig:
    """How a model is evaluated; the same keys sit at the top level of a compare recipe."""

    eval_dataset: str | None = field(
        default=None,
        metadata={"help": "Prompts (and held-out demonstrations): a .jsonl/.json/.csv/.parquet file of "
                          "{prompt[, completion]}, {messages} or conversational prompt/completion rows, a "
                          "datasets name, or builtin:TASK (a synthetic expert, scored exactly). Required."})
    eval_split: str = field(default="test", metadata={"help": "Split of eval_dataset (builtin:markov: test)."})
    dataset_config: str | None = field(default=None, metadata={"help": "Config name of a datasets name."})
    num_prompts: int = field(default=50, metadata={"help": "Evaluate on the first this many prompts."})
    k: int = field(default=8, metadata={"help": "Samples per prompt (per-input diversity needs k >= 2)."})
    temperatures: list[float] = field(
        default_factory=lambda: [0.7, 1.0, 1.3],
        metadata={"help": "Sampling temperatures, each >= 0, relative to the trained policy; 0 = greedy "
                          "decoding (one decode per prompt, repeated k times)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass, in (0, 1]."})
    max_new_tokens: int = field(default=64, metadata={"help": "Length limit of a sample, in tokens."})
    sample_seed: int = field(default=0, metadata={"help": "Seed of the sampling run."})
    sample_draws: int = field(
        default=1, metadata={"help": "Independent sampling draws per model (seeds sample_seed + 10000·d); each "
                                     "figure is their mean, so a compare's intervals over seeds carry less "
                                     "sampling noise. Costs a sampling pass per draw."})
    sample_batch_size: int = field(default=64, metadata={"help": "Sequences per generate / scoring batch."})
    reward_gamma: float = field(
        default=IQ_GAMMA, metadata={"help": "Discount γ of the implied reward r = Q − γV(s') and of returns; "
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
    embedding_model: str | None = field(
        default=None, metadata={"help": "A sentence-transformers model (local folder or hub id) for embedding "
                                        "similarity to the reference and embedding diversity within a prompt's "
                                        "samples; needs the embed extra (pip install 'llm_irl[embed]'). Default: "
                                        "none, not computed."})

    expert_model: str | None = field(
        default=None, metadata={"help": "A causal LM (local folder or hub id) as the expert whose exact likelihood "
                                        "judges the samples (expert log-likelihood, forward and reverse KL), as "
                                        "builtin: sets' synthetic experts do; the held-out rows should be its own "
                                        "samples. Default: none."})
    expert_instruction: str | None = field(
        default=None, metadata={"help": "An instruction in the expert's context only (its system turn, or a "
                                        "prefix line of a string prompt): context distillation."})
    expert_temperature: float = field(
        default=1.0, metadata={"help": "The expert's temperature T: p_E = softmax(logits/T)."})

    def __post_init__(self):
        if self.expert_temperature <= 0:
            raise ValueError(f"expert_temperature must be > 0, got {self.expert_temperature}")
        if self.expert_instruction and not self.expert_model:
            raise ValueError("expert_instruction needs expert_model (the model that reads it)")
        if self.sample_draws < 1:
            raise ValueError(f"sample_draws must be >= 1, got {self.sample_draws}")
        if self.num_prompts < 1 or self.k < 1:
            raise ValueError(f"num_prompts and k must be >= 1, got {self.num_prompts} and {self.k}")
        if not self.temperatures or any(t < 0 for t in self.temperatures):
            raise ValueError(f"temperatures must be a non-empty list of values >= 0 (0 = greedy), "
                             f"got {self.temperatures}")
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


@dataclass
class EvalTask:
    """Prompts, and whatever the evaluation set offers to judge samples by."""

    prompts: list[Prompt]  # strings, or conversations up to the assistant's turn
    references: list[str] | None  # one per prompt, for BLEU/ROUGE
    answers: list[str] | None  # one per prompt, for exact match against the rows
    heldout: list[tuple[Prompt, str]]  # (prompt, completion) demonstrations for held-out NLL and forward KL
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

    def sample_quality(self) -> tuple[str, Callable[[Sequence[int], Sequence[str]], list[float]]] | None:
        """(name, quality(prompt_indices, samples) -> one figure per sample), to correlate rewards with;
        batched, so an expert that is a language model scores every sample in a few passes."""
        if self.expert is not None:
            def expert_loglik(indices, texts):
                scores = self.expert.score_many([self.prompts[i] for i in indices], list(texts))
                return [s.logprob_per_token for s in scores]
            return "expert_loglik", expert_loglik
        if (check := self.checker()) is not None:
            return "exact_match", lambda indices, texts: [float(check(i, t)) for i, t in zip(indices, texts)]
        if self.references is not None:
            return "rouge1", lambda indices, texts: [sentence_rouge1(t, self.references[i])
                                                     for i, t in zip(indices, texts)]
        return None


def known_expert(source: str) -> SyntheticExpert | None:
    """The synthetic expert behind a builtin dataset, whose likelihood is exact; None otherwise."""
    from llm_irl.builtin import expert_of

    return expert_of(source)


def task_expert(config: EvalConfig, prompts: list[Prompt], trust_remote_code: bool = False) -> SyntheticExpert | None:
    """The expert that judges samples: `expert_model` (a language model) or the builtin set's own."""
    builtin = known_expert(config.eval_dataset)
    if not config.expert_model:
        return builtin
    if builtin is not None:
        raise ConfigError(f"{config.eval_dataset} has its own expert: leave expert_model out, or evaluate on "
                          "the language model's own samples")
    from llm_irl.tasks.lm_expert import LanguageModelExpert

    return LanguageModelExpert(config.expert_model, instruction=config.expert_instruction,
                               temperature=config.expert_temperature, prompts=prompts,
                               max_new_tokens=config.max_new_tokens, batch_size=config.sample_batch_size,
                               trust_remote_code=trust_remote_code)


def load_task(config: EvalConfig, trust_remote_code: bool = False) -> EvalTask:
    """The evaluation set `config` names. Raises `ConfigError` when it names none."""
    from llm_irl.data import read_rows

    if not config.eval_dataset:
        raise ConfigError("no eval_dataset: name the prompts to evaluate on, e.g. --eval_dataset data/test.jsonl "
                          "(or builtin:markov for the embedded Markov expert)")
    rows = read_rows(config.eval_dataset, config.eval_split, config.dataset_config)
    chosen = [prompt_and_reference(row) for row in rows[: config.num_prompts]]
    if len(chosen) < config.num_prompts:
        logger.warning("%s has %d prompts, fewer than num_prompts=%d", config.eval_dataset, len(chosen),
                       config.num_prompts)
    has_completions = all(reference is not None for _, reference in chosen)
    expert = task_expert(config, [prompt for prompt, _ in chosen], trust_remote_code)
    if config.embedding_model:  # fail now, not after sampling (or training every arm); cached for later
        require_encoder(config.embedding_model)
    use_refs = config.references if config.references is not None else (has_completions and expert is None)
    if (use_refs or config.exact_match != "none") and not has_completions:
        raise DataError(f"{config.eval_dataset}: references or exact_match need a completion (or a last assistant "
                        "turn) in every row")
    completions = [reference for _, reference in chosen] if has_completions else None
    # held-out NLL (and forward KL) score each row with a reference as training tokenises it
    # (`llm_irl.scoring.scored_row`): a string prompt or a conversation up to its last assistant turn
    heldout = [(prompt, reference) for prompt, reference in map(prompt_and_reference, rows[: config.num_heldout])
               if reference is not None]
    return EvalTask(prompts=[prompt for prompt, _ in chosen], references=completions if use_refs else None,
                    answers=completions, heldout=heldout, expert=expert, exact_match=config.exact_match)
