"""``convnp serve``: the command line of the web page (FastAPI + uvicorn, the ``web`` extra): the drawing pad for a
digit model, the upload page for any other.

A subcommand module like those in :mod:`convnp.cli` (``add_parser(subparsers, parents)`` and ``run(args)``), kept
with the web app it starts: ``convnp.cli.main`` lists it by name in its command table, so cli/ and web/ never import
each other. Importing it needs no web extra; :func:`convnp.web.serve` says what is missing when it runs.
"""

from __future__ import annotations

import argparse

from convnp.web.server import serve


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a web page where a saved model classifies drawn digits or uploaded pictures",
        description="Load a checkpoint (a .npz file, or a run folder: its best.npz, else last.npz) and serve a page "
        "for it. A 28x28x1 digit model gets a drawing pad: draw a digit and see the prediction, the ten "
        "probabilities and the first convolution layer's feature maps. Any other model gets an upload page: choose "
        "a picture (file picker, drag and drop, or paste with Ctrl+V) and see it, the part the model sees, and the "
        "top 5 classes by name with their probabilities; pictures are prepared as convnp predict prepares files. "
        "JSON API: POST /api/predict, GET /api/health; OpenAPI docs at /docs. Listens on the loopback interface "
        "unless --host says otherwise. Once it accepts connections it prints one line, 'convnp: serving CHECKPOINT "
        "on http://HOST:PORT/ ...', with the port it really has (--port 0 takes any free one). Needs pip install "
        "'convnp[web]'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="checkpoint file (.npz), run folder, or a pretrained model's name (mnist-best: convnp models)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0 makes the page reachable from other machines)")
    p.add_argument("--port", type=_port, default=8000,
                   help="TCP port to listen on; 0 lets the system pick a free one (the printed line says which)")
    p.set_defaults(run=run)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535 (0: any free port), got {text!r}")
    return value


def run(args) -> int:
    serve(args.checkpoint, args.host, args.port)
    return 0
