"""The compare report: verdicts with intervals and the markdown that states them (plots: `llm_irl.plots`).

A winner is claimed only when the best arm's 95% interval is disjoint from every other arm's;
otherwise the report says the intervals overlap and claims no winner. With one arm there is
nothing to compare: no verdict, no frontier, the tables only. Disjoint intervals are a
conservative test (overlapping ones do not prove equality), and with few seeds the Student-t
intervals are wide: that is the honest state of the evidence, not a defect of the report.

The frontier verdict (`llm_irl.metrics.frontier`) reads each arm's quality–diversity curve over the
temperature sweep against the baseline arm's (the first, sft in the shipped recipes): quality at
matched diversity, seeds paired, above / below / crossing / overlapping. Quality is the expert's
log-likelihood when there is an expert, else the first quality figure the evaluation has
(`QUALITY_AXIS`); diversity is 1 − Self-BLEU within a prompt's k samples, and, as a second verdict,
distinct-2 over one sample per prompt.
"""

from __future__ import annotations

import json
import os

from llm_irl.files import write_atomic
from llm_irl.metrics.catalogue import (
    DIVERSITY_AXES,
    COVERAGE_AXIS,
    COVERAGE_QUALITIES,
    HEADLINE_DIVERSITY,
    METRICS,
    QUALITY_AXIS,
    axis_label,
    format_estimate,
    markdown_table,
    metric_table,
    reportable,
    temperature_label,
)
from llm_irl.metrics.frontier import describe_verdict, frontier_gap
from llm_irl.plots import write_plots


# ---------------------------------------------------------------------------- verdicts


def disjoint(a: dict, b: dict) -> bool:
    """True when two 95% intervals do not overlap; False when either has no interval."""
    if a["lo"] is None or b["lo"] is None:
        return False
    return a["hi"] < b["lo"] or b["hi"] < a["lo"]


def nothing_to_compare(arms) -> str | None:
    """What a report says instead of verdicts when it has fewer than two arms; None when it has two or more."""
    arms = list(arms)
    if len(arms) >= 2:
        return None
    return f"Only one arm ({', '.join(arms) or 'none'}): nothing to compare, no winner claimed."


def verdict(metric: str, where: str, estimates: dict[str, dict]) -> dict:
    """Best arm on one metric, and whether its interval clears every other arm's (never with one arm)."""
    m = METRICS[metric]
    best = max(estimates, key=lambda arm: m.sign * estimates[arm]["value"])
    overlapping = [arm for arm in estimates if arm != best and not disjoint(estimates[best], estimates[arm])]
    figures = "; ".join(f"{arm} {format_estimate(e)}" for arm, e in estimates.items())
    better = "more diverse" if m.kind == "diversity" else "better"
    alone = len(estimates) < 2  # a lone arm clears no interval: it has none to clear
    if alone:
        outcome = "one arm: nothing to compare"
    elif not overlapping:
        outcome = f"**{best} {better}** (intervals disjoint)"
    elif any(e["lo"] is None for e in estimates.values()):
        outcome = "no interval (pooled metric, one seed): no winner claimed"
    else:
        outcome = f"intervals overlap ({', '.join([best, *overlapping])}): no winner claimed"
    baseline = next(iter(estimates))
    against_baseline = {  # each other arm against the first (the baseline, sft in the shipped recipes)
        arm: ("better" if m.sign * (e["value"] - estimates[baseline]["value"]) > 0 else "worse")
        if disjoint(e, estimates[baseline]) else None
        for arm, e in estimates.items() if arm != baseline
    }
    return {"metric": metric, "where": where, "best": best, "winner": None if overlapping or alone else best,
            "overlapping": overlapping, "kind": m.kind, "baseline": baseline, "against_baseline": against_baseline,
            "text": f"{where}, {m.label} ({m.sense}): {figures} → {outcome}"}


