"""Parsers from text (a value typed on the command line) to a setting, each naming what it expected.

Each raises ``ValueError("expected <what>, got <text>")``, so a front end can show the message as it is:
:mod:`convnp.cli._args` turns it into argparse's one-line usage error. :class:`convnp.train.config.TrainConfig`'s
fields name these as the parsers of their flags.
"""

from __future__ import annotations

import math
import os


def _number(text: str, kind, ok, expected: str):
    """``kind(text)`` if it parses and ``ok(value)`` holds, else a ValueError saying what was ``expected``."""
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise ValueError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """A finite number > 0."""
    return _number(text, float, lambda v: 0 < v < math.inf, "a positive finite number")


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    return _number(text, float, lambda v: 0 <= v < math.inf, "a number >= 0")


def unit_float(text: str) -> float:
    """A number in [0, 1)."""
    return _number(text, float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def absolute_path(text: str) -> str | None:
    """The path made absolute (None for empty text), so that it names the same folder from any working directory."""
    return os.path.abspath(text) if text else None
