"""The generic training loop: mini-batches, loss, backward, optimizer step; everything else via callbacks.

Every epoch reshuffles with the Generator it was given, so the same seed and settings give bitwise-identical
weights and metrics; saving the Generator's state with the weights lets a stopped run resume exactly. Training
batches can be augmented on the fly by a callable that draws from its own Generator, saved the same way.
"""

from __future__ import annotations

import time

import numpy as np

from convnp.data.batching import iterate_minibatches
from convnp.losses import SoftmaxCrossEntropy
from convnp.optim import clip_grad_norm
from convnp.parallel import DataParallel, get_num_threads


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN or infinite."""


def evaluate(model, x: np.ndarray, y: np.ndarray, batch_size: int = 1000, threads=None) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on prepared inputs ``x`` and labels ``y``, in inference mode.

    ``threads`` (default :func:`convnp.parallel.get_num_threads`) splits each batch across threads.
    """
    loss_fn = SoftmaxCrossEntropy()
    total_loss, correct = 0.0, 0
    parallel = DataParallel(model, threads or get_num_threads())
    try:
        for xb, yb in iterate_minibatches(x, y, batch_size):
            logits = parallel.predict(xb)
            total_loss += loss_fn.forward(logits, yb) * len(yb)
            correct += int(np.sum(logits.argmax(axis=1) == yb))
    finally:
        parallel.close()
    return {"loss": total_loss / len(y), "accuracy": correct / len(y)}