def all_verdicts(results: dict) -> list[dict]:
    """A verdict for every quality and reward metric and the headline diversity ones (`HEADLINE_DIVERSITY`;
    the tables hold the rest), at every temperature and over all; none with fewer than two arms. A metric
    an arm lacks somewhere (per-input diversity at greedy decoding) gets no verdict there."""
    summary = results["summary"]
    arms = list(summary)
    if nothing_to_compare(arms):
        return []
    sections = [("all temperatures", lambda arm: summary[arm]["metrics"])]
    for t in summary[arms[0]]["temperatures"]:
        sections.append((temperature_label(t), lambda arm, t=t: summary[arm]["temperatures"][t]))
    out = []
    for where, get in sections:
        for metric in METRICS:
            m = METRICS[metric]
            headline = m.kind != "diversity" or metric in HEADLINE_DIVERSITY
            if m.sign and headline and all(metric in get(arm) for arm in arms):
                out.append(verdict(metric, where, {arm: get(arm)[metric] for arm in arms}))
    return out


def baseline_summary(verdicts: list[dict]) -> list[str]:
    """Each arm against the baseline arm: where its interval is disjoint and on which side."""
    if not verdicts:
        return []
    baseline, lines = verdicts[0]["baseline"], []
    words = {("better", False): "better", ("worse", False): "worse",
             ("better", True): "more diverse", ("worse", True): "less diverse"}
    for arm in verdicts[0]["against_baseline"]:
        parts = []
        for (side, diversity), word in words.items():
            won = [v for v in verdicts
                   if v["against_baseline"].get(arm) == side and (v["kind"] == "diversity") == diversity]
            if won:
                parts.append(f"{word} on " + "; ".join(f"{METRICS[v['metric']].label} at {v['where']}" for v in won))
        same = sum(v["against_baseline"].get(arm) is None for v in verdicts)
        lines.append(f"**{arm} vs {baseline}**: " + "".join(p + "; " for p in parts)
                     + f"overlap (or no interval) on {same} of {len(verdicts)}.")
    return lines


def verdict_summary(verdicts: list[dict]) -> list[str]:
    """One line per arm that wins anything, one for the comparisons without a winner, and each arm
    against the baseline; with one arm, that there is nothing to compare."""
    if verdicts and not verdicts[0]["against_baseline"]:  # no arm beside the baseline
        return [nothing_to_compare([verdicts[0]["baseline"]])]
    lines = []
    for arm in dict.fromkeys(v["winner"] for v in verdicts if v["winner"]):
        mine = [v for v in verdicts if v["winner"] == arm]
        parts = [f"{what} on " + "; ".join(f"{METRICS[v['metric']].label} at {v['where']}" for v in won)
                 for what, won in (("better", [v for v in mine if v["kind"] != "diversity"]),
                                   ("more diverse", [v for v in mine if v["kind"] == "diversity"])) if won]
        lines.append(f"**{arm}** (disjoint 95% intervals, {len(mine)} of {len(verdicts)} comparisons): "
                     + "; ".join(parts) + ".")
    ties = sum(v["winner"] is None for v in verdicts)
    if ties and lines:
        lines.append(f"On the other {ties} comparisons the intervals overlap (or there is none): no winner claimed.")
    elif ties:
        lines.append(f"The intervals overlap (or there is none) on all {ties} comparisons: no arm is shown better "
                     "than every other on any metric.")
    return lines + baseline_summary(verdicts)


# ---------------------------------------------------------------------------- the frontier


def axis_value(metric: str, figure: dict) -> float:
    """A figure on an axis where higher is more diverse (or better): 1 − Self-BLEU, −forward KL, distinct-n as is."""
    if METRICS[metric].sign >= 0:
        return figure["value"]
    return 1.0 - figure["value"] if metric.startswith("self_bleu") else -figure["value"]


def frontier_quality(results: dict) -> str | None:
    """The quality axis of the frontier: the first of QUALITY_AXIS every arm has at every temperature."""
    figures = [f for arm in results["summary"].values() for f in arm["temperatures"].values()]
    return next((q for q in QUALITY_AXIS if all(q in f for f in figures)), None)


