"""A convnp network as an ONNX file: :func:`export` (``convnp export``) and :func:`to_onnx`.

The graph takes what a user has, float32 pixels as stored (0..255), channels-last ``(N, H, W, C)`` with the batch
size ``N`` free, and gives ``logits`` and ``probabilities`` ``(N, K)``:

1. the checkpoint's preparation, ``Mul`` then ``Sub`` per channel: the same two float32 operations, with the same
   constants, as :class:`~convnp.data.transforms.Standardize` (``raw=True`` leaves them out: the input is then the
   standardised tensor);
2. one ``Transpose`` to ``(N, C, H, W)`` before the first layer that needs channels-first (convolution, pooling,
   BatchNorm2D), and one back to ``(N, H, W, C)`` before each flatten, so the features reach the dense layer in
   convnp's order and its weight travels unchanged (:mod:`convnp.onnx.layout`);
3. one ONNX operation per layer (:data:`OPS`); Dropout is the identity at inference and disappears;
4. ``Softmax`` over the classes for ``probabilities``.

The class names, the convnp version, the input's description, the preparation and the architecture go into the
model's ``metadata_props`` (:mod:`convnp.onnx.metadata`). Tensor names follow convnp's ``state_dict``: layer 3's
weight is ``3.weight`` (in ONNX's layout). Every file passes ``onnx.checker.check_model(model, full_check=True)``
before it is written. The ``onnx`` package is imported inside the functions that need it.

References: ONNX operators, https://onnx.ai/onnx/operators/ (``Conv``, ``MaxPool``, ``AveragePool``,
``BatchNormalization``, ``Gemm``, ``Flatten``, ``Softmax``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convnp.checkpoint import Checkpoint, atomic_write, load_checkpoint
from convnp.data.transforms import Standardize
from convnp.layers import (
    AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, LeakyReLU, MaxPool2D,
    NotebookMaxPool2D, ReLU, Sigmoid, Tanh,
)
from convnp.onnx import metadata
from convnp.onnx.layout import NCHW_TO_NHWC, NHWC_TO_NCHW, OnnxError, conv_pads_to_onnx, conv_weight_to_onnx
from convnp.ops.windows import resolve_padding
from convnp.sequential import Sequential
from convnp.version import __version__

#: The opset written by default: every operation used here is unchanged since opset 13-15, and ONNX Runtime has
#: read opset 17 since version 1.11 (2022), onnxruntime-web included.
DEFAULT_OPSET = 17
#: The oldest opset accepted (``Softmax`` over one axis, ``Gemm`` without a bias input, ``BatchNormalization``
#: without the ``spatial`` attribute).
MIN_OPSET = 13


def _onnx():
    """The ``onnx`` module, or a one-line RuntimeError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise RuntimeError("ONNX export needs the onnx package: pip install 'convnp[onnx]'") from None
    return onnx


def export(model_or_checkpoint, path, *, raw: bool = False, opset: int = DEFAULT_OPSET,
           standardize: Standardize | None = None, classes=None) -> Path:
    """Write a network as an ONNX file; returns the path.

    Parameters
    ----------
    model_or_checkpoint : Sequential, Checkpoint, or str/Path of a checkpoint (``.npz``) or run folder
        A checkpoint brings its preparation, class names and model name; a bare Sequential needs ``standardize``
        (unless ``raw``) and must have an ``input_shape``.
    path : str or Path
        The ``.onnx`` file, written atomically (temporary file, fsync, rename).
    raw : bool
        Export the network alone: the graph's input is the standardised tensor, not pixels.
    opset : int
        The ONNX opset, from :data:`MIN_OPSET` to the newest the installed ``onnx`` knows.
    standardize : Standardize, optional
        The preparation, overriding the checkpoint's.
    classes : sequence of K labels, optional
        The class names, overriding the checkpoint's (default ``"0" .. "K-1"``).

    Raises :class:`~convnp.onnx.layout.OnnxError` (a ValueError) in one line for a network it cannot express (a
    layer without an ONNX form, an output that is not ``(N, K)``), and RuntimeError when ``onnx`` is missing.
    """
    return write_model(to_onnx(model_or_checkpoint, raw=raw, opset=opset, standardize=standardize, classes=classes),
                       path)


