"""Walking an ONNX graph node by node into a chain of convnp layers, tracking the layout as it goes.

The graph must be a chain: one image input, and each node that is not a constant takes the one activation the
node before it made (a second reader of an activation is a branch, two activations read by one node a skip
connection; both are refused). Constants (initializers, ``Constant`` nodes and the shape arithmetic PyTorch writes
for ``x.view(x.size(0), -1)``: ``Shape``, ``Gather``, ``Unsqueeze``, ``Concat``...) are folded as they come, with
the batch size as a symbol (:data:`BATCH`), within a budget of :data:`MAX_FOLDED_ELEMENTS`.

The activation in hand is a :class:`Head`: its ONNX shape and how its axes relate to convnp's tensor. A graph
written by PyTorch is channels-first throughout, ``axes = (0, 3, 1, 2)``; one written by convnp starts
channels-last and transposes to channels-first for its first convolution. ``Transpose`` nodes only change
``axes`` (convnp has one layout, so they become no layer). Where ONNX flattens, the order of the features is kept
in ``rows``, and the dense (or batch-norm) layer reading them takes its rows in convnp's order. Elementwise
arithmetic before the first layer (a preparation inside the graph, ``x * a + b`` per channel) is collected in
``prefix``, for :mod:`convnp.onnx.load` to turn into the checkpoint's :class:`~convnp.data.transforms.Standardize`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from convnp.onnx import metadata
from convnp.onnx.layout import NHWC_TO_NCHW, OnnxError
from convnp.onnx.read import MAX_TENSOR_ELEMENTS, attributes, node_label, tensor_array

#: Stands for the free batch size in folded shape tensors (``Shape`` of an activation).
BATCH = -(1 << 62)
#: The most elements all folded constants may hold together.
MAX_FOLDED_ELEMENTS = MAX_TENSOR_ELEMENTS
#: The most values one input sample may have (``H * W * C``).
MAX_INPUT_VALUES = 1 << 26
#: Element types of the graph's input -> the convnp model's dtype.
INPUT_DTYPES = {1: np.float32, 11: np.float64}
#: Elementwise nodes a preparation inside the graph may be made of.
ARITHMETIC = ("Mul", "Add", "Sub", "Div")


@dataclass
class Head:
    """The activation the chain has reached.

    Attributes
    ----------
    name : str
        The ONNX tensor's name.
    shape : tuple
        Its ONNX shape; ``shape[0]`` is None (the batch).
    axes : tuple of 4 ints, or None
        Rank 4: ONNX axis ``i`` is axis ``axes[i]`` of convnp's ``(N, H, W, C)``. None for rank 2.
    rows : ndarray of shape `(F,)`, or None
        Rank 2: ONNX feature ``j`` is convnp's feature ``rows[j]``; None when the orders agree.
    pooled : bool
        After ``GlobalAveragePool``: ONNX has ``(N, C, 1, 1)`` where convnp's GlobalAvgPool2D gave ``(N, C)``.
    """

    name: str
    shape: tuple
    axes: tuple | None = None
    rows: np.ndarray | None = None
    pooled: bool = False

    @property
    def convnp_shape(self) -> tuple:
        """The convnp tensor's shape per sample: ``(H, W, C)`` or ``(F,)``."""
        if self.axes is None:
            return tuple(self.shape[1:])
        full = [0, 0, 0, 0]
        for i, axis in enumerate(self.axes):
            full[axis] = self.shape[i]
        return (full[3],) if self.pooled else tuple(full[1:])

    @property
    def is_nchw(self) -> bool:
        """Whether ONNX holds this map channels-first, as Conv, the pools and BatchNormalization read it."""
        return self.axes == NHWC_TO_NCHW and not self.pooled


@dataclass
class LayerSpec:
    """One convnp layer found in the graph: class name, constructor arguments, arrays, and where it came from."""

    cls: str
    config: dict
    params: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    node: str = ""
    in_shape: tuple = ()
    output: str = ""


