"""The model zoo: named constructors returning a :class:`~convnp.sequential.Sequential`.

Every builder takes ``rng`` (a ``np.random.Generator``) and ``dtype`` and returns a network from ``(N, 28, 28, 1)``
images to ``(N, 10)`` logits. Their recommended training settings are in :data:`convnp.models.recipes.RECIPES`.
"""

from __future__ import annotations

from convnp.models.best import best
from convnp.models.convnet import convnet
from convnp.models.lenet5 import lenet5
from convnp.models.notebook import notebook
from convnp.models.recipes import RECIPES
from convnp.models.sprint import sprint

# In order of strength (test accuracy), which is also the order listings and error messages use.
MODELS = {"notebook": notebook, "sprint": sprint, "lenet5": lenet5, "convnet": convnet, "best": best}


def get_model(name: str, **kwargs):
    """Build the zoo model called ``name`` (one of :data:`MODELS`)."""
    try:
        build = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None
    return build(**kwargs)


__all__ = ["MODELS", "RECIPES", "best", "convnet", "get_model", "lenet5", "notebook"]
