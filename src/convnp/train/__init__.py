"""Training: the mini-batch loop and its evaluation."""

from convnp.train.loop import evaluate, fit

__all__ = ["evaluate", "fit"]
