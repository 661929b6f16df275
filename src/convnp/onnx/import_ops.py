"""The ONNX operators convnp imports: what each becomes, in two tables.

:data:`LAYER_OPS` maps an operator reading the chain's activation to a function that appends convnp layers (or
none: ``Transpose``, ``Identity``, a ``Flatten`` after global pooling) and moves the head on; every attribute a
convnp layer cannot express is refused, naming it. :data:`FOLD_OPS` computes operators whose inputs are all
constants (shape arithmetic), with NumPy indexing only.

=====================  =====================================================================================
ONNX                   convnp
=====================  =====================================================================================
Conv                   Conv2D (group 1, dilation 1; symmetric pads, or asymmetric as convnp's ``"same"``)
MaxPool, AveragePool   MaxPool2D, AvgPool2D (no padding; ``ceil_mode`` only where it changes no size)
GlobalAveragePool      GlobalAvgPool2D (its ``(N, C, 1, 1)`` output is convnp's ``(N, C)``)
BatchNormalization     BatchNorm2D on maps, BatchNorm1D on vectors (inference statistics as ``state``)
Relu, LeakyRelu,       ReLU, LeakyReLU, Tanh, Sigmoid
Tanh, Sigmoid
Flatten, Reshape       Flatten (Reshape only to ``(N, features)``)
Gemm, MatMul (+ Add)   Dense (rows permuted to convnp's flatten order); an Add of a constant after a bias-less
                       Dense or Conv becomes its bias
Dropout                Dropout (``p`` = ratio)
Softmax, LogSoftmax    nothing: the last node only; the model gives the scores, whose softmax is the same
Identity, Transpose    nothing (a transpose changes only how ONNX's axes map to convnp's)
Pad                    nothing, when it pads nothing (PyTorch's opset 9 AveragePool); else refused
Mul, Add, Sub, Div     before the first layer only: the input's preparation, per channel (``walk.prefix``)
=====================  =====================================================================================
"""

from __future__ import annotations

import math

import numpy as np

from convnp.onnx.layout import (
    NHWC_TO_NCHW,
    channels_first_rows,
    conv_pads_from_onnx,
    conv_weight_from_onnx,
    dense_weight_from_onnx,
)
from convnp.onnx.read import DTYPES
from convnp.onnx.walk import ARITHMETIC, BATCH, MAX_FOLDED_ELEMENTS, Chain
from convnp.ops.windows import conv_output_size, resolve_padding


def float32_number(value) -> float:
    """The shortest decimal that is the same float32: ONNX keeps float attributes as float32, so ``1e-5``
    comes back as ``9.99999974e-06``; this gives ``1e-05`` again."""
    return float(str(np.float32(value)))


# ---- layers ----------------------------------------------------------------------------------------------------
def _conv(chain: Chain, node, attrs: dict) -> None:
    """Conv -> Conv2D."""
    head = _maps(chain, node)
    if attrs.get("group", 1) != 1:
        chain.fail(f"group={attrs['group']}: convnp's Conv2D has no grouped or depthwise convolution")
    weight = chain.const(node.input[1], "weight")
    if weight.ndim != 4 or weight.shape[1] != head.shape[1] or weight.dtype.kind != "f":
        chain.fail(f"weight of {weight.dtype} and shape {weight.shape} does not read {head.shape[1]} channels "
                   f"(expected floats (C_out, {head.shape[1]}, kH, kW))")
    _no_dilation(chain, attrs)
    C_out, _, kH, kW = weight.shape
    if list(attrs.get("kernel_shape", [kH, kW])) != [kH, kW]:
        chain.fail(f"kernel_shape {attrs['kernel_shape']} disagrees with the weight's {kH}x{kW}")
    stride = _pair(chain, attrs, "strides")
    H, W, _ = head.convnp_shape
    padding, pads = _conv_padding(chain, attrs, (kH, kW), stride, (H, W))
    H_out = conv_output_size(H, kH, stride[0], sum(pads[0]))
    W_out = conv_output_size(W, kW, stride[1], sum(pads[1]))
    if H_out < 1 or W_out < 1:
        chain.fail(f"a {kH}x{kW} kernel does not fit in {H}x{W} with pads {pads}")
    params = {"weight": conv_weight_from_onnx(weight)}
    if len(node.input) > 2 and node.input[2]:
        params["bias"] = _vector(chain, node.input[2], C_out, "bias")
    chain.emit("Conv2D", {"in_channels": int(head.shape[1]), "out_channels": int(C_out), "kernel_size": [kH, kW],
                          "stride": list(stride), "padding": padding, "bias": "bias" in params}, params=params)
    chain.advance(node, (None, C_out, H_out, W_out))


