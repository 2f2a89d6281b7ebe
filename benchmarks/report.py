"""Writes BENCHMARKS.md (verdict first) and the study pages, from the stored summary.json files only.

run as (from the repository root):
    python -m benchmarks.report                  # BENCHMARKS.md and benchmarks/study_*/BENCHMARKS.md
    python -m benchmarks.report --readme-table   # print the README's short "Does IQ beat SFT?" table
    python -m benchmarks.figures                 # the plots BENCHMARKS.md shows (run it too after new runs)

BENCHMARKS.md opens with one table: each arm against SFT in each setting on two axes (quality at
matched Self-BLEU; coverage at matched quality standardised to the expert's lengths), with the
mean gap and its 95% interval, and one plot per setting; then the details: the main study, the
companion studies (GAIL, offline IQ's grid on two model sizes), the sweeps, the 4x128 model and
the pretrained benchmark, each naming the command that made its runs. Nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import os
import sys

from benchmarks import headline, stop_reward, terminal_convergence, terminal_criterion
from benchmarks.figures import figure_path
from benchmarks.sections import (REPORT, claims, frontier_matrix, length_effect, link, para, provenance,
                                 sft_validity, study_body, study_results, tidy)
from benchmarks.settings import GAIL_STUDY, GRID_STUDY, GRID_STUDY_BIGGER, PRETRAINED, ROOT, STUDY, SWEEPS, rel
from benchmarks.sweeps_report import lm_expert_section, model_4x128_sections, pretrained_section, sweep_sections
from benchmarks.verdicts import FRONTIER_AXES, frontiers, gap_text

LM_EXPERT_SCARCE = os.path.join(ROOT, "benchmarks", "lm_expert", "results", "scarce")

BENCHMARKS_MD = os.path.join(ROOT, "BENCHMARKS.md")
# studies run on their own over the study's settings: folder -> (title, the command that made them)
COMPANIONS = {
    GAIL_STUDY: ("GAIL (SFT warm start, likelihood-ratio discriminator) against SFT",
                 "python -m benchmarks.study --experts markov,grammar --arms sft,gail --output_dir benchmarks/study_gail"),
    GRID_STUDY: ("Offline IQ's grid: terminal handling × λ × where V comes from, against SFT",
                 "python -m benchmarks.study --experts markov,grammar --grid"),
    GRID_STUDY_BIGGER: ("The same grid on a 4-layer, 128-wide Llama",
                        "python -m benchmarks.study --experts markov,grammar --grid --model_size 4x128"),
}
LEGEND = (
    "Each cell: the arm's frontier against SFT's over the sampling temperatures (T = 0.7, 1, 1.3), seeds paired: "
    "the mean gap over the common range and its 95% interval over seeds. Quality = the expert's log-likelihood of "
    "samples (nats/token; ROUGE-1 for the pretrained model), read at matched diversity (1 − Self-BLEU within a "
    "prompt's samples). Coverage = −forward KL of held-out expert text under the model at T (nats/token), read at "
    "matched quality standardised to the expert's sample lengths, so that shorter samples gain nothing on either "
    "axis. **above** / **below**: the interval clears 0 and no point of the range says the opposite; **level**: "
    "not distinguishable (the library's \"overlapping\"; `llm_irl.metrics.frontier.describe_verdict` says \"is not "
    "distinguishable from\"), *locally above/below* where part of the range clears 0; **crossing**: points clear 0 "
    "both ways; – = no such axis or no common range. Settings: the expert (Markov chain, grammar, arithmetic) and "
    "150 (scarce) or 5,000 (plentiful) demonstrations, on the builtin 2-layer, 64-wide Llama (2x64) or a 4-layer, "
    "128-wide one (4x128); the quickstart's is Markov with 2,000 demonstrations.")


def above_anywhere(all_results: dict[str, dict]) -> list[str]:
    """Which (arm, setting) pairs lie above SFT, axis by axis: a claim generated from the verdicts themselves."""
    lines = []
    for axis in FRONTIER_AXES:
        found = [f"{arm} in {name} ({gap_text(by_axis[axis])})" for name, r in all_results.items()
                 for arm, by_axis in frontiers(r).items() if by_axis.get(axis, {}).get("verdict") == "above"]
        lines.append(f"- {axis}: " + ("; ".join(found) if found else "no arm lies above SFT in any setting"))
    return lines


def companion_section(folder: str, here: str) -> list[str]:
    title, command = COMPANIONS[folder]
    found = study_results(folder)
    if not found:
        return []
    return [f"## {title}", "",
            *para(f"Same settings, seeds and evaluation as the main study, run on their own: `{command}`. Tables of "
                  f"every setting: {link(os.path.join(folder, 'BENCHMARKS.md'), here)}. This section: `{REPORT}`."),
            *provenance(folder, found), *frontier_matrix(found), "",
            "Where an arm lies above SFT, axis by axis:", "", *above_anywhere(found), "",
            "Metric by metric at T = 1, settings better / worse / overlapping against SFT:", "",
            *claims(found), "", *sft_validity(found), *length_effect(found), ""]


def plot_grid(here: str, columns: int = 3) -> list[str]:
    """The per-setting plots as a table of images, `columns` to a row."""
    cells = [f"![{s.label}]({os.path.relpath(figure_path(s), here)})" for s in headline.SETTINGS
             if os.path.exists(figure_path(s))]
    if not cells:
        return ["(no plots yet: run `python -m benchmarks.figures`)", ""]
    rows = [cells[i:i + columns] for i in range(0, len(cells), columns)]
    return ["| " + " | ".join([" "] * columns) + " |", "|---" * columns + "|",
            *("| " + " | ".join(r + [" "] * (columns - len(r))) + " |" for r in rows), ""]


def prose(relative: str) -> list[str]:
    """Hand-written prose kept in a markdown file under benchmarks/ (its figures are the tables' and the named
    sections'), so each hand-written part of the page lives in one file a reviewer can check; [] when absent."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), relative)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return f.read().rstrip("\n").split("\n") + [""]


def lm_expert_plot(here: str) -> list[str]:
    """The language-model expert's plots (`python -m benchmarks.figures`), one per regime, under its table."""
    out = []
    for setting in (s for s in headline.SETTINGS if s.key.startswith("lm_expert_")):
        if os.path.exists(path := figure_path(setting)):
            out += [f"![{setting.label}]({os.path.relpath(path, here)})", ""]
    return out


def imitation_section() -> list[str]:
    """GEM and SPIN against IQ's default in the same runs (the table at the top has them against SFT)."""
    from benchmarks.verdicts import HEADLINE_AXES, at, frontier_against, word

    lines = ["| setting | arm | " + " | ".join(words for _, words in HEADLINE_AXES) + " |", "|---|---|---|---|"]
    for expert in ("markov", "grammar"):
        for regime in ("scarce", "plentiful"):
            results = at(f"sweeps/imitation_{expert}_{regime}")
            if results is None:
                continue
            for arm in ("gem", "spin"):
                gaps = frontier_against(results, arm, results, base="iq")
                lines.append(f"| {expert}, {regime} | {arm} | " + " | ".join(
                    f"**{word(gaps.get(axis))}** {gap_text(gaps.get(axis))}" for axis, _ in HEADLINE_AXES) + " |")
    return lines if len(lines) > 2 else []


def write_benchmarks(path: str = BENCHMARKS_MD) -> None:
    from llm_irl.files import write_atomic

    here = os.path.dirname(path)
    main = study_results(STUDY)
    out = ["# BENCHMARKS: does IQ beat SFT, and where?", "",
           "Each arm's quality–diversity frontier against SFT's, setting by setting (legend below the table):", "",
           *headline.verdict_table(headline.rows()), "", *para(LEGEND),
           *para(f"Written by `{REPORT}` from the summary.json file each run folder keeps (made from its results.json "
                 "by `python -m benchmarks.summary`); the plots by `python -m benchmarks.figures`. Nothing here is "
                 "typed in by hand: each section below names the command that made its runs."),
           *para("One plot per setting (`python -m benchmarks.figures`, from the same summaries): quality against "
                 "diversity through the temperatures, mean over the seeds of each arm's first stored folder, bars "
                 "the 95% interval; the star is the expert's own samples."),
           *plot_grid(here),
           *prose("reading.md"),
           "## Real language, known expert: SmolLM2 imitating its instructed self", "",
           *para("The expert is SmolLM2-135M-Instruct with an instruction in its context (\"You are a cheerful pirate. "
                 "Answer every message in one short sentence of pirate speak.\") sampled at T 0.7 on real human "
                 "first turns; the student is the same model without the instruction, trained with LoRA on the last 8 "
                 "layers on the expert's replies (context distillation). The expert's likelihood is the model's own "
                 "(`llm_irl.tasks.lm_expert`), so quality (its log-likelihood of the student's samples, nats/token), "
                 "coverage (forward KL on its held-out replies) and precision (reverse KL) are exact. Runs: "
                 "`python -m benchmarks.lm_expert.prepare`, then `python -m benchmarks.lm_expert.run --regime REGIME "
                 "--arms ARMS` (`llm-irl compare` lanes with `expert_model`; 3 seeds, each model sampled once with its "
                 "own seed, so sampling noise is inside the intervals over seeds; how far a second draw moves a model's "
                 "figures: `python -m benchmarks.lm_expert.redraws`), then `python -m benchmarks.summary "
                 "benchmarks/lm_expert/results/REGIME`. Regimes: scarce = 128 demonstrations × 3 epochs (48 steps of "
                 "8), plentiful = 512 × 1 epoch (64 steps of 8). The frontier cells read as in the table at the top; "
                 "the other columns at T = 1, mean [95% interval] over seeds."),
           *lm_expert_section(here),
           *lm_expert_plot(here),
           *prose("lm_expert/reading.md"),
           "## The main study: SFT, offline IQ and online IQ on the 2x64 Llama", "",
           *para("Runs: `python -m benchmarks.study --experts markov,grammar` (the arithmetic expert is left out "
                 "here: every arm, SFT included, had validity 0 on this model in the study's first runs, not "
                 "stored; the 4x128 sections show what SFT needs to learn it); "
                 "`--quick` runs a minutes-long version into runs/study_quick/. Arms: `iq` = IQConfig's defaults "
                 "(`terminal_td: exclude`, λ 0.03); `iq_include` = the terminal transition kept in the χ² term with "
                 f"λ 0.1 (the defaults before issue 11); `iq_td0.3` = λ 0.3; `online_iq` = policy share 0.1 (the "
                 f"paper's). This section: `{REPORT}`."),
           *study_body(STUDY, here)]
    for folder in COMPANIONS:
        out += companion_section(folder, here)
    out += ["## Which imitation method? SFT, IQ, GEM and SPIN on the same runs", "",
            *para("`llm-irl compare benchmarks/sweeps/imitation_EXPERT_REGIME.yaml` (3 seeds, the study's budget for "
                  "every arm: 300 steps; GEM with the paper's β 0.7 and logsigmoid h; SPIN as "
                  "recipes/quickstart_spin.yaml, 150 SFT steps then 3 self-play iterations at lr 3e-4). Against SFT "
                  "they are in the table at the top; against IQ's default in the same runs:"),
            *imitation_section(), "",
            "## Terminal treatments: the length bias, reaching the optimum, and where the reward sits", "",
            *para("The tabular token MDP of `llm_irl.tasks.tabular` (free logits per state, exact expected length), "
                  "trained by full-batch Adam; `python -m benchmarks.terminal_convergence` "
                  "(benchmarks/sweeps/terminal_tabular/):"),
            *terminal_convergence.section(), "",
            *terminal_criterion.section(), "",
            *para("Where the implied reward sits on the tiny Llama: the mean reward of the stop action and of the other "
                  "actions on 200 held-out expert demonstrations, mean over 3 seeds, from the centred sweeps' saved "
                  "models (`python -m benchmarks.stop_reward benchmarks/sweeps/centred_*`; a state-head model is read "
                  "with its head). SFT's and `exclude`'s stop action earns several nats while every other action "
                  "costs one or two; under `centred` it earns what the others earn and carries about its share of "
                  "the actions' return. The `absorbing_*` sweeps (`centred_absorbing`) read the stop reward against "
                  "the learned value after EOS, as `llm_irl.rewards` does. The last column is the model's π(EOS) "
                  "where each held-out demonstration stops, teacher-forced: how far training lowered the stop where "
                  "the expert stops, without the sampling noise of the share of samples that end (its gap to SFT's, "
                  "seeds paired, is in the criterion table above)."),
            *stop_reward.section([os.path.join(SWEEPS, f"{kind}_{e}_{r}") for kind in ("centred", "absorbing")
                                  for e in ("markov", "grammar") for r in ("scarce", "plentiful")]), "",
            *para("The same on real text: SmolLM2-135M-Instruct students of the lm_expert study (scarce regime, "
                  "LoRA; 48 held-out expert replies, mean over 3 seeds; `python -m benchmarks.stop_reward "
                  "benchmarks/lm_expert/runs/scarce/lanes/ARM_seedS ... --merge benchmarks/lm_expert/results/scarce`, "
                  "the adapters reloaded with their value head; the λ 0.3 arm with `centred_absorbing` merged into "
                  "results/scarce_draws2), and the human-chat students (100 held-out reference replies, mean over "
                  "2 seeds, merged into benchmarks/pretrained/results). SFT's logits put the whole return in the stop "
                  "action; IQ's reward does not."),
            *stop_reward.section([LM_EXPERT_SCARCE, f"{LM_EXPERT_SCARCE}_draws2", PRETRAINED],
                                 {LM_EXPERT_SCARCE: "lm_expert, scarce", f"{LM_EXPERT_SCARCE}_draws2": "lm_expert, scarce",
                                  PRETRAINED: "human chat"}),
            "",
            "## Sweeps: compare recipes run on their own", "",
            *para("Each `benchmarks/sweeps/NAME.yaml` is run as `llm-irl compare benchmarks/sweeps/NAME.yaml` into "
                  "`benchmarks/sweeps/NAME/` (a header comment in the recipe says how, when it was run in parts)."),
            *sweep_sections(here),
            "## A 4-layer, 128-wide Llama", "",
            *para("Recipes in `benchmarks/model_4x128/` on a model `python -m benchmarks.models --expert EXPERT` "
                  "builds into `benchmarks/built_models/EXPERT_4x128/` (git-ignored, rebuilt from seed 0)."),
            *model_4x128_sections(here),
            "## A pretrained model", "", *pretrained_section(here)]
    if not main:
        out.insert(2, "(the main study has no summaries: run `python -m benchmarks.study` first)\n")
    write_atomic(path, "\n".join(tidy(out)).rstrip("\n") + "\n")
    print(f"wrote {rel(path)}")


def write_study_page(folder: str) -> str | None:
    """FOLDER/BENCHMARKS.md for a study run on its own (the main study's page is BENCHMARKS.md itself)."""
    from llm_irl.files import write_atomic

    if os.path.abspath(folder) == os.path.abspath(STUDY) or not study_results(folder):
        return None
    title = COMPANIONS.get(folder, (f"Study in {rel(folder)}", ""))[0]
    path = os.path.join(folder, "BENCHMARKS.md")
    out = [f"# {title}", "",
           *para(f"Written by `{REPORT}` from the summary.json of each setting below; the overview is "
                 f"{link(os.path.join(ROOT, 'BENCHMARKS.md'), folder)}."),
           *study_body(folder, folder, level="##")]
    write_atomic(path, "\n".join(tidy(out)).rstrip("\n") + "\n")
    print(f"wrote {rel(path)}")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme-table", action="store_true",
                        help="print the README's short 'Does IQ beat SFT?' table (markdown) and write nothing")
    parser.add_argument("--output", default=BENCHMARKS_MD, help="where BENCHMARKS.md goes")
    args = parser.parse_args(argv)
    if args.readme_table:
        print(headline.readme_table())
        return 0
    write_benchmarks(args.output)
    for folder in COMPANIONS:
        write_study_page(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