class Chain:
    """The walk's state; :func:`walk` drives it with the operator tables of :mod:`convnp.onnx.import_ops`."""

    def __init__(self, model, opset: int, path):
        self.model, self.graph, self.opset, self.path = model, model.graph, opset, path
        self.consts: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple] = {}  # every activation's ONNX shape, for Shape nodes
        self.specs: list[LayerSpec] = []
        self.head: Head | None = None
        # [a, b], (C,) float64 each: the input's preparation x * a + b per channel, from arithmetic before any layer
        self.prefix: list | None = None
        self.fixed_batch: int | None = None  # the input's batch size, when the graph fixes one
        self.input_shape: tuple = ()  # convnp's (H, W, C) of the graph's input
        self.logits: str | None = None  # the tensor a final Softmax read
        self.final_op: str | None = None
        self.label = ""
        self.folded = 0
        self.dtype = np.float32
        self.readers = _readers(self.graph)

    def fail(self, reason: str):
        """Raise the one-line error naming the file and the node being read."""
        raise OnnxError(f"{self.path}: {self.label}: {reason}" if self.label else f"{self.path}: {reason}")

    def const(self, name: str, what: str) -> np.ndarray:
        """Input ``name`` of the current node, which must be a constant."""
        if name not in self.consts:
            self.fail(f"its {what} must be a constant (an initializer), but {name!r} is computed by the graph")
        return self.consts[name]

    def add_const(self, name: str, value: np.ndarray) -> None:
        """Keep a folded constant, within the budget of :data:`MAX_FOLDED_ELEMENTS`."""
        self.folded += int(np.size(value))
        if self.folded > MAX_FOLDED_ELEMENTS:
            self.fail(f"folding constants would hold more than {MAX_FOLDED_ELEMENTS:,} values")
        self.consts[name] = np.asarray(value)

    def emit(self, cls: str, config: dict, **arrays) -> LayerSpec:
        """Append a layer reading the current head (the next :meth:`advance` names its output)."""
        spec = LayerSpec(cls, config, arrays.get("params", {}), arrays.get("state", {}), self.label,
                         self.head.convnp_shape)
        self.specs.append(spec)
        return spec

    def advance(self, node, shape: tuple, **changes) -> Head:
        """The node's first output becomes the head, of ONNX ``shape``; ``changes`` replace Head fields."""
        for extra in node.output[1:]:
            if extra and self.readers.get(extra):
                self.fail(f"its output {extra!r} is used, but convnp keeps only the first output of a {node.op_type}")
        fields = {"axes": self.head.axes, "rows": self.head.rows, "pooled": self.head.pooled, **changes}
        self.head = Head(node.output[0], tuple(shape), **fields)
        if self.specs and not self.specs[-1].output:
            self.specs[-1].output = self.head.name
        self.shapes[self.head.name] = self.head.shape
        return self.head

    def attrs(self, node) -> dict:
        return attributes(node, f"{self.path}: {self.label}")


def _readers(graph) -> dict[str, int]:
    """How many nodes read each tensor (graph outputs count as a reader)."""
    counts: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            counts[name] = counts.get(name, 0) + 1
    for out in graph.output:
        counts[out.name] = counts.get(out.name, 0) + 1
    return counts


def walk(model, opset: int, path, layer_ops: dict, fold) -> Chain:
    """Read every node of ``model``'s graph into a :class:`Chain` of layer specs (see the module docstring).

    ``layer_ops`` maps an operator reading the activation to its function ``(chain, node, attrs)``; ``fold`` computes
    a node of constants (:mod:`convnp.onnx.import_ops` holds both).
    """
    chain = Chain(model, opset, path)
    for tensor in chain.graph.initializer:
        chain.consts[tensor.name] = tensor_array(tensor, f"{path}: initializer {tensor.name[:80]!r}")
    _read_input(chain)
    for index, node in enumerate(chain.graph.node):
        chain.label = node_label(node, index)
        _step(chain, node, layer_ops, fold)
    chain.label = ""
    _check_outputs(chain)
    return chain


def _step(chain: Chain, node, layer_ops: dict, fold) -> None:
    """One node: fold it, read a shape, or hand it to its operator in ``layer_ops``."""
    inputs = [name for name in node.input if name]
    unknown = [name for name in inputs if name not in chain.consts and name not in chain.shapes]
    if unknown:
        chain.fail(f"reads {unknown[0][:80]!r}, which no earlier node, initializer or graph input makes "
                   "(nodes out of order, or a truncated graph)")
    activations = list(dict.fromkeys(name for name in inputs if name in chain.shapes))
    if not node.output or not node.output[0]:
        chain.fail("has no output")
    try:
        _dispatch(chain, node, activations, layer_ops, fold)
    except (IndexError, KeyError, TypeError, AttributeError, ZeroDivisionError, OverflowError) as err:
        # A malformed node (a missing input or attribute, a wrong type) is the file's fault, said in one line.
        chain.fail(f"is malformed ({type(err).__name__}: {str(err)[:80]})")


def _dispatch(chain: Chain, node, activations: list, layer_ops: dict, fold) -> None:
    """Fold the node, read a shape, or hand it to its operator (see :func:`_step`)."""
    if node.op_type == "Shape" and activations:
        return _shape_of_activation(chain, node, activations[0])
    if not activations:
        return fold(chain, node, chain.attrs(node))
    if len(activations) > 1:
        chain.fail(f"combines {len(activations)} activations ({', '.join(repr(a[:40]) for a in activations)}): "
                   "a skip connection or merged branches, which a convnp Sequential cannot express")
    if activations[0] != chain.head.name:
        chain.fail(f"reads {activations[0][:80]!r}, which another node already took: the graph branches (a skip "
                   "connection or parallel paths), which a convnp Sequential cannot express")
    if chain.final_op is not None:
        chain.fail(f"follows the final {chain.final_op}; a convnp model ends at its class scores")
    handler = layer_ops.get(node.op_type)
    if handler is None:
        chain.fail(f"operator {node.op_type} is not one convnp imports ({', '.join(sorted(layer_ops))})")
    handler(chain, node, chain.attrs(node))


