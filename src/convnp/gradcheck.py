"""Finite-difference gradient checks, used by the tests and by ``convnp gradcheck``.

The analytic gradient of a layer is compared with central differences
``(f(x + eps) - f(x - eps)) / (2 eps)`` of the scalar ``f = sum(layer(x) * dout)`` for a random ``dout``, in
float64. The error of that estimate is ``O(eps^2)`` plus rounding of about ``1e-16 |f| / eps``: with ``eps = 1e-6``
both sit far below the ``1e-6`` tolerance, while a wrong gradient shows errors near 1.

The error measure is the largest element-wise difference relative to the largest gradient entry,
``max|a - n| / max(max|a|, max|n|)``: unlike an element-wise ratio it does not explode on entries that are exactly
zero (inactive ReLUs, non-maximal pool inputs) where the finite difference leaves a ``1e-10`` residue.

References: CS231n "Gradient checks" notes; ``torch.autograd.gradcheck`` (which also insists on double precision).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convnp.layers.base import Layer
from convnp.losses import SoftmaxCrossEntropy

DEFAULT_EPS = 1e-6
DEFAULT_TOLERANCE = 1e-6


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``max|a - n| / max(max|a|, max|n|)``; 0 when both are all zero."""
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    scale = max(np.abs(analytic).max(initial=0.0), np.abs(numeric).max(initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.abs(analytic - numeric).max() / scale)


def numerical_gradient(f, x: np.ndarray, eps: float = DEFAULT_EPS, indices=None) -> np.ndarray:
    """Central differences of the scalar function ``f()`` with respect to the array ``x``.

    ``x`` is perturbed in place, one element at a time, and restored. ``indices`` (flat positions) limits the work
    to a sample of elements; the other entries of the result are NaN.
    """
    grad = np.full(x.shape, np.nan)
    flat = x.reshape(-1)  # a view: writes reach x
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient: x must be contiguous so it can be perturbed in place")
    for i in range(flat.size) if indices is None else indices:
        old = flat[i]
        flat[i] = old + eps
        f_plus = f()
        flat[i] = old - eps
        f_minus = f()
        flat[i] = old
        grad.reshape(-1)[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def _sample(size: int, max_coords: int | None, rng: np.random.Generator):
    if max_coords is None or size <= max_coords:
        return np.arange(size)
    return np.sort(rng.choice(size, size=max_coords, replace=False))


def check_layer(
    layer: Layer,
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    eps: float = DEFAULT_EPS,
    max_coords: int | None = None,
) -> dict[str, float]:
    """Relative error of every gradient of ``layer`` at input ``x`` (float64).

    Returns ``{"input": err, "<param>": err, ...}``. ``max_coords`` checks a random sample of that many entries
    per array instead of all of them.
    """
    if layer.dtype not in (None, np.dtype(np.float64)) or x.dtype != np.float64:
        raise ValueError(f"check_layer: gradient checks need float64 layers and inputs, got {layer.dtype} / {x.dtype}")
    x = np.ascontiguousarray(x).copy()
    # A layer with its own Generator (Dropout) must draw the same mask in every forward of the check.
    rng_state = layer.rng.bit_generator.state if hasattr(layer, "rng") else None

    def forward():
        if rng_state is not None:
            layer.rng.bit_generator.state = rng_state
        return layer.forward(x, training=True)

    out = forward()
    dout = rng.standard_normal(out.shape)
    analytic = {"input": layer.backward(dout)}
    analytic.update({k: v.copy() for k, v in layer.grads.items()})

    def f():
        return float(np.sum(forward() * dout))

    errors = {}
    for name, grad in analytic.items():
        target = x if name == "input" else layer.params[name]
        idx = _sample(target.size, max_coords, rng)
        numeric = numerical_gradient(f, target, eps, idx)
        errors[name] = rel_error(grad.reshape(-1)[idx], numeric.reshape(-1)[idx])
    return errors


def check_loss(logits: np.ndarray, y: np.ndarray, *, eps: float = DEFAULT_EPS) -> float:
    """Relative error of :class:`SoftmaxCrossEntropy`'s gradient with respect to the logits (float64)."""
    loss = SoftmaxCrossEntropy()
    logits = np.ascontiguousarray(logits, dtype=np.float64).copy()
    loss.forward(logits, y)
    analytic = loss.backward()
    numeric = numerical_gradient(lambda: loss.forward(logits, y), logits, eps)
    return rel_error(analytic, numeric)


def check_model_params(
    model,
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    eps: float = DEFAULT_EPS,
    max_coords: int | None = None,
) -> dict[str, float]:
    """End to end: relative error of ``d loss / d param`` through the whole model, for every parameter."""
    loss = SoftmaxCrossEntropy()
    rng_states = model.rng_states()  # the same dropout masks in every forward

    def forward():
        model.set_rng_states(rng_states)
        return model.forward(x, training=True)

    loss.forward(forward(), y)
    model.backward(loss.backward())
    analytic = {k: v.copy() for k, v in model.gradients().items()}
    params = model.parameters()

    def f():
        return loss.forward(forward(), y)

    errors = {}
    for name, grad in analytic.items():
        idx = _sample(params[name].size, max_coords, rng)
        numeric = numerical_gradient(f, params[name], eps, idx)
        errors[name] = rel_error(grad.reshape(-1)[idx], numeric.reshape(-1)[idx])
    return errors


@dataclass
class CheckRow:
    """One line of a gradient-check report: the worst error over the arrays checked for one component."""

    component: str
    worst: float
    where: str
    passed: bool


def check_model(
    model,
    rng: np.random.Generator,
    *,
    batch_size: int = 2,
    n_classes: int | None = None,
    eps: float = DEFAULT_EPS,
    tolerance: float = DEFAULT_TOLERANCE,
    max_coords: int | None = 256,
) -> list[CheckRow]:
    """Check every layer of ``model`` on its own, then the loss, then all parameters end to end.

    Each layer gets a standard-normal input of the shape it sees in the model. Random inputs have no tied
    maxima and no exact zeros at ReLU kinks, where a finite difference is not a derivative. Layers with their own
    Generator (Dropout) replay the same mask in every forward. The model is cast to float64 in place.
    """
    model.astype(np.float64)
    shapes = [model.input_shape, *model.shapes()]
    rows = []
    for i, layer in enumerate(model.layers):
        x = rng.standard_normal((batch_size, *shapes[i]))
        errors = check_layer(layer, x, rng, eps=eps, max_coords=max_coords)
        rows.append(_row(f"{i} {layer!r}", errors, tolerance))
    n_classes = n_classes or shapes[-1][-1]
    logits = rng.standard_normal((batch_size * 2, n_classes)) * 3
    y = rng.integers(0, n_classes, size=batch_size * 2)
    rows.append(_row("SoftmaxCrossEntropy()", {"logits": check_loss(logits, y, eps=eps)}, tolerance))
    x = rng.standard_normal((batch_size, *model.input_shape))
    y = rng.integers(0, n_classes, size=batch_size)
    errors = check_model_params(model, x, y, rng, eps=eps, max_coords=max_coords)
    rows.append(_row("whole model, loss w.r.t. every parameter", errors, tolerance))
    return rows


def _row(component: str, errors: dict[str, float], tolerance: float) -> CheckRow:
    if not errors:
        return CheckRow(component, 0.0, "-", True)
    where = max(errors, key=errors.get)
    worst = errors[where]
    return CheckRow(component, worst, where, bool(worst < tolerance))


def format_report(rows: list[CheckRow], tolerance: float) -> str:
    """The rows as an aligned text table with PASS/FAIL and a closing verdict."""
    table = [("component", "worst rel. error", "in", "result")]
    table += [(r.component, f"{r.worst:.2e}", r.where, "PASS" if r.passed else "FAIL") for r in rows]
    widths = [max(len(t[c]) for t in table) for c in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(t, widths)).rstrip() for t in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = sum(not r.passed for r in rows)
    verdict = "all gradients match" if not failed else f"{failed} component(s) FAIL"
    lines.append(f"\n{verdict} (central differences, eps={DEFAULT_EPS:g}, tolerance {tolerance:g}, float64)")
    return "\n".join(lines)
