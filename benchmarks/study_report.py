"""Writing BENCHMARKS.md: the study's settings, the companion studies and the sweeps of benchmarks/sweeps/ run on
their own, each section built from the results on disk (study_figures.py reads them)."""

from __future__ import annotations

import json
import os

from llm_irl.quickstart import COMMON
from study import BIGGER_SIZE, EXPERTS, GRID_STUDY, GRID_STUDY_BIGGER, REGIMES, ROOT, TEMPERATURES
from study_figures import (FRONTIER_AXES, budget_results, compare_to_sft, expert_figure, figure, fmt,
                           frontier_against, frontiers, pooled_frontier_against, results_at, sweep_results,
                           verdict_cell)


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


# studies run apart from this one (their own command), summarised here from their results on disk
GAIL_STUDY = os.path.join(ROOT, "benchmarks", "study_gail")  # study.py --arms sft,gail --output_dir ...
PRETRAINED_REPORT = os.path.join(ROOT, "benchmarks", "pretrained", "results", "report.md")  # pretrained/run.py
# studies run on their own over the same settings, summarised in the main BENCHMARKS.md: (folder, title, command)
COMPANION_STUDIES = [
    (GAIL_STUDY, "GAIL (SFT warm start, likelihood-ratio discriminator) against SFT",
     "python benchmarks/study.py --experts {experts} --arms sft,gail --output_dir benchmarks/study_gail "
     "--benchmarks_md benchmarks/study_gail/BENCHMARKS.md"),
    (GRID_STUDY, "Offline IQ's grid: terminal handling × λ × where V comes from, against SFT",
     "python benchmarks/study.py --grid --experts {experts}"),
    (GRID_STUDY_BIGGER, f"The same grid on a bigger model ({BIGGER_SIZE.replace('x', ' layers × ')})",
     f"python benchmarks/study.py --grid --model_size {BIGGER_SIZE} --experts {{experts}}"),
]
# compare recipes of benchmarks/sweeps/ run on their own (`llm-irl compare benchmarks/sweeps/NAME.yaml`)
# a bigger model than the builtin one (benchmarks/arithmetic/build_model.py), named by its local folder
BIGGER_MODEL = {
    "arithmetic/probe": "Bigger model: SFT on the arithmetic expert, 4 layers × 128 (5,000 demonstrations, 1 seed)",
    "arithmetic/probe_50k_6000": "Bigger model: SFT on the arithmetic expert, 4 layers × 128, 50,000 demonstrations "
                                 "and 6,000 steps (1 seed)",
    "arithmetic/arithmetic_plentiful": "Bigger model: the arithmetic expert, SFT against offline IQ on 4 layers × 128 "
                                       "(50,000 demonstrations, 6,000 steps)",
    "arithmetic/probe_markov": "Bigger model: SFT on the Markov expert, 4 layers × 128 (5,000 demonstrations)",
    "arithmetic/bigger_markov_scarce": "Bigger model: the Markov scarce setting on 4 layers × 128",
    "arithmetic/bigger_markov_plentiful": "Bigger model: the Markov plentiful setting on 4 layers × 128",
    "arithmetic/bigger_grammar_scarce": "Bigger model: the grammar scarce setting on 4 layers × 128",
    "arithmetic/bigger_grammar_plentiful": "Bigger model: the grammar plentiful setting on 4 layers × 128",
}
SWEEPS = {"online_scarce": "Online IQ: policy share × λ (Markov expert, 150 demonstrations, 3 seeds)",
          "online_terminal_value": "Online IQ without the policy samples' EOS transitions in the value term "
                                   "(policy_terminal_value: exclude; Markov expert, same setting and seeds)",
          "online_terminal_value_grammar": "The same on the grammar expert (150 demonstrations, 3 seeds)",
          "online_terminal_value_markov_plentiful": "The same with plentiful data (Markov expert, 5,000 demonstrations, "
                                                    "3 seeds)",
          "online_terminal_value_grammar_plentiful": "The same with plentiful data (grammar expert, 5,000 "
                                                     "demonstrations, 3 seeds)",
          "quickstart_online_terminal_value": "The quickstart's setting with 3 seeds: policy_terminal_value at "
                                              "the default share and at 0.5",
          "quickstart_seeds345": "The quickstart's arms on fresh seeds 3-5",
          "quickstart_600_steps": "The quickstart's setting with twice the budget (600 steps): SFT against "
                                  "offline IQ, seeds 0-11",
          "sft_regularised_quickstart": "Is the χ² term more than a regulariser? SFT with label smoothing or weight "
                                        "decay against offline IQ, the quickstart's setting at 600 steps, seeds 0-5",
          "sft_regularised_markov_scarce": "The same question on scarce data: SFT with label smoothing against "
                                           "offline IQ (Markov expert, 150 demonstrations, 3 seeds)",
          "sft_regularised_grammar_scarce": "The same on the grammar expert (150 demonstrations, 3 seeds)"}


