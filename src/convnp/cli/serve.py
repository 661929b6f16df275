"""``convnp serve``: the draw-a-digit web page for a saved model (FastAPI + uvicorn, the ``web`` extra)."""

from __future__ import annotations

import argparse
import importlib.util

from convnp.cli._args import positive_int


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a web page to draw digits and watch a saved model classify them",
        description="Load a checkpoint (a .npz file, or a run folder: its best.npz, else last.npz) and serve a page "
        "where you draw a digit and see the prediction, the ten probabilities and the first convolution layer's "
        "feature maps. JSON API: POST /api/predict, GET /api/health; OpenAPI docs at /docs. Listens on the loopback "
        "interface unless --host says otherwise. Needs pip install 'convnp[web]'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file (.npz) or run folder of a 28x28 digit model")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0 makes the page reachable from other machines)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port to listen on")
    p.set_defaults(run=run)


def _port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1..65535, got {text!r}")
    return value


def run(args) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as err:
        raise RuntimeError(
            f"convnp serve needs the web extra ({err.name} is missing): pip install 'convnp[web]'"
        ) from None
    if importlib.util.find_spec("python_multipart") is None:  # image uploads; Starlette imports it when needed
        raise RuntimeError("convnp serve needs the web extra (python-multipart is missing): pip install 'convnp[web]'")
    from convnp.web.app import create_app

    app = create_app(args.checkpoint)  # a bad checkpoint fails here, before anything listens
    print(f"convnp: serving {args.checkpoint} on http://{args.host}:{args.port}/ (Ctrl+C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
