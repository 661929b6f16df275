"""Winograd's F(2x2, 3x3) for 3x3 convolutions, tried against convnp's im2col kernels and not kept: the trial.

    python benchmarks/winograd.py                              # check it, then time layers and whole steps
    python benchmarks/winograd.py --nets lenet-style --rounds 8 --skip-layers

The speed issue names Winograd's minimal filtering as a known route to fewer multiplications for 3x3
convolutions. This script holds a whole implementation (forward, weight and input gradients, channels-last, NumPy
only), checks it against :mod:`convnp.ops.reference`, and times it against the im2col kernels that convnp ships:

1. one layer's forward and backward, per image, for the 3x3 shapes of the zoo and of the LeNet-style network;
2. whole training and inference steps of ``bench.py``'s networks, alternating round by round between convnp as it
   is and convnp with every 3x3 stride-1 layer of at least ``--min-in-channels`` inputs computed here.

One thread, one BLAS thread. ``docs/performance.md`` ("Tried, measured, not kept") has the figures and the verdict.

The algorithm. Each 2x2 output tile comes from the 4x4 input tile ``d`` under it (tiles start every 2 pixels, so
they overlap by 2). For one input channel and filter with 3x3 kernel ``g``::

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise on 4x4 arrays)

with the constant matrices below (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
Summed over input channels the elementwise products become 16 matrix products, one per position ``(k, l)`` of a
4x4 transformed tile::

    V[k, l] = (B^T d B)[k, l] of every tile        (P tiles, C_in)      input_transform
    U[k, l] = (G g G^T)[k, l] of every filter      (C_in, C_out)        weight_transform
    M[k, l] = V[k, l] @ U[k, l]                    (P, C_out)
    Y       = A^T M A of every tile                                     output_transform

16 products where im2col makes 36 (2.25 times fewer multiplications). Backward runs the same steps transposed:
``dM = A dY A^T``; ``dU[k, l] = V[k, l]^T @ dM[k, l]``, folded back onto the kernel by ``G^T dU G``;
``dV[k, l] = dM[k, l] @ U[k, l]^T`` and ``dx = B dV B^T``, adding where tiles overlap.

``B_T`` and ``A_T`` hold only 0 and +-1, so the data transforms are additions: a pass along rows, then one along
columns, each four whole-array adds or subtracts. A pass along columns would read every other pixel in runs of
only ``C`` values, which NumPy loops over slowly, so the columns are first split into even and odd ones,
``(n, H, 2, W/2, C)``; every pass after that reads runs of whole tile rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # one thread, set before NumPy loads; a test importing this file keeps its own setting
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                 "CONVNP_NUM_THREADS"):
        os.environ[_var] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

# Scratch arrays kept between calls in a workspace dict, as convnp's own kernels keep theirs.
from convnp.ops.im2col import buffer  # noqa: E402
from convnp.ops.im2col import chunks as _chunks  # noqa: E402
from convnp.ops.per_channel import tiled  # noqa: E402
from convnp.ops.windows import pad_hw  # noqa: E402


#: Input transform: ``V = B^T d B`` for a 4x4 input tile ``d``.
B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
#: Kernel transform: ``U = G g G^T`` for a 3x3 kernel ``g``.
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
#: Output transform: the 2x2 output tile is ``A^T M A``.
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])


def weight_transform(weight: np.ndarray) -> np.ndarray:
    """``U[k, l] = (G g G^T)[k, l]`` for every channel pair: ``(3, 3, C_in, C_out)`` -> ``(4, 4, C_in, C_out)``."""
    g = G.astype(weight.dtype)
    return np.ascontiguousarray(np.einsum("ka,abcd,lb->klcd", g, weight, g))


def weight_transform_adjoint(dU: np.ndarray) -> np.ndarray:
    """The kernel gradient from ``dU``: ``G^T dU G`` for every channel pair, ``(4, 4, C_in, C_out)`` -> ``(3, 3,
    C_in, C_out)``."""
    g = G.astype(dU.dtype)
    return np.einsum("ka,klcd,lb->abcd", g, dU, g)


def _cut(a: np.ndarray, axis: int, start, stop) -> np.ndarray:
    """``a[..., start:stop, ...]`` along ``axis``, a view."""
    return a[(slice(None),) * axis + (slice(start, stop),)]


def _tile_starts_and_ends(even: np.ndarray, odd: np.ndarray, axis: int):
    """``even[t], even[t + 1], odd[t], odd[t + 1]`` for every tile ``t``: four views, ``T`` positions along ``axis``."""
    return _cut(even, axis, 0, -1), _cut(even, axis, 1, None), _cut(odd, axis, 0, -1), _cut(odd, axis, 1, None)


def _b_pass(even: np.ndarray, odd: np.ndarray, axis: int, out) -> None:
    """``B^T`` along one axis. Tile ``t`` covers positions ``2t .. 2t + 3``: ``even[t], odd[t], even[t + 1],
    odd[t + 1]`` (``T + 1`` positions each along ``axis``); ``out[0..3]`` get its four transformed values for every
    ``t < T``, the rows of ``B_T``."""
    e0, e1, o0, o1 = _tile_starts_and_ends(even, odd, axis)
    np.subtract(e0, e1, out=out[0])
    np.add(o0, e1, out=out[1])
    np.subtract(e1, o0, out=out[2])
    np.subtract(o0, o1, out=out[3])


def _b_pass_adjoint(d, even: np.ndarray, odd: np.ndarray, axis: int, scratch: np.ndarray) -> None:
    """The transpose of :func:`_b_pass`: writes ``even`` and ``odd`` from the gradients ``d[0..3]``, adding where a
    position belongs to two tiles (the last two of tile ``t`` are the first two of tile ``t + 1``)."""
    e0, e1, o0, o1 = _tile_starts_and_ends(even, odd, axis)
    np.copyto(e0, d[0])
    _cut(even, axis, -1, None)[...] = 0
    np.add(d[1], d[2], out=scratch)
    scratch -= d[0]
    e1 += scratch  # even[t + 1] gets -d0 + d1 + d2 of tile t
    np.subtract(d[1], d[2], out=o0)
    o0 += d[3]
    _cut(odd, axis, -1, None)[...] = 0
    o1 -= d[3]  # odd[t + 1] gets -d3 of tile t


def _a_pass(m, out) -> None:
    """``A^T`` along one axis: ``out[0] = m[0] + m[1] + m[2]``, ``out[1] = m[1] - m[2] - m[3]``."""
    np.add(m[0], m[1], out=out[0])
    out[0] += m[2]
    np.subtract(m[1], m[2], out=out[1])
    out[1] -= m[3]


def _a_pass_adjoint(y, out) -> None:
    """The transpose of :func:`_a_pass`: ``out[0..3] = y0, y0 + y1, y0 - y1, -y1``."""
    np.copyto(out[0], y[0])
    np.add(y[0], y[1], out=out[1])
    np.subtract(y[0], y[1], out=out[2])
    np.negative(y[1], out=out[3])


def input_transform(x_p: np.ndarray, workspace: dict | None = None) -> np.ndarray:
    """``V = B^T d B`` of every 4x4 input tile.

    Parameters
    ----------
    x_p : ndarray of shape `(n, 2T + 2, 2S + 2, C)`
        The padded input: ``T x S`` tiles, whose outputs are ``(2T, 2S)``.
    workspace : dict, optional

    Returns
    -------
    V : ndarray of shape `(4, 4, n, T, S, C)`
        ``V[k, l, s, t, u, :]`` is entry ``(k, l)`` of tile ``(t, u)`` of sample ``s``, every channel; an array
        of the workspace, overwritten by the next call.
    """
    n, H, W, C = x_p.shape
    T, S = (H - 2) // 2, (W - 2) // 2
    split = buffer(workspace, "wino_split", (n, H, 2, S + 1, C), x_p.dtype)  # [.., .., parity, column pair, ..]
    np.copyto(split, x_p.reshape(n, H, S + 1, 2, C).transpose(0, 1, 3, 2, 4))
    rows = buffer(workspace, "wino_rows", (4, n, T, 2, S + 1, C), x_p.dtype)  # B^T d: [k, n, t, parity, ..]
    _b_pass(split[:, 0::2], split[:, 1::2], 1, rows)
    V = buffer(workspace, "wino_V", (4, 4, n, T, S, C), x_p.dtype)
    _b_pass(rows[:, :, :, 0], rows[:, :, :, 1], 3, np.moveaxis(V, 1, 0))  # (B^T d) B: out[l] = V[:, l]
    return V


def input_transform_adjoint(dV: np.ndarray, dx_p: np.ndarray, workspace: dict | None = None) -> None:
    """Write ``dx_p``, ``(n, 2T + 2, 2S + 2, C)``, from ``dV``, ``(4, 4, n, T, S, C)``: ``B dV B^T`` of every tile,
    added where tiles overlap."""
    _, _, n, T, S, C = dV.shape
    H = 2 * T + 2
    rows = buffer(workspace, "wino_rows", (4, n, T, 2, S + 1, C), dV.dtype)
    _b_pass_adjoint(np.moveaxis(dV, 1, 0), rows[:, :, :, 0], rows[:, :, :, 1], 3,
                    buffer(workspace, "wino_scratch", (4, n, T, S, C), dV.dtype))
    split = buffer(workspace, "wino_split", (n, H, 2, S + 1, C), dV.dtype)
    _b_pass_adjoint(rows, split[:, 0::2], split[:, 1::2], 1,
                    buffer(workspace, "wino_scratch", (n, T, 2, S + 1, C), dV.dtype))
    np.copyto(dx_p.reshape(n, H, S + 1, 2, C), split.transpose(0, 1, 3, 2, 4))


def output_transform(M: np.ndarray, out: np.ndarray, workspace: dict | None = None) -> None:
    """Write ``out``, ``(n, 2T, 2S, C_out)``, from ``M``, ``(4, 4, n, T, S, C_out)``: ``A^T M A`` of every tile."""
    _, _, n, T, S, C = M.shape
    half = buffer(workspace, "wino_half", (2, 4, n, T, S, C), M.dtype)  # M A: [j, k, ..]
    _a_pass(np.moveaxis(M, 1, 0), half)
    tiles = out.reshape(n, T, 2, S, 2, C).transpose(2, 4, 0, 1, 3, 5)  # [i, j, n, t, u, c], a view of out
    _a_pass(np.moveaxis(half, 1, 0), tiles)


def output_transform_adjoint(dout: np.ndarray, workspace: dict | None = None) -> np.ndarray:
    """``dM = A dY A^T`` of every 2x2 tile of ``dout``, ``(n, 2T, 2S, C_out)`` -> ``(4, 4, n, T, S, C_out)``."""
    n, H, W, C = dout.shape
    T, S = H // 2, W // 2
    tiles = dout.reshape(n, T, 2, S, 2, C).transpose(2, 4, 0, 1, 3, 5)  # [i, j, n, t, u, c]
    half = buffer(workspace, "wino_half", (4, 2, n, T, S, C), dout.dtype)  # A dY: [k, j, ..]
    _a_pass_adjoint(tiles, half)
    dM = buffer(workspace, "wino_M", (4, 4, n, T, S, C), dout.dtype)
    _a_pass_adjoint(np.moveaxis(half, 1, 0), np.moveaxis(dM, 1, 0))  # (A dY) A^T: out[l] = dM[:, l]
    return dM


def forward_chunk(x_p: np.ndarray, U: np.ndarray, out: np.ndarray, workspace: dict | None = None) -> None:
    """Write the convolution of ``x_p``, ``(n, H_out + 2, W_out + 2, C_in)``, into ``out``, ``(n, H_out, W_out,
    C_out)``, with ``U = weight_transform(weight)`` (no bias)."""
    V = input_transform(x_p, workspace)  # (4, 4, n, T, S, C_in)
    _, _, n, T, S, C_in = V.shape
    C_out = U.shape[3]
    M = buffer(workspace, "wino_M", (4, 4, n, T, S, C_out), x_p.dtype)
    # 16 products (P, C_in) @ (C_in, C_out), P = n*T*S tiles
    np.matmul(V.reshape(16, n * T * S, C_in), U.reshape(16, C_in, C_out), out=M.reshape(16, n * T * S, C_out))
    output_transform(M, out, workspace)


def backward_chunk(dout: np.ndarray, x_p: np.ndarray, U: np.ndarray, dU: np.ndarray, dx_p: np.ndarray | None,
                   workspace: dict | None = None) -> None:
    """Gradients of :func:`forward_chunk` for one chunk: adds ``V^T dM`` to ``dU``, ``(4, 4, C_in, C_out)``, and
    writes ``dx_p``, ``(n, H_out + 2, W_out + 2, C_in)``, unless it is None.

    ``V`` is rebuilt from ``x_p`` rather than kept from the forward pass (as im2col's rows are, see
    :mod:`convnp.ops.conv`): keeping it would hold 2.25 times the input in memory across the step.
    """
    V = input_transform(x_p, workspace)  # (4, 4, n, T, S, C_in)
    dM = output_transform_adjoint(dout, workspace)  # (4, 4, n, T, S, C_out)
    _, _, n, T, S, C_in = V.shape
    C_out, P = U.shape[3], n * T * S
    V3, dM3 = V.reshape(16, P, C_in), dM.reshape(16, P, C_out)
    dU += np.matmul(V3.transpose(0, 2, 1), dM3).reshape(dU.shape)  # (16, C_in, C_out)
    if dx_p is None:
        return
    dV = buffer(workspace, "wino_dV", (4, 4, n, T, S, C_in), dout.dtype)
    np.matmul(dM3, U.reshape(16, C_in, C_out).transpose(0, 2, 1), out=dV.reshape(16, P, C_in))
    input_transform_adjoint(dV, dx_p, workspace)


# ---- whole layers: chunks of a batch, as convnp.ops.conv works through them -----------------------------------------
CHUNK_BYTES = 1 << 21  #: about this many bytes of products M per chunk, as convnp.ops.conv.CHUNK_BYTES of im2col


def fits(weight: np.ndarray, stride, x_shape, pads) -> bool:
    """A 3x3 kernel, stride 1 and an even output height and width."""
    (top, bottom), (left, right) = pads
    H_out, W_out = x_shape[1] + top + bottom - 2, x_shape[2] + left + right - 2
    return weight.shape[:2] == (3, 3) and tuple(stride) == (1, 1) and H_out % 2 == 0 and W_out % 2 == 0


def _chunk_ranges(n: int, H_out: int, W_out: int, C_out: int, itemsize: int) -> list:
    """``(start, stop)`` sample ranges of about :data:`CHUNK_BYTES` of products M (16 values per 4 outputs)."""
    return _chunks(n, 4 * H_out * W_out * C_out * itemsize, CHUNK_BYTES)


def conv_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, pads, workspace: dict | None = None):
    """Like :func:`convnp.ops.conv.conv2d_forward` with stride 1: ``(N, H, W, C_in)`` -> ``(N, H_out, W_out,
    C_out)``, and a cache for :func:`conv_backward`."""
    x_p = pad_hw(x, pads)  # (N, H_out + 2, W_out + 2, C_in)
    N, H_p, W_p, _ = x_p.shape
    C_out = weight.shape[3]
    out = np.empty((N, H_p - 2, W_p - 2, C_out), dtype=x.dtype)
    U = weight_transform(weight)  # (4, 4, C_in, C_out)
    for start, stop in _chunk_ranges(N, H_p - 2, W_p - 2, C_out, x.itemsize):
        forward_chunk(x_p[start:stop], U, out[start:stop], workspace)
    if bias is not None:  # one long row per sample, as convnp.ops.conv adds it
        out.reshape(N, -1)[...] += tiled(bias, out[0].size)
    return out, ("winograd", x_p, x.shape, U, bias is not None, pads, workspace)


def conv_backward(dout: np.ndarray, cache, input_grad: bool = True):
    """Like :func:`convnp.ops.conv.conv2d_backward`: ``dx`` (or None), ``dweight``, ``dbias`` (or None)."""
    _, x_p, x_shape, U, has_bias, ((top, _), (left, _)), workspace = cache
    N, H, W, _ = x_shape
    dU = np.zeros_like(U)  # summed over chunks
    dx_p = np.empty(x_p.shape, dtype=dout.dtype) if input_grad else None
    for start, stop in _chunk_ranges(N, *dout.shape[1:], dout.itemsize):
        chunk = slice(start, stop)
        backward_chunk(dout[chunk], x_p[chunk], U, dU, None if dx_p is None else dx_p[chunk], workspace)
    dout2d = dout.reshape(-1, dout.shape[3])
    dbias = np.ones(dout2d.shape[0], dtype=dout.dtype) @ dout2d if has_bias else None  # as convnp.ops.conv sums it
    dx = None if dx_p is None else dx_p[:, top : top + H, left : left + W]
    return dx, weight_transform_adjoint(dU), dbias


# ---- the trial ------------------------------------------------------------------------------------------------------
def check() -> dict:
    """The largest relative error against convnp.ops.reference over a few shapes, by dtype (float32, float64)."""
    from convnp.ops.reference import conv2d_backward_reference, conv2d_forward_reference

    rng, worst = np.random.default_rng(0), {}
    for dtype in (np.float32, np.float64):
        for n, H, W, C_in, C_out, pads in [(3, 26, 26, 32, 64, ((0, 0), (0, 0))),
                                           (2, 14, 10, 3, 5, ((1, 1), (1, 1))), (1, 7, 9, 2, 4, ((1, 0), (0, 1)))]:
            x = rng.standard_normal((n, H, W, C_in)).astype(dtype)
            weight = rng.standard_normal((3, 3, C_in, C_out)).astype(dtype)
            bias = rng.standard_normal(C_out).astype(dtype)
            out, cache = conv_forward(x, weight, bias, pads, {})
            ref, ref_cache = conv2d_forward_reference(x, weight, bias, (1, 1), pads)
            dout = rng.standard_normal(out.shape).astype(dtype)
            pairs = [(out, ref), *zip(conv_backward(dout, cache), conv2d_backward_reference(dout, ref_cache))]
            err = max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in pairs)
            worst[dtype] = max(worst.get(dtype, 0.0), err)
    return worst


def median_ms(fn, repeats: int) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` calls, after one warm-up call (that fills the buffers)."""
    fn()  # warm-up: buffers
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _layer_routes(x, weight, bias, dout) -> dict:
    """``{name: (forward, backward of a forward's cache)}`` for convnp's im2col kernels and this file's."""
    from convnp.ops.conv import conv2d_backward, conv2d_forward

    pads, ws_plain, ws_winograd = ((0, 0), (0, 0)), {}, {}
    return {
        "im2col": (lambda: conv2d_forward(x, weight, bias, (1, 1), pads, ws_plain),
                   lambda cache: conv2d_backward(dout, cache)),
        "winograd": (lambda: conv_forward(x, weight, bias, pads, ws_winograd),
                     lambda cache: conv_backward(dout, cache)),
    }


