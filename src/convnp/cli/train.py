"""``convnp train``: train a zoo model, with progress, a run folder, checkpoints and ``--resume``.

The training options are generated from :class:`~convnp.train.config.TrainConfig`'s fields (each carries its flag's
help, parser and choices), with no default in the namespace: after parsing, it holds exactly the settings the user
typed, which beat the model's recipe (:meth:`TrainConfig.resolve`) and which ``--resume`` checks against the run's
own. The options about the run itself (``--out``, ``--resume``, ...) are ordinary ones.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import time
from pathlib import PurePath

from convnp.cli._args import argparse_type, escaped
from convnp.cli.distributed import launch
from convnp.train.config import GROUPS, Flag, TrainConfig
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
        allow_abbrev=False,  # an abbreviation that works today could become ambiguous when an option is added
        epilog="Each --model comes with a recipe (see `convnp models NAME`): options you do not type take the "
        "recipe's value where it has one, else the default shown.",
    )
    add_config_options(p)
    p.add_argument("--no-report", action="store_true",
                   help="skip report.html (curves, filters, feature maps, confusion, mistakes; needs matplotlib)")
    p.add_argument("--out", metavar="RUN_DIR", default=None,
                   help="run folder to create (default: runs/<model>-<date>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR from its last checkpoint, with its own settings "
                   "(only --epochs may change, to extend it)")
    p.add_argument("--distributed", action="store_true",
                   help="train across the processes of an MPI job, started as `mpirun -n N convnp train "
                   "--distributed ...` (needs pip install 'convnp[mpi]'): --batch-size is the global batch, split "
                   "across the processes, one thread each; process 0 reads the data and writes the run folder")
    p.set_defaults(run=run)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`TrainConfig` field (one two-value option per pair of fields), from its :class:`Flag`.

    No option has a default in the namespace (``argparse.SUPPRESS``), so a parse holds only the settings typed; the
    help text shows the field's default all the same.
    """
    groups = {}
    for name, flag in TrainConfig.flags().items():
        if flag.pair_of is not None:  # set by its pair's flag
            continue
        if flag.group is not None and flag.group not in groups:
            groups[flag.group] = parser.add_argument_group(flag.group, GROUPS[flag.group])
        default = getattr(DEFAULTS, name)
        if flag.pair is not None:
            default = (default, getattr(DEFAULTS, flag.pair))
        shown = flag.shown if flag.shown is not None else default
        kwargs = dict(default=argparse.SUPPRESS, help=escaped(f"{flag.help} (default: {shown})"))
        if flag.pair is not None:
            kwargs.update(nargs=2, action=_Pair, names=(name, flag.pair), check=flag.check)
        elif isinstance(default, bool):
            kwargs.update(dest=name, action="store_true")
        else:
            kwargs.update(dest=name, choices=flag.choices)
        if flag.parse is not None:
            kwargs.update(type=argparse_type(flag.parse))
        if flag.metavar is not None:
            kwargs.update(metavar=flag.metavar)
        groups.get(flag.group, parser).add_argument(option_name(name, flag), **kwargs)


def option_name(name: str, flag: Flag) -> str:
    """The option that sets the :class:`TrainConfig` field ``name``: ``--batch-size`` for ``batch_size``."""
    return flag.name or "--" + name.replace("_", "-")


class _Pair(argparse.Action):
    """A two-value option that sets two :class:`TrainConfig` fields (``--scale-range MIN MAX``), once they agree."""

    def __init__(self, option_strings, dest, *, names, check, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.names, self.check = names, check

    def __call__(self, parser, namespace, values, option_string=None):
        problem = self.check(*values) if self.check is not None else None
        if problem:
            raise argparse.ArgumentError(self, problem)
        for name, value in zip(self.names, values):
            setattr(namespace, name, value)


def typed_settings(args: argparse.Namespace) -> dict:
    """The :class:`TrainConfig` settings typed on the command line (a parse holds no others), by field name."""
    return {name: getattr(args, name) for name in TrainConfig.flags() if hasattr(args, name)}


def run(args) -> int:
    typed = typed_settings(args)
    train = functools.partial(_train, typed=typed)
    if args.distributed:
        # launch reads --threads, --backend and --batch-size: it gets them typed or not.
        return launch(argparse.Namespace(**{**DEFAULTS.to_dict(), **vars(args)}), train)
    return train(args)


def _train(args, distributed=None, *, typed: dict) -> int:
    start = time.perf_counter()
    if args.resume:
        # Settings typed on the command line must agree with the run's own (only --epochs may extend it).
        asked = dict(typed)
        epochs = asked.pop("epochs", None)
        result = train_run(None, args.resume, resume=True, epochs=epochs, expect=asked, distributed=distributed)
    else:
        config = TrainConfig.resolve(**typed)
        _refuse_idle(typed, config)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = PurePath(config.model).stem  # an architecture file "nets/net.json" names its runs "net-..."
        result = train_run(config, args.out or f"runs/{name}-{stamp}", distributed=distributed)
    elapsed = time.perf_counter() - start
    if result.test is not None:
        print(f"test accuracy: {result.test['accuracy'] * 100:.2f}% on {result.test['n_samples']:,} test images "
              f"(loss {result.test['loss']:.4f}); {elapsed:.0f} s in all")
    print(f"checkpoints in {result.run_dir}: last.npz, best.npz; "
          f"evaluate with: convnp evaluate {result.run_dir}")
    if not args.no_report and (distributed is None or distributed.is_root):
        _report(result.run_dir)
    return 0


def _refuse_idle(typed: dict, config: TrainConfig) -> None:
    """Refuse typed settings that would have no effect (``--max-shift`` without ``--augment``), naming their flags."""
    flags = TrainConfig.flags()
    idle = []
    for name, flag in flags.items():
        option = option_name(name, flag)
        if name in typed and flag.needs and not getattr(config, flag.needs) and option not in idle:
            idle.append(option)
    if idle:  # the only setting others need is augment
        raise ValueError(f"{' and '.join(idle)} {'has' if len(idle) == 1 else 'have'} no effect without "
                         "--augment; add --augment to train on augmented batches")


def _report(run_dir) -> None:
    """Write RUN_DIR/report.html when matplotlib is there; otherwise say how to get it, without failing the run."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("no report.html: it needs matplotlib (pip install 'convnp[plot]'), then run: convnp plot " + str(run_dir))
        return
    from convnp.viz.report import write_report

    print(f"report: {write_report(run_dir)}")
