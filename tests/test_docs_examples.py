"""Every Python example in README.md and docs/*.md runs as written (offline, on the embedded default), so the
documentation cannot drift from the library. Examples that need the Hub or a GPU say so on their first line
(`# needs: ...`) and are only compiled."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
NEEDS_HUB = re.compile(r"""["'][\w.-]+/[\w.-]+["']""")  # a "org/name" Hub id: not reachable offline


def examples():
    for doc in DOCUMENTS:
        for i, match in enumerate(BLOCK.finditer(doc.read_text(encoding="utf-8"))):
            yield pytest.param(match.group(1), id=f"{doc.relative_to(ROOT)}#{i}")


@pytest.mark.parametrize("code", list(examples()))
def test_example_runs(code, tmp_path, monkeypatch):
    compiled = compile(code, "<example>", "exec")
    if code.startswith("# needs:") or NEEDS_HUB.search(code):
        return  # compiled only: it names a Hub model or a GPU
    monkeypatch.chdir(tmp_path)  # examples write runs/...
    exec(compiled, {"__name__": "__example__"})


def test_examples_are_found():
    assert len(list(examples())) >= 5