def time_layers(shapes, rounds: int, repeats: int = 20) -> list[str]:
    """Forward and backward of one layer per image, im2col against Winograd, alternating."""
    rng, lines = np.random.default_rng(0), []
    for H_out, C_in, C_out, n in shapes:
        x = rng.standard_normal((n, H_out + 2, H_out + 2, C_in)).astype(np.float32)
        weight = (0.1 * rng.standard_normal((3, 3, C_in, C_out))).astype(np.float32)
        dout = rng.standard_normal((n, H_out, H_out, C_out)).astype(np.float32)
        routes = _layer_routes(x, weight, np.zeros(C_out, np.float32), dout)
        samples = {name: ([], []) for name in routes}  # ms per image: forward, backward
        for _ in range(rounds):
            for name, (forward, backward) in routes.items():
                f = median_ms(forward, repeats)
                both = median_ms(lambda fwd=forward, bwd=backward: bwd(fwd()[1]), repeats)
                samples[name][0].append(f / n)
                samples[name][1].append((both - f) / n)
        (fa, ba), (fb, bb) = ([statistics.median(v) for v in samples[k]] for k in routes)
        lines.append(f"| {C_in} -> {C_out}, {H_out}x{H_out} out, {n} images | {fa:.3f} + {ba:.3f} | "
                     f"{fb:.3f} + {bb:.3f} | {(fb + bb) / (fa + ba):.2f} |")
    return lines


