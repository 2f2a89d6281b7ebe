"""The chunked LM-head losses against the full-logits losses they replace, and lm_head_hidden
against each architecture's own logits."""

import pytest
import torch
import torch.nn.functional as F

from llm_irl.chunked import (
    _select_rows,
    chunked_iq_loss,
    chunked_policy_entropy,
    chunked_sft_loss,
    chunked_token_mdp,
)
from llm_irl.lm_head import lm_head_hidden, plain_lm_head
from llm_irl.losses import iq_loss, sft_loss
from llm_irl.soft_q import policy_entropy, token_mdp
from tiny_models import tiny_lm

EOS = 2
B, T, H, V = 4, 9, 6, 13
CHUNKS = [1, 3, 4, 7, 64]  # 3, 4 and 7 leave a partial last chunk for every batch below
OLD_DEFAULTS = dict(td_weight=0.1, terminal_td="include")  # the IQ losses' defaults these tests were written at


def random_problem(seed=0, dtype=torch.float64, bias=True):
    """Hidden states, an LM head and labels with prompts, EOS, a truncated row and padding."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, H, generator=g, dtype=dtype).requires_grad_(True)
    weight = (torch.randn(V, H, generator=g, dtype=dtype) * 0.8).requires_grad_(True)
    b = (torch.randn(V, generator=g, dtype=dtype) * 0.5).requires_grad_(True) if bias else None
    tokens = torch.randint(3, V, (B, T), generator=g)
    labels = torch.full((B, T), -100)
    labels[0, 2:5] = tokens[0, 2:5]  # prompt of 2, EOS at 5, then padding
    labels[0, 5] = EOS
    labels[1, 1:] = tokens[1, 1:]  # truncated: actions to the last position, no EOS
    labels[2, 4:8] = tokens[2, 4:8]  # EOS as the last token of the tensor
    labels[2, 8] = EOS
    labels[3, 6] = EOS  # a single action, EOS right after a long prompt
    return hidden, weight, b, labels


def grads(loss, *tensors):
    return torch.autograd.grad(loss, [t for t in tensors if t is not None])


def assert_close_all(got, want, tol):
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=tol, rtol=tol)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize(
    "gamma,td_weight,alpha,terminal_td", [(0.99, 0.1, 1.0, "include"), (1.0, 0.5, 1.0, "include"),
                                          (0.9, 1.0, 0.5, "include"), (0.95, 0.0, 2.0, "include"),
                                          (0.9, 0.3, 1.0, "centred_absorbing")]
)
def test_chunked_iq_loss_matches_full_logits(chunk, gamma, td_weight, alpha, terminal_td):
    hidden, weight, bias, labels = random_problem(seed=chunk)
    kw = dict(eos_token_id=EOS, gamma=gamma, td_weight=td_weight, alpha=alpha, terminal_td=terminal_td)
    want, want_stats = iq_loss(F.linear(hidden, weight, bias), labels, **kw)
    got, got_stats = chunked_iq_loss(hidden, weight, labels, chunk_size=chunk, lm_head_bias=bias, **kw)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    assert got_stats.keys() == want_stats.keys()
    for name in want_stats:
        torch.testing.assert_close(got_stats[name], want_stats[name], atol=1e-10, rtol=1e-10, msg=name)
    assert_close_all(grads(got, hidden, weight, bias), grads(want, hidden, weight, bias), 1e-10)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_chunked_sft_loss_matches_full_logits(chunk):
    hidden, weight, bias, labels = random_problem(seed=10 + chunk)
    want, want_stats = sft_loss(F.linear(hidden, weight, bias), labels)
    got, got_stats = chunked_sft_loss(hidden, weight, labels, chunk_size=chunk, lm_head_bias=bias)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    for name in want_stats:
        torch.testing.assert_close(got_stats[name], want_stats[name], atol=1e-10, rtol=1e-10, msg=name)
    assert_close_all(grads(got, hidden, weight, bias), grads(want, hidden, weight, bias), 1e-10)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("chunk", [3, None])
def test_chunked_label_smoothing_matches_full_logits(chunk, bias):
    hidden, weight, b, labels = random_problem(seed=20, bias=bias)
    want, want_stats = sft_loss(F.linear(hidden, weight, b), labels, label_smoothing=0.3)
    got, got_stats = chunked_sft_loss(hidden, weight, labels, chunk_size=chunk, lm_head_bias=b, label_smoothing=0.3)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(got_stats["nll"], want_stats["nll"], atol=1e-10, rtol=1e-10)
    assert_close_all(grads(got, hidden, weight, b), grads(want, hidden, weight, b), 1e-10)


@pytest.mark.parametrize("chunk", [5, None])
def test_float32_and_no_bias(chunk):
    hidden, weight, _, labels = random_problem(seed=3, dtype=torch.float32, bias=False)
    kw = dict(eos_token_id=EOS, gamma=0.99, td_weight=0.3, terminal_td="include")
    want, _ = iq_loss(hidden @ weight.T, labels, **kw)
    got, _ = chunked_iq_loss(hidden, weight, labels, chunk_size=chunk, **kw)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert_close_all(grads(got, hidden, weight), grads(want, hidden, weight), 1e-4)
    want_sft, _ = sft_loss(hidden @ weight.T, labels)
    got_sft, _ = chunked_sft_loss(hidden, weight, labels, chunk_size=chunk)
    torch.testing.assert_close(got_sft, want_sft, atol=1e-4, rtol=1e-4)
    assert_close_all(grads(got_sft, hidden, weight), grads(want_sft, hidden, weight), 1e-4)


def test_bfloat16_follows_the_full_path():
    """Half-precision hidden/W: logits in bf16 as the model's head makes them, V in fp32."""
    hidden, weight, bias, labels = random_problem(seed=4, dtype=torch.float32)
    h, w, b = (x.detach().bfloat16().requires_grad_(True) for x in (hidden, weight, bias))
    kw = dict(eos_token_id=EOS, td_weight=0.2, terminal_td="include")
    want, _ = iq_loss(F.linear(h, w, b), labels, **kw)
    got, _ = chunked_iq_loss(h, w, labels, chunk_size=4, lm_head_bias=b, **kw)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for g, x, name in zip(grads(got, h, w, b), grads(want, h, w, b), "hwb"):
        assert g.dtype == torch.bfloat16
        torch.testing.assert_close(g.float(), x.float(), atol=2e-2, rtol=2e-2, msg=name)


