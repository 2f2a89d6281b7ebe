"""Evaluation, the compare pipeline end to end on a tiny budget, the report's verdicts, and their CLI."""

from __future__ import annotations

import json
import math

import pytest

from llm_irl import cli
from llm_irl.compare import make_plan, parse_seeds, run_compare, summarize
from llm_irl.errors import ConfigError
from llm_irl.evaluate import EvalConfig, eval_config, load_task, text_metrics
from llm_irl.metrics.stats import estimate, seed_interval, t_quantile
from llm_irl.quickstart import ARMS, COMMON, compare_recipe
from llm_irl.recipe import load_yaml
from llm_irl.report import all_verdicts, frontier_verdicts, verdict, verdict_summary, write_report

TINY = {
    "model_name_or_path": "builtin:tiny", "dataset": "builtin:markov", "eval_dataset": "builtin:markov",
    "max_length": 16, "max_steps": 3, "per_device_train_batch_size": 8, "save_strategy": "no", "report_to": "none",
    "seeds": 2, "k": 3, "num_prompts": 4, "temperatures": [0, 0.7, 1.0], "max_new_tokens": 8, "n_boot": 100,
    "num_heldout": 20, "other_trainers": False,
    "arms": {"sft": {"trainer": "sft"}, "iq": {"trainer": "iq", "td_weight": 0.1}},
}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    plan = make_plan({**TINY, "output_dir": str(out)})
    results = run_compare(plan, progress=False, log=lambda line: None)
    return out, results, write_report(results, str(out), title="tiny")


# ---------------------------------------------------------------------------- end to end


def test_compare_writes_report_results_and_plots(compared):
    out, results, paths = compared
    assert set(results["summary"]) == {"sft", "iq"}
    assert set(results["runs"]["iq"]) == {"0", "1"}
    saved = json.loads((out / "results.json").read_text())
    assert saved["verdicts"] and saved["summary"]["sft"]["temperatures"]["0.7"]["expert_loglik"]["n"] == 2
    for name in ("quality_vs_diversity.png", "by_temperature.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    for text in ("## Verdicts", "Student-t interval over seeds", "![quality_vs_diversity.png]", "expert (own samples)"):
        assert text in report
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]  # atomic writes leave nothing behind
    run = out / "runs" / "iq" / "seed1"
    assert (run / "samples.jsonl").exists() and (run / "eval.json").exists() and (run / "config.json").exists()
    assert json.loads((run / "trainer_state.json").read_text())["log_history"]  # each run keeps its loss curves


def test_length_eos_and_loops_beside_the_experts(compared):
    out, results, _ = compared
    for t in ("0", "0.7", "1"):
        for arm in ("sft", "iq"):
            assert {"mean_length", "terminated", "loop_share"} <= set(results["summary"][arm]["temperatures"][t])
    expert = results["expert"]["temperatures"]["expert"]
    assert expert["terminated"]["value"] == 1.0  # a builtin expert's samples always end with EOS
    assert expert["mean_length"]["value"] > 1 and 0 <= expert["loop_share"]["value"] <= 1
    report = (out / "report.md").read_text()
    shape = report[report.index("## Sample length, EOS and loops"):]
    assert "| expert (own samples) | – | " in shape and "| iq | greedy (T=0) |" in shape
    # the figures come from the samples: recount one run's length, EOS share and loops at T=1
    from llm_irl.generation import load_jsonl
    from llm_irl.metrics.shape import has_loop

    at_1 = [s for s in load_jsonl(str(out / "runs" / "sft" / "seed0" / "samples.jsonl")) if s.temperature == 1.0]
    figures = results["runs"]["sft"]["0"]["temperatures"]["1"]
    assert figures["mean_length"]["value"] == pytest.approx(sum(len(s.completion_ids) for s in at_1) / len(at_1))
    assert figures["terminated"]["value"] == pytest.approx(sum(s.terminated for s in at_1) / len(at_1))
    loops = [has_loop(s.completion_ids[:-1] if s.terminated else s.completion_ids) for s in at_1]
    assert figures["loop_share"]["value"] == pytest.approx(sum(loops) / len(loops))