FRESH_SEEDS = (("grammar", "scarce"), ("markov", "plentiful"), ("grammar", "plentiful"))  # λ 0.03 arm, seeds 3-5
# the quickstart's arms over seeds 0-5: arm -> (sweep with seeds 0-2, sweep with seeds 3-5)
QUICKSTART_POOLED = {"iq": ("quickstart_online_terminal_value", "quickstart_seeds345"),
                     "online_0.5_0.03_excl": ("online_0.5_0.03_excl_quickstart", "quickstart_seeds345")}
# online IQ at larger policy shares in the study's settings and the quickstart's: setting -> {sweep: arms it holds}
ONLINE_SHARE_SWEEPS = {
    "markov scarce": {"online_terminal_value": ("online_0.5_0.1_excl",), "online_scarce": ("online_0.5_0.1",),
                      "online_0.5_0.03_excl_markov_scarce": ("online_0.5_0.03_excl",)},
    "grammar scarce": {"online_terminal_value_grammar": ("online_0.5_0.1_excl", "online_0.5_0.1"),
                       "online_0.5_0.03_excl_grammar_scarce": ("online_0.5_0.03_excl",)},
    "markov plentiful": {"online_terminal_value_markov_plentiful": ("online_0.5_0.1_excl", "online_0.5_0.1"),
                         "online_0.5_0.03_excl_markov_plentiful": ("online_0.5_0.03_excl",)},
    "grammar plentiful": {"online_terminal_value_grammar_plentiful": ("online_0.5_0.1_excl", "online_0.5_0.1"),
                          "online_0.5_0.03_excl_grammar_plentiful": ("online_0.5_0.03_excl",)},
    # the λ 0.03 arm was picked after seeing seeds 0-2 above: the same settings on fresh seeds
    **{f"{expert} {regime}, seeds 3-5": {f"online_0.5_0.03_excl_{expert}_{regime}_seeds345": ("online_0.5_0.03_excl",)}
       for expert, regime in FRESH_SEEDS},
    "quickstart (markov, 2,000)": {"quickstart_online_terminal_value": ("online_0.1_0.03", "online_0.1_0.03_excl",
                                                                        "online_0.5_0.1_excl"),
                                   "online_0.5_0.03_excl_quickstart": ("online_0.5_0.03_excl",)},
    "quickstart, seeds 3-5": {"quickstart_seeds345": ("iq", "online_0.5_0.03_excl")},
}
# SFT at smaller budgets (benchmarks/sweeps/sft_budget_*.yaml) against the online arm that lay above SFT at 300
# expert -> the sweeps (and their online arm, 300 steps) set against SFT stopped earlier
SFT_BUDGETS = {"markov": [("online_terminal_value", "online_0.5_0.1_excl"),
                          ("online_0.5_0.03_excl_markov_scarce", "online_0.5_0.03_excl")],
               "grammar": [("online_terminal_value_grammar", "online_0.5_0.1_excl"),
                           ("online_0.5_0.03_excl_grammar_scarce", "online_0.5_0.03_excl")]}


