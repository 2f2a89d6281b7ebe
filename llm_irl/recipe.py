"""Recipes: YAML files whose keys are a trainer config's fields plus a few script keys.

    trainer: iq                 # sft | iq | ...
    model_name_or_path: builtin:tiny
    dataset: data/train.jsonl   # a file, a datasets name, or builtin:markov
    td_weight: 0.1              # any field of the trainer's config

Command-line flags (`--key value` or `--key=value`) override the YAML. Every value goes through
the config's own argument parser, so an unknown key or a badly typed value is refused by name;
the ones a flag cannot spell (null, an empty list) keep their YAML meaning, and `null`/`None`
(or an empty string) unsets a key that may be unset. `parse_config` is the one path from values
to config dataclasses: training recipes (`build`) and evaluation settings
(`llm_irl.evaluate.eval_config`) both go through it. TRL's names for the same keys (`ALIASES`)
are accepted, and `keys_help` lists every key a trainer takes.
"""

from __future__ import annotations

import difflib
import inspect
import json
import textwrap
import typing
from dataclasses import MISSING, dataclass, field, fields

import yaml

from llm_irl.errors import ConfigError

ALIASES = {"dataset_name": "dataset", "dtype": "model_dtype"}  # TRL's key -> ours
NULLS = ("null", "None")  # how YAML and Python spell "unset" in a flag; "none" stays a value (report_to: none)


@dataclass
class ScriptArguments:
    trainer: str = field(metadata={"help": "Which trainer: sft, iq, ..."})
    model_name_or_path: str = field(metadata={"help": "Hub name, local directory, or builtin:tiny."})
    dataset: str = field(metadata={"help": "Demonstrations: a .jsonl/.json/.csv/.parquet file, a datasets name, "
                                            "or builtin:markov. TRL's name dataset_name works too."})
    dataset_split: str = field(default="train", metadata={"help": "Split of a datasets name to train on."})
    dataset_config: str | None = field(default=None, metadata={"help": "Config name of a datasets name."})
    eval_dataset: str | None = field(default=None, metadata={"help": "Held-out demonstrations, same forms."})
    eval_split: str = field(default="test", metadata={"help": "Split of eval_dataset when it is a datasets name."})
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "Attention kernel given to from_pretrained: eager, sdpa, flash_attention_2, ...; "
                          "null: transformers' choice. Ignored for builtin models."},
    )
    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of every weight."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = lora_alpha / lora_r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Modules to adapt: names such as q_proj v_proj, or all-linear."},
    )

    def peft_config(self):
        """A `peft.LoraConfig` when use_peft is set, else None."""
        if not self.use_peft:
            return None
        from peft import LoraConfig

        targets = self.lora_target_modules
        return LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                          target_modules=targets[0] if targets == ["all-linear"] else targets, task_type="CAUSAL_LM")


def _parser(classes: tuple[type, ...]):
    from transformers import HfArgumentParser  # here, not at the top: checking keys and --help need no transformers

    class _Parser(HfArgumentParser):
        def error(self, message):  # argparse would print a usage screen of every TrainingArguments flag
            raise ConfigError(message)

    return _Parser(classes, allow_abbrev=False)


def _to_argv(values: dict) -> list[str]:
    """`--key value ...` for the parser: a list as its items, a dict as JSON (nulls and the lists a flag
    cannot spell never get here: see `_split_values`)."""
    argv = []
    for key, value in values.items():
        if isinstance(value, (list, tuple)):
            argv += [f"--{key}", *map(str, value)]
        elif isinstance(value, dict):
            argv += [f"--{key}", json.dumps(value)]
        else:
            argv += [f"--{key}", str(value)]
    return argv


def parse_bool(value) -> bool:
    """A recipe or flag value as a switch: YAML booleans as they are, "true"/"1"/"yes" (any case) as true."""
    return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")


def parse_flags(argv: list[str]) -> dict[str, str]:
    """`--key value`, `--key=value` and bare `--flag` (meaning true) into a dict of strings."""
    out, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise ConfigError(f"expected a --key, got {arg!r}")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value, i = argv[i + 1], i + 1
            else:
                value = "true"
        out[key.replace("-", "_")] = value
        i += 1
    return out


