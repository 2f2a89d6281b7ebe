"""The trainers, one per file with its config, and `TRAINERS`: the name a recipe's `trainer:` key picks.

The adversarial trainer lives in its own wing, `llm_irl.adversarial`, with its losses and discriminator.
"""

from llm_irl.adversarial import GAILConfig, GAILTrainer
from llm_irl.trainers.configs import IQConfig, SFTConfig
from llm_irl.trainers.iq import IQTrainer
from llm_irl.trainers.sft import SFTTrainer

TRAINERS = {"sft": (SFTTrainer, SFTConfig), "iq": (IQTrainer, IQConfig), "gail": (GAILTrainer, GAILConfig)}

__all__ = ["GAILConfig", "GAILTrainer", "IQConfig", "IQTrainer", "SFTConfig", "SFTTrainer", "TRAINERS"]
