"""Online IQ's policy rows: how many each batch is owed, and the samples drawn ahead for the next steps.

`RolloutPool` is all the state behind them, so a checkpoint can hold it and a resumed run hands out
exactly the rows the uninterrupted one would have, mid-period included (`rollout_every > 1` draws
the rows of several steps at once; without the pool a resumed run would redraw them at its first
step, for other prompts and from another seed). It is saved as JSON: token ids and four counters,
no pickle.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable

FILE = "rollout_pool.json"


def policy_rows_due(demo_rows: int, policy_mix: float) -> int:
    """Policy rows owed once `demo_rows` demonstrations have been trained on: round(n·m/(1 − m)).

    Counted over the whole run, so that policy rows make `policy_mix` of all rows within half a
    row at every step, whatever the batch size. (A per-batch `max(1, ceil(B·m/(1 − m)))` gives 50%
    at batch 1 and 20% at batch 4 for m = 0.1.)
    """
    return math.floor(demo_rows * policy_mix / (1.0 - policy_mix) + 0.5)


def file_name(process_index: int, num_processes: int) -> str:
    """One file per process (each samples for its own batches), named as Trainer names its RNG states."""
    return FILE if num_processes <= 1 else f"rollout_pool_{process_index}.json"


class RolloutPool:
    """The ledger of policy rows owed and handed out, and the rows of the current sampling period.

    Attributes: `demo_rows_seen` and `policy_rows_used` (the running counts behind
    `policy_rows_due`), `rows` (labelled rows `{"input_ids", "labels"}` drawn at step `drawn_at`)
    and `next` (the first of them not yet handed out).
    """

    def __init__(self, policy_mix: float, rollout_every: int):
        self.policy_mix, self.rollout_every = policy_mix, rollout_every
        self.demo_rows_seen, self.policy_rows_used = 0, 0
        self.rows: list[dict[str, list[int]]] = []
        self.drawn_at: int | None = None
        self.next = 0

    def owe(self, demo_rows: int) -> int:
        """The policy rows owed to a batch of `demo_rows` demonstrations, counted as handed out."""
        self.demo_rows_seen += demo_rows
        owed = policy_rows_due(self.demo_rows_seen, self.policy_mix) - self.policy_rows_used
        self.policy_rows_used += owed
        return owed

    def owed_later(self, demo_rows: int) -> int:
        """The policy rows the coming batches will owe once they bring `demo_rows` more demonstrations."""
        return policy_rows_due(self.demo_rows_seen + demo_rows, self.policy_mix) - self.policy_rows_used

    def take(self, step: int, needed: int, refill: Callable[[], list[dict]]) -> list[dict]:
        """`needed` rows never handed out before, for optimiser step `step`.

        A pool `rollout_every` steps old, or too short for the step, is dropped and `refill()` draws
        the next one first, so no row is trained on twice or more than `rollout_every − 1` steps late.
        """
        if needed == 0:
            return []
        stale = self.drawn_at is None or step - self.drawn_at >= self.rollout_every
        if stale or self.next + needed > len(self.rows):
            self.rows, self.drawn_at, self.next = list(refill()), step, 0
        rows = self.rows[self.next: self.next + needed]
        self.next += needed
        return rows

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict:
        return {"demo_rows_seen": self.demo_rows_seen, "policy_rows_used": self.policy_rows_used,
                "drawn_at": self.drawn_at, "next": self.next,
                "rows": [{"input_ids": list(r["input_ids"]), "labels": list(r["labels"])} for r in self.rows]}

    def load_state_dict(self, state: dict) -> None:
        self.demo_rows_seen, self.policy_rows_used = state["demo_rows_seen"], state["policy_rows_used"]
        self.drawn_at, self.next = state["drawn_at"], state["next"]
        self.rows = [{"input_ids": list(r["input_ids"]), "labels": list(r["labels"])} for r in state["rows"]]

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.state_dict(), f)

    def load(self, path: str) -> bool:
        """Restore from `path`; False (and nothing changed) when there is no such file, as in checkpoints
        written before the pool was saved."""
        if not os.path.exists(path):
            return False
        with open(path) as f:
            self.load_state_dict(json.load(f))
        return True
