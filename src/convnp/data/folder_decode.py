"""Decoding many image files on every core: headers, then pixels, in chunks handed to worker processes.

Each pass returns one entry per file in the files' order, whatever order the workers finish in, so the result (and
the skip lines, logged here in that order) does not depend on the number of processes. A file a decoder refuses is
an entry saying why, never an exception: one bad file skips itself, not the folder.

Worker processes are forked where the system can (Linux), else spawned; a folder of fewer files than one chunk is
decoded in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from convnp.data.image_files import fit_image, image_header, read_image
from convnp.errors import DataError

__all__ = ["Progress", "decode_pixels", "default_processes", "read_headers"]

HEADER_CHUNK = 512  # files per task: large enough that a task's overhead is small beside the files' own
PIXEL_CHUNK = 128


def default_processes() -> int:
    """The CPUs this process may run on (all of them: decoding is the whole job while it runs)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Progress:
    """A progress bar on a terminal (redrawn at most 5 times a second), one summary line elsewhere.

    Parameters
    ----------
    what : str, what is being decoded (a folder's path)
    total : int, files in all
    stream : file or None; None: silent
    """

    def __init__(self, what: str, total: int, stream):
        self.what, self.total, self.stream = what, total, stream
        self.done = 0
        self.start = time.perf_counter()
        self._drawn = 0.0
        self._tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())

    def add(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self._tty and (now - self._drawn > 0.2 or self.done == self.total):
            self._drawn = now
            width = 30
            filled = width * self.done // max(self.total, 1)
            self.stream.write(f"\rdecoding {self.what} [{'#' * filled}{'.' * (width - filled)}] "
                              f"{self.done:,}/{self.total:,} files, {self.rate():,.0f}/s")
            self.stream.flush()

    def rate(self) -> float:
        return self.done / max(time.perf_counter() - self.start, 1e-9)

    def finish(self, processes: int, decoded: int) -> None:
        """The closing line: ``decoded`` images of the :attr:`total` files, how long it took, on how many processes."""
        if self.stream is None:
            return
        seconds = time.perf_counter() - self.start
        left_out = f", {self.total - decoded:,} skipped" if decoded != self.total else ""
        self.stream.write(("\n" if self._tty else "") + f"decoded {decoded:,} image(s) of {self.what} in "
                          f"{seconds:.1f} s ({self.rate():,.0f} files/s, {processes} process"
                          f"{'es' if processes > 1 else ''}{left_out})\n")
        self.stream.flush()


def read_headers(files: list[Path], processes: int | None = None) -> list:
    """Each file's ``(height, width, channels)`` from its header, or the reason it cannot be read (a str).

    Parameters
    ----------
    files : list of N Path
    processes : int, optional; default :func:`default_processes`

    Returns
    -------
    list of N entries, in the order of ``files``
    """
    out: list = []
    for part in _in_chunks(_headers_chunk, [(files[i:i + HEADER_CHUNK],) for i in range(0, len(files), HEADER_CHUNK)],
                           processes):
        out.extend(part)
    return out


def decode_pixels(files: list[Path], size: tuple[int, int], channels: int, sink, *, processes: int | None = None,
                  progress: Progress | None = None) -> list:
    """Decode ``files``, each brought to ``size`` and ``channels``, and hand them to ``sink`` a chunk at a time.

    Parameters
    ----------
    files : list of N Path
    size : (height, width); channels : 1 or 3
    sink : callable taking an array of shape `(k, height, width, channels)`, uint8
        Called in the files' order, with the files that decoded (a chunk may hold fewer than it was given).
    processes : int, optional; default :func:`default_processes`
    progress : Progress, optional

    Returns
    -------
    list of N entries, in the order of ``files``: None for a file given to ``sink``, else why it was not (a str)
    """
    reasons: list = []
    tasks = [(files[i:i + PIXEL_CHUNK], tuple(size), channels) for i in range(0, len(files), PIXEL_CHUNK)]
    for images, part in _in_chunks(_pixels_chunk, tasks, processes):
        if len(images):
            sink(images)
        reasons.extend(part)
        if progress is not None:
            progress.add(len(part))
    return reasons


def _in_chunks(work, tasks: list[tuple], processes: int | None):
    """``work(*task)`` for each task, in order: in this process for a single task, else across worker processes."""
    n = min(processes or default_processes(), len(tasks))
    if n <= 1:
        yield from (work(*task) for task in tasks)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    try:
        with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context(method)) as pool:
            yield from pool.map(work, *zip(*tasks))
    except BrokenProcessPool as err:
        raise DataError(f"a process decoding images ended abruptly ({err}); decode with one process to find the "
                        "file that stops it") from None


def _reason(err: DataError, file: Path) -> str:
    """A DataError's message without the leading ``"path: "``."""
    text, prefix = str(err), f"{file}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _headers_chunk(files: list[Path]) -> list:
    out = []
    for file in files:
        try:
            out.append(image_header(file))
        except DataError as err:
            out.append(_reason(err, file))
    return out


def _pixels_chunk(files: list[Path], size: tuple[int, int], channels: int) -> tuple[np.ndarray, list]:
    """-> (the images that decoded, `(k, H, W, C)` uint8; one entry per file: None, or why it did not)."""
    images, reasons = [], []
    for file in files:
        try:
            pixels = read_image(file, rgb=channels == 3)  # (h, w) or (h, w, 3), float64 in [0, 255]
        except DataError as err:
            reasons.append(_reason(err, file))
            continue
        pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        images.append(fit_image(pixels if pixels.ndim == 3 else pixels[..., None], size))  # (H, W, C)
        reasons.append(None)
    stacked = np.stack(images) if images else np.zeros((0, *size, channels), dtype=np.uint8)
    return stacked, reasons

