"""The discriminator of adversarial IRL: its logit ℓ over a completion or each token, its loss, its reward.

D = σ(ℓ) says "demonstration". Three parametrisations of ℓ (``param``), each with a learned bias b
that starts at 0:

- ``policy_ratio``: ℓ = log q_φ(y|x) − log π(y|x) + b, q_φ a trainable copy of the policy. At the
  start q_φ = π, so ℓ = 0 and D = ½; the Bayes-optimal discriminator between the expert and π has
  ℓ* = log p_E − log π, reached at q_φ = p_E: the discriminator only has to learn a language model
  of the demos, a task the network is built for (a classifier head must learn the same density
  ratio from binary labels alone).
- ``ref_ratio``: ℓ = log π_ref(y|x) + g_φ(x, y) − log π(y|x) + b, g_φ a score head on a copy of the
  backbone: the frozen reference is the prior guess of the expert, g_φ learns the correction.
- ``classifier``: ℓ = g_φ(x, y) + b (gail, margin), or g_φ − log π + b (airl: D = e^f/(e^f + π)).

``level="sequence"``: one ℓ per completion (log-probs summed over its action tokens, g_φ read at
its last token). ``level="token"``: one ℓ per action token (ℓ_t uses log π(a_t|s_t) and g_φ at the
position that has read a_t), so every token is one example of its class and gets its own reward.

Batches are dicts of [B, T] tensors in the project's label convention (``input_ids``,
``attention_mask``, ``labels`` with −100 off actions) plus, where ℓ needs them, the labels-aligned
``policy_logprobs`` (log π of the current policy) and ``ref_logprobs`` (log π_ref); the caller
computes those, since the policy and the reference are not this module's.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import AutoConfig, AutoModelForSequenceClassification

from llm_irl.adversarial.losses import gail_disc_loss, gail_reward, margin_disc_loss, text_distances
from llm_irl.defaults import (
    ADV_GRAD_PENALTY,
    ADV_LABEL_SMOOTHING,
    ADV_MARGIN_L2_WEIGHT,
    ADV_MARGIN_SLACK_WEIGHT,
    ADV_REWARD_KIND,
)
from llm_irl.batching import labelled_ids_key, model_inputs
from llm_irl.modeling import auto_model_class
from llm_irl.seq2seq import is_seq2seq
from llm_irl.soft_q import action_mask, token_logprobs

SPEC_FILE = "discriminator.json"
BIAS_FILE = "discriminator_bias.safetensors"


def last_position(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last attended token (right or left padding alike)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (positions * attention_mask.long()).argmax(dim=1)


def action_ids(batch: dict) -> list[list[int]]:
    """Each row's action tokens (the completion), for the max-margin text distance Δ."""
    mask = action_mask(batch["labels"])
    return [row[m].tolist() for row, m in zip(batch[labelled_ids_key(batch)], mask)]


def _net_inputs(batch: dict, embeds: torch.Tensor | None) -> dict:
    """The network's inputs from a batch, the labels-aligned ids (a causal LM's, an encoder–decoder's decoder's)
    given as `embeds` when there are some: the gradient penalty differentiates ℓ with respect to them."""
    kw = model_inputs(batch)
    if embeds is not None:
        key = labelled_ids_key(batch)
        del kw[key]
        kw[key.replace("input_ids", "inputs_embeds")] = embeds
    return kw


def _score_head(net: nn.Module) -> nn.Module:
    head = getattr(net, "score", None)
    if not isinstance(head, nn.Module):
        raise ValueError(
            f"discriminator {type(net).__name__} has no per-token 'score' head; use a decoder-style "
            "AutoModelForSequenceClassification (Llama, Qwen2, GPT-2, Mistral, ...) sharing the policy's tokenizer"
        )
    return head


