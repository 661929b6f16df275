"""Every training setting in one typed place; the ``convnp train`` flags map onto these fields."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# The learning rate each optimizer gets when none is given.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.02, "adam": 1e-3, "adamw": 1e-3}


@dataclass
class TrainConfig:
    """Settings of one training run. ``lr=None`` means the optimizer's default from :data:`DEFAULT_LR`."""

    model: str = "notebook"
    data: str = "mnist"
    epochs: int = 5
    batch_size: int = 64
    optimizer: str = "momentum"  # sgd | momentum | adam | adamw
    lr: float | None = None
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "cosine"  # constant | step | cosine
    warmup_epochs: float = 0.0
    step_epochs: int = 2  # schedule "step": multiply the rate by step_gamma every step_epochs epochs
    step_gamma: float = 0.1
    clip_grad_norm: float | None = None
    patience: int | None = None  # early stopping on val_loss; None = off
    seed: int = 0
    val_split: float = 0.1
    limit: int | None = None
    mnist_dir: str | None = None
    threads: int | None = None  # None: convnp.parallel.get_num_threads(); only float rounding depends on it

    def __post_init__(self):
        problems = []
        if self.optimizer not in DEFAULT_LR:
            problems.append(f"optimizer must be one of {sorted(DEFAULT_LR)}, got {self.optimizer!r}")
        if self.schedule not in ("constant", "step", "cosine"):
            problems.append(f"schedule must be 'constant', 'step' or 'cosine', got {self.schedule!r}")
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
        if self.limit is not None and self.limit < 1:
            problems.append(f"limit must be a positive integer, got {self.limit!r}")
        if problems:
            raise ValueError("TrainConfig: " + "; ".join(problems))

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
