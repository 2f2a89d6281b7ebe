"""SPIN: the pure loss against brute force, which side it rewards, the trainer's iterations and reference
(full and LoRA), exact resume, the CLI, and a ground-truth check that self-play alone moves the policy
toward the expert."""

import json
import math
import os

import pytest
import torch
from peft import LoraConfig
from tiny_models import demos, tiny_lm, tokenizer
from transformers import TrainerCallback

from llm_irl import SPINConfig, SPINTrainer, spin_loss
from llm_irl.batching import labelled_row
from llm_irl.soft_q import action_mask, token_logprobs
from llm_irl.spin_objective import SPIN_BETA, sequence_logps
from llm_irl.trainers.spin import _prompt
from llm_irl.trainers.spin_state import REFERENCE_FILE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOK = tokenizer()
LOG2 = math.log(2.0)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ---------------------------------------------------------------- the pure loss


def _brute_sequence_logp(logits: torch.Tensor, labels: list[int]) -> torch.Tensor:
    """Σ_t log softmax(logits[t − 1])[labels[t]] over the actions (labels ≠ −100), one position at a time."""
    total = torch.zeros((), dtype=torch.float64)
    for t in range(1, len(labels)):
        if labels[t] != -100:
            z = logits[t - 1].double()
            total = total + z[labels[t]] - torch.log(torch.exp(z).sum())
    return total


def test_loss_matches_brute_force_on_a_tiny_vocabulary():
    g = torch.Generator().manual_seed(0)
    V, beta = 5, 0.3
    # prompt tokens (−100), completions of different lengths (EOS = 1 included), right padding (−100)
    chosen = torch.tensor([[-100, -100, 2, 3, 1, -100], [-100, 4, 4, 2, 3, 1]])
    rejected = torch.tensor([[-100, -100, 3, 1, -100, -100], [-100, 2, 2, 2, 2, 2]])  # the second is truncated
    logits = {k: torch.randn(2, 6, V, generator=g, requires_grad=k.startswith("policy"))
              for k in ("policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected")}
    labels = {"chosen": chosen, "rejected": rejected}

    def library(name):
        side = name.split("_")[1]
        return sequence_logps(token_logprobs(logits[name], labels[side]), action_mask(labels[side]))

    loss, stats = spin_loss(*(library(k) for k in ("policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected")),
                            beta=beta)
    brute = {k: torch.stack([_brute_sequence_logp(logits[k][i], labels[k.split("_")[1]][i].tolist())
                             for i in range(2)]) for k in logits}
    margin = beta * ((brute["policy_chosen"] - brute["ref_chosen"])
                     - (brute["policy_rejected"] - brute["ref_rejected"]))
    want = torch.stack([-torch.log(1 / (1 + torch.exp(-m))) for m in margin]).mean()
    assert loss.item() == pytest.approx(want.item(), abs=1e-6)
    want_chosen = beta * (brute["policy_chosen"] - brute["ref_chosen"])
    want_rejected = beta * (brute["policy_rejected"] - brute["ref_rejected"])
    assert stats["rewards_chosen"].item() == pytest.approx(want_chosen.mean().item(), abs=1e-6)
    assert stats["rewards_rejected"].item() == pytest.approx(want_rejected.mean().item(), abs=1e-6)
    assert stats["reward_margin"].item() == pytest.approx((want_chosen - want_rejected).mean().item(), abs=1e-6)
    assert stats["reward_accuracy"].item() == (want_chosen > want_rejected).double().mean().item()
    assert stats["logps_chosen"].item() == pytest.approx(brute["policy_chosen"].mean().item(), abs=1e-5)
    # and the gradient reaching the policy's logits is brute force's too
    grads = torch.autograd.grad(loss, [logits["policy_chosen"], logits["policy_rejected"]])
    want_grads = torch.autograd.grad(want, [logits["policy_chosen"], logits["policy_rejected"]])
    for got, expected in zip(grads, want_grads):
        assert torch.allclose(got, expected.float(), atol=1e-6)


