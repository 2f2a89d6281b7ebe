"""Per-phase timings: the timer's arithmetic on a fake clock, and the keys every online trainer logs."""

import math

import pytest
from tiny_models import demos, tiny_lm, tokenizer

from llm_irl import IQConfig, IQTrainer, SPINConfig, SPINTrainer
from llm_irl.adversarial import GAILConfig, GAILTrainer
from llm_irl.phase_timer import PhaseTimer, with_shares

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_nested_phases_count_once_and_the_rest_is_update():
    clock = FakeClock()
    timer = PhaseTimer(("rollout", "scoring", "update"), clock=clock)
    timer.start_step()
    clock.now += 1.0  # loading: update
    with timer.phase("rollout"):
        clock.now += 2.0
        with timer.phase("scoring"):  # nested: scoring only
            clock.now += 3.0
        clock.now += 4.0
    clock.now += 5.0  # forward, backward, optimiser: update
    got = timer.end_step()
    assert got == {"time_rollout": 6.0, "time_scoring": 3.0, "time_update": 6.0, "time_step": 15.0}
    shares = with_shares(dict(got))
    assert shares["time_rollout_share"] == pytest.approx(0.4)
    assert sum(v for k, v in shares.items() if k.endswith("_share")) == pytest.approx(1.0)


def test_phases_outside_a_step_are_not_counted_and_unknown_phases_refused():
    clock = FakeClock()
    timer = PhaseTimer(("rollout", "update"), clock=clock)
    with timer.phase("rollout"):  # evaluation's sampling, between steps
        clock.now += 10.0
    timer.start_step()
    clock.now += 1.0
    assert timer.end_step() == {"time_rollout": 0.0, "time_update": 1.0, "time_step": 1.0}
    with pytest.raises(ValueError, match="unknown phase 'disc'"):
        with timer.phase("disc"):
            pass


SMALL_RUN = dict(max_steps=2, per_device_train_batch_size=8, logging_steps=1, save_strategy="no", max_length=24,
                 disable_tqdm=True, report_to="none", learning_rate=1e-3, max_new_tokens=8)


def _logged_timings(trainer_class, config_class, tmp_path, **overrides):
    args = config_class(output_dir=str(tmp_path), **{**SMALL_RUN, **overrides})
    trainer = trainer_class(model=tiny_lm(), args=args, train_dataset=demos(32), processing_class=tokenizer())
    trainer.train()
    return [h for h in trainer.state.log_history if "time_step" in h]


@pytest.mark.parametrize("trainer_class, config_class, overrides, phases", [
    (IQTrainer, IQConfig, {"policy_mix": 0.5}, ("rollout", "update")),
    (GAILTrainer, GAILConfig, {"disc_steps": 1}, ("rollout", "scoring", "disc", "disc_eval", "update")),
    (SPINTrainer, SPINConfig, {"spin_iterations": 1}, ("rollout", "scoring", "update")),
], ids=["online_iq", "gail", "spin"])
def test_online_trainers_log_each_phase_and_the_shares_sum_to_one(trainer_class, config_class, overrides, phases,
                                                                   tmp_path):
    logged = _logged_timings(trainer_class, config_class, tmp_path, **overrides)
    assert len(logged) == 2  # one log per step
    first = logged[0]  # every trainer samples at its first step
    for phase in phases:
        assert first[f"time_{phase}"] > 0, phase
        assert 0 < first[f"time_{phase}_share"] < 1, phase
    for row in logged:
        shares = [v for k, v in row.items() if k.startswith("time_") and k.endswith("_share")]
        assert len(shares) == len(phases)
        assert math.isclose(sum(shares), 1.0, abs_tol=1e-6)
        assert all(s >= 0 for s in shares)


def test_offline_iq_logs_no_timings(tmp_path):
    assert _logged_timings(IQTrainer, IQConfig, tmp_path, max_steps=1) == []
