"""The model card `llm-irl train` writes beside a trained model (`README.md`), as TRL does: Hub metadata
(base model, datasets, library, tags `llm-irl` and the trainer's name), how to load the model, what was
trained how (the command, the trainer's own settings and the usual TrainingArguments), and the last
logged values.
"""

from __future__ import annotations

import json
import os

from llm_irl.builtin import is_builtin
from llm_irl.files import write_atomic
from llm_irl.recipe import own_fields

# TrainingArguments worth reading on a card; the trainer's own fields are all shown
HIGHLIGHTS = ("learning_rate", "lr_scheduler_type", "warmup_steps", "max_steps", "num_train_epochs",
              "per_device_train_batch_size", "gradient_accumulation_steps", "seed")
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def is_hub_name(name: str | None) -> bool:
    """Whether `name` reads as a Hub id (what the card's metadata may link to), not a local file or folder."""
    return bool(name) and not is_builtin(name) and not os.path.exists(name) and not name.endswith(FILE_SUFFIXES)


def _front_matter(script, library: str) -> list[str]:
    lines = ["---"]
    if is_hub_name(script.model_name_or_path):
        lines.append(f"base_model: {script.model_name_or_path}")
    datasets = [d for d in (script.dataset, script.eval_dataset) if is_hub_name(d)]
    if datasets:
        lines += ["datasets:", *(f"- {d}" for d in dict.fromkeys(datasets))]
    lines += [f"library_name: {library}", "tags:", "- llm-irl", f"- {script.trainer}", "- generated_from_trainer",
              "---"]
    return lines


def _table(rows: list[tuple[str, object]]) -> list[str]:
    return ["| key | value |", "|---|---|", *(f"| `{k}` | `{v}` |" for k, v in rows)]


def _last_logs(log_history: list[dict]) -> list[str]:
    """The last training log (loss terms at a step) and the last evaluation, as tables."""
    train = [e for e in log_history if "loss" in e and "step" in e]
    evals = [e for e in log_history if any(k.startswith("eval_") for k in e)]
    out = []
    for title, entry in (("training, last logged step", train[-1] if train else None),
                         ("evaluation after training", evals[-1] if evals else None)):
        if entry:
            rows = [(k, f"{v:.4g}" if isinstance(v, float) else v) for k, v in entry.items()
                    if not k.endswith(("_runtime", "_per_second"))]
            out += ["", f"**{title}**", "", *_table(rows)]
    return out


def _auto_class_name(output_dir: str) -> str:
    """The transformers class that loads the saved model: an encoder–decoder's (its config, or its adapters' task
    type, says so) or a causal LM's."""
    for name, says_seq2seq in (("config.json", lambda c: c.get("is_encoder_decoder")),
                               ("adapter_config.json", lambda c: c.get("task_type") == "SEQ_2_SEQ_LM")):
        path = os.path.join(output_dir, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                return "AutoModelForSeq2SeqLM" if says_seq2seq(json.load(f)) else "AutoModelForCausalLM"
    return "AutoModelForCausalLM"


def model_card(output_dir: str, script, config, log_history: list[dict], command: str) -> str:
    """The card's Markdown for a model trained from `script` (ScriptArguments) and `config` into `output_dir`."""
    import torch
    import transformers

    import llm_irl

    library = "peft" if script.use_peft else "transformers"
    base = script.model_name_or_path
    source = f"[{base}](https://huggingface.co/{base})" if is_hub_name(base) else f"`{base}`"
    data = f"[{script.dataset}](https://huggingface.co/datasets/{script.dataset})" if is_hub_name(script.dataset) \
        else f"`{script.dataset}`"
    doc = (type(config).__doc__ or "").strip().splitlines()[0]
    settings = [("trainer", script.trainer), ("model_name_or_path", base), ("dataset", script.dataset)]
    settings += [(k, getattr(script, k)) for k in ("dataset_split", "dataset_config", "eval_dataset")
                 if getattr(script, k) not in (None, "train")]
    if script.use_peft:
        settings += [(k, getattr(script, k)) for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")]
    settings += [(k, getattr(config, k)) for k in own_fields(type(config))]
    settings += [(k, getattr(getattr(config, k), "value", getattr(config, k))) for k in HIGHLIGHTS]
    versions = [f"- llm_irl: {llm_irl.__version__}", f"- transformers: {transformers.__version__}",
                f"- torch: {torch.__version__}"]
    if script.use_peft:
        import peft

        versions.append(f"- peft: {peft.__version__}")
    auto_class = _auto_class_name(output_dir)
    lines = [
        *_front_matter(script, library), "",
        f"# {os.path.basename(os.path.normpath(output_dir))}", "",
        f"Fine-tuned from {source} on {data} with llm_irl's `{script.trainer}` trainer: {doc}", "",
        "## Use it", "",
        "```python",
        f"from transformers import {auto_class}, AutoTokenizer",
        "",
        f"tokenizer = AutoTokenizer.from_pretrained({output_dir!r})",
        f"model = {auto_class}.from_pretrained({output_dir!r})" + ("  # needs peft installed"
                                                                            if script.use_peft else ""),
        *(["# adapters keep the base model's config: give the model the policy temperature it was trained at",
           "from llm_irl.modeling import restore_policy_temperature",
           f"restore_policy_temperature(model, {output_dir!r})"] if script.use_peft else []),
        "```", "",
        f"or `llm-irl generate {output_dir} --prompt \"...\"`.", "",
        "## Training", "",
        "```bash", command, "```", "",
        *_table(settings),
        *_last_logs(log_history), "",
        "## Framework versions", "",
        *versions, "",
    ]
    return "\n".join(lines)


def write_model_card(output_dir: str, script, config, log_history: list[dict], command: str) -> str:
    """Write `output_dir/README.md` (replacing the stub PEFT writes) and return its path."""
    path = os.path.join(output_dir, "README.md")
    write_atomic(path, model_card(output_dir, script, config, log_history, command))
    return path