def frontier_verdicts(results: dict) -> list[dict]:
    """Each arm's frontier against the baseline arm's: quality at matched diversity on every diversity axis
    the results have, and coverage at matched quality (raw and length-standardised, `COVERAGE_QUALITIES`)
    where every run has both figures at every temperature."""
    arms, seeds = list(results["summary"]), [str(s) for s in results["seeds"]]
    baseline, main_quality = arms[0], frontier_quality(results)
    if main_quality is None or len(arms) < 2:
        return []
    # sampled temperatures only: greedy (T = 0) has per-input diversity 0 by definition, and a point pinned
    # there would put most of the grid on the straight line from greedy to the lowest sampled temperature
    temps = [t for t in results["summary"][baseline]["temperatures"] if float(t) > 0]

    def curves(arm: str, x: str, y: str) -> list[list[tuple[float, float]]]:  # one per seed, seeds in order
        runs = [results["runs"][arm][s]["temperatures"] for s in seeds]
        return [[(axis_value(x, run[t][x]), axis_value(y, run[t][y])) for t in temps] for run in runs]

    # (x, y, quality, diversity, what the gap is): y read at matched x
    pairs = [(div, main_quality, main_quality, div, "quality") for div in DIVERSITY_AXES if div != COVERAGE_AXIS]
    pairs += [(q, COVERAGE_AXIS, q, COVERAGE_AXIS, "coverage") for q in COVERAGE_QUALITIES]
    out = []
    for x, y, quality, div, gap_name in pairs:
        if not all({x, y} <= set(results["runs"][a][s]["temperatures"][t]) for a in arms for s in seeds for t in temps):
            continue
        matched = f"matched {axis_label(div)}" if gap_name == "quality" else f"matched {METRICS[quality].label}"
        measured = METRICS[quality].label if gap_name == "quality" else f"coverage (−{METRICS[COVERAGE_AXIS].label})"
        for arm in arms[1:]:
            gap = frontier_gap(curves(arm, x, y), curves(baseline, x, y))
            out.append({"arm": arm, "baseline": baseline, "quality": quality, "diversity": div, "gap_of": gap_name,
                        **gap, "text": f"{describe_verdict(gap, arm, baseline, gap_name)}: {measured} at {matched}, "
                                       f"over {', '.join(temperature_label(t) for t in temps)}"})
    return out


# ---------------------------------------------------------------------------- markdown


SHAPE = ("mean_length", "terminated", "loop_share")


def shape_table(results: dict) -> list[str]:
    """Length, share ended with EOS and loop share: one row per (arm, temperature), the expert's own below."""
    summary, expert = results["summary"], results["expert"]
    rows = [[arm, temperature_label(t), *(format_estimate(f.get(n)) for n in SHAPE)]
            for arm in summary for t, f in summary[arm]["temperatures"].items()]
    if expert:
        rows.append(["expert (own samples)", "–", *(format_estimate(expert["temperatures"]["expert"].get(n))
                                                   for n in SHAPE)])
    return markdown_table(["arm", "T", *(METRICS[n].label for n in SHAPE)], rows)


