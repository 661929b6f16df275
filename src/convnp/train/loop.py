"""The generic training loop: mini-batches, loss, backward, optimizer step; everything else via callbacks.

Every epoch reshuffles with the Generator it was given, so the same seed and settings give bitwise-identical
weights and metrics; saving the Generator's state with the weights lets a stopped run resume exactly. Training
batches can be augmented on the fly by a callable that draws from its own Generator, saved the same way.

A run can also stop between two steps (:meth:`Trainer.request_stop`, e.g. on Ctrl-C): the callbacks get
``on_interrupt(position)`` with everything needed to continue from that very batch (``fit(..., resume_from=...)``),
so even a run stopped mid-epoch resumes to the bits of an uninterrupted one.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np

from convnp import fault_points
from convnp.data.batching import iterate_minibatches
from convnp.losses import SoftmaxCrossEntropy
from convnp.optim import clip_grad_norm
from convnp.parallel import DataParallel, data_parallel, get_num_threads, resolve_backend, threads_for


logger = logging.getLogger("convnp.train")


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped between two steps on request (Ctrl-C); its checkpoint lets ``--resume`` continue exactly.

    A ``KeyboardInterrupt``, so code that stops on Ctrl-C keeps doing so; the message says where the run stopped,
    where its checkpoint is and how to resume.
    """


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN or infinite; ``step`` is the 1-based step (batch of the run) it happened at."""

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.step = step


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


@dataclass
class EpochTotals:
    """Running totals of one epoch's training batches: what its logs report, and what a stop mid-epoch saves.

    Skipped (non-finite) batches count only in ``skipped``; the loss and accuracy are over the ``seen`` samples.
    """

    loss_sum: float = 0.0  # sum over the samples seen of their batch's mean loss
    correct: int = 0
    seen: int = 0  # samples trained on
    skipped: int = 0  # batches skipped

    @classmethod
    def from_position(cls, position: dict) -> EpochTotals:
        """The totals a stop mid-epoch saved in its ``position`` (zeros where it holds none)."""
        return cls(float(position.get("loss_sum", 0.0)), int(position.get("correct", 0)),
                   int(position.get("seen", 0)), int(position.get("skipped", 0)))

    def add(self, loss: float, correct: int, size: int) -> None:
        """Count a batch of ``size`` samples with mean loss ``loss``, ``correct`` of them classified right."""
        self.loss_sum += loss * size
        self.correct += correct
        self.seen += size

    def logs(self, epoch: int, *, with_skipped: bool) -> dict:
        """The epoch's logs so far: ``epoch`` (1-based), mean ``loss``, ``accuracy`` (and ``skipped``)."""
        # Dividing by the samples used is dividing by len(y) unless batches were skipped.
        logs = {"epoch": epoch + 1, "loss": self.loss_sum / self.seen if self.seen else float("nan"),
                "accuracy": self.correct / self.seen if self.seen else 0.0}
        if with_skipped:
            logs["skipped"] = self.skipped
        return logs


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
        Split each batch across this many workers (:mod:`convnp.parallel`); default
        :func:`convnp.parallel.threads_for` the model and the configured batch size.
    backend : {"auto", "threads", "processes"}
        What the workers are (:func:`convnp.parallel.resolve_backend`): threads, or forked processes
        (:mod:`convnp.parallel.processes`), which give the same results bit for bit and are faster on small networks.
        ``"auto"``: processes on Linux. :attr:`backend` holds the choice made, once training starts.
    label_smoothing : float in [0, 1)
        Smooth the training targets (:class:`convnp.losses.SoftmaxCrossEntropy`); the training loss reported is the
        smoothed one. :func:`evaluate` always reports the plain cross-entropy.
    augment : callable, optional
        ``augment(x_batch, rng) -> x_batch`` (e.g. :class:`convnp.data.augment.Augment`), applied to every training
        batch after it is drawn, never to validation data. It must keep the batch's shape and dtype.
    augment_rng : np.random.Generator
        The Generator ``augment`` draws from; required with ``augment``. Its state goes into checkpoints.
    skip_nonfinite : int
        How many batches, over the whole run, may give a NaN or infinite loss or gradient and simply be skipped (no
        update; the layers' running statistics are restored). Default 0: the first one raises
        :class:`TrainingDiverged`. Skipped batches are left out of the epoch's loss and accuracy and counted in
        its ``skipped`` log; ``skipped_total`` counts them over the run.
    parallel : optional
        Runs the training steps in place of a :class:`~convnp.parallel.DataParallel` over ``threads``: an object
        with ``train_step(x, y) -> (loss, correct, finite)`` and ``close()``, such as
        :class:`convnp.parallel.mpi.DistributedDataParallel` (training across MPI processes).
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
        backend: str = "auto",
        label_smoothing: float = 0.0,
        augment=None,
        augment_rng: np.random.Generator | None = None,
        skip_nonfinite: int = 0,
        parallel=None,
    ):
        if not isinstance(skip_nonfinite, (int, np.integer)) or isinstance(skip_nonfinite, bool) or skip_nonfinite < 0:
            raise ValueError(f"Trainer: skip_nonfinite must be an integer >= 0, got {skip_nonfinite!r}")
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
        resolve_backend(backend)  # checks the name
        self.threads = threads  # None: threads_for(model, batch size), decided at the first step
        self.backend = backend  # "auto" until the first step resolves it
        self.parallel = None  # made at the first step: a DataParallel, ProcessDataParallel or the one given
        self._given_parallel = parallel
        self.clip_grad_norm = clip_grad_norm
        self.callbacks = list(callbacks)
        self.loss_fn = SoftmaxCrossEntropy(label_smoothing)  # checks label_smoothing
        self.augment, self.augment_rng = augment, augment_rng
        self.history: list[dict] = []
        self.step = 0
        self.stop_training = False
        self.stop_reason: str | None = None
        self.rng: np.random.Generator | None = None
        self.skip_nonfinite, self.skipped_total = int(skip_nonfinite), 0
        # The batch order Generator's state when the current epoch began: with the batch index, where a resume
        # picks up (the permutation is drawn again from it, then the batches already done are passed over).
        self.epoch_rng_state: dict | None = None
        self.stop_requested: str | None = None
        self.interrupted: dict | None = None
        self._at: tuple[int, int, int] | None = None  # (epoch, batch, batches per epoch) of the step running

    def _call(self, hook: str, *args):
        for callback in self.callbacks:
            method = getattr(callback, hook, None)  # on_interrupt is newer than some user callbacks
            if method is not None:
                method(*args)

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop at the end of the step now running (safe from a signal handler: it only sets a flag)."""
        self.stop_requested = reason

    def _where(self) -> str:
        """``step 37 (epoch 2, batch 5 of 18)``: where the step now running is, for error messages."""
        text = f"step {self.step + 1}"
        if self._at is not None:
            epoch, batch, n_batches = self._at
            text += f" (epoch {epoch + 1}, batch {batch + 1} of {n_batches})"
        return text

    def train_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, int]:
        """One forward, backward and update on a batch; returns the batch's mean loss and number correct."""
        if self.parallel is None:
            if self.threads is None:  # train_step called without fit: decide by this batch
                self.threads = threads_for(self.model, len(yb), self.backend)
            if self._given_parallel is None:
                self.backend = resolve_backend(self.backend, self.threads)
                self.parallel = data_parallel(self.model, self.threads, self.backend, self.loss_fn.label_smoothing)
            else:
                self.parallel = self._given_parallel
        # Overflow is caught just below and reported with the step; NumPy's own warnings would only add noise.
        with np.errstate(over="ignore", invalid="ignore"):
            loss, correct, finite = self.parallel.train_step(xb, yb)
            if not finite:
                raise TrainingDiverged(
                    f"the network's output became NaN or infinite at {self._where()}; "
                    f"try a lower learning rate (now {self.optimizer.lr:.3g})", self.step + 1
                )
            grads = self.model.gradients()
            if self.clip_grad_norm is not None:
                norm = clip_grad_norm(grads, self.clip_grad_norm)
            else:
                norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
        if not np.isfinite(norm):
            raise TrainingDiverged(
                f"a gradient became NaN or infinite at {self._where()}; "
                f"try a lower learning rate (now {self.optimizer.lr:.3g}) or --clip-grad-norm", self.step + 1
            )
        if self.schedule is not None:
            self.optimizer.lr = self.schedule(self.step)
        self.optimizer.step(self.model.parameters(), grads)
        self.step += 1
        return loss, correct

    def fit(
        self, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, rng: np.random.Generator,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        initial_epoch: int = 0,
        resume_from: dict | None = None,
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
        resume_from : dict, optional
            The ``position`` an interrupted run handed to ``on_interrupt``: continue epoch ``initial_epoch`` after
            its first ``position["batch"]`` batches, with the epoch's :class:`EpochTotals` so far. ``rng`` must then
            be in the state the epoch began with (``position`` was taken with ``self.epoch_rng_state`` beside it).

        Callbacks get ``on_interrupt(position)`` instead of ``on_train_end`` when :meth:`request_stop` stops the
        run; ``self.interrupted`` then holds the position and ``self.stop_reason`` says where it stopped.
        """
        resume_from = dict(resume_from or {})
        first_batch = int(resume_from.get("batch", 0))
        n_batches = self._begin(x, y, batch_size, rng, first_batch)
        for epoch in range(initial_epoch, epochs):
            self.epoch_rng_state = copy.deepcopy(rng.bit_generator.state)
            totals = EpochTotals.from_position(resume_from)
            if self.stop_requested:  # asked during the previous epoch's validation or checkpoint
                self._interrupt(epoch, first_batch, n_batches, totals)
                break
            self._call("on_epoch_begin", epoch)
            start = time.perf_counter()
            self._train_epoch(epoch, iterate_minibatches(x, y, batch_size, rng), first_batch, n_batches, totals)
            first_batch, resume_from = 0, {}
            if self.interrupted is not None:
                break
            logs = self._epoch_logs(epoch, totals, validation_data, start)
            self.history.append(logs)
            fault_points.reached(f"epoch-end {epoch + 1}")
            self._call("on_epoch_end", epoch, logs)
            if self.stop_training:
                break
        if self.interrupted is None:
            self._call("on_train_end", self.history[-1] if self.history else {})
        if self.parallel is not None:
            self.parallel.close()
            self.parallel = None
        return self.history

    def _begin(self, x: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator, first_batch: int) -> int:
        """Check :meth:`fit`'s arguments, settle the thread count, tell the callbacks; returns the batches per epoch."""
        if len(x) != len(y):
            raise ValueError(f"Trainer.fit: inconsistent numbers of samples: {[len(x), len(y)]}")
        n_batches = -(-len(y) // batch_size)
        if self.threads is None:  # from the configured batch size, so a resumed run splits its batches alike
            self.threads = threads_for(self.model, batch_size, self.backend)
        if first_batch and not 0 < first_batch < n_batches:
            raise ValueError(f"Trainer.fit: resume_from batch must be in [0, {n_batches}), got {first_batch}")
        self.rng = rng
        self.stop_training = False
        self.interrupted = None
        self._call("on_train_begin", self)
        return n_batches

    def _train_epoch(self, epoch: int, batches, first_batch: int, n_batches: int, totals: EpochTotals) -> None:
        """Train on epoch ``epoch``'s ``batches`` from ``first_batch`` on, adding to ``totals``.

        Stops before a batch when a stop was requested, recording where (:meth:`_interrupt`).
        """
        for batch, (xb, yb) in enumerate(batches):
            if batch < first_batch:  # done before the interruption this run resumes from
                continue
            if self.stop_requested:
                self._interrupt(epoch, batch, n_batches, totals)
                break
            if self.augment is not None:
                xb = self._augmented(xb)
            self._at = (epoch, batch, n_batches)
            outcome = self._guarded_step(xb, yb)
            if outcome is None:  # a non-finite batch, skipped
                totals.skipped += 1
                continue
            loss, n_correct = outcome
            totals.add(loss, n_correct, len(yb))
            self._call("on_batch_end", batch, {"loss": loss, "correct": n_correct, "size": len(yb)})
            if fault_points.armed():  # tests only; a step's name is not built when no point is armed
                fault_points.reached(f"step {self.step}")
        self._at = None

    def _epoch_logs(self, epoch: int, totals: EpochTotals, validation_data, start: float) -> dict:
        """The finished epoch's logs: its training totals, then validation (when there is data), rate and time."""
        logs = totals.logs(epoch, with_skipped=bool(self.skip_nonfinite))
        if validation_data is not None and len(validation_data[1]):
            fault_points.reached(f"validation {epoch + 1}")
            val = evaluate(self.model, *validation_data, threads=self.threads)
            logs.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
        logs["lr"] = self.optimizer.lr
        logs["time"] = time.perf_counter() - start
        return logs

    def _interrupt(self, epoch: int, batch: int, n_batches: int, totals: EpochTotals) -> None:
        """Record where the run stopped (before batch ``batch`` of ``epoch``) and tell the callbacks."""
        self.interrupted = {"epoch": epoch, "batch": batch, **dataclasses.asdict(totals)}
        self.stop_reason = (f"{self.stop_requested}: stopped after step {self.step} "
                            f"(epoch {epoch + 1}, {batch} of {n_batches} batches done)")
        self._call("on_interrupt", dict(self.interrupted))

    def _guarded_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, int] | None:
        """:meth:`train_step`, or None for a non-finite batch skipped within ``skip_nonfinite``."""
        if self.skipped_total >= self.skip_nonfinite:
            try:
                return self.train_step(xb, yb)
            except TrainingDiverged as err:
                if self.skip_nonfinite:
                    raise TrainingDiverged(f"{err}; {self.skipped_total} non-finite batch(es) skipped already, "
                                           f"the most skip_nonfinite={self.skip_nonfinite} allows", err.step) from None
                raise
        # Forward in training mode updates running statistics (BatchNorm): keep a copy to undo a skipped batch.
        saved = [(layer.state, dict((k, v.copy()) for k, v in layer.state.items())) for layer in self.model.layers]
        try:
            return self.train_step(xb, yb)
        except TrainingDiverged as err:
            for state, copies in saved:
                state.update(copies)
            self.skipped_total += 1
            self.step += 1  # the schedule counts batches, skipped or not
            logger.warning("convnp: batch skipped (%d of at most %d): %s", self.skipped_total, self.skip_nonfinite,
                           str(err).split(";")[0])
            return None

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
    skip_nonfinite: int = 0,
) -> list[dict]:
    """Train ``model`` on prepared ``(x, y)`` in one call; see :class:`Trainer` for the arguments."""
    trainer = Trainer(model, optimizer, schedule=schedule, clip_grad_norm=clip_grad_norm, callbacks=callbacks,
                      threads=threads, label_smoothing=label_smoothing, augment=augment, augment_rng=augment_rng,
                      skip_nonfinite=skip_nonfinite)
    return trainer.fit(x, y, epochs=epochs, batch_size=batch_size, rng=rng, validation_data=validation_data)
