"""The converted-layout cache: the step program's weight scrolls written once, memory-mapped afterwards.

Converting a checkpoint (re-tiling every ternary matrix, quantising the LM head to int8) is done once;
the result is one file of 64-byte-aligned scroll images plus a JSON index, under
``$VTPU_CACHE_DIR/models`` (default ``~/.cache/vtpu/models``; ``core.resources`` resolves it for every
vtpu cache, and a folder that others could write is not used), keyed by the source files' paths, sizes
and modification times and by the layout tag (``layout_tag``: this module's version, every ``*VERSION``
constant of ``ternary.py`` and ``compiled.py``, and a digest of ``compiled.tile_layout`` on a probe
matrix -- memoised while the code is unchanged -- so a layout change invalidates old caches even
without a version bump). Both files are
written to temporary names and renamed (atomic: a crash never leaves a half cache). A later start maps
the file copy-on-write, so the weights cost page cache, not private memory, and nothing is converted.

The first start streams (``scroll_jobs``): each ternary matrix is converted, tiled, written and
dropped, and the head is quantised a row block at a time, each source range's pages released once
read (``weights.release_file``). The jobs run on ``layout_workers()`` threads, at most twice that many
results ahead of the writer, which writes them in order (the bytes never depend on the thread count).
Peak memory of a first start is therefore that of a cached start plus a few converted matrices (2B-4T
shape, 2 threads: 214 MB peak RSS against 188 MB with one; with 4, up to 8 finished pieces wait and 4
are made: an estimated 50-100 MB more), instead of every converted matrix, the whole head and the
whole source file at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from vtpu_cli.core.resources import cache_base, private_cache_dir
from vtpu_cli.models.errors import ModelError

if TYPE_CHECKING:
    from vtpu_cli.models.weights import BitNetModel

LAYOUT_VERSION = 3  # 3: streamed writer, key from the layout tag; 2: int8 LM head + per-row scales
ALIGN = 64
HEAD_BLOCK_WEIGHTS = 1 << 18  # head rows quantised per step: a few 2 MiB float64 temporaries


def layout_tag(memo_dir: Path | None = None) -> str:
    """What the cached bytes depend on besides the source: this writer's version, the layout versions
    that ``ternary.py`` and ``compiled.py`` expose (any module constant named ``*VERSION``), and a digest
    of ``compiled.tile_layout`` applied to a fixed odd-shaped probe matrix (``_tile_digest``)."""
    from vtpu_cli.models import compiled, ternary

    parts = [f"cache={LAYOUT_VERSION}"]
    for mod in (ternary, compiled):
        for name in sorted(vars(mod)):
            value = getattr(mod, name)
            if name.endswith("VERSION") and isinstance(value, (int, str)) and not isinstance(value, bool):
                parts.append(f"{mod.__name__.rsplit('.', 1)[-1]}.{name}={value}")
    parts.append("tile=" + _tile_digest(memo_dir or cache_root()))
    return ";".join(parts)


def _code_stamp() -> str:
    """A digest of every vtpu_cli source file's name, size and mtime (~1 ms): the probe digest of a
    previous start is reused while the code it ran is unchanged."""
    import vtpu_cli

    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(Path(vtpu_cli.__file__).parent):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".py"):
                st = os.stat(os.path.join(dirpath, name))
                h.update(f"{dirpath}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _tile_digest(memo_dir: Path) -> str:
    """The digest of ``compiled.tile_layout`` on the probe. Running it imports the compiler (~0.1-0.2 s,
    which a cached start would otherwise pay before it needs the compiler), so the result is memoised
    in ``memo_dir/layout-probe.json`` under ``_code_stamp``: any change to the code runs it again."""
    memo = memo_dir / "layout-probe.json"
    stamp = _code_stamp()
    try:
        known = json.loads(memo.read_text())
        if isinstance(known, dict) and known.get("stamp") == stamp and isinstance(known.get("tile"), str):
            return known["tile"]
    except (OSError, ValueError):
        pass
    from vtpu_cli.models import compiled, ternary

    rows, cols = 37, 75  # odd sizes: exercises the padding of both dimensions
    fields = (np.arange(rows * ternary.packed_cols(cols) * 4, dtype=np.int64) * 7 % 3).astype(np.uint8)
    packed = np.bitwise_or.reduce(fields.reshape(-1, 4) << np.array([0, 2, 4, 6], np.uint8), axis=1)
    probe = ternary.TernaryMatrix("probe", rows, cols, packed.reshape(rows, -1), 0.5)
    tiles = np.ascontiguousarray(compiled.tile_layout(probe)).view(np.uint8)
    digest = hashlib.sha256(tiles.tobytes()).hexdigest()[:16]
    try:  # best effort: a cache folder that cannot be written only costs the probe next time
        memo_dir.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f"{memo.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps({"stamp": stamp, "tile": digest}))
        os.replace(tmp, memo)
    except OSError:
        pass
    return digest


def cache_root() -> Path:
    """Where converted layouts go by default: ``core.resources.cache_base()/models`` (the folder is only
    used when ``private_cache_dir`` accepts it: see ``cached_weights``)."""
    return cache_base() / "models"


def source_key(source: Path, tag: str | None = None) -> str:
    """A digest of what the converted layout depends on: every source file's path, size and mtime,
    and the layout tag."""
    src = Path(source).resolve()
    files = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
    h = hashlib.sha256(f"vtpu-bitnet-layout\0{tag or layout_tag()}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _u8(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint8).reshape(-1)


def _head_blocks(model: BitNetModel, ws_out: list[np.ndarray | None]) -> Iterator[Callable[[], np.ndarray]]:
    """The int8 head rows, a block at a time (``head.quantize_head_q8`` on each block: the same bytes as
    on the whole table), as jobs; block b's per-row scales land in ``ws_out[b]``. The source file's pages
    are released once each block is quantised (the whole file: the folios read reach past the block)."""
    from vtpu_cli.models.head import quantize_head_q8
    from vtpu_cli.models.weights import DenseTensor, release_file

    head = model.lm_head
    step = max(1, HEAD_BLOCK_WEIGHTS // max(head.cols, 1))

    def block(b: int, r0: int, r1: int) -> np.ndarray:
        raw = head.raw[r0:r1]
        w8, ws = quantize_head_q8(DenseTensor(head.name, r1 - r0, head.cols, head.kind, raw), chunk=r1 - r0)
        release_file(raw)
        ws_out[b] = ws
        return _u8(w8)

    for b, r0 in enumerate(range(0, head.rows, step)):
        ws_out.append(None)
        yield partial(block, b, r0, min(head.rows, r0 + step))


class _Last:
    """A job that reads what the jobs before it filled in (the scales): run when its turn comes, after
    every earlier job has finished, never ahead of them."""

    def __init__(self, fn: Callable[[], np.ndarray]) -> None:
        self.fn = fn

    def __call__(self) -> np.ndarray:
        return self.fn()


def scroll_jobs(model: BitNetModel) -> Iterator[tuple[str, Iterable[Callable[[], np.ndarray]]]]:
    """``compiled.convert_weights(model)`` as jobs: (coordinate, the jobs making its byte pieces) in the
    same order, each job converting one ternary matrix, copying one norm or quantising one head block
    when called. Jobs are independent (any order, any thread) except ``_Last`` ones."""
    from vtpu_cli.models import compiled as c
    from vtpu_cli.models.weights import fresh_matrix

    scales = np.zeros(model.config.layers * c.SCALES_PER_LAYER, np.float32)

    def ternary(src, at: int) -> np.ndarray:
        m = fresh_matrix(src)
        scales[at] = m.scale
        return _u8(c.tile_layout(m))

    for li, layer in enumerate(model.layers):
        for j, role in enumerate(c.TERNARY_ROLES):
            yield (
                c.weight_coord(c.PHX_TERNARY[role], li),
                [partial(ternary, getattr(layer, role), li * c.SCALES_PER_LAYER + j)],
            )
        for role, name in c.NORM_ROLES.items():
            yield c.weight_coord(name, li), [partial(_f32_bytes, getattr(layer, role))]
    yield c.weight_coord("onorm"), [partial(_f32_bytes, model.output_norm)]
    head_scales: list[np.ndarray | None] = []
    yield c.weight_coord("head"), _head_blocks(model, head_scales)
    yield c.weight_coord("hsc"), [_Last(lambda: _u8(np.concatenate(head_scales).astype(np.float32)))]
    yield c.io_coord("wsc"), [_Last(lambda: _u8(scales))]


def _f32_bytes(a) -> np.ndarray:
    return _u8(np.asarray(a, np.float32))


def iter_scrolls(model: BitNetModel) -> Iterator[tuple[str, Iterable[np.ndarray]]]:
    """``scroll_jobs`` run one at a time, in order: (coordinate, byte pieces), holding one converted
    ternary matrix or one head block at a time. A scroll's pieces must be consumed before the next item
    is asked for (the scales come last, filled on the way)."""
    for coord, jobs in scroll_jobs(model):
        yield coord, (job() for job in jobs)


def _pieces(model: BitNetModel, workers: int) -> Iterator[tuple[str, np.ndarray]]:
    """(coordinate, piece) in ``scroll_jobs`` order, the jobs run by ``workers`` threads (numpy releases
    the GIL in the decoders and the head's float64 arithmetic), at most ``2 * workers`` results ahead of
    the writer: the memory held is a few converted matrices, not the model."""
    flat = _flat(model)
    if workers <= 1:
        for coord, job in flat:
            yield coord, job()
        return
    from concurrent.futures import ThreadPoolExecutor

    window: deque = deque()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="vtpu-layout")
    try:
        for coord, job in flat:
            window.append((coord, job if isinstance(job, _Last) else pool.submit(job)))
            while len(window) > 2 * workers or (window and isinstance(window[0][1], _Last)):
                yield _take(window)
        while window:
            yield _take(window)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a failed job: the queued ones never start


def _flat(model: BitNetModel) -> Iterator[tuple[str, Callable[[], np.ndarray]]]:
    """(coordinate, job) over every scroll's jobs; a scroll with none still gets its (empty) entry."""
    for coord, jobs in scroll_jobs(model):
        empty = True
        for job in jobs:
            empty = False
            yield coord, job
        if empty:
            yield coord, _Last(lambda: np.zeros(0, np.uint8))


def _take(window: deque) -> tuple[str, np.ndarray]:
    coord, job = window.popleft()
    return coord, job() if isinstance(job, _Last) else job.result()


def layout_workers() -> int:
    """Threads converting a checkpoint: the usable cores (affinity, cgroup quota), at most 4."""
    from vtpu_cli.core.resources import usable_cores

    return max(1, min(4, usable_cores()))


def write_scrolls(fh: IO[bytes], model: BitNetModel, workers: int | None = None) -> dict[str, list[int]]:
    """Stream every scroll of ``model`` into ``fh`` (64-byte aligned); returns {coord: [offset, size]}.
    ``workers``: conversion threads (default ``layout_workers()``); the bytes never depend on it."""
    index: dict[str, list[int]] = {}
    off = 0
    pieces = _pieces(model, layout_workers() if workers is None else workers)
    with contextlib.closing(pieces):  # a failed write stops the conversion threads at once
        for coord, piece in pieces:
            if coord not in index:
                pad = (-off) % ALIGN
                fh.write(b"\0" * pad)
                off += pad
                index[coord] = [off, 0]
            fh.write(memoryview(piece))
            off += piece.nbytes
            index[coord][1] += piece.nbytes
    return index


def _write(folder: Path, model: BitNetModel, tag: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp_bin = folder / f"weights.bin.tmp{os.getpid()}"
    tmp_idx = folder / f"index.json.tmp{os.getpid()}"
    try:
        with open(tmp_bin, "wb") as f:
            index = write_scrolls(f, model)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_bin, folder / "weights.bin")
        tmp_idx.write_text(json.dumps({"version": tag, "scrolls": index}))
        os.replace(tmp_idx, folder / "index.json")  # last: its presence marks a complete cache
    finally:  # a failed conversion (bad tensor, full disk) leaves no temporary behind
        for p in (tmp_bin, tmp_idx):
            p.unlink(missing_ok=True)


def trim_heap() -> None:
    """Hand the conversion's freed temporaries back to the system (glibc keeps freed heap pages resident
    otherwise, on top of the cache pages the engine is about to read); a no-op without glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _map(folder: Path, tag: str) -> dict[str, np.ndarray] | None:
    try:
        meta = json.loads((folder / "index.json").read_text())
        if meta.get("version") != tag:
            return None
        mm = np.memmap(folder / "weights.bin", dtype=np.uint8, mode="c")
        return {c: mm[o : o + n] for c, (o, n) in meta["scrolls"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _unbacked(model: BitNetModel) -> dict[str, np.ndarray]:
    """The scrolls when the cache folder cannot be written: streamed into an unnamed temporary file and
    mapped (same memory profile as the cache), or converted in memory when even that fails."""
    try:
        with tempfile.TemporaryFile() as f:
            index = write_scrolls(f, model)
            f.flush()
            mm = np.memmap(f, dtype=np.uint8, mode="c")
    except OSError:
        from vtpu_cli.models.compiled import convert_weights

        return convert_weights(model)
    return {c: mm[o : o + n] for c, (o, n) in index.items()}


def cached_weights(model: BitNetModel, root: Path | None = None) -> tuple[dict[str, np.ndarray], bool]:
    """The weight scrolls of ``model`` (from the cache, or converted and cached); and whether it was a
    cache hit. A cache that cannot be written is not an error: the scrolls are returned all the same.
    Without ``root``, the cache is ``cache_root()`` when ``core.resources.private_cache_dir`` accepts it
    (owned by this user, writable by nobody else: its bytes are run as the model); otherwise nothing is
    cached or read back and the scrolls are converted into an unnamed temporary file."""
    if root is None:
        root = private_cache_dir("models")
        if root is None:
            return _unbacked(model), False
    tag = layout_tag(root)
    folder = root / source_key(model.source, tag)
    hit = _map(folder, tag)
    if hit is not None:
        return hit, True
    try:
        _write(folder, model, tag)
    except OSError:
        return _unbacked(model), False
    finally:
        trim_heap()
    mapped = _map(folder, tag)
    if mapped is None:
        raise ModelError(f"{folder}: the converted-layout cache could not be read back")
    return mapped, False
