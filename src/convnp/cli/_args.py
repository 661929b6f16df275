"""argparse helpers shared by the subcommands: ``type=`` validators that name what they expected, and shared options.

The validators are the library's parsers (:mod:`convnp.train.parsers`) made into argparse types; the shared
options' help texts are those of the :class:`~convnp.train.config.TrainConfig` fields of the same name.
"""

from __future__ import annotations

import argparse
import functools

from convnp.train import parsers
from convnp.train.config import TrainConfig


def argparse_type(parse):
    """``parse`` as an argparse ``type=``: its ValueError becomes argparse's usage error, with the same message.

    Python's own ``int``, ``float`` and ``str`` are returned as they are, keeping argparse's messages for them
    (``invalid int value: 'x'``).
    """
    if parse in (int, float, str):
        return parse

    @functools.wraps(parse)
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert


positive_int = argparse_type(parsers.positive_int)
non_negative_int = argparse_type(parsers.non_negative_int)
positive_float = argparse_type(parsers.positive_float)
non_negative_float = argparse_type(parsers.non_negative_float)
unit_float = argparse_type(parsers.unit_float)


def escaped(text: str) -> str:
    """``text`` as argparse help, which is %-formatted: a literal % doubled."""
    return text.replace("%", "%%")


def add_mnist_dir(parser: argparse.ArgumentParser) -> None:
    """``--mnist-dir DIR``, as ``convnp train`` has it (here the path is taken as typed)."""
    parser.add_argument("--mnist-dir", metavar="DIR", default=None, help=escaped(TrainConfig.flags()["mnist_dir"].help))


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N``, as ``convnp train`` has it."""
    parser.add_argument("--threads", type=positive_int, default=None, help=escaped(TrainConfig.flags()["threads"].help))
