"""Learning-rate schedules: each maps the step number (0-based, counted in batches) to a learning rate.

Each is a small callable object; the training loop sets ``optimizer.lr = schedule(step)`` before every step.
References: Loshchilov & Hutter 2017 (cosine annealing, SGDR); Goyal et al. 2017 (linear warm-up).
"""

from __future__ import annotations

import math


class Schedule:
    """Base: ``lr(step)`` for a base learning rate ``base_lr`` over ``total_steps`` steps, after optional warm-up.

    With ``warmup_steps = w > 0`` the rate rises linearly from ``base_lr / w`` to ``base_lr`` over the first ``w``
    steps; the schedule proper then runs over the remaining steps.
    """

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int = 0):
        if not base_lr > 0:
            raise ValueError(f"{type(self).__name__}: base_lr must be positive, got {base_lr!r}")
        if total_steps < 1:
            raise ValueError(f"{type(self).__name__}: total_steps must be >= 1, got {total_steps!r}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"{type(self).__name__}: warmup_steps must be in [0, total_steps], got {warmup_steps!r}")
        self.base_lr, self.total_steps, self.warmup_steps = float(base_lr), int(total_steps), int(warmup_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        return self.after_warmup(step - self.warmup_steps, max(self.total_steps - self.warmup_steps, 1))

    def after_warmup(self, step: int, steps: int) -> float:
        raise NotImplementedError


class Constant(Schedule):
    """``lr = base_lr``."""

    def after_warmup(self, step, steps):
        return self.base_lr


class Step(Schedule):
    """``lr = base_lr * gamma ** floor(step / step_size)``: the rate drops by ``gamma`` every ``step_size`` steps."""

    def __init__(self, base_lr, total_steps, warmup_steps=0, *, step_size: int, gamma: float = 0.1):
        super().__init__(base_lr, total_steps, warmup_steps)
        if step_size < 1:
            raise ValueError(f"Step: step_size must be >= 1, got {step_size!r}")
        if not 0 < gamma <= 1:
            raise ValueError(f"Step: gamma must be in (0, 1], got {gamma!r}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def after_warmup(self, step, steps):
        return self.base_lr * self.gamma ** (step // self.step_size)


class Cosine(Schedule):
    """``lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * step / steps)) / 2``: from ``base_lr`` down to ``min_lr``."""

    def __init__(self, base_lr, total_steps, warmup_steps=0, *, min_lr: float = 0.0):
        super().__init__(base_lr, total_steps, warmup_steps)
        self.min_lr = float(min_lr)

    def after_warmup(self, step, steps):
        progress = min(step / steps, 1.0)
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


SCHEDULES = {"constant": Constant, "step": Step, "cosine": Cosine}