def load_yaml(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such recipe file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        raise ConfigError(f"{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        raise ConfigError(f"{path}: the recipe is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of keys to values")
    return data


def parse_config(classes: tuple[type, ...], recipe: dict, overrides: dict | None = None, source: str = "recipe"):
    """The dataclasses `classes` filled from YAML values and string overrides, each value through its
    field's own argument parser: an unknown key, a badly typed value or a failed range check
    (a config's `__post_init__`) is a one-line `ConfigError` naming the key."""
    overrides = overrides or {}
    merged = {**recipe, **overrides}
    where = {key: "command line" if key in overrides else source for key in merged}
    _refuse_unknown_keys({f.name for cls in classes for f in fields(cls) if f.init}, merged, where)
    parser = _parser(classes)
    try:
        spelled, given = _split_values(parser, classes, merged, where)
        parser.set_defaults(**given)
        return tuple(parser.parse_args_into_dataclasses(args=_to_argv(spelled), return_remaining_strings=False))
    except ConfigError:
        raise
    except ValueError as e:  # a config's own range check (__post_init__)
        raise ConfigError(str(e).strip().splitlines()[0]) from None


def _refuse_unknown_keys(known: set[str], merged: dict, where: dict[str, str]) -> None:
    for key in merged:
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            raise ConfigError(f"{where[key]}: unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))


def _split_values(parser, classes, merged: dict, where: dict[str, str]) -> tuple[dict, dict]:
    """(values spelled as flags, values given to the parser as they are).

    A flag cannot spell null, nor an empty list (a list flag wants at least one value), nor a list
    for a field that argparse reads as one value (`report_to: str | list[str]`): those are given
    as they are, so null means None and a list means that list, empty or not. A key that may be
    None is unset by null, "null", "None" or ""; "" for any other key is refused by name.
    """
    actions = {a.dest: a for a in parser._actions}
    # the annotations, not `Field.type`: HfArgumentParser rewrites that in place (`str | list[str]` -> str)
    hints = {name: hint for cls in classes for name, hint in typing.get_type_hints(cls).items()}
    takes_list = {name for name, hint in hints.items() if "list" in str(hint)}
    nullable = {name for name, hint in hints.items() if type(None) in typing.get_args(hint)}
    spelled, given = {}, {}
    for key, value in merged.items():
        several = isinstance(value, (list, tuple))
        if isinstance(value, str) and key in nullable and (value in NULLS or not value.strip()):
            value = None
        elif isinstance(value, str) and not value.strip():
            raise ConfigError(f"{where[key]}: {key!r} is empty; give it a value")
        if value is None:
            # TrainingArguments reads a None report_to as a reporter named None: unset means report nothing
            given[key] = [] if key == "report_to" else None
        elif several and key in takes_list and (not value or actions[key].nargs not in ("+", "*")):
            convert = actions[key].type if callable(actions[key].type) else (lambda v: v)
            given[key] = [convert(v) for v in value]
        elif several and not value:
            raise ConfigError(f"{where[key]}: {key!r} takes one value, not an empty list")
        else:
            spelled[key] = value
    return spelled, given


def resolve_aliases(values: dict, source: str) -> dict:
    """`values` with TRL's key names (`ALIASES`) renamed to ours; both names in one place is an error."""
    out = dict(values)
    for alias, key in ALIASES.items():
        if alias in out:
            if key in out:
                raise ConfigError(f"{source}: {alias!r} is TRL's name for {key!r}; give one of them, not both")
            out[key] = out.pop(alias)
    return out


def build(recipe: dict, overrides: dict[str, str], registry: dict, source: str = "recipe"):
    """(ScriptArguments, trainer config) from YAML values and string overrides (TRL's key names accepted)."""
    recipe, overrides = resolve_aliases(recipe, source), resolve_aliases(overrides, "command line")
    name = _trainer_name(recipe, overrides, registry, source)
    return parse_config((ScriptArguments, registry[name][1]), recipe, overrides, source)


def check_keys(recipe: dict, overrides: dict[str, str], registry, source: str = "recipe") -> None:
    """`build`'s first checks (a known trainer, no unknown key), with the same messages, from the key names
    alone (`TrainerRegistry.config_keys` reads them from source): a mistake is reported before torch loads."""
    recipe, overrides = resolve_aliases(recipe, source), resolve_aliases(overrides, "command line")
    name = _trainer_name(recipe, overrides, registry, source)
    merged = {**recipe, **overrides}
    where = {key: "command line" if key in overrides else source for key in merged}
    _refuse_unknown_keys({f.name for f in fields(ScriptArguments) if f.init} | set(registry.config_keys(name)),
                         merged, where)


def _trainer_name(recipe: dict, overrides: dict, registry, source: str) -> str:
    name = {**recipe, **overrides}.get("trainer")
    if name is None:
        raise ConfigError(f"{source}: missing key 'trainer' (one of {', '.join(registry)})")
    if name not in registry:
        raise ConfigError(f"unknown trainer {name!r}; choose one of {', '.join(registry)}")
    return name


def machine_defaults(env, cuda: bool) -> dict:
    """Training keys this machine decides when neither the recipe nor a flag does (`{**these, **recipe}`).

    Without CUDA: no pinned memory (torch warns on every CPU run that pinning needs an accelerator),
    and under torchrun (WORLD_SIZE > 1) DDP on the CPU with gloo; without them each process would
    train alone, into the same folder.
    """
    if cuda:
        return {}
    out = {"dataloader_pin_memory": False}
    if int(env.get("WORLD_SIZE", "1")) > 1:
        out.update(use_cpu=True, ddp_backend="gloo")
    return out


# ---------------------------------------------------------------- listing the keys (`llm-irl train --help`)


def own_fields(config_cls: type) -> list[str]:
    """The fields a trainer config declares itself (new ones and TrainingArguments' it redefines), in order."""
    from transformers import TrainingArguments

    init = {f.name for f in fields(config_cls) if f.init}
    declared = []  # the most derived class's fields first: IQConfig's, then SamplingConfig's, then SFTConfig's
    for klass in config_cls.__mro__:
        if klass is TrainingArguments:
            break
        declared += [name for name in inspect.get_annotations(klass) if name in init and name not in declared]
    return declared


def _default(f) -> str:
    if f.default is not MISSING:
        value = f.default
    elif f.default_factory is not MISSING:
        value = f.default_factory()
    else:
        return "required"
    value = getattr(value, "value", value)  # an Enum member as its YAML spelling
    return "default: " + (json.dumps(value) if value is None or isinstance(value, (bool, list, dict)) else str(value))


def _describe(classes_fields: list) -> list[str]:
    lines = []
    for f in classes_fields:
        lines.append(f"  --{f.name}  ({_default(f)})")
        text = " ".join(str(f.metadata.get("help", "")).split())
        lines += textwrap.wrap(text, 96, initial_indent="      ", subsequent_indent="      ")
    return lines


def keys_help(registry: dict, name: str) -> str:
    """Every key `llm-irl train` takes with trainer `name`: help text and default, the script keys and the
    trainer's own fields first, then those of `transformers.TrainingArguments`."""
    config_cls = registry[name][1]
    ours = own_fields(config_cls)
    by_name = {f.name: f for f in fields(config_cls) if f.init}
    aliases = ", ".join(f"{alias} for {key}" for alias, key in ALIASES.items())
    return "\n".join([
        f"Keys of `llm-irl train` with trainer {name!r}: in the recipe as `key: value`, or as --key value "
        "(flags override the recipe). null or \"\" unsets a key that may be unset.",
        f"TRL's names work too: {aliases}.",
        "", "What to train (script keys):", *_describe([f for f in fields(ScriptArguments) if f.init]),
        "", f"{config_cls.__name__} (llm_irl):", *_describe([by_name[n] for n in ours]),
        "", "TrainingArguments (transformers):", *_describe([f for n, f in by_name.items() if n not in ours]),
    ])


def trainers_help(registry: dict) -> str:
    """The trainers to choose from, and how to list one's keys."""
    width = max(map(len, registry))
    rows = [f"  {name:<{width}}  {registry.summary(name)}" for name in registry]
    return "\n".join(["trainers (the recipe key `trainer`, or --trainer):", *rows, "",
                      "every key of one trainer, with its help and default:",
                      f"  llm-irl train --trainer {next(iter(registry))} --help",
                      "  llm-irl train RECIPE.yaml --help        (the recipe's trainer)"])
