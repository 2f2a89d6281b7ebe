"""Fitting one encoded demonstration into `max_length`, and what to do with a prompt that is too long.

A demonstration's prompt is everything before its first action (label != IGNORE_INDEX). Two cuts:
- the completion end: a sequence longer than `max_length` loses its last tokens, and with them its
  EOS, so it is kept as truncated, not terminal (nothing is dropped for a long completion);
- the prompt: a prompt longer than `max_prompt_length`, or one that leaves no room for an action under
  `max_length`, is handled by `prompt_truncation`:
  - `keep_end` (default, as TRL's DPO/GRPO trainers do): keep the prompt's last tokens, the context
    nearest the reply, plus a leading BOS when it had one; it keeps `max_prompt_length` tokens, or
    half of `max_length` when that is unset, so the completion keeps room;
  - `drop`: leave the row out (counted and reported, never silently);
  - `error`: stop with a `DataError` naming the row.
"""

from __future__ import annotations

from llm_irl.errors import DataError
from llm_irl.soft_q import IGNORE_INDEX

PROMPT_TRUNCATION = ("keep_end", "drop", "error")

# what happened to a row; `encode_rows` counts these for its one warning
FITS, CUT, PROMPT_CUT, DROPPED = "fits", "cut", "prompt_cut", "dropped"


def prompt_length(labels: list[int]) -> int:
    """Tokens before the first action."""
    return next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))


def prompt_limit(max_length: int | None, max_prompt_length: int | None) -> int | None:
    """Most prompt tokens a row may keep: max_prompt_length, and always room for one action under max_length."""
    limits = [n for n in (max_prompt_length, None if max_length is None else max_length - 1) if n is not None]
    return min(limits) if limits else None


def _keep_end(ids: list[int], labels: list[int], n_prompt: int, keep: int, bos_id: int | None):
    """Drop prompt tokens from the start so that `keep` remain, holding on to a leading BOS."""
    head = 1 if bos_id is not None and ids and ids[0] == bos_id and keep >= 2 else 0
    start = n_prompt - (keep - head)
    return ids[:head] + ids[start:], labels[:head] + labels[start:]


def fit_to_length(
    encoded: dict,
    *,
    max_length: int | None,
    max_prompt_length: int | None = None,
    prompt_truncation: str = "keep_end",
    bos_id: int | None = None,
    where: str = "row",
) -> tuple[dict | None, str]:
    """(the row fitted, or None when dropped; FITS / CUT / PROMPT_CUT / DROPPED). Raises `DataError`."""
    if prompt_truncation not in PROMPT_TRUNCATION:
        raise DataError(f"prompt_truncation must be one of {', '.join(PROMPT_TRUNCATION)}, got {prompt_truncation!r}")
    ids, labels = encoded["input_ids"], encoded["labels"]
    n_prompt, limit = prompt_length(labels), prompt_limit(max_length, max_prompt_length)
    status = FITS
    if limit is not None and n_prompt > limit:
        if prompt_truncation == "error":
            budget = f"max_prompt_length={max_prompt_length}" if max_prompt_length is not None and n_prompt > max_prompt_length \
                else f"max_length={max_length} (no room for a completion)"
            raise DataError(f"{where}: prompt has {n_prompt} tokens, over {budget}; raise it, shorten the prompt, "
                            f"or set prompt_truncation to keep_end or drop")
        if prompt_truncation == "drop":
            return None, DROPPED
        keep = max_prompt_length if max_prompt_length is not None else max(1, max_length // 2)
        ids, labels = _keep_end(ids, labels, n_prompt, min(keep, limit), bos_id)
        status = PROMPT_CUT
    if max_length is not None and len(ids) > max_length:
        ids, labels = ids[:max_length], labels[:max_length]
        status = CUT if status == FITS else status
    if all(label == IGNORE_INDEX for label in labels[1:]):  # the first token is never predicted
        raise DataError(f"{where}: no action is left to learn from (max_length={max_length})")
    return {"input_ids": ids, "labels": labels}, status
