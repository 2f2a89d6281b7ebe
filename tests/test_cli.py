"""The CLI end to end: recipes, the embedded default, a local model directory on real text, errors."""

import codecs
import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from llm_irl.cli import main
from llm_irl.errors import ConfigError
from llm_irl.quickstart import ARMS, recipe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(os.path.dirname(sys.executable), "llm-irl")


@pytest.mark.parametrize("arm", list(ARMS))
def test_recipes_reproduce_the_quickstart_arms(arm):
    with open(os.path.join(ROOT, "recipes", f"quickstart_{arm}.yaml")) as f:
        assert yaml.safe_load(f) == recipe(arm)


def test_train_then_generate_on_the_embedded_default(tmp_path, capsys):
    out = str(tmp_path / "iq")
    code = main(["train", os.path.join(ROOT, "recipes/quickstart_iq.yaml"), "--max_steps", "3",
                 "--output_dir", out, "--td_weight=0.2", "--per_device_eval_batch_size", "64"])
    assert code == 0
    assert {"model.safetensors", "tokenizer.json", "trainer_state.json"} <= set(os.listdir(out))
    assert json.load(open(os.path.join(out, "training_args.json")))["td_weight"] == 0.2
    capsys.readouterr()
    assert main(["generate", out, "--prompt", "topic1 kalo", "--num_samples", "3", "--max_new_tokens", "5"]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3 and all(l["prompt"] == "topic1 kalo" for l in lines)
    assert all(len(l["completion"].split()) <= 5 for l in lines)


def _real_text_model_dir(tmp_path):
    """A GPT-2-shaped model with a byte-level BPE tokenizer trained here on real English text."""
    import this  # noqa: F401  (the Zen of Python, stored rot13 in the stdlib)
    import csv as csv_module
    import json as json_module

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    zen = codecs.decode(sys.modules["this"].s, "rot13")
    lines = [l for text in (zen, json_module.__doc__, csv_module.__doc__) for l in text.splitlines() if len(l.split()) > 3]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>")
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=128,
                                       eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id))
    model_dir = str(tmp_path / "local-model")
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    data = tmp_path / "corpus.jsonl"
    data.write_text("".join(json.dumps({"text": l}) + "\n" for l in lines))
    return model_dir, str(data)


def test_console_script_trains_a_local_model_on_real_text(tmp_path):
    model_dir, data = _real_text_model_dir(tmp_path)
    recipe_path = tmp_path / "r.yaml"
    out = str(tmp_path / "out")
    recipe_path.write_text(yaml.safe_dump({
        "trainer": "iq", "model_name_or_path": model_dir, "dataset": data, "output_dir": out,
        "max_steps": 3, "per_device_train_batch_size": 4, "max_length": 64, "learning_rate": 1e-3, "save_strategy": "no",
    }))
    proc = subprocess.run([CLI, "train", str(recipe_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    assert AutoTokenizer.from_pretrained(out).eos_token == "<|endoftext|>"


def _recipe(tmp_path, **changes):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "latin1.jsonl").write_bytes('{"prompt": "caf\xe9", "completion": "x"}\n'.encode("latin-1"))
    files = {"EMPTY": str(tmp_path / "empty.jsonl"), "LATIN1": str(tmp_path / "latin1.jsonl")}
    changes = {k: files.get(v, v) if isinstance(v, str) else v for k, v in changes.items()}
    r = {**recipe("iq", str(tmp_path)), "max_steps": 1, **changes}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in r.items() if v is not ...}))
    return str(path)


