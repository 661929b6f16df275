"""A whole training run with a run folder: data, model, optimizer, callbacks, checkpoints, resume.

A run folder holds:

- ``config.json``: every setting, the convnp / NumPy / Python versions, the start time;
- ``metrics.csv``: one row per epoch (``epoch, loss, accuracy, val_loss, val_accuracy, lr, time``);
- ``last.npz``: the checkpoint after the latest epoch (weights, optimizer, epoch, step, RNG state, history);
- ``best.npz``: the checkpoint with the best validation accuracy so far;
- ``results.json``: the final test metrics, once training ends.

Four Generators are spawned from the seed, one each for the initial weights, the validation split, the batch
order and the data augmentation, so changing one use of randomness does not shift the others (the first three
children of ``SeedSequence(seed).spawn(4)`` are those of ``spawn(3)``, so runs from before augmentation existed keep
their bits). The batch-order and augmentation Generators' states are saved with every checkpoint: ``resume``
continues with exactly the batches, and augmented images, an uninterrupted run would have drawn, and ends with
bitwise-identical weights.

Faults: the folder always holds a loadable ``last.npz`` once training has started (every write is atomic, and one
is written at epoch 0), so a killed run resumes from its last epoch. Ctrl-C (SIGINT) stops at the end of the
current step, saves ``last.npz`` there (mid-epoch included) and raises :class:`TrainingInterrupted` saying how to
resume; a second Ctrl-C stops at once. A non-finite loss or gradient raises :class:`TrainingDiverged` naming the
step, with the last good checkpoint left as it was (unless ``skip_nonfinite`` allows skipping the batch). A folder
that cannot be written fails before the first step.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import shlex
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convnp.checkpoint import atomic_write, library_versions, load_checkpoint
from convnp.data.augment import Augment, Chain, NaturalAugment
from convnp.data.datasets import Dataset, load_dataset
from convnp.data.transforms import Standardize
from convnp.data.views import Rows, StandardizedImages
from convnp.sequential import Sequential
from convnp.models import build_model
from convnp.optim import SGD, Adam, AdamW, Optimizer
from convnp.parallel import resolve_backend, threads_for
from convnp.schedules import Constant, Cosine, OneCycle, Step
from convnp.train.callbacks import Checkpoint, EarlyStopping, MetricsCSV, ProgressBar
from convnp.train.config import TrainConfig
from convnp.train.loop import Trainer, TrainingDiverged, TrainingInterrupted, evaluate


@dataclass
class RunResult:
    """What a finished run reports."""

    run_dir: Path
    history: list[dict]
    test: dict | None
    stop_reason: str | None = None


def make_optimizer(config: TrainConfig):
    """The optimizer that ``config`` names, at its base learning rate."""
    if config.optimizer == "sgd":
        return SGD(config.base_lr, weight_decay=config.weight_decay)
    if config.optimizer == "momentum":
        return SGD(config.base_lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return Adam(config.base_lr, weight_decay=config.weight_decay)
    return AdamW(config.base_lr, weight_decay=config.weight_decay)


def make_schedule(config: TrainConfig, steps_per_epoch: int):
    """The learning-rate schedule over the whole run, in steps (batches)."""
    total = config.epochs * steps_per_epoch
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total)
    if config.schedule == "step":
        return Step(config.base_lr, total, warmup, step_size=config.step_epochs * steps_per_epoch, gamma=config.step_gamma)
    if config.schedule == "cosine":
        return Cosine(config.base_lr, total, warmup)
    if config.schedule == "onecycle":
        return OneCycle(config.base_lr, total, warmup)  # warm-up, if any, is the length of the cycle's rise
    return Constant(config.base_lr, total, warmup)


def make_augment(config: TrainConfig, standardize: Standardize, dtype):
    """The training-batch augmentation ``config`` asks for, or None.

    The batches it sees are already standardised, so the area a transform uncovers is filled with the standardised
    value of a blank (0) pixel, ``(0 * scale - mean) / std``, in the model's dtype. :class:`Augment` (``--augment``)
    takes one fill value for all channels: channel 0's is used (exact for one-channel data). :class:`NaturalAugment`
    (``--crop-padding``, ``--hflip``, ``--brightness``, ``--contrast``) takes one per channel, and a brightness unit
    of ``1 / std`` per channel: a brightness of 1 is the whole pixel range (stored pixels times ``scale``, in
    ``[0, 1]``), in every channel alike.
    With both, :class:`Augment` goes first; with ``--augment`` alone the result is an :class:`Augment`, as it always was.
    """
    settings, natural = config.augment_settings, config.natural_augment_settings
    if settings is None and natural is None:
        return None
    channels = len(standardize.mean)
    blank = standardize(np.zeros((1, 1, 1, channels), dtype=np.uint8), dtype)[0, 0, 0]  # (C,)
    digits = None if settings is None else Augment(**settings, fill=float(blank[0]))
    if natural is None:
        return digits
    unit = [1.0 / s for s in standardize.std]
    photos = NaturalAugment(**natural, fill=[float(v) for v in blank], brightness_unit=unit)
    return photos if digits is None else Chain(digits, photos)


def split_validation(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)``: a random ``fraction`` of ``range(n)`` held out, both kept in their original order."""
    n_val = int(round(n * fraction))
    order = rng.permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def check_fits(model, data: Dataset, model_name: str) -> None:
    """Refuse data whose image shape or number of classes the model cannot take, before any training.

    A new run's model is built for its data (:func:`convnp.models.build_model`), so this refuses only a resumed
    run's checkpoint given other data.
    """
    expected = tuple(model.input_shape)
    got = tuple(data.x_train.shape[1:])
    if got != expected:
        raise ValueError(f"model {model_name!r} takes images of shape {expected} (H, W, C), but {data.name} has {got}")
    n_out = model.shapes()[-1][-1]
    if data.n_classes > n_out:
        raise ValueError(f"model {model_name!r} has {n_out} outputs, but {data.name} has labels up to {data.n_classes - 1}")


