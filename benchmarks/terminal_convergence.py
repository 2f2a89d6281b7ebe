"""Terminal treatments on the tabular token MDP, after N optimiser steps: expected length and the stop reward.

run as:
    python -m benchmarks.terminal_convergence            # ~12 min on one core; writes the folder below
                                                         # (rows already in its summary.json are kept)
    python -m benchmarks.terminal_convergence --quick    # λ 0.1 only, 3,000 steps; prints, writes nothing
    python -m benchmarks.terminal_convergence --online-only  # the online rows only, into the stored summary

For each treatment (`terminal_td`, `centred` with `td_huber` 0.5 and 1, `centred_absorbing` with 0.5) × λ × γ, full-batch Adam (lr 0.05)
on free logits per state fits the IQ loss to 2,000 expert episodes (`llm_irl.tasks.tabular`, expert length
5.10) and reads, at 300 / 1,000 / 3,000 / 10,000 / 20,000 steps, the learned policy's exact expected length
and the mean implied reward of the stop action against the other actions'. Writes benchmarks/sweeps/terminal_tabular/
summary.json and report.md; BENCHMARKS.md's section reads the summary.
Then online IQ under `centred` (`ONLINE`): the current policy's exact expected transitions mixed in at policy
shares 0.1 and 0.5, with the policy samples' EOS transitions in the value term (`include`) or out (`exclude`),
at γ 0.99 and λ 0.03 / 0.1 / 0.3, read at 300 / 1,000 / 3,000 steps.
"""

from __future__ import annotations

import argparse
import json
import os

from llm_irl.tasks.tabular import expert_rows, train_tabular, transition_counts

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sweeps", "terminal_tabular")
# (terminal_td, td_huber): the treatments with IQ-Learn's χ² term, and the centred ones with the term made Huber's loss
TREATMENTS = (("include", 0.0), ("absorbing", 0.0), ("exclude", 0.0), ("centred", 0.0), ("centred", 0.5),
              ("centred", 1.0), ("centred_absorbing", 0.0), ("centred_absorbing", 0.5))
TD_WEIGHTS = (0.03, 0.1, 0.3, 1.0)
GAMMAS = (0.99, 0.9)
STEPS = (300, 1000, 3000, 10000, 20000)
COMMAND = "python -m benchmarks.terminal_convergence"
ONLINE = {"policy_terminal_value": ("include", "exclude"), "policy_share": (0.1, 0.5), "td_weight": (0.03, 0.1, 0.3),
          "steps": (300, 1000, 3000), "gamma": 0.99, "terminal_td": "centred"}


def row_key(row: dict) -> tuple:
    return row["terminal_td"], row.get("td_huber", 0.0), row["gamma"], row["td_weight"]


def run(treatments=TREATMENTS, td_weights=TD_WEIGHTS, gammas=GAMMAS, steps=STEPS, stored=()) -> dict:
    """Every (treatment, γ, λ) row; a row among `stored` (computed with the same steps) is kept, not recomputed:
    full-batch training from Q = 0 is deterministic."""
    input_ids, labels = expert_rows()
    counts = transition_counts(input_ids, labels)
    expert = float((labels != -100).sum(1).double().mean())
    have = {row_key(row): row for row in stored if list(row["by_step"]) == [str(k) for k in steps]}
    rows = []
    for terminal_td, td_huber in treatments:
        for gamma in gammas:
            for td_weight in td_weights:
                if (row := have.get((terminal_td, td_huber, gamma, td_weight))) is None:
                    by_step = train_tabular(counts, td_weight=td_weight, gamma=gamma, terminal_td=terminal_td,
                                            checkpoints=steps, td_huber=td_huber)
                    row = {"terminal_td": terminal_td, "td_huber": td_huber, "gamma": gamma, "td_weight": td_weight,
                           "by_step": {str(k): v for k, v in by_step.items()}}
                    print(terminal_td, td_huber, gamma, td_weight,
                          " ".join(f"{k}:{v['length']:.2f}" for k, v in by_step.items()), flush=True)
                rows.append(row)
    return {"expert_length": expert, "steps": list(steps), "lr": 0.05, "rows": rows, "command": COMMAND}


