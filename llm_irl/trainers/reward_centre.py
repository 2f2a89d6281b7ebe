"""The χ² term's centre under `terminal_td: centred`: the mean implied reward of the previous optimiser step.

`centred` regularises the spread of the implied reward around one shared constant c instead of its
distance from 0 (docs/design.md, "Terminal transitions"). Within one batch, c = the batch's own mean
taken without gradient gives exactly the gradient of the reward's variance; but then each micro-batch
of an accumulated step, and each process, would centre on its own mean, and 2 processes of 4 rows
would no longer train as 1 process of 8. So the trainer centres every micro-batch of a step on one c:
the mean over all micro-batches and processes of the previous step (0 before the first step, which
is IQ-Learn's own centre). That is alternating minimisation of the χ² term over θ and c, c's
minimiser being exactly that mean. It is saved in each checkpoint, as JSON, so a resumed run centres
as the uninterrupted one did.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

FILE = "reward_centre.json"
SUM, WEIGHT = "chi2_reward_sum", "chi2_weight_sum"  # the stats `losses.chi2_term` reports under centred


class RewardCentre:
    """The centre in use (`value`) and the running Σ w·r, Σ w of the current step's micro-batches."""

    def __init__(self) -> None:
        self.value = 0.0
        self._reward_sum = 0.0
        self._weight_sum = 0.0

    def observe(self, stats: dict, *, training: bool) -> dict:
        """`stats` without the two sums, which a training micro-batch adds to the step's running totals
        (an evaluation batch's are dropped: evaluation reads the centre, it does not move it)."""
        reward_sum, weight_sum = stats.pop(SUM, None), stats.pop(WEIGHT, None)
        # a non-finite batch (nan_policy skip drops its step) must not poison the next step's centre
        if training and reward_sum is not None and math.isfinite(float(reward_sum)):
            self._reward_sum += float(reward_sum)
            self._weight_sum += float(weight_sum)
        return stats

    def end_step(self, sum_over_processes: Callable[[list[float]], list[float]]) -> None:
        """After the optimiser step: the next step's centre is this step's mean over every process."""
        reward_sum, weight_sum = sum_over_processes([self._reward_sum, self._weight_sum])
        if weight_sum > 0:
            self.value = reward_sum / weight_sum
        self._reward_sum = self._weight_sum = 0.0

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"value": self.value}, f)

    def load(self, path: str) -> None:
        with open(path, encoding="utf-8") as f:
            self.value = float(json.load(f)["value"])
