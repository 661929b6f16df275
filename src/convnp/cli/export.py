"""``convnp export``: a checkpoint as an ONNX file, for ONNX Runtime, Netron and other frameworks."""

from __future__ import annotations

import argparse

from convnp.onnx import metadata
from convnp.onnx.export import DEFAULT_OPSET, MIN_OPSET, to_onnx, write_model


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a checkpoint as an ONNX file (pixels in, logits and probabilities out)",
        description="Load a checkpoint (a .npz file, or a run folder: its best.npz, else last.npz) and write it as "
        "an ONNX model: input 'pixels', float32 0..255, channels-last (N, H, W, C) with N free, standardised "
        "inside the graph as in training; outputs 'logits' and 'probabilities' (N, K). The class names, the convnp "
        "version, the input's description and the preparation are in the model's metadata. Needs the onnx "
        "package: pip install 'convnp[onnx]'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="checkpoint file (.npz), run folder, or a pretrained model's name (mnist-best: convnp models)")
    p.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write (replaced if it exists)")
    p.add_argument("--raw", action="store_true",
                   help="export the network alone: its input is the standardised tensor, not pixels")
    p.add_argument("--opset", metavar="N", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset to write, {MIN_OPSET} or newer")
    p.set_defaults(run=run)


def run(args) -> int:
    proto = to_onnx(args.checkpoint, raw=args.raw, opset=args.opset)
    path = write_model(proto, args.out)
    graph = proto.graph
    (source,), outputs = graph.input, [o.name for o in graph.output]
    dims = [d.dim_param or str(d.dim_value) for d in source.type.tensor_type.shape.dim]
    n_classes = graph.output[0].type.tensor_type.shape.dim[1].dim_value
    print(f"{path}: opset {args.opset}, {len(graph.node)} nodes, {path.stat().st_size:,} bytes")
    print(f"input {source.name} float32 ({', '.join(dims)}) -> {', '.join(outputs)} ({metadata.BATCH_DIM}, {n_classes})")
    return 0
