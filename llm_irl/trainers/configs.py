"""Trainer configs: `transformers.TrainingArguments` plus the fields each objective needs.

Every new field carries help text, so `llm-irl train --help`-style listings and the YAML recipes
describe themselves. Defaults that differ from `TrainingArguments` follow TRL's SFT choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from llm_irl.defaults import (
    GEM_BETA,
    GEM_H,
    GEM_H_CHOICES,
    IQ_ALPHA,
    IQ_GAMMA,
    IQ_POLICY_TERMINAL_VALUE,
    IQ_TD_HUBER,
    IQ_TD_WEIGHT,
    IQ_TERMINAL_TD,
    IQ_VALUE_PARAM,
    POLICY_TERMINAL_VALUE,
    SFT_LOSS_TYPES,
    TERMINAL_TD,
)
from llm_irl.truncation import PROMPT_TRUNCATION

VALUE_PARAMS = ("logits", "head", "offset")
SMOOTHING_IS_SFT_ONLY = ("label_smoothing_factor is honoured by the SFT trainer only; {trainer}'s objective is "
                         "not a plain cross-entropy (its regulariser is {regulariser}): set it to 0")
GEM_IS_SFT_ONLY = ("loss_type 'gem' is an SFT loss; {trainer}'s objective has its own likelihood term: "
                   "set loss_type to 'nll' or use trainer sft")


@dataclass
class SFTConfig(TrainingArguments):
    """Supervised fine-tuning (behaviour cloning) on demonstrations."""

    max_length: int | None = field(
        default=1024,
        metadata={"help": "Longest sequence in tokens (prompt + completion). Longer completions are cut at the "
                          "end and kept as truncated, not terminal; see prompt_truncation for prompts."},
    )
    max_prompt_length: int | None = field(
        default=None,
        metadata={"help": "Longest prompt in tokens; None: any prompt that leaves room for a completion under "
                          "max_length. Longer prompts are handled by prompt_truncation."},
    )
    prompt_truncation: str = field(
        default="keep_end",
        metadata={"help": "A prompt over max_prompt_length, or with no room left under max_length: 'keep_end' keeps "
                          "its last tokens (max_prompt_length, else half of max_length; a leading BOS stays), 'drop' "
                          "leaves the row out, 'error' stops. Cut and dropped rows are counted in a warning."},
    )
    model_dtype: str = field(
        default="auto",
        metadata={"help": "dtype to load a model by name in: auto, float32, bfloat16 or float16."},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow a Hub model's own Python code to run when loading it. Off by default."}
    )
    loss_chunk_size: int | None = field(
        default=0,
        metadata={"help": "Compute the loss through the LM head in chunks of this many positions, never holding "
                          "[batch, seq, vocab] logits, and only at action positions; 0 sizes chunks by the vocabulary "
                          "(~32 MiB of fp32 logits each). None: the model's full logits. Models whose logits are "
                          "post-processed (soft-capping, logit scaling, LoRA on lm_head) fall back to full logits."},
    )
    log_entropy: bool = field(default=True, metadata={"help": "Log the mean policy entropy at action tokens."})
    torch_threads: int | None = field(
        default=None,
        metadata={"help": "torch intra-op threads of this process (set when the trainer starts). None: as the process "
                          "has them (torch: one per physical core, or OMP_NUM_THREADS; torchrun: 1 per process). "
                          "Runs sharing a machine should split its cores (e.g. 1 each on 2 cores): oversubscribed "
                          "threads slow sampling several-fold."},
    )
    loss_type: str = field(
        default="nll",
        metadata={"help": "SFT's loss: 'nll' (cross-entropy) or 'gem' (GEM, Li et al. 2025: reverse-KL matching with "
                          "entropy regularisation, which keeps output diversity; costs what 'nll' costs). The logged "
                          "nll stays the plain likelihood either way."},
    )
    gem_beta: float = field(
        default=GEM_BETA,
        metadata={"help": "GEM's β > 0: the auxiliary distribution is softmax(logits/β); 1 with gem_h 'linear' is "
                          "cross-entropy's gradient exactly, smaller keeps more entropy. The paper's runs use 0.7."},
    )
    gem_h: str = field(
        default=GEM_H,
        metadata={"help": "GEM's h: 'linear' or 'logsigmoid' (each token's term weighted by "
                          "sigmoid(0.01·(z_b − z_a)); the paper's runs use it)."},
    )
    nan_policy: str = field(
        default="stop",
        metadata={"help": "On a NaN/inf loss: 'stop' the run before the optimiser step (the last checkpoint stays "
                          "good) or 'skip' the step, dropping its gradients."},
    )
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate of AdamW."})
    logging_steps: float = field(default=10, metadata={"help": "Log every this many optimiser steps."})
    prediction_loss_only: bool = field(
        default=True, metadata={"help": "Evaluation returns losses only (no [B, T, V] logits kept)."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept False: the collator picks the columns it needs."}
    )

    def __post_init__(self):
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length must be at least 2 (a prompt token and an action), got {self.max_length}")
        if self.max_prompt_length is not None and self.max_prompt_length < 1:
            raise ValueError(f"max_prompt_length must be at least 1 or None, got {self.max_prompt_length}")
        if self.prompt_truncation not in PROMPT_TRUNCATION:
            raise ValueError(f"prompt_truncation must be one of {', '.join(PROMPT_TRUNCATION)}, "
                             f"got {self.prompt_truncation!r}")
        if self.loss_chunk_size is not None and self.loss_chunk_size < 0:
            raise ValueError(f"loss_chunk_size must be >= 0 or None, got {self.loss_chunk_size}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1 or None, got {self.torch_threads}")
        if self.nan_policy not in ("stop", "skip"):
            raise ValueError(f"nan_policy must be 'stop' or 'skip', got {self.nan_policy!r}")
        if not 0.0 <= self.label_smoothing_factor < 1.0:
            raise ValueError(f"label_smoothing_factor must be in [0, 1), got {self.label_smoothing_factor}")
        if self.loss_type not in SFT_LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {', '.join(SFT_LOSS_TYPES)}, got {self.loss_type!r}")
        if not self.gem_beta > 0:
            raise ValueError(f"gem_beta must be > 0, got {self.gem_beta}")
        if self.gem_h not in GEM_H_CHOICES:
            raise ValueError(f"gem_h must be one of {', '.join(GEM_H_CHOICES)}, got {self.gem_h!r}")
        if self.loss_type == "gem" and self.label_smoothing_factor:
            raise ValueError(f"loss_type 'gem' does not take label_smoothing_factor (got {self.label_smoothing_factor}): "
                             "GEM's own entropy regulariser replaces it; set it to 0")
        if self.model_dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"model_dtype must be auto, float32, bfloat16 or float16, got {self.model_dtype!r}")
        super().__post_init__()


@dataclass
class SamplingConfig:
    """How a trainer samples from its current policy (online IQ, adversarial IRL): a config mixin.

    Put it before the base config (`class XConfig(SamplingConfig, SFTConfig)`) so its checks run
    with the others'.
    """

    max_new_tokens: int = field(default=64, metadata={"help": "Length limit of policy samples; one that reaches "
                                                              "it without EOS is truncated, not terminal."})
    temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature of policy samples, relative to the policy "
                                       "π = softmax(logits/α) (1 samples π itself); > 0."}
    )
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass of policy samples; in (0, 1]."})

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        getattr(super(), "__post_init__", lambda: None)()


@dataclass
class IQConfig(SamplingConfig, SFTConfig):
    """Inverse soft-Q learning (IQ-Learn, χ² form) on demonstrations: MLE plus a TD regulariser.

    Online IQ (`policy_mix > 0`) samples with the `SamplingConfig` fields.
    """

    gamma: float = field(
        default=IQ_GAMMA, metadata={"help": "Discount γ in the implied reward r = Q(s,a) − γ·V(s'); in (0, 1]."}
    )
    td_weight: float = field(
        default=IQ_TD_WEIGHT,
        metadata={"help": "λ = 1/(4c) of the χ² regulariser: weight of the mean squared implied reward r². "
                          "0 is SFT exactly."},
    )
    td_huber: float = field(
        default=IQ_TD_HUBER,
        metadata={"help": "κ > 0: the χ² term's (r − c)² becomes Huber's loss, quadratic within κ nats and linear "
                          "beyond, so its pull on a demonstrated token's likelihood stays within ±2·td_weight·κ and, "
                          "while 2·td_weight·κ < 1, never lowers it (td_reversed logs the share it lowers). 0 is "
                          "IQ-Learn's χ² term, which on real text at td_weight 0.3 costs EOS (docs/design.md)."},
    )
    alpha: float = field(
        default=IQ_ALPHA,
        metadata={"help": "Entropy temperature α: V = α·logsumexp(Q/α), π = softmax(Q/α). The saved model records "
                          "it (config llm_irl_alpha, generation_config.temperature) so samplers draw from π."},
    )
    terminal_td: str = field(
        default=IQ_TERMINAL_TD,
        metadata={"help": "How the terminal (EOS) transition enters the χ² term: 'include' (IQ-Learn: V(s')=0 after "
                          "EOS, which biases toward never stopping), 'absorbing' (its r² weighted by 1 − γ), "
                          "'exclude' (the reward of stopping left free: no length bias at the optimum, but it is "
                          "reached slowly and the stop action then carries the whole return), 'centred' (EOS "
                          "included; the χ² term penalises the rewards' spread around their mean, as if a shared "
                          "value offset, the absorbing state's included, were learned: no length bias and a stop "
                          "reward like the others'; needs a per-state level, value_param 'head' or 'offset') or "
                          "'centred_absorbing' (centred, and the absorbing state's value after EOS learned too: the "
                          "stop rewards centre on their own centre, so the χ² term does not lower EOS's likelihood "
                          "as a whole; the value is saved in the config for reading rewards back)."},
    )
    value_param: str = field(
        default=IQ_VALUE_PARAM,
        metadata={"help": "Where V comes from: 'logits' (V = α·logsumexp of the logits, no new parameters), "
                          "'head' (a separate scalar value head V_ψ on the last hidden state) or 'offset' "
                          "(Q = logits + b(s), a learned per-state offset the softmax does not see)."},
    )

    policy_mix: float = field(
        default=0.0,
        metadata={"help": "Share of training rows that are samples from the current policy (online IQ; the paper "
                          "used 0.1), counted over the run, so a batch may get none. 0 is offline IQ exactly. "
                          "In [0, 1)."},
    )
    policy_terminal_value: str = field(
        default=IQ_POLICY_TERMINAL_VALUE,
        metadata={"help": "Online IQ: 'include' (IQ-Learn's) keeps the policy samples' EOS transitions in the value "
                          "term; 'exclude' leaves them out, which raises V where samples stop (a heuristic from before "
                          "terminal_td centred: it keeps the length off the expert's, docs/design.md)."},
    )
    rollout_every: int = field(
        default=1, metadata={"help": "Sample policy rows every this many optimiser steps (online IQ): one batched "
                                     "call draws the rows of the next rollout_every steps, each trained on once "
                                     "(up to rollout_every − 1 steps off-policy)."}
    )

    def __post_init__(self):
        if not 0.0 <= self.policy_mix < 1.0:
            raise ValueError(f"policy_mix must be in [0, 1), got {self.policy_mix}")
        if self.rollout_every < 1:
            raise ValueError(f"rollout_every must be >= 1, got {self.rollout_every}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.td_weight < 0:
            raise ValueError(f"td_weight must be >= 0, got {self.td_weight}")
        if self.td_huber < 0:
            raise ValueError(f"td_huber must be >= 0 (0 is the plain χ² term), got {self.td_huber}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if self.terminal_td not in TERMINAL_TD:
            raise ValueError(f"terminal_td must be one of {TERMINAL_TD}, got {self.terminal_td!r}")
        if self.policy_terminal_value not in POLICY_TERMINAL_VALUE:
            raise ValueError(f"policy_terminal_value must be one of {POLICY_TERMINAL_VALUE}, "
                             f"got {self.policy_terminal_value!r}")
        if self.value_param not in VALUE_PARAMS:
            raise ValueError(f"value_param must be one of {VALUE_PARAMS}, got {self.value_param!r}")
        if self.label_smoothing_factor:
            raise ValueError(SMOOTHING_IS_SFT_ONLY.format(trainer="IQ", regulariser="td_weight"))
        if self.loss_type == "gem":
            raise ValueError(GEM_IS_SFT_ONLY.format(trainer="IQ"))
        if self.value_param != "logits" and self.ddp_static_graph is None:
            # measured: without it DDP stops at the first step with the head's parameters "marked ready twice";
            # with it 2 processes train as 1 (tests/test_distributed.py). The graph is the same every step.
            self.ddp_static_graph = True
        super().__post_init__()
