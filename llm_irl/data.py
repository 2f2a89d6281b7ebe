"""Demonstrations in, token ids and HF labels out.

Sources: JSONL / JSON / CSV / Parquet files, a `datasets` Hub name, a `datasets.Dataset`, a list
of dicts, or `builtin:markov`. Row formats, as in TRL:

- `{"prompt": str, "completion": str}`: the completion's tokens (plus EOS) are the actions;
- `{"messages": [{"role", "content"}, ...]}`: only assistant turns are actions; rendered with the
  tokenizer's chat template when it has one, else with a plain `role: content` layout;
- `{"prompt": [messages], "completion": [messages]}` (TRL's conversational prompt/completion): the
  same conversation, with only the completion's assistant turns as actions;
- `{"text": str}`: every token is an action.

Nothing is dropped silently: a malformed row raises `DataError` naming its file and line, and
fitting rows into `max_length` is counted and reported (`llm_irl.truncation`: a cut completion loses
its EOS, so it is truncated, not terminal; a prompt that is too long is cut, dropped or refused).
Batching the encoded rows is `llm_irl.batching`. For an encoder–decoder each encoded row is then
cut at its first action into the encoder's prompt and the decoder's labelled ids (`llm_irl.seq2seq`).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from llm_irl.errors import DataError
from llm_irl.files import missing_local_path
from llm_irl.seq2seq import check_chat_template, split_row
from llm_irl.soft_q import IGNORE_INDEX
from llm_irl.special_tokens import eos_token_ids, ids_with_special_tokens
from llm_irl.truncation import CUT, DROPPED, PROMPT_CUT, fit_to_length

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
    elif isinstance(source, str) and (why := missing_local_path(source)) is not None:
        raise DataError(f"{source}: no such file or folder{why}")
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
    if name == "prompt_completion" and isinstance(row.fields["prompt"], list):
        name = "messages"  # TRL's conversational prompt/completion: a conversation, encoded as one
        if not isinstance(row.fields["completion"], list):
            raise DataError(f"{row.where}: a conversational 'prompt' needs a list of messages as 'completion', "
                            f"got {type(row.fields['completion']).__name__}")
        _check_messages(row, conversation(row.fields), context_turns=len(row.fields["prompt"]))
    elif name == "messages":
        _check_messages(row, row.fields["messages"])
    else:
        for k in keys:
            if not isinstance(row.fields[k], str):
                raise DataError(f"{row.where}: {k!r} must be a string, got {type(row.fields[k]).__name__}")
    return name


def conversation(fields: dict) -> list:
    """The messages of a `messages` row, or of a conversational prompt/completion row (prompt + completion)."""
    return fields["messages"] if "messages" in fields else [*fields["prompt"], *fields["completion"]]


def _check_messages(row: Row, messages, context_turns: int = 0) -> None:
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{row.where}: 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in ROLES:
            raise DataError(f"{row.where}: message {i} needs a 'role' in {sorted(ROLES)} and a string 'content'")
    if not any(m["role"] == "assistant" for m in messages[context_turns:]):
        which = "completion" if context_turns else "conversation"
        raise DataError(f"{row.where}: {which} has no assistant turn, so no actions to learn from")


# ---------------------------------------------------------------- tokenising


def _fitted(encoded: dict, max_length: int | None, where: str) -> dict:
    """The public encoders' fitting: cut the completion end; a prompt with no room left is an error."""
    return fit_to_length(encoded, max_length=max_length, prompt_truncation="error", where=where)[0]


def encode_prompt_completion(tokenizer, prompt: str, completion: str, *, max_length: int | None = None, where: str = "row",
                             decoder_prefix: list[int] | None = None):
    """Prompt ids (with the tokenizer's special tokens) + completion ids + EOS, labels on the latter.

    The completion is tokenised on its own and appended, so the action boundary is exact; give
    the completion its leading space where the tokenizer expects one (e.g. " Paris"). With a
    `decoder_prefix` (an encoder–decoder's, `seq2seq.decoder_prefix`) the row is split for it.
    """
    fitted = _fitted(_prompt_completion_ids(tokenizer, prompt, completion), max_length, where)
    return fitted if decoder_prefix is None else split_row(fitted, decoder_prefix, where)


