"""The plots, drawn from stored summaries only (summary.json), by one command.

run as (from the repository root):
    python -m benchmarks.figures          # the per-setting frontier plots BENCHMARKS.md shows -> benchmarks/figures/
    python -m benchmarks.figures --all    # also each run folder's report plots (quality_vs_diversity.png,
                                          # by_temperature.png, which its report.md links; git-ignored)

One PNG per setting of BENCHMARKS.md's opening table (`benchmarks.headline.SETTINGS`): quality
against diversity through the sampling temperatures, one curve per arm (mean over the seeds of the
arm's first stored folder, error bars the 95% interval over seeds), SFT from that setting's first
folder, and the expert's own samples as a star. Kept small (about 30-60 KB each): only these are
tracked in git. `--all` redraws the library's own report plots (`llm_irl.plots.write_plots`) for
every folder with a summary.json, from the summary alone.
"""

from __future__ import annotations

import argparse
import os
import sys

from benchmarks.headline import ARM_NAMES, SETTINGS, Setting
from benchmarks.settings import BENCH, FIGURES, rel
from benchmarks.summary import load_summary, result_folders
from benchmarks.verdicts import at, expert_figure

DPI, SIZE = 90, (5.2, 3.8)  # inches: a 468 x 342 pixel PNG


def figure_path(setting: Setting) -> str:
    return os.path.join(FIGURES, f"{setting.key}.png")


def _quality(summary: dict) -> str:
    """The quality axis: the expert's log-likelihood of samples, or ROUGE-1 where there is no expert."""
    temps = next(iter(summary["summary"].values()))["temperatures"]
    return next((q for q in ("expert_loglik", "rouge1") if any(q in f for f in temps.values())), "expert_loglik")


def _points(summary: dict, arm: str, quality: str) -> tuple[list, list, list, list, list]:
    xs, ys, xerr, yerr, labels = [], [], [[], []], [[], []], []
    for t, node in summary["summary"].get(arm, {}).get("temperatures", {}).items():
        x, y = node.get("self_bleu_per_input"), node.get(quality)
        if float(t) == 0 or not x or not y:
            continue
        xs.append(1.0 - x["value"])
        ys.append(y["value"])
        for err, f, flip in ((xerr, x, True), (yerr, y, False)):
            lo, hi = (f["lo"], f["hi"]) if f.get("lo") is not None else (f["value"], f["value"])
            lo, hi = (1.0 - hi, 1.0 - lo) if flip else (lo, hi)
            err[0].append(max(0.0, (1.0 - f["value"] if flip else f["value"]) - lo))
            err[1].append(max(0.0, hi - (1.0 - f["value"] if flip else f["value"])))
        labels.append(f"T={t}")
    return xs, ys, xerr, yerr, labels


def plot_setting(setting: Setting, path: str) -> bool:
    """Quality against 1 − Self-BLEU for SFT and each arm of the setting; False when nothing is stored."""
    first = next(iter(setting.arms.values()))
    base = at(first.folders[0])
    if base is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality = _quality(base)
    fig, ax = plt.subplots(figsize=SIZE, layout="constrained")
    curves = [("SFT", base, "sft")]
    curves += [(ARM_NAMES[a], at(s.folders[0]), s.arm) for a, s in setting.arms.items() if at(s.folders[0])]
    for label, summary, arm in curves:
        xs, ys, xerr, yerr, temps = _points(summary, arm, quality)
        if xs:
            ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, marker="o", markersize=3, capsize=2, linewidth=1, label=label)
    x, y = expert_figure(base, "self_bleu_per_input"), expert_figure(base, quality)
    if x and y:
        ax.plot([1.0 - x["value"]], [y["value"]], marker="*", markersize=11, color="black", linestyle="none",
                label="expert")
    ax.set_title(f"{setting.label}: T = 0.7, 1, 1.3", fontsize=8)
    ax.set_xlabel("1 − Self-BLEU (→ more diverse)", fontsize=7)
    ax.set_ylabel("expert log-lik of samples (nats/token)" if quality == "expert_loglik" else "ROUGE-1 F", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower left")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return True


def report_plots(folder: str) -> list[str]:
    """The library's report plots of a run folder, redrawn from its summary.json (not from results.json)."""
    from llm_irl.plots import write_plots

    summary = load_summary(folder)
    return list(write_plots(summary, folder)) if summary else []


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="also every run folder's report plots (git-ignored)")
    args = parser.parse_args(argv)
    for setting in SETTINGS:
        path = figure_path(setting)
        if plot_setting(setting, path):
            print(f"{rel(path)}: {os.path.getsize(path) / 1024:.0f} KB")
    if args.all:
        for folder in result_folders(BENCH, "summary.json"):
            for name in report_plots(folder):
                print(f"{rel(os.path.join(folder, name))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