@pytest.mark.parametrize("chunk", [2, 7])
def test_token_mdp_matches_at_actions_with_any_loss(chunk):
    """Arbitrary weights on Q, V and V(s'): the backward is right for every output, not just IQ's mix."""
    hidden, weight, bias, labels = random_problem(seed=5)
    eos = [EOS, 4]  # several EOS ids, as Llama 3
    full = token_mdp(F.linear(hidden, weight, bias), labels, eos_token_id=eos, alpha=0.7)
    mdp = chunked_token_mdp(hidden, weight, labels, eos_token_id=eos, alpha=0.7, chunk_size=chunk, lm_head_bias=bias)
    m = full.mask
    for name in ("mask", "terminal", "actions"):
        assert torch.equal(getattr(mdp, name), getattr(full, name)), name
    for name in ("q", "v", "v_next"):
        torch.testing.assert_close(getattr(mdp, name)[m], getattr(full, name)[m], atol=1e-10, rtol=1e-10, msg=name)
    g = torch.Generator().manual_seed(1)
    wq, wv, wn = (torch.randn(m.shape, generator=g, dtype=torch.float64) for _ in range(3))
    def f(x):
        return ((wq * x.q + wv * x.v.square() + wn * x.v_next) * m).sum()
    assert_close_all(grads(f(mdp), hidden, weight, bias), grads(f(full), hidden, weight, bias), 1e-10)


