"""``convnp evaluate``: a saved model's accuracy, loss, per-class precision/recall and confusion matrix on data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from convnp.checkpoint import load_checkpoint
from convnp.cli._args import add_mnist_dir, add_threads, positive_int, unit_float
from convnp.data.datasets import load_dataset
from convnp.inference import Classifier
from convnp.losses import SoftmaxCrossEntropy
from convnp.metrics import classification_report, format_confusion, format_per_class, top_k_accuracy

#: Top-5 accuracy is reported for models of more classes than this.
TOP_K = 5


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="measure a saved model on a data set: accuracy, loss, per-class table, confusion matrix",
        description="Load a checkpoint (a .npz file, or a run folder: its best.npz, else last.npz), prepare the "
        "images as the model was trained, and report accuracy (and top-5 accuracy, for more than 5 classes), mean "
        "cross-entropy loss, per-class support, precision and recall, and the confusion matrix (rows: true class, "
        "columns: predicted class), classes named as the checkpoint names them.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="checkpoint file (.npz), run folder, or a pretrained model's name (mnist-best: convnp models)")
    p.add_argument("--data", metavar="mnist|PATH.npz|DIR", default="mnist",
                   help="data set: 'mnist', an .npz file with x/y (or x_train/y_train) and optionally x_test/y_test, "
                   "or a folder of images with one sub-folder per class (or train/ and test/ holding them), "
                   "resized to the model's input")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="which part of the data set to evaluate on (for an .npz, 'train' is its x/y arrays)")
    p.add_argument("--test-split", metavar="F", type=unit_float, default=None,
                   help="for a folder without test/: the fraction of its images held out as the test split, as "
                   "`convnp train --test-split F` held it out (default: the checkpoint's run's, when it trained on "
                   "the same folder, else none)")
    p.add_argument("--batch-size", type=positive_int, default=1000,
                   help="images per forward pass (bounds memory, does not change the results)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    add_mnist_dir(p)
    add_threads(p)
    p.set_defaults(run=run)


def _load(args, checkpoint):
    """The data set to evaluate on. A folder's images are brought to the model's input size and channels; its
    held-out test split is ``--test-split``, else the one the checkpoint's run trained with on the same folder."""
    if not Path(args.data).is_dir():
        return load_dataset(args.data, mnist_dir=args.mnist_dir)
    shape = checkpoint.model.input_shape  # (H, W, C), or None: a folder's images are brought to it
    fit = {"image_size": shape[:2], "channels": shape[2]} if shape and len(shape) == 3 and shape[2] in (1, 3) else {}
    test_split = args.test_split
    if test_split is None:
        trained = checkpoint.meta.get("train_config") or {}
        same = Path(str(trained.get("data", ""))).resolve() == Path(args.data).resolve()
        test_split = float(trained.get("test_split") or 0.0) if same else 0.0
    return load_dataset(args.data, mnist_dir=args.mnist_dir, progress=sys.stderr, test_split=test_split, **fit)


def _logits(classifier, x, batch_size: int) -> np.ndarray:
    """The model's logits `(N, K)` for stored images ``x`` `(N, H, W, C)`, prepared a batch at a time: a folder's
    images are read from their memory-mapped cache only as they are needed."""
    parts = [classifier.forward(classifier.prepare(x[i:i + batch_size], stored=True))
             for i in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, classifier.n_classes), dtype=np.float32)


