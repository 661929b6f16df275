"""``convnp plot``: a run folder's figures as PNG files plus one self-contained ``report.html``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from convnp import pretrained
from convnp.cli._args import unit_float


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "plot",
        help="draw a run's curves, filters, feature maps, confusion matrix and mistakes; write report.html",
        description="Read a run folder (config.json, metrics.csv, best.npz), evaluate its best checkpoint on the "
        "test split of its data, and write curves.png, filters.png, feature_maps.png, confusion.png, mistakes.png "
        "and a self-contained report.html (the images embedded). Needs matplotlib: pip install 'convnp[plot]'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by convnp train, a pretrained model's "
                   "name (see `convnp models`), or a checkpoint file outside a run folder (convnp import's, say), "
                   "shown without curves and evaluated on --data")
    p.add_argument("--data", metavar="mnist|PATH.npz|DIR", default=None,
                   help="for a checkpoint file: the data set whose test split (else training images) the feature "
                   "maps, confusion matrix and mistakes show; without it, only the filters")
    p.add_argument("--test-split", metavar="F", type=unit_float, default=None,
                   help="for a checkpoint file and a folder without test/: the fraction held out as the test split "
                   "(default: the checkpoint's run's, when it trained on that folder)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="folder for the files (default: RUN_DIR; for a pretrained model, NAME-report; for a "
                   "checkpoint file, STEM-report beside it)")
    p.add_argument("--image", metavar="INDEX", type=int, default=0,
                   help="which test image the feature maps show (negative counts from the end)")
    p.set_defaults(run=run)


def _view(args):
    """What to draw and where: a checkpoint file's view (default folder ``STEM-report`` beside it), or a run
    folder's (its own folder; a pretrained model's ``NAME-report`` here, its folder lying inside the package)."""
    from convnp.viz.report import check_run_dir, load_checkpoint_view, load_run

    path = Path(args.run_dir)
    if path.is_file():
        out = Path(args.out) if args.out is not None else path.parent / f"{path.stem}-report"
        return load_checkpoint_view(path, args.data, test_split=args.test_split), out
    if args.data is not None or args.test_split is not None:
        raise ValueError(f"--data and --test-split apply to a checkpoint file; {args.run_dir} is shown on its own "
                         "run's data")
    run_dir = check_run_dir(args.run_dir)  # fails in one line before the slower steps
    name = pretrained.bundled_name(run_dir)
    out = Path(args.out) if args.out is not None else Path(f"{name}-report") if name else run_dir
    return load_run(run_dir), out


def run(args) -> int:
    try:
        from convnp.viz._common import require_matplotlib

        require_matplotlib()
    except ImportError as err:
        print(f"convnp: error: {err}", file=sys.stderr)
        return 1
    from convnp.viz._common import figure_png
    from convnp.viz.report import render_html, run_figures

    view, out = _view(args)
    out.mkdir(parents=True, exist_ok=True)
    figures = run_figures(view, args.image)
    for name, fig in figures.items():
        path = out / f"{name}.png"
        path.write_bytes(figure_png(fig))
        print(path)
    report = out / "report.html"
    report.write_text(render_html(view, figures), encoding="utf-8")
    print(report)
    for note in view.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