def _conv_padding(chain: Chain, attrs: dict, kernel, stride, in_hw):
    """A Conv's padding as convnp's ``padding`` argument, and the explicit ``((top, bottom), (left, right))``."""
    same = resolve_padding("same", kernel, stride, in_hw)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad == "SAME_UPPER":
        return "same", same
    if auto_pad == "VALID":
        return [0, 0], ((0, 0), (0, 0))
    if auto_pad == "SAME_LOWER":
        if all(a == b for a, b in same):
            return "same", same
        chain.fail("auto_pad=SAME_LOWER puts the odd pixel of padding first; convnp's 'same' puts it last")
    if auto_pad != "NOTSET":
        chain.fail(f"auto_pad={auto_pad!r} is not an ONNX padding mode")
    try:
        pads = conv_pads_from_onnx(attrs.get("pads", [0, 0, 0, 0]))
    except ValueError as err:
        chain.fail(str(err))
    (top, bottom), (left, right) = pads
    if top == bottom and left == right:
        return [top, left], pads
    if pads == same:
        return "same", pads
    chain.fail(f"pads {attrs['pads']} are uneven in a way convnp's Conv2D cannot express (it pads evenly, or as "
               "'same', the odd pixel at the bottom and right)")


def _pool(chain: Chain, node, attrs: dict) -> None:
    """MaxPool -> MaxPool2D, AveragePool -> AvgPool2D: windows without padding."""
    head = _maps(chain, node)
    kernel = attrs.get("kernel_shape")
    if kernel is None or len(kernel) != 2 or min(kernel) < 1:
        chain.fail(f"kernel_shape must be two positive ints, got {kernel}")
    stride = _pair(chain, attrs, "strides")
    _no_dilation(chain, attrs)
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        chain.fail(f"auto_pad={attrs['auto_pad']}: convnp's pools do not pad")
    if any(attrs.get("pads", [0, 0, 0, 0])):
        chain.fail(f"pads {attrs['pads']}: convnp's pools do not pad (their windows stay inside the map)")
    H, W, C = head.convnp_shape
    if H < kernel[0] or W < kernel[1]:
        chain.fail(f"a {kernel[0]}x{kernel[1]} window does not fit in {H}x{W}")
    sizes = [conv_output_size(n, k, s) for n, k, s in zip((H, W), kernel, stride)]
    if attrs.get("ceil_mode", 0) and sizes != [-((k - n) // s) + 1 for n, k, s in zip((H, W), kernel, stride)]:
        chain.fail("ceil_mode=1 makes a last, partial window here; convnp's pools keep whole windows only")
    cls = "MaxPool2D" if node.op_type == "MaxPool" else "AvgPool2D"
    chain.emit(cls, {"kernel_size": list(kernel), "stride": list(stride)})
    chain.advance(node, (None, C, *sizes))


def _global_pool(chain: Chain, node, attrs: dict) -> None:
    """GlobalAveragePool -> GlobalAvgPool2D; ONNX keeps ``(N, C, 1, 1)``, convnp has ``(N, C)``."""
    head = _maps(chain, node)
    chain.emit("GlobalAvgPool2D", {})
    chain.advance(node, (None, head.shape[1], 1, 1), pooled=True)


def _batchnorm(chain: Chain, node, attrs: dict) -> None:
    """BatchNormalization -> BatchNorm2D (maps) or BatchNorm1D (vectors), in inference mode."""
    head = chain.head
    if attrs.get("training_mode", 0) or attrs.get("spatial", 1) != 1:
        chain.fail("training_mode=1 or spatial=0: convnp imports batch normalisation in inference mode, per channel")
    if head.axes is not None and not head.pooled and not head.is_nchw:
        chain.fail(f"normalises axis 1 of a map held as {head.shape} (not channels-first), which is not convnp's "
                   "channel axis")
    C = head.shape[1]
    names = ("weight", "bias", "running_mean", "running_var")
    if len(node.input) < 5 or not all(node.input[1:5]):
        chain.fail("expects 5 inputs (X, scale, B, mean, var)")
    arrays = {name: _vector(chain, tensor, C, name) for name, tensor in zip(names, node.input[1:5])}
    if head.rows is not None:  # vectors flattened in another order: put each feature's statistics in convnp's
        arrays = {name: _in_convnp_order(value, head.rows) for name, value in arrays.items()}
    # ONNX's momentum is the weight of the running value, PyTorch's and convnp's that of the batch.
    momentum = float32_number(1.0 - float32_number(attrs.get("momentum", 0.9)))
    config = {"num_features": int(C), "eps": float32_number(attrs.get("epsilon", 1e-5)), "momentum": momentum}
    cls = "BatchNorm1D" if head.axes is None or head.pooled else "BatchNorm2D"
    chain.emit(cls, config, params={k: arrays[k] for k in names[:2]}, state={k: arrays[k] for k in names[2:]})
    chain.advance(node, head.shape)


def _activation(chain: Chain, node, attrs: dict) -> None:
    """Relu, LeakyRelu, Tanh, Sigmoid -> the convnp layer of the same name (any layout)."""
    if node.op_type == "LeakyRelu":
        chain.emit("LeakyReLU", {"negative_slope": float32_number(attrs.get("alpha", 0.01))})
    else:
        chain.emit({"Relu": "ReLU", "Tanh": "Tanh", "Sigmoid": "Sigmoid"}[node.op_type], {})
    chain.advance(node, chain.head.shape)


def _dropout(chain: Chain, node, attrs: dict) -> None:
    """Dropout -> Dropout(p=ratio) (the identity at inference, kept for fine-tuning)."""
    ratio = attrs.get("ratio", 0.5)
    if len(node.input) > 1 and node.input[1]:
        ratio = float(chain.const(node.input[1], "ratio").reshape(-1)[0])
    if len(node.input) > 2 and node.input[2] and bool(chain.const(node.input[2], "training_mode").reshape(-1)[0]):
        chain.fail("training_mode is true; convnp imports the inference graph")
    if not 0.0 <= ratio < 1.0:
        chain.fail(f"ratio {ratio} is outside [0, 1)")
    chain.emit("Dropout", {"p": float32_number(ratio)})
    chain.advance(node, chain.head.shape)


def _flatten(chain: Chain, node, attrs: dict) -> None:
    """Flatten(axis=1) -> Flatten; nothing after a global pool or on vectors."""
    head = chain.head
    rank = len(head.shape)
    if attrs.get("axis", 1) not in (1, 1 - rank):
        chain.fail(f"axis={attrs['axis']}: convnp flattens everything after the batch axis (axis=1)")
    _flatten_head(chain, node)


def _flatten_head(chain: Chain, node) -> None:
    """The head flattened to ``(N, F)``: a Flatten layer for maps, with the order of ONNX's features in ``rows``."""
    head = chain.head
    features = math.prod(head.shape[1:])
    if head.axes is None or head.pooled:
        chain.advance(node, (None, features), axes=None, pooled=False)
        return
    H, W, C = head.convnp_shape
    if head.axes == tuple(range(4)):
        rows = None
    elif head.axes == NHWC_TO_NCHW:
        rows = channels_first_rows(H, W, C)
    else:  # another transposition: the convnp index of each ONNX feature, in ONNX's order
        rows = np.arange(H * W * C).reshape(H, W, C).transpose([a - 1 for a in head.axes[1:]]).ravel()
    chain.emit("Flatten", {})
    chain.advance(node, (None, features), axes=None, rows=rows, pooled=False)


def _reshape(chain: Chain, node, attrs: dict) -> None:
    """Reshape to ``(N, features)`` (a constant target, or PyTorch's ``x.view(x.size(0), -1)``) -> Flatten."""
    head = chain.head
    target = [int(v) for v in chain.const(node.input[1], "target shape").reshape(-1)]
    features = math.prod(head.shape[1:])
    zero_copies = not attrs.get("allowzero", 0)
    batch = (BATCH, chain.fixed_batch) if chain.fixed_batch else (BATCH,)
    copied = [BATCH, *head.shape[1:]]  # what a 0 copies from the input's shape
    resolved = [copied[i] if (v == 0 and zero_copies and i < len(copied)) else v for i, v in enumerate(target)]
    if len(resolved) == len(head.shape) and resolved[0] in batch and resolved[1:] == list(head.shape[1:]):
        chain.advance(node, head.shape)  # the same shape: nothing to do
        return
    first_ok = resolved[0] in batch or (resolved[0] == -1 and len(resolved) == 2 and resolved[1] == features)
    if len(resolved) != 2 or not first_ok or resolved[1] not in (features, -1) or resolved == [-1, -1]:
        shown = ["N" if v == BATCH else v for v in resolved]
        chain.fail(f"reshapes {_shown(head.shape)} to {shown}; convnp imports a Reshape only as a flatten to "
                   f"(N, {features})")
    _flatten_head(chain, node)


def _dense(chain: Chain, node, attrs: dict) -> None:
    """Gemm or MatMul -> Dense (rows in convnp's order when ONNX flattened channels-first)."""
    head = chain.head
    if head.axes is not None and not head.pooled:
        chain.fail(f"multiplies a map of shape {_shown(head.shape)}; flatten it first")
    if node.op_type == "Gemm" and attrs.get("transA", 0):
        chain.fail("transA=1 transposes the batch of activations, which a dense layer cannot")
    if node.input[0] != head.name:
        chain.fail("takes the weight first and the activations second; convnp's Dense computes x @ weight")
    trans_b = attrs.get("transB", 0) if node.op_type == "Gemm" else 0
    weight = chain.const(node.input[1], "weight")
    if weight.ndim != 2 or weight.dtype.kind != "f":
        chain.fail(f"weight must be a float matrix, got {weight.dtype} of shape {weight.shape}")
    weight = dense_weight_from_onnx(weight, trans_b)
    F = math.prod(head.shape[1:])
    if weight.shape[0] != F:
        chain.fail(f"weight of shape {weight.shape} (as (in_features, out_features)) does not take {F} features")
    K = weight.shape[1]
    weight = weight * attrs.get("alpha", 1.0) if attrs.get("alpha", 1.0) != 1.0 else weight
    params = {"weight": _in_convnp_order(weight, head.rows)}
    if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
        params["bias"] = _vector(chain, node.input[2], K, "bias (C)") * attrs.get("beta", 1.0)
    chain.emit("Dense", {"in_features": int(F), "out_features": int(K), "bias": "bias" in params}, params=params)
    chain.advance(node, (None, K), axes=None, rows=None, pooled=False)


def _add_or_scale(chain: Chain, node, attrs: dict) -> None:
    """Mul, Add, Sub, Div of the activation and a constant: the input's preparation before any layer; after a
    bias-less Dense or Conv, an Add is its bias; anywhere else, refused."""
    head = chain.head
    other = [name for name in node.input if name != head.name]
    if len(other) != 1 or len(node.input) != 2:
        chain.fail(f"{node.op_type}s the activation with itself; convnp has no layer for it")
    value = chain.const(other[0], "second operand")
    if not chain.specs:
        _prefix_step(chain, node, value, head_first=node.input[0] == head.name)
        return
    last = chain.specs[-1] if chain.specs else None
    if node.op_type == "Add" and last is not None and last.cls in ("Dense", "Conv2D") and not last.config["bias"] \
            and last.output == head.name and _is_channel_vector(value, head):
        channels = head.shape[1]
        last.params["bias"] = value.reshape(-1).astype(np.float64) if value.size == channels else \
            np.full(channels, float(value.reshape(-1)[0]))
        last.config["bias"] = True
        chain.advance(node, head.shape)
        return
    chain.fail(f"{node.op_type} of a constant inside the network; convnp has no layer for it (only the input's "
               "preparation, before the first layer, and a layer's bias)")


def _prefix_step(chain: Chain, node, value: np.ndarray, head_first: bool) -> None:
    """One step of the input's preparation, ``x * a + b`` per channel, collected in ``chain.prefix``."""
    head = chain.head
    channels = head.convnp_shape[-1]
    v = _per_channel(chain, value, head)
    a, b = chain.prefix or (np.ones(channels), np.zeros(channels))
    op = node.op_type
    if op == "Mul":
        a, b = a * v, b * v
    elif op == "Add":
        b = b + v
    elif op == "Sub":
        a, b = (a, b - v) if head_first else (-a, v - b)
    elif head_first:  # Div
        if np.any(v == 0):
            chain.fail("divides by zero")
        a, b = a / v, b / v
    else:
        chain.fail("divides a constant by the image; convnp's preparation is x * a + b per channel")
    chain.prefix = [a, b]
    chain.advance(node, head.shape)


def _per_channel(chain: Chain, value: np.ndarray, head) -> np.ndarray:
    """A constant broadcast against the input ``head`` as one number per convnp channel ``(C,)`` float64 (per
    feature for vectors ``(N, F)``)."""
    rank = len(head.shape)
    channel_axis = 1 if head.axes is None else head.axes.index(3)
    shape = (1,) * (rank - value.ndim) + tuple(value.shape)
    if value.ndim > rank or any(n != 1 and (i != channel_axis or n != head.shape[i]) for i, n in enumerate(shape)):
        chain.fail(f"a constant of shape {value.shape} applied to images {_shown(head.shape)}: convnp's "
                   "preparation takes one number per channel")
    return np.broadcast_to(value.reshape(-1).astype(np.float64), (head.convnp_shape[-1],)).copy()


def _is_channel_vector(value: np.ndarray, head) -> bool:
    """Whether ``value`` adds one number per channel to ``head`` (a bias): ``(K,)`` or ``(1, K)`` on vectors,
    ``(K, 1, 1)`` or ``(1, K, 1, 1)`` on channels-first maps, or a single number."""
    if value.size == 1:
        return True
    K = head.shape[1]
    squeezed = tuple(n for n in value.shape if n != 1)
    if squeezed != (K,):
        return False
    if head.axes is None:
        return value.shape[-1] == K
    return head.is_nchw and value.ndim >= 3 and value.shape[-3] == K


def _transpose(chain: Chain, node, attrs: dict) -> None:
    """Transpose: no layer; ONNX's axes map to convnp's differently from here on."""
    head = chain.head
    rank = len(head.shape)
    perm = list(attrs.get("perm", range(rank - 1, -1, -1)))
    if sorted(perm) != list(range(rank)) or perm[0] != 0:
        chain.fail(f"perm {perm} moves the batch axis or is not a permutation of {rank} axes")
    if head.axes is None:
        if perm != list(range(rank)):
            chain.fail(f"perm {perm} on vectors; convnp's vectors have one order")
        chain.advance(node, head.shape)
        return
    chain.advance(node, tuple(head.shape[p] for p in perm), axes=tuple(head.axes[p] for p in perm))


def _identity(chain: Chain, node, attrs: dict) -> None:
    chain.advance(node, chain.head.shape)


def _pad(chain: Chain, node, attrs: dict) -> None:
    """Pad of nothing (PyTorch writes one before an AveragePool at opset 9): no layer; any real padding is refused."""
    pads = attrs.get("pads")
    if len(node.input) > 1 and node.input[1]:
        pads = chain.const(node.input[1], "pads").reshape(-1).tolist()
    if pads is None or any(pads):
        chain.fail(f"pads {pads}: convnp has no padding layer (a Conv2D pads by itself, its pools never)")
    chain.advance(node, chain.head.shape)


def _softmax(chain: Chain, node, attrs: dict) -> None:
    """Softmax or LogSoftmax over the classes, as the last node: dropped (the model gives the scores)."""
    head = chain.head
    rank = len(head.shape)
    axis = attrs.get("axis", 1 if chain.opset < 13 else -1)
    # Over axis 1 of (N, K), or of a global pool's (N, C, 1, 1): the classes either way.
    if (head.axes is not None and not head.pooled) or axis % rank != 1:
        chain.fail(f"{node.op_type} over axis {axis} of {_shown(head.shape)}; convnp imports it only over the "
                   "classes of (N, K) scores, as the last node")
    chain.logits, chain.final_op = head.name, node.op_type
    chain.advance(node, head.shape)


#: Operators that read the chain's activation.
LAYER_OPS = {
    "Conv": _conv, "MaxPool": _pool, "AveragePool": _pool, "GlobalAveragePool": _global_pool,
    "BatchNormalization": _batchnorm, "Relu": _activation, "LeakyRelu": _activation, "Tanh": _activation,
    "Sigmoid": _activation, "Dropout": _dropout, "Flatten": _flatten, "Reshape": _reshape, "Gemm": _dense,
    "MatMul": _dense, "Transpose": _transpose, "Identity": _identity, "Pad": _pad, "Softmax": _softmax,
    "LogSoftmax": _softmax,
    **{op: _add_or_scale for op in ARITHMETIC},
}


# ---- helpers ---------------------------------------------------------------------------------------------------
def _maps(chain: Chain, node):
    """The head, which must be a channels-first map (what Conv, the pools and global pooling read)."""
    head = chain.head
    if head.pooled or head.axes is None:
        chain.fail(f"{node.op_type} needs feature maps (N, C, H, W), got {_shown(head.shape)}")
    if not head.is_nchw:
        chain.fail(f"{node.op_type} of a map held as {_shown(head.shape)} whose axis 1 is not convnp's channels "
                   "(ONNX convolves and pools channels-first)")
    return head


def _no_dilation(chain: Chain, attrs: dict) -> None:
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        chain.fail(f"dilations {attrs['dilations']}: convnp's windows are not dilated")


def _pair(chain: Chain, attrs: dict, name: str) -> tuple[int, int]:
    value = list(attrs.get(name, [1, 1]))
    if len(value) != 2 or min(value) < 1:
        chain.fail(f"{name} must be two positive ints, got {value}")
    return int(value[0]), int(value[1])


def _vector(chain: Chain, name: str, size: int, what: str) -> np.ndarray:
    """Constant input ``name`` as a vector of ``size`` numbers (a scalar is repeated)."""
    value = chain.const(name, what)
    if value.size == 1:
        return np.full(size, float(value.reshape(-1)[0]))
    if value.size != size or value.dtype.kind != "f":
        chain.fail(f"{what} must be {size} floats, got {value.dtype} of shape {value.shape}")
    return value.reshape(-1)


def _in_convnp_order(value: np.ndarray, rows) -> np.ndarray:
    """Rows in ONNX's feature order -> convnp's: ``out[rows[j]] = value[j]`` (a copy; the same when rows is None)."""
    if rows is None:
        return value
    out = np.empty_like(value)
    out[rows] = value
    return out


def _shown(shape) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


# ---- constants -------------------------------------------------------------------------------------------------
def fold(chain: Chain, node, attrs: dict) -> None:
    """An operator of constants only: computed now (shape arithmetic, a Constant), or refused."""
    op = node.op_type
    if op == "Identity":  # an alias (PyTorch writes them for shared initializers): nothing is copied
        chain.consts[node.output[0]] = chain.consts[node.input[0]]
        return
    if op not in FOLD_OPS:
        chain.fail(f"operator {op} on constants is not one convnp folds ({', '.join(sorted(FOLD_OPS))})")
    inputs = [chain.consts[name] if name else None for name in node.input]
    try:
        value = FOLD_OPS[op](chain, inputs, attrs)
    except (ValueError, IndexError, TypeError, OverflowError) as err:
        chain.fail(f"cannot be computed on its constant inputs: {str(err)[:120]}")
    chain.add_const(node.output[0], value)


def _fold_constant(chain, inputs, attrs):
    for key, kind in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                      ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=kind)
    chain.fail(f"Constant with attributes {sorted(attrs)}; convnp reads value, value_float(s), value_int(s)")


def _fold_gather(chain, inputs, attrs):
    data, indices = inputs[0], inputs[1].astype(np.int64)
    axis = attrs.get("axis", 0)
    n = data.size // max(data.shape[axis], 1) * indices.size
    _bounded(chain, n)
    if np.any(indices >= data.shape[axis]) or np.any(indices < -data.shape[axis]):
        raise IndexError(f"indices out of range for axis {axis} of size {data.shape[axis]}")
    return np.take(data, indices, axis=axis)


def _axes(inputs, attrs):
    if len(inputs) > 1 and inputs[1] is not None:
        return [int(a) for a in inputs[1].reshape(-1)]
    return attrs.get("axes")


def _fold_unsqueeze(chain, inputs, attrs):
    data, axes = inputs[0], _axes(inputs, attrs)
    rank = data.ndim + len(axes)
    return data.reshape(_unsqueezed_shape(data.shape, sorted(a % rank for a in axes)))


def _unsqueezed_shape(shape, axes):
    shape = list(shape)
    for a in axes:
        shape.insert(a, 1)
    return shape


def _fold_squeeze(chain, inputs, attrs):
    data, axes = inputs[0], _axes(inputs, attrs)
    return np.squeeze(data) if axes is None else np.squeeze(data, axis=tuple(a % data.ndim for a in axes))


def _fold_concat(chain, inputs, attrs):
    parts = [p for p in inputs if p is not None]
    _bounded(chain, sum(p.size for p in parts))
    return np.concatenate(parts, axis=attrs.get("axis", 0))


def _fold_slice(chain, inputs, attrs):
    data = inputs[0]
    if len(inputs) > 1:
        starts, ends = inputs[1].reshape(-1), inputs[2].reshape(-1)
        axes = inputs[3].reshape(-1) if len(inputs) > 3 and inputs[3] is not None else range(len(starts))
        steps = inputs[4].reshape(-1) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    else:
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes", range(len(starts))), [1] * len(starts)
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return data[tuple(index)]


def _fold_cast(chain, inputs, attrs):
    to = attrs.get("to")
    if to not in DTYPES:
        raise ValueError(f"cast to data type {to}")
    return inputs[0].astype(DTYPES[to])


def _fold_arithmetic(chain, inputs, attrs, op):
    a, b = inputs[0], inputs[1]
    if np.any(a == BATCH) or np.any(b == BATCH):
        raise ValueError("arithmetic on the batch size")
    _bounded(chain, math.prod(np.broadcast_shapes(a.shape, b.shape)))
    if op == "Div" and a.dtype.kind in "iu":
        return (np.abs(a) // np.abs(b) * np.sign(a) * np.sign(b)).astype(a.dtype)  # ONNX truncates
    return {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op](a, b)


def _bounded(chain: Chain, n: int) -> None:
    """Refuse a folded result of ``n`` values before computing it, if it would exceed the budget."""
    if chain.folded + n > MAX_FOLDED_ELEMENTS:
        chain.fail(f"folding constants would hold more than {MAX_FOLDED_ELEMENTS:,} values")


#: Operators computed when every input is a constant.
FOLD_OPS = {
    "Constant": _fold_constant,
    "Identity": lambda chain, inputs, attrs: inputs[0],
    "Shape": lambda chain, inputs, attrs: np.array(inputs[0].shape, dtype=np.int64)[attrs.get("start", 0):
                                                                                    attrs.get("end", None)],
    "Gather": _fold_gather, "Unsqueeze": _fold_unsqueeze, "Squeeze": _fold_squeeze, "Concat": _fold_concat,
    "Slice": _fold_slice, "Cast": _fold_cast,
    **{op: (lambda op: lambda chain, inputs, attrs: _fold_arithmetic(chain, inputs, attrs, op))(op)
       for op in ARITHMETIC},
}
