"""Entry point of the ``convnp`` command: builds the parser from the subcommand modules and runs one.

Each subcommand module provides ``add_parser(subparsers)`` and ``run(args) -> int``. Errors that a user can fix
(bad values, missing files, malformed data) print one line and exit 1; ``CONVNP_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from convnp import __version__
from convnp.cli import gradcheck, replay_notebook, train

COMMANDS = (train, gradcheck, replay_notebook)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convnp",
        description="Convolutional neural networks in NumPy, every forward and backward pass written by hand.",
    )
    parser.add_argument("--version", action="version", version=f"convnp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``convnp`` with ``argv`` (default: the process arguments); returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("convnp: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        if os.environ.get("CONVNP_DEBUG"):
            raise
        print(f"convnp: error: {err} (set CONVNP_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