def classifier_net(policy: nn.Module, name_or_path: str | None = None, trust_remote_code: bool = False) -> nn.Module:
    """g_φ: an ``AutoModelForSequenceClassification`` with one unbounded score.

    Default: the policy's architecture with its backbone weights copied in (a random transformer has
    no features of text, so its early scores would be noise for the policy to chase), score head at 0.
    """
    if name_or_path is not None:
        from llm_irl.modeling import _check_local

        _check_local(name_or_path)
        net = AutoModelForSequenceClassification.from_pretrained(
            name_or_path, num_labels=1, use_safetensors=True, trust_remote_code=trust_remote_code, dtype=policy.dtype,
        )
        policy_vocab = policy.get_input_embeddings().num_embeddings
        if net.get_input_embeddings().num_embeddings < policy_vocab:
            raise ValueError(
                f"disc_model_name_or_path {name_or_path!r} has a smaller vocabulary "
                f"({net.get_input_embeddings().num_embeddings}) than the policy ({policy_vocab}): it must share "
                "the policy's tokenizer"
            )
        _score_head(net)
        return net
    config = copy.deepcopy(policy.config)
    config.num_labels = 1
    config.problem_type = "regression"  # one unbounded score; keeps HF from applying a softmax/CE
    net = AutoModelForSequenceClassification.from_config(config)
    net.base_model.load_state_dict(policy.base_model.state_dict())
    for p in _score_head(net).parameters():
        nn.init.zeros_(p)
    return net.to(dtype=policy.dtype)


