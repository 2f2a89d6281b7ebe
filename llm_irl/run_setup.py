"""What a training run computes with, said once at its start: torch threads, parallelism, loss path.

The three decide a run's speed and memory and none of them shows in the losses: a run that silently
fell back to full [B, T, V] logits, or to DDP where FSDP was asked for, or that shares two cores
with another run at two threads each (measured: GAIL's steps 19x slower, issue 26), looks healthy
until it is slow or out of memory. `describe` is the one line; `DemoTrainer` logs it (logger
`llm_irl`, shown by the CLI) and writes it to `output_dir/run_setup.json`.

Threads: `torch_threads` (every trainer config) sets torch's intra-op threads for the process. The
default, None, keeps what the process has (torch's own default is one thread per physical core, or
`OMP_NUM_THREADS`; torchrun sets 1 per process when it starts several). Runs that share a machine
should split its cores between them (`llm-irl compare` in parallel, the studies: one each): two
2-thread processes on 2 cores wait on each other at every parallel region, and token-by-token
sampling, many small regions per token, suffers most.
"""

from __future__ import annotations

import json
import logging
import os

import torch

from llm_irl.errors import ConfigError
from llm_irl.lm_head import plain_lm_head

logger = logging.getLogger("llm_irl")
FILE = "run_setup.json"


def set_threads(requested: int | None) -> int:
    """torch's intra-op threads: `requested` when given, else left as they are; returns the count in use."""
    if requested is not None:
        torch.set_num_threads(requested)
    return torch.get_num_threads()


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parallelism(trainer) -> str:
    """'single process', 'DDP, N processes', 'FSDP2, N processes', ... as accelerate set the run up."""
    n = trainer.accelerator.num_processes
    if n == 1 and not trainer.is_fsdp_enabled:
        return "single process"
    if trainer.is_fsdp_enabled:
        version = getattr(trainer.accelerator.state.fsdp_plugin, "fsdp_version", 1)
        return f"FSDP{version if version == 2 else ''}, {n} processes"
    if trainer.is_deepspeed_enabled:
        return f"DeepSpeed, {n} processes"
    return f"DDP, {n} processes"


def fsdp_requested(args, env=os.environ) -> bool:
    """Whether the user asked for FSDP: `--fsdp ...` / `fsdp_config`, or an accelerate config that says FSDP."""
    return bool(args.fsdp) or env.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")


def refuse_silent_ddp(trainer) -> None:
    """FSDP asked for but accelerate set up something else (on CPU it runs DDP without a word): stop, in one line."""
    if fsdp_requested(trainer.args) and not trainer.is_fsdp_enabled:
        raise ConfigError(
            f"FSDP was requested (--fsdp / an accelerate FSDP config) but this run would train as "
            f"{parallelism(trainer)} without sharding (on CPU, accelerate sets up DDP instead); drop the FSDP "
            "settings to run DDP, or launch on GPUs")


def loss_path(trainer, model) -> str:
    """Which way the loss reaches the vocabulary: the chunked LM head, or the model's full logits (and why)."""
    if not trainer.chunked_loss:
        return "full logits (this trainer's loss needs them)"
    if trainer.args.loss_chunk_size is None:
        return "full logits (loss_chunk_size None)"
    if plain_lm_head(model) is None:
        return "full logits (the LM head is not a plain linear layer: LoRA on it, soft-capping or scaled logits)"
    return f"chunked LM head (loss_chunk_size {trainer.args.loss_chunk_size or 'auto'})"


def describe(trainer, model) -> dict:
    """The run's setup as a dict (what `run_setup.json` holds)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"torch_threads": torch.get_num_threads(), "usable_cores": usable_cores(),
            "load_average_1min": None if load is None else round(load, 2),
            "parallelism": parallelism(trainer), "loss_path": loss_path(trainer, model),
            "device": str(trainer.args.device)}


def announce(trainer, model) -> dict:
    """Log the run's setup in one line (a second, warning line if the cores look oversubscribed) and save it."""
    setup = describe(trainer, model)
    logger.info("llm-irl run: %d torch thread(s) on %d usable core(s), %s, loss via %s", setup["torch_threads"],
                setup["usable_cores"], setup["parallelism"], setup["loss_path"])
    load = setup["load_average_1min"]
    if load is not None and trainer.args.device.type == "cpu" and load + setup["torch_threads"] > setup["usable_cores"] + 0.5:
        logger.warning("%d torch thread(s) on %d core(s) already carrying load %.1f: sharing cores slows a run several "
                       "times (sampling most); give each run sharing the machine torch_threads = cores / runs",
                       setup["torch_threads"], setup["usable_cores"], load)
    if trainer.args.should_save:
        os.makedirs(trainer.args.output_dir, exist_ok=True)
        with open(os.path.join(trainer.args.output_dir, FILE), "w") as f:
            json.dump(setup, f, indent=1)
    return setup