class Trainer:
    """Trains a model with an optimizer, an optional learning-rate schedule, gradient clipping, label smoothing and
    data augmentation.

    Parameters
    ----------
    model : Sequential
    optimizer : convnp.optim.Optimizer
    schedule : callable, optional
        ``schedule(step) -> lr``, called before every step (``step`` counts batches from 0 over the whole run).
    clip_grad_norm : float, optional
        Rescale the gradients so their joint L2 norm is at most this.
    callbacks : list of Callback
    threads : int, optional
        Split each batch across this many threads (:mod:`convnp.parallel`); default
        :func:`convnp.parallel.get_num_threads`.
    label_smoothing : float in [0, 1)
        Smooth the training targets (:class:`convnp.losses.SoftmaxCrossEntropy`); the training loss reported is the
        smoothed one. :func:`evaluate` always reports the plain cross-entropy.
    augment : callable, optional
        ``augment(x_batch, rng) -> x_batch`` (e.g. :class:`convnp.data.augment.Augment`), applied to every training
        batch after it is drawn, never to validation data. It must keep the batch's shape and dtype.
    augment_rng : np.random.Generator
        The Generator ``augment`` draws from; required with ``augment``. Its state goes into checkpoints.
    """

    def __init__(
        self,
        model,
        optimizer,
        *,
        schedule=None,
        clip_grad_norm: float | None = None,
        callbacks=(),
        threads=None,
        label_smoothing: float = 0.0,
        augment=None,
        augment_rng: np.random.Generator | None = None,
    ):
        if augment is not None and not callable(augment):
            raise TypeError(
                f"Trainer: augment must be a callable (x_batch, rng) -> x_batch, got {type(augment).__name__}"
            )
        if augment is not None and not isinstance(augment_rng, np.random.Generator):
            raise TypeError(
                "Trainer: augment needs augment_rng, a numpy.random.Generator (np.random.default_rng(seed)), "
                f"got {type(augment_rng).__name__}"
            )
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.threads = threads or get_num_threads()
        self.parallel: DataParallel | None = None
        self.clip_grad_norm = clip_grad_norm
        self.callbacks = list(callbacks)
        self.loss_fn = SoftmaxCrossEntropy(label_smoothing)  # checks label_smoothing
        self.augment, self.augment_rng = augment, augment_rng
        self.history: list[dict] = []
        self.step = 0
        self.stop_training = False
        self.stop_reason: str | None = None
        self.rng: np.random.Generator | None = None

    def _call(self, hook: str, *args):
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def train_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, int]:
        """One forward, backward and update on a batch; returns the batch's mean loss and number correct."""
        if self.parallel is None:
            self.parallel = DataParallel(self.model, self.threads, label_smoothing=self.loss_fn.label_smoothing)
        loss, correct, finite = self.parallel.train_step(xb, yb)
        if not finite:
            raise TrainingDiverged(
                f"the network's output became NaN or infinite at step {self.step + 1}; "
                f"try a lower learning rate (now {self.optimizer.lr:.3g})"
            )
        grads = self.model.gradients()
        if self.clip_grad_norm is not None:
            norm = clip_grad_norm(grads, self.clip_grad_norm)
        else:
            norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
        if not np.isfinite(norm):
            raise TrainingDiverged(
                f"a gradient became NaN or infinite at step {self.step + 1}; "
                f"try a lower learning rate (now {self.optimizer.lr:.3g}) or --clip-grad-norm"
            )
        if self.schedule is not None:
            self.optimizer.lr = self.schedule(self.step)
        self.optimizer.step(self.model.parameters(), grads)
        self.step += 1
        return loss, correct

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        epochs: int,
        batch_size: int,
        rng: np.random.Generator,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        initial_epoch: int = 0,
    ) -> list[dict]:
        """Train from ``initial_epoch`` up to ``epochs``; returns the history (one ``logs`` dict per epoch).

        Parameters
        ----------
        x : ndarray of shape `(N, H, W, C)`, prepared inputs in the model's dtype
        y : ndarray of shape `(N,)`, integer labels
        epochs : int
            The epoch number to stop at (not a count from ``initial_epoch``), as in Keras.
        batch_size : int
        rng : np.random.Generator
            Draws each epoch's sample order (``augment_rng``, given to the constructor, draws the augmentation).
        validation_data : (x_val, y_val), optional
        initial_epoch : int
            Epochs already done (when resuming); ``self.history`` and ``self.step`` should hold their record.
        """
        if len(x) != len(y):
            raise ValueError(f"Trainer.fit: inconsistent numbers of samples: {[len(x), len(y)]}")
        self.rng = rng
        self.stop_training = False
        self._call("on_train_begin", self)
        for epoch in range(initial_epoch, epochs):
            self._call("on_epoch_begin", epoch)
            start = time.perf_counter()
            total_loss, correct = 0.0, 0
            for batch, (xb, yb) in enumerate(iterate_minibatches(x, y, batch_size, rng)):
                if self.augment is not None:
                    xb = self._augmented(xb)
                loss, n_correct = self.train_step(xb, yb)
                total_loss += loss * len(yb)
                correct += n_correct
                self._call("on_batch_end", batch, {"loss": loss, "correct": n_correct, "size": len(yb)})
            logs = {"epoch": epoch + 1, "loss": total_loss / len(y), "accuracy": correct / len(y)}
            if validation_data is not None and len(validation_data[1]):
                val = evaluate(self.model, *validation_data, threads=self.threads)
                logs.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
            logs["lr"] = self.optimizer.lr
            logs["time"] = time.perf_counter() - start
            self.history.append(logs)
            self._call("on_epoch_end", epoch, logs)
            if self.stop_training:
                break
        self._call("on_train_end", self.history[-1] if self.history else {})
        if self.parallel is not None:
            self.parallel.close()
            self.parallel = None
        return self.history

    def _augmented(self, xb: np.ndarray) -> np.ndarray:
        out = self.augment(xb, self.augment_rng)
        if not isinstance(out, np.ndarray) or out.shape != xb.shape or out.dtype != xb.dtype:
            raise ValueError(
                f"Trainer: augment must return an array of the batch's shape {xb.shape} and dtype {xb.dtype}, got "
                + (f"shape {out.shape} and dtype {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__)
            )
        return out


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
    schedule=None,
    clip_grad_norm: float | None = None,
    callbacks=(),
    threads: int | None = None,
    label_smoothing: float = 0.0,
    augment=None,
    augment_rng: np.random.Generator | None = None,
) -> list[dict]:
    """Train ``model`` on prepared ``(x, y)`` in one call; see :class:`Trainer` for the arguments."""
    trainer = Trainer(model, optimizer, schedule=schedule, clip_grad_norm=clip_grad_norm, callbacks=callbacks,
                      threads=threads, label_smoothing=label_smoothing, augment=augment, augment_rng=augment_rng)
    return trainer.fit(x, y, epochs=epochs, batch_size=batch_size, rng=rng, validation_data=validation_data)
