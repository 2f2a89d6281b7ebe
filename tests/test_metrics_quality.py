"""Known-answer tests for llm_irl.metrics.quality."""

from __future__ import annotations

import pytest

from llm_irl.metrics import bleu, exact_match, extract_last_number, rouge, sentence_rouge1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 1,234.", "1234"),
        ("5 apples then 7 pears\n#### 72", "72"),
        ("#### 72 and later 9", "72"),  # marker preferred over the last number
        ("costs $3.50 in total", "3.5"),
        ("it is -4", "-4"),
        ("72.0", "72"),
        ("1,2,3", "3"),  # commas not in thousands groups separate numbers
        ("I got 8 ####", "8"),  # empty marker: fall back to the last number
        ("no numbers", None),
    ],
)
def test_extract_last_number(text: str, expected: str | None):
    assert extract_last_number(text) == expected


def test_exact_match():
    preds = ["so she has 18 left", "The answer is 3", "I don't know"]
    refs = ["... #### 18", "#### 4", "#### 7"]
    assert exact_match(preds, refs, extract=extract_last_number) == pytest.approx(1 / 3)
    assert exact_match([" yes", "no"], ["yes ", "yes"]) == 0.5  # default: stripped strings
    # a prediction with no extractable answer is wrong, even against an answer-less reference
    assert exact_match(["none"], ["nothing"], extract=extract_last_number) == 0.0
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        exact_match(["a", "b"], ["a"])


def test_bleu_known_answers():
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert bleu(["a b c d"], ["e f g h"]) == pytest.approx(0.0)


def test_rouge_known_answers():
    identical = rouge(["the cat sat"], ["the cat sat"])
    assert identical == pytest.approx({"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0})
    # "the cat sat" vs "the cat ran": unigram overlap 2/3 both ways -> F1 = 2/3;
    # bigrams (the cat)(cat sat) vs (the cat)(cat ran): 1/2 -> F1 = 1/2; LCS "the cat" -> 2/3.
    # The second pair is identical, so the means are (x + 1) / 2.
    scores = rouge(["the cat sat", "a dog"], ["the cat ran", "a dog"])
    assert scores == pytest.approx({"rouge1": 5 / 6, "rouge2": 3 / 4, "rougeL": 5 / 6})


def test_sentence_rouge1():
    # overlap {the, cat}: P = R = 2/3
    assert sentence_rouge1("the cat sat", "the cat ran") == pytest.approx(2 / 3)
    # P = 2/2, R = 2/4 -> F1 = 2PR / (P + R) = 2/3
    assert sentence_rouge1("the cat", "the cat sat down") == pytest.approx(2 / 3)
