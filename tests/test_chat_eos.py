"""Chat-templated rows: an assistant turn's actions end at its end-of-turn token, which counts as EOS.

A tiny ChatML tokenizer is built here (no download). ChatML closes a turn with `<|im_end|>\\n`: the
`\\n` after the end-of-turn token is context, not an action, so the terminal flag lands on the
turn's last action. Qwen2.5 base keeps `<|endoftext|>` as its eos_token while its chat template
ends turns with `<|im_end|>`; Qwen2.5-Instruct and SmolLM2-Instruct have `<|im_end|>` as eos_token.
"""

from __future__ import annotations

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from llm_irl.batching import pad_batch
from llm_irl.data import encode_messages
from llm_irl.soft_q import token_mdp
from llm_irl.special_tokens import eos_token_ids, resolve_eos_pad

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WORDS = ["system", "user", "assistant", "\n", "kalo", "mise", "lone", "lodo", "kami", "helper"]


def chatml_tokenizer(eos_token: str) -> PreTrainedTokenizerFast:
    """Word-level tokenizer that keeps `\\n` as a token, ChatML specials, and the given eos_token."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + WORDS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex("\n"), behavior="isolated"), pre_tokenizers.Split(Regex(" "), behavior="removed")]
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=eos_token, pad_token="<|endoftext|>",
                                  unk_token="<unk>", additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    tok.chat_template = CHATML
    return tok


MESSAGES = [{"role": "system", "content": "helper"}, {"role": "user", "content": "kalo"},
            {"role": "assistant", "content": "mise lone"}, {"role": "user", "content": "lodo"},
            {"role": "assistant", "content": "kami"}]


@pytest.mark.parametrize("eos_token", ["<|im_end|>", "<|endoftext|>"], ids=["instruct", "base"])
def test_end_of_turn_counts_as_eos(eos_token):
    tok = chatml_tokenizer(eos_token)
    im_end, endoftext = tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    eos = eos_token_ids(tok)
    assert eos[0] == tok.eos_token_id  # the tokenizer's own first: the one appended to completions
    assert set(eos) == {im_end, tok.eos_token_id}
    assert im_end in resolve_eos_pad(None, tok)[0]  # sampling stops there too


@pytest.mark.parametrize("eos_token", ["<|im_end|>", "<|endoftext|>"], ids=["instruct", "base"])
def test_assistant_turn_ends_at_its_end_of_turn_token(eos_token):
    tok = chatml_tokenizer(eos_token)
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    im_end, newline = tok.convert_tokens_to_ids(["<|im_end|>", "\n"])
    enc = encode_messages(tok, MESSAGES)
    # the rendered conversation, token for token
    assert enc["input_ids"] == ids(tok.apply_chat_template(MESSAGES, tokenize=False))
    actions = [t for t in enc["labels"] if t != -100]
    assert actions == ids("mise lone") + [im_end] + ids("kami") + [im_end]
    # the "\n" that closes each assistant turn is context
    last = max(i for i, t in enumerate(enc["labels"]) if t != -100)
    assert enc["input_ids"][last] == im_end and enc["input_ids"][last + 1:] == [newline]

    batch = pad_batch([enc], tok.pad_token_id)
    mdp = token_mdp(torch.zeros(1, len(enc["input_ids"]), len(tok)), batch["labels"], eos_token_id=eos_token_ids(tok))
    acted = mdp.actions[mdp.mask].tolist()
    terminal = mdp.terminal[mdp.mask].tolist()
    # each turn's end-of-turn action is terminal, and it is the row's last action: the row is not truncated
    assert [a for a, t in zip(acted, terminal) if t] == [im_end, im_end]
    assert terminal[-1]
