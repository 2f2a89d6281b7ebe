"""Issue 22's length criterion, read from stored summaries: does IQ at each λ keep the demonstrations' length and
SFT's EOS share?

Imported by `benchmarks.report` (BENCHMARKS.md, "Terminal treatments"); `python -m benchmarks.terminal_criterion`
prints the table. For each (setting, IQ arm) the run folder holds SFT on the same seeds. At T = 1:
- the arm's mean sample length against the demonstrations' (the expert's own samples, or the reference replies of
  the prompts on human chat) and against SFT's;
- the share of samples that end with EOS, and its gap to SFT's in points: the mean of the per-seed gaps (seeds
  paired) with its 95% Student-t interval over seeds.
The criterion: length within ±10% of the demonstrations' and the EOS share at most 3 points below SFT's, both as
point estimates (the interval says how far to trust them). SFT's own length against the demonstrations is
printed beside it: where SFT misses the ±10% too, the length part reads the setting, not the objective.

"The demonstrations" are the rows each arm trained on, counted as the trainer sees them (completion tokens with
EOS, after `max_length`): 150 Markov demonstrations are 13% shorter than the expert's own samples on the
evaluation prompts, so an imitator that matched its data exactly would read 0.87× against those. Their lengths
are measured once (`python -m benchmarks.terminal_criterion --measure`, which needs the benchmarks' data and
models on disk) into demonstration_lengths.json; a setting not measured there falls back to the expert's samples.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass

from benchmarks.sections import para
from benchmarks.settings import BENCH
from benchmarks.summary import load_summary
from benchmarks.verdicts import expert_figure, figure
from llm_irl.metrics.stats import seed_interval

LENGTH_BAND, EOS_POINTS = 0.10, 3.0
TRAINING_LENGTHS = os.path.join(BENCH, "demonstration_lengths.json")
ABSORBING = "centred_absorbing"


@dataclass(frozen=True)
class Row:
    setting: str
    folder: str  # under benchmarks/
    arm: str
    td_weight: float
    td_huber: float
    terminal_td: str = "centred"


def _tiny(expert: str, regime: str) -> list[Row]:
    label, name = f"{expert}, {regime} (2x64)", f"{expert}_{regime}"
    return ([Row(label, f"sweeps/centred_{name}", f"centred_head_{lam}", lam, 0.0) for lam in (0.03, 0.1, 0.3)]
            + [Row(label, f"sweeps/huber0.5_{name}", f"huber0.5_{lam}", lam, 0.5) for lam in (0.03, 0.1, 0.3)]
            + [Row(label, f"sweeps/huber_{name}", f"huber_{lam}", lam, 1.0) for lam in (0.03, 0.1, 0.3)]
            + [Row(label, f"sweeps/absorbing_{name}", f"absorbing_{lam}", lam, 0.5, ABSORBING)
               for lam in (0.03, 0.1, 0.3)]
            + [Row(label, f"sweeps/absorbing_huber0.25_{name}", "absorbing_0.3_huber0.25", 0.3, 0.25, ABSORBING)])


ROWS = [
    *(row for e in ("markov", "grammar") for r in ("scarce", "plentiful") for row in _tiny(e, r)),
    Row("lm_expert, scarce", "lm_expert/results/scarce", "iq", 0.03, 0.0),
    Row("lm_expert, scarce", "lm_expert/results/scarce", "iq_td0.3", 0.3, 0.0),
    Row("lm_expert, scarce", "lm_expert/results/scarce", "iq_td0.3_huber0.5", 0.3, 0.5),
    Row("lm_expert, scarce", "lm_expert/results/scarce", "iq_td0.3_huber", 0.3, 1.0),
    Row("lm_expert, scarce, 2 draws per model", "lm_expert/results/scarce_draws2", "iq_td0.3_huber0.5", 0.3, 0.5),
    Row("lm_expert, scarce, 2 draws per model", "lm_expert/results/scarce_draws2", "iq_td0.3_huber0.25", 0.3, 0.25),
    Row("lm_expert, scarce, 2 draws per model", "lm_expert/results/scarce_draws2", "iq_absorbing", 0.03, 0.5,
        ABSORBING),
    Row("lm_expert, scarce, 2 draws per model", "lm_expert/results/scarce_draws2", "iq_td0.3_absorbing", 0.3, 0.5,
        ABSORBING),
    Row("lm_expert, scarce, 2 draws per model", "lm_expert/results/scarce_draws2", "iq_td0.3_absorbing_huber0.25",
        0.3, 0.25, ABSORBING),
    Row("lm_expert, plentiful", "lm_expert/results/plentiful", "iq", 0.03, 0.0),
    Row("SmolLM2, human chat", "pretrained/results", "iq", 0.03, 0.0),
    Row("SmolLM2, human chat", "pretrained/results", "iq_huber0.5", 0.03, 0.5),
    Row("SmolLM2, human chat", "pretrained/results", "iq_td0.3", 0.3, 0.0),
    Row("SmolLM2, human chat", "pretrained/results", "iq_td0.3_huber0.5", 0.3, 0.5),
    Row("SmolLM2, human chat", "pretrained/results", "iq_td0.3_huber", 0.3, 1.0),
    Row("SmolLM2, human chat", "pretrained/results", "iq_absorbing", 0.03, 0.5, ABSORBING),
    Row("SmolLM2, human chat", "pretrained/results", "iq_td0.1_absorbing", 0.1, 0.5, ABSORBING),
    Row("SmolLM2, human chat", "pretrained/results", "iq_td0.3_absorbing", 0.3, 0.5, ABSORBING),
]


def expert_samples_length(results: dict) -> float | None:
    """The expert's own samples' mean length, or (human chat, no expert) the reference replies'."""
    expert = expert_figure(results, "mean_length")
    return expert["value"] if expert else results.get("reference_length")


