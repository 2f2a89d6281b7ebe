"""GAILConfig: the adversarial trainer's settings (discriminator, policy update, warm start), checked on build.

Every field carries help text, as the other configs do. Choices and their evidence are in
benchmarks/gail_notes.md; the defaults follow it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llm_irl.defaults import (
    ADV_CLIP_RANGE,
    ADV_GAMMA,
    ADV_GRAD_PENALTY,
    ADV_KL_COEF,
    ADV_KL_ESTIMATOR,
    ADV_LABEL_SMOOTHING,
    ADV_MARGIN_L2_WEIGHT,
    ADV_MARGIN_SLACK_WEIGHT,
    ADV_MISSING_EOS_PENALTY,
    ADV_REWARD_KIND,
    ADV_WHITEN_ADVANTAGES,
)
from llm_irl.trainers.configs import GEM_IS_SFT_ONLY, SMOOTHING_IS_SFT_ONLY, SamplingConfig, SFTConfig

DISC_LOSSES = ("gail", "airl", "margin")
DISC_PARAMS = ("policy_ratio", "ref_ratio", "classifier")
DISC_LEVELS = ("sequence", "token")
GAIL_REWARDS = ("neg_log_one_minus_d", "log_d")
POLICY_UPDATES = ("ppo", "reinforce")
BASELINES = ("batch", "per_prompt")
KL_ESTIMATORS = ("k1", "k3")


@dataclass
class GAILConfig(SamplingConfig, SFTConfig):
    """Adversarial IRL (GAIL / AIRL / max-margin): a discriminator against an RL-trained policy.

    Rollouts sample with the `SamplingConfig` fields (max_new_tokens, temperature, top_p); max_new_tokens is
    also capped so that prompt + completion fits max_length.
    """

    # ------------------------------------------------------------------ warm start
    sft_steps: int = field(
        default=0,
        metadata={"help": "Optimiser steps of plain SFT (the demos' NLL) before the adversarial phase starts. The "
                          "policy at that step becomes the KL reference and the discriminator's starting point. 0: "
                          "start adversarial at once from model_name_or_path (give an SFT checkpoint there)."},
    )
    adversarial_learning_rate: float | None = field(
        default=None,
        metadata={"help": "With sft_steps > 0: from the end of the SFT phase on, the learning-rate schedule is scaled "
                          "by adversarial_learning_rate / learning_rate (policy-gradient steps want a smaller rate "
                          "than SFT). None: no change."},
    )

    # ------------------------------------------------------------------ the discriminator
    disc_loss: str = field(
        default="airl",
        metadata={"help": "Discriminator objective on its logit ℓ: 'gail' (BCE, D = σ(ℓ), reward −log(1 − D) or "
                          "log D of the whole completion), 'airl' (BCE; reward ℓ, paid per token as the log-ratio "
                          "terms arise) or 'margin' (hinge ℓ(demo) ≥ ℓ(sample) + Δ − ζ, Δ the token edit "
                          "distance; reward ℓ)."},
    )
    disc_param: str = field(
        default="policy_ratio",
        metadata={"help": "What the discriminator is. 'policy_ratio': ℓ = log q_φ(y|x) − log π(y|x) with q_φ a "
                          "trainable copy of the policy (D = ½ at the start, and the Bayes-optimal ℓ = log p_E − "
                          "log π is in reach); 'ref_ratio': ℓ = log π_ref(y|x) + g_φ(x, y) − log π(y|x) with g_φ a "
                          "score head on a copy of the backbone; 'classifier': ℓ = g_φ(x, y) (minus log π for "
                          "airl). Every ℓ carries a learned bias, zero at the start."},
    )
    disc_level: str = field(
        default="sequence",
        metadata={"help": "'sequence': ℓ scores the whole completion (log-probs summed, a score head at the last "
                          "token); 'token': ℓ scores each action token, a per-token reward."},
    )
    reward_kind: str = field(
        default=ADV_REWARD_KIND,
        metadata={"help": "GAIL policy reward: 'neg_log_one_minus_d' (−log(1 − D), positive) or 'log_d' "
                          "(log D, negative). Used by disc_loss=gail only."},
    )
    disc_steps: int = field(
        default=4,
        metadata={"help": "Discriminator updates per rollout batch, each on a fresh demo batch against samples "
                          "drawn from the replay buffer."},
    )
    disc_batch_size: int | None = field(
        default=None,
        metadata={"help": "Demos (and as many policy samples) per discriminator update; None: "
                          "per_device_train_batch_size."},
    )
    disc_replay_size: int | None = field(
        default=None,
        metadata={"help": "Replay buffer of recent policy samples the discriminator trains on (FIFO, in samples); "
                          "None: 4 rollout batches."},
    )
    disc_learning_rate: float | None = field(
        default=None, metadata={"help": "AdamW learning rate of the discriminator; None uses learning_rate."}
    )
    disc_label_smoothing: float = field(
        default=ADV_LABEL_SMOOTHING,
        metadata={"help": "BCE targets 1 − ε for demos and ε for samples (gail, airl); in [0, 0.5)."},
    )
    disc_grad_penalty: float = field(
        default=ADV_GRAD_PENALTY,
        metadata={"help": "Weight of the R1 penalty: mean squared norm of ∂ℓ/∂(input embeddings) on demos; >= 0."},
    )
    disc_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "disc_param=classifier or ref_ratio: a sequence-classification model (name or directory, "
                          "safetensors) sharing the policy's tokenizer to start g_φ from. None copies the policy's "
                          "backbone with a zero score head."},
    )
    margin_slack_weight: float = field(
        default=ADV_MARGIN_SLACK_WEIGHT,
        metadata={"help": "Weight of the mean slack ζ in the max-margin loss (disc_loss=margin); > 0."},
    )
    margin_l2_weight: float = field(
        default=ADV_MARGIN_L2_WEIGHT,
        metadata={"help": "Weight of mean ℓ² in the max-margin loss: the hinge alone lets the scores drift without "
                          "bound; >= 0."},
    )

    # ------------------------------------------------------------------ sampling
    samples_per_prompt: int = field(
        default=1,
        metadata={"help": "Completions sampled per demo prompt of a batch (k). baseline=per_prompt needs k >= 2."},
    )

    # ------------------------------------------------------------------ the policy update
    policy_update: str = field(
        default="ppo", metadata={"help": "Policy gradient: 'ppo' (clipped ratio) or 'reinforce' (on-policy)."}
    )
    ppo_epochs: int = field(
        default=2,
        metadata={"help": "PPO passes over each rollout batch. Each pass is ppo_minibatches optimiser steps, so a "
                          "batch serves ppo_epochs × ppo_minibatches steps; from the second step on the ratio "
                          "differs from 1 and the clip acts. Ignored (1) for reinforce."},
    )
    ppo_minibatches: int = field(
        default=1,
        metadata={"help": "Minibatches a rollout batch is shuffled into per PPO epoch, one optimiser step each. "
                          "Ignored (1) for reinforce."},
    )
    clip_range: float = field(
        default=ADV_CLIP_RANGE, metadata={"help": "PPO clip ε: ratios are clipped to [1 − ε, 1 + ε]; > 0."}
    )
    gamma: float = field(
        default=ADV_GAMMA,
        metadata={"help": "Discount of the returns-to-go G_t = R_t + γ·G_{t+1} that make the advantages; in [0, 1]. "
                          "1: a sequence reward reaches every token of its completion. 0: each token is credited "
                          "with its own reward only (airl and margin rewards are per token: see "
                          "Discriminator.dense_reward). Below 1, the sum of future log-ratios no longer pays a "
                          "policy for stopping early."},
    )
    baseline: str = field(
        default="batch",
        metadata={"help": "Baseline subtracted from the returns: 'batch' (their mean over the rollout batch) or "
                          "'per_prompt' (RLOO: the mean return of the prompt's other k − 1 samples)."},
    )
    whiten_advantages: bool = field(
        default=ADV_WHITEN_ADVANTAGES,
        metadata={"help": "Scale the advantages to unit variance over the rollout batch (as TRL)."},
    )
    normalize_rewards: bool = field(
        default=False,
        metadata={"help": "Whiten the discriminator rewards over each rollout batch before the KL penalty, so β "
                          "weighs against a unit-scale reward."},
    )
    kl_coef: float = field(
        default=ADV_KL_COEF,
        metadata={"help": "β of the per-token penalty −β·KL_t to the reference (the SFT warm start; under PEFT the "
                          "base model with adapters off). 0 builds no reference unless disc_param=ref_ratio."},
    )
    kl_estimator: str = field(
        default=ADV_KL_ESTIMATOR,
        metadata={"help": "Per-token KL estimate in the penalty: 'k1' (log π − log π_ref) or 'k3' "
                          "((ρ − 1) − log ρ with ρ = π_ref/π, never negative)."},
    )
    missing_eos_penalty: float | None = field(
        default=ADV_MISSING_EOS_PENALTY,
        metadata={"help": "Subtracted from the reward of a sample cut at max_new_tokens without EOS; None: none."},
    )
    mle_weight: float = field(
        default=0.1,
        metadata={"help": "Weight of the demos' token-mean NLL added to the policy loss: a stabiliser that keeps "
                          "the policy on the demonstrations' support. 0 is pure adversarial RL."},
    )
    disable_dropout: bool = field(
        default=True,
        metadata={"help": "Turn dropout off in the policy and the discriminator, so PPO's first ratio is exactly 1 "
                          "and log-probs and rewards are not noisy."},
    )
    eval_disc: bool = field(
        default=True,
        metadata={"help": "evaluate() also samples for the eval prompts and reports the discriminator's held-out "
                          "accuracy (eval_disc_bal_acc) beside the demos' NLL."},
    )

    def __post_init__(self):
        checks = [
            (self.sft_steps >= 0, f"sft_steps must be >= 0, got {self.sft_steps}"),
            (self.adversarial_learning_rate is None or self.adversarial_learning_rate > 0,
             f"adversarial_learning_rate must be > 0 (or None), got {self.adversarial_learning_rate}"),
            (self.adversarial_learning_rate is None or self.sft_steps > 0,
             "adversarial_learning_rate applies from the end of an SFT phase: set sft_steps > 0, or set learning_rate"),
            (self.disc_loss in DISC_LOSSES, f"disc_loss must be one of {DISC_LOSSES}, got {self.disc_loss!r}"),
            (self.disc_param in DISC_PARAMS, f"disc_param must be one of {DISC_PARAMS}, got {self.disc_param!r}"),
            (self.disc_level in DISC_LEVELS, f"disc_level must be one of {DISC_LEVELS}, got {self.disc_level!r}"),
            (self.reward_kind in GAIL_REWARDS, f"reward_kind must be one of {GAIL_REWARDS}, got {self.reward_kind!r}"),
            (self.disc_steps >= 1, f"disc_steps must be >= 1, got {self.disc_steps}"),
            (self.disc_batch_size is None or self.disc_batch_size >= 1,
             f"disc_batch_size must be >= 1 (or None), got {self.disc_batch_size}"),
            (self.disc_replay_size is None or self.disc_replay_size >= 1,
             f"disc_replay_size must be >= 1 (or None), got {self.disc_replay_size}"),
            (self.disc_learning_rate is None or self.disc_learning_rate > 0,
             f"disc_learning_rate must be > 0 (or None for learning_rate), got {self.disc_learning_rate}"),
            (0.0 <= self.disc_label_smoothing < 0.5,
             f"disc_label_smoothing must be in [0, 0.5), got {self.disc_label_smoothing}"),
            (self.disc_grad_penalty >= 0, f"disc_grad_penalty must be >= 0, got {self.disc_grad_penalty}"),
            (self.margin_slack_weight > 0, f"margin_slack_weight must be > 0, got {self.margin_slack_weight}"),
            (self.margin_l2_weight >= 0, f"margin_l2_weight must be >= 0, got {self.margin_l2_weight}"),
            (self.samples_per_prompt >= 1, f"samples_per_prompt must be >= 1, got {self.samples_per_prompt}"),
            (self.policy_update in POLICY_UPDATES,
             f"policy_update must be one of {POLICY_UPDATES}, got {self.policy_update!r}"),
            (self.ppo_epochs >= 1, f"ppo_epochs must be >= 1, got {self.ppo_epochs}"),
            (self.ppo_minibatches >= 1, f"ppo_minibatches must be >= 1, got {self.ppo_minibatches}"),
            (self.clip_range > 0, f"clip_range must be > 0, got {self.clip_range}"),
            (0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma}"),
            (self.baseline in BASELINES, f"baseline must be one of {BASELINES}, got {self.baseline!r}"),
            (self.baseline != "per_prompt" or self.samples_per_prompt >= 2,
             f"baseline=per_prompt needs samples_per_prompt >= 2, got {self.samples_per_prompt}"),
            (self.kl_coef >= 0, f"kl_coef must be >= 0, got {self.kl_coef}"),
            (self.kl_estimator in KL_ESTIMATORS,
             f"kl_estimator must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}"),
            (self.missing_eos_penalty is None or self.missing_eos_penalty >= 0,
             f"missing_eos_penalty must be >= 0 (or None), got {self.missing_eos_penalty}"),
            (self.mle_weight >= 0, f"mle_weight must be >= 0, got {self.mle_weight}"),
            (not self.label_smoothing_factor,
             SMOOTHING_IS_SFT_ONLY.format(trainer="GAIL", regulariser="the discriminator's reward")),
            (self.loss_type != "gem", GEM_IS_SFT_ONLY.format(trainer="GAIL")),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        super().__post_init__()

    @property
    def updates_per_rollout(self) -> int:
        """Optimiser steps one rollout batch serves: ppo_epochs × ppo_minibatches (1 for reinforce)."""
        return self.ppo_epochs * self.ppo_minibatches if self.policy_update == "ppo" else 1

    @property
    def needs_reference(self) -> bool:
        """A frozen reference policy is needed for the KL penalty or for ref_ratio's log π_ref."""
        return self.kl_coef > 0 or self.disc_param == "ref_ratio"
