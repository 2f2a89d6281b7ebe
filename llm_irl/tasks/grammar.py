"""A seeded probabilistic grammar with long-range structure, run as a left-to-right stack machine.

Why a stack machine. The expert is a probabilistic context-free grammar written in Greibach
normal form: every production emits exactly one word and then pushes zero or more nonterminals
(`A -> word B C`). Within each nonterminal, distinct productions begin with distinct words (an
"s-grammar"). Reading a word string left to right, the nonterminal on top of the stack and the
next word therefore pick the production uniquely, so

* every string has at most one derivation (the grammar is unambiguous: two derivations would
  have to differ at a first production, but the top nonterminal and the word emitted there
  already name the production), and
* the stack after any prefix is a function of that prefix, so the next-word distribution is
  determined by the prefix and the exact likelihood is a single left-to-right pass, exactly as
  for the Markov expert.

The language. Sentences are clauses joined by "and" and closed by ".", clauses are either
"the NOUN PREDICATE" or "if CLAUSE then CLAUSE" (balanced if/then, like brackets), and a
predicate may open a relative clause ("the dog that the cats that the bird sees chase runs")
before the verb, which must agree in number with its subject however many words intervene.
The stack is capped at `max_depth` nonterminals; productions that would overflow it are
dropped and the rest renormalised, which keeps the distribution a function of the prefix.

Prompts name a topic (which sets the lexical weights: each topic has its own Dirichlet draw
over nouns and verbs) and the first few words of the completion-to-be, so a completion often
has to finish a clause the prompt opened. EOS is an action like any word; the grammar allows it
only between sentences.

Smoothing. Every action (an emittable word or EOS) gets an extra `smoothing / num_actions`,
so p_E(word | prefix) = (1 - smoothing) p_grammar(word | stack) + smoothing / num_actions.
A word the grammar does not allow at the current stack leaves the stack unchanged (it is an
inserted noise word); a word outside the action set is charged the same floor. Any text then has
a finite, exact log-probability, and sampling draws from the very same smoothed process.
Entropy is tuned by `concentration` (lexical Dirichlet; small = peaked), the structural
probabilities `p_relative`, `p_if`, `p_and`, `p_transitive` and `stop_prob`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from llm_irl.tasks.base import ExpertScore, SyntheticExpert

_NOUNS = [  # (singular, plural)
    ("dog", "dogs"),
    ("cat", "cats"),
    ("bird", "birds"),
    ("child", "children"),
    ("farmer", "farmers"),
    ("teacher", "teachers"),
    ("horse", "horses"),
    ("fox", "foxes"),
]
_INTRANSITIVE = [("runs", "run"), ("sleeps", "sleep"), ("sings", "sing"), ("waits", "wait"), ("laughs", "laugh")]
_TRANSITIVE = [("sees", "see"), ("chases", "chase"), ("likes", "like"), ("helps", "help"), ("follows", "follow")]
_FUNCTION_WORDS = ["the", "that", "if", "then", "and", "."]
_NUMBERS = ("sg", "pl")

EOS = None  # the stop action, kept apart from every word so no text can spell it

#: a production: probability, the word it emits, the nonterminals it pushes (leftmost on top)
Production = tuple[float, str | None, tuple[str, ...]]
#: a stack's next-action table {action: (probability, push)}, its actions in order, their cdf
Dist = tuple[dict[str | None, tuple[float, tuple[str, ...]]], list[str | None], np.ndarray]


class GrammarExpert(SyntheticExpert):
    """Prompt-conditioned PCFG with number agreement across nested clauses; exact likelihood."""

    def __init__(
        self,
        num_nouns: int = 6,
        num_intransitive: int = 4,
        num_transitive: int = 4,
        num_topics: int = 4,
        concentration: float = 1.0,
        p_relative: float = 0.25,
        p_if: float = 0.1,
        p_and: float = 0.15,
        p_transitive: float = 0.5,
        stop_prob: float = 0.5,
        max_depth: int = 10,
        prompt_words: int = 3,
        smoothing: float = 1e-3,
        seed: int = 0,
    ):
        for name, value, hi in [
            ("num_nouns", num_nouns, len(_NOUNS)),
            ("num_intransitive", num_intransitive, len(_INTRANSITIVE)),
            ("num_transitive", num_transitive, len(_TRANSITIVE)),
        ]:
            if not 1 <= value <= hi:
                raise ValueError(f"{name} must be in 1..{hi}, got {value}")
        for name, value in [("p_relative", p_relative), ("p_if", p_if), ("p_and", p_and)]:
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if not 0.0 <= p_transitive <= 1.0:
            raise ValueError(f"p_transitive must be in [0, 1], got {p_transitive}")
        if not 0.0 < stop_prob <= 1.0:
            raise ValueError(f"stop_prob must be in (0, 1], got {stop_prob}")
        if not 0.0 < smoothing < 1.0:
            raise ValueError(f"smoothing must be in (0, 1), got {smoothing}")
        if max_depth < 3:
            # a sentence pushes [SUBJ, END, DOC] from the bottom; below 3 the grammar cannot speak
            raise ValueError(f"max_depth must be at least 3, got {max_depth}")
        if prompt_words < 0:
            raise ValueError(f"prompt_words must be >= 0, got {prompt_words}")
        rng = np.random.default_rng(seed)
        self.nouns = _NOUNS[:num_nouns]
        self.intransitive = _INTRANSITIVE[:num_intransitive]
        self.transitive = _TRANSITIVE[:num_transitive]
        self.topics = [f"topic{k}" for k in range(num_topics)]
        self.words = _FUNCTION_WORDS + [w for pair in self.nouns + self.intransitive + self.transitive for w in pair]
        self.vocab = self.topics + self.words
        self.smoothing = smoothing
        self.stop_prob = stop_prob
        self.max_depth = max_depth
        self.prompt_words = prompt_words
        self._actions = set(self.words)
        self._num_actions = len(self.words) + 1  # words + EOS
        self._floor = smoothing / self._num_actions
        self._rules = [
            self._topic_rules(rng, concentration, p_relative, p_if, p_and, p_transitive) for _ in self.topics
        ]
        self._max_push = max(len(push) for rules in self._rules for prods in rules.values() for *_, push in prods)
        self._cache: dict[tuple[int, str, int], Dist] = {}  # keyed by (topic, top, room)

    # ----------------------------------------------------------------- grammar construction
    def _topic_rules(
        self, rng: np.random.Generator, alpha: float, p_rel: float, p_if: float, p_and: float, p_tr: float
    ) -> dict[str, list[Production]]:
        """One topic's productions; lexical weights are this topic's own Dirichlet draws."""
        nn = 2 * len(self.nouns)
        subj_w = rng.dirichlet(np.full(nn, alpha))  # over (sg nouns..., pl nouns...)
        obj_w = rng.dirichlet(np.full(nn, alpha))
        iv_w = rng.dirichlet(np.full(len(self.intransitive), alpha))
        tv_w = rng.dirichlet(np.full(len(self.transitive), alpha))
        nouns = [(n, pair[i]) for i, n in enumerate(_NUMBERS) for pair in self.nouns]  # matches subj_w order

        rules: dict[str, list[Production]] = {
            "CL": [(1 - p_if, "the", ("SUBJ",)), (p_if, "if", ("CL", "THEN", "CL"))],
            "THEN": [(1.0, "then", ())],
            "END": [(1 - p_and, ".", ()), (p_and, "and", ("CL", "END"))],
            # the noun fixes the number, and the pushed predicate remembers it until the verb
            "SUBJ": [(w, word, (f"PRED_{n}",)) for w, (n, word) in zip(subj_w, nouns)],
            "RSUBJ": [(w, word, (f"RPRED_{n}",)) for w, (n, word) in zip(subj_w, nouns)],
            "OBJ": [(1.0, "the", ("ONOUN",))],
            "ONOUN": [(w, word, ()) for w, (_, word) in zip(obj_w, nouns)],
        }
        for i, n in enumerate(_NUMBERS):
            vp = [((1 - p_tr) * w, pair[i], ()) for w, pair in zip(iv_w, self.intransitive)]
            vp += [(p_tr * w, pair[i], ("OBJ",)) for w, pair in zip(tv_w, self.transitive)]
            gap = [(w, pair[i], ()) for w, pair in zip(tv_w, self.transitive)]  # object is the gap
            rules[f"VP_{n}"] = vp
            rules[f"PRED_{n}"] = [(p_rel, "that", (f"RC_{n}", f"VP_{n}"))] + _scale(vp, 1 - p_rel)
            # a relative clause on an n-noun: object-gap ("that the cats chase") or
            # subject-gap ("that runs"), whose verb agrees with the head noun
            rules[f"RC_{n}"] = [(0.5, "the", ("RSUBJ",))] + _scale(vp, 0.5)
            rules[f"RPRED_{n}"] = [(p_rel, "that", (f"RC_{n}", f"TV_{n}"))] + _scale(gap, 1 - p_rel)
            rules[f"TV_{n}"] = gap
        # a document: sentences (a clause then END) until EOS, which only DOC can emit; it
        # starts at FIRST, so every document has at least one sentence
        doc_tail = ("END", "DOC")
        rules["FIRST"] = [(p, w, push + doc_tail) for p, w, push in rules["CL"]]
        rules["DOC"] = [(self.stop_prob, EOS, ())] + _scale(rules["FIRST"], 1 - self.stop_prob)
        for nt, prods in rules.items():
            firsts = [w for _, w, _ in prods]
            assert len(set(firsts)) == len(firsts), f"{nt}: productions must start with distinct words"
        return rules

    # ----------------------------------------------------------------- the stack machine
    def _dist(self, topic: int, stack: Sequence[str]) -> Dist:
        """Grammar next-action distribution at `stack` (top last): {action: (p, push)}, actions, cdf.

        Productions that would grow the stack past `max_depth` are dropped and the rest
        renormalised; the result depends only on (topic, top, room), so it is cached.
        """
        top = stack[-1]
        room = min(self.max_depth - len(stack) + 1, self._max_push)
        key = (topic, top, room)
        if key not in self._cache:
            prods = [(p, w, push) for p, w, push in self._rules[topic][top] if len(push) <= room and p > 0]
            total = sum(p for p, _, _ in prods)
            table = {w: (p / total, push) for p, w, push in prods}
            actions = list(table)
            cdf = np.cumsum([table[a][0] for a in actions])
            self._cache[key] = (table, actions, cdf)
        return self._cache[key]

    @staticmethod
    def _apply(stack: list[str], push: tuple[str, ...]) -> list[str]:
        # the stack is stored top-last, so push the production's nonterminals reversed
        return stack[:-1] + list(reversed(push))

    def _start(self, prompt: str) -> tuple[int, list[str]]:
        """Topic and stack after the prompt's words; the prompt must be grammatical."""
        parts = prompt.split()
        if not parts or parts[0] not in self.topics:
            raise ValueError(f"not a prompt of this expert: {prompt!r}")
        topic = self.topics.index(parts[0])
        stack = ["FIRST"]
        for word in parts[1:]:
            table = self._dist(topic, stack)[0]
            if word not in table:
                raise ValueError(f"not a prompt of this expert (word {word!r} not allowed): {prompt!r}")
            stack = self._apply(stack, table[word][1])
        return topic, stack

    # ----------------------------------------------------------------- the SyntheticExpert API
    def sample_prompts(self, n: int, rng: np.random.Generator) -> list[str]:
        """A topic and 0..`prompt_words` first words, drawn from the unsmoothed grammar without EOS."""
        prompts = []
        for _ in range(n):
            topic = int(rng.integers(len(self.topics)))
            stack, words = ["FIRST"], []
            for _ in range(int(rng.integers(self.prompt_words + 1))):
                table, actions, _ = self._dist(topic, stack)
                choices = [a for a in actions if a is not EOS]
                p = np.array([table[a][0] for a in choices])
                word = choices[int(rng.choice(len(choices), p=p / p.sum()))]
                words.append(word)
                stack = self._apply(stack, table[word][1])
            prompts.append(" ".join([self.topics[topic]] + words))
        return prompts

    def sample_completion(self, prompt: str, rng: np.random.Generator) -> str:
        topic, stack = self._start(prompt)
        out: list[str] = []
        while True:
            table, actions, cdf = self._dist(topic, stack)
            if rng.random() < self.smoothing:  # the uniform smoothing component
                k = int(rng.integers(self._num_actions))
                action = EOS if k == len(self.words) else self.words[k]
            else:
                action = actions[min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(actions) - 1)]
            if action is EOS:
                return " ".join(out)
            out.append(action)
            if action in table:  # a noise word the grammar forbids leaves the stack as it was
                stack = self._apply(stack, table[action][1])

    def score(self, prompt: str, completion: str) -> ExpertScore:
        topic, stack = self._start(prompt)
        words = completion.split()
        total, valid = 0.0, True
        for word in words + [EOS]:
            table = self._dist(topic, stack)[0]
            if word is not EOS and word not in self._actions:
                total += math.log(self._floor)  # not an action of this expert: the floor, no move
                valid = False
                continue
            p_grammar, push = table.get(word, (0.0, None))
            total += math.log((1 - self.smoothing) * p_grammar + self._floor)
            valid &= p_grammar > 0
            if push is not None:
                stack = self._apply(stack, push)
        return ExpertScore(logprob=total, num_tokens=len(words) + 1, valid=bool(valid))

    def action_distribution(self, prompt: str, prefix: str = "") -> dict[str | None, float]:
        """Smoothed p_E(action | prompt, prefix) over every action (None = EOS); sums to 1."""
        topic, stack = self._start(prompt)
        for word in prefix.split():
            table = self._dist(topic, stack)[0]
            if word in table:
                stack = self._apply(stack, table[word][1])
        table = self._dist(topic, stack)[0]
        return {
            a: (1 - self.smoothing) * table.get(a, (0.0, None))[0] + self._floor for a in [*self.words, EOS]
        }

    def entropy_per_token(self, num_samples: int = 200, seed: int = 0) -> float:
        """Monte Carlo estimate (nats per action) of the expert's entropy: −E[log p_E] per token."""
        rows = self.demonstrations(num_samples, seed)
        return -self.mean_logprob_per_token([r["prompt"] for r in rows], [r["completion"] for r in rows])


def _scale(prods: list[Production], factor: float) -> list[Production]:
    return [(factor * p, w, push) for p, w, push in prods]
