"""Adversarial IRL for language models (DESIGN.md §3): GAIL, AIRL and structured max-margin in one trainer.

A discriminator / reward model ``f`` scores (prompt, completion) pairs, or every token of them, and
the policy is trained by RL on the reward it implies. Each optimizer step:

1. take a demo batch (prompt + completion, labels −100 on the prompt) from the Trainer's dataloader;
2. sample one completion per demo prompt from the current policy (``generate_rollouts``);
3. ``disc_steps`` discriminator updates on demos against samples, with its own AdamW:

   - ``gail``:   BCE, demos = 1, samples = 0, D = σ(f);
   - ``airl``:   the same BCE on the logit ``f − log π`` (D = exp f / (exp f + π)). At sequence level
     ``log π(y|x) = Σ_t log π(y_t | x, y_<t)`` is the policy's whole-completion log-probability, so
     ``f(x, y)`` is a sequence reward and the optimum is π(y|x) ∝ exp f(x, y): MaxEnt IRL over texts.
     At token level the logit is ``f(s_t, a_t) − log π(a_t|s_t)`` per token (Fu et al. 2018). log π is
     the sampling policy's (``old_logprobs`` for samples, the same step's forward pass for demos),
     detached. Scale: a completion's −log π is tens of nats, so at sequence level D starts saturated
     and f must grow to that scale before it separates anything; the token level (−log π of a
     token: a few nats) learns much sooner, and ``normalize_rewards`` keeps either reward's scale sane;
   - ``margin``: hinge on ``f(demo) ≥ f(sample) + Δ(demo, sample) − ζ`` with Δ the normalised
     token edit distance between a demo and the sample drawn for the same prompt;

4. rewards of the samples from the updated discriminator (``gail_reward`` / ``airl_reward`` / ``f``),
   optionally whitened, then a per-token KL penalty to a frozen reference:

       R_t = r_disc(t) − kl_coef · (log π_old(a_t|s_t) − log π_ref(a_t|s_t))

   where a sequence-level reward sits on the last token. Returns-to-go ``G_t = Σ_{t'≥t} γ^(t'−t)·R_t'``
   minus a mean baseline are the advantages: with ``kl_coef = 0`` and ``gamma = 1`` a sequence
   reward is simply broadcast to every token of its completion; ``gamma = 0`` credits each token
   with its own (per-token) reward only;
5. policy loss, PPO-clip or REINFORCE on those advantages, plus ``mle_weight × NLL(demos)``; the
   Trainer does the backward and the optimizer step, so scheduling, clipping, gradient
   accumulation, mixed precision and checkpoints are the Trainer's.

``ppo_epochs``: one PPO epoch is one optimizer step; a rollout batch (and its advantages) is reused
for ``ppo_epochs`` consecutive optimizer steps, and only then are new samples drawn and the
discriminator updated. The MLE term always uses the step's fresh demo batch.

The reference for the KL penalty (only when ``kl_coef > 0``): with PEFT it is the base model with the
adapters disabled (``model.disable_adapter()``, no second copy); otherwise a frozen deep copy of
the policy made when the trainer is built (so start from the SFT checkpoint you want to stay near).

Evaluation (``trainer.evaluate``) reports the demos' NLL only: it samples nothing and never
touches the discriminator.

Notes from the embedded default (tiny Llama on the Markov expert, ``recipes/quickstart_gail.yaml``):
the discriminator must learn the expert's structure from binary labels, which is slower than MLE
learns it, so it needs several updates per batch (``disc_steps``) at a high enough learning rate
to keep up; once the policy's samples are as good as an SFT model's, this tiny discriminator can
no longer tell them from demos (D → ½, rewards → constant). Per-token GAIL rewards
``−log(1 − D) > 0`` pay for every token, so summed over returns-to-go (``gamma = 1``) they
lengthen completions; at token level ``gamma = 0`` trained best there. Whitening an undecided
discriminator's rewards (``normalize_rewards``) turns its noise into unit-variance advantages that
drown the MLE term: keep it for airl, whose raw rewards are large.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForSequenceClassification

from llm_irl.adversarial_losses import (
    airl_disc_loss,
    airl_reward,
    discounted_returns,
    gail_disc_loss,
    gail_reward,
    margin_disc_loss,
    masked_mean,
    ppo_clip_loss,
    reinforce_loss,
    text_distances,
    whiten,
)
from llm_irl.losses import sft_loss
from llm_irl.rollout import generate_rollouts
from llm_irl.soft_q import action_mask, policy_entropy, token_logprobs
from llm_irl.trainers.base import DemoTrainer
from llm_irl.trainers.configs import SFTConfig

DISC_LOSSES = ("gail", "airl", "margin")
GAIL_REWARDS = ("neg_log_one_minus_d", "log_d")
POLICY_UPDATES = ("ppo", "reinforce")
DISC_LEVELS = ("sequence", "token")
DISCRIMINATOR_DIR = "discriminator"


@dataclass
class GAILConfig(SFTConfig):
    """Adversarial IRL (GAIL / AIRL / max-margin): a discriminator against an RL-trained policy."""

    disc_loss: str = field(
        default="gail",
        metadata={"help": "Discriminator objective: 'gail' (BCE, D = σ(f)), 'airl' (BCE on the logit f − log π) "
                          "or 'margin' (hinge f(demo) ≥ f(sample) + Δ − ζ, Δ the token edit distance)."},
    )
    reward_kind: str = field(
        default="neg_log_one_minus_d",
        metadata={"help": "GAIL policy reward: 'neg_log_one_minus_d' (−log(1 − D), positive) or 'log_d' "
                          "(log D, negative). Used by disc_loss=gail only."},
    )
    policy_update: str = field(
        default="ppo", metadata={"help": "Policy gradient: 'ppo' (clipped ratio) or 'reinforce' (mean baseline)."}
    )
    clip_range: float = field(default=0.2, metadata={"help": "PPO clip ε: ratios are clipped to [1 − ε, 1 + ε]; > 0."})
    ppo_epochs: int = field(
        default=1,
        metadata={"help": "PPO epochs per rollout batch: each batch of samples is reused for this many optimizer "
                          "steps before new samples are drawn. Ignored (1) for reinforce, which is on-policy."},
    )
    kl_coef: float = field(
        default=0.05,
        metadata={"help": "β of the per-token penalty −β·(log π − log π_ref) on the reward. The reference is the "
                          "base model with adapters disabled under PEFT, else a frozen copy of the initial policy. "
                          "0 builds no reference."},
    )
    mle_weight: float = field(
        default=0.1,
        metadata={"help": "Weight of the demos' token-mean NLL added to the policy loss: a stabiliser that keeps "
                          "the policy on the demonstrations' support. 0 is pure adversarial RL."},
    )
    disc_steps: int = field(
        default=1, metadata={"help": "Discriminator updates per new rollout batch (on the same demos and samples)."}
    )
    disc_learning_rate: float | None = field(
        default=None, metadata={"help": "AdamW learning rate of the discriminator; None uses learning_rate."}
    )
    disc_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Discriminator: a sequence-classification model (name or directory, safetensors) sharing "
                          "the policy's tokenizer. None builds one from the policy's config and copies the policy's "
                          "backbone weights into it, with a zero-initialised score head."},
    )
    disc_level: str = field(
        default="sequence",
        metadata={"help": "'sequence': f scores the whole (prompt, completion) at its last token; 'token': f scores "
                          "each action token (the score head on every position), a per-token reward."},
    )
    gamma: float = field(
        default=1.0,
        metadata={"help": "Discount of the returns-to-go G_t = R_t + γ·G_{t+1} that make the advantages; in [0, 1]. "
                          "1: a sequence reward reaches every token of its completion. 0: each token is credited "
                          "with its own reward only (per-token rewards at disc_level=token; lower variance)."},
    )
    normalize_rewards: bool = field(
        default=False,
        metadata={"help": "Whiten the discriminator rewards over each rollout batch (before the KL penalty). "
                          "Recommended for airl, whose reward f − log π carries a whole completion's −log π (tens "
                          "of nats). Off by default: whitening gives an undecided discriminator's noise unit "
                          "variance, while raw gail/margin rewards shrink to a constant as D → ½."},
    )
    max_new_tokens: int = field(
        default=64,
        metadata={"help": "Longest sampled completion; also capped so prompt + completion fits max_length."},
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the rollouts; > 0."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus top_p of the rollouts; in (0, 1]."})
    margin_slack_weight: float = field(
        default=1.0, metadata={"help": "Weight of the mean slack ζ in the max-margin loss (disc_loss=margin); > 0."}
    )
    margin_l2_weight: float = field(
        default=1e-3,
        metadata={"help": "Weight of mean f² in the max-margin loss: the hinge alone lets the scores drift without "
                          "bound; >= 0."},
    )

    def __post_init__(self):
        checks = [
            (self.disc_loss in DISC_LOSSES, f"disc_loss must be one of {DISC_LOSSES}, got {self.disc_loss!r}"),
            (self.reward_kind in GAIL_REWARDS, f"reward_kind must be one of {GAIL_REWARDS}, got {self.reward_kind!r}"),
            (self.policy_update in POLICY_UPDATES,
             f"policy_update must be one of {POLICY_UPDATES}, got {self.policy_update!r}"),
            (self.disc_level in DISC_LEVELS, f"disc_level must be one of {DISC_LEVELS}, got {self.disc_level!r}"),
            (0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma}"),
            (self.clip_range > 0, f"clip_range must be > 0, got {self.clip_range}"),
            (self.ppo_epochs >= 1, f"ppo_epochs must be >= 1, got {self.ppo_epochs}"),
            (self.kl_coef >= 0, f"kl_coef must be >= 0, got {self.kl_coef}"),
            (self.mle_weight >= 0, f"mle_weight must be >= 0, got {self.mle_weight}"),
            (self.disc_steps >= 1, f"disc_steps must be >= 1, got {self.disc_steps}"),
            (self.disc_learning_rate is None or self.disc_learning_rate > 0,
             f"disc_learning_rate must be > 0 (or None for learning_rate), got {self.disc_learning_rate}"),
            (self.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}"),
            (self.temperature > 0, f"temperature must be > 0, got {self.temperature}"),
            (0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}"),
            (self.margin_slack_weight > 0, f"margin_slack_weight must be > 0, got {self.margin_slack_weight}"),
            (self.margin_l2_weight >= 0, f"margin_l2_weight must be >= 0, got {self.margin_l2_weight}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        super().__post_init__()


# ----------------------------------------------------------------------------- tensor helpers


def demo_prompts(input_ids: torch.Tensor, labels: torch.Tensor) -> list[list[int]]:
    """Each row's tokens before its first action: the prompt a policy sample continues.

    Multi-turn demos give their first assistant turn's context; later turns stay in the demo.
    """
    first = action_mask(labels).int().argmax(dim=1).clamp_min(1).tolist()
    return [row[:n] for row, n in zip(input_ids.tolist(), first)]


def action_ids(input_ids: torch.Tensor, labels: torch.Tensor) -> list[list[int]]:
    """Each row's action tokens (the completion), for the max-margin text distance Δ."""
    mask = action_mask(labels)
    return [row[m].tolist() for row, m in zip(input_ids, mask)]


