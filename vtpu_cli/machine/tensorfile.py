"""Reading and writing safetensors files keyed by coordinate strings.

The format is tiny (u64 header length, a JSON header of name -> {dtype, shape, data_offsets}, raw
little-endian bytes), and our scrolls need dtypes numpy lacks (BF16), so the codec is implemented
here and tested against the reference ``safetensors`` package.
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from vtpu_cli.binary import limits
from vtpu_cli.core.errors import FormatError

# safetensors dtype <-> vtpu element type
ST_TO_VTPU = {"F32": "f32", "I32": "i32", "I16": "i16", "I8": "i8", "U8": "u8", "I64": "i64", "BF16": "bf16"}
VTPU_TO_ST = {v: k for k, v in ST_TO_VTPU.items()}
ITEM = {"F32": 4, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "I64": 8, "BF16": 2}
MAX_HEADER = limits.MAX_SAFETENSORS_HEADER


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"key {dup!r} appears twice")
    return dict(pairs)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def read_safetensors(
    path: str, *, max_bytes: int | None = None
) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    """name -> (vtpu dtype, shape, raw bytes). Every inconsistency is a FormatError.

    The header is validated completely -- types of every field, sizes against the file length, the
    per-tensor limit and `max_bytes` (default: the memory budget, docs/limits.md), overlapping ranges --
    before any tensor data is read, so a hostile header cannot make the reader allocate.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            return _read(f, size, path, limits.default_memory_budget() if max_bytes is None else max_bytes)
    except OSError as e:
        raise FormatError(f"cannot read {path}: {e.strerror}") from None


def _read(f, size: int, path: str, max_bytes: int) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    if size < 8:
        raise FormatError(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > MAX_HEADER or 8 + n > size:
        raise FormatError(
            f"{path}: not a safetensors file (header length {n}, file of {size} bytes, "
            f"header limit {limits.format_size(MAX_HEADER)})"
        )
    try:
        header = json.loads(f.read(n), object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise FormatError(f"{path}: corrupt safetensors header (nested too deeply)") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, duplicate keys
        raise FormatError(f"{path}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: corrupt safetensors header (not a JSON object)")
    data_len = size - 8 - n
    entries: list[tuple[int, int, str, str, tuple[int, ...]]] = []
    for name, meta in header.items():
        if name == "__metadata__":
            if not isinstance(meta, dict):
                raise FormatError(f"{path}: __metadata__ must be a JSON object")
            continue
        bad = FormatError(
            f"{path}: tensor {name!r} has a malformed entry",
            hint='each tensor is {"dtype": "F32", "shape": [ints], "data_offsets": [begin, end]}',
        )
        if not isinstance(meta, dict):
            raise bad
        st, shape, offs = meta.get("dtype"), meta.get("shape"), meta.get("data_offsets")
        if not isinstance(st, str) or not isinstance(shape, list) or not isinstance(offs, list):
            raise bad
        if len(offs) != 2 or not all(_is_int(x) for x in offs) or not all(_is_int(x) for x in shape):
            raise bad
        if st not in ST_TO_VTPU:
            raise FormatError(
                f"{path}: tensor {name!r} has unsupported dtype {st}",
                hint=f"supported: {', '.join(ST_TO_VTPU)}",
            )
        if len(shape) > limits.MAX_DATA_DIMS or any(d < 0 for d in shape):
            raise FormatError(f"{path}: tensor {name!r} has a bad shape {shape[:12]}")
        count = 1
        for d in shape:
            count *= d
        nbytes = count * ITEM[st]
        if nbytes > limits.MAX_SCROLL_BYTES:
            raise FormatError(
                f"{path}: tensor {name!r} declares {limits.format_size(nbytes)}, over the "
                f"{limits.format_size(limits.MAX_SCROLL_BYTES)} scroll limit"
            )
        a, b = offs
        if not (0 <= a <= b <= data_len) or b - a != nbytes:
            raise FormatError(
                f"{path}: tensor {name!r} has inconsistent data offsets [{a}, {b}] "
                f"({nbytes} bytes expected, {data_len} in the file)"
            )
        entries.append((a, b, name, ST_TO_VTPU[st], tuple(shape)))
    entries.sort()
    total = 0
    for (_, b0, n0, _, _), (a1, _, n1, _, _) in zip(entries, entries[1:], strict=False):
        if a1 < b0:
            raise FormatError(f"{path}: tensors {n0!r} and {n1!r} overlap")
    for a, b, _, _, _ in entries:
        total += b - a
    if total > max_bytes:
        raise FormatError(
            f"{path}: tensors of {limits.format_size(total)} exceed the memory budget of "
            f"{limits.format_size(max_bytes)}",
            hint=f"raise it with --mem-limit SIZE or ${limits.MEM_LIMIT_ENV}=SIZE (docs/limits.md)",
        )
    end = max((b for _, b, _, _, _ in entries), default=0)
    data = f.read(end)
    if len(data) != end:
        raise FormatError(f"{path}: truncated while reading tensor data")
    return {name: (dt, shape, data[a:b]) for a, b, name, dt, shape in sorted(entries, key=lambda e: e[2])}


def write_safetensors(
    path: str,
    tensors: dict[str, tuple[str, tuple[int, ...], bytes | memoryview]],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write atomically (temporary file + rename); names sorted for reproducible files. Tensor data is
    written from the given buffers one after the other, never joined into one copy. ``metadata`` is the
    format's string-to-string ``__metadata__`` (`vtpu run --out`: tensor name -> coordinate)."""
    from vtpu_cli.core.fileio import write_atomic

    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
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
    write_atomic(path, [struct.pack("<Q", len(hb)) + hb, *blobs])


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
