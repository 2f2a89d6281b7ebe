"""Building blocks of the benchmark pages: a setting's table, frontier verdicts, counts over settings, a study page.

Imported by `benchmarks.report` and `benchmarks.sweeps_report`; not run on its own. Every figure comes
from summary.json files (`benchmarks.verdicts` reads them); prose is wrapped to WIDTH characters.
"""

from __future__ import annotations

import json
import os
import textwrap

from benchmarks.settings import EXPERTS, REGIMES, ROOT, TEMPERATURES, rel
from benchmarks.summary import load_summary
from benchmarks.verdicts import FRONTIER_AXES, compare_to_sft, expert_figure, figure, fmt, frontiers, verdict_cell

WIDTH = 110
REPORT = "python -m benchmarks.report"

# (metric, temperature or None for held-out metrics, better direction, column title)
COLUMNS = [
    ("forward_kl", None, "down", "fwd KL ↓"),
    ("heldout_nll", None, "down", "NLL ↓"),
    ("expert_loglik", "1", "up", "expert loglik ↑"),
    ("reverse_kl", "1", "down", "rev KL ↓"),
    ("validity", "1", "up", "valid ↑"),
    ("self_bleu_per_input", "1", "down", "self-BLEU ↓"),
    ("distinct_2_across", "1", "up", "dist-2 ↑"),
    ("reward_quality_spearman", "1", "up", "ρ(return, q) ↑"),
    ("mean_length", "1", None, "length"),  # descriptive: tokens per sample incl. EOS
    ("terminated", "1", None, "ended EOS"),
    ("loop_share", "1", None, "loops"),
]
EXPERT_COLUMNS = ("expert_loglik", "validity", "self_bleu_per_input", "distinct_2_across", "mean_length", "terminated",
                  "loop_share")
AXIS_WORDS = {"Self-BLEU": "quality at matched Self-BLEU", "distinct-2": "quality at matched distinct-2",
              "coverage": "coverage at matched quality", "coverage at length-std quality":
              "coverage at matched quality (length-std)"}
METRICS_NOTE = (
    f"Tables at temperature 1 (k = 8 samples per prompt; the frontier's points are T = "
    f"{', '.join(f'{t:g}' for t in TEMPERATURES)}): forward KL(expert‖model) per token on held-out expert text; "
    "expert log-likelihood of samples per token; reverse KL(model‖expert) per token on samples that ended with "
    "EOS; validity = share of samples the unsmoothed expert could write; Self-BLEU within a prompt's samples; "
    "distinct-2 over one sample per prompt; ρ = Spearman correlation of implied-reward returns with the expert "
    "log-likelihood across samples; the expert row is the expert's own samples, same counts. Figures: mean "
    "over seeds [95% Student-t interval over seeds].")


def para(text: str) -> list[str]:
    """A paragraph wrapped to WIDTH, then a blank line."""
    return [*textwrap.wrap(text, WIDTH, break_on_hyphens=False), ""]


def tidy(lines: list[str]) -> list[str]:
    """Bullets longer than WIDTH wrapped, their continuation indented (tables and headings left alone)."""
    out = []
    for line in lines:
        if line.startswith("- ") and len(line) > WIDTH:
            out += textwrap.wrap(line, WIDTH, subsequent_indent="  ", break_on_hyphens=False)
        else:
            out.append(line)
    return out


def link(path: str, here: str) -> str:
    r = os.path.relpath(path, here)
    return f"[{rel(path)}]({r})"


