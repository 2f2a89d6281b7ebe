"""Data formats, tokenisation, truncation, and the errors that name file and line."""

import json

import pytest
from tiny_models import tokenizer

from llm_irl.batching import DemoCollator
from llm_irl.data import DataError, encode_messages, load_demonstrations, read_rows

TOK = tokenizer()
EOS = TOK.eos_token_id


def ids(text):
    return TOK(text, add_special_tokens=False)["input_ids"]


def write(path, text, mode="w"):
    with open(path, mode) as f:
        f.write(text)
    return str(path)


ROWS = [{"prompt": "topic1 kalo", "completion": "mise lone"}, {"prompt": "topic2 kami", "completion": "lodo"}]


@pytest.mark.parametrize("suffix", ["jsonl", "json", "csv", "parquet"])
def test_every_file_format_gives_the_same_tokens(tmp_path, suffix):
    path = str(tmp_path / f"d.{suffix}")
    if suffix == "jsonl":
        write(path, "\n".join(json.dumps(r) for r in ROWS) + "\n")
    elif suffix == "json":
        write(path, json.dumps(ROWS))
    elif suffix == "csv":
        write(path, "prompt,completion\n" + "".join(f"{r['prompt']},{r['completion']}\n" for r in ROWS))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), path)
    ds = load_demonstrations(path, TOK, max_length=32)
    assert ds[0]["input_ids"] == ids("topic1 kalo mise lone") + [EOS]
    assert ds[0]["labels"] == [-100, -100] + ids("mise lone") + [EOS]
    assert ds[1]["labels"] == [-100, -100] + ids("lodo") + [EOS]


def test_text_rows_are_all_actions():
    ds = load_demonstrations([{"text": "kalo mise lone"}], TOK, max_length=32)
    assert ds[0]["input_ids"] == ids("kalo mise lone") + [EOS] == ds[0]["labels"]


def test_truncation_drops_eos_and_is_logged(caplog):
    ds = load_demonstrations([{"prompt": "topic1 kalo", "completion": "mise lone loka kazu"}], TOK, max_length=4)
    assert ds[0]["input_ids"] == ids("topic1 kalo mise lone")  # no EOS: truncated, not terminal
    assert "1 of 1 demonstrations were cut" in caplog.text


def test_prompt_without_room_is_refused_when_asked():
    with pytest.raises(DataError, match=r"row 0: prompt has 2 tokens, over max_length=2 \(no room for a completion\)"):
        load_demonstrations([{"prompt": "topic1 kalo", "completion": "mise"}], TOK, max_length=2, prompt_truncation="error")


def test_plain_messages_mark_only_assistant_turns():
    messages = [{"role": "user", "content": "kalo"}, {"role": "assistant", "content": "mise lone"},
                {"role": "user", "content": "lodo"}, {"role": "assistant", "content": "kami"}]
    enc = encode_messages(TOK, messages)
    actions = [t for t in enc["labels"] if t != -100]
    assert actions == ids("mise lone") + [EOS] + ids("kami") + [EOS]


def test_chat_template_messages_mark_only_assistant_turns():
    tok = tokenizer()
    tok.chat_template = (
        "{% for m in messages %}{{ '<bos> ' + m['role'] + ' ' }}{{ m['content'] }}{{ ' <eos> ' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<bos> assistant ' }}{% endif %}"
    )
    messages = [{"role": "system", "content": "topic1"}, {"role": "user", "content": "kalo"},
                {"role": "assistant", "content": "mise lone"}]
    enc = encode_messages(tok, messages)
    actions = [t for t in enc["labels"] if t != -100]
    assert actions == ids("mise lone") + [EOS]
    assert enc["input_ids"] == tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]


