"""Demonstrations in, token ids and HF labels out.

Sources: JSONL / JSON / CSV / Parquet files, a `datasets` Hub name, a `datasets.Dataset`, a list
of dicts, or `builtin:markov`. Row formats, as in TRL:

- `{"prompt": str, "completion": str}`: the completion's tokens (plus EOS) are the actions;
- `{"messages": [{"role", "content"}, ...]}`: only assistant turns are actions; rendered with the
  tokenizer's chat template when it has one, else with a plain `role: content` layout;
- `{"text": str}`: every token is an action.

Nothing is dropped silently: a malformed row raises `DataError` naming its file and line, and
truncation to `max_length` is explicit (a cut completion loses its EOS: truncated, not terminal).
Batching the encoded rows is `llm_irl.batching`.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from llm_irl.errors import DataError
from llm_irl.soft_q import IGNORE_INDEX
from llm_irl.special_tokens import eos_token_ids

logger = logging.getLogger(__name__)

FORMATS = {"prompt_completion": ("prompt", "completion"), "messages": ("messages",), "text": ("text",)}
ROLES = {"system", "user", "assistant", "tool"}
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass(frozen=True)
class Row:
    fields: dict
    where: str  # "path:line" or "source: row i", for error messages


# ---------------------------------------------------------------- reading sources


def _decode_lines(path: str) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte {e.start})") from None


def _read_jsonl(path: str) -> Iterator[Row]:
    for lineno, line in _decode_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        yield Row(obj, f"{path}:{lineno}")


def _read_json(path: str) -> Iterator[Row]:
    text = "".join(line for _, line in _decode_lines(path))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # several documents: JSON Lines under a .json name
            yield from _read_jsonl(path)
            return
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, list):
        raise DataError(f"{path}: expected a JSON list of rows, got {type(obj).__name__}")
    for i, item in enumerate(obj):
        yield Row(item, f"{path}: item {i}")


def _read_csv(path: str) -> Iterator[Row]:
    lines = (line for _, line in _decode_lines(path))
    reader = csv.DictReader(lines)
    for item in reader:
        if None in item:  # more cells than header columns
            raise DataError(f"{path}:{reader.line_num}: more cells than the header has columns")
        yield Row(dict(item), f"{path}:{reader.line_num}")


def _read_parquet(path: str) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: cannot read as Parquet ({e})") from None
    for i, item in enumerate(table.to_pylist()):
        yield Row(item, f"{path}: row {i}")


READERS = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}


def read_rows(source, split: str = "train", config_name: str | None = None) -> list[Row]:
    """Every row of a demonstration source, with its location. Raises `DataError`."""
    from llm_irl.builtin import builtin_dataset, is_builtin

    if isinstance(source, (list, tuple)):
        rows = [item if isinstance(item, Row) else Row(item, f"row {i}") for i, item in enumerate(source)]
    elif hasattr(source, "column_names") and hasattr(source, "__getitem__"):  # a datasets.Dataset
        rows = [Row(item, f"dataset row {i}") for i, item in enumerate(source)]
    elif is_builtin(source):
        rows = [Row(item, f"{source}: row {i}") for i, item in enumerate(builtin_dataset(source, split))]
    elif isinstance(source, (str, os.PathLike)) and str(source).endswith(FILE_SUFFIXES):
        path = str(source)
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such file")
        rows = list(READERS[os.path.splitext(path)[1]](path))
    elif isinstance(source, str) and os.path.isdir(source):
        raise DataError(f"{source}: is a directory; pass a {'/'.join(FILE_SUFFIXES)} file or a datasets name")
    elif isinstance(source, str):
        rows = _read_hub(source, split, config_name)
    else:
        raise DataError(f"cannot read demonstrations from a {type(source).__name__}")
    if not rows:
        raise DataError(f"{source}: no rows")
    return rows


def _read_hub(name: str, split: str, config_name: str | None) -> list[Row]:
    import datasets

    try:
        ds = datasets.load_dataset(name, config_name, split=split)
    except Exception as e:  # datasets raises many types; one line is what the user needs
        raise DataError(f"{name}: cannot load as a datasets name or file ({type(e).__name__}: {e})") from None
    return [Row(item, f"{name}[{split}]: row {i}") for i, item in enumerate(ds)]


# ---------------------------------------------------------------- validating rows


def row_format(row: Row) -> str:
    """Which of FORMATS the row is in, checking field types. Raises `DataError`."""
    if not isinstance(row.fields, dict):
        raise DataError(f"{row.where}: a row must be an object, got {type(row.fields).__name__}")
    for name, keys in FORMATS.items():
        if all(k in row.fields for k in keys):
            break
    else:
        found = sorted(row.fields)
        raise DataError(f"{row.where}: row has none of prompt+completion, messages, text (found {found})")
    if name == "messages":
        _check_messages(row)
    else:
        for k in keys:
            if not isinstance(row.fields[k], str):
                raise DataError(f"{row.where}: {k!r} must be a string, got {type(row.fields[k]).__name__}")
    return name


def _check_messages(row: Row) -> None:
    messages = row.fields["messages"]
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{row.where}: 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in ROLES:
            raise DataError(f"{row.where}: message {i} needs a 'role' in {sorted(ROLES)} and a string 'content'")
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{row.where}: conversation has no assistant turn, so no actions to learn from")


# ---------------------------------------------------------------- tokenising


def _fit(prompt_ids: list[int], action_ids: list[int], max_length: int | None, where: str) -> dict:
    """Concatenate and cut to max_length; cutting the actions is allowed, the prompt never."""
    if max_length is not None and len(prompt_ids) >= max_length:
        raise DataError(
            f"{where}: prompt has {len(prompt_ids)} tokens, leaving no room for a completion under "
            f"max_length={max_length}; raise max_length or shorten the prompt"
        )
    ids = (prompt_ids + action_ids)[:max_length]
    labels = [IGNORE_INDEX] * len(prompt_ids) + ids[len(prompt_ids) :]
    return {"input_ids": ids, "labels": labels}


def encode_prompt_completion(tokenizer, prompt: str, completion: str, *, max_length: int | None = None, where: str = "row"):
    """Prompt ids (with the tokenizer's special tokens) + completion ids + EOS, labels on the latter.

    The completion is tokenised on its own and appended, so the action boundary is exact; give
    the completion its leading space where the tokenizer expects one (e.g. " Paris").
    """
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [eos_token_ids(tokenizer)[0]]
    return _fit(prompt_ids, completion_ids, max_length, where)


def _segments_plain(messages: list[dict], eos: str) -> list[tuple[str, bool]]:
    """(text, is_action) pieces for tokenizers without a chat template."""
    out = []
    for m in messages:
        if m["role"] == "assistant":
            out += [("assistant: ", False), (m["content"], True), (eos, True), ("\n", False)]
        else:
            out.append((f"{m['role']}: {m['content']}\n", False))
    return out


def _segments_chat_template(tokenizer, messages: list[dict], where: str) -> list[tuple[str, bool]]:
    """Split the rendered conversation into pieces by rendering growing prefixes of it.

    An assistant turn's piece is the text added by that turn after the generation prompt of the
    turns before it; everything else (system, user, role headers) is context.
    """
    out, done = [], ""
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            head = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
            if not head.startswith(done):
                raise DataError(f"{where}: the chat template does not render conversations prefix by prefix")
            out.append((head[len(done) :], False))
            done = head
        full = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not full.startswith(done):
            raise DataError(f"{where}: the chat template does not render conversations prefix by prefix")
        out.append((full[len(done) :], m["role"] == "assistant"))
        done = full
    return [(text, act) for text, act in out if text]


def _actions_of_turn(piece: list[int], eos: set[int]) -> list[int]:
    """Labels of an assistant turn's tokens: actions up to and including its first EOS / end-of-turn
    token, context after it (ChatML's `\n` after `<|im_end|>` is no action: it follows the terminal one)."""
    end = next((i + 1 for i, t in enumerate(piece) if t in eos), len(piece))
    return piece[:end] + [IGNORE_INDEX] * (len(piece) - end)


def encode_messages(tokenizer, messages: list[dict], *, max_length: int | None = None, where: str = "row"):
    """Ids and labels of a conversation: only assistant turns are actions, each ending at its EOS."""
    if getattr(tokenizer, "chat_template", None):
        segments = _segments_chat_template(tokenizer, messages, where)
    else:
        segments = _segments_plain(messages, tokenizer.eos_token)
    eos = set(eos_token_ids(tokenizer))  # with a chat template, its end-of-turn token too
    ids, labels = [], []
    for text, is_action in segments:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += _actions_of_turn(piece, eos) if is_action else [IGNORE_INDEX] * len(piece)
    if max_length is not None and len(ids) > max_length:
        ids, labels = ids[:max_length], labels[:max_length]
    if all(l == IGNORE_INDEX for l in labels[1:]):
        raise DataError(f"{where}: no assistant token is left within max_length={max_length}")
    return {"input_ids": ids, "labels": labels}


def encode_text(tokenizer, text: str, *, max_length: int | None = None, where: str = "row"):
    ids = tokenizer(text, add_special_tokens=True)["input_ids"] + [eos_token_ids(tokenizer)[0]]
    if max_length is not None:
        ids = ids[:max_length]
    if len(ids) < 2:
        raise DataError(f"{where}: text gives fewer than 2 tokens, so no action to learn from")
    return {"input_ids": ids, "labels": list(ids)}


def encode_row(row: Row, tokenizer, *, max_length: int | None) -> dict:
    """Token ids and labels of one validated row, in whichever format it is."""
    f = row.fields
    fmt = row_format(row)
    if fmt == "prompt_completion":
        return encode_prompt_completion(tokenizer, f["prompt"], f["completion"], max_length=max_length, where=row.where)
    if fmt == "messages":
        return encode_messages(tokenizer, f["messages"], max_length=max_length, where=row.where)
    return encode_text(tokenizer, f["text"], max_length=max_length, where=row.where)


def validate_rows(rows: list[Row]) -> str:
    """Check every row before anything expensive happens; all must share the first row's format."""
    first_format = row_format(rows[0])
    for row in rows:
        if (fmt := row_format(row)) != first_format:
            raise DataError(f"{row.where}: row is in {fmt} format but the first row is in {first_format} format")
    return first_format


def encode_rows(rows: Iterable[Row], tokenizer, *, max_length: int | None) -> list[dict]:
    """Tokenise rows that share one format; truncated completions are counted and logged."""
    rows = list(rows)
    first_format = validate_rows(rows)
    eos = eos_token_ids(tokenizer)[0]
    out = [encode_row(row, tokenizer, max_length=max_length) for row in rows]
    if first_format != "messages" and (cut := sum(r["input_ids"][-1] != eos for r in out)):
        logger.warning("%d of %d demonstrations were cut at max_length=%s (kept as truncated, not terminal)",
                       cut, len(out), max_length)
    return out


def load_demonstrations(source, tokenizer, *, max_length: int | None, split: str = "train", config_name=None):
    """Read, validate and tokenise a demonstration source into a `datasets.Dataset`."""
    import datasets

    encoded = encode_rows(read_rows(source, split, config_name), tokenizer, max_length=max_length)
    return datasets.Dataset.from_list(encoded)
