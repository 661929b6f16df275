"""``convnp predict``: classify image files with a saved model, one line (or one JSON entry) per file."""

from __future__ import annotations

import argparse
import functools
import json
import sys

import numpy as np

from convnp.checkpoint import load_checkpoint
from convnp.cli._args import add_threads, positive_int
from convnp.errors import DataError
from convnp.ops.activations import softmax

# Models taking this input are treated as MNIST digit classifiers: files are prepared as MNIST's digits were.
MNIST_SHAPE = (28, 28, 1)


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "predict",
        help="classify image files (PNG, JPEG, .npy, ...) with a saved model",
        description="Load a checkpoint (a .npz file, or a run folder: its best.npz, else last.npz) and print, for "
        "each FILE, the predicted class, its probability and the top-K classes. For a model taking 28x28x1 "
        "inputs, each file is prepared as MNIST's digits were: dark-on-light images are inverted, the digit is "
        "cropped, scaled into a 20x20 box and centred by its centre of mass. For other models, images are resized "
        "to the model's input. A file that cannot be read (or holds no digit) is reported on stderr and skipped; "
        "the others are still classified, and the exit code is 1 if any file failed. Needs Pillow "
        "(pip install 'convnp[image]').",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file (.npz) or run folder")
    p.add_argument("files", metavar="FILE", nargs="+",
                   help="image files (anything Pillow reads) or .npy arrays (H, W[, C]) of pixels 0..255 or 0..1")
    p.add_argument("--top", metavar="K", type=positive_int, default=3,
                   help="how many of the most probable classes to list per file (1 to the number of classes)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON list: per file its label, all class probabilities and the top K "
                   "(files that failed carry an 'error' instead)")
    add_threads(p)
    p.set_defaults(run=run)


def _n_classes(model, input_shape: tuple) -> int:
    """How many classes the model scores, read from its output shape (no forward pass needed)."""
    out = model.shapes(input_shape)[-1]
    if len(out) != 1:
        raise ValueError(f"the checkpoint's model outputs shape {out} per image, expected (K,) class scores")
    return int(out[0])


def _to_stored_scale(x: np.ndarray, standardize) -> np.ndarray:
    """Pixels 0..255 -> the scale the model's training images were stored in, which ``prepare`` expects.

    ``scale`` is 1/255 for uint8 training images. It is 1 for float images, which were either in [0, 1] (their
    per-channel means are then at most 1) or already 0..255.
    """
    if standardize.scale == 1.0 and max(standardize.mean) <= 1.0:
        return x / 255.0
    return x


def run(args) -> int:
    from convnp.data.images import load_digits, load_images

    checkpoint = load_checkpoint(args.checkpoint)
    model = checkpoint.model
    input_shape = tuple(model.input_shape) if model.input_shape else MNIST_SHAPE
    n_classes = _n_classes(model, input_shape)
    if args.top > n_classes:
        raise ValueError(f"--top must be between 1 and the model's {n_classes} classes, got --top {args.top}")
    load = load_digits if input_shape == MNIST_SHAPE else functools.partial(load_images, input_shape=input_shape)

    # Each file alone, so one bad file is reported and the rest still get their answer.
    images, errors = {}, {}
    for path in args.files:
        try:
            images[path] = load([path])[0]  # (H, W, C), 0..255
        except (DataError, OSError) as err:
            errors[path] = str(err)
            print(f"convnp: error: {err}", file=sys.stderr)

    probabilities = {}
    if images:
        batch = np.stack(list(images.values()))  # (N, H, W, C)
        inputs = checkpoint.prepare(_to_stored_scale(batch, checkpoint.standardize))
        probs = softmax(model.predict(inputs, threads=args.threads).astype(np.float64), axis=1)  # (N, K)
        probabilities = dict(zip(images, probs))

    results = []
    for path in args.files:
        if path in errors:
            results.append({"file": path, "error": errors[path]})
            continue
        p = probabilities[path]
        order = np.argsort(-p, kind="stable")[: args.top]
        results.append({
            "file": path,
            "label": int(order[0]),
            "probabilities": [float(v) for v in p],
            "top": [[int(k), float(p[k])] for k in order],
        })

    if args.json:
        print(json.dumps(results, allow_nan=False))
    else:
        for r in results:
            if "error" not in r:
                top = "  ".join(f"{k}: {v:.3f}" for k, v in r["top"])
                print(f"{r['file']}: {r['label']}  (p={r['top'][0][1]:.3f})  {top}")
    if errors:
        if len(args.files) > 1:  # with one file, its own error line already says it all
            n_failed = sum(path in errors for path in args.files)
            print(f"convnp: {n_failed} of {len(args.files)} files could not be classified", file=sys.stderr)
        return 1
    return 0
