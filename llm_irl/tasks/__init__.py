"""Synthetic experts with exact likelihoods, and checkable tasks (docs/design.md, "Ground-truth measures").

`EXPERTS` maps a short name to an expert class; `make_expert("grammar", seed=1)` builds one.
"""

from __future__ import annotations

from llm_irl.tasks.arithmetic import ArithmeticExpert
from llm_irl.tasks.base import ExpertScore, SyntheticExpert
from llm_irl.tasks.grammar import GrammarExpert
from llm_irl.tasks.markov import MarkovExpert

EXPERTS: dict[str, type[SyntheticExpert]] = {
    "markov": MarkovExpert,
    "grammar": GrammarExpert,
    "arithmetic": ArithmeticExpert,
}


def make_expert(name: str, **kwargs) -> SyntheticExpert:
    """Build the expert registered as `name` with its constructor's keyword arguments."""
    try:
        cls = EXPERTS[name]
    except KeyError:
        raise ValueError(f"unknown expert {name!r}; known experts: {', '.join(sorted(EXPERTS))}") from None
    return cls(**kwargs)


__all__ = [
    "EXPERTS",
    "ArithmeticExpert",
    "ExpertScore",
    "GrammarExpert",
    "MarkovExpert",
    "SyntheticExpert",
    "make_expert",
]
