"""The .siw loader rejects truncated, corrupted and incompatible files with clear errors."""

from __future__ import annotations

import hashlib
import struct

import pytest
from conftest import PROGRAMS
from hypothesis import given
from hypothesis import strategies as st

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.binary import siwfile
from vtpu_cli.core.errors import FormatError
from vtpu_cli.core.fileio import write_atomic

BLOB = siwfile.encode(assemble((PROGRAMS / "vadd.vasm").read_text(), "vadd.vasm"))


def reseal(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


def test_header_layout():
    magic, version, isa, flags, features, nsec, _ = siwfile.HEADER.unpack_from(BLOB)
    assert magic == b"VTPUSIW\0" and version == 1 and isa == 1 and nsec == 8
    assert len(BLOB) % 8 == 0


def test_truncated_file():
    for n in (0, 7, 40, len(BLOB) // 2, len(BLOB) - 1):
        with pytest.raises(FormatError):
            siwfile.decode(BLOB[:n], "x.siw")


def test_bit_flip_is_a_checksum_error():
    bad = bytearray(BLOB)
    bad[200] ^= 0x10
    with pytest.raises(FormatError, match="checksum mismatch"):
        siwfile.decode(bytes(bad), "x.siw")


def test_wrong_magic_and_version():
    with pytest.raises(FormatError, match="bad magic"):
        siwfile.decode(b"NOTASIW!" + BLOB[8:], "x.siw")
    body = bytearray(BLOB[:-32])
    struct.pack_into("<H", body, 8, 7)
    with pytest.raises(FormatError, match="format version 7 is not supported"):
        siwfile.decode(reseal(bytes(body)), "x.siw")


def test_resealed_garbage_in_code_is_rejected_not_crashed():
    body = bytearray(BLOB[:-32])
    _, _, off, _ = siwfile.SECTION.unpack_from(body, siwfile.HEADER.size)
    body[off] = 0x3F  # unknown D opcode
    with pytest.raises(FormatError, match="unknown opcode 0x3f"):
        siwfile.decode(reseal(bytes(body)), "x.siw")
    body = bytearray(BLOB[:-32])
    body[off + 16 + 4] = 0x7F  # SIW 0's S slot (SCOORD p0): class p with index 31 (only p0..p7)
    with pytest.raises(FormatError, match="register index 31"):
        siwfile.decode(reseal(bytes(body)), "x.siw")


@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data):
    with pytest.raises(FormatError):
        siwfile.decode(data, "fuzz.siw")


@given(st.integers(0, len(BLOB) - 33), st.integers(1, 255))
def test_fuzz_resealed_mutations_never_crash(pos, x):
    body = bytearray(BLOB[:-32])
    body[pos] ^= x
    try:
        prog = siwfile.decode(reseal(bytes(body)), "m.siw")
    except FormatError:
        return
    siwfile.encode(prog)  # anything accepted must be a coherent program


def test_write_atomic_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.siw"
    write_atomic(str(target), BLOB)
    assert target.read_bytes() == BLOB
    assert [p.name for p in tmp_path.iterdir()] == ["out.siw"]


def test_write_atomic_never_replaces_a_device(tmp_path):
    import os
    import stat

    write_atomic("/dev/null", BLOB)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    target = tmp_path / "new.siw"
    write_atomic(str(target), BLOB)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    import os

    m = os.umask(0)
    os.umask(m)
    return m
