"""Reference semantics of every svISA op: the interpreter's hooks (the golden model).

Each op name registers one builder with :func:`sem`. A builder receives the decoded instruction, the
sentron state and the engine context, and returns a closure bound to that sentron's registers (so the
interpreter's inner loop does no operand decoding). Blocking C-pipe ops return a ``(ready, run)`` pair:
``ready()`` is checked before any slot of the SIW executes, so a blocked SIW never half-executes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vtpu_cli.binary.program import MEM_CONTIG, MEM_STRIDED, Imm, Instr, Mem, Reg
from vtpu_cli.core import coords
from vtpu_cli.core.numerics import (
    CANON_NAN32,
    MASK64,
    bf16_array_to_f32,
    bits_f32,
    f32_array_to_bf16,
    fma_f32,
    sext,
)
from vtpu_cli.isa.families import BINARY, COMPARE, RING_OPS
from vtpu_cli.isa.table import FLAG_CMP, HOME_COORD, TYPES, VEC_BYTES, lanes, type_size
from vtpu_cli.isa.ternary import unpack_weights
from vtpu_cli.machine.memory import MemFault

SEM: dict[str, Callable] = {}
NP = {t: np.dtype(v[2]) for t, v in TYPES.items()}
UNSIGNED = {1: np.dtype("u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}
SIGNED = {1: np.dtype("i1"), 2: np.dtype("<i2"), 4: np.dtype("<i4"), 8: np.dtype("<i8")}
NAN32 = np.array([CANON_NAN32], "<u4").view("<f4")[0]


class OpFault(Exception):
    """A fault raised by an op; the engine adds sentron and SIW index."""

    def __init__(self, ins: Instr, message: str):
        super().__init__(message)
        self.ins = ins
        self.message = message


def sem(*names: str):
    def deco(fn):
        for n in names:
            SEM[n] = fn
        return fn

    return deco


# ----------------------------------------------------------------------------- helpers
def canon_nan(x: np.ndarray) -> None:
    """Replace every NaN in a float32 array by the canonical quiet NaN 0x7FC00000 (in place)."""
    m = np.isnan(x)
    if m.any():
        x[m] = NAN32


def imm_lanes(value: int, t: str) -> np.ndarray:
    """An immediate broadcast to a vector of type t (floats arrive as bit patterns)."""
    n = lanes(t)
    if t == "f32":
        return np.full(n, value & 0xFFFFFFFF, "<u4").view("<f4")
    if t == "bf16":
        return np.full(n, value & 0xFFFF, "<u2")
    bits = type_size(t) * 8
    return np.full(n, sext(value, bits), NP[t])


def scalar_to_lane(value: int, t: str):
    """A scalar register value (canonical i64) viewed as one element of type t."""
    size = type_size(t)
    if t == "f32":
        return np.array([value & 0xFFFFFFFF], "<u4").view("<f4")[0]
    if t == "bf16":
        return np.uint16(value & 0xFFFF)
    return NP[t].type(sext(value, size * 8))


def lane_to_scalar(x, t: str) -> int:
    """One element of type t -> canonical scalar register value."""
    if t == "f32":
        v = np.float32(x)
        if v != v:
            return CANON_NAN32
        return int(np.array([v], "<f4").view("<u4")[0])
    if t == "bf16":
        return int(x) & 0xFFFF
    return sext(int(x), type_size(t) * 8)


def reg_bytes(s, reg: Reg, t: str) -> bytes:
    """The bytes a register contributes as data of type t (scalar: one element, little-endian)."""
    if reg.cls == "v":
        return s.V[reg.idx].tobytes()
    size = type_size(t)
    return (s.R[reg.idx] & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def bytes_to_scalar(raw: bytes, t: str) -> int:
    size = type_size(t)
    raw = raw[:size].ljust(size, b"\0")
    v = int.from_bytes(raw, "little")
    if t in ("f32", "bf16"):
        return v
    return sext(v, size * 8)


# ----------------------------------------------------------------------------- scalar arithmetic
def _int_div(a: int, b: int, bits: int, ins: Instr) -> int:
    if b == 0:
        raise OpFault(ins, "integer division by zero")
    q = abs(a) // abs(b)
    if (a < 0) != (b < 0):
        q = -q
    return sext(q, bits)


def _shift(name: str, a: int, c: int, bits: int) -> int:
    c &= (1 << bits) - 1  # the count is read as unsigned
    if name == "DSHL":
        return 0 if c >= bits else sext(a << c, bits)
    if name == "DSHR":
        return 0 if c >= bits else sext((a & ((1 << bits) - 1)) >> c, bits)
    return (-1 if a < 0 else 0) if c >= bits else sext(a >> c, bits)  # DSAR on the signed value


def _fminmax(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """f32 min/max: NaN if either is NaN, -0 < +0 (bit-level tie rule)."""
    xb, yb = x.view("<u4"), y.view("<u4")
    if name == "DMIN":
        r = np.where(x < y, x, y)
        rb = np.where(x == y, xb | yb, r.view("<u4"))
    else:
        r = np.where(x > y, x, y)
        rb = np.where(x == y, xb & yb, r.view("<u4"))
    out = rb.view("<f4").copy()
    out[np.isnan(x) | np.isnan(y)] = NAN32
    return out


def _vec_compute(name: str, t: str, x: np.ndarray, y: np.ndarray, ins: Instr) -> np.ndarray:
    """Elementwise binary op on typed lane arrays (returns a new array of the lane type)."""
    rule = BINARY[name]
    if t == "f32":
        with np.errstate(all="ignore"):
            if rule.family == "minmax":
                return _fminmax(name, x, y)
            r = getattr(np, rule.np_f32)(x, y)
        canon_nan(r)
        return r
    bits = type_size(t) * 8
    if rule.family in ("wrap", "bitwise", "minmax"):
        return getattr(np, rule.np_int)(x, y)
    if rule.family == "shift":
        u = UNSIGNED[bits // 8]
        c = y.view(u).astype(np.uint64)
        big = c >= bits
        cc = np.minimum(c, bits - 1).astype(u)
        if name == "DSAR":
            return np.right_shift(x, cc.view(x.dtype))
        r = getattr(np, rule.np_int)(x.view(u), cc).view(x.dtype)
        r[big] = 0
        return r
    return np.array([_int_div(int(a), int(b), bits, ins) for a, b in zip(x, y, strict=True)], x.dtype)


def _scalar_compute(name: str, t: str, a: int, b: int, ins: Instr) -> int:
    """Binary op on canonical scalar register values; returns the canonical result."""
    if t == "f32":
        x, y = np.float32(bits_f32(a)), np.float32(bits_f32(b))
        r = _vec_compute(name, t, np.array([x], "<f4"), np.array([y], "<f4"), ins)
        return int(r.view("<u4")[0])
    bits = type_size(t) * 8
    x, y = sext(a, bits), sext(b, bits)
    rule = BINARY[name]
    if rule.py_int is not None:
        return sext(rule.py_int(x, y), bits)
    if rule.family == "div":
        return _int_div(x, y, bits, ins)
    return _shift(name, x, y, bits)


def _src(s, arg, t: str):
    """A vector source: a register view of type t, or an immediate broadcast."""
    if isinstance(arg, Imm):
        return imm_lanes(arg.value, t)
    return s.view(t)[arg.idx]


@sem(*BINARY)
def _binary(ins: Instr, s, env):
    d, a, b = ins.args
    t, name = ins.type, ins.op.name
    rule = BINARY[name]
    if d.cls == "v":
        vd, va, vb = s.view(t)[d.idx], s.view(t)[a.idx], _src(s, b, t)
        if t != "f32" and name in RING_OPS:
            ufunc = getattr(np, rule.np_int)

            def fast():
                ufunc(va, vb, out=vd)

            return fast

        def vec():
            vd[:] = _vec_compute(name, t, va, vb, ins)

        return vec
    R = s.R
    di, ai = d.idx, a.idx
    if t == "i64" and name in RING_OPS:
        pyop = rule.py_int
        if isinstance(b, Imm):
            bv = b.value

            def i64_imm():
                v = pyop(R[ai], bv) & MASK64
                R[di] = v - (1 << 64) if v >> 63 else v

            return i64_imm
        bi = b.idx

        def i64_reg():
            v = pyop(R[ai], R[bi]) & MASK64
            R[di] = v - (1 << 64) if v >> 63 else v

        return i64_reg
    if isinstance(b, Imm):
        bv = b.value

        def scal_imm():
            R[di] = _scalar_compute(name, t, R[ai], bv, ins)

        return scal_imm
    bi = b.idx

    def scal():
        R[di] = _scalar_compute(name, t, R[ai], R[bi], ins)

    return scal


@sem("DFMA")
def _fma(ins: Instr, s, env):
    d, a, b, c = ins.args
    t = ins.type
    bits = type_size(t) * 8
    if d.cls == "v":
        vd, va, vb, vc = s.view(t)[d.idx], s.view(t)[a.idx], s.view(t)[b.idx], _src(s, c, t)
        if t == "f32":

            def f():
                r = fma_f32(va, vb, vc)
                canon_nan(r)
                vd[:] = r

            return f

        def fi():
            np.add(np.multiply(va, vb), vc, out=vd)

        return fi
    R = s.R

    def fs():
        cv = c.value if isinstance(c, Imm) else R[c.idx]
        if t == "f32":
            r = fma_f32(
                np.array([bits_f32(R[a.idx])], "<f4"),
                np.array([bits_f32(R[b.idx])], "<f4"),
                np.array([bits_f32(cv)], "<f4"),
            )
            canon_nan(r)
            R[d.idx] = int(r.view("<u4")[0])
        else:
            R[d.idx] = sext(sext(R[a.idx], bits) * sext(R[b.idx], bits) + sext(cv, bits), bits)

    return fs


@sem("DCMP")
def _cmp(ins: Instr, s, env):
    d, a, b = ins.args
    t, cc = ins.type, ins.mod
    fn = getattr(np, COMPARE[cc].np_fn)
    if d.cls == "v":
        va, vb = s.view(t)[a.idx], _src(s, b, t)
        out = s.view(_int_name(t))[d.idx]

        def vcmp():
            with np.errstate(invalid="ignore"):
                out[:] = np.where(fn(va, vb), -1, 0)

        return vcmp
    R = s.R

    def scmp():
        bv = b.value if isinstance(b, Imm) else R[b.idx]
        x, y = scalar_to_lane(R[a.idx], t), scalar_to_lane(bv, t)
        with np.errstate(invalid="ignore"):
            r = bool(fn(x, y))
        R[d.idx] = int(r)
        s.flags = (s.flags | FLAG_CMP) if r else (s.flags & ~FLAG_CMP)

    return scmp


def _int_name(t: str) -> str:
    """The integer lane type of the same width as t (for masks and bitwise views)."""
    return {1: "i8", 2: "i16", 4: "i32", 8: "i64"}[type_size(t)]


def reduce_lanes(x: np.ndarray, op: str, t: str) -> np.ndarray:
    """Pairwise tree reduction: lane i combines with lane i + n/2, halving n (documented order)."""
    x = x.copy()
    n = x.shape[0]
    while n > 1:
        n //= 2
        lo, hi = x[:n], x[n : 2 * n]
        if op == "add":
            with np.errstate(all="ignore"):
                x[:n] = lo + hi
        elif t == "f32":
            x[:n] = _fminmax("DMIN" if op == "min" else "DMAX", lo.copy(), hi.copy())
        else:
            x[:n] = np.minimum(lo, hi) if op == "min" else np.maximum(lo, hi)
    if t == "f32":
        canon_nan(x[:1])
    return x[:1]


@sem("DRED")
def _red(ins: Instr, s, env):
    d, a = ins.args
    t, op = ins.type, ins.mod
    va = s.view(t)[a.idx]
    R = s.R

    def red():
        R[d.idx] = lane_to_scalar(reduce_lanes(va, op, t)[0], t)

    return red


@sem("DSEL")
def _sel(ins: Instr, s, env):
    d, m, a, b = ins.args
    t = ins.type
    it = _int_name(t)
    if d.cls == "v":
        vd, vm, va = s.view(it)[d.idx], s.view(it)[m.idx], s.view(it)[a.idx]
        vb = _src(s, b, t).view(NP[it]) if isinstance(b, Imm) else s.view(it)[b.idx]

        def vsel():
            vd[:] = np.where(vm != 0, va, vb)

        return vsel
    R = s.R
    bits = type_size(t) * 8

    def ssel():
        bv = b.value if isinstance(b, Imm) else R[b.idx]
        R[d.idx] = R[a.idx] if sext(R[m.idx], bits) != 0 else bv

    return ssel


@sem("DMOV")
def _mov(ins: Instr, s, env):
    d, a = ins.args
    if d.cls == "v":
        vd, va = s.V[d.idx], s.V[a.idx]

        def vmov():
            vd[:] = va

        return vmov
    R = s.R
    di = d.idx
    if isinstance(a, Imm):
        v = a.value if ins.type != "f32" else a.value & 0xFFFFFFFF

        def movi():
            R[di] = v

        return movi
    if a.cls == "s":
        which = a.idx

        def movs():
            R[di] = (s.id, s.n, s.flags)[which]

        return movs
    ai = a.idx

    def movr():
        R[di] = R[ai]

    return movr


@sem("DSQRT")
def _sqrt(ins: Instr, s, env):
    d, a = ins.args
    if d.cls == "v":
        vd, va = s.view("f32")[d.idx], s.view("f32")[a.idx]

        def vs():
            with np.errstate(invalid="ignore"):
                r = np.sqrt(va)
            canon_nan(r)
            vd[:] = r

        return vs
    R = s.R

    def ss():
        with np.errstate(invalid="ignore"):
            r = np.sqrt(np.array([bits_f32(R[a.idx])], "<f4"))
        canon_nan(r)
        R[d.idx] = int(r.view("<u4")[0])

    return ss


def convert(x: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Element conversion with the documented rounding/saturation rules."""
    if src == dst:
        return x.copy()
    if src == "bf16":
        return convert(bf16_array_to_f32(x), "f32", dst)
    if dst == "bf16":
        f = x if src == "f32" else convert(x, src, "f32")
        return f32_array_to_bf16(f)
    if dst == "f32":
        with np.errstate(all="ignore"):
            return x.astype("<f4")
    if src == "f32":
        info = np.iinfo(NP[dst])
        with np.errstate(all="ignore"):
            r = np.rint(x.astype(np.float64))
            bad = np.isnan(r) | (r < info.min) | (r > info.max)
            out = np.where(bad, info.min, np.nan_to_num(r, nan=0.0)).astype(NP[dst])
        return out
    info = np.iinfo(NP[dst])
    return np.clip(x.astype(np.int64), info.min, info.max).astype(NP[dst])


