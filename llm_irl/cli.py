"""`llm-irl`: train, generate, evaluate, compare and the offline quickstart from the command line.

run as:
    llm-irl quickstart
    llm-irl train recipes/quickstart_iq.yaml --max_steps 50
    llm-irl train recipes/quickstart_iq.yaml --help      (every key of the recipe's trainer)
    llm-irl generate runs/quickstart/iq --prompt "topic1 kalo" --num_samples 4
    llm-irl evaluate runs/quickstart/runs/iq/seed0 --temperatures 0.7,1.0 --output eval.json
    llm-irl compare recipes/compare_quickstart.yaml --seeds 1
    llm-irl merge runs/all runs/seeds01 runs/seed2   (compare runs of one recipe on other seeds, one report)

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
import shlex
import sys

from llm_irl.errors import ConfigError, DataError, NonFiniteLossError, UsageError


TRAIN_USAGE = ("usage: llm-irl train RECIPE.yaml [--key value ...] [--resume | --resume_from_checkpoint DIR]\n"
               "       llm-irl train --trainer NAME --model_name_or_path M --dataset D [--key value ...]\n"
               "       llm-irl train [RECIPE.yaml] [--trainer NAME] --help   (every key, with its help and default)")


def cmd_train(argv: list[str]) -> int:
    # light imports only until the recipe's keys are checked: --help and a mistyped key answer before torch loads
    from llm_irl.recipe import (build, check_keys, keys_help, load_yaml, machine_defaults, parse_bool, parse_flags,
                                resolve_aliases, trainers_help)
    from llm_irl.trainers import TRAINERS

    command = shlex.join(["llm-irl", "train", *argv])
    wants_help = any(a in ("-h", "--help") for a in argv)
    argv = [a for a in argv if a not in ("-h", "--help")]
    path = argv[0] if argv and not argv[0].startswith("-") else None
    flags = parse_flags(argv[1:] if path else argv)
    path = path or flags.pop("config", None)  # TRL's spelling: --config recipe.yaml
    recipe = load_yaml(path) if path else {}
    if wants_help:
        name = {**resolve_aliases(recipe, path or "recipe"), **resolve_aliases(flags, "command line")}.get("trainer")
        if name is not None and name not in TRAINERS:
            raise UsageError(f"unknown trainer {name!r}; choose one of {', '.join(TRAINERS)}")
        print(TRAIN_USAGE + "\n\n" + (keys_help(TRAINERS, name) if name else trainers_help(TRAINERS)))
        return 0
    if not recipe and "trainer" not in flags:
        raise UsageError("usage: llm-irl train RECIPE.yaml [--key value ...], or --trainer NAME --key value ... "
                         "without a recipe; llm-irl train --help lists the trainers and their keys")
    resume = parse_bool(flags.pop("resume", False))
    check_keys(recipe, flags, TRAINERS, source=path or "command line")

    import torch

    from llm_irl.model_card import write_model_card
    from llm_irl.modeling import load_model, load_tokenizer
    from llm_irl.reliability import last_complete_checkpoint

    recipe = {**machine_defaults(os.environ, torch.cuda.is_available()), **recipe}
    script, config = build(recipe, flags, TRAINERS, source=path or "command line")
    checkpoint = _checkpoint(resume, config)
    # rows first, so a bad row is reported before any model loads
    train_rows = _source(script.dataset, script.dataset_split, script.dataset_config)
    eval_rows = _source(script.eval_dataset, script.eval_split, script.dataset_config)
    # loaded here rather than by the trainer so that from_pretrained gets attn_implementation
    tokenizer = load_tokenizer(script.model_name_or_path, trust_remote_code=config.trust_remote_code)
    model = load_model(script.model_name_or_path, dtype=config.model_dtype, trust_remote_code=config.trust_remote_code,
                       seed=config.seed, attn_implementation=script.attn_implementation)
    trainer = TRAINERS[script.trainer][0](model=model, args=config, train_dataset=train_rows, eval_dataset=eval_rows,
                                          processing_class=tokenizer, peft_config=script.peft_config())
    trainer.train(resume_from_checkpoint=checkpoint)
    if (signum := trainer.graceful_stop.received) is not None:
        saved = last_complete_checkpoint(config.output_dir)
        print(f"llm-irl train: stopped by signal {signum}; checkpoint saved to {saved}; continue with --resume",
              file=sys.stderr)
        return 128 + signum
    trainer.save_model()
    trainer.save_state()
    metrics = trainer.evaluate() if trainer.eval_dataset is not None else None  # every process takes part
    if trainer.is_world_process_zero():  # one report under torchrun, not one per process
        write_model_card(config.output_dir, script, config, trainer.state.log_history, command=command)
        if metrics is not None:
            print(json.dumps(metrics, indent=1))
        print(f"saved model, tokenizer, trainer_state.json and a model card (README.md) to {config.output_dir}")
    return 0


def _checkpoint(resume: bool, config) -> str | None:
    """What training continues from: the newest complete checkpoint (--resume, or TRL's
    --resume_from_checkpoint true), the folder --resume_from_checkpoint names, or nothing."""
    from llm_irl.reliability import last_complete_checkpoint

    given = config.resume_from_checkpoint
    if given is not None and resume:
        raise UsageError("give --resume (the newest complete checkpoint) or --resume_from_checkpoint DIR, not both")
    if given is not None and not os.path.isdir(given):
        if given.lower() not in ("true", "1", "yes"):
            raise UsageError(f"--resume_from_checkpoint {given}: no such checkpoint folder")
        resume = True
    if resume:
        if (newest := last_complete_checkpoint(config.output_dir)) is None:
            raise UsageError(f"--resume: no complete checkpoint-* folder in {config.output_dir}")
        return newest
    if given is not None and not os.path.isfile(os.path.join(given, "trainer_state.json")):
        raise UsageError(f"--resume_from_checkpoint {given}: not a checkpoint folder (no trainer_state.json)")
    return given


def _source(name, split, config_name):
    """Read rows here, before any model loads, so the recipe's split is honoured and errors come early."""
    from llm_irl.data import read_rows, validate_rows

    if name is None:
        return None
    rows = read_rows(name, split, config_name)
    validate_rows(rows)
    return rows


