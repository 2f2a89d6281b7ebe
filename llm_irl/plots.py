"""The compare report's PNG plots (matplotlib): quality against diversity, and each metric against temperature.

Both read a compare result (`llm_irl.compare.run_compare`, with the report's `frontier` verdicts when
`llm_irl.report` adds them): one curve per arm through its sampling temperatures (greedy decoding
as the point T=0), error bars from each figure's interval, the expert's own samples as the
reference when there is an expert (the legend and the title name it only then). A curve runs
through the temperatures where the arm has the figure: greedy decoding has no per-input diversity.
Files are written atomically, and matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import os
import textwrap

from llm_irl.files import atomic_path
from llm_irl.metrics.catalogue import DIVERSITY_AXES, HEADLINE_DIVERSITY, METRICS, QUALITY_AXIS


def _plot_quality(every: list[dict]) -> str | None:
    return next((q for q in QUALITY_AXIS if any(q in f for f in every)), None)


def _point_label(t: str) -> str:
    return "greedy" if float(t) == 0 else f"T={t}"


def _suptitle(fig, lines: list[str], fontsize: float) -> None:
    """A figure title wrapped to the figure's width (a long one is otherwise cut at both edges)."""
    # DejaVu Sans averages about 0.6 em per character; wrap a little short of the width
    width = max(20, int(fig.get_figwidth() * 72 / (0.62 * fontsize)))
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in lines), fontsize=fontsize)


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
                "distinct_2_across": "Across-input diversity (one sample per prompt)",
                "forward_kl_at_t": "Coverage (the expert's held-out text under the model at T)"}


def _curves(results: dict) -> tuple[dict, dict | None, list[str], list[str], list[dict]]:
    """(summary by arm, the expert's figures, arms, temperatures, every arm's figures at every T)."""
    summary, expert = results["summary"], results["expert"]
    arms = list(summary)
    temps = list(summary[arms[0]]["temperatures"])
    return summary, expert, arms, temps, [summary[a]["temperatures"][t] for a in arms for t in temps]


def _having(summary: dict, arm: str, temps: list[str], *names: str) -> list[str]:
    """The temperatures at which an arm has every figure in `names` (greedy decoding has no per-input diversity)."""
    return [t for t in temps if all(n in summary[arm]["temperatures"][t] for n in names)]


def _frontier_label(results: dict, arm: str, div: str) -> str:
    """An arm's legend entry, with its frontier verdict against the baseline on this diversity axis."""
    for f in results.get("frontier") or []:
        if f["diversity"] == div and f["arm"] == arm:
            locally = f" (locally {f['locally']})" if f["verdict"] == "overlapping" and f.get("locally") else ""
            return f"{arm}: frontier {f['verdict']}{locally} {f['baseline']}'s"
        if f["diversity"] == div and f["baseline"] == arm:
            return f"{arm} (baseline)"
    return arm


def _count(results: dict, div: str) -> str:
    """What one point of a diversity axis is computed over."""
    if div.endswith("_per_input"):
        return f"k={results['eval']['k']}"
    if div == "forward_kl_at_t":
        return f"≤ {results['eval'].get('num_heldout', '?')} held-out texts"
    return f"{results['eval']['num_prompts']} texts"


def _more(div: str) -> str:
    return "coverage" if div == "forward_kl_at_t" else "diverse"


