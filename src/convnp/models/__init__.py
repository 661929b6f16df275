"""The model zoo: named constructors returning a :class:`~convnp.model.Sequential`."""

from __future__ import annotations

from convnp.models.notebook import notebook

MODELS = {"notebook": notebook}


def get_model(name: str, **kwargs):
    """Build the zoo model called ``name`` (one of :data:`MODELS`)."""
    try:
        build = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}") from None
    return build(**kwargs)


__all__ = ["MODELS", "get_model", "notebook"]