@dataclass
class _Start:
    """What training starts from: the model, optimizer and standardisation (new or restored) and the record so far."""

    model: Sequential
    optimizer: Optimizer
    standardize: Standardize
    resumed: bool = False
    history: list[dict] = field(default_factory=list)
    step: int = 0  # steps (batches) done
    epoch: int = 0  # epochs done
    skipped_total: int = 0  # non-finite batches skipped so far
    resume_from: dict | None = None  # after a mid-epoch stop: the batches of the epoch done, and its totals
    name: str | None = None  # the network's name when it is not config.model's (a fine-tuned run's)


@dataclass
class _Arrays:
    """The standardised images (in the model's dtype) and labels a run trains and validates on."""

    x_train: StandardizedImages  # (N, H, W, C), read a batch at a time
    y_train: np.ndarray  # (N,)
    validation: tuple[StandardizedImages, np.ndarray] | None  # (x_val of shape (M, H, W, C), y_val of shape (M,))


def train_run(
    config: TrainConfig | None, run_dir, *, resume: bool = False, epochs: int | None = None,
    expect: dict | None = None, stream=None, callbacks=(), distributed=None,
) -> RunResult:
    """Train (or resume) a run in ``run_dir``.

    The steps, each a function below: open or resume the run; load and split the data; initialise or restore the
    model, optimizer and standardisation (and write ``config.json``); build the trainer and its callbacks; train,
    with Ctrl-C stopping at a saved step; evaluate on the test set.

    Parameters
    ----------
    config : TrainConfig
        The settings of a new run; ignored when resuming (the run's ``config.json`` is used).
    run_dir : path
    resume : bool
        Continue the run in ``run_dir`` from its ``last.npz``.
    epochs : int, optional
        When resuming, a new total number of epochs (to extend a finished run).
    expect : dict, optional
        When resuming, settings the caller asked for; any that differ from the run's own are refused.
    stream : file, optional
        Where progress goes (default ``sys.stdout``).
    callbacks : extra callbacks, after the built-in ones.
    distributed : convnp.parallel.mpi.Distributed, optional
        Train across the processes of an MPI job (every process calls this): process 0 reads the data and writes
        ``run_dir``; the others get the data from it and use a private scratch copy of the folder.
    """
    stream = stream if stream is not None else sys.stdout
    run_dir = Path(run_dir)
    if distributed is not None:
        run_dir = distributed.local_run_dir(run_dir, resume)
    config, checkpoint = _open_run(config, run_dir, resume=resume, epochs=epochs, expect=expect)
    # spawn(4)'s first three children are spawn(3)'s: adding the augmentation stream left existing runs unchanged.
    seeds = np.random.SeedSequence(config.seed).spawn(4)
    init_rng, split_rng, order_rng, augment_rng = (np.random.default_rng(s) for s in seeds)

    # Everything that can fail on bad settings or an unwritable folder fails here, before the first step.
    origin = load_checkpoint(config.init) if checkpoint is None and config.init is not None else None
    data, train_idx, val_idx = _load_data(config, split_rng, distributed, origin)
    if origin is not None:
        start = _fine_tune(config, data, origin)
    elif checkpoint is None:
        start = _initialise(config, data, train_idx, init_rng)
    else:
        start = _restore(checkpoint, config, data, order_rng, augment_rng)
    _open_folder(run_dir, config, create=checkpoint is None)
    arrays = _standardised(data, train_idx, val_idx, start)
    augment = make_augment(config, start.standardize, start.model.dtype)

    trainer, checkpointer = _build_trainer(config, start, run_dir, data, arrays, augment, augment_rng,
                                           stream=stream, callbacks=callbacks, distributed=distributed)
    if start.epoch >= config.epochs:
        # A kill after the last checkpoint but inside the metrics write leaves metrics.csv an epoch short.
        MetricsCSV(run_dir / "metrics.csv").write(trainer.history)
        _say(stream, f"{run_dir} already finished its {config.epochs} epoch(s); pass --epochs N to train further")
    else:
        _say(stream, _header(run_dir, config, start, data, arrays, trainer, distributed))
        _fit(trainer, checkpointer, config, arrays, order_rng, start, run_dir, stream)
    return _finish(trainer, start.standardize, data, config, run_dir, distributed)


