"""The fast kernels against the plain reference kernels in convnp.ops.reference, on random configurations."""

import numpy as np
import pytest

from convnp.ops.conv import CHUNK_BYTES, conv2d_backward, conv2d_forward, im2col, im2col_transposed
from convnp.ops.conv_blocked import block_weight, block_width, fold_block_grad
from convnp.ops.pool import maxpool2d_backward, maxpool2d_forward
from convnp.ops.reference import (
    conv2d_backward_reference,
    conv2d_forward_reference,
    maxpool2d_backward_reference,
    maxpool2d_forward_reference,
)
from convnp.ops.windows import resolve_padding, sliding_windows


def _conv_case(seed):
    rng = np.random.default_rng(seed)
    N, C_in, C_out = rng.integers(1, 6), int(rng.choice([1, 2, 3, 8, 12])), rng.integers(1, 6)
    kH, kW = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    H, W = int(rng.integers(kH + 1, 13)), int(rng.integers(kW + 1, 13))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = [0, 1, (2, 1), "same", "valid"][seed % 5]
    pads = resolve_padding(padding if isinstance(padding, str) else (padding, padding) if isinstance(padding, int)
                           else padding, (kH, kW), stride, (H, W))
    x = rng.standard_normal((N, H, W, C_in))
    weight = rng.standard_normal((kH, kW, C_in, C_out))
    bias = rng.standard_normal(C_out) if seed % 2 else None
    return rng, x, weight, bias, stride, pads


@pytest.mark.parametrize("chunk_bytes", [1, 700, CHUNK_BYTES])  # one sample per chunk, uneven chunks, whole batch
@pytest.mark.parametrize("seed", range(30))
def test_conv_fast_matches_reference(seed, chunk_bytes):
    rng, x, weight, bias, stride, pads = _conv_case(seed)
    workspace = {}
    for _ in range(2):  # the second call reuses the im2col buffer
        out, cache = conv2d_forward(x, weight, bias, stride, pads, workspace, chunk_bytes=chunk_bytes)
        ref, ref_cache = conv2d_forward_reference(x, weight, bias, stride, pads)
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12, err_msg=f"forward, seed {seed}")
        dout = rng.standard_normal(out.shape)
        fast = conv2d_backward(dout, cache)
        slow = conv2d_backward_reference(dout, ref_cache)
        for name, a, b in zip(("dx", "dweight", "dbias"), fast, slow):
            if b is None:
                assert a is None
            else:
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"{name}, seed {seed}")
    dx, dweight, _ = conv2d_backward(dout, cache, input_grad=False)
    assert dx is None and np.allclose(dweight, slow[1])


@pytest.mark.parametrize("chunk_bytes", [1, 700, CHUNK_BYTES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, hw, kernel, c_out, padding, block", [
    (3, (28, 28), (5, 5), 16, "same", 4),  # sprint's first layer, by the rule
    (2, (28, 28), (5, 5), 6, "same", 2),  # lenet5's, with another block
    (2, (9, 12), (3, 3), 5, "valid", 2),
    (4, (7, 10), (2, 3), 3, 1, 5),  # odd block, uneven kernel
    (1, (6, 8), (1, 1), 2, 0, 8),  # the whole row at once
])
def test_blocked_one_channel_conv_matches_reference(n, hw, kernel, c_out, padding, block, dtype, chunk_bytes):
    rng = np.random.default_rng(block)
    x = rng.standard_normal((n, *hw, 1)).astype(dtype)
    weight, bias = rng.standard_normal((*kernel, 1, c_out)).astype(dtype), rng.standard_normal(c_out).astype(dtype)
    pads = resolve_padding(padding if isinstance(padding, str) else (padding, padding), kernel, (1, 1), hw)
    out, cache = conv2d_forward(x, weight, bias, (1, 1), pads, {}, chunk_bytes=chunk_bytes, block=block)
    assert cache.block == block
    ref, ref_cache = conv2d_forward_reference(x, weight, bias, (1, 1), pads)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    dout = rng.standard_normal(out.shape).astype(dtype)
    fast, slow = conv2d_backward(dout, cache), conv2d_backward_reference(dout, ref_cache)
    for name, a, b in zip(("dx", "dweight", "dbias"), fast, slow):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 10, err_msg=name)


