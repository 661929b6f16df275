"""A web page for a saved model: ``convnp serve CHECKPOINT``, or :func:`serve` from Python (needs
``pip install 'convnp[web]'``). A 28x28x1 digit model gets the drawing pad (draw a digit, watch the guess); any other
model the upload page (choose, drop or paste a picture, see its top 5 classes by name).

- :mod:`~convnp.web.app`: the FastAPI app (page, ``POST /api/predict``, ``GET /api/health``);
- :mod:`~convnp.web.classifiers`: the checkpoint behind it, one kind per page: how a picture is prepared and
  classified;
- :mod:`~convnp.web.schemas`: the JSON it answers with;
- :mod:`~convnp.web.decode`: a request's body -> its picture;
- :mod:`~convnp.web.server`: :func:`serve`, which binds the port, prints where it listens and runs uvicorn;
- :mod:`~convnp.web.command`: the ``convnp serve`` subcommand (its options), registered by name by
  :mod:`convnp.cli.main`, so this package never imports :mod:`convnp.cli`.

FastAPI and pydantic are imported in :mod:`~convnp.web.app`, :mod:`~convnp.web.classifiers`,
:mod:`~convnp.web.schemas` and :mod:`~convnp.web.decode` only, and uvicorn inside :func:`serve`, so importing this
package costs nothing.
"""

from convnp.web.server import serve

__all__ = ["serve"]
