"""``convnp serve``: the draw-a-digit web page for a saved model (FastAPI + uvicorn, the ``web`` extra)."""

from __future__ import annotations

import argparse
import importlib.util
import socket


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a web page to draw digits and watch a saved model classify them",
        description="Load a checkpoint (a .npz file, or a run folder: its best.npz, else last.npz) and serve a page "
        "where you draw a digit and see the prediction, the ten probabilities and the first convolution layer's "
        "feature maps. JSON API: POST /api/predict, GET /api/health; OpenAPI docs at /docs. Listens on the loopback "
        "interface unless --host says otherwise. Once it accepts connections it prints one line, 'convnp: serving "
        "CHECKPOINT on http://HOST:PORT/ ...', with the port it really has (--port 0 takes any free one). Needs pip "
        "install 'convnp[web]'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file (.npz) or run folder of a 28x28 digit model")
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


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` and listening; connections queue from now on, before uvicorn runs.

    Binding here rather than inside uvicorn lets ``--port 0`` report the port the system chose, and lets the
    "serving on" line be printed only once connections are really accepted (scripts and tests wait for it).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)  # uvicorn's default backlog
    except OSError as err:
        # create_server appends "(while attempting to bind on address ...)" to the reason; the line says it already.
        reason = (err.strerror or str(err)).split(" (while attempting")[0]
        raise OSError(
            f"--host {host} --port {port}: cannot listen there ({reason}); choose another --port, or "
            "--port 0 for any free one"
        ) from None


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
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}/" if sock.family == socket.AF_INET6 else f"http://{host}:{port}/"
    print(f"convnp: serving {args.checkpoint} on {url} (Ctrl+C stops)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])  # returns on Ctrl+C or SIGTERM, after closing the connections
    sock.close()
    return 0