def test_block_width_rule():
    assert block_width(1, 16, (5, 5), (1, 1), 28) == 4  # sprint's first layer
    assert block_width(1, 6, (5, 5), (1, 1), 28) == 4  # lenet5's
    assert block_width(1, 6, (5, 5), (1, 1), 26) == 2  # 4 does not divide 26
    assert block_width(1, 32, (5, 5), (1, 1), 28) == 2  # at most 64 product columns
    assert block_width(1, 16, (3, 3), (1, 1), 28) == 1  # best's: 3-wide kernels gained nothing
    assert block_width(1, 8, (3, 3), (1, 1), 26) == 1  # the notebook's
    assert block_width(2, 16, (5, 5), (1, 1), 28) == 1 and block_width(1, 16, (5, 5), (2, 2), 28) == 1
    assert block_width(1, 16, (5, 5), (1, 1), 27) == 1 and block_width(1, 128, (5, 5), (1, 1), 28) == 1


def test_blocked_weight_folds_back_to_the_kernel():
    weight = np.random.default_rng(0).standard_normal((3, 5, 1, 4))
    blocked = block_weight(weight, 3)  # (3 * 7, 3 * 4), each kernel entry in 3 places
    assert blocked.shape == (21, 12) and np.count_nonzero(blocked) == 3 * weight.size
    np.testing.assert_array_equal(fold_block_grad(blocked, (3, 5), 3), 3 * weight)


@pytest.mark.parametrize("block, why", [(3, "divisor of the output width 28"), (0, "block must be 1")])
def test_block_that_does_not_fit_is_refused(block, why):
    x, weight = np.zeros((1, 28, 28, 1)), np.zeros((5, 5, 1, 4))
    with pytest.raises(ValueError, match=why):
        conv2d_forward(x, weight, None, (1, 1), ((2, 2), (2, 2)), block=block)
    with pytest.raises(ValueError, match="got block=2 with 3 input channel"):
        conv2d_forward(np.zeros((1, 8, 8, 3)), np.zeros((3, 3, 3, 4)), None, (1, 1), ((0, 0), (0, 0)), block=2)


@pytest.mark.parametrize("channels", [1, 3, 8, 16])
def test_im2col_rows_are_the_windows(channels):
    x = np.random.default_rng(channels).standard_normal((2, 7, 6, channels)).astype(np.float32)
    cols = im2col(x, (3, 2), (2, 1))
    expected = sliding_windows(x, (3, 2), (2, 1)).reshape(cols.shape)
    np.testing.assert_array_equal(cols, expected)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("stride", [(1, 1), (2, 1), (2, 3)])
def test_im2col_transposed_is_the_transpose_of_im2col(channels, stride):
    x = np.random.default_rng(channels).standard_normal((3, 9, 8, channels)).astype(np.float32)
    workspace = {}
    for _ in range(2):  # the second call reuses the buffer
        np.testing.assert_array_equal(im2col_transposed(x, (3, 2), stride, workspace), im2col(x, (3, 2), stride).T)


def _pool_cases():
    rng = np.random.default_rng(0)
    cases = []
    for seed in range(40):
        kH, kW = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        tiled = seed % 2 == 0
        stride = (kH, kW) if tiled else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        H, W = int(rng.integers(kH, 12)), int(rng.integers(kW, 12))
        shape = (int(rng.integers(1, 4)), H, W, int(rng.integers(1, 10)))
        ties = seed % 4 < 2  # small integers: many tied maxima
        cases.append((seed, shape, (kH, kW), stride, ties))
    return cases


@pytest.mark.parametrize("seed, shape, kernel, stride, ties", _pool_cases())
def test_maxpool_fast_matches_reference(seed, shape, kernel, stride, ties):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, shape).astype(np.float32) if ties else rng.standard_normal(shape).astype(np.float32)
    out, cache = maxpool2d_forward(x, kernel, stride)
    ref, ref_cache = maxpool2d_forward_reference(x, kernel, stride)
    np.testing.assert_array_equal(out, ref)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_array_equal(maxpool2d_backward(dout, cache), maxpool2d_backward_reference(dout, ref_cache),
                                  err_msg=f"kernel {kernel} stride {stride} ties {ties}")