def _say(stream, text: str) -> None:
    print(text, file=stream, flush=True)


def _open_run(config: TrainConfig | None, run_dir: Path, *, resume: bool, epochs, expect) -> tuple:
    """Step 1: the run's settings and, when resuming, its checkpoint: ``(config, checkpoint or None)``.

    A resumed run keeps its own settings; of those asked for in ``expect``, only ``threads`` and ``backend`` may
    differ (they change float rounding at most), and ``epochs`` may extend it. A new run refuses a folder that
    already holds one.
    """
    if not resume:
        if (run_dir / "last.npz").exists():
            raise ValueError(
                f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out"
            )
        return config, None
    config, checkpoint = _open_for_resume(run_dir)
    expect = dict(expect or {})
    if "threads" in expect:  # the thread count may change (results then differ by float rounding)
        config.threads = expect.pop("threads")
    if "backend" in expect:  # threads or processes: the same results
        config.backend = expect.pop("backend")
    saved = {**config.to_dict(), "lr": config.base_lr}  # lr=None meant the optimizer's default
    clashes = [f"{k}={v!r} (the run has {saved[k]!r})" for k, v in expect.items() if saved[k] != v]
    if clashes:
        raise ValueError(f"--resume continues {run_dir} with its own settings; these differ: {', '.join(clashes)}")
    if epochs is not None:
        config.epochs = epochs
    return config, checkpoint


def _load_data(config: TrainConfig, split_rng: np.random.Generator, distributed, origin=None) -> tuple:
    """Step 2: the data set (``config.limit`` images at most) and its split, ``(data, train_idx, val_idx)``.

    A folder's images are brought to the size and channels of ``origin``'s network (a fine-tuned run's
    checkpoint) unless the run sets them."""
    options = dict(config.image_options)
    shape = None if origin is None else origin.model.input_shape  # (H, W, C)
    if shape and len(shape) == 3 and shape[2] in (1, 3) and Path(config.data).is_dir():
        options.setdefault("image_size", tuple(shape[:2]))
        options.setdefault("channels", shape[2])
        # Kept in config.json, so that --resume reads the folder as this run does.
        (config.image_height, config.image_width), config.channels = options["image_size"], options["channels"]
    if distributed is None:
        data = load_dataset(config.data, mnist_dir=config.mnist_dir, progress=sys.stderr, **options)
    else:
        data = distributed.load_dataset(config.data, mnist_dir=config.mnist_dir, progress=sys.stderr, **options)
        config.threads = 1  # one thread per process: the processes are the parallelism
    if config.limit is not None:
        data.x_train, data.y_train = data.x_train[: config.limit], data.y_train[: config.limit]
    train_idx, val_idx = split_validation(len(data.y_train), config.val_split, split_rng)
    if len(train_idx) == 0:
        raise ValueError(f"no training images left after holding out val_split={config.val_split}")
    return data, train_idx, val_idx


