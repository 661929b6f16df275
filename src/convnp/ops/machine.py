"""What the kernels adapt to: the CPU's L2 cache size and whether the BLAS has an unpacked small-matrix kernel.

- The L2 size sizes the convolution's chunks (:data:`convnp.ops.conv.CHUNK_BYTES`). Linux reports each cache level
  in ``/sys/devices/system/cpu/cpu0/cache/index*/`` (``level``, ``type`` and ``size`` files, sizes like
  ``2048K``); elsewhere, or when the files cannot be read, :data:`DEFAULT_L2_BYTES` stands in.
- OpenBLAS multiplies small products without packing them on its AVX-512 kernels only (SkylakeX and later);
  :mod:`convnp.ops.gemm` cuts products into blocks of that size only where that kernel runs, since on the AVX2
  kernels the blocks were a few percent slower (``docs/performance.md``). The kernel is inferred, never timed, so
  a machine always takes the same route and its results stay reproducible bit for bit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: OpenBLAS core types (``OPENBLAS_CORETYPE``) whose kernels include the unpacked small-matrix path.
SMALL_KERNEL_CORES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})

#: What :func:`l2_cache_bytes` answers when the system does not say: 2 MiB, the L2 of recent server cores.
DEFAULT_L2_BYTES = 2 << 20

_SYSFS = Path("/sys/devices/system/cpu/cpu0/cache")


def parse_size(text: str) -> int:
    """Bytes in a sysfs cache size such as ``"2048K"``, ``"1M"`` or ``"512"``; ValueError for anything else."""
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit():
        raise ValueError(f"parse_size: expected a size like '2048K', got {text!r}")
    return int(digits) * scale


def l2_cache_bytes(root: Path = _SYSFS) -> int:
    """The size of the first CPU's level-2 data (or unified) cache in bytes, or :data:`DEFAULT_L2_BYTES`."""
    try:
        for index in sorted(root.glob("index*")):
            if (index / "level").read_text().strip() == "2" and (index / "type").read_text().strip() != "Instruction":
                return parse_size((index / "size").read_text())
    except (OSError, ValueError):
        pass
    return DEFAULT_L2_BYTES


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The instruction-set flags of the first CPU in ``/proc/cpuinfo`` (empty where there is no such file)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def blas_name() -> str:
    """The BLAS NumPy was built against, as NumPy reports it (``"scipy-openblas"``, ``"accelerate"``, ...)."""
    try:
        return str(np.__config__.CONFIG["Build Dependencies"]["blas"]["name"])
    except (AttributeError, KeyError, TypeError):
        return "unknown"


def small_matrix_kernel(flags: frozenset[str] | None = None, blas: str | None = None, environ=None) -> bool:
    """Whether NumPy's BLAS multiplies small products with OpenBLAS's unpacked AVX-512 kernel.

    True for OpenBLAS on a CPU with AVX-512 (F, BW, DQ and VL, which its SkylakeX kernels need), unless
    ``OPENBLAS_CORETYPE`` names a core without that kernel (as ``bench.py --isa avx2`` does with ``Haswell``).
    """
    environ = os.environ if environ is None else environ
    if "openblas" not in (blas_name() if blas is None else blas).lower():
        return False
    core = environ.get("OPENBLAS_CORETYPE", "").strip().lower()
    if core:
        return core in SMALL_KERNEL_CORES
    flags = cpu_flags() if flags is None else flags
    return {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags
