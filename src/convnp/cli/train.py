"""``convnp train``: train a zoo model, with progress, a run folder, checkpoints and ``--resume``."""

from __future__ import annotations

import argparse
import datetime
import os
import time

from convnp.cli._args import (
    add_mnist_dir,
    add_threads,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    unit_float,
)
from convnp.models import MODELS, RECIPES
from convnp.parallel import BACKENDS
from convnp.train.config import DEFAULT_LR, SCHEDULE_NAMES, TrainConfig
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
        allow_abbrev=False,  # typed options are told from defaults by their exact spelling
        epilog="Each --model comes with a recipe (see `convnp models NAME`): options you do not type take the "
        "recipe's value where it has one, else the default shown.",
    )
    p.add_argument("--model", choices=list(MODELS), default=DEFAULTS.model, help="network to train")
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
    p.add_argument("--weight-decay", type=non_negative_float, default=DEFAULTS.weight_decay,
                   help="L2 weight decay (decoupled for adamw)")
    p.add_argument("--schedule", choices=SCHEDULE_NAMES, default=DEFAULTS.schedule,
                   help="learning-rate schedule over the run; onecycle: a cosine rise from lr/25 to lr over 30%% "
                   "of the steps (or --warmup-epochs), then a cosine fall to lr/2.5e5 (PyTorch's OneCycleLR)")
    p.add_argument("--warmup-epochs", type=non_negative_float, default=DEFAULTS.warmup_epochs,
                   help="linear learning-rate warm-up, in epochs (fractions allowed); with --schedule onecycle, "
                   "the length of its rise")
    p.add_argument("--step-epochs", type=positive_int, default=DEFAULTS.step_epochs,
                   help="schedule step: epochs between drops")
    p.add_argument("--step-gamma", type=unit_float, default=DEFAULTS.step_gamma,
                   help="schedule step: factor of each drop")
    p.add_argument("--label-smoothing", type=unit_float, default=DEFAULTS.label_smoothing,
                   help="give this share of each training target evenly to all classes; the training loss shown is "
                   "then the smoothed one, while validation and test losses stay the plain cross-entropy")
    augment = p.add_argument_group(
        "augmentation", "random transforms of each training batch (never of validation or test images), drawn "
        "from their own stream of the seed; the settings below need --augment"
    )
    augment.add_argument("--augment", action="store_true",
                         help="shift, rotate and scale every training image by random amounts (and distort it "
                         "elastically with --elastic)")
    augment.add_argument("--max-shift", type=non_negative_float, default=DEFAULTS.max_shift,
                         help="largest shift, in pixels, along each axis")
    augment.add_argument("--max-rotation", type=non_negative_float, default=DEFAULTS.max_rotation,
                         help="largest rotation, in degrees, either way")
    augment.add_argument("--scale-range", nargs=2, type=positive_float, metavar=("MIN", "MAX"),
                         default=(DEFAULTS.scale_min, DEFAULTS.scale_max), action=_ScaleRange,
                         help="range of the random zoom factor (MIN <= MAX; above 1 enlarges)")
    augment.add_argument("--elastic", nargs=2, type=non_negative_float, metavar=("ALPHA", "SIGMA"), default=None,
                         action=_Elastic,
                         help="add elastic distortion (Simard et al. 2003): displacement scale ALPHA and smoothing "
                         "width SIGMA in pixels, e.g. 34 4")
    p.add_argument("--clip-grad-norm", type=positive_float, default=None, help="clip the gradients' joint L2 norm")
    p.add_argument("--skip-nonfinite", metavar="N", type=non_negative_int, default=DEFAULTS.skip_nonfinite,
                   help="skip up to N batches (over the whole run) whose loss or gradient is NaN or infinite, "
                   "counting them in metrics.csv's 'skipped' column; by default the first one stops training, "
                   "naming the step, and the last good checkpoint is kept")
    p.add_argument("--patience", type=positive_int, default=None,
                   help="stop early after this many epochs without a lower validation loss")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed,
                   help="seed of the initial weights, the validation split, the batch order and the augmentation")
    p.add_argument("--val-split", type=unit_float, default=DEFAULTS.val_split,
                   help="fraction of the training images held out for validation")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N training images")
    p.add_argument("--no-report", action="store_true",
                   help="skip report.html (curves, filters, feature maps, confusion, mistakes; needs matplotlib)")
    p.add_argument("--out", metavar="RUN_DIR", default=None,
                   help="run folder to create (default: runs/<model>-<date>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR from its last checkpoint, with its own settings "
                   "(only --epochs may change, to extend it)")
    add_threads(p)
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="what --threads counts: threads, or worker processes forked from this one (faster on "
                   "small networks; the same results, bit for bit); default auto: processes on Linux")
    p.add_argument("--distributed", action="store_true",
                   help="train across the processes of an MPI job, started as `mpirun -n N convnp train "
                   "--distributed ...` (needs pip install 'convnp[mpi]'): --batch-size is the global batch, split "
                   "across the processes, one thread each; process 0 reads the data and writes the run folder")
    add_mnist_dir(p)
    p.set_defaults(run=run, parser=p)