def test_maxpool_tiled_crops_uncovered_border():
    x = np.arange(2 * 5 * 7 * 3, dtype=np.float64).reshape(2, 5, 7, 3)
    out, cache = maxpool2d_forward(x, (2, 2), (2, 2))
    assert out.shape == (2, 2, 3, 3)
    dx = maxpool2d_backward(np.ones_like(out), cache)
    assert not dx[:, 4, :, :].any() and not dx[:, :, 6, :].any()  # the last row and column are in no window
    assert dx.sum() == out.size


def test_conv_buffer_reuse_does_not_corrupt_an_earlier_cache():
    """A training forward keeps its im2col buffer; an inference forward in between must not overwrite it."""
    from convnp.layers import Conv2D

    rng = np.random.default_rng(0)
    layer = Conv2D(2, 3, 3, rng=rng, dtype=np.float64)
    x, other = rng.standard_normal((2, 6, 6, 2)), rng.standard_normal((2, 6, 6, 2))
    out = layer.forward(x, training=True)
    layer.forward(other)  # inference on other data
    dout = rng.standard_normal(out.shape)
    layer.backward(dout)
    _, ref_cache = conv2d_forward_reference(x, layer.params["weight"], layer.params["bias"], (1, 1), ((0, 0), (0, 0)))
    np.testing.assert_allclose(layer.grads["weight"], conv2d_backward_reference(dout, ref_cache)[1], rtol=1e-12)


def test_conv_backward_rebuilds_im2col_after_another_forward_on_the_same_workspace():
    """A one-chunk batch's im2col matrix is reused by backward only while no other forward has refilled the buffer."""
    rng = np.random.default_rng(3)
    x, other = rng.standard_normal((2, 6, 6, 1)), rng.standard_normal((2, 6, 6, 1))
    weight, pads = rng.standard_normal((3, 3, 1, 4)), ((0, 0), (0, 0))
    workspace = {}
    out, cache = conv2d_forward(x, weight, None, (1, 1), pads, workspace)
    conv2d_forward(other, weight, None, (1, 1), pads, workspace)  # same buffer, other data
    dout = rng.standard_normal(out.shape)
    _, ref_cache = conv2d_forward_reference(x, weight, None, (1, 1), pads)
    np.testing.assert_allclose(conv2d_backward(dout, cache)[1], conv2d_backward_reference(dout, ref_cache)[1],
                               rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ties", [False, True])
def test_pooling_before_relu_gives_the_same_bits(dtype, ties):
    """Sequential runs ReLU -> MaxPool2D as MaxPool2D -> ReLU; outputs and every gradient must not change."""
    from convnp.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
    from convnp.losses import SoftmaxCrossEntropy
    from convnp.sequential import Sequential

    def build():
        rng = np.random.default_rng(5)
        return Sequential([Conv2D(2, 4, 3, rng=rng, dtype=dtype), ReLU(), MaxPool2D(2), ReLU(), MaxPool2D(3, 1),
                           Flatten(), Dense(4 * 2 * 2, 3, rng=rng, dtype=dtype)], input_shape=(11, 11, 2))

    rng = np.random.default_rng(6)
    x = (rng.integers(-2, 3, (5, 11, 11, 2)) if ties else rng.standard_normal((5, 11, 11, 2))).astype(dtype)
    y = rng.integers(0, 3, 5)
    results = []
    for swap in (True, False):
        model = build()
        model.pool_before_relu = swap
        assert model._order()[:5] == ([0, 2, 1, 4, 3] if swap else [0, 1, 2, 3, 4])
        loss = SoftmaxCrossEntropy()
        logits = model.forward(x, training=True)
        loss.forward(logits, y)
        dx = model.backward(loss.backward())
        results.append((logits, dx, model.gradients()))
    (a, dxa, ga), (b, dxb, gb) = results
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dxa, dxb)
    for name in ga:
        np.testing.assert_array_equal(ga[name], gb[name], err_msg=name)