def run_online(online=ONLINE) -> list[dict]:
    counts = transition_counts(*expert_rows())
    rows = []
    for value in online["policy_terminal_value"]:
        for share in online["policy_share"]:
            for td_weight in online["td_weight"]:
                by_step = train_tabular(counts, td_weight=td_weight, gamma=online["gamma"],
                                        terminal_td=online["terminal_td"], checkpoints=online["steps"],
                                        policy_share=share, policy_terminal_value=value)
                rows.append({"policy_terminal_value": value, "policy_share": share, "td_weight": td_weight,
                             "by_step": {str(k): v for k, v in by_step.items()}})
                print(value, share, td_weight, " ".join(f"{k}:{v['length']:.2f}" for k, v in by_step.items()), flush=True)
    return rows


def report(summary: dict) -> str:
    steps = summary["steps"]
    last = str(steps[-1])
    lines = ["# Terminal treatments on the tabular token MDP", "",
             f"Made by `{COMMAND}` (summary.json beside this file). Expected length of the learned policy after "
             f"N full-batch Adam steps (lr {summary['lr']}), expert {summary['expert_length']:.2f}; then the mean "
             f"implied reward of the stop action and of the other actions after {int(last):,} steps.", "",
             "| terminal_td | γ | λ | " + " | ".join(f"{int(s):,} steps" for s in steps)
             + " | r(stop) | r(other) |",
             "|---|---|---|" + "---|" * (len(steps) + 2)]
    for row in summary["rows"]:
        end = row["by_step"][last]
        huber = f", td_huber {row['td_huber']:g}" if row.get("td_huber") else ""
        lines.append(f"| `{row['terminal_td']}`{huber} | {row['gamma']} | {row['td_weight']} | "
                     + " | ".join(f"{row['by_step'][str(s)]['length']:.2f}" for s in steps)
                     + f" | {end['reward_stop']:+.2f} | {end['reward_other']:+.2f} |")
    if online := summary.get("online"):
        steps, last = ONLINE["steps"], str(ONLINE["steps"][-1])
        lines += ["", f"Online IQ (`terminal_td: centred`, γ {ONLINE['gamma']}): the current policy's exact expected "
                  "transitions mixed in at the policy share; `policy_terminal_value` keeps their EOS transitions in "
                  f"the value term (`include`) or leaves them out (`exclude`). Rewards after {int(last):,} steps.", "",
                  "| policy_terminal_value | policy share | λ | " + " | ".join(f"{s:,} steps" for s in steps)
                  + " | r(stop) | r(other) |", "|---|---|---|" + "---|" * (len(steps) + 2)]
        for row in online:
            end = row["by_step"][last]
            lines.append(f"| `{row['policy_terminal_value']}` | {row['policy_share']} | {row['td_weight']} | "
                         + " | ".join(f"{row['by_step'][str(s)]['length']:.2f}" for s in steps)
                         + f" | {end['reward_stop']:+.2f} | {end['reward_other']:+.2f} |")
    return "\n".join(lines) + "\n"


def section() -> list[str]:
    """BENCHMARKS.md's convergence table, from the stored summary (nothing when it was never run)."""
    path = os.path.join(HERE, "summary.json")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return report(json.load(f)).split("\n")[2:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--online-only", action="store_true", help="keep the stored offline rows, compute the online ones")
    a = p.parse_args(argv)
    if a.quick:
        print(report(run(td_weights=(0.1,), steps=(300, 3000))))
        return 0
    if a.online_only:  # the offline rows as stored, the online rows (re)computed
        with open(os.path.join(HERE, "summary.json"), encoding="utf-8") as f:
            summary = {**json.load(f), "online": run_online()}
    else:  # rows already stored are kept (see `run`)
        stored = {}
        if os.path.isfile(path := os.path.join(HERE, "summary.json")):
            with open(path, encoding="utf-8") as f:
                stored = json.load(f)
        summary = {**run(stored=stored.get("rows", ())), "online": stored.get("online") or run_online()}
    os.makedirs(HERE, exist_ok=True)
    with open(os.path.join(HERE, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(HERE, "report.md"), "w", encoding="utf-8") as f:
        f.write(report(summary))
    print(report(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
