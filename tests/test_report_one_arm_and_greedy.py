"""The compare report on constructed results: one arm claims nothing, and greedy rows without per-input
diversity are drawn and judged only where the figures exist."""

from __future__ import annotations

import json
import os

import pytest

from llm_irl import plots
from llm_irl.metrics.stats import estimate
from llm_irl.report import all_verdicts, console_summary, verdict, verdict_summary, write_report


def figures(quality: float, self_bleu: float | None, spread: float = 0.05) -> dict:
    """One temperature's figures; `self_bleu` None as at greedy decoding (no per-input diversity)."""
    out = {"expert_loglik": estimate(quality, quality - spread, quality + spread, 4),
           "distinct_2_across": estimate(0.5 - quality / 10, n=4)}
    if self_bleu is not None:
        out["self_bleu_per_input"] = estimate(self_bleu, self_bleu - spread, self_bleu + spread, 4)
        out["best_of_k_gain"] = estimate(0.3, 0.2, 0.4, 4)
    return out


def results(arms: dict[str, dict[str, dict]]) -> dict:
    """A one-seed compare result: arm -> temperature -> figures."""
    runs = {arm: {"0": {"metrics": {}, "temperatures": temps}} for arm, temps in arms.items()}
    return {"arms": {arm: {"trainer": arm} for arm in arms}, "seeds": [0], "runs": runs,
            "summary": {arm: run["0"] for arm, run in runs.items()}, "expert": None, "sample_quality": "expert_loglik",
            "common": {"model_name_or_path": "m", "dataset": "d"}, "runtime_s": 1.0,
            "interval": "one seed: 95% bootstrap interval over prompts",
            "eval": {"k": 4, "num_prompts": 4, "eval_dataset": "d", "eval_split": "test", "top_p": 1.0,
                     "reward_gamma": 0.99}}


SWEEP = {"0": figures(-1.0, None), "0.7": figures(-2.0, 0.6), "1": figures(-3.0, 0.3)}


def test_a_single_verdict_with_one_arm_names_no_winner():
    v = verdict("expert_loglik", "T=1", {"sft": estimate(-1.3, -1.4, -1.2)})
    assert v["winner"] is None and "nothing to compare" in v["text"] and "**sft" not in v["text"]
    assert verdict_summary([v]) == ["Only one arm (sft): nothing to compare, no winner claimed."]


def test_a_one_arm_compare_claims_nothing(tmp_path):
    one = results({"sft": SWEEP})
    assert all_verdicts(one) == []
    console = console_summary(one)
    assert "Only one arm (sft): nothing to compare" in console and "**sft**" not in console
    write_report(one, str(tmp_path))
    report = (tmp_path / "report.md").read_text()
    verdicts = report[report.index("## Verdicts"):report.index("## Plots")]
    assert "Only one arm (sft): nothing to compare, no winner claimed." in verdicts
    assert "**sft" not in verdicts and "disjoint" not in verdicts and "no frontier" in report


def test_two_arms_still_name_a_winner():
    two = results({"sft": SWEEP, "iq": {t: figures(f["expert_loglik"]["value"] + 1.0,
                                                   f.get("self_bleu_per_input", {}).get("value"))
                                        for t, f in SWEEP.items()}})
    wins = [v for v in all_verdicts(two) if v["metric"] == "expert_loglik"]
    assert {v["where"] for v in wins} == {"greedy (T=0)", "T=0.7", "T=1"} and all(v["winner"] == "iq" for v in wins)
    # per-input diversity and best-of-k exist only at sampled temperatures: no verdict at greedy
    judged = {(v["metric"], v["where"]) for v in all_verdicts(two)}
    assert ("self_bleu_per_input", "T=1") in judged and ("self_bleu_per_input", "greedy (T=0)") not in judged
    assert ("best_of_k_gain", "greedy (T=0)") not in judged and ("distinct_2_across", "greedy (T=0)") in judged


def test_plots_draw_per_input_diversity_through_the_sampled_temperatures(tmp_path, monkeypatch):
    """Greedy first in the sweep, without Self-BLEU: the per-input panel stays, with the sampled points only."""
    drawn = {}
    real_save = plots._save

    def keep(fig, where):
        drawn[os.path.basename(where)] = [(ax.get_title(), [line.get_xydata().tolist() for line in ax.get_lines()])
                                          for ax in fig.axes if ax.get_visible()]
        real_save(fig, where)

    monkeypatch.setattr(plots, "_save", keep)
    two = results({"sft": SWEEP, "iq": SWEEP})
    paths = plots.write_plots(two, str(tmp_path))
    assert set(paths) == {"quality_vs_diversity.png", "by_temperature.png"}
    panels = dict(drawn["quality_vs_diversity.png"])
    per_input = panels["Per-input diversity (k samples of the same prompt)"]
    assert per_input[0] == [[0.6, -2.0], [0.3, -3.0]]  # T=0.7 and T=1: no greedy point
    across = panels["Across-input diversity (one sample per prompt)"]
    assert len(across[0]) == 3  # pooled: greedy stays
    by_t = {title.split("\n")[0]: lines for title, lines in drawn["by_temperature.png"]}
    assert [x for x, _ in by_t["Self-BLEU within a prompt's k samples"][0]] == pytest.approx([0.7, 1.0])


def test_stored_results_with_greedy_per_input_figures_are_reported_without_them(tmp_path):
    """Results evaluated before greedy rows left them out (or lanes merged from such runs): still not shown."""
    old = {**SWEEP, "0": {**figures(-1.0, 1.0, spread=0.0)}}  # Self-BLEU 1.000 [1.000, 1.000], best-of-k as well
    two = results({"sft": old, "iq": old})
    assert "self_bleu_per_input" in two["summary"]["sft"]["temperatures"]["0"]
    paths = write_report(two, str(tmp_path))
    report = (tmp_path / "report.md").read_text()
    greedy = report[report.index("## Greedy decoding"):report.index("## Temperature 0.7")]
    assert "Self-BLEU within a prompt's k samples" not in greedy and "best-of-k" not in greedy
    assert "greedy (T=0), Self-BLEU" not in report and "T=1, Self-BLEU within a prompt's k samples" in report
    saved = json.loads(open(paths["results"]).read())
    assert "self_bleu_per_input" not in saved["runs"]["iq"]["0"]["temperatures"]["0"]
    assert "Only one arm" not in console_summary(two) and "greedy" in console_summary(two)
