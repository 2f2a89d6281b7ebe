"""IQ from a pretrained start: the first steps of full fine-tuning (no LoRA) of SmolLM2-135M-Instruct on
human chat, SFT against IQ with the old defaults (`terminal_td: include`, λ 0.1) and the new ones
(`exclude`, λ 0.03), logged every step (issue 11: "defaults must work from a pretrained start").

run as (after prepare.py; ~10 min of one core):
    .venv/bin/python -m benchmarks.pretrained.start            # -> results/start.md

Every arm is `llm-irl train` with the same data, seed, steps and learning rate; the table is read from
each run's trainer_state.json. A pretrained LM's logits sit at an arbitrary per-state level that the
softmax ignores and the implied reward r = Q(s,a) − γ·V(s') does not, so `td` (mean r²) starts in the
tens; what matters is whether it falls and whether the χ² term dominates the gradient.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STEPS, BATCH, LR = 12, 4, 2e-5
ARMS = {
    "sft": ["--trainer", "sft"],
    "iq, old defaults (include, λ 0.1)": ["--trainer", "iq", "--terminal_td", "include", "--td_weight", "0.1"],
    "iq, defaults (exclude, λ 0.03)": ["--trainer", "iq"],
}
KEYS = ("loss", "grad_norm", "nll", "td", "reward", "v0")


def train(flags: list[str], out: str) -> list[dict]:
    cli = os.path.join(os.path.dirname(sys.executable), "llm-irl")
    cmd = [cli, "train", *flags, "--model_name_or_path", os.path.join(HERE, "model"),
           "--dataset", os.path.join(HERE, "data", "train_pc_first800.jsonl"), "--max_length", "128",
           "--max_steps", str(STEPS), "--per_device_train_batch_size", str(BATCH), "--learning_rate", str(LR),
           "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none", "--seed", "0", "--output_dir", out]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "trainer_state.json")) as f:
        return [e for e in json.load(f)["log_history"] if "loss" in e]


def main() -> None:
    lines = ["# IQ from a pretrained start (benchmarks/pretrained/start.py)", "",
             f"Full fine-tuning (no LoRA) of SmolLM2-135M-Instruct, {STEPS} steps of batch {BATCH}, learning rate "
             f"{LR}, seed 0, logged every step; steps 1, 2, 3, then every third.", "",
             "| arm | step | " + " | ".join(KEYS) + " |", "|---|---|" + "---|" * len(KEYS)]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (arm, flags) in enumerate(ARMS.items()):
            for e in train(flags, os.path.join(tmp, str(i))):
                if e["step"] <= 3 or e["step"] % 3 == 0:
                    cells = [f"{e[k]:.3g}" if k in e else "–" for k in KEYS]
                    lines.append(f"| {arm} | {e['step']} | " + " | ".join(cells) + " |")
            print(f"{arm}: done", flush=True)
    path = os.path.join(HERE, "results", "start.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