@pytest.mark.parametrize("channels", [1, 5, 8, 70])
@pytest.mark.parametrize("contiguous", [True, False])
def test_tile_reads_and_writes_by_whole_pixels_match_the_strided_views(channels, contiguous):
    """read_tiles_2x2 and write_tiles_2x2 move whole pixels where the channels are contiguous: same values as the
    plain strided views, for channel-strided inputs too (where they fall back to those views)."""
    from convnp.ops.windows import read_tiles_2x2, tiles_2x2, write_tiles_2x2

    rng = np.random.default_rng(channels)
    full = rng.standard_normal((3, 6, 7, 2 * channels)).astype(np.float32)
    x = full[..., :channels] if contiguous else full[..., ::2]  # channels contiguous, or every other one
    np.testing.assert_array_equal(read_tiles_2x2(x), tiles_2x2(x))
    parts = rng.standard_normal((2, 2, 3, 3, 3, channels)).astype(np.float32)
    for given in (parts, parts[:, :, :, :, :, :1]):  # the whole array, and one broadcast along the channels
        dx = write_tiles_2x2(given, x.shape, np.float32)
        expected = np.zeros(x.shape, np.float32)
        np.copyto(tiles_2x2(expected), given)
        np.testing.assert_array_equal(dx, expected)  # the last column, in no tile, is zero


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, hw, c_in, c_out, padding", [
    (3, (28, 28), 16, 16, "same"),  # best's 16 -> 16: products in row blocks, with a remainder
    (2, (14, 14), 16, 32, "same"),
    (2, (13, 11), 32, 8, "valid"),
])
def test_many_channel_conv_in_row_blocks_matches_reference(n, hw, c_in, c_out, padding, dtype, monkeypatch):
    from convnp.ops import gemm
    from convnp.ops.gemm import block_rows
    monkeypatch.setattr(gemm, "USE_BLOCKS", True)  # the blocked route, whatever this machine's BLAS
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, *hw, c_in)).astype(dtype)
    weight = rng.standard_normal((3, 3, c_in, c_out)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    pads = resolve_padding(padding, (3, 3), (1, 1), hw)
    assert block_rows(9 * c_in, c_out) > 0  # the case exercises the blocked products
    out, cache = conv2d_forward(x, weight, bias, (1, 1), pads, {})
    ref, ref_cache = conv2d_forward_reference(x, weight, bias, (1, 1), pads)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(out, ref, **tol)
    dout = rng.standard_normal(out.shape).astype(dtype)
    for name, a, b in zip(("dx", "dweight", "dbias"), conv2d_backward(dout, cache),
                          conv2d_backward_reference(dout, ref_cache)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **tol, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M, K, N", [(1000, 144, 16), (868, 144, 16), (435, 150, 16), (50, 144, 16), (700, 9, 16)])
def test_row_block_products_equal_the_whole_products(M, K, N, dtype, monkeypatch):
    from convnp.ops import gemm
    from convnp.ops.gemm import SMALL_PRODUCT_TN, block_rows, matmul_blocks, matmul_tn
    monkeypatch.setattr(gemm, "USE_BLOCKS", True)
    rng = np.random.default_rng(M)
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    d = rng.standard_normal((M, N)).astype(dtype)
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-10)
    out = np.full((M, N), np.nan, dtype=dtype)
    np.testing.assert_allclose(matmul_blocks(a, b, out), a @ b, **tol)
    workspace = {}
    for _ in range(2):  # the second call reuses the partial products' buffer
        grad = np.full((K, N), np.nan, dtype=dtype)
        np.testing.assert_allclose(matmul_tn(a, d, grad, workspace), a.T @ d, **tol)
    m = block_rows(K, N, SMALL_PRODUCT_TN)
    assert ("tn_parts" in workspace) == (m > 0 and M >= 2 * m)
    # A transposed (not C-contiguous) operand is multiplied whole, with the same result.
    at = np.ascontiguousarray(a.T).T
    np.testing.assert_allclose(matmul_blocks(at, b, np.empty((M, N), dtype)), a @ b, **tol)


def test_inference_paths_give_the_training_outputs():
    from convnp.ops.activations import relu, relu_forward
    from convnp.ops.pool import maxpool2d
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 3, size=(2, 9, 8, 5)).astype(np.float32)  # ties and zeros
    assert np.array_equal(relu(x), relu_forward(x)[0])
    for kernel, stride in [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((2, 3), (1, 2))]:
        assert np.array_equal(maxpool2d(x, kernel, stride), maxpool2d_forward(x, kernel, stride)[0])


