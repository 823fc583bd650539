"""In-memory form of a loaded BitNet model: vtpu ternary matrices, dense tensors kept memory-mapped."""

from __future__ import annotations

import ctypes
import mmap
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vtpu_cli.models.config import ModelConfig
from vtpu_cli.models.errors import ModelError
from vtpu_cli.models.formats import q8_0_decode_rows
from vtpu_cli.models.ternary import LazyTernary, TernaryMatrix

if TYPE_CHECKING:
    from vtpu_cli.models.tokenizer import Tokenizer

DENSE_KINDS = ("f32", "f16", "bf16", "q8_0")


def bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) to float32: the high half of a float32."""
    return (np.asarray(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


_MADV_DONTNEED = 4  # Linux
_PAGE = mmap.PAGESIZE


def _libc_madvise() -> Callable[..., int] | None:
    """libc's ``madvise`` (Linux only: the DONTNEED semantics relied on are Linux's)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    fn.restype = ctypes.c_int
    return fn


_MADVISE = _libc_madvise()


def _read_only_file_map(arr: np.ndarray) -> np.memmap | None:
    """The read-only ``numpy.memmap`` (a shared file mapping) that ``arr`` is a view of, or None."""
    a: object = arr
    found = None
    while isinstance(a, np.ndarray):
        if isinstance(a, np.memmap) and a.mode == "r":
            found = a  # the outermost one: the whole mapping
        a = a.base
    return found