class Discriminator(nn.Module):
    """ℓ_φ and what is made of it: ``logits``, ``loss`` (its training objective) and ``reward`` (the policy's)."""

    def __init__(self, net: nn.Module, *, param: str, level: str, disc_loss: str,
                 reward_kind: str = ADV_REWARD_KIND):
        super().__init__()
        self.net, self.param, self.level, self.disc_loss, self.reward_kind = net, param, level, disc_loss, reward_kind
        self.bias = nn.Parameter(torch.zeros((), dtype=torch.float32))

    @classmethod
    def build(cls, policy: nn.Module, *, param: str, level: str, disc_loss: str,
              reward_kind: str = ADV_REWARD_KIND, name_or_path: str | None = None,
              trust_remote_code: bool = False) -> "Discriminator":
        """A discriminator started from ``policy`` (an unwrapped causal LM or encoder–decoder): ℓ = 0 everywhere
        at first. An encoder–decoder's is a copy of it (policy_ratio): a score head reads a causal backbone."""
        if is_seq2seq(policy) and param != "policy_ratio":
            raise ValueError(f"disc_param={param} needs a causal backbone for its per-token score head; an "
                             f"encoder–decoder policy ({policy.config.model_type}) takes disc_param=policy_ratio")
        if param == "policy_ratio":
            if name_or_path is not None:
                raise ValueError("disc_model_name_or_path applies to disc_param=classifier or ref_ratio; "
                                 "policy_ratio copies the policy")
            net = copy.deepcopy(policy)
        else:
            net = classifier_net(policy, name_or_path, trust_remote_code)
        return cls(net, param=param, level=level, disc_loss=disc_loss, reward_kind=reward_kind)

    def restart_from(self, policy: nn.Module) -> None:
        """Copy the policy's weights in again (after a warm-start SFT phase); the score head and bias go to 0."""
        if self.param == "policy_ratio":
            self.net.load_state_dict(policy.state_dict())
        else:
            self.net.base_model.load_state_dict(policy.base_model.state_dict())
            for p in _score_head(self.net).parameters():
                nn.init.zeros_(p)
        nn.init.zeros_(self.bias)

    # ------------------------------------------------------------------ what ℓ needs

    @property
    def subtracts_logpi(self) -> bool:
        """ℓ carries −log π: the likelihood-ratio parametrisations, and AIRL's D = e^f / (e^f + π)."""
        return self.param != "classifier" or self.disc_loss == "airl"

    @property
    def needs_reference(self) -> bool:
        return self.param == "ref_ratio"

    # ------------------------------------------------------------------ the logit

    def token_terms(self, batch: dict, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """The per-token pieces of ℓ [B, T], 0 off actions.

        Token level: ℓ_t itself. Sequence level: pieces that sum to the sequence's ℓ, each where it
        arises: log q_φ(a_t|s_t), log π_ref(a_t|s_t) and −log π(a_t|s_t) on their own token, g_φ and
        the bias on the last action token. Summed, they are ``logits``; kept apart, they give a reward
        that is linear in ℓ (airl, margin) to the tokens that earned it.
        """
        mask = action_mask(batch["labels"])
        kw = _net_inputs(batch, inputs_embeds)
        at_last = torch.zeros_like(mask)
        at_last.scatter_(1, last_position(mask.long()).unsqueeze(1), True)
        at_last &= mask
        once = mask if self.level == "token" else at_last  # where per-sequence pieces go
        if self.param == "policy_ratio":
            terms = token_logprobs(self.net(**kw).logits, batch["labels"])  # log q_φ(a_t|s_t)
        else:
            g = _score_head(self.net)(self.net.base_model(**kw)[0]).squeeze(-1).float()  # g_φ at every position
            terms = g.masked_fill(~once, 0.0)
            if self.param == "ref_ratio":
                terms = terms + batch["ref_logprobs"]
        if self.subtracts_logpi:
            terms = terms - batch["policy_logprobs"].detach()  # the discriminator never moves the policy
        return (terms + self.bias * once).masked_fill(~mask, 0.0)

    def logits(self, batch: dict, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """ℓ of each sequence [B], or of each token [B, T] (0 off actions)."""
        terms = self.token_terms(batch, inputs_embeds)
        return terms if self.level == "token" else terms.sum(-1)

    # ------------------------------------------------------------------ its objective

    def loss(self, demos: dict, samples: dict, *, label_smoothing: float = ADV_LABEL_SMOOTHING,
             grad_penalty: float = ADV_GRAD_PENALTY, margin_slack_weight: float = ADV_MARGIN_SLACK_WEIGHT,
             margin_l2_weight: float = ADV_MARGIN_L2_WEIGHT) -> tuple[torch.Tensor, dict]:
        """The discriminator's loss on demos (class 1) against policy samples (class 0).

        Stats: ``disc_loss``, ``disc_acc_demo``, ``disc_acc_policy``, ``disc_bal_acc``,
        ``disc_entropy`` (gail/airl) and ``disc_reward_gap`` = mean policy reward of demos − of
        samples (how much more the reward pays a demonstration), plus ``disc_grad_penalty`` when on.
        """
        embeds, kernel = None, contextlib.nullcontext()
        if grad_penalty > 0:
            embeds = self.net.get_input_embeddings()(demos[labelled_ids_key(demos)]).detach().requires_grad_(True)
            # the penalty differentiates a gradient: only the plain-math attention kernel has a double backward
            kernel = sdpa_kernel(SDPBackend.MATH)
        with kernel:
            l_demo = self.logits(demos, embeds)
        l_policy = self.logits(samples)
        m_demo, m_policy = action_mask(demos["labels"]), action_mask(samples["labels"])
        if self.disc_loss == "margin":
            # the constraint is over whole texts; at token level a text's score is the sum of its tokens'
            s_demo = l_demo.sum(-1) if self.level == "token" else l_demo
            s_policy = l_policy.sum(-1) if self.level == "token" else l_policy
            n = min(len(s_demo), len(s_policy))  # pairs (demo i, sample i); the prompts need not match
            delta = text_distances(action_ids(demos)[:n], action_ids(samples)[:n])
            loss, raw = margin_disc_loss(s_demo[:n], s_policy[:n], delta.to(s_demo.device),
                                         margin_slack_weight, margin_l2_weight)
            # a ranking loss has no threshold: both accuracies are P(ℓ(demo) > ℓ(its paired sample))
            acc = (s_demo[:n] > s_policy[:n]).float().mean().item()
            stats = {"disc_loss": raw["loss"], "disc_acc_demo": acc, "disc_acc_policy": acc, "disc_bal_acc": acc,
                     "disc_slack": raw["slack"]}
        else:
            if self.level == "token":  # every action token is one example of its class
                flat_demo, flat_policy = l_demo[m_demo], l_policy[m_policy]
            else:
                flat_demo, flat_policy = l_demo, l_policy
            loss, raw = gail_disc_loss(flat_demo, flat_policy, label_smoothing)
            stats = {"disc_" + k if not k.startswith("disc_") else k: v for k, v in raw.items()}
        with torch.no_grad():
            r_demo, r_policy = self.reward(l_demo.detach(), demos), self.reward(l_policy.detach(), samples)
            stats["disc_reward_gap"] = (_per_sequence(r_demo).mean() - _per_sequence(r_policy).mean()).item()
        if embeds is not None:
            # R1 (Mescheder et al. 2018): flat ℓ around the demonstrations, ‖∂ℓ/∂e‖² per demo
            (grad,) = torch.autograd.grad(l_demo.sum(), embeds, create_graph=True)
            penalty = grad.float().pow(2).sum(dim=(1, 2)).mean()
            loss = loss + grad_penalty * penalty
            stats["disc_grad_penalty"] = penalty.item()
        return loss, stats

    # ------------------------------------------------------------------ the policy's reward

    def reward(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """The policy's reward from ℓ (detached): gail ``−log(1 − D)`` or ``log D`` per ``reward_kind``
        (see ``gail_reward``; the default), airl and margin ℓ itself. Per token: 0 off actions."""
        r = gail_reward(logits, self.reward_kind) if self.disc_loss == "gail" else logits.detach()
        if self.level == "token":
            r = r.masked_fill(~action_mask(batch["labels"]), 0.0)
        return r

    @torch.no_grad()
    def dense_reward(self, batch: dict) -> torch.Tensor:
        """The policy's reward [B, T], per token wherever it can be: at token level ``reward`` of each ℓ_t; at
        sequence level, for airl and margin (a reward linear in ℓ), ``token_terms``, which sum to the sequence
        reward (returns-to-go then credit each token with only what follows it); for gail, −log(1 − D) of the
        whole sequence on its last action token."""
        terms = self.token_terms(batch)
        if self.level == "token" or self.disc_loss != "gail":
            return self.reward(terms, batch) if self.level == "token" else terms.detach()
        mask = action_mask(batch["labels"])
        r = self.reward(terms.sum(-1), batch)
        return torch.zeros_like(terms).scatter(1, last_position(mask.long()).unsqueeze(1), r.unsqueeze(1)) * mask

    # ------------------------------------------------------------------ saving

    def save(self, path: str) -> None:
        """``path/`` holds the network as ``save_pretrained`` writes it, the bias, and the spec as JSON."""
        from safetensors.torch import save_file

        os.makedirs(path, exist_ok=True)
        self.net.save_pretrained(path, safe_serialization=True)
        save_file({"bias": self.bias.detach().cpu().contiguous()}, os.path.join(path, BIAS_FILE))
        spec = {"param": self.param, "level": self.level, "disc_loss": self.disc_loss, "reward_kind": self.reward_kind}
        with open(os.path.join(path, SPEC_FILE), "w") as f:
            json.dump(spec, f, indent=2)

    def load_weights(self, path: str) -> None:
        """Weights (network and bias) from a directory ``save`` wrote, into this discriminator in place."""
        from safetensors.torch import load_file

        saved = type(self.net).from_pretrained(path, use_safetensors=True)
        self.net.load_state_dict(saved.state_dict())
        with torch.no_grad():
            self.bias.copy_(load_file(os.path.join(path, BIAS_FILE))["bias"])

    @classmethod
    def load(cls, path: str, trust_remote_code: bool = False) -> "Discriminator":
        """A saved discriminator, to score texts: ``reward(logits(batch), batch)``."""
        with open(os.path.join(path, SPEC_FILE)) as f:
            spec = json.load(f)
        if spec["param"] == "policy_ratio":  # a copy of the policy: a causal LM or an encoder–decoder
            auto = auto_model_class(AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code), path)
        else:
            auto = AutoModelForSequenceClassification
        net = auto.from_pretrained(path, use_safetensors=True, trust_remote_code=trust_remote_code)
        disc = cls(net, param=spec["param"], level=spec["level"], disc_loss=spec["disc_loss"],
                   reward_kind=spec["reward_kind"])
        disc.load_weights(path)
        return disc


def _per_sequence(r: torch.Tensor) -> torch.Tensor:
    return r.sum(-1) if r.dim() == 2 else r