def test_cache_size_from_sysfs_and_the_fallback(tmp_path):
    from convnp.ops.machine import DEFAULT_L2_BYTES, l2_cache_bytes, parse_size
    assert parse_size("2048K") == 2 << 20 and parse_size("1M\n") == 1 << 20 and parse_size("512") == 512
    with pytest.raises(ValueError, match="2048K"):
        parse_size("big")
    for name, level, kind, size in [("index0", 1, "Data", "48K"), ("index1", 1, "Instruction", "32K"),
                                    ("index2", 2, "Unified", "1280K"), ("index3", 3, "Unified", "30M")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "level").write_text(f"{level}\n")
        (tmp_path / name / "type").write_text(f"{kind}\n")
        (tmp_path / name / "size").write_text(f"{size}\n")
    assert l2_cache_bytes(tmp_path) == 1280 << 10
    (tmp_path / "index2" / "size").write_text("garbled\n")
    assert l2_cache_bytes(tmp_path) == DEFAULT_L2_BYTES
    assert l2_cache_bytes(tmp_path / "missing") == DEFAULT_L2_BYTES


def test_small_matrix_kernel_is_inferred_from_the_blas_the_cpu_and_the_core_override(tmp_path):
    from convnp.ops import gemm
    from convnp.ops.machine import cpu_flags, small_matrix_kernel
    avx512 = frozenset({"avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl"})
    assert small_matrix_kernel(avx512, "scipy-openblas", {})
    assert not small_matrix_kernel(frozenset({"avx2", "fma"}), "scipy-openblas", {})
    assert not small_matrix_kernel(avx512, "scipy-openblas", {"OPENBLAS_CORETYPE": "Haswell"})  # bench --isa avx2
    assert small_matrix_kernel(frozenset(), "openblas", {"OPENBLAS_CORETYPE": "SkylakeX"})
    assert not small_matrix_kernel(avx512, "accelerate", {})  # another BLAS: no such kernel
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512f"}
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert gemm.USE_BLOCKS == small_matrix_kernel()  # the module follows this machine


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("c_in, kernel, padding", [(2, (3, 3), "same"), (16, (3, 3), "same"), (3, (5, 3), "same"),
                                                    (4, (2, 2), ((1, 0), (0, 1)))])
def test_same_padding_backward_takes_both_gradients_from_dout_windows(c_in, kernel, padding, input_grad, dtype):
    from convnp.ops.conv import shared_route
    rng = np.random.default_rng(c_in)
    x = rng.standard_normal((5, 9, 7, c_in)).astype(dtype)
    weight = rng.standard_normal((*kernel, c_in, 6)).astype(dtype)
    pads = resolve_padding(padding, kernel, (1, 1), (9, 7)) if isinstance(padding, str) else padding
    for chunk_bytes in (1, CHUNK_BYTES):  # one sample per chunk, and the whole batch in one
        out, cache = conv2d_forward(x, weight, None, (1, 1), pads, {}, chunk_bytes=chunk_bytes)
        assert out.shape[1:3] == x.shape[1:3] and shared_route(c_in, (1, 1), 1, (9, 7), out.shape[1:3])
        assert cache.x is x and cache.shared  # the input kept as it is, no padded copy
        ref, ref_cache = conv2d_forward_reference(x, weight, None, (1, 1), pads)
        dout = rng.standard_normal(out.shape).astype(dtype)
        dx, dweight, _ = conv2d_backward(dout, cache, input_grad=input_grad)
        ref_dx, ref_dweight, _ = conv2d_backward_reference(dout, ref_cache)
        tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dweight, ref_dweight, **tol)
        assert dweight.dtype == dtype and dweight.flags.c_contiguous
        if input_grad:
            np.testing.assert_allclose(dx, ref_dx, **tol)
        else:
            assert dx is None


