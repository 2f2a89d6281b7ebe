"""The trainers, one per file with its config, and `TRAINERS`: the name a recipe's `trainer:` key picks.

The adversarial trainer lives in its own wing, `llm_irl.adversarial`, with its losses and discriminator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from llm_irl.trainers.registry import TrainerRegistry

if TYPE_CHECKING:
    from llm_irl.adversarial import GAILConfig, GAILTrainer
    from llm_irl.trainers.configs import IQConfig, SFTConfig
    from llm_irl.trainers.iq import IQTrainer
    from llm_irl.trainers.sft import SFTTrainer
    from llm_irl.trainers.spin import SPINConfig, SPINTrainer

# "module:Class", imported on first use: listing the trainers and checking a recipe's keys load no torch
_BUILTIN = {
    "sft": ("llm_irl.trainers.sft:SFTTrainer", "llm_irl.trainers.configs:SFTConfig"),
    "iq": ("llm_irl.trainers.iq:IQTrainer", "llm_irl.trainers.configs:IQConfig"),
    "gail": ("llm_irl.adversarial.trainer:GAILTrainer", "llm_irl.adversarial.config:GAILConfig"),
    "spin": ("llm_irl.trainers.spin:SPINTrainer", "llm_irl.trainers.spin:SPINConfig"),
}
TRAINERS = TrainerRegistry(_BUILTIN)
_WHERE = dict(reversed(target.split(":")) for pair in _BUILTIN.values() for target in pair)  # class -> module

__all__ = ["GAILConfig", "GAILTrainer", "IQConfig", "IQTrainer", "SFTConfig", "SFTTrainer", "SPINConfig", "SPINTrainer",
           "TRAINERS"]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(importlib.import_module(_WHERE[name]), name)
    return value
