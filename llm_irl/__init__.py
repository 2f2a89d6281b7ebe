"""llm_irl: fine-tune Hugging Face causal LMs on demonstrations by inverse RL; logits are Q-values."""

from llm_irl.losses import iq_loss, iq_value_head_loss, sft_loss
from llm_irl.trainers import TRAINERS, GAILConfig, GAILTrainer, IQConfig, IQTrainer, SFTConfig, SFTTrainer

__version__ = "0.1.0"
__all__ = ["GAILConfig", "GAILTrainer", "IQConfig", "IQTrainer", "SFTConfig", "SFTTrainer", "TRAINERS", "iq_loss",
           "iq_value_head_loss", "sft_loss"]
