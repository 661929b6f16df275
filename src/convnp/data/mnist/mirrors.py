"""The public IDX mirrors: each of the four gzipped files downloaded, decompressed, and checked against its sha256.

Each file is asked of the mirrors in order; a mirror that cannot be reached at all is not asked for the other
files. ``MIRRORS`` and :func:`fetch_url` are looked up at call time, so tests can serve ``file://`` folders.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence

import numpy as np

import convnp.data.mnist.published as published
from convnp.data.idx import gunzip, parse_idx
from convnp.data.mnist.published import IDX_FILES, MAX_DOWNLOAD_BYTES, check_mnist
from convnp.data.mnist.source import describe
from convnp.errors import DataError

__all__ = ["MIRRORS", "fetch_url", "read_mirrors"]

logger = logging.getLogger("convnp.data")

# Base URLs, tried in order for each file.
MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]


def fetch_url(url: str, timeout: float) -> bytes:
    """Download ``url`` (any scheme urllib knows, ``file://`` included) and return its bytes.

    Parameters
    ----------
    url : str
    timeout : float
        Seconds to wait for the connection and for each read.

    Raises
    ------
    urllib.error.URLError, OSError
        On network errors and HTTP error statuses.
    DataError
        If the response is larger than ``MAX_DOWNLOAD_BYTES``.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "convnp"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data = response.read(MAX_DOWNLOAD_BYTES + 1)
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise DataError(f"{url}: response is larger than {MAX_DOWNLOAD_BYTES} bytes, more than any MNIST file")
    return data


def _is_network_error(exc: BaseException) -> bool:
    """True when the mirror itself is unreachable, so there is no point asking it for the other files."""
    if isinstance(exc, urllib.error.HTTPError):
        return False  # the server answered: only this file is missing there
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, (socket.gaierror, ConnectionError, TimeoutError, ssl.SSLError))


def _verified_idx(data: bytes, name: str, url: str) -> np.ndarray:
    """Decompress a downloaded IDX file, check its sha256, then parse it."""
    raw = gunzip(data, url, max_bytes=MAX_DOWNLOAD_BYTES) if data[:2] == b"\x1f\x8b" else data
    expected = published.IDX_SHA256.get(name)  # looked up now, so tests can trust files of their own
    if expected is None:
        raise DataError(f"{url}: no known sha256 for {name}; refusing unverified data")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected:
        raise DataError(
            f"{url}: sha256 of the decompressed {name} ({len(raw)} bytes) is {digest}, expected {expected}"
        )
    return parse_idx(raw, url)


def _fetch_one(name: str, bases: Sequence[str], timeout: float, unreachable: dict[str, str]) -> tuple[np.ndarray, str]:
    """The IDX file ``name`` from the first mirror that serves it verified -> (its array, its URL).

    ``unreachable`` maps a base URL to why it could not be reached; it is read and filled here, so a mirror that is
    down is asked only once.
    """
    errors = []
    for base in bases:
        url = base.rstrip("/") + "/" + name + ".gz"
        if base in unreachable:
            errors.append(f"{base}: skipped, unreachable ({unreachable[base]})")
            continue
        try:
            data = fetch_url(url, timeout)
        except Exception as exc:  # noqa: BLE001 - any failure of one mirror falls through to the next
            reason = describe(exc)
            if _is_network_error(exc):
                unreachable[base] = reason
            errors.append(f"{url}: {reason}")
            logger.info("MNIST mirror %s failed: %s", url, reason)
            continue
        try:
            array = _verified_idx(data, name, url)
        except DataError as exc:
            errors.append(str(exc))
            logger.info("MNIST mirror %s served bad data: %s", url, exc)
            continue
        logger.info("MNIST %s downloaded from %s", name, url)
        return array, url
    if not errors:
        raise DataError("no mirror URLs given")
    raise DataError(f"no mirror served {name}.gz: " + "; ".join(errors))


def read_mirrors(bases: Sequence[str], timeout: float) -> dict[str, np.ndarray]:
    """The four arrays from the mirrors ``bases`` (base URLs), each file hash-checked, then all checked together.

    Raises
    ------
    DataError
        Naming, for the first file no mirror served, what each mirror did.
    """
    arrays: dict[str, np.ndarray] = {}
    where: dict[str, str] = {}
    unreachable: dict[str, str] = {}  # base URL -> why; skipped for the remaining files
    for key, name in IDX_FILES.items():
        arrays[key], where[key] = _fetch_one(name, bases, timeout, unreachable)
    return check_mnist(arrays, where)
