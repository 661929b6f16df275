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
"""

from __future__ import annotations

import datetime
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convnp.checkpoint import atomic_write, library_versions, load_checkpoint
from convnp.data.augment import Augment
from convnp.data.datasets import Dataset, load_dataset
from convnp.data.transforms import Standardize
from convnp.models import get_model
from convnp.optim import SGD, Adam, AdamW
from convnp.parallel import get_num_threads
from convnp.schedules import Constant, Cosine, OneCycle, Step
from convnp.train.callbacks import Checkpoint, EarlyStopping, MetricsCSV, ProgressBar
from convnp.train.config import TrainConfig
from convnp.train.loop import Trainer, evaluate


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


def make_augment(config: TrainConfig, standardize: Standardize, dtype) -> Augment | None:
    """The training-batch augmentation ``config`` asks for, or None.

    The batches it sees are already standardised, so the area a transform uncovers is filled with the standardised
    value of a blank (0) pixel, ``(0 * scale - mean) / std``, in the model's dtype. :class:`Augment` takes one fill
    value for all channels: channel 0's is used (exact for the one-channel data sets convnp trains on).
    """
    settings = config.augment_settings
    if settings is None:
        return None
    blank = np.zeros((1, 1, 1, len(standardize.mean)), dtype=np.uint8)  # (1, 1, 1, C)
    fill = float(standardize(blank, dtype)[0, 0, 0, 0])
    return Augment(**settings, fill=fill)


def split_validation(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)``: a random ``fraction`` of ``range(n)`` held out, both kept in their original order."""
    n_val = int(round(n * fraction))
    order = rng.permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def check_fits(model, data: Dataset, model_name: str) -> None:
    """Refuse data whose image shape or number of classes the model cannot take, before any training."""
    expected = tuple(model.input_shape)
    got = tuple(data.x_train.shape[1:])
    if got != expected:
        raise ValueError(f"model {model_name!r} takes images of shape {expected} (H, W, C), but {data.name} has {got}")
    n_out = model.shapes()[-1][-1]
    if data.n_classes > n_out:
        raise ValueError(f"model {model_name!r} has {n_out} outputs, but {data.name} has labels up to {data.n_classes - 1}")


