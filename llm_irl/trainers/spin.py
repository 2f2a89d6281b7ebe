"""SPIN (Chen et al., ICML 2024): self-play fine-tuning on demonstrations alone, an IRL method by its implicit reward.

Iteration t freezes the policy as π_t; each demonstration (x, y) is "chosen" and a completion
y' ~ π_t(·|x) is "rejected", and π_{t+1} is trained from π_t on `llm_irl.spin_objective.spin_loss`
(DPO's logistic loss, β·log(π_θ/π_t) the reward). Then π_t ← π_{t+1}, and again.

Iterations. One `Trainer` run: its optimiser steps (`max_steps`, or `num_train_epochs`' worth)
after an optional SFT warm start (`sft_steps`, plain NLL, as GAIL's) are split evenly into
`spin_iterations` iterations. At an iteration's first step the policy becomes π_t. A
demonstration's rejected sample is drawn from π_t the first time the demonstration comes up in the
iteration, in one batched `llm_irl.rollout.generate_rollouts` call per optimiser step for the
step's new demonstrations (KV cache, seeded by step and process), together with π_t's log-probs
of both sides; later epochs of the same iteration reuse the pair, as the paper generates once per
iteration. Unlike the paper's runs, which restart the optimiser and learning-rate schedule each
iteration, the run keeps one optimiser and one schedule over all iterations (the budget stays
the run's: `llm-irl compare` arms get the same steps as every other).

Under PEFT π_t is a frozen copy of the adapter weights only (`spin_state.FrozenIterate`). A
checkpoint holds π_t and the iteration's pairs (safetensors), so resuming is exact.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from llm_irl.batching import labelled_row, model_inputs, pad, pad_batch, unpad_rows
from llm_irl.chunked import chunked_mdp_and_entropy
from llm_irl.lm_head import lm_head_hidden
from llm_irl.modeling import disable_dropout, eval_mode
from llm_irl.phase_timer import ROLLOUT, SCORING, UPDATE
from llm_irl.rollout import generate_rollouts
from llm_irl.seeding import derive_seed
from llm_irl.soft_q import IGNORE_INDEX, action_mask, policy_entropy, token_logprobs
from llm_irl.special_tokens import eos_token_ids
from llm_irl.spin_objective import SPIN_BETA, sequence_logps, spin_loss
from llm_irl.trainers.base import DemoTrainer
from llm_irl.trainers.configs import SamplingConfig, SFTConfig
from llm_irl.trainers.spin_state import REFERENCE_FILE, FrozenIterate, Pair, SelfPlaySamples, samples_file

__all__ = ["SPINConfig", "SPINTrainer"]


@dataclass
class SPINConfig(SamplingConfig, SFTConfig):
    """Self-play fine-tuning (SPIN): each demonstration against the previous iterate's own sample, DPO-style.

    Samples are drawn from the previous iterate with the `SamplingConfig` fields (max_new_tokens,
    temperature, top_p); max_new_tokens is also capped so that prompt + completion fits max_length.
    """

    beta: float = field(
        default=SPIN_BETA,
        metadata={"help": "β > 0 of SPIN's loss −log σ(β·[log π_θ/π_t (demo) − log π_θ/π_t (sample)]) and scale of "
                          "its implicit reward β·log(π_θ/π_t). The paper's runs use 0.1."},
    )
    spin_iterations: int = field(
        default=3,
        metadata={"help": "Self-play iterations; the run's optimiser steps after sft_steps are split evenly among "
                          "them. Each starts by freezing the policy as the reference π_t, which samples each "
                          "demonstration's rejected completion once for the iteration. The paper ran 4, of a few "
                          "epochs each."},
    )
    sft_steps: int = field(
        default=0,
        metadata={"help": "Optimiser steps of plain SFT (the demos' NLL) before iteration 0; SPIN starts from an "
                          "SFT model. 0: start self-play at once from model_name_or_path (give an SFT checkpoint)."},
    )
    spin_learning_rate: float | None = field(
        default=None,
        metadata={"help": "With sft_steps > 0: from iteration 0 on, the learning-rate schedule is scaled by "
                          "spin_learning_rate / learning_rate (self-play wants a smaller rate than SFT; the paper's "
                          "is 40x below its SFT rate). None: no change."},
    )
    disable_dropout: bool = field(
        default=True,
        metadata={"help": "Turn dropout off in the policy, so the log-ratios to π_t start at exactly 0 and are not "
                          "noisy."},
    )

    def __post_init__(self):
        remaining = self.max_steps - self.sft_steps if self.max_steps > 0 else None
        checks = [
            (self.beta > 0, f"beta must be > 0, got {self.beta}"),
            (self.spin_iterations >= 1, f"spin_iterations must be >= 1, got {self.spin_iterations}"),
            (self.sft_steps >= 0, f"sft_steps must be >= 0, got {self.sft_steps}"),
            (self.spin_learning_rate is None or self.spin_learning_rate > 0,
             f"spin_learning_rate must be > 0 (or None), got {self.spin_learning_rate}"),
            (self.spin_learning_rate is None or self.sft_steps > 0,
             "spin_learning_rate applies from the end of an SFT phase: set sft_steps > 0, or set learning_rate"),
            (remaining is None or remaining >= self.spin_iterations,
             f"max_steps {self.max_steps} leaves {remaining} steps after sft_steps {self.sft_steps} for "
             f"spin_iterations {self.spin_iterations}: each iteration needs at least one optimiser step"),
            (not self.label_smoothing_factor,
             "label_smoothing_factor is honoured by the SFT trainer only; SPIN's objective is not a plain "
             "cross-entropy (its regulariser is the reference π_t): set it to 0"),
            (getattr(self, "loss_type", "nll") != "gem",
             "loss_type 'gem' is an SFT loss; SPIN's objective is its own pair loss: set loss_type to 'nll' or use "
             "trainer sft"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        super().__post_init__()


class SPINTrainer(DemoTrainer):
    """SPIN over any `AutoModelForCausalLM` or `AutoModelForSeq2SeqLM`: the demonstrations against the previous iterate's samples.

    Attributes beyond `Trainer`'s: `reference` (π_t, a `FrozenIterate`) and `samples` (the
    iteration's pairs, a `SelfPlaySamples`; its `iteration` is the current iteration's index).
    """

    config_class = SPINConfig
    token_mean_loss = False  # a mean over pairs: Trainer divides by the accumulation steps

    def prepare_model(self, model, args):
        if args.disable_dropout:
            disable_dropout(model)
        return model

    def timed_phases(self) -> tuple[str, ...]:
        return ROLLOUT, SCORING, UPDATE

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reference = FrozenIterate(self.model)
        self.samples = SelfPlaySamples()

    # ------------------------------------------------------------------ iterations

    def iteration_starts(self) -> list[int]:
        """The first optimiser step of each iteration: the steps after sft_steps, split evenly."""
        a, total = self.args, self.state.max_steps
        spin_steps = total - a.sft_steps
        if spin_steps < a.spin_iterations:
            raise ValueError(f"the run's {total} optimiser steps leave {spin_steps} after sft_steps {a.sft_steps} for "
                             f"spin_iterations {a.spin_iterations}: each iteration needs at least one step")
        return [a.sft_steps + i * spin_steps // a.spin_iterations for i in range(a.spin_iterations)]

    def iteration_at(self, step: int) -> int:
        if self.state.max_steps <= 0:  # not in a training run (compute_loss called on its own): one iteration
            return 0
        return sum(start <= step for start in self.iteration_starts()) - 1

    def _begin_iteration_if_due(self) -> None:
        iteration = self.iteration_at(self.state.global_step)
        if iteration != self.samples.iteration:
            a = self.args
            if self.samples.iteration is None and a.sft_steps > 0 and a.spin_learning_rate and self.lr_scheduler:
                self._scale_learning_rate(a.spin_learning_rate / a.learning_rate)
            self.reference.update(self.model)
            self.samples.reset(iteration)

    def _scale_learning_rate(self, scale: float) -> None:
        """The rest of the schedule times `scale` (LambdaLR-style: lr = base_lr·λ(step); checkpoints carry it)."""
        scheduler = getattr(self.lr_scheduler, "scheduler", self.lr_scheduler)  # accelerate may wrap it
        scheduler.base_lrs = [lr * scale for lr in scheduler.base_lrs]
        for group in self.optimizer.param_groups:
            group["lr"] *= scale
        scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]  # what Trainer logs

    # ------------------------------------------------------------------ log-probs

    def _token_logps(self, model, batch, *, want_entropy=False):
        """log π(a_t|s_t) [B, T-1] at each action (0 elsewhere), the action mask, and the mean entropy (or None)."""
        a, labels = self.args, batch["labels"]
        if a.loss_chunk_size is not None and (head := lm_head_hidden(model, **model_inputs(batch))) is not None:
            mdp, entropy = chunked_mdp_and_entropy(
                head.hidden, head.weight, labels, lm_head_bias=head.bias, chunk_size=a.loss_chunk_size,
                eos_token_id=eos_token_ids(self.processing_class, self.model), alpha=1.0, log_entropy=want_entropy)
            return mdp.log_pi.masked_fill(~mdp.mask, 0.0), mdp.mask, entropy
        logits = model(**model_inputs(batch)).logits
        mask = action_mask(labels)[:, 1:]
        entropy = policy_entropy(logits[:, :-1], mask) if want_entropy else None
        return token_logprobs(logits, labels)[:, 1:], mask, entropy

    @torch.no_grad()
    def _reference_logps(self, reference, rows: list[dict]) -> list[float]:
        """log π_t(y|x) of labelled rows, in eval mode, a training batch's worth of rows at a time."""
        out, size, device = [], self.args.per_device_train_batch_size, self.args.device
        with eval_mode(reference):
            for start in range(0, len(rows), size):
                batch = {k: v.to(device) for k, v in pad_batch(rows[start: start + size],
                                                                 self.processing_class.pad_token_id).items()}
                lp, mask, _ = self._token_logps(reference, batch)
                out += sequence_logps(lp, mask).tolist()
        return out

    # ------------------------------------------------------------------ self-play pairs

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """The optimiser step's micro-batches; in self-play, each with its rejected samples and π_t's log-probs."""
        batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        if batches and self.state.global_step >= self.args.sft_steps:
            self._begin_iteration_if_due()
            batches = self._with_pairs(batches)
        return batches, num_items

    def _with_pairs(self, batches: list[dict]) -> list[dict]:
        """Each demo batch with `rejected_*` rows and `ref_*_logps`, sampling π_t for demos new to the iteration."""
        rows = [unpad_rows(batch) for batch in batches]
        new = list({tuple(_key(r)): r for batch_rows in rows for r in batch_rows
                    if _key(r) not in self.samples}.values())
        if new:
            self._sample(new)
        out = []
        for batch, batch_rows in zip(batches, rows):
            pairs = [self.samples[_key(r)] for r in batch_rows]
            rejected = pad_batch([labelled_row(_prompt(r), p.completion, self.decoder_prefix)
                                  for r, p in zip(batch_rows, pairs)],
                                 self.processing_class.pad_token_id)
            out.append({**batch, **{f"rejected_{k}": v for k, v in rejected.items()},
                        "ref_chosen_logps": torch.tensor([p.ref_chosen_logp for p in pairs], dtype=torch.float32),
                        "ref_rejected_logps": torch.tensor([p.ref_rejected_logp for p in pairs], dtype=torch.float32)})
        return out

    def _sample(self, demos: list[dict]) -> None:
        """One completion of π_t per demo prompt (one batched call), and π_t's log-probs of both sides."""
        a = self.args
        prompts = [_prompt(r) for r in demos]
        max_new = a.max_new_tokens
        if a.max_length is not None:  # keep samples inside the lengths demos have (and position embeddings)
            max_new = min(max_new, a.max_length - max(len(p) for p in prompts))
        with self.reference.active(self.model) as reference:
            with self.timed(ROLLOUT):
                out = generate_rollouts(
                    reference, self.processing_class, prompts, max_new_tokens=max(max_new, 1),
                    temperature=a.temperature, top_p=a.top_p, batch_size=len(prompts),
                    # seeded by step and process, so a resumed run draws what the uninterrupted one drew
                    seed=derive_seed(a.seed, self.state.global_step, a.process_index))
            rejected = [labelled_row(p, c, self.decoder_prefix) for p, c in zip(prompts, out.completion_ids)]
            with self.timed(SCORING):
                ref_chosen = self._reference_logps(reference, demos)
                ref_rejected = self._reference_logps(reference, rejected)
        for demo, completion, chosen, other in zip(demos, out.completion_ids, ref_chosen, ref_rejected):
            self.samples[_key(demo)] = Pair(completion, chosen, other)

    # ------------------------------------------------------------------ the loss

    def demo_loss(self, model, inputs):
        """SPIN's pair loss in self-play; the demos' NLL in the SFT phase and in evaluation."""
        a = self.args
        if not model.training or self.state.global_step < a.sft_steps:
            return self._nll(model, inputs)
        if "rejected_input_ids" not in inputs:  # compute_loss called outside Trainer's loop
            self._begin_iteration_if_due()
            device = inputs["input_ids"].device
            inputs = {k: v.to(device) for k, v in self._with_pairs([inputs])[0].items()}
        n = inputs["input_ids"].shape[0]
        pad_id = self.processing_class.pad_token_id
        joint = {k: pad([*inputs[k], *inputs[f"rejected_{k}"]],
                        IGNORE_INDEX if k == "labels" else 0 if k.endswith("attention_mask") else pad_id)
                 for k in [*model_inputs(inputs), "labels"]}
        lp, mask, entropy = self._token_logps(model, joint, want_entropy=a.log_entropy)
        logps = sequence_logps(lp, mask)
        ref_chosen, ref_rejected = (inputs[k].to(logps.dtype) for k in ("ref_chosen_logps", "ref_rejected_logps"))
        loss, stats = spin_loss(logps[:n], logps[n:], ref_chosen, ref_rejected, beta=a.beta)
        stats.update(nll=-lp[:n].detach().sum() / mask[:n].sum().clamp_min(1),
                     sample_len=mask[n:].sum(-1).float().mean(), spin_iteration=float(self.samples.iteration))
        if entropy is not None:
            stats["entropy"] = entropy
        return loss, stats

    def _nll(self, model, inputs):
        lp, mask, entropy = self._token_logps(model, inputs, want_entropy=self.args.log_entropy)
        nll = -lp.sum() / mask.sum().clamp_min(1)
        stats = {"nll": nll.detach()}
        if entropy is not None:
            stats["entropy"] = entropy
        return nll, stats

    # ------------------------------------------------------------------ saving and resuming

    def _save_checkpoint(self, model, trial):
        # written before Trainer's own files, so a checkpoint marked complete holds them
        if self.samples.iteration is not None:
            path = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            os.makedirs(path, exist_ok=True)
            if self.args.should_save:
                self.reference.save(os.path.join(path, REFERENCE_FILE))
            self.samples.save(os.path.join(path, samples_file(self.args.process_index, self.args.world_size)))
        super()._save_checkpoint(model, trial)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Resuming restores π_t and the iteration's pairs too (none are saved before self-play starts)."""
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        reference = os.path.join(resume_from_checkpoint, REFERENCE_FILE)
        if os.path.exists(reference):
            self.reference.load(reference)
            self.samples.load(os.path.join(resume_from_checkpoint,
                                           samples_file(self.args.process_index, self.args.world_size)))


def _key(row: dict) -> list[int]:
    """What tells demonstrations apart: a causal row's ids; an encoder–decoder's prompt and decoder ids (its
    `input_ids` are the prompt alone, which several demonstrations may share), -1 between them."""
    return row["input_ids"] if "decoder_input_ids" not in row else [*row["input_ids"], -1, *row["decoder_input_ids"]]


def _prompt(row: dict) -> list[int]:
    """A labelled row's tokens before its first action (at least one): the state a sample continues from; an
    encoder–decoder's encoder input."""
    if "decoder_input_ids" in row:
        return row["input_ids"]
    first = next((i for i, label in enumerate(row["labels"]) if label != IGNORE_INDEX and i > 0), 1)
    return row["input_ids"][:first]
