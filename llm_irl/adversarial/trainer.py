"""Adversarial IRL for language models: GAIL, AIRL and max-margin in one trainer (docs/design.md, "The
adversarial family").

A discriminator (``llm_irl.adversarial.discriminator``) tells demonstrations from policy samples and
the policy is trained by PPO on the reward it implies. Optimiser steps, in order:

0. warm start: the first ``sft_steps`` steps are plain SFT; the policy at their end becomes the KL
   reference and the discriminator's starting point (or give an SFT checkpoint and sft_steps = 0);
1. rollout (``train_gen`` side): ``samples_per_prompt`` completions for each prompt of the step's demo
   batch, dropout off, with the log-probs of the distribution sampled (PPO's old log-probs, at
   ``temperature`` and ``top_p``), log π and log π_ref;
2. ``train_disc``: the discriminator is scored on fresh demos against these new samples before it
   sees them (held-out statistics), then takes ``disc_steps`` updates, each on a fresh demo batch
   against samples drawn from a replay buffer of recent rollouts, then is scored on its last
   training batch (training statistics);
3. rewards of the new samples from the updated discriminator, minus a missing-EOS penalty and the
   per-token KL penalty ``β·KL_t`` to the reference; returns-to-go minus a baseline (batch mean, or
   RLOO's per-prompt leave-one-out mean), whitened: the advantages;
4. PPO: the rollout batch serves the next ``ppo_epochs × ppo_minibatches`` optimiser steps, one
   shuffled minibatch each, ``L = pg_loss + mle_weight · NLL(step's demos)``, the new log-probs taken
   from the same sampling distribution of the current logits; from the second step on
   the policy has moved, the ratio departs from 1 and the clip acts. Then back to 1.

The Trainer does the backward and the optimiser step, so scheduling, gradient clipping and
accumulation (a rollout queue per micro-batch), mixed precision and checkpoints are its own. A
checkpoint also holds the discriminator, its AdamW state, the replay buffer, the demo stream's
position, the pending PPO minibatches and (after an SFT phase) the reference, so resuming is exact.
Run notes and measurements: benchmarks/gail_notes.md.
"""

from __future__ import annotations

import copy
import os

import torch

from llm_irl.adversarial.buffers import DemoStream, ReplayBuffer, to_device, trim_padding
from llm_irl.adversarial.config import GAILConfig
from llm_irl.adversarial.discriminator import Discriminator
from llm_irl.adversarial.losses import policy_advantages, ppo_clip_loss, reinforce_loss
from llm_irl.adversarial.sampling_logprobs import sampling_logprobs
from llm_irl.batching import batch_prompts, model_inputs, pad
from llm_irl.losses import sft_loss
from llm_irl.modeling import disable_dropout, eval_mode, is_peft, policy_temperature, unwrap_model
from llm_irl.phase_timer import DISC, DISC_EVAL, ROLLOUT, SCORING, UPDATE
from llm_irl.rollout import generate_rollouts
from llm_irl.seeding import derive_seed
from llm_irl.seq2seq import DECODER_KEYS
from llm_irl.soft_q import action_mask, policy_entropy, token_logprobs
from llm_irl.trainers.base import DemoTrainer

DISCRIMINATOR_DIR = "discriminator"
REFERENCE_DIR = "reference"
STATE_FILE = "gail_state.pt"
SAMPLE_KEYS = ("input_ids", "attention_mask", *DECODER_KEYS, "labels", "old_logprobs", "advantages")

__all__ = ["GAILConfig", "GAILTrainer"]


# ----------------------------------------------------------------------------- the trainer


