"""The lab's shape, read statically (the twin of test_architecture.py for `benchmarks/`), and its result budget.

- no import circle among the modules of `benchmarks/` (imports read with `ast`, function-level ones
  included: a circle through a deferred import is still a circle);
- no `sys.path` edits anywhere under `benchmarks/`: scripts run as `python -m benchmarks.NAME`;
- every module at most 400 lines, opening with a docstring that says its job;
- one model builder: `benchmarks/models.py` is the only file that defines a function building a
  Llama config (a `def` whose body calls `LlamaConfig(...)` or `tiny_model_config(...)`). The speed
  scripts `benchmarks/bench_*.py` are exempt: they time steps on random Llamas of whatever shape
  their flags say and are not part of the study;
- tracked result files (png, json, jsonl, csv, svg, pdf; `git ls-files` of the whole repository):
  at most 5 MB in all and none over 200 KB; skipped outside a git checkout;
- BENCHMARKS.md's opening table is built from summary.json files alone: reading any results.json
  while building it fails the test.
"""

from __future__ import annotations

import ast
import builtins
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from test_architecture import _targets as package_targets

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "benchmarks"
MAX_LINES = 400
RESULT_SUFFIXES = (".png", ".json", ".jsonl", ".csv", ".svg", ".pdf")
MAX_RESULT_BYTES, MAX_FILE_BYTES = 5 * 1024 * 1024, 200 * 1024
BUILDER_CALLS = {"LlamaConfig", "tiny_model_config"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _targets(node: ast.Import | ast.ImportFrom, importer: str) -> list[str]:
    """The modules of the benchmarks package that one import statement names (the library test's reading)."""
    return package_targets(node, importer, MODULES)


def import_graph(modules: dict[str, Path] = MODULES) -> dict[str, set[str]]:
    graph = {}
    for name, path in modules.items():
        nodes = [n for n in ast.walk(_tree(path)) if isinstance(n, (ast.Import, ast.ImportFrom))]
        graph[name] = {t for n in nodes for t in _targets(n, name) if t != name}
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt, node]
            if nxt not in state and (found := visit(nxt, path + [nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_package_is_read():
    assert {"benchmarks", "benchmarks.settings", "benchmarks.models", "benchmarks.report"} <= set(MODULES)


def test_no_import_circle():
    circle = find_circle(import_graph())
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_the_circle_finder_finds_one():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) is None


def _sys_path_edits(tree: ast.AST) -> list[int]:
    """Lines that change sys.path: sys.path.insert/append/extend/..., or an assignment to sys.path."""
    lines = []
    for node in ast.walk(tree):
        target = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        if isinstance(target, ast.Attribute) and target.attr == "path" and getattr(target.value, "id", None) == "sys":
            lines.append(node.lineno)
    return lines


def test_no_sys_path_edits():
    found = {name: lines for name, path in MODULES.items() if (lines := _sys_path_edits(_tree(path)))}
    assert not found, f"sys.path edited (run scripts as python -m benchmarks.NAME instead): {found}"


def test_the_sys_path_check_sees_an_edit():
    assert _sys_path_edits(ast.parse("import sys\nsys.path.insert(0, 'x')\n")) == [2]
    assert _sys_path_edits(ast.parse("import sys\nsys.path += ['x']\n")) == [2]


def test_modules_are_small_and_say_their_job():
    for name, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").count("\n")
        assert lines <= MAX_LINES, f"{name}: {lines} lines (at most {MAX_LINES})"
        if path.stat().st_size:  # an empty __init__.py marks a folder as a package and needs no words
            doc = ast.get_docstring(_tree(path))
            assert doc and len(doc.split()) >= 4, f"{name}: no docstring saying what it is for"


def builders(path: Path) -> list[str]:
    """Functions defined in a file whose body calls one of BUILDER_CALLS (a Llama config built there)."""
    out = []
    for fn in ast.walk(_tree(path)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for call in ast.walk(fn):
                if isinstance(call, ast.Call):
                    callee = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
                    if callee in BUILDER_CALLS:
                        out.append(fn.name)
                        break
    return out


def test_one_model_builder():
    speed_scripts = {p for p in PACKAGE.glob("bench_*.py")}
    found = {module_name(p): names for p in MODULES.values()
             if p not in speed_scripts and p != PACKAGE / "models.py" and (names := builders(p))}
    assert not found, f"Llama builders outside benchmarks/models.py (import benchmarks.models instead): {found}"
    assert builders(PACKAGE / "models.py"), "benchmarks/models.py builds no model"


def _tracked_results() -> list[tuple[str, int]]:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: the budget is about tracked files")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    paths = [p for p in listed.decode().split("\0") if p.lower().endswith(RESULT_SUFFIXES)]
    return [(p, os.path.getsize(ROOT / p)) for p in paths if (ROOT / p).is_file()]


def test_tracked_results_fit_the_budget():
    files = _tracked_results()
    total = sum(size for _, size in files)
    assert total <= MAX_RESULT_BYTES, f"tracked results: {total / 1e6:.2f} MB (at most {MAX_RESULT_BYTES / 1e6:.2f})"
    big = [f"{p} ({size // 1024} KB)" for p, size in files if size > MAX_FILE_BYTES]
    assert not big, f"tracked result files over {MAX_FILE_BYTES // 1024} KB: {big}"


def test_the_verdict_table_reads_summaries_only(monkeypatch):
    if not (PACKAGE / "study" / "markov_scarce" / "summary.json").exists():
        pytest.skip("no stored summaries")
    from benchmarks import headline

    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        assert not str(file).endswith("results.json"), f"read {file}: pages must read summary.json only"
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    rows = headline.rows()
    assert {r["setting"].key for r in rows} >= {"tiny_markov_scarce", "quickstart"}
    assert "| offline IQ (default: centred_absorbing, value head, td_huber 0.5) |" in headline.readme_table(rows)


def test_the_terminal_criterion_pairs_seeds_and_reads_the_demonstrations_length(tmp_path, monkeypatch):
    import json

    from benchmarks import terminal_criterion as tc

    fig = lambda v: {"value": v, "lo": v, "hi": v, "n": 3}
    arm = lambda length, ended: {"temperatures": {"1": {"mean_length": fig(length), "terminated": fig(ended)}}}
    summary = {"summary": {"sft": arm(10.0, 0.9), "iq": arm(10.5, 0.88)},
               "expert": {"temperatures": {"expert": {"mean_length": fig(10.0)}}},
               # per-seed EOS shares: gaps −4, −2, 0 points, mean −2
               "seed_points": {"sft": [{"1": {"terminated": t}} for t in (0.90, 0.92, 0.88)],
                               "iq": [{"1": {"terminated": t}} for t in (0.86, 0.90, 0.88)]}}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    monkeypatch.setattr(tc, "BENCH", str(tmp_path))
    got = tc.read(tc.Row("s", "run", "iq", 0.3, 0.5))
    assert got["eos_gap"]["value"] == pytest.approx(-2.0)
    assert got["eos_gap"]["lo"] < -2.0 < got["eos_gap"]["hi"]
    assert got["vs_demos"] == pytest.approx(1.05) and got["vs_sft"] == pytest.approx(1.05)
    assert got["meets"]
    summary["summary"]["iq"] = arm(11.5, 0.85)  # 15% longer than the demonstrations
    (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    assert not tc.read(tc.Row("s", "run", "iq", 0.3, 0.5))["meets"]
    assert tc.read(tc.Row("s", "missing", "iq", 0.3, 0.5)) is None


def test_the_terminal_criterion_reads_length_against_the_rows_trained_on_when_measured(tmp_path, monkeypatch):
    import json

    from benchmarks import terminal_criterion as tc

    fig = lambda v: {"value": v, "lo": v, "hi": v, "n": 2}
    arm = lambda length: {"temperatures": {"1": {"mean_length": fig(length), "terminated": fig(0.9)}}}
    common = {"dataset": "d.jsonl", "model_name_or_path": "m", "max_length": 32}
    summary = {"common": common, "summary": {"sft": arm(8.0), "iq": arm(8.0)},
               "expert": {"temperatures": {"expert": {"mean_length": fig(10.0)}}},
               "seed_points": {a: [{"1": {"terminated": 0.9}}] * 2 for a in ("sft", "iq")}}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    monkeypatch.setattr(tc, "BENCH", str(tmp_path))
    monkeypatch.setattr(tc, "TRAINING_LENGTHS", str(tmp_path / "lengths.json"))
    row = tc.Row("s", "run", "iq", 0.3, 0.5)
    assert not tc.read(row)["meets"]  # 0.8× the expert's samples, the fallback
    (tmp_path / "lengths.json").write_text(json.dumps({tc.training_key(common): {"tokens": 7.6, "rows": 9}}))
    got = tc.read(row)
    assert got["vs_demos"] == pytest.approx(8.0 / 7.6) and got["vs_expert"] == pytest.approx(0.8) and got["meets"]
    assert got["stop_probability"] is None  # not measured
    stored = {"sft": {"stop_probability_by_seed": [0.5, 0.6]}, "iq": {"stop_probability_by_seed": [0.45, 0.59]}}
    (tmp_path / "run" / "stop_reward.json").write_text(json.dumps(stored))
    stop = tc.read(row)["stop_probability"]
    assert stop["value"] == pytest.approx(0.52) and stop["sft"] == pytest.approx(0.55)
    assert stop["gap"]["value"] == pytest.approx(-0.03)  # seeds paired: −0.05 and −0.01
    assert stop["gap"]["lo"] < -0.03 < stop["gap"]["hi"]


def test_training_rows_are_counted_as_the_trainer_encodes_them():
    from benchmarks.terminal_criterion import measure_training_length
    from llm_irl.builtin import builtin_dataset

    rows = builtin_dataset("builtin:markov:40")
    got = measure_training_length({"dataset": "builtin:markov:40", "model_name_or_path": "builtin:tiny",
                                   "max_length": None})
    # the word-level tokenizer: one token per word, then EOS
    assert got == {"tokens": pytest.approx(sum(len(r["completion"].split()) + 1 for r in rows) / 40), "rows": 40}


def test_stop_probability_is_the_models_eos_probability_where_each_demonstration_stops():
    import torch

    from benchmarks.stop_reward import stop_probability
    from llm_irl.builtin import load_builtin_model

    model, tok = load_builtin_model("builtin:tiny", seed=0)
    eos = tok.eos_token_id
    prompts = [[3, 5, 6], [3, 7]]
    completions = [[8, 9, eos], [10, 11, 12, eos], [8, 9]]  # the last never stops: not counted
    expected = []
    with torch.no_grad():
        for p, c in zip(prompts, completions[:2]):
            logits = model(input_ids=torch.tensor([p + c[:-1]])).logits[0, -1]
            expected.append(torch.softmax(logits, -1)[eos].item())
    got = stop_probability(model, tok, [*prompts, [3]], completions, batch_size=2)
    assert got == pytest.approx(sum(expected) / 2, rel=1e-5)
