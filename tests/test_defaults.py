"""One source of truth for defaults: a pure loss called without a knob computes what its trainer computes
with that knob unset.

Signature defaults are read with `inspect`, config field defaults with `dataclasses.fields`; a pair
that parts fails with both values named. The IQ losses are found, not listed (every function of
`llm_irl.losses` and `llm_irl.chunked` taking `td_weight`), so a new one is checked the day it lands.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from llm_irl import chunked, losses
from llm_irl.adversarial import discriminator as disc
from llm_irl.adversarial import losses as adversarial_losses
from llm_irl.adversarial.config import GAILConfig
from llm_irl.eval_task import EvalConfig
from llm_irl.trainers.configs import IQConfig, SFTConfig

IQ_KNOBS = ("gamma", "td_weight", "td_huber", "alpha", "terminal_td", "policy_terminal_value", "log_entropy")


def config_default(cls, name: str):
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()


def signature_default(fn, name: str):
    return inspect.signature(fn).parameters[name].default


def iq_losses() -> dict[str, object]:
    found = {}
    for module in (losses, chunked):
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and "td_weight" in inspect.signature(fn).parameters:
                found[f"{module.__name__}.{name}"] = fn
    return found


IQ_PAIRS = [(name, fn, knob, IQConfig, knob) for name, fn in iq_losses().items() for knob in IQ_KNOBS
            if knob in inspect.signature(fn).parameters
            and signature_default(fn, knob) is not inspect.Parameter.empty]

# (function, its parameter, config, its field): the adversarial family and SFT, whose names differ
NAMED_PAIRS = [
    (losses.sft_loss, "label_smoothing", SFTConfig, "label_smoothing_factor"),
    (losses.sft_loss, "log_entropy", SFTConfig, "log_entropy"),
    (chunked.chunked_sft_loss, "label_smoothing", SFTConfig, "label_smoothing_factor"),
    (chunked.chunked_sft_loss, "log_entropy", SFTConfig, "log_entropy"),
    (adversarial_losses.gail_disc_loss, "label_smoothing", GAILConfig, "disc_label_smoothing"),
    (adversarial_losses.gail_reward, "kind", GAILConfig, "reward_kind"),
    (adversarial_losses.margin_disc_loss, "slack_weight", GAILConfig, "margin_slack_weight"),
    (adversarial_losses.margin_disc_loss, "l2_weight", GAILConfig, "margin_l2_weight"),
    (adversarial_losses.ppo_clip_loss, "clip_range", GAILConfig, "clip_range"),
    (adversarial_losses.kl_penalty, "kind", GAILConfig, "kl_estimator"),
    (adversarial_losses.policy_advantages, "kl_coef", GAILConfig, "kl_coef"),
    (adversarial_losses.policy_advantages, "kl_estimator", GAILConfig, "kl_estimator"),
    (adversarial_losses.policy_advantages, "missing_eos_penalty", GAILConfig, "missing_eos_penalty"),
    (adversarial_losses.policy_advantages, "gamma", GAILConfig, "gamma"),
    (adversarial_losses.policy_advantages, "whiten_advantages", GAILConfig, "whiten_advantages"),
    (disc.Discriminator.__init__, "reward_kind", GAILConfig, "reward_kind"),
    (disc.Discriminator.build, "reward_kind", GAILConfig, "reward_kind"),
    (disc.Discriminator.loss, "label_smoothing", GAILConfig, "disc_label_smoothing"),
    (disc.Discriminator.loss, "grad_penalty", GAILConfig, "disc_grad_penalty"),
    (disc.Discriminator.loss, "margin_slack_weight", GAILConfig, "margin_slack_weight"),
    (disc.Discriminator.loss, "margin_l2_weight", GAILConfig, "margin_l2_weight"),
]


def test_every_iq_loss_is_found_and_checked():
    # the seven of llm_irl.losses, its reversed_share stat and chunked_iq_loss; each full-logits loss defaults
    # every IQ knob
    assert len(iq_losses()) == 9, sorted(iq_losses())
    for name in ("llm_irl.losses.iq_loss", "llm_irl.losses.iq_value_head_loss", "llm_irl.chunked.chunked_iq_loss"):
        assert {knob for n, _, knob, _, _ in IQ_PAIRS if n == name} == set(IQ_KNOBS) - {"policy_terminal_value"}
    assert {knob for n, _, knob, _, _ in IQ_PAIRS if n == "llm_irl.losses.online_iq_loss"} == set(IQ_KNOBS)


@pytest.mark.parametrize("name, fn, param, config, field", IQ_PAIRS, ids=[f"{p[0]}:{p[2]}" for p in IQ_PAIRS])
def test_iq_loss_defaults_are_the_config_defaults(name, fn, param, config, field):
    got, want = signature_default(fn, param), config_default(config, field)
    assert got == want and type(got) is type(want), f"{name}({param}={got!r}) but {config.__name__}.{field} = {want!r}"


@pytest.mark.parametrize("fn, param, config, field", NAMED_PAIRS, ids=[f"{p[0].__qualname__}:{p[1]}" for p in NAMED_PAIRS])
def test_named_defaults_are_the_config_defaults(fn, param, config, field):
    got, want = signature_default(fn, param), config_default(config, field)
    assert got == want and type(got) is type(want), (
        f"{fn.__qualname__}({param}={got!r}) but {config.__name__}.{field} = {want!r}")


def test_evaluation_discounts_as_training_does():
    # implied rewards are compared across models at one γ: the one IQ trains with unless told otherwise
    assert config_default(EvalConfig, "reward_gamma") == config_default(IQConfig, "gamma")
