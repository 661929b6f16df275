#!/usr/bin/env bash
# Set up .venv, then train the seed notebook's network on the 60k MNIST training images and print the test
# accuracy on the 10k test images. Extra arguments go to `convnp train` (see `convnp train --help`).
source "$(dirname "$0")/_venv.sh" ""
exec .venv/bin/convnp train "$@"
