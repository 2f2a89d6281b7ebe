"""Where an online trainer's step goes: wall seconds per phase, and each phase's share of the step.

A step runs from the moment Trainer fetches its batches (`get_batch_samples`, where online IQ and
SPIN sample) to its end (`on_step_end`, after the optimiser step). Inside it a trainer marks its
phases, `with timer.phase("rollout"): ...`; phases nest, and a phase's seconds exclude those of
phases opened inside it (GAIL's rollout contains the reference's scoring pass, which counts as
scoring only). What no phase claims is `update`: the forward, backward and optimiser step, plus
data loading. So the shares of one step sum to 1.

Logged (docs/logs.md) as `time_step` (seconds per optimiser step), `time_<phase>` (seconds per step)
and `time_<phase>_share` (of `time_step`), each the mean over the steps since the last log.
Phases entered outside a training step (evaluation's sampling) are not counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ROLLOUT, SCORING, DISC, DISC_EVAL, UPDATE = "rollout", "scoring", "disc", "disc_eval", "update"
STEP_KEY = "time_step"


class PhaseTimer:
    """Seconds per phase of the current optimiser step; `end_step` hands them over and starts afresh.

    `phases` are the phases a trainer has, `update` among them (the remainder of the step).
    """

    def __init__(self, phases: tuple[str, ...], clock: Callable[[], float] = time.perf_counter):
        if UPDATE not in phases:
            raise ValueError(f"phases must include {UPDATE!r} (the rest of the step), got {phases}")
        self.phases, self._clock = phases, clock
        self._open: list[list] = []  # [name, start of its current uncounted stretch], innermost last
        self._seconds: dict[str, float] = {}
        self._step_start: float | None = None

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as `name` (one of `phases`, not `update`); a no-op outside a step."""
        if name not in self.phases or name == UPDATE:
            raise ValueError(f"unknown phase {name!r}; this trainer times {', '.join(self.phases)}")
        if self._step_start is None:
            yield
            return
        now = self._clock()
        if self._open:  # the enclosing phase stops counting while this one runs
            self._credit(self._open[-1], now)
        self._open.append([name, now])
        try:
            yield
        finally:
            now = self._clock()
            self._credit(self._open.pop(), now)
            if self._open:
                self._open[-1][1] = now

    def _credit(self, entry: list, now: float) -> None:
        name, start = entry
        self._seconds[name] = self._seconds.get(name, 0.0) + now - start
        entry[1] = now

    def start_step(self) -> None:
        self._step_start, self._seconds = self._clock(), {}

    def end_step(self) -> dict[str, float]:
        """{`time_step`, `time_<phase>` for every phase} of the step that just ended (empty if none began)."""
        if self._step_start is None:
            return {}
        total = self._clock() - self._step_start
        out = {f"time_{p}": self._seconds.get(p, 0.0) for p in self.phases if p != UPDATE}
        out[f"time_{UPDATE}"] = total - sum(out.values())
        out[STEP_KEY] = total
        self._step_start, self._seconds = None, {}
        return out


def with_shares(logs: dict[str, float]) -> dict[str, float]:
    """`logs` plus `time_<phase>_share` = time_<phase> / time_step for every phase logged in it."""
    total = logs.get(STEP_KEY)
    if not total:
        return logs
    for key in [k for k in logs if k.startswith("time_") and k != STEP_KEY and not k.endswith("_share")]:
        logs[f"{key}_share"] = logs[key] / total
    return logs