def setting_table(results: dict) -> list[str]:
    lines = ["| arm | " + " | ".join(c[3] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for arm in results["summary"]:
        lines.append(f"| {arm} | " + " | ".join(fmt(figure(results, arm, m, t)) for m, t, _, _ in COLUMNS) + " |")
    lines.append("| expert | " + " | ".join(
        fmt(expert_figure(results, m)) if m in EXPERT_COLUMNS else "–" for m, _, _, _ in COLUMNS) + " |")
    return lines


def frontier_lines(results: dict) -> list[str]:
    """One sentence per arm and axis, in the library's words (describe_verdict)."""
    from llm_irl.metrics.frontier import describe_verdict

    lines = []
    for arm, by_axis in frontiers(results).items():
        for axis, result in by_axis.items():
            gap_name = "coverage" if axis.startswith("coverage") else "quality"
            lines.append(f"- {AXIS_WORDS[axis]}: {describe_verdict(result, arm, gap_name=gap_name)}")
    return lines


def frontier_matrix(all_results: dict[str, dict]) -> list[str]:
    """Each arm's frontier verdict against SFT on each axis, setting by setting: one row per (arm, setting)."""
    head = ["arm", "setting", *(AXIS_WORDS[a] for a in FRONTIER_AXES)]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    by_arm: dict[str, list[str]] = {}
    for name, results in all_results.items():
        for arm, by_axis in frontiers(results).items():
            by_arm.setdefault(arm, []).append(f"| {arm} | {name} | " + " | ".join(
                verdict_cell(by_axis.get(axis)) for axis in FRONTIER_AXES) + " |")
    return lines + [row for rows in by_arm.values() for row in rows]


def claims(all_results: dict[str, dict]) -> list[str]:
    """Each arm against SFT, per metric at T = 1: settings where it is better / worse / overlapping (disjoint
    95% intervals over seeds, or not)."""
    metrics = [(m, t, b, title.rstrip(" ↑↓")) for m, t, b, title in COLUMNS if b is not None]
    lines = ["| arm vs SFT | " + " | ".join(m[3] for m in metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    arms = [a for a in next(iter(all_results.values()))["summary"] if a != "sft"]
    for arm in arms:
        cells = []
        for metric, t, better, _ in metrics:
            verdicts = [compare_to_sft(r, arm, metric, t, better) for r in all_results.values()]
            cells.append(f"{verdicts.count('better')} / {verdicts.count('worse')} / {verdicts.count('overlap')}")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def regime_effect(all_results: dict[str, dict]) -> list[str]:
    """Does the regulariser resist overfitting? Each arm's forward-KL gap to SFT, scarce vs plentiful."""
    lines = []
    arms = [a for a in next(iter(all_results.values()))["summary"] if a != "sft"]
    for arm in arms:
        for expert in EXPERTS:
            gaps = {}
            for regime in REGIMES:
                r = all_results.get(f"{expert}_{regime}")
                a, s = (r and figure(r, arm, "forward_kl", None)), (r and figure(r, "sft", "forward_kl", None))
                if a and s:
                    gaps[regime] = a["value"] - s["value"]
            if len(gaps) == 2:
                lines.append(f"- {expert}: {arm} − SFT forward KL = {gaps['scarce']:+.3f} (scarce) vs "
                             f"{gaps['plentiful']:+.3f} (plentiful) nats/token")
    return lines


def length_effect(all_results: dict[str, dict]) -> list[str]:
    """Sample length and the share that ended with EOS, each arm against SFT and the expert, over settings."""
    lines = []
    ratios = [figure(r, "sft", "mean_length", "1")["value"] / expert_figure(r, "mean_length")["value"]
              for r in all_results.values() if expert_figure(r, "mean_length") and figure(r, "sft", "mean_length", "1")]
    if ratios:
        lines.append(f"- sft: samples {sum(ratios) / len(ratios):.2f}× as long as the expert's own "
                     f"(mean over {len(ratios)} settings)")
    for arm in [a for a in next(iter(all_results.values()))["summary"] if a != "sft"]:
        ratios, ended = [], []
        for r in all_results.values():
            a, b = figure(r, arm, "mean_length", "1"), figure(r, "sft", "mean_length", "1")
            ta, tb = figure(r, arm, "terminated", "1"), figure(r, "sft", "terminated", "1")
            if a and b and ta and tb:
                ratios.append(a["value"] / b["value"])
                ended.append((ta["value"], tb["value"]))
        if ratios:
            mean_a, mean_b = (sum(e[i] for e in ended) / len(ended) for i in (0, 1))
            lines.append(f"- {arm}: samples {sum(ratios) / len(ratios):.2f}× as long as SFT's (mean over "
                         f"{len(ratios)} settings; {mean_a:.0%} end with EOS against SFT's {mean_b:.0%})")
    return lines


def sft_validity(all_results: dict[str, dict]) -> list[str]:
    """How well SFT learned each setting's expert: the share of its samples the expert could write, at T = 1."""
    parts = [f"{name} {fmt(v)}" for name, r in all_results.items() if (v := figure(r, "sft", "validity", "1"))]
    return [f"- SFT's validity at T = 1 (share of samples the expert could write): {', '.join(parts)}"] if parts else []


def unlearned(all_results: dict[str, dict]) -> list[str]:
    """Settings where no arm writes valid text: comparisons there say little about the objectives."""
    lines = []
    for name, r in all_results.items():
        valid = [figure(r, arm, "validity", "1") for arm in r["summary"]]
        if valid and all(v and v["value"] < 0.01 for v in valid):
            lines.append(f"- {name}: no arm's samples are valid (validity < 1% for every arm): the model and "
                         "budget are too small for this task, so its rows compare failures")
    return lines


def study_results(folder: str) -> dict[str, dict]:
    """setting name -> summary, for each EXPERT_REGIME folder of a study that has one."""
    found = {}
    for expert in EXPERTS:
        for regime in REGIMES:
            if (s := load_summary(os.path.join(folder, f"{expert}_{regime}"))) is not None:
                found[f"{expert}_{regime}"] = s
    return found


def run_record(folder: str) -> dict:
    """The study's study.json (the command of its last training run and its wall time), or {}."""
    path = os.path.join(folder, "study.json")
    return json.load(open(path)) if os.path.exists(path) else {}


def model_description(model_name_or_path: str) -> str:
    if model_name_or_path.startswith("builtin:"):
        return "tiny Llama (2 layers, hidden 64) built from a config"
    config_path = os.path.join(ROOT, model_name_or_path, "config.json")
    shape = os.path.basename(model_name_or_path).rsplit("_", 1)[-1].replace("x", " layers, hidden ")
    if os.path.exists(config_path):
        with open(config_path) as f:
            config = json.load(f)
        shape = f"{config['num_hidden_layers']} layers, hidden {config['hidden_size']}"
    return f"Llama ({shape}) built by `python -m benchmarks.models` (`{model_name_or_path}` for the first setting)"


def provenance(folder: str, all_results: dict[str, dict]) -> list[str]:
    """Where a study's figures come from: its last command, compute time, model and regimes."""
    record, first = run_record(folder), next(iter(all_results.values()))
    runtimes = {name: r["runtime_s"] for name, r in all_results.items()}
    text = (f"Trained by `{record.get('command', 'python -m benchmarks.study')}`"
            + (f" ({record['wall_s'] / 60:.1f} min wall, settings side by side)" if record.get("wall_s") else "")
            + "".join(f"; arms trained again since, in place of their rows: `{r['command']}` "
                      f"({r['wall_s'] / 60:.1f} min wall)" for r in record.get("reruns", []))
            + f". Compute time of the settings: {sum(runtimes.values()) / 60:.1f} min in all ("
            + ", ".join(f"{n} {t / 60:.1f}" for n, t in runtimes.items()) + " min). Model: "
            + model_description(first["common"]["model_name_or_path"]) + ", word tokenizer over the expert's "
            "vocabulary. Regimes: " + ", ".join(f"{k} = {v} demonstrations" for k, v in REGIMES.items())
            + "; same steps, batch and seeds for every arm. Intervals: " + first.get("interval", "") + ".")
    return para(text)


def setting_sections(all_results: dict[str, dict], folder: str, here: str, level: str = "###") -> list[str]:
    """One section per setting of a study: its table at T = 1 and its frontier verdicts."""
    out = []
    for name, results in all_results.items():
        setting_dir = os.path.join(folder, name)
        out += [f"{level} {name}", "", f"Run time {results['runtime_s'] / 60:.1f} min; the setting's own report "
                f"(every metric at every temperature): {link(os.path.join(setting_dir, 'report.md'), here)}.", "",
                *setting_table(results), "", *frontier_lines(results), ""]
    return out


def study_body(folder: str, here: str, level: str = "###") -> list[str]:
    """A study's findings: verdict matrix, metric counts, regime and length effects, then each setting."""
    all_results = study_results(folder)
    if not all_results:
        return []
    return [*provenance(folder, all_results),
            f"{level} Frontier verdicts against SFT, setting by setting", "",
            *para("Mean gap over the common range [95% interval over seeds]; above/below = the interval clears 0 and "
                  "no point of the range says the opposite; level = not distinguishable (locally above/below where "
                  "part of the range clears 0); crossing = points clear 0 both ways; – = no common range. Quality = "
                  "the expert's log-likelihood of samples (nats/token); coverage = −forward KL of held-out expert "
                  "text under the model at T; length-std = quality standardised to the expert's sample lengths "
                  "(no length effect on either axis, while Self-BLEU and distinct-2 favour shorter samples)."),
            *frontier_matrix(all_results), "",
            f"{level} Metric by metric at T = 1", "",
            *para("Settings where the arm is better / worse / overlapping against SFT (95% intervals over seeds "
                  "disjoint or not)."),
            *claims(all_results), "", *unlearned(all_results), *sft_validity(all_results), "",
            f"{level} Regime and length", "",
            *para("Does the regulariser (IQ's TD term, GAIL's adversary) resist overfitting on small data? Each "
                  "arm's gap to SFT in forward KL, by regime (negative = closer to the expert):"),
            *regime_effect(all_results), "",
            *para("Sample length at T = 1 against SFT and the expert (`iq_include` keeps the terminal transition in "
                  "the χ² term, IQ-Learn's choice, whose fixed point prefers never stopping; the default "
                  "`terminal_td: exclude` leaves the reward of stopping free):"),
            *length_effect(all_results), "",
            *para(METRICS_NOTE),
            *setting_sections(all_results, folder, here, level)]
