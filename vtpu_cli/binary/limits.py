"""Resource limits shared by the loader, the memory layer and the input readers (docs/limits.md).

Every limit that hostile or mistaken input can hit lives here, so the loader, the assembler and the
engines agree on one number, and docs/limits.md documents each with the way to raise it.
"""

from __future__ import annotations

import os
import re

from vtpu_cli.core.errors import VtpuError

# ---------------------------------------------------------------- fixed format limits
MAX_SCROLL_BYTES = 1 << 31  # one scroll: SALLOC, .data/.zero, a --mem tensor (2 GiB)
MAX_SIW_FILE_BYTES = 1 << 30  # a .siw file read by the loader (1 GiB: ~22 million SIWs)
MAX_GROUP_MEMBERS = 1 << 20  # sentron ids listed in one .group
MAX_SENTRON_ID = (1 << 20) - 1  # a group member id (larger fleets cannot be run anyway)
MAX_SECTIONS = 64  # entries in a .siw section table
MAX_NAME_BYTES = 0xFFFF  # a symbol, group or file name (u16 length prefix)
MAX_DATA_DIMS = 8  # dimensions of a .data shape
MAX_SAFETENSORS_HEADER = 100 << 20  # the JSON header of a --mem .safetensors file

# ---------------------------------------------------------------- the per-run memory budget
MEM_LIMIT_ENV = "VTPU_MEM_LIMIT"
MEM_LIMIT_FRACTION = 0.5  # default budget: half of physical memory
_FALLBACK_PHYSICAL = 8 << 30  # when the OS does not say


def physical_memory() -> int:
    """Installed RAM in bytes (sysconf), or 8 GiB where the OS does not report it."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        return _FALLBACK_PHYSICAL


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_UNIT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``"512M"``, ``"4GiB"``, ``"1.5g"`` or plain bytes -> bytes (binary units); ValueError if malformed."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 512M, 4G, 1073741824)")
    n = int(float(m.group(1)) * _UNIT[m.group(2).lower()])
    if n <= 0:
        raise ValueError(f"a memory limit must be positive, not {text!r}")
    return n


def default_memory_budget() -> int:
    """The per-run scroll memory budget: ``$VTPU_MEM_LIMIT`` if set, else half of physical memory.

    A malformed ``$VTPU_MEM_LIMIT`` is a :class:`VtpuError` (bad usage, exit 2) rather than a silently
    unbounded run.
    """
    env = os.environ.get(MEM_LIMIT_ENV)
    if env:
        try:
            return parse_size(env)
        except ValueError as e:
            raise VtpuError(f"${MEM_LIMIT_ENV}: {e}") from None
    return int(physical_memory() * MEM_LIMIT_FRACTION)


def format_size(n: int) -> str:
    """Bytes for messages: ``2.0 GiB``, ``64.0 MiB``, ``512 B``."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} B"
