"""benchmarks/conv_products.py, the floor under each convolution that docs/performance.md cites: it times the
routes convnp's kernels take for each layer, and prints one row per layer."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from convnp.ops.conv import shared_route

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import conv_products  # noqa: E402


def test_every_layer_takes_the_route_its_convolution_takes():
    routes = {name: shared_route(c_in, (1, 1), 1, (h_in, h_in), (h_out, h_out))
              for name, h_in, h_out, c_in, _, _ in conv_products.LAYERS}
    assert routes == {"best 16 -> 16": True, "best 16 -> 32": True, "best 32 -> 32": True,
                      "convnet / LeNet-style 32 -> 64": False, "lenet5 6 -> 16": False}


def test_a_small_run_times_three_products_per_layer(capsys):
    rng = np.random.default_rng(0)
    for _, *shape in conv_products.LAYERS:
        times = conv_products.layer_products(2, *shape, rng)
        assert len(times) == 3 and all(t > 0 for t in times)
    assert conv_products.main(["--batch", "2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "ms" not in line]
    assert [row.split(" | ")[0][2:] for row in rows] == [name for name, *_ in conv_products.LAYERS]
    for row in rows:
        *parts, total = (float(v) for v in row.strip("| ").split(" | ")[1:])
        assert abs(sum(parts) - total) <= 0.15  # the sum of the three, each rounded to 0.1 ms
