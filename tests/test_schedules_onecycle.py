"""The one-cycle learning-rate schedule: hand-checked values, PyTorch's OneCycleLR, the run settings, bad values."""

import math

import pytest

from convnp.schedules import SCHEDULES, OneCycle
from convnp.train.config import TrainConfig
from convnp.train.run import make_schedule


def test_hand_checked_values():
    # 10 steps, 30% rising: the rise ends at step 0.3 * 10 - 1 = 2, the fall at step 9.
    # initial_lr = 1 / 25 = 0.04, min_lr = 0.04 / 1e4 = 4e-6; halfway up, the cosine is at its midpoint.
    schedule = OneCycle(1.0, 10)
    assert schedule(0) == pytest.approx(0.04, abs=1e-15)
    assert schedule(1) == pytest.approx((0.04 + 1.0) / 2, abs=1e-15)
    assert schedule(2) == pytest.approx(1.0, abs=1e-15)
    # Falling from step 2 to step 9: at step 3 the cosine has gone 1/7 of the way.
    assert schedule(3) == pytest.approx(4e-6 + (1.0 - 4e-6) * (1 + math.cos(math.pi / 7)) / 2, abs=1e-15)
    assert schedule(9) == pytest.approx(4e-6, abs=1e-18)
    assert schedule(10) == schedule(100) == schedule(9)  # past the end the rate stays at min_lr


def test_warmup_steps_set_the_length_of_the_rise():
    # 11 steps with a 3-step rise: peak at step 2, then down over steps 2..10, halfway (step 6) at the midpoint.
    schedule = OneCycle(0.5, 11, warmup_steps=3, div_factor=10, final_div_factor=100)
    initial, minimum = 0.05, 0.0005
    assert schedule(0) == pytest.approx(initial, abs=1e-15)
    assert schedule(1) == pytest.approx((initial + 0.5) / 2, abs=1e-15)
    assert schedule(2) == pytest.approx(0.5, abs=1e-15)
    assert schedule(6) == pytest.approx((0.5 + minimum) / 2, abs=1e-15)
    assert schedule(10) == pytest.approx(minimum, abs=1e-18)
    rates = [schedule(s) for s in range(11)]
    assert rates[:3] == sorted(rates[:3]) and rates[2:] == sorted(rates[2:], reverse=True)


def test_a_rise_of_one_step_starts_at_the_peak():
    # pct_start * total_steps = 1 puts the end of the rise on step 0 (where PyTorch divides by zero).
    assert OneCycle(0.1, 10, pct_start=0.1)(0) == pytest.approx(0.1, abs=1e-17)
    assert OneCycle(0.1, 10, warmup_steps=1)(0) == pytest.approx(0.1, abs=1e-17)


def _torch_rates(torch, max_lr, total_steps, **kwargs):
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=max_lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=total_steps, anneal_strategy="cos", cycle_momentum=False, **kwargs
    )
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])  # the rate the coming step uses
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize(
    "max_lr, total_steps, kwargs",
    [
        (0.1, 100, {}),
        (1.0, 10, {}),
        (0.02, 7, {"pct_start": 0.3}),  # the rise ends between steps (1.1)
        (0.5, 1000, {"pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0}),
        (3e-3, 2, {}),  # the rise ends before step 0: everything is the fall
        (0.1, 1, {}),
        (0.05, 937, {"pct_start": 0.45, "div_factor": 4.0, "final_div_factor": 1e3}),
    ],
)
def test_matches_torch_one_cycle_lr(max_lr, total_steps, kwargs):
    torch = pytest.importorskip("torch")
    theirs = _torch_rates(torch, max_lr, total_steps, **kwargs)
    schedule = OneCycle(max_lr, total_steps, **kwargs)
    mine = [schedule(step) for step in range(total_steps)]
    worst = max(range(total_steps), key=lambda s: abs(mine[s] - theirs[s]))
    assert abs(mine[worst] - theirs[worst]) < 1e-12, f"step {worst}: mine {mine[worst]!r} vs torch {theirs[worst]!r}"


@pytest.mark.parametrize("total_steps, warmup_steps", [(100, 30), (40, 10), (50, 5)])
def test_warmup_steps_match_torch_with_the_same_fraction(total_steps, warmup_steps):
    torch = pytest.importorskip("torch")
    theirs = _torch_rates(torch, 0.1, total_steps, pct_start=warmup_steps / total_steps)
    schedule = OneCycle(0.1, total_steps, warmup_steps)
    assert max(abs(schedule(s) - theirs[s]) for s in range(total_steps)) < 1e-12


def test_train_config_and_make_schedule():
    assert "onecycle" in SCHEDULES
    schedule = make_schedule(TrainConfig(schedule="onecycle", lr=0.05, epochs=3), steps_per_epoch=20)
    assert isinstance(schedule, OneCycle) and schedule.total_steps == 60 and schedule.peak_step == 0.3 * 60 - 1
    assert max(schedule(s) for s in range(60)) == pytest.approx(0.05)
    with_warmup = make_schedule(TrainConfig(schedule="onecycle", epochs=3, warmup_epochs=1), steps_per_epoch=20)
    assert with_warmup.peak_step == 19 and with_warmup(19) == pytest.approx(with_warmup.base_lr)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pct_start": 0.0}, r"OneCycle: pct_start must be in \(0, 1\), got 0.0"),
        ({"pct_start": 1.0}, r"OneCycle: pct_start must be in \(0, 1\), got 1.0"),
        ({"div_factor": 0}, "OneCycle: div_factor must be a positive finite number, got 0"),
        ({"final_div_factor": -1.0}, "OneCycle: final_div_factor must be a positive finite number, got -1.0"),
        ({"final_div_factor": math.inf}, "OneCycle: final_div_factor must be a positive finite number, got inf"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OneCycle(0.1, 100, **kwargs)


def test_base_checks_still_apply():
    with pytest.raises(ValueError, match="OneCycle: base_lr must be positive, got 0"):
        OneCycle(0, 10)
    with pytest.raises(ValueError, match=r"OneCycle: warmup_steps must be in \[0, total_steps\], got 11"):
        OneCycle(0.1, 10, warmup_steps=11)
