"""BENCHMARKS.md's sections on runs made on their own: the sweeps, the 4x128 model and the pretrained benchmark.

Imported by `benchmarks.report`; not run on its own. Each section reads summary.json files only and
names the command that made its runs (`llm-irl compare RECIPE.yaml`, then `python -m benchmarks.summary
FOLDER`); the page itself is rewritten by `python -m benchmarks.report`.
"""

from __future__ import annotations

import os

from benchmarks.sections import frontier_lines, link, para, setting_table
from benchmarks.settings import BENCH, BUDGET, PRETRAINED, rel
from benchmarks.verdicts import (FRONTIER_AXES, HEADLINE_AXES, at, budget_results, expert_figure, figure, fmt,
                                 frontier_against, pooled_frontier_against, stored_frontier, verdict_cell)

# compare recipes of benchmarks/sweeps/ run on their own (`llm-irl compare benchmarks/sweeps/NAME.yaml`)
SWEEPS = {"centred_markov_scarce": "terminal_td centred with a value head and IQ-Learn's χ² term (the default from issue 22 "
                                   "until td_huber), at λ 0.03-0.3, against SFT and the default before (exclude) "
                                   "(Markov expert, 150 demonstrations, 3 seeds)",
          "centred_markov_plentiful": "The same, Markov expert, 5,000 demonstrations (3 seeds)",
          "centred_grammar_scarce": "The same, grammar expert, 150 demonstrations (3 seeds)",
          "centred_grammar_plentiful": "The same, grammar expert, 5,000 demonstrations (3 seeds)",
          "huber0.5_markov_scarce": "centred with a value head and the χ² term made Huber's loss, td_huber 0.5, at "
                                    "λ 0.03-0.3, against SFT (Markov expert, 150 demonstrations, 3 seeds)",
          "huber0.5_markov_plentiful": "The same, Markov expert, 5,000 demonstrations (3 seeds)",
          "huber0.5_grammar_scarce": "The same, grammar expert, 150 demonstrations (3 seeds)",
          "huber0.5_grammar_plentiful": "The same, grammar expert, 5,000 demonstrations (3 seeds)",
          "huber_markov_scarce": "The same with td_huber 1, Markov expert, 150 demonstrations (3 seeds)",
          "huber_markov_plentiful": "The same with td_huber 1, Markov expert, 5,000 demonstrations (3 seeds)",
          "huber_grammar_scarce": "The same with td_huber 1, grammar expert, 150 demonstrations (3 seeds)",
          "huber_grammar_plentiful": "The same with td_huber 1, grammar expert, 5,000 demonstrations (3 seeds)",
          "absorbing_markov_scarce": "terminal_td centred_absorbing (the default since: the value after EOS learned "
                                     "too), a value head and td_huber 0.5, at λ 0.03-0.3, against SFT (Markov expert, "
                                     "150 demonstrations, 3 seeds)",
          "absorbing_markov_plentiful": "The same, Markov expert, 5,000 demonstrations (3 seeds)",
          "absorbing_grammar_scarce": "The same, grammar expert, 150 demonstrations (3 seeds)",
          "absorbing_grammar_plentiful": "The same, grammar expert, 5,000 demonstrations (3 seeds)",
          "absorbing_huber0.25_markov_scarce": "The defaults at λ 0.3 with td_huber 0.25, the κ that met the EOS "
                                               "criterion on the pirate expert, against SFT (Markov expert, 150 "
                                               "demonstrations, 3 seeds)",
          "absorbing_huber0.25_markov_plentiful": "The same, Markov expert, 5,000 demonstrations (3 seeds)",
          "absorbing_huber0.25_grammar_scarce": "The same, grammar expert, 150 demonstrations (3 seeds)",
          "absorbing_huber0.25_grammar_plentiful": "The same, grammar expert, 5,000 demonstrations (3 seeds)",
          "online_absorbing_quickstart": "Online IQ with the defaults (centred_absorbing, a value head, td_huber 0.5, "
                                         "the policy samples' stops in the value term) at policy shares 0.1 and 0.5, "
                                         "the quickstart's setting (seeds 0-2)",
          "online_absorbing_quickstart_seeds345": "The same on seeds 3-5",
          "online_centred_markov_scarce": "Online IQ with the defaults since this round (centred, a value head, the "
                                          "policy samples' EOS transitions in the value term) at policy shares 0.1 "
                                          "and 0.5 (Markov expert, 150 demonstrations, 3 seeds)",
          "centred_logits_quickstart": "terminal_td centred with V from the logits (one seed, the quickstart's "
                                       "setting): on a neural LM it does not remove the length bias",
          "terminal_plentiful": "Terminal handling × λ × where V comes from (Markov expert, 2,000 demonstrations, "
                                "1 seed): the evidence behind IQConfig's terminal_td default",
          "terminal_scarce": "The same with 150 demonstrations (1 seed)",
          "online_scarce": "Online IQ: policy share × λ (Markov expert, 150 demonstrations, 3 seeds)",
          "online_terminal_value": "Online IQ without the policy samples' EOS transitions in the value term "
                                   "(policy_terminal_value: exclude; Markov expert, same setting and seeds)",
          "online_terminal_value_grammar": "The same on the grammar expert (150 demonstrations, 3 seeds)",
          "online_terminal_value_markov_plentiful": "The same with plentiful data (Markov expert, 5,000 "
                                                    "demonstrations, 3 seeds)",
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
          "sft_regularised_grammar_scarce": "The same on the grammar expert (150 demonstrations, 3 seeds)",
          # issue 25: the encoder–decoder path against the causal one, the same recipe on either model
          "seq2seq_markov/t5": "Encoder–decoder: SFT against IQ on a T5 (1+1 layers, width 64, 86k parameters), "
                               "the quickstart's Markov setting (2,000 demonstrations, 300 steps, 3 seeds)",
          "seq2seq_markov/llama": "The same recipe on builtin:tiny (a 2-layer Llama, 77k parameters)",
          "seq2seq_markov/t5_900": "The T5 at three times the budget (900 steps, 3 seeds)",
          "seq2seq_markov/llama_900": "builtin:tiny at 900 steps (3 seeds)",
          "seq2seq_markov/t5_scarce": "The T5 on 150 demonstrations (300 steps, 3 seeds)",
          "seq2seq_markov/llama_scarce": "builtin:tiny on 150 demonstrations (300 steps, 3 seeds)"}
