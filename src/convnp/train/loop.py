"""A plain mini-batch training loop that reports through callbacks.

Every epoch: reshuffle from the Generator, forward, loss, backward, optimizer step per batch; then the epoch's
figures go into ``logs`` and each callback's ``on_epoch_end(epoch, logs)`` is called (Keras' convention).
"""

from __future__ import annotations

import time

import numpy as np

from convnp.data.batching import iterate_minibatches
from convnp.losses import SoftmaxCrossEntropy


def evaluate(model, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)`` in inference mode, ``batch_size`` samples at a time."""
    loss_fn = SoftmaxCrossEntropy()
    total_loss, correct = 0.0, 0
    for xb, yb in iterate_minibatches(x, y, batch_size):
        logits = model.forward(xb)
        total_loss += loss_fn.forward(logits, yb) * len(yb)
        correct += int(np.sum(logits.argmax(axis=1) == yb))
    return {"loss": total_loss / len(y), "accuracy": correct / len(y)}


def fit(
    model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    optimizer,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    callbacks=(),
) -> list[dict[str, float]]:
    """Train ``model`` on ``(x, y)``; returns one ``logs`` dict per epoch.

    Parameters
    ----------
    model : Sequential
    x : ndarray of shape `(N, H, W, C)`, already in the model's float dtype
    y : ndarray of shape `(N,)`, integer labels
    optimizer : convnp.optim.Optimizer
    epochs, batch_size : int
    rng : np.random.Generator
        Draws each epoch's order, so the same seed gives the same run.
    validation_data : (x_val, y_val), optional
        Evaluated after each epoch into ``logs["val_loss"]``/``logs["val_accuracy"]``.
    callbacks : iterable
        Objects with an ``on_epoch_end(epoch, logs)`` method.
    """
    loss_fn = SoftmaxCrossEntropy()
    history = []
    for epoch in range(epochs):
        start = time.perf_counter()
        total_loss, correct = 0.0, 0
        for xb, yb in iterate_minibatches(x, y, batch_size, rng):
            logits = model.forward(xb, training=True)
            total_loss += loss_fn.forward(logits, yb) * len(yb)
            correct += int(np.sum(logits.argmax(axis=1) == yb))
            model.backward(loss_fn.backward())
            optimizer.step(model.parameters(), model.gradients())
        logs = {"epoch": epoch + 1, "loss": total_loss / len(y), "accuracy": correct / len(y)}
        if validation_data is not None:
            val = evaluate(model, *validation_data)
            logs.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
        logs["time"] = time.perf_counter() - start
        history.append(logs)
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
    return history
