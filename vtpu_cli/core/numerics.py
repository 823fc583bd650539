"""Exact numeric helpers shared by the assembler, interpreter and disassembler.

Float values travel as bit patterns so that nothing is rounded twice by accident.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where arrays are used: the compiler needs only the scalar helpers
    import numpy as np

_F = struct.Struct("<f")
_I = struct.Struct("<I")
CANON_NAN32 = 0x7FC00000
CANON_NAN16 = 0x7FC0
MASK64 = (1 << 64) - 1


def f32_bits(x: float) -> int:
    """Round a Python float to binary32 (nearest even, overflow to inf) and return its bits."""
    if x != x:
        return CANON_NAN32
    try:
        return _I.unpack(_F.pack(x))[0]  # the C double -> float conversion: round to nearest even
    except OverflowError:  # rounds beyond the largest binary32
        return 0xFF800000 if x < 0 else 0x7F800000


def bits_f32(b: int) -> float:
    """The exact value of binary32 bits as a Python float."""
    return _F.unpack(_I.pack(b & 0xFFFFFFFF))[0]


def f32_to_bf16_bits(bits: int) -> int:
    """binary32 bits -> bfloat16 bits, round to nearest even; NaN -> quiet NaN keeping the sign."""
    bits &= 0xFFFFFFFF
    if (bits & 0x7F800000) == 0x7F800000 and (bits & 0x7FFFFF):
        return (bits >> 16) & 0x8000 | CANON_NAN16
    lsb = (bits >> 16) & 1
    return ((bits + 0x7FFF + lsb) >> 16) & 0xFFFF


def bf16_bits(x: float) -> int:
    return f32_to_bf16_bits(f32_bits(x))


def bits_bf16(b: int) -> float:
    return bits_f32((b & 0xFFFF) << 16)


def f32_array_to_bf16(a: np.ndarray) -> np.ndarray:
    """Vectorised f32 -> bf16 bits (uint16), same rounding as :func:`f32_to_bf16_bits`."""
    import numpy as np

    u = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    lsb = (u >> 16) & 1
    r = ((u + 0x7FFF + lsb) >> 16).astype(np.uint16)
    nan = ((u & 0x7F800000) == 0x7F800000) & ((u & 0x7FFFFF) != 0)
    if nan.any():
        r[nan] = (((u[nan] >> 16) & 0x8000) | CANON_NAN16).astype(np.uint16)
    return r


def bf16_array_to_f32(a: np.ndarray) -> np.ndarray:
    return (a.astype("<u4") << 16).view("<f4")


def sext(x: int, bits: int) -> int:
    """Wrap an integer to `bits` and sign-extend it (two's complement)."""
    m = 1 << bits
    x &= m - 1
    return x - m if x >> (bits - 1) else x


def fma_f32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Fused a*b+c in binary32 with a single rounding, for arrays of equal shape.

    a*b is exact in binary64; a+b rounded to binary64 then to binary32 can round twice only when
    the binary64 sum lands exactly on a binary32 midpoint while the exact sum does not. TwoSum gives
    the exact error of the binary64 sum; in that case the sum is nudged one binary64 ulp toward the
    exact value before the final rounding, which makes the result correctly rounded.
    """
    import numpy as np

    a64 = a.astype(np.float64)
    p = a64 * b.astype(np.float64)
    c64 = c.astype(np.float64)
    with np.errstate(all="ignore"):
        s = p + c64
        bb = s - p
        err = (p - (s - bb)) + (c64 - bb)  # exact: p + c == s + err (when everything is finite)
        r = s.astype(np.float32)
        finite = np.isfinite(s) & (err != 0)
        if finite.any():
            r64 = r.astype(np.float64)
            other = np.nextafter(r, np.where(s > r64, np.float32(np.inf), np.float32(-np.inf))).astype(
                np.float64
            )
            mid = (r64 + other) * 0.5
            tie = finite & (s == mid) & (r64 != s)
            if tie.any():
                nudged = np.nextafter(s[tie], np.where(err[tie] > 0, np.inf, -np.inf))
                r[tie] = nudged.astype(np.float32)
    return r