def _initialise(config: TrainConfig, data: Dataset, train_idx: np.ndarray, init_rng: np.random.Generator) -> _Start:
    """Step 3 of a new run: new weights from ``init_rng`` (the network built for the data's image shape and number of
    classes), a new optimizer, the training images' standardisation."""
    model = build_model(config.model, input_shape=data.x_train.shape[1:], num_classes=data.n_classes, rng=init_rng)
    check_fits(model, data, config.model)
    optimizer = make_optimizer(config)
    return _Start(model, optimizer, Standardize.fit(Rows(data.x_train, train_idx)))


def _fine_tune(config: TrainConfig, data: Dataset, origin) -> _Start:
    """Step 3 of a fine-tuned run: ``origin``'s network, weights and standardisation, a new optimizer.

    The data must fit the network's input and outputs, and its class names must be the checkpoint's (data with
    unnamed classes, ``"0" .. "K-1"``, take the checkpoint's names)."""
    model = origin.model
    check_fits(model, data, config.init)
    names = origin.meta.get("classes") or []
    numbered = [str(i) for i in range(data.n_classes)]
    if names and data.classes != numbered and data.classes != names[: data.n_classes]:
        raise ValueError(f"init {config.init!r} names its classes {names[:6]}{' ...' if len(names) > 6 else ''}, but "
                         f"{data.name} names them {data.classes[:6]}{' ...' if data.n_classes > 6 else ''}; "
                         "fine-tuning keeps the network's outputs, so the data needs the same classes")
    if names and data.classes == numbered:
        data.classes = list(names[: data.n_classes])
    name = origin.meta.get("model_name") or Path(str(config.init)).stem
    return _Start(model, make_optimizer(config), origin.standardize, name=name)


def _restore(checkpoint, config: TrainConfig, data: Dataset, order_rng, augment_rng) -> _Start:
    """Step 3 of a resumed run: everything from its checkpoint, the Generators' states included.

    ``order_rng`` and ``augment_rng`` are set to the states saved, so the run draws what it would have drawn.
    """
    model, optimizer, standardize = checkpoint.model, checkpoint.optimizer(), checkpoint.standardize
    check_fits(model, data, config.model)
    meta = checkpoint.meta
    order_rng.bit_generator.state = meta["rng_state"]
    if config.augmenting:
        augment_rng.bit_generator.state = meta["augment_rng_state"]
    model.set_rng_states(meta.get("layer_rng_states", {}))
    # Stopped mid-epoch: continue after the batches already done.
    resume_from = {"batch": meta["batch"], **meta["epoch_sums"]} if meta.get("batch") else None
    return _Start(model, optimizer, standardize, resumed=True, history=list(meta["history"]), step=meta["step"],
                  epoch=meta["epoch"], skipped_total=int(meta.get("skipped_total", 0)), resume_from=resume_from,
                  name=meta.get("model_name") if config.init is not None else None)


def _open_folder(run_dir: Path, config: TrainConfig, *, create: bool) -> None:
    """Step 3, last: the run folder, ``create``d for a new run, cleared of leftovers and given its ``config.json``.

    The leftovers are the temporary files of a write that a kill interrupted.
    """
    if create:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OSError(f"cannot create the run folder {run_dir}: {err.strerror or err}") from None
    _remove_stale_temporaries(run_dir)
    _write_config(run_dir, config)


