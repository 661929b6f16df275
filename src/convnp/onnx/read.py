"""Reading an ONNX file that nobody vouches for: bounded, parsed as protobuf only, nothing executed.

A file is refused, with one :class:`~convnp.onnx.layout.OnnxError` line, before anything large is allocated when:

- it is larger than :data:`MAX_FILE_BYTES`, or is not a protobuf ``ModelProto`` (truncated, random bytes);
- it holds no graph, more than :data:`MAX_NODES` nodes, or a node of a domain other than ONNX's own, or imports
  ONNX's default domain at an opset outside :data:`OPSETS`;
- a tensor keeps its data in an external file (``data_location = EXTERNAL``): convnp reads self-contained files
  only, so no path inside a file can make it open another;
- a tensor claims more than :data:`MAX_TENSOR_ELEMENTS` elements (the dimensions' product is checked in Python
  integers first), or holds fewer or more values than its dimensions say, or of a type convnp does not read.

The ``onnx`` package is imported inside :func:`read_model` only (for its protobuf classes); ``onnx.load`` is not
used, since it would follow external-data paths.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from convnp.onnx.layout import OnnxError

#: The largest file read (bytes); protobuf itself stops at 2 GiB.
MAX_FILE_BYTES = 1 << 30
#: The most elements one tensor (initializer or constant) may claim.
MAX_TENSOR_ELEMENTS = 1 << 28
#: The most nodes a graph may have.
MAX_NODES = 10_000
#: The opsets of ONNX's default domain whose operators' meaning the importer knows (ONNX 1.23 defines up to 28).
OPSETS = range(7, 29)
#: Domains that name ONNX's own operators.
DEFAULT_DOMAINS = ("", "ai.onnx")

#: ``TensorProto.data_type`` -> little-endian NumPy dtype, for the types convnp reads.
DTYPES = {1: "<f4", 2: "u1", 3: "i1", 6: "<i4", 7: "<i8", 9: "?", 10: "<f2", 11: "<f8"}
#: ``TensorProto.data_type`` -> the typed field holding its values when ``raw_data`` is empty.
FIELDS = {1: "float_data", 2: "int32_data", 3: "int32_data", 6: "int32_data", 7: "int64_data", 9: "int32_data",
          10: "int32_data", 11: "double_data"}
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


def read_model(path):
    """Parse ``path`` as an ONNX ``ModelProto`` and check its size, graph, node count, domains and opset.

    Returns
    -------
    model : onnx.ModelProto
    opset : int
        The version of ONNX's default domain the model imports.
    """
    path = Path(path)
    if not path.is_file():
        raise OnnxError(f"{path}: no such ONNX file" if not path.exists() else f"{path}: is not a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise OnnxError(f"{path}: is {size:,} bytes, more than the {MAX_FILE_BYTES:,} convnp reads")
    try:
        import onnx
    except ImportError:
        raise OnnxError("reading ONNX files needs the onnx package: pip install 'convnp[onnx]'") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(path.read_bytes())
    except Exception as err:  # protobuf's DecodeError, told by its module: convnp imports only onnx itself
        if not isinstance(err, (RecursionError, ValueError)) and not type(err).__module__.startswith("google.protobuf"):
            raise
        raise OnnxError(f"{path}: is not an ONNX model (not a valid protobuf: truncated or damaged?)") from None
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise OnnxError(f"{path}: is not an ONNX model (it holds no graph nodes)")
    if len(model.graph.node) > MAX_NODES:
        raise OnnxError(f"{path}: has {len(model.graph.node):,} nodes, more than the {MAX_NODES:,} convnp reads")
    return model, _opset(model, path)


def _opset(model, path: Path) -> int:
    """The default domain's opset (checked against :data:`OPSETS`); every node must use the default domain."""
    versions = {entry.domain: entry.version for entry in model.opset_import}
    version = versions.get("", versions.get("ai.onnx"))
    if version is None:
        raise OnnxError(f"{path}: imports no opset of ONNX's default domain (opset_import: {sorted(versions)})")
    if version not in OPSETS:
        raise OnnxError(f"{path}: uses opset {version} of ONNX's default domain; convnp knows opsets "
                        f"{OPSETS.start} to {OPSETS.stop - 1}")
    for i, node in enumerate(model.graph.node):
        if node.domain not in DEFAULT_DOMAINS:
            raise OnnxError(f"{path}: {node_label(node, i)}: operator of domain {node.domain!r}, which convnp "
                            "does not know (only ONNX's own operators)")
    if len(model.graph.sparse_initializer):
        raise OnnxError(f"{path}: holds sparse initializers, which convnp does not read")
    return int(version)


