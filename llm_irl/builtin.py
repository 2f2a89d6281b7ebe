"""The embedded default: a word-level tokenizer and a tiny model built from a config, no download.

`builtin:tiny` names a ~100k-parameter Llama over the Markov expert's vocabulary and
`builtin:markov` names that expert's demonstrations, so the quickstart and the recipes run
offline on a fresh machine. Anything else is a hub name or a local directory and goes through
the standard `from_pretrained` path.
"""

from __future__ import annotations

from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

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
    """Return (model, tokenizer) for a `builtin:` name."""
    import torch

    if name != "builtin:tiny":
        raise ValueError(f"unknown builtin model {name!r}; the only one is 'builtin:tiny'")
    tok = word_tokenizer(default_expert().vocab)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(tiny_model_config(len(tok)))
    return model, tok


def builtin_dataset(name: str, split: str = "train") -> list[dict[str, str]]:
    """Demonstrations of the embedded expert; `train` and `test` use disjoint seeds."""
    if name != "builtin:markov":
        raise ValueError(f"unknown builtin dataset {name!r}; the only one is 'builtin:markov'")
    sizes_and_seeds = {"train": (2000, 1), "test": (200, 2)}
    if split not in sizes_and_seeds:
        raise ValueError(f"builtin:markov has splits {sorted(sizes_and_seeds)}, not {split!r}")
    n, seed = sizes_and_seeds[split]
    return default_expert().demonstrations(n, seed=seed)