@sem("DCVT")
def _cvt(ins: Instr, s, env):
    d, a, part = ins.args
    dt, st = ins.type, ins.type2
    p = part.value if part is not None else 0
    if d.cls == "r":
        R = s.R

        def scvt():
            x = np.array([scalar_to_lane(R[a.idx], st)], NP[st] if st != "bf16" else "<u2")
            R[d.idx] = lane_to_scalar(convert(x, st, dt)[0], dt)

        return scvt
    ds, ss_ = type_size(dt), type_size(st)
    n = VEC_BYTES // max(ds, ss_)
    if (ds < ss_ or ss_ < ds) and (p + 1) * n > VEC_BYTES // min(ds, ss_):
        raise OpFault(ins, f"DCVT part {p} out of range for .{dt}.{st}")
    vd, va = s.view(dt)[d.idx], s.view(st)[a.idx]

    def vcvt():
        if ds > ss_:  # widening: read source lanes [p*n, p*n+n)
            vd[:] = convert(va[p * n : (p + 1) * n], st, dt)
        elif ds < ss_:  # narrowing: write destination lanes [p*n, p*n+n)
            vd[p * n : (p + 1) * n] = convert(va, st, dt)
        else:
            vd[:] = convert(va, st, dt)

    return vcvt


@sem("DBCAST")
def _bcast(ins: Instr, s, env):
    d, a = ins.args
    t = ins.type
    vd = s.view(t)[d.idx]
    if isinstance(a, Imm):
        vals = imm_lanes(a.value, t)

        def bi():
            vd[:] = vals

        return bi
    R = s.R

    def br():
        vd[:] = scalar_to_lane(R[a.idx], t)

    return br