def cmd_generate(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="llm-irl generate", description="Sample completions from a model.")
    p.add_argument("model", help="model directory, hub name, or builtin:tiny")
    p.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    p.add_argument("--prompts", help="a file of {\"prompt\": ...}, {\"messages\": [...]} or conversational "
                                     "prompt/completion rows (a conversation continues after its last assistant turn "
                                     "is cut off)")
    p.add_argument("--num_samples", type=int, default=1)
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy decoding")
    p.add_argument("--top_p", type=float, default=1.0)
    p.add_argument("--max_new_tokens", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trust_remote_code", action="store_true")
    a = p.parse_args(argv)

    import torch  # after parsing, so --help and a bad flag answer at once

    from llm_irl.generation import generate_samples, printable_text
    from llm_irl.modeling import load_model, load_tokenizer
    from llm_irl.prompts import prompt_and_reference

    prompts = list(a.prompt)
    if a.prompts:
        from llm_irl.data import read_rows

        prompts += [prompt_and_reference(row)[0] for row in read_rows(a.prompts)]
    if not prompts:
        raise UsageError("give at least one --prompt or a --prompts file")
    tok = load_tokenizer(a.model, trust_remote_code=a.trust_remote_code)
    model = load_model(a.model, trust_remote_code=a.trust_remote_code)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    samples = generate_samples(model, tok, prompts, k=a.num_samples, temperatures=[a.temperature], top_p=a.top_p,
                               max_new_tokens=a.max_new_tokens, seed=a.seed, progress=False)
    for s in samples:  # printed without special tokens; evaluation's samples keep them
        print(json.dumps({"prompt": s.prompt, "completion": printable_text(tok, s.completion_ids, s.terminated)}))
    return 0


def _positional(argv: list[str], usage: str, help_text: str) -> str | None:
    """The command's one positional argument (argv[0]); None once -h/--help has printed `help_text`."""
    if argv and argv[0] in ("-h", "--help"):
        print(help_text)
        return None
    if not argv or argv[0].startswith("-"):
        raise UsageError(usage)
    return argv[0]


def _compare_and_report(plan, title: str, *, progress: bool = True, brief: bool = False) -> tuple[dict, dict[str, str]]:
    """Train and evaluate every arm of `plan`, write the report, print its console table and verdicts (with
    `brief`, only the headline verdicts per arm: the quickstart's newcomer reads those first)."""
    from llm_irl.compare import run_compare
    from llm_irl.report import console_summary, headline, write_report

    results = run_compare(plan, progress=progress, log=lambda line: print(line, flush=True))
    paths = write_report(results, plan.output_dir, title=title)
    print("\n".join(headline(results)) if brief else console_summary(results))
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
    results, paths = _compare_and_report(plan, "quickstart", progress=False, brief=True)
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
    output = flags.pop("output", None)  # figures are printed; a file only when asked for
    samples_path = flags.pop("samples", None)
    reuse = flags.pop("from_samples", None)
    trust = parse_bool(flags.pop("trust_remote_code", False))
    config = eval_config(flags, source="command line")
    task = load_task(config, trust_remote_code=trust)
    samples = load_jsonl(reuse) if reuse else None
    if samples is not None and len(samples) != len(task.prompts) * config.k * len(config.temperatures):
        raise UsageError(f"--from_samples {reuse}: {len(samples)} samples, but the settings ask for "
                         f"{len(task.prompts)} prompts x k={config.k} x {len(config.temperatures)} temperatures")
    result = evaluate_saved_model(name, task, config, trust_remote_code=trust, samples_path=samples_path,
                                  samples=samples)
    if output:
        write_atomic(output, json.dumps(result, indent=1))
    print(format_table(result))
    print(f"wrote {os.path.abspath(output)}" if output else "figures not saved (add --output eval.json to keep them)",
          end=f"; samples in {samples_path}\n" if samples_path else "\n")
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


MERGE_USAGE = "usage: llm-irl merge OUTPUT_DIR COMPARE_DIR COMPARE_DIR [...]"


def cmd_merge(argv: list[str]) -> int:
    """One report from `llm-irl compare` runs of the same recipe on different seeds."""
    if argv and argv[0] in ("-h", "--help"):
        print(f"{MERGE_USAGE}\n\n{cmd_merge.__doc__}")
        return 0
    if len(argv) < 3:
        raise UsageError(f"need an output folder and at least two compare folders; {MERGE_USAGE}")

    from llm_irl.compare import merge_seed_results
    from llm_irl.report import console_summary, write_report

    out, sources = argv[0], argv[1:]
    parts = []
    for source in sources:
        path = os.path.join(source, "results.json")
        try:
            with open(path, encoding="utf-8") as f:
                parts.append(json.load(f))
        except FileNotFoundError:
            raise UsageError(f"{path}: not found (is {source} a compare output folder?)") from None
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    merged = merge_seed_results(parts, sources)
    paths = write_report(merged, out, title=f"merged from {', '.join(sources)}")
    print(console_summary(merged))
    print(f"merged seeds {merged['seeds']}; wrote " + ", ".join(paths.values()))
    return 0


COMMANDS = {"train": cmd_train, "generate": cmd_generate, "quickstart": cmd_quickstart, "evaluate": cmd_evaluate,
            "compare": cmd_compare, "merge": cmd_merge}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(f"usage: llm-irl {{{','.join(COMMANDS)}}} ...\n\n{__doc__}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("llm_irl").setLevel(logging.INFO)  # the start-of-run line (llm_irl.run_setup)
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