def write_model(proto, path) -> Path:
    """Write an ``onnx.ModelProto`` to ``path`` atomically (temporary file, fsync, rename); returns the path.

    A missing folder is a one-line OnnxError naming it, rather than the temporary file's name.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OnnxError(f"{path}: folder {path.parent} does not exist")
    data = proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return path


def to_onnx(model_or_checkpoint, *, raw: bool = False, opset: int = DEFAULT_OPSET,
            standardize: Standardize | None = None, classes=None):
    """The ``onnx.ModelProto`` that :func:`export` writes (same arguments, no path), already checked by
    ``onnx.checker.check_model(..., full_check=True)``."""
    onnx = _onnx()
    opset = _check_opset(opset, onnx)
    model, standardize, classes, model_name = _source(model_or_checkpoint, standardize, classes, raw)
    builder = _Builder(onnx.helper, onnx.numpy_helper)
    input_name, input_shape = _build(builder, model, None if raw else standardize)
    n_classes = _finish(builder, model, input_shape)
    classes = [str(c) for c in (range(n_classes) if classes is None else classes)]
    if len(classes) != n_classes:
        raise OnnxError(f"export: classes must name the model's {n_classes} classes, got {len(classes)}")
    description = _describe(input_shape, standardize, raw)
    helper, batch = onnx.helper, metadata.BATCH_DIM
    graph = helper.make_graph(
        builder.nodes, model_name or "convnp",
        [helper.make_tensor_value_info(input_name, onnx.TensorProto.FLOAT, [batch, *input_shape], description)],
        [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [batch, n_classes], doc)
         for name, doc in ((metadata.OUTPUT_LOGITS, "the network's output, (N, K)"),
                           (metadata.OUTPUT_PROBABILITIES, "softmax of the logits over the K classes, (N, K)"))],
        builder.initializers,
        doc_string=f"A convnp network: {description}.",
    )
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name=metadata.PRODUCER,
                              producer_version=__version__)
    proto.ir_version = helper.find_min_ir_version_for(opsets)  # the oldest IR that holds the opset: older readers
    helper.set_model_props(proto, metadata.write_props(
        classes=classes, standardize=standardize, in_graph=not raw, description=description,
        architecture=model.get_config(), version=__version__, model_name=model_name,
    ))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _check_opset(opset, onnx) -> int:
    """``opset`` as an int from :data:`MIN_OPSET` to the newest ``onnx`` knows, or a one-line OnnxError."""
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, (int, np.integer)) or isinstance(opset, bool) or not MIN_OPSET <= opset <= newest:
        raise OnnxError(f"export: opset must be an int from {MIN_OPSET} to {newest} (onnx {onnx.__version__}), "
                        f"got {opset!r}")
    return int(opset)


def _source(model_or_checkpoint, standardize, classes, raw: bool):
    """``(model, standardize, classes, model_name)`` from a Sequential, a Checkpoint or a checkpoint's path."""
    if isinstance(model_or_checkpoint, (str, Path)):
        model_or_checkpoint = load_checkpoint(model_or_checkpoint)
    if isinstance(model_or_checkpoint, Checkpoint):
        checkpoint = model_or_checkpoint
        return (checkpoint.model, standardize or checkpoint.standardize,
                classes if classes is not None else checkpoint.meta.get("classes"), checkpoint.meta.get("model_name"))
    if not isinstance(model_or_checkpoint, Sequential):
        raise TypeError(f"export: expected a Sequential, a Checkpoint or a checkpoint's path, "
                        f"got {type(model_or_checkpoint).__name__}")
    if standardize is None and not raw:
        raise OnnxError("export: a Sequential carries no input preparation; pass standardize=Standardize(scale, "
                        "mean, std) (as the model was trained), export a checkpoint, or pass raw=True")
    return model_or_checkpoint, standardize, classes, None


def _describe(input_shape: tuple, standardize: Standardize | None, raw: bool) -> str:
    """One sentence on the graph's input, for the metadata and the input's doc string."""
    shape = f"channels-last (N, {', '.join(map(str, input_shape))}), N free"
    if raw:
        how = "" if standardize is None else f" (x * {standardize.scale:.6g} - mean[c]) / std[c] of the pixels x"
        return f"float32 standardised images{how}, {shape}"
    pixels = "0..255" if np.isclose(standardize.scale, 1 / 255) else f"as stored, scaled by {standardize.scale:.6g}"
    return f"float32 pixels {pixels}, {shape}; standardised inside the graph as in training"


