"""The CPU cache size the convolution's chunks are sized by (:data:`convnp.ops.conv.CHUNK_BYTES`).

Linux reports each cache level in ``/sys/devices/system/cpu/cpu0/cache/index*/`` (``level`` and ``size`` files,
sizes like ``2048K``). Elsewhere, or when the files cannot be read, :data:`DEFAULT_L2_BYTES` stands in.
"""

from __future__ import annotations

from pathlib import Path

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