class Route:
    """Sends every qualifying Conv2D of convnp through this file's kernels while ``on`` is true."""

    def __init__(self, min_in_channels: int):
        import convnp.layers.conv as layer_module

        self.module, self.min_in_channels, self.on = layer_module, min_in_channels, False
        self.plain = (layer_module.conv2d_forward, layer_module.conv2d_backward)
        layer_module.conv2d_forward, layer_module.conv2d_backward = self.forward, self.backward

    def forward(self, x, weight, bias, stride, pads, workspace=None):
        if self.on and weight.shape[2] >= self.min_in_channels and fits(weight, stride, x.shape, pads):
            return conv_forward(x, weight, bias, pads, workspace)
        return self.plain[0](x, weight, bias, stride, pads, workspace)

    def backward(self, dout, cache, input_grad=True):
        if isinstance(cache, tuple) and isinstance(cache[0], str):
            return conv_backward(dout, cache, input_grad)
        return self.plain[1](dout, cache, input_grad)

    def undo(self) -> None:
        """Give convnp its own kernels back."""
        self.module.conv2d_forward, self.module.conv2d_backward = self.plain


def time_steps(nets, batch: int, rounds: int, min_in_channels: int) -> list[str]:
    """Whole training and inference steps (bench.py's), convnp as shipped against Winograd, alternating."""
    from bench import convnp_steps

    route, lines = Route(min_in_channels), []
    for name in nets:
        steps = {}
        for on in (False, True):  # separate models, so that each keeps its own buffers
            route.on = on
            steps[on] = convnp_steps(name, batch, 1)
        samples = {(on, kind): [] for on in (False, True) for kind in (0, 1)}
        for _ in range(rounds):
            for on in (False, True):
                route.on = on
                for kind in (0, 1):
                    samples[on, kind].append(median_ms(steps[on][kind], 3))
        med = {key: statistics.median(v) for key, v in samples.items()}
        per_round = [w / p for w, p in zip(samples[True, 0], samples[False, 0])]
        lines.append(f"| {name} | {batch} | {med[False, 0]:.1f} | {med[True, 0]:.1f} | "
                     f"{med[True, 0] / med[False, 0]:.2f} ({min(per_round):.2f}-{max(per_round):.2f}) | "
                     f"{med[False, 1]:.1f} | {med[True, 1]:.1f} | {med[True, 1] / med[False, 1]:.2f} |")
    route.undo()
    return lines