def _pad_right(x: torch.Tensor, length: int, value) -> torch.Tensor:
    return F.pad(x, (0, length - x.shape[1]), value=value)


def _last_position(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last attended token (right or left padding alike)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (positions * attention_mask.long()).argmax(dim=1)


def _is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


# ----------------------------------------------------------------------------- the discriminator


def _score_head(disc: nn.Module) -> nn.Module:
    head = getattr(disc, "score", None)
    if not isinstance(head, nn.Module):
        raise ValueError(
            f"discriminator {type(disc).__name__} has no per-token 'score' head; use a decoder-style "
            "AutoModelForSequenceClassification (Llama, Qwen2, GPT-2, Mistral, ...) sharing the policy's tokenizer"
        )
    return head


def build_discriminator(policy: nn.Module, args: GAILConfig) -> nn.Module:
    """The reward model f: an ``AutoModelForSequenceClassification`` with ``num_labels=1``.

    Default: the policy's own architecture and config with its backbone weights copied in. A random
    transformer has no features of text, so its early rewards would be noise for the policy to chase;
    starting from the policy's (typically SFT) weights is what RLHF reward models do. The score head
    starts at zero, so D = ½ and every reward is equal until the discriminator has learnt something.
    The price is a second model and its optimizer state; to save memory pass
    ``disc_model_name_or_path`` to a smaller model with the same tokenizer.
    """
    if args.disc_model_name_or_path is not None:
        from llm_irl.modeling import _check_local

        _check_local(args.disc_model_name_or_path)
        disc = AutoModelForSequenceClassification.from_pretrained(
            args.disc_model_name_or_path, num_labels=1, use_safetensors=True,
            trust_remote_code=args.trust_remote_code, dtype=policy.dtype,
        )
        policy_vocab = policy.get_input_embeddings().num_embeddings
        if disc.get_input_embeddings().num_embeddings < policy_vocab:
            raise ValueError(
                f"disc_model_name_or_path {args.disc_model_name_or_path!r} has a smaller vocabulary "
                f"({disc.get_input_embeddings().num_embeddings}) than the policy ({policy_vocab}): it must share "
                "the policy's tokenizer"
            )
    else:
        config = copy.deepcopy(policy.config)
        config.num_labels = 1
        config.problem_type = "regression"  # one unbounded score; keeps HF from applying a softmax/CE
        disc = AutoModelForSequenceClassification.from_config(config)
        disc.base_model.load_state_dict(policy.base_model.state_dict())
        disc.to(dtype=policy.dtype)
    head = _score_head(disc)
    if args.disc_model_name_or_path is None:
        for p in head.parameters():
            nn.init.zeros_(p)
    return disc


# ----------------------------------------------------------------------------- the trainer


class GAILTrainer(DemoTrainer):
    """GAIL / AIRL / max-margin adversarial IRL over any ``AutoModelForCausalLM``.

    Attributes beyond ``Trainer``'s: ``discriminator`` (the reward model f), ``disc_optimizer``
    (its AdamW) and ``ref_model`` (the frozen copy for the KL penalty, or None: none needed, or PEFT).
    """

    config_class = GAILConfig
    # the loss mixes a policy-gradient term over samples with the demos' NLL: not a demo token-mean,
    # so Trainer divides it by the accumulation steps instead of rescaling by demo tokens
    token_mean_loss = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        a = self.args
        disc = self.discriminator
        if disc.config.pad_token_id is None:  # HF's own sequence pooling needs it (we pool by attention mask)
            disc.config.pad_token_id = self.processing_class.pad_token_id
        disc.to(a.device)
        self.disc_optimizer = torch.optim.AdamW(disc.parameters(), lr=a.disc_learning_rate or a.learning_rate)
        self.ref_model = None
        policy = self.accelerator.unwrap_model(self.model)
        if a.kl_coef > 0 and not _is_peft(policy):
            self.ref_model = copy.deepcopy(policy).eval().requires_grad_(False)
        self._rollouts: dict[int, dict] = {}  # micro-batch index in the step -> reusable rollout batch
        self._step_seen, self._micro = -1, 0

    def prepare_model(self, model, args):
        # Built here, before PEFT wraps the policy, so the backbone copy is the plain model's weights.
        # The discriminator is not a submodule: it has its own optimizer and is saved on its own.
        self.discriminator = build_discriminator(model, args)
        return model

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def rollout(self, model, demos: dict, seed: int | None = None) -> dict:
        """One policy completion per demo prompt, as a right-padded labels batch on the device.

        Keys: input_ids, attention_mask, labels, old_logprobs (log π at temperature 1, labels-aligned),
        ref_logprobs (or None), completions (list of token-id lists).
        """
        a = self.args
        policy = self.accelerator.unwrap_model(model)
        prompts = demo_prompts(demos["input_ids"], demos["labels"])
        max_new = a.max_new_tokens
        if a.max_length is not None:  # keep samples inside the lengths demos have (and position embeddings)
            max_new = min(max_new, a.max_length - max(len(p) for p in prompts))
        out = generate_rollouts(
            policy, self.processing_class, prompts, max_new_tokens=max(max_new, 1), temperature=a.temperature,
            top_p=a.top_p, num_samples=1, batch_size=len(prompts), seed=seed,
        )
        batch = {k: v.to(a.device) for k, v in out.to_batch(self.processing_class.pad_token_id).items()}
        batch["completions"] = out.completion_ids
        batch["ref_logprobs"] = self._reference_logprobs(policy, batch) if a.kl_coef > 0 else None
        return batch

    @torch.no_grad()
    def _reference_logprobs(self, policy, batch: dict) -> torch.Tensor:
        kw = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        if self.ref_model is not None:
            logits = self.ref_model(**kw).logits
        else:  # PEFT: the base model is the reference, adapters off; eval mode so dropout adds no noise
            was_training = policy.training
            policy.eval()
            try:
                with policy.disable_adapter():
                    logits = policy(**kw).logits
            finally:
                policy.train(was_training)
        return token_logprobs(logits, batch["labels"])

    # ------------------------------------------------------------------ discriminator

    def _disc_scores(self, batch: dict) -> torch.Tensor:
        """f of each sequence [B] (score head at the last attended token) or of each token [B, T].

        At token level the hidden state at position t has read s_t and a_t, so ``f[:, t]`` scores the
        action ``labels[:, t]``; the same score head serves both levels.
        """
        disc = self.discriminator
        hidden = disc.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
        scores = _score_head(disc)(hidden).squeeze(-1).float()  # [B, T]
        if self.args.disc_level == "token":
            return scores
        return scores.gather(1, _last_position(batch["attention_mask"]).unsqueeze(1)).squeeze(1)

    def discriminator_loss(self, demos: dict, samples: dict, demo_logprobs: torch.Tensor | None = None):
        """The configured discriminator loss on demos (positives) against policy samples.

        ``demo_logprobs``: log π of the demo tokens (labels-aligned), needed by airl only.
        Returns ``(loss, stats)`` with stats ``disc_loss``, ``disc_acc_demo``, ``disc_acc_policy``.
        """
        a = self.args
        f_demo, f_policy = self._disc_scores(demos), self._disc_scores(samples)
        m_demo, m_policy = action_mask(demos["labels"]), action_mask(samples["labels"])
        logpi_demo, logpi_policy = demo_logprobs, samples["old_logprobs"]
        per_token = a.disc_level == "token"
        if a.disc_loss == "margin":
            # the constraint is over whole texts; at token level a text's score is the sum of its tokens'
            if per_token:
                f_demo, f_policy = (f_demo * m_demo).sum(-1), (f_policy * m_policy).sum(-1)
            delta = text_distances(action_ids(demos["input_ids"], demos["labels"]), samples["completions"])
            loss, raw = margin_disc_loss(f_demo, f_policy, delta.to(f_demo.device), a.margin_slack_weight,
                                         a.margin_l2_weight)
            # no absolute threshold in a ranking loss: both accuracies are P(f(demo) > f(its sample))
            acc = (f_demo > f_policy).float().mean().item()
            return loss, {"disc_loss": raw["loss"], "disc_acc_demo": acc, "disc_acc_policy": acc,
                          "disc_slack": raw["slack"]}
        if per_token:  # every action token is one example of its class
            f_demo, f_policy = f_demo[m_demo], f_policy[m_policy]
            if a.disc_loss == "airl":
                logpi_demo, logpi_policy = logpi_demo[m_demo], logpi_policy[m_policy]
        elif a.disc_loss == "airl":  # sequence level: log π(y|x) = Σ_t log π(y_t | x, y_<t)
            logpi_demo, logpi_policy = logpi_demo.sum(-1), logpi_policy.sum(-1)
        if a.disc_loss == "gail":
            loss, raw = gail_disc_loss(f_demo, f_policy)
        else:
            loss, raw = airl_disc_loss(f_demo, logpi_demo, f_policy, logpi_policy)
        return loss, {"disc_loss": raw["loss"], "disc_acc_demo": raw["disc_acc_demo"],
                      "disc_acc_policy": raw["disc_acc_policy"]}

    def discriminator_step(self, demos: dict, samples: dict, demo_logprobs: torch.Tensor | None = None) -> dict:
        """``disc_steps`` AdamW updates of the discriminator on one demo batch against one sample batch.

        Returns the stats of the first update, i.e. measured on samples the discriminator has not yet
        trained on: a generalisation measure rather than how well it memorised this batch.
        """
        a = self.args
        if a.disc_loss == "airl" and demo_logprobs is None:
            with torch.no_grad():
                logits = self.model(input_ids=demos["input_ids"], attention_mask=demos["attention_mask"]).logits
            demo_logprobs = token_logprobs(logits, demos["labels"])
        disc = self.discriminator
        disc.train()
        first = None
        for _ in range(a.disc_steps):
            loss, stats = self.discriminator_loss(demos, samples, demo_logprobs)
            self.disc_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._all_reduce_disc_grads()
            if a.max_grad_norm and a.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(disc.parameters(), a.max_grad_norm)
            self.disc_optimizer.step()
            first = first or stats
        disc.eval()
        return first

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
        """Raw discriminator reward of each sample [B] (sequence) or each action token [B, T] (token).

        gail: ``−log(1 − D)`` or ``log D``; airl: ``f − log π`` (the discriminator's logit);
        margin: ``f``. Detached; before whitening and the KL penalty.
        """
        a = self.args
        self.discriminator.eval()
        f = self._disc_scores(samples)
        logpi = samples["old_logprobs"]
        if a.disc_level == "sequence":
            logpi = logpi.sum(-1)
        if a.disc_loss == "gail":
            r = gail_reward(f, a.reward_kind)
        elif a.disc_loss == "airl":
            r = airl_reward(f, logpi)
        else:
            r = f.detach()
        if a.disc_level == "token":
            r = r.masked_fill(~action_mask(samples["labels"]), 0.0)
        return r

    def advantages(self, raw_rewards: torch.Tensor, samples: dict) -> tuple[torch.Tensor, dict]:
        """Per-token advantages [B, T]: returns-to-go of (normalised) rewards minus the KL penalty, minus a baseline.

            R_t = r_disc(t) − β·(log π_old(a_t|s_t) − log π_ref(a_t|s_t)),  G_t = Σ_{t'≥t} γ^(t'−t)·R_t',
            A_t = G_t − b,   b = mean of G over the batch's action tokens.

        A sequence reward is r_disc at the last action token (so G_t = r for every t when β = 0, γ = 1).
        """
        a = self.args
        mask = action_mask(samples["labels"])
        r = raw_rewards
        if a.normalize_rewards:
            r = whiten(r, None if a.disc_level == "sequence" else mask)
        if a.disc_level == "sequence":
            last = _last_position(mask.long())
            r = torch.zeros_like(samples["old_logprobs"]).scatter(1, last.unsqueeze(1), r.unsqueeze(1).float())
        stats = {}
        if samples["ref_logprobs"] is not None:
            kl = (samples["old_logprobs"] - samples["ref_logprobs"]).masked_fill(~mask, 0.0)  # k1 estimator
            r = r - a.kl_coef * kl
            stats["kl"] = kl.sum(-1).mean().item()  # KL(π‖π_ref) of whole completions
        returns = discounted_returns(r, mask, gamma=a.gamma)
        adv = (returns - masked_mean(returns, mask)).masked_fill(~mask, 0.0)
        return adv, stats

    # ------------------------------------------------------------------ the loss

    def _micro_batch_index(self) -> int:
        """Which micro-batch of the current optimizer step this is (0 without gradient accumulation)."""
        if self.state.global_step != self._step_seen:
            self._step_seen, self._micro = self.state.global_step, 0
        self._micro += 1
        return self._micro - 1

    def _policy_forward(self, model, demos: dict, samples: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Demos and samples in one forward pass (one graph: what DDP expects), logits split back."""
        T = max(demos["input_ids"].shape[1], samples["input_ids"].shape[1])
        pad = self.processing_class.pad_token_id
        input_ids = torch.cat([_pad_right(demos["input_ids"], T, pad), _pad_right(samples["input_ids"], T, pad)])
        attention = torch.cat([_pad_right(demos["attention_mask"], T, 0), _pad_right(samples["attention_mask"], T, 0)])
        logits = model(input_ids=input_ids, attention_mask=attention).logits
        n = demos["input_ids"].shape[0]
        return logits[:n, : demos["input_ids"].shape[1]], logits[n:, : samples["input_ids"].shape[1]]

    def demo_loss(self, model, inputs):
        """``L = policy_loss(samples) + mle_weight · NLL(demos)``, after the discriminator's update."""
        a = self.args
        if not model.training:  # evaluation: the demos' NLL, no sampling, no discriminator update
            logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
            return sft_loss(logits, inputs["labels"], log_entropy=False)

        micro = self._micro_batch_index()
        reuse = a.ppo_epochs if a.policy_update == "ppo" else 1
        fresh = micro not in self._rollouts or self.state.global_step % reuse == 0
        if fresh:
            # a seed per (step, micro-batch, rank): runs reproduce, resumed ones included
            seed = a.seed + 1_000_003 * (self.state.global_step * a.gradient_accumulation_steps + micro)
            samples = self.rollout(model, inputs, seed=(seed + 7919 * a.process_index) % 2**31)
        else:
            samples = self._rollouts[micro]

        demo_logits, sample_logits = self._policy_forward(model, inputs, samples)
        nll, _ = sft_loss(demo_logits, inputs["labels"], log_entropy=False)
        mask = action_mask(samples["labels"])
        logprobs = token_logprobs(sample_logits, samples["labels"])

        if fresh:
            demo_logprobs = token_logprobs(demo_logits.detach(), inputs["labels"])
            disc_stats = self.discriminator_step(inputs, samples, demo_logprobs)
            raw = self.sample_rewards(samples)
            samples["advantages"], reward_stats = self.advantages(raw, samples)
            samples["stats"] = {
                **disc_stats,
                **reward_stats,
                # the mean raw discriminator return of a sample (sum of token rewards at token level)
                "reward": (raw if raw.dim() == 1 else raw.sum(-1)).mean().item(),
                "sample_len": mask.sum(-1).float().mean().item(),
            }
            self._rollouts[micro] = samples

        if a.policy_update == "ppo":
            policy_loss, pg = ppo_clip_loss(logprobs, samples["old_logprobs"], samples["advantages"], mask,
                                            a.clip_range)
            pg_stats = {"clip_frac": pg["clip_frac"], "approx_kl": pg["approx_kl"]}
        else:
            policy_loss, pg_stats = reinforce_loss(logprobs, samples["advantages"], mask), {}
        mle_loss = a.mle_weight * nll
        loss = policy_loss + mle_loss if a.mle_weight > 0 else policy_loss
        stats = {
            **samples["stats"],
            **pg_stats,
            "policy_loss": policy_loss.detach(),
            "nll": nll.detach(),
        }
        if a.log_entropy:
            stats["entropy"] = policy_entropy(sample_logits[:, :-1], mask[:, 1:])
        return loss, stats

    # ------------------------------------------------------------------ saving

    def _save(self, output_dir=None, state_dict=None):
        """The policy as usual, plus the discriminator in ``output_dir/discriminator/`` (safetensors)."""
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            path = os.path.join(output_dir or self.args.output_dir, DISCRIMINATOR_DIR)
            self.discriminator.save_pretrained(path)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Resuming restores the discriminator's weights too (its AdamW moments start afresh)."""
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, DISCRIMINATOR_DIR)
        if os.path.isdir(path):
            saved = type(self.discriminator).from_pretrained(path, use_safetensors=True)
            self.discriminator.load_state_dict(saved.state_dict())
