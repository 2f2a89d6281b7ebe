"""Adversarial IRL (GAIL, AIRL, max-margin): a discriminator against a policy trained by PPO on its reward.

The whole family lives here, apart from the inverse soft-Q trainers it is compared with:

- `losses`: the pure functions (discriminator losses, rewards, advantages, PPO / REINFORCE);
- `discriminator`: ℓ_φ and its parametrisations (policy ratio, reference ratio, classifier);
- `sampling_logprobs`: log-probabilities under the distribution a sample was drawn from (PPO's ratio);
- `buffers`: the discriminator's demo stream and replay buffer, both resumable;
- `config`: `GAILConfig`; `trainer`: `GAILTrainer`.
"""

from llm_irl.adversarial.config import GAILConfig
from llm_irl.adversarial.trainer import GAILTrainer

__all__ = ["GAILConfig", "GAILTrainer"]