def test_greedy_is_one_evaluation_point(compared):
    out, results, _ = compared
    from llm_irl.generation import load_jsonl

    greedy = [s for s in load_jsonl(str(out / "runs" / "iq" / "seed0" / "samples.jsonl")) if s.temperature == 0]
    assert len(greedy) == TINY["num_prompts"] * TINY["k"]
    for i in range(TINY["num_prompts"]):
        assert len({tuple(s.completion_ids) for s in greedy if s.prompt_index == i}) == 1
    for arm in ("sft", "iq"):
        for figures in (results["runs"][arm]["0"]["temperatures"]["0"], results["summary"][arm]["temperatures"]["0"]):
            # k copies of one decode: nothing within a prompt to compare, so no per-input diversity and no
            # best-of-k (Self-BLEU 1 and a gain of 0 by construction); pooled and quality figures stay
            assert not {"self_bleu_per_input", "distinct_2_per_input", "best_of_k_gain"} & set(figures)
            assert {"distinct_2_across", "self_bleu_across", "expert_loglik", "policy_entropy"} <= set(figures)
        sampled = results["runs"][arm]["0"]["temperatures"]["0.7"]
        assert {"self_bleu_per_input", "distinct_2_per_input", "best_of_k_gain"} <= set(sampled)
    # shown as – in the greedy table, and left out of the verdicts there
    report = (out / "report.md").read_text()
    greedy = report[report.index("## Greedy decoding"):report.index("## Temperature 0.7")]
    row = next(line for line in greedy.splitlines() if line.startswith("| Self-BLEU within a prompt's k samples"))
    assert row.split(" | ")[2:4] == ["–", "–"]  # sft, iq; the expert's own samples (k different ones) beside
    where = {(v["metric"], v["where"]) for v in all_verdicts(results)}
    assert ("self_bleu_per_input", "T=0.7") in where and ("best_of_k_gain", "T=0.7") in where
    assert not {("self_bleu_per_input", "greedy (T=0)"), ("best_of_k_gain", "greedy (T=0)")} & where


def test_frontier_verdict_in_results_and_report(compared, capsys):
    out, results, _ = compared
    saved = json.loads((out / "results.json").read_text())["frontier"]
    assert {(f["arm"], f["baseline"], f["diversity"]) for f in saved} == {
        ("iq", "sft", "self_bleu_per_input"), ("iq", "sft", "distinct_2_across"), ("iq", "sft", "forward_kl_at_t")}
    for arm in ("sft", "iq"):  # coverage at each sampled temperature; at T = 1 it is the held-out forward KL
        run = results["runs"][arm]["0"]
        assert "forward_kl_at_t" not in run["temperatures"]["0"]  # greedy decoding has no likelihood
        assert run["temperatures"]["1"]["forward_kl_at_t"]["value"] == pytest.approx(run["metrics"]["forward_kl"]["value"])
    for f in saved:
        assert f["quality"] == "expert_loglik" and f["seeds"] == 2
        assert f["verdict"] in ("above", "below", "crossing", "overlapping", "no overlap")
        assert f["text"].startswith("iq's frontier") or f["text"].startswith("iq and sft share no")
    report = (out / "report.md").read_text()
    assert "## Frontier verdicts" in report and saved[0]["text"] in report
    from llm_irl.report import console_summary

    assert f"frontier: {saved[0]['text']}" in console_summary(results)


