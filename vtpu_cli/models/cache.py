"""The converted-layout cache: the step program's weight scrolls written once, memory-mapped afterwards.

Converting a checkpoint (re-tiling every ternary matrix, transposing the LM head to f32) is done once;
the result is one file of 64-byte-aligned scroll images plus a JSON index, under
``$VTPU_CACHE_DIR/models`` (default ``~/.cache/vtpu/models``), keyed by the source files' paths, sizes
and modification times and by the layout version. Both files are written to temporary names and
renamed (atomic: a crash never leaves a half cache). A later start maps the file copy-on-write, so the
weights cost page cache, not private memory, and nothing is converted.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vtpu_cli.models.errors import ModelError

if TYPE_CHECKING:
    from vtpu_cli.models.weights import BitNetModel

LAYOUT_VERSION = 2  # 2: int8 LM head + per-row scales (was f32 [hidden, vocab])
ALIGN = 64


def cache_root() -> Path:
    return Path(os.environ.get("VTPU_CACHE_DIR") or Path.home() / ".cache" / "vtpu") / "models"


def source_key(source: Path) -> str:
    """A digest of what the converted layout depends on: every source file's path, size and mtime."""
    src = Path(source).resolve()
    files = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
    h = hashlib.sha256(f"vtpu-bitnet-layout-{LAYOUT_VERSION}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _write(folder: Path, conv: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    index, off = {}, 0
    tmp_bin = folder / f"weights.bin.tmp{os.getpid()}"
    with open(tmp_bin, "wb") as f:
        for coord, buf in conv.items():
            pad = (-off) % ALIGN
            f.write(b"\0" * pad)
            off += pad
            f.write(memoryview(np.ascontiguousarray(buf)))
            index[coord] = [off, int(buf.shape[0])]
            off += int(buf.shape[0])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp_bin, folder / "weights.bin")
    tmp_idx = folder / f"index.json.tmp{os.getpid()}"
    tmp_idx.write_text(json.dumps({"version": LAYOUT_VERSION, "scrolls": index}))
    os.replace(tmp_idx, folder / "index.json")  # last: its presence marks a complete cache


def _map(folder: Path) -> dict[str, np.ndarray] | None:
    try:
        meta = json.loads((folder / "index.json").read_text())
        if meta.get("version") != LAYOUT_VERSION:
            return None
        mm = np.memmap(folder / "weights.bin", dtype=np.uint8, mode="c")
        return {c: mm[o : o + n] for c, (o, n) in meta["scrolls"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cached_weights(model: BitNetModel, root: Path | None = None) -> tuple[dict[str, np.ndarray], bool]:
    """The weight scrolls of ``model`` (from the cache, or converted and cached); and whether it was a
    cache hit. A cache that cannot be written is not an error: the converted arrays are returned."""
    from vtpu_cli.models.compiled import convert_weights

    folder = (root or cache_root()) / source_key(model.source)
    hit = _map(folder)
    if hit is not None:
        return hit, True
    conv = convert_weights(model)
    try:
        _write(folder, conv)
    except OSError:
        return conv, False
    mapped = _map(folder)
    if mapped is None:
        raise ModelError(f"{folder}: the converted-layout cache could not be read back")
    return mapped, False