def _shape_of_activation(chain: Chain, node, name: str) -> None:
    """``Shape`` of an activation: its ONNX shape with :data:`BATCH` for the batch (opset 15's start/end kept)."""
    attrs = chain.attrs(node)
    shape = np.array([BATCH if d is None else d for d in chain.shapes[name]], dtype=np.int64)
    start, end = attrs.get("start", 0), attrs.get("end", len(shape))
    chain.add_const(node.output[0], shape[start:end])


def _read_input(chain: Chain) -> None:
    """The graph's one input: a float image batch ``(N, d1, d2, d3)``, fixed sizes after the batch."""
    names = set(chain.consts)
    inputs = [value for value in chain.graph.input if value.name not in names]
    if len(inputs) != 1:
        chain.fail(f"has {len(inputs)} inputs ({', '.join(repr(v.name[:40]) for v in inputs)}); a convnp model "
                   "takes one batch of images")
    value = inputs[0]
    kind = value.type.tensor_type
    if not value.type.HasField("tensor_type") or kind.elem_type not in INPUT_DTYPES:
        chain.fail(f"input {value.name[:80]!r} must be a float32 or float64 tensor")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in kind.shape.dim]
    if len(dims) not in (2, 4) or any(d is None or d < 1 for d in dims[1:]):
        chain.fail(f"input {value.name[:80]!r} has shape {_shape_text(dims)}; a convnp model takes images "
                   "(N, C, H, W) or (N, H, W, C), or vectors (N, F), of fixed size")
    if math.prod(dims[1:]) > MAX_INPUT_VALUES:
        chain.fail(f"input {value.name[:80]!r} of shape {_shape_text(dims)} has more than {MAX_INPUT_VALUES:,} "
                   "values per image")
    chain.dtype = INPUT_DTYPES[kind.elem_type]
    batch = kind.shape.dim[0]
    chain.fixed_batch = batch.dim_value if batch.HasField("dim_value") else None
    axes = _input_axes(chain, value.name) if len(dims) == 4 else None
    chain.head = Head(value.name, (None, *dims[1:]), axes=axes)
    chain.shapes[value.name] = chain.head.shape
    chain.input_shape = chain.head.convnp_shape


def _shape_text(dims) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def _input_axes(chain: Chain, name: str) -> tuple:
    """How the input's axes map to convnp's: channels-first, unless the first node past the preparation is a
    ``Transpose`` that makes it channels-first (then whatever that transpose undoes, e.g. channels-last), or the
    file is convnp's own with a channels-last input and no such transpose (a network with no spatial layer)."""
    consumers: dict[str, list] = {}
    for node in chain.graph.node:
        for tensor in dict.fromkeys(node.input):
            if node.op_type != "Shape":
                consumers.setdefault(tensor, []).append(node)
    for _ in range(len(chain.graph.node)):
        readers = consumers.get(name, [])
        if len(readers) != 1:
            break
        node = readers[0]
        if node.op_type in (*ARITHMETIC, "Identity", "Cast"):
            name = node.output[0]
            continue
        if node.op_type == "Transpose":
            perm = attributes(node, f"{chain.path}: {node_label(node, 0)}").get("perm")
            if perm is not None and sorted(perm) == [0, 1, 2, 3] and perm[0] == 0:
                axes = [0, 0, 0, 0]
                for i, p in enumerate(perm):
                    axes[p] = NHWC_TO_NCHW[i]
                return tuple(axes)
        break
    props = {p.key: p.value for p in chain.model.metadata_props}
    return (0, 1, 2, 3) if props.get(metadata.INPUT_LAYOUT) == "NHWC" else NHWC_TO_NCHW


def _check_outputs(chain: Chain) -> None:
    """The graph's outputs must be the chain's end: its scores ``(N, K)``, and perhaps their softmax."""
    head = chain.head
    ends = {head.name, chain.logits or head.name}
    outputs = [value.name for value in chain.graph.output]
    stray = [name for name in outputs if name not in ends]
    if stray or not outputs:
        chain.fail(f"output {stray[0][:80]!r} is not the end of the chain of layers" if stray else "has no outputs")
    if not chain.specs:
        chain.fail("holds no layer convnp can import")
    if head.axes is not None and not head.pooled:
        chain.fail(f"ends with feature maps of shape {head.shape}, not class scores (N, K); flatten them first")
    if head.rows is not None:
        chain.fail("ends with flattened feature maps in another order than convnp's, not with class scores")
