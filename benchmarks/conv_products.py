"""The matrix products of the zoo's convolutions alone, as convnp's kernels make them: a floor under each layer.

    python benchmarks/conv_products.py               # batch 128, one thread
    python benchmarks/conv_products.py --batch 64

For each convolution it times the three products of a training step, chunk by chunk on matrices already in cache,
with the shapes and routines :mod:`convnp.ops.conv` uses (row blocks where :mod:`convnp.ops.gemm` takes them): the
forward product, the weight gradient and the input gradient. Building the im2col matrices, padding and every other
copy are left out, so the sum is what the layer would cost if those copies were free. Set beside PyTorch's whole
layer (``profile_layers.py --torch``), it says whether any im2col kernel could match it. One thread, one BLAS thread.
"""

from __future__ import annotations

import argparse
import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

from convnp.ops.conv import shared_route  # noqa: E402
from convnp.ops.conv_rows import group_width  # noqa: E402
from convnp.ops.gemm import matmul_blocks, matmul_tn  # noqa: E402
from convnp.ops.im2col import CHUNK_BYTES, chunks  # noqa: E402
from winograd import median_ms  # noqa: E402 - the sibling benchmark's timing loop

#: Calls timed per product, after a warm-up call.
REPEATS = 7

#: (network and layer, input side, output side, in channels, out channels, kernel side): the zoo's multi-channel
#: convolutions, square maps, stride 1.
LAYERS = [
    ("best 16 -> 16", 28, 28, 16, 16, 3),
    ("best 16 -> 32", 14, 14, 16, 32, 3),
    ("best 32 -> 32", 14, 14, 32, 32, 3),
    ("convnet / LeNet-style 32 -> 64", 26, 24, 32, 64, 3),
    ("lenet5 6 -> 16", 14, 10, 6, 16, 5),
]


def chunked(batch: int, positions: int, K: int, N: int, product, rng) -> float:
    """Milliseconds for ``product(a, b, out)`` on every chunk of a batch, ``a`` being one chunk's rows
    ``(n*positions, K)`` (the same matrix each time, so in cache) and ``b`` ``(K, N)``."""
    parts = chunks(batch, positions * K * 4, CHUNK_BYTES)
    n = parts[0][1] - parts[0][0]
    a = rng.standard_normal((n * positions, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    # Random, not np.empty: a weight gradient reads it (as dout), and leftover bytes can be slow denormals.
    out = rng.standard_normal((n * positions, N), dtype=np.float32)
    return median_ms(lambda: [product(a, b, out) for _ in parts], REPEATS)


def layer_products(batch: int, H_in: int, H_out: int, C_in: int, C_out: int, k: int, rng) -> tuple:
    """``(forward, weight gradient, input gradient)`` milliseconds of one layer's products at ``batch``."""
    workspace: dict = {}
    forward = chunked(batch, H_out * H_out, k * k * C_in, C_out, matmul_blocks, rng)
    if shared_route(C_in, (1, 1), 1, (H_in, H_in), (H_out, H_out)):
        # Both gradients from the padded dout's matrix D, (n*H*W, k*k*C_out): D @ w_flip and D.T @ x.
        input_grad = chunked(batch, H_in * H_in, k * k * C_out, C_in, matmul_blocks, rng)
        weight_grad = chunked(batch, H_in * H_in, k * k * C_out, C_in,
                              lambda a, b, out: matmul_tn(a, out, b, workspace), rng)
    else:
        weight_grad = chunked(batch, H_out * H_out, k * k * C_in, C_out,
                              lambda a, b, out: matmul_tn(a, out, b, workspace), rng)
        # Row groups (convnp.ops.conv_rows): (n*H_out*H_out/G, G*C_out) @ (G*C_out, k*Wg*C_in)
        G = group_width(H_out, C_out, k, 1)
        input_grad = chunked(batch, H_out * H_out // G, G * C_out, k * (G - 1 + k) * C_in,
                             lambda a, b, out: np.matmul(a, b, out=out), rng)
    return forward, weight_grad, input_grad


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"Products alone, batch {args.batch}, one thread, chunks of {CHUNK_BYTES >> 10} KiB of im2col rows")
    print()
    print("| layer | forward ms | weight gradient ms | input gradient ms | sum ms |")
    print("|---|---|---|---|---|")
    for name, *shape in LAYERS:
        times = layer_products(args.batch, *shape, rng)
        print(f"| {name} | " + " | ".join(f"{t:.1f}" for t in times) + f" | {sum(times):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
