from llm_irl.trainers.configs import IQConfig, SFTConfig
from llm_irl.trainers.iq import IQTrainer
from llm_irl.trainers.sft import SFTTrainer

TRAINERS = {"sft": (SFTTrainer, SFTConfig), "iq": (IQTrainer, IQConfig)}

__all__ = ["IQConfig", "IQTrainer", "SFTConfig", "SFTTrainer", "TRAINERS"]
