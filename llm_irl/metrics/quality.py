"""Quality metrics: exact match on checkable answers, BLEU and ROUGE against references.

sacrebleu and rouge-score are imported inside the functions that use them so that
importing :mod:`llm_irl.metrics` stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

# Thousands-grouped numbers first so "1,234" is one number but "1,2,3" is three.
_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?")
_ANSWER_MARKER = "####"  # GSM8k's final-answer marker
_ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def _canonical_number(s: str) -> str:
    s = s.replace(",", "")
    if "." in s:
        s = s.rstrip("0").rstrip(".")  # "72.50" == "72.5", "72.0" == "72"
    return "0" if s == "-0" else s


def extract_last_number(text: str) -> str | None:
    """GSM8k-style answer: the first number after the last ``####`` if there is one, else the last number.

    Commas are removed and trailing decimal zeros dropped; ``None`` when no number is found.
    """
    if _ANSWER_MARKER in text:
        after = _NUMBER.findall(text.rsplit(_ANSWER_MARKER, 1)[1])
        if after:
            return _canonical_number(after[0])
    numbers = _NUMBER.findall(text)
    return _canonical_number(numbers[-1]) if numbers else None


def exact_match(
    predictions: Sequence[str],
    references: Sequence[str],
    extract: Callable[[str], str | None] | None = None,
) -> float:
    """Fraction of predictions equal to their reference, after ``extract`` on both (else ``str.strip``).

    A prediction whose extracted answer is ``None`` counts as wrong.
    """
    _check_pairs(predictions, references)
    fn = extract if extract is not None else str.strip
    hits = 0
    for pred, ref in zip(predictions, references):
        answer = fn(pred)
        hits += answer is not None and answer == fn(ref)
    return hits / len(predictions)


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU (default 13a tokenisation), one reference per prediction, on the 0-100 scale."""
    import sacrebleu

    _check_pairs(predictions, references)
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean rouge1 / rouge2 / rougeL F-measures (0-1) from rouge-score.

    rouge-score's default tokeniser lowercases and keeps only ``[a-z0-9]`` runs, so
    non-Latin text scores 0.
    """
    from rouge_score import rouge_scorer

    _check_pairs(predictions, references)
    scorer = rouge_scorer.RougeScorer(list(_ROUGE_TYPES))
    totals = dict.fromkeys(_ROUGE_TYPES, 0.0)
    for pred, ref in zip(predictions, references):
        scores = scorer.score(ref, pred)  # rouge-score takes (target, prediction)
        for key in _ROUGE_TYPES:
            totals[key] += scores[key].fmeasure
    return {key: total / len(predictions) for key, total in totals.items()}


def sentence_rouge1(prediction: str, reference: str) -> float:
    """Per-sample rouge1 F-measure, e.g. to correlate quality with other per-sample scores."""
    from rouge_score import rouge_scorer

    return float(rouge_scorer.RougeScorer(["rouge1"]).score(reference, prediction)["rouge1"].fmeasure)


def _check_pairs(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("no predictions to score")
