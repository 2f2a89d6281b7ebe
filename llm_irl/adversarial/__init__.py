"""Adversarial IRL (GAIL, AIRL, max-margin): a discriminator against a policy trained by PPO on its reward.

The whole family lives here, apart from the inverse soft-Q trainers it is compared with:

- `losses`: the pure functions (discriminator losses, rewards, advantages, PPO / REINFORCE);
- `discriminator`: ℓ_φ and its parametrisations (policy ratio, reference ratio, classifier);
- `sampling_logprobs`: log-probabilities under the distribution a sample was drawn from (PPO's ratio);
- `buffers`: the discriminator's demo stream and replay buffer, both resumable;
- `config`: `GAILConfig`; `trainer`: `GAILTrainer`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llm_irl.adversarial.config import GAILConfig
    from llm_irl.adversarial.trainer import GAILTrainer

# imported on first use, as `llm_irl.trainers` does: the pure losses load no Trainer
_WHERE = {"GAILConfig": "llm_irl.adversarial.config", "GAILTrainer": "llm_irl.adversarial.trainer"}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(importlib.import_module(_WHERE[name]), name)
    return value


__all__ = ["GAILConfig", "GAILTrainer"]
