"""Synthetic experts: reproducible sampling, normalised and exact likelihoods, validity, tokenizer fit."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pytest

from llm_irl.builtin import word_tokenizer
from llm_irl.tasks import EXPERTS, ArithmeticExpert, GrammarExpert, MarkovExpert, make_expert
from llm_irl.tasks.arithmetic import parse_problem
from llm_irl.tasks.grammar import EOS

EXPERT_FACTORIES = {
    "markov": lambda: MarkovExpert(num_words=20, seed=0),
    "grammar": lambda: GrammarExpert(seed=0),
    "arithmetic": lambda: ArithmeticExpert(),
}


@pytest.fixture(params=sorted(EXPERT_FACTORIES))
def expert(request):
    return EXPERT_FACTORIES[request.param]()


def _rows(expert, n=60, seed=0):
    rows = expert.demonstrations(n, seed)
    return [r["prompt"] for r in rows], [r["completion"] for r in rows]


# ----------------------------------------------------------------------------- all experts
def test_seeded_sampling_is_reproducible(expert):
    assert expert.demonstrations(30, seed=3) == expert.demonstrations(30, seed=3)
    assert expert.demonstrations(30, seed=3) != expert.demonstrations(30, seed=4)


def test_seeded_construction_is_reproducible():
    a, b = GrammarExpert(seed=5), GrammarExpert(seed=5)
    assert a._rules == b._rules
    assert a._rules != GrammarExpert(seed=6)._rules


def test_samples_use_the_vocab_and_round_trip_one_token_per_word(expert):
    tok = word_tokenizer(expert.vocab)
    assert len(set(expert.vocab)) == len(expert.vocab)
    prompts, completions = _rows(expert, n=40)
    for text in prompts + completions:
        words = text.split()
        assert set(words) <= set(expert.vocab), set(words) - set(expert.vocab)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(words)
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == text


def test_expert_samples_score_finite_and_mostly_valid(expert):
    prompts, completions = _rows(expert, n=100)
    scores = [expert.score(p, c) for p, c in zip(prompts, completions)]
    assert all(math.isfinite(s.logprob) and s.logprob <= 0 for s in scores)
    assert all(s.num_tokens == len(c.split()) + 1 for s, c in zip(scores, completions))
    # samples come from the smoothed process, so a rare noise word can make one invalid
    assert expert.validity_rate(prompts, completions) >= 0.9


def test_any_text_has_a_finite_logprob(expert):
    prompt = _rows(expert, n=1)[0][0]
    for junk in ["", "zzz qqq", " ".join(expert.vocab[:5]), "the the the ."]:
        s = expert.score(prompt, junk)
        assert math.isfinite(s.logprob)
        assert not s.valid or junk == ""


def test_registry():
    assert set(EXPERTS) == {"markov", "grammar", "arithmetic"}
    assert isinstance(make_expert("grammar", seed=1), GrammarExpert)
    assert isinstance(make_expert("arithmetic", max_ops=2), ArithmeticExpert)
    with pytest.raises(ValueError, match="unknown expert 'nope'.*arithmetic, grammar, markov"):
        make_expert("nope")


# ----------------------------------------------------------------------------- normalisation
def test_markov_action_distributions_sum_to_one():
    e = MarkovExpert(num_words=10, seed=0)
    np.testing.assert_allclose(e._action_probs.sum(-1), 1.0, atol=1e-12)


@pytest.mark.parametrize("name", ["grammar", "arithmetic"])
def test_action_distributions_sum_to_one_and_chain_to_score(name):
    """Every per-action distribution along sampled (and corrupted) prefixes is normalised, and the
    score is exactly the chain-rule product of those distributions."""
    e = EXPERT_FACTORIES[name]()
    prompts, completions = _rows(e, n=15, seed=1)
    completions[0] = " ".join(e.words[-3:] + [completions[0]])  # off-grammar words: the noise path
    for prompt, completion in zip(prompts, completions):
        words = completion.split()
        total = 0.0
        for t, action in enumerate(words + [EOS]):
            dist = e.action_distribution(prompt, " ".join(words[:t]))
            assert math.isclose(sum(dist.values()), 1.0, rel_tol=1e-9)
            total += math.log(dist[action])
        assert math.isclose(total, e.score(prompt, completion).logprob, rel_tol=1e-9)


def _tiny_grammar(**kw):
    args = dict(num_nouns=1, num_intransitive=1, num_transitive=1, num_topics=1, p_relative=0.0,
                p_if=0.0, p_and=0.0, stop_prob=1.0, smoothing=1e-9, seed=0)  # fmt: skip
    args.update(kw)
    return GrammarExpert(**args)


def _grammar_language(e, topic=0, max_words=12):
    """All strings the unsmoothed grammar can say (depth-first), with their grammar probability."""
    out, unfinished = {}, 0.0
    frontier = [([], ["FIRST"], 1.0)]
    while frontier:
        words, stack, p = frontier.pop()
        table = e._dist(topic, stack)[0]
        for action, (q, push) in table.items():
            if action is EOS:
                out[" ".join(words)] = out.get(" ".join(words), 0.0) + p * q
            elif len(words) < max_words:
                frontier.append((words + [action], e._apply(stack, push), p * q))
            else:
                unfinished += p * q
    return out, unfinished


def test_grammar_language_mass_sums_to_one_and_matches_score():
    e = _tiny_grammar()
    language, unfinished = _grammar_language(e)
    # one noun pair, one verb of each kind: the dog(s) run(s) . / the dog(s) see(s) the dog(s) .
    intransitive = [f"the {n} {v} ." for n, v in [("dog", "runs"), ("dogs", "run")]]
    transitive = [f"the {n} {v} the {o} ." for n, v in [("dog", "sees"), ("dogs", "see")] for o in ["dog", "dogs"]]
    assert sorted(language) == sorted(intransitive + transitive)
    assert unfinished == 0.0
    assert math.isclose(sum(language.values()), 1.0, rel_tol=1e-12)
    for text, p in language.items():  # with negligible smoothing, score = grammar probability
        assert math.isclose(math.exp(e.score("topic0", text).logprob), p, rel_tol=1e-6)


def test_grammar_recursive_language_mass_is_conserved():
    """With recursion (relative clauses, if/then, and, several sentences) the mass of finished
    strings up to a length plus the mass still talking is exactly 1."""
    e = GrammarExpert(num_nouns=1, num_intransitive=1, num_transitive=1, num_topics=1, p_relative=0.3,
                      p_if=0.2, p_and=0.2, stop_prob=0.7, max_depth=5, seed=0)  # fmt: skip
    language, unfinished = _grammar_language(e, max_words=9)
    assert math.isclose(sum(language.values()) + unfinished, 1.0, rel_tol=1e-12)
    assert sum(language.values()) > 0.3


def test_arithmetic_solution_mass_sums_to_one():
    e = ArithmeticExpert(smoothing=1e-9)
    for prompt in e.sample_prompts(20, np.random.default_rng(0)):
        sols = e.solutions(prompt)
        assert len(sols) >= 2
        assert math.isclose(sum(sols.values()), 1.0, rel_tol=1e-12)
        mass = sum(math.exp(e.score(prompt, s).logprob) for s in sols)
        assert math.isclose(mass, 1.0, rel_tol=1e-6)


# ----------------------------------------------------------------------------- exactness
def test_grammar_score_by_hand():
    e = _tiny_grammar(p_transitive=0.25, smoothing=0.01)
    w_dog = dict((w, p) for p, w, _ in e._rules[0]["SUBJ"])["dog"]
    a = len(e.words) + 1

    def smooth(p):
        return 0.99 * p + 0.01 / a

    # the(1) dog(w_dog) runs(1 - p_transitive) .(1) EOS(stop_prob = 1)
    expected = sum(math.log(smooth(p)) for p in [1.0, w_dog, 0.75, 1.0, 1.0])
    assert math.isclose(e.score("topic0", "the dog runs .").logprob, expected, rel_tol=1e-12)
    # a noise word is charged the floor and skipped: the stack is unchanged after it
    noisy = sum(math.log(smooth(p)) for p in [1.0, w_dog, 0.0, 0.75, 1.0, 1.0])
    assert math.isclose(e.score("topic0", "the dog the runs .").logprob, noisy, rel_tol=1e-12)


def test_arithmetic_score_by_hand():
    e = ArithmeticExpert(min_ops=1, max_ops=1, p_alt_template=0.3, smoothing=0.01)
    prompt = "tom has 12 apples . tom buys 5 apples . how many apples does tom have ?"
    expected_solutions = {"12 plus 5 is 17 . answer 17": 0.7, "12 and 5 make 17 . answer 17": 0.3}
    assert e.solutions(prompt) == pytest.approx(expected_solutions)
    a = len(e.words) + 1
    main = "12 plus 5 is 17 . answer 17"
    # only the second word is a choice (plus 0.7 / and 0.3); the other 8 actions incl. EOS are forced
    expected = math.log(0.99 * 0.7 + 0.01 / a) + 8 * math.log(0.99 + 0.01 / a)
    assert math.isclose(e.score(prompt, main).logprob, expected, rel_tol=1e-12)


def _check_frequencies(e, prompt, n, top=4):
    rng = np.random.default_rng(0)
    counts = Counter(e.sample_completion(prompt, rng) for _ in range(n))
    for text, c in counts.most_common(top):
        p = math.exp(e.score(prompt, text).logprob)
        sigma = math.sqrt(p * (1 - p) / n)
        assert abs(c / n - p) < 4 * sigma + 1e-3, (text, c / n, p)


def test_grammar_score_matches_empirical_frequency():
    e = GrammarExpert(num_nouns=2, num_intransitive=2, num_transitive=1, num_topics=1, p_relative=0.1,
                      stop_prob=1.0, seed=0)  # fmt: skip
    _check_frequencies(e, "topic0 the dogs", n=3000)


def test_arithmetic_score_matches_empirical_frequency():
    e = ArithmeticExpert(p_in_order=0.5, p_alt_template=0.3)
    prompt = "ana has 20 coins . ana finds 7 coins . ana sells 4 coins . how many coins does ana have ?"
    _check_frequencies(e, prompt, n=3000)


# ----------------------------------------------------------------------------- validity
def test_grammar_validity_and_long_range_agreement():
    e = GrammarExpert(smoothing=1e-9, seed=0)
    prompts, completions = _rows(e, n=50)
    assert e.validity_rate(prompts, completions) == 1.0
    ok = "the dog that the cats that the bird sees chase runs ."
    assert e.score("topic0", ok).valid
    # the head noun "dog" is singular: a plural verb eight words later is ungrammatical
    assert not e.score("topic0", ok.replace("runs", "run")).valid
    assert not e.score("topic0", "if the dog runs the cat sleeps .").valid  # "if" without "then"
    assert not e.score("topic0", "the dog runs").valid  # stops mid-sentence: EOS not allowed
    # a prompt can open a clause the completion must close with agreement
    assert e.score("topic0 the dogs that", "sleep run .").valid
    assert not e.score("topic0 the dogs that", "sleeps run .").valid


def test_grammar_rejects_foreign_prompts():
    e = GrammarExpert()
    for prompt in ["", "the dog", "topic0 dog", "topic99 the"]:
        with pytest.raises(ValueError):
            e.score(prompt, "runs .")


def test_arithmetic_validity():
    e = ArithmeticExpert(smoothing=1e-9)
    prompts, completions = _rows(e, n=50)
    assert e.validity_rate(prompts, completions) == 1.0
    prompt = "tom has 12 apples . tom buys 5 apples . tom loses 3 apples . how many apples does tom have ?"
    good = "12 plus 5 is 17 . 17 minus 3 is 14 . answer 14"
    assert e.score(prompt, good).valid
    assert not e.score(prompt, good.replace("is 17", "is 18")).valid  # wrong intermediate value
    assert not e.score(prompt, "12 plus 5 is 17 . 17 minus 3 is 14 .").valid  # no answer
    assert not e.score(prompt, good + " 14").valid  # keeps talking past the answer


# ----------------------------------------------------------------------------- arithmetic checks
def test_arithmetic_answers_checkable():
    e = ArithmeticExpert()
    prompt = "li has 10 eggs . li buys 3 bags of 4 eggs . li gives 5 eggs . how many eggs does li have ?"
    assert e.answer_of(prompt) == 17
    assert e.extract_answer("3 times 4 is 12 . answer 17") == 17
    assert e.extract_answer("answer 3 . answer 17") == 17  # the last marker wins
    assert e.extract_answer("10 plus 12 is 22 .") is None
    assert e.extract_answer("answer") is None and e.extract_answer("answer dog") is None
    assert e.is_correct(prompt, "answer 17") and not e.is_correct(prompt, "answer 16")
    with pytest.raises(ValueError, match="not an arithmetic prompt"):
        e.answer_of("topic0 the dog")


def test_every_phrasing_is_correct_and_arithmetically_sound():
    e = ArithmeticExpert(min_ops=2, max_ops=4, p_bags=0.4)
    step = re.compile(
        r"^(\d+) (plus|and|minus|take away|times|bags of) (\d+) (is|make|leaves) (\d+)$"
    )
    ops = {"plus": int.__add__, "and": int.__add__, "minus": int.__sub__, "take away": int.__sub__,
           "times": int.__mul__, "bags of": int.__mul__}  # fmt: skip
    for prompt in e.sample_prompts(15, np.random.default_rng(2)):
        assert parse_problem(prompt).text() == prompt
        for text in e.solutions(prompt):
            assert e.is_correct(prompt, text)
            *steps, final = text.split(" . ")
            assert final == f"answer {e.answer_of(prompt)}"
            for s in steps:
                x, op, y, _, z = step.match(s).groups()
                assert ops[op](int(x), int(y)) == int(z)
                assert all(0 <= int(v) <= 99 for v in (x, y, z))