def test_the_loss_rewards_the_demonstration_and_not_the_sample():
    """A policy that raised the demonstration and lowered its own sample against π_t is where SPIN wants it:
    loss below log 2, positive margin. A sign flip, or chosen and rejected swapped, lands above log 2."""
    policy_chosen, policy_rejected = torch.tensor([-10.0, -8.0]), torch.tensor([-20.0, -9.0])
    ref_chosen, ref_rejected = torch.tensor([-12.0, -9.0]), torch.tensor([-15.0, -7.0])
    loss, stats = spin_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1)
    assert loss.item() < LOG2
    assert stats["rewards_chosen"].item() == pytest.approx(0.1 * (2 + 1) / 2)
    assert stats["rewards_rejected"].item() == pytest.approx(0.1 * (-5 - 2) / 2)
    assert stats["reward_margin"].item() == pytest.approx(0.1 * (7 + 3) / 2) and stats["reward_accuracy"].item() == 1.0
    assert loss.item() == pytest.approx(-(torch.nn.functional.logsigmoid(torch.tensor([0.7, 0.3]))).mean().item())
    swapped, _ = spin_loss(policy_rejected, policy_chosen, ref_rejected, ref_chosen, beta=0.1)
    assert swapped.item() > LOG2


def test_at_the_reference_the_gradient_raises_the_demo_and_lowers_the_sample():
    """At π_θ = π_t: loss log 2, ∂L/∂log π_θ(y) = −β/2 and ∂L/∂log π_θ(y') = +β/2 per pair (mean over B pairs)."""
    policy_chosen = torch.tensor([-5.0, -7.0], requires_grad=True)
    policy_rejected = torch.tensor([-6.0, -4.0], requires_grad=True)
    loss, stats = spin_loss(policy_chosen, policy_rejected, policy_chosen.detach(), policy_rejected.detach(), beta=0.2)
    assert loss.item() == pytest.approx(LOG2) and stats["reward_margin"].item() == 0.0
    loss.backward()
    assert torch.allclose(policy_chosen.grad, torch.full((2,), -0.2 / 2 / 2))
    assert torch.allclose(policy_rejected.grad, torch.full((2,), 0.2 / 2 / 2))


def test_loss_checks_its_inputs_and_shares_its_default_with_the_config():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="beta must be > 0"):
        spin_loss(x, x, x, x, beta=0.0)
    with pytest.raises(ValueError, match="one shape"):
        spin_loss(x, torch.zeros(2), x, x)
    field = {f.name: f for f in SPINConfig.__dataclass_fields__.values()}["beta"]
    assert field.default == SPIN_BETA == 0.1


@pytest.mark.parametrize("overrides,message", [
    ({"beta": 0.0}, "beta must be > 0"),
    ({"spin_iterations": 0}, "spin_iterations must be >= 1"),
    ({"max_steps": 4, "sft_steps": 2, "spin_iterations": 3}, "max_steps 4 leaves 2 steps after sft_steps 2"),
    ({"spin_learning_rate": 1e-4}, "spin_learning_rate applies from the end of an SFT phase"),
    ({"label_smoothing_factor": 0.1}, "label_smoothing_factor is honoured by the SFT trainer only"),
    ({"temperature": 0.0}, "temperature must be > 0"),
])
def test_config_refuses_with_one_line(overrides, message):
    with pytest.raises(ValueError, match=message) as err:
        SPINConfig(output_dir="unused", **overrides)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- the trainer

TRAIN = dict(max_steps=6, spin_iterations=2, per_device_train_batch_size=4, learning_rate=1e-2, max_new_tokens=6,
             max_length=24, logging_steps=1, save_strategy="no", disable_tqdm=True, report_to=[], seed=3)


class Snapshot(TrainerCallback):
    """The policy's trainable weights at the end of step `step` (= the start of the iteration beginning there)."""

    def __init__(self, step):
        self.step, self.weights = step, None

    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step == self.step:
            self.weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _trainer(tmp_path, peft_config=None, callbacks=None, rows=32, **overrides):
    args = SPINConfig(**{**TRAIN, "output_dir": str(tmp_path), **overrides})
    return SPINTrainer(model=tiny_lm("llama"), args=args, train_dataset=demos(rows), processing_class=TOK,
                       peft_config=peft_config, callbacks=callbacks)


def _iteration_first_steps(trainer) -> list[dict]:
    logs = [log for log in trainer.state.log_history if "spin_loss" in log]
    return [logs[start] for start in trainer.iteration_starts()]