def _prompt_completion_ids(tokenizer, prompt: str, completion: str) -> dict:
    prompt_ids = ids_with_special_tokens(tokenizer, prompt)
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [eos_token_ids(tokenizer)[0]]
    return {"input_ids": prompt_ids + completion_ids, "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids}


def _segments_plain(messages: list[dict], eos: str, context_turns: int) -> list[tuple[str, bool]]:
    """(text, is_action) pieces for tokenizers without a chat template."""
    out = []
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            act = i >= context_turns
            out += [("assistant: ", False), (m["content"], act), (eos, act), ("\n", False)]
        else:
            out.append((f"{m['role']}: {m['content']}\n", False))
    return out


def _segments_chat_template(tokenizer, messages: list[dict], where: str, context_turns: int) -> list[tuple[str, bool]]:
    """Split the rendered conversation into pieces by rendering growing prefixes of it.

    An assistant turn's piece is the text added by that turn after the generation prompt of the
    turns before it; everything else (system, user, role headers, the first `context_turns`
    messages) is context.
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
        out.append((full[len(done) :], m["role"] == "assistant" and i >= context_turns))
        done = full
    return [(text, act) for text, act in out if text]


def _actions_of_turn(piece: list[int], eos: set[int]) -> list[int]:
    """Labels of an assistant turn's tokens: actions up to and including its first EOS / end-of-turn
    token, context after it (ChatML's `\n` after `<|im_end|>` is no action: it follows the terminal one)."""
    end = next((i + 1 for i, t in enumerate(piece) if t in eos), len(piece))
    return piece[:end] + [IGNORE_INDEX] * (len(piece) - end)


def encode_messages(tokenizer, messages: list[dict], *, max_length: int | None = None, where: str = "row",
                    context_turns: int = 0):
    """Ids and labels of a conversation: assistant turns after the first `context_turns` messages are
    actions, each ending at its EOS."""
    return _fitted(_messages_ids(tokenizer, messages, where, context_turns), max_length, where)


def _messages_ids(tokenizer, messages: list[dict], where: str, context_turns: int = 0) -> dict:
    if getattr(tokenizer, "chat_template", None):
        segments = _segments_chat_template(tokenizer, messages, where, context_turns)
    else:
        segments = _segments_plain(messages, tokenizer.eos_token, context_turns)
    eos = set(eos_token_ids(tokenizer))  # with a chat template, its end-of-turn token too
    ids, labels = [], []
    for text, is_action in segments:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += _actions_of_turn(piece, eos) if is_action else [IGNORE_INDEX] * len(piece)
    return {"input_ids": ids, "labels": labels}


def encode_text(tokenizer, text: str, *, max_length: int | None = None, where: str = "row"):
    return _fitted(_text_ids(tokenizer, text), max_length, where)


def _text_ids(tokenizer, text: str) -> dict:
    ids = ids_with_special_tokens(tokenizer, text) + [eos_token_ids(tokenizer)[0]]
    return {"input_ids": ids, "labels": list(ids)}


def _full_encoding(row: Row, tokenizer) -> dict:
    """Token ids and labels of one validated row, in whichever format it is, before any cut."""
    f = row.fields
    fmt = row_format(row)
    if fmt == "messages":
        context_turns = 0 if "messages" in f else len(f["prompt"])
        return _messages_ids(tokenizer, conversation(f), row.where, context_turns)
    if fmt == "prompt_completion":
        return _prompt_completion_ids(tokenizer, f["prompt"], f["completion"])
    return _text_ids(tokenizer, f["text"])


def _fit_row(row: Row, tokenizer, *, max_length: int | None, max_prompt_length: int | None,
             prompt_truncation: str, decoder_prefix: list[int] | None = None) -> tuple[dict | None, str]:
    """One row's ids and labels fitted into max_length, and what fitting did (`llm_irl.truncation`);
    with a `decoder_prefix`, then split into an encoder–decoder's row (`llm_irl.seq2seq`)."""
    if decoder_prefix is not None and row_format(row) == "messages":
        check_chat_template(tokenizer, row.where)
    fitted, status = fit_to_length(_full_encoding(row, tokenizer), max_length=max_length,
                                   max_prompt_length=max_prompt_length, prompt_truncation=prompt_truncation,
                                   bos_id=tokenizer.bos_token_id, where=row.where)
    if fitted is not None and decoder_prefix is not None:
        fitted = split_row(fitted, decoder_prefix, row.where)
    return fitted, status


def validate_rows(rows: list[Row]) -> str:
    """Check every row before anything expensive happens; all must share the first row's format."""
    first_format = row_format(rows[0])
    for row in rows:
        if (fmt := row_format(row)) != first_format:
            raise DataError(f"{row.where}: row is in {fmt} format but the first row is in {first_format} format")
    return first_format


def encode_rows(rows: Iterable[Row], tokenizer, *, max_length: int | None, max_prompt_length: int | None = None,
                prompt_truncation: str = "keep_end", decoder_prefix: list[int] | None = None) -> list[dict]:
    """Tokenise rows that share one format and fit them into max_length (`llm_irl.truncation`); every
    cut or dropped row is counted in one warning, and a source with no row left is an error. With a
    `decoder_prefix` the rows are an encoder–decoder's (`llm_irl.seq2seq`)."""
    rows = list(rows)
    validate_rows(rows)
    out, counts = [], {CUT: 0, PROMPT_CUT: 0, DROPPED: 0}
    for row in rows:
        fitted, status = _fit_row(row, tokenizer, max_length=max_length, max_prompt_length=max_prompt_length,
                                  prompt_truncation=prompt_truncation, decoder_prefix=decoder_prefix)
        counts[status] = counts.get(status, 0) + 1
        if fitted is not None:
            out.append(fitted)
    limits = f"max_length={max_length}" + (f", max_prompt_length={max_prompt_length}" if max_prompt_length else "")
    if counts[CUT]:
        logger.warning("%d of %d demonstrations were cut at %s (kept as truncated, not terminal)",
                       counts[CUT], len(rows), limits)
    if counts[PROMPT_CUT]:
        logger.warning("%d of %d prompts were too long for %s and kept their last tokens (prompt_truncation=keep_end)",
                       counts[PROMPT_CUT], len(rows), limits)
    if counts[DROPPED]:
        logger.warning("%d of %d demonstrations were dropped: prompt too long for %s (prompt_truncation=drop)",
                       counts[DROPPED], len(rows), limits)
    if not out:
        raise DataError(f"every one of the {len(rows)} demonstrations was dropped: prompts too long for {limits}")
    return out


def load_demonstrations(source, tokenizer, *, max_length: int | None, split: str = "train", config_name=None,
                        max_prompt_length: int | None = None, prompt_truncation: str = "keep_end",
                        decoder_prefix: list[int] | None = None):
    """Read, validate and tokenise a demonstration source into a `datasets.Dataset` (an encoder–decoder's
    rows with a `decoder_prefix`, `llm_irl.seq2seq`)."""
    import datasets

    encoded = encode_rows(read_rows(source, split, config_name), tokenizer, max_length=max_length,
                          max_prompt_length=max_prompt_length, prompt_truncation=prompt_truncation,
                          decoder_prefix=decoder_prefix)
    return datasets.Dataset.from_list(encoded)