BAD = {
    "unknown key": ({"tdweight": 1.0}, [], "unknown key 'tdweight' (did you mean 'td_weight'?)"),
    "unknown flag": ({}, ["--gama", "0.9"], "command line: unknown key 'gama' (did you mean 'gamma'?)"),
    "bad value": ({}, ["--td_weight", "abc"], "invalid float value: 'abc'"),
    "negative td_weight": ({"td_weight": -1}, [], "td_weight must be >= 0"),
    "gamma out of range": ({}, ["--gamma", "1.5"], "gamma must be in (0, 1]"),
    "unknown trainer": ({"trainer": "ppo"}, [], "unknown trainer 'ppo'"),
    "missing data file": ({"dataset": "nope/data.jsonl"}, [], "nope/data.jsonl: no such file"),
    "missing model dir": ({"model_name_or_path": "./no/such/model"}, [], "model directory './no/such/model' does not exist"),
    "no trainer": ({"trainer": ...}, [], "missing key 'trainer'"),
    "policy_mix out of range": ({}, ["--policy_mix", "1.5"], "policy_mix must be in [0, 1)"),
    "bad nan_policy": ({}, ["--nan_policy", "ignore"], "nan_policy must be 'stop' or 'skip'"),
    "max_length too small": ({}, ["--max_length", "1"], "max_length must be at least 2"),
    "prompt fills max_length": ({}, ["--max_length", "2", "--prompt_truncation", "error"],
                                "over max_length=2 (no room for a completion)"),
    "bad prompt_truncation": ({}, ["--prompt_truncation", "middle"],
                              "prompt_truncation must be one of keep_end, drop, error, got 'middle'"),
    "bad max_prompt_length": ({}, ["--max_prompt_length", "0"], "max_prompt_length must be at least 1"),
    "unknown builtin data": ({"dataset": "builtin:poetry"}, [], "unknown builtin dataset 'builtin:poetry'"),
    "empty data file": ({"dataset": "EMPTY"}, [], "empty.jsonl: no rows"),
    "non-UTF-8 data": ({"dataset": "LATIN1"}, [], "latin1.jsonl:1: not valid UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_recipes_are_refused_in_one_line(tmp_path, capsys, case):
    changes, flags, message = BAD[case]
    start = time.perf_counter()
    code = main(["train", _recipe(tmp_path, **changes), *flags])
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err.strip()
    assert code == 2 and elapsed < 30, (code, elapsed)
    assert message in err and len(err.splitlines()) == 1, err


def test_bad_yaml_names_the_line(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text("trainer: iq\nmodel_name_or_path: [unclosed\n")
    assert main(["train", str(path)]) == 2
    assert f"{path}:3: invalid YAML" in capsys.readouterr().err


def test_every_training_recipe_parses():
    """Recipes are documentation: each must stay valid as configs change."""
    from llm_irl.recipe import build, load_yaml
    from llm_irl.trainers import TRAINERS

    paths = [p for p in sorted(os.listdir(os.path.join(ROOT, "recipes"))) if p.endswith(".yaml")]
    for name in paths:
        data = load_yaml(os.path.join(ROOT, "recipes", name))
        if "trainer" not in data:
            continue  # compare recipes have their own schema
        # bf16 needs a GPU; everything else must parse here
        build(data, {"bf16": "false", "gradient_checkpointing": "false"}, TRAINERS, source=name)


SHAPES = {  # recipe value -> what the config holds; each YAML shape a recipe may use
    "scalar": ({"td_weight": 0.25}, lambda script, config: config.td_weight == 0.25),
    "scalar for a list key": ({"report_to": "none"}, lambda script, config: config.report_to == []),
    "list": ({"lora_target_modules": ["q_proj", "v_proj"]},
             lambda script, config: script.lora_target_modules == ["q_proj", "v_proj"]),
    "list for a str-or-list key": ({"report_to": ["tensorboard", "wandb"]},
                                   lambda script, config: config.report_to == ["tensorboard", "wandb"]),
    "empty list": ({"report_to": []}, lambda script, config: config.report_to == []),
    "empty list for a list key": ({"lora_target_modules": []}, lambda script, config: script.lora_target_modules == []),
    "dict": ({"lr_scheduler_kwargs": {"num_cycles": 2}},
             lambda script, config: config.lr_scheduler_kwargs == {"num_cycles": 2}),
    "null": ({"eval_steps": None, "dataset_config": None},
             lambda script, config: config.eval_steps is None and script.dataset_config is None),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_recipe_value_shapes(shape):
    from llm_irl.recipe import build
    from llm_irl.trainers import TRAINERS

    values, holds = SHAPES[shape]
    script, config = build({**recipe("iq", "unused"), **values}, {}, TRAINERS)
    assert holds(script, config), (script, config)


def test_an_empty_list_for_a_one_value_key_is_refused_by_name():
    from llm_irl.recipe import build
    from llm_irl.trainers import TRAINERS

    with pytest.raises(ConfigError, match="recipe: 'max_steps' takes one value, not an empty list"):
        build({**recipe("iq", "unused"), "max_steps": []}, {}, TRAINERS)


def test_train_with_an_empty_report_to(tmp_path):
    """`report_to: []` once failed with `argument --report_to/--report-to: expected one argument`."""
    path = _recipe(tmp_path, report_to=[], save_strategy="no")
    assert main(["train", path]) == 0
    assert json.load(open(os.path.join(tmp_path, "iq", "training_args.json")))["report_to"] == []


@pytest.mark.parametrize("text,message", [("", "the recipe is empty"), ("- a\n- b\n", "a recipe must be a mapping")])
def test_recipe_must_be_a_mapping(tmp_path, capsys, text, message):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    assert main(["train", str(path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("arm", [
    {"trainer": "iq", "policy_mix": 0.25, "max_new_tokens": 8},
    {"trainer": "gail", "disc_loss": "gail", "max_new_tokens": 8},
    {"trainer": "gail", "disc_loss": "airl", "normalize_rewards": True, "max_new_tokens": 8},
    {"trainer": "gail", "disc_loss": "margin", "policy_update": "reinforce", "max_new_tokens": 8},
], ids=["online_iq", "gail", "airl", "margin"])
def test_online_and_adversarial_trainers_through_the_cli_on_real_text(tmp_path, arm):
    model_dir, data = _real_text_model_dir(tmp_path)
    # the same real lines as prompt/completion rows: the first words are the prompt
    rows = [json.loads(l)["text"].split(" ") for l in open(data)]
    pc = tmp_path / "pc.jsonl"
    pc.write_text("".join(json.dumps({"prompt": " ".join(w[:3]), "completion": " " + " ".join(w[3:])}) + "\n"
                          for w in rows))
    out = str(tmp_path / "out")
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(yaml.safe_dump({
        "model_name_or_path": model_dir, "dataset": str(pc), "output_dir": out, "max_steps": 2,
        "per_device_train_batch_size": 4, "max_length": 64, "learning_rate": 1e-3, "save_strategy": "no", **arm,
    }))
    assert main(["train", str(recipe_path)]) == 0
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
