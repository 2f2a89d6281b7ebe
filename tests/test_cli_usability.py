"""`llm-irl train` as a TRL user meets it (issue 14): --help listings, unsetting keys, TRL's key names,
--resume_from_checkpoint, a mistyped local folder, torchrun on CPU, no pin_memory warning, the model card."""

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import fields

import pytest
import torch
import yaml
from safetensors.torch import load_file

from llm_irl.cli import main
from llm_irl.quickstart import recipe
from llm_irl.recipe import ScriptArguments, machine_defaults
from llm_irl.trainers import TRAINERS

CLI = os.path.join(os.path.dirname(sys.executable), "llm-irl")


def _recipe(tmp_path, **changes) -> str:
    """The quickstart's IQ recipe, 1 step, no checkpoints, writing under tmp_path; `...` drops a key."""
    r = {**recipe("iq", str(tmp_path)), "max_steps": 1, "save_strategy": "no", **changes}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in r.items() if v is not ...}))
    return str(path)


# ---------------------------------------------------------------- item 2: --help


def _listed(text: str) -> dict[str, tuple[str, str]]:
    """{key: (default, help)} from a keys listing: `  --key  (default: X)` then indented help lines."""
    out, key = {}, None
    for line in text.splitlines():
        if m := re.match(r"  --(\w+)  \((.*)\)$", line):
            key = m.group(1)
            out[key] = (m.group(2), "")
        elif key and line.startswith("      "):
            out[key] = (out[key][0], (out[key][1] + " " + line.strip()).strip())
        else:
            key = None
    return out


@pytest.mark.parametrize("how", ["RECIPE --help", "RECIPE -h", "--trainer iq --help", "-h --trainer=iq"])
def test_train_help_lists_every_key_with_help_and_default(tmp_path, capsys, how):
    argv = [_recipe(tmp_path) if a == "RECIPE" else a for a in how.split()]
    assert main(["train", *argv]) == 0
    text = capsys.readouterr().out
    listed = _listed(text)
    config_cls = TRAINERS["iq"][1]
    expected = [f.name for f in fields(ScriptArguments) if f.init] + [f.name for f in fields(config_cls) if f.init]
    assert set(listed) == set(expected), set(expected) ^ set(listed)
    td = config_cls.__dataclass_fields__["td_weight"]
    assert listed["td_weight"] == (f"default: {td.default}", td.metadata["help"])
    assert listed["dataset"][0] == "required" and listed["eval_dataset"][0] == "default: null"
    assert listed["report_to"][0] == "default: none" and listed["use_peft"][0] == "default: false"
    ours = [f.name for f in fields(ScriptArguments)] + ["gamma", "td_weight", "terminal_td", "max_length"]
    for name in ours:  # our keys: each with its help, and before every TrainingArguments key
        assert listed[name][1], name
    order = list(listed)
    assert max(order.index(n) for n in ours) < order.index("output_dir") < order.index("warmup_steps")
    assert "dataset_name for dataset" in text


