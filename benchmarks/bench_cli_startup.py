"""CLI start-up: `llm-irl --help`, `llm-irl train --help` and one-line errors against TRL's `trl sft --help`.

run as:
    .venv/bin/python benchmarks/bench_cli_startup.py [--repeats 7]

Every command runs as a fresh process (the console scripts beside this interpreter), the commands
alternating within each round so that a busy machine slows them alike; one untimed round warms the
file cache first. Printed per command: the median wall-clock seconds and CPU seconds (user + system
of the process) over the rounds, and the ratio of the wall median to `trl sft --help`'s. Target
(issue 21, item 6): every ratio at most 0.6. TRL comes with the `bench` extra
(`pip install -e '.[bench]'`); without it the llm-irl medians are printed and the script says so.
Each command's exit status and last stderr line are checked, so a broken command is never timed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = 0.6


def _script(name: str) -> str | None:
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.path.isfile(beside) else shutil.which(name)


def commands(llm_irl: str) -> list[tuple[str, list[str], int, str | None]]:
    """(label, argv, expected exit status, expected end of the last stderr line or None)."""
    return [
        ("llm-irl --help", [llm_irl, "--help"], 0, None),
        ("llm-irl train --help", [llm_irl, "train", "--help"], 0, None),
        ("llm-irl train missing.yaml", [llm_irl, "train", "missing.yaml"], 2, "missing.yaml: no such recipe file"),
        ("llm-irl train recipes/quickstart_iq.yaml --gama 0.9",
         [llm_irl, "train", "recipes/quickstart_iq.yaml", "--gama", "0.9"], 2,
         "unknown key 'gama' (did you mean 'gamma'?)"),
    ]


def run_once(argv: list[str], status: int, stderr_end: str | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one fresh process; raises if it did not do what it should."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    if proc.returncode != status or (stderr_end is not None and not last.endswith(stderr_end)):
        raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode} (expected {status}); last stderr line: {last!r}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="timed rounds (each runs every command once)")
    a = p.parse_args()
    llm_irl, trl = _script("llm-irl"), _script("trl")
    if llm_irl is None:
        raise SystemExit("llm-irl is not installed: pip install -e .")
    todo = commands(llm_irl)
    if trl is None:
        print("trl is NOT installed, so there is no baseline and no ratio: pip install -e '.[bench]' (the bench "
              "extra) and run again. llm-irl's own medians follow.\n")
    else:
        todo.insert(0, ("trl sft --help", [trl, "sft", "--help"], 0, None))
    for _, argv, status, end in todo:  # warm the file cache; not timed
        run_once(argv, status, end)
    times: dict[str, list[tuple[float, float]]] = {label: [] for label, *_ in todo}
    for r in range(a.repeats):
        for label, argv, status, end in todo[r % len(todo):] + todo[:r % len(todo)]:  # each round starts elsewhere
            times[label].append(run_once(argv, status, end))
    wall = {label: statistics.median(w for w, _ in t) for label, t in times.items()}
    cpu = {label: statistics.median(c for _, c in t) for label, t in times.items()}
    base = wall.get("trl sft --help")
    width = max(map(len, wall))
    print(f"{a.repeats} rounds, fresh processes, medians; {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    print(f"{'command':<{width}}  {'wall s':>7}  {'CPU s':>6}  {'ratio to trl sft --help (wall)':>30}")
    worst = 0.0
    for label in wall:
        ratio = "" if base is None else f"{wall[label] / base:.3f}"
        if base is not None and label != "trl sft --help":
            worst = max(worst, wall[label] / base)
        print(f"{label:<{width}}  {wall[label]:>7.3f}  {cpu[label]:>6.3f}  {ratio:>30}")
    if base is None:
        print("\nno ratio: trl is not installed (the bench extra)")
        return 1
    print(f"\nlargest ratio {worst:.3f}; target <= {TARGET}: {'met' if worst <= TARGET else 'NOT met'}")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
