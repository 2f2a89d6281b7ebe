"""Inverse soft-Q learning: the demonstrations' likelihood plus a TD-consistency regulariser.

Offline (`policy_mix=0`), every batch is demonstrations. Online (`policy_mix>0`), each batch is
topped up with completions the current policy samples for the batch's own prompts, refreshed
every `rollout_every` optimiser steps, and the loss is `online_iq_loss` over the mixture.

With `value_param="logits"` V is the logsumexp of the logits and the model needs nothing new.
With `value_param="head"` a scalar value head V_ψ rides on the last hidden state; it is a
submodule named `value_head`, so it trains, checkpoints and saves with the model's weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from llm_irl.batching import labelled_row, pad_batch, prompts_of
from llm_irl.chunked import chunked_mdp_and_entropy
from llm_irl.lm_head import lm_head_hidden
from llm_irl.losses import iq_objective, offset_objective, online_iq_objective, value_head_objective
from llm_irl.modeling import unwrap_model
from llm_irl.rollout import generate_rollouts
from llm_irl.seeding import derive_seed
from llm_irl.soft_q import IGNORE_INDEX, policy_entropy, token_mdp
from llm_irl.special_tokens import eos_token_ids
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


def num_policy_rows(num_demo_rows: int, policy_mix: float) -> int:
    """Policy rows to add to `num_demo_rows` demonstrations so they make `policy_mix` of the batch."""
    return max(1, math.ceil(num_demo_rows * policy_mix / (1.0 - policy_mix)))


class IQTrainer(DemoTrainer):
    """Inverse soft-Q learning over any `AutoModelForCausalLM` (logits are Q-values)."""

    config_class = IQConfig

    def prepare_model(self, model, args):
        self._policy_batch, self._policy_batch_step = None, None
        return attach_value_head(model) if args.value_param in ("head", "offset") else model

    def forward_mdp(self, model, input_ids, attention_mask, labels, *, want_hidden: bool = False):
        """(TokenMDP, policy entropy or None, last hidden state or None) of one forward pass.

        Through the chunked LM-head path when the config asks for it and the model allows it,
        else from the full logits.
        """
        a = self.args
        kw = dict(eos_token_id=eos_token_ids(self.processing_class, self.model), alpha=a.alpha)
        if a.loss_chunk_size is not None and (head := lm_head_hidden(model, input_ids, attention_mask)) is not None:
            mdp, entropy = chunked_mdp_and_entropy(head.hidden, head.weight, labels, lm_head_bias=head.bias,
                                                   chunk_size=a.loss_chunk_size, log_entropy=a.log_entropy, **kw)
            return mdp, entropy, head.hidden
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=want_hidden)
        mdp = token_mdp(out.logits, labels, **kw)
        entropy = policy_entropy(out.logits[:, :-1], mdp.mask, a.alpha) if a.log_entropy else None
        return mdp, entropy, out.hidden_states[-1] if want_hidden else None

    def demo_loss(self, model, inputs):
        a = self.args
        if a.policy_mix > 0 and model.training:
            return self._online_loss(model, inputs)
        use_head = a.value_param in ("head", "offset")
        mdp, entropy, hidden = self.forward_mdp(model, inputs["input_ids"], inputs["attention_mask"],
                                                inputs["labels"], want_hidden=use_head)
        if use_head:
            values = unwrap_model(model).value_head(hidden).squeeze(-1)
            objective = value_head_objective if a.value_param == "head" else offset_objective
            loss, stats = objective(mdp, values, gamma=a.gamma, td_weight=a.td_weight, terminal_td=a.terminal_td)
        else:
            loss, stats = iq_objective(mdp, gamma=a.gamma, td_weight=a.td_weight, terminal_td=a.terminal_td)
        return loss, _add_entropy(stats, entropy)

    def _online_loss(self, model, inputs):
        if self.args.value_param != "logits":
            raise ValueError("online IQ (policy_mix > 0) supports value_param='logits' only")
        policy = self._policy_samples(model, inputs)
        demo_rows = [{"input_ids": i[m.bool()].tolist(), "labels": l[m.bool()].tolist()}
                     for i, l, m in zip(inputs["input_ids"], inputs["labels"], inputs["attention_mask"])]
        batch = pad_batch(demo_rows + policy, self.processing_class.pad_token_id)
        batch = {k: v.to(inputs["input_ids"].device) for k, v in batch.items()}
        is_policy = torch.arange(len(batch["input_ids"]), device=batch["input_ids"].device) >= len(demo_rows)
        mdp, entropy, _ = self.forward_mdp(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
        loss, stats = online_iq_objective(mdp, is_policy, gamma=self.args.gamma, td_weight=self.args.td_weight,
                                          terminal_td=self.args.terminal_td)
        stats["sample_len"] = sum(len(r["input_ids"]) - r["labels"].count(IGNORE_INDEX) for r in policy) / len(policy)
        return loss, _add_entropy(stats, entropy)

    def _policy_samples(self, model, inputs) -> list[dict]:
        """Completions of the current policy for this batch's prompts, cached for `rollout_every` steps."""
        step = self.state.global_step
        if self._policy_batch is None or step - self._policy_batch_step >= self.args.rollout_every:
            prompts = prompts_of(inputs["input_ids"], inputs["labels"])
            n = num_policy_rows(len(prompts), self.args.policy_mix)
            prompts = [prompts[i % len(prompts)] for i in range(n)]
            rollouts = generate_rollouts(
                self.accelerator.unwrap_model(model), self.processing_class, prompts,
                max_new_tokens=self.args.max_new_tokens, temperature=self.args.temperature, top_p=self.args.top_p,
                # seeded by step and process, so a resumed run samples what it would have
                seed=derive_seed(self.args.seed, step, self.args.process_index),
            )
            self._policy_batch = [labelled_row(p, c) for p, c in zip(rollouts.prompt_ids, rollouts.completion_ids)]
            self._policy_batch_step = step
        return self._policy_batch


def _add_entropy(stats: dict, entropy) -> dict:
    if entropy is not None:
        stats["entropy"] = entropy
    return stats