@sem("DSHUF")
def _shuf(ins: Instr, s, env):
    d, a, idx = ins.args
    t = ins.type
    it = _int_name(t)
    n = lanes(t)
    vd, va, vi = s.view(it)[d.idx], s.view(it)[a.idx], s.view(it)[idx.idx]
    u = UNSIGNED[type_size(t)]

    def shuf():
        vd[:] = va[(vi.view(u) & (n - 1)).astype(np.intp)]

    return shuf


def ternary_weights(wbytes: np.ndarray) -> np.ndarray:
    """16 packed bytes -> 64 weights (code - 1) as int32 (packing: ``isa/ternary.py``)."""
    return unpack_weights(wbytes, 64, np.int32)


@sem("DTERNARY")
def _ternary(ins: Instr, s, env):
    d, a, w, q = ins.args
    qi = q.value if q is not None else 0
    vd, va, vw = s.view("i32")[d.idx], s.view("i8")[a.idx], s.V[w.idx]

    def tern():
        wt = ternary_weights(vw[qi * 16 : (qi + 1) * 16])
        prod = va.astype(np.int32) * wt
        vd[:] = vd + prod.reshape(16, 4).sum(axis=1, dtype=np.int32)

    return tern


@sem("DTDOT")
def _tdot(ins: Instr, s, env):
    d, a, w, q = ins.args
    shift = 2 * (q.value if q is not None else 0)
    vd, va, vw = s.view("i32")[d.idx], s.view("i8")[a.idx], s.V[w.idx]

    def tdot():
        codes = ((vw >> shift) & 3).astype(np.int32)  # raw codes 0..3: the weight c - 1 is the program's
        prod = va.astype(np.int32) * codes
        vd[:] = vd + prod.reshape(16, 4).sum(axis=1, dtype=np.int32)

    return tdot