class _Builder:
    """The nodes and initializers of a graph under construction, the current tensor and its layout.

    ``x`` is the name of the current tensor; ``layout`` is ``"NHWC"`` or ``"NCHW"`` for feature maps, ``"flat"``
    for ``(N, F)`` vectors.
    """

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers = [], []
        self.x, self.layout = None, None

    def constant(self, name: str, array: np.ndarray) -> str:
        """Add a float32 initializer called ``name``; returns the name."""
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def node(self, op: str, name: str, inputs=(), **attributes) -> str:
        """Add ``op`` on the current tensor (then ``inputs``), named ``name``; its output becomes the current tensor."""
        self.nodes.append(self.helper.make_node(op, [self.x, *inputs], [name], name=name, **attributes))
        self.x = name
        return name

    def to(self, layout: str, name: str) -> None:
        """Transpose the current feature maps to ``layout`` (``"NCHW"`` or ``"NHWC"``) unless they are in it."""
        if self.layout != layout:
            self.node("Transpose", name, perm=list(NHWC_TO_NCHW if layout == "NCHW" else NCHW_TO_NHWC))
            self.layout = layout


def _build(builder: _Builder, model: Sequential, standardize: Standardize | None):
    """Add the input's preparation (unless ``standardize`` is None) and every layer; returns the input's name and
    per-sample shape ``(H, W, C)`` (or ``(F,)``)."""
    if model.input_shape is None:
        raise OnnxError("export: the model has no input_shape (H, W, C); build it with one, e.g. "
                        "Sequential(layers, input_shape=(28, 28, 1))")
    input_shape = tuple(model.input_shape)
    if len(input_shape) not in (1, 3):
        raise OnnxError(f"export: the input must be images (H, W, C) or vectors (F,), got input_shape {input_shape}")
    builder.x = metadata.INPUT_STANDARDIZED if standardize is None else metadata.INPUT_PIXELS
    builder.layout = "NHWC" if len(input_shape) == 3 else "flat"
    input_name = builder.x
    if standardize is not None:
        _prepare(builder, standardize, input_shape[-1])
    shapes = [input_shape, *model.shapes()]
    for index, layer in enumerate(model.layers):
        emit = OPS.get(type(layer))
        if emit is None:
            raise OnnxError(f"export: layer {index} ({type(layer).__name__}) has no ONNX form; convnp exports "
                            f"{', '.join(sorted(cls.__name__ for cls in OPS))}")
        emit(builder, str(index), layer, shapes[index])
    return input_name, input_shape


def _prepare(builder: _Builder, standardize: Standardize, channels: int) -> None:
    """``x * (scale / std[c]) - mean[c] / std[c]``: :meth:`Standardize.__call__`'s two float32 operations, with
    its constants rounded to float32 the same way, broadcast over the last (channel) axis."""
    if len(standardize.mean) != channels:
        raise OnnxError(f"export: the preparation has {len(standardize.mean)} channel(s), the model takes {channels}")
    std = np.asarray(standardize.std)
    factor = builder.constant("preprocessing.factor", standardize.scale / std)  # (C,)
    shift = builder.constant("preprocessing.shift", np.asarray(standardize.mean) / std)  # (C,)
    builder.node("Mul", "preprocessing.scaled", [factor])
    builder.node("Sub", "preprocessing.standardized", [shift])


def _finish(builder: _Builder, model: Sequential, input_shape: tuple) -> int:
    """Name the last tensor ``logits`` and add ``probabilities``; returns the number of classes K."""
    out_shape = model.shapes()[-1] if model.layers else input_shape
    if len(out_shape) != 1:
        raise OnnxError(f"export: the network's output must be (N, K) logits, got (N, {', '.join(map(str, out_shape))})"
                        "; end it with Flatten or GlobalAvgPool2D and a Dense layer")
    if builder.nodes and builder.nodes[-1].output[0] == builder.x:
        builder.nodes[-1].output[0] = builder.x = metadata.OUTPUT_LOGITS  # the last node writes the output itself
    else:
        builder.node("Identity", metadata.OUTPUT_LOGITS)
    builder.nodes.append(builder.helper.make_node("Softmax", [metadata.OUTPUT_LOGITS], [metadata.OUTPUT_PROBABILITIES],
                                                  name="softmax", axis=1))
    return int(out_shape[0])


# ---- one function per layer class: (builder, index, layer, input shape of one sample) -------------------------------
def _conv(builder: _Builder, index: str, layer: Conv2D, shape: tuple) -> None:
    """``Conv`` on NCHW maps with explicit pads ``[top, left, bottom, right]`` (convnp's "same" may be uneven)."""
    builder.to("NCHW", f"{index}.to_nchw")
    weight = builder.constant(f"{index}.weight", conv_weight_to_onnx(layer.params["weight"]))  # (C_out, C_in, kH, kW)
    bias = [builder.constant(f"{index}.bias", layer.params["bias"])] if layer.use_bias else []
    pads = resolve_padding(layer.padding, layer.kernel_size, layer.stride, shape[:2])  # ((top, bottom), (left, right))
    builder.node("Conv", f"{index}.Conv2D", [weight, *bias], kernel_shape=list(layer.kernel_size),
                 strides=list(layer.stride), pads=conv_pads_to_onnx(pads), dilations=[1, 1], group=1)


