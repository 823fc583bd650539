"""LLVM IR building blocks shared by the lowering and the native C pipe: types, the ABI, helpers."""

from __future__ import annotations

from llvmlite import ir

from vtpu_cli.core.numerics import CANON_NAN32
from vtpu_cli.isa.table import VEC_BYTES, lanes, type_size

I1, I8, I16, I32, I64, I128 = (ir.IntType(n) for n in (1, 8, 16, 32, 64, 128))
F32, F64 = ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
VB = ir.VectorType(I8, VEC_BYTES)  # a vector register as raw bytes

# ------------------------------------------------------------------ the context block (shared with jit.py)
OFF_R, OFF_P, OFF_FLAGS, OFF_SID, OFF_SCOUNT = 0, 128, 256, 264, 272
OFF_STATUS, OFF_PC, OFF_SLOT, OFF_COUNTED, OFF_FASTHITS = 280, 288, 296, 304, 312
OFF_MAXSTEPS, OFF_STEPS_PTR, OFF_ABORT_PTR, OFF_COUNTS_PTR = 320, 328, 336, 344
OFF_PPT, OFF_SLOWCB, OFF_READYCB, OFF_TRPTR, OFF_TRSIZE = 352, 360, 368, 376, 384
OFF_TSC0, OFF_TSC1, OFF_HOME, OFF_TRSET, OFF_TAB = 392, 400, 416, 432, 440
OFF_MLEN, OFF_TABMASK, OFF_PPTHITS, OFF_PPTMISSES = 448, 480, 488, 496
OFF_V, OFF_M = 512, 2560
# the native C pipe (jit_comm.py): fleet block pointer, sched_yield pointer, watchdog words, statistics
OFF_FLEET, OFF_YIELD, OFF_BLOCKED, OFF_SEEN, OFF_CSTAT = 2816, 2824, 2880, 2888, 2944
CTX_SIZE = 3072

# exit status codes written to ctx[OFF_STATUS]
ST_OK, ST_FAULT, ST_PYFAULT, ST_LIMIT, ST_DEADLOCK, ST_ABORT, ST_ERROR = 0, 1, 2, 3, 4, 5, 6
ST_REPLAY = 7  # native code cannot report this condition exactly: the engine replays in the interpreter

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


def splat(c, ty: ir.VectorType) -> ir.Constant:
    return ir.Constant(ty, [ir.Constant(ty.element, c)] * ty.count)


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
