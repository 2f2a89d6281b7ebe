"""CLI start-up (issue 21, item 6): `llm-irl --help`, `llm-irl train --help` and the one-line errors load
no torch, transformers, peft, datasets or plotting, so they answer in a fraction of a second.

Each command runs in a fresh interpreter through a small wrapper that calls `llm_irl.cli.main` and then
prints which heavy packages `sys.modules` holds: re-adding an eager import anywhere on the way (the
package `__init__`s, `llm_irl.cli`, `llm_irl.recipe`, the trainer registry) fails here by name. The
key names those answers use are read from the configs' source (`llm_irl.dataclass_source`); the
second half checks that reader against `dataclasses.fields` of the imported classes.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from dataclasses import fields

import pytest

from llm_irl import dataclass_source
from llm_irl.trainers import TRAINERS
from llm_irl.trainers.registry import TrainerRegistry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("torch", "transformers", "peft", "datasets", "accelerate", "matplotlib", "sacrebleu", "rouge_score", "numpy")
WRAPPER = textwrap.dedent("""
    import json, sys
    from llm_irl.cli import main
    status = main(json.loads(sys.argv[1]))
    heavy = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.argv[2])))
    print("\\n" + json.dumps({"status": status, "heavy": heavy}))
""")


def run_main(argv: list[str]) -> tuple[dict, str, str]:
    """({status, heavy}, stdout before the report, stderr) of `llm_irl.cli.main(argv)` in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", WRAPPER, json.dumps(argv), json.dumps(HEAVY)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out, _, report = proc.stdout.rstrip().rpartition("\n")
    return json.loads(report), out, proc.stderr


@pytest.mark.parametrize("argv,status,stderr_end", [
    (["--help"], 0, None),
    (["train", "--help"], 0, None),
    (["train", "missing.yaml"], 2, "missing.yaml: no such recipe file"),
    (["train", "recipes/quickstart_iq.yaml", "--gama", "0.9"], 2, "unknown key 'gama' (did you mean 'gamma'?)"),
    (["train", "--trainer", "gail", "--model_name_or_path", "x", "--dataset", "y", "--disc_los", "airl"], 2,
     "unknown key 'disc_los' (did you mean 'disc_loss'?)"),
    (["train", "--trainer", "nope", "--dataset", "y"], 2, "unknown trainer 'nope'; choose one of sft, iq, gail, spin"),
])
def test_help_and_one_line_errors_load_nothing_heavy(argv, status, stderr_end):
    report, out, err = run_main(argv)
    assert report["status"] == status, err
    if stderr_end is not None:
        assert err.strip().endswith(stderr_end) and len(err.strip().splitlines()) == 1, err
    assert report["heavy"] == [], f"llm-irl {' '.join(argv)} imported {report['heavy']}"


def test_train_help_lists_every_trainer_with_its_summary():
    report, out, _ = run_main(["train", "--help"])
    for name in TRAINERS:
        summary = TRAINERS[name][1].__doc__.strip().splitlines()[0]
        assert f"  {name:<4}  {summary}" in out, out


# ---------------------------------------------------------------- the source reader against the imports


@pytest.mark.parametrize("name", list(TRAINERS))
def test_config_keys_read_from_source_are_the_dataclass_fields(name):
    config = TRAINERS[name][1]
    target = f"{config.__module__}:{config.__qualname__}"
    assert dataclass_source.init_fields(target) == [f.name for f in fields(config) if f.init]
    assert dataclass_source.docstring(target).splitlines()[0] == config.__doc__.strip().splitlines()[0]


SAMPLE = '''
"""A module of dataclasses in the shapes the reader must follow."""
import dataclasses
from dataclasses import InitVar, dataclass, field
from typing import ClassVar


@dataclass
class Base:
    """Base."""
    a: int = 1
    hidden: int = field(default=0, init=False)
    b: str = "x"


class Mixin:
    not_a_field: int = 3


@dataclass
class Left(Base):
    c: float = 0.5
    a: int = 2  # redefined: keeps its place


@dataclass
class Right(Base):
    d: int = 4
    shared: ClassVar[int] = 0
    temp: InitVar[int] = 0


@dataclasses.dataclass(frozen=False)
class Diamond(Mixin, Left, Right):
    """Diamond: Left and Right over Base."""
    e: int = dataclasses.field(default=5)


class Plain(Diamond):
    pass


class Namespace:
    Base = Base


@dataclass
class ByAttribute(Namespace.Base):  # a base the reader does not follow
    x: int = 0
'''


@pytest.fixture
def sample_module(tmp_path, monkeypatch):
    name = f"startup_sample_{uuid.uuid4().hex}"  # a new name each time: the reader caches what it has read
    (tmp_path / f"{name}.py").write_text(SAMPLE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.mark.parametrize("cls", ["Base", "Left", "Right", "Diamond", "Plain"])
def test_reader_follows_the_dataclass_rules(sample_module, cls):
    names = dataclass_source.init_fields(f"{sample_module}:{cls}")  # before the import: read from source only
    live = getattr(importlib.import_module(sample_module), cls)
    assert names == [f.name for f in fields(live) if f.init]


def test_registry_imports_what_the_reader_cannot_follow(sample_module):
    with pytest.raises(dataclass_source.Unreadable):
        dataclass_source.init_fields(f"{sample_module}:ByAttribute")
    registry = TrainerRegistry({"mine": ("builtins:object", f"{sample_module}:ByAttribute")})
    assert "mine" in registry and list(registry) == ["mine"]
    assert sample_module not in sys.modules  # membership and iteration import nothing
    assert registry.config_keys("mine") == ["a", "b", "x"] and sample_module in sys.modules


def test_registry_takes_classes_as_a_dict_does(sample_module):
    live = importlib.import_module(sample_module)
    registry = TrainerRegistry({})
    registry["mine"] = (object, live.Diamond)
    assert registry["mine"] == (object, live.Diamond)
    assert registry.config_keys("mine") == ["a", "b", "d", "c", "e"]
    assert registry.summary("mine") == "Diamond: Left and Right over Base."
