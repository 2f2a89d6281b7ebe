"""The χ² term's centre under the centred terminal treatments: the mean implied reward of the previous optimiser step.

`centred` regularises the spread of the implied reward around one shared constant c instead of its
distance from 0 (docs/design.md, "Terminal transitions"). Within one batch, c = the batch's own mean
taken without gradient gives exactly the gradient of the reward's variance; but then each micro-batch
of an accumulated step, and each process, would centre on its own mean, and 2 processes of 4 rows
would no longer train as 1 process of 8. So the trainer centres every micro-batch of a step on one c:
the mean over all micro-batches and processes of the previous step (0 before the first step, which
is IQ-Learn's own centre). That is alternating minimisation of the χ² term over θ and c, c's
minimiser being exactly that mean. `centred_absorbing` keeps a second centre, c_stop, for the stop
actions the same way (the absorbing state's value is v_A = (c_stop − c)/γ). Both are saved in each
checkpoint, as JSON, so a resumed run centres as the uninterrupted one did.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

FILE = "reward_centre.json"
# the sums `losses.chi2_term` reports under the centred treatments: the actions' (all of them under `centred`)
# and, under `centred_absorbing`, the stop actions'
SUMS = (("chi2_reward_sum", "chi2_weight_sum"), ("chi2_stop_reward_sum", "chi2_stop_weight_sum"))


class RewardCentre:
    """The centres in use (`value`, and `stop_value` for the stop actions) and the running Σ w·r, Σ w of the
    current step's micro-batches for each."""

    def __init__(self) -> None:
        self.value = 0.0
        self.stop_value = 0.0
        self._sums = [0.0] * 4

    def observe(self, stats: dict, *, training: bool) -> dict:
        """`stats` without the sums, which a training micro-batch adds to the step's running totals
        (an evaluation batch's are dropped: evaluation reads the centres, it does not move them)."""
        sums = [stats.pop(key, None) for pair in SUMS for key in pair]
        # a non-finite batch (nan_policy skip drops its step) must not poison the next step's centre
        if training and sums[0] is not None and all(s is None or math.isfinite(float(s)) for s in sums):
            self._sums = [total + (0.0 if s is None else float(s)) for total, s in zip(self._sums, sums)]
        return stats

    def end_step(self, sum_over_processes: Callable[[list[float]], list[float]]) -> None:
        """After the optimiser step: the next step's centres are this step's means over every process
        (a centre whose group had no tokens this step stays where it was)."""
        reward_sum, weight_sum, stop_sum, stop_weight = sum_over_processes(self._sums)
        if weight_sum > 0:
            self.value = reward_sum / weight_sum
        if stop_weight > 0:
            self.stop_value = stop_sum / stop_weight
        self._sums = [0.0] * 4

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"value": self.value, "stop_value": self.stop_value}, f)

    def load(self, path: str) -> None:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        self.value = float(saved["value"])
        self.stop_value = float(saved.get("stop_value", 0.0))  # checkpoints of `centred` runs before it existed
