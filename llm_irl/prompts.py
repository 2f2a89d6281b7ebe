"""What a row asks a model to continue: its prompt (a string or a conversation), the reference answer,
and the prompt's token ids, for `generate`, `evaluate` and `compare`.

Rows, in TRL's formats:

- `{"prompt": str[, "completion": str]}`: the prompt, tokenised with the tokenizer's special tokens
  (BOS), exactly as training tokenises it;
- `{"messages": [...]}` ending with an assistant turn: the prompt is the conversation before that
  turn, and its content is the reference; a conversation that ends with another turn (a user's
  question, say) is a prompt as a whole, with no reference;
- `{"prompt": [...][, "completion": [...]]}` (TRL's conversational prompt/completion): the same,
  on `prompt + completion`.

A conversation is rendered as training renders it (`llm_irl.data.encode_messages`: the chat
template when the tokenizer has one, else the plain `role: content` layout), with the assistant
turn's opening (the generation prompt): the ids are those of the state in which training's
assistant turn begins, so the model continues exactly where it learned to.
"""

from __future__ import annotations

from typing import Union

from llm_irl.data import Row, encode_messages, row_format
from llm_irl.errors import DataError
from llm_irl.soft_q import IGNORE_INDEX
from llm_irl.special_tokens import ids_with_special_tokens

Prompt = Union[str, list]  # a string, or a conversation: a list of {"role", "content"} turns

_EMPTY_TURN = {"role": "assistant", "content": ""}


def split_conversation(turns: list, where: str) -> tuple[list, str | None]:
    """(the turns before a closing assistant turn, that turn's content), or (all turns, None) when the
    conversation ends with another turn."""
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: a conversation must be a non-empty list of messages")
    # validated as training validates, with the assistant turn still to write appended
    row_format(Row({"messages": [*turns, _EMPTY_TURN]}, where))
    if turns[-1]["role"] != "assistant":
        return list(turns), None
    if len(turns) == 1:
        raise DataError(f"{where}: the conversation is one assistant turn, so there is no prompt before it")
    return list(turns[:-1]), turns[-1]["content"]


def prompt_and_reference(row: Row) -> tuple[Prompt, str | None]:
    """The prompt a row asks to continue and its reference completion (None when the row has none)."""
    f = row.fields
    if not isinstance(f, dict):
        raise DataError(f"{row.where}: a row must be an object, got {type(f).__name__}")
    if "messages" in f:
        return split_conversation(f["messages"], row.where)
    prompt, completion = f.get("prompt"), f.get("completion")
    if isinstance(prompt, list):  # conversational prompt/completion
        if completion is not None and not isinstance(completion, list):
            raise DataError(f"{row.where}: a conversational 'prompt' needs a list of messages as 'completion', "
                            f"got {type(completion).__name__}")
        return split_conversation([*prompt, *(completion or [])], row.where)
    if isinstance(prompt, str):
        if completion is not None and not isinstance(completion, str):
            raise DataError(f"{row.where}: 'completion' must be a string, got {type(completion).__name__}")
        return prompt, completion
    raise DataError(f"{row.where}: needs a 'prompt' (a string or a list of messages) or 'messages' "
                    f"(found {sorted(f)})")


def prompt_ids(tokenizer, prompt: Prompt) -> list[int]:
    """Token ids of a prompt: a string with the tokenizer's special tokens, a conversation rendered up to
    the opening of the assistant's reply (see the module docstring)."""
    if isinstance(prompt, str):
        return ids_with_special_tokens(tokenizer, prompt)
    encoded = encode_messages(tokenizer, [*prompt, _EMPTY_TURN])
    labels = encoded["labels"]
    # the appended turn's actions are the last run of labels; the prompt is everything before it
    end = max(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    start = end
    while start > 0 and labels[start - 1] != IGNORE_INDEX:
        start -= 1
    return encoded["input_ids"][:start]
