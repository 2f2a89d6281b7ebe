"""SFT baseline: token-mean cross-entropy (or GEM, `loss_type: gem`) on the demonstrations' action tokens."""

from __future__ import annotations

from llm_irl.batching import model_inputs
from llm_irl.chunked import chunked_sft_loss
from llm_irl.gem import chunked_gem_loss, gem_loss
from llm_irl.lm_head import lm_head_hidden
from llm_irl.losses import sft_loss
from llm_irl.trainers.base import DemoTrainer
from llm_irl.trainers.configs import SFTConfig


class SFTTrainer(DemoTrainer):
    """Behaviour cloning, `−E_demo[log π(a|s)]`, on the same data pipeline as the IRL trainers.

    `label_smoothing_factor` (a `TrainingArguments` field) is honoured as in `transformers.Trainer`;
    the other trainers refuse it rather than ignore it (their regulariser is their own objective).
    `loss_type: gem` replaces the cross-entropy with GEM (`llm_irl.gem`; β = `gem_beta`, h = `gem_h`)."""

    config_class = SFTConfig

    def demo_loss(self, model, inputs):
        a, labels = self.args, inputs["labels"]
        gem = a.loss_type == "gem"
        if a.loss_chunk_size is not None and (head := lm_head_hidden(model, **model_inputs(inputs))) is not None:
            if gem:
                return chunked_gem_loss(head.hidden, head.weight, labels, beta=a.gem_beta, h=a.gem_h,
                                        lm_head_bias=head.bias, chunk_size=a.loss_chunk_size,
                                        log_entropy=a.log_entropy)
            return chunked_sft_loss(head.hidden, head.weight, labels, lm_head_bias=head.bias,
                                    chunk_size=a.loss_chunk_size, log_entropy=a.log_entropy,
                                    label_smoothing=a.label_smoothing_factor)
        logits = model(**model_inputs(inputs)).logits
        if gem:
            return gem_loss(logits, labels, beta=a.gem_beta, h=a.gem_h, log_entropy=a.log_entropy)
        return sft_loss(logits, labels, log_entropy=a.log_entropy, label_smoothing=a.label_smoothing_factor)
