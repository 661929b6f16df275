"""Callbacks: everything the training loop reports or saves goes through these hooks (Keras' convention).

A callback may implement any of ``on_train_begin(trainer)``, ``on_epoch_begin(epoch)``,
``on_batch_end(batch, logs)``, ``on_epoch_end(epoch, logs)``, ``on_train_end(logs)``, and
``on_interrupt(position)`` (instead of ``on_train_end`` when :meth:`~convnp.train.Trainer.request_stop` stopped the
run between two steps). ``epoch`` is 0-based; ``logs`` of an epoch hold ``loss``, ``accuracy``, ``val_loss``,
``val_accuracy`` (with validation data), ``lr`` and ``time`` (and ``skipped`` when non-finite batches may be skipped).
"""

from __future__ import annotations

import csv
import errno
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

    def on_interrupt(self, position):
        pass


def write_failed(path: Path, what: str, err: OSError, kept: str) -> OSError:
    """An OSError (same errno) whose one-line message says which file could not be written, why, and what is left.

    ``atomic_write`` has already removed its temporary file and left the previous file in place.
    """
    reason = err.strerror or str(err)
    if err.errno == errno.ENOSPC:
        reason += " (free some space, or train into another folder with --out)"
    out = OSError(f"could not write {what} {path}: {reason}; {kept}")
    out.errno = err.errno
    return out


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

    Rewriting (rather than appending) keeps the file consistent with the checkpoint after a resume. A run that may
    skip non-finite batches gets one more column, ``skipped``.
    """

    FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")

    def __init__(self, path):
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs):
        self.write(self.trainer.history)

    def write(self, history: list[dict]) -> None:
        """Rewrite the file from ``history`` (one row per epoch)."""
        fields = self.FIELDS + (("skipped",) if any("skipped" in row for row in history) else ())
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in history:
            writer.writerow({k: _csv_value(row.get(k)) for k in fields})
        try:
            atomic_write(self.path, lambda f: f.write(buffer.getvalue().encode()))
        except OSError as err:
            raise write_failed(self.path, "the metrics", err, "the file is left as it was before this epoch") from None


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


class Checkpoint(Callback):
    """After each epoch, ``last.npz``: weights, optimizer, epoch, step, RNG states, history; and ``best.npz`` when
    ``monitor`` (default ``val_accuracy``, else ``accuracy``) improves. Both are written atomically.

    Before the first step of a new run it writes ``last.npz`` at epoch 0 (the initial weights), and when the run is
    interrupted between two steps it writes ``last.npz`` there: so from the moment training starts, the folder
    always holds a checkpoint to resume from. ``best.npz`` is written before ``last.npz``: a crash between the two
    then repeats the epoch on resume, which writes the same ``best.npz`` again.

    The RNG states are the batch order's at the start of epoch ``epoch`` (``rng_state``), the layers' own
    (``layer_rng_states``, e.g. Dropout) and, when the trainer augments its batches, the augmentation's
    (``augment_rng_state``): all a resume needs to draw what an uninterrupted run would have drawn. A checkpoint
    written mid-epoch also holds ``batch`` (batches of epoch ``epoch + 1`` done) and ``epoch_sums`` (that epoch's
    loss and accuracy sums so far); ``skipped_total`` counts the non-finite batches skipped over the run.

    A write that fails (disk full, read-only, I/O error) raises an ``OSError`` naming the file and leaves the
    previous checkpoint as it was.

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
        self.saved = f"epoch {len(trainer.history)}"
        if trainer.step == 0 and not trainer.history:
            self._save("last.npz", self._meta(epoch=0, rng_state=trainer.rng.bit_generator.state, logs={}),
                       kept="nothing was trained yet")
            self.saved = "epoch 0, the initial weights"

    def on_epoch_end(self, epoch, logs):
        meta = self._meta(epoch=epoch + 1, rng_state=self.trainer.rng.bit_generator.state, logs=logs)
        value = logs.get(self.monitor, logs.get("accuracy"))
        if self.best is None or value > self.best:
            self.best = value
            self._save("best.npz", meta, kept="best.npz is left as it was")
        self._save("last.npz", meta, kept=f"last.npz still holds {self.saved}")
        self.saved = f"epoch {epoch + 1}"

    def on_interrupt(self, position):
        meta = self._meta(epoch=position["epoch"], rng_state=self.trainer.epoch_rng_state,
                          logs=self.trainer.history[-1] if self.trainer.history else {})
        meta["batch"] = position["batch"]
        meta["epoch_sums"] = {k: position[k] for k in ("loss_sum", "correct", "seen", "skipped")}
        self._save("last.npz", meta, kept=f"last.npz still holds {self.saved}")
        self.saved = f"epoch {position['epoch'] + 1}, batch {position['batch']}"

    def _meta(self, *, epoch: int, rng_state: dict, logs: dict) -> dict:
        trainer = self.trainer
        meta = {
            **self.meta,
            "epoch": epoch,
            "step": trainer.step,
            "rng_state": rng_state,
            "layer_rng_states": trainer.model.rng_states(),
            "history": trainer.history,
            "metrics": logs,
            "skipped_total": trainer.skipped_total,
        }
        if trainer.augment_rng is not None:
            meta["augment_rng_state"] = trainer.augment_rng.bit_generator.state
        return meta

    def _save(self, name: str, meta: dict, kept: str) -> None:
        path = self.folder / name
        try:
            save_checkpoint(path, self.trainer.model, optimizer=self.trainer.optimizer, meta=meta)
        except OSError as err:
            raise write_failed(path, "the checkpoint", err, kept) from None


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
