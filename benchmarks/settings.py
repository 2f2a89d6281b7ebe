"""The study's settings: experts, data regimes, arms, offline IQ's grid, temperatures and folders.

Imported by every other module of the package (it imports none of them); not run on its own.
Every path here is absolute, built from ROOT (the repository root); `rel()` writes one relative to
ROOT for reports and recipes.

The study (`python -m benchmarks.study`) trains each arm of ARMS in each setting EXPERT_REGIME;
`--grid` trains SFT against offline IQ's GRID_ARMS instead, into `benchmarks/study_grid/`
(or `benchmarks/study_grid_SIZE/` with `--model_size SIZE`, on a model `benchmarks.models` builds).
"""

from __future__ import annotations

import os

from llm_irl.quickstart import ARMS as QUICKSTART_ARMS
from llm_irl.quickstart import COMMON

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")

EXPERTS = {"markov": 32, "grammar": 48, "arithmetic": 80}  # expert -> max_length covering ~99% of demos
REGIMES = {"scarce": 150, "plentiful": 5000}  # training demonstrations
TEMPERATURES = [0.7, 1.0, 1.3]  # the frontier's points
BUDGET = {k: v for k, v in COMMON.items() if k != "seed"}  # the quickstart's steps, batch and optimiser

ARMS = {
    "sft": {"trainer": "sft"},
    "iq": {"trainer": "iq"},  # IQConfig's defaults, whatever they are: the study checks them
    "iq_include": {"trainer": "iq", "terminal_td": "include", "td_weight": 0.1},  # the defaults before issue 11
    "iq_td0.3": {"trainer": "iq", "td_weight": 0.3},
    # the paper's share; IQ-Learn's EOS value terms, as the committed results were trained (the default is exclude)
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

# folders
STUDY = os.path.join(BENCH, "study")  # the main study: ARMS on the builtin tiny Llama
GAIL_STUDY = os.path.join(BENCH, "study_gail")  # --arms sft,gail --output_dir benchmarks/study_gail
SWEEPS = os.path.join(BENCH, "sweeps")  # compare recipes run on their own: `llm-irl compare benchmarks/sweeps/X.yaml`
MODEL_4X128 = os.path.join(BENCH, "model_4x128")  # compare recipes on a 4-layer, 128-wide Llama
PRETRAINED = os.path.join(BENCH, "pretrained", "results")  # SmolLM2-135M-Instruct on human chat
BUILT_MODELS = os.path.join(BENCH, "built_models")  # Llamas benchmarks.models builds (git-ignored)
FIGURES = os.path.join(BENCH, "figures")  # the plots BENCHMARKS.md shows (python -m benchmarks.figures)
BIGGER_SIZE = "4x128"  # --grid --model_size 4x128: the grid on a model that learns the experts better
QUICK_ROOT = os.path.join(ROOT, "runs", "study_quick")  # a quick run never overwrites the committed study


def grid_study(model_size: str | None = None) -> str:
    """Folder of `python -m benchmarks.study --grid` (on `builtin:tiny`, or with `--model_size`)."""
    return os.path.join(BENCH, "study_grid" + (f"_{model_size}" if model_size else ""))


GRID_STUDY = grid_study()
GRID_STUDY_BIGGER = grid_study(BIGGER_SIZE)


def rel(path: str) -> str:
    """`path` relative to the repository root, as reports and recipes write it."""
    return os.path.relpath(path, ROOT)


def parse_size(size: str) -> tuple[int, int]:
    """'4x128' -> (4, 128)."""
    try:
        layers, hidden = (int(n) for n in size.lower().split("x"))
    except ValueError:
        raise SystemExit(f"model size {size!r}: expected LAYERSxHIDDEN, e.g. 4x128") from None
    return layers, hidden


def built_model_dir(expert: str, layers: int, hidden: int, arch: str = "llama") -> str:
    """Where benchmarks.models writes a LAYERSxHIDDEN Llama (or another arch, e.g. t5) over the expert's words."""
    return os.path.join(BUILT_MODELS, f"{expert}_{'' if arch == 'llama' else arch + '_'}{layers}x{hidden}")
