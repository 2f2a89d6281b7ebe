"""What the adversarial trainer keeps between steps: fresh demo batches for the discriminator and a replay buffer.

The discriminator trains on its own stream of demonstrations (a fresh batch every update, never
the batch the policy step uses) against policy samples drawn from a FIFO buffer of recent rollouts
(imitation's ``train_disc``): reusing one batch for several updates overfits it, and samples of
the last few policies keep the discriminator from chasing only the newest one. Both are seeded and
carry a ``state_dict`` so that a resumed run draws exactly what the uninterrupted one would have.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from llm_irl.batching import labelled_mask, pad, pad_batch, unpad_rows


class DemoStream:
    """Endless batches of tokenised demonstrations, reshuffled every pass, reproducible from ``seed``."""

    def __init__(self, dataset, batch_size: int, collate: Callable[[list[dict]], dict], seed: int):
        if dataset is None or len(dataset) == 0:
            raise ValueError("the discriminator needs demonstrations: train_dataset is empty")
        self.dataset, self.batch_size, self.collate, self.seed = dataset, batch_size, collate, seed
        self.epoch, self.pos = 0, 0

    def _order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(len(self.dataset), generator=g).tolist()

    def next(self) -> dict:
        """The next ``batch_size`` rows as a collated batch (CPU tensors); a pass's tail joins the next pass."""
        rows, order = [], self._order()
        while len(rows) < self.batch_size:
            if self.pos >= len(order):
                self.epoch, self.pos = self.epoch + 1, 0
                order = self._order()
            take = order[self.pos: self.pos + self.batch_size - len(rows)]
            rows += [self.dataset[i] for i in take]
            self.pos += len(take)
        keys = [k for k in ("input_ids", "decoder_input_ids", "labels") if k in rows[0]]  # the ids and labels
        return self.collate([{k: list(r[k]) for k in keys} for r in rows])

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = state["epoch"], state["pos"]


class ReplayBuffer:
    """The ``capacity`` most recent policy samples, oldest dropped first; uniform draws without replacement.

    A row is ``{"input_ids": [...], "labels": [...]}`` (and an encoder–decoder's ``decoder_input_ids``) plus, when the discriminator needs them,
    labels-aligned ``ref_logprobs`` (the reference is frozen, so they never go stale).
    """

    def __init__(self, capacity: int, seed: int):
        if capacity < 1:
            raise ValueError(f"replay buffer capacity must be >= 1, got {capacity}")
        self.capacity, self.rows = capacity, []
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, batch: dict) -> None:
        """The rows of a right-padded rollout batch (``input_ids``, ``attention_mask``, ``labels``, an
        encoder–decoder's decoder ids and mask, optional ``ref_logprobs``), padding dropped."""
        rows = unpad_rows({k: v.cpu() for k, v in batch.items() if torch.is_tensor(v)})
        if "ref_logprobs" in batch:  # aligned with the labels
            lengths = labelled_mask(batch).sum(-1).tolist()
            for row, logprobs, n in zip(rows, batch["ref_logprobs"].cpu().tolist(), lengths):
                row["ref_logprobs"] = logprobs[:n]
        self.rows = (self.rows + rows)[-self.capacity:]

    def sample(self, n: int, pad_token_id: int) -> dict:
        """``min(n, len)`` distinct rows as a right-padded batch (CPU tensors)."""
        if not self.rows:
            raise ValueError("the replay buffer is empty: add rollouts before drawing from it")
        rows = [self.rows[i] for i in torch.randperm(len(self.rows), generator=self.generator)[:n].tolist()]
        batch = pad_batch(rows, pad_token_id)
        if "ref_logprobs" in rows[0]:
            batch["ref_logprobs"] = pad([r["ref_logprobs"] for r in rows], 0.0, dtype=torch.float32)
        return batch

    def state_dict(self) -> dict:
        return {"rows": self.rows, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])
        self.generator.set_state(state["generator"])


def trim_padding(batch: dict) -> dict:
    """Drop the padding columns that every row of a (sub)batch shares (an encoder–decoder's encoder inputs and
    its labels-aligned decoder columns each to their own width)."""
    width, encoder = int(labelled_mask(batch).sum(-1).max()), int(batch["attention_mask"].sum(-1).max())
    widths = {k: encoder for k in ("input_ids", "attention_mask")} if "decoder_input_ids" in batch else {}
    return {k: v[:, :widths.get(k, width)] if torch.is_tensor(v) and v.dim() == 2 else v for k, v in batch.items()}


def to_device(batch: dict, device) -> dict:
    """A batch's tensors on `device` (other values as they are): pending minibatches saved and restored."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