def test_loglik_correlation_beside_the_rewards(compared):
    """ρ(log π(y|x), quality) on the T=1 samples, from the log-probs the samples carry."""
    out, results, _ = compared
    from llm_irl.builtin import default_expert
    from llm_irl.generation import load_jsonl
    from llm_irl.metrics.stats import spearman

    expert = default_expert()
    at_1 = [s for s in load_jsonl(str(out / "runs" / "sft" / "seed1" / "samples.jsonl")) if s.temperature == 1.0]
    quality = [expert.score(s.prompt, s.sample).logprob_per_token for s in at_1]
    expected = spearman([sum(s.logprobs) for s in at_1], quality)
    figures = results["runs"]["sft"]["1"]["temperatures"]
    assert figures["1"]["loglik_quality_spearman"]["value"] == pytest.approx(expected)
    assert "loglik_quality_spearman" not in figures["0.7"]  # tempered samples do not carry log π
    assert "ρ(log π, q)" in (out / "report.md").read_text()


def test_evaluate_cli_on_a_compared_model(compared, tmp_path, capsys):
    out, _, _ = compared
    rc = cli.main(["evaluate", str(out / "runs" / "sft" / "seed0"), "--eval_dataset", "builtin:markov",
                   "--num_prompts", "3", "--k", "2",
                   "--temperatures", "0.5,1.0", "--max_new_tokens", "6", "--n_boot", "50", "--num_heldout", "10",
                   "--output", str(tmp_path / "eval.json"), "--samples", str(tmp_path / "s.jsonl")])
    assert rc == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert set(result["temperatures"]) == {"0.5", "1"}
    assert "heldout_nll" in result["metrics"] and "expert_loglik" in result["temperatures"]["1"]
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 2 * 3 * 2
    printed = capsys.readouterr().out
    assert "T=0.5" in printed and "expert (own samples)" in printed  # the expert's own figures beside
    assert result["expert"]["temperatures"]["expert"]["terminated"]["value"] == 1.0  # the expert always ends
    # the saved samples give the same figures without sampling again
    rc = cli.main(["evaluate", str(out / "runs" / "sft" / "seed0"), "--eval_dataset", "builtin:markov",
                   "--num_prompts", "3", "--k", "2", "--temperatures", "0.5,1.0", "--n_boot", "50", "--num_heldout", "10",
                   "--from_samples", str(tmp_path / "s.jsonl"), "--output", str(tmp_path / "again.json")])
    assert rc == 0 and json.loads((tmp_path / "again.json").read_text())["temperatures"] == result["temperatures"]


def test_merge_of_seed_split_runs_is_the_joint_report(compared, tmp_path, capsys):
    """Seeds 0 and 1 of one compare written as two folders (as two processes would) merge into the joint
    run's summary and frontier verdicts; parts that repeat a seed or differ in recipe are refused."""
    from llm_irl.compare import summarize

    _, results, _ = compared

    def part(seed: str, folder: str) -> str:
        runs = {arm: {seed: by_seed[seed]} for arm, by_seed in results["runs"].items()}
        one = {**results, "seeds": [int(seed)], "runs": runs, "runtime_s": results["runtime_s"] / 2,
               "summary": {arm: summarize(list(r.values())) for arm, r in runs.items()}}
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "results.json").write_text(json.dumps(one))
        return str(tmp_path / folder)

    a, b = part("0", "seed0"), part("1", "seed1")
    assert cli.main(["merge", str(tmp_path / "all"), a, b]) == 0
    merged = json.loads((tmp_path / "all" / "results.json").read_text())
    assert merged["seeds"] == [0, 1] and merged["summary"] == json.loads(json.dumps(results["summary"]))
    joint = [(f["arm"], f["diversity"], f["quality"], f["verdict"], f["mean_gap"]) for f in frontier_verdicts(results)]
    assert [[f["arm"], f["diversity"], f["quality"], f["verdict"], f["mean_gap"]] for f in merged["frontier"]] == \
        json.loads(json.dumps(joint))  # as JSON keeps them: lists
    assert "merged seeds [0, 1]" in capsys.readouterr().out
    assert cli.main(["merge", str(tmp_path / "again"), a, a]) == 2  # seed 0 twice
    other = json.loads((tmp_path / "seed1" / "results.json").read_text())
    other["common"]["max_steps"] = 7
    (tmp_path / "seed1" / "results.json").write_text(json.dumps(other))
    assert cli.main(["merge", str(tmp_path / "again"), a, b]) == 2
    err = capsys.readouterr().err
    assert "repeat" in err and "'common' differ" in err and len(err.strip().splitlines()) == 2


