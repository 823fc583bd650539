"""Bit layouts of the checkpoint formats, decoded into (and, for the test models, encoded from) vtpu codes.

Each decoder reads a memory-mapped source array in row chunks and writes 2-bit codes into a vtpu packed
array, so no float copy of a weight matrix is ever made. Layouts (facts from the format definitions):

* HF BitNet packed: uint8 [out/4, in]; 2-bit field i (LSB first) of packed row r is original row
  i*(out/4) + r, stored as w+1.
* GGUF TQ2_0: blocks of 256 weights along a row, 66 bytes: qs[64] then an fp16 scale d. Weight e of the
  block is (qs[32*(e//128) + e%32] >> 2*((e%128)//32)) & 3, minus 1, times d.
* GGUF TQ1_0: blocks of 256 weights, 54 bytes: qs[48], qh[4], fp16 d. Each byte holds base-3 digits as
  a fixed-point fraction: byte = ceil(v * 256 / 243) with v = sum digit_n * 3**(4-n); digit n is
  recovered as ((byte * 3**n mod 256) * 3) >> 8. qs[0:32] hold weights n*32+j (5 digits), qs[32:48]
  weights 160+n*16+j (5 digits), qh[0:4] weights 240+n*4+j (4 digits, low digit unused).
* bitnet.cpp I2_S (type 36): the whole tensor, flattened row-major, in blocks of 128 weights of 32 bytes;
  weight j of a block is (byte[j%32] >> (6 - 2*(j//32))) & 3; after the n/4 code bytes one float32
  scale, padded to 32 bytes. Codes are w+1.
* GGUF Q8_0 (dense embeddings only): blocks of 32: fp16 d then 32 int8 q; value d*q.
"""

from __future__ import annotations

import numpy as np

from vtpu_cli.models.errors import ModelError
from vtpu_cli.models.ternary import TernaryMatrix, has_code3, pack_codes, packed_cols, row_chunks

QK_TQ = 256
TQ2_0_BLOCK = 66
TQ1_0_BLOCK = 54
QK_I2_S = 128
I2_S_TAIL = 32
QK8_0 = 32
Q8_0_BLOCK = 34

_POW3 = np.array([1, 3, 9, 27, 81], dtype=np.uint16)
_DIGIT_WEIGHTS5 = np.array([81, 27, 9, 3, 1], dtype=np.uint16)
_DIGIT_WEIGHTS4 = np.array([81, 27, 9, 3], dtype=np.uint16)


def _check_codes(packed: np.ndarray, name: str, source: str) -> None:
    if has_code3(packed):
        raise ModelError(f"{source}: tensor {name} holds the 2-bit code 3, which is not a ternary weight")


def _single_scale(scales: np.ndarray, name: str, source: str) -> float:
    """The one per-tensor scale behind per-block scales (all nonzero block scales must agree)."""
    nonzero = np.unique(scales[scales != 0])
    if nonzero.size > 1:
        raise ModelError(
            f"{source}: tensor {name} has {nonzero.size} different block scales "
            f"({nonzero[:3].tolist()}...); a BitNet ternary tensor has one scale"
        )
    if nonzero.size and (nonzero[0] < 0 or not np.isfinite(nonzero[0])):
        raise ModelError(f"{source}: tensor {name} has an invalid scale {nonzero[0]}")
    return float(nonzero[0]) if nonzero.size else 0.0


# ------------------------------------------------------------------ HF packed uint8


