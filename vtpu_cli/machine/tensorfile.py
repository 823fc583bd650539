"""Reading and writing safetensors files keyed by coordinate strings.

The format is tiny (u64 header length, a JSON header of name -> {dtype, shape, data_offsets}, raw
little-endian bytes), and our scrolls need dtypes numpy lacks (BF16), so the codec is implemented
here and tested against the reference ``safetensors`` package.
"""

from __future__ import annotations

import json
import struct

import numpy as np

from vtpu_cli.core.errors import FormatError

# safetensors dtype <-> vtpu element type
ST_TO_VTPU = {"F32": "f32", "I32": "i32", "I16": "i16", "I8": "i8", "U8": "u8", "I64": "i64", "BF16": "bf16"}
VTPU_TO_ST = {v: k for k, v in ST_TO_VTPU.items()}
ITEM = {"F32": 4, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "I64": 8, "BF16": 2}
MAX_HEADER = 100 << 20


def read_safetensors(path: str) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    """name -> (vtpu dtype, shape, raw bytes). Every inconsistency is a FormatError."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise FormatError(f"cannot read {path}: {e.strerror}") from None
    if len(blob) < 8:
        raise FormatError(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack_from("<Q", blob)
    if n > MAX_HEADER or 8 + n > len(blob):
        raise FormatError(f"{path}: not a safetensors file (bad header length {n})")
    try:
        header = json.loads(blob[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: corrupt safetensors header")
    data = blob[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        try:
            st, shape, (a, b) = meta["dtype"], tuple(int(x) for x in meta["shape"]), meta["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"{path}: tensor {name!r} has a malformed entry") from None
        if st not in ST_TO_VTPU:
            raise FormatError(
                f"{path}: tensor {name!r} has unsupported dtype {st}",
                hint=f"supported: {', '.join(ST_TO_VTPU)}",
            )
        count = 1
        for d in shape:
            if d < 0:
                raise FormatError(f"{path}: tensor {name!r} has a negative dimension")
            count *= d
        if not (0 <= a <= b <= len(data)) or b - a != count * ITEM[st]:
            raise FormatError(f"{path}: tensor {name!r} has inconsistent data offsets")
        out[name] = (ST_TO_VTPU[st], shape, data[a:b])
    return out


def write_safetensors(path: str, tensors: dict[str, tuple[str, tuple[int, ...], bytes]]) -> None:
    """Write atomically (temporary file + rename); names sorted for reproducible files."""
    from vtpu_cli.core.fileio import write_atomic

    header: dict = {}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        st = VTPU_TO_ST.get(dtype)
        if st is None:  # t2 and friends travel as raw bytes
            st, shape = "U8", (len(raw),)
        header[name] = {"dtype": st, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    write_atomic(path, struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


def as_array(dtype: str, shape: tuple[int, ...], raw: bytes) -> np.ndarray:
    """A typed numpy view of scroll bytes (bf16 widened exactly to float32)."""
    from vtpu_cli.core.numerics import bf16_array_to_f32

    if dtype == "bf16":
        a = bf16_array_to_f32(np.frombuffer(raw, "<u2"))
    elif dtype == "t2":
        a = np.frombuffer(raw, np.uint8)
        codes = ((a[:, None] >> np.array([0, 2, 4, 6], np.uint8)) & 3).reshape(-1).astype(np.int8) - 1
        n = 1
        for d in shape:
            n *= d
        return codes[:n].reshape(shape)
    else:
        from vtpu_cli.isa.table import TYPES

        a = np.frombuffer(raw, TYPES[dtype][2])
    n = 1
    for d in shape:
        n *= d
    return a.reshape(shape) if n == a.size else a