def _split(dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The images ``(N, H, W, C)`` and labels ``(N,)`` of ``split``; a clear error if the data set lacks it."""
    if split == "train":
        return dataset.x_train, dataset.y_train
    if dataset.x_test is None:
        where = "(test/ beside train/)" if Path(dataset.name).is_dir() else "(arrays x_test and y_test)"
        raise ValueError(
            f"{dataset.name}: has no test split {where}; pass --split train to evaluate on its "
            f"{'images, or the --test-split F it was trained with' if Path(dataset.name).is_dir() else 'x/y arrays'}"
        )
    return dataset.x_test, dataset.y_test


def _by_name(y: np.ndarray, data_classes: list[str], model_classes: list[str], data_name: str) -> np.ndarray:
    """Labels ``(N,)`` numbered by the data set's class names, renumbered by the model's names.

    Labels stay as they are when the data's names agree with the model's (or are plain indices ``"0" ..``); data
    named in another order are renumbered; a data class the model does not know is refused in one line.
    """
    if data_classes == model_classes[: len(data_classes)] or data_classes == [str(i) for i in range(len(data_classes))]:
        return y
    index = {name: i for i, name in enumerate(model_classes)}
    unknown = [name for name in data_classes if name not in index]
    if unknown:
        raise ValueError(f"{data_name}: class {unknown[0]!r} is not one of the checkpoint's {len(model_classes)} "
                         f"classes {model_classes[:10]}{' ...' if len(model_classes) > 10 else ''}; is this the "
                         "data set it was trained on?")
    return np.array([index[name] for name in data_classes], dtype=np.int64)[y]


def run(args) -> int:
    checkpoint = load_checkpoint(args.checkpoint)
    dataset = _load(args, checkpoint)
    x, y = _split(dataset, args.split)
    data_name = f"{dataset.name} ({args.split} split)"
    # A model built without an input shape takes the data set's.
    input_shape = None if checkpoint.model.input_shape else x.shape[1:]
    classifier = Classifier.from_checkpoint(checkpoint, input_shape=input_shape, threads=args.threads)
    classifier.prepare(x[:1], stored=True)  # refuses images of the wrong shape before anything else
    n_classes = classifier.n_classes
    y = _by_name(y, dataset.classes, list(classifier.class_names), data_name)
    # Check the labels before the forward pass, so a mismatched data set fails at once.
    if y.size and int(y.max()) >= n_classes:
        n_bad = int(np.count_nonzero(y >= n_classes))
        raise ValueError(
            f"{data_name}: labels go up to {int(y.max())} ({n_bad} out of range) but the checkpoint's model "
            f"predicts {n_classes} classes (0-{n_classes - 1}); is this the data set it was trained on?"
        )

    logits = _logits(classifier, x, args.batch_size)  # (N, K)
    loss = SoftmaxCrossEntropy().forward(logits, y)
    report = classification_report(y, logits.argmax(axis=1), n_classes=n_classes)
    names = list(classifier.class_names)  # the checkpoint's class names, "0" .. "K-1" without them
    top5 = top_k_accuracy(logits, y, TOP_K) if n_classes > TOP_K else None

    if args.json:
        result = {
            "checkpoint": str(checkpoint.path),
            "data": dataset.name,
            "split": args.split,
            "n_samples": report["n_samples"],
            "accuracy": report["accuracy"],
            **({"top5_accuracy": top5} if top5 is not None else {}),
            "loss": loss,
            "classes": names,
            "per_class": [{**row, "name": name} for row, name in zip(report["per_class"], names)],
            "confusion": report["confusion"].tolist(),
        }
        # allow_nan=False: a non-finite loss is an error to report, not invalid JSON to emit.
        print(json.dumps(result, allow_nan=False))
        return 0

    model_name = checkpoint.meta.get("model_name")
    print(f"checkpoint: {checkpoint.path}" + (f" (model {model_name})" if model_name else ""))
    print(f"data: {data_name}, {report['n_samples']:,} images")
    print(f"accuracy: {report['accuracy'] * 100:.2f}%")
    print(f"loss: {loss:.4f} (mean cross-entropy)")
    if top5 is not None:
        print(f"top-{TOP_K} accuracy: {top5 * 100:.2f}%")
    print()
    print("per class:")
    print(format_per_class(report, names))
    print()
    print("confusion matrix (rows: true class, columns: predicted class):")
    print(format_confusion(report["confusion"], names))
    return 0