def _pool(op: str, **attributes):
    """``MaxPool`` or ``AveragePool`` on NCHW maps: no padding, windows that do not fit dropped (floor)."""

    def emit(builder: _Builder, index: str, layer, shape: tuple) -> None:
        builder.to("NCHW", f"{index}.to_nchw")
        builder.node(op, f"{index}.{type(layer).__name__}", kernel_shape=list(layer.kernel_size),
                     strides=list(layer.stride), pads=[0, 0, 0, 0], ceil_mode=0, **attributes)

    return emit


def _global_avgpool(builder: _Builder, index: str, layer: GlobalAvgPool2D, shape: tuple) -> None:
    """``GlobalAveragePool`` ``(N, C, H, W) -> (N, C, 1, 1)``, then ``Flatten`` to convnp's ``(N, C)``."""
    builder.to("NCHW", f"{index}.to_nchw")
    builder.node("GlobalAveragePool", f"{index}.GlobalAvgPool2D")
    builder.node("Flatten", f"{index}.flatten", axis=1)  # (N, C, 1, 1) -> (N, C): one order, whatever the layout
    builder.layout = "flat"


def _batchnorm(builder: _Builder, index: str, layer, shape: tuple) -> None:
    """``BatchNormalization`` with the running statistics (inference): channels on axis 1, NCHW or ``(N, C)``."""
    if len(shape) == 3:
        builder.to("NCHW", f"{index}.to_nchw")
    names = [builder.constant(f"{index}.{key}", store[key]) for store, key in (
        (layer.params, "weight"), (layer.params, "bias"), (layer.state, "running_mean"), (layer.state, "running_var"))]
    builder.node("BatchNormalization", f"{index}.{type(layer).__name__}", names, epsilon=float(layer.eps))


def _flatten(builder: _Builder, index: str, layer: Flatten, shape: tuple) -> None:
    """Back to ``(N, H, W, C)`` if needed, then ``Flatten``: features in convnp's ``(h, w, c)`` order."""
    if builder.layout == "flat":
        return  # (N, F) stays (N, F)
    builder.to("NHWC", f"{index}.to_nhwc")
    builder.node("Flatten", f"{index}.Flatten", axis=1)
    builder.layout = "flat"


def _dense(builder: _Builder, index: str, layer: Dense, shape: tuple) -> None:
    """``Gemm`` with convnp's weight ``(in_features, out_features)`` as ``B`` (``transB = 0``)."""
    weight = builder.constant(f"{index}.weight", layer.params["weight"])  # (in_features, out_features)
    bias = [builder.constant(f"{index}.bias", layer.params["bias"])] if layer.use_bias else []
    builder.node("Gemm", f"{index}.Dense", [weight, *bias], alpha=1.0, beta=1.0, transA=0, transB=0)


def _elementwise(op: str, **attributes):
    """An element-wise operation: the same in either layout."""

    def emit(builder: _Builder, index: str, layer, shape: tuple) -> None:
        extra = {"alpha": float(layer.negative_slope)} if op == "LeakyRelu" else {}
        builder.node(op, f"{index}.{type(layer).__name__}", **attributes, **extra)

    return emit


def _dropout(builder: _Builder, index: str, layer: Dropout, shape: tuple) -> None:
    """Nothing: Dropout is the identity at inference."""


#: The ONNX form of each layer class (exact classes: a subclass may behave differently, so it is refused). The
#: notebook's max pool differs from MaxPool2D in its backward only, so its inference graph is MaxPool's.
OPS = {
    Conv2D: _conv,
    MaxPool2D: _pool("MaxPool"),
    NotebookMaxPool2D: _pool("MaxPool"),
    AvgPool2D: _pool("AveragePool", count_include_pad=0),
    GlobalAvgPool2D: _global_avgpool,
    BatchNorm2D: _batchnorm,
    BatchNorm1D: _batchnorm,
    Flatten: _flatten,
    Dense: _dense,
    Dropout: _dropout,
    ReLU: _elementwise("Relu"),
    LeakyReLU: _elementwise("LeakyRelu"),
    Tanh: _elementwise("Tanh"),
    Sigmoid: _elementwise("Sigmoid"),
}
