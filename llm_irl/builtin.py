"""The embedded default: a word-level tokenizer and a tiny model built from a config, no download.

`builtin:tiny` names a ~100k-parameter Llama over the Markov expert's vocabulary and
`builtin:markov` names that expert's demonstrations, so the quickstart and the recipes run
offline on a fresh machine. Anything else is a hub name or a local directory and goes through
the standard `from_pretrained` path.
"""

from __future__ import annotations

from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

from llm_irl.errors import DataError
from llm_irl.tasks.markov import MarkovExpert

PREFIX = "builtin:"
SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "<eos>", "unk_token": "<unk>", "bos_token": "<bos>"}


def is_builtin(name: str | None) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def word_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer whose vocabulary is the special tokens then `words`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {tok: i for i, tok in enumerate(list(SPECIAL_TOKENS.values()) + list(words))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # WordLevel has no decoder of its own; join words with spaces so decode(encode(t)) == t
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS)
    tok.padding_side = "right"
    return tok


def default_expert() -> MarkovExpert:
    return MarkovExpert(seed=0)


def expert_named(name: str):
    """A seeded expert by task name (markov, grammar, arithmetic), default settings."""
    from llm_irl.tasks import make_expert

    return default_expert() if name == "markov" else make_expert(name)


def _parse(name: str) -> tuple[str, int | None]:
    """`builtin:grammar:500` -> ("grammar", 500); the size is the number of training rows."""
    parts = name[len(PREFIX) :].split(":")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise DataError(f"bad builtin dataset {name!r}; use builtin:TASK or builtin:TASK:NUM_TRAIN_ROWS")
    return parts[0], int(parts[1]) if len(parts) == 2 else None


def expert_of(source) -> object | None:
    """The synthetic expert behind a `builtin:` dataset name (its likelihood is exact), else None."""
    if not is_builtin(source):
        return None
    return expert_named(_parse(source)[0])


def tiny_model_config(vocab_size: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=3,
    )


def load_builtin_model(name: str, seed: int = 0):
    """(model, tokenizer) for `builtin:tiny` (the Markov expert's vocabulary) or `builtin:tiny-TASK`."""
    import torch

    from llm_irl.tasks import EXPERTS

    task = "markov" if name == "builtin:tiny" else name.removeprefix("builtin:tiny-")
    if not name.startswith("builtin:tiny") or task not in EXPERTS:
        raise ValueError(f"unknown builtin model {name!r}; use builtin:tiny or builtin:tiny-TASK with TASK in "
                         f"{sorted(EXPERTS)}")
    tok = word_tokenizer(expert_named(task).vocab)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(tiny_model_config(len(tok)))
    return model, tok


TEST_ROWS, TEST_SEED, TRAIN_SEED, DEFAULT_TRAIN_ROWS = 200, 2, 1, 2000


def builtin_dataset(name: str, split: str = "train") -> list[dict[str, str]]:
    """Demonstrations of a builtin expert: `builtin:TASK[:NUM_TRAIN_ROWS]`; train and test seeds differ."""
    from llm_irl.tasks import EXPERTS

    task, num_train = _parse(name)
    if task not in EXPERTS:
        raise DataError(f"unknown builtin dataset {name!r}; tasks are {sorted(EXPERTS)}")
    if split not in ("train", "test"):
        raise DataError(f"builtin datasets have splits train and test, not {split!r}")
    n, seed = (num_train or DEFAULT_TRAIN_ROWS, TRAIN_SEED) if split == "train" else (TEST_ROWS, TEST_SEED)
    return expert_named(task).demonstrations(n, seed=seed)
