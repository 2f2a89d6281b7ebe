"""A causal language model as the expert: exact likelihood on real language.

`LanguageModelExpert(model, instruction=..., temperature=T)` is the distribution
p_E(y | x) = Π_t softmax(logits_t / T)[y_t] of a causal LM given the prompt x, optionally with an
instruction in its context that the student never sees (context distillation: teach a model to
behave without a long instruction as it behaves with it). Because p_E is the model's own
softmax, every ground-truth figure the synthetic experts give (expert log-likelihood of samples,
forward KL on held-out expert samples, reverse KL) is exact here too, on real text.

Where the instruction goes:
- a conversation prompt (a list of {"role", "content"} turns) gets it as its system turn, in place
  of any system turn the prompt had, rendered by the tokenizer's chat template up to the opening
  of the assistant's reply (as training renders it, `llm_irl.prompts.prompt_ids`);
- a string prompt gets it as a plain prefix line: `instruction + "\\n\\n" + prompt`.

Completions are strings, tokenised on their own and followed by the tokenizer's EOS (as training
and `llm_irl.scoring` tokenise them), so a score counts every action including the stop.

Sampling draws at the expert's temperature with top_p 1, `max_new_tokens` at most. A draw that
does not end within that limit is drawn again (up to `max_redraws` times, then kept cut, with a
warning), so demonstrations end with EOS as training needs: the samples come from p_E conditioned
on ending within the limit, a conditioning whose log-probability is the same for every model
compared on one prompt; `last_redraw_share` says how much of a call it touched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import numpy as np

from llm_irl.tasks.base import ExpertScore, SyntheticExpert

logger = logging.getLogger(__name__)


class LanguageModelExpert(SyntheticExpert):
    """A causal LM (a name, a local folder or a built model) at temperature T, with an optional instruction
    in context, as an expert whose log-likelihood of any completion is exact."""

    def __init__(self, model, tokenizer=None, *, instruction: str | None = None, temperature: float = 1.0,
                 prompts: Sequence = (), max_new_tokens: int = 64, batch_size: int = 32, max_redraws: int = 4,
                 trust_remote_code: bool = False):
        from llm_irl.modeling import load_model, load_tokenizer

        if not temperature > 0:
            raise ValueError(f"the expert's temperature must be > 0 (its likelihood needs a distribution), "
                             f"got {temperature}")
        if max_new_tokens < 1 or batch_size < 1 or max_redraws < 0:
            raise ValueError(f"max_new_tokens and batch_size must be >= 1 and max_redraws >= 0, got "
                             f"{max_new_tokens}, {batch_size}, {max_redraws}")
        self.model = load_model(model, trust_remote_code=trust_remote_code)
        self.model.eval()
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(
            model if isinstance(model, str) else self.model, trust_remote_code=trust_remote_code)
        self.instruction = instruction
        self.temperature = float(temperature)
        self.prompts = list(prompts)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.max_redraws = max_redraws
        self.last_redraw_share = 0.0
        # (rng state, prompts) -> (texts, rng state after, redraw share): evaluation draws the expert's reference
        # samples twice from one seed (its own figures, and the lengths samples are standardised to)
        self._drawn: dict[tuple, tuple] = {}

    @property
    def vocab(self) -> list[str]:
        raise AttributeError("a language-model expert has no word vocabulary: its tokenizer is its own")

    # ------------------------------------------------------------ contexts

    def context(self, prompt):
        """What the expert sees for `prompt`: the instruction in its place (module docstring)."""
        if not self.instruction:
            return prompt
        if isinstance(prompt, str):
            return f"{self.instruction}\n\n{prompt}"
        return [{"role": "system", "content": self.instruction}, *(m for m in prompt if m["role"] != "system")]

    def completion_ids(self, completion: str) -> list[int]:
        """The actions of a completion: its tokens, then EOS."""
        from llm_irl.special_tokens import eos_token_ids

        return self.tokenizer(completion, add_special_tokens=False)["input_ids"] + [eos_token_ids(self.tokenizer)[0]]

    def completion_length(self, completion: str) -> int:
        return len(self.completion_ids(completion))

    def reads_token_ids(self, tokenizer) -> bool:
        return tokenizer is self.tokenizer or tokenizer.get_vocab() == self.tokenizer.get_vocab()

    # ------------------------------------------------------------ the contract

    def sample_prompts(self, n: int, rng: np.random.Generator) -> list:
        if not self.prompts:
            raise ValueError("this expert was given no prompts to draw from: pass prompts=[...]")
        picks = rng.choice(len(self.prompts), size=n, replace=n > len(self.prompts))
        return [self.prompts[i] for i in picks]

    def sample_completion(self, prompt, rng: np.random.Generator) -> str:
        return self.sample_many([prompt], rng)[0]

    def score(self, prompt, completion: str) -> ExpertScore:
        return self.score_many([prompt], [completion])[0]

    # ------------------------------------------------------------ batched

    def sample_many(self, prompts: Sequence, rng: np.random.Generator) -> list[str]:
        """One completion per prompt, batched; drawn again where it did not end within `max_new_tokens`.
        A call repeated from the same generator state returns the first call's draws (and leaves the
        generator where the first left it) without sampling again."""
        key = (json.dumps(rng.bit_generator.state, sort_keys=True), json.dumps(list(prompts), sort_keys=True))
        if key not in self._drawn:
            texts = self._sample(prompts, rng)
            self._drawn[key] = (texts, rng.bit_generator.state, self.last_redraw_share)
        texts, state, self.last_redraw_share = self._drawn[key]
        rng.bit_generator.state = state
        return list(texts)

    def _sample(self, prompts: Sequence, rng: np.random.Generator) -> list[str]:
        from llm_irl.prompts import prompt_ids
        from llm_irl.rollout import completion_text, generate_rollouts

        ids = [prompt_ids(self.tokenizer, self.context(p)) for p in prompts]
        texts: list[str | None] = [None] * len(prompts)
        todo, redrawn = list(range(len(prompts))), 0
        for attempt in range(self.max_redraws + 1):
            out = generate_rollouts(self.model, self.tokenizer, [ids[i] for i in todo],
                                    max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=1.0,
                                    batch_size=self.batch_size, seed=int(rng.integers(2**31)))
            last = attempt == self.max_redraws
            for i, completion, ended in zip(todo, out.completion_ids, out.terminated):
                if ended or last:
                    texts[i] = completion_text(self.tokenizer, completion, ended)
            unfinished = [i for i, ended in zip(todo, out.terminated) if not ended]
            redrawn += len(unfinished) if not last else 0
            if last and unfinished:
                logger.warning("%d of %d expert samples did not end within %d tokens after %d redraws; kept cut",
                               len(unfinished), len(prompts), self.max_new_tokens, self.max_redraws)
            todo = unfinished
            if not todo:
                break
        self.last_redraw_share = redrawn / max(len(prompts), 1)
        return texts  # type: ignore[return-value]

    def score_many(self, prompts: Sequence, completions: Sequence) -> list[ExpertScore]:
        """Exact log p_E(completion, EOS | context) per pair, from batched teacher-forced passes. A completion
        is a string, or the token ids a model took (EOS included where it stopped; see `reads_token_ids`)."""
        from llm_irl.scoring import completion_logprobs_at

        scored = completion_logprobs_at(self.model, self.tokenizer, [self.context(p) for p in prompts],
                                        list(completions), [self.temperature], batch_size=self.batch_size,
                                        max_length=None)[self.temperature]
        return [ExpertScore(logprob=lp, num_tokens=n, valid=True) for lp, n in scored]
