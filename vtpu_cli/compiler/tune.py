"""Matmul tile sizes: autotuned on first use and cached per CPU, or a deterministic fallback.

A tile is (rows, column tiles): ``rows`` output rows share each weight vector load and ``cols``
16-column tiles share each broadcast activation load, so a k step costs rows + cols S-pipe loads and
rows * cols D-pipe FMAs. Tuning compiles the candidate kernels for the actual shape and keeps the one
with the fewest SIWs (fewest spills on a tie) -- the scheduled length is what the engines execute.
Results are cached in ``$VTPU_CACHE_DIR`` (default ``~/.cache/vtpu``) in ``phx-tiles-<cpu>.json``, keyed
by op and shape. Tuning is off unless requested (``vtpu cc -O3`` turns it on; ``VTPU_PHX_TUNE=0``
turns it off); with tuning off the fallback below is used, so compiles are reproducible.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

UNROLL_LIMIT = 6000  # estimated IR ops below which a tiling loop is fully unrolled (-O2+)

CANDIDATES = ((1, 1), (1, 2), (2, 1), (2, 2), (1, 4), (4, 1), (2, 4), (4, 2), (3, 3), (4, 4))


def fallback(kind: str, m: int, k: int, n: int, opt: int = 2) -> tuple[int, int]:
    """Deterministic choice from the pipe-balance model: a k step of an rr x cc tile issues rr*cc
    D-pipe FMAs and rr + cc S-pipe loads; minimise max(D, S) SIWs over the whole matmul, with at most
    24 vector registers live (rr*cc accumulators + rr + cc operands). When the row blocks stay a
    DLOOP loop (too big to unroll), the D count includes an address DADD per activation load and
    output store, as the lowering writes them (address folding removes most of them since svISA v2;
    the model was tuned before, and is kept so that tile choices, hence programs, stay as they were)."""
    nt = (n + 15) // 16
    if kind == "tmatmul":
        return 1, min(2, nt)
    best = None
    for rr in range(1, min(m, 8) + 1):
        for cc in range(1, min(nt, 8) + 1):
            if rr * cc + rr + cc > 24:
                continue
            groups = -(-nt // cc)
            blocks = -(-m // rr)
            d = m * k * nt
            s = k * (m * groups + blocks * nt)
            full = m // rr
            est = k * (nt * rr + rr + nt) + 4
            if not (opt >= 2 and (full * est <= UNROLL_LIMIT or full <= 2)) and full > 1:
                d += k * m * groups + m * nt  # address arithmetic of the loop body
            key = (max(d, s), rr * cc + rr + cc)
            if best is None or key < best[0]:
                best = (key, (rr, cc))
    return best[1]


def cpu_key() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return hashlib.sha256(name.encode()).hexdigest()[:12]


def cpu_vendor() -> str:
    """``"amd"``, ``"intel"`` or ``""`` (unknown): the x86 vendor of this host (``/proc/cpuinfo``). The
    memory-bound M = 1 loops take a vendor's own stream counts (kernels: ``TM_TILES_1``, ``Q8_ROWS``):
    the numerics are the same either way, only the speed differs."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    v = line.split(":", 1)[1].strip()
                    return {"AuthenticAMD": "amd", "GenuineIntel": "intel"}.get(v, "")
    except OSError:
        pass
    return ""


def cache_path() -> Path:
    from vtpu_cli.core.resources import cache_base

    return cache_base() / f"phx-tiles-{cpu_key()}.json"


def _load() -> dict:
    try:
        return json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save(data: dict) -> None:
    from vtpu_cli.core.errors import VtpuError
    from vtpu_cli.core.fileio import write_atomic

    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))
    except (OSError, VtpuError):
        pass  # a read-only cache is not an error: the result is just not remembered


def tile_for(lw, kind: str, m: int, k: int, n: int) -> tuple[int, int]:
    key = f"{kind}:{m}x{k}x{n}:O{lw.opt}"
    if lw.forced_tile is not None:
        return lw.forced_tile
    if not lw.tune or kind != "matmul":
        choice = fallback(kind, m, k, n, lw.opt)
        lw.tile_choices[key] = {"tile": list(choice), "source": "fallback"}
        return choice
    cache = _load()
    if key in cache:
        choice = tuple(cache[key])
        lw.tile_choices[key] = {"tile": list(choice), "source": "cache"}
        return choice
    choice = tune(kind, m, k, n, lw.opt, lw.compile_phx)
    cache[key] = list(choice)
    _save(cache)
    lw.tile_choices[key] = {"tile": list(choice), "source": "tuned"}
    return choice


def tune(kind: str, m: int, k: int, n: int, opt: int, compile_phx) -> tuple[int, int]:
    """Compile the matmul with each candidate tile (``compile_phx`` is the driver's, passed in so this
    module stays below the driver) and keep the shortest schedule."""
    nt = (n + 15) // 16
    src = (
        f"input x: f32[{m}, {k}] @ 1.1.1/1.1.1/1.1.1\nweight w: f32[{k}, {n}] @ 1.1.1/1.1.1/1.1.2\n"
        f"output y: f32[{m}, {n}] @ 1.1.1/1.1.1/1.1.3\ny = matmul(x, w)\n"
    )
    best = None
    for rr, cc in CANDIDATES:
        if rr > m or cc > nt:
            continue
        prog, rep = compile_phx(src, "<tune>", opt=opt, tile=(rr, cc))
        score = (len(prog.code), rep["total"]["spills"])
        if best is None or score < best[0]:
            best = (score, (rr, cc))
    return best[1] if best else fallback(kind, m, k, n, opt)
