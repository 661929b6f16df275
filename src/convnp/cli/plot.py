"""``convnp plot``: a run folder's figures as PNG files plus one self-contained ``report.html``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from convnp import pretrained


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
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by convnp train, or a pretrained model's "
                   "name (see `convnp models`)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="folder for the files (default: RUN_DIR; for a pretrained model, NAME-report)")
    p.add_argument("--image", metavar="INDEX", type=int, default=0,
                   help="which test image the feature maps show (negative counts from the end)")
    p.set_defaults(run=run)


def run(args) -> int:
    try:
        from convnp.viz._common import require_matplotlib

        require_matplotlib()
    except ImportError as err:
        print(f"convnp: error: {err}", file=sys.stderr)
        return 1
    from convnp.viz._common import figure_png
    from convnp.viz.report import check_run_dir, load_run, render_html, run_figures

    run_dir = check_run_dir(args.run_dir)  # fails in one line before the slower steps
    name = pretrained.bundled_name(run_dir)
    # A bundled model's folder lies inside the installed package: its pictures go to the working directory.
    out = Path(args.out) if args.out is not None else Path(f"{name}-report") if name else run_dir
    out.mkdir(parents=True, exist_ok=True)
    view = load_run(run_dir)
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
