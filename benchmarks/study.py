"""Ground-truth study: does IQ beat SFT, and where? Trains the settings, then rebuilds their summaries and pages.

run as (from the repository root):
    python -m benchmarks.study --experts markov,grammar   # what BENCHMARKS.md holds (~35 min wall on 2 cores)
    python -m benchmarks.study --quick                    # minutes: 1 seed, fewer steps, prompts and arms;
                                                          # writes runs/study_quick/, never the committed study
    python -m benchmarks.study --grid [--model_size 4x128]   # offline IQ's grid, into benchmarks/study_grid[_SIZE]/

For each synthetic expert (markov, grammar, arithmetic; their likelihood is exact) and each data
regime (scarce demonstrations, where overfitting bites, and plentiful ones), `llm-irl compare`
trains every arm on the same tiny Llama, data, budget and seeds, then measures forward KL on
held-out expert text (coverage), the expert's log-likelihood of model samples, reverse KL and
validity (precision), Self-BLEU and distinct-2 (diversity, next to the expert's own at equal
counts), sample length, share ended with EOS and loops beside the expert's, and the
quality–diversity frontier of each arm against SFT over the temperature sweep (seeds paired).
Settings run in parallel processes (`--jobs`), one torch thread each (`benchmarks.runner`).

Afterwards each setting's summary.json is rebuilt (`benchmarks.summary`), then the study's page,
the plots and BENCHMARKS.md (`benchmarks.report`, `benchmarks.figures`): every number in them comes
from those summaries; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.runner import merge_rerun, run_setting, setting_recipe
from benchmarks.settings import ARMS, EXPERTS, GRID_ARMS, QUICK_ROOT, REGIMES, ROOT, STUDY, grid_study, rel


def command_of(a) -> str:
    """The command line that repeats this run, as pages record it."""
    command = "python -m benchmarks.study" + (" --quick" if a.quick else "") + (
        f" --experts {a.experts}" if a.experts != ",".join(EXPERTS) else "") + (
        f" --model_size {a.model_size}" if a.model_size else "") + (f" --arms {a.arms}" if a.arms else "") + (
        f" --rerun_arms {a.rerun_arms}" if a.rerun_arms else "")
    return command.replace(f" --arms {','.join(['sft', *GRID_ARMS])}", " --grid") if a.grid else command


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="1 seed, 60 steps, 20 prompts, 3 arms: minutes; writes under runs/study_quick/ unless told")
    p.add_argument("--jobs", type=int, default=2, help="settings run at once (one torch thread each)")
    p.add_argument("--output_dir", default=None, help="default: benchmarks/study (runs/study_quick with --quick)")
    p.add_argument("--experts", default=",".join(EXPERTS))
    p.add_argument("--arms", default=None, help=f"comma-separated subset of {','.join(ARMS)} (sft first)")
    p.add_argument("--grid", action="store_true",
                   help=f"SFT and offline IQ's grid ({', '.join(GRID_ARMS)}) into benchmarks/study_grid/")
    p.add_argument("--model_size", default=None,
                   help="LAYERSxHIDDEN (e.g. 4x128): a bigger Llama over each expert's words (python -m "
                        "benchmarks.models) in place of builtin:tiny; with --grid the folder is benchmarks/study_grid_SIZE")
    p.add_argument("--report_only", action="store_true",
                   help="train nothing: rebuild each setting's report.md and summary.json from its results.json, "
                        "then the pages")
    p.add_argument("--rerun_arms", default=None,
                   help="comma-separated arms to train and evaluate again (e.g. after a fix that touches only them) "
                        "and put in place of their rows in the existing settings; every other arm is kept")
    a = p.parse_args(argv)
    if a.grid:
        a.arms = a.arms or ",".join(["sft", *GRID_ARMS])
        if not a.quick:
            a.output_dir = a.output_dir or grid_study(a.model_size)
    a.output_dir = a.output_dir or (QUICK_ROOT if a.quick else STUDY)
    return a


def main(argv=None) -> int:
    a = parse(argv)
    names = a.arms.split(",") if a.arms else None
    settings = [(e, r) for e in a.experts.split(",") for r in REGIMES]
    recipes = [setting_recipe(e, r, a.quick, a.output_dir, names, a.model_size) for e, r in settings]
    todo = [] if a.report_only else recipes
    if a.rerun_arms:  # the same recipes with only those arms, each into its setting's rerun/ folder
        todo = [{**setting_recipe(e, r, a.quick, a.output_dir, a.rerun_arms.split(","), a.model_size),
                 "output_dir": os.path.join(a.output_dir, f"{e}_{r}", "rerun")} for e, r in settings]
    start, failed = time.time(), []
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        for out_dir, seconds, code in pool.map(run_setting, todo):
            print(f"{rel(out_dir)}: {'ok' if code == 0 else f'FAILED ({code}), see {out_dir}/log.txt'} "
                  f"in {seconds / 60:.1f} min", flush=True)
            if code != 0:
                failed.append(out_dir)

    from llm_irl.files import write_atomic
    from llm_irl.report import write_report

    from benchmarks.summary import write_summary

    done = 0
    for recipe in recipes:
        folder = recipe["output_dir"]
        if not os.path.exists(os.path.join(folder, "results.json")):
            continue
        if a.rerun_arms and os.path.exists(os.path.join(folder, "rerun", "results.json")):
            write_report(merge_rerun(folder, os.path.join(folder, "rerun")), folder, title="recipe.json")
            write_summary(os.path.join(folder, "rerun"))
        elif a.report_only:  # report.md of the setting as it now stands
            with open(os.path.join(folder, "results.json")) as f:
                write_report(json.load(f), folder, title="recipe.json")
        write_summary(folder)
        done += 1
    if not done:
        print("no setting produced results", file=sys.stderr)
        return 1
    if not a.report_only:  # the last run that trained: command and wall time
        record = os.path.join(a.output_dir, "study.json")
        last = json.load(open(record)) if os.path.exists(record) else {}
        entry = {"command": command_of(a), "wall_s": time.time() - start}
        if a.rerun_arms and last:  # the full run stays the record; reruns are listed beside it
            last["reruns"] = [*last.get("reruns", []), entry]
        else:
            last = entry
        write_atomic(record, json.dumps(last) + "\n")

    from benchmarks import figures, report

    report.write_study_page(a.output_dir)
    if not a.quick and os.path.abspath(a.output_dir).startswith(os.path.join(ROOT, "benchmarks")):
        figures.main([])
        report.main([])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
