"""``convnp read``: read the number written in a photo (several digits in a row), digit by digit, with a digit model."""

from __future__ import annotations

import argparse
import json
import sys

from convnp.cli._args import add_threads
from convnp.errors import DataError
from convnp.inference import MNIST_SHAPE, Classifier
from convnp.reading import ReadDigit, read_number_file


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "read",
        help="read the number in photos of several digits in a row (a house number, a year, a postcode)",
        description="Load a digit model (a checkpoint taking 28x28x1 images) and, for each FILE, find the digits "
        "written in a row, left to right, prepare each as MNIST's digits were (as convnp predict prepares one "
        "digit: uneven light and shadows divided out, specks and page edges left out), and classify them. Digits "
        "are told apart by the columns their ink occupies; two that touch are cut where their ink is thinnest. "
        "Prints 'FILE: NUMBER' and each digit's probability; a file that cannot be read (or holds no ink) is "
        "reported on stderr and skipped, and the exit code is then 1. A large JPEG is decoded small first (Pillow's "
        "draft mode), as convnp predict decodes it; the boxes are in the file's own pixels. Needs Pillow "
        "(pip install 'convnp[image]').",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file (.npz) or run folder of a digit model")
    p.add_argument("files", metavar="FILE", nargs="+", help="image files (anything Pillow reads) or .npy arrays")
    p.add_argument("--json", action="store_true",
                   help="print one JSON list: per file the number as a string and its digits, each with its class, "
                   "probability, all class probabilities and box [top, left, bottom, right] in the file's pixels "
                   "(files that failed carry an 'error' instead)")
    add_threads(p)
    p.set_defaults(run=run)


def run(args) -> int:
    classifier = Classifier.from_checkpoint(args.checkpoint, threads=args.threads)
    if classifier.input_shape != MNIST_SHAPE:
        raise ValueError(f"convnp read needs a digit model (input {MNIST_SHAPE}), but {args.checkpoint} takes "
                         f"images of shape {classifier.input_shape}")
    names = classifier.class_names
    entries, failed = [], 0
    for path in args.files:
        try:
            digits = read_number_file(classifier, path)
        except (DataError, OSError) as err:
            print(f"convnp: error: {err}", file=sys.stderr)
            entries.append({"file": str(path), "error": str(err)})
            failed += 1
            continue
        number = "".join(names[d.label] for d in digits)
        entries.append(_as_json(path, number, digits, names))
        if not args.json:
            probabilities = " ".join(f"{d.probabilities[d.label]:.3f}" for d in digits)
            print(f"{path}: {number}  (p = {probabilities})")
    if args.json:
        print(json.dumps(entries, allow_nan=False))
    if failed and len(args.files) > 1:
        print(f"convnp: {failed} of {len(args.files)} files could not be read", file=sys.stderr)
    return 1 if failed else 0


def _as_json(path, number: str, digits: list[ReadDigit], names) -> dict:
    return {
        "file": str(path),
        "number": number,
        "digits": [{"label": d.label, "class": names[d.label], "probability": float(d.probabilities[d.label]),
                    "probabilities": [float(v) for v in d.probabilities], "box": list(d.box)} for d in digits],
    }
