"""Learning-rate schedules: each maps the step number (0-based, counted in batches) to a learning rate.

Each is a small callable object; the training loop sets ``optimizer.lr = schedule(step)`` before every step.
References: Loshchilov & Hutter 2017 (cosine annealing, SGDR); Goyal et al. 2017 (linear warm-up); Smith & Topin
2017, "Super-Convergence" (the one-cycle policy), as PyTorch's ``OneCycleLR`` implements it.
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


class OneCycle(Schedule):
    """The one-cycle policy: a cosine rise from ``base_lr / div_factor`` to the peak ``base_lr``, then a cosine fall
    to ``base_lr / div_factor / final_div_factor``.

    The same rates as PyTorch's ``OneCycleLR(optimizer, max_lr=base_lr, total_steps, pct_start, div_factor,
    final_div_factor, anneal_strategy="cos", three_phase=False)`` at each step (momentum is not cycled). With
    ``initial_lr = base_lr / div_factor`` and ``min_lr = initial_lr / final_div_factor``, the rise ends at step
    ``r = pct_start * total_steps - 1`` (a float, as in PyTorch) and

        lr(step) = end + (start - end) * (1 + cos(pi * pct)) / 2,

    with ``(start, end, pct) = (initial_lr, base_lr, step / r)`` for ``step <= r``, else
    ``(base_lr, min_lr, (step - r) / (total_steps - 1 - r))``. Steps past the end keep ``min_lr``.

    Parameters
    ----------
    base_lr : float, > 0
        The peak rate (PyTorch's ``max_lr``).
    total_steps : int, >= 1
    warmup_steps : int
        When > 0, the rise lasts exactly this many steps (ending at ``r = warmup_steps - 1``) and ``pct_start``
        is not used: the one-cycle rise *is* the warm-up, so no separate linear warm-up is added.
    pct_start : float in (0, 1)
        Fraction of the steps spent rising (when ``warmup_steps`` is 0).
    div_factor : float, > 0
        ``initial_lr = base_lr / div_factor``.
    final_div_factor : float, > 0
        ``min_lr = initial_lr / final_div_factor``.
    """

    def __init__(
        self,
        base_lr,
        total_steps,
        warmup_steps=0,
        *,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
    ):
        super().__init__(base_lr, total_steps, warmup_steps)
        if not 0 < pct_start < 1:
            raise ValueError(f"OneCycle: pct_start must be in (0, 1), got {pct_start!r}")
        for name, value in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            if not 0 < value < math.inf:
                raise ValueError(f"OneCycle: {name} must be a positive finite number, got {value!r}")
        self.pct_start, self.div_factor = float(pct_start), float(div_factor)
        self.final_div_factor = float(final_div_factor)
        self.initial_lr = self.base_lr / self.div_factor
        self.min_lr = self.initial_lr / self.final_div_factor
        # The step at which the rise ends; PyTorch keeps it a float, so the phases meet between steps in general.
        if self.warmup_steps > 0:
            self.peak_step = float(self.warmup_steps - 1)
        else:
            self.peak_step = float(self.pct_start * self.total_steps) - 1

    def __call__(self, step: int) -> float:
        end_step = self.total_steps - 1
        step = min(step, end_step)
        if step <= self.peak_step:
            start, end, begin, stop = self.initial_lr, self.base_lr, 0.0, self.peak_step
        else:
            start, end, begin, stop = self.base_lr, self.min_lr, self.peak_step, end_step
        # A phase of zero length (its only step is its end) is complete; PyTorch would divide by zero there.
        pct = 1.0 if stop == begin else (step - begin) / (stop - begin)
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


SCHEDULES = {"constant": Constant, "step": Step, "cosine": Cosine, "onecycle": OneCycle}
