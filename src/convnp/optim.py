"""Optimizers, in increasing order of complexity. Each updates a model's parameters in place from its gradients.

State (momentum buffers, Adam's moments) is kept by parameter name, ``"<layer index>.<name>"``, so it is saved next
to the weights in a checkpoint and matched by name on load. The learning rate ``lr`` is a plain attribute: a
schedule (:mod:`convnp.schedules`) sets it before each step.

References: ``torch.optim.SGD`` (momentum and Nesterov as PyTorch formulates them); Kingma & Ba 2015, "Adam";
Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization" (AdamW).
"""

from __future__ import annotations

import numbers

import numpy as np


def _check_number(value, name: str, owner: str, *, low: float, high: float = np.inf, low_open=False, high_open=True):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{owner}: {name} must be a number in {lo}{low}, {high}{hi}, got {value!r}")
    return float(value)


class Optimizer:
    """Base class: the learning rate, a step counter and per-parameter state; subclasses implement :meth:`update`."""

    def __init__(self, lr: float):
        self.lr = _check_number(lr, "lr", type(self).__name__, low=0.0, low_open=True)
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.step_count = 0

    def get_config(self) -> dict:
        """Constructor arguments (JSON-serialisable)."""
        return {"lr": self.lr}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array in ``params`` in place using the gradient of the same name."""
        if params.keys() != grads.keys():
            raise ValueError(
                f"{type(self).__name__}.step: parameter and gradient names differ: {sorted(set(params) ^ set(grads))}"
            )
        self.step_count += 1
        for name, param in params.items():
            self.update(name, param, grads[name])

    def update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        raise NotImplementedError

    def _buffer(self, name: str, key: str, like: np.ndarray) -> np.ndarray:
        buffers = self.state.setdefault(name, {})
        if key not in buffers:  # not setdefault(key, zeros_like(...)): that would allocate on every step
            buffers[key] = np.zeros_like(like)
        return buffers[key]

    # ---- saving ---------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the buffers, keyed ``"<param name>/<buffer>"``."""
        return {f"{name}/{key}": buf.copy() for name, bufs in self.state.items() for key, buf in bufs.items()}

    def load_state_dict(self, arrays: dict[str, np.ndarray], step_count: int) -> None:
        """Restore buffers saved by :meth:`state_dict` and the step counter."""
        state: dict[str, dict[str, np.ndarray]] = {}
        for key, value in arrays.items():
            name, sep, buf = key.rpartition("/")
            if not sep:
                raise ValueError(f"{type(self).__name__}.load_state_dict: malformed state key {key!r}")
            state.setdefault(name, {})[buf] = np.array(value)
        self.state = state
        self.step_count = int(step_count)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and L2 weight decay, as ``torch.optim.SGD``.

    ``g = grad + weight_decay * p``; with momentum ``v = momentum * v + g`` and the step is ``v`` (or
    ``g + momentum * v`` with ``nesterov=True``); ``p -= lr * step``.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, *, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(lr)
        self.momentum = _check_number(momentum, "momentum", "SGD", low=0.0, high=1.0)
        self.weight_decay = _check_number(weight_decay, "weight_decay", "SGD", low=0.0)
        if nesterov and self.momentum == 0:
            raise ValueError("SGD: nesterov=True needs a momentum above 0")
        self.nesterov = bool(nesterov)

    def get_config(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay}

    def update(self, name, param, grad):
        g = grad + self.weight_decay * param if self.weight_decay else grad
        if self.momentum:
            v = self._buffer(name, "velocity", param)
            v *= self.momentum
            v += g
            g = g + self.momentum * v if self.nesterov else v
        param -= (self.lr * g).astype(param.dtype, copy=False)


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` is L2 added to the gradient, as ``torch.optim.Adam``.

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.
    """

    decoupled = False

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(lr)
        owner = type(self).__name__
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"{owner}: betas must be a pair of numbers in [0, 1), got {betas!r}")
        self.betas = tuple(_check_number(b, "betas", owner, low=0.0, high=1.0) for b in betas)
        self.eps = _check_number(eps, "eps", owner, low=0.0, low_open=True)
        self.weight_decay = _check_number(weight_decay, "weight_decay", owner, low=0.0)

    def get_config(self) -> dict:
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}

    def update(self, name, param, grad):
        b1, b2 = self.betas
        t = self.step_count
        if self.weight_decay:
            if self.decoupled:
                param -= np.asarray(self.lr * self.weight_decay, param.dtype) * param
            else:
                grad = grad + self.weight_decay * param
        m = self._buffer(name, "exp_avg", param)
        v = self._buffer(name, "exp_avg_sq", param)
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad * grad
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        param -= (self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(param.dtype, copy=False)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p -= lr * weight_decay * p`` before the Adam step (``torch.optim.AdamW``).

    Its default ``weight_decay`` is 0.01, as in PyTorch.
    """

    decoupled = True

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(lr, betas, eps, weight_decay)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients in place so their joint L2 norm is at most ``max_norm``; returns the norm before.

    As ``torch.nn.utils.clip_grad_norm_``: one norm over every array, so directions are kept.
    """
    total = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads.values():
            g *= np.asarray(scale, dtype=g.dtype)
    return total