def test_trainer_moves_every_parameter_and_logs_its_terms(tmp_path):
    trainer = _trainer(tmp_path)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert [n for n, p in trainer.model.named_parameters() if torch.equal(p.detach(), before[n])] == []
    log = trainer.state.log_history[0]
    for key in ("spin_loss", "rewards_chosen", "rewards_rejected", "reward_margin", "reward_accuracy", "sample_len",
                "nll", "entropy", "logps_chosen", "logps_rejected"):
        assert key in log and log[key] == log[key], key
    assert 1 <= log["sample_len"] <= TRAIN["max_new_tokens"]
    # each iteration starts at its reference: every log-ratio 0, the loss log 2
    for first in _iteration_first_steps(trainer):
        assert first["spin_loss"] == pytest.approx(LOG2, abs=1e-5) and abs(first["reward_margin"]) < 1e-5
    # within an iteration the policy learns to tell the demos from the samples
    last = [log for log in trainer.state.log_history if "spin_loss" in log][-1]
    assert last["reward_margin"] > 0 and last["spin_loss"] < LOG2
    # and it is the demos it raises against π_t, the samples it lowers: recomputed here, not read from the logs
    rows = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in trainer.train_dataset
            if r["input_ids"] in trainer.samples]
    pairs = [trainer.samples[r["input_ids"]] for r in rows]
    samples = [labelled_row(_prompt(r), p.completion) for r, p in zip(rows, pairs)]
    demo_ratio = torch.tensor(trainer._reference_logps(trainer.model, rows)) - torch.tensor(
        [p.ref_chosen_logp for p in pairs])
    sample_ratio = torch.tensor(trainer._reference_logps(trainer.model, samples)) - torch.tensor(
        [p.ref_rejected_logp for p in pairs])
    assert demo_ratio.mean() > 0 > sample_ratio.mean()


def test_the_reference_is_the_previous_iterate(tmp_path):
    snap = Snapshot(step=3)  # iterations start at steps 0 and 3
    trainer = _trainer(tmp_path, callbacks=[snap])
    initial = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.iteration_starts() == [0, 3] and trainer.samples.iteration == 1
    reference = trainer.reference.state_dict()
    assert reference.keys() >= snap.weights.keys()
    assert all(torch.equal(reference[n], snap.weights[n]) for n in snap.weights)
    assert not all(torch.equal(reference[n], initial[n]) for n in snap.weights)
    assert not all(torch.equal(reference[n], p) for n, p in trainer.model.named_parameters())  # policy moved on
    assert all(not p.requires_grad for p in trainer.reference.model.parameters())


def test_lora_reference_is_a_copy_of_the_adapters_only(tmp_path):
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    snap = Snapshot(step=3)
    trainer = _trainer(tmp_path, peft_config=lora, callbacks=[snap])
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    ref = trainer.reference
    adapters = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert ref.adapters_only and ref.model is None
    assert ref.weights.keys() == adapters and all("lora_" in n for n in adapters)
    base = sum(p.numel() for n, p in trainer.model.named_parameters() if n not in adapters)
    assert sum(w.numel() for w in ref.weights.values()) < base / 4  # the base model is not duplicated
    assert all(torch.equal(ref.weights[n], snap.weights[n]) for n in adapters)  # π_t = the end of iteration 0
    moved = {n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert moved == adapters  # the base stays frozen
    # π_t's adapters are swapped in for a block and the policy's swapped back exactly
    policy = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    ids = torch.tensor([[3, 5, 6, 7]])
    with torch.no_grad(), ref.active(trainer.model) as reference:
        assert all(torch.equal(dict(reference.named_parameters())[n], ref.weights[n]) for n in adapters)
        ref_logits = reference(input_ids=ids).logits
    assert all(torch.equal(p, policy[n]) for n, p in trainer.model.named_parameters())
    with torch.no_grad():
        assert not torch.allclose(trainer.model(input_ids=ids).logits, ref_logits)
    for first in _iteration_first_steps(trainer):
        assert abs(first["reward_margin"]) < 1e-5


def test_both_loss_paths_agree(tmp_path):
    trainer = _trainer(tmp_path)  # loss_chunk_size 0: the chunked LM-head path
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    trainer.model.train()
    chunked, chunked_stats = trainer.demo_loss(trainer.model, batch)  # samples once, outside the loop
    trainer.args.loss_chunk_size = None
    full, full_stats = trainer.demo_loss(trainer.model, batch)  # the same pairs, from the full logits
    assert len(trainer.samples) == 4
    assert full.item() == pytest.approx(chunked.item(), abs=1e-6)
    for key in ("logps_chosen", "logps_rejected", "nll", "sample_len", "entropy"):
        assert full_stats[key].item() == pytest.approx(chunked_stats[key].item(), rel=1e-5, abs=1e-5), key


def test_sft_phase_then_self_play_with_a_scaled_learning_rate(tmp_path):
    trainer = _trainer(tmp_path, max_steps=6, sft_steps=2, spin_iterations=2, spin_learning_rate=1e-3,
                       lr_scheduler_type="constant")
    trainer.train()
    logs = [log for log in trainer.state.log_history if "loss" in log]
    assert all("spin_loss" not in log for log in logs[:2]) and all("spin_loss" in log for log in logs[2:])
    assert [log["learning_rate"] for log in logs] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3, 1e-3, 1e-3])
    assert trainer.iteration_starts() == [2, 4]