def release_pages(arr: np.ndarray) -> None:
    """Drop this process's resident pages of a read-only memory-mapped source range once it has been
    converted, so a conversion that reads a whole checkpoint does not end up holding all of it in its
    resident set (the pages stay in the page cache; reading them again simply maps them again).

    Only read-only file mappings are touched -- on a private or anonymous mapping ``MADV_DONTNEED``
    would discard data -- and only on Linux; elsewhere this does nothing."""
    if _MADVISE is None or arr.size == 0 or _read_only_file_map(arr) is None:
        return
    if any(st < 0 for st in arr.strides):
        return
    start = arr.__array_interface__["data"][0]  # the extent of a (possibly strided) view
    end = start + sum((n - 1) * st for n, st in zip(arr.shape, arr.strides, strict=True)) + arr.itemsize
    first = start - start % _PAGE  # pages are wholly inside the mapping, which is page-aligned
    last = -(-end // _PAGE) * _PAGE
    _MADVISE(first, last - first, _MADV_DONTNEED)


_MADV_NOHUGEPAGE = 15  # Linux


def no_huge_pages(arr: np.ndarray) -> None:
    """Back ``arr`` (a large anonymous buffer, not yet written) with 4 KiB pages only. numpy asks for
    transparent huge pages on large allocations, so the first write into each 2 MiB of it makes all
    2 MiB resident: the KV cache, written one row per layer per token, was ~240 MiB resident after a
    few tokens at the 2B-4T shape's 4096-token context (2 x 30 layers x 2 MiB), instead of the rows
    used. Linux only (elsewhere nothing to do); the data and its numerics are untouched."""
    if _MADVISE is None or arr.size == 0:
        return
    start = arr.__array_interface__["data"][0]
    end = start + arr.nbytes
    first = start - start % _PAGE  # whole pages around the buffer: only their paging policy changes
    last = -(-end // _PAGE) * _PAGE
    _MADVISE(first, last - first, _MADV_NOHUGEPAGE)


def release_file(arr: np.ndarray) -> None:
    """``release_pages`` over the whole read-only file mapping that ``arr`` views (a checkpoint once its
    header, vocabulary and norms have been read): none of its pages stays in this process's resident
    set until something reads it again."""
    whole = _read_only_file_map(arr)
    if whole is not None:
        release_pages(whole)


class SourceTernary(LazyTernary):
    """A LazyTernary that can also be converted without keeping the result (``fresh``): the streamed
    layout-cache writer converts one matrix, writes it and drops it, so a first start never holds more
    than one converted matrix. Used as a LazyTernary (``packed``/``scale``) it converts once and keeps.
    ``converted`` says whether the conversion has run at all (so a defect in the tensor has surfaced),
    ``kept`` whether its result is held."""

    def __init__(self, name: str, rows: int, cols: int, convert: Callable[[], TernaryMatrix]) -> None:
        super().__init__(name, rows, cols, convert)
        object.__setattr__(self, "_source", convert)
        object.__setattr__(self, "_ran", False)

    @property
    def kept(self) -> bool:
        """Whether the converted matrix is held (it has been used as a TernaryMatrix)."""
        return bool(LazyTernary.converted.fget(self))  # type: ignore[attr-defined]

    @property
    def converted(self) -> bool:
        """Whether the conversion has run, kept or streamed by ``fresh``."""
        return self._ran or self.kept

    def fresh(self) -> TernaryMatrix:
        """The converted matrix, kept by nobody (unless an earlier use already converted and kept it)."""
        if self.kept:
            return TernaryMatrix(self.name, self.rows, self.cols, self.packed, self.scale)
        m = self._source()
        object.__setattr__(self, "_ran", True)
        return m


def fresh_matrix(m: TernaryMatrix) -> TernaryMatrix:
    """``m`` converted, without keeping the conversion when ``m`` is a SourceTernary."""
    return m.fresh() if isinstance(m, SourceTernary) else m


@dataclass(frozen=True, eq=False)
class DenseTensor:
    """A float matrix [rows, cols] left in its file encoding (memory-mapped); rows decode on demand.

    The embedding and an untied LM head are the only large dense tensors; keeping them encoded means a
    loaded model holds no float32 copy of them (a bf16 or q8_0 table is decoded a chunk at a time).
    `raw` is [rows, cols] float32/float16, [rows, cols] uint16 for bf16, or [rows, cols/32*34] for q8_0.
    """

    name: str
    rows: int
    cols: int
    kind: str
    raw: np.ndarray

    def __post_init__(self) -> None:
        if self.kind not in DENSE_KINDS:
            raise ModelError(f"tensor {self.name}: unsupported dense encoding {self.kind}")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    def _decode(self, raw: np.ndarray) -> np.ndarray:
        if self.kind == "bf16":
            return bf16_to_f32(raw)
        if self.kind == "q8_0":
            return q8_0_decode_rows(raw, self.cols)
        return np.asarray(raw, dtype=np.float32)

    def take(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows `ids` as float32 [len(ids), cols] (embedding lookup).

        From a file mapping, one row at a time, the file's mapped pages released after each
        (``release_file``): a fault on a 5 KiB row maps the whole page-cache folio around it (up to
        2 MiB on a kernel with large folios), so a 64-token prompt briefly held ~115 MiB of a 2B-4T
        embedding, and the rows of a generation stayed resident (~170 MiB after ``vtpu bench --lm``);
        now at most one folio is mapped at any time. Costs ~15 us a row."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.rows):
            raise ModelError(f"tensor {self.name}: token id out of range 0..{self.rows - 1}")
        if _read_only_file_map(self.raw) is None:
            return self._decode(self.raw[ids])
        rows = np.empty((ids.size, *self.raw.shape[1:]), self.raw.dtype)
        for k, i in enumerate(ids):
            rows[k] = self.raw[i]
            release_file(self.raw)
        return self._decode(rows)

    def row_range(self, r0: int, r1: int) -> np.ndarray:
        """Rows [r0, r1) as float32."""
        return self._decode(self.raw[r0:r1])

    def to_f32(self) -> np.ndarray:
        """The whole matrix as float32 (tests and small models)."""
        return self.row_range(0, self.rows)


@dataclass(eq=False)
class LayerWeights:
    """One decoder block: pre-norms, ternary projections and the BitNet sub-norms."""

    attn_norm: np.ndarray
    wq: TernaryMatrix
    wk: TernaryMatrix
    wv: TernaryMatrix
    wo: TernaryMatrix
    attn_sub_norm: np.ndarray
    ffn_norm: np.ndarray
    w_gate: TernaryMatrix
    w_up: TernaryMatrix
    w_down: TernaryMatrix
    ffn_sub_norm: np.ndarray

    def ternary(self) -> dict[str, TernaryMatrix]:
        """The seven ternary matrices by role."""
        names = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")
        return {n: getattr(self, n) for n in names}

    def norms(self) -> dict[str, np.ndarray]:
        names = ("attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm")
        return {n: getattr(self, n) for n in names}


@dataclass(eq=False)
class BitNetModel:
    """A loaded model in the vtpu layout, whatever file format it came from."""

    config: ModelConfig
    embedding: DenseTensor
    layers: list[LayerWeights]
    output_norm: np.ndarray
    lm_head: DenseTensor
    source: Path
    fmt: str
    tokenizer: Tokenizer | None = None
    notes: list[str] = field(default_factory=list)

    def ternary_matrices(self) -> Iterator[TernaryMatrix]:
        for layer in self.layers:
            yield from layer.ternary().values()

    @property
    def ternary_bytes(self) -> int:
        """Bytes of all packed ternary weights (the memory budget's unit)."""
        return sum(m.nbytes for m in self.ternary_matrices())


def expect_shape(source: str, name: str, got: Sequence[int], want: Sequence[int]) -> None:
    """Raise a ModelError naming the tensor when its shape disagrees with the config."""
    if tuple(got) != tuple(want):
        raise ModelError(f"{source}: tensor {name} has shape {tuple(got)}, config implies {tuple(want)}")


def layer_shapes(cfg: ModelConfig) -> dict[str, tuple[int, int]]:
    """[out, in] of each ternary role, from the config."""
    h = cfg.hidden
    return {
        "wq": (cfg.q_dim, h),
        "wk": (cfg.kv_dim, h),
        "wv": (cfg.kv_dim, h),
        "wo": (h, cfg.q_dim),
        "w_gate": (cfg.ffn, h),
        "w_up": (cfg.ffn, h),
        "w_down": (h, cfg.ffn),
    }


def norm_sizes(cfg: ModelConfig) -> dict[str, int]:
    return {
        "attn_norm": cfg.hidden,
        "attn_sub_norm": cfg.hidden,
        "ffn_norm": cfg.hidden,
        "ffn_sub_norm": cfg.ffn,
    }


def ternarize_dense(values: np.ndarray, name: str, source: str) -> tuple[np.ndarray, float]:
    """Codes (w+1) and the scale of a float tensor that already holds ternary * scale values.

    Some converters store BitNet weights as F32/F16 copies of sign * scale; anything else is rejected.
    """
    v = np.asarray(values, dtype=np.float64)
    nz = np.abs(v[v != 0])
    scale = float(nz.max()) if nz.size else 0.0
    if nz.size and np.any(nz != scale):
        raise ModelError(
            f"{source}: tensor {name} is a float tensor that is not ternary (values beyond +-scale)"
        )
    codes = (np.sign(v) + 1).astype(np.uint8)
    return codes, scale