def _standardised(data: Dataset, train_idx: np.ndarray, val_idx: np.ndarray, start: _Start) -> _Arrays:
    """The training and validation images, standardised into the model's dtype a batch at a time as they are read
    (a data set larger than memory trains in the memory of a batch), with their labels."""
    standardize, dtype = start.standardize, start.model.dtype
    x_train = StandardizedImages(Rows(data.x_train, train_idx), standardize, dtype)
    validation = None
    if len(val_idx):
        validation = (StandardizedImages(Rows(data.x_train, val_idx), standardize, dtype), data.y_train[val_idx])
    return _Arrays(x_train, data.y_train[train_idx], validation)


def _build_trainer(config: TrainConfig, start: _Start, run_dir: Path, data: Dataset, arrays: _Arrays, augment,
                   augment_rng, *, stream, callbacks, distributed) -> tuple[Trainer, Checkpoint]:
    """Step 4: the :class:`Trainer` at ``start``, with its callbacks; returns it and its :class:`Checkpoint`.

    The checkpoint is written before the epoch's line is printed: an epoch reported done is an epoch saved.
    """
    model = start.model
    meta = {
        "model_name": start.name or config.model,
        "data": data.name,
        "train_config": config.to_dict(),
        "preprocessing": start.standardize.to_dict(),
        "classes": data.class_names(model.shapes(data.x_train.shape[1:])[-1][0]),  # label i is named classes[i]
        "augment": None if augment is None else augment.get_config(),  # with the fill value actually used
    }
    checkpointer = Checkpoint(run_dir, meta=meta)
    trainer = Trainer(
        model,
        start.optimizer,
        skip_nonfinite=config.skip_nonfinite,
        schedule=make_schedule(config, math.ceil(len(arrays.y_train) / config.batch_size)),
        clip_grad_norm=config.clip_grad_norm,
        # Decided once here from the configured batch size, so the header names the count the steps use.
        threads=config.threads or threads_for(model, config.batch_size, config.backend),
        backend=config.backend,
        label_smoothing=config.label_smoothing,
        parallel=None if distributed is None else distributed.data_parallel(model, config.label_smoothing),
        augment=augment,
        augment_rng=augment_rng if augment is not None else None,
        callbacks=[
            checkpointer,
            MetricsCSV(run_dir / "metrics.csv"),
            ProgressBar(config.epochs, len(arrays.y_train), stream=stream),
            *([EarlyStopping(config.patience)] if config.patience else []),
            *callbacks,
        ],
    )
    trainer.history, trainer.step, trainer.skipped_total = list(start.history), start.step, start.skipped_total
    return trainer, checkpointer


def _header(run_dir: Path, config: TrainConfig, start: _Start, data: Dataset, arrays: _Arrays, trainer: Trainer,
            distributed) -> str:
    """The line a run opens with: where it starts, on what, and how it trains."""
    what = f"run folder {run_dir}"
    if start.resumed:
        what = f"resuming {run_dir} at epoch {start.epoch + 1}" + (
            f", batch {start.resume_from['batch'] + 1}" if start.resume_from else "")
    n_val = 0 if arrays.validation is None else len(arrays.validation[1])
    network = config.model if start.name is None else f"{start.name} (fine-tuning {config.init})"
    return (f"{what}: {network} on {data.name}, {len(arrays.y_train):,} training / {n_val:,} validation "
            f"images, {config.epochs} epoch(s), batch {config.batch_size}, {trainer.optimizer!r}, "
            f"schedule {config.schedule}, "
            + (f"label smoothing {config.label_smoothing:g}, " if config.label_smoothing else "")
            + (f"augmentation {trainer.augment!r}, " if trainer.augment is not None else "")
            + f"seed {config.seed}, {_workers(trainer, distributed)}")