def test_only_actions_and_their_next_states_are_computed():
    _, _, _, labels = random_problem()
    rows, targets, mask, terminal, _ = _select_rows(labels, EOS, with_next=True)
    n_actions = int(mask.sum())
    bootstraps = int((mask & ~terminal).sum())  # a next state not itself an action state
    assert (targets >= 0).sum() == n_actions
    assert n_actions < len(rows) < B * T
    # rows 0 and 2 end in EOS, row 3 is one EOS: only the truncated row 1 adds a bootstrap-only row
    assert len(rows) == n_actions + 1 and bootstraps >= 1
    sft_rows, *_ = _select_rows(labels, None, with_next=False)
    assert len(sft_rows) == n_actions


def test_chunked_entropy_matches_policy_entropy():
    hidden, weight, bias, labels = random_problem(seed=6)
    mask = labels[:, 1:] != -100
    logits = F.linear(hidden, weight, bias)
    for alpha in (1.0, 0.6):
        want = policy_entropy(logits[:, :-1], mask, alpha)
        got = chunked_policy_entropy(hidden[:, :-1], weight, mask, alpha=alpha, chunk_size=3, lm_head_bias=bias)
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


class LargestSaved:
    """Largest number of elements of any tensor autograd saves for backward."""

    def __enter__(self):
        self.largest = 0
        def pack(t):
            self.largest = max(self.largest, t.numel())
            return t
        self._hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)


def test_no_saved_tensor_holds_the_full_logits():
    """Memory proxy on CPU: nothing B·T·V-sized is kept for backward, only hidden rows, W and V."""
    g = torch.Generator().manual_seed(0)
    b, t, h, v = 2, 32, 8, 2000
    hidden = torch.randn(b, t, h, generator=g, requires_grad=True)
    weight = torch.randn(v, h, generator=g, requires_grad=True)
    labels = torch.randint(3, v, (b, t), generator=g)
    labels[:, :4] = -100
    with LargestSaved() as chunked:
        chunked_iq_loss(hidden, weight, labels, eos_token_id=EOS, chunk_size=16, **OLD_DEFAULTS)[0].backward()
    with LargestSaved() as full:
        iq_loss(hidden @ weight.T, labels, eos_token_id=EOS, **OLD_DEFAULTS)[0].backward()
    assert full.largest >= b * t * v
    assert chunked.largest <= max(v * h, b * t * h) < b * t * v


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for allocator statistics")
def test_cuda_peak_memory_is_lower():
    dev = "cuda"
    b, t, h, v = 4, 512, 64, 32000
    hidden = torch.randn(b, t, h, device=dev, requires_grad=True)
    weight = torch.randn(v, h, device=dev, requires_grad=True)
    labels = torch.randint(3, v, (b, t), device=dev)
    peaks = {}
    for name, fn in {
        "full": lambda: iq_loss(hidden @ weight.T, labels, eos_token_id=EOS, **OLD_DEFAULTS)[0],
        "chunked": lambda: chunked_iq_loss(hidden, weight, labels, eos_token_id=EOS, chunk_size=256, **OLD_DEFAULTS)[0],
    }.items():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn().backward()
        torch.cuda.synchronize()
        peaks[name] = torch.cuda.max_memory_allocated() - base
        hidden.grad = weight.grad = None
    assert peaks["chunked"] < peaks["full"] / 4


# ------------------------------------------------------------------------- Hugging Face models

ARCHS = ["gpt2", "llama", "qwen2", "mistral", "gemma", "phi3", "gpt_neox", "opt"]


