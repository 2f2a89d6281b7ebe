"""The defaults the pure losses and the trainer configs share: each value written once, read by both.

A loss called without a knob computes what the trainer computes with that knob left unset, so the
README's pure-function example and `llm-irl train` agree (tests/test_defaults.py checks every
pair). This module imports nothing, so the configs (and `llm-irl --help`) read it without torch.
The reasons behind the values are in the configs' help texts and docs/design.md.
"""

from __future__ import annotations

# ---------------------------------------------------------------- inverse soft-Q (IQConfig, losses, chunked)

TERMINAL_TD = ("include", "absorbing", "exclude", "centred", "centred_absorbing")  # the choices of terminal_td
CENTRED = ("centred", "centred_absorbing")  # the terminal_td choices whose χ² term has a (running) centre
POLICY_TERMINAL_VALUE = ("include", "exclude")  # the choices of policy_terminal_value

IQ_GAMMA = 0.99
IQ_TD_WEIGHT = 0.03
IQ_ALPHA = 1.0
# κ > 0: the χ² term is Huber's loss of the reward's residual, quadratic within κ nats of the centre and linear
# beyond, so the term's pull on a demonstrated token's likelihood stays within ±2·td_weight·κ (≤ 0.3 up to λ 0.3)
# and never lowers it while td_weight ≤ 1/(2κ). 0 is IQ-Learn's χ² term, which at λ 0.3 lowers the likelihood of
# the confident tokens, EOS among them, on real text (docs/design.md, "How large a td_weight"; BENCHMARKS.md)
IQ_TD_HUBER = 0.5
# `include` (IQ-Learn's) biases the learned policy toward never stopping; `exclude` reaches the expert's length only
# once V has climbed to ~(future entropy)/(1 − γ), and leaves the return in the stop action; `centred` with a value
# head does neither, but on real text its χ² term lowers EOS's likelihood at every stop (EOS is a confident token);
# `centred_absorbing` learns the value after EOS too, so the stop rewards centre on their own (docs/design.md,
# "Terminal transitions"; BENCHMARKS.md, "Terminal treatments")
IQ_TERMINAL_TD = "centred_absorbing"
IQ_VALUE_PARAM = "head"
# online IQ: under `centred` the policy samples' stops stay in the value term, as in IQ-Learn; leaving them out
# (`exclude`) keeps the stop action's reward high and the length off the expert's (tabular: docs/design.md, "Online IQ")
IQ_POLICY_TERMINAL_VALUE = "include"

# ---------------------------------------------------------------- GEM (SFTConfig loss_type gem, llm_irl.gem)

SFT_LOSS_TYPES = ("nll", "gem")  # the choices of SFTConfig.loss_type
GEM_H_CHOICES = ("linear", "logsigmoid")  # the choices of gem_h
GEM_BETA = 0.7  # the paper's runs (liziniu/GEM scripts: --gem_beta 0.7 --gem_h logsigmoid)
GEM_H = "logsigmoid"

# ---------------------------------------------------------------- adversarial IRL (GAILConfig, its losses)

ADV_GAMMA = 0.5
ADV_CLIP_RANGE = 0.2
ADV_KL_COEF = 0.05
ADV_KL_ESTIMATOR = "k1"
ADV_REWARD_KIND = "neg_log_one_minus_d"
ADV_LABEL_SMOOTHING = 0.0
ADV_GRAD_PENALTY = 0.0
ADV_MARGIN_SLACK_WEIGHT = 1.0
ADV_MARGIN_L2_WEIGHT = 1e-3
ADV_MISSING_EOS_PENALTY = None
ADV_WHITEN_ADVANTAGES = True