def training_key(common: dict) -> str:
    """What fixes the training rows' token count: the data, the tokenizer (the model's) and `max_length`."""
    return f"{common['dataset']} | {common['model_name_or_path']} | max_length {common.get('max_length')}"


def measure_training_length(common: dict) -> dict:
    """The mean number of actions per training row as the trainer encodes it (completion tokens with EOS, after
    `max_length`), from the run's own dataset and tokenizer."""
    from llm_irl.data import load_demonstrations
    from llm_irl.modeling import load_tokenizer
    from llm_irl.soft_q import IGNORE_INDEX

    rows = load_demonstrations(common["dataset"], load_tokenizer(common["model_name_or_path"]),
                               max_length=common.get("max_length"))
    actions = [sum(label != IGNORE_INDEX for label in row["labels"]) for row in rows]
    return {"tokens": sum(actions) / len(actions), "rows": len(actions)}


def load_training_lengths() -> dict:
    if not os.path.exists(TRAINING_LENGTHS):
        return {}
    with open(TRAINING_LENGTHS, encoding="utf-8") as f:
        return json.load(f)


def training_length(results: dict) -> float | None:
    """The stored mean length of the rows this run trained on (None when not measured)."""
    if "dataset" not in results.get("common", {}):
        return None
    return load_training_lengths().get(training_key(results["common"]), {}).get("tokens")


def measure(rows=ROWS) -> dict:
    """demonstration_lengths.json for every stored row's training data (run from the repository root)."""
    lengths = load_training_lengths()
    for folder in dict.fromkeys(row.folder for row in rows):
        if (results := load_summary(os.path.join(BENCH, folder))) is not None:
            key = training_key(results["common"])
            lengths[key] = lengths.get(key) or measure_training_length(results["common"])
    with open(TRAINING_LENGTHS, "w", encoding="utf-8") as f:
        json.dump(dict(sorted(lengths.items())), f, indent=1)
        f.write("\n")
    return lengths


def per_seed(results: dict, arm: str, metric: str) -> list[float]:
    """The arm's per-seed figure at T = 1, seeds in order ([] when a summary predates it)."""
    values = [points.get("1", {}).get(metric) for points in results.get("seed_points", {}).get(arm, [])]
    return values if None not in values else []