def test_train_help_without_a_recipe_lists_the_trainers():
    proc = subprocess.run([CLI, "train", "-h"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in TRAINERS:
        assert re.search(rf"^  {name} +\S", proc.stdout, re.M), proc.stdout
    assert "llm-irl train --trainer sft --help" in proc.stdout and "llm-irl train RECIPE.yaml --help" in proc.stdout


# ---------------------------------------------------------------- item 5: unsetting keys


@pytest.mark.parametrize("spelling", ["null", "None", ""])
def test_a_flag_unsets_an_optional_key(tmp_path, capsys, spelling):
    """The recipe names an eval_dataset; the flag unsets it, so no evaluation runs (and no hub lookup)."""
    start = time.perf_counter()
    assert main(["train", _recipe(tmp_path), "--eval_dataset", spelling, "--eval_steps", spelling,
                 "--report_to", spelling]) == 0
    assert time.perf_counter() - start < 60
    assert "eval_loss" not in capsys.readouterr().out
    args = json.load(open(tmp_path / "iq" / "training_args.json"))
    assert args["eval_steps"] is None and args["report_to"] == []


def test_an_empty_value_for_a_key_that_cannot_be_unset_is_refused_by_name(tmp_path, capsys):
    assert main(["train", _recipe(tmp_path), "--dataset", ""]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "llm-irl train: error: command line: 'dataset' is empty; give it a value", err


# ---------------------------------------------------------------- item 6: --resume_from_checkpoint


def test_resume_from_checkpoint_continues_from_that_step(tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    path = _recipe(tmp_path, max_steps=4, save_strategy="steps", save_steps=2, eval_dataset=...)
    assert main(["train", path, "--output_dir", str(whole)]) == 0
    assert main(["train", path, "--output_dir", str(resumed), "--resume_from_checkpoint",
                 str(whole / "checkpoint-2")]) == 0
    # steps 1-2 were not trained again: no checkpoint-2 in the new folder, and the end is the same run's end
    assert sorted(p for p in os.listdir(resumed) if p.startswith("checkpoint-")) == ["checkpoint-4"]
    state = json.load(open(resumed / "trainer_state.json"))
    assert state["global_step"] == 4
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("flags,message", [
    (["--resume_from_checkpoint", "no/such/checkpoint-9"], "--resume_from_checkpoint no/such/checkpoint-9: no such "
                                                           "checkpoint folder"),
    (["--resume_from_checkpoint", "TMP"], "not a checkpoint folder (no trainer_state.json)"),
    (["--resume", "--resume_from_checkpoint", "TMP"], "give --resume (the newest complete checkpoint) or "
                                                      "--resume_from_checkpoint DIR, not both"),
])
def test_bad_resume_flags_are_refused_in_one_line(tmp_path, capsys, flags, message):
    flags = [str(tmp_path) if f == "TMP" else f for f in flags]
    assert main(["train", _recipe(tmp_path), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


# ---------------------------------------------------------------- item 7: a mistyped local folder


@pytest.mark.parametrize("command", ["train", "generate"])
def test_a_missing_folder_under_an_existing_one_is_not_looked_up_on_the_hub(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    argv = (["train", _recipe(tmp_path, model_name_or_path="runs/nonexistent")] if command == "train"
            else ["generate", "runs/nonexistent", "--prompt", "topic1"])
    start = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - start < 10
    err = capsys.readouterr().err.strip()
    assert "model directory 'runs/nonexistent' does not exist (read as a path, not a Hub id, because folder " \
           "'runs' exists here)" in err and len(err.splitlines()) == 1, err


# ---------------------------------------------------------------- item 8: torchrun on CPU


def test_machine_defaults():
    assert machine_defaults({}, cuda=False) == {"dataloader_pin_memory": False}
    assert machine_defaults({"WORLD_SIZE": "2"}, cuda=False) == {"dataloader_pin_memory": False, "use_cpu": True,
                                                                 "ddp_backend": "gloo"}
    assert machine_defaults({"WORLD_SIZE": "2"}, cuda=True) == {} == machine_defaults({}, cuda=True)


def test_torchrun_on_cpu_trains_one_run_over_two_processes(tmp_path):
    """96 rows, 4 per process: one DDP run takes 8 rows a step (12 steps an epoch), two lone runs 4 (24)."""
    out = tmp_path / "ddp"
    path = _recipe(tmp_path, dataset="builtin:markov:96", eval_dataset=..., max_steps=3, per_device_train_batch_size=4,
                   logging_steps=1, output_dir=str(out), disable_tqdm=True, report_to=[])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           "29519", CLI, "train", path], capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("saved model") == 1, proc.stdout  # one report, not one per process
    state = json.load(open(out / "trainer_state.json"))
    assert state["log_history"][-1]["epoch"] == pytest.approx(3 / 12)


# ---------------------------------------------------------------- item 10: TRL's key names


def test_trl_key_names_without_a_recipe(tmp_path, monkeypatch):
    """`dataset_name` and `dtype` as TRL spells them, and `attn_implementation` reaching from_pretrained."""
    from tiny_models import tiny_lm, tokenizer

    import llm_irl.modeling

    model_dir = str(tmp_path / "model")
    tiny_lm("llama").save_pretrained(model_dir)
    tokenizer().save_pretrained(model_dir)
    seen = {}
    real = llm_irl.modeling.AutoModelForCausalLM

    class Spy:
        @staticmethod
        def from_pretrained(name, **kwargs):
            seen.update(kwargs)
            return real.from_pretrained(name, **kwargs)

    monkeypatch.setattr(llm_irl.modeling, "AutoModelForCausalLM", Spy)
    out = tmp_path / "out"
    assert main(["train", "--trainer", "sft", "--model_name_or_path", model_dir, "--dataset_name", "builtin:markov:16",
                 "--dtype", "float32", "--attn_implementation", "eager", "--max_steps", "1", "--max_length", "24",
                 "--output_dir", str(out), "--save_strategy", "no"]) == 0
    assert seen["attn_implementation"] == "eager" and seen["dtype"] == "float32"
    assert json.load(open(out / "training_args.json"))["model_dtype"] == "float32"


@pytest.mark.parametrize("recipe_keys,flags", [({"dataset_name": "builtin:markov"}, []),
                                               ({}, ["--dtype", "float32", "--model_dtype", "float32"])])
def test_both_names_of_one_key_are_refused(tmp_path, capsys, recipe_keys, flags):
    assert main(["train", _recipe(tmp_path, **recipe_keys), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert "is TRL's name for" in err and "give one of them, not both" in err and len(err.splitlines()) == 1, err


def test_a_flag_in_trls_name_overrides_the_recipe(tmp_path):
    from llm_irl.recipe import build

    script, config = build(recipe("iq", str(tmp_path)), {"dataset_name": "builtin:grammar", "dtype": "bfloat16"},
                           TRAINERS)
    assert script.dataset == "builtin:grammar" and config.model_dtype == "bfloat16"


# ---------------------------------------------------------------- pin_memory, model card


def test_cli_training_on_cpu_warns_nothing_about_pin_memory_and_writes_a_model_card(tmp_path):
    out = tmp_path / "iq"
    path = _recipe(tmp_path, output_dir=str(out), eval_dataset=..., max_steps=2, logging_steps=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([CLI, "train", path, "--td_weight", "0.2"], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pin_memory" not in proc.stderr
    card = (out / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta == {"library_name": "transformers", "tags": ["llm-irl", "iq", "generated_from_trainer"]}
    assert f"llm-irl train {path} --td_weight 0.2" in card
    assert "| `td_weight` | `0.2` |" in card and "| `model_name_or_path` | `builtin:tiny` |" in card
    last = json.load(open(out / "trainer_state.json"))["log_history"][-2]  # the last step's log; then the summary
    assert f"| `td` | `{last['td']:.4g}` |" in card


def test_model_card_links_hub_names_only(tmp_path):
    from llm_irl.model_card import model_card
    from llm_irl.recipe import build

    script, config = build({"trainer": "iq", "model_name_or_path": "Qwen/Qwen2.5-0.5B", "dataset": "trl-lib/Capybara",
                            "eval_dataset": str(tmp_path / "heldout.jsonl"), "use_peft": True,
                            "output_dir": str(tmp_path / "o")}, {}, TRAINERS)
    card = model_card(str(tmp_path / "o"), script, config, [], command="llm-irl train r.yaml")
    meta = yaml.safe_load(card.split("---")[1])
    assert meta == {"base_model": "Qwen/Qwen2.5-0.5B", "datasets": ["trl-lib/Capybara"], "library_name": "peft",
                    "tags": ["llm-irl", "iq", "generated_from_trainer"]}
    assert "[Qwen/Qwen2.5-0.5B](https://huggingface.co/Qwen/Qwen2.5-0.5B)" in card and "| `lora_r` | `16` |" in card


# ---------------------------------------------------------------- item 1: one long prompt


def _data_with_one_long_prompt(tmp_path) -> str:
    from llm_irl.builtin import builtin_dataset

    rows = list(builtin_dataset("builtin:markov", "train"))[:16]
    rows[5] = {**rows[5], "prompt": " ".join(r["prompt"] for r in rows[:12])}  # far over max_length
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("flags, message", [
    ([], "1 of 16 prompts were too long for max_length=24 and kept their last tokens"),
    (["--prompt_truncation", "drop"], "1 of 16 demonstrations were dropped: prompt too long for max_length=24"),
])
def test_one_long_prompt_does_not_stop_training(tmp_path, caplog, flags, message):
    path = _recipe(tmp_path, dataset=_data_with_one_long_prompt(tmp_path), eval_dataset=..., max_length=24,
                   output_dir=str(tmp_path / "out"))
    assert main(["train", path, *flags]) == 0
    assert message in caplog.text
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_a_long_prompt_stops_training_only_when_asked(tmp_path, capsys):
    path = _recipe(tmp_path, dataset=_data_with_one_long_prompt(tmp_path), eval_dataset=..., max_length=24)
    assert main(["train", path, "--prompt_truncation", "error"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r".*d\.jsonl:6: prompt has \d+ tokens, over max_length=24 \(no room for a completion\).*", err)
