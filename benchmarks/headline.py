"""BENCHMARKS.md's opening table: arm × setting × axis -> verdict against SFT, and the README's short version.

Imported by `benchmarks.report` (which writes them) and `benchmarks.figures` (one plot per setting);
not run on its own. SETTINGS says, for each setting, where each arm's runs are stored: a cell is
the frontier gap of the arm against SFT recomputed from the stored summaries (seeds paired; seeds
pooled over the listed folders, each holding both arms), with the library's verdict rule
(`llm_irl.metrics.frontier.frontier_gap`). Words: above / below = the 95% interval of the mean gap
clears 0 and no point of the range says the opposite; level = not distinguishable (the library's
"overlapping"), "locally above/below" where part of the range clears 0; crossing = points clear 0
both ways.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.verdicts import HEADLINE_AXES, at, frontier_against, stored_frontier

ARM_NAMES = {  # headline arm -> how the table names it
    "absorbing": "offline IQ (default: centred_absorbing, value head, td_huber 0.5)",
    "absorbing_td0.3": "offline IQ, the defaults at λ 0.3",
    "absorbing_td0.3_huber0.25": "offline IQ, the defaults at λ 0.3 with td_huber 0.25",
    "huber": "offline IQ, centred, value head, td_huber 0.5 (the default before centred_absorbing)",
    "huber_td0.3": "offline IQ, centred, td_huber 0.5, λ 0.3",
    "centred": "offline IQ, centred, value head, χ² (the default before td_huber)",
    "iq": "offline IQ, exclude (the default before)",
    "iq_td0.3": "offline IQ, exclude, λ 0.3",
    "online_0.1": "online IQ, share 0.1 (paper's; the defaults before)",
    "online_0.5": "online IQ, share 0.5 (exclude, V from the logits)",
    "centred_td0.3": "offline IQ, centred, value head, χ², λ 0.3",
    "online_0.1_centred": "online IQ, share 0.1 (the defaults with the χ² term: centred, value head, include)",
    "online_0.5_centred": "online IQ, share 0.5 (centred, value head, include, χ² term)",
    "online_0.1_absorbing": "online IQ, share 0.1, the defaults",
    "online_0.5_absorbing": "online IQ, share 0.5, the defaults (the quickstart's online arm)",
    "gail": "GAIL",
    "gem": "GEM (SFT's loss replaced, β 0.7)",
    "spin": "SPIN (150 SFT steps, 3 iterations)",
}


@dataclass(frozen=True)
class Source:
    """One arm of one setting: its name in the runs and the run folders (under benchmarks/) holding it
    beside SFT on the same seeds; two folders = seeds pooled (e.g. 0-2 and 3-5)."""

    arm: str
    folders: tuple[str, ...]
    stored: bool = False  # read the library's stored frontier verdict (no per-seed expert figures)


@dataclass(frozen=True)
class Setting:
    key: str  # file name of its plot
    label: str
    arms: dict  # headline arm -> Source


def _study(expert: str, regime: str) -> Setting:
    name = f"{expert}_{regime}"
    online = f"sweeps/online_0.5_0.03_excl_{name}"
    pooled = (online, f"{online}_seeds345") if name != "markov_scarce" else (online,)
    return Setting(f"tiny_{name}", f"{expert}, {regime} (2x64)", {
        "huber": Source("huber0.5_0.03", (f"sweeps/huber0.5_{name}",)),
        "huber_td0.3": Source("huber0.5_0.3", (f"sweeps/huber0.5_{name}",)),
        "absorbing": Source("absorbing_0.03", (f"sweeps/absorbing_{name}",)),
        "absorbing_td0.3": Source("absorbing_0.3", (f"sweeps/absorbing_{name}",)),
        "absorbing_td0.3_huber0.25": Source("absorbing_0.3_huber0.25", (f"sweeps/absorbing_huber0.25_{name}",)),
        "centred": Source("centred_head_0.03", (f"sweeps/centred_{name}",)),
        "iq": Source("iq", (f"study/{name}",)), "iq_td0.3": Source("iq_td0.3", (f"study/{name}",)),
        "online_0.1": Source("online_iq", (f"study/{name}",)), "online_0.5": Source("online_0.5_0.03_excl", pooled),
        "gail": Source("gail", (f"study_gail/{name}",)),
        "gem": Source("gem", (f"sweeps/imitation_{name}",)), "spin": Source("spin", (f"sweeps/imitation_{name}",)),
        **({"online_0.1_centred": Source("online_0.1_include", (f"sweeps/online_centred_{name}",)),
            "online_0.5_centred": Source("online_0.5_include", (f"sweeps/online_centred_{name}",))}
           if regime == "scarce" else {})})


def _bigger(expert: str, regime: str) -> Setting:
    name = f"{expert}_{regime}"
    return Setting(f"4x128_{name}", f"{expert}, {regime} (4x128)", {
        "centred": Source("iq", (f"model_4x128/centred_{name}",)),
        "iq": Source("iq", (f"model_4x128/bigger_{name}",)), "iq_td0.3": Source("excl_0.3", (f"study_grid_4x128/{name}",)),
        "online_0.5": Source("online_0.5_0.03_excl", (f"model_4x128/bigger_{name}",))})


SETTINGS = [
    *(_study(e, r) for e in ("markov", "grammar") for r in ("scarce", "plentiful")),
    *(_bigger(e, r) for e in ("markov", "grammar") for r in ("scarce", "plentiful")),
    Setting("quickstart", "quickstart (markov, 2,000 demos, 2x64)", {
        "iq": Source("iq", ("sweeps/quickstart_online_terminal_value", "sweeps/quickstart_seeds345")),
        "online_0.1": Source("online_0.1_0.03", ("sweeps/quickstart_online_terminal_value",)),
        "online_0.5": Source("online_0.5_0.03_excl", ("sweeps/online_0.5_0.03_excl_quickstart",
                                                      "sweeps/quickstart_seeds345")),
        "online_0.1_absorbing": Source("online_0.1", ("sweeps/online_absorbing_quickstart",
                                                      "sweeps/online_absorbing_quickstart_seeds345")),
        "online_0.5_absorbing": Source("online_0.5", ("sweeps/online_absorbing_quickstart",
                                                      "sweeps/online_absorbing_quickstart_seeds345"))}),
    Setting("quickstart_600", "quickstart at 600 steps", {"iq": Source("iq", ("sweeps/quickstart_600_steps",))}),
    Setting("arithmetic", "arithmetic, 50,000 demos (4x128)", {"iq": Source("iq", ("model_4x128/arithmetic_plentiful",))}),
    Setting("pretrained", "SmolLM2-135M, human chat (LoRA)",
            {"huber": Source("iq_huber0.5", ("pretrained/results",), stored=True),
             "huber_td0.3": Source("iq_td0.3_huber0.5", ("pretrained/results",), stored=True),
             "absorbing": Source("iq_absorbing", ("pretrained/results",), stored=True),
             "absorbing_td0.3": Source("iq_td0.3_absorbing", ("pretrained/results",), stored=True),
             "centred": Source("iq", ("pretrained/results",), stored=True),
             "centred_td0.3": Source("iq_td0.3", ("pretrained/results",), stored=True)}),
    Setting("lm_expert_scarce", "SmolLM2 expert (context distillation), 128 demos × 3 epochs, LoRA",
            {"huber_td0.3": Source("iq_td0.3_huber0.5", ("lm_expert/results/scarce",)),
             # two sampling draws per model, SFT's too
             "absorbing": Source("iq_absorbing", ("lm_expert/results/scarce_draws2",)),
             "absorbing_td0.3": Source("iq_td0.3_absorbing", ("lm_expert/results/scarce_draws2",)),
             "absorbing_td0.3_huber0.25": Source("iq_td0.3_absorbing_huber0.25", ("lm_expert/results/scarce_draws2",)),
             "centred": Source("iq", ("lm_expert/results/scarce",)),
             "centred_td0.3": Source("iq_td0.3", ("lm_expert/results/scarce",)),
             "online_0.1_centred": Source("online_iq", ("lm_expert/results/scarce",)),
             "gem": Source("gem", ("lm_expert/results/scarce",))}),
    Setting("lm_expert_plentiful", "SmolLM2 expert (context distillation), 512 demos × 1 epoch, LoRA",
            {"centred": Source("iq", ("lm_expert/results/plentiful",))}),
]


def cell(source: Source) -> tuple[dict[str, dict], int] | None:
    """(axis -> frontier gap against SFT, seeds), or None when a folder's summary is missing."""
    parts = [at(f) for f in source.folders]
    if None in parts or any(source.arm not in p["summary"] for p in parts):  # not run (yet) in a folder
        return None
    if source.stored:  # ROUGE-1 against the reference at matched Self-BLEU, as the run's own report reads it
        found = stored_frontier(parts[0], source.arm)
        return ({"Self-BLEU": found} if found else {}), len(parts[0]["seeds"])
    gaps = frontier_against(parts[0], source.arm, parts[0], more=tuple(parts[1:]))
    return gaps, sum(len(p["seeds"]) for p in parts)


