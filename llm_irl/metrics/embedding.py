"""Sentence-embedding figures: similarity of samples to their reference and diversity within a prompt's samples.

An optional extra: sentence-transformers (`pip install 'llm_irl[embed]'`) is imported only when an
encoder is loaded, and each encoder is loaded once per process (`load_encoder`, cached), from a
local sentence-transformers folder or a hub id. Embeddings are normalised here, so a cosine is a
dot product whatever the encoder returns.

Per prompt, from its k samples (and its reference, when the set has one):
- `embed_sim_to_reference`: mean over the k samples of cos(sample, reference), a quality figure;
- `embed_diversity_per_input`: mean over ordered pairs i ≠ j of 1 − cos(sample i, sample j), the
  embedding analogue of Self-BLEU within a prompt. Not reported for greedy decoding (the evaluation
  leaves it out there): k copies of one decode have no diversity to measure.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from llm_irl.errors import ConfigError

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MISSING = "embedding metrics need sentence-transformers, which is not installed: pip install 'llm_irl[embed]'"


@functools.lru_cache(maxsize=4)
def load_encoder(name: str, device: str | None = None):
    """The SentenceTransformer at `name` (a local folder or a hub id), loaded once per process."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise ImportError(MISSING) from err
    return SentenceTransformer(name, device=device)


def require_encoder(name: str) -> None:
    """Load the encoder now (cached for later), so a bad name or a missing package fails before any
    sampling or training, as a one-line `ConfigError`."""
    try:
        load_encoder(name, None)
    except ImportError as err:
        raise ConfigError(f"embedding_model {name!r}: {err}") from err
    except Exception as err:  # a folder that is not a model, an unknown hub id, no network
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"embedding_model {name!r} could not be loaded: {first}") from err


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero: its cosines are 0)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def encode(texts: Sequence[str], model_name: str, batch_size: int = 64, device: str | None = None) -> np.ndarray:
    """Unit-length embeddings of `texts`, one row each, from the cached encoder."""
    encoder = load_encoder(model_name, device)  # always positional: one cache entry per (name, device)
    emb = encoder.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    return unit_rows(emb)


def mean_pairwise_distance(emb: np.ndarray) -> float:
    """Mean of 1 − cos over ordered pairs i ≠ j of unit rows (the diagonal, cos 1, left out)."""
    n = len(emb)
    if n < 2:
        raise ValueError(f"pairwise distance needs at least 2 embeddings, got {n}")
    sims = emb @ emb.T
    return float(1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))


def per_prompt_embedding(groups: Sequence[Sequence[str]], references: Sequence[str] | None,
                         model_name: str) -> dict[str, list[float]]:
    """One value per prompt for each embedding figure that applies: similarity to the prompt's reference
    (when there are references) and diversity within its samples (k ≥ 2)."""
    sizes = [len(g) for g in groups]
    emb = encode([t for g in groups for t in g], model_name)
    per_group = np.split(emb, np.cumsum(sizes)[:-1])
    out: dict[str, list[float]] = {}
    if references is not None:
        ref = encode(references, model_name)
        out["embed_sim_to_reference"] = [float((e @ ref[i]).mean()) for i, e in enumerate(per_group)]
    if min(sizes) >= 2:
        out["embed_diversity_per_input"] = [mean_pairwise_distance(e) for e in per_group]
    return out


def embedding_diversity(texts: Sequence[str], model_name: str = DEFAULT_EMBEDDING_MODEL, batch_size: int = 64,
                        device: str | None = None) -> float:
    """Mean pairwise cosine distance (1 − cosine similarity) of the sentence embeddings of `texts`."""
    if len(texts) < 2:
        raise ValueError(f"embedding_diversity needs at least 2 texts, got {len(texts)}")
    return mean_pairwise_distance(encode(texts, model_name, batch_size=batch_size, device=device))