@sem("DDOT")
def _ddot(ins: Instr, s, env):
    d, a, b = ins.args
    if ins.type == "i8":
        vd, va, vb = s.view("i32")[d.idx], s.view("i8")[a.idx], s.view("i8")[b.idx]

        def dot8():
            prod = va.astype(np.int32) * vb.astype(np.int32)
            vd[:] = vd + prod.reshape(16, 4).sum(axis=1, dtype=np.int32)

        return dot8
    vd, va, vb = s.view("f32")[d.idx], s.view("bf16")[a.idx], s.view("bf16")[b.idx]

    def dotbf():
        fa, fb = bf16_array_to_f32(va), bf16_array_to_f32(vb)
        with np.errstate(all="ignore"):
            p0 = fa[0::2] * fb[0::2]
            p1 = fa[1::2] * fb[1::2]
            r = (vd + p0) + p1
        canon_nan(r)
        vd[:] = r

    return dotbf


# ----------------------------------------------------------------------------- control flow
@sem("DNOP", "SNOP", "CNOP")
def _nop(ins, s, env):  # pragma: no cover - NOPs are never bound
    return None


@sem("DJMP")
def _jmp(ins: Instr, s, env):
    target = ins.args[0].value

    def jmp():
        s.pc = target

    return jmp


@sem("DBRT", "DBRF")
def _br(ins: Instr, s, env):
    target = ins.args[0].value
    want = ins.op.name == "DBRT"

    def br():
        if bool(s.flags & FLAG_CMP) == want:
            s.pc = target

    return br


