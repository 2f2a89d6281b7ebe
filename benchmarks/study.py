"""Ground-truth study: does IQ beat SFT, and where? Regenerates BENCHMARKS.md from scratch.

run as:
    .venv/bin/python benchmarks/study.py            # the full study: 3 seeds, every expert and regime
    .venv/bin/python benchmarks/study.py --quick    # minutes: 1 seed, fewer steps, prompts and arms;
                                                    # writes runs/study_quick/, never BENCHMARKS.md

For each synthetic expert (markov, grammar, arithmetic; their likelihood is exact) and each data
regime (scarce demonstrations, where overfitting bites, and plentiful ones), `llm-irl compare`
trains every arm on the same tiny Llama, data, budget and seeds, then measures forward KL on
held-out expert text (coverage), the expert's log-likelihood of model samples, reverse KL and
validity (precision), Self-BLEU and distinct-2 (diversity, next to the expert's own at equal
counts), sample length, share ended with EOS and loops beside the expert's, the quality–diversity
frontier verdict of each arm against SFT over the temperature sweep (llm_irl.metrics.frontier,
seeds paired), and the Spearman correlation of each model's implied-reward returns with sample
quality. Settings run in parallel processes (`--jobs`), one torch thread each. Every number in
BENCHMARKS.md comes from this run's results.json files; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from llm_irl.quickstart import ARMS as QUICKSTART_ARMS
from llm_irl.quickstart import COMMON

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERTS = {"markov": 32, "grammar": 48, "arithmetic": 80}  # expert -> max_length covering ~99% of demos
REGIMES = {"scarce": 150, "plentiful": 5000}  # training demonstrations
ARMS = {
    "sft": {"trainer": "sft"},
    "iq": {"trainer": "iq"},  # IQConfig's defaults, whatever they are: the study checks them
    "iq_include": {"trainer": "iq", "terminal_td": "include", "td_weight": 0.1},  # the defaults before issue 11
    "iq_td0.3": {"trainer": "iq", "td_weight": 0.3},
    # the paper's share; IQ-Learn's EOS value terms, as the committed results were trained (the default is now exclude)
    "online_iq": {"trainer": "iq", "policy_mix": 0.1, "policy_terminal_value": "include"},
    "gail": dict(QUICKSTART_ARMS["gail"]),  # SFT warm start, then the adversarial loop, as the quickstart runs it
}
QUICK_ARMS = ("sft", "iq", "iq_include")
# offline IQ's grid (issue 11): terminal handling × λ × where V comes from, run on its own with --grid
GRID_ARMS = {
    **{f"excl_{lam}": {"trainer": "iq", "terminal_td": "exclude", "td_weight": lam} for lam in (0.01, 0.03, 0.1, 0.3)},
    **{f"excl_{lam}_head": {"trainer": "iq", "terminal_td": "exclude", "td_weight": lam, "value_param": "head"}
       for lam in (0.03, 0.1, 0.3)},
    **{f"incl_{lam}": {"trainer": "iq", "terminal_td": "include", "td_weight": lam} for lam in (0.03, 0.1)},
}
GRID_STUDY = os.path.join(ROOT, "benchmarks", "study_grid")  # study.py --grid
TEMPERATURES = [0.7, 1.0, 1.3]  # the frontier's points
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
# the frontier: axis name -> (x, to_x, y, to_y), y read at matched x. Quality (the expert's log-likelihood of
# samples) at matched diversity, two ways (higher x = more diverse); then coverage (−forward KL of held-out
# expert text under the model at T: no n-gram counts, so short samples gain nothing) at matched quality, as
# measured and standardised to the expert's lengths (no length effect on either axis); see metrics.frontier
FRONTIER_AXES = {"Self-BLEU": ("self_bleu_per_input", lambda v: 1.0 - v, "expert_loglik", float),
                 "distinct-2": ("distinct_2_across", float, "expert_loglik", float),
                 "coverage": ("expert_loglik", float, "forward_kl_at_t", lambda v: -v),
                 "coverage at length-std quality": ("expert_loglik_std", float, "forward_kl_at_t", lambda v: -v)}


def setting_recipe(expert: str, regime: str, quick: bool, out_root: str, names=None) -> dict:
    max_length = EXPERTS[expert]
    names = names or (QUICK_ARMS if quick else tuple(ARMS))
    arms = {k: dict({**ARMS, **GRID_ARMS}[k]) for k in names}  # copies: edited per expert
    for spec in arms.values():
        if spec["trainer"] == "iq" and spec.get("policy_mix"):
            spec["max_new_tokens"] = max_length
    budget = {k: v for k, v in COMMON.items() if k != "seed"}  # the quickstart's steps, batch and optimiser
    return {
        **budget,
        "model_name_or_path": "builtin:tiny" if expert == "markov" else f"builtin:tiny-{expert}",
        "dataset": f"builtin:{expert}:{REGIMES[regime]}",
        "eval_dataset": f"builtin:{expert}",
        "max_length": max_length,
        "max_steps": 60 if quick else COMMON["max_steps"],
        "temperatures": TEMPERATURES,
        "k": 8,
        "num_prompts": 20 if quick else 50,
        "max_new_tokens": max_length,
        "seeds": 1 if quick else 3,
        "output_dir": os.path.join(out_root, f"{expert}_{regime}"),
        "other_trainers": False,
        "arms": arms,
    }


def run_setting(recipe: dict) -> tuple[str, float, int]:
    """One `llm-irl compare` in its own process (one torch thread), so settings run side by side."""
    os.makedirs(recipe["output_dir"], exist_ok=True)
    path = os.path.join(recipe["output_dir"], "recipe.json")  # JSON is YAML: compare reads it as a recipe
    with open(path, "w") as f:
        json.dump(recipe, f, indent=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.time()
    with open(os.path.join(recipe["output_dir"], "log.txt"), "w") as log:
        proc = subprocess.run([sys.executable, "-m", "llm_irl.cli", "compare", path], stdout=log,
                              stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return recipe["output_dir"], time.time() - start, proc.returncode


def merge_rerun(setting_dir: str, rerun_dir: str) -> dict:
    """The setting's results with the arms of a rerun (same recipe apart from `arms`) put in their place:
    runs, summary and timings of those arms replaced, every other arm kept as it was."""
    with open(os.path.join(setting_dir, "results.json")) as f:
        merged = json.load(f)
    with open(os.path.join(rerun_dir, "results.json")) as f:
        rerun = json.load(f)
    if rerun["seeds"] != merged["seeds"] or rerun["common"] != merged["common"] or rerun["eval"] != merged["eval"]:
        raise SystemExit(f"{rerun_dir}: the rerun's seeds, training or evaluation settings differ from {setting_dir}'s")
    old_seconds = sum(merged["seconds_per_run"].get(arm, 0.0) for arm in rerun["arms"]) * len(merged["seeds"])
    for key in ("arms", "runs", "summary", "seconds_per_run"):
        merged[key] = {**merged[key], **rerun[key]}
    merged["runtime_s"] += rerun["runtime_s"] - old_seconds  # compute time of the settings as they now stand
    merged["rerun"] = {**merged.get("rerun", {}), **{arm: os.path.relpath(rerun_dir, setting_dir) for arm in rerun["arms"]}}
    return merged


# ------------------------------------------------------------------------------------ report


def _figure(results: dict, arm: str, metric: str, temperature: str | None) -> dict | None:
    node = results["summary"].get(arm, {})
    node = node.get("metrics", {}) if temperature is None else node.get("temperatures", {}).get(temperature, {})
    return node.get(metric)


def _fmt(e: dict | None) -> str:
    if not e or e.get("value") is None:
        return "–"
    if e.get("lo") is None:
        return f"{e['value']:.3f}"
    return f"{e['value']:.3f} [{e['lo']:.3f}, {e['hi']:.3f}]"


def _expert_figure(results: dict, metric: str) -> dict | None:
    return ((results.get("expert") or {}).get("temperatures", {}).get("expert") or {}).get(metric)


def compare_to_sft(results: dict, arm: str, metric: str, temperature: str | None, better: str) -> str:
    """'better' / 'worse' when the 95% intervals over seeds are disjoint, else 'overlap'."""
    a, b = _figure(results, arm, metric, temperature), _figure(results, "sft", metric, temperature)
    if not a or not b or a.get("lo") is None or b.get("lo") is None:
        return "n/a"
    if a["lo"] > b["hi"]:
        return "better" if better == "up" else "worse"
    if a["hi"] < b["lo"]:
        return "worse" if better == "up" else "better"
    return "overlap"


def setting_table(results: dict) -> list[str]:
    arms = list(results["summary"])
    lines = ["| arm | " + " | ".join(c[3] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for arm in arms:
        lines.append(f"| {arm} | " + " | ".join(_fmt(_figure(results, arm, m, t)) for m, t, _, _ in COLUMNS) + " |")
    lines.append("| expert | " + " | ".join(
        _fmt(_expert_figure(results, m)) if m in EXPERT_COLUMNS else "–" for m, _, _, _ in COLUMNS) + " |")
    return lines


def _seed_curves(results: dict, arm: str, x: str, to_x, y: str, to_y) -> list[list[tuple[float, float]]]:
    """One (x, y) curve per seed over the temperature sweep, seeds in a fixed order."""
    curves = []
    for seed in sorted(results["runs"][arm], key=int):
        points = []
        for node in results["runs"][arm][seed]["temperatures"].values():
            a, b = node.get(x), node.get(y)
            if a and b and a.get("value") is not None and b.get("value") is not None:
                points.append((to_x(a["value"]), to_y(b["value"])))
        curves.append(points)
    return curves


def frontier_against(results: dict, arm: str, base_results: dict, base: str = "sft",
                     more: tuple[dict, ...] = ()) -> dict[str, dict]:
    """axis name -> frontier_gap of `arm` in `results` against `base` in `base_results` (seeds paired in order);
    `more` holds further results with both arms on other seeds, pooled in."""
    from llm_irl.metrics.frontier import frontier_gap

    out = {}
    for axis, spec in FRONTIER_AXES.items():
        arm_curves, base_curves = _seed_curves(results, arm, *spec), _seed_curves(base_results, base, *spec)
        for extra in more:
            arm_curves += _seed_curves(extra, arm, *spec)
            base_curves += _seed_curves(extra, base, *spec)
        if all(arm_curves) and all(base_curves) and len(arm_curves) == len(base_curves):
            out[axis] = frontier_gap(arm_curves, base_curves)
    return out


def frontiers(results: dict) -> dict[str, dict[str, dict]]:
    """arm -> axis name -> frontier_gap result against SFT."""
    return {arm: frontier_against(results, arm, results) for arm in results["summary"] if arm != "sft"}


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
            a, s = (r and _figure(r, arm, metric, None)), (r and _figure(r, "sft", metric, None))
            if a and s:
                gaps[regime] = a["value"] - s["value"]
        if len(gaps) == 2:
            lines.append(f"- {expert}: {arm} − SFT forward KL = {gaps['scarce']:+.3f} (scarce) vs "
                         f"{gaps['plentiful']:+.3f} (plentiful) nats/token")
    return lines


def length_effect(all_results: dict[str, dict]) -> list[str]:
    """Sample length and the share that ended with EOS, each arm against SFT and the expert, averaged over settings."""
    lines = []
    expert_ratios = [(_figure(r, "sft", "mean_length", "1") or {}).get("value", 0) /
                     _expert_figure(r, "mean_length")["value"]
                     for r in all_results.values() if _expert_figure(r, "mean_length")]
    if expert_ratios:
        lines.append(f"- sft: samples {sum(expert_ratios) / len(expert_ratios):.2f}× as long as the expert's own "
                     f"(mean over {len(expert_ratios)} settings)")
    arms = [a for a in next(iter(all_results.values()))["summary"] if a != "sft"]
    for arm in arms:
        ratios, ended = [], []
        for r in all_results.values():
            a, b = _figure(r, arm, "mean_length", "1"), _figure(r, "sft", "mean_length", "1")
            ta, tb = _figure(r, arm, "terminated", "1"), _figure(r, "sft", "terminated", "1")
            if a and b and ta and tb:
                ratios.append(a["value"] / b["value"])
                ended.append((ta["value"], tb["value"]))
        if ratios:
            mean_a = sum(e[0] for e in ended) / len(ended)
            mean_b = sum(e[1] for e in ended) / len(ended)
            lines.append(f"- {arm}: samples {sum(ratios) / len(ratios):.2f}× as long as SFT's (mean over "
                         f"{len(ratios)} settings; {mean_a:.0%} end with EOS against SFT's {mean_b:.0%})")
    return lines


def unlearned(all_results: dict[str, dict]) -> list[str]:
    """Settings where no arm writes valid text: comparisons there say little about the objectives."""
    lines = []
    for name, r in all_results.items():
        valid = [_figure(r, arm, "validity", "1") for arm in r["summary"]]
        if valid and all(v and v["value"] < 0.01 for v in valid):
            lines.append(f"- {name}: no arm's samples are valid (validity < 1% for every arm): the model and "
                         "budget are too small for this task, so its rows compare failures")
    return lines


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
        "- model: tiny Llama (2 layers, hidden 64) built from a config, word tokenizer over the expert's vocabulary",
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
]
# compare recipes of benchmarks/sweeps/ run on their own (`llm-irl compare benchmarks/sweeps/NAME.yaml`)
# a bigger model than the builtin one (benchmarks/arithmetic/build_model.py), named by its local folder
BIGGER_MODEL = {
    "arithmetic/probe": "Bigger model: SFT on the arithmetic expert, 4 layers × 128 (5,000 demonstrations, 1 seed)",
    "arithmetic/probe_markov": "Bigger model: SFT on the Markov expert, 4 layers × 128 (5,000 demonstrations)",
    "arithmetic/bigger_markov_scarce": "Bigger model: the Markov scarce setting on 4 layers × 128",
    "arithmetic/bigger_markov_plentiful": "Bigger model: the Markov plentiful setting on 4 layers × 128",
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
                                              "the default share and at 0.5"}


FRESH_SEEDS = (("grammar", "scarce"), ("markov", "plentiful"), ("grammar", "plentiful"))  # λ 0.03 arm, seeds 3-5
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
}
# SFT at smaller budgets (benchmarks/sweeps/sft_budget_*.yaml) against the online arm that lay above SFT at 300
# expert -> the sweeps (and their online arm, 300 steps) set against SFT stopped earlier
SFT_BUDGETS = {"markov": [("online_terminal_value", "online_0.5_0.1_excl"),
                          ("online_0.5_0.03_excl_markov_scarce", "online_0.5_0.03_excl")],
               "grammar": [("online_terminal_value_grammar", "online_0.5_0.1_excl"),
                           ("online_0.5_0.03_excl_grammar_scarce", "online_0.5_0.03_excl")]}


def _results_at(name: str) -> dict | None:
    """benchmarks/NAME/results.json (a compare run's), or None when it was not run."""
    path = os.path.join(ROOT, "benchmarks", name, "results.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _sweep_results(name: str) -> dict | None:
    return _results_at(f"sweeps/{name}")


def _verdict_cell(result: dict | None) -> str:
    if not result or result["verdict"] == "no overlap":
        return "–"
    gap, verdict = result["mean_gap"], result["verdict"]
    if verdict == "overlapping" and result.get("locally"):
        verdict = f"overlapping, locally {result['locally']}"
    return f"{verdict} ({gap['value']:+.2f} [{gap['lo']:+.2f}, {gap['hi']:+.2f}])"


def online_share_section() -> list[str]:
    """Online arms at larger policy shares against SFT, setting by setting (fresh seeds and pooled seeds too)."""
    rows = []
    for setting, sweeps in ONLINE_SHARE_SWEEPS.items():
        for sweep, arms in sweeps.items():
            if (results := _sweep_results(sweep)) is None:
                continue
            for arm in arms:
                by_axis = frontier_against(results, arm, results)
                beside = [f"{_figure(results, arm, m, t)['value']:.2f} ({_figure(results, 'sft', m, t)['value']:.2f})"
                          for m, t in (("mean_length", "1"), ("forward_kl", None))]
                rows.append(f"| {setting} | {arm} | " + " | ".join(
                    [_verdict_cell(by_axis.get(axis)) for axis in FRONTIER_AXES] + beside) + " |")
    for expert, regime in FRESH_SEEDS:  # the λ 0.03 arm over seeds 0-5
        first, fresh = (_sweep_results(f"online_0.5_0.03_excl_{expert}_{regime}{tail}") for tail in ("", "_seeds345"))
        if first and fresh:
            by_axis = frontier_against(first, "online_0.5_0.03_excl", first, more=(fresh,))
            rows.append(f"| {expert} {regime}, seeds 0-5 pooled | online_0.5_0.03_excl | " + " | ".join(
                _verdict_cell(by_axis.get(axis)) for axis in FRONTIER_AXES) + " | | |")
    if not rows:
        return []
    return ["## Online IQ at larger policy shares, setting by setting", "",
            "Arms named online_SHARE_λ (3 seeds each; `_excl` = `policy_terminal_value: exclude`; sweeps in "
            "`benchmarks/sweeps/`), frontier against SFT in the same sweep [95% interval]: by Self-BLEU and "
            "distinct-2 the mean gap in expert log-likelihood at matched diversity; by coverage the mean gap in "
            "−forward KL (nats/token) at matched quality, as measured and standardised to the expert's lengths (– "
            "where the runs' models were no longer on disk to measure it); then length and forward KL at T = 1 "
            "beside SFT's, since shorter samples read as more diverse.", "",
            "| setting | arm | by " + " | by ".join(FRONTIER_AXES) + " | length (SFT) | fwd KL (SFT) |",
            "|---" * (4 + len(FRONTIER_AXES)) + "|", *rows, ""]


def _budget_results(expert: str) -> dict[int, dict]:
    """steps -> results of `sft_budget_<expert>_scarce/steps_<steps>/` (as its YAML's header runs them)."""
    root = os.path.join(ROOT, "benchmarks", "sweeps", f"sft_budget_{expert}_scarce")
    names = sorted(os.listdir(root)) if os.path.isdir(root) else []
    found = {int(d.removeprefix("steps_")): _sweep_results(f"sft_budget_{expert}_scarce/{d}")
             for d in names if d.startswith("steps_")}
    return {steps: results for steps, results in found.items() if results is not None}


def sft_budget_section() -> list[str]:
    """SFT trained for fewer steps on scarce data against the online arm trained for 300."""
    out = []
    for expert, arms in SFT_BUDGETS.items():
        for sweep, arm in arms:
            online, budgets = _sweep_results(sweep), _budget_results(expert)
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
                out.append(f"| {steps} | {_fmt(_figure(results, 'sft', 'forward_kl', None))} | "
                           f"{_fmt(_figure(results, 'sft', 'expert_loglik', '1'))} | "
                           f"{_fmt(_figure(results, 'sft', 'self_bleu_per_input', '1'))} | "
                           f"{_fmt(_figure(results, 'sft', 'mean_length', '1'))} | "
                           + " | ".join(_verdict_cell(by_axis.get(axis)) for axis in FRONTIER_AXES) + " |")
            out.append("")
    if out:
        out = ["## Scarce data: online IQ against SFT with a smaller budget", "",
               "300 steps of batch 32 are ~64 epochs of 150 demonstrations, so SFT overfits; is online IQ's gain more "
               "than what stopping SFT earlier gives? Same data, seeds and evaluation; seeds paired.", "", *out]
    return out


def _compare_section(name: str, title: str, here: str) -> list[str]:
    """One `llm-irl compare benchmarks/NAME.yaml` run's table and frontier verdicts, if it has results."""
    if (results := _results_at(name)) is None:
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
                    *frontier_summary(found), *claims(found), *length_effect(found), ""]
    sweeps = {f"sweeps/{name}": title for name, title in SWEEPS.items()}
    for name, title in sweeps.items():
        out += _compare_section(name, title, here)
    out += online_share_section() + sft_budget_section()
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


class _NoPool:
    """Stands in for the process pool when only the report is rebuilt: runs nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items):
        return []


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="1 seed, 60 steps, 20 prompts, 3 arms: minutes; writes under runs/study_quick/ unless told")
    p.add_argument("--jobs", type=int, default=2, help="settings run at once (one torch thread each)")
    p.add_argument("--output_dir", default=None, help="default: benchmarks/study (runs/study_quick with --quick)")
    p.add_argument("--benchmarks_md", default=None,
                   help="default: BENCHMARKS.md (runs/study_quick/BENCHMARKS.md with --quick)")
    p.add_argument("--experts", default=",".join(EXPERTS))
    p.add_argument("--arms", default=None, help=f"comma-separated subset of {','.join(ARMS)} (sft first)")
    p.add_argument("--grid", action="store_true",
                   help=f"SFT and offline IQ's grid ({', '.join(GRID_ARMS)}) into benchmarks/study_grid/ and its "
                        "own BENCHMARKS.md, summarised in the main one")
    p.add_argument("--report_only", action="store_true",
                   help="rebuild BENCHMARKS.md (and each setting's report.md and plots) from the results.json "
                        "files a previous run of this script wrote")
    p.add_argument("--rerun_arms", default=None,
                   help="comma-separated arms to train and evaluate again (e.g. after a fix that touches only them) "
                        "and put in place of their rows in the existing settings; every other arm is kept")
    a = p.parse_args()
    if a.grid:
        a.arms = a.arms or ",".join(["sft", *GRID_ARMS])
        if not a.quick:
            a.output_dir = a.output_dir or GRID_STUDY
            a.benchmarks_md = a.benchmarks_md or os.path.join(GRID_STUDY, "BENCHMARKS.md")
    quick_root = os.path.join(ROOT, "runs", "study_quick")  # a quick run never overwrites the committed study
    a.output_dir = a.output_dir or (quick_root if a.quick else os.path.join(ROOT, "benchmarks", "study"))
    a.benchmarks_md = a.benchmarks_md or os.path.join(quick_root if a.quick else ROOT, "BENCHMARKS.md")

    names = a.arms.split(",") if a.arms else None
    recipes = [setting_recipe(e, r, a.quick, a.output_dir, names) for e in a.experts.split(",") for r in REGIMES]
    if a.rerun_arms:  # the same recipes with only those arms, each into its setting's rerun/ folder
        rerun_names = a.rerun_arms.split(",")
        reruns = [{**setting_recipe(e, r, a.quick, a.output_dir, rerun_names),
                   "output_dir": os.path.join(a.output_dir, f"{e}_{r}", "rerun")}
                  for e in a.experts.split(",") for r in REGIMES]
    start = time.time()
    runtimes, failed = {}, []
    with _NoPool() if a.report_only else ThreadPoolExecutor(max_workers=a.jobs) as pool:
        for out_dir, seconds, code in pool.map(run_setting, reruns if a.rerun_arms else recipes):
            name = os.path.basename(os.path.dirname(out_dir) if a.rerun_arms else out_dir)
            if not a.rerun_arms:  # a rerun's settings take their compute time from the merged results below
                runtimes[name] = seconds
            print(f"{name}: {'ok' if code == 0 else f'FAILED ({code}), see {out_dir}/log.txt'} in {seconds / 60:.1f} min",
                  flush=True)
            if code != 0:
                failed.append(name)
    from llm_irl.report import write_report

    all_results = {}
    for recipe in recipes:
        path = os.path.join(recipe["output_dir"], "results.json")
        if os.path.exists(path):
            with open(path) as f:
                results = json.load(f)
            rerun_dir = os.path.join(recipe["output_dir"], "rerun")
            if a.rerun_arms and os.path.exists(os.path.join(rerun_dir, "results.json")):
                results = merge_rerun(recipe["output_dir"], rerun_dir)
            if a.rerun_arms or a.report_only:  # report.md and plots of the setting as it now stands
                write_report(results, recipe["output_dir"], title="recipe.json")
            name = os.path.basename(recipe["output_dir"])
            all_results[name] = {**results, "output_dir": recipe["output_dir"]}
            runtimes.setdefault(name, results["runtime_s"])
    if not all_results:
        print("no setting produced results", file=sys.stderr)
        return 1
    command = "python benchmarks/study.py" + (" --quick" if a.quick else "") + (
        f" --experts {a.experts}" if a.experts != ",".join(EXPERTS) else "") + (f" --arms {a.arms}" if a.arms else "") + (
        f" --rerun_arms {a.rerun_arms}" if a.rerun_arms else "")
    command = command.replace(f" --arms {','.join(['sft', *GRID_ARMS])}", " --grid") if a.grid else command
    run_record = os.path.join(a.output_dir, "study.json")  # the last run that trained: command and wall time
    last = json.load(open(run_record)) if os.path.exists(run_record) else {"command": command, "wall_s": None}
    if a.rerun_arms:  # the full run stays the record; reruns are listed beside it
        last["reruns"] = [*last.get("reruns", []), {"command": command, "wall_s": time.time() - start}]
    elif not a.report_only:
        last = {"command": command, "wall_s": time.time() - start}
    if not a.report_only:
        with open(run_record, "w") as f:
            json.dump(last, f)
    write_benchmarks(all_results, runtimes, last, a.benchmarks_md)
    print(f"wrote {a.benchmarks_md}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