def test_collator_pads_right_with_ignored_labels():
    batch = DemoCollator(TOK.pad_token_id)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
                                            {"input_ids": [5], "labels": [-100]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, TOK.pad_token_id, TOK.pad_token_id]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [-100, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


BAD_FILES = {
    "invalid json": ("d.jsonl", '{"prompt": "a", "completion": "b"}\n{"prompt": "a",\n', r"d\.jsonl:2: invalid JSON"),
    "missing field": ("d.jsonl", '{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n',
                      r"d\.jsonl:2: row has none of prompt\+completion, messages, text \(found \['prompt'\]\)"),
    "wrong type": ("d.jsonl", '{"prompt": "a", "completion": 3}\n', r"d\.jsonl:1: 'completion' must be a string, got int"),
    "mixed formats": ("d.jsonl", '{"prompt": "a", "completion": "b"}\n{"text": "c"}\n',
                      r"d\.jsonl:2: row is in text format but the first row is in prompt_completion format"),
    "empty": ("d.jsonl", "", r"d\.jsonl: no rows"),
    "not an object": ("d.jsonl", "[1, 2]\n", r"d\.jsonl:1: a row must be an object, got list"),
    "bad messages": ("d.jsonl", '{"messages": [{"role": "robot", "content": "x"}]}\n', r"d\.jsonl:1: message 0 needs a 'role'"),
    "no assistant": ("d.jsonl", '{"messages": [{"role": "user", "content": "x"}]}\n', r"d\.jsonl:1: conversation has no assistant"),
    "json not a list": ("d.json", '{"prompt": "a"}', r"d\.json: expected a JSON list of rows, got dict"),
    "json syntax": ("d.json", '[{"prompt": "a", "completion": "b"},\n {"prompt": }]', r"d\.json:2: invalid JSON"),
    "csv extra cell": ("d.csv", "prompt,completion\na,b\na,b,c\n", r"d\.csv:3: more cells than the header"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_name_file_and_line(tmp_path, case):
    name, text, pattern = BAD_FILES[case]
    path = write(tmp_path / name, text)
    with pytest.raises(DataError, match=pattern):
        load_demonstrations(path, TOK, max_length=32)


def test_non_utf8_names_the_line(tmp_path):
    path = write(tmp_path / "d.jsonl", b'{"prompt": "a", "completion": "b"}\n{"prompt": "\xff"}\n', mode="wb")
    with pytest.raises(DataError, match=r"d\.jsonl:2: not valid UTF-8"):
        read_rows(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_rows(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="is a directory"):
        read_rows(str(tmp_path))


def test_tokenizer_without_eos_is_refused():
    tok = tokenizer()
    tok.eos_token = None
    with pytest.raises(DataError, match="no eos_token"):
        load_demonstrations(ROWS, tok, max_length=32)


# ---------------------------------------------------------------- long prompts (prompt_truncation)

LONG = {"prompt": "topic1 kalo mise lone loka kazu lodo kami", "completion": "mise lone"}  # 8 prompt tokens


def test_a_long_prompt_keeps_its_end_by_default_and_is_counted(caplog):
    rows = [LONG, ROWS[0]]
    ds = load_demonstrations(rows, TOK, max_length=8)
    assert len(ds) == 2
    # half of max_length for the prompt (its last 4 tokens), then the completion and EOS
    assert ds[0]["input_ids"] == ids("loka kazu lodo kami mise lone") + [EOS]
    assert ds[0]["labels"] == [-100] * 4 + ids("mise lone") + [EOS]
    assert ds[1]["input_ids"] == ids("topic1 kalo mise lone") + [EOS]  # a short prompt is untouched
    assert "1 of 2 prompts were too long for max_length=8 and kept their last tokens" in caplog.text


def test_max_prompt_length_sets_what_keep_end_keeps():
    ds = load_demonstrations([LONG], TOK, max_length=32, max_prompt_length=3)
    assert ds[0]["input_ids"] == ids("kazu lodo kami mise lone") + [EOS]


def test_keep_end_holds_on_to_a_leading_bos():
    from llm_irl.truncation import PROMPT_CUT, fit_to_length

    row = {"input_ids": [1, 10, 11, 12, 13, 20, 2], "labels": [-100] * 5 + [20, 2]}
    fitted, status = fit_to_length(row, max_length=5, bos_id=1)
    assert status == PROMPT_CUT
    assert fitted["input_ids"] == [1, 13, 20, 2]  # BOS + the prompt's last token: half of 5 is 2 prompt tokens
    assert fitted["labels"] == [-100, -100, 20, 2]


def test_drop_leaves_long_prompts_out_and_counts_them(caplog):
    ds = load_demonstrations([LONG, ROWS[0], LONG], TOK, max_length=8, prompt_truncation="drop")
    assert [r["input_ids"] for r in ds] == [ids("topic1 kalo mise lone") + [EOS]]
    assert "2 of 3 demonstrations were dropped: prompt too long for max_length=8" in caplog.text


def test_dropping_every_row_is_an_error():
    with pytest.raises(DataError, match="every one of the 1 demonstrations was dropped"):
        load_demonstrations([LONG], TOK, max_length=8, prompt_truncation="drop")


def test_error_names_the_row_and_the_limit(tmp_path):
    path = write(tmp_path / "d.jsonl", json.dumps(ROWS[0]) + "\n" + json.dumps(LONG) + "\n")
    with pytest.raises(DataError, match=r"d\.jsonl:2: prompt has 8 tokens, over max_prompt_length=5"):
        load_demonstrations(path, TOK, max_length=32, max_prompt_length=5, prompt_truncation="error")


def test_cut_conversations_are_counted(caplog):
    messages = [{"role": "user", "content": "kalo"}, {"role": "assistant", "content": "mise lone loka kazu lodo"}]
    ds = load_demonstrations([{"messages": messages}] * 3, TOK, max_length=5)
    assert all(len(r["input_ids"]) == 5 for r in ds)
    assert "3 of 3 demonstrations were cut at max_length=5" in caplog.text


SIMPLE_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<bos> ' + m['role'] + ' ' }}{{ m['content'] }}{{ ' <eos> ' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<bos> assistant ' }}{% endif %}"
)


@pytest.mark.parametrize("chat_template", [None, SIMPLE_CHAT_TEMPLATE], ids=["plain layout", "chat template"])
def test_conversational_prompt_completion_rows_train_on_the_completion_only(chat_template):
    tok = tokenizer()
    tok.chat_template = chat_template
    user = {"role": "user", "content": "kalo"}
    earlier, reply = {"role": "assistant", "content": "lodo"}, {"role": "assistant", "content": "mise lone"}
    ds = load_demonstrations([{"prompt": [user, earlier, user], "completion": [reply]}], tok, max_length=64)
    as_messages = encode_messages(tok, [user, earlier, user, reply])
    assert ds[0]["input_ids"] == as_messages["input_ids"]
    assert [t for t in ds[0]["labels"] if t != -100] == ids("mise lone") + [EOS]  # not the prompt's assistant turn
    assert [t for t in as_messages["labels"] if t != -100] == ids("lodo") + [EOS] + ids("mise lone") + [EOS]
    with pytest.raises(DataError, match=r"row 0: completion has no assistant turn"):
        load_demonstrations([{"prompt": [user], "completion": [user]}], tok, max_length=64)
    with pytest.raises(DataError, match=r"row 0: a conversational 'prompt' needs a list of messages as 'completion'"):
        load_demonstrations([{"prompt": [user], "completion": "mise"}], tok, max_length=64)


# ---------------------------------------------------------------- a mistyped local folder is not a Hub name


@pytest.mark.parametrize("name, why", [
    ("data/train", " (read as a path, not a Hub id, because folder 'data' exists here)"),
    ("./train", ""),
    ("data/more/train", ""),
])
def test_a_missing_local_path_fails_at_once_without_a_hub_lookup(tmp_path, monkeypatch, name, why):
    import llm_irl.data as data

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    monkeypatch.setattr(data, "_read_hub", lambda *a: pytest.fail("looked up on the Hub"))
    with pytest.raises(DataError) as e:
        read_rows(name)
    assert str(e.value) == f"{name}: no such file or folder{why}"


def test_an_org_slash_name_without_a_local_folder_is_a_hub_name(tmp_path, monkeypatch):
    import llm_irl.data as data

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "_read_hub", lambda name, split, config: [data.Row({"text": "x"}, "hub row 0")])
    assert read_rows("org/name")[0].fields == {"text": "x"}


# ---------------------------------------------------------------- one BOS


def _bos_adding_tokenizer():
    from tokenizers.processors import TemplateProcessing

    tok = tokenizer()
    tok._tokenizer.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", tok.bos_token_id)])
    return tok


def test_a_prompt_rendered_with_its_bos_gets_one_bos_in_training_and_evaluation():
    from llm_irl.prompts import prompt_ids

    tok = _bos_adding_tokenizer()
    bos = tok.bos_token_id
    assert tok("topic1 kalo")["input_ids"][0] == bos  # the tokenizer adds one
    for prompt in ("<bos> topic1 kalo", "topic1 kalo"):  # rendered with its BOS (a chat template's), or not
        ds = load_demonstrations([{"prompt": prompt, "completion": "mise"}], tok, max_length=32)
        assert ds[0]["input_ids"] == [bos] + ids("topic1 kalo mise") + [EOS]
        assert prompt_ids(tok, prompt) == [bos] + ids("topic1 kalo")
