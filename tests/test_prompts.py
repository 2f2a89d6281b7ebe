"""Prompts of evaluation rows: every TRL row format, and prompt ids equal to the state in which training's
assistant turn begins (chat template and plain layout)."""

from __future__ import annotations

import pytest
from test_chat_eos import chatml_tokenizer
from tiny_models import tokenizer

from llm_irl.data import Row, encode_messages
from llm_irl.errors import DataError
from llm_irl.prompts import prompt_and_reference, prompt_ids
from llm_irl.soft_q import IGNORE_INDEX

USER = {"role": "user", "content": "kalo"}
SYSTEM = {"role": "system", "content": "helper"}
ANSWER = {"role": "assistant", "content": "mise lone"}


def row(**fields):
    return Row(fields, "data.jsonl:3")


def test_every_row_format_gives_its_prompt_and_reference():
    assert prompt_and_reference(row(prompt="topic1 kalo", completion="mise")) == ("topic1 kalo", "mise")
    assert prompt_and_reference(row(prompt="topic1 kalo")) == ("topic1 kalo", None)
    # messages: the closing assistant turn is the reference, the turns before it the prompt
    assert prompt_and_reference(row(messages=[SYSTEM, USER, ANSWER])) == ([SYSTEM, USER], "mise lone")
    # a conversation that ends with the user's turn is a prompt as a whole
    turns = [USER, ANSWER, {"role": "user", "content": "lodo"}]
    assert prompt_and_reference(row(messages=turns)) == (turns, None)
    # TRL's conversational prompt/completion: the same on prompt + completion
    assert prompt_and_reference(row(prompt=[SYSTEM, USER], completion=[ANSWER])) == ([SYSTEM, USER], "mise lone")
    assert prompt_and_reference(row(prompt=[USER])) == ([USER], None)


@pytest.mark.parametrize(("fields", "message"), [
    ({"prompt": 3}, "data.jsonl:3: needs a 'prompt'"),
    ({"prompt": "x", "completion": ["y"]}, "'completion' must be a string"),
    ({"prompt": [USER], "completion": "y"}, "needs a list of messages as 'completion'"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "data.jsonl:3: message 0 needs a 'role'"),
    ({"messages": [ANSWER]}, "no prompt before it"),
    ({"messages": []}, "non-empty list"),
])
def test_bad_rows_say_where(fields, message):
    with pytest.raises(DataError, match=message):
        prompt_and_reference(row(**fields))


@pytest.mark.parametrize("eos_token", ["<|im_end|>", "<|endoftext|>"], ids=["instruct", "base"])
def test_chat_prompt_is_the_template_with_its_generation_prompt(eos_token):
    tok = chatml_tokenizer(eos_token)
    rendered = tok.apply_chat_template([SYSTEM, USER], tokenize=False, add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>assistant\n")
    assert prompt_ids(tok, [SYSTEM, USER]) == tok(rendered, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("make_tokenizer", [lambda: chatml_tokenizer("<|im_end|>"), tokenizer],
                         ids=["chat template", "plain layout"])
def test_prompt_ids_are_the_state_where_training_begins_the_turn(make_tokenizer):
    tok = make_tokenizer()
    encoded = encode_messages(tok, [SYSTEM, USER, ANSWER])
    first_action = next(i for i, label in enumerate(encoded["labels"]) if label != IGNORE_INDEX)
    assert prompt_ids(tok, [SYSTEM, USER]) == encoded["input_ids"][:first_action]


def test_string_prompts_keep_the_tokenizers_special_tokens():
    tok = tokenizer()
    assert prompt_ids(tok, "topic1 kalo") == tok("topic1 kalo", add_special_tokens=True)["input_ids"]