@pytest.mark.parametrize("lora,accum", [(False, 1), (True, 1), (False, 2)], ids=["full", "lora", "full-accum2"])
def test_resume_mid_iteration_is_bit_exact(lora, accum, tmp_path):
    """8 demos at batch 4: an epoch is 2 steps, so iteration 1 (steps 3-5) meets demos it sampled for already.
    Resumed from checkpoint-4, mid-iteration, a run ends on the uninterrupted run's weights; without the
    saved reference and pairs it does not."""
    peft = (lambda: LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")) if lora else (
        lambda: None)
    kw = dict(rows=8 * accum, save_strategy="steps", save_steps=4, logging_steps=10, gradient_accumulation_steps=accum)
    straight = _trainer(tmp_path / "straight", peft_config=peft(), **kw)
    straight.train()
    want = {n: p.detach().clone() for n, p in straight.model.named_parameters()}
    checkpoint = tmp_path / "straight" / "checkpoint-4"
    # SPIN's own state: safetensors only (optimizer.pt and the RNG states are Trainer's own files)
    assert {f for f in os.listdir(checkpoint) if f.startswith("spin")} == {REFERENCE_FILE, "spin_samples.safetensors"}

    def resumed(name):
        trainer = _trainer(tmp_path / name, peft_config=peft(), **kw)
        trainer.train(resume_from_checkpoint=str(checkpoint))
        return {n: p.detach() for n, p in trainer.model.named_parameters()}

    got = resumed("resumed")
    assert all(torch.equal(got[n], want[n]) for n in want)
    os.remove(checkpoint / REFERENCE_FILE)
    os.remove(checkpoint / "spin_samples.safetensors")
    assert not all(torch.equal(p, want[n]) for n, p in resumed("without_state").items())


def test_reference_round_trips_through_safetensors_with_tied_weights(tmp_path):
    from llm_irl.modeling import load_model
    from llm_irl.trainers.spin_state import FrozenIterate

    model = load_model("builtin:tiny")
    assert model.config.tie_word_embeddings
    saved = FrozenIterate(model)
    saved.save(str(tmp_path / REFERENCE_FILE))
    other = FrozenIterate(load_model("builtin:tiny", seed=1))
    assert not torch.equal(other.state_dict()["lm_head.weight"], saved.state_dict()["lm_head.weight"])
    other.load(str(tmp_path / REFERENCE_FILE))
    assert all(torch.equal(other.state_dict()[k], v) for k, v in saved.state_dict().items())
    assert other.model.lm_head.weight is other.model.model.embed_tokens.weight  # still tied


def test_evaluation_reports_the_demonstrations_nll(tmp_path):
    trainer = _trainer(tmp_path, max_steps=2, spin_iterations=1)
    trainer.eval_dataset = trainer._tokenize(demos(8, seed=1), TOK, trainer.args, "test")
    trainer.train()
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] == pytest.approx(metrics["eval_nll"]) and metrics["eval_nll"] > 0


