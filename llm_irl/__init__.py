"""llm_irl: fine-tune Hugging Face causal LMs on demonstrations by inverse RL; logits are Q-values."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llm_irl.losses import iq_loss, iq_value_head_loss, sft_loss
    from llm_irl.spin_objective import spin_loss
    from llm_irl.trainers import (TRAINERS, GAILConfig, GAILTrainer, IQConfig, IQTrainer, SFTConfig, SFTTrainer,
                                  SPINConfig, SPINTrainer)

__version__ = "0.1.0"
# imported on first use, so `import llm_irl.cli` (and `llm-irl --help`) loads no torch
_WHERE = {"iq_loss": "llm_irl.losses", "iq_value_head_loss": "llm_irl.losses", "sft_loss": "llm_irl.losses",
          "spin_loss": "llm_irl.spin_objective",
          **dict.fromkeys(["TRAINERS", "GAILConfig", "GAILTrainer", "IQConfig", "IQTrainer", "SFTConfig",
                           "SFTTrainer", "SPINConfig", "SPINTrainer"], "llm_irl.trainers")}

__all__ = ["GAILConfig", "GAILTrainer", "IQConfig", "IQTrainer", "SFTConfig", "SFTTrainer", "SPINConfig", "SPINTrainer",
           "TRAINERS", "iq_loss", "iq_value_head_loss", "sft_loss", "spin_loss"]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(importlib.import_module(_WHERE[name]), name)
    return value