@pytest.mark.parametrize("arch", ARCHS)
def test_lm_head_hidden_reproduces_full_logits(arch):
    model = tiny_lm(arch).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (2, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    full = model(input_ids=ids, attention_mask=mask).logits
    head = lm_head_hidden(model, ids, mask)
    assert head is not None
    torch.testing.assert_close(F.linear(head.hidden, head.weight, head.bias), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2"])  # tied and untied heads
def test_chunked_loss_through_a_model_matches_its_full_logits(arch):
    model = tiny_lm(arch).eval()  # no dropout: both passes must see the same network
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, model.config.vocab_size, (3, 12), generator=g)
    labels = ids.clone()
    labels[:, :4] = -100
    labels[0, 9] = EOS
    labels[0, 10:] = -100
    mask = (labels != -100) | (torch.arange(12) < 4)
    kw = dict(eos_token_id=EOS, gamma=0.95, td_weight=0.5, terminal_td="include")
    params = [p for p in model.parameters() if p.requires_grad]
    want, _ = iq_loss(model(input_ids=ids, attention_mask=mask).logits, labels, **kw)
    want_grads = torch.autograd.grad(want, params, allow_unused=True)
    head = lm_head_hidden(model, ids, mask)
    got, _ = chunked_iq_loss(head.hidden, head.weight, labels, lm_head_bias=head.bias, chunk_size=5, **kw)
    got_grads = torch.autograd.grad(got, params, allow_unused=True)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for (name, _), gg, wg in zip(model.named_parameters(), got_grads, want_grads):
        assert (gg is None) == (wg is None), name
        if gg is not None:
            torch.testing.assert_close(gg, wg, atol=1e-4, rtol=1e-4, msg=name)


def test_softcapped_logits_fall_back():
    transformers = pytest.importorskip("transformers")
    config = transformers.Gemma2Config(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    assert config.final_logit_softcapping
    model = transformers.AutoModelForCausalLM.from_config(config)
    assert plain_lm_head(model) is None
    assert lm_head_hidden(model, torch.randint(3, 50, (1, 5))) is None


def test_post_processed_logits_are_caught_at_run_time_once(caplog):
    """A head whose output is altered (here by a hook) fails the last-position check, is said once, then skipped."""
    model = tiny_lm("llama")
    model.get_output_embeddings().register_forward_hook(lambda mod, inp, out: out * 2)
    calls = []
    model.register_forward_pre_hook(lambda mod, args: calls.append(1))
    ids = torch.randint(3, 50, (2, 6))
    assert lm_head_hidden(model, ids) is None
    assert lm_head_hidden(model, ids) is None
    assert len(calls) == 1
    assert [r.getMessage() for r in caplog.records if "falls back to full" in r.getMessage()] == [
        "the loss falls back to full [batch, seq, vocab] logits: hidden·Wᵀ + b does not reproduce the model's logits"]


def test_lora_on_the_head_falls_back():
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(tiny_lm("llama"), peft.LoraConfig(r=2, target_modules=["q_proj", "lm_head"]))
    assert lm_head_hidden(model, torch.randint(3, 50, (1, 5))) is None
    plain = peft.get_peft_model(tiny_lm("llama"), peft.LoraConfig(r=2, target_modules=["q_proj"]))
    assert lm_head_hidden(plain, torch.randint(3, 50, (1, 5))) is not None


@pytest.mark.parametrize("part", ["q", "v"])
def test_a_loss_of_q_alone_or_v_alone(part):
    """Backward with one of the two gradients absent (autograd passes None for it)."""
    hidden, weight, bias, labels = random_problem(seed=8)
    full = token_mdp(F.linear(hidden, weight, bias), labels, eos_token_id=EOS)
    mdp = chunked_token_mdp(hidden, weight, labels, eos_token_id=EOS, chunk_size=3, lm_head_bias=bias)
    def f(x):
        return (getattr(x, part) * x.mask).sum()
    assert_close_all(grads(f(mdp), hidden, weight, bias), grads(f(full), hidden, weight, bias), 1e-10)


def test_a_batch_without_actions_gives_a_zero_loss_and_gradient():
    hidden, weight, bias, labels = random_problem(seed=9)
    labels = torch.full_like(labels, -100)
    for loss, stats in (chunked_iq_loss(hidden, weight, labels, eos_token_id=EOS, lm_head_bias=bias, **OLD_DEFAULTS),
                        chunked_sft_loss(hidden, weight, labels, lm_head_bias=bias)):
        assert loss.item() == 0 and stats["entropy"].item() == 0
        assert all(g.abs().sum() == 0 for g in grads(loss, hidden, weight, bias))
