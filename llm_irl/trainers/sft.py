"""SFT baseline: token-mean cross-entropy on the demonstrations' action tokens."""

from __future__ import annotations

from llm_irl.losses import sft_loss
from llm_irl.trainers.base import DemoTrainer
from llm_irl.trainers.configs import SFTConfig


class SFTTrainer(DemoTrainer):
    """Behaviour cloning, `−E_demo[log π(a|s)]`, on the same data pipeline as the IRL trainers."""

    config_class = SFTConfig

    def demo_loss(self, model, inputs):
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        return sft_loss(logits, inputs["labels"], log_entropy=self.args.log_entropy)
