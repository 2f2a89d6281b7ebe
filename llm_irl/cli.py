"""`llm-irl`: train, generate, evaluate, compare and the offline quickstart from the command line.

run as:
    llm-irl quickstart
    llm-irl train recipes/quickstart_iq.yaml --max_steps 50
    llm-irl generate runs/quickstart/iq --prompt "topic1 kalo" --num_samples 4
    llm-irl evaluate runs/quickstart/runs/iq/seed0 --temperatures 0.7,1.0 --output eval.json
    llm-irl compare recipes/compare_quickstart.yaml --seeds 1

Every user mistake ends in one line on stderr and exit status 2, never a traceback; set
LLM_IRL_DEBUG=1 to see the traceback of an unexpected error.

This is the package's only top layer: every argv parse and exit status lives here, and the
library modules below receive parsed configs (no library module imports this one).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from llm_irl.errors import ConfigError, DataError, NonFiniteLossError, UsageError


def cmd_train(argv: list[str]) -> int:
    from llm_irl.recipe import build, load_yaml, parse_bool, parse_flags
    from llm_irl.reliability import last_complete_checkpoint
    from llm_irl.trainers import TRAINERS

    if not argv or argv[0].startswith("--"):
        raise UsageError("usage: llm-irl train CONFIG.yaml [--resume] [--key value ...]")
    path, flags = argv[0], parse_flags(argv[1:])
    resume = parse_bool(flags.pop("resume", False))
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


def _positional(argv: list[str], usage: str, help_text: str) -> str | None:
    """The command's one positional argument (argv[0]); None once -h/--help has printed `help_text`."""
    if argv and argv[0] in ("-h", "--help"):
        print(help_text)
        return None
    if not argv or argv[0].startswith("-"):
        raise UsageError(usage)
    return argv[0]


def _compare_and_report(plan, title: str, *, progress: bool = True) -> tuple[dict, dict[str, str]]:
    """Train and evaluate every arm of `plan`, write the report, print its console table and verdicts."""
    from llm_irl.compare import run_compare
    from llm_irl.report import all_verdicts, brief_table, verdict_summary, write_report

    results = run_compare(plan, progress=progress, log=lambda line: print(line, flush=True))
    paths = write_report(results, plan.output_dir, title=title)
    print(brief_table(results))
    print("\n".join(verdict_summary(all_verdicts(results))))
    return results, paths


def cmd_quickstart(argv: list[str]) -> int:
    from llm_irl.quickstart import COMMON, EVAL, quickstart_plan

    p = argparse.ArgumentParser(prog="llm-irl quickstart",
                                description="`llm-irl quickstart`: SFT against inverse soft-Q on the embedded default, "
                                            "offline, in minutes.")
    p.add_argument("--output_dir", default="runs/quickstart")
    p.add_argument("--max_steps", type=int, default=COMMON["max_steps"])
    p.add_argument("--num_prompts", type=int, default=EVAL["num_prompts"])
    p.add_argument("--num_samples", type=int, default=EVAL["k"], help="samples per prompt (k)")
    p.add_argument("--seeds", type=int, default=1, help="training and sampling seeds 0..N-1")
    a = p.parse_args(argv)
    plan = quickstart_plan(seeds=a.seeds, output_dir=a.output_dir, max_steps=a.max_steps, num_prompts=a.num_prompts,
                           k=a.num_samples)
    results, paths = _compare_and_report(plan, "quickstart", progress=False)
    print(f"intervals: {results['interval']}")
    print(f"report: {os.path.abspath(paths['report'])} (plots beside it); "
          f"{results['runtime_s'] / 60:.1f} min")
    return 0


EVALUATE_USAGE = ("usage: llm-irl evaluate MODEL [--output eval.json] [--samples samples.jsonl | --from_samples "
                  "samples.jsonl] [--trust_remote_code] [--key value ...]")


def cmd_evaluate(argv: list[str]) -> int:
    """`llm-irl evaluate MODEL [--key value ...]`: keys are EvalConfig's, plus where to write the figures
    (--output) and the samples (--samples), or samples to score instead of sampling (--from_samples)."""
    from dataclasses import fields

    from llm_irl.evaluate import EvalConfig, eval_config, evaluate_saved_model, format_table, load_task
    from llm_irl.files import write_atomic
    from llm_irl.generation import load_jsonl
    from llm_irl.recipe import parse_bool, parse_flags

    help_text = EVALUATE_USAGE + "\n\n" + "\n".join(f"  --{f.name}: {f.metadata['help']}" for f in fields(EvalConfig))
    if (name := _positional(argv, EVALUATE_USAGE, help_text)) is None:
        return 0
    flags = parse_flags(argv[1:])
    output = flags.pop("output", "eval.json")
    samples_path = flags.pop("samples", None)
    reuse = flags.pop("from_samples", None)
    trust = parse_bool(flags.pop("trust_remote_code", False))
    config = eval_config(flags, source="command line")
    task = load_task(config)
    samples = load_jsonl(reuse) if reuse else None
    if samples is not None and len(samples) != len(task.prompts) * config.k * len(config.temperatures):
        raise UsageError(f"--from_samples {reuse}: {len(samples)} samples, but the settings ask for "
                         f"{len(task.prompts)} prompts x k={config.k} x {len(config.temperatures)} temperatures")
    result = evaluate_saved_model(name, task, config, trust_remote_code=trust, samples_path=samples_path,
                                  samples=samples)
    write_atomic(output, json.dumps(result, indent=1))
    print(format_table(result))
    print(f"wrote {os.path.abspath(output)}" + (f" and {samples_path}" if samples_path else ""))
    return 0


COMPARE_USAGE = ("usage: llm-irl compare RECIPE.yaml [--key value ...]   "
                 "(e.g. --seeds 1 --max_steps 50 --output_dir DIR)")


def cmd_compare(argv: list[str]) -> int:
    from llm_irl import compare
    from llm_irl.recipe import load_yaml, parse_flags

    if (path := _positional(argv, COMPARE_USAGE, compare.__doc__)) is None:
        return 0
    plan = compare.make_plan(load_yaml(path), parse_flags(argv[1:]), source=path)
    print(f"comparing {', '.join(plan.arms)} over seeds {plan.seeds}; writing to {plan.output_dir}", flush=True)
    results, paths = _compare_and_report(plan, os.path.basename(path))
    print(f"finished in {results['runtime_s'] / 60:.1f} min; wrote " + ", ".join(paths.values()))
    return 0


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