def _fit(trainer: Trainer, checkpointer: Checkpoint, config: TrainConfig, arrays: _Arrays, order_rng, start: _Start,
         run_dir: Path, stream) -> None:
    """Step 5: train up to ``config.epochs``. Ctrl-C stops after the step in progress, which is saved.

    Raises
    ------
    TrainingInterrupted
        When a stop was asked for (Ctrl-C), saying where the checkpoint is and how to resume.
    TrainingDiverged
        On a non-finite loss or gradient beyond ``skip_nonfinite``, saying which checkpoint is kept.
    """
    try:
        with _stop_on_sigint(trainer):
            trainer.fit(arrays.x_train, arrays.y_train, epochs=config.epochs, batch_size=config.batch_size,
                        rng=order_rng, validation_data=arrays.validation, initial_epoch=start.epoch,
                        resume_from=start.resume_from)
    except TrainingDiverged as err:
        hint = "" if config.skip_nonfinite else ", or --skip-nonfinite N to skip such batches"
        raise TrainingDiverged(f"{err}{hint}; training stopped, {run_dir / 'last.npz'} ({checkpointer.saved}) "
                               "is kept", err.step) from None
    if trainer.stop_requested:
        where = trainer.stop_reason if trainer.interrupted else f"{trainer.stop_requested}: training had finished"
        raise TrainingInterrupted(f"{where}; checkpoint saved in {run_dir / 'last.npz'}; resume with: "
                                  f"convnp train --resume {shlex.quote(str(run_dir))}")
    if trainer.stop_reason:
        _say(stream, trainer.stop_reason)


def _finish(trainer: Trainer, standardize: Standardize, data: Dataset, config: TrainConfig, run_dir: Path,
            distributed) -> RunResult:
    """Step 6: the test set's loss and accuracy (when the data has one), also written to ``results.json``."""
    test = None
    if data.x_test is not None:
        model = trainer.model
        test = evaluate(model, StandardizedImages(data.x_test, standardize, model.dtype), data.y_test,
                        threads=config.threads)
        test["n_samples"] = int(len(data.y_test))
        results = {"test": test, "epochs_done": len(trainer.history), "checkpoint": str(run_dir / "last.npz"),
                   "threads": trainer.threads,
                   "backend": "mpi" if distributed is not None else resolve_backend(trainer.backend, trainer.threads)}
        atomic_write(run_dir / "results.json", lambda f: f.write(json.dumps(results, indent=2).encode()))
    return RunResult(run_dir, trainer.history, test, trainer.stop_reason)


def _workers(trainer: Trainer, distributed) -> str:
    """``1 thread``, ``2 threads`` or ``2 processes``: how each training batch is split."""
    n = trainer.threads
    if distributed is not None or resolve_backend(trainer.backend, n) == "threads":
        return f"{n} thread{'s' if n > 1 else ''}"
    return f"{n} processes"


@contextlib.contextmanager
def _stop_on_sigint(trainer: Trainer):
    """While training, Ctrl-C asks the trainer to stop after the current step; a second Ctrl-C stops at once.

    Only in the main thread, and only where nobody installed a SIGINT handler of their own.
    """
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return

    def handler(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.request_stop("interrupted (Ctrl-C)")  # only a flag: the step in progress finishes untouched

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _remove_stale_temporaries(run_dir: Path) -> None:
    """Remove the temporary files a killed run may have left mid-write (``atomic_write``'s ``.<name>.*.tmp``)."""
    for name in ("last.npz", "best.npz", "metrics.csv", "config.json", "results.json"):
        for stale in run_dir.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


def _write_config(run_dir: Path, config: TrainConfig) -> None:
    document = {
        "settings": config.to_dict(),
        "versions": library_versions(),
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        atomic_write(run_dir / "config.json", lambda f: f.write(json.dumps(document, indent=2).encode()))
    except OSError as err:
        raise OSError(f"cannot write to the run folder {run_dir}: {err.strerror or err}") from None


def _open_for_resume(run_dir: Path):
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{run_dir} is not a run folder to resume (no config.json)")
    try:
        config = TrainConfig.from_dict(json.loads(config_path.read_text())["settings"])
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{config_path}: cannot be read ({err})") from None
    if not (run_dir / "last.npz").is_file():
        raise ValueError(f"{run_dir} holds no checkpoint yet (last.npz); start it again without --resume")
    checkpoint = load_checkpoint(run_dir / "last.npz")
    needed = ("history", "step", "epoch", "rng_state") + (("augment_rng_state",) if config.augmenting else ())
    needed += ("epoch_sums",) if checkpoint.meta.get("batch") else ()
    for key in needed:
        if key not in checkpoint.meta:
            raise ValueError(f"{run_dir / 'last.npz'}: lacks {key!r}, so the run cannot be resumed exactly")
    return config, checkpoint
