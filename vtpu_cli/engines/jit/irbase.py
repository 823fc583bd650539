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
    OFF_TGEN,
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
# Several sentrons and a program that edits the scroll table (SALLOC/SFREE/SFLUSH): the table keeps its
# capacity for the whole run and a coordinate keeps its slot (the race detector's per-scroll index), so a
# freed scroll's entry stays, its size word marked TAB_DEAD (a lookup treats it as absent); see
# docs/jit.md "Scroll-table edits with several sentrons".
TAB_DEAD = 1 << 63
# hi word of a slot the host is handing from a freed coordinate to a new one: matches no coordinate
# (a packed coordinate's hi word is below 2**26) and, unlike TAB_EMPTY, does not end a probe
TAB_MOVING = (1 << 64) - 2
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


# (id(type), value) -> (the type, kept alive so that its id stays its own; the constant)
_CONSTS: dict[tuple, tuple] = {}


def const(ty, value) -> ir.Constant:
    """``ir.Constant(ty, value)`` for an integer type and value, one shared (immutable) object per pair:
    its text is then formatted once, not at every ctx offset, shuffle mask or immediate that uses it."""
    key = (id(ty), value if type(value) is int else tuple(value))
    got = _CONSTS.get(key)
    if got is None:
        got = _CONSTS[key] = (ty, ir.Constant(ty, value))
    return got[1]


def weigh(br, weights: list[int]):
    """``br.set_weights(weights)`` with one metadata node per module and weights (llvmlite makes the
    node's operands anew at every call and looks them up), the same text. Returns ``br``."""
    mod = br.module
    cache = mod.__dict__.setdefault("_vtpu_weights", {})
    key = tuple(weights)
    md = cache.get(key)
    if md is None:
        br.set_weights(weights)
        cache[key] = br.metadata["prof"]
    else:
        br.metadata["prof"] = md
    return br


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


# =================================================================== a faster IRBuilder
# llvmlite builds an instruction object (name registration, checks) and formats its text later, through
# several layers of str()/format() per instruction; a model step has ~50,000 of them, and building and
# printing them was most of its tier-0 compile. ``FastBuilder`` makes the most frequent instructions
# (loads, stores, casts, binary operators, compares, selects, GEPs) with their final text computed
# once at creation -- byte for byte what llvmlite prints (tests/test_jit_irbuild.py compares the
# modules) -- and leaves every other instruction to llvmlite. Their operands are values made earlier
# and nothing here changes an instruction after it is made, so the text cannot go stale.

from llvmlite.ir import instructions as _ins  # noqa: E402

_VOID = ir.VoidType
_new = object.__new__
_CMP = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def _register(scope, name: str) -> str:
    """llvmlite's ``NameScope.register(name, deduplicate=True)``, inlined (the same names)."""
    used = scope._useset
    if name in used:
        base, counts = name, scope._basenamemap
        while name in used:
            ident = counts[base] + 1
            counts[base] = ident
            name = f"{base}.{ident}"
    used.add(name)
    return name


def _ref(v) -> str:
    try:
        return v._StringReferenceCaching__cached_refstr
    except AttributeError:
        return v.get_reference()


def _make(cls, block, typ, opname: str, operands, name: str):
    """An instruction of ``cls`` without its ``__init__`` (the attributes llvmlite's sets); its
    reference is computed here, its text by the caller (``_done``)."""
    i = _new(cls)
    i.parent = block
    i.type = typ
    nm = _register(block.scope, name)
    i._name = nm
    i.opname = opname
    i.operands = operands
    i.flags = []
    i.metadata = {}
    if "\\" in nm or '"' in nm:
        nm = nm.replace("\\", "\\5c").replace('"', "\\22")
    i._StringReferenceCaching__cached_refstr = f'%"{nm}"'
    return i


def _done(b, i, text: str):
    """Cache the instruction's text (``NamedValue._to_string``: "ref = " unless void) and insert it."""
    if not isinstance(i.type, _VOID):
        text = f"{i._StringReferenceCaching__cached_refstr} = {text}"
    i._StrCaching__cached_str = text.rstrip()
    b._insert(i)
    return i


def _binop(opname: str):
    def op(self, lhs, rhs, name="", flags=()):
        lt = lhs.type
        if lt is not rhs.type and lt != rhs.type:
            raise ValueError(f"Operands must be the same type, got ({lt}, {rhs.type})")
        i = _make(_ins.Instruction, self._block, lt, opname, (lhs, rhs), name)
        opn = opname
        if flags:
            i.flags = list(flags)
            opn = " ".join([opname, *i.flags])
        return _done(self, i, f"{opn} {lt} {_ref(lhs)}, {_ref(rhs)}")

    op.__name__ = opname
    return op


