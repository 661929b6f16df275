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
    "convnp.cli.read",
    "convnp.cli.gradcheck",
    "convnp.cli.models",
    "convnp.cli.replay_notebook",
    "convnp.web.command",
    "convnp.cli.plot",
    "convnp.cli.export",
    "convnp.cli.import_onnx",
)


#: Two or three typical command lines per subcommand, ending its --help (``# ...`` says what each does).
EXAMPLES = {
    "train": [
        "convnp train                                  # the notebook's network on MNIST, 8 epochs",
        "convnp train --model best --seed 1            # how the pretrained mnist-best was made",
        "convnp train --init mnist-best --data my_digits/ --epochs 3   # fine-tune a pretrained model",
    ],
    "evaluate": [
        "convnp evaluate mnist-best                    # a pretrained model on the MNIST test set",
        "convnp evaluate runs/demo --json",
        "convnp evaluate runs/photos --data photos/ --split train",
    ],
    "predict": [
        "convnp predict mnist-best my_digit.png        # a pretrained model, no training needed",
        "convnp predict runs/demo a.png b.jpg --top 5 --json",
    ],
    "gradcheck": [
        "convnp gradcheck                              # the notebook's network, every layer",
        "convnp gradcheck --model best",
        "convnp gradcheck --notebook-maxpool           # the seed notebook's wrong max-pool backward: FAIL",
    ],
    "models": [
        "convnp models                                 # the zoo, then the pretrained models",
        "convnp models best                            # its layers, FLOPs and recipe",
        "convnp models mnist-best --json",
    ],
    "replay-notebook": [
        "convnp replay-notebook                        # the notebook's experiment with correct gradients",
        "convnp replay-notebook --notebook-maxpool     # ... and with its own max-pool backward",
    ],
    "serve": [
        "convnp serve mnist-best                       # then open http://127.0.0.1:8000/ and draw",
        "convnp serve runs/demo --port 0               # any free port; the line printed says which",
        "convnp serve runs/photos --host 0.0.0.0 --port 8080",
    ],
    "plot": [
        "convnp plot runs/demo                         # PNGs and report.html into the run folder",
        "convnp plot mnist-best                        # into mnist-best-report/",
        "convnp plot runs/demo --out pictures --image 7",
    ],
    "export": [
        "convnp export mnist-best mnist-best.onnx",
        "convnp export runs/demo demo.onnx --opset 17",
        "convnp export runs/demo demo-logits.onnx --raw",
    ],
    "read": [
        "convnp read mnist-best number.png             # the digits written in a row, left to right",
        "convnp read runs/demo page.jpg --json",
    ],
    "import": [
        "convnp import net.onnx net.npz --mean 0.1307 --std 0.3081   # a PyTorch MNIST network",
        "convnp import mnist-best.onnx copy.npz                     # a file convnp exported brings its preparation",
    ],
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults-showing help, with an epilog's ``examples:`` block kept line by line (the rest of the
    description and epilog is wrapped as usual)."""

    def _fill_text(self, text, width, indent):
        head, marker, examples = text.partition("examples:\n")
        filled = super()._fill_text(head, width, indent) if head.strip() else ""
        if not marker:
            return filled
        return (filled + "\n\n" if filled else "") + indent + marker + "".join(
            indent + "  " + line + "\n" for line in examples.splitlines())


def _add_examples(subparsers) -> None:
    """End each subcommand's --help with its :data:`EXAMPLES`."""
    for name, parser in subparsers.choices.items():
        parser.formatter_class = HelpFormatter
        lines = EXAMPLES.get(name)
        if lines:
            parser.epilog = ((parser.epilog or "") + "\n").lstrip("\n") + "examples:\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The ``convnp`` parser: ``--version``, ``--debug`` and one subparser per module of :data:`COMMANDS`."""
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
    _add_examples(subparsers)
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