def markdown(results: dict, verdicts: list[dict], plots: list[str], title: str) -> str:
    summary, expert = results["summary"], results["expert"]
    arms = list(summary)
    ev, common = results["eval"], results["common"]
    temps = list(summary[arms[0]]["temperatures"])
    lines = [
        f"# Compare: {', '.join(arms)} ({title})",
        "",
        f"Every arm fine-tunes `{common['model_name_or_path']}` on `{common['dataset']}` for "
        f"{common.get('max_steps', '?')} steps (batch {common.get('per_device_train_batch_size', '?')}, "
        f"learning rate {common.get('learning_rate', '?')}) with seeds {results['seeds']}; then samples "
        f"k={ev['k']} completions for each of {ev['num_prompts']} prompts of `{ev['eval_dataset']}` "
        f"({ev['eval_split']}) at temperatures {', '.join(temps)} (top_p {ev['top_p']}; 0 = greedy decoding, "
        "one decode per prompt repeated k times, so diversity within a prompt's samples and best-of-k are not "
        "reported there). "
        f"Runtime {results['runtime_s'] / 60:.1f} min.",
        "",
        "Arms: " + "; ".join(f"**{a}** = trainer `{s['trainer']}`"
                             + (" with " + ", ".join(f"{k}={v}" for k, v in s.items() if k != "trainer")
                                if len(s) > 1 else " (defaults)") for a, s in results["arms"].items()) + ".",
        "",
        f"Figures: {results['interval']}. A winner is claimed only when the best arm's interval is "
        "disjoint from every other arm's; otherwise the report says the intervals overlap.",
        "",
        "## Frontier verdicts",
        "",
        "Each arm's quality–diversity curve through the temperatures against the baseline's, quality read "
        "at matched diversity (interpolated), seeds paired; `above` = higher quality at the same diversity.",
        "",
        *([f"- {f['text']}" for f in results.get("frontier", [])] or ["- no frontier: the evaluation has no "
                                                                       "quality figure or only one arm"]),
        "",
        "## Verdicts",
        "",
        *([note] if (note := nothing_to_compare(arms)) else verdict_summary(verdicts)),
        "",
        *[f"- {v['text']}" for v in verdicts if v["kind"] != "diversity"],
        "",
    ]
    if diversity := [f"- {v['text']}" for v in verdicts if v["kind"] == "diversity"]:
        lines += ["Diversity (more diverse is not better on its own: read it against quality, as in the plot):", "",
                  *diversity, ""]
    if plots:
        lines += ["## Plots", "", *[f"![{p}]({p})" for p in plots], ""]
    lines += ["## Sample length, EOS and loops", "",
              ("Read beside the expert's own samples: " if expert else "")
              + "IQ's terminal-state bias shows first as longer samples, fewer EOS and loops.", "",
              *shape_table(results), ""]
    if results["sample_quality"]:
        lines += [f"Per-sample quality for the reward rows: {METRICS[results['sample_quality']].label}; "
                  f"returns use γ = {ev['reward_gamma']}. At γ = 1 an EOS-ended sample's return telescopes to "
                  "V(s₀) + α·log π(y|x), so ρ(log π, q) (on the T=1 samples) is the baseline of ρ(return, q): "
                  "the difference is what the reward adds to the plain likelihood.", ""]
    overall = {arm: summary[arm]["metrics"] for arm in arms}
    if any(overall.values()):
        lines += ["## Held-out demonstrations (no sampling)", "",
                  *metric_table(overall, [n for n in METRICS if n in overall[arms[0]]]), ""]
    for t in temps:
        columns = {arm: summary[arm]["temperatures"][t] for arm in arms}
        if expert:
            columns["expert (own samples)"] = expert["temperatures"]["expert"]
        names = [n for n in METRICS if any(n in c for c in columns.values())]
        lines += [f"## {'Greedy decoding' if float(t) == 0 else f'Temperature {t}'}", "",
                  *metric_table(columns, names), ""]
    lines += ["## Files", "",
              "`results.json` holds every figure above (the frontier verdicts under `frontier`) and each run's "
              "own; each run's model, `trainer_state.json` (loss curves), `samples.jsonl` (every sample with "
              "its per-token log-probs) and `eval.json` are in `runs/ARM/seedS/`.", ""]
    return "\n".join(lines)


# columns of the console table: the headline figure of each kind
BRIEF = ("heldout_nll", "expert_loglik", "exact_match", "rouge1", "embed_sim_to_reference", "self_bleu_per_input",
         "distinct_2_across", "embed_diversity_per_input", "policy_entropy", "reward_quality_spearman",
         "loglik_quality_spearman", *SHAPE)


def brief_table(results: dict) -> str:
    """A console table: one row per (temperature, arm), the expert's own samples as reference."""
    summary, expert = results["summary"], results["expert"]
    arms = list(summary)
    rows = []  # (temperature, who, figures)
    for t in summary[arms[0]]["temperatures"]:
        rows += [("greedy" if float(t) == 0 else t, arm, {**summary[arm]["metrics"], **summary[arm]["temperatures"][t]})
                 for arm in arms]
    if expert:
        rows.append(("-", "expert", expert["temperatures"]["expert"]))
    names = [n for n in BRIEF if any(n in figures for _, _, figures in rows)]
    table = markdown_table(["T", "arm", *(METRICS[n].short for n in names)],
                           [[t, who, *(format_estimate(f.get(n)) for n in names)] for t, who, f in rows])
    legend = [f"{METRICS[n].short}: {METRICS[n].label}, {METRICS[n].sense}" for n in names]
    return "\n".join(table + ["", *legend])


def without_trivial_greedy(results: dict) -> dict:
    """Results without the figures greedy decoding makes trivial (`reportable`): evaluations leave them out,
    but results stored before they did (or merged from such runs) may still hold them."""
    def clean(run: dict) -> dict:
        return {**run, "temperatures": {t: reportable(t, f) for t, f in run["temperatures"].items()}}

    return {**results, "summary": {arm: clean(s) for arm, s in results["summary"].items()},
            "runs": {arm: {seed: clean(r) for seed, r in by_seed.items()}
                     for arm, by_seed in (results.get("runs") or {}).items()}}