LAYER_SHAPES = [  # (output size, C_in, C_out, images): the zoo's and the LeNet-style net's multi-channel 3x3 layers
    (24, 32, 64, 8),  # LeNet-style and convnet: 26x26x32 -> 24x24x64
    (28, 16, 16, 8),  # best: "same" on 28x28
    (14, 16, 32, 16),  # best, after the first pool
    (14, 32, 32, 16),
    (12, 32, 64, 16),
]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", nargs="+", default=["lenet-style", "convnet", "best"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=6, help="alternations of the two routes")
    p.add_argument("--min-in-channels", type=int, default=16,
                   help="whole steps: route 3x3 layers with this many input channels or more")
    p.add_argument("--skip-layers", action="store_true", help="only whole steps")
    args = p.parse_args(argv)

    from convnp.parallel.malloc import keep_freed_memory

    keep_freed_memory()
    errors = check()
    print("largest relative error against convnp.ops.reference: "
          + ", ".join(f"{np.dtype(k).name} {v:.1e}" for k, v in errors.items()))
    if not args.skip_layers:
        print("\n| layer | im2col fwd + bwd ms per image | Winograd fwd + bwd | Winograd / im2col |\n|---|---|---|---|")
        for line in time_layers(LAYER_SHAPES, args.rounds):
            print(line, flush=True)
    print(f"\nWhole steps, one thread; Winograd for 3x3 stride-1 layers with {args.min_in_channels}+ input channels.\n")
    print("| net | batch | train ms, im2col | Winograd | ratio (rounds) | infer ms, im2col | Winograd | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for line in time_steps(args.nets, args.batch, args.rounds, args.min_in_channels):
        print(line, flush=True)


if __name__ == "__main__":
    main()