def rows() -> list[dict]:
    """One dict per (setting, arm) that has stored runs: labels, gaps by axis, seeds and source folders."""
    out = []
    for setting in SETTINGS:
        for arm, source in setting.arms.items():
            if (found := cell(source)) is not None:
                out.append({"setting": setting, "arm": arm, "source": source, "gaps": found[0], "seeds": found[1]})
    return out


def _cell_text(result: dict | None) -> str:
    from benchmarks.verdicts import gap_text, word

    if not result or result["verdict"] == "no overlap":
        return "–"
    return f"**{word(result)}** {gap_text(result)}"


def verdict_table(found: list[dict]) -> list[str]:
    """The opening table of BENCHMARKS.md (markdown lines)."""
    head = ["setting", "arm", *(words for _, words in HEADLINE_AXES), "seeds", "stored in benchmarks/"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in found:
        source = r["source"]
        where = " + ".join(f"`{f}`" for f in source.folders) + f" ({source.arm})"
        lines.append(f"| {r['setting'].label} | {ARM_NAMES[r['arm']]} | "
                     + " | ".join(_cell_text(r["gaps"].get(axis)) for axis, _ in HEADLINE_AXES)
                     + f" | {r['seeds']} | {where} |")
    return lines


README_SETTINGS = ("tiny_markov_scarce", "tiny_grammar_scarce", "tiny_markov_plentiful", "tiny_grammar_plentiful",
                   "4x128_markov_scarce", "4x128_grammar_scarce", "quickstart", "lm_expert_scarce",
                   "lm_expert_plentiful")


def readme_table(found: list[dict] | None = None) -> str:
    """'Does IQ beat SFT?': arm × setting -> words (Self-BLEU axis / coverage axis), about five rows."""
    found = rows() if found is None else found
    by = {(r["arm"], r["setting"].key): r for r in found}
    settings = [s for s in SETTINGS if s.key in README_SETTINGS]
    short = {s.key: s.label.replace(" demos", "").replace(", 2,000", "") for s in settings}
    lines = ["| arm | " + " | ".join(short[s.key] for s in settings) + " |", "|---" * (len(settings) + 1) + "|"]
    for arm, name in ARM_NAMES.items():
        cells = []
        for s in settings:
            r = by.get((arm, s.key))
            words = [_plain(r["gaps"].get(axis)) if r else "" for axis, _ in HEADLINE_AXES]
            cells.append(" / ".join(words) if r else "·")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", "Each cell: quality at matched diversity (Self-BLEU) / coverage at matched quality "
                              "(standardised to the expert's lengths), against SFT, 95% intervals over seeds; "
                              "level = not distinguishable; · = not run. Gaps, intervals and every setting: "
                              "[BENCHMARKS.md](BENCHMARKS.md)."])


def _plain(result: dict | None) -> str:
    from benchmarks.verdicts import word

    return word(result).replace("level (locally above)", "level").replace("level (locally below)", "level")
