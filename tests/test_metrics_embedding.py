"""Embedding figures (`llm_irl.metrics.embedding`) in the evaluation, against a slow reference; nothing downloads.

A fake deterministic encoder stands in for sentence-transformers: counts of characters in 8 buckets
plus a constant, so texts get different, non-trivial cosines and no text is the zero vector.
"""

from __future__ import annotations

import json
import math
import sys
import types

import numpy as np
import pytest

from llm_irl import cli
from llm_irl.errors import ConfigError
from llm_irl.evaluate import EvalConfig, text_metrics
from llm_irl.eval_task import EvalTask, load_task
from llm_irl.metrics import embedding
from llm_irl.metrics.catalogue import METRICS, metric_table


class FakeEncoder:
    """Stands in for a SentenceTransformer: `encode(texts, **kw)`, deliberately *not* unit length."""

    def __init__(self, name: str):
        self.name = name

    @staticmethod
    def vector(text: str) -> list[float]:
        v = [0.0] * 8 + [1.0]
        for i, c in enumerate(text):
            v[(ord(c) * 7 + i) % 8] += 1.0
        return v

    def encode(self, texts, **kw):
        return np.array([self.vector(t) for t in texts], dtype=np.float32)


@pytest.fixture
def fake_encoder(monkeypatch):
    loaded = []

    def load(name, device=None):
        loaded.append(name)
        return FakeEncoder(name)

    monkeypatch.setattr(embedding, "load_encoder", load)
    return loaded


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


GROUPS = [["the cat sat", "a cat sat down", "dogs bark"], ["hello there", "hello there", "good night moon"],
          ["", "x", "xyz xyz"]]
REFERENCES = ["the cat sat on the mat", "hello there friend", "xyz"]


def task(references) -> EvalTask:
    return EvalTask(prompts=["p0", "p1", "p2"], references=references, answers=None, heldout=[], expert=None,
                    exact_match="none")


def test_embedding_figures_match_a_slow_reference(fake_encoder):
    config = EvalConfig(embedding_model="fake-encoder", n_boot=200)
    out = text_metrics(GROUPS, task(REFERENCES), config, vocab_size=100)
    v = FakeEncoder.vector
    sim = [sum(cosine(v(t), v(REFERENCES[i])) for t in g) / len(g) for i, g in enumerate(GROUPS)]
    div = [sum(1 - cosine(v(g[a]), v(g[b])) for a in range(len(g)) for b in range(len(g)) if a != b)
           / (len(g) * (len(g) - 1)) for g in GROUPS]
    for name, per_prompt in (("embed_sim_to_reference", sim), ("embed_diversity_per_input", div)):
        figure = out[name]
        assert figure["value"] == pytest.approx(sum(per_prompt) / 3, abs=1e-9)
        assert figure["n"] == 3 and min(per_prompt) - 1e-9 <= figure["lo"] <= figure["value"] <= figure["hi"]
        assert figure["hi"] <= max(per_prompt) + 1e-9  # a bootstrap over prompts: within the per-prompt range
    assert 0 < div[1] < div[0]  # two identical samples in prompt 1 pull its diversity down
    assert fake_encoder == ["fake-encoder"] * 2  # samples once, references once


def test_no_references_no_similarity_and_no_model_no_figures(fake_encoder):
    out = text_metrics(GROUPS, task(REFERENCES), EvalConfig(n_boot=50), vocab_size=100)
    assert not [n for n in out if n.startswith("embed_")] and fake_encoder == []  # off by default: never loaded
    out = text_metrics(GROUPS, task(None), EvalConfig(embedding_model="fake-encoder", n_boot=50), vocab_size=100)
    assert "embed_diversity_per_input" in out and "embed_sim_to_reference" not in out


def test_embedding_figures_are_in_the_catalogue_and_tables(fake_encoder):
    out = text_metrics(GROUPS, task(REFERENCES), EvalConfig(embedding_model="fake-encoder", n_boot=50), vocab_size=100)
    assert METRICS["embed_sim_to_reference"].kind == "quality" and METRICS["embed_sim_to_reference"].sign == 1
    assert METRICS["embed_diversity_per_input"].kind == "diversity" and METRICS["embed_diversity_per_input"].sign == 1
    table = "\n".join(metric_table({"T=1": out}, ["embed_sim_to_reference", "embed_diversity_per_input"]))
    assert "embedding cosine similarity to the reference" in table and "mean pairwise cosine distance" in table


def test_embedding_diversity_uses_the_cached_loader(fake_encoder):
    texts = ["a b", "a c", "zz"]
    v = [FakeEncoder.vector(t) for t in texts]
    expected = sum(1 - cosine(v[i], v[j]) for i in range(3) for j in range(3) if i != j) / 6
    assert embedding.embedding_diversity(texts, "local/folder") == pytest.approx(expected)
    assert fake_encoder == ["local/folder"]


def test_loader_loads_once_per_process(monkeypatch):
    made = []
    fake = types.ModuleType("sentence_transformers")
    fake.SentenceTransformer = lambda name, device=None: made.append((name, device)) or FakeEncoder(name)
    monkeypatch.setitem(sys.modules, "sentence_transformers", fake)
    embedding.load_encoder.cache_clear()
    try:
        embedding.encode(["a"], "some/model")
        embedding.encode(["b", "c"], "some/model")
        embedding.require_encoder("some/model")
        assert made == [("some/model", None)]
    finally:
        embedding.load_encoder.cache_clear()


def test_missing_package_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails, as when not installed
    embedding.load_encoder.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"sentence-transformers.*pip install 'llm_irl\[embed\]'"):
            embedding.embedding_diversity(["a", "b"])
        path = tmp_path / "qa.jsonl"
        path.write_text(json.dumps({"prompt": "hi", "completion": "hello"}) + "\n")
        # evaluate and compare load the set before sampling or training anything: the error comes first
        with pytest.raises(ConfigError, match=r"^embedding_model 'm': .*pip install 'llm_irl\[embed\]'$") as err:
            load_task(EvalConfig(eval_dataset=str(path), num_prompts=1, embedding_model="m"))
        assert "\n" not in str(err.value)
    finally:
        embedding.load_encoder.cache_clear()


def test_evaluate_cli_takes_embedding_model_and_leaves_greedy_diversity_out(fake_encoder, tmp_path, capsys):
    rows = [{"prompt": f"topic{i} kalo", "completion": "kalo mira tesu"} for i in range(3)]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc = cli.main(["evaluate", "builtin:tiny", "--eval_dataset", str(path), "--num_prompts", "3", "--k", "2",
                   "--temperatures", "0,1.0", "--max_new_tokens", "5", "--n_boot", "20", "--num_heldout", "3",
                   "--embedding_model", "fake-encoder", "--output", str(tmp_path / "eval.json")])
    assert rc == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["settings"]["embedding_model"] == "fake-encoder"
    sampled, greedy = result["temperatures"]["1"], result["temperatures"]["0"]
    assert {"embed_sim_to_reference", "embed_diversity_per_input"} <= set(sampled)
    assert "embed_sim_to_reference" in greedy and "embed_diversity_per_input" not in greedy
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("| embedding diversity within"))
    assert row.split(" | ")[2] == "–"  # the greedy column
