"""``convnp gradcheck``: finite-difference check of every layer of a zoo model, as a PASS/FAIL table."""

from __future__ import annotations

import argparse

import numpy as np

from convnp.cli._args import positive_float, positive_int
from convnp.gradcheck import DEFAULT_TOLERANCE, check_model, format_report
from convnp.models import MODELS, get_model


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "gradcheck",
        help="check every layer's gradients against finite differences",
        description="Compare each layer's hand-written backward pass with central finite differences in float64 "
        "(each layer alone on a random input, the loss, then every parameter through the whole model). "
        "Exit code 1 if any component fails.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument("--model", choices=sorted(MODELS), default="notebook", help="network to check")
    p.add_argument(
        "--notebook-maxpool",
        action="store_true",
        help="use the seed notebook's wrong max-pool backward (notebook model only), to see it fail",
    )
    p.add_argument("--tolerance", type=positive_float, default=DEFAULT_TOLERANCE, help="largest relative error that passes")
    p.add_argument("--max-coords", type=positive_int, default=256,
                   help="entries sampled per array (finite differences cost two forward passes each)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the random inputs")
    p.set_defaults(run=run)


def run(args) -> int:
    rng = np.random.default_rng(args.seed)
    kwargs = {"rng": rng, "dtype": np.float64}
    if args.notebook_maxpool:
        if args.model != "notebook":
            raise ValueError(f"--notebook-maxpool applies to --model notebook only, got --model {args.model}")
        kwargs["notebook_maxpool"] = True
    model = get_model(args.model, **kwargs)
    # Batch 4: with 2 samples BatchNorm1D's output is +-gamma whatever comes in, leaving only rounding noise to check.
    rows = check_model(model, rng, batch_size=4, tolerance=args.tolerance, max_coords=args.max_coords)
    print(format_report(rows, args.tolerance))
    return 0 if all(row.passed for row in rows) else 1
