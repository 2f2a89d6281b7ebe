"""The compare report: verdicts with intervals, markdown tables and PNG plots, written atomically.

A winner is claimed only when the best arm's 95% interval is disjoint from every other arm's;
otherwise the report says the intervals overlap and claims no winner. Disjoint intervals are a
conservative test (overlapping ones do not prove equality), and with few seeds the Student-t
intervals are wide: that is the honest state of the evidence, not a defect of the report.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager

from llm_irl.evaluate import METRICS, format_estimate

# quality axis of the plots: the first of these the evaluation has
PLOT_QUALITY = ("expert_loglik", "exact_match", "rouge1", "bleu")
# diversity axes: per-input (within a prompt's k samples) and across-input (one sample per prompt)
PLOT_DIVERSITY = ("self_bleu_per_input", "distinct_2_across")


@contextmanager
def atomic_path(path: str):
    """Yield a temporary path in the same folder as `path`, renamed onto it when the block succeeds:
    readers never see half a file, and a crash leaves the previous version in place."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the result should read like any other file
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_atomic(path: str, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


# ---------------------------------------------------------------------------- verdicts


def disjoint(a: dict, b: dict) -> bool:
    """True when two 95% intervals do not overlap; False when either has no interval."""
    if a["lo"] is None or b["lo"] is None:
        return False
    return a["hi"] < b["lo"] or b["hi"] < a["lo"]


def verdict(metric: str, where: str, estimates: dict[str, dict]) -> dict:
    """Best arm on one metric, and whether its interval clears every other arm's."""
    m = METRICS[metric]
    best = max(estimates, key=lambda arm: m.sign * estimates[arm]["value"])
    overlapping = [arm for arm in estimates if arm != best and not disjoint(estimates[best], estimates[arm])]
    figures = "; ".join(f"{arm} {format_estimate(e)}" for arm, e in estimates.items())
    better = "more diverse" if m.kind == "diversity" else "better"
    if not overlapping:
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
    return {"metric": metric, "where": where, "best": best, "winner": None if overlapping else best,
            "overlapping": overlapping, "kind": m.kind, "baseline": baseline, "against_baseline": against_baseline,
            "text": f"{where}, {m.label} ({m.sense}): {figures} → {outcome}"}


def all_verdicts(results: dict) -> list[dict]:
    """A verdict for every quality and reward metric and the headline diversity ones (the plotted
    axes and the policy entropy; the tables hold the rest), at every temperature and over all."""
    summary = results["summary"]
    arms = list(summary)
    sections = [("all temperatures", lambda arm: summary[arm]["metrics"])]
    for t in summary[arms[0]]["temperatures"]:
        sections.append((f"T={t}", lambda arm, t=t: summary[arm]["temperatures"][t]))
    out = []
    for where, get in sections:
        for metric in METRICS:
            m = METRICS[metric]
            headline = m.kind != "diversity" or metric in (*PLOT_DIVERSITY, "policy_entropy")
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
    against the baseline."""
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


# ---------------------------------------------------------------------------- markdown


def _table(columns: dict[str, dict], names: list[str]) -> list[str]:
    """Rows = metrics, columns = arms (and the expert)."""
    head = ["| metric | how to read | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    return head + [f"| {METRICS[n].label} | {METRICS[n].sense} | "
                   + " | ".join(format_estimate(col.get(n)) for col in columns.values()) + " |" for n in names]


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
        f"({ev['eval_split']}) at temperatures {', '.join(temps)} (top_p {ev['top_p']}). "
        f"Runtime {results['runtime_s'] / 60:.1f} min.",
        "",
        "Arms: " + "; ".join(f"**{a}** = trainer `{s['trainer']}`"
                             + (" with " + ", ".join(f"{k}={v}" for k, v in s.items() if k != "trainer")
                                if len(s) > 1 else " (defaults)") for a, s in results["arms"].items()) + ".",
        "",
        f"Figures: {results['interval']}. A winner is claimed only when the best arm's interval is "
        "disjoint from every other arm's; otherwise the report says the intervals overlap.",
        "",
        "## Verdicts",
        "",
        *verdict_summary(verdicts),
        "",
        *[f"- {v['text']}" for v in verdicts if v["kind"] != "diversity"],
        "",
        "Diversity (more diverse is not better on its own: read it against quality, as in the plot):",
        "",
        *[f"- {v['text']}" for v in verdicts if v["kind"] == "diversity"],
        "",
    ]
    if plots:
        lines += ["## Plots", "", *[f"![{p}]({p})" for p in plots], ""]
    if results["sample_quality"]:
        lines += [f"Per-sample quality for the reward rows: {METRICS[results['sample_quality']].label}; "
                  f"returns use γ = {ev['reward_gamma']}.", ""]
    overall = {arm: summary[arm]["metrics"] for arm in arms}
    if any(overall.values()):
        lines += ["## Held-out demonstrations (no sampling)", "",
                  *_table(overall, [n for n in METRICS if n in overall[arms[0]]]), ""]
    for t in temps:
        columns = {arm: summary[arm]["temperatures"][t] for arm in arms}
        if expert:
            columns["expert (own samples)"] = expert["temperatures"]["expert"]
        names = [n for n in METRICS if any(n in c for c in columns.values())]
        lines += [f"## Temperature {t}", "", *_table(columns, names), ""]
    lines += ["## Files", "",
              "`results.json` holds every figure above and each run's own; each run's model, `samples.jsonl` "
              "(every sample with its per-token log-probs) and `eval.json` are in `runs/ARM/seedS/`.", ""]
    return "\n".join(lines)


# columns of the console table: the headline figure of each kind
BRIEF = ("heldout_nll", "expert_loglik", "exact_match", "rouge1", "self_bleu_per_input", "distinct_2_across",
         "policy_entropy", "reward_quality_spearman")


def brief_table(results: dict) -> str:
    """A console table: one row per (temperature, arm), the expert's own samples as reference."""
    summary, expert = results["summary"], results["expert"]
    arms = list(summary)
    rows = []  # (temperature, who, figures)
    for t in summary[arms[0]]["temperatures"]:
        rows += [(t, arm, {**summary[arm]["metrics"], **summary[arm]["temperatures"][t]}) for arm in arms]
    if expert:
        rows.append(("-", "expert", expert["temperatures"]["expert"]))
    names = [n for n in BRIEF if any(n in figures for _, _, figures in rows)]
    head = ["| T | arm | " + " | ".join(METRICS[n].short for n in names) + " |", "|---" * (len(names) + 2) + "|"]
    body = [f"| {t} | {who} | " + " | ".join(format_estimate(f.get(n)) for n in names) + " |" for t, who, f in rows]
    legend = [f"{METRICS[n].short}: {METRICS[n].label}, {METRICS[n].sense}" for n in names]
    return "\n".join(head + body + ["", *legend])


# ---------------------------------------------------------------------------- plots


def _plot_quality(figures: dict) -> str | None:
    return next((q for q in PLOT_QUALITY if q in figures), None)


def _errors(points: list[dict]) -> list[list[float]] | None:
    """matplotlib's asymmetric error bars, or None when a point has no interval."""
    if any(p["lo"] is None for p in points):
        return None
    return [[p["value"] - p["lo"] for p in points], [p["hi"] - p["value"] for p in points]]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    _pyplot().close(fig)


PANEL_TITLES = {"self_bleu_per_input": "Per-input diversity (k samples of the same prompt)",
                "distinct_2_across": "Across-input diversity (one sample per prompt)"}


def plot_quality_vs_diversity(results: dict, path: str) -> bool:
    """One panel per diversity axis; one curve per arm through its temperatures; the expert as a star."""
    summary, expert = results["summary"], results["expert"]
    arms = list(summary)
    temps = list(summary[arms[0]]["temperatures"])
    first = summary[arms[0]]["temperatures"][temps[0]]
    quality = _plot_quality(first)
    axes_x = [d for d in PLOT_DIVERSITY if d in first]
    if quality is None or not axes_x:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(axes_x), figsize=(6.5 * len(axes_x), 5.4), squeeze=False)
    for ax, div in zip(axes[0], axes_x):
        for arm in arms:
            pts = [summary[arm]["temperatures"][t] for t in temps]
            xs = [p[div]["value"] for p in pts]
            ys = [p[quality]["value"] for p in pts]
            line = ax.errorbar(xs, ys, xerr=_errors([p[div] for p in pts]), yerr=_errors([p[quality] for p in pts]),
                               marker="o", capsize=3, label=arm)
            for x, y, t in zip(xs, ys, temps):
                ax.annotate(f"T={t}", (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8,
                            color=line[0].get_color())
        if expert and div in expert["temperatures"]["expert"]:
            e = expert["temperatures"]["expert"]
            ax.plot([e[div]["value"]], [e[quality]["value"]], marker="*", markersize=15, color="black",
                    linestyle="none", label="expert (its own samples)")
        reversed_ = METRICS[div].sign < 0
        if reversed_:
            ax.invert_xaxis()  # keep "more diverse" to the right on every panel
        ax.set_title(PANEL_TITLES.get(div, METRICS[div].label), fontsize=10)
        count = f"k={results['eval']['k']}" if div.endswith("_per_input") else f"{results['eval']['num_prompts']} texts"
        ax.set_xlabel(f"{METRICS[div].label} ({count})\n→ more diverse"
                      + (" (axis reversed: lower Self-BLEU)" if reversed_ else ""))
        ax.set_ylabel(f"{METRICS[quality].label}\n↑ {METRICS[quality].sense}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle("Quality against diversity: each point is one sampling temperature T; up = better quality, "
                 "right = more diverse; the expert's star is the target\n"
                 f"{results['eval']['num_prompts']} prompts × k={results['eval']['k']} samples; "
                 f"bars: {results['interval']}", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return True


def plot_by_temperature(results: dict, path: str) -> bool:
    """Each headline metric against temperature, one line per arm, the expert as a dashed line."""
    summary, expert = results["summary"], results["expert"]
    arms = list(summary)
    temps = list(summary[arms[0]]["temperatures"])
    first = summary[arms[0]]["temperatures"][temps[0]]
    names = [n for n in (_plot_quality(first), *PLOT_DIVERSITY, "policy_entropy") if n in first]
    if not names:
        return False
    plt = _pyplot()
    cols = min(2, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.0 * cols, 4.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for arm in arms:
            pts = [summary[arm]["temperatures"][t][name] for t in temps]
            ax.errorbar([float(t) for t in temps], [p["value"] for p in pts], yerr=_errors(pts), marker="o",
                        capsize=3, label=arm)
        if expert and name in expert["temperatures"]["expert"]:
            ax.axhline(expert["temperatures"]["expert"][name]["value"], color="black", linestyle="--", linewidth=1,
                       label="expert (its own samples)")
        ax.set_title(f"{METRICS[name].label}\n({METRICS[name].sense})", fontsize=10)
        ax.set_xlabel("sampling temperature T")
        ax.set_xticks([float(t) for t in temps])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(f"Each headline metric against sampling temperature; bars: {results['interval']}", fontsize=11)
    fig.tight_layout()
    _save(fig, path)
    return True


# ---------------------------------------------------------------------------- all of it


def write_report(results: dict, output_dir: str, title: str = "compare") -> dict[str, str]:
    """results.json, the PNG plots and report.md in output_dir; returns their paths by kind."""
    os.makedirs(output_dir, exist_ok=True)
    verdicts = all_verdicts(results)
    results = {**results, "verdicts": verdicts}
    paths = {"results": os.path.join(output_dir, "results.json")}
    write_atomic(paths["results"], json.dumps(results, indent=1))
    plots = []
    for name, plot in (("quality_vs_diversity.png", plot_quality_vs_diversity),
                       ("by_temperature.png", plot_by_temperature)):
        if plot(results, os.path.join(output_dir, name)):
            plots.append(name)
            paths[name] = os.path.join(output_dir, name)
    paths["report"] = os.path.join(output_dir, "report.md")
    write_atomic(paths["report"], markdown(results, verdicts, plots, title))
    return paths
