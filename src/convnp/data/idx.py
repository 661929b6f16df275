"""Read and write the IDX format, the container of the original MNIST files.

An IDX file is a 4-byte magic number, one big-endian ``uint32`` per dimension, then the array's elements in C
order, big-endian. The magic number is two zero bytes, a type code and the number of dimensions::

    00 00 08 03  00 00 ea 60  00 00 00 1c  00 00 00 1c  <60000*28*28 bytes>
          |  |   N = 60000    H = 28       W = 28
          |  3 dimensions
          type 0x08: unsigned byte

Files may be gzip-compressed, as the public mirrors serve them.

References
----------
Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits", section "File formats for the
MNIST database", http://yann.lecun.com/exdb/mnist/
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from pathlib import Path

import numpy as np

from convnp.errors import DataError, DataNotFoundError

__all__ = ["read_idx", "write_idx", "parse_idx", "IDX_DTYPES"]

# Type code -> big-endian dtype of the elements, as the format defines them.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def gunzip(data: bytes, name: str, max_bytes: int | None = None) -> bytes:
    """Decompress gzip ``data``; refuse more than ``max_bytes`` of output (a decompression bomb guard)."""
    try:
        # BytesIO over bytes shares the buffer rather than copying it.
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            out = f.read() if max_bytes is None else f.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{name}: looks gzip-compressed but could not be decompressed ({exc})") from exc
    if max_bytes is not None and len(out) > max_bytes:
        raise DataError(f"{name}: decompresses to more than {max_bytes} bytes, more than expected; refusing it")
    return out


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of one IDX file (raw, or gzip-compressed) into an array.

    Parameters
    ----------
    data : bytes
        The file's content. gzip content is recognised by its magic bytes ``1f 8b``, whatever the file was named.
    name : str, optional
        What to call the data in error messages, usually its path or URL.

    Returns
    -------
    ndarray of shape ``dims``
        A new, writable array in native byte order; its dtype follows the type code (see ``IDX_DTYPES``).

    Raises
    ------
    DataError
        If the magic number, the type code or the header is malformed, or the payload is not exactly
        ``prod(dims) * itemsize`` bytes (a truncated file, or trailing bytes).
    """
    if data[:2] == _GZIP_MAGIC:
        data = gunzip(data, name)
    if len(data) < 4:
        raise DataError(f"{name}: is {len(data)} bytes long, too short for the 4-byte IDX magic number")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{name}: is not an IDX file: the magic number must start with two zero bytes, "
            f"found {data[:4].hex(' ')}"
        )
    type_code, n_dims = data[2], data[3]
    if type_code not in IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise DataError(f"{name}: unknown IDX type code 0x{type_code:02X}; expected one of {known}")
    if n_dims == 0:
        raise DataError(f"{name}: IDX header declares 0 dimensions; expected at least 1")
    header_len = 4 + 4 * n_dims
    if len(data) < header_len:
        raise DataError(
            f"{name}: IDX header declares {n_dims} dimensions, which needs {header_len} header bytes, "
            f"but the file has only {len(data)} bytes"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=n_dims, offset=4))
    dtype = IDX_DTYPES[type_code]
    n_items = 1
    for d in shape:  # Python ints: no overflow for large declared sizes
        n_items *= d
    expected = n_items * dtype.itemsize
    found = len(data) - header_len
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise DataError(
            f"{name}: IDX data is {what}: header declares shape {shape} of {dtype.name} "
            f"({expected} bytes of data) but found {found} bytes after the {header_len}-byte header"
        )
    array = np.frombuffer(data, dtype=dtype, count=n_items, offset=header_len)
    # astype copies, so the result owns writable memory instead of viewing the read-only bytes.
    return array.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file, raw or gzip-compressed.

    Parameters
    ----------
    path : str or os.PathLike
        The file, e.g. ``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz``. Compression is detected
        from the content, not from the name.

    Returns
    -------
    ndarray of shape ``dims``
        In native byte order. MNIST images come back as ``uint8`` of shape ``(N, 28, 28)``, labels as ``uint8``
        of shape ``(N,)``.

    Raises
    ------
    DataNotFoundError
        If ``path`` does not exist.
    DataError
        If the file is not a well-formed IDX file (see ``parse_idx``).

    Examples
    --------
    >>> images = read_idx("mnist/train-images-idx3-ubyte.gz")  # doctest: +SKIP
    >>> images.shape, images.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataNotFoundError(f"{path}: no such IDX file") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a folder, expected an IDX file") from exc
    return parse_idx(data, str(path))


def _type_code(dtype: np.dtype) -> int:
    """The IDX type code of ``dtype``, compared by kind and size so that byte order does not matter."""
    for code, idx_dtype in IDX_DTYPES.items():
        if dtype.kind == idx_dtype.kind and dtype.itemsize == idx_dtype.itemsize:
            return code
    raise DataError(
        f"array has dtype {dtype}, which IDX cannot store; expected one of "
        "uint8, int8, int16, int32, float32, float64 (cast with array.astype(...))"
    )


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed if ``path`` ends in ``.gz``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; overwritten if it exists.
    array : array_like of shape ``(d_1, ..., d_k)``
        ``1 <= k <= 255``, every ``d_i < 2**32``; dtype uint8, int8, int16, int32, float32 or float64 (the types
        IDX defines; there is no 64-bit integer type).

    Raises
    ------
    DataError
        If the dtype or the shape cannot be stored in IDX.
    """
    array = np.asarray(array)
    code = _type_code(array.dtype)
    if not 1 <= array.ndim <= 255:
        raise DataError(f"array has {array.ndim} dimensions; IDX stores 1 to 255")
    if any(d >= 2**32 for d in array.shape):
        raise DataError(f"array has shape {array.shape}; IDX stores each dimension as a uint32 (< 2**32)")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        # mtime=0 keeps the output byte-identical for identical arrays.
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
            f.write(header)
            f.write(payload)
    else:
        path.write_bytes(header + payload)
