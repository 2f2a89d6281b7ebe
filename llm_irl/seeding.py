"""One seeding scheme: every random stream of a run is named by the run seed and integer keys.

A trainer's rollouts use `derive_seed(args.seed, step, rank)` (plus a micro-batch index where a
step holds several), evaluation sampling `derive_seed(seed, temperature_index, batch_index)`, and
`seeded(seed)` draws inside a block from that seed without touching the global RNG. So a run, a
resumed run included, samples what it sampled before, and no two streams coincide: sums such as
`seed + step` would make run 1's step 0 replay run 0's step 1.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit torch seed for the stream `keys` (step, rank, ...) of a run seeded `seed`.

    `np.random.SeedSequence` hashes the whole key, so different keys give unrelated seeds.
    """
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


@contextmanager
def seeded(seed: int | None, device: torch.device | str = "cpu"):
    """Inside the block torch's RNG (CPU, and `device`'s if an accelerator) starts from `seed`;
    after it, the global RNG state is as before. `seed=None`: the global RNG, untouched."""
    device = torch.device(device)
    accelerators = [device] if device.type != "cpu" else []
    device_type = device.type if accelerators else "cuda"
    with torch.random.fork_rng(devices=accelerators, enabled=seed is not None, device_type=device_type):
        if seed is not None:
            torch.manual_seed(seed)
        yield