def test_evaluate_writes_no_file_unless_asked_and_needs_a_dataset(compared, tmp_path, monkeypatch, capsys):
    out, _, _ = compared
    monkeypatch.chdir(tmp_path)
    model = str(out / "runs" / "sft" / "seed0")
    assert cli.main(["evaluate", model, "--num_prompts", "2"]) == 2  # no silent builtin:markov
    assert "no eval_dataset" in capsys.readouterr().err
    rc = cli.main(["evaluate", model, "--eval_dataset", "builtin:markov", "--num_prompts", "2", "--k", "2",
                   "--temperatures", "1.0", "--max_new_tokens", "4", "--n_boot", "20", "--num_heldout", "4"])
    assert rc == 0 and list(tmp_path.iterdir()) == []
    assert "figures not saved" in capsys.readouterr().out


def _chat_rows(n: int, conversational: bool) -> list[dict]:
    """Markov demonstrations as chat rows: `messages`, or TRL's conversational prompt/completion."""
    from tiny_models import demos

    rows = []
    for d in demos(n, seed=5):
        user, assistant = {"role": "user", "content": d["prompt"]}, {"role": "assistant", "content": d["completion"]}
        rows.append({"prompt": [user], "completion": [assistant]} if conversational else {"messages": [user, assistant]})
    return rows


@pytest.mark.parametrize("conversational", [False, True], ids=["messages", "conversational prompt/completion"])
def test_evaluate_takes_chat_rows_and_reports_only_what_applies(compared, tmp_path, capsys, conversational):
    out, _, _ = compared
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _chat_rows(3, conversational)))
    rc = cli.main(["evaluate", str(out / "runs" / "sft" / "seed0"), "--eval_dataset", str(path), "--num_prompts", "3",
                   "--k", "2", "--temperatures", "0,1.0", "--max_new_tokens", "5", "--n_boot", "20",
                   "--output", str(tmp_path / "eval.json"), "--samples", str(tmp_path / "s.jsonl")])
    assert rc == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    figures = result["temperatures"]["1"]
    assert result["expert"] is None and "expert_loglik" not in figures and "validity" not in figures
    assert "rouge1" in figures and result["sample_quality"] == "rouge1"  # against the last assistant turn
    assert "expert" not in capsys.readouterr().out
    first = json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])
    assert first["prompt"] == [{"role": "user", "content": _chat_rows(1, False)[0]["messages"][0]["content"]}]


def test_compare_on_chat_rows_draws_no_expert_and_keeps_titles_inside(tmp_path, monkeypatch):
    from llm_irl import plots

    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _chat_rows(3, False)))
    figures = {}
    real_save = plots._save

    def keep(fig, where):
        import os

        figures[os.path.basename(where)] = fig
        fig.canvas.draw()  # lay out before the figure is closed
        figures[os.path.basename(where) + ":renderer"] = fig.canvas.get_renderer()
        real_save(fig, where)

    monkeypatch.setattr(plots, "_save", keep)
    recipe = {**TINY, "dataset": str(path), "eval_dataset": str(path), "seeds": 1, "max_steps": 1, "k": 2,
              "num_prompts": 3, "max_new_tokens": 4, "output_dir": str(tmp_path / "out")}
    results = run_compare(make_plan(recipe), progress=False, log=lambda line: None)
    write_report(results, str(tmp_path / "out"))
    assert results["expert"] is None and results["sample_quality"] == "rouge1"
    for name in ("quality_vs_diversity.png", "by_temperature.png"):
        fig, renderer = figures[name], figures[name + ":renderer"]
        texts = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        assert texts and not any("expert" in t for t in texts)  # no star (or line) named that is not drawn
        title = fig._suptitle
        assert "star" not in title.get_text()
        box, page = title.get_window_extent(renderer), fig.bbox
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1  # not cut at either edge


