"""ONNX: convnp networks written as ONNX files, and ONNX files read as convnp networks (``pip install 'convnp[onnx]'``).

- :mod:`convnp.onnx.layout`: how channels-last convnp tensors map to ONNX's channels-first ones (weights, pads,
  the rows of a dense layer after a flatten), and :class:`OnnxError`;
- :mod:`convnp.onnx.metadata`: the tensor names and ``metadata_props`` keys of a convnp file, and their readers;
- :mod:`convnp.onnx.export`: :func:`export` a model or checkpoint as an ONNX file (``convnp export``);
- :mod:`convnp.onnx.load`: :func:`load` an ONNX file as a convnp model (``convnp import``), through
  :mod:`~convnp.onnx.read` (bounded reading of untrusted files), :mod:`~convnp.onnx.walk` (the graph as a chain)
  and :mod:`~convnp.onnx.import_ops` (each operator's convnp layer).

The ``onnx`` package is imported inside the functions that need it (and nowhere else in convnp), so this package
and its layout helpers import without it; ``onnxruntime`` is a test tool only, never imported by convnp.
"""

from convnp.onnx.export import export, to_onnx
from convnp.onnx.layout import OnnxError
from convnp.onnx.load import ImportedModel, load

__all__ = ["ImportedModel", "OnnxError", "export", "load", "to_onnx"]
