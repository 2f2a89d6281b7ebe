"""Pure-function diversity and quality metrics, and their aggregation over prompts."""

from llm_irl.metrics.diversity import (
    compression_ratio,
    distinct_n,
    ead,
    embedding_diversity,
    ngram_entropy,
    policy_entropy,
    self_bleu,
    self_bleu_naive,
)
from llm_irl.metrics.quality import bleu, exact_match, extract_last_number, rouge, sentence_rouge1
from llm_irl.metrics.stats import across_input, bootstrap_ci, equalize_counts, per_input

__all__ = [
    "across_input",
    "bleu",
    "bootstrap_ci",
    "compression_ratio",
    "distinct_n",
    "ead",
    "embedding_diversity",
    "equalize_counts",
    "exact_match",
    "extract_last_number",
    "ngram_entropy",
    "per_input",
    "policy_entropy",
    "rouge",
    "self_bleu",
    "self_bleu_naive",
    "sentence_rouge1",
]