def stop_probability(row: Row) -> dict | None:
    """The arm's and SFT's mean π(EOS) where the held-out demonstrations stop, and the gap with its interval over
    paired seeds, from the folder's stop_reward.json (`benchmarks.stop_reward`); None where it was not measured."""
    path = os.path.join(BENCH, row.folder, "stop_reward.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        stored = json.load(f)
    arm, sft = (stored.get(name, {}).get("stop_probability_by_seed") for name in (row.arm, "sft"))
    if not arm or not sft or len(arm) != len(sft):
        return None
    gaps = [a - b for a, b in zip(arm, sft)]
    return {"value": sum(arm) / len(arm), "sft": sum(sft) / len(sft),
            "gap": seed_interval(gaps) if len(gaps) > 1 else {"value": gaps[0], "lo": None, "hi": None}}


def read(row: Row) -> dict | None:
    """The row's figures, or None when its folder or arm is not stored (yet)."""
    if (results := load_summary(os.path.join(BENCH, row.folder))) is None:
        return None
    length, sft_length = figure(results, row.arm, "mean_length", "1"), figure(results, "sft", "mean_length", "1")
    ended, sft_ended = per_seed(results, row.arm, "terminated"), per_seed(results, "sft", "terminated")
    if length is None or sft_length is None or not ended or len(ended) != len(sft_ended):
        return None
    expert = expert_samples_length(results)
    trained_on = training_length(results)
    demos = trained_on or expert  # the expert's samples stand in where the training rows were not measured
    gap = seed_interval([100 * (a - b) for a, b in zip(ended, sft_ended)]) if len(ended) > 1 else None
    out = {"length": length["value"], "vs_sft": length["value"] / sft_length["value"], "demos": demos,
           "vs_demos": length["value"] / demos if demos else None,
           "sft_vs_demos": sft_length["value"] / demos if demos else None,
           "vs_expert": length["value"] / expert if expert and trained_on else None,  # else the column above
           "ended": sum(ended) / len(ended), "sft_ended": sum(sft_ended) / len(sft_ended),
           "eos_gap": gap, "seeds": len(ended), "stop_probability": stop_probability(row)}
    out["meets"] = (out["vs_demos"] is not None and abs(out["vs_demos"] - 1) <= LENGTH_BAND
                    and 100 * (out["ended"] - out["sft_ended"]) >= -EOS_POINTS)
    return out


def table(rows=ROWS) -> list[str]:
    lines = ["| setting | terminal_td | λ | td_huber | length (T 1) | × demonstrations (SFT's) | × expert's samples "
             "| × SFT | ended EOS (SFT) | EOS − SFT, points [95%] | π(stop) at the demonstrations' ends (SFT's) "
             "| its gap [95%] | seeds | meets |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if (f := read(row)) is None:
            continue
        gap = f["eos_gap"]
        gap_text = f"{gap['value']:+.1f} [{gap['lo']:+.1f}, {gap['hi']:+.1f}]" if gap else "–"
        demos = f"{f['vs_demos']:.2f} ({f['sft_vs_demos']:.2f})" if f["vs_demos"] else "–"
        expert = f"{f['vs_expert']:.2f}" if f["vs_expert"] else "–"
        stop = f["stop_probability"]
        stop_text = f"{stop['value']:.3f} ({stop['sft']:.3f})" if stop else "–"
        stop_gap = (f"{stop['gap']['value']:+.3f} [{stop['gap']['lo']:+.3f}, {stop['gap']['hi']:+.3f}]"
                    if stop and stop["gap"]["lo"] is not None else "–")
        lines.append(f"| {row.setting} | {row.terminal_td} | {row.td_weight:g} | {row.td_huber:g} | "
                     f"{f['length']:.1f} | {demos} | {expert} | {f['vs_sft']:.2f} | {f['ended']:.1%} ({f['sft_ended']:.1%}) | "
                     f"{gap_text} | {stop_text} | {stop_gap} | {f['seeds']} | {'yes' if f['meets'] else '**no**'} |")
    return lines


def section() -> list[str]:
    """BENCHMARKS.md's criterion table with its legend (nothing when no row is stored)."""
    rows = table()
    if len(rows) == 2:
        return []
    return [*para(f"Issue 22's criterion at T = 1, from the stored summaries (`python -m benchmarks.terminal_criterion`): "
                  f"IQ's samples within ±{LENGTH_BAND:.0%} of the demonstrations' length and their EOS share at most "
                  f"{EOS_POINTS:g} points below SFT's. The EOS gap is the mean of the per-seed gaps with its 95% "
                  "Student-t interval over seeds. The demonstrations are the rows the arm trained on, counted as the "
                  "trainer encodes them (completion tokens with EOS; demonstration_lengths.json); beside them, the "
                  "expert's own samples on the evaluation prompts (tiny settings, lm_expert) or the prompts' reference "
                  "replies (human chat), which the criterion read before: 150 Markov demonstrations are 13% shorter "
                  "than the expert's samples, so there an exact imitator of its data reads 0.87×. π(stop) is the "
                  "model's mean π(EOS) where each held-out demonstration stops, teacher-forced "
                  "(`benchmarks.stop_reward`, where the models were kept): a measure of the same pull with no "
                  "sampling noise, its gap to SFT's with the 95% Student-t interval over paired seeds."), *rows]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Issue 22's length criterion from the stored summaries.")
    parser.add_argument("--measure", action="store_true",
                        help="first measure the training rows' lengths into demonstration_lengths.json (needs the "
                             "benchmarks' data and models on disk)")
    if parser.parse_args().measure:
        measure()
    print("\n".join(table()))