@sem("DLOOP")
def _loop(ins: Instr, s, env):
    r, label = ins.args
    ri, target = r.idx, label.value
    R = s.R

    def loop():
        v = R[ri] - 1
        if v < -(1 << 63):
            v += 1 << 64
        R[ri] = v
        if v:
            s.pc = target

    return loop


@sem("DHALT")
def _halt(ins: Instr, s, env):
    def halt():
        s.halted = True

    return halt


# ----------------------------------------------------------------------------- S pipe
def _access(s, env, ins: Instr, coord: int, off: int, n: int, write: bool):
    """Translate and bounds-check [coord + off, +n); returns the scroll."""
    try:
        sc = env.mem.translate(coord)
    except MemFault as e:
        raise OpFault(ins, f"{e} (offset {off})") from None
    if off < 0 or off + n > sc.size:
        raise OpFault(
            ins,
            f"out-of-bounds {'store' if write else 'load'} of {n} byte(s) at "
            f"{coords.format_packed(coord)} + {off}; scroll size {sc.size}",
        )
    env.note_access(s, sc, write, ins)
    return sc


def _mem_parts(s, m: Mem):
    """(coordinate, byte offset) of a memory operand: ``r + disp`` wraps like an i64 add."""
    if isinstance(m.off, Reg):
        off = s.R[m.off.idx]
        if m.disp:
            off = (off + m.disp + (1 << 63)) % (1 << 64) - (1 << 63)
    else:
        off = m.off.value
    return s.P[m.base], off