class GAILTrainer(DemoTrainer):
    """GAIL / AIRL / max-margin adversarial IRL over any ``AutoModelForCausalLM`` or ``AutoModelForSeq2SeqLM``.

    Attributes beyond ``Trainer``'s: ``discriminator`` (a ``Discriminator``), ``disc_optimizer`` (its
    AdamW), ``ref_model`` (the frozen reference, or None: none needed, or PEFT's adapters-off base),
    ``demo_stream`` and ``replay`` (the discriminator's data).
    """

    config_class = GAILConfig
    # the loss mixes a policy-gradient term over samples with the demos' NLL: not a demo token-mean,
    # so Trainer divides it by the accumulation steps instead of rescaling by demo tokens
    token_mean_loss = False
    chunked_loss = False  # PPO's ratios and the entropy read the samples' full logits

    def prepare_model(self, model, args):
        # Built here, before PEFT wraps the policy, so the copy is of the plain model's weights. The
        # discriminator is not a submodule: it has its own optimiser and is saved on its own.
        if args.disable_dropout:
            disable_dropout(model)
        self.discriminator = Discriminator.build(
            model, param=args.disc_param, level=args.disc_level, disc_loss=args.disc_loss,
            reward_kind=args.reward_kind, name_or_path=args.disc_model_name_or_path,
            trust_remote_code=args.trust_remote_code)
        return model

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        a = self.args
        policy, peft = unwrap_model(self.model), is_peft(self.model)
        if peft and a.sft_steps > 0:
            raise ValueError("sft_steps > 0 with a peft_config: under PEFT the KL reference is the base model, not "
                             "the SFT phase's end; run SFT first and start GAIL from its merged checkpoint")
        if self.discriminator.net.config.pad_token_id is None:  # HF's own sequence pooling needs it
            self.discriminator.net.config.pad_token_id = self.processing_class.pad_token_id
        self.discriminator.to(a.device)
        self.disc_optimizer = self._new_disc_optimizer()
        self.ref_model = None
        if a.needs_reference and not peft:
            self.ref_model = copy.deepcopy(policy).eval().requires_grad_(False)
        disc_batch = a.disc_batch_size or a.per_device_train_batch_size
        rank = a.process_index
        self.demo_stream = DemoStream(self.train_dataset, disc_batch, self.data_collator,
                                      seed=derive_seed(a.seed, 1, rank))
        rollout_batch = a.per_device_train_batch_size * a.samples_per_prompt
        self.replay = ReplayBuffer(a.disc_replay_size or 4 * rollout_batch, seed=derive_seed(a.seed, 2, rank))
        self._queues: dict[int, list[dict]] = {}  # micro-batch index in the step -> pending PPO minibatches
        self._step_seen, self._micro = -1, 0
        self._adversarial = a.sft_steps == 0  # the adversarial phase's reference and discriminator are set

    def timed_phases(self) -> tuple[str, ...]:
        return ROLLOUT, SCORING, DISC, DISC_EVAL, UPDATE

    def _new_disc_optimizer(self):
        return torch.optim.AdamW(self.discriminator.parameters(),
                                 lr=self.args.disc_learning_rate or self.args.learning_rate)

    def _start_adversarial(self, model) -> None:
        """End of the SFT phase: the policy becomes the reference and the discriminator's start."""
        policy = unwrap_model(model)
        if self.ref_model is not None:
            self.ref_model.load_state_dict(policy.state_dict())
        self.discriminator.restart_from(policy)
        self.disc_optimizer = self._new_disc_optimizer()
        a = self.args
        if a.adversarial_learning_rate is not None and self.lr_scheduler is not None:
            # LambdaLR-style schedules set lr = base_lr · λ(step): scaling base_lrs scales the rest of the
            # schedule, and the scheduler's state_dict carries it into checkpoints
            scale = a.adversarial_learning_rate / a.learning_rate
            scheduler = getattr(self.lr_scheduler, "scheduler", self.lr_scheduler)  # accelerate may wrap it
            scheduler.base_lrs = [lr * scale for lr in scheduler.base_lrs]
            for group in self.optimizer.param_groups:
                group["lr"] *= scale
            scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]  # what Trainer logs
        self._adversarial = True

    # ------------------------------------------------------------------ log-probs

    @torch.no_grad()
    def _logprobs(self, model, batch: dict) -> torch.Tensor:
        """log π of a batch's labels under ``model`` in eval mode (no dropout), labels-aligned."""
        with self.timed(SCORING), eval_mode(model):
            logits = model(**model_inputs(batch)).logits
            return token_logprobs(logits, batch["labels"])

    def _reference_logprobs(self, batch: dict) -> torch.Tensor:
        if self.ref_model is not None:
            return self._logprobs(self.ref_model, batch)
        policy = unwrap_model(self.model, keep_peft=True)  # PEFT: the base model is the reference
        with policy.disable_adapter():
            return self._logprobs(policy, batch)

    def _disc_inputs(self, batch: dict) -> dict:
        """A batch on the device with the log-probs the discriminator's ℓ needs (current policy, reference)."""
        batch = {k: v.to(self.args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        if self.discriminator.subtracts_logpi and "policy_logprobs" not in batch:
            batch["policy_logprobs"] = self._logprobs(unwrap_model(self.model), batch)
        if self.discriminator.needs_reference and "ref_logprobs" not in batch:
            batch["ref_logprobs"] = self._reference_logprobs(batch)
        return batch

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def rollout(self, model, demos: dict, seed: int | None = None) -> dict:
        """``samples_per_prompt`` completions per demo prompt, as a right-padded labels batch on the device.

        Keys (labels-aligned [N, T] log-probs): input_ids, attention_mask, labels, old_logprobs (of the
        distribution sampled: PPO's), policy_logprobs (log π, what the discriminator and the KL see; the
        same tensor when that is what was sampled), terminated [N], ref_logprobs (absent without a reference).
        """
        a = self.args
        prompts = batch_prompts(demos)
        max_new = a.max_new_tokens
        if a.max_length is not None:  # keep samples inside the lengths demos have (and position embeddings)
            max_new = min(max_new, a.max_length - max(len(p) for p in prompts))
        with self.timed(ROLLOUT):
            out = generate_rollouts(
                unwrap_model(model, keep_peft=True), self.processing_class, prompts, max_new_tokens=max(max_new, 1),
                temperature=a.temperature, top_p=a.top_p, num_samples=a.samples_per_prompt,
                batch_size=len(prompts) * a.samples_per_prompt, seed=seed,
            )
        batch = {k: v.to(a.device) for k, v in out.to_batch(self.processing_class.pad_token_id).items()}
        samples_pi = a.temperature == 1.0 and a.top_p == 1.0
        batch["policy_logprobs"] = batch["old_logprobs"] if samples_pi else self._logprobs(unwrap_model(model), batch)
        if a.needs_reference:
            batch["ref_logprobs"] = self._reference_logprobs(batch)
        return batch

    # ------------------------------------------------------------------ the discriminator

    def _disc_loss(self, demos: dict, samples: dict, grad_penalty: float = 0.0):
        a = self.args
        return self.discriminator.loss(
            self._disc_inputs(demos), self._disc_inputs(samples), label_smoothing=a.disc_label_smoothing,
            grad_penalty=grad_penalty, margin_slack_weight=a.margin_slack_weight, margin_l2_weight=a.margin_l2_weight)

    def discriminator_step(self, demos: dict, samples: dict) -> dict:
        """One AdamW update of the discriminator on demos (class 1) against samples (class 0); its stats."""
        a, disc = self.args, self.discriminator
        disc.train()
        loss, stats = self._disc_loss(demos, samples, a.disc_grad_penalty)
        self.disc_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._all_reduce_disc_grads()
        if a.max_grad_norm and a.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(disc.parameters(), a.max_grad_norm)
        self.disc_optimizer.step()
        disc.eval()
        return stats

    @torch.no_grad()
    def discriminator_stats(self, demos: dict, samples: dict) -> dict:
        """The discriminator's loss and accuracies on a batch, no update."""
        self.discriminator.eval()
        return self._disc_loss(demos, samples)[1]

    def train_disc(self, samples: dict) -> dict:
        """Held-out stats on fresh demos vs the new samples, ``disc_steps`` updates on replayed samples, train stats."""
        with self.timed(DISC_EVAL):
            held = self.discriminator_stats(self.demo_stream.next(), samples)
        with self.timed(DISC):
            self.replay.add(samples)
            for _ in range(self.args.disc_steps):
                demos = self.demo_stream.next()
                replayed = self.replay.sample(self.demo_stream.batch_size, self.processing_class.pad_token_id)
                self.discriminator_step(demos, replayed)
        with self.timed(DISC_EVAL):
            train = self.discriminator_stats(demos, replayed)
        out = {f"disc_heldout_{k[5:]}": v for k, v in held.items()}
        out.update({f"disc_train_{k[5:]}": train[k] for k in ("disc_loss", "disc_acc_demo", "disc_acc_policy",
                                                              "disc_bal_acc") if k in train})
        return out

    def _all_reduce_disc_grads(self) -> None:
        # The discriminator lives outside accelerate's wrapping: average its gradients across ranks
        # by hand so every process keeps the same discriminator.
        if self.args.world_size <= 1 or not torch.distributed.is_initialized():
            return
        for p in self.discriminator.parameters():
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad /= self.args.world_size

    @torch.no_grad()
    def sample_rewards(self, samples: dict) -> torch.Tensor:
        """Discriminator reward [N, T] of each sample's action tokens (``Discriminator.dense_reward``), detached."""
        self.discriminator.eval()
        return self.discriminator.dense_reward(self._disc_inputs(samples))

    # ------------------------------------------------------------------ advantages

    def advantages(self, raw_rewards: torch.Tensor, samples: dict) -> tuple[torch.Tensor, dict]:
        """Per-token advantages [N, T] of a rollout batch and their statistics (``policy_advantages`` with
        this run's settings): rewards minus the missing-EOS and KL penalties, returns-to-go, a baseline."""
        a = self.args
        return policy_advantages(
            raw_rewards, action_mask(samples["labels"]), logprobs=samples["policy_logprobs"],
            ref_logprobs=samples["ref_logprobs"] if a.kl_coef > 0 else None, kl_coef=a.kl_coef,
            kl_estimator=a.kl_estimator, terminated=samples["terminated"], missing_eos_penalty=a.missing_eos_penalty,
            normalize_rewards=(a.disc_level if a.normalize_rewards else None), gamma=a.gamma,
            group_size=a.samples_per_prompt if a.baseline == "per_prompt" else None,
            whiten_advantages=a.whiten_advantages)

    # ------------------------------------------------------------------ the loss

    def _micro_batch_index(self) -> int:
        """Which micro-batch of the current optimizer step this is (0 without gradient accumulation)."""
        if self.state.global_step != self._step_seen:
            self._step_seen, self._micro = self.state.global_step, 0
        self._micro += 1
        return self._micro - 1

    def _new_rollout(self, model, demos: dict, micro: int) -> list[dict]:
        """Sample, train the discriminator, score the samples: the PPO minibatches of the next steps."""
        a, step = self.args, self.state.global_step
        samples = self.rollout(model, demos, seed=derive_seed(a.seed, step, micro, a.process_index) % 2**31)
        stats = self.train_disc(samples)
        with self.timed(SCORING):
            raw = self.sample_rewards(samples)
            samples["advantages"], reward_stats = self.advantages(raw, samples)
        mask = action_mask(samples["labels"])
        stats.update(reward_stats, sample_len=mask.sum(-1).float().mean().item(),
                     eos_frac=samples["terminated"].float().mean().item())
        n = len(samples["input_ids"])
        g = torch.Generator().manual_seed(derive_seed(a.seed, step, micro, a.process_index, 3))
        queue = []
        for _ in range(a.ppo_epochs if a.policy_update == "ppo" else 1):
            order = torch.randperm(n, generator=g) if a.policy_update == "ppo" else torch.arange(n)
            for idx in order.tensor_split(a.ppo_minibatches if a.policy_update == "ppo" else 1):
                idx = idx.to(samples["input_ids"].device)
                rows = {k: samples[k].index_select(0, idx) for k in SAMPLE_KEYS if k in samples}
                queue.append({**trim_padding(rows), "stats": stats})
        return queue

    def _policy_forward(self, model, demos: dict, samples: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Demos and samples in one forward pass (one graph: what DDP expects), logits split back."""
        pad_id = self.processing_class.pad_token_id
        joint = {k: pad([*demos[k], *samples[k]], 0 if k.endswith("attention_mask") else pad_id)
                 for k in model_inputs(demos)}
        logits = model(**joint).logits
        n = demos["input_ids"].shape[0]
        return logits[:n, : demos["labels"].shape[1]], logits[n:, : samples["labels"].shape[1]]

    def demo_loss(self, model, inputs):
        """``L = pg_loss(minibatch of samples) + mle_weight · NLL(demos)``; plain NLL in the SFT phase."""
        a = self.args
        if not model.training:
            return self._eval_loss(model, inputs)
        if self.state.global_step < a.sft_steps:
            logits = model(**model_inputs(inputs)).logits
            return sft_loss(logits, inputs["labels"], log_entropy=a.log_entropy)
        if not self._adversarial:
            self._start_adversarial(model)

        micro = self._micro_batch_index()
        if not self._queues.get(micro):
            self._queues[micro] = self._new_rollout(model, inputs, micro)
        batch = self._queues[micro].pop(0)

        demo_logits, sample_logits = self._policy_forward(model, inputs, batch)
        nll, _ = sft_loss(demo_logits, inputs["labels"], log_entropy=False)
        mask = action_mask(batch["labels"])
        # from the distribution the samples were drawn from, as old_logprobs are: the first ratio is exactly 1
        logprobs = sampling_logprobs(sample_logits, batch["labels"], top_p=a.top_p,
                                     temperature=policy_temperature(model) * a.temperature)
        if a.policy_update == "ppo":
            pg_loss, pg = ppo_clip_loss(logprobs, batch["old_logprobs"], batch["advantages"], mask, a.clip_range)
            pg_stats = {"clip_frac": pg["clip_frac"], "approx_kl": pg["approx_kl"]}
        else:
            pg_loss, pg_stats = reinforce_loss(logprobs, batch["advantages"], mask), {}
        mle_loss = a.mle_weight * nll
        loss = pg_loss + mle_loss
        stats = {**batch["stats"], **pg_stats, "pg_loss": pg_loss.detach(), "mle_loss": mle_loss.detach(),
                 "nll": nll.detach()}
        if a.log_entropy:
            stats["entropy"] = policy_entropy(sample_logits[:, :-1], mask[:, 1:])
        return loss, stats

    @torch.no_grad()
    def _eval_loss(self, model, inputs):
        """The demos' NLL; with eval_disc, the discriminator's accuracy on them against fresh samples too."""
        logits = model(**model_inputs(inputs)).logits
        nll, stats = sft_loss(logits, inputs["labels"], log_entropy=False)
        if self.args.eval_disc and self._adversarial:
            seed = derive_seed(self.args.seed, 4, self.state.global_step, self.args.process_index,
                               int(inputs["input_ids"].sum())) % 2**31
            samples = self.rollout(model, inputs, seed=seed)
            held = self.discriminator_stats(inputs, samples)
            stats.update({k: v for k, v in held.items() if k.startswith("disc_")})
        return nll, stats

    # ------------------------------------------------------------------ saving and resuming

    def _save(self, output_dir=None, state_dict=None):
        """The policy as usual, plus the discriminator in ``output_dir/discriminator/``."""
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            self.discriminator.save(os.path.join(output_dir or self.args.output_dir, DISCRIMINATOR_DIR))

    def _save_checkpoint(self, model, trial):
        # written before Trainer's own files, so a checkpoint marked complete holds all of them
        path = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        if self.args.should_save:
            os.makedirs(path, exist_ok=True)
            state = {"adversarial": self._adversarial, "disc_optimizer": self.disc_optimizer.state_dict(),
                     "demo_stream": self.demo_stream.state_dict(), "replay": self.replay.state_dict(),
                     "queues": {k: [to_device(b, "cpu") for b in q] for k, q in self._queues.items()}}
            torch.save(state, os.path.join(path, STATE_FILE))
            if self.ref_model is not None and self.args.sft_steps > 0 and self._adversarial:
                self.ref_model.save_pretrained(os.path.join(path, REFERENCE_DIR), safe_serialization=True)
        super()._save_checkpoint(model, trial)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Resuming restores the discriminator, its optimiser, the buffers, the pending minibatches, the reference."""
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        disc_path = os.path.join(resume_from_checkpoint, DISCRIMINATOR_DIR)
        if os.path.isdir(disc_path):
            self.discriminator.load_weights(disc_path)
        state_path = os.path.join(resume_from_checkpoint, STATE_FILE)
        if not os.path.exists(state_path):
            return
        # the restricted loader (tensors and plain containers only, no arbitrary objects); the RNG state stays on CPU
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        self._adversarial = state["adversarial"]
        self.disc_optimizer.load_state_dict(state["disc_optimizer"])
        self.demo_stream.load_state_dict(state["demo_stream"])
        self.replay.load_state_dict(state["replay"])
        self._queues = {k: [to_device(b, self.args.device) for b in q] for k, q in state["queues"].items()}
        ref_path = os.path.join(resume_from_checkpoint, REFERENCE_DIR)
        if self.ref_model is not None and os.path.isdir(ref_path):
            saved = type(self.ref_model).from_pretrained(ref_path, use_safetensors=True)
            self.ref_model.load_state_dict(saved.state_dict())