def test_generate_prints_what_a_user_expects(tmp_path, capsys):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "topic1 kalo"}]}) + "\n")
    # an untrained model writes special tokens often; the evaluation keeps them, the printout does not
    assert cli.main(["generate", "builtin:tiny", "--prompt", "topic1 kalo", "--prompts", str(path),
                     "--num_samples", "8", "--max_new_tokens", "30"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 16 and lines[8]["prompt"] == [{"role": "user", "content": "topic1 kalo"}]
    assert not any(tok in line["completion"] for line in lines for tok in ("<pad>", "<unk>", "<bos>", "<eos>"))


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["compare", str(tmp_path / "missing.yaml")]) == 2
    assert cli.main(["evaluate", "builtin:tiny", "--temperatures", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no such recipe file" in err[0] and "temperatures" in err[1]


# ---------------------------------------------------------------------------- verdicts


def test_overlapping_intervals_claim_no_winner():
    v = verdict("expert_loglik", "T=1", {"sft": estimate(-1.30, -1.40, -1.20), "iq": estimate(-1.25, -1.35, -1.15)})
    assert v["winner"] is None and v["best"] == "iq"
    assert "intervals overlap (iq, sft): no winner claimed" in v["text"]
    assert "no arm is shown better" in verdict_summary([v])[0]
    assert verdict_summary([v])[-1] == "**iq vs sft**: overlap (or no interval) on 1 of 1."


def test_disjoint_intervals_name_the_winner_in_the_metric_direction():
    nll = verdict("heldout_nll", "all temperatures", {"sft": estimate(1.5, 1.4, 1.6), "iq": estimate(1.2, 1.1, 1.3)})
    assert nll["winner"] == "iq" and "**iq better**" in nll["text"]  # lower NLL is better
    div = verdict("self_bleu_per_input", "T=1", {"sft": estimate(0.2, 0.1, 0.3), "iq": estimate(0.5, 0.4, 0.6)})
    assert div["winner"] == "sft" and "more diverse" in div["text"]  # lower Self-BLEU is more diverse
    summary = verdict_summary([nll, div])
    assert summary[0].startswith("**iq**") and summary[1].startswith("**sft**")
    # each arm against the first (the baseline), quality and diversity worded apart
    assert summary[-1] == ("**iq vs sft**: better on held-out NLL (nats/token) at all temperatures; less diverse on "
                           "Self-BLEU within a prompt's k samples at T=1; overlap (or no interval) on 0 of 2.")


def test_pooled_figures_of_one_seed_claim_no_winner():
    v = verdict("distinct_2_across", "T=1", {"sft": estimate(0.5), "iq": estimate(0.9)})
    assert v["winner"] is None and "no interval" in v["text"]


def test_all_verdicts_cover_each_temperature(compared):
    _, results, _ = compared
    where = {v["where"] for v in all_verdicts(results)}
    assert where == {"all temperatures", "greedy (T=0)", "T=0.7", "T=1"}


def test_frontier_verdicts_pair_seeds_on_one_minus_self_bleu():
    """A constructed sweep whose answer is known: iq reaches each quality at a lower Self-BLEU."""
    from llm_irl.report import frontier_verdicts

    def run(points):  # (self-BLEU, quality) per temperature
        return {"temperatures": {t: {"self_bleu_per_input": estimate(sb), "expert_loglik": estimate(q)}
                                 for t, (sb, q) in zip(("0.7", "1"), points)}}

    sft = [[(0.5, -2.0), (0.3, -3.0)], [(0.5, -2.1), (0.3, -3.1)]]
    iq = [[(0.4, -2.0), (0.2, -3.0)], [(0.4, -2.05), (0.2, -3.05)]]
    results = {"seeds": [0, 1], "runs": {"sft": {str(i): run(c) for i, c in enumerate(sft)},
                                         "iq": {str(i): run(c) for i, c in enumerate(iq)}}}
    results["summary"] = {arm: results["runs"][arm]["0"] for arm in ("sft", "iq")}
    (f,) = frontier_verdicts(results)
    assert (f["arm"], f["baseline"], f["diversity"], f["verdict"]) == ("iq", "sft", "self_bleu_per_input", "above")
    assert f["x_range"] == pytest.approx((0.6, 0.7))  # diversity = 1 − Self-BLEU: the range both curves cover
    # interpolated at matched diversity, iq is 0.5 above sft on seed 0 and 0.55 on seed 1
    assert f["mean_gap"]["value"] == pytest.approx(0.525)
    assert f["mean_gap"]["lo"] == pytest.approx(0.525 - 12.706 * 0.05 / 2, abs=1e-3)  # t(0.975, 1)·s/√2


def test_coverage_is_compared_at_matched_quality():
    """Coverage folds over the sweep (forward KL at T best at T = 1 here) while quality falls with T, so the
    verdict reads coverage at matched quality: iq covers the expert 0.1 / 0.05 / 0.1 nats/token better at
    the same qualities, on the raw and on the length-standardised quality."""
    from llm_irl.report import frontier_verdicts

    def run(points, dkl=0.0):  # (quality, forward KL at T) per temperature
        return {"temperatures": {t: {"forward_kl_at_t": estimate(kl - dkl), "expert_loglik": estimate(q),
                                     "expert_loglik_std": estimate(q)}
                                 for t, (q, kl) in zip(("0.7", "1", "1.3"), points)}}

    sft = [(-2.0, 0.6), (-2.5, 0.4), (-3.0, 0.5)]
    results = {"seeds": [0, 1, 2], "runs": {"sft": {s: run(sft) for s in "012"},
                                            "iq": {"0": run(sft, 0.1), "1": run(sft, 0.05), "2": run(sft, 0.1)}}}
    results["summary"] = {arm: results["runs"][arm]["0"] for arm in ("sft", "iq")}
    verdicts = frontier_verdicts(results)
    assert [(f["quality"], f["diversity"], f["gap_of"], f["verdict"]) for f in verdicts] == [
        ("expert_loglik", "forward_kl_at_t", "coverage", "above"),
        ("expert_loglik_std", "forward_kl_at_t", "coverage", "above")]
    assert verdicts[0]["x_range"] == pytest.approx((-3.0, -2.0))  # the quality range both curves cover
    assert verdicts[0]["mean_gap"]["value"] == pytest.approx(0.25 / 3)  # −forward KL, arm − baseline
    assert "mean coverage gap" in verdicts[0]["text"] and "at matched expert log-lik" in verdicts[0]["text"]


# ---------------------------------------------------------------------------- statistics


def test_t_quantile_matches_tables():
    for df, expected in ((1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042)):
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-3)


def test_seed_interval_and_single_seed_summary():
    e = seed_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, half-width t(0.975, 2) / sqrt(3)
    assert e["value"] == 2.0 and e["hi"] - 2.0 == pytest.approx(4.3027 / math.sqrt(3), abs=1e-3) and e["n"] == 3
    one = {"metrics": {}, "temperatures": {"1": {"bleu": estimate(3.0, 2.0, 4.0, 10)}}}
    assert summarize([one]) == one  # one seed: the run's own interval over prompts


# ---------------------------------------------------------------------------- recipes


def test_make_plan_checks_fairness_and_keys():
    with pytest.raises(ConfigError, match="may not set max_steps"):
        make_plan({**TINY, "arms": {"iq": {"trainer": "iq", "max_steps": 10}}})
    with pytest.raises(ConfigError, match="'seeds' lists the seeds"):
        make_plan({**TINY, "seed": 1})
    with pytest.raises(ConfigError, match="learning_rat"):
        make_plan({**TINY, "learning_rat": 0.1})
    with pytest.raises(ConfigError, match="unknown trainer"):
        make_plan({**TINY, "arms": {"x": {"trainer": "nope"}}})


def test_other_trainers_adds_every_registered_trainer():
    from llm_irl.trainers import TRAINERS

    plan = make_plan({**TINY, "arms": {"mine": {"trainer": "sft"}}, "other_trainers": True})
    assert set(plan.arms) == {"mine"} | (set(TRAINERS) - {"sft"})
    assert plan.seeds == [0, 1] and plan.eval.k == 3 and "k" not in plan.common


def test_parse_seeds():
    assert parse_seeds(3) == [0, 1, 2] and parse_seeds("2") == [0, 1]
    assert parse_seeds([0, 7]) == [0, 7] and parse_seeds("0,7") == [0, 7] and parse_seeds("[0, 7]") == [0, 7]
    assert parse_seeds("[2]") == [2] and parse_seeds("2,") == [2]  # seed 2 alone, on a command line
    for bad in ([1, 1], "two", "[a]", "[]", "0,,x"):
        with pytest.raises(ConfigError):
            parse_seeds(bad)


def test_eval_config_takes_recipe_values_and_flag_strings():
    assert eval_config({"temperatures": [0.5, 1.0], "k": 2}).temperatures == [0.5, 1.0]
    assert eval_config({"temperatures": "0.5,1", "k": "2", "references": "false"}) == EvalConfig(
        temperatures=[0.5, 1.0], k=2, references=False)
    assert eval_config({"dataset_config": None}).dataset_config is None
    with pytest.raises(ConfigError, match="temperatures must be a non-empty list"):
        eval_config({"temperatures": []})
    with pytest.raises(ConfigError, match="command line: unknown key 'temperature' \\(did you mean 'temperatures'"):
        eval_config({"temperature": "1.0"}, source="command line")


def test_quickstart_recipes_spell_the_embedded_default():
    assert load_yaml("recipes/compare_quickstart.yaml") == compare_recipe(3, True, "runs/compare_quickstart")
    plan = make_plan(compare_recipe(1))
    assert set(plan.arms) == set(ARMS) and plan.common["max_steps"] == COMMON["max_steps"]


# ---------------------------------------------------------------------------- the task


def test_references_and_exact_match_from_a_file(tmp_path):
    rows = [{"prompt": "2 plus 2 is", "completion": "the answer is 4"}, {"prompt": "3 plus 4 is", "completion": "7"}]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = load_task(EvalConfig(eval_dataset=str(path), num_prompts=2, exact_match="number"))
    assert task.expert is None and task.references == ["the answer is 4", "7"]  # no expert: references by default
    out = text_metrics([["4", "it is 4"], ["8", "7"]], task, EvalConfig(n_boot=50), vocab_size=100)
    assert out["exact_match"]["value"] == pytest.approx(0.75)
    assert 0 <= out["rouge1"]["value"] <= 1 and out["bleu"]["lo"] is None
    assert task.sample_quality()[0] == "exact_match"
    markov = load_task(EvalConfig(eval_dataset="builtin:markov", num_prompts=3))
    assert markov.expert is not None and markov.references is None and markov.sample_quality()[0] == "expert_loglik"


def test_compare_trains_lora_arms_as_lora(tmp_path):
    """`use_peft` and the lora_* keys reach the trainer: the saved run is an adapter, not a full model."""
    recipe = {**TINY, "seeds": 1, "max_steps": 1, "temperatures": [1.0], "num_prompts": 2, "k": 2,
              "use_peft": True, "lora_r": 2, "lora_target_modules": ["q_proj", "v_proj"],
              "arms": {"sft": {"trainer": "sft"}}, "output_dir": str(tmp_path)}
    run_compare(make_plan(recipe), progress=False, log=lambda line: None)
    run = tmp_path / "runs" / "sft" / "seed0"
    assert (run / "adapter_config.json").exists()
    assert json.loads((run / "adapter_config.json").read_text())["r"] == 2
