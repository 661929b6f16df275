"""Optimizers, in increasing order of complexity. Each updates a model's parameters in place from its gradients.

State (such as momentum buffers) is kept by parameter name, ``"<layer index>.<name>"``, so it can be saved next to
the weights and matched on load.
"""

from __future__ import annotations

import numpy as np


class Optimizer:
    """Base class: holds the learning rate and per-parameter state; subclasses implement :meth:`update`."""

    def __init__(self, lr: float):
        if not (isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0):
            raise ValueError(f"{type(self).__name__}: lr must be a positive number, got {lr!r}")
        self.lr = float(lr)
        self.state: dict[str, dict[str, np.ndarray]] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array in ``params`` in place using the gradient of the same name."""
        if params.keys() != grads.keys():
            raise ValueError(f"{type(self).__name__}.step: parameter and gradient names differ: "
                             f"{sorted(set(params) ^ set(grads))}")
        for name, param in params.items():
            self.update(name, param, grads[name])

    def update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and L2 weight decay, as ``torch.optim.SGD``.

    ``g = grad + weight_decay * p``; with momentum ``v = momentum * v + g`` and the step is ``v`` (or
    ``g + momentum * v`` with ``nesterov=True``); ``p -= lr * step``.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, *, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum!r}")
        if weight_decay < 0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {weight_decay!r}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs a momentum above 0")
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)

    def update(self, name, param, grad):
        g = grad + self.weight_decay * param if self.weight_decay else grad
        if self.momentum:
            state = self.state.setdefault(name, {"velocity": np.zeros_like(param)})
            v = state["velocity"]
            v *= self.momentum
            v += g
            g = g + self.momentum * v if self.nesterov else v
        param -= (self.lr * g).astype(param.dtype, copy=False)