def _castop(opname: str):
    def op(self, val, typ, name=""):
        if val.type == typ:
            return val
        i = _make(_ins.CastInstr, self._block, typ, opname, [val], name)
        return _done(self, i, f"{opname} {val.type} {_ref(val)} to {typ}")

    op.__name__ = opname
    return op


class FastBuilder(ir.IRBuilder):
    """``ir.IRBuilder`` with the frequent instructions made directly (see above); same IR text."""

    shl, lshr, ashr = _binop("shl"), _binop("lshr"), _binop("ashr")
    add, fadd, sub, fsub = _binop("add"), _binop("fadd"), _binop("sub"), _binop("fsub")
    mul, fmul, fdiv = _binop("mul"), _binop("fmul"), _binop("fdiv")
    udiv, sdiv, urem, srem = _binop("udiv"), _binop("sdiv"), _binop("urem"), _binop("srem")
    and_, or_, xor = _binop("and"), _binop("or"), _binop("xor")
    trunc, zext, sext = _castop("trunc"), _castop("zext"), _castop("sext")
    fptrunc, fpext, bitcast = _castop("fptrunc"), _castop("fpext"), _castop("bitcast")
    fptoui, uitofp = _castop("fptoui"), _castop("uitofp")
    fptosi, sitofp = _castop("fptosi"), _castop("sitofp")
    ptrtoint, inttoptr = _castop("ptrtoint"), _castop("inttoptr")

    def load(self, ptr, name="", align=None, typ=None):
        pt = ptr.type
        if not isinstance(pt, ir.PointerType):
            return super().load(ptr, name, align, typ)
        if typ is None:
            if isinstance(ptr, _ins.AllocaInstr):
                typ = ptr.allocated_type
            elif not pt.is_opaque:
                typ = pt.pointee
            else:
                raise ValueError("Load lacks type.")
        i = _make(_ins.LoadInstr, self._block, typ, "load", [ptr], name)
        i.align = align
        tail = "" if align is None else f", align {align}"
        return _done(self, i, f"load {typ}, {pt} {_ref(ptr)}{tail}")

    def store(self, value, ptr, align=None):
        pt = ptr.type
        if not isinstance(pt, ir.PointerType) or (not pt.is_opaque and pt.pointee != value.type):
            return super().store(value, ptr, align)  # llvmlite's error
        i = _make(_ins.StoreInstr, self._block, _VOID(), "store", [value, ptr], "")
        i.align = align
        tail = "" if align is None else f", align {align}"
        return _done(self, i, f"store {value.type} {_ref(value)}, {pt} {_ref(ptr)}{tail}")

    def _icmp(self, prefix, cmpop, lhs, rhs, name):
        op = _CMP.get(cmpop)
        if op is None:
            return super()._icmp(prefix, cmpop, lhs, rhs, name)
        if cmpop not in ("==", "!="):
            op = prefix + op
        lt = lhs.type
        typ = ir.VectorType(I1, lt.count) if isinstance(lt, ir.VectorType) else I1
        i = _make(_ins.ICMPInstr, self._block, typ, "icmp", [lhs, rhs], name)
        i.op = op
        return _done(self, i, f"icmp {op} {lt} {_ref(lhs)}, {_ref(rhs)}")

    def select(self, cond, lhs, rhs, name="", flags=()):
        if lhs.type != rhs.type or flags:
            return super().select(cond, lhs, rhs, name, flags)
        i = _make(_ins.SelectInstr, self._block, lhs.type, "select", [cond, lhs, rhs], name)
        return _done(
            self, i, f"select  {cond.type} {_ref(cond)}, {lhs.type} {_ref(lhs)}, {rhs.type} {_ref(rhs)}"
        )

    def gep(self, ptr, indices, inbounds=False, name="", source_etype=None):
        if source_etype is None:
            return super().gep(ptr, indices, inbounds, name, source_etype)
        i = _make(_ins.GEPInstr, self._block, ptr.type, "getelementptr", [ptr, *indices], name)
        i.source_etype = source_etype
        i.pointer, i.indices, i.inbounds = ptr, indices, inbounds
        idx = ", ".join([f"{x.type} {_ref(x)}" for x in indices])
        op = "getelementptr inbounds" if inbounds else "getelementptr"
        return _done(self, i, f"{op} {source_etype}, {ptr.type} {_ref(ptr)}, {idx}")


BUILDER: type[ir.IRBuilder] = FastBuilder  # what ``builder`` makes (a test sets llvmlite's own to compare)


def builder(block) -> ir.IRBuilder:
    """An IR builder positioned at the end of ``block``: every builder of the JIT's modules is made here."""
    return BUILDER(block)


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
