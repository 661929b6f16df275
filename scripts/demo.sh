#!/usr/bin/env bash
# Set up .venv, then train the seed notebook's network on all 60k MNIST training images (no validation hold-out)
# and print the test accuracy on the 10k test images. Extra arguments go to `convnp train` (see its --help).
source "$(dirname "$0")/_venv.sh" ""
exec .venv/bin/convnp train --val-split 0 "$@"
