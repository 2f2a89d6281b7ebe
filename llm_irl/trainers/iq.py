"""Inverse soft-Q learning: the demonstrations' likelihood plus a TD-consistency regulariser.

Offline (`policy_mix=0`), every batch is demonstrations. Online (`policy_mix>0`), batches are
topped up with completions the current policy samples for the batch's own prompts, and the loss is
`online_iq_objective` over the mixture. With `rollout_every = k > 1` one batched sampling call
draws the rows of the next k optimiser steps (the first step's for its own prompts, the rest for
the same prompts in turn), and each row is trained on once: up to k − 1 steps off-policy, never reused.
Policy rows are counted over the run, so they make `policy_mix` of all rows at any batch size (a
batch may get none), and samples are drawn at `temperature` relative to π = softmax(Q/α), i.e. the
logits divided by α·temperature (`llm_irl.rollout`). The model records α in its config
(`modeling.record_policy_temperature`), so whatever samples or scores it later does the same.
The rows owed and drawn ahead are one `RolloutPool`, saved in each checkpoint: a run resumed
mid-period trains on the very rows the uninterrupted run would have.

With `value_param="logits"` V is the logsumexp of the logits and the model needs nothing new.
With `value_param="head"` or `"offset"` a linear head on the last hidden state gives one scalar per
state: the value V_ψ(s), or the offset b(s) of Q = logits + b(s). It is a submodule named
`state_head` (called `value_head` before it held offsets too; checkpoints that call it so still
load), so it trains, checkpoints and saves with the model's weights.
"""

from __future__ import annotations

import os

import torch
from transformers import TrainerCallback

from llm_irl.batching import batch_prompts, labelled_row, model_inputs, pad_batch, unpad_rows
from llm_irl.chunked import chunked_mdp_and_entropy
from llm_irl.defaults import CENTRED
from llm_irl.lm_head import lm_head_hidden
from llm_irl.modeling import unwrap_model
from llm_irl.phase_timer import ROLLOUT, UPDATE
from llm_irl.losses import iq_objective, offset_mdp, online_iq_objective, value_head_mdp
from llm_irl.rollout import generate_rollouts
from llm_irl.seeding import derive_seed
from llm_irl.soft_q import policy_entropy, token_mdp
from llm_irl.special_tokens import eos_token_ids
from llm_irl.state_head import attach_state_head, record_absorbing_value, record_value_param, state_values
from llm_irl.trainers.base import DemoTrainer
from llm_irl.trainers.configs import IQConfig
from llm_irl.trainers.reward_centre import FILE as CENTRE_FILE
from llm_irl.trainers.reward_centre import RewardCentre
from llm_irl.trainers.rollout_pool import RolloutPool, file_name