def node_label(node, index: int) -> str:
    """How messages name a node: ``node 'name' (Op)``, or ``node #index (Op)`` for an unnamed one."""
    name = node.name[:80] if node.name else f"#{index}"
    return f"node {name!r} ({node.op_type[:40]})"


def tensor_array(tensor, what: str) -> np.ndarray:
    """A ``TensorProto`` as a new NumPy array, after checking where its data lives, its size and its type.

    ``what`` names the tensor in messages (``"initializer 'fc.weight'"``).
    """
    if tensor.data_location == EXTERNAL or len(tensor.external_data):
        raise OnnxError(f"{what}: keeps its data in an external file; convnp reads self-contained .onnx files only")
    if tensor.HasField("segment"):
        raise OnnxError(f"{what}: is split into segments, which convnp does not read")
    dims = [int(d) for d in tensor.dims]
    if any(d < 0 for d in dims):
        raise OnnxError(f"{what}: has a negative dimension, dims {dims[:8]}")
    n = math.prod(dims)  # Python integers: no overflow, nothing allocated
    if n > MAX_TENSOR_ELEMENTS:
        raise OnnxError(f"{what}: claims {n:.3g} elements (dims {dims[:8]}), more than the "
                        f"{MAX_TENSOR_ELEMENTS:,} convnp reads")
    if tensor.data_type not in DTYPES:
        raise OnnxError(f"{what}: has data type {tensor.data_type}, which convnp does not read "
                        f"(it reads {sorted(DTYPES)})")
    dtype = np.dtype(DTYPES[tensor.data_type])
    if tensor.raw_data:
        if len(tensor.raw_data) != n * dtype.itemsize:
            raise OnnxError(f"{what}: holds {len(tensor.raw_data):,} bytes of data, but dims {dims[:8]} need "
                            f"{n * dtype.itemsize:,}")
        return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(dims).copy()
    values = getattr(tensor, FIELDS[tensor.data_type])
    if len(values) != n:
        raise OnnxError(f"{what}: holds {len(values):,} values, but dims {dims[:8]} need {n:,}")
    if tensor.data_type == 10:  # float16 values travel as their bit patterns in int32_data
        return np.array(values, dtype=np.uint16).view(np.float16).reshape(dims)
    return np.array(values, dtype=dtype).reshape(dims)


def attributes(node, what: str) -> dict:
    """A node's attributes as ``{name: value}``: numbers, strings, lists of them, tensors as arrays.

    Graph-valued attributes (the bodies of ``If`` and ``Loop``), sparse tensors, types and references to a
    function's attributes are refused: no operator convnp reads takes them.
    """
    kinds = {1: "f", 2: "i", 3: "s", 6: "floats", 7: "ints"}
    out = {}
    for attr in node.attribute:
        if attr.ref_attr_name:
            raise OnnxError(f"{what}: attribute {attr.name!r} refers to a function's attribute, which convnp "
                            "does not read")
        if attr.type in kinds:
            value = getattr(attr, kinds[attr.type])
            if attr.type == 3:
                value = value.decode("utf-8", errors="replace")
            elif attr.type in (6, 7):
                value = list(value)
        elif attr.type == 4:
            value = tensor_array(attr.t, f"{what}: attribute {attr.name!r}")
        else:
            raise OnnxError(f"{what}: attribute {attr.name!r} is of a kind (type {attr.type}) convnp does not read")
        out[attr.name] = value
    return out
