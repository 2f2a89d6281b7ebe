"""The terminal-state length bias of the χ² term, measured exactly on a tabular MDP (docs/design.md).

A Markov expert over S states (the state is the last token) stops with probability 0.2 per step.
The model has free logits per state, Q[s, ·], so whatever length it learns is the objective's
choice, not a capacity limit. We fit `iq_loss` to 2,000 expert rows and read the learned policy's
exact expected length off its transition matrix.
"""

import pytest
import torch

from llm_irl.losses import iq_loss
from llm_irl.tasks.tabular import EOS, S, expected_length, expert_rows


def fit_length(input_ids, labels, *, td_weight, terminal_td, gamma=0.99, td_huber=0.0):
    """The expected length at the optimum of the loss with IQ-Learn's χ² term (td_huber 0, whatever the default:
    Huber's loss moves the optimum by a few percent, tests/test_terminal_convergence.py)."""
    q = torch.zeros(S + 1, S + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([q], max_iter=500, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss, _ = iq_loss(q[input_ids], labels, eos_token_id=EOS, gamma=gamma, td_weight=td_weight,
                          terminal_td=terminal_td, log_entropy=False, td_huber=td_huber)
        loss.backward()
        return loss

    for _ in range(4):
        opt.step(closure)
    return expected_length(q.detach())


@pytest.fixture(scope="module")
def demos():
    return expert_rows()


@pytest.fixture(scope="module")
def sft_length(demos):
    return fit_length(*demos, td_weight=0.0, terminal_td="include")


def test_sft_learns_the_demonstrations_length(demos, sft_length):
    _, labels = demos
    empirical = float((labels != -100).sum(1).double().mean())
    assert sft_length == pytest.approx(empirical, rel=0.05)


@pytest.mark.parametrize("td_weight", [0.1, 1.0])
@pytest.mark.parametrize("terminal_td", ["exclude", "centred"])
def test_exclude_and_centred_keep_the_expert_length_at_the_optimum(demos, sft_length, td_weight, terminal_td):
    assert fit_length(*demos, td_weight=td_weight, terminal_td=terminal_td) == pytest.approx(sft_length, abs=0.05)


def test_including_it_lengthens_samples_and_absorbing_weight_only_softens_that(demos, sft_length):
    include = fit_length(*demos, td_weight=1.0, terminal_td="include")
    absorbing = fit_length(*demos, td_weight=1.0, terminal_td="absorbing")
    assert include > sft_length + 2.0  # the survival bias, unmistakably
    assert sft_length < absorbing <= include + 1e-6


@pytest.mark.parametrize("terminal_td", ["include", "absorbing", "exclude", "centred"])
def test_chunked_path_applies_the_same_terminal_handling(terminal_td):
    from llm_irl.chunked import chunked_iq_loss

    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(3, 6, 8, dtype=torch.float64, generator=g, requires_grad=True)
    weight = torch.randn(S + 1, 8, dtype=torch.float64, generator=g, requires_grad=True)
    labels = torch.tensor([[-100, 1, 2, EOS, -100, -100], [-100, -100, 3, 0, 1, 2], [-100, 2, EOS, -100, -100, -100]])
    kw = dict(eos_token_id=EOS, gamma=0.9, td_weight=0.5, terminal_td=terminal_td, log_entropy=False)
    want, _ = iq_loss(hidden @ weight.T, labels, **kw)
    got, _ = chunked_iq_loss(hidden, weight, labels, chunk_size=4, **kw)
    torch.testing.assert_close(got, want)
    want_grad = torch.autograd.grad(want, (hidden, weight))
    got_grad = torch.autograd.grad(got, (hidden, weight))
    for a, b in zip(got_grad, want_grad):
        torch.testing.assert_close(a, b)
