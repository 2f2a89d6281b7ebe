"""Several sampling draws per model: draw 0 is the single-draw run, later draws sample afresh, and each
figure is the draws' mean (what intervals over seeds then read)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from llm_irl.compare import interval_note
from llm_irl.evaluate import eval_config, evaluate_model, load_task, mean_over_draws
from tests.tiny_models import tiny_lm, tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


def test_draws_sample_afresh_and_the_figures_are_their_mean(tmp_path):
    model, tok = tiny_lm("llama", seed=1), tokenizer()
    config = eval_config({"eval_dataset": "builtin:markov", "num_prompts": 4, "k": 3, "temperatures": [0, 1.0],
                          "max_new_tokens": 12, "n_boot": 50, "num_heldout": 8})
    task = load_task(config)
    single = evaluate_model(model, tok, task, config, samples_path=str(tmp_path / "one.jsonl"), progress=False)
    two = evaluate_model(model, tok, task, replace(config, sample_draws=2), samples_path=str(tmp_path / "two.jsonl"),
                         progress=False)
    assert (tmp_path / "two.jsonl").read_text() == (tmp_path / "one.jsonl").read_text()  # draw 0 = one draw
    assert (tmp_path / "two.draw1.jsonl").read_text() != (tmp_path / "two.jsonl").read_text()
    assert two["sample_draws"] == 2 and "draws" not in single
    assert two["draws"][0]["1"]["expert_loglik"] == single["temperatures"]["1"]["expert_loglik"]
    assert two["draws"][1]["1"]["expert_loglik"]["value"] != two["draws"][0]["1"]["expert_loglik"]["value"]
    sampled = 0
    for t, figures in two["temperatures"].items():
        for name, figure in figures.items():
            if name in two["draws"][0][t]:
                sampled += 1
                assert figure["value"] == pytest.approx(np.mean([d[t][name]["value"] for d in two["draws"]]))
            else:  # held-out figures (forward KL at T) do not sample: computed once, as with one draw
                assert figure == single["temperatures"][t][name]
    assert sampled > 10 and "forward_kl_at_t" in two["temperatures"]["1"]
    assert two["metrics"] == single["metrics"]


def test_mean_over_draws_keeps_only_what_every_draw_has():
    a = {"1": {"x": {"value": 1.0, "lo": 0.0, "hi": 2.0, "n": 4}, "y": {"value": 5.0, "lo": None, "hi": None, "n": 1}}}
    b = {"1": {"x": {"value": 3.0, "lo": 2.0, "hi": 4.0, "n": 4}}}
    assert mean_over_draws([a, b]) == {"1": {"x": {"value": 2.0, "lo": 1.0, "hi": 3.0, "n": 8}}}


def test_every_interval_note_says_what_a_seed_figure_is():
    assert "mean of 2 sampling draws" in interval_note(3, 2)
    assert "one sampling draw of its own" in interval_note(3)
    assert "mean of 2 sampling draws" in interval_note(1, 2)


def test_sample_draws_must_be_positive():
    with pytest.raises(Exception, match="sample_draws must be >= 1"):
        eval_config({"eval_dataset": "builtin:markov", "sample_draws": 0})
