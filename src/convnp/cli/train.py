"""``convnp train``: train a zoo model, with progress, a run folder, checkpoints and ``--resume``."""

from __future__ import annotations

import argparse
import datetime
import time

from convnp.cli._args import add_mnist_dir, add_threads, positive_float, positive_int, unit_float
from convnp.models import MODELS
from convnp.train.config import DEFAULT_LR, TrainConfig
from convnp.train.run import train_run

DEFAULTS = TrainConfig()


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (default: the notebook's network on MNIST) and report its test accuracy",
        description="Train a model from the zoo with mini-batches, a held-out validation split, a progress bar, "
        "and a run folder holding config.json, metrics.csv, last.npz and best.npz checkpoints. "
        "With no options: the seed notebook's network on full MNIST.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument("--model", choices=sorted(MODELS), default=DEFAULTS.model, help="network to train")
    p.add_argument("--data", default=DEFAULTS.data, metavar="mnist|PATH.npz",
                   help="'mnist', or an .npz with arrays x, y (or x_train, y_train) and optionally x_test, y_test")
    p.add_argument("--epochs", type=positive_int, default=DEFAULTS.epochs, help="passes over the training set")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size, help="images per gradient step")
    p.add_argument("--optimizer", choices=sorted(DEFAULT_LR), default=DEFAULTS.optimizer,
                   help="sgd: plain; momentum: SGD with momentum; adam; adamw (decoupled weight decay)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate; default per optimizer: " + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()))
    p.add_argument("--momentum", type=unit_float, default=DEFAULTS.momentum, help="momentum of --optimizer momentum")
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum (with --optimizer momentum)")
    p.add_argument("--weight-decay", type=_non_negative, default=DEFAULTS.weight_decay,
                   help="L2 weight decay (decoupled for adamw)")
    p.add_argument("--schedule", choices=("constant", "step", "cosine"), default=DEFAULTS.schedule,
                   help="learning-rate schedule over the run")
    p.add_argument("--warmup-epochs", type=_non_negative, default=DEFAULTS.warmup_epochs,
                   help="linear learning-rate warm-up, in epochs (fractions allowed)")
    p.add_argument("--step-epochs", type=positive_int, default=DEFAULTS.step_epochs,
                   help="schedule step: epochs between drops")
    p.add_argument("--step-gamma", type=unit_float, default=DEFAULTS.step_gamma,
                   help="schedule step: factor of each drop")
    p.add_argument("--clip-grad-norm", type=positive_float, default=None, help="clip the gradients' joint L2 norm")
    p.add_argument("--patience", type=positive_int, default=None,
                   help="stop early after this many epochs without a lower validation loss")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed,
                   help="seed of the initial weights, the validation split and the batch order")
    p.add_argument("--val-split", type=unit_float, default=DEFAULTS.val_split,
                   help="fraction of the training images held out for validation")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N training images")
    p.add_argument("--out", metavar="RUN_DIR", default=None,
                   help="run folder to create (default: runs/<model>-<date>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR from its last checkpoint, with its own settings "
                   "(only --epochs may change, to extend it)")
    add_threads(p)
    add_mnist_dir(p)
    p.set_defaults(run=run)


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def run(args) -> int:
    start = time.perf_counter()
    if args.resume:
        # Settings typed on the command line must agree with the run's own (only --epochs may extend it).
        asked = {f: getattr(args, f) for f in DEFAULTS.to_dict() if getattr(args, f) != getattr(DEFAULTS, f)}
        epochs = asked.pop("epochs", None)
        result = train_run(None, args.resume, resume=True, epochs=epochs, expect=asked)
    else:
        config = TrainConfig(
            model=args.model, data=args.data, epochs=args.epochs, batch_size=args.batch_size,
            optimizer=args.optimizer, lr=args.lr, momentum=args.momentum, nesterov=args.nesterov,
            weight_decay=args.weight_decay, schedule=args.schedule, warmup_epochs=args.warmup_epochs,
            step_epochs=args.step_epochs, step_gamma=args.step_gamma, clip_grad_norm=args.clip_grad_norm,
            patience=args.patience, seed=args.seed, val_split=args.val_split, limit=args.limit,
            mnist_dir=args.mnist_dir, threads=args.threads,
        )
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        result = train_run(config, args.out or f"runs/{args.model}-{stamp}")
    elapsed = time.perf_counter() - start
    if result.test is not None:
        print(f"test accuracy: {result.test['accuracy'] * 100:.2f}% on {result.test['n_samples']:,} test images "
              f"(loss {result.test['loss']:.4f}); {elapsed:.0f} s in all")
    print(f"checkpoints in {result.run_dir}: last.npz, best.npz; "
          f"evaluate with: convnp evaluate {result.run_dir}")
    return 0
