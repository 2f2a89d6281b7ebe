"""No lost work: a signal ends a run with a checkpoint, and a checkpoint counts only once complete.

- `GracefulStop` turns SIGTERM/SIGINT into "save a checkpoint at the end of this step, then stop".
- `mark_complete` / `last_complete_checkpoint`: a checkpoint folder counts only once every file in
  it is written; the marker is the last file written, so a kill mid-save never yields a corrupt
  "latest" to resume from.
- `last_complete_checkpoint` is also what a NaN or inf loss names when the trainers stop on it
  (`errors.NonFiniteLossError`, raised before the optimiser step so that checkpoint stays good).
"""

from __future__ import annotations

import os
import re
import signal

from transformers import TrainerCallback

COMPLETE_MARKER = ".llm_irl_complete"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(checkpoint_dir: str) -> None:
    path = os.path.join(checkpoint_dir, COMPLETE_MARKER)
    with open(path + ".tmp", "w") as f:
        f.write("complete\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-N` folder in `output_dir` whose save finished, or None."""
    if not os.path.isdir(output_dir):
        return None
    steps = sorted(
        (int(m.group(1)), name)
        for name in os.listdir(output_dir)
        if (m := _CHECKPOINT.match(name)) and os.path.exists(os.path.join(output_dir, name, COMPLETE_MARKER))
    )
    return os.path.join(output_dir, steps[-1][1]) if steps else None


class GracefulStop(TrainerCallback):
    """On SIGTERM or SIGINT: finish the current step, save a checkpoint, stop training."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame):
        if self.received is not None:  # a second signal: the user means it
            raise KeyboardInterrupt
        self.received = signum

    def on_train_begin(self, args, state, control, **kwargs):
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        except ValueError:  # not the main thread: leave signals alone
            self._previous = {}

    def on_step_end(self, args, state, control, **kwargs):
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
