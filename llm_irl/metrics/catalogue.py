"""What each reported figure is and how to read it, and how figures are written in markdown tables.

Every metric the evaluation reports is named once in `METRICS`, with its label, a short column
header, its kind and which direction is better (or more diverse); the evaluation, the compare
report, the plots and the verdicts all read it from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    label: str
    short: str  # a column header
    kind: str  # quality | diversity | reward | descriptive
    sense: str  # how to read it: "higher is better", "lower = more diverse", ... said once, here

    @property
    def sign(self) -> int:
        """+1 when higher is better (or more diverse), -1 when lower is, 0 for descriptive figures."""
        return {"higher": 1, "lower": -1}.get(self.sense.split()[0], 0)


_Q, _D, _R = "quality", "diversity", "reward"
_UP, _DOWN = "higher is better", "lower is better"
_MORE, _LESS = "higher = more diverse", "lower = more diverse"
METRICS: dict[str, Metric] = {
    "heldout_nll": Metric("held-out NLL (nats/token)", "NLL", _Q, _DOWN),
    "forward_kl": Metric("forward KL(expert‖model) (nats/token)", "fwd KL", _Q, _DOWN),
    # coverage where the samples come from: the expert's held-out text under the model sampled at T
    "forward_kl_at_t": Metric("forward KL(expert‖model sampled at T) (nats/token)", "fwd KL at T", _Q, _DOWN),
    "expert_loglik": Metric("expert log-lik of samples (nats/token)", "expert loglik", _Q, _UP),
    # the same, as if the samples had the expert's lengths (metrics.shape.length_standardised): per-token
    # log-likelihood depends on length by itself, so shorter samples cannot buy quality here
    "expert_loglik_std": Metric("expert log-lik of samples at the expert's lengths (nats/token, standardised)",
                                "expert loglik (std)", _Q, _UP),
    "reverse_kl": Metric("reverse KL(model‖expert) on T=1 samples ending in EOS (nats/token)", "rev KL", _Q, _DOWN),
    "validity": Metric("validity (fraction the expert could write)", "valid", _Q, _UP),
    "exact_match": Metric("exact match", "EM", _Q, _UP),
    "bleu": Metric("BLEU vs references (0-100)", "BLEU", _Q, _UP),
    "rouge1": Metric("ROUGE-1 F vs references", "ROUGE-1", _Q, _UP),
    "rougeL": Metric("ROUGE-L F vs references", "ROUGE-L", _Q, _UP),
    "embed_sim_to_reference": Metric("embedding cosine similarity to the reference", "embed sim", _Q, _UP),
    "self_bleu_per_input": Metric("Self-BLEU within a prompt's k samples", "self-BLEU/prompt", _D, _LESS),
    "distinct_2_per_input": Metric("distinct-2 within a prompt's k samples", "dist-2/prompt", _D, _MORE),
    "embed_diversity_per_input": Metric("embedding diversity within a prompt's k samples (mean pairwise cosine "
                                        "distance)", "embed div/prompt", _D, _MORE),
    "self_bleu_across": Metric("Self-BLEU, one sample per prompt pooled", "self-BLEU pooled", _D, _LESS),
    "distinct_2_across": Metric("distinct-2, one sample per prompt pooled", "dist-2 pooled", _D, _MORE),
    "ead_2_across": Metric("EAD-2, one sample per prompt pooled", "EAD-2 pooled", _D, _MORE),
    "entropy_2_across": Metric("bigram entropy (nats), one sample per prompt pooled", "2-gram H pooled", _D, _MORE),
    "compression_across": Metric("gzip ratio, one sample per prompt pooled", "gzip pooled", _D, _MORE),
    "policy_entropy": Metric("policy entropy at sampled states (nats/token)", "policy H", _D, _MORE),
    "reward_quality_spearman": Metric("Spearman(return, per-sample quality)", "ρ(return, q)", _R,
                                      "higher = reward tracks quality"),
    # at γ = 1 an EOS-ended sample's return is V(s₀) + α·log π(y|x): this row is the reward's baseline
    "loglik_quality_spearman": Metric("Spearman(log π(y|x), per-sample quality), T=1 samples", "ρ(log π, q)", _R,
                                      "higher = likelihood tracks quality"),
    "best_of_k_gain": Metric("per-sample quality gained by best-of-k on return", "best-of-k gain", _R, _UP),
    "mean_length": Metric("mean sample length (tokens incl. EOS)", "length", "descriptive", "descriptive"),
    "terminated": Metric("share of samples that ended with EOS", "ended", "descriptive", "descriptive"),
    "loop_share": Metric("share of samples with a loop (an n-gram, n ≤ 4, 3× in a row)", "loops", "descriptive",
                         "descriptive"),
}

# the quality–diversity plane of the plots and the frontier verdict: quality is the first of these
# the evaluation has; diversity per input (within a prompt's k samples) and across inputs (one per prompt),
# and coverage (forward KL at T; per-token likelihoods only, so unlike n-gram counts it does not reward
# short samples), which is compared the other way round: coverage at matched quality (metrics.frontier)
QUALITY_AXIS = ("expert_loglik", "exact_match", "rouge1", "bleu")
DIVERSITY_AXES = ("self_bleu_per_input", "distinct_2_across", "forward_kl_at_t")
COVERAGE_AXIS = "forward_kl_at_t"
# the qualities coverage is matched at: as measured, and standardised to the expert's lengths (then
# neither axis has a length effect)
COVERAGE_QUALITIES = ("expert_loglik", "expert_loglik_std")


def axis_label(metric: str) -> str:
    """How a frontier's x axis reads in a sentence: higher = more diverse."""
    label = METRICS[metric].label
    return f"1 − {label}" if METRICS[metric].sign < 0 else label


# the diversity figures that get a verdict and a by-temperature plot (the tables hold the rest)
HEADLINE_DIVERSITY = (*DIVERSITY_AXES, "embed_diversity_per_input", "policy_entropy")
# figures that greedy decoding (T = 0: one decode repeated k times) makes trivial, so they are not
# reported there: diversity within a prompt's k copies, and the gain of picking the best of k copies
NOT_AT_GREEDY = ("self_bleu_per_input", "distinct_2_per_input", "embed_diversity_per_input", "best_of_k_gain")


def reportable(t: str | float, figures: dict) -> dict:
    """The figures of temperature `t`, without those greedy decoding makes trivial (`NOT_AT_GREEDY`) at T = 0."""
    if float(t) != 0:
        return figures
    return {n: f for n, f in figures.items() if n not in NOT_AT_GREEDY}


def temperature_label(t: str) -> str:
    """A column header for a temperature key of the results ("0" is greedy decoding)."""
    return "greedy (T=0)" if float(t) == 0 else f"T={t}"


def format_estimate(e: dict | None) -> str:
    """A figure (`llm_irl.metrics.stats.estimate`) as `value [lo, hi]`, `value` without an interval, – when absent."""
    if e is None:
        return "–"
    if e["lo"] is None:
        return f"{e['value']:.3f}"
    return f"{e['value']:.3f} [{e['lo']:.3f}, {e['hi']:.3f}]"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a markdown table: the header, the rule under it, one line per row."""
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows)]


def metric_table(columns: dict[str, dict], names: Sequence[str], extra_rows: Iterable[Sequence[str]] = ()) -> list[str]:
    """Rows = metrics (label and how to read it), columns = figure dicts by name (arms, temperatures)."""
    rows = [[METRICS[n].label, METRICS[n].sense, *(format_estimate(col.get(n)) for col in columns.values())]
            for n in names]
    return markdown_table(["metric", "how to read", *columns], [*rows, *extra_rows])