def setting_table(results: dict) -> list[str]:
    arms = list(results["summary"])
    lines = ["| arm | " + " | ".join(c[3] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for arm in arms:
        lines.append(f"| {arm} | " + " | ".join(fmt(figure(results, arm, m, t)) for m, t, _, _ in COLUMNS) + " |")
    lines.append("| expert | " + " | ".join(
        fmt(expert_figure(results, m)) if m in EXPERT_COLUMNS else "–" for m, _, _, _ in COLUMNS) + " |")
    return lines


def _axis_words(axis: str) -> str:
    """'diversity by Self-BLEU', or 'coverage at matched quality' for the coverage axes."""
    if axis == "coverage":
        return "coverage at matched quality"
    if axis.startswith("coverage at "):
        return f"coverage at matched {axis.removeprefix('coverage at ')}"
    return f"diversity by {axis}"


def frontier_lines(results: dict) -> list[str]:
    from llm_irl.metrics.frontier import describe_verdict

    lines = []
    for arm, by_axis in frontiers(results).items():
        for axis, result in by_axis.items():
            gap_name = "coverage" if axis.startswith("coverage") else "quality"
            lines.append(f"- {_axis_words(axis)}: {describe_verdict(result, arm, gap_name=gap_name)}")
    return lines


def frontier_summary(all_results: dict[str, dict]) -> list[str]:
    """Each arm's frontier verdicts against SFT, counted over settings."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for results in all_results.values():
        for arm, by_axis in frontiers(results).items():
            for axis, result in by_axis.items():
                tally = counts.setdefault((arm, axis), {})
                verdict = result["verdict"]
                if verdict == "overlapping" and result.get("locally"):  # kept apart: see metrics.frontier
                    verdict = f"overlapping but locally {result['locally']}"
                tally[verdict] = tally.get(verdict, 0) + 1
    order = ("above", "below", "crossing", "overlapping", "overlapping but locally above",
             "overlapping but locally below", "no overlap")
    return [f"- **{arm}** ({_axis_words(axis)}): " + ", ".join(f"{tally.get(v, 0)} {v}" for v in order if tally.get(v))
            + f" of {sum(tally.values())} settings" for (arm, axis), tally in counts.items()]


def claims(all_results: dict[str, dict]) -> list[str]:
    """Each IQ-family arm against SFT, counted over settings, per metric: better / worse / overlap."""
    lines = []
    arms = [a for a in next(iter(all_results.values()))["summary"] if a != "sft"]
    for arm in arms:
        parts = []
        for metric, t, better, title in COLUMNS:
            if better is None:
                continue
            verdicts = [compare_to_sft(r, arm, metric, t, better) for r in all_results.values()]
            counted = {v: verdicts.count(v) for v in ("better", "worse", "overlap")}
            if sum(counted.values()):
                parts.append(f"{title.rstrip(' ↑↓')}: "
                             f"{counted['better']} better / {counted['worse']} worse / {counted['overlap']} overlap")
        lines.append(f"- **{arm} vs SFT** over {len(all_results)} settings — " + "; ".join(parts))
    return lines


def regime_effect(all_results: dict[str, dict], arm: str, metric: str = "forward_kl") -> list[str]:
    """Does the TD term resist overfitting? The arm's forward-KL gap to SFT, scarce vs plentiful."""
    lines = []
    for expert in EXPERTS:
        gaps = {}
        for regime in REGIMES:
            r = all_results.get(f"{expert}_{regime}")
            a, s = (r and figure(r, arm, metric, None)), (r and figure(r, "sft", metric, None))
            if a and s:
                gaps[regime] = a["value"] - s["value"]
        if len(gaps) == 2:
            lines.append(f"- {expert}: {arm} − SFT forward KL = {gaps['scarce']:+.3f} (scarce) vs "
                         f"{gaps['plentiful']:+.3f} (plentiful) nats/token")
    return lines


def length_effect(all_results: dict[str, dict]) -> list[str]:
    """Sample length and the share that ended with EOS, each arm against SFT and the expert, averaged over settings."""
    lines = []
    expert_ratios = [(figure(r, "sft", "mean_length", "1") or {}).get("value", 0) /
                     expert_figure(r, "mean_length")["value"]
                     for r in all_results.values() if expert_figure(r, "mean_length")]
    if expert_ratios:
        lines.append(f"- sft: samples {sum(expert_ratios) / len(expert_ratios):.2f}× as long as the expert's own "
                     f"(mean over {len(expert_ratios)} settings)")
    arms = [a for a in next(iter(all_results.values()))["summary"] if a != "sft"]
    for arm in arms:
        ratios, ended = [], []
        for r in all_results.values():
            a, b = figure(r, arm, "mean_length", "1"), figure(r, "sft", "mean_length", "1")
            ta, tb = figure(r, arm, "terminated", "1"), figure(r, "sft", "terminated", "1")
            if a and b and ta and tb:
                ratios.append(a["value"] / b["value"])
                ended.append((ta["value"], tb["value"]))
        if ratios:
            mean_a = sum(e[0] for e in ended) / len(ended)
            mean_b = sum(e[1] for e in ended) / len(ended)
            lines.append(f"- {arm}: samples {sum(ratios) / len(ratios):.2f}× as long as SFT's (mean over "
                         f"{len(ratios)} settings; {mean_a:.0%} end with EOS against SFT's {mean_b:.0%})")
    return lines


def sft_validity(all_results: dict[str, dict]) -> list[str]:
    """How well SFT learned each setting's expert: the share of its samples the expert could write, at T = 1."""
    found = {name: figure(r, "sft", "validity", "1") for name, r in all_results.items()}
    parts = [f"{name} {fmt(v)}" for name, v in found.items() if v]
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


def table_section(title: str, intro: str, header: list[str], rows: list[str]) -> list[str]:
    """A BENCHMARKS.md section: its title, one paragraph, and a table of already formatted rows."""
    return [f"## {title}", "", intro, "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|", *rows, ""]


def online_share_section() -> list[str]:
    """Online arms at larger policy shares against SFT, setting by setting (fresh seeds and pooled seeds too)."""
    rows = []
    for setting, sweeps in ONLINE_SHARE_SWEEPS.items():
        for sweep, arms in sweeps.items():
            if (results := sweep_results(sweep)) is None:
                continue
            for arm in arms:
                by_axis = frontier_against(results, arm, results)
                beside = [f"{figure(results, arm, m, t)['value']:.2f} ({figure(results, 'sft', m, t)['value']:.2f})"
                          for m, t in (("mean_length", "1"), ("forward_kl", None))]
                rows.append(f"| {setting} | {arm} | " + " | ".join(
                    [verdict_cell(by_axis.get(axis)) for axis in FRONTIER_AXES] + beside) + " |")
    pooled = [(f"{expert} {regime}", "online_0.5_0.03_excl", (f"online_0.5_0.03_excl_{expert}_{regime}",
                                                              f"online_0.5_0.03_excl_{expert}_{regime}_seeds345"))
              for expert, regime in FRESH_SEEDS]
    pooled += [("quickstart (markov, 2,000)", arm, names) for arm, names in QUICKSTART_POOLED.items()]
    for setting, arm, names in pooled:  # seeds 0-2 and fresh seeds 3-5 together
        first, fresh = (sweep_results(n) for n in names)
        if first and fresh:
            by_axis = frontier_against(first, arm, first, more=(fresh,))
            rows.append(f"| {setting}, seeds 0-5 pooled | {arm} | " + " | ".join(
                verdict_cell(by_axis.get(axis)) for axis in FRONTIER_AXES) + " | | |")
    if not rows:
        return []
    return table_section("Online IQ at larger policy shares, setting by setting",
            "Arms named online_SHARE_λ (3 seeds each; `_excl` = `policy_terminal_value: exclude`; sweeps in "
            "`benchmarks/sweeps/`), frontier against SFT in the same sweep [95% interval]: by Self-BLEU and "
            "distinct-2 the mean gap in expert log-likelihood at matched diversity; by coverage the mean gap in "
            "−forward KL (nats/token) at matched quality, as measured and standardised to the expert's lengths (– "
            "where the runs' models were no longer on disk to measure it); then length and forward KL at T = 1 "
            "beside SFT's, since shorter samples read as more diverse.",
            ["setting", "arm", *(f"by {axis}" for axis in FRONTIER_AXES), "length (SFT)", "fwd KL (SFT)"], rows)


def quickstart_budget_section() -> list[str]:
    """The quickstart's IQ arms (300 steps, seeds 0-5) against SFT trained for other budgets on those seeds."""
    budgets = budget_results("sft_budget_quickstart")
    rows = []
    for steps, base in sorted(budgets.items()):
        for arm, names in QUICKSTART_POOLED.items():
            parts = [sweep_results(n) for n in names]
            if None in parts:
                continue
            by_axis = pooled_frontier_against(parts, arm, base)
            rows.append(f"| {steps} | {fmt(figure(base, 'sft', 'forward_kl', None))} | "
                        f"{fmt(figure(base, 'sft', 'mean_length', '1'))} | {arm} | "
                        + " | ".join(verdict_cell(by_axis.get(axis)) for axis in FRONTIER_AXES) + " |")
    if not rows:
        return []
    return table_section("The quickstart's setting: IQ at 300 steps against SFT at other budgets",
            "Markov expert, 2,000 demonstrations, seeds 0-5 paired (`benchmarks/sweeps/sft_budget_quickstart.yaml`; "
            "the IQ arms from the sweeps in QUICKSTART_POOLED of benchmarks/study_report.py). The learning rate "
            "follows a cosine over each run's own steps.",
            ["SFT steps", "SFT fwd KL", "SFT length, T = 1", "arm (300 steps)", *(f"by {axis}" for axis in FRONTIER_AXES)],
            rows)


def sft_budget_section() -> list[str]:
    """SFT trained for fewer steps on scarce data against the online arm trained for 300."""
    out = []
    for expert, arms in SFT_BUDGETS.items():
        for sweep, arm in arms:
            online, budgets = sweep_results(sweep), budget_results(f"sft_budget_{expert}_scarce")
            if online is None or not budgets:
                continue
            budgets.setdefault(COMMON["max_steps"], online)  # the sweep's own SFT when no steps_300 run exists
            out += [f"**{expert}**, 150 demonstrations (`benchmarks/sweeps/sft_budget_{expert}_scarce.yaml`; "
                    f"{arm} from `{sweep}.yaml`):", "",
                    f"| SFT steps | fwd KL | expert loglik, T = 1 | self-BLEU, T = 1 | length, T = 1 | {arm} "
                    "(300 steps) against it, by " + " | by ".join(FRONTIER_AXES) + " |",
                    "|---" * (5 + len(FRONTIER_AXES)) + "|"]
            for steps, results in sorted(budgets.items()):
                by_axis = frontier_against(online, arm, results)
                out.append(f"| {steps} | {fmt(figure(results, 'sft', 'forward_kl', None))} | "
                           f"{fmt(figure(results, 'sft', 'expert_loglik', '1'))} | "
                           f"{fmt(figure(results, 'sft', 'self_bleu_per_input', '1'))} | "
                           f"{fmt(figure(results, 'sft', 'mean_length', '1'))} | "
                           + " | ".join(verdict_cell(by_axis.get(axis)) for axis in FRONTIER_AXES) + " |")
            out.append("")
    if out:
        out = ["## Scarce data: online IQ against SFT with a smaller budget", "",
               "300 steps of batch 32 are ~64 epochs of 150 demonstrations, so SFT overfits; is online IQ's gain more "
               "than what stopping SFT earlier gives? Same data, seeds and evaluation; seeds paired.", "", *out]
    return out


def _compare_section(name: str, title: str, here: str) -> list[str]:
    """One `llm-irl compare benchmarks/NAME.yaml` run's table and frontier verdicts, if it has results."""
    if (results := results_at(name)) is None:
        return []
    rel = os.path.relpath(os.path.join(ROOT, "benchmarks", name), here)
    return [f"## {title}", "", f"`llm-irl compare benchmarks/{name}.yaml`, {results['runtime_s'] / 60:.1f} "
            f"min; report and plots in [{rel}]({rel}).", "", *setting_table(results), "", *frontier_lines(results), ""]


def companion_sections(all_results: dict[str, dict], here: str) -> list[str]:
    out = []
    for study, title, command in COMPANION_STUDIES:
        found = {}
        for name in all_results:
            path = os.path.join(study, name, "results.json")
            if os.path.exists(path) and os.path.abspath(study) != os.path.abspath(os.path.dirname(
                    all_results[name].get("output_dir", ""))):  # not a study's own section in its own file
                with open(path) as f:
                    found[name] = json.load(f)
        if found:
            rel = os.path.relpath(os.path.join(study, "BENCHMARKS.md"), here)
            run = command.format(experts=",".join(dict.fromkeys(name.rsplit("_", 1)[0] for name in found)))
            out += [f"## {title}", "", f"Same settings, seeds and evaluation, run on their own (`{run}`); tables "
                    f"and plots in [{rel}]({rel}).", "",
                    *sft_validity(found), *frontier_summary(found), *claims(found), *length_effect(found), ""]
    sweeps = {f"sweeps/{name}": title for name, title in SWEEPS.items()}
    for name, title in sweeps.items():
        out += _compare_section(name, title, here)
    out += online_share_section() + sft_budget_section() + quickstart_budget_section()
    for name, title in BIGGER_MODEL.items():
        out += _compare_section(name, title, here)
    if os.path.exists(PRETRAINED_REPORT):
        with open(PRETRAINED_REPORT, encoding="utf-8") as f:
            body = f.read().split("\n")
        rel = os.path.relpath(os.path.dirname(PRETRAINED_REPORT), here)
        out += ["## Pretrained model: SmolLM2-135M-Instruct on human chat (benchmarks/pretrained/run.py)", "",
                f"Generated by `benchmarks/pretrained/run.py` into [{rel}]({rel}); its report follows, headings "
                "demoted.", ""]
        out += [("#" + line if line.startswith("#") else line).replace("](", f"]({rel}/") if line.startswith("![")
                else ("#" + line if line.startswith("#") else line) for line in body[1:]]
    return out


def model_description(model_name_or_path: str) -> str:
    if model_name_or_path.startswith("builtin:"):
        return "tiny Llama (2 layers, hidden 64) built from a config"
    with open(os.path.join(ROOT, model_name_or_path, "config.json")) as f:
        config = json.load(f)
    return (f"Llama ({config['num_hidden_layers']} layers, hidden {config['hidden_size']}) built from a config by "
            f"benchmarks/arithmetic/build_model.py (`{model_name_or_path}` for the first setting)")


def write_benchmarks(all_results: dict[str, dict], runtimes: dict[str, float], run_record: dict, path: str) -> None:
    from llm_irl.files import write_atomic

    first = next(iter(all_results.values()))
    command, wall = run_record["command"], run_record["wall_s"]
    reruns = [f"`{r['command']}` ({r['wall_s'] / 60:.1f} min wall)" for r in run_record.get("reruns", [])]
    out = [
        "# BENCHMARKS: ground-truth study of SFT, IQ (offline, online) and GAIL",
        "",
        "Generated by `benchmarks/study.py`; every number below comes from that run (nothing edited by hand).",
        "",
        f"- command of the last training run: `{command}`"
        + (f", {wall / 60:.1f} min wall on this machine ({os.cpu_count()} cores), settings side by side"
           if wall is not None else ""),
        *([f"- arms trained again since, in place of their rows: {'; '.join(reruns)}"] if reruns else []),
        f"- compute time of the settings below: {sum(runtimes.values()) / 60:.1f} min in all "
        f"({', '.join(f'{n} {t / 60:.1f}' for n, t in runtimes.items())} min)",
        "- regenerate: `python benchmarks/study.py` (every setting), or `--experts NAME,...` for some of them and "
        "`--report_only` to rebuild this file from the results on disk",
        f"- intervals: {first.get('interval', 'see results.json')}",
        f"- model: {model_description(first['common']['model_name_or_path'])}, word tokenizer over the expert's "
        "vocabulary",
        f"- regimes: {', '.join(f'{k} = {v} demonstrations' for k, v in REGIMES.items())}; same steps, batch and "
        "seeds for every arm",
        f"- sampling temperatures {TEMPERATURES} (the frontier's points); tables at temperature 1 (k = 8 samples per "
        "prompt): forward KL(expert‖model) per token on "
        "held-out expert text; expert log-likelihood of samples per token; reverse KL(model‖expert) per token on "
        "samples that ended with EOS; validity = share of samples the unsmoothed expert could write; Self-BLEU within "
        "a prompt's samples; distinct-2 over one sample per prompt; ρ = Spearman correlation of implied-reward "
        "returns with the expert log-likelihood across samples. The expert row is the expert's own samples, same "
        "counts.",
        "",
        "## What held and what did not",
        "",
        "**Quality–diversity frontier against SFT** (quality = the expert's log-likelihood of samples, compared at "
        "matched diversity over the temperature sweep, seeds paired; above/below = the 95% interval over seeds of the "
        "mean gap over the common diversity range clears 0, and no point of the range says the opposite; crossing = "
        "points clear 0 both ways; see each setting below for the gaps). Coverage is read the other way round: "
        "−forward KL of held-out expert text under the model at each T, at matched quality, once with quality as "
        "measured and once standardised to the expert's sample lengths. Self-BLEU and distinct-2 count n-grams and "
        "the expert's per-token likelihood of samples depends on their length by itself (on the grammar expert's own "
        "samples it falls from −0.99 for the shortest quarter to −1.28 nats/token for the longest), so an arm that "
        "writes shorter samples can look better on the first two axes without being better; the last one has "
        "no length effect on either axis:",
        "",
        *frontier_summary(all_results),
        "",
        "Metric by metric at temperature 1, counting settings where the 95% intervals over seeds are disjoint; "
        "everything else is overlap.",
        "",
        *claims(all_results),
        "",
        *unlearned(all_results),
        "",
        "Does the regulariser (IQ's TD term, GAIL's adversary) resist overfitting on small data? Each arm's gap "
        "to SFT in forward KL, by regime (negative = closer to the expert):",
        "",
        *[line for arm in next(iter(all_results.values()))["summary"] if arm != "sft"
          for line in regime_effect(all_results, arm)],
        "",
        "Sample length at temperature 1, against SFT and the expert (an arm `iq_include` keeps the terminal "
        "transition in the χ² term, IQ-Learn's choice, whose fixed point prefers never stopping; the default "
        "`terminal_td: exclude` leaves the reward of stopping free):",
        "",
        *length_effect(all_results),
        "",
    ]
    out += companion_sections(all_results, os.path.dirname(path))
    for name, results in all_results.items():
        rel = os.path.relpath(os.path.join(results["output_dir"], "quality_vs_diversity.png"), os.path.dirname(path))
        out += [f"## {name}", "", f"run time {runtimes.get(name, float('nan')) / 60:.1f} min; "
                f"plot: [{rel}]({rel})", "", *setting_table(results), "", *frontier_lines(results), ""]
    write_atomic(path, "\n".join(out) + "\n")
