"""Callbacks: everything the training loop reports or saves goes through these hooks (Keras' convention).

A callback may implement any of ``on_train_begin(trainer)``, ``on_epoch_begin(epoch)``,
``on_batch_end(batch, logs)``, ``on_epoch_end(epoch, logs)``, ``on_train_end(logs)``. ``epoch`` is 0-based;
``logs`` of an epoch hold ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` (with validation data), ``lr`` and
``time``.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path

import numpy as np

from convnp.checkpoint import atomic_write, save_checkpoint


class Callback:
    """Base class: every hook does nothing. ``self.trainer`` is set when training begins."""

    trainer = None

    def on_train_begin(self, trainer):
        self.trainer = trainer

    def on_epoch_begin(self, epoch):
        pass

    def on_batch_end(self, batch, logs):
        pass

    def on_epoch_end(self, epoch, logs):
        pass

    def on_train_end(self, logs):
        pass


class ProgressBar(Callback):
    """Progress of each epoch with running loss, accuracy, images/s and ETA, then one summary line per epoch.

    On a terminal the bar redraws in place; elsewhere (CI logs, pipes) it prints a plain line at each quarter of the
    epoch instead, so logs stay short and readable.
    """

    def __init__(self, epochs: int, n_samples: int, stream=None, width: int = 24):
        self.epochs, self.n_samples, self.width = epochs, n_samples, width
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def on_epoch_begin(self, epoch):
        self.epoch, self.seen, self.loss_sum, self.correct = epoch, 0, 0.0, 0
        self.start = time.perf_counter()
        self.next_quarter = 1

    def on_batch_end(self, batch, logs):
        n = logs["size"]
        self.seen += n
        self.loss_sum += logs["loss"] * n
        self.correct += logs["correct"]
        elapsed = time.perf_counter() - self.start
        rate = self.seen / elapsed if elapsed > 0 else 0.0
        eta = (self.n_samples - self.seen) / rate if rate > 0 else 0.0
        text = (f"epoch {self.epoch + 1}/{self.epochs} {self.seen:>{len(str(self.n_samples))}}/{self.n_samples} "
                f"loss {self.loss_sum / self.seen:.4f} acc {self.correct / self.seen * 100:.2f}% "
                f"{rate:,.0f} img/s ETA {eta:.0f}s")
        if self.tty:
            done = int(self.width * self.seen / self.n_samples)
            self.stream.write(f"\r[{'=' * done}{' ' * (self.width - done)}] {text}\033[K")
            self.stream.flush()
        elif self.seen >= self.n_samples * self.next_quarter / 4 and self.seen < self.n_samples:
            while self.seen >= self.n_samples * self.next_quarter / 4:
                self.next_quarter += 1
            print(text, file=self.stream, flush=True)

    def on_epoch_end(self, epoch, logs):
        if self.tty:
            self.stream.write("\r\033[K")
        print(format_epoch_line(epoch, self.epochs, logs), file=self.stream, flush=True)


def format_epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    """``epoch 3/5  loss 0.0663  acc 98.00%  val_loss 0.0612  val_acc 98.10%  lr 0.02  10.1 s``."""
    parts = [f"epoch {epoch + 1}/{epochs}", f"loss {logs['loss']:.4f}", f"acc {logs['accuracy'] * 100:.2f}%"]
    if "val_loss" in logs:
        parts += [f"val_loss {logs['val_loss']:.4f}", f"val_acc {logs['val_accuracy'] * 100:.2f}%"]
    parts += [f"lr {logs['lr']:.3g}", f"{logs['time']:.1f} s"]
    return "  ".join(parts)


class MetricsCSV(Callback):
    """``metrics.csv``: one row per epoch, rewritten atomically from the whole history after each epoch.

    Rewriting (rather than appending) keeps the file consistent with the checkpoint after a resume.
    """

    FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")

    def __init__(self, path):
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs):
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.FIELDS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in self.trainer.history:
            writer.writerow({k: _csv_value(row.get(k)) for k in self.FIELDS})
        atomic_write(self.path, lambda f: f.write(buffer.getvalue().encode()))


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


class Checkpoint(Callback):
    """After each epoch, ``last.npz``: weights, optimizer, epoch, step, RNG states, history; and ``best.npz`` when
    ``monitor`` (default ``val_accuracy``, else ``accuracy``) improves. Both are written atomically.

    The RNG states are the batch order's (``rng_state``), the layers' own (``layer_rng_states``, e.g. Dropout) and,
    when the trainer augments its batches, the augmentation's (``augment_rng_state``): all a resume needs to draw
    what an uninterrupted run would have drawn.

    ``meta`` is added to every checkpoint (the run's settings, input preprocessing, model name).
    """

    def __init__(self, folder, meta: dict | None = None, monitor: str = "val_accuracy"):
        self.folder = Path(folder)
        self.meta = dict(meta or {})
        self.monitor = monitor
        self.best: float | None = None

    def on_train_begin(self, trainer):
        super().on_train_begin(trainer)
        values = [row.get(self.monitor, row.get("accuracy")) for row in trainer.history]
        self.best = max(values) if values else None

    def on_epoch_end(self, epoch, logs):
        trainer = self.trainer
        meta = {
            **self.meta,
            "epoch": epoch + 1,
            "step": trainer.step,
            "rng_state": trainer.rng.bit_generator.state,
            "layer_rng_states": trainer.model.rng_states(),
            "history": trainer.history,
            "metrics": logs,
        }
        if trainer.augment_rng is not None:
            meta["augment_rng_state"] = trainer.augment_rng.bit_generator.state
        save_checkpoint(self.folder / "last.npz", trainer.model, optimizer=trainer.optimizer, meta=meta)
        value = logs.get(self.monitor, logs.get("accuracy"))
        if self.best is None or value > self.best:
            self.best = value
            save_checkpoint(self.folder / "best.npz", trainer.model, optimizer=trainer.optimizer, meta=meta)


class EarlyStopping(Callback):
    """Stop when ``monitor`` (default ``val_loss``) has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, patience: int, monitor: str = "val_loss", min_delta: float = 0.0):
        self.patience, self.monitor, self.min_delta = patience, monitor, min_delta
        self.best, self.wait = np.inf, 0

    def on_train_begin(self, trainer):
        super().on_train_begin(trainer)
        self.best, self.wait = np.inf, 0
        for row in trainer.history:  # a resumed run picks up the count where it stopped
            self._update(row)

    def on_epoch_end(self, epoch, logs):
        if self._update(logs) and self.wait >= self.patience:
            self.trainer.stop_training = True
            self.trainer.stop_reason = f"early stopping: {self.monitor} did not improve for {self.patience} epoch(s)"

    def _update(self, logs) -> bool:
        value = logs.get(self.monitor)
        if value is None:
            return False
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        return True