@sem("SGATHER", "SSCATTR")
def _gather_scatter(ins: Instr, s, env):
    store = ins.op.name == "SSCATTR"
    m, reg = (ins.args[0], ins.args[1]) if store else (ins.args[1], ins.args[0])
    t = ins.type
    size = type_size(t)
    R = s.R
    if reg.cls == "r":
        if m.mode != MEM_CONTIG or m.extra is not None:
            raise OpFault(ins, "scalar loads and stores take a plain [p + off] operand")

        def scalar_access():
            coord, off = _mem_parts(s, m)
            sc = _access(s, env, ins, coord, off, size, store)
            if store:
                sc.buf[off : off + size] = np.frombuffer(reg_bytes(s, reg, t), np.uint8)
            else:
                R[reg.idx] = bytes_to_scalar(sc.buf[off : off + size].tobytes(), t)

        return scalar_access
    vbytes = s.V[reg.idx]
    vtyped = s.view(t)[reg.idx]
    n_lanes = lanes(t)
    if m.mode == MEM_CONTIG:
        nb = m.extra.value if m.extra is not None else VEC_BYTES
        if not 1 <= nb <= VEC_BYTES:
            raise OpFault(ins, f"byte count {nb} outside 1..64")

        def contig():
            coord, off = _mem_parts(s, m)
            sc = _access(s, env, ins, coord, off, nb, store)
            if store:
                sc.buf[off : off + nb] = vbytes[:nb]
            else:
                vbytes[:nb] = sc.buf[off : off + nb]
                if nb < VEC_BYTES:
                    vbytes[nb:] = 0

        return contig

    def lane_offsets(off: int) -> np.ndarray:
        if m.mode == MEM_STRIDED:
            stride = R[m.extra.idx] if isinstance(m.extra, Reg) else m.extra.value
            return off + stride * np.arange(n_lanes, dtype=np.int64)
        idx = s.view("i32")[m.extra.idx][:n_lanes].astype(np.int64)
        return off + idx * size

    def elementwise():
        coord, off = _mem_parts(s, m)
        offs = lane_offsets(off)
        try:
            sc = env.mem.translate(coord)
        except MemFault as e:
            raise OpFault(ins, str(e)) from None
        bad = np.nonzero((offs < 0) | (offs + size > sc.size))[0]
        if bad.size:
            lane = int(bad[0])
            raise OpFault(
                ins,
                f"out-of-bounds {'store' if store else 'load'} in lane {lane}: {size} byte(s) at "
                f"{coords.format_packed(coord)} + {int(offs[lane])}; scroll size {sc.size}",
            )
        env.note_access(s, sc, store, ins)
        idx = offs[:, None] + np.arange(size)[None, :]
        if store:
            src = np.frombuffer(vtyped.tobytes(), np.uint8).reshape(n_lanes, size)
            for lane in range(n_lanes):  # lane order: the highest lane wins on overlap
                sc.buf[idx[lane]] = src[lane]
        else:
            vbytes[:] = sc.buf[idx].reshape(VEC_BYTES)

    return elementwise


