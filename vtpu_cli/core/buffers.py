"""Buffers that native code reads and writes: 64-byte aligned, and guarded in debug runs.

Native JIT code writes through raw pointers into scrolls, sentron contexts, counters and tables. A
wrong index there does not fault: it lands in Python's heap and surfaces much later as a crash in the
garbage collector. With ``VTPU_GUARD_ALLOC=1`` every such buffer gets its own mapping, placed flush
against an inaccessible page (and one before it), and when Python drops the buffer its pages become
inaccessible instead of being reused -- so an overflow or a write after the run faults at the
instruction that does it, where a debugger shows it. Debug only: guarded mappings are never unmapped.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import weakref

import numpy as np

GUARD_ENV = "VTPU_GUARD_ALLOC"
_PAGE = mmap.PAGESIZE
_PROT_NONE = 0
_kept: list[mmap.mmap] = []  # guarded mappings stay mapped for the process's life (see the docstring)


def guarded() -> bool:
    return os.environ.get(GUARD_ENV, "") not in ("", "0")


def aligned_zeros(nbytes: int, align: int = 64) -> np.ndarray:
    """A zeroed uint8 buffer of ``nbytes`` whose address is a multiple of ``align`` (a power of two)."""
    if guarded():
        return _guarded_zeros(nbytes, align)
    raw = np.zeros(nbytes + align, np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off : off + nbytes]


def zeros(shape, dtype, align: bool = False) -> np.ndarray:
    """``np.zeros(shape, dtype)`` (64-byte aligned with ``align``), guarded like :func:`aligned_zeros`.
    Without guard mode or ``align`` it is plain ``np.zeros``: these buffers are made on every run."""
    if not align and not guarded():
        return np.zeros(shape, dtype)
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    return aligned_zeros(n * dt.itemsize).view(dt).reshape(shape)


def copy(a: np.ndarray, align: bool = False) -> np.ndarray:
    """A copy of ``a`` made by :func:`zeros`."""
    out = zeros(a.shape, a.dtype, align)
    out[...] = a
    return out


class _Region:
    """The owner of one guarded buffer (numpy views keep it alive; its collection retires the pages)."""

    def __init__(self, addr: int, nbytes: int):
        self.__array_interface__ = {"data": (addr, False), "shape": (nbytes,), "typestr": "|u1", "version": 3}


def _mprotect(addr: int, length: int, prot: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    if libc.mprotect(addr, length, prot) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed")


def _guarded_zeros(nbytes: int, align: int) -> np.ndarray:
    span = -(-max(nbytes, 1) // align) * align  # the buffer ends exactly at the guard when align divides it
    pages = -(-span // _PAGE)
    mm = mmap.mmap(-1, (pages + 2) * _PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    _kept.append(mm)
    _mprotect(base, _PAGE, _PROT_NONE)
    end = base + (pages + 1) * _PAGE
    _mprotect(end, _PAGE, _PROT_NONE)
    start = end - span
    region = _Region(start, nbytes)
    weakref.finalize(region, _mprotect, base + _PAGE, pages * _PAGE, _PROT_NONE).atexit = False
    return np.asarray(region)