class IQTrainer(DemoTrainer):
    """Inverse soft-Q learning over any `AutoModelForCausalLM` or `AutoModelForSeq2SeqLM` (logits are Q-values)."""

    config_class = IQConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.args.terminal_td in CENTRED:
            self.add_callback(_EndStepCentre(self))

    def prepare_model(self, model, args):
        # online IQ: the policy rows owed and drawn ahead (checkpointed), and the demo share of the
        # current step's action tokens (see _online_loss); centred χ²: the step's shared centre
        self.rollout_pool = RolloutPool(args.policy_mix, args.rollout_every)
        self._demo_token_share = None
        self.reward_centre = RewardCentre()
        if args.value_param not in ("head", "offset"):
            return model
        record_value_param(model, args.value_param)  # so load_model gives a saved model its head back
        return attach_state_head(model)

    def _centre(self) -> float | tuple[float, float] | None:
        """The centre every micro-batch of this step passes to the χ² term: c, (c, c_stop) under
        `centred_absorbing`, None when not centred."""
        if self.args.terminal_td == "centred_absorbing":
            return self.reward_centre.value, self.reward_centre.stop_value
        return self.reward_centre.value if self.args.terminal_td == "centred" else None

    def policy_alpha(self, args) -> float:
        return args.alpha

    def timed_phases(self) -> tuple[str, ...]:
        return (ROLLOUT, UPDATE) if self.args.policy_mix > 0 else ()

    def forward_mdp(self, model, inputs, *, want_state: bool = False):
        """(TokenMDP, policy entropy or None, the state head's values [B, T] or None) of one forward pass.

        Through the chunked LM-head path when the config asks for it and the model allows it,
        else from the full logits. The state head runs inside the model's forward (`llm_irl.state_head`).
        """
        a = self.args
        kw = dict(eos_token_id=eos_token_ids(self.processing_class, self.model), alpha=a.alpha)
        labels = inputs["labels"]
        if a.loss_chunk_size is not None and (head := lm_head_hidden(model, **model_inputs(inputs))) is not None:
            mdp, entropy = chunked_mdp_and_entropy(head.hidden, head.weight, labels, lm_head_bias=head.bias,
                                                   chunk_size=a.loss_chunk_size, log_entropy=a.log_entropy, **kw)
            return mdp, entropy, head.state_values
        out = model(**model_inputs(inputs), output_hidden_states=want_state)
        mdp = token_mdp(out.logits, labels, **kw)
        entropy = policy_entropy(out.logits[:, :-1], mdp.mask, a.alpha) if a.log_entropy else None
        return mdp, entropy, state_values(unwrap_model(model)) if want_state else None

    def demo_loss(self, model, inputs):
        a = self.args
        if a.policy_mix > 0 and model.training:
            return self._online_loss(model, inputs)
        mdp, entropy, per_state = self.forward_mdp(model, inputs, want_state=a.value_param != "logits")
        loss, stats = iq_objective(self._with_state_head(mdp, per_state), gamma=a.gamma, td_weight=a.td_weight,
                                   terminal_td=a.terminal_td, reward_centre=self._centre(), td_huber=a.td_huber)
        stats = self.reward_centre.observe(stats, training=model.training)
        return loss, _add_entropy(stats, entropy)

    def _with_state_head(self, mdp, per_state):
        """`mdp` as the objective reads it: as is (V from the logits), with V = V_ψ(s) ("head": the
        `value_head_objective` form) or with Q and V shifted by b(s) ("offset": `offset_objective`)."""
        if self.args.value_param == "logits":
            return mdp
        return value_head_mdp(mdp, per_state) if self.args.value_param == "head" else offset_mdp(mdp, per_state)

    # ------------------------------------------------------------------ online IQ

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """The optimiser step's micro-batches; online, each one topped up with policy samples.

        Mixing here, before Trainer counts the step's action tokens, makes `num_items_in_batch` the
        mixture's count: the value and χ² terms of the online loss are means over the mixture.
        """
        batches, num_demo_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        if self.args.policy_mix == 0 or not batches:
            return batches, num_demo_items
        batches = self._mix_policy_rows(batches)
        num_items = self._get_num_items_in_batch(batches, device)
        self._demo_token_share = (None if num_items is None or num_demo_items is None
                                  else _scalar(num_demo_items) / _scalar(num_items))
        return batches, num_items

    def _online_loss(self, model, inputs):
        a = self.args
        if "is_policy" not in inputs:  # compute_loss called outside Trainer's loop: mix this batch alone
            self._demo_token_share = None
            device = inputs["input_ids"].device
            inputs = {k: v.to(device) for k, v in self._mix_policy_rows([inputs])[0].items()}
        is_policy = inputs["is_policy"]
        mdp, entropy, per_state = self.forward_mdp(model, inputs, want_state=a.value_param != "logits")
        mdp = self._with_state_head(mdp, per_state)
        # compute_loss scales this micro-batch's loss by its share of the step's (mixture) action
        # tokens, right for the value and χ² terms; the reward term is a mean over demo tokens and
        # must weigh by its share of those instead
        loss, stats = online_iq_objective(mdp, is_policy, gamma=a.gamma, td_weight=a.td_weight,
                                          terminal_td=a.terminal_td, policy_terminal_value=a.policy_terminal_value,
                                          reward_scale=self._reward_term_reweight(mdp, is_policy),
                                          reward_centre=self._centre(), td_huber=a.td_huber)
        stats = self.reward_centre.observe(stats, training=model.training)
        policy = is_policy[:, None] & mdp.mask
        if policy.any():
            stats["sample_len"] = policy.sum() / is_policy.sum()
        else:  # a batch without policy rows (they come every few batches at small policy_mix·batch)
            stats.pop("reward_policy", None)
        return loss, _add_entropy(stats, entropy)

    def _reward_term_reweight(self, mdp, is_policy) -> float:
        """(this batch's demo share of its tokens) / (the whole step's), over every process: 1 when they agree."""
        if self._demo_token_share is None:
            return 1.0
        demo, total = int((mdp.mask & ~is_policy[:, None]).sum()), int(mdp.mask.sum())
        if total == 0 or self._demo_token_share == 0:
            return 1.0
        return (demo / total) / self._demo_token_share

    def _mix_policy_rows(self, batches: list[dict]) -> list[dict]:
        """Each demo batch with the policy rows it is owed appended, and `is_policy` [B] marking them."""
        due = [self.rollout_pool.owe(len(batch["input_ids"])) for batch in batches]
        rows = self._policy_rows(batches, due)
        mixed, start = [], 0
        for batch, n in zip(batches, due):
            demo = unpad_rows(batch)
            out = pad_batch(demo + rows[start: start + n], self.processing_class.pad_token_id)
            out["is_policy"] = torch.arange(len(demo) + n) >= len(demo)
            mixed.append(out)
            start += n
        return mixed

    def _policy_rows(self, batches: list[dict], due: list[int]) -> list[dict]:
        """`sum(due)` completions of the current policy, for the batches' own prompts.

        One sampling call draws the rows owed over the next `rollout_every` optimiser steps (at this
        step's demo rows per step, capped at the steps left); later steps take the unused rows in
        turn (`RolloutPool.take`). With rollout_every = 1 it is one call per step for its rows.
        """
        needed, step, every = sum(due), self.state.global_step, self.args.rollout_every

        def refill() -> list[dict]:
            own = [batch_prompts(batch) for batch in batches]
            prompts = [p[i % len(p)] for p, n in zip(own, due) for i in range(n)]
            steps = every if self.state.max_steps <= 0 else max(1, min(every, self.state.max_steps - step))
            if steps > 1:  # the rows the next steps will owe, for this step's prompts in turn
                step_rows = sum(len(batch["input_ids"]) for batch in batches)
                later = self.rollout_pool.owed_later((steps - 1) * step_rows)
                step_prompts = [p for batch_prompts in own for p in batch_prompts]
                prompts += [step_prompts[(needed + i) % len(step_prompts)] for i in range(later)]
            with self.timed(ROLLOUT):
                rollouts = generate_rollouts(
                    self.accelerator.unwrap_model(self.model_wrapped), self.processing_class, prompts,
                    max_new_tokens=self.args.max_new_tokens, temperature=self.args.temperature, top_p=self.args.top_p,
                    # one generate call for the period's rows: decode's per-token overhead is paid once, not per 32
                    batch_size=max(1, len(prompts)),
                    # seeded by step and process, so a resumed run draws what the uninterrupted one drew
                    seed=derive_seed(self.args.seed, step, self.args.process_index),
                )
            return [labelled_row(p, c, self.decoder_prefix) for p, c in zip(rollouts.prompt_ids, rollouts.completion_ids)]

        return self.rollout_pool.take(step, needed, refill)

    # ------------------------------------------------------------------ saving and resuming

    def _pool_file(self, checkpoint: str) -> str:
        return os.path.join(checkpoint, file_name(self.args.process_index, self.args.world_size))

    def _save(self, output_dir=None, state_dict=None):
        # the absorbing state's value the objective learned goes into the config, for reading rewards back
        if self.args.terminal_td == "centred_absorbing":
            centre = self.reward_centre
            record_absorbing_value(unwrap_model(self.model), (centre.stop_value - centre.value) / self.args.gamma)
        super()._save(output_dir, state_dict)

    def _save_checkpoint(self, model, trial):
        # written before Trainer's own files, so a checkpoint marked complete holds it; every process
        # writes its own pool (each samples for its own batches)
        path = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        if self.args.policy_mix > 0:
            os.makedirs(path, exist_ok=True)
            self.rollout_pool.save(self._pool_file(path))
        if self.args.terminal_td in CENTRED and self.args.should_save:  # the same on every process
            os.makedirs(path, exist_ok=True)
            self.reward_centre.save(os.path.join(path, CENTRE_FILE))
        super()._save_checkpoint(model, trial)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Resuming restores the rollout pool too, so a run resumed mid-period trains on the rows it drew,
        and the χ² term's centre, so it centres as the uninterrupted run did."""
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        if self.args.policy_mix > 0:
            self.rollout_pool.load(self._pool_file(resume_from_checkpoint))
        if self.args.terminal_td in CENTRED:
            self.reward_centre.load(os.path.join(resume_from_checkpoint, CENTRE_FILE))

    def sum_over_processes(self, values: list[float]) -> list[float]:
        if self.accelerator.num_processes == 1:
            return values
        totals = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        return self.accelerator.reduce(totals, reduction="sum").tolist()


class _EndStepCentre(TrainerCallback):
    """Moves the χ² term's centre to the mean of the step that just ended (`RewardCentre.end_step`)."""

    def __init__(self, trainer: IQTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer.reward_centre.end_step(self.trainer.sum_over_processes)


def _scalar(x) -> float:
    """A token count Trainer hands over (int, 0-d tensor, or one repeated per DataParallel GPU) as a float."""
    return float(torch.as_tensor(x).flatten()[0])


def _add_entropy(stats: dict, entropy) -> dict:
    if entropy is not None:
        stats["entropy"] = entropy
    return stats