@sem("SINDEX")
def _sindex(ins: Instr, s, env):
    d, a, dim, delta = ins.args
    mode = ins.mod
    P, R = s.P, s.R
    dm = dim.value

    def sindex():
        dv = R[delta.idx] if isinstance(delta, Reg) else delta.value
        try:
            if mode == "set":
                P[d.idx] = coords.set_part_packed(P[a.idx], dm, dv)
            else:
                P[d.idx] = coords.advance_packed(P[a.idx], dm, dv, {"add": "fault"}.get(mode, mode))
        except coords.CoordError as e:
            raise OpFault(ins, e.message) from None

    return sindex


@sem("SDEDUP")
def _dedup(ins: Instr, s, env):
    vu, vinv, rc, va = ins.args
    U, INV, A = s.view("i32")[vu.idx], s.view("i32")[vinv.idx], s.view("i32")[va.idx]
    R = s.R

    def dedup():
        seen: dict[int, int] = {}
        inv = np.empty(16, np.int32)
        for i, x in enumerate(A.tolist()):
            inv[i] = seen.setdefault(x, len(seen))
        u = np.zeros(16, np.int32)
        u[: len(seen)] = list(seen)
        U[:] = u
        INV[:] = inv
        R[rc.idx] = len(seen)

    return dedup


@sem("SPREFCH", "SFLUSH", "SFREE")
def _scroll_ops(ins: Instr, s, env):
    p = ins.args[0].idx
    name = ins.op.name

    def run():
        coord = s.P[p]
        try:
            if name == "SPREFCH":
                env.mem.prefetch(coord)
                return
            sc = env.mem.table.get(coord)
            if name == "SFLUSH":
                if sc is not None:  # reads the scroll (writes it to the cold tier)
                    env.note_access(s, sc, False, ins, "SFLUSH of")
                env.mem.flush(coord)
            else:
                if sc is not None:
                    env.note_lifetime(s, sc, ins, True)
                env.mem.free(coord)
        except MemFault as e:
            raise OpFault(ins, str(e)) from None

    return run


@sem("SALLOC")
def _salloc(ins: Instr, s, env):
    p, size, align = ins.args
    al = align.value if align is not None else 64

    def alloc():
        n = s.R[size.idx] if isinstance(size, Reg) else size.value
        try:
            sc = env.mem.alloc(s.P[p.idx], n, al, s.id)
        except MemFault as e:
            raise OpFault(ins, str(e)) from None
        env.note_lifetime(s, sc, ins, False)

    return alloc


@sem("SCOORD")
def _scoord(ins: Instr, s, env):
    d, c = ins.args
    P = s.P
    v = s.home if c.value == HOME_COORD else c.value

    def scoord():
        P[d.idx] = v

    return scoord


@sem("SPART")
def _spart(ins: Instr, s, env):
    d, p, dim = ins.args
    R, P = s.R, s.P

    def spart():
        R[d.idx] = coords.get_part_packed(P[p.idx], dim.value)

    return spart


# ----------------------------------------------------------------------------- C pipe
@sem("CPACK")
def _cpack(ins: Instr, s, env):
    m, src = ins.args
    t = ins.type

    def cpack():
        s.M[m.idx] = reg_bytes(s, src, t)

    return cpack


@sem("CUNPACK")
def _cunpack(ins: Instr, s, env):
    d, m = ins.args
    t = ins.type

    def cunpack():
        raw = s.M[m.idx]
        if d.cls == "v":
            s.V[d.idx][:] = np.frombuffer(raw[:VEC_BYTES].ljust(VEC_BYTES, b"\0"), np.uint8)
        else:
            s.R[d.idx] = bytes_to_scalar(raw, t)

    return cunpack


@sem("CFENCE")
def _cfence(ins: Instr, s, env):
    def fence():
        env.fence(s)

    return fence


@sem("CSEND", "CRECV", "CBAR", "CREDUCE", "CCAST", "CROUTE")
def _comm(ins: Instr, s, env):
    """Blocking C-pipe ops are implemented by the fleet (see fleet.py): a (ready, run) pair."""
    return env.fleet.build(ins, s)
