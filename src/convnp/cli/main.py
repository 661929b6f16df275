"""Entry point of the ``convnp`` command: builds the parser from the subcommand modules and runs one.

Each subcommand module, named in :data:`COMMANDS`, provides ``add_parser(subparsers, parents)`` and
``run(args) -> int``. Usage errors exit 2 (argparse). Errors that a user can fix (bad values, missing files,
malformed data or checkpoints) print one line and exit 1; ``--debug`` or ``CONVNP_DEBUG=1`` shows the traceback
instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from convnp.version import __version__

#: The subcommand modules, in the order ``convnp --help`` lists them. They are named, not imported, here: ``serve``
#: lives with the web app it starts (:mod:`convnp.web.command`), and cli/ and web/ never import each other.
COMMANDS = (
    "convnp.cli.train",
    "convnp.cli.evaluate",
    "convnp.cli.predict",
    "convnp.cli.gradcheck",
    "convnp.cli.models",
    "convnp.cli.replay_notebook",
    "convnp.web.command",
    "convnp.cli.plot",
    "convnp.cli.export",
    "convnp.cli.import_onnx",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convnp",
        description="Convolutional neural networks in NumPy, every forward and backward pass written by hand.",
    )
    parser.add_argument("--version", action="version", version=f"convnp {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors (same as CONVNP_DEBUG=1)")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback on errors (same as CONVNP_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(subparsers, [common])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``convnp`` with ``argv`` (default: the process arguments); returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader went away (`convnp ... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt as err:
        # A training run stopped by Ctrl-C says where it stopped and how to resume; 130 = 128 + SIGINT, as shells do.
        print(f"convnp: {err}" if str(err) else "convnp: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        if args.debug or os.environ.get("CONVNP_DEBUG"):
            raise
        print(f"convnp: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