def train_run(
    config: TrainConfig | None,
    run_dir,
    *,
    resume: bool = False,
    epochs: int | None = None,
    expect: dict | None = None,
    stream=None,
    callbacks=(),
) -> RunResult:
    """Train (or resume) a run in ``run_dir``.

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
    """
    stream = stream if stream is not None else sys.stdout
    run_dir = Path(run_dir)
    say = lambda text: print(text, file=stream, flush=True)  # noqa: E731

    if resume:
        config, checkpoint = _open_for_resume(run_dir)
        expect = dict(expect or {})
        if "threads" in expect:  # the thread count may change (results then differ by float rounding)
            config.threads = expect.pop("threads")
        saved = {**config.to_dict(), "lr": config.base_lr}  # lr=None meant the optimizer's default
        clashes = [f"{k}={v!r} (the run has {saved[k]!r})" for k, v in expect.items() if saved[k] != v]
        if clashes:
            raise ValueError(f"--resume continues {run_dir} with its own settings; these differ: {', '.join(clashes)}")
        if epochs is not None:
            config.epochs = epochs
    else:
        if (run_dir / "last.npz").exists():
            raise ValueError(
                f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out"
            )
        checkpoint = None
    # spawn(4)'s first three children are spawn(3)'s: adding the augmentation stream left existing runs unchanged.
    seeds = np.random.SeedSequence(config.seed).spawn(4)
    init_rng, split_rng, order_rng, augment_rng = (np.random.default_rng(s) for s in seeds)

    # Everything that can fail on bad settings or an unwritable folder fails here, before the first step.
    data = load_dataset(config.data, mnist_dir=config.mnist_dir)
    if config.limit is not None:
        data.x_train, data.y_train = data.x_train[: config.limit], data.y_train[: config.limit]
    train_idx, val_idx = split_validation(len(data.y_train), config.val_split, split_rng)
    if len(train_idx) == 0:
        raise ValueError(f"no training images left after holding out val_split={config.val_split}")

    if checkpoint is None:
        model = get_model(config.model, rng=init_rng)
        check_fits(model, data, config.model)
        optimizer = make_optimizer(config)
        standardize = Standardize.fit(data.x_train[train_idx])
        history, step, initial_epoch = [], 0, 0
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_config(run_dir, config)
    else:
        model, optimizer, standardize = checkpoint.model, checkpoint.optimizer(), checkpoint.standardize
        check_fits(model, data, config.model)
        history, step, initial_epoch = checkpoint.meta["history"], checkpoint.meta["step"], checkpoint.meta["epoch"]
        order_rng.bit_generator.state = checkpoint.meta["rng_state"]
        if config.augment:
            augment_rng.bit_generator.state = checkpoint.meta["augment_rng_state"]
        model.set_rng_states(checkpoint.meta.get("layer_rng_states", {}))
        _write_config(run_dir, config)

    x_train = standardize(data.x_train[train_idx], model.dtype)
    y_train = data.y_train[train_idx]
    validation = (standardize(data.x_train[val_idx], model.dtype), data.y_train[val_idx]) if len(val_idx) else None

    augment = make_augment(config, standardize, model.dtype)

    steps_per_epoch = math.ceil(len(y_train) / config.batch_size)
    meta = {
        "model_name": config.model,
        "data": data.name,
        "train_config": config.to_dict(),
        "preprocessing": standardize.to_dict(),
        "augment": None if augment is None else augment.get_config(),  # with the fill value actually used
    }
    trainer = Trainer(
        model,
        optimizer,
        schedule=make_schedule(config, steps_per_epoch),
        clip_grad_norm=config.clip_grad_norm,
        threads=config.threads,
        label_smoothing=config.label_smoothing,
        augment=augment,
        augment_rng=augment_rng if augment is not None else None,
        callbacks=[
            ProgressBar(config.epochs, len(y_train), stream=stream),
            MetricsCSV(run_dir / "metrics.csv"),
            Checkpoint(run_dir, meta=meta),
            *([EarlyStopping(config.patience)] if config.patience else []),
            *callbacks,
        ],
    )
    trainer.history, trainer.step = list(history), step

    if initial_epoch >= config.epochs:
        say(f"{run_dir} already finished its {config.epochs} epoch(s); pass --epochs N to train further")
    else:
        what = f"resuming {run_dir} at epoch {initial_epoch + 1}" if resume else f"run folder {run_dir}"
        say(f"{what}: {config.model} on {data.name}, {len(y_train):,} training / "
            f"{0 if validation is None else len(validation[1]):,} validation images, {config.epochs} epoch(s), "
            f"batch {config.batch_size}, {optimizer!r}, schedule {config.schedule}, "
            + (f"label smoothing {config.label_smoothing:g}, " if config.label_smoothing else "")
            + (f"augmentation {augment!r}, " if augment is not None else "")
            + f"seed {config.seed}, {config.threads or get_num_threads()} thread(s)")
        trainer.fit(x_train, y_train, epochs=config.epochs, batch_size=config.batch_size, rng=order_rng,
                    validation_data=validation, initial_epoch=initial_epoch)
        if trainer.stop_reason:
            say(trainer.stop_reason)

    test = None
    if data.x_test is not None:
        test = evaluate(model, standardize(data.x_test, model.dtype), data.y_test, threads=config.threads)
        test["n_samples"] = int(len(data.y_test))
        results = {"test": test, "epochs_done": len(trainer.history), "checkpoint": str(run_dir / "last.npz")}
        atomic_write(run_dir / "results.json", lambda f: f.write(json.dumps(results, indent=2).encode()))
    return RunResult(run_dir, trainer.history, test, trainer.stop_reason)


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
    needed = ("history", "step", "epoch", "rng_state") + (("augment_rng_state",) if config.augment else ())
    for key in needed:
        if key not in checkpoint.meta:
            raise ValueError(f"{run_dir / 'last.npz'}: lacks {key!r}, so the run cannot be resumed exactly")
    return config, checkpoint
