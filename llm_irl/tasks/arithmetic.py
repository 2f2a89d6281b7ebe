"""Checkable arithmetic word problems (GSM8k in miniature) with an exact expert likelihood.

A prompt is a short story in a small vocabulary, e.g.

    tom has 12 apples . tom buys 3 bags of 4 apples . tom sells 5 apples .
    how many apples does tom have ?

and a solution works it out step by step, then gives the final answer after the marker word:

    3 times 4 is 12 . 12 plus 12 is 24 . 24 minus 5 is 19 . answer 19

Every number is one of the single-token words "0".."99", and every intermediate value of every
solution stays in that range, so the word tokenizer of `llm_irl.builtin` holds all of them.

Several phrasings are valid, sampled with known probabilities: the steps may follow the story's
order (probability `p_in_order`) or any other order whose running totals stay in 0..99 (the rest
of the mass, uniformly), and each step independently uses its alternative template ("12 and 12
make 24", "24 take away 5 leaves 19", "3 bags of 4 is 12") with probability `p_alt_template`.
Enumerating these gives a finite set of (solution, probability) pairs per prompt (identical
strings from different choices are merged), held in a trie; p(next word | prefix) is the trie's
conditional, so the likelihood is a left-to-right pass and exact however solutions share
prefixes.

Smoothing, as for the grammar expert: p_E(word | prefix) = (1 - smoothing) p_trie(word | node)
+ smoothing / num_actions over every vocabulary word and EOS; a word the trie does not allow
leaves the trie node unchanged (an inserted noise word). Sampling runs the same smoothed process.
Entropy is tuned by `p_in_order` and `p_alt_template` (and the problem mix).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from llm_irl.tasks.base import ExpertScore, SyntheticExpert

MAX_NUMBER = 99
ANSWER = "answer"
_NAMES = ["tom", "ana", "li", "sam", "mia", "ben"]
_ITEMS = ["apples", "books", "coins", "eggs", "cards", "shells"]
_GAIN_VERBS = ["buys", "finds", "gets"]
_LOSS_VERBS = ["sells", "loses", "gives"]
_FUNCTION_WORDS = [
    "has", "bags", "of", ".", "how", "many", "does", "have", "?",
    "plus", "minus", "times", "is", "and", "make", "take", "away", "leaves", ANSWER,
]  # fmt: skip
NUMBER_WORDS = [str(i) for i in range(MAX_NUMBER + 1)]
EOS = None  # the stop action, kept apart from every word so no text can spell it


@dataclass(frozen=True)
class Op:
    """One story event: `gain`/`loss` of `a`, or `bags` of `a` bags holding `b` each (gain a*b)."""

    kind: str  # "gain" | "loss" | "bags"
    verb: str
    a: int
    b: int = 0

    @property
    def delta(self) -> int:
        return {"gain": self.a, "loss": -self.a, "bags": self.a * self.b}[self.kind]


@dataclass(frozen=True)
class Problem:
    name: str
    item: str
    start: int
    ops: tuple[Op, ...]

    @property
    def answer(self) -> int:
        return self.start + sum(op.delta for op in self.ops)

    def text(self) -> str:
        parts = [f"{self.name} has {self.start} {self.item} ."]
        for op in self.ops:
            if op.kind == "bags":
                parts.append(f"{self.name} {op.verb} {op.a} bags of {op.b} {self.item} .")
            else:
                parts.append(f"{self.name} {op.verb} {op.a} {self.item} .")
        parts.append(f"how many {self.item} does {self.name} have ?")
        return " ".join(parts)


def parse_problem(prompt: str) -> Problem:
    """Invert `Problem.text`; raises ValueError on anything else."""
    sentences = " ".join(prompt.split()).split(" . ")
    try:
        first, *events, question = sentences
        name, has, start, item = first.split()
        if has != "has" or question.split() != ["how", "many", item, "does", name, "have", "?"]:
            raise ValueError
        ops = []
        for event in events:
            w = event.split()
            if w[0] != name or w[-1] != item:
                raise ValueError
            if len(w) == 7 and w[1] == "buys" and w[3:5] == ["bags", "of"]:
                ops.append(Op("bags", "buys", int(w[2]), int(w[5])))
            elif len(w) == 4 and w[1] in _GAIN_VERBS + _LOSS_VERBS:
                ops.append(Op("gain" if w[1] in _GAIN_VERBS else "loss", w[1], int(w[2])))
            else:
                raise ValueError
        return Problem(name, item, int(start), tuple(ops))
    except (ValueError, IndexError):
        raise ValueError(f"not an arithmetic prompt: {prompt!r}") from None


class _Node:
    """Lazily expanded trie node over the solutions that share one prefix.

    `members` are (actions, probability) of those solutions and `mass` their total, so the
    conditional p(action | prefix) is child.mass / mass. Children are built on first visit:
    a sample or a score walks one path, so most of the trie is never built.
    """

    __slots__ = ("mass", "depth", "members", "_children")

    def __init__(self, members: list[tuple[tuple[str | None, ...], float]], depth: int) -> None:
        self.members = members
        self.depth = depth
        self.mass = sum(p for _, p in members)
        self._children: dict[str | None, _Node] | None = None

    @property
    def children(self) -> dict[str | None, _Node]:
        if self._children is None:
            groups: dict[str | None, list] = {}
            for actions, p in self.members:
                if len(actions) > self.depth:  # members ending here have emitted EOS already
                    groups.setdefault(actions[self.depth], []).append((actions, p))
            self._children = {a: _Node(m, self.depth + 1) for a, m in groups.items()}
        return self._children

    def p(self, action: str | None) -> float:
        child = self.children.get(action)
        return 0.0 if child is None else child.mass / self.mass

    def sample(self, u: float) -> str | None:
        """The action whose cumulative conditional probability first exceeds `u` in [0, 1)."""
        target, acc = u * self.mass, 0.0
        for action, child in self.children.items():
            acc += child.mass
            if target < acc:
                return action
        return action  # float rounding at the top end


class ArithmeticExpert(SyntheticExpert):
    """Word problems with several exact-probability solution phrasings and a checkable answer."""

    def __init__(
        self,
        min_ops: int = 2,
        max_ops: int = 3,
        p_bags: float = 0.25,
        p_loss: float = 0.4,
        p_in_order: float = 0.6,
        p_alt_template: float = 0.3,
        smoothing: float = 1e-3,
        cache_size: int = 4096,
    ):
        if not 1 <= min_ops <= max_ops <= 4:
            raise ValueError(f"need 1 <= min_ops <= max_ops <= 4 (phrasings grow as n!·2^n), got {min_ops}, {max_ops}")
        for name, value in [("p_bags", p_bags), ("p_loss", p_loss), ("p_in_order", p_in_order),
                            ("p_alt_template", p_alt_template)]:  # fmt: skip
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if p_bags + p_loss > 1.0:
            raise ValueError(f"p_bags + p_loss must be <= 1, got {p_bags + p_loss}")
        if not 0.0 < smoothing < 1.0:
            raise ValueError(f"smoothing must be in (0, 1), got {smoothing}")
        self.min_ops, self.max_ops = min_ops, max_ops
        self.p_bags, self.p_loss = p_bags, p_loss
        self.p_in_order, self.p_alt_template = p_in_order, p_alt_template
        self.smoothing = smoothing
        self.words = _NAMES + _ITEMS + _GAIN_VERBS + _LOSS_VERBS + _FUNCTION_WORDS + NUMBER_WORDS
        self.vocab = list(self.words)
        self._actions = set(self.words)
        self._num_actions = len(self.words) + 1  # words + EOS
        self._floor = smoothing / self._num_actions
        self._cache: dict[str, _Node] = {}
        self._cache_size = cache_size

    # ----------------------------------------------------------------- checking answers
    @staticmethod
    def answer_of(prompt: str) -> int:
        return parse_problem(prompt).answer

    @staticmethod
    def extract_answer(completion: str) -> int | None:
        """The number after the last "answer" marker, or None when there is none."""
        words = completion.split()
        for i in range(len(words) - 2, -1, -1):
            if words[i] == ANSWER and words[i + 1].isdigit():
                return int(words[i + 1])
        return None

    @classmethod
    def is_correct(cls, prompt: str, completion: str) -> bool:
        return cls.extract_answer(completion) == cls.answer_of(prompt)

    # ----------------------------------------------------------------- solutions
    def solutions(self, prompt: str) -> dict[str, float]:
        """Every valid solution text of `prompt` with its (unsmoothed) probability; sums to 1."""
        problem = parse_problem(prompt)
        orders = [
            perm for perm in itertools.permutations(range(len(problem.ops))) if _in_range(problem, perm)
        ]
        if not orders:
            raise ValueError(f"no solution of {prompt!r} keeps every number in 0..{MAX_NUMBER}")
        identity = tuple(range(len(problem.ops)))
        others = [o for o in orders if o != identity]
        out: dict[str, float] = {}
        for order in orders:
            if not others:
                p_order = 1.0
            elif order == identity:
                p_order = self.p_in_order
            else:
                p_order = (1 - self.p_in_order) / len(others)
            for text, p_text in _phrasings(problem, order, self.p_alt_template):
                if p_order * p_text > 0:
                    out[text] = out.get(text, 0.0) + p_order * p_text  # merge equal strings
        return out

    def _trie(self, prompt: str) -> _Node:
        if prompt not in self._cache:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            members = [((*text.split(), EOS), p) for text, p in self.solutions(prompt).items()]
            self._cache[prompt] = _Node(members, depth=0)
        return self._cache[prompt]

    # ----------------------------------------------------------------- the SyntheticExpert API
    def sample_problem(self, rng: np.random.Generator) -> Problem:
        """A random problem whose story-order solution stays in 0..99 (rejection sampling)."""
        while True:
            name = _NAMES[int(rng.integers(len(_NAMES)))]
            item = _ITEMS[int(rng.integers(len(_ITEMS)))]
            start = int(rng.integers(1, 60))
            ops = []
            for _ in range(int(rng.integers(self.min_ops, self.max_ops + 1))):
                u = rng.random()
                if u < self.p_bags:
                    ops.append(Op("bags", "buys", int(rng.integers(2, 10)), int(rng.integers(2, 10))))
                elif u < self.p_bags + self.p_loss:
                    ops.append(Op("loss", _LOSS_VERBS[int(rng.integers(len(_LOSS_VERBS)))], int(rng.integers(1, 30))))
                else:
                    ops.append(Op("gain", _GAIN_VERBS[int(rng.integers(len(_GAIN_VERBS)))], int(rng.integers(1, 30))))
            problem = Problem(name, item, start, tuple(ops))
            if _in_range(problem, tuple(range(len(ops)))):
                return problem

    def sample_prompts(self, n: int, rng: np.random.Generator) -> list[str]:
        return [self.sample_problem(rng).text() for _ in range(n)]

    def sample_completion(self, prompt: str, rng: np.random.Generator) -> str:
        node = self._trie(prompt)
        out: list[str] = []
        while True:
            if rng.random() < self.smoothing:  # the uniform smoothing component
                k = int(rng.integers(self._num_actions))
                action = EOS if k == len(self.words) else self.words[k]
            else:
                action = node.sample(rng.random())
            if action is EOS:
                return " ".join(out)
            out.append(action)
            node = node.children.get(action, node)  # a word off the trie is noise: stay put

    def score(self, prompt: str, completion: str) -> ExpertScore:
        node = self._trie(prompt)
        words = completion.split()
        total, valid = 0.0, True
        for word in [*words, EOS]:
            if word is not EOS and word not in self._actions:
                total += math.log(self._floor)  # not an action of this expert: the floor, no move
                valid = False
                continue
            p = node.p(word)
            total += math.log((1 - self.smoothing) * p + self._floor)
            valid &= p > 0
            node = node.children.get(word, node)
        return ExpertScore(logprob=total, num_tokens=len(words) + 1, valid=bool(valid))

    def action_distribution(self, prompt: str, prefix: str = "") -> dict[str | None, float]:
        """Smoothed p_E(action | prompt, prefix) over every action (None = EOS); sums to 1."""
        node = self._trie(prompt)
        for word in prefix.split():
            node = node.children.get(word, node)
        return {a: (1 - self.smoothing) * node.p(a) + self._floor for a in [*self.words, EOS]}


def _in_range(problem: Problem, order: tuple[int, ...]) -> bool:
    """Whether every number the solution in this order writes lies in 0..MAX_NUMBER."""
    written = [problem.start]
    value = problem.start
    for i in order:
        op = problem.ops[i]
        value += op.delta
        written += [op.a, value] + ([op.b, op.delta] if op.kind == "bags" else [])
    return all(0 <= x <= MAX_NUMBER for x in written)


def _phrasings(problem: Problem, order: tuple[int, ...], p_alt: float) -> list[tuple[str, float]]:
    """All solution texts for one order of steps, with the probability of their template choices."""
    # each step offers (main, alternative) sentences; choices are independent per step
    steps: list[tuple[str, str]] = []
    value = problem.start
    for i in order:
        op = problem.ops[i]
        if op.kind == "bags":
            product = op.a * op.b
            steps.append((f"{op.a} times {op.b} is {product} .", f"{op.a} bags of {op.b} is {product} ."))
            add = product
        else:
            add = op.a
        new = value + op.delta
        if op.kind == "loss":
            steps.append((f"{value} minus {add} is {new} .", f"{value} take away {add} leaves {new} ."))
        else:
            steps.append((f"{value} plus {add} is {new} .", f"{value} and {add} make {new} ."))
        value = new
    out = []
    for choice in itertools.product((0, 1), repeat=len(steps)):
        n_alt = sum(choice)
        p = p_alt**n_alt * (1 - p_alt) ** (len(steps) - n_alt)
        text = " ".join(step[c] for step, c in zip(steps, choice))
        out.append((f"{text} {ANSWER} {value}", p))
    return out
