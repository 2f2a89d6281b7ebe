"""Does the GAIL discriminator generalise? Held-out accuracy of each parametrisation against a frozen SFT policy.

run as:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_gail_disc.py [--sft_steps 150 --updates 120]

The policy is the embedded tiny Llama after `--sft_steps` SFT steps on the Markov expert (the
quickstart's optimiser settings), then frozen. Each discriminator (llm_irl.adversarial.discriminator) trains
for `--updates` AdamW steps, each on a fresh batch of demonstrations against a fresh batch of
policy samples, and is scored every `--every` updates on held-out pairs: test-split demos against
samples for test prompts. The reference line is the Bayes-optimal discriminator between expert and
policy, ℓ* = log p_E(y|x) − log π(y|x), computable here because the expert's likelihood is exact.
Prints BCE and balanced accuracy (½ = chance) per parametrisation; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import time

import torch

from llm_irl.builtin import builtin_dataset, default_expert, load_builtin_model
from llm_irl.batching import pad_batch
from llm_irl.data import encode_prompt_completion
from llm_irl.adversarial.discriminator import Discriminator
from llm_irl.rollout import completion_text, generate_rollouts
from llm_irl.soft_q import IGNORE_INDEX, token_logprobs
from llm_irl.trainers.sft import SFTTrainer
from llm_irl.trainers.configs import SFTConfig
from llm_irl.adversarial.losses import gail_disc_loss

ARMS = {  # name -> (param, level, learning rate)
    "classifier seq lr3e-4": ("classifier", "sequence", 3e-4),
    "classifier seq lr3e-3": ("classifier", "sequence", 3e-3),
    "classifier token lr3e-4": ("classifier", "token", 3e-4),
    "policy_ratio seq lr3e-4": ("policy_ratio", "sequence", 3e-4),
    "policy_ratio seq lr1e-3": ("policy_ratio", "sequence", 1e-3),
    "policy_ratio token lr1e-3": ("policy_ratio", "token", 1e-3),
}


def sft_policy(steps: int, out: str):
    model, tok = load_builtin_model("builtin:tiny", seed=0)
    args = SFTConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=32, learning_rate=3e-3,
                     lr_scheduler_type="cosine", warmup_steps=10, max_length=32, save_strategy="no",
                     logging_steps=steps, report_to="none", disable_tqdm=True, seed=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=builtin_dataset("builtin:markov"), processing_class=tok)
    trainer.train()
    return trainer.model.eval().requires_grad_(False), tok


def rows_of(prompt_ids, completion_ids):
    return [{"input_ids": p + c, "labels": [IGNORE_INDEX] * len(p) + c} for p, c in zip(prompt_ids, completion_ids)]


@torch.no_grad()
def with_logprobs(policy, batch):
    batch = dict(batch)
    lp = token_logprobs(policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                        batch["labels"])
    batch["policy_logprobs"] = batch["ref_logprobs"] = lp  # the reference is the frozen policy itself
    return batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sft_steps", type=int, default=150)
    p.add_argument("--updates", type=int, default=120)
    p.add_argument("--every", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--heldout", type=int, default=200)
    p.add_argument("--arms", nargs="*", default=list(ARMS))
    a = p.parse_args()
    torch.manual_seed(0)
    start = time.time()
    policy, tok = sft_policy(a.sft_steps, "runs/bench_gail_disc")
    expert = default_expert()

    def demo_rows(split, n):
        data = builtin_dataset("builtin:markov", split)[:n]
        return data, [encode_prompt_completion(tok, r["prompt"], r["completion"], max_length=64) for r in data]

    def sample_rows(prompts_text, seed):
        prompt_ids = [tok(pt, add_special_tokens=True)["input_ids"] for pt in prompts_text]
        out = generate_rollouts(policy, tok, prompt_ids, max_new_tokens=30, batch_size=256, seed=seed)
        texts = [completion_text(tok, c, t) for c, t in zip(out.completion_ids, out.terminated)]
        return rows_of(out.prompt_ids, out.completion_ids), texts

    train_data, train_demo = demo_rows("train", 2000)
    n_train_samples = a.updates * a.batch
    train_prompts = [train_data[i % len(train_data)]["prompt"] for i in range(n_train_samples)]
    train_samples, _ = sample_rows(train_prompts, seed=1)
    test_data, test_demo = demo_rows("test", a.heldout)
    test_samples, test_texts = sample_rows([r["prompt"] for r in test_data], seed=2)
    print(f"policy after {a.sft_steps} SFT steps; {n_train_samples} training samples; {time.time() - start:.0f}s")

    pad = tok.pad_token_id
    held_demo = with_logprobs(policy, pad_batch(test_demo, pad))
    held_policy = with_logprobs(policy, pad_batch(test_samples, pad))

    # Bayes-optimal ℓ* = log p_E − log π on the held-out pairs
    def expert_lp(data, texts):
        return torch.tensor([expert.score(r["prompt"], t).logprob for r, t in zip(data, texts)])

    opt_demo = expert_lp(test_data, [r["completion"] for r in test_data]) - held_demo["policy_logprobs"].sum(-1)
    opt_policy = expert_lp(test_data, test_texts) - held_policy["policy_logprobs"].sum(-1)
    _, s = gail_disc_loss(opt_demo, opt_policy)
    print(f"{'Bayes-optimal ℓ* = log p_E − log π':32s} held-out BCE {s['loss']:.3f}  bal.acc {s['disc_bal_acc']:.3f}")

    g = torch.Generator().manual_seed(0)
    for name in a.arms:
        param, level, lr = ARMS[name]
        disc = Discriminator.build(policy, param=param, level=level, disc_loss="gail").train()
        disc.requires_grad_(True)
        opt = torch.optim.AdamW(disc.parameters(), lr=lr)
        curve = []
        for u in range(a.updates):
            idx = torch.randint(len(train_demo), (a.batch,), generator=g).tolist()
            demos = with_logprobs(policy, pad_batch([train_demo[i] for i in idx], pad))
            samples = with_logprobs(policy, pad_batch(train_samples[u * a.batch:(u + 1) * a.batch], pad))
            loss, _ = disc.loss(demos, samples)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (u + 1) % a.every == 0:
                with torch.no_grad():
                    _, st = disc.loss(held_demo, held_policy)
                curve.append(f"{st['disc_loss']:.3f}/{st['disc_bal_acc']:.2f}")
        print(f"{name:32s} held-out BCE/bal.acc every {a.every} updates: {' '.join(curve)}", flush=True)
    print(f"total {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
