"""``convnp import``: an ONNX file (PyTorch's exporter, convnp's own, ...) as a convnp checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from convnp.cli._args import positive_float

#: The largest class-names file read (bytes).
MAX_CLASSES_FILE = 1 << 20


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "import",
        help="read an ONNX model (e.g. from PyTorch's exporter) as a convnp checkpoint",
        description="Read MODEL.onnx, a chain of Conv, MaxPool, AveragePool, GlobalAveragePool, BatchNormalization, "
        "Relu, LeakyRelu, Tanh, Sigmoid, Flatten/Reshape, Gemm or MatMul+Add, Dropout/Identity and a final Softmax, "
        "channels-first as PyTorch writes it or channels-last as convnp does, and write it as a convnp checkpoint "
        "(weights channels-last) that evaluate, predict and serve read. The input preparation is (x * scale - "
        "mean) / std per channel from the options, or, for a file written by convnp export, its own. An operator, "
        "attribute or graph shape convnp cannot express, or a damaged, oversized or external-data file, is "
        "refused in one line naming the node. Nothing in the file is run. Needs the onnx package: "
        "pip install 'convnp[onnx]'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX file to read")
    p.add_argument("out", metavar="OUT.npz", help="the checkpoint to write (replaced if it exists)")
    p.add_argument("--scale", type=positive_float, default=None,
                   help="factor from stored pixels to the network's input scale (default 1/255, or a convnp file's)")
    p.add_argument("--mean", metavar="M", type=float, nargs="+", default=None,
                   help="subtracted after scaling: one number, or one per channel (default 0)")
    p.add_argument("--std", metavar="S", type=positive_float, nargs="+", default=None,
                   help="divided by after subtracting the mean: one number, or one per channel (default 1)")
    p.add_argument("--classes", metavar="NAME", nargs="+", default=None,
                   help="the class names in output order: names, one comma-separated list, or a text file with one "
                   "name a line (default: a convnp file's, else 0 .. K-1)")
    p.set_defaults(run=run)


def class_names(values: list[str] | None) -> list[str] | None:
    """``--classes``: the names given, one comma-separated list, or the lines of one file."""
    if values is None:
        return None
    if len(values) == 1 and Path(values[0]).is_file():
        path = Path(values[0])
        if path.stat().st_size > MAX_CLASSES_FILE:
            raise ValueError(f"--classes: {path} is larger than {MAX_CLASSES_FILE:,} bytes; expected one name a line")
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        return [name for name in names if name]
    if len(values) == 1 and "," in values[0]:
        return [name.strip() for name in values[0].split(",")]
    return list(values)


def run(args) -> int:
    from convnp.onnx.load import load

    imported = load(args.model, scale=args.scale, mean=args.mean, std=args.std, classes=class_names(args.classes))
    path = imported.save(args.out)
    model, std = imported.model, imported.standardize
    print(model.summary())
    classes = imported.classes or [str(k) for k in range(model.shapes()[-1][0])]
    shown = ", ".join(classes[:10]) + (" ..." if len(classes) > 10 else "")
    print(f"{path}: input {tuple(model.input_shape)} (H, W, C), {len(classes)} classes ({shown})")
    print(f"preparation: (x * {std.scale:.6g} - mean {[round(m, 6) for m in std.mean]}) / std "
          f"{[round(s, 6) for s in std.std]}")
    for note in imported.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
