"""A draw-a-digit web page for a saved model: ``convnp serve CHECKPOINT``, or :func:`serve` from Python (needs
``pip install 'convnp[web]'``).

- :mod:`~convnp.web.app`: the FastAPI app (page, ``POST /api/predict``, ``GET /api/health``);
- :mod:`~convnp.web.decode`: a request's body -> the grey picture of its digit;
- :mod:`~convnp.web.server`: :func:`serve`, which binds the port, prints where it listens and runs uvicorn;
- :mod:`~convnp.web.command`: the ``convnp serve`` subcommand (its options), registered by name by
  :mod:`convnp.cli.main`, so this package never imports :mod:`convnp.cli`.

FastAPI is imported in :mod:`~convnp.web.app` and :mod:`~convnp.web.decode` only, and uvicorn inside :func:`serve`,
so importing this package costs nothing.
"""

from convnp.web.server import serve

__all__ = ["serve"]
