"""Tiny models built from configs (no download) and the word tokenizer, shared by the tests."""

from __future__ import annotations

import torch
import transformers

from llm_irl.builtin import default_expert, word_tokenizer

SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)

CONFIGS = {
    "gpt2": lambda v: transformers.GPT2Config(vocab_size=v, n_embd=32, n_layer=2, n_head=4, n_positions=64),
    "llama": lambda v: transformers.LlamaConfig(vocab_size=v, **SMALL),
    "qwen2": lambda v: transformers.Qwen2Config(vocab_size=v, **SMALL),
    "mistral": lambda v: transformers.MistralConfig(vocab_size=v, **SMALL),
    "gemma": lambda v: transformers.GemmaConfig(vocab_size=v, head_dim=8, **SMALL),
    "phi3": lambda v: transformers.Phi3Config(vocab_size=v, pad_token_id=0, **SMALL),
    "gpt_neox": lambda v: transformers.GPTNeoXConfig(
        vocab_size=v, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    ),
    "opt": lambda v: transformers.OPTConfig(
        vocab_size=v, hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4, word_embed_proj_dim=32
    ),
}


def tokenizer():
    return word_tokenizer(default_expert().vocab)


def tiny_lm(arch: str = "llama", vocab_size: int | None = None, seed: int = 0):
    tok = tokenizer()
    config = CONFIGS[arch](vocab_size or len(tok))
    config.eos_token_id, config.pad_token_id = tok.eos_token_id, tok.pad_token_id
    torch.manual_seed(seed)
    return transformers.AutoModelForCausalLM.from_config(config)


def demos(n: int = 64, seed: int = 0) -> list[dict]:
    return default_expert().demonstrations(n, seed=seed)


# encoder–decoders: one layer each side, the word tokenizer's ids (pad 0, eos 1, bos 3)
SEQ2SEQ_CONFIGS = {
    "t5": lambda v: transformers.T5Config(vocab_size=v, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                                          relative_attention_num_buckets=8, decoder_start_token_id=0),
    "bart": lambda v: transformers.BartConfig(
        vocab_size=v, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        decoder_start_token_id=1, bos_token_id=3),
    "marian": lambda v: transformers.MarianConfig(
        vocab_size=v, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        decoder_start_token_id=0, pad_token_id=0),
}


def tiny_seq2seq(arch: str = "t5", seed: int = 0):
    tok = tokenizer()
    config = SEQ2SEQ_CONFIGS[arch](len(tok))
    config.eos_token_id, config.pad_token_id = tok.eos_token_id, tok.pad_token_id
    torch.manual_seed(seed)
    model = transformers.AutoModelForSeq2SeqLM.from_config(config)
    if arch == "bart":  # as bart-large's checkpoints: the decoder starts with EOS, then a forced BOS
        model.generation_config.forced_bos_token_id = tok.bos_token_id
    return model
