"""LLVM IR building blocks shared by the lowering and the native C pipe: types, the ABI, helpers."""

from __future__ import annotations

import struct

from llvmlite import ir

from vtpu_cli.core.numerics import CANON_NAN32
from vtpu_cli.isa.table import VEC_BYTES, lanes, type_size

I1, I8, I16, I32, I64, I128 = (ir.IntType(n) for n in (1, 8, 16, 32, 64, 128))
F32, F64 = ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
VB = ir.VectorType(I8, VEC_BYTES)  # a vector register as raw bytes

# the context block and exit codes: declared once in abi.py
from vtpu_cli.engines.jit.abi import (  # noqa: E402,F401  (re-exported)
    CTX_SIZE,
    OFF_ABORT_PTR,
    OFF_BLOCKED,
    OFF_COUNTED,
    OFF_COUNTS_PTR,
    OFF_CSTAT,
    OFF_FASTHITS,
    OFF_FLAGS,
    OFF_FLEET,
    OFF_HOME,
    OFF_M,
    OFF_MAXSTEPS,
    OFF_MLEN,
    OFF_P,
    OFF_PC,
    OFF_PPT,
    OFF_PPTHITS,
    OFF_PPTMISSES,
    OFF_R,
    OFF_RACE,
    OFF_READYCB,
    OFF_SCOUNT,
    OFF_SEEN,
    OFF_SID,
    OFF_SLOT,
    OFF_SLOWCB,
    OFF_STATUS,
    OFF_STEPS_PTR,
    OFF_TAB,
    OFF_TABMASK,
    OFF_TRPTR,
    OFF_TRSET,
    OFF_TRSIZE,
    OFF_TSC0,
    OFF_TSC1,
    OFF_V,
    OFF_YIELD,
    ST_ABORT,
    ST_DEADLOCK,
    ST_ERROR,
    ST_FAULT,
    ST_LIMIT,
    ST_OK,
    ST_PYFAULT,
    ST_REPLAY,
)

# The native PPT (see ``emit_ppt_translate``): a u64 block at ctx[OFF_PPT] holding ``sets`` way counts
# followed by ``sets * ways`` entries of (coord lo, coord hi, scroll pointer, scroll size), LRU first;
# and the scroll table at ctx[OFF_TAB]: ``mask + 1`` entries of the same shape, open addressing with
# linear probing (``table_slot``), an empty entry has hi == TAB_EMPTY.
TAB_EMPTY = (1 << 64) - 1
GOLDEN64 = 0x9E3779B97F4A7C15


def table_slot(lo: int, hi: int, mask: int) -> int:
    """First probe of a coordinate in the native scroll table (the IR computes the same)."""
    m64 = (1 << 64) - 1
    return ((((lo ^ (hi << 32)) & m64) * GOLDEN64) & m64) >> 40 & mask


ELEM = {"f32": F32, "i32": I32, "i16": I16, "i8": I8, "bf16": I16, "i64": I64}
INTW = {1: I8, 2: I16, 4: I32, 8: I64}


class Unsupported(Exception):
    """The JIT cannot lower this instruction (the engine falls back to the interpreter, saying why)."""


def ity(t: str) -> ir.IntType:
    return INTW[type_size(t)]


def vty(t: str) -> ir.VectorType:
    return ir.VectorType(ELEM[t], lanes(t))


def ivty(t: str) -> ir.VectorType:
    return ir.VectorType(ity(t), lanes(t))


_SPLATS: dict[tuple, ir.Constant] = {}


def splat(c, ty: ir.VectorType) -> ir.Constant:
    """``<n x ty> <c, c, ...>``, one shared (immutable) constant per value and type: llvmlite caches a
    constant's text per object, and formats a vector element by element (a model step refers to
    ~3,000 of them: a tenth of its module-to-text time when each was a new object)."""
    # a float keys by its bits (0.0 == -0.0, and NaNs never compare equal); anything else unhashable or
    # unusual is simply not shared
    if isinstance(c, float):
        key: tuple = ("f", struct.pack("<d", c), str(ty))
    elif type(c) is int:
        key = ("i", c, str(ty))
    else:
        return ir.Constant(ty, [ir.Constant(ty.element, c)] * ty.count)
    k = _SPLATS.get(key)
    if k is None:
        k = _SPLATS[key] = ir.Constant(ty, [ir.Constant(ty.element, c)] * ty.count)
    return k


class _FnPtr:
    """Adapter so IRBuilder.call can call through a loaded (opaque) function pointer."""

    def __init__(self, ptr, fty: ir.FunctionType):
        self._ptr = ptr
        self.function_type = fty
        self.type = fty.as_pointer()

    def get_reference(self):
        return self._ptr.get_reference()

    def __str__(self):
        return str(self._ptr)


def _vt(n: int, ty):
    return ir.VectorType(ty, n)


def _fminmax(lw, name: str, x, y):
    """semantics._fminmax: NaN if either is NaN; on equality min ORs the bits (-0 wins), max ANDs them."""
    b = lw.b
    vec = isinstance(x.type, ir.VectorType)
    ity_ = ir.VectorType(I32, x.type.count) if vec else I32
    xb, yb = b.bitcast(x, ity_), b.bitcast(y, ity_)
    if name == "DMIN":
        r = b.select(b.fcmp_ordered("<", x, y), x, y)
        rb = b.select(b.fcmp_ordered("==", x, y), b.or_(xb, yb), b.bitcast(r, ity_))
    else:
        r = b.select(b.fcmp_ordered(">", x, y), x, y)
        rb = b.select(b.fcmp_ordered("==", x, y), b.and_(xb, yb), b.bitcast(r, ity_))
    nan = b.or_(b.fcmp_unordered("uno", x, x), b.fcmp_unordered("uno", y, y))
    cn = splat(CANON_NAN32, ity_) if vec else ir.Constant(I32, CANON_NAN32)
    return b.bitcast(b.select(nan, cn, rb), x.type)
