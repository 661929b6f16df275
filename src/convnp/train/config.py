"""Every training setting in one typed place; the ``convnp train`` flags map onto these fields."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

from convnp.parallel import BACKENDS

# The learning rate each optimizer gets when none is given.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.02, "adam": 1e-3, "adamw": 1e-3}

SCHEDULE_NAMES = ("constant", "step", "cosine", "onecycle")


@dataclass
class TrainConfig:
    """Settings of one training run. ``lr=None`` means the optimizer's default from :data:`DEFAULT_LR`.

    With ``schedule="onecycle"`` the rate peaks at ``lr``; ``warmup_epochs > 0`` sets the length of its rise
    (otherwise 30% of the run).

    ``label_smoothing`` smooths the training targets (so the training loss reported is the smoothed one); validation
    and test losses are always the plain cross-entropy.

    With ``augment=True`` every training batch (never validation or test images) goes through
    :class:`convnp.data.augment.Augment` with ``max_shift`` (pixels), ``max_rotation`` (degrees),
    ``scale_range=(scale_min, scale_max)`` and, when ``elastic_alpha > 0``, ``elastic=(elastic_alpha,
    elastic_sigma)``. The augmentation settings are ignored when ``augment`` is False.

    ``skip_nonfinite`` batches over the whole run may give a NaN or infinite loss or gradient and be skipped (no
    update); one more stops the run with :class:`~convnp.train.loop.TrainingDiverged`.
    """

    model: str = "notebook"
    data: str = "mnist"
    epochs: int = 8
    batch_size: int = 64
    optimizer: str = "momentum"  # sgd | momentum | adam | adamw
    lr: float | None = None
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "cosine"  # constant | step | cosine | onecycle
    warmup_epochs: float = 0.0
    step_epochs: int = 2  # schedule "step": multiply the rate by step_gamma every step_epochs epochs
    step_gamma: float = 0.1
    clip_grad_norm: float | None = None
    patience: int | None = None  # early stopping on val_loss; None = off
    seed: int = 0
    val_split: float = 0.1
    limit: int | None = None
    mnist_dir: str | None = None
    threads: int | None = None  # None: convnp.parallel.threads_for(); only float rounding depends on it
    backend: str = "auto"  # auto | threads | processes (convnp.parallel.BACKENDS): the same results, bit for bit
    label_smoothing: float = 0.0
    augment: bool = False
    max_shift: float = 2.0
    max_rotation: float = 10.0
    scale_min: float = 0.9
    scale_max: float = 1.1
    elastic_alpha: float = 0.0  # 0: no elastic distortion
    elastic_sigma: float = 4.0
    skip_nonfinite: int = 0  # batches with a NaN/inf loss or gradient that may be skipped over the run

    def __post_init__(self):
        problems = []
        if self.optimizer not in DEFAULT_LR:
            problems.append(f"optimizer must be one of {sorted(DEFAULT_LR)}, got {self.optimizer!r}")
        if self.backend not in BACKENDS:
            problems.append(f"backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        if self.schedule not in SCHEDULE_NAMES:
            problems.append(f"schedule must be one of {list(SCHEDULE_NAMES)}, got {self.schedule!r}")
        for name in ("epochs", "batch_size", "step_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if self.lr is not None and not self.lr > 0:
            problems.append(f"lr must be positive, got {self.lr!r}")
        if not 0 <= self.val_split < 1:
            problems.append(f"val_split must be in [0, 1), got {self.val_split!r}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0 or self.warmup_epochs < 0:
            problems.append("weight_decay and warmup_epochs must be >= 0")
        if not isinstance(self.skip_nonfinite, int) or isinstance(self.skip_nonfinite, bool) or self.skip_nonfinite < 0:
            problems.append(f"skip_nonfinite must be an integer >= 0, got {self.skip_nonfinite!r}")
        if self.limit is not None and self.limit < 1:
            problems.append(f"limit must be a positive integer, got {self.limit!r}")
        if not _number(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if not isinstance(self.augment, bool):
            problems.append(f"augment must be True or False, got {self.augment!r}")
        for name in ("max_shift", "max_rotation", "elastic_alpha"):
            value = getattr(self, name)
            if not _number(value) or not value >= 0:
                problems.append(f"{name} must be a finite number >= 0, got {value!r}")
        if not _number(self.elastic_sigma) or not self.elastic_sigma > 0:
            problems.append(f"elastic_sigma must be a finite number > 0, got {self.elastic_sigma!r}")
        if not (_number(self.scale_min) and _number(self.scale_max) and 0 < self.scale_min <= self.scale_max):
            problems.append(
                f"scale_min and scale_max must satisfy 0 < scale_min <= scale_max, "
                f"got scale_min={self.scale_min!r}, scale_max={self.scale_max!r}"
            )
        if problems:
            raise ValueError("TrainConfig: " + "; ".join(problems))

    @property
    def augment_settings(self) -> dict | None:
        """Keyword arguments of :class:`convnp.data.augment.Augment` (``fill`` aside), or None without ``augment``."""
        if not self.augment:
            return None
        return {
            "max_shift": self.max_shift,
            "max_rotation": self.max_rotation,
            "scale_range": (self.scale_min, self.scale_max),
            "elastic": (self.elastic_alpha, self.elastic_sigma) if self.elastic_alpha > 0 else None,
        }

    @property
    def base_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown setting(s) {unknown}")
        return cls(**d)


def _number(value) -> bool:
    """A finite real number, not a bool (JSON and the CLI give int or float)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