class _ScaleRange(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        low, high = values
        if low > high:
            raise argparse.ArgumentError(self, f"expected MIN <= MAX, got MIN={low:g} and MAX={high:g}")
        setattr(namespace, self.dest, tuple(values))


class _Elastic(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        alpha, sigma = values
        if not sigma > 0:
            raise argparse.ArgumentError(self, f"expected SIGMA > 0, got {sigma:g}")
        setattr(namespace, self.dest, tuple(values))


# Options whose destination is not a TrainConfig field of the same name.
_FIELDS_OF = {"scale_range": ("scale_min", "scale_max"), "elastic": ("elastic_alpha", "elastic_sigma")}


def typed_fields(args) -> set[str]:
    """The TrainConfig fields whose options were typed on the command line (not left at their defaults)."""
    typed = set()
    for action in args.parser._actions:
        if any(token == s or token.startswith(s + "=") for s in action.option_strings for token in args.argv):
            typed.update(_FIELDS_OF.get(action.dest, (action.dest,)))
    return typed & set(DEFAULTS.to_dict())


def _settings(args) -> dict:
    """The TrainConfig fields the parsed flags give (every field, typed or default)."""
    elastic_alpha, elastic_sigma = args.elastic if args.elastic is not None else (0.0, DEFAULTS.elastic_sigma)
    return dict(
        model=args.model, data=args.data, epochs=args.epochs, batch_size=args.batch_size,
        optimizer=args.optimizer, lr=args.lr, momentum=args.momentum, nesterov=args.nesterov,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup_epochs=args.warmup_epochs,
        step_epochs=args.step_epochs, step_gamma=args.step_gamma, clip_grad_norm=args.clip_grad_norm,
        patience=args.patience, seed=args.seed, val_split=args.val_split, limit=args.limit,
        # Absolute, so that `convnp plot` and `--resume` from another folder read the same files.
        mnist_dir=os.path.abspath(args.mnist_dir) if args.mnist_dir else None,
        threads=args.threads, backend=args.backend,
        label_smoothing=args.label_smoothing,
        augment=args.augment, max_shift=args.max_shift, max_rotation=args.max_rotation,
        scale_min=args.scale_range[0], scale_max=args.scale_range[1],
        elastic_alpha=elastic_alpha, elastic_sigma=elastic_sigma, skip_nonfinite=args.skip_nonfinite,
    )


def run(args) -> int:
    if args.distributed:
        from convnp.distributed import launch  # mpi4py is needed, and imported, only here

        return launch(args, _train)
    return _train(args)


def _train(args, distributed=None) -> int:
    start = time.perf_counter()
    settings = _settings(args)
    typed = typed_fields(args)
    if args.resume:
        # Settings typed on the command line must agree with the run's own (only --epochs may extend it).
        asked = {f: settings[f] for f in typed}
        epochs = asked.pop("epochs", None)
        result = train_run(None, args.resume, resume=True, epochs=epochs, expect=asked, distributed=distributed)
    else:
        recipe = RECIPES.get(args.model, {})
        config = TrainConfig(**{**settings, **recipe, **{f: settings[f] for f in typed}})
        idle = [f"--{o}" for o in ("max-shift", "max-rotation", "scale-range", "elastic")
                if typed & set(_FIELDS_OF.get(o.replace("-", "_"), (o.replace("-", "_"),)))]
        if idle and not config.augment:
            raise ValueError(f"{' and '.join(idle)} {'has' if len(idle) == 1 else 'have'} no effect without "
                             "--augment; add --augment to train on augmented batches")
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        result = train_run(config, args.out or f"runs/{args.model}-{stamp}", distributed=distributed)
    elapsed = time.perf_counter() - start
    if result.test is not None:
        print(f"test accuracy: {result.test['accuracy'] * 100:.2f}% on {result.test['n_samples']:,} test images "
              f"(loss {result.test['loss']:.4f}); {elapsed:.0f} s in all")
    print(f"checkpoints in {result.run_dir}: last.npz, best.npz; "
          f"evaluate with: convnp evaluate {result.run_dir}")
    if not args.no_report and (distributed is None or distributed.is_root):
        _report(result.run_dir)
    return 0


def _report(run_dir) -> None:
    """Write RUN_DIR/report.html when matplotlib is there; otherwise say how to get it, without failing the run."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("no report.html: it needs matplotlib (pip install 'convnp[plot]'), then run: convnp plot " + str(run_dir))
        return
    from convnp.viz.report import write_report

    print(f"report: {write_report(run_dir)}")
