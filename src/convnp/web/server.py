"""Start the web page (the drawing pad, or the upload page of a model that does not take digits): load the
checkpoint, bind the port, say where it listens, run uvicorn.

:func:`serve` is what ``convnp serve`` runs, as a library call. The socket is bound here rather than inside uvicorn,
so that ``port=0`` can report the port the system chose, and so that the "serving on" line is printed only once
connections are really accepted: scripts and tests wait for that line instead of polling.

FastAPI and uvicorn are imported inside :func:`serve`, so importing this module (and :mod:`convnp.web`) costs
nothing and works without the ``web`` extra.
"""

from __future__ import annotations

import importlib.util
import os
import socket

__all__ = ["listen", "serve"]


def serve(checkpoint: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the page and its JSON API for ``checkpoint`` (a ``.npz`` file or a run folder) until Ctrl+C or SIGTERM.

    Once connections are accepted, prints one line to stdout: ``convnp: serving CHECKPOINT on http://HOST:PORT/
    (Ctrl+C stops)``, with the port really bound (``port=0`` takes any free one).

    A 28x28x1 model gets the drawing pad, any other the upload page (:func:`convnp.web.app.create_app`).

    Raises ``RuntimeError`` when the ``web`` extra is missing, :class:`~convnp.errors.CheckpointError` (a
    ``ValueError``) for a checkpoint that cannot be loaded, ``ValueError`` for a model whose input has neither 1 nor
    3 channels, and ``OSError`` when ``(host, port)`` cannot be listened on; each before anything listens.
    """
    uvicorn = _import_web_extra()
    from convnp.web.app import create_app

    app = create_app(checkpoint)  # a bad checkpoint fails here, before anything listens
    sock = listen(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        url = f"http://[{bound_host}]:{bound_port}/"
    else:
        url = f"http://{bound_host}:{bound_port}/"
    print(f"convnp: serving {checkpoint} on {url} (Ctrl+C stops)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])  # returns on Ctrl+C or SIGTERM, after closing the connections
    sock.close()


def _import_web_extra():
    """The ``uvicorn`` module, once FastAPI, uvicorn and python-multipart are known to be installed."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as err:
        raise RuntimeError(
            f"convnp serve needs the web extra ({err.name} is missing): pip install 'convnp[web]'"
        ) from None
    if importlib.util.find_spec("python_multipart") is None:  # image uploads; Starlette imports it when needed
        raise RuntimeError("convnp serve needs the web extra (python-multipart is missing): pip install 'convnp[web]'")
    return uvicorn


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` and listening; connections queue from now on, before uvicorn runs.

    Raises ``OSError`` in one line naming ``--host`` and ``--port`` when the address cannot be listened on.
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
