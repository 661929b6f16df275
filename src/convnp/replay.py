"""Replaying the seed notebook's experiment with convnp's layers.

The notebook trains on the first 100 MNIST training images as one full batch, learning rate 0.1, 5 epochs, in
float64 from its own initial weights, and prints the accuracy and mean loss before each update and once after the
last. With the notebook's max-pool backward swapped in, convnp reproduces its printout digit for digit; with the
correct backward the numbers differ from epoch 1 on.
"""

from __future__ import annotations

import numpy as np

from convnp.losses import SoftmaxCrossEntropy
from convnp.metrics import accuracy
from convnp.models.notebook import notebook, notebook_normalize
from convnp.optim import SGD


def replay_notebook(
    images: np.ndarray, labels: np.ndarray, *, epochs: int = 5, lr: float = 0.1, notebook_maxpool: bool = False
) -> list[tuple[float, float]]:
    """Train the notebook's network as the notebook did; returns ``(accuracy %, mean loss)`` for epochs 0..epochs.

    Parameters
    ----------
    images : ndarray of shape `(N, 28, 28)`, uint8
    labels : ndarray of shape `(N,)`
    epochs : int
        Full-batch gradient steps; ``epochs + 1`` evaluations are returned (before each step and after the last).
    lr : float
    notebook_maxpool : bool
        Use the notebook's wrong max-pool backward (:class:`convnp.layers.NotebookMaxPool2D`).
    """
    model = notebook(init="notebook", dtype=np.float64, notebook_maxpool=notebook_maxpool)
    x = notebook_normalize(images)  # (N, 28, 28, 1), x / 255 - 0.5
    y = np.asarray(labels, dtype=np.int64)
    loss_fn = SoftmaxCrossEntropy()
    optimizer = SGD(lr)
    results = []
    for epoch in range(epochs + 1):
        logits = model.forward(x, training=epoch < epochs)
        results.append((accuracy(logits, y) * 100, loss_fn.forward(logits, y)))
        if epoch < epochs:
            model.backward(loss_fn.backward())
            optimizer.step(model.parameters(), model.gradients())
    return results


def format_epoch(epoch: int, acc: float, loss: float) -> str:
    """The notebook's own ``print(f'Epoch {i} \\n Accuracy:{acc:.2f}, Avg Loss: {avg_loss:.5f} \\n --- \\n')``."""
    return f"Epoch {epoch} \n Accuracy:{acc:.2f}, Avg Loss: {loss:.5f} \n --- \n"