def test_valid_and_strided_convolutions_keep_the_padded_input_route():
    from convnp.ops.conv import shared_route
    assert not shared_route(8, (1, 1), 1, (14, 14), (12, 12))  # valid: more input positions than outputs
    assert not shared_route(8, (2, 2), 1, (14, 14), (7, 7))
    assert not shared_route(1, (1, 1), 1, (28, 28), (28, 28))  # one-channel first layers keep their own routes
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3))
    _, cache = conv2d_forward(x, np.ones((3, 3, 3, 2)), None, (1, 1), ((0, 0), (0, 0)))
    assert cache.x is x and not cache.shared


def test_padded_chunks_reuse_one_buffer_and_keep_its_border_zero():
    from convnp.ops.im2col import padded_chunk
    from convnp.ops.windows import pad_hw
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 4, 6, 3)) + 10  # no zeros of its own
    pads = ((1, 2), (0, 3))
    workspace = {}
    whole = pad_hw(x, pads)
    for start, stop in [(0, 2), (2, 4), (4, 5), (0, 3), (1, 5)]:  # smaller, then larger chunks
        chunk = padded_chunk(x, start, stop, pads, workspace)
        assert chunk.flags.c_contiguous and np.array_equal(chunk, whole[start:stop])
    assert workspace["x_padded"].shape[0] == 4  # grown once, for the largest chunk
    assert padded_chunk(x, 1, 3, ((0, 0), (0, 0)), workspace).base is x  # nothing to pad: a view of x


@pytest.mark.parametrize("shape", [(3, 8, 8, 5), (2, 9, 7, 3), (1, 5, 6, 64), (2, 2, 2, 1)])
def test_inference_max_pooling_rows_first_equals_the_training_route(shape):
    from convnp.ops.pool import maxpool2d
    x = np.random.default_rng(sum(shape)).integers(-3, 4, size=shape).astype(np.float32)  # ties everywhere
    for a in (x, x[:, :, ::-1]):  # and a view that is not contiguous
        out = maxpool2d(a, (2, 2), (2, 2))
        assert np.array_equal(out, maxpool2d_forward(a, (2, 2), (2, 2))[0])
        assert np.array_equal(out, maxpool2d_forward_reference(a, (2, 2), (2, 2))[0])



def test_row_group_width_rule():
    from convnp.ops.conv_rows import group_width
    assert group_width(10, 16, 5, 1) == 5  # lenet5's 6 -> 16: 9 input columns a group (1.8x), 80 values a row
    assert group_width(24, 64, 3, 1) == 2  # 32 -> 64 on 26x26: 128 values a row
    assert group_width(14, 32, 3, 2) == 2  # stride 2: the next group's band reaches 2 columns further
    assert group_width(7, 64, 3, 2) == 1  # 7 has no divisor small enough
    assert group_width(13, 4, 5, 1) == 1  # a prime width: one output column a group
    for W_out, C_out, kW, sW in [(10, 16, 5, 1), (24, 64, 3, 1), (12, 16, 5, 2), (30, 2, 3, 1)]:
        G = group_width(W_out, C_out, kW, sW)
        assert W_out % G == 0 and (G - 1) * sW + kW <= 2 * kW and G * C_out <= 128


