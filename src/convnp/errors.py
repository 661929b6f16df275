"""Exceptions that the command line reports as one clean line.

Everything convnp raises on bad input is a ``ValueError`` (wrong values, shapes, dtypes) or ``TypeError`` (wrong
types), following NumPy and scikit-learn. The classes below subclass those so callers can catch either the precise
class or the built-in one.
"""


class DataError(ValueError):
    """A data file or array is missing, malformed or inconsistent (IDX, ``.npz``, images)."""


class DataNotFoundError(DataError, FileNotFoundError):
    """No source could supply a data set; the message lists what was tried and how to supply it by hand."""


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, or does not fit the model it is loaded into."""
