"""The one ternary packing: 2-bit codes (w + 1: 0, 1, 2 for -1, 0, +1), four per byte, code k at
bits 2*(k % 4) of byte k // 4 (least significant first). svISA ``t2`` data, DTERNARY weights, phextcc's
weight tiles and the model loaders all use it; code 3 is invalid.
"""

from __future__ import annotations

import numpy as np

_SHIFTS = np.array([0, 2, 4, 6], np.uint8)


def pack_codes(codes, pad: int = 1) -> np.ndarray:
    """codes[..., n] in 0..2 -> uint8[..., ceil(n / 4)]. A partial last byte is filled with ``pad``
    codes (1, weight 0, by default: padding never changes a dot product)."""
    c = np.asarray(codes, dtype=np.uint8)
    n = c.shape[-1]
    extra = (-n) % 4
    if extra:
        c = np.concatenate([c, np.full(c.shape[:-1] + (extra,), pad, np.uint8)], axis=-1)
    c = c.reshape(c.shape[:-1] + (-1, 4))
    out = c[..., 0] | (c[..., 1] << 2)  # explicit ORs: several times faster than a reduction
    out |= c[..., 2] << 4
    out |= c[..., 3] << 6
    return out


def unpack_codes(packed, n: int | None = None) -> np.ndarray:
    """uint8[..., m] -> codes[..., n] (n defaults to 4 m)."""
    p = np.asarray(packed, dtype=np.uint8)
    codes = (p[..., :, None] >> _SHIFTS) & 3
    codes = codes.reshape(p.shape[:-1] + (-1,))
    return codes if n is None else codes[..., :n]


def pack_weights(w) -> np.ndarray:
    """Ternary weights (-1, 0, +1) -> packed codes."""
    w = np.asarray(w)
    if w.size and (w.min() < -1 or w.max() > 1):
        raise ValueError("ternary weights must be -1, 0 or +1")
    return pack_codes((w + 1).astype(np.uint8))


def unpack_weights(packed, n: int | None = None, dtype=np.int8) -> np.ndarray:
    """Packed codes -> weights (code - 1) of ``dtype``."""
    return unpack_codes(packed, n).astype(dtype) - 1
