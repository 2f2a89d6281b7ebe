"""Reading the study's results: figures out of results.json files, verdicts against SFT and the quality–diversity
and coverage frontiers (llm_irl.metrics.frontier) of each arm, for study_report.py to write up."""

from __future__ import annotations

import json
import os

from study import ROOT


# the frontier: axis name -> (x, to_x, y, to_y), y read at matched x. Quality (the expert's log-likelihood of
# samples) at matched diversity, two ways (higher x = more diverse); then coverage (−forward KL of held-out
# expert text under the model at T: no n-gram counts, so short samples gain nothing) at matched quality, as
# measured and standardised to the expert's lengths (no length effect on either axis); see metrics.frontier
FRONTIER_AXES = {"Self-BLEU": ("self_bleu_per_input", lambda v: 1.0 - v, "expert_loglik", float),
                 "distinct-2": ("distinct_2_across", float, "expert_loglik", float),
                 "coverage": ("expert_loglik", float, "forward_kl_at_t", lambda v: -v),
                 "coverage at length-std quality": ("expert_loglik_std", float, "forward_kl_at_t", lambda v: -v)}


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


def _seed_curves(results: dict, arm: str, x: str, to_x, y: str, to_y) -> list[list[tuple[float, float]]]:
    """One (x, y) curve per seed over the temperature sweep, seeds in a fixed order."""
    curves = []
    for seed in sorted(results["runs"][arm], key=int):
        points = []
        for t, node in results["runs"][arm][seed]["temperatures"].items():
            if float(t) == 0:  # sampled temperatures only, as llm_irl.report.frontier_verdicts reads them
                continue
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


def results_at(name: str) -> dict | None:
    """benchmarks/NAME/results.json (a compare run's), or None when it was not run."""
    path = os.path.join(ROOT, "benchmarks", name, "results.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def sweep_results(name: str) -> dict | None:
    return results_at(f"sweeps/{name}")


def verdict_cell(result: dict | None) -> str:
    if not result or result["verdict"] == "no overlap":
        return "–"
    gap, verdict = result["mean_gap"], result["verdict"]
    if verdict == "overlapping" and result.get("locally"):
        verdict = f"overlapping, locally {result['locally']}"
    return f"{verdict} ({gap['value']:+.2f} [{gap['lo']:+.2f}, {gap['hi']:+.2f}])"


def budget_results(sweep: str) -> dict[int, dict]:
    """steps -> results of `benchmarks/sweeps/<sweep>/steps_<steps>/` (as its YAML's header runs them)."""
    root = os.path.join(ROOT, "benchmarks", "sweeps", sweep)
    names = sorted(os.listdir(root)) if os.path.isdir(root) else []
    found = {int(d.removeprefix("steps_")): sweep_results(f"{sweep}/{d}") for d in names if d.startswith("steps_")}
    return {steps: results for steps, results in found.items() if results is not None}


def pooled_frontier_against(parts: list[dict], arm: str, base_results: dict, base: str = "sft") -> dict[str, dict]:
    """axis name -> frontier_gap of `arm` over the seeds of several results (in order) against `base` in one
    results file that holds those seeds, in that order."""
    from llm_irl.metrics.frontier import frontier_gap

    out = {}
    for axis, spec in FRONTIER_AXES.items():
        arm_curves = [c for part in parts for c in _seed_curves(part, arm, *spec)]
        base_curves = _seed_curves(base_results, base, *spec)
        if all(arm_curves) and all(base_curves) and len(arm_curves) == len(base_curves):
            out[axis] = frontier_gap(arm_curves, base_curves)
    return out
