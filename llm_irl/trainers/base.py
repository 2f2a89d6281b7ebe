"""What every demonstration trainer shares: loading, tokenising, batching, per-term logging.

Subclasses implement `demo_loss(model, inputs) -> (loss, stats)`. The trainers are
`transformers.Trainer`s, so checkpoints, resumption, accelerate/DDP/FSDP/DeepSpeed, callbacks and
`save_pretrained` output (safetensors, tokenizer, `trainer_state.json`) work as users expect.
The stats of each loss term are averaged over every process before they are logged.
"""

from __future__ import annotations

import os
from collections import defaultdict
from contextlib import nullcontext

import torch
from accelerate.utils import gather_object
from transformers import Trainer, TrainerCallback

from llm_irl.batching import DemoCollator
from llm_irl.data import load_demonstrations
from llm_irl.errors import NonFiniteLossError
from llm_irl.modeling import is_peft, load_model, load_tokenizer, record_policy_temperature, save_policy_temperature
from llm_irl.seq2seq import decoder_prefix, is_seq2seq
from llm_irl.phase_timer import PhaseTimer, with_shares
from llm_irl.reliability import GracefulStop, last_complete_checkpoint, mark_complete
from llm_irl.run_setup import announce, refuse_silent_ddp, set_threads
from llm_irl.soft_q import IGNORE_INDEX
from llm_irl.special_tokens import ensure_pad_token


def wrap_peft(model, peft_config):
    """LoRA (or any PEFT method) on `model`; extra heads the objective attached train and save in full."""
    from peft import get_peft_model

    extra = [name for name in ("state_head",) if hasattr(model, name)]
    if is_seq2seq(model) and peft_config.task_type in (None, "CAUSAL_LM"):
        # PEFT's seq2seq wrapper passes the decoder's inputs through and generates as the encoder–decoder does
        peft_config.task_type = "SEQ_2_SEQ_LM"
    if extra:
        peft_config.modules_to_save = sorted(set(peft_config.modules_to_save or []) | set(extra))
    return get_peft_model(model, peft_config)


