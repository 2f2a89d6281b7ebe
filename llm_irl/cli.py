"""`llm-irl`: train, generate, and the offline quickstart.

run as:
    llm-irl quickstart
    llm-irl train recipes/quickstart_iq.yaml --max_steps 50
    llm-irl generate runs/quickstart/iq --prompt "topic1 kalo" --num_samples 4

Every user mistake ends in one line on stderr and exit status 2, never a traceback; set
LLM_IRL_DEBUG=1 to see the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from llm_irl.data import DataError
from llm_irl.recipe import ConfigError
from llm_irl.reliability import NonFiniteLossError


class UsageError(ValueError):
    """A command-line mistake that isn't about the recipe."""


def cmd_train(argv: list[str]) -> int:
    from llm_irl.recipe import build, load_yaml, parse_flags
    from llm_irl.reliability import last_complete_checkpoint
    from llm_irl.trainers import TRAINERS

    if not argv or argv[0].startswith("--"):
        raise UsageError("usage: llm-irl train CONFIG.yaml [--resume] [--key value ...]")
    path, flags = argv[0], parse_flags(argv[1:])
    resume = flags.pop("resume", "false").lower() in ("true", "1", "yes")
    script, config = build(load_yaml(path), flags, TRAINERS, source=path)
    checkpoint = None
    if resume:
        checkpoint = last_complete_checkpoint(config.output_dir)
        if checkpoint is None:
            raise UsageError(f"--resume: no complete checkpoint-* folder in {config.output_dir}")
    trainer_cls = TRAINERS[script.trainer][0]
    trainer = trainer_cls(
        model=script.model_name_or_path,
        args=config,
        train_dataset=_source(script.dataset, script.dataset_split, script.dataset_config),
        eval_dataset=_source(script.eval_dataset, script.eval_split, script.dataset_config),
        peft_config=script.peft_config(),
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    if (signum := trainer.graceful_stop.received) is not None:
        saved = last_complete_checkpoint(config.output_dir)
        print(f"llm-irl train: stopped by signal {signum}; checkpoint saved to {saved}; continue with --resume",
              file=sys.stderr)
        return 128 + signum
    trainer.save_model()
    trainer.save_state()
    if trainer.eval_dataset is not None:
        print(json.dumps(trainer.evaluate(), indent=1))
    print(f"saved model, tokenizer and trainer_state.json to {config.output_dir}")
    return 0


def _source(name, split, config_name):
    """Read rows here, before any model loads, so the recipe's split is honoured and errors come early."""
    from llm_irl.data import read_rows, validate_rows

    if name is None:
        return None
    rows = read_rows(name, split, config_name)
    validate_rows(rows)
    return rows


def cmd_generate(argv: list[str]) -> int:
    import torch

    from llm_irl.modeling import load_model, load_tokenizer
    from llm_irl.rollout import completion_text, generate_rollouts

    p = argparse.ArgumentParser(prog="llm-irl generate", description="Sample completions from a model.")
    p.add_argument("model", help="model directory, hub name, or builtin:tiny")
    p.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    p.add_argument("--prompts", help="a JSONL file of {\"prompt\": ...} rows")
    p.add_argument("--num_samples", type=int, default=1)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top_p", type=float, default=1.0)
    p.add_argument("--max_new_tokens", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trust_remote_code", action="store_true")
    a = p.parse_args(argv)
    prompts = list(a.prompt)
    if a.prompts:
        from llm_irl.data import read_rows

        prompts += [_prompt_of(row) for row in read_rows(a.prompts)]
    if not prompts:
        raise UsageError("give at least one --prompt or a --prompts file")
    tok = load_tokenizer(a.model, trust_remote_code=a.trust_remote_code)
    model = load_model(a.model, trust_remote_code=a.trust_remote_code)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    ids = [tok(p, add_special_tokens=True)["input_ids"] for p in prompts]
    out = generate_rollouts(model, tok, ids, max_new_tokens=a.max_new_tokens, temperature=a.temperature,
                            top_p=a.top_p, num_samples=a.num_samples, seed=a.seed)
    for i, (completion, ended) in enumerate(zip(out.completion_ids, out.terminated)):
        text = completion_text(tok, completion, ended)
        print(json.dumps({"prompt": prompts[i // a.num_samples], "completion": text}))
    return 0


def _prompt_of(row) -> str:
    if not isinstance(row.fields, dict) or not isinstance(row.fields.get("prompt"), str):
        raise DataError(f"{row.where}: needs a string 'prompt'")
    return row.fields["prompt"]


def cmd_quickstart(argv: list[str]) -> int:
    from llm_irl.quickstart import main as quickstart_main

    return quickstart_main(argv)


def cmd_evaluate(argv: list[str]) -> int:
    from llm_irl.evaluate import main as evaluate_main

    return evaluate_main(argv)


def cmd_compare(argv: list[str]) -> int:
    from llm_irl.compare import main as compare_main

    return compare_main(argv)


COMMANDS = {"train": cmd_train, "generate": cmd_generate, "quickstart": cmd_quickstart, "evaluate": cmd_evaluate,
            "compare": cmd_compare}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(f"usage: llm-irl {{{','.join(COMMANDS)}}} ...\n\n{__doc__}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[argv[0]](argv[1:])
    except (ConfigError, DataError, UsageError, FileNotFoundError) as e:
        print(f"llm-irl {argv[0]}: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:
        print(f"llm-irl {argv[0]}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"llm-irl {argv[0]}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the promise is one line, not a traceback; the debug switch shows it
        if os.environ.get("LLM_IRL_DEBUG"):
            raise
        print(f"llm-irl {argv[0]}: error: {type(e).__name__}: {e} (set LLM_IRL_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
