"""Pure-function diversity and quality metrics, and their aggregation into figures with intervals.

What each reported figure means and how it is tabulated: `llm_irl.metrics.catalogue`.
"""

from llm_irl.metrics.diversity import (
    compression_ratio,
    distinct_n,
    ead,
    ngram_entropy,
    policy_entropy,
    self_bleu,
    self_bleu_naive,
)
from llm_irl.metrics.embedding import embedding_diversity
from llm_irl.metrics.quality import bleu, exact_match, extract_last_number, rouge, sentence_rouge1
from llm_irl.metrics.stats import (
    across_input,
    average_ranks,
    bootstrap_ci,
    equalize_counts,
    estimate,
    mean_over_prompts,
    per_input,
    seed_interval,
    spearman,
    t_quantile,
)

__all__ = [
    "across_input",
    "average_ranks",
    "bleu",
    "bootstrap_ci",
    "compression_ratio",
    "distinct_n",
    "ead",
    "embedding_diversity",
    "equalize_counts",
    "estimate",
    "exact_match",
    "extract_last_number",
    "mean_over_prompts",
    "ngram_entropy",
    "per_input",
    "policy_entropy",
    "rouge",
    "self_bleu",
    "self_bleu_naive",
    "seed_interval",
    "sentence_rouge1",
    "spearman",
    "t_quantile",
]
