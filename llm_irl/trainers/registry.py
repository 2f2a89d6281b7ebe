"""`TrainerRegistry`: the mapping behind `TRAINERS`, name -> (trainer class, config class), importing lazily.

A built-in trainer is registered as two `"module:Class"` strings and imported on first lookup, so
listing the names (`", ".join(TRAINERS)`, `name in TRAINERS`) costs nothing, and `config_keys` /
`summary` read a config's key names and docstring from its source (`llm_irl.dataclass_source`)
without importing torch or transformers: `llm-irl train --help` and a recipe's unknown key are
answered in a fraction of a second. Register your own as in a dict: `TRAINERS["mine"] = (MyTrainer, MyConfig)`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import MutableMapping
from dataclasses import fields

from llm_irl import dataclass_source


def _load(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class TrainerRegistry(MutableMapping):
    def __init__(self, entries: dict[str, tuple]):
        self._entries: dict[str, tuple] = {}
        self.update(entries)

    def __getitem__(self, name: str) -> tuple[type, type]:
        entry = self._entries[name]
        if isinstance(entry[0], str) or isinstance(entry[1], str):
            entry = self._entries[name] = tuple(_load(e) if isinstance(e, str) else e for e in entry)
        return entry

    def __setitem__(self, name: str, value: tuple) -> None:
        trainer, config = value  # (class or "module:Class", class or "module:Class")
        self._entries[name] = (trainer, config)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __contains__(self, name) -> bool:  # Mapping's would look the entry up, importing it
        return name in self._entries

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"TrainerRegistry({list(self._entries)})"

    def _config(self, name: str):
        """The config class if it is imported already, else its `"module:Class"`."""
        config = self._entries[name][1]
        if isinstance(config, str):
            module, _, attr = config.partition(":")
            imported = getattr(sys.modules.get(module), attr, None)
            return imported if imported is not None else config
        return config

    def config_keys(self, name: str) -> list[str]:
        """The config's init field names (what a recipe may set), without importing it when it is not yet."""
        config = self._config(name)
        if isinstance(config, str):
            try:
                return dataclass_source.init_fields(config)
            except Exception:  # whatever the reader cannot follow, the import answers (slowly, but right)
                config = self[name][1]
        return [f.name for f in fields(config) if f.init]

    def summary(self, name: str) -> str:
        """The first line of the config's docstring: what the trainer does."""
        config, doc = self._config(name), None
        if isinstance(config, str):
            try:
                doc = dataclass_source.docstring(config)
            except Exception:  # as in config_keys
                pass
        if doc is None:  # imported already, unreadable, or none written (dataclass then makes one up)
            doc = self[name][1].__doc__
        return (doc or "").strip().splitlines()[0]