def plot_quality_vs_diversity(results: dict, path: str) -> bool:
    """One panel per diversity axis; one curve per arm through its temperatures, labelled with its frontier
    verdict; the expert as a star where it has both figures."""
    summary, expert, arms, temps, every = _curves(results)
    quality = _plot_quality(every)
    axes_x = [d for d in DIVERSITY_AXES if any(d in f for f in every)]
    if quality is None or not axes_x:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(axes_x), figsize=(6.5 * len(axes_x), 5.8), squeeze=False, layout="constrained")
    star_drawn = False
    for ax, div in zip(axes[0], axes_x):
        for arm in arms:
            if not (ts := _having(summary, arm, temps, div, quality)):
                continue
            pts = [summary[arm]["temperatures"][t] for t in ts]
            xs = [p[div]["value"] for p in pts]
            ys = [p[quality]["value"] for p in pts]
            line = ax.errorbar(xs, ys, xerr=_errors([p[div] for p in pts]), yerr=_errors([p[quality] for p in pts]),
                               marker="o", capsize=3, label=_frontier_label(results, arm, div))
            for x, y, t in zip(xs, ys, ts):
                ax.annotate(_point_label(t), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8,
                            color=line[0].get_color())
        e = expert["temperatures"]["expert"] if expert else {}
        if div in e and quality in e:  # a star only where the expert has both figures; the legend names it then
            ax.plot([e[div]["value"]], [e[quality]["value"]], marker="*", markersize=15, color="black",
                    linestyle="none", label="expert (its own samples)")
            star_drawn = True
        reversed_ = METRICS[div].sign < 0
        if reversed_:
            ax.invert_xaxis()  # keep "more diverse" to the right on every panel
        ax.set_title(PANEL_TITLES.get(div, METRICS[div].label), fontsize=10)
        ax.set_xlabel(f"{METRICS[div].label} ({_count(results, div)})\n→ more {_more(div)}"
                      + (f" (axis reversed: lower {METRICS[div].short})" if reversed_ else ""))
        ax.set_ylabel(f"{METRICS[quality].label}\n↑ {METRICS[quality].sense}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    _suptitle(fig, ["Quality against diversity: each point is one sampling temperature T; up = better quality, "
                    "right = more diverse" + ("; the expert's star is the target" if star_drawn else ""),
                    f"{results['eval']['num_prompts']} prompts × k={results['eval']['k']} samples; "
                    f"bars: {results['interval']}"], fontsize=10)
    _save(fig, path)
    return True


def plot_by_temperature(results: dict, path: str) -> bool:
    """Each headline metric against temperature, one line per arm (through the temperatures where it has
    the figure), the expert as a dashed line."""
    summary, expert, arms, temps, every = _curves(results)
    names = [n for n in (_plot_quality(every), *HEADLINE_DIVERSITY) if any(n in f for f in every)]
    if not names:
        return False
    plt = _pyplot()
    cols = min(2, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.0 * cols, 4.2 * rows + 0.6), squeeze=False, layout="constrained")
    for ax, name in zip(axes.flat, names):
        for arm in arms:
            ts = _having(summary, arm, temps, name)
            pts = [summary[arm]["temperatures"][t][name] for t in ts]
            ax.errorbar([float(t) for t in ts], [p["value"] for p in pts], yerr=_errors(pts), marker="o",
                        capsize=3, label=arm)
        if expert and name in expert["temperatures"]["expert"]:
            ax.axhline(expert["temperatures"]["expert"][name]["value"], color="black", linestyle="--", linewidth=1,
                       label="expert (its own samples)")
        ax.set_title(f"{METRICS[name].label}\n({METRICS[name].sense})", fontsize=10)
        ax.set_xlabel("sampling temperature T")
        ax.set_xticks([float(t) for t in temps], [_point_label(t).removeprefix("T=") for t in temps])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    _suptitle(fig, [f"Each headline metric against sampling temperature; bars: {results['interval']}"], fontsize=11)
    _save(fig, path)
    return True


PLOTS = {"quality_vs_diversity.png": plot_quality_vs_diversity, "by_temperature.png": plot_by_temperature}


def write_plots(results: dict, output_dir: str) -> dict[str, str]:
    """Every plot the results allow, as PNG files in output_dir: {file name: path}."""
    paths = {}
    for name, plot in PLOTS.items():
        if plot(results, os.path.join(output_dir, name)):
            paths[name] = os.path.join(output_dir, name)
    return paths