HEADLINE_FRONTIERS = (  # (gap_of, quality, diversity, words): the two verdicts a newcomer reads first
    ("quality", None, "self_bleu_per_input", "quality at matched diversity"),
    ("coverage", "expert_loglik_std", COVERAGE_AXIS, "coverage at matched quality"),
)


def _verdict_words(f: dict) -> str:
    """'above +0.010 [+0.004, +0.017]': the verdict as a newcomer reads it, 'level' for not distinguishable."""
    if f["verdict"] == "no overlap":
        return "no common range"
    gap = f["mean_gap"]
    interval = "(one seed)" if gap["lo"] is None else f"[{gap['lo']:+.3f}, {gap['hi']:+.3f}]"
    return f"{ {'overlapping': 'level'}.get(f['verdict'], f['verdict'])} {gap['value']:+.3f} {interval}"


def headline(results: dict) -> list[str]:
    """The lines a newcomer reads first: per arm, its headline frontier verdicts against the baseline arm (the
    first) in words, with its length and EOS share at the sampled temperature nearest 1; the baseline's and the
    expert's below."""
    results = without_trivial_greedy(results)
    summary = results["summary"]
    arms = list(summary)
    temps = [t for t in summary[arms[0]]["temperatures"] if float(t) > 0]
    if len(arms) < 2 or not temps:
        return [nothing_to_compare(summary) or "no sampled temperature: no frontier verdict"]
    frontier = results.get("frontier") or frontier_verdicts(results)
    baseline, t = arms[0], min(temps, key=lambda t: abs(float(t) - 1.0))

    def shape(figures: dict) -> str:
        length, ended = figures.get("mean_length"), figures.get("terminated")
        return ", ".join([*([f"{length['value']:.1f} tokens"] if length else []),
                          *([f"{ended['value']:.0%} end with EOS"] if ended else [])])

    lines = [f"Against {baseline}: the mean gap between frontiers over their common range, 95% interval over seeds "
             f"(level: not distinguishable); length at {temperature_label(t)}. Every figure: report.md."]
    width = max(len(arm) for arm in arms)
    for arm in arms[1:]:
        verdicts = [f"{words}: {_verdict_words(f)}" for gap_of, quality, diversity, words in HEADLINE_FRONTIERS
                    for f in frontier if f["arm"] == arm and f["gap_of"] == gap_of and f["diversity"] == diversity
                    and quality in (None, f["quality"])]
        lines.append(f"  {arm:<{width}}  " + " | ".join([*verdicts, shape(summary[arm]["temperatures"][t])]))
    expert = (results.get("expert") or {}).get("temperatures", {}).get("expert")
    lines.append(f"  {baseline:<{width}}  " + shape(summary[baseline]["temperatures"][t])
                 + (f" | expert: {shape(expert)}" if expert else ""))
    return lines


def console_summary(results: dict) -> str:
    """What a compare prints when it ends: the brief table, the frontier verdicts, the other verdicts."""
    results = without_trivial_greedy(results)
    frontier = results.get("frontier") or frontier_verdicts(results)
    note = nothing_to_compare(results["summary"])
    return "\n".join([brief_table(results), "", *(f"frontier: {f['text']}" for f in frontier),
                      *([note] if note else verdict_summary(all_verdicts(results)))])


# ---------------------------------------------------------------------------- all of it


def write_report(results: dict, output_dir: str, title: str = "compare") -> dict[str, str]:
    """results.json (with `verdicts` and `frontier`), the PNG plots and report.md in output_dir; returns
    their paths by kind."""
    os.makedirs(output_dir, exist_ok=True)
    results = without_trivial_greedy(results)
    verdicts = all_verdicts(results)
    results = {**results, "verdicts": verdicts, "frontier": frontier_verdicts(results)}
    paths = {"results": os.path.join(output_dir, "results.json")}
    write_atomic(paths["results"], json.dumps(results, indent=1))
    plots = write_plots(results, output_dir)
    paths.update(plots)
    paths["report"] = os.path.join(output_dir, "report.md")
    write_atomic(paths["report"], markdown(results, verdicts, list(plots), title))
    return paths