# compare recipes of benchmarks/model_4x128/ (a 4-layer, 128-wide Llama built by benchmarks.models)
MODEL_4X128 = {"centred_markov_scarce": "4x128: centred with a value head and the χ² term (the default from issue 22 until "
                                   "td_huber) against SFT, Markov scarce (3 seeds)",
               "centred_markov_plentiful": "4x128: the same, Markov plentiful (3 seeds)",
               "centred_grammar_scarce": "4x128: the same, grammar scarce (3 seeds)",
               "centred_grammar_plentiful": "4x128: the same, grammar plentiful (3 seeds)",
               
    "probe": "4x128: SFT on the arithmetic expert (5,000 demonstrations, 1 seed)",
    "probe_50k_6000": "4x128: SFT on the arithmetic expert, 50,000 demonstrations and 6,000 steps (1 seed)",
    "arithmetic_plentiful": "4x128: the arithmetic expert, SFT against offline IQ (50,000 demonstrations, 6,000 steps)",
    "probe_markov": "4x128: SFT on the Markov expert (5,000 demonstrations)",
    "bigger_markov_scarce": "4x128: the Markov scarce setting",
    "bigger_markov_plentiful": "4x128: the Markov plentiful setting",
    "bigger_grammar_scarce": "4x128: the grammar scarce setting",
    "bigger_grammar_plentiful": "4x128: the grammar plentiful setting",
}

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
# expert -> the sweeps (and their online arm, 300 steps) set against SFT stopped earlier (sft_budget_*.yaml)
SFT_BUDGETS = {"markov": [("online_terminal_value", "online_0.5_0.1_excl"),
                          ("online_0.5_0.03_excl_markov_scarce", "online_0.5_0.03_excl")],
               "grammar": [("online_terminal_value_grammar", "online_0.5_0.1_excl"),
                           ("online_0.5_0.03_excl_grammar_scarce", "online_0.5_0.03_excl")]}
