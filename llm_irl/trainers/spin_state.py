"""SPIN's state beside the policy: the previous iterate π_t, frozen, and the iteration's self-play samples.

`FrozenIterate` keeps π_t as a copy of what training changes and nothing more. A fully fine-tuned
model gets a frozen deep copy (as any DPO-style reference). Under PEFT only the trainable
parameters, the adapters (and any `modules_to_save`), are copied: π_t is computed by the same
PEFT model with the copied adapter weights swapped in for the duration of a no-grad block and
swapped back after, so the base model is never duplicated.

`SelfPlaySamples` holds, for the current iteration, one rejected completion per demonstration
(sampled from π_t the first time the demonstration comes up in the iteration, then reused, as
the paper generates once per iteration) with π_t's log-probabilities of both sides, which stay
fixed while π_t does.

Both are saved in checkpoints as safetensors (no pickle), so a resumed run trains on the very
pairs, against the very reference, that the uninterrupted run would have.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import NamedTuple

import torch
from safetensors import safe_open
from safetensors.torch import load_file, load_model, save_file, save_model

from llm_irl.modeling import is_peft, unwrap_model

REFERENCE_FILE = "spin_reference.safetensors"


def samples_file(process_index: int, num_processes: int) -> str:
    """One file per process (each samples for its own batches), named as Trainer names its RNG states."""
    return "spin_samples.safetensors" if num_processes <= 1 else f"spin_samples_{process_index}.safetensors"


class FrozenIterate:
    """π_t: a frozen copy of the trainable weights of `model` (the whole model unless it is a PEFT model)."""

    def __init__(self, model: torch.nn.Module):
        self.adapters_only = is_peft(model)
        self.model: torch.nn.Module | None = None  # full fine-tuning: the frozen copy
        self.weights: dict[str, torch.Tensor] = {}  # PEFT: name in the PEFT model -> frozen copy
        if self.adapters_only:
            self.weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        else:
            self.model = copy.deepcopy(unwrap_model(model)).eval().requires_grad_(False)

    def update(self, model: torch.nn.Module) -> None:
        """π_t ← the current weights of `model` (the policy at the start of an iteration)."""
        with torch.no_grad():
            if self.adapters_only:
                params = dict(model.named_parameters())
                for name, frozen in self.weights.items():
                    frozen.copy_(params[name])
            else:
                self.model.load_state_dict(unwrap_model(model).state_dict())

    @contextmanager
    def active(self, model: torch.nn.Module):
        """Yields a module that computes π_t: the frozen copy, or (PEFT) `model` with π_t's adapters
        swapped in until the block ends. Use it without gradients; dropout is the caller's to turn off."""
        if not self.adapters_only:
            yield self.model
            return
        params = dict(model.named_parameters())
        with torch.no_grad():
            current = {name: params[name].detach().clone() for name in self.weights}
            for name, frozen in self.weights.items():
                params[name].copy_(frozen)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, weight in current.items():
                    params[name].copy_(weight)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.weights) if self.adapters_only else self.model.state_dict()

    def save(self, path: str) -> None:
        if self.adapters_only:
            save_file({k: v.contiguous() for k, v in self.weights.items()}, path)
        else:
            save_model(self.model, path)  # tied weights (embeddings = lm_head) stored once

    def load(self, path: str) -> None:
        if self.adapters_only:
            saved = load_file(path)
            if saved.keys() != self.weights.keys():
                raise ValueError(f"{path}: the saved reference adapters do not match this model's trainable weights")
            with torch.no_grad():
                for name, frozen in self.weights.items():
                    frozen.copy_(saved[name])
        else:
            load_model(self.model, path, device=str(next(self.model.parameters()).device))


class Pair(NamedTuple):
    """A demonstration's rejected completion (token ids, EOS included when sampled) and π_t's log-probs."""

    completion: list[int]
    ref_chosen_logp: float
    ref_rejected_logp: float


class SelfPlaySamples:
    """The rejected completions of iteration `iteration`, keyed by the demonstration's token ids."""

    def __init__(self):
        self.iteration: int | None = None
        self.pairs: dict[tuple[int, ...], Pair] = {}

    def reset(self, iteration: int) -> None:
        self.iteration, self.pairs = iteration, {}

    def __contains__(self, demo_ids) -> bool:
        return tuple(demo_ids) in self.pairs

    def __getitem__(self, demo_ids) -> Pair:
        return self.pairs[tuple(demo_ids)]

    def __setitem__(self, demo_ids, pair: Pair) -> None:
        self.pairs[tuple(demo_ids)] = pair

    def __len__(self) -> int:
        return len(self.pairs)

    def save(self, path: str) -> None:
        demos, pairs = list(self.pairs), list(self.pairs.values())
        tensors = {
            "demo_ids": _flat(demos), "demo_lengths": torch.tensor([len(d) for d in demos], dtype=torch.int64),
            "completion_ids": _flat([p.completion for p in pairs]),
            "completion_lengths": torch.tensor([len(p.completion) for p in pairs], dtype=torch.int64),
            # float64 holds the float32 (or float64) log-probs exactly, so resumed losses are bit-identical
            "ref_logps": torch.tensor([[p.ref_chosen_logp, p.ref_rejected_logp] for p in pairs],
                                      dtype=torch.float64).reshape(-1, 2),
        }
        save_file(tensors, path, metadata={"iteration": str(self.iteration)})

    def load(self, path: str) -> None:
        with safe_open(path, "pt") as f:
            iteration = f.metadata()["iteration"]
        t = load_file(path)
        demos = t["demo_ids"].split(t["demo_lengths"].tolist())
        completions = t["completion_ids"].split(t["completion_lengths"].tolist())
        self.iteration = None if iteration == "None" else int(iteration)
        self.pairs = {tuple(d.tolist()): Pair(c.tolist(), lc, lr)
                      for d, c, (lc, lr) in zip(demos, completions, t["ref_logps"].tolist())}


def _flat(rows: list) -> torch.Tensor:
    return torch.tensor([i for row in rows for i in row], dtype=torch.int64)
