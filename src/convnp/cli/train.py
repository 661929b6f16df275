"""``convnp train``: train a zoo model on MNIST with mini-batch SGD and report the test accuracy."""

from __future__ import annotations

import argparse
import time

import numpy as np

from convnp.cli._args import add_mnist_dir, positive_float, positive_int, unit_float
from convnp.data import load_mnist
from convnp.data.transforms import to_float_images
from convnp.models import MODELS, get_model
from convnp.optim import SGD
from convnp.train import evaluate, fit


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model on MNIST and print its test accuracy",
        description="Train a model from the zoo on the 60,000 MNIST training images with mini-batch SGD, "
        "then print its accuracy on the 10,000 test images.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument("--model", choices=sorted(MODELS), default="notebook", help="network to train")
    p.add_argument("--epochs", type=positive_int, default=5, help="passes over the training set")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per gradient step")
    p.add_argument("--lr", type=positive_float, default=0.02, help="learning rate")
    p.add_argument("--momentum", type=unit_float, default=0.9, help="SGD momentum (0 for plain SGD)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the batch order")
    p.add_argument("--limit", type=positive_int, default=None, help="train on the first N training images only")
    add_mnist_dir(p)
    p.set_defaults(run=run)


def run(args) -> int:
    x_train, y_train, x_test, y_test = load_mnist(args.mnist_dir)
    if args.limit is not None:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    rng = np.random.default_rng(args.seed)
    model = get_model(args.model, rng=rng)
    print(model.summary())
    print(f"training on {len(x_train):,} MNIST images for {args.epochs} epoch(s), batch {args.batch_size}, "
          f"SGD lr {args.lr} momentum {args.momentum}, seed {args.seed}", flush=True)
    x_train_f, x_test_f = to_float_images(x_train), to_float_images(x_test)
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    start = time.perf_counter()
    fit(
        model,
        x_train_f,
        y_train,
        optimizer=SGD(args.lr, momentum=args.momentum),
        epochs=args.epochs,
        batch_size=args.batch_size,
        rng=rng,
        callbacks=[_EpochPrinter(args.epochs, len(x_train))],
    )
    result = evaluate(model, x_test_f, y_test)
    print(f"test accuracy: {result['accuracy'] * 100:.2f}% on {len(y_test):,} MNIST test images "
          f"(loss {result['loss']:.4f}; trained in {time.perf_counter() - start:.1f} s)")
    return 0


class _EpochPrinter:
    """One line per epoch: loss, accuracy, time and throughput."""

    def __init__(self, epochs: int, n_samples: int):
        self.epochs, self.n_samples = epochs, n_samples

    def on_epoch_end(self, epoch, logs):
        print(f"epoch {epoch + 1}/{self.epochs}  loss {logs['loss']:.4f}  accuracy {logs['accuracy'] * 100:.2f}%  "
              f"{logs['time']:.1f} s ({self.n_samples / logs['time']:,.0f} images/s)", flush=True)