class DemoTrainer(Trainer):
    config_class: type = None  # set by subclasses
    # True when demo_loss is a token-mean over the batch's action tokens: compute_loss then rescales it
    # to (token sum) / (action tokens in the whole accumulated, all-process batch), so the gradient is
    # the same whatever the split over micro-batches and processes. Trainers whose loss is not a
    # token-mean set it False and Trainer divides by the accumulation steps instead.
    token_mean_loss = True
    # True when demo_loss reaches the vocabulary through `lm_head_hidden` + `llm_irl.chunked` where it can
    # (SFT, IQ, SPIN); what the start-of-run line reports as the loss path
    chunked_loss = True

    def __init__(
        self,
        model,
        args=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        peft_config=None,
        data_collator=None,
        **kwargs,
    ):
        args = args if args is not None else self.config_class(output_dir="outputs")
        set_threads(args.torch_threads)
        if processing_class is None:
            processing_class = load_tokenizer(model, trust_remote_code=args.trust_remote_code)
        processing_class = ensure_pad_token(processing_class)
        model = load_model(model, dtype=args.model_dtype, trust_remote_code=args.trust_remote_code, seed=args.seed)
        model = self.prepare_model(model, args)
        # the saved model says which policy it is, softmax(logits/α), so samplers and scorers read it
        record_policy_temperature(model, self.policy_alpha(args))
        if peft_config is not None:
            model = wrap_peft(model, peft_config)
        self.decoder_prefix = decoder_prefix(model)  # None for a causal LM; an encoder–decoder's rows need it
        # a source given by name reads its "train" split for training and its "test" split for evaluation
        train_dataset = self._tokenize(train_dataset, processing_class, args, "train")
        if isinstance(eval_dataset, dict):
            eval_dataset = {k: self._tokenize(v, processing_class, args, "test") for k, v in eval_dataset.items()}
        else:
            eval_dataset = self._tokenize(eval_dataset, processing_class, args, "test")
        data_collator = data_collator or DemoCollator(processing_class.pad_token_id)
        super().__init__(model=model, args=args, data_collator=data_collator, train_dataset=train_dataset,
                         eval_dataset=eval_dataset, processing_class=processing_class, **kwargs)
        # makes Trainer count the action tokens of each accumulated batch (num_items_in_batch)
        self.model_accepts_loss_kwargs = self.token_mean_loss
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        refuse_silent_ddp(self)
        self.graceful_stop = GracefulStop()
        self.add_callback(self.graceful_stop)
        self.add_callback(_AnnounceSetup(self))
        phases = self.timed_phases()
        self.phase_timer = PhaseTimer(phases) if phases else None
        if self.phase_timer is not None:
            self.add_callback(_RecordStepTimes(self))

    # ------------------------------------------------------------------ hooks for subclasses

    def prepare_model(self, model, args):
        """Attach whatever the objective needs to the model before PEFT and accelerate see it."""
        return model

    def demo_loss(self, model, inputs) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def policy_alpha(self, args) -> float:
        """α of the policy this objective trains, π = softmax(logits/α) (`modeling.policy_temperature`)."""
        return 1.0

    def timed_phases(self) -> tuple[str, ...]:
        """The phases (`llm_irl.phase_timer`) whose seconds this run logs; () logs none (offline trainers)."""
        return ()

    def timed(self, phase: str):
        """`with self.timed("rollout"): ...` counts the block's seconds as that phase of the step."""
        return self.phase_timer.phase(phase) if self.phase_timer is not None else nullcontext()

    # ------------------------------------------------------------------ Trainer overrides

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        # an optimiser step begins when Trainer fetches its batches (online IQ and SPIN sample here)
        if self.phase_timer is not None:
            self.phase_timer.start_step()
        return super().get_batch_samples(epoch_iterator, num_batches, device)

    def _tokenize(self, dataset, tokenizer, args, split: str):
        if dataset is None:
            return None
        if hasattr(dataset, "column_names") and "input_ids" in dataset.column_names:
            return dataset  # already tokenised by the user
        return load_demonstrations(dataset, tokenizer, max_length=args.max_length, split=split,
                                   max_prompt_length=args.max_prompt_length, prompt_truncation=args.prompt_truncation,
                                   decoder_prefix=self.decoder_prefix)

    def _save(self, output_dir=None, state_dict=None):
        """Standard `save_pretrained` output, with the arguments as JSON instead of a pickle; adapters-only
        output (PEFT) also gets the policy's α and generation config, which the base's files lack."""
        super()._save(output_dir, state_dict)
        output_dir = output_dir or self.args.output_dir
        if is_peft(self.model):
            save_policy_temperature(self.model, output_dir)
        pickled = os.path.join(output_dir, "training_args.bin")
        if os.path.exists(pickled):
            os.remove(pickled)
        with open(os.path.join(output_dir, "training_args.json"), "w") as f:
            f.write(self.args.to_json_string())

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, stats = self.demo_loss(model, inputs)
        if model.training and self.args.nan_policy == "stop" and not torch.isfinite(loss):
            last = last_complete_checkpoint(self.args.output_dir)
            raise NonFiniteLossError(
                f"loss is {loss.item()} at step {self.state.global_step}; stopped before the optimiser step "
                f"(last good checkpoint: {last or 'none'}); lower the learning rate, or set nan_policy=skip"
            )
        if self.token_mean_loss and num_items_in_batch is not None and model.training:
            local_actions = (inputs["labels"][:, 1:] != IGNORE_INDEX).sum()
            loss = loss * local_actions / num_items_in_batch
            if self.args.average_tokens_across_devices:  # DDP averages gradients over processes: undo it
                loss = loss * self.accelerator.num_processes
        mode = "train" if model.training else "eval"
        for name, value in stats.items():
            self._metrics[mode][name].append(float(value))
        return (loss, {"loss": loss}) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.args.nan_policy == "skip" and not all(
            p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters()
        ):
            # gradients are all-reduced already, so every process sees the same verdict and skips alike
            model.zero_grad(set_to_none=True)
            self._metrics["train"]["skipped_steps"].append(1.0)
        return loss

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            mark_complete(os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}"))

    def log(self, logs: dict, start_time=None) -> None:
        mode = "eval" if any(k.startswith("eval_") for k in logs) else "train"
        averaged = self._mean_over_processes(self._metrics[mode])
        if mode == "eval":
            averaged = {f"eval_{name}": v for name, v in averaged.items()}
        else:
            averaged = with_shares(averaged)
        logs.update(averaged)  # in place: Trainer.evaluate returns this same dict
        self._metrics[mode].clear()
        super().log(logs, start_time)

    def _mean_over_processes(self, metrics: dict[str, list[float]]) -> dict[str, float]:
        """Each stat's mean over every value every process recorded since the last log.

        Each process records its own micro-batches' stats; without this a DDP run would log rank
        0's numbers as if they were global (as TRL, we reduce before logging). Trainer calls `log`
        on every process, so the collectives below always meet.
        """
        names = list(metrics)
        many = self.accelerator.num_processes > 1
        if many:  # a stat only some processes recorded is still reduced, on all of them, in one order
            names = list(dict.fromkeys(n for ranks_names in gather_object([names]) for n in ranks_names))
        totals = [(sum(metrics.get(n, ())), len(metrics.get(n, ()))) for n in names]
        if many and names:
            totals = torch.tensor(totals, dtype=torch.float64, device=self.accelerator.device)
            totals = self.accelerator.reduce(totals, reduction="sum").tolist()
        return {n: s / c for n, (s, c) in zip(names, totals) if c > 0}


class _RecordStepTimes(TrainerCallback):
    """Hands each optimiser step's phase seconds to the trainer's logged metrics (averaged like the rest)."""

    def __init__(self, trainer: DemoTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        for name, seconds in self.trainer.phase_timer.end_step().items():
            self.trainer._metrics["train"][name].append(seconds)


class _AnnounceSetup(TrainerCallback):
    """Says at the start of training, once accelerate has wrapped (or sharded) the model, what the run computes with."""

    def __init__(self, trainer: DemoTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer.run_setup = announce(self.trainer, self.trainer.model)
