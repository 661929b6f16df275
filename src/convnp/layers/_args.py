"""Checks for real-number constructor arguments (rates, slopes, epsilons), shared by the layers that take them.

Errors follow :mod:`convnp._checks`: the owner, the argument, what was expected, what came.
"""

from __future__ import annotations

import math
import numbers


def real_number(
    value,
    name: str,
    owner: str,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check that ``value`` is a finite real number in the interval from ``low`` to ``high``; return it as a float.

    ``low_open``/``high_open`` exclude that end. ``bool`` is refused although Python counts it as a number:
    ``p=True`` is a mistake, not a rate of 1.
    """
    if math.isinf(low) and math.isinf(high):
        wanted = "a finite number"
    elif math.isinf(high):
        wanted = f"a finite number {'>' if low_open else '>='} {low:g}"
    elif math.isinf(low):
        wanted = f"a number {'<' if high_open else '<='} {high:g}"
    else:
        wanted = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"{owner}: {name} must be {wanted}, got {value!r}")
    number = float(value)
    above = number > low if low_open else number >= low
    below = number < high if high_open else number <= high
    if not (math.isfinite(number) and above and below):
        raise ValueError(f"{owner}: {name} must be {wanted}, got {value!r}")
    return number
