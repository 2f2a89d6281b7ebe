"""GEM (llm_irl.gem) against a brute-force loop written from the paper's formula, its reduction to
cross-entropy, the chunked kernel against full logits, SFTTrainer's loss_type gem, and the config checks."""

import dataclasses
import json
import math
import os

import pytest
import torch
import torch.nn.functional as F
from tiny_models import demos, tiny_lm, tokenizer

from llm_irl import GAILConfig, IQConfig, SFTConfig, SFTTrainer
from llm_irl.gem import chunked_gem_loss, gem_loss
from llm_irl.losses import sft_loss

B, T, H, V = 4, 8, 6, 11
HS = ["linear", "logsigmoid"]


def labels_with_holes(seed=0):
    """HF labels with prompts, padding, a full row and a row without any action (-100 throughout)."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, V, (B, T), generator=g)
    labels = torch.full((B, T), -100)
    labels[0, 3:6] = tokens[0, 3:6]  # prompt of 3, then padding
    labels[1, 1:] = tokens[1, 1:]  # every position an action
    labels[2, 5:] = tokens[2, 5:]  # long prompt
    labels[2, 6] = -100  # a hole inside the completion (e.g. a masked tool turn)
    return labels  # row 3: no action at all


def random_logits(seed=0, dtype=torch.float64, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, T, V, generator=g, dtype=dtype) * scale).requires_grad_(True)


def brute_force_gem(logits, labels, beta, h):
    """−Σ_b q_b·w_b·(log π(a) − log π(b)) at each action position, q and w without gradient, token-mean."""
    total, count = logits.new_zeros(()), 0
    for i in range(logits.shape[0]):
        for t in range(logits.shape[1] - 1):
            a = int(labels[i, t + 1])
            if a == -100:
                continue
            z = logits[i, t]
            log_pi = torch.log_softmax(z, -1)
            zd = z.detach()
            q = torch.softmax(zd / beta, -1)
            for b in range(z.shape[0]):
                w = 1.0 if h == "linear" else 1.0 / (1.0 + math.exp(-0.01 * float(zd[b] - zd[a])))
                total = total - q[b] * w * (log_pi[a] - log_pi[b])
            count += 1
    return total / max(count, 1)


# ------------------------------------------------------------------ (1) the full-logits loss

@pytest.mark.parametrize("h", HS)
@pytest.mark.parametrize("beta", [0.7, 1.0, 2.5])
def test_gem_loss_equals_brute_force(beta, h):
    logits, labels = random_logits(seed=int(beta * 10)), labels_with_holes(seed=1)
    got, stats = gem_loss(logits, labels, beta=beta, h=h)
    want = brute_force_gem(logits, labels, beta, h)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(got, logits)[0], torch.autograd.grad(want, logits)[0],
                               atol=1e-12, rtol=1e-12)
    assert set(stats) == {"gem", "nll", "entropy"}
    torch.testing.assert_close(stats["gem"], want.detach())
    ref_stats = sft_loss(logits, labels)[1]  # nll and entropy: the same numbers SFT logs
    for name in ("nll", "entropy"):
        torch.testing.assert_close(stats[name], ref_stats[name], atol=1e-12, rtol=1e-12, msg=name)


def test_non_action_positions_get_no_gradient_and_count_nothing():
    logits, labels = random_logits(seed=3), labels_with_holes(seed=3)
    loss, _ = gem_loss(logits, labels)
    grad = torch.autograd.grad(loss, logits)[0]
    acting = torch.zeros(B, T, dtype=torch.bool)
    acting[:, :-1] = labels[:, 1:] != -100
    assert grad[~acting].abs().max() == 0 and grad[acting].abs().sum(-1).min() > 0
    # the mean is over action tokens: a row of padding changes nothing
    padded_logits = torch.cat([logits.detach(), torch.randn(1, T, V, dtype=logits.dtype)])
    padded_labels = torch.cat([labels, torch.full((1, T), -100)])
    torch.testing.assert_close(gem_loss(padded_logits, padded_labels)[0], loss.detach())
    empty, stats = gem_loss(logits, torch.full((B, T), -100))
    assert empty.item() == 0 and torch.isfinite(stats["nll"])


# ------------------------------------------------------------------ (2) the reduction to cross-entropy

def test_linear_beta_one_has_the_cross_entropy_gradient():
    """q = π when β = 1, so Σ_b q_b ∇log π(b) = 0 and GEM's gradient is −∇log π(a): the CE gradient."""
    logits, labels = random_logits(seed=4), labels_with_holes(seed=4)
    gem, stats = gem_loss(logits, labels, beta=1.0, h="linear")
    ce, _ = sft_loss(logits, labels)
    torch.testing.assert_close(torch.autograd.grad(gem, logits)[0], torch.autograd.grad(ce, logits)[0],
                               atol=1e-14, rtol=1e-12)
    # its value is CE − H(π): −Σ q log π(a) + Σ π log π
    torch.testing.assert_close(stats["gem"], stats["nll"] - stats["entropy"], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("beta,h", [(0.7, "linear"), (2.0, "linear"), (1.0, "logsigmoid"), (0.7, "logsigmoid")])
def test_other_settings_are_not_cross_entropy(beta, h):
    logits, labels = random_logits(seed=5), labels_with_holes(seed=5)
    gem, _ = gem_loss(logits, labels, beta=beta, h=h)
    ce, _ = sft_loss(logits, labels)
    diff = torch.autograd.grad(gem, logits)[0] - torch.autograd.grad(ce, logits)[0]
    assert diff.abs().max() > 1e-3


# ------------------------------------------------------------------ (3) chunked against full logits

def head_problem(seed, bias, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, H, generator=g, dtype=dtype).requires_grad_(True)
    weight = torch.randn(V, H, generator=g, dtype=dtype).requires_grad_(True)
    b = (torch.randn(V, generator=g, dtype=dtype) * 0.5).requires_grad_(True) if bias else None
    return hidden, weight, b, labels_with_holes(seed)


def _grads(loss, *tensors):
    return torch.autograd.grad(loss, [t for t in tensors if t is not None])


@pytest.mark.parametrize("h", HS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("chunk", [1, 3, None])  # 3 leaves a partial last chunk; None: default_chunk_size
def test_chunked_gem_matches_full_logits(chunk, bias, h):
    hidden, weight, b, labels = head_problem(seed=7 + (chunk or 0), bias=bias)
    want, want_stats = gem_loss(F.linear(hidden, weight, b), labels, beta=0.7, h=h)
    got, got_stats = chunked_gem_loss(hidden, weight, labels, beta=0.7, h=h, chunk_size=chunk, lm_head_bias=b)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert got_stats.keys() == want_stats.keys()
    for name in want_stats:
        torch.testing.assert_close(got_stats[name], want_stats[name], atol=1e-5, rtol=1e-5, msg=name)
    for g, w, name in zip(_grads(got, hidden, weight, b), _grads(want, hidden, weight, b), "hwb"):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5, msg=name)


def test_chunked_gem_bfloat16_and_no_entropy():
    hidden, weight, b, labels = head_problem(seed=9, bias=True)
    hb, wb, bb = (x.detach().bfloat16().requires_grad_(True) for x in (hidden, weight, b))
    want, _ = gem_loss(F.linear(hb, wb, bb), labels, log_entropy=False)
    got, stats = chunked_gem_loss(hb, wb, labels, lm_head_bias=bb, chunk_size=4, log_entropy=False)
    assert got.dtype == torch.float32 and "entropy" not in stats
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for g, w, name in zip(_grads(got, hb, wb, bb), _grads(want, hb, wb, bb), "hwb"):
        assert g.dtype == torch.bfloat16
        torch.testing.assert_close(g.float(), w.float(), atol=2e-2, rtol=2e-2, msg=name)


def test_chunked_gem_without_actions():
    hidden, weight, b, _ = head_problem(seed=2, bias=True)
    loss, stats = chunked_gem_loss(hidden, weight, torch.full((B, T), -100), lm_head_bias=b)
    assert loss.item() == 0 and all(torch.isfinite(v) for v in stats.values())
    loss.backward()
    assert hidden.grad.abs().max() == 0


# ------------------------------------------------------------------ (4) the trainer

def _gem_trainer(tmp_path, **overrides):
    args = SFTConfig(**{"output_dir": str(tmp_path), "max_steps": 4, "per_device_train_batch_size": 8,
                        "learning_rate": 1e-2, "logging_steps": 1, "save_strategy": "no", "max_length": 24,
                        "disable_tqdm": True, "loss_type": "gem", **overrides})
    return SFTTrainer(model=tiny_lm("llama"), args=args, train_dataset=demos(), processing_class=tokenizer())


@pytest.mark.parametrize("chunk", [0, None])
def test_sft_trainer_trains_with_gem(chunk, tmp_path):
    trainer = _gem_trainer(tmp_path, loss_chunk_size=chunk)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert [n for n, p in trainer.model.named_parameters() if torch.equal(p.detach(), before[n])] == []
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 4
    for h in logged:
        for key in ("gem", "nll", "entropy"):
            assert key in h and math.isfinite(h[key]), key


@pytest.mark.parametrize("chunk", [5, None])
@pytest.mark.parametrize("h", HS)
def test_sft_trainer_loss_is_gem(chunk, h, tmp_path):
    """compute_loss with loss_type gem is gem_loss of the model's logits, on both paths, and is not the CE."""
    trainer = _gem_trainer(tmp_path, loss_chunk_size=chunk, gem_beta=0.5, gem_h=h)
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    with torch.no_grad():
        got = trainer.compute_loss(trainer.model, batch)
        logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        want = gem_loss(logits, batch["labels"], beta=0.5, h=h)[0]
        ce = sft_loss(logits, batch["labels"])[0]
    assert abs(want - ce) > 1e-2
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_cli_trains_gem_from_the_sft_recipe(tmp_path):
    from llm_irl.cli import main

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = str(tmp_path / "gem")
    code = main(["train", os.path.join(root, "recipes/quickstart_sft.yaml"), "--loss_type", "gem", "--max_steps", "2",
                 "--logging_steps", "1", "--output_dir", out, "--per_device_eval_batch_size", "64"])
    assert code == 0
    args = json.load(open(os.path.join(out, "training_args.json")))
    assert (args["loss_type"], args["gem_beta"], args["gem_h"]) == ("gem", 0.7, "logsigmoid")


# ------------------------------------------------------------------ (5) configuration

@pytest.mark.parametrize("overrides,message", [
    ({"loss_type": "dft"}, "loss_type must be one of nll, gem, got 'dft'"),
    ({"loss_type": "gem", "gem_beta": 0.0}, "gem_beta must be > 0, got 0.0"),
    ({"gem_beta": -1.0}, "gem_beta must be > 0, got -1.0"),
    ({"loss_type": "gem", "gem_h": "tanh"}, "gem_h must be one of linear, logsigmoid, got 'tanh'"),
    ({"loss_type": "gem", "label_smoothing_factor": 0.1}, "loss_type 'gem' does not take label_smoothing_factor"),
])
def test_sft_config_refuses_bad_gem_settings(overrides, message, tmp_path):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        SFTConfig(output_dir=str(tmp_path), **overrides)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("config_cls", [IQConfig, GAILConfig])
def test_gem_is_refused_outside_sft(config_cls, tmp_path):
    with pytest.raises(ValueError, match="loss_type 'gem' is an SFT loss") as err:
        config_cls(output_dir=str(tmp_path), loss_type="gem")
    assert "\n" not in str(err.value)
    config_cls(output_dir=str(tmp_path), gem_beta=0.5)  # the knobs alone are harmless (loss_type stays nll)


def test_pure_loss_defaults_are_the_configs():
    """gem_loss called without a knob computes what SFTTrainer computes with loss_type gem and the knob unset."""
    import inspect

    fields = {f.name: f.default for f in dataclasses.fields(SFTConfig)}
    for fn in (gem_loss, chunked_gem_loss):
        params = inspect.signature(fn).parameters
        assert params["beta"].default == fields["gem_beta"] == 0.7, fn.__name__
        assert params["h"].default == fields["gem_h"] == "logsigmoid", fn.__name__
        assert params["log_entropy"].default == fields["log_entropy"], fn.__name__
    assert fields["loss_type"] == "nll"


@pytest.mark.parametrize("beta,h", [(0.0, "linear"), (0.7, "tanh")])
def test_pure_losses_refuse_bad_knobs(beta, h):
    logits, labels = random_logits(), labels_with_holes()
    with pytest.raises(ValueError, match="GEM"):
        gem_loss(logits, labels, beta=beta, h=h)
    with pytest.raises(ValueError, match="GEM"):
        chunked_gem_loss(logits[..., :H], torch.randn(V, H, dtype=logits.dtype), labels, beta=beta, h=h)


def test_backward_twice_with_retained_graph():
    logits, labels = random_logits(seed=6), labels_with_holes(seed=6)
    loss, _ = gem_loss(logits, labels)
    first = torch.autograd.grad(loss, logits, retain_graph=True)[0]
    torch.testing.assert_close(torch.autograd.grad(loss, logits)[0], first)
