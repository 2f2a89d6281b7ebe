"""Offline inverse soft-Q learning: the demonstrations' likelihood plus a TD-consistency regulariser.

With `value_param="logits"` V is the logsumexp of the logits and the model needs nothing new.
With `value_param="head"` a scalar value head V_ψ rides on the last hidden state; it is a
submodule named `value_head`, so it trains, checkpoints and saves with the model's weights.
"""

from __future__ import annotations

import torch
from torch import nn

from llm_irl.losses import iq_loss, iq_value_head_loss
from llm_irl.trainers.base import DemoTrainer
from llm_irl.trainers.configs import IQConfig


def attach_value_head(model: nn.Module) -> nn.Module:
    """Give `model` a zero-initialised `value_head: Linear(hidden, 1)` if it has none yet."""
    if not hasattr(model, "value_head"):
        hidden = model.get_output_embeddings().weight.shape[1]
        head = nn.Linear(hidden, 1)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        model.value_head = head.to(device=model.device, dtype=model.dtype)
    return model


class IQTrainer(DemoTrainer):
    """Inverse soft-Q learning over any `AutoModelForCausalLM` (logits are Q-values)."""

    config_class = IQConfig

    def prepare_model(self, model, args):
        return attach_value_head(model) if args.value_param == "head" else model

    def demo_loss(self, model, inputs):
        a = self.args
        use_head = a.value_param == "head"
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], output_hidden_states=use_head)
        kw = dict(eos_token_id=self.eos_token_ids(), gamma=a.gamma, td_weight=a.td_weight, alpha=a.alpha,
                  log_entropy=a.log_entropy)
        if not use_head:
            return iq_loss(out.logits, inputs["labels"], **kw)
        values = _value_head(model)(out.hidden_states[-1]).squeeze(-1)
        return iq_value_head_loss(out.logits, values, inputs["labels"], **kw)


def _value_head(model) -> nn.Module:
    """The value head through any wrappers (DDP `.module`, PEFT `.base_model.model`)."""
    for _ in range(4):
        if hasattr(model, "value_head"):
            return model.value_head
        model = getattr(model, "module", None) or model.base_model.model
    raise AttributeError("model has no value_head")
