"""The vtpu ternary weight layout: one format that every checkpoint format is converted into.

Layout of a weight matrix of shape [out, in] (the PyTorch `nn.Linear` orientation, y = W x):

* each weight w in {-1, 0, +1} is stored as the 2-bit code c = w + 1 in {0, 1, 2} (3 never occurs);
* codes are packed 4 per byte, little-endian in the byte: column 4k+i of a row lives in bits 2i..2i+1
  of byte k of that row;
* rows are stored one after another (row-major), each ceil(in/4) bytes; a partial last byte is padded
  with code 1 (weight 0), so padding never changes a dot product;
* one float scale per tensor: the real weight is (c - 1) * scale.

Row-major with whole rows per byte run keeps a GEMV a streaming pass over contiguous bytes and lets a
tensor-parallel split cut rows at any boundary; little-endian fields match how SIMD shifts extract them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from vtpu_cli.isa import ternary as isa_ternary
from vtpu_cli.models.errors import ModelError

CODES_PER_BYTE = 4
_SHIFTS = np.array([0, 2, 4, 6], dtype=np.uint8)
# Rows converted per step: bounds the temporaries of every conversion to a few MiB.
CHUNK_WEIGHTS = 1 << 20


def packed_cols(cols: int) -> int:
    """Bytes per packed row."""
    return (cols + CODES_PER_BYTE - 1) // CODES_PER_BYTE


def pack_codes(codes: np.ndarray) -> np.ndarray:
    """Pack a [rows, cols] array of codes 0..2 into the vtpu layout [rows, ceil(cols/4)] uint8
    (the one packing, ``vtpu_cli.isa.ternary``; padding codes are 1, weight 0)."""
    codes = np.asarray(codes, dtype=np.uint8)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D, got shape {codes.shape}")
    return isa_ternary.pack_codes(codes, pad=1)


def unpack_codes(packed: np.ndarray, cols: int) -> np.ndarray:
    """Inverse of `pack_codes`: [rows, ceil(cols/4)] uint8 -> [rows, cols] codes 0..3."""
    return isa_ternary.unpack_codes(np.asarray(packed, dtype=np.uint8), cols)


def pack_ternary(w: np.ndarray) -> np.ndarray:
    """Pack ternary weights (-1/0/+1, any integer dtype) into the vtpu layout."""
    w = np.asarray(w)
    if w.size and (w.min() < -1 or w.max() > 1):
        raise ValueError("weights must be in {-1, 0, +1}")
    return pack_codes((w + 1).astype(np.uint8))


def unpack_ternary(packed: np.ndarray, cols: int) -> np.ndarray:
    """Unpack to int8 weights in {-1, 0, +1}."""
    return unpack_codes(packed, cols).astype(np.int8) - 1


def has_code3(packed: np.ndarray) -> bool:
    """True when some 2-bit field of `packed` holds 3, which no ternary weight encodes."""
    packed = np.asarray(packed, dtype=np.uint8)
    if packed.flags.c_contiguous and packed.size % 8 == 0:  # eight bytes per operation
        packed = packed.reshape(-1).view(np.uint64)
    low = np.array(0x5555555555555555 if packed.dtype == np.uint64 else 0x55, packed.dtype)
    return bool(np.any(packed & (packed >> 1) & low))  # a field's high bit over its low bit


def row_chunks(rows: int, cols: int, multiple: int = 1) -> Iterator[tuple[int, int]]:
    """Yield [r0, r1) row ranges of about CHUNK_WEIGHTS weights, each a multiple of `multiple` rows."""
    step = max(multiple, (CHUNK_WEIGHTS // max(cols, 1)) // multiple * multiple)
    for r0 in range(0, rows, step):
        yield r0, min(rows, r0 + step)


@dataclass(frozen=True, eq=False)
class TernaryMatrix:
    """A ternary weight matrix in the vtpu layout: `packed` [rows, ceil(cols/4)] uint8 plus a scale."""

    name: str
    rows: int
    cols: int
    packed: np.ndarray
    scale: float

    def __post_init__(self) -> None:
        want = (self.rows, packed_cols(self.cols))
        if self.packed.dtype != np.uint8 or self.packed.shape != want:
            raise ModelError(f"tensor {self.name}: packed shape {self.packed.shape} != {want}")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def nbytes(self) -> int:
        return self.rows * packed_cols(self.cols)  # = packed.nbytes (checked at construction)

    def ternary(self, r0: int = 0, r1: int | None = None) -> np.ndarray:
        """Rows [r0, r1) as int8 weights in {-1, 0, +1}."""
        return unpack_ternary(self.packed[r0:r1], self.cols)

    def dequantize(self) -> np.ndarray:
        """The real-valued matrix in float64 (tests and small models only)."""
        return self.ternary().astype(np.float64) * self.scale

    def int_matmul(self, xq: np.ndarray) -> np.ndarray:
        """Exact integer products W_ternary @ xq for integer activations xq [tokens, cols], as float64.

        Row chunks keep the unpacked weights small; float64 is exact because |sum| <= 128 * cols < 2**53.
        """
        xq = np.asarray(xq, dtype=np.float64)
        out = np.empty((xq.shape[0], self.rows), dtype=np.float64)
        for r0, r1 in row_chunks(self.rows, self.cols):
            out[:, r0:r1] = xq @ self.ternary(r0, r1).astype(np.float64).T
        return out


class LazyTernary(TernaryMatrix):
    """A TernaryMatrix whose conversion runs on first use of ``packed`` or ``scale``: a start that finds
    the converted layout in the cache never decodes the file's ternary tensors (8 s and 0.52 GB at the
    2B-4T shape). A defective tensor then raises its ModelError at that first use."""

    def __init__(self, name: str, rows: int, cols: int, convert: Callable[[], TernaryMatrix]) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "cols", cols)
        object.__setattr__(self, "_convert", convert)
        object.__setattr__(self, "_done", None)

    def _get(self) -> TernaryMatrix:
        if self._done is None:
            object.__setattr__(self, "_done", self._convert())
        return self._done

    @property
    def packed(self) -> np.ndarray:  # type: ignore[override]
        return self._get().packed

    @property
    def scale(self) -> float:  # type: ignore[override]
        return self._get().scale

    @property
    def converted(self) -> bool:
        """Whether the conversion has run."""
        return self._done is not None