def test_cli_round_trip(tmp_path, capsys):
    from llm_irl.cli import main

    out = str(tmp_path / "spin")
    code = main(["train", os.path.join(ROOT, "recipes/quickstart_spin.yaml"), "--max_steps", "4", "--sft_steps", "2",
                 "--spin_iterations", "2", "--max_new_tokens", "8", "--per_device_train_batch_size", "8",
                 "--output_dir", out])
    assert code == 0
    assert {"model.safetensors", "tokenizer.json", "trainer_state.json", "training_args.json"} <= set(os.listdir(out))
    assert REFERENCE_FILE not in os.listdir(out)  # the output is the policy alone
    args = json.load(open(os.path.join(out, "training_args.json")))
    assert args["beta"] == 0.1 and args["spin_iterations"] == 2 and args["sft_steps"] == 2
    capsys.readouterr()
    assert main(["generate", out, "--prompt", "topic1 kalo", "--num_samples", "2", "--max_new_tokens", "5"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


# ---------------------------------------------------------------- ground truth


def _ground_truth(sft_steps: int, spin_steps: int, learning_rate: float, tmp_path) -> list[float]:
    """Forward KL to the Markov expert on held-out expert text: after a brief SFT, then at the end of each
    of 3 SPIN iterations (SPIN alone: no likelihood term)."""
    from llm_irl import SFTConfig, SFTTrainer
    from llm_irl.builtin import builtin_dataset, default_expert
    from llm_irl.metrics.ground_truth import forward_kl

    expert = default_expert()
    held = expert.demonstrations(100, seed=123)
    prompts, completions = [r["prompt"] for r in held], [r["completion"] for r in held]
    common = dict(max_length=32, per_device_train_batch_size=32, save_strategy="no", report_to=[], disable_tqdm=True,
                  logging_steps=50, seed=0)
    data = builtin_dataset("builtin:markov:512")
    sft = SFTTrainer(model="builtin:tiny", train_dataset=data,
                     args=SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=sft_steps, learning_rate=3e-3,
                                    **common))
    sft.train()
    kls = [forward_kl(expert, sft.model, sft.processing_class, prompts, completions)]

    class AtIterationEnds(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            if state.global_step in trainer.iteration_starts()[1:] + [state.max_steps]:
                kls.append(forward_kl(expert, model, sft.processing_class, prompts, completions))

    trainer = SPINTrainer(model=sft.model, train_dataset=data, processing_class=sft.processing_class,
                          callbacks=[AtIterationEnds()],
                          args=SPINConfig(output_dir=str(tmp_path / "spin"), max_steps=spin_steps, spin_iterations=3,
                                          learning_rate=learning_rate, lr_scheduler_type="constant", max_new_tokens=32,
                                          **common))
    trainer.train()
    return kls


def test_self_play_alone_moves_the_policy_toward_the_expert(tmp_path):
    """From a briefly SFT-trained tiny Llama, 3 iterations of 10 steps: forward KL to the expert falls at every
    iteration (measured 2.046 -> 2.024 -> 1.979 -> 1.951 nats/token; ~7 s on one thread)."""
    kls = _ground_truth(sft_steps=30, spin_steps=30, learning_rate=3e-4, tmp_path=tmp_path)
    assert len(kls) == 4
    assert all(later < earlier for earlier, later in zip(kls, kls[1:])), kls
    assert kls[-1] < kls[0] - 0.05, kls


def test_compare_takes_a_spin_arm_through_the_registry(tmp_path):
    from llm_irl.compare import make_plan, run_compare
    from llm_irl.report import write_report

    recipe = {"model_name_or_path": "builtin:tiny", "dataset": "builtin:markov", "eval_dataset": "builtin:markov",
              "max_length": 16, "max_steps": 3, "per_device_train_batch_size": 8, "save_strategy": "no",
              "report_to": "none", "seeds": 1, "k": 2, "num_prompts": 4, "temperatures": [0, 1.0],
              "max_new_tokens": 8, "n_boot": 50, "num_heldout": 10, "other_trainers": False,
              "output_dir": str(tmp_path), "arms": {"sft": {"trainer": "sft"},
                                                    "spin": {"trainer": "spin", "sft_steps": 1, "spin_iterations": 2}}}
    results = run_compare(make_plan(recipe), progress=False, log=lambda line: None)
    write_report(results, str(tmp_path), title="spin")
    assert "spin" in open(tmp_path / "report.md").read()
    state = json.load(open(tmp_path / "runs" / "spin" / "seed0" / "trainer_state.json"))
    assert any("spin_loss" in log for log in state["log_history"])