def hf_pack(w: np.ndarray) -> np.ndarray:
    """Encode ternary int weights [out, in] into the HF BitNet uint8 [out/4, in] layout."""
    out = w.shape[0]
    if out % 4:
        raise ValueError(f"out dimension {out} is not a multiple of 4")
    codes = (np.asarray(w, dtype=np.int16) + 1).astype(np.uint8).reshape(4, out // 4, -1)
    return np.bitwise_or.reduce(codes << np.array([0, 2, 4, 6], dtype=np.uint8)[:, None, None], axis=0)


def hf_decode(src: np.ndarray, scale: float, name: str, source: str) -> TernaryMatrix:
    """Convert an HF packed uint8 [out/4, in] array into a TernaryMatrix of shape [out, in]."""
    quarter, cols = src.shape
    rows = quarter * 4
    packed = np.empty((rows, packed_cols(cols)), dtype=np.uint8)
    for r0, r1 in row_chunks(quarter, cols):
        chunk = np.asarray(src[r0:r1], dtype=np.uint8)
        _check_codes(chunk, name, source)
        if cols % 4 == 0:
            # byte t of the output row i*quarter + r = field i of the four bytes 4t..4t+3 of row r
            planes = transpose_fields(np.ascontiguousarray(chunk).view("<u4"))
            planes = planes.view(np.uint8).reshape(r1 - r0, cols // 4, 4)
            for i in range(4):
                packed[i * quarter + r0 : i * quarter + r1] = planes[:, :, i]
            continue
        for i in range(4):
            packed[i * quarter + r0 : i * quarter + r1] = pack_codes((chunk >> (2 * i)) & 3)
    return TernaryMatrix(name, rows, cols, packed, scale)


def transpose_fields(words: np.ndarray) -> np.ndarray:
    """Transpose the 4 x 4 matrix of 2-bit fields in each little-endian 32-bit word: field j of byte i
    becomes field i of byte j (two delta swaps: the off-diagonal 2 x 2 blocks, then the elements inside
    them). The checkpoint layouts put four consecutive weights into four bytes at one shift; the vtpu
    packing wants them in one byte, so every 2-bit decoder is this transpose plus a byte permutation."""
    x = np.asarray(words, dtype="<u4")
    t = ((x >> 12) ^ x) & np.uint32(0x0000F0F0)
    x = x ^ t ^ (t << 12)
    t = ((x >> 6) ^ x) & np.uint32(0x00CC00CC)
    return (x ^ t ^ (t << 6)).astype("<u4", copy=False)  # little-endian bytes on any host


# ------------------------------------------------------------------ TQ2_0


def tq2_0_encode(w: np.ndarray, scale: float) -> np.ndarray:
    """Encode ternary weights [out, in] (in % 256 == 0) as TQ2_0 bytes [out, in/256*66]."""
    rows, cols = w.shape
    codes = (np.asarray(w, dtype=np.int16) + 1).astype(np.uint8).reshape(rows, cols // QK_TQ, 2, 4, 32)
    qs = np.bitwise_or.reduce(codes << np.array([0, 2, 4, 6], dtype=np.uint8)[:, None], axis=3)
    d = np.full((rows, cols // QK_TQ, 1), scale, dtype=np.float16).view(np.uint8)
    return np.concatenate([qs.reshape(rows, cols // QK_TQ, 64), d], axis=2).reshape(rows, -1)


def tq2_0_decode(src: np.ndarray, cols: int, name: str, source: str) -> TernaryMatrix:
    """Convert TQ2_0 bytes [out, in/256*66] into a TernaryMatrix [out, in]."""
    rows = src.shape[0]
    nb = cols // QK_TQ
    packed = np.empty((rows, packed_cols(cols)), dtype=np.uint8)
    scales = []
    for r0, r1 in row_chunks(rows, cols):
        n = r1 - r0
        blocks = np.asarray(src[r0:r1], dtype=np.uint8).reshape(n, nb, TQ2_0_BLOCK)
        d = blocks[:, :, 64:66].copy().view(np.float16)[:, :, 0]
        # weights 32*l + 4t .. 32*l + 4t + 3 of half h sit at shift 2l in bytes 4t .. 4t+3 of qs[32h:]:
        # after the transpose byte l of word t of half h is vtpu byte 32h + 8l + t of the block
        words = transpose_fields(np.ascontiguousarray(blocks[:, :, :64]).view("<u4").reshape(n, nb, 2, 8))
        out = words.view(np.uint8).reshape(n, nb, 2, 8, 4).transpose(0, 1, 2, 4, 3).reshape(n, nb, 64)
        out[d == 0] = 0x55  # a zero block scale makes every weight of the block zero (code 1)
        packed[r0:r1] = out.reshape(n, nb * 64)
        _check_codes(packed[r0:r1], name, source)  # (a chunk at a time: its temporaries stay in cache)
        scales.append(np.unique(d))
    scale = _single_scale(np.concatenate(scales).astype(np.float64), name, source)
    return TernaryMatrix(name, rows, cols, packed, scale)


# ------------------------------------------------------------------ TQ1_0


def _base3_bytes(digits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Digits [..., k, m] (most significant first) -> fixed-point bytes [..., m]."""
    v = (digits.astype(np.uint16) * weights[:, None]).sum(axis=-2)
    return ((v * 256 + 242) // 243).astype(np.uint8)


def _base3_digits(b: np.ndarray, k: int) -> np.ndarray:
    """Bytes [..., m] -> digits [..., k, m] (most significant first)."""
    q = (b[..., None, :].astype(np.uint16) * _POW3[:k, None]) & 0xFF
    return ((q * 3) >> 8).astype(np.uint8)


def tq1_0_encode(w: np.ndarray, scale: float) -> np.ndarray:
    """Encode ternary weights [out, in] (in % 256 == 0) as TQ1_0 bytes [out, in/256*54]."""
    rows, cols = w.shape
    nb = cols // QK_TQ
    c = (np.asarray(w, dtype=np.int16) + 1).astype(np.uint8).reshape(rows, nb, QK_TQ)
    qs0 = _base3_bytes(c[..., :160].reshape(rows, nb, 5, 32), _DIGIT_WEIGHTS5)
    qs1 = _base3_bytes(c[..., 160:240].reshape(rows, nb, 5, 16), _DIGIT_WEIGHTS5)
    qh = _base3_bytes(c[..., 240:].reshape(rows, nb, 4, 4), _DIGIT_WEIGHTS4)
    d = np.full((rows, nb, 1), scale, dtype=np.float16).view(np.uint8)
    return np.concatenate([qs0, qs1, qh, d], axis=2).reshape(rows, -1)


def tq1_0_decode(src: np.ndarray, cols: int, name: str, source: str) -> TernaryMatrix:
    """Convert TQ1_0 bytes [out, in/256*54] into a TernaryMatrix [out, in]."""
    rows = src.shape[0]
    nb = cols // QK_TQ
    packed = np.empty((rows, packed_cols(cols)), dtype=np.uint8)
    scales = []
    for r0, r1 in row_chunks(rows, cols):
        n = r1 - r0
        blocks = np.asarray(src[r0:r1], dtype=np.uint8).reshape(n, nb, TQ1_0_BLOCK)
        d = blocks[:, :, 52:54].copy().view(np.float16)[:, :, 0]
        part0 = _base3_digits(blocks[:, :, 0:32], 5).reshape(n, nb, 160)
        part1 = _base3_digits(blocks[:, :, 32:48], 5).reshape(n, nb, 80)
        part2 = _base3_digits(blocks[:, :, 48:52], 4).reshape(n, nb, 16)
        codes = np.concatenate([part0, part1, part2], axis=2)
        if np.any(codes > 2):
            raise ModelError(f"{source}: tensor {name} holds a base-3 digit out of range")
        codes[d == 0] = 1
        packed[r0:r1] = pack_codes(codes.reshape(n, cols))
        scales.append(np.unique(d))
    scale = _single_scale(np.concatenate(scales).astype(np.float64), name, source)
    return TernaryMatrix(name, rows, cols, packed, scale)


# ------------------------------------------------------------------ I2_S (bitnet.cpp)


def i2_s_nbytes(n_weights: int) -> int:
    """Bytes of an I2_S tensor: the 2-bit codes plus the 32-byte scale tail."""
    return n_weights // 4 + I2_S_TAIL


def i2_s_encode(w: np.ndarray, scale: float) -> bytes:
    """Encode ternary weights [out, in] (out*in % 128 == 0) as an I2_S tensor payload."""
    flat = (np.asarray(w, dtype=np.int16).reshape(-1) + 1).astype(np.uint8)
    groups = flat.reshape(-1, 4, 32) << np.array([6, 4, 2, 0], dtype=np.uint8)[:, None]
    codes = np.bitwise_or.reduce(groups, axis=1).astype(np.uint8)
    tail = np.zeros(I2_S_TAIL, dtype=np.uint8)
    tail[:4] = np.array([scale], dtype="<f4").view(np.uint8)
    return codes.tobytes() + tail.tobytes()


def i2_s_decode(src: np.ndarray, rows: int, cols: int, name: str, source: str) -> TernaryMatrix:
    """Convert an I2_S payload (flat uint8, rows*cols/4 + 32 bytes) into a TernaryMatrix [rows, cols]."""
    n = rows * cols
    if n % QK_I2_S:
        raise ModelError(f"{source}: tensor {name}: {n} weights are not a multiple of {QK_I2_S} (I2_S)")
    scale = float(np.asarray(src[n // 4 : n // 4 + 4]).copy().view("<f4")[0])
    if not np.isfinite(scale) or scale < 0:
        raise ModelError(f"{source}: tensor {name} has an invalid I2_S scale {scale}")
    packed = np.empty((rows, packed_cols(cols)), dtype=np.uint8)
    multiple = QK_I2_S // np.gcd(cols, QK_I2_S)
    for r0, r1 in row_chunks(rows, cols, multiple):
        blocks = np.asarray(src[r0 * cols // 4 : r1 * cols // 4], dtype=np.uint8)
        if cols % 4:  # a byte of vtpu codes would straddle two rows: by the codes
            codes = (blocks.reshape(-1, 1, 32) >> np.array([6, 4, 2, 0], dtype=np.uint8)[:, None]) & 3
            packed[r0:r1] = pack_codes(codes.reshape(r1 - r0, cols))
            _check_codes(packed[r0:r1], name, source)
            continue
        # weights 32*l + 4t .. 32*l + 4t + 3 sit at shift 6 - 2l in bytes 4t .. 4t+3 of the block: after
        # the transpose byte 3 - l of word t is vtpu byte 8l + t of the block
        words = transpose_fields(np.ascontiguousarray(blocks).view("<u4").reshape(-1, 8))
        out = words.view(np.uint8).reshape(-1, 8, 4)[:, :, ::-1].transpose(0, 2, 1)
        packed[r0:r1] = out.reshape(r1 - r0, packed_cols(cols))
        _check_codes(packed[r0:r1], name, source)
    return TernaryMatrix(name, rows, cols, packed, scale)


# ------------------------------------------------------------------ Q8_0 (dense)


def q8_0_encode(x: np.ndarray) -> np.ndarray:
    """Encode a float matrix [rows, cols] (cols % 32 == 0) as Q8_0 bytes [rows, cols/32*34]."""
    rows, cols = x.shape
    blocks = np.asarray(x, dtype=np.float32).reshape(rows, cols // QK8_0, QK8_0)
    amax = np.abs(blocks).max(axis=2, keepdims=True)
    d = (amax / 127).astype(np.float16)
    inv = np.divide(1.0, d.astype(np.float32), out=np.zeros_like(amax), where=d != 0)
    q = np.clip(np.rint(blocks * inv), -127, 127).astype(np.int8)
    return np.concatenate([d.view(np.uint8), q.view(np.uint8)], axis=2).reshape(rows, -1)


def q8_0_decode_rows(src: np.ndarray, cols: int) -> np.ndarray:
    """Decode Q8_0 rows [n, cols/32*34] to float32 [n, cols]."""
    n = src.shape[0]
    blocks = np.asarray(src, dtype=np.uint8).reshape(n, cols // QK8_0, Q8_0_BLOCK)
    d = blocks[:, :, :2].copy().view(np.float16).astype(np.float32)
    q = blocks[:, :, 2:].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(n, cols)
