"""Reading run summaries: figures, verdicts against SFT and each arm's quality–diversity and coverage frontiers.

Imported by the report and figure modules; not run on its own. Everything here reads summary.json
files (`benchmarks.summary`), never results.json: a frontier is recomputed from the per-seed points
a summary keeps (`seed_points`), with `llm_irl.metrics.frontier.frontier_gap`, so seeds can be
paired across folders (SFT at another budget) or pooled from two runs of one recipe.
"""

from __future__ import annotations

import os

from benchmarks.settings import BENCH
from benchmarks.summary import load_summary

# the frontier: axis name -> (x, to_x, y, to_y), y read at matched x. Quality (the expert's log-likelihood of
# samples) at matched diversity, two ways (higher x = more diverse); then coverage (−forward KL of held-out
# expert text under the model at T: no n-gram counts, so short samples gain nothing) at matched quality, as
# measured and standardised to the expert's lengths (no length effect on either axis); see metrics.frontier
FRONTIER_AXES = {"Self-BLEU": ("self_bleu_per_input", lambda v: 1.0 - v, "expert_loglik", float),
                 "distinct-2": ("distinct_2_across", float, "expert_loglik", float),
                 "coverage": ("expert_loglik", float, "forward_kl_at_t", lambda v: -v),
                 "coverage at length-std quality": ("expert_loglik_std", float, "forward_kl_at_t", lambda v: -v)}
# the two axes of BENCHMARKS.md's opening table: (axis, words)
HEADLINE_AXES = (("Self-BLEU", "quality at matched diversity (Self-BLEU)"),
                 ("coverage at length-std quality", "coverage at matched quality, standardised to the expert's lengths"))


def at(name: str) -> dict | None:
    """The summary of benchmarks/NAME (a run folder), or None when it was not run."""
    return load_summary(os.path.join(BENCH, name))


def figure(results: dict, arm: str, metric: str, temperature: str | None) -> dict | None:
    node = results["summary"].get(arm, {})
    node = node.get("metrics", {}) if temperature is None else node.get("temperatures", {}).get(temperature, {})
    return node.get(metric)


def fmt(e: dict | None) -> str:
    if not e or e.get("value") is None:
        return "–"
    if e.get("lo") is None:
        return f"{e['value']:.3f}"
    return f"{e['value']:.3f} [{e['lo']:.3f}, {e['hi']:.3f}]"


def expert_figure(results: dict, metric: str) -> dict | None:
    return ((results.get("expert") or {}).get("temperatures", {}).get("expert") or {}).get(metric)


def compare_to_sft(results: dict, arm: str, metric: str, temperature: str | None, better: str) -> str:
    """'better' / 'worse' when the 95% intervals over seeds are disjoint, else 'overlap'."""
    a, b = figure(results, arm, metric, temperature), figure(results, "sft", metric, temperature)
    if not a or not b or a.get("lo") is None or b.get("lo") is None:
        return "n/a"
    if a["lo"] > b["hi"]:
        return "better" if better == "up" else "worse"
    if a["hi"] < b["lo"]:
        return "worse" if better == "up" else "better"
    return "overlap"


def seed_curves(results: dict, arm: str, x: str, to_x, y: str, to_y) -> list[list[tuple[float, float]]]:
    """One (x, y) curve per seed over the sampled temperatures, seeds in order."""
    curves = []
    for points in results.get("seed_points", {}).get(arm, []):
        curves.append([(to_x(node[x]), to_y(node[y])) for t, node in points.items()
                       if node.get(x) is not None and node.get(y) is not None])
    return curves


def _gaps(arm_curves: list, base_curves: list, axis: str, out: dict) -> None:
    from llm_irl.metrics.frontier import frontier_gap

    if arm_curves and all(arm_curves) and all(base_curves) and len(arm_curves) == len(base_curves):
        out[axis] = frontier_gap(arm_curves, base_curves)


def frontier_against(results: dict, arm: str, base_results: dict, base: str = "sft",
                     more: tuple[dict, ...] = ()) -> dict[str, dict]:
    """axis name -> frontier_gap of `arm` in `results` against `base` in `base_results` (seeds paired in order);
    `more` holds further summaries with both arms on other seeds, pooled in."""
    out = {}
    for axis, spec in FRONTIER_AXES.items():
        arm_curves, base_curves = seed_curves(results, arm, *spec), seed_curves(base_results, base, *spec)
        for extra in more:
            arm_curves += seed_curves(extra, arm, *spec)
            base_curves += seed_curves(extra, base, *spec)
        _gaps(arm_curves, base_curves, axis, out)
    return out


def pooled_frontier_against(parts: list[dict], arm: str, base_results: dict, base: str = "sft") -> dict[str, dict]:
    """axis name -> frontier_gap of `arm` over the seeds of several summaries (in order) against `base` in one
    summary that holds those seeds, in that order."""
    out = {}
    for axis, spec in FRONTIER_AXES.items():
        arm_curves = [c for part in parts for c in seed_curves(part, arm, *spec)]
        _gaps(arm_curves, seed_curves(base_results, base, *spec), axis, out)
    return out


def frontiers(results: dict) -> dict[str, dict[str, dict]]:
    """arm -> axis name -> frontier_gap result against SFT."""
    return {arm: frontier_against(results, arm, results) for arm in results["summary"] if arm != "sft"}


def stored_frontier(results: dict, arm: str, diversity: str = "self_bleu_per_input") -> dict | None:
    """The library's own frontier verdict of `arm` stored in a summary (for runs without per-seed expert
    figures, e.g. the pretrained benchmark, whose quality is ROUGE-1 against the reference)."""
    return next((f for f in results.get("frontier", []) if f["arm"] == arm and f["diversity"] == diversity
                 and f.get("gap_of", "quality") == "quality"), None)


def word(result: dict | None) -> str:
    """above / level / below / crossing (level = not distinguishable), or – when there is no matched range."""
    if not result or result["verdict"] == "no overlap":
        return "–"
    verdict = {"overlapping": "level"}.get(result["verdict"], result["verdict"])
    if verdict == "level" and result.get("locally"):
        verdict = f"level (locally {result['locally']})"
    return verdict


def gap_text(result: dict | None, digits: int = 3) -> str:
    if not result or not result.get("mean_gap"):
        return ""
    gap = result["mean_gap"]
    if gap.get("lo") is None:
        return f"{gap['value']:+.{digits}f}"
    return f"{gap['value']:+.{digits}f} [{gap['lo']:+.{digits}f}, {gap['hi']:+.{digits}f}]"


def verdict_cell(result: dict | None, digits: int = 2) -> str:
    """'level (locally above) (+0.02 [-0.01, +0.05])', '–' when there is no matched range."""
    if not result or result["verdict"] == "no overlap":
        return "–"
    return f"{word(result)} ({gap_text(result, digits)})"


def budget_results(sweep: str) -> dict[int, dict]:
    """steps -> summary of `benchmarks/sweeps/<sweep>/steps_<steps>/` (as its YAML's header runs them)."""
    root = os.path.join(BENCH, "sweeps", sweep)
    names = sorted(os.listdir(root)) if os.path.isdir(root) else []
    found = {int(d.removeprefix("steps_")): at(f"sweeps/{sweep}/{d}") for d in names if d.startswith("steps_")}
    return {steps: results for steps, results in found.items() if results is not None}