BY_AXIS = [f"by {axis}" for axis in FRONTIER_AXES]


def sweep(name: str) -> dict | None:
    return at(f"sweeps/{name}")


def runs_line(folder: str, recipe: str) -> str:
    return (f"Runs: `llm-irl compare {recipe}`, then `python -m benchmarks.summary {folder}`; "
            "this section: `python -m benchmarks.report`.")


def table(header: list[str], rows: list[str]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|", *rows, ""]


def compare_section(folder: str, recipe: str, title: str, here: str) -> list[str]:
    """One compare run's table at T = 1 and its frontier verdicts, if it has a summary."""
    if (results := at(folder)) is None:
        return []
    path = os.path.join(BENCH, folder)
    return [f"### {title}", "", *para(f"{runs_line(rel(path), recipe)} {results['runtime_s'] / 60:.1f} min of "
                                      f"compute; its report: {link(os.path.join(path, 'report.md'), here)}."),
            *setting_table(results), "", *frontier_lines(results), ""]


def online_share_section() -> list[str]:
    """Online arms at larger policy shares against SFT, setting by setting (fresh seeds and pooled seeds too)."""
    rows = []
    for setting, sweeps in ONLINE_SHARE_SWEEPS.items():
        for name, arms in sweeps.items():
            if (results := sweep(name)) is None:
                continue
            for arm in arms:
                by_axis = frontier_against(results, arm, results)
                beside = [f"{figure(results, arm, m, t)['value']:.2f} ({figure(results, 'sft', m, t)['value']:.2f})"
                          for m, t in (("mean_length", "1"), ("forward_kl", None))]
                rows.append(f"| {setting} | {arm} | " + " | ".join(
                    [verdict_cell(by_axis.get(axis)) for axis in FRONTIER_AXES] + beside) + " |")
    pooled = [(f"{e} {r}", "online_0.5_0.03_excl", (f"online_0.5_0.03_excl_{e}_{r}", f"online_0.5_0.03_excl_{e}_{r}_seeds345"))
              for e, r in FRESH_SEEDS]
    pooled += [("quickstart (markov, 2,000)", arm, names) for arm, names in QUICKSTART_POOLED.items()]
    for setting, arm, names in pooled:  # seeds 0-2 and fresh seeds 3-5 together
        first, fresh = (sweep(n) for n in names)
        if first and fresh:
            by_axis = frontier_against(first, arm, first, more=(fresh,))
            rows.append(f"| {setting}, seeds 0-5 pooled | {arm} | " + " | ".join(
                verdict_cell(by_axis.get(axis)) for axis in FRONTIER_AXES) + " | | |")
    if not rows:
        return []
    return ["### Online IQ at larger policy shares, setting by setting", "",
            *para("Arms named online_SHARE_λ (3 seeds each; `_excl` = `policy_terminal_value: exclude`; runs from the "
                  "sweeps of `benchmarks/sweeps/` named in ONLINE_SHARE_SWEEPS of `benchmarks/sweeps_report.py`), "
                  "frontier against SFT in the same sweep [95% interval]: by Self-BLEU and distinct-2 the mean gap in "
                  "expert log-likelihood at matched diversity; by coverage the mean gap in −forward KL (nats/token) at "
                  "matched quality, as measured and standardised to the expert's lengths (– where the runs' models "
                  "were no longer on disk to measure it); then length and forward KL at T = 1 beside SFT's, since "
                  "shorter samples read as more diverse. This section: `python -m benchmarks.report`."),
            *table(["setting", "arm", *BY_AXIS, "length (SFT)", "fwd KL (SFT)"], rows)]


def quickstart_budget_section() -> list[str]:
    """The quickstart's IQ arms (300 steps, seeds 0-5) against SFT trained for other budgets on those seeds."""
    rows = []
    for steps, base in sorted(budget_results("sft_budget_quickstart").items()):
        for arm, names in QUICKSTART_POOLED.items():
            parts = [sweep(n) for n in names]
            if None in parts:
                continue
            by_axis = pooled_frontier_against(parts, arm, base)
            rows.append(f"| {steps} | {fmt(figure(base, 'sft', 'forward_kl', None))} | "
                        f"{fmt(figure(base, 'sft', 'mean_length', '1'))} | {arm} | "
                        + " | ".join(verdict_cell(by_axis.get(axis)) for axis in FRONTIER_AXES) + " |")
    if not rows:
        return []
    return ["### The quickstart's setting: IQ at 300 steps against SFT at other budgets", "",
            *para("Markov expert, 2,000 demonstrations, seeds 0-5 paired. " + runs_line(
                "benchmarks/sweeps/sft_budget_quickstart/steps_N", "benchmarks/sweeps/sft_budget_quickstart.yaml")
                + " The IQ arms come from the sweeps in QUICKSTART_POOLED of `benchmarks/sweeps_report.py`. The "
                "learning rate follows a cosine over each run's own steps."),
            *table(["SFT steps", "SFT fwd KL", "SFT length, T = 1", "arm (300 steps)", *BY_AXIS], rows)]


def sft_budget_section() -> list[str]:
    """SFT trained for fewer steps on scarce data against the online arm trained for 300."""
    out = []
    for expert, arms in SFT_BUDGETS.items():
        for name, arm in arms:
            online, budgets = sweep(name), budget_results(f"sft_budget_{expert}_scarce")
            if online is None or not budgets:
                continue
            budgets.setdefault(BUDGET["max_steps"], online)  # the sweep's own SFT when no steps_300 run exists
            rows = [f"| {steps} | {fmt(figure(r, 'sft', 'forward_kl', None))} | "
                    f"{fmt(figure(r, 'sft', 'expert_loglik', '1'))} | {fmt(figure(r, 'sft', 'self_bleu_per_input', '1'))} | "
                    f"{fmt(figure(r, 'sft', 'mean_length', '1'))} | "
                    + " | ".join(verdict_cell(frontier_against(online, arm, r).get(axis)) for axis in FRONTIER_AXES) + " |"
                    for steps, r in sorted(budgets.items())]
            out += [f"**{expert}**, 150 demonstrations (`benchmarks/sweeps/sft_budget_{expert}_scarce.yaml`; "
                    f"{arm} from `benchmarks/sweeps/{name}.yaml`):", "",
                    *table(["SFT steps", "fwd KL", "expert loglik, T = 1", "self-BLEU, T = 1", "length, T = 1",
                            *(f"{arm} (300 steps) {b}" if i == 0 else b for i, b in enumerate(BY_AXIS))], rows)]
    if out:
        out = ["### Scarce data: online IQ against SFT with a smaller budget", "",
               *para("300 steps of batch 32 are ~64 epochs of 150 demonstrations, so SFT overfits; is online IQ's "
                     "gain more than what stopping SFT earlier gives? Same data, seeds and evaluation; seeds paired. "
                     + runs_line("benchmarks/sweeps/sft_budget_EXPERT_scarce/steps_N",
                                 "benchmarks/sweeps/sft_budget_EXPERT_scarce.yaml")), *out]
    return out


def sweep_sections(here: str) -> list[str]:
    out = []
    for name, title in SWEEPS.items():
        out += compare_section(f"sweeps/{name}", f"benchmarks/sweeps/{name}.yaml", title, here)
    return out + online_share_section() + sft_budget_section() + quickstart_budget_section()


def model_4x128_sections(here: str) -> list[str]:
    out = []
    for name, title in MODEL_4X128.items():
        out += compare_section(f"model_4x128/{name}", f"benchmarks/model_4x128/{name}.yaml", title, here)
    return out


def pretrained_section(here: str) -> list[str]:
    """SmolLM2-135M-Instruct on human chat: the table and frontier verdicts from its summary."""
    if (results := at("pretrained/results")) is None:
        return []
    columns = [("heldout_nll", None, "held-out NLL ↓"), ("rouge1", "1", "ROUGE-1 ↑"), ("bleu", "1", "BLEU ↑"),
               ("embed_sim_to_reference", "1", "embed sim ↑"), ("self_bleu_per_input", "1", "self-BLEU ↓"),
               ("distinct_2_across", "1", "dist-2 ↑"), ("policy_entropy", "1", "entropy"),
               ("mean_length", "1", "length"), ("terminated", "1", "ended EOS")]
    rows = [f"| {arm} | " + " | ".join(fmt(figure(results, arm, m, t)) for m, t, _ in columns) + " |"
            for arm in results["summary"]]
    verdicts = [f"- {f['text']}" for arm in results["summary"] if arm != "sft"
                for div in ("self_bleu_per_input", "distinct_2_across")
                if (f := stored_frontier(results, arm, div)) is not None]
    return ["### SmolLM2-135M-Instruct on human chat (LoRA)", "",
            *para("Runs: `python -m benchmarks.pretrained.prepare` once, then `python -m benchmarks.pretrained.run --seeds 0,1` "
                  f"(it writes {rel(PRETRAINED)}/), then `python -m benchmarks.summary {rel(PRETRAINED)}`; this section: "
                  f"`python -m benchmarks.report`. {results['runtime_s'] / 60:.0f} min of compute. Quality is ROUGE-1 "
                  "against the reference reply (no expert likelihood here), so the frontier has no coverage axis. "
                  "The run's own report, with paired gaps, every temperature and its plain-words reading: "
                  f"{link(os.path.join(PRETRAINED, 'report.md'), here)}."),
            "Figures at T = 1 (held-out NLL on the reference replies):", "",
            *table(["arm", *(c[2] for c in columns)], rows), "Frontier verdicts (the run's own, stored in its summary):", "",
            *verdicts, ""]


LM_EXPERT_REGIMES = {"scarce": "scarce", "plentiful": "plentiful"}


def lm_expert_section(here: str) -> list[str]:
    """A real LM as the expert: arm x regime -> the two headline frontier verdicts against SFT, then length,
    end-of-turn share and the exact KLs at T = 1 beside the expert's own."""
    found = {r: res for r in LM_EXPERT_REGIMES if (res := at(f"lm_expert/results/{r}")) is not None}
    if not found:
        return []
    rows = []
    for regime, results in found.items():
        for arm in results["summary"]:
            gaps = frontier_against(results, arm, results) if arm != "sft" else {}
            cells = [verdict_cell(gaps.get(axis)) if arm != "sft" else "(baseline)" for axis, _ in HEADLINE_AXES]
            shape = [fmt(figure(results, arm, m, "1")) for m in ("mean_length", "terminated", "loop_share",
                                                                 "expert_loglik", "forward_kl_at_t", "reverse_kl")]
            rows.append(f"| {LM_EXPERT_REGIMES[regime]} | {arm} | " + " | ".join(cells + shape) + " |")
        expert = [fmt(expert_figure(results, m)) for m in ("mean_length", "terminated", "loop_share", "expert_loglik")]
        rows.append(f"| {LM_EXPERT_REGIMES[regime]} | expert's own samples | – | – | " + " | ".join(expert) + " | 0 | 0 |")
    header = ["regime", "arm", *(words for _, words in HEADLINE_AXES), "length (T 1)", "ended (T 1)",
              "loops (T 1)", "expert log-lik (T 1)", "forward KL (T 1)", "reverse KL (T 1)"]
    return [*table(header, rows)]
