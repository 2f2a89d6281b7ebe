"""Online IQ's policy rows: how often they are sampled, for which prompts, and that none is trained on twice."""

import json

import pytest
import torch
from tiny_models import demos, tiny_lm, tokenizer

import llm_irl.trainers.iq as iq
from llm_irl import IQConfig, IQTrainer
from llm_irl.batching import prompts_of
from llm_irl.rollout import Rollouts
from llm_irl.seeding import derive_seed
from llm_irl.soft_q import IGNORE_INDEX
from llm_irl.trainers.rollout_pool import policy_rows_due

TOK = tokenizer()
WORDS = [i for i in range(len(TOK)) if i not in TOK.all_special_ids]


def _serial_completion(n: int) -> list[int]:
    """A completion that encodes the serial number n of the sample (unique over a run)."""
    return [WORDS[n // len(WORDS)], WORDS[n % len(WORDS)], TOK.eos_token_id]


def _serial_of(completion: list[int]) -> int:
    return WORDS.index(completion[0]) * len(WORDS) + WORDS.index(completion[1])


class Recorder:
    """Stands in for `generate_rollouts` (every sample unique) and records, per optimiser step, the
    sampling calls and the demo batches and policy rows the trainer mixed."""

    def __init__(self, monkeypatch, real_sampling: bool = False):
        self.calls, self.mixed, self.serial, self.trainer = [], [], 0, None
        real_generate, real_mix = iq.generate_rollouts, IQTrainer._mix_policy_rows

        def fake_generate(model, tokenizer, prompts, **kw):
            self.calls.append({"step": self.trainer.state.global_step, "prompts": [list(p) for p in prompts],
                               "seed": kw["seed"], "batch_size": kw.get("batch_size")})
            if real_sampling:
                return real_generate(model, tokenizer, prompts, **kw)
            completions = [_serial_completion(self.serial + i) for i in range(len(prompts))]
            self.serial += len(prompts)
            n = len(prompts)
            return Rollouts([list(p) for p in prompts], completions, [[0.0] * 3] * n, [True] * n)

        def spy_mix(trainer, batches):
            self.trainer = trainer
            out = real_mix(trainer, batches)
            policy = []
            for batch in out:
                for ids, labels, is_policy in zip(batch["input_ids"], batch["labels"], batch["is_policy"]):
                    if is_policy:
                        policy.append(ids[labels != IGNORE_INDEX].tolist())
            self.mixed.append({"step": trainer.state.global_step, "demos": batches, "policy": policy,
                               "owed": [int(batch["is_policy"].sum()) for batch in out]})
            return out

        monkeypatch.setattr(iq, "generate_rollouts", fake_generate)
        monkeypatch.setattr(IQTrainer, "_mix_policy_rows", spy_mix)


TRAIN = dict(max_steps=7, per_device_train_batch_size=4, learning_rate=1e-2, policy_mix=0.2, max_new_tokens=4,
             max_length=24, save_strategy="no", disable_tqdm=True, report_to=[], seed=5)


def _train(tmp_path, **overrides):
    kw = dict(TRAIN, output_dir=str(tmp_path))
    kw.update(overrides)
    trainer = IQTrainer(model=tiny_lm("llama"), args=IQConfig(**kw), train_dataset=demos(64),
                        processing_class=TOK)
    trainer.train()
    return trainer


@pytest.mark.parametrize(("every", "accum"), [(3, 1), (2, 2), (4, 1)])
def test_rollout_every_samples_once_per_period_and_never_reuses_a_row(every, accum, tmp_path, monkeypatch):
    rec = Recorder(monkeypatch)
    steps = 7
    _train(tmp_path, rollout_every=every, gradient_accumulation_steps=accum, max_steps=steps)
    # batch 4 (× accum) at policy_mix 0.2: one policy row owed per 4 demos, so every step has rows due
    assert [c["step"] for c in rec.calls] == list(range(0, steps, every))
    # one call draws the rows of its whole period (fewer for the last, cut at max_steps), in one generate batch
    for call in rec.calls:
        period = min(every, steps - call["step"])
        assert len(call["prompts"]) == period * accum
        assert call["batch_size"] == len(call["prompts"])
    trained = [_serial_of(row) for m in rec.mixed for row in m["policy"]]
    assert len(trained) == steps * accum  # the share the user asked for: 1 policy row per 4 demos
    assert len(set(trained)) == len(trained)  # no row trained on twice
    assert sorted(trained) == list(range(rec.serial))  # and none drawn in vain
    # each row is trained on within the period of the call that drew it, in the order drawn
    starts = [c["step"] for c in rec.calls]
    bounds = [sum(len(c["prompts"]) for c in rec.calls[:i]) for i in range(len(rec.calls) + 1)]
    for m in rec.mixed:
        period = max(i for i, s in enumerate(starts) if s <= m["step"])
        assert all(bounds[period] <= _serial_of(r) < bounds[period + 1] for r in m["policy"])
    assert trained == sorted(trained)
    # the rows of a period are sampled for prompts of the step that drew them
    for call in rec.calls:
        demos_then = next(m["demos"] for m in rec.mixed if m["step"] == call["step"])
        own = [p for batch in demos_then for p in prompts_of(batch["input_ids"], batch["labels"])]
        assert all(p in own for p in call["prompts"])


def test_rollout_every_one_samples_each_step_its_own_rows_with_the_step_seed(tmp_path, monkeypatch):
    """rollout_every = 1 (the default): each step samples exactly its own rows, for its own batches'
    prompts (the i-th row owed to a batch for its i-th prompt), seeded by (seed, step, process)."""
    rec = Recorder(monkeypatch, real_sampling=True)
    trainer = _train(tmp_path, max_steps=5, per_device_train_batch_size=3, gradient_accumulation_steps=2,
                     policy_mix=0.1)
    seen_policy = sum(len(m["policy"]) for m in rec.mixed)
    assert seen_policy == policy_rows_due(5 * 2 * 3, 0.1) == 3
    assert any(not m["policy"] for m in rec.mixed)  # some steps owe no row: they sample nothing
    calls = {c["step"]: c for c in rec.calls}
    assert len(calls) == len(rec.calls)  # at most one call per step
    for m in rec.mixed:
        if not m["policy"]:
            assert m["step"] not in calls
            continue
        call = calls[m["step"]]
        assert call["seed"] == derive_seed(trainer.args.seed, m["step"], 0)
        assert len(call["prompts"]) == len(m["policy"])
        # batch b's i-th owed row is for its i-th prompt
        expected = []
        for batch, n in zip(m["demos"], m["owed"]):
            own = prompts_of(batch["input_ids"], batch["labels"])
            expected += [own[i % len(own)] for i in range(n)]
        assert call["prompts"] == expected


def _weights(trainer) -> dict:
    return {name: p.detach().clone() for name, p in trainer.model.named_parameters()}


@pytest.mark.parametrize("accum", [1, 2])
def test_resume_mid_period_is_bit_exact(accum, tmp_path):
    """rollout_every = 3 draws at steps 0, 3 and 6; checkpoint-5 falls two steps into the second period,
    where the running counts (3/7 of a policy row per demo row at policy_mix 0.3) carry a fraction, so the
    rows owed next depend on them too. Resumed from it, a run trains on the rows that period drew, as many
    as the uninterrupted run did, and ends on its very weights. The control: the same checkpoint without
    its pool file resumes onto other weights."""
    kw = dict(max_steps=7, rollout_every=3, policy_mix=0.3, gradient_accumulation_steps=accum,
              per_device_train_batch_size=3, save_strategy="steps", save_steps=5)
    straight = _train(tmp_path / "straight", **kw)
    checkpoint = tmp_path / "straight" / "checkpoint-5"
    pool = json.loads((checkpoint / "rollout_pool.json").read_text())
    assert pool["drawn_at"] == 3 and 0 < pool["next"] < len(pool["rows"])  # mid-period, rows left over
    want = _weights(straight)

    def resumed(name):
        trainer = IQTrainer(model=tiny_lm("llama"), args=IQConfig(**{**TRAIN, **kw, "output_dir": str(tmp_path / name)}),
                            train_dataset=demos(64), processing_class=TOK)
        trainer.train(resume_from_checkpoint=str(checkpoint))
        return _weights(trainer)

    got = resumed("resumed")
    assert all(torch.equal(got[name], want[name]) for name in want)
    (checkpoint / "rollout_pool.json").unlink()
    without_pool = resumed("without_pool")
    assert not all(torch.equal(without_pool[name], want[name]) for name in want)


@pytest.mark.parametrize("value_param", ["head", "offset"])
def test_online_iq_with_a_state_head_trains_every_parameter_on_that_heads_mdp(value_param, tmp_path):
    """Online IQ reads V_ψ (or Q, V shifted by b) over the whole mixture, so the head trains too."""
    from llm_irl.state_head import attach_state_head

    before = {n: p.detach().clone() for n, p in attach_state_head(tiny_lm("llama")).named_parameters()}
    trainer = _train(tmp_path, value_param=value_param, terminal_td="centred", td_weight=0.3)
    after = dict(trainer.model.named_parameters())
    assert set(before) == set(after)
    unmoved = [n for n, p in after.items() if torch.equal(p.detach(), before[n])]
    assert not unmoved, unmoved
    logged = [h for h in trainer.state.log_history if "reward_policy" in h]
    assert logged and all("reward_centre" in h for h in logged)