def test_band_weight_places_each_output_columns_kernel():
    from convnp.ops.conv_rows import band_weight
    weight = np.random.default_rng(0).standard_normal((2, 3, 4, 5))  # (kH, kW, C_in, C_out)
    band = band_weight(weight, 3, 2).reshape(3, 5, 2, 7, 4)  # (G, C_out, kH, Wg, C_in), Wg = 2*2 + 3
    for j in range(3):
        for t in range(7):
            expected = weight[:, t - 2 * j].transpose(2, 0, 1) if 0 <= t - 2 * j < 3 else 0  # (C_out, kH, C_in)
            np.testing.assert_array_equal(band[j, :, :, t], np.broadcast_to(expected, (5, 2, 4)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw, kernel, c_in, c_out, stride, pads", [
    ((14, 14), (5, 5), 6, 16, (1, 1), ((0, 0), (0, 0))),  # lenet5's second layer: groups of 5 columns
    ((28, 28), (5, 5), 2, 16, (1, 1), ((0, 0), (0, 0))),  # groups of 6
    ((11, 13), (3, 3), 3, 8, (2, 2), ((1, 0), (2, 1))),  # strided, uneven padding, a column no window reaches
    ((9, 12), (2, 4), 5, 24, (1, 3), ((0, 1), (0, 0))),  # uneven stride and kernel
    ((8, 8), (1, 1), 4, 2, (2, 2), ((0, 0), (0, 0))),  # 1x1 windows: most inputs get nothing
])
def test_input_gradient_by_row_groups_matches_reference(hw, kernel, c_in, c_out, stride, pads, dtype):
    from convnp.ops import conv_rows
    rng = np.random.default_rng(c_in + c_out)
    x = rng.standard_normal((5, *hw, c_in)).astype(dtype)
    weight = rng.standard_normal((*kernel, c_in, c_out)).astype(dtype)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    ref, ref_cache = conv2d_forward_reference(x, weight, None, stride, pads)
    dout = rng.standard_normal(ref.shape).astype(dtype)
    ref_dx = conv2d_backward_reference(dout, ref_cache)[0]
    workspace = {}
    for chunk_bytes in (1, 5000, CHUNK_BYTES):  # one sample per chunk, uneven chunks, the whole batch
        dx = conv_rows.input_grad(dout, weight, x.shape, stride, pads, workspace, chunk_bytes)
        assert dx.shape == x.shape and dx.dtype == dtype
        np.testing.assert_allclose(dx, ref_dx, **tol)
    _, cache = conv2d_forward(x, weight, None, stride, pads, {})
    assert not cache.shared  # so conv2d_backward takes the row groups
    np.testing.assert_allclose(conv2d_backward(dout, cache)[0], ref_dx, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel, padding, stride, block", [
    ((3, 3), 0, (1, 1), 1), ((3, 3), "same", (1, 1), 1), ((2, 3), 1, (2, 1), 1),  # transposed rows
    ((3, 3), 0, (1, 1), 3), ((5, 5), "same", (1, 1), 11),  # blocked rows: 9 and 11 outputs wide
])
def test_one_channel_bias_goes_in_as_the_products_last_row(kernel, padding, stride, block, dtype):
    """One input channel: the bias is the weight's last row against a column of ones, and the weight gradient's
    product gives dbias; the results are the reference's, chunk by chunk or in one kept chunk."""
    from convnp.ops.conv import bias_in_product
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 9, 11, 1)).astype(dtype)
    weight = rng.standard_normal((*kernel, 1, 8)).astype(dtype)
    bias = rng.standard_normal(8).astype(dtype)
    pads = resolve_padding(padding if isinstance(padding, str) else (padding, padding), kernel, stride, (9, 11))
    ref, ref_cache = conv2d_forward_reference(x, weight, bias, stride, pads)
    dout = rng.standard_normal(ref.shape).astype(dtype)
    ref_grads = conv2d_backward_reference(dout, ref_cache)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for chunk_bytes in (1, 300, CHUNK_BYTES):  # a sample a chunk, uneven chunks, the whole batch kept
        out, cache = conv2d_forward(x, weight, bias, stride, pads, {}, chunk_bytes=chunk_bytes, block=block)
        assert cache.bias_row and cache.block == block and out.dtype == dtype
        np.testing.assert_allclose(out, ref, **tol)
        for name, a, b in zip(("dx", "dweight", "dbias"), conv2d_backward(dout, cache), ref_grads):
            assert a.shape == b.shape and a.dtype == dtype, name
            np.testing.assert_allclose(a, b, **tol, err_msg=name)
    assert bias_in_product(1, True) and not bias_in_product(1, False) and not bias_in_product(2, True)
    _, cache = conv2d_forward(x, weight, None, stride, pads, {}, block=block)
    assert not cache.bias_row and conv2d_backward(dout, cache)[2] is None
