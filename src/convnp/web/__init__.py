"""A draw-a-digit web page for a saved model: ``convnp serve CHECKPOINT`` (needs ``pip install 'convnp[web]'``).

FastAPI is imported in :mod:`convnp.web.app` and :mod:`convnp.web.decode` only, so importing this package costs
nothing.
"""
