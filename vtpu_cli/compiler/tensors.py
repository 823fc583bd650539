"""Level 2 -> level 1: tiling of tensor ops into svISA ops on virtual registers.

Tensors are dense row-major scrolls. Vector work goes in 64-byte chunks (16 f32 lanes); a row whose
length is not a multiple of 16 ends with a partial chunk (byte-counted SGATHER/SSCATTR, other lanes
zero). Loops over rows/chunks are fully unrolled at -O2 and above when small (static offsets: exact
alias analysis, no address arithmetic); otherwise they become DLOOP loops whose offsets live in one
register per stride (see :class:`Ix`). Numerics of every op are documented in docs/phx.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from vtpu_cli.binary.program import Reg
from vtpu_cli.compiler import kernels, views
from vtpu_cli.compiler.ir import Builder, MemInfo, Scroll, VMem, VReg, imm
from vtpu_cli.compiler.lower import RESERVED_LIBRARY, Bad, Lowerer, Tensor, _pos, _try_const, tensor_nbytes
from vtpu_cli.compiler.tune import UNROLL_LIMIT
from vtpu_cli.compiler.vecmath import (  # noqa: F401  (shared with kernels.py)
    CONST_SCROLL,
    EXP_HI,
    EXP_LO,
    NEG_INF,
    F,
    b_const,
    const_iota,
    exp_vec,
    neg_inf,
)
from vtpu_cli.core import coords
from vtpu_cli.core.errors import VtpuError

ELEMWISE_UNROLL = 256  # elementwise ops: unrolled up to 64 vectors, a loop beyond (model-scale rows)


# ---------------------------------------------------------------------- loop indexes
class Ix:
    """Iteration index of a tiling loop: ``off(disp, stride)`` = disp + k*stride as an immediate
    (unrolled) or as a register (loop mode: one loop-carried register per stride)."""

    def __init__(
        self,
        b: Builder,
        const: int | None = None,
        shared: dict | None = None,
        add: int = 0,
        mult: int = 1,
        record: list | None = None,
    ):
        self.b = b
        self.const = const
        self.regs = shared if shared is not None else {}
        self.add = add
        self.mult = mult
        self.record = record  # software pipelining: [(DADD, disp, stride)], immediates patched per stage

    def off(self, disp: int, stride: int):
        if self.const is not None:
            return disp + self.const * stride
        if stride == 0:
            return disp
        r = self.regs.get(stride)
        if r is None:
            r = self.b.new("r", "off", nospill=True)
            self.regs[stride] = r
        # register holds (add + mult*trip) * stride; displacement added into a temporary
        total = disp + self.add * stride
        if total == 0 and self.record is None:
            return r
        t = self.b.new("r", "addr")
        ins = self.b.emit("DADD", t, r, imm(total), type="i64")
        if self.record is not None:
            self.record.append((ins, disp, stride))
        return t


def rows(
    lw: Lowerer, count: int, est: int, body, pipelinable: bool = False, limit: int = UNROLL_LIMIT
) -> None:
    """Run ``body(ix)`` for ix in 0..count-1: unrolled when small at -O2+, else a DLOOP loop; at -O3
    a pipelinable loop is software pipelined (:func:`_pipelined`), falling back to unroll-by-two."""
    b = lw.b
    if count <= 0:
        return
    if count == 1 or (lw.opt >= 2 and count * est <= limit) or lw.opt >= 2 and count <= 2:
        if count > 1:
            b.unrolled += 1
        for k in range(count):
            body(Ix(b, const=k))
        return
    if lw.opt >= 3 and pipelinable and count >= 3 and _pipelined(lw, count, body):
        return
    u = 2 if (lw.opt >= 3 and pipelinable and count >= 4) else 1
    shared: dict = {}
    at = len(b.code)
    trips, rem = divmod(count, u)

    def loop_body():
        for j in range(u):
            body(Ix(b, shared=shared, add=j, mult=u))
        for stride, r in shared.items():
            b.emit("DADD", r, r, imm(stride * u), type="i64")

    b.counted_loop(trips, loop_body, "tile")
    if u > 1:
        b.pipelined += 1
    for j in range(rem):
        body(Ix(b, shared=shared, add=j, mult=u))
    _init_offsets(b, at, shared)


def _init_offsets(b: Builder, at: int, shared: dict) -> None:
    from vtpu_cli.compiler.ir import VI
    from vtpu_cli.isa.table import BY_NAME

    inits = [VI(BY_NAME["DMOV"], None, None, None, [r, imm(0)], None, b.line) for r in shared.values()]
    b.code[at:at] = inits


def _stages(seg: list, fresh: int) -> list[int] | None:
    """Stage of each op of one iteration's code: 0 = fetch (S-pipe loads and the address arithmetic
    that feeds only them), 1 = everything else. None when the iteration cannot be split safely: a
    fetch would write a register that is not private to the iteration (id <= ``fresh``), or a
    fetched scroll is also written by the iteration (a fetch moved above an earlier iteration's
    store could then read stale data)."""
    cand = [False] * len(seg)
    later_def: dict = {}
    for vi in seg:
        for v in vi.regs()[1]:
            later_def[v] = later_def.get(v, 0) + 1
    prod: dict = {}  # vreg -> index of its (single) defining op in the segment
    for i, vi in enumerate(seg):
        r, w = vi.regs()
        ok = vi.op.name == "SGATHER" or (vi.op.name == "DADD" and vi.type == "i64")
        if ok:
            for v in r:
                j = prod.get(v)
                if j is None:
                    if later_def.get(v):  # loop-carried or redefined inside the iteration
                        ok = False
                        break
                elif not cand[j]:
                    ok = False
                    break
        if ok:
            for v in w:
                if v.id <= fresh or later_def.get(v, 0) != 1:
                    ok = False
        cand[i] = ok
        for v in w:
            prod[v] = i
    # register budget: the fetched values of iteration k+1 stay live during the compute of k, so only
    # the first loads (in program order: what the compute needs first) are fetched ahead
    budget = {"v": max(0, min(8, (28 - _peak_v(seg)) // 2)), "r": 2}
    early = set()
    for i, vi in enumerate(seg):
        if cand[i] and vi.op.name == "SGATHER":
            cls = vi.args[0].cls
            if budget.get(cls, 0) > 0:
                budget[cls] -= 1
                early.add(i)
    stage = [1] * len(seg)
    need = set()
    for i in range(len(seg) - 1, -1, -1):
        vi = seg[i]
        if i in early or (cand[i] and i in need):
            stage[i] = 0
            for v in vi.regs()[0]:
                j = prod.get(v)
                if j is not None:
                    need.add(j)
    fetched = {
        seg[i].mem.scroll if seg[i].mem is not None else "*"
        for i in range(len(seg))
        if stage[i] == 0 and seg[i].op.name == "SGATHER"
    }
    if not fetched:
        return None
    for vi in seg:
        if vi.op.pipe == "S" and vi.op.name != "SGATHER" and vi.op.name not in ("SCOORD", "SINDEX"):
            sc = vi.mem.scroll if vi.mem is not None else "*"
            if sc == "*" or sc in fetched or "*" in fetched:
                return None
        if vi.op.pipe == "C" and vi.op.name in ("CBAR", "CFENCE"):
            return None
    return stage


def _rename(x, ren: dict):
    if isinstance(x, VReg):
        return ren.get(x, x)
    if isinstance(x, VMem):
        return VMem(
            ren.get(x.base, x.base),
            ren.get(x.off, x.off) if isinstance(x.off, VReg) else x.off,
            x.mode,
            ren.get(x.extra, x.extra) if isinstance(x.extra, VReg) else x.extra,
            x.disp,
        )
    return x


def _peak_v(seg: list) -> int:
    """Most vector values of one iteration live at once (straight-line, program order)."""
    last: dict = {}
    for i, vi in enumerate(seg):
        for v in vi.regs()[0]:
            last[v] = i
    live = peak = 0
    born: set = set()
    for i, vi in enumerate(seg):
        for v in vi.regs()[1]:
            if v.cls == "v" and v not in born and last.get(v, -1) > i:
                born.add(v)
                live += 1
        peak = max(peak, live)
        for v in set(vi.regs()[0]):
            if v.cls == "v" and last.get(v) == i and v in born:
                live -= 1
    return peak


def _pipelined(lw: Lowerer, count: int, body) -> bool:
    """Software pipelining of a tiling loop by a two-stage modulo schedule with modulo variable
    expansion by two (the engines have no rotating registers):

        prologue:  fetch(0)
        kernel:    compute+store(2t)   fetch(2t+1)  compute+store(2t+1)  fetch(2t+2)   (t < T)
        epilogue:  compute+store(2T) [fetch(2T+1) compute+store(2T+1)]

    Iteration i uses register copy i % 2, so the values a fetch writes in trip t are read by the
    compute of the next half-trip or the next trip across the back edge, never overwritten first.
    Each fetch is emitted *after* the previous iteration's compute, so the list scheduler of the
    kernel block sees fetch(k+1) and compute(k) as independent work and interleaves them; address
    immediates are rewritten for the iteration each copy of a stage works on (offset register =
    2t * stride during trip t). Returns False (nothing emitted) when the body cannot be split."""
    from vtpu_cli.compiler.ir import VI

    b = lw.b
    shared: dict = {}
    copies = []
    at = len(b.code)
    for c in range(2):
        fresh = b.nregs
        rec: list = []
        start = len(b.code)
        body(Ix(b, shared=shared, add=c, mult=2, record=rec))
        seg = b.code[start:]
        del b.code[start:]
        stage = _stages(seg, fresh)
        if stage is None or any(not isinstance(x, VI) for x in seg):
            # not splittable: emit nothing, the caller falls back (vregs created here stay unused)
            shared.clear()
            return False
        copies.append((seg, stage, {id(ins): (disp, stride) for ins, disp, stride in rec}))
    nd = sum(1 for vi in copies[0][0] if vi.op.pipe == "D")
    ns = sum(1 for vi in copies[0][0] if vi.op.pipe == "S")
    if nd > ns:
        # D-bound body: every SIW of the trip already carries a D op, so overlapping fetches cannot
        # shorten it (measured: 0-2% longer from the prologue/epilogue); unroll by two instead
        shared.clear()
        return False

    # values a fetch hands to the compute: the same virtual registers in prologue, kernel and
    # epilogue (they flow across the loop entry and the back edge); everything else outside the
    # kernel is renamed, so each register's live range stays within one region
    crossing = []
    for seg, stage, _rec in copies:
        d0 = {v for vi, st in zip(seg, stage, strict=True) if st == 0 for v in vi.regs()[1]}
        crossing.append({v for vi, st in zip(seg, stage, strict=True) if st == 1 for v in vi.regs()[0]} & d0)

    def emit(c: int, st: int, a: int, ren: dict | None = None) -> None:
        """Stage ``st`` of the iteration 2t + a (copy c = a % 2); ``ren``: rename its definitions."""
        seg, stage, rec = copies[c]
        if ren is None:
            ren_k: dict = {}
        for vi, s in zip(seg, stage, strict=True):
            if s != st:
                continue
            args = vi.args
            pr = rec.get(id(vi))
            if pr is not None:
                disp, stride = pr
                if disp + a * stride == 0 and args[0] not in crossing[c]:
                    # the address is the offset register itself: use it, emit nothing
                    (ren if ren is not None else ren_k)[args[0]] = args[1]
                    continue
                args = [args[0], args[1], imm(disp + a * stride)]
            if ren is None and ren_k:
                if any(v in ren_k for v in vi.regs()[0]):
                    args = [_rename(x, ren_k) for x in args]
                    mem = vi.mem
                    if mem is not None and mem.rel in ren_k:
                        mem = MemInfo(mem.scroll, mem.write, mem.lo, mem.hi, ren_k[mem.rel])
                    b.code.append(VI(vi.op, vi.mod, vi.type, vi.type2, args, mem, vi.line))
                    continue
            if ren is not None:
                args = [_rename(x, ren) for x in args]
                for v in vi.regs()[1]:
                    if v not in ren and v not in crossing[c]:
                        ren[v] = b.new(v.cls, v.hint)
                args = [_rename(x, ren) for x in args]
                mem = vi.mem
                if mem is not None and isinstance(mem.rel, VReg) and mem.rel in ren:
                    mem = MemInfo(mem.scroll, mem.write, mem.lo, mem.hi, ren[mem.rel])
                b.code.append(VI(vi.op, vi.mod, vi.type, vi.type2, args, mem, vi.line))
            elif pr is not None:
                b.code.append(VI(vi.op, vi.mod, vi.type, vi.type2, args, vi.mem, vi.line))
            else:
                b.code.append(VI(vi.op, vi.mod, vi.type, vi.type2, args, vi.mem, vi.line, vi._rw))

    trips = (count - 1) // 2
    emit(0, 0, 0, {})

    def kernel():
        emit(0, 1, 0)
        emit(1, 0, 1)
        emit(1, 1, 1)
        emit(0, 0, 2)
        for stride, r in shared.items():
            b.emit("DADD", r, r, imm(stride * 2), type="i64")

    b.counted_loop(trips, kernel, "swp")
    emit(0, 1, 0, {})
    if count - 2 * trips == 2:
        crossing[1] = set()  # copy 1's fetch and compute are both in the epilogue: rename all
        ren1: dict = {}
        emit(1, 0, 1, ren1)
        emit(1, 1, 1, ren1)
    b.pipelined += 1
    _init_offsets(b, at, shared)
    return True


class Chunks(Sequence):
    """(byte offset, byte count) of the 64-byte pieces of a run of ``total`` bytes, computed on demand:
    callers often only ask how many there are (a loop lowering's threshold), for rows of 100k+ elements."""

    __slots__ = ("total",)

    def __init__(self, total: int):
        self.total = total

    def __len__(self) -> int:
        return (self.total + 63) // 64 if self.total > 0 else 0

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        o = i * 64
        return (o, min(64, self.total - o))

    def __iter__(self):
        t = self.total
        for o in range(0, t, 64):
            yield (o, min(64, t - o))


def chunks(n: int, esize: int) -> Chunks:
    """(byte offset, byte count) of the 64-byte pieces of a run of n elements."""
    return Chunks(n * esize)


# ---------------------------------------------------------------------- dispatch
def lower_op(lw: Lowerer, fname: str, name_toks, call) -> None:
    args = [a for a in call.children[1:] if a is not None]
    pos = [a for a in args if a.data != "kwarg"]
    kw = {str(a.children[0]): a.children[1] for a in args if a.data == "kwarg"}
    fn = OPS[fname]
    lw.lowering_op = fname  # (lw.tensor_arg: whether it may be handed column slices read in place)
    try:
        fn(lw, name_toks, call, pos, kw)
    finally:
        lw.lowering_op = None


def _nargs(lw, call, pos, lo, hi=None):
    hi = lo if hi is None else hi
    if not lo <= len(pos) <= hi:
        fname = str(call.children[0])
        want = str(lo) if lo == hi else f"{lo}..{hi}"
        lw.fail(call, f"{fname}() takes {want} tensor argument(s), got {len(pos)}")


def _kw(lw, kw, allowed, call):
    for k, v in kw.items():
        if k not in allowed:
            lw.fail(v, f"unknown keyword argument `{k}`", hint=f"allowed: {', '.join(allowed) or 'none'}")


def _shard_kw(lw: Lowerer, kw, allowed: tuple[str, ...], message: str) -> str | None:
    """The ``shard=`` keyword of a tensor op: None when absent, else its name, which must be one of
    ``allowed`` (``message`` says which otherwise)."""
    if "shard" not in kw:
        return None
    node = kw["shard"]
    shard = str(node.children[0]) if node.data == "name" else None
    if shard not in allowed:
        lw.fail(node, message)
    return shard


def _dtype_ok(lw, node, t: Tensor, allowed, op: str):
    if t.dtype not in allowed:
        lw.fail(
            node,
            f"{op} does not support dtype {t.dtype} (tensor `{t.name}`)",
            hint=f"{op} takes {', '.join(allowed)}",
        )


def _result(lw: Lowerer, tok, dtype: str, shape: tuple[int, ...], pitched_ok: bool = False) -> Tensor:
    """The tensor a statement assigns: declared (checked) or a new private scratch tensor.
    ``pitched_ok``: the op can write a tensor whose rows are apart (a part of a copy-free column concat
    of several rows, ``views.place_part``)."""
    name = str(tok)
    t = lw.tensors.get(name)
    if t is None:
        if lw.lookup(name) is not None:
            lw.fail(tok, f"`{name}` is a register variable, not a tensor")
        # a part of a copy-free concat
        placed = views.place_part(lw, name, dtype, shape, _pos(tok)[0], pitched_ok)
        return placed if placed is not None else lw.new_private(name, dtype, shape, _pos(tok)[0])
    if t.role in ("input", "weight"):
        lw.fail(tok, f"cannot assign to {t.role} tensor `{name}`")
    if t.dtype != dtype:
        lw.fail(tok, f"type mismatch: `{name}` is {t.dtype} but the op produces {dtype}")
    if tuple(t.shape) != tuple(shape):
        lw.fail(tok, f"shape mismatch: `{name}` is {list(t.shape)} but the op produces {list(shape)}")
    return t


def _scalar_arg(lw: Lowerer, node, t: str = "f32"):
    """A scalar operand: a constant (immediate) or a level-1 variable (register)."""
    c = _try_const(lw, node)
    if c is not None:
        return c
    ty, _ = lw.value(node, t)
    if ty != t:
        lw.fail(node, f"expected an {t} scalar, found {ty}")
    return lw.reg_of(node, t)


def _rows2(t: Tensor) -> tuple[int, int]:
    if len(t.shape) == 1:
        return 1, t.shape[0]
    return t.shape[0], t.shape[1]


# ---------------------------------------------------------------------- constants pool
# ---------------------------------------------------------------------- elementwise
def _binary(lw: Lowerer, name_toks, call, pos, kw, opname: str):
    _nargs(lw, call, pos, 2)
    _kw(lw, kw, (), call)
    a = lw.tensor_arg(pos[0])
    _dtype_ok(lw, pos[0], a, ("f32", "i32"), opname.lower())
    bt = None
    bs = None
    if pos[1].data == "index" or (pos[1].data == "name" and str(pos[1].children[0]) in lw.tensors):
        bt = lw.tensor_arg(pos[1])
        if bt.dtype != a.dtype:
            lw.fail(pos[1], f"type mismatch: {a.dtype} and {bt.dtype}")
        if bt.shape != a.shape:
            lw.fail(pos[1], f"shape mismatch: {list(a.shape)} and {list(bt.shape)}")
    else:
        bs = _scalar_arg(lw, pos[1], a.dtype)
    y = _result(lw, name_toks[0], a.dtype, a.shape, pitched_ok=True)
    t = a.dtype
    b = lw.b
    vb = None
    if bs is not None:
        vb = b.new("v", "scalar")
        if isinstance(bs, VReg):
            b.emit("DBCAST", vb, bs, type=t)
        else:
            if t != "f32" and isinstance(bs, float):
                lw.fail(pos[1], f"float literal in an integer ({t}) context")
            b.emit("DBCAST", vb, F(bs) if t == "f32" else imm(int(bs)), type=t)
    if _pitch(lw, a) or _pitch(lw, y) or (bt is not None and _pitch(lw, bt)):  # column slices in place
        srcs = [a] if bt is None else [a, bt]

        def row_op(xs):
            r = b.new("v")
            b.emit(opname, r, xs[0], xs[1] if bt is not None else vb, type=t)
            return r

        _rowwise(lw, srcs, y, row_op)
        return
    nfull, rem = divmod(a.numel * 4, 64)  # whole 64-byte pieces (no per-piece list) and the tail
    tail = [(nfull * 64, rem)] if rem else []

    def one(off, nb):
        x = b.load(t, b.new("v"), a.scroll, off, nb)
        o = b.load(t, b.new("v"), bt.scroll, off, nb) if bt is not None else vb
        r = b.new("v")
        b.emit(opname, r, x, o, type=t)
        b.store(t, r, y.scroll, off, nb)

    rows(lw, nfull, 4, lambda ix: one(ix.off(0, 64), 64), pipelinable=True, limit=ELEMWISE_UNROLL)
    for off, nb in tail:
        one(off, nb)


def _unary(lw: Lowerer, name_toks, call, pos, kw, kind: str):
    _nargs(lw, call, pos, 1)
    _kw(lw, kw, (), call)
    a = lw.tensor_arg(pos[0])
    allowed = ("f32", "i32") if kind == "copy" else ("f32",)
    _dtype_ok(lw, pos[0], a, allowed, kind)
    y = _result(lw, name_toks[0], a.dtype, a.shape, pitched_ok=True)
    b = lw.b
    t = a.dtype
    if _pitch(lw, a) or _pitch(lw, y):  # a column slice read or written in place
        _rowwise(lw, [a], y, lambda xs: unary_vec(b, kind, xs[0]))
        return
    nfull, rem = divmod(a.numel * 4, 64)  # whole 64-byte pieces (no per-piece list) and the tail
    tail = [(nfull * 64, rem)] if rem else []

    def one(off, nb):
        x = b.load(t, b.new("v"), a.scroll, off, nb)
        r = unary_vec(b, kind, x)
        b.store(t, r, y.scroll, off, nb)

    est = {"silu": 30, "exp": 28}.get(kind, 4)
    rows(lw, nfull, est, lambda ix: one(ix.off(0, 64), 64), pipelinable=True, limit=ELEMWISE_UNROLL)
    for off, nb in tail:
        one(off, nb)


ROWWISE_UNROLL_BYTES = 2048  # a column slice read in place up to this size is unrolled (constant offsets)


def _pitch(lw: Lowerer, t: Tensor) -> int | None:
    """Bytes between the rows of ``t`` when it is a column slice read in place (``Scroll.pitch``)."""
    return lw.b.scrolls[t.scroll].pitch


def _rowwise(lw: Lowerer, srcs: list[Tensor], y: Tensor, op) -> None:
    """``y = op(srcs)`` element-wise, row by row: operands that are column slices of several rows
    (``_pitch``) are read in place, each row ``pitch`` bytes after the last, and y, when it is a part of
    a copy-free column concat, written in place the same way; the others are dense. Per row, 64-byte
    pieces in order (a loop and a tail), exactly the lanes of the flat form."""
    b = lw.b
    t = y.dtype
    rows, n = y.shape
    row_bytes = n * ELEM[t]
    pitches = [_pitch(lw, s) or row_bytes for s in srcs]
    ypitch = _pitch(lw, y) or row_bytes
    # a transposed operand (``views.transposed_ok``): row i is column i of its base, elements
    # ``estride`` bytes apart, read 16 at a time by a strided gather; a partial last piece is instead
    # the row's last 64 bytes for every operand and y (overlapping the piece before: the same values)
    strides = [lw.b.scrolls[s.scroll].estride for s in srcs]
    shifted = any(strides) and row_bytes % 64 != 0

    def load(s: Tensor, est, off, nb: int) -> VReg:
        if not est:
            return (
                kernels.ld(b, t, s.scroll, off, nb)
                if isinstance(off, VReg)
                else b.load(t, b.new("v"), s.scroll, off, nb)
            )
        return views.strided_load(lw, s, off, est)

    def elem_off(p: int, est, i: int, o: int):
        """The byte offset of row i's element o / 4 in an operand (constant form)."""
        return i * p + (o // 4) * est if est else i * p + o

    if rows * row_bytes <= ROWWISE_UNROLL_BYTES:  # small: every piece at its constant offset
        for i in range(rows):
            for o in range(0, row_bytes, 64):
                nb = min(64, row_bytes - o)
                if nb < 64 and shifted:
                    o, nb = row_bytes - 64, 64
                xs = [
                    load(s, e, elem_off(p, e, i, o), nb)
                    for s, p, e in zip(srcs, pitches, strides, strict=True)
                ]
                b.store(t, op(xs), y.scroll, i * ypitch + o, nb)
        return
    ptrs = [kernels.ptr(b, 0, "row") for _ in srcs]
    yp = kernels.ptr(b, 0, "row")
    nfull, tail = divmod(row_bytes, 64)

    def row() -> None:
        cur = [kernels.ptr(b, p, "el") for p in ptrs]
        yc = kernels.ptr(b, yp, "el")

        def piece(nb: int) -> None:
            xs = [load(s, e, c, nb) for s, c, e in zip(srcs, cur, strides, strict=True)]
            kernels.st(b, t, op(xs), y.scroll, yc, nb)
            for c, e in zip((*cur, yc), (*strides, None), strict=True):
                kernels.bump(b, c, 16 * e if e else 64)

        kernels.loop(b, nfull, lambda: piece(64), "el")
        if tail and shifted:  # back to the row's last 64 bytes (elements tail/4 - 16 .. from here)
            back = (64 - tail) // 4
            for c, e in zip((*cur, yc), (*strides, None), strict=True):
                kernels.bump(b, c, -back * (e if e else 4))
            piece(64)
        elif tail:
            piece(tail)

    kernels.rows_loop(b, rows, [*zip(ptrs, pitches, strict=True), (yp, ypitch)], row)


def unary_vec(b: Builder, kind: str, x: VReg) -> VReg:
    if kind == "copy":
        return x
    r = b.new("v")
    if kind == "relu":
        b.emit("DMAX", r, x, F(0.0), type="f32")
    elif kind == "relu2":
        b.emit("DMAX", r, x, F(0.0), type="f32")
        r2 = b.new("v")
        b.emit("DMUL", r2, r, r, type="f32")
        return r2
    elif kind == "exp":
        return exp_vec(b, x)
    elif kind == "silu":
        nx = b.new("v")
        b.emit("DXOR", nx, x, imm(0x80000000), type="i32")
        e = exp_vec(b, nx)
        d = b.new("v")
        b.emit("DADD", d, e, F(1.0), type="f32")
        b.emit("DDIV", r, x, d, type="f32")
    else:  # pragma: no cover
        raise AssertionError(kind)
    return r


# ---------------------------------------------------------------------- matmul
def _in_place(lw: Lowerer, y: Tensor, srcs: list[Tensor], emit) -> None:
    """``emit(target)``; when y is also an operand (``h = matmul(h, w)``), into a scratch tensor that
    is then copied to y (the tiled code reads operands after it has started writing y)."""
    keys = {lw.b.scrolls[t.scroll].alias or t.scroll for t in srcs}
    if y.scroll not in keys:
        emit(y)
        return
    tmp = lw.new_private(f"$inplace{lw.private_count}", y.dtype, y.shape)
    del lw.tensors[tmp.name]
    views.note_copy(
        lw, f"`{y.name}` is also an operand: computed aside, then copied", lw.b.scrolls[y.scroll].nbytes
    )
    emit(tmp)
    if _pitch(lw, y):  # a part of a copy-free column concat: row by row
        views.copy_rows(lw, tmp, y)
        return
    b = lw.b
    z = b.new("r", nospill=True)
    b.emit("DMOV", z, imm(0))
    kernels.copy_row_loop(b, tmp.scroll, z, y.scroll, z, b.scrolls[y.scroll].nbytes)


def _matmul(lw: Lowerer, name_toks, call, pos, kw):
    _nargs(lw, call, pos, 2)
    _kw(lw, kw, ("shard",), call)
    x, w = lw.tensor_arg(pos[0]), lw.tensor_arg(pos[1])
    _dtype_ok(lw, pos[0], x, ("f32",), "matmul")
    if w.dtype == "t2":
        lw.fail(pos[1], "matmul takes f32 weights; use tmatmul for ternary (t2) weights")
    _dtype_ok(lw, pos[1], w, ("f32",), "matmul")
    if len(x.shape) != 2 or len(w.shape) != 2:
        lw.fail(call, "matmul takes 2-D tensors: x[M, K] and w[K, N]")
    (m, k), (k2, n) = x.shape, w.shape
    if k != k2:
        lw.fail(
            pos[1],
            f"shape mismatch: matmul inner dimensions differ: x is {list(x.shape)}, w is {list(w.shape)}",
        )
    shard = _shard_kw(
        lw, kw, ("cols", "k"), "shard is `cols` (split N over the sentrons) or `k` (split K, then all-reduce)"
    )
    y0 = _result(lw, name_toks[0], "f32", (m, n), pitched_ok=shard is None or lw.sentrons == 1)
    if shard is not None and lw.sentrons > 1:  # the sharded forms read dense operands
        x, w = views.dense(lw, x), views.dense(lw, w)
    _in_place(lw, y0, [x, w], lambda y: _matmul_into(lw, x, w, y, m, k, n, shard))


def _matmul_into(lw: Lowerer, x: Tensor, w: Tensor, y: Tensor, m: int, k: int, n: int, shard) -> None:
    b = lw.b
    nt = (n + 15) // 16
    # shard=k: sentron s takes k rows [s*per, (s+1)*per) (the unrolled form's split; with fewer rows
    # than sentrons some get none, and the unrolled form gives them a zero partial)
    per = (k + lw.sentrons - 1) // lw.sentrons
    kr = [(s * per, min(k, (s + 1) * per)) for s in range(lw.sentrons)]
    if use_loops(lw, m * k * nt, GEMM_UNROLL_OPS) and (shard != "k" or all(hi > lo for lo, hi in kr)):
        if shard is None or lw.sentrons == 1:
            kernels.matmul_loop(lw, x, w, y, 0, nt)
            return
        if shard == "k":
            # each sentron's partial product over its rows of w (a contiguous block of the weight
            # bytes), then every sentron sums the partials in sentron order (CREDUCE's: same bits)
            u = _uniform(k, per, lw.sentrons)
            _exchange(
                lw,
                y,
                m,
                n,
                [],
                lambda part, s: kernels.matmul_loop(lw, x, w, part, 0, nt, *kr[s]),
                defer=lw.tensors.get(y.name) is y,
                pin=(w.scroll,),
                combine="sum",
                dyn=(u, lambda part, me: kernels.matmul_loop(lw, x, w, part, 0, nt, _sid_times(b, per), per))
                if u
                else None,
            )
            return
        ranges = _col_ranges(nt, lw.sentrons)
        spans = [(lo * 64, min(hi * 16, n) * 4) for lo, hi in ranges]
        tper = ranges[0][1] - ranges[0][0]
        u = _uniform(n // 16, tper, lw.sentrons)
        _exchange(
            lw,
            y,
            m,
            n,
            spans,
            lambda part, s: kernels.matmul_loop(lw, x, w, part, *ranges[s]),
            defer=lw.tensors.get(y.name) is y,
            pin=(w.scroll,),
            dyn=(u, lambda part, me: kernels.matmul_loop(lw, x, w, part, _sid_times(b, tper), tper))
            if u
            else None,
        )
        return
    from vtpu_cli.compiler.tune import tile_for

    rr, cc = tile_for(lw, "matmul", m, k, n)
    if shard is None or lw.sentrons == 1:
        matmul_tiles(lw, x, w, y, rr, cc, range(nt), range(k))
        return
    ns = lw.sentrons
    if shard == "cols":
        per = (nt + ns - 1) // ns
        owner = [min(j // per, ns - 1) for j in range(nt)]
        _per_sentron(
            lw, lambda s: matmul_tiles(lw, x, w, y, rr, cc, [j for j in range(nt) if owner[j] == s], range(k))
        )
        # all-gather: every column tile is broadcast from its owner
        for i in range(m):
            for j in range(nt):
                off, nb = i * n * 4 + j * 64, min(64, (n - j * 16) * 4)
                v = b.load("f32", b.new("v"), y.scroll, off, nb)
                r = b.new("v")
                b.emit("CCAST", r, v, imm(owner[j]), imm(0), type="f32")
                b.store("f32", r, y.scroll, off, nb)
    else:
        per = (k + ns - 1) // ns
        _per_sentron(
            lw,
            lambda s: matmul_tiles(
                lw, x, w, y, rr, cc, range(nt), range(s * per, min(k, (s + 1) * per)), zero_if_empty=True
            ),
        )
        for i in range(m):
            for j in range(nt):
                off, nb = i * n * 4 + j * 64, min(64, (n - j * 16) * 4)
                v = b.load("f32", b.new("v"), y.scroll, off, nb)
                r = b.new("v")
                b.emit("CREDUCE", r, v, imm(0), type="f32", mod="add")
                b.store("f32", r, y.scroll, off, nb)


EXCHANGE_LIBRARY = RESERVED_LIBRARY + 6  # 996: the shared exchange scrolls of shard=cols


def _exchange(
    lw: Lowerer,
    y: Tensor,
    m: int,
    n: int,
    spans: list[tuple[int, int]],
    compute,
    defer: bool = False,
    pin: tuple[str, ...] = (),
    setup=None,
    combine: str = "cols",
    dyn=None,
) -> None:
    """``shard=cols`` without a C-pipe payload (sentrons of one process share memory). Each sentron s
    computes its columns (bytes ``spans[s]`` of every row) into its own *exchange scroll* -- an
    ``f32[m, n]`` shared scroll at ``996.<op>.<s+1>/1.1.1/1.1.1`` that only s writes -- then, after a
    ``CBAR``, every sentron copies every owner's columns into its own y. The race rule (scroll
    granularity, happens-before through barriers) holds by construction; :class:`~.lower.Sync` places
    the barriers (the one before the copies, and one before the next write of an exchange scroll only
    when no other barrier separates it from the copies). Exact: y is bit-identical to one sentron.

    ``defer``: the copies are emitted later (:meth:`~.lower.Lowerer.flush_gathers`), so consecutive
    sharded ops (q, k, v) share one barrier. ``pin``: scrolls whose coordinate register is defined at
    the start of each sentron's region (a layer-indexed weight's coordinate is otherwise defined at its
    first use, which in a kernel is inside the K loop: a translation per trip). ``setup(s)``: code of
    sentron s emitted before its region (outside it: its scrolls take none of the hoisted registers).
    ``combine="sum"`` (``shard=k``): each exchange scroll holds a whole partial y, and every sentron
    sums them in sentron order into its y (``spans`` unused).

    The exchange scrolls are one stack of per-sentron layers (``996.<op>.1/1.1.1/1.1.<s+1>``), so a
    sentron reaches its own by coordinate arithmetic on its id. ``dyn = (u, compute_dyn)``: sentrons
    0..u-1 own the same amount of work at offsets proportional to their id (``spans[s]`` = s * width ..
    (s + 1) * width), and run one copy of the code, ``compute_dyn(part, sid_register)``, instead of a
    copy each: the program's size then does not grow with the sentron count."""
    b = lw.b
    if any(lw.root_scroll(k) == lw.root_scroll(y.scroll) for k, _ in lw.pending_gathers):
        lw.flush_gathers()  # y is about to be gathered again: the earlier copies go first
    stack = _exchange_stack(lw, "f32", (m, n))
    parts = [
        Tensor(k, "f32", (m, n), "tensor", k)
        for k in (_exchange_view(lw, stack, s) for s in range(lw.sentrons))
    ]
    lw.sync.write(stack)

    def region(part: Tensor, s) -> None:
        # each sentron's code is a coordinate-register region of its own: with both branches in one
        # region the scrolls past the first five hoisted ones got their coordinate defined at every use,
        # inside the kernel's loops (a 2-sentron prefill GEMM ran 4x slower than the same GEMM unsharded)
        if setup is not None:
            setup(s)
        saved = b.push_region()
        try:
            for key in pin:
                b.base(key)
            if isinstance(s, VReg):
                b.base(part.scroll)  # the sentron's exchange scroll: its coordinate from its id, once
                dyn[1](part, s)
            else:
                compute(part, s)
        finally:
            b.pop_region(saved)

    def own_dyn(me: VReg) -> None:
        key = _exchange_view(lw, stack, me)
        region(Tensor(key, "f32", (m, n), "tensor", key), me)

    _per_sentron(
        lw,
        lambda s: region(parts[s], s),
        reread=setup is not None,
        dyn=None if dyn is None else (dyn[0], own_dyn),
    )

    def gather() -> None:
        lw.sync.read(stack)
        saved = b.push_region()
        try:
            if combine == "sum":
                kernels.sum_parts_loop(lw, [p.scroll for p in parts], y.scroll, m, n)
            else:
                u = 0
                if dyn is not None:  # the uniform sentrons' columns: one copy loop over their scrolls
                    u = dyn[0]
                    width = spans[0][1] - spans[0][0]
                    kernels.gather_uniform_loop(
                        lw, lambda j: _exchange_view(lw, stack, j), y.scroll, m, n, u, width
                    )
                kernels.gather_cols_loop(lw, [p.scroll for p in parts[u:]], y.scroll, m, n, spans[u:])
        finally:
            b.pop_region(saved)

    if defer:
        lw.pending_gathers.append((y.scroll, gather))
    else:
        gather()


def _exchange_stack(lw: Lowerer, dtype: str, shape: tuple[int, ...]) -> str:
    """A new set of exchange scrolls, one per sentron: a stack whose layer s (``996.<op>.1/1.1.1/1.1.<s+1>``)
    only sentron s writes. Returns its key (the stack itself is never addressed: see
    :func:`_exchange_view`)."""
    lw.exchange_count += 1
    key = f"$xchg{lw.exchange_count}"
    packed = coords.pack_parts((EXCHANGE_LIBRARY, lw.exchange_count, 1, 1, 1, 1, 1, 1, 1))
    sc = Scroll(
        key, dtype, shape, tensor_nbytes(dtype, shape), coord=packed, layers=lw.sentrons, by_sentron=True
    )
    sc.role = "scratch"
    lw.b.scrolls[key] = sc
    return key


def _exchange_view(lw: Lowerer, stack: str, s: int | VReg) -> str:
    """The exchange scroll of sentron ``s`` (an int, or the register holding a sentron id computed at
    run time): layer s of the stack, a view like a layer-indexed weight's (coordinate arithmetic)."""
    base = lw.b.scrolls[stack]
    lw.view_count += 1
    key = f"{stack}@{lw.view_count}"
    coord = base.coord + s if isinstance(s, int) else base.coord
    sc = Scroll(key, base.dtype, base.shape, base.nbytes, coord=coord, role=base.role, alias=stack)
    sc.layer = s
    lw.b.scrolls[key] = sc
    return key


def _uniform(total: int, per: int, ns: int) -> int:
    """How many sentrons, from 0, own exactly ``per`` full units of ``total`` (``per`` each, in order):
    their code is one copy parametrised by the sentron id (:func:`_per_sentron`'s ``dyn``); 0 when that
    would not be shorter than static code per sentron."""
    u = min(ns, total // per) if per else 0
    return u if u >= 2 else 0


def _sid_times(b: Builder, k: int) -> VReg:
    """A fresh register = this sentron's id * k (read where it is needed: short live range)."""
    r = b.new("r", "sid")
    b.emit("DMOV", r, Reg("s", 0))
    b.emit("DMUL", r, r, imm(k), type="i64")
    return r


def use_loops(lw: Lowerer, unrolled_ops: int, limit: int | None = None) -> bool:
    """Lower an op to loop nests (:mod:`.kernels`) when its unrolled form would exceed ``limit`` IR ops
    (default ``kernels.LOOP_OPS``), or always when ``lw.force_loops`` (tests compare both lowerings bit
    for bit)."""
    return lw.force_loops or unrolled_ops > (kernels.LOOP_OPS if limit is None else limit)


# matmul and tmatmul are unrolled only when tiny (at most this many DFMA / DTDOT ops in all): their loop
# nests (kernels.matmul_loop, tmatmul_loop) keep each tile's accumulators in registers, while an
# unrolled product leaves LLVM a long straight line that it schedules into spills. Measured on an AMD
# Zen 4 (JIT, native run time, medians of 30; unrolled -> loops): f32 matmul 16x64x64 52.7 -> 1.7 us,
# 64x64x64 24.8 -> 5.1 us (OpenBLAS one thread 5.7 us), 1x64x64 0.87 -> 0.53 us; tmatmul 1x512x128
# 393 -> 3.1 us, 8x64x64 13.2 -> 2.8 us; of nine shapes only 2x96x32 was faster unrolled (1.03 against
# 1.28 us). Both forms give the same bits (tests compare them with force_loops).
GEMM_UNROLL_OPS = 128


def _col_ranges(nt: int, ns: int) -> list[tuple[int, int]]:
    """Contiguous 16-column tile range [lo, hi) of each sentron (the same split as the unrolled path)."""
    per = (nt + ns - 1) // ns
    return [(min(nt, s * per), min(nt, (s + 1) * per)) for s in range(ns)]


def _per_sentron(lw: Lowerer, gen, reread: bool = False, dyn=None) -> None:
    """Specialised static code per sentron id: if sid == s { gen(s) } for each s. ``reread``: the id
    is read again before each test (in one register it is live across every sentron's code: the
    sharded model attend then ran out of p registers). ``dyn = (u, gen_dyn)``: sentrons below u run
    ``gen_dyn(sid_register)`` (one copy for all of them), the others their static code."""
    b = lw.b
    me = b.new("r", "sid")
    b.emit("DMOV", me, Reg("s", 0))
    end = b.label("shard_end")
    first = 0
    if dyn is not None:
        first, gen_dyn = dyn
        nxt = b.label("shard")
        flag = b.new("r")
        b.emit("DCMP", flag, me, imm(first), type="i64", mod="lt")
        b.emit("DBRF", nxt)
        mine = b.new("r", "sid")  # read again: short live range (``me`` is not defined past the branch)
        b.emit("DMOV", mine, Reg("s", 0))
        gen_dyn(mine)
        b.emit("DJMP", end)
        b.place(nxt)
        if reread:
            me = b.new("r", "sid")
            b.emit("DMOV", me, Reg("s", 0))
    for s in range(first, lw.sentrons):
        nxt = b.label("shard")
        if reread and s > first:
            me = b.new("r", "sid")
            b.emit("DMOV", me, Reg("s", 0))
        flag = b.new("r")
        b.emit("DCMP", flag, me, imm(s), type="i64", mod="eq")
        b.emit("DBRF", nxt)
        gen(s)
        b.emit("DJMP", end)
        b.place(nxt)
    b.place(end)


def matmul_tiles(
    lw: Lowerer, x: Tensor, w: Tensor, y: Tensor, rr: int, cc: int, tiles, ks, zero_if_empty: bool = False
) -> None:
    """y[:, tiles] = x[:, ks] @ w[ks, tiles]: register tile of rr rows x cc 16-column tiles; each
    output element accumulates sequentially over k with DFMA (first product: DMUL)."""
    b = lw.b
    m, k = x.shape
    n = w.shape[1]
    xs, ws, ys = (
        kernels.row_pitch(lw, x, k * 4),
        kernels.row_pitch(lw, w, n * 4),
        kernels.row_pitch(lw, y, n * 4),
    )
    xe = kernels.elem_stride(lw, x)
    tiles = list(tiles)
    ks = list(ks)
    groups = [tiles[i : i + cc] for i in range(0, len(tiles), cc)]

    def block(ix: Ix, r0_const: int | None, nrows: int):
        for grp in groups:
            acc = [[None] * len(grp) for _ in range(nrows)]
            for kk in ks:
                wv = []
                for c, j in enumerate(grp):
                    nb = min(64, (n - j * 16) * 4)
                    wv.append(b.load("f32", b.new("v", "w"), w.scroll, kk * ws + j * 64, nb))
                    del c
                for r in range(nrows):
                    xo = ix.off(r * xs + kk * xe, rr * xs)
                    xb = b.new("v", "x")
                    if isinstance(xo, int):
                        b.bcast_load("f32", xb, x.scroll, xo)
                    else:
                        p = b.base(x.scroll)
                        b.emit(
                            "SGATHER",
                            xb,
                            VMem(p, xo, 1, 0),
                            type="f32",
                            mem=MemInfo(x.scroll, False, 0, 4, xo),
                        )
                    for c in range(len(grp)):
                        a = b.new("v", "acc")
                        if acc[r][c] is None:
                            b.emit("DMUL", a, xb, wv[c], type="f32")
                        else:
                            b.emit("DFMA", a, xb, wv[c], acc[r][c], type="f32")
                        acc[r][c] = a
            for r in range(nrows):
                for c, j in enumerate(grp):
                    nb = min(64, (n - j * 16) * 4)
                    a = acc[r][c]
                    if a is None:
                        a = b.new("v")
                        b.emit("DBCAST", a, F(0.0), type="f32")
                    yo = ix.off(r * ys + j * 64, rr * ys)
                    if isinstance(yo, int):
                        b.store("f32", a, y.scroll, yo, nb)
                    else:
                        b.store("f32", a, y.scroll, 0, nb, rel=yo)

    full = m // rr
    est = len(ks) * (len(tiles) * rr + rr + len(tiles)) + 4
    rows(lw, full, est, lambda ix: block(ix, None, rr), pipelinable=True)
    if m % rr:
        block(Ix(b, const=full), None, m % rr)


# ---------------------------------------------------------------------- ternary matmul
def _weight_scale(lw: Lowerer, w: Tensor, node):
    """The weight scale: a literal (immediate) or, with ``scale NAME``, an f32 scalar read from the
    one-element tensor NAME at run time (weight scales as data)."""
    if not isinstance(w.scale, str):
        return w.scale
    t = lw.tensors.get(w.scale)
    if t is None:
        lw.fail(node, f"weight `{w.name}`: undefined scale tensor `{w.scale}`")
    wsc = lw.b.scrolls[w.scroll]
    layers = lw.b.scrolls[wsc.alias].layers if wsc.alias else 1
    if t.dtype != "f32" or t.numel not in (1, layers):
        want = "f32[1]" + (f" or f32[{layers}] (one per layer)" if layers > 1 else "")
        lw.fail(
            node,
            f"weight `{w.name}`: scale tensor `{w.scale}` must be {want}, found {t.dtype}{list(t.shape)}",
        )
    r = lw.b.new("r", "wscale")
    if t.numel == 1:
        lw.b.load("f32", r, t.scroll, 0)
    elif isinstance(wsc.layer, VReg):  # per-layer scales: element l of the scale tensor
        off = lw.b.new("r")
        lw.b.emit("DMUL", off, wsc.layer, imm(4), type="i64")
        lw.b.load("f32", r, t.scroll, 0, rel=off)
    else:
        lw.b.load("f32", r, t.scroll, 4 * int(wsc.layer))
    return r


def _tmatmul(lw: Lowerer, name_toks, call, pos, kw):
    lw.colour_coords = True  # a ternary (model) program: PPT-coloured scratch coordinates (lower.py)
    _nargs(lw, call, pos, 2, 3)
    _kw(lw, kw, ("shard",) + EPILOGUE_KW, call)
    x, w = lw.tensor_arg(pos[0]), lw.tensor_arg(pos[1])
    pre = None
    if len(pos) == 3:  # tmatmul(q8, w, qs): x already quantised by quant()
        qs = lw.tensor_arg(pos[2])
        _dtype_ok(lw, pos[0], x, ("i8",), "tmatmul with a scale tensor (quantised input)")
        _dtype_ok(lw, pos[2], qs, ("f32",), "tmatmul (activation scales)")
        if len(x.shape) == 2 and x.shape[1] % 16:
            lw.fail(pos[0], f"a quantised tmatmul input needs K a multiple of 16, found {x.shape[1]}")
        if len(x.shape) == 2 and qs.numel != x.shape[0]:
            lw.fail(pos[2], f"activation scales must be f32[{x.shape[0]}] (one per row)")
        x, qs = views.dense(lw, x), views.dense(lw, qs)  # read as the quantised rows they are
        pre = (x, qs)
    else:
        _dtype_ok(lw, pos[0], x, ("f32",), "tmatmul")
    _dtype_ok(lw, pos[1], w, ("t2",), "tmatmul (weights)")
    if len(x.shape) != 2:
        lw.fail(pos[0], "tmatmul takes x[M, K]")
    (m, k), (k2, n) = x.shape, w.shape
    if k != k2:
        lw.fail(
            pos[1],
            f"shape mismatch: tmatmul inner dimensions differ: x is {list(x.shape)}, w is {list(w.shape)}",
        )
    shard = _shard_kw(
        lw, kw, ("cols",), "tmatmul shards by columns: shard=cols (each sentron computes a range of N)"
    )
    ep = _epilogue_kw(lw, kw, call, w, m, n)
    # with all columns its own (one sentron), every form writes y's rows where they lie (an epilogue
    # through a dense scratch): the result may be a placed part of a column concat
    rows_apart = shard is None or lw.sentrons == 1
    y0 = _result(lw, name_toks[0], "f32", (m, n), pitched_ok=rows_apart)
    wscale = _weight_scale(lw, w, pos[1])
    srcs = [x] if pre is None else [x, pre[1]]
    _in_place(lw, y0, srcs, lambda y: _tmatmul_into(lw, x, w, y, m, k, n, shard, wscale, pre, ep))


def _tmatmul_into(
    lw: Lowerer,
    x: Tensor,
    w: Tensor,
    y: Tensor,
    m: int,
    k: int,
    n: int,
    shard,
    wscale,
    pre=None,
    ep: Epilogue | None = None,
):
    b = lw.b
    k16 = (k + 15) // 16 * 16
    nt = (n + 15) // 16
    tiny = not use_loops(lw, m * (k16 // 4) * nt, GEMM_UNROLL_OPS)
    if not tiny or (shard and lw.sentrons > 1) or pre is not None or ep:
        gbuf = None
        if ep is not None and ep.gate_w is not None:
            gkey = lw.scratch("gate", m * n * 4)
            gbuf = Tensor(gkey, "f32", (m, n), "tensor", gkey)
        if shard is None or lw.sentrons == 1:
            if ep is None:
                kernels.tmatmul_loop(lw, x, w, y, 0, nt, wscale, pre)
                return
            if gbuf is not None:
                kernels.tmatmul_loop(lw, x, ep.gate_w, gbuf, 0, nt, ep.gate_wscale, pre)
            # the residual is y itself (`h = tmatmul(..., add=h)`), or y's rows are apart (a placed part
            # of a column concat): the product goes to a dense scratch first
            src = y
            own = ep.add is not None and lw.root_scroll(ep.add.scroll) == lw.root_scroll(y.scroll)
            if own or _pitch(lw, y):
                if own:
                    ep.add = views.dense(lw, ep.add)  # (rows of y's own storage read apart: copied first)
                tkey = lw.scratch("epi", m * n * 4)
                src = Tensor(tkey, "f32", (m, n), "tensor", tkey)
            kernels.tmatmul_loop(lw, x, w, src, 0, nt, wscale, pre)
            kernels.in_region(b, lambda: _epilogue(lw, ep, src, y, gbuf, m, n, (0, n * 4)))
            return
        ranges = _col_ranges(nt, lw.sentrons)
        spans = [(lo * 64, min(hi * 16, n) * 4) for lo, hi in ranges]
        setup = None
        if ep is not None:
            # runtime scales go through memory, reloaded by each sentron (as attend's arguments): in
            # registers they would stay live across sentron 0's code and push its loops into spills
            regs = [a for a in ("scale", "gate_scale") if isinstance(getattr(ep, a), VReg)]
            slot = lw.scratch("epargs", 4 * len(regs)) if regs else ""
            for i, a in enumerate(regs):
                b.store("f32", getattr(ep, a), slot, i * 4)

            def setup(s: int) -> None:
                for i, a in enumerate(regs):
                    setattr(ep, a, b.load("f32", b.new("r", "eparg"), slot, i * 4))

        def compute(part: Tensor, s: int) -> None:
            if ep is not None and gbuf is not None:
                kernels.tmatmul_loop(lw, x, ep.gate_w, gbuf, *ranges[s], ep.gate_wscale, pre)
            kernels.tmatmul_loop(lw, x, w, part, *ranges[s], wscale, pre)
            if ep is not None and spans[s][1] > spans[s][0]:
                kernels.in_region(b, lambda: _epilogue(lw, ep, part, part, gbuf, m, n, spans[s]))

        per = ranges[0][1] - ranges[0][0]
        u = _uniform(n // 16, per, lw.sentrons)

        def compute_dyn(part: Tensor, me: VReg) -> None:
            # sentron me: the ``per`` full tiles from me * per (its id times the share, at run time)
            if ep is not None and gbuf is not None:
                bufs = kernels.tmatmul_prep(lw, x, pre)
                kernels.tmatmul_tiles(
                    lw, x, ep.gate_w, gbuf, bufs, _sid_times(b, per), None, ep.gate_wscale, per
                )
            bufs = kernels.tmatmul_prep(lw, x, pre)
            kernels.tmatmul_tiles(lw, x, w, part, bufs, _sid_times(b, per), None, wscale, per)
            if ep is not None:
                kernels.in_region(
                    b, lambda: _epilogue(lw, ep, part, part, gbuf, m, n, (_sid_times(b, per * 64), per * 64))
                )

        _exchange(
            lw,
            y,
            m,
            n,
            spans,
            compute,
            defer=lw.tensors.get(y.name) is y,  # not an in-place scratch (copied to y right after)
            pin=(w.scroll,) if ep is None or ep.gate_w is None else (w.scroll, ep.gate_w.scroll),
            setup=setup,
            dyn=(u, compute_dyn) if u else None,
        )
        return
    qbuf = lw.scratch("q", m * k16)
    scales = lw.scratch("qs", m * 4)
    sums = lw.scratch("qsum", m * 4)
    ch = chunks(k, 4)
    one = b.new("r", "c127")
    b.emit("DMOV", one, F(127.0), type="f32")
    from vtpu_cli.compiler.tune import tile_for

    _rr, cc = tile_for(lw, "tmatmul", m, k, n)
    ones = ones_codes(b)
    xrow = kernels.row_pitch(lw, x, k * 4)  # (a column slice read in place: its base's row)
    ypitch = kernels.row_pitch(lw, y, n * 4)  # (a placed part of a column concat: its result's row)
    for i in range(m):
        # 1. per-row absmax -> inverse scale and dequant scale
        mx = None
        xs = []
        for off, nb in ch:
            v = b.load("f32", b.new("v"), x.scroll, i * xrow + off, nb)
            xs.append(v)
            a = b.new("v")
            b.emit("DAND", a, v, imm(0x7FFFFFFF), type="i32")
            if mx is None:
                mx = a
            else:
                m2 = b.new("v")
                b.emit("DMAX", m2, mx, a, type="f32")
                mx = m2
        am = b.new("r")
        b.emit("DRED", am, mx, type="f32", mod="max")
        b.emit("DMAX", am, am, F(1e-30), type="f32")
        inv = b.new("r")
        b.emit("DDIV", inv, one, am, type="f32")
        sc = b.new("r")
        b.emit("DDIV", sc, am, F(127.0), type="f32")
        b.emit("DMUL", sc, sc, wscale if isinstance(wscale, VReg) else F(wscale), type="f32")
        b.store("f32", sc, scales, i * 4)
        vinv = b.new("v")
        b.emit("DBCAST", vinv, inv, type="f32")
        # 2. quantise to int8 (round to nearest even), four 16-lane parts per 64-byte vector; the row's
        # sum of q (the DTDOT code offset, see step 3) in 16 int32 lanes
        qsum = b.new("v", "qsum")
        for g in range(0, len(ch), 4):
            q = b.new("v", "q")
            if len(ch) - g < 4:
                b.emit("DBCAST", q, imm(0), type="i8")
            for part in range(min(4, len(ch) - g)):
                s = b.new("v")
                b.emit("DMUL", s, xs[g + part], vinv, type="f32")
                b.emit("DCVT", q, s, imm(part), type="i8", type2="f32")
            b.store("i8", q, qbuf, i * k16 + g * 16, min(64, k16 - g * 16))
            if g == 0:
                b.emit("DBCAST", qsum, imm(0), type="i32")
            b.emit("DTDOT", qsum, q, ones, imm(0))
        tot = b.new("r")
        b.emit("DRED", tot, qsum, type="i32", mod="add")
        b.store("i32", tot, sums, i * 4)
    # 3. ternary dot-accumulate: 16 output columns per DTDOT lane group. DTDOT adds q * code (code = w + 1)
    # and the sum of q over the row is taken once: acc = sum q * (w + 1) - sum q (exact, wrapping int32)
    for i in range(m):
        csc = b.new("r")
        b.load("f32", csc, scales, i * 4)
        vsc = b.new("v")
        b.emit("DBCAST", vsc, csc, type="f32")
        tot = b.new("r")
        b.load("i32", tot, sums, i * 4)
        vsum = b.new("v")
        b.emit("DBCAST", vsum, tot, type="i32")
        for j0 in range(0, nt, cc):
            grp = list(range(j0, min(nt, j0 + cc)))
            acc = {}
            for kg in range(k16 // 16):
                wv = {}
                for j in grp:
                    wv[j] = b.load("i8", b.new("v", "w"), w.scroll, (j * k16 // 16 + kg) * 64)
                for q in range(4):
                    if kg * 16 + q * 4 >= k:
                        break
                    xb = b.new("v", "xq")
                    b.bcast_load("i32", xb, qbuf, i * k16 + kg * 16 + q * 4)
                    for j in grp:
                        if j not in acc:
                            a0 = b.new("v", "acc")
                            b.emit("DBCAST", a0, imm(0), type="i32")
                            acc[j] = a0
                        b.emit("DTDOT", acc[j], xb, wv[j], imm(q))
            for j in grp:
                a1 = b.new("v")
                b.emit("DSUB", a1, acc[j], vsum, type="i32")
                f = b.new("v")
                b.emit("DCVT", f, a1, None, type="f32", type2="i32")
                o = b.new("v")
                b.emit("DMUL", o, f, vsc, type="f32")
                b.store("f32", o, y.scroll, i * ypitch + j * 64, min(64, (n - j * 16) * 4))


# ---------------------------------------------------------------------- tmatmul epilogue
EPILOGUE_KW = ("scale", "act", "gate", "gate_scale", "add")
EPILOGUE_ACTS = ("relu", "relu2", "silu")


class Epilogue:
    """Element-wise work a ``tmatmul`` statement applies to its own result, column by column (so a
    ``shard=cols`` sentron does it on its own columns only, before the gather): with ``gate=Wg``,
    ``y = act(tmatmul(x, Wg) * gate_scale) * (tmatmul(x, W) * scale)``, else ``y = act(tmatmul(x, W) *
    scale)``; then ``y = add + y``. Each step is the op of the separate statement it replaces
    (``mul``, ``relu2``, ``mul``, ``add``, same operand order), so the bits are those statements'."""

    def __init__(self) -> None:
        self.scale = None  # f32 register or python float; None: no multiply
        self.act: str | None = None
        self.gate_w: Tensor | None = None
        self.gate_wscale = None
        self.gate_scale = None
        self.add: Tensor | None = None


def _epilogue_kw(lw: Lowerer, kw, call, w: Tensor, m: int, n: int) -> Epilogue | None:
    """The epilogue keywords of a tmatmul (None when there are none: the statement's code is then
    exactly that of a plain tmatmul)."""
    if not any(k in kw for k in EPILOGUE_KW):
        return None
    ep = Epilogue()
    if "scale" in kw:
        ep.scale = _ep_scalar(lw, kw["scale"])
    if "act" in kw:
        node = kw["act"]
        act = str(node.children[0]) if node.data == "name" else None
        if act not in EPILOGUE_ACTS:
            lw.fail(node, f"act is one of {', '.join(EPILOGUE_ACTS)}")
        ep.act = act
    if "gate_scale" in kw and "gate" not in kw:
        lw.fail(kw["gate_scale"], "gate_scale needs gate=WEIGHT (the gate projection's weights)")
    if "gate" in kw:
        gw = lw.tensor_arg(kw["gate"])
        _dtype_ok(lw, kw["gate"], gw, ("t2",), "tmatmul gate (weights)")
        if tuple(gw.shape) != tuple(w.shape):
            lw.fail(kw["gate"], f"the gate weights must be {list(w.shape)} like W, found {list(gw.shape)}")
        ep.gate_w = gw
        ep.gate_wscale = _weight_scale(lw, gw, kw["gate"])
        if "gate_scale" in kw:
            ep.gate_scale = _ep_scalar(lw, kw["gate_scale"])
    if "add" in kw:
        a = lw.tensor_arg(kw["add"])
        _dtype_ok(lw, kw["add"], a, ("f32",), "tmatmul add (residual)")
        if _rows2(a) != (m, n) or len(a.shape) != 2:
            lw.fail(kw["add"], f"the residual must be f32[{m}, {n}] like the product, found {list(a.shape)}")
        ep.add = a  # (a column slice is read in place, rows apart: _epilogue)
    return ep


def _ep_scalar(lw: Lowerer, node):
    c = _scalar_arg(lw, node, "f32")
    if isinstance(c, int):
        return float(c)
    return c


def _epilogue(
    lw: Lowerer, ep: Epilogue, src: Tensor, dst: Tensor, gate: Tensor | None, m: int, n: int, span
) -> None:
    """``dst[:, span] = epilogue(src[:, span])`` for the byte range ``span`` of every row of [m, n]
    f32 tensors (src may be dst; ``gate`` holds the gate product at the same offsets). ``span`` is
    (first byte, end byte), or (a register holding the first byte, the byte count)."""
    b = lw.b
    c0, c1 = span
    width = c1 if isinstance(c0, VReg) else c1 - c0

    def vec(v):
        r = b.new("v", "escale")
        b.emit("DBCAST", r, v if isinstance(v, VReg) else F(v), type="f32")
        return r

    vs = vec(ep.scale) if ep.scale is not None else None
    vg = vec(ep.gate_scale) if ep.gate_scale is not None else None
    row = kernels.ptr(b, c0, "erow")
    # dst's rows apart (a placed part of a column concat; src is then a dense scratch): its own pointer
    dpitch = kernels.row_pitch(lw, dst, n * 4)
    drow = kernels.ptr(b, c0, "drow") if dpitch != n * 4 else None
    dd: list = [None]  # this row's dst address minus the product's (None: the same)
    # a residual that is a column slice read in place: its own row pointer (its rows are apart)
    apitch = kernels.row_pitch(lw, ep.add, n * 4) if ep.add is not None else n * 4
    arow = kernels.ptr(b, c0, "arow") if apitch != n * 4 else None
    da: list = [None]  # this row's residual address minus the product's (None: the same)

    def each(p: VReg, nb: int, first: bool) -> None:
        v = kernels.ld(b, "f32", src.scroll, p, nb)
        if vs is not None:
            r = b.new("v")
            b.emit("DMUL", r, v, vs, type="f32")
            v = r
        if gate is not None:
            g = kernels.ld(b, "f32", gate.scroll, p, nb)
            if vg is not None:
                r = b.new("v")
                b.emit("DMUL", r, g, vg, type="f32")
                g = r
            if ep.act is not None:
                g = unary_vec(b, ep.act, g)
            r = b.new("v")
            b.emit("DMUL", r, g, v, type="f32")
            v = r
        elif ep.act is not None:
            v = unary_vec(b, ep.act, v)
        if ep.add is not None:
            a = kernels.ld(b, "f32", ep.add.scroll, kernels.y_at(b, p, da[0]), nb)
            r = b.new("v")
            b.emit("DADD", r, a, v, type="f32")
            v = r
        kernels.st(b, "f32", v, dst.scroll, kernels.y_at(b, p, dd[0]), nb)

    def one_row() -> None:
        da[0] = kernels.row_delta(b, row, arow)
        dd[0] = kernels.row_delta(b, row, drow)
        kernels.chunk_loop(b, width // 4, 4, row, each)
        kernels.bump(b, row, n * 4)
        if arow is not None:
            kernels.bump(b, arow, apitch)
        if drow is not None:
            kernels.bump(b, drow, dpitch)

    kernels.loop(b, m, one_row, "erow")


def ones_codes(b: Builder) -> VReg:
    """A weight register of code 1 in plane 0 of every byte: ``DTDOT acc, q, it, 0`` adds the sums of q."""
    v = b.new("v", "ones")
    b.emit("DBCAST", v, imm(1), type="i8")
    return v


def interleave_t2_rows(packed):
    """Rows of 4-per-byte codes (the ``isa/ternary.py`` packing: row n holds the codes of k = 4kb+t at
    bits 2t of byte kb; rows a multiple of 16 long in k, a multiple of 16 in number) -> phextcc's
    interleaved t2 tile layout (docs/phx.md), as uint8. Every 4 bytes of a row (16 k) become the 4 bytes
    of one 32-bit lane of a 64-byte tile vector with the 4x4 grid of 2-bit codes transposed: byte t of
    the lane holds k = 4q+t at bits 2q. Two delta swaps per word; no per-code work."""
    import numpy as np

    p = np.ascontiguousarray(packed, dtype=np.uint8)
    n16, kq = p.shape
    if n16 % 16 or kq % 4:
        raise ValueError(f"t2 rows must be [16 * i, 4 * j] bytes, found {list(p.shape)}")
    w = p.view("<u4").copy()  # [n, K/16]: word s of row n = codes (q, t) at bits 8q + 2t
    t = ((w >> 6) ^ w) & np.uint32(0x00CC00CC)  # swap (q, t) <-> (q-1, t+1) for q odd, t even
    w ^= t ^ (t << 6)
    t = ((w >> 12) ^ w) & np.uint32(0x0000F0F0)  # swap the off-diagonal 2x2 blocks
    w ^= t ^ (t << 12)
    # tile nb, k step s, lane j = row 16 nb + j
    out = w.reshape(n16 // 16, 16, kq // 4).transpose(0, 2, 1)
    return np.ascontiguousarray(out).view(np.uint8).reshape(-1)


def pack_ternary_tiles(wmat) -> bytes:
    """A ternary matrix w[K, N] in {-1, 0, 1} -> phextcc's interleaved t2 layout (see docs/phx.md):
    K and N padded to multiples of 16 with code 1 (weight 0); 64 bytes per 16 k x 16 n, tile nb's
    vectors consecutive (k step s at byte (nb * K16/16 + s) * 64); byte 4j + t of a vector holds the
    codes (w + 1) of column 16 nb + j at k = 16 s + 4q + t in bits 2q, q = 0..3 (``DTDOT`` plane q)."""
    import numpy as np

    from vtpu_cli.isa.ternary import pack_codes

    w = np.asarray(wmat, dtype=np.int64)
    if w.ndim != 2:
        raise VtpuError(f"ternary weights must be a 2-D matrix w[K, N], found shape {list(w.shape)}")
    if w.size and (w.min() < -1 or w.max() > 1):
        raise VtpuError("ternary weights must be -1, 0 or 1")
    k, n = w.shape
    k16 = (k + 15) // 16 * 16
    n16 = (n + 15) // 16 * 16
    codes = np.ones((n16, k16), np.uint8)
    codes[:n, :k] = (w.T + 1).astype(np.uint8)
    return interleave_t2_rows(pack_codes(codes)).tobytes()


# ---------------------------------------------------------------------- row ops
def _row_chunks(n: int):
    return chunks(n, 4)


def _tail_mask(lw: Lowerer, nvalid: int) -> VReg:
    b = lw.b
    iota = b.load("i32", b.new("v", "iota"), const_iota(lw), 0)
    m = b.new("v", "mask")
    b.emit("DCMP", m, iota, imm(nvalid), type="i32", mod="lt")
    return m


def _rmsnorm(lw: Lowerer, name_toks, call, pos, kw):
    _nargs(lw, call, pos, 2)
    _kw(lw, kw, ("eps",), call)
    x, g = lw.tensor_arg(pos[0]), lw.tensor_arg(pos[1])
    _dtype_ok(lw, pos[0], x, ("f32",), "rmsnorm")
    _dtype_ok(lw, pos[1], g, ("f32",), "rmsnorm (gain)")
    m, d = _rows2(x)
    if g.shape != (d,):
        lw.fail(pos[1], f"shape mismatch: rmsnorm gain must be [{d}], found {list(g.shape)}")
    eps = float(lw.const_eval(kw["eps"])) if "eps" in kw else 1e-5
    y = _result(lw, name_toks[0], "f32", x.shape, pitched_ok=True)
    xs, ys = kernels.row_pitch(lw, x, d * 4), kernels.row_pitch(lw, y, d * 4)  # row strides
    b = lw.b
    ch = _row_chunks(d)
    if len(ch) > 8 or use_loops(lw, 0):
        kernels.rmsnorm_loop(lw, x, g, y, m, d, eps)
        return
    one = b.new("r")
    b.emit("DMOV", one, F(1.0), type="f32")
    gv = [b.load("f32", b.new("v", "g"), g.scroll, off, nb) for off, nb in ch] if len(ch) <= 8 else None

    def row(ix: Ix):
        xv = []
        acc = None
        for off, nb in ch:
            v = _ld(b, x.scroll, ix.off(off, xs), nb)
            xv.append(v)
            a = b.new("v")
            if acc is None:
                b.emit("DMUL", a, v, v, type="f32")
            else:
                b.emit("DFMA", a, v, v, acc, type="f32")
            acc = a
        ss = b.new("r")
        b.emit("DRED", ss, acc, type="f32", mod="add")
        b.emit("DDIV", ss, ss, F(float(d)), type="f32")
        b.emit("DADD", ss, ss, F(eps), type="f32")
        b.emit("DSQRT", ss, ss, type="f32")
        inv = b.new("r")
        b.emit("DDIV", inv, one, ss, type="f32")
        vinv = b.new("v")
        b.emit("DBCAST", vinv, inv, type="f32")
        for c, (off, nb) in enumerate(ch):
            t1 = b.new("v")
            b.emit("DMUL", t1, xv[c], vinv, type="f32")
            gg = gv[c] if gv is not None else b.load("f32", b.new("v"), g.scroll, off, nb)
            t2 = b.new("v")
            b.emit("DMUL", t2, t1, gg, type="f32")
            _st(b, t2, y.scroll, ix.off(off, ys), nb)

    rows(lw, m, 4 * len(ch) + 8, row, pipelinable=True)


def _ld(b: Builder, scroll: str, off, nb: int) -> VReg:
    v = b.new("v")
    if isinstance(off, int):
        return b.load("f32", v, scroll, off, nb)
    return b.load("f32", v, scroll, 0, nb, rel=off)


def _st(b: Builder, v: VReg, scroll: str, off, nb: int) -> None:
    if isinstance(off, int):
        b.store("f32", v, scroll, off, nb)
    else:
        b.store("f32", v, scroll, 0, nb, rel=off)


def _softmax(lw: Lowerer, name_toks, call, pos, kw):
    _nargs(lw, call, pos, 1)
    _kw(lw, kw, (), call)
    x = lw.tensor_arg(pos[0])
    _dtype_ok(lw, pos[0], x, ("f32",), "softmax")
    m, d = _rows2(x)
    y = _result(lw, name_toks[0], "f32", x.shape, pitched_ok=True)
    xstride, ystride = kernels.row_pitch(lw, x, d * 4), kernels.row_pitch(lw, y, d * 4)  # row strides
    b = lw.b
    ch = _row_chunks(d)
    tail = ch[-1][1] < 64
    mask = _tail_mask(lw, (d % 16)) if tail else None
    ninf = neg_inf(lw) if tail else None
    if len(ch) > 8 or use_loops(lw, 0):
        kernels.softmax_loop(lw, x, y, m, d, mask, ninf)
        return
    one = b.new("r")
    b.emit("DMOV", one, F(1.0), type="f32")

    def row(ix: Ix):
        xs = []
        mx = None
        for c, (off, nb) in enumerate(ch):
            v = _ld(b, x.scroll, ix.off(off, xstride), nb)
            if tail and c == len(ch) - 1:
                v2 = b.new("v")
                b.emit("DSEL", v2, mask, v, ninf, type="f32")
                v = v2
            xs.append(v)
            if mx is None:
                mx = v
            else:
                m2 = b.new("v")
                b.emit("DMAX", m2, mx, v, type="f32")
                mx = m2
        rmax = b.new("r")
        b.emit("DRED", rmax, mx, type="f32", mod="max")
        vmax = b.new("v")
        b.emit("DBCAST", vmax, rmax, type="f32")
        es = []
        acc = None
        for c in range(len(ch)):
            t = b.new("v")
            b.emit("DSUB", t, xs[c], vmax, type="f32")
            e = exp_vec(b, t)
            if tail and c == len(ch) - 1:
                e2 = b.new("v")
                b.emit("DSEL", e2, mask, e, F(0.0), type="f32")
                e = e2
            es.append(e)
            if acc is None:
                acc = e
            else:
                a2 = b.new("v")
                b.emit("DADD", a2, acc, e, type="f32")
                acc = a2
        s = b.new("r")
        b.emit("DRED", s, acc, type="f32", mod="add")
        inv = b.new("r")
        b.emit("DDIV", inv, one, s, type="f32")
        vinv = b.new("v")
        b.emit("DBCAST", vinv, inv, type="f32")
        for c, (off, nb) in enumerate(ch):
            o = b.new("v")
            b.emit("DMUL", o, es[c], vinv, type="f32")
            _st(b, o, y.scroll, ix.off(off, ystride), nb)

    rows(lw, m, 30 * len(ch) + 10, row, pipelinable=True)


def _argmax_row(lw: Lowerer, b: Builder, xs: list, ivs: list, vbig) -> VReg:
    """(index register) of the first maximum of the row held in registers xs."""
    mx = xs[0]
    for v in xs[1:]:
        m2 = b.new("v")
        b.emit("DMAX", m2, mx, v, type="f32")
        mx = m2
    rmax = b.new("r")
    b.emit("DRED", rmax, mx, type="f32", mod="max")
    vmax = b.new("v")
    b.emit("DBCAST", vmax, rmax, type="f32")
    best = None
    for c, v in enumerate(xs):
        eq = b.new("v")
        b.emit("DCMP", eq, v, vmax, type="f32", mod="eq")
        cand = b.new("v")
        b.emit("DSEL", cand, eq, ivs[c], imm(0x7FFFFFFF), type="i32")
        if best is None:
            best = cand
        else:
            b2 = b.new("v")
            b.emit("DMIN", b2, best, cand, type="i32")
            best = b2
    idx = b.new("r", "idx")
    b.emit("DRED", idx, best, type="i32", mod="min")
    return idx, rmax


def _load_row_masked(lw, b, x: Tensor, i: int, d: int, mask, ninf):
    ch = _row_chunks(d)
    pitch = kernels.row_pitch(lw, x, d * 4)  # (a column slice read in place: its base's row)
    xs = []
    for off, nb in ch:
        v = b.load("f32", b.new("v"), x.scroll, i * pitch + off, nb)
        if nb < 64:
            v2 = b.new("v")
            b.emit("DSEL", v2, mask, v, ninf, type="f32")
            v = v2
        xs.append(v)
    return xs


def _iotas(lw, b, nch: int):
    iota = b.load("i32", b.new("v", "iota"), const_iota(lw), 0)
    ivs = [iota]
    for c in range(1, nch):
        v = b.new("v")
        b.emit("DADD", v, iota, imm(16 * c), type="i32")
        ivs.append(v)
    return ivs


def _argmax(lw: Lowerer, name_toks, call, pos, kw):
    _nargs(lw, call, pos, 1)
    _kw(lw, kw, (), call)
    x = lw.tensor_arg(pos[0])
    _dtype_ok(lw, pos[0], x, ("f32",), "argmax")
    m, d = _rows2(x)
    y = _result(lw, name_toks[0], "i32", (m,))
    b = lw.b
    nch = -(-d // 16)  # 64-byte pieces of a row (no list: a 128k-vocabulary row has 8,016)
    mask = _tail_mask(lw, d % 16) if d % 16 else None
    ninf = neg_inf(lw)
    if nch > 8 or use_loops(lw, m * nch * 8):
        iota = b.load("i32", b.new("v", "iota"), const_iota(lw), 0)
        kernels.argmax_loop(lw, x, y, m, d, mask, ninf, iota)
        return
    ivs = _iotas(lw, b, nch)
    for i in range(m):
        xs = _load_row_masked(lw, b, x, i, d, mask, ninf)
        idx, _ = _argmax_row(lw, b, xs, ivs, None)
        b.store("i32", idx, y.scroll, i * 4)


def _topk(lw: Lowerer, name_toks, call, pos, kw):
    _nargs(lw, call, pos, 2)
    _kw(lw, kw, (), call)
    x = lw.tensor_arg(pos[0])
    _dtype_ok(lw, pos[0], x, ("f32",), "topk")
    kk = lw.const_eval(pos[1])
    m, d = _rows2(x)
    if not isinstance(kk, int) or not 1 <= kk <= d:
        lw.fail(pos[1], f"k must be an integer constant in 1..{d}")
    if len(name_toks) > 2:
        lw.fail(name_toks[2], "topk returns (indices) or (values, indices)")
    idx_t = _result(lw, name_toks[-1], "i32", (m, kk))
    val_t = _result(lw, name_toks[0], "f32", (m, kk)) if len(name_toks) == 2 else None
    b = lw.b
    nch = -(-d // 16)  # 64-byte pieces of a row (no list: a 128k-vocabulary row has 8,016)
    mask = _tail_mask(lw, d % 16) if d % 16 else None
    ninf = neg_inf(lw)
    if nch > 8 or use_loops(lw, m * kk * nch * 8):
        iota = b.load("i32", b.new("v", "iota"), const_iota(lw), 0)
        kernels.topk_loop(lw, x, idx_t, val_t, m, d, kk, mask, ninf, iota)
        return
    ivs = _iotas(lw, b, nch)
    for i in range(m):
        xs = _load_row_masked(lw, b, x, i, d, mask, ninf)
        for j in range(kk):
            idx, rmax = _argmax_row(lw, b, xs, ivs, None)
            b.store("i32", idx, idx_t.scroll, (i * kk + j) * 4)
            if val_t is not None:
                b.store("f32", rmax, val_t.scroll, (i * kk + j) * 4)
            if j + 1 < kk:
                vi = b.new("v")
                b.emit("DBCAST", vi, idx, type="i32")
                nxs = []
                for c, v in enumerate(xs):
                    ne = b.new("v")
                    b.emit("DCMP", ne, ivs[c], vi, type="i32", mod="ne")
                    v2 = b.new("v")
                    b.emit("DSEL", v2, ne, v, ninf, type="f32")
                    nxs.append(v2)
                xs = nxs


def _sample(lw: Lowerer, name_toks, call, pos, kw):
    """``tok = sample(x, seed[, k=40][, temp=1.0][, top_p=1.0])``: one token per row drawn from the
    top-k candidates (docs/phx.md "sample"; the numerics are :func:`kernels.sample_loop`'s)."""
    _nargs(lw, call, pos, 2)
    _kw(lw, kw, ("k", "temp", "top_p"), call)
    x = lw.tensor_arg(pos[0])
    _dtype_ok(lw, pos[0], x, ("f32",), "sample")
    m, d = _rows2(x)
    kk = lw.const_eval(kw["k"]) if "k" in kw else min(40, d)
    if not isinstance(kk, int) or not 1 <= kk <= d:
        lw.fail(kw.get("k", call), f"k must be an integer constant in 1..{d}")
    seed = _scalar_arg(lw, pos[1], "i64")
    if isinstance(seed, float):
        lw.fail(pos[1], "the seed is an integer (a constant or an i64 variable)")
    temp = _scalar_arg(lw, kw["temp"], "f32") if "temp" in kw else 1.0
    top_p = _scalar_arg(lw, kw["top_p"], "f32") if "top_p" in kw else 1.0
    b = lw.b
    if isinstance(temp, VReg):
        one = b.new("r")
        b.emit("DMOV", one, F(1.0), type="f32")
        invt = b.new("r", "invt", nospill=True)
        b.emit("DDIV", invt, one, temp, type="f32")
    else:
        if not float(temp) > 0.0:
            lw.fail(kw["temp"], "temp must be > 0 (for greedy decoding use argmax)")
        import numpy as np

        invt = float(np.float32(1.0) / np.float32(temp))
    if not isinstance(top_p, VReg) and not 0.0 < float(top_p) <= 1.0:
        lw.fail(kw["top_p"], "top_p must be in (0, 1]")
    if len(name_toks) > 1:
        lw.fail(name_toks[1], "sample returns one tensor (the token ids)")
    y = _result(lw, name_toks[0], "i32", (m,))
    mask = _tail_mask(lw, d % 16) if d % 16 else None
    ninf = neg_inf(lw)
    iota = b.load("i32", b.new("v", "iota"), const_iota(lw), 0)
    vals, idxs = lw.scratch("svals", m * kk * 4), lw.scratch("sidx", m * kk * 4)
    kernels.sample_loop(
        lw,
        x,
        y,
        Tensor(idxs, "i32", (m, kk), "tensor", idxs),
        Tensor(vals, "f32", (m, kk), "tensor", vals),
        m,
        d,
        kk,
        invt,
        float(top_p) if not isinstance(top_p, VReg) else top_p,
        seed,
        mask,
        ninf,
        iota,
    )


# ---------------------------------------------------------------------- embedding
def _embed(lw: Lowerer, name_toks, call, pos, kw):
    _nargs(lw, call, pos, 2)
    _kw(lw, kw, (), call)
    table, ids = lw.tensor_arg(pos[0]), lw.tensor_arg(pos[1])
    _dtype_ok(lw, pos[0], table, ("f32",), "embed (table)")
    _dtype_ok(lw, pos[1], ids, ("i32",), "embed (ids)")
    if len(table.shape) != 2 or len(ids.shape) != 1:
        lw.fail(call, "embed takes table[V, D] and ids[n]")
    _vocab, d = table.shape
    n = ids.shape[0]
    y = _result(lw, name_toks[0], "f32", (n, d))
    b = lw.b
    rowb = d * 4
    ch = _row_chunks(d)
    uniq = lw.scratch("uniq", 16 * rowb)
    meta = lw.scratch("dedup", 128)

    def group(cnt: int, ids_off, y_row) -> None:
        """ids [ids_off/4, +cnt) -> y rows from byte ``y_row`` (ints, or registers in the group loop)."""
        a = b.load("i32", b.new("v", "ids"), ids.scroll, ids_off, cnt * 4)
        u, inv, count = b.new("v", "u"), b.new("v", "inv"), b.new("r", "count")
        b.emit("SDEDUP", u, inv, count, a, type="i32")
        b.store("i32", u, meta, 0)
        b.store("i32", inv, meta, 64)
        # fetch each distinct row once: for j < count (dynamic): uniq[j] = table[u[j]]
        uo = b.new("r", "uoff", nospill=True)
        b.emit("DMOV", uo, imm(0))
        dst = b.new("r", "dst", nospill=True)
        b.emit("DMOV", dst, imm(0))

        def fetch(uo=uo, dst=dst):
            idx = b.new("r")
            b.load("i32", idx, meta, 0, rel=uo)
            src = b.new("r")
            b.emit("DMUL", src, idx, imm(rowb), type="i64")
            if len(ch) > 8:  # long rows: a copy loop (program size independent of D)
                kernels.copy_row_loop(b, table.scroll, src, uniq, dst, rowb)
                b.emit("DADD", uo, uo, imm(4), type="i64")
                b.emit("DADD", dst, dst, imm(rowb), type="i64")
                return
            for off, nb in ch:
                s_off = src
                d_off = dst
                if off:
                    s_off = b.new("r")
                    b.emit("DADD", s_off, src, imm(off), type="i64")
                    d_off = b.new("r")
                    b.emit("DADD", d_off, dst, imm(off), type="i64")
                v = b.new("v")
                b.load("f32", v, table.scroll, 0, nb, rel=s_off)
                b.store("f32", v, uniq, 0, nb, rel=d_off)
            b.emit("DADD", uo, uo, imm(4), type="i64")
            b.emit("DADD", dst, dst, imm(rowb), type="i64")

        b.counted_loop(count, fetch, "dedup")
        # expand: y[g + i] = uniq[inv[i]]
        for i in range(cnt):
            iv = b.new("r")
            b.load("i32", iv, meta, 64 + 4 * i)
            src = b.new("r")
            b.emit("DMUL", src, iv, imm(rowb), type="i64")
            if len(ch) > 8:
                if isinstance(y_row, int):
                    d0 = b.new("r", nospill=True)
                    b.emit("DMOV", d0, imm(y_row + i * rowb))
                else:
                    d0 = kernels.ptr(b, y_row, "yrow")
                    kernels.bump(b, d0, i * rowb)
                kernels.copy_row_loop(b, uniq, src, y.scroll, d0, rowb)
                continue
            for off, nb in ch:
                s_off = src
                if off:
                    s_off = b.new("r")
                    b.emit("DADD", s_off, src, imm(off), type="i64")
                v = b.new("v")
                b.load("f32", v, uniq, 0, nb, rel=s_off)
                if isinstance(y_row, int):
                    b.store("f32", v, y.scroll, y_row + i * rowb + off, nb)
                else:
                    b.store("f32", v, y.scroll, 0, nb, rel=kernels.at(b, y_row, i * rowb + off))

    full = n // 16
    if full > 2:  # groups of 16 ids in a loop: program size independent of the token count
        idp, yrow = kernels.ptr(b, 0, "idp"), kernels.ptr(b, 0, "yrow")

        def one_group() -> None:
            group(16, idp, yrow)
            kernels.bump(b, idp, 64)
            kernels.bump(b, yrow, 16 * rowb)

        b.counted_loop(full, one_group, "ids")
        if n % 16:
            group(n % 16, full * 64, full * 16 * rowb)
        return
    for g in range(0, n, 16):
        group(min(16, n - g), g * 4, g * rowb)


# ---------------------------------------------------------------------- collectives
def _collective(lw: Lowerer, name_toks, call, pos, kw, kind: str):
    _nargs(lw, call, pos, 1, 2 if kind == "broadcast" else 1)
    _kw(lw, kw, ("op",) if kind == "allreduce" else ("root",), call)
    x = lw.tensor_arg(pos[0])
    _dtype_ok(lw, pos[0], x, ("f32", "i32"), kind)
    red = "add"
    root = 0
    if kind == "allreduce" and "op" in kw:
        red = str(kw["op"].children[0]) if kw["op"].data == "name" else ""
        if red not in ("add", "min", "max"):
            lw.fail(kw["op"], "op is add, min or max")
    if kind == "broadcast":
        rnode = kw.get("root", pos[1] if len(pos) > 1 else None)
        if rnode is not None:
            root = lw.const_eval(rnode)
            if not isinstance(root, int) or not 0 <= root < lw.sentrons:
                lw.fail(
                    rnode,
                    f"root must be a sentron id 0..{lw.sentrons - 1} (compiled for --sentrons {lw.sentrons})",
                )
    y = _result(lw, name_toks[0], x.dtype, x.shape)
    b = lw.b

    def one(off, nb):
        v = b.load(x.dtype, b.new("v"), x.scroll, off, nb)
        r = b.new("v")
        if kind == "allreduce":
            b.emit("CREDUCE", r, v, imm(0), type=x.dtype, mod=red)
        else:
            b.emit("CCAST", r, v, imm(root), imm(0), type=x.dtype)
        b.store(x.dtype, r, y.scroll, off, nb)

    # one collective per 64-byte piece, in order: unrolled up to 64 pieces, a loop beyond (program size
    # independent of the tensor's), software pipelined at -O3 (the fetch of piece k+1 beside the
    # collective and store of piece k: the C stage overlaps the S stage)
    nfull, rem = divmod(x.numel * 4, 64)
    rows(lw, nfull, 4, lambda ix: one(ix.off(0, 64), 64), pipelinable=True, limit=ELEMWISE_UNROLL)
    if rem:
        one(nfull * 64, rem)
    if x.numel:
        lw.sync.synced()  # every sentron took part in a collective after its earlier accesses


PUBLISH_UNROLL_BYTES = 64 * 64  # larger outputs are published by a copy loop


def publish_outputs(lw: Lowerer) -> None:
    """Multi-sentron programs: sentron 0 copies each output's private working copy to its coordinate."""
    b = lw.b
    outs = [t for t in lw.tensors.values() if t.role == "output" and t.scroll != t.name]
    if not outs:
        return
    b.begin_region()
    b.emit("CBAR", imm(0))
    me = b.new("r")
    b.emit("DMOV", me, Reg("s", 0))
    flag = b.new("r")
    b.emit("DCMP", flag, me, imm(0), type="i64", mod="eq")
    end = b.label("publish")
    b.emit("DBRF", end)
    for t in outs:
        nbytes = b.scrolls[t.name].nbytes
        if nbytes > PUBLISH_UNROLL_BYTES or lw.force_loops:  # a copy loop: program size stays bounded
            z = b.new("r", nospill=True)
            b.emit("DMOV", z, imm(0))
            kernels.copy_row_loop(b, t.scroll, z, t.name, z, nbytes)
            continue
        for off, nb in chunks(nbytes, 1):
            v = b.load("i8", b.new("v"), t.scroll, off, nb)
            b.store("i8", v, t.name, off, nb)
    b.place(end)
    b.end_region()


def _matmul_nt(lw: Lowerer, name_toks, call, pos, kw):
    _nargs(lw, call, pos, 2)
    _kw(lw, kw, (), call)
    x, w = lw.tensor_arg(pos[0]), lw.tensor_arg(pos[1])
    _dtype_ok(lw, pos[0], x, ("f32",), "matmul_nt")
    _dtype_ok(lw, pos[1], w, ("f32",), "matmul_nt")
    if len(x.shape) != 2 or len(w.shape) != 2:
        lw.fail(call, "matmul_nt takes 2-D tensors: x[M, K] and w[N, K] (used transposed)")
    (m, k), (n, k2) = x.shape, w.shape
    if k != k2:
        lw.fail(pos[1], f"shape mismatch: matmul_nt needs w[N, {k}], found {list(w.shape)}")
    y0 = _result(lw, name_toks[0], "f32", (m, n), pitched_ok=True)
    _in_place(lw, y0, [x, w], lambda y: kernels.matmul_nt_loop(lw, x, w, y))


def _matmul_q8(lw: Lowerer, name_toks, call, pos, kw):
    """``y = matmul_q8(x, w8, ws)``: x f32[M, K] (or [K]) times int8 weights w8[N, K] (row n holds output
    n's weights, i.e. used transposed like ``matmul_nt``) with f32 scales ws[N] (one per row) or ws[1]
    (per tensor); numerics in docs/kernels.md and :func:`kernels.matmul_q8_loop`."""
    _nargs(lw, call, pos, 3)
    _kw(lw, kw, ("shard",), call)
    x, w8, ws = (lw.tensor_arg(a) for a in pos)
    shard = _shard_kw(
        lw, kw, ("cols",), "matmul_q8 shards by columns: shard=cols (each sentron computes a range of N)"
    )
    _dtype_ok(lw, pos[0], x, ("f32",), "matmul_q8")
    _dtype_ok(lw, pos[1], w8, ("i8",), "matmul_q8 (int8 weights)")
    _dtype_ok(lw, pos[2], ws, ("f32",), "matmul_q8 (weight scales)")
    m, k = _rows2(x)
    if len(w8.shape) != 2 or w8.shape[1] != k:
        lw.fail(
            pos[1], f"shape mismatch: matmul_q8 needs w8[N, {k}] (one row per output), found {list(w8.shape)}"
        )
    n = w8.shape[0]
    if k > MAX_Q8_K:
        lw.fail(pos[0], f"matmul_q8 sums at most {MAX_Q8_K} int8 products per output (int32), K is {k}")
    if ws.numel not in (1, n):
        lw.fail(
            pos[2], f"weight scales must be f32[{n}] (one per row of w8) or f32[1], found {list(ws.shape)}"
        )
    shape = (m, n) if len(x.shape) == 2 else (n,)
    y0 = _result(lw, name_toks[0], "f32", shape)
    per_row = ws.numel == n and n > 1
    if shard is None or lw.sentrons == 1:
        _in_place(lw, y0, [x, w8, ws], lambda y: kernels.matmul_q8_loop(lw, x, w8, ws, y, per_row))
        return
    ranges = _col_ranges((n + 15) // 16, lw.sentrons)
    rows = [(min(n, lo * 16), min(n, hi * 16)) for lo, hi in ranges]

    per = (ranges[0][1] - ranges[0][0]) * 16
    u = _uniform(n, per, lw.sentrons)

    def run(y: Tensor) -> None:
        _exchange(
            lw,
            y,
            m,
            n,
            [(lo * 4, hi * 4) for lo, hi in rows],
            lambda part, s: kernels.matmul_q8_loop(lw, x, w8, ws, part, per_row, *rows[s]),
            defer=y is y0,
            pin=(w8.scroll,),
            dyn=(
                u,
                lambda part, me: kernels.matmul_q8_loop(
                    lw, x, w8, ws, part, per_row, _sid_times(lw.b, per), per
                ),
            )
            if u
            else None,
        )

    _in_place(lw, y0, [x, w8, ws], run)


# |sum_k q w| <= 127 * 128 * K must stay below 2^31 for the int32 lane sums and DRED
MAX_Q8_K = 131_072


def _quant(lw: Lowerer, name_toks, call, pos, kw):
    _nargs(lw, call, pos, 1)
    _kw(lw, kw, ("norm", "eps", "shard"), call)
    shard = _shard_kw(lw, kw, ("rows",), "quant shards by rows: shard=rows (each sentron a range of rows)")
    x = lw.tensor_arg(pos[0])
    _dtype_ok(lw, pos[0], x, ("f32",), "quant")
    if len(name_toks) != 2:
        lw.fail(call, "quant returns (int8 values, scales): q, s = quant(x)")
    m, k = _rows2(x)
    g = None
    if "norm" in kw:
        g = lw.tensor_arg(kw["norm"])
        _dtype_ok(lw, kw["norm"], g, ("f32",), "quant norm (RMSNorm gain)")
        if g.shape != (k,):
            lw.fail(kw["norm"], f"shape mismatch: the RMSNorm gain must be [{k}], found {list(g.shape)}")
    elif "eps" in kw:
        lw.fail(kw["eps"], "eps needs norm=GAIN (quant(x, norm=g, eps=e) is quant(rmsnorm(x, g, eps=e)))")
    eps = float(lw.const_eval(kw["eps"])) if "eps" in kw else 1e-5
    q8 = _result(lw, name_toks[0], "i8", x.shape)
    qs = _result(lw, name_toks[1], "f32", (m,))
    ns = lw.sentrons
    if shard is None or ns == 1 or m < ns:  # one row on two sentrons (decode): every sentron does it
        _norm_quant_rows(lw, x, g, eps, q8, qs, m, k)
        return
    # shard=rows: sentron s normalises and quantises rows [r0, r1) into exchange scrolls of its own
    # (int8 rows and their scales), then, after a barrier, every sentron copies every owner's rows
    # (int8: a quarter of the bytes of the f32 rows); per row the same ops as alone: bit-identical
    per = (m + ns - 1) // ns
    ranges = [(min(m, s * per), min(m, (s + 1) * per)) for s in range(ns)]
    b = lw.b
    x = views.dense(lw, x)  # (its row ranges are views of dense rows)
    qstack, sstack = _exchange_stack(lw, "i8", (per, k)), _exchange_stack(lw, "f32", (per,))
    lw.sync.write(qstack)
    lw.sync.write(sstack)

    def parts_of(s) -> tuple[Tensor, Tensor]:
        qk, sk = _exchange_view(lw, qstack, s), _exchange_view(lw, sstack, s)
        return Tensor(qk, "i8", (per, k), "tensor", qk), Tensor(sk, "f32", (per,), "tensor", sk)

    def rows(r0, nrows: int, qpart: Tensor, spart: Tensor) -> None:
        xv = views.view_of(lw, x, r0, (nrows, k), f"{x.name}[rows]")
        saved = b.push_region()
        try:
            _norm_quant_rows(lw, xv, g, eps, qpart, spart, nrows, k)
        finally:
            b.pop_region(saved)

    def own(s: int) -> None:
        r0, r1 = ranges[s]
        if r1 > r0:
            rows(r0 * k * 4, r1 - r0, *parts_of(s))

    def own_dyn(me: VReg) -> None:
        qpart, spart = parts_of(me)
        rows(_sid_times(b, per * k * 4), per, qpart, spart)

    u = _uniform(m, per, ns)
    _per_sentron(lw, own, dyn=(u, own_dyn) if u else None)
    lw.sync.read(qstack)
    lw.sync.read(sstack)
    saved = b.push_region()
    try:
        if u:  # the uniform sentrons' rows: one copy loop over their scrolls
            j = kernels.ptr(b, 0, "rpart")
            dst = {q8.scroll: kernels.ptr(b, 0, "rdst"), qs.scroll: kernels.ptr(b, 0, "rdsts")}

            def part() -> None:
                for src, dt, row in zip(parts_of(j), (q8, qs), (k, 4), strict=True):
                    b.base(src.scroll)
                    src_off = kernels.ptr(b, 0, "rsrc")
                    kernels.copy_row_loop(b, src.scroll, src_off, dt.scroll, dst[dt.scroll], per * row)
                    kernels.bump(b, dst[dt.scroll], per * row)
                kernels.bump(b, j, 1)

            kernels.loop(b, u, part, "rpart")
        for s, (r0, r1) in enumerate(ranges[u:], u):
            if r1 == r0:
                continue
            for part_t, dst_t, row in zip(parts_of(s), (q8, qs), (k, 4), strict=True):
                src_off, dst_off = kernels.ptr(b, 0, "rsrc"), kernels.ptr(b, r0 * row, "rdst")
                kernels.copy_row_loop(b, part_t.scroll, src_off, dst_t.scroll, dst_off, (r1 - r0) * row)
    finally:
        b.pop_region(saved)


def _norm_quant_rows(lw: Lowerer, x: Tensor, g: Tensor | None, eps: float, q8, qs, m: int, k: int) -> None:
    """``q8, qs = quant(x)`` of m rows, with ``g``: of ``rmsnorm(x, g, eps)`` (computed into a private
    scratch first: the same ops as the two statements, so the same bits)."""
    if g is None:
        kernels.quant_loop(lw, x, q8, qs)  # a plain quant: the code it always had
        return
    key = lw.scratch("normed", m * k * 4)
    xn = Tensor(key, "f32", (m, k), "tensor", key)

    def norm() -> None:
        lw.b.base(g.scroll)  # a layer-indexed gain's coordinate: defined once, not in the row loop
        kernels.rmsnorm_loop(lw, x, g, xn, m, k, eps)

    kernels.in_region(lw.b, norm)
    kernels.in_region(lw.b, lambda: kernels.quant_loop(lw, xn, q8, qs))


def _rope(lw: Lowerer, name_toks, call, pos, kw):
    _nargs(lw, call, pos, 3)
    _kw(lw, kw, ("heads", "pairs"), call)
    pairs = "halves"
    if "pairs" in kw:
        node = kw["pairs"]
        pairs = str(node.children[0]) if node.data == "name" else ""
        if pairs not in ("halves", "adjacent"):
            lw.fail(node, "pairs is `halves` (x[i], x[i + hd/2]) or `adjacent` (x[2i], x[2i+1])")
    x, cs = lw.tensor_arg(pos[0]), lw.tensor_arg(pos[1])
    _dtype_ok(lw, pos[0], x, ("f32",), "rope")
    _dtype_ok(lw, pos[1], cs, ("f32",), "rope (cos/sin table)")
    heads = lw.const_eval(kw["heads"]) if "heads" in kw else 1
    rows, width = _rows2(x)
    if not isinstance(heads, int) or heads < 1 or width % heads:
        lw.fail(call, f"heads must be a positive integer dividing {width}")
    hd = width // heads
    if hd % 2 or len(cs.shape) != 2 or cs.shape[1] != hd:
        lw.fail(pos[1], f"rope needs an even head_dim and a table cs[T, {hd}] (row p: cos | sin)")
    p = _scalar_arg(lw, pos[2], "i64")
    y = _result(lw, name_toks[0], "f32", x.shape, pitched_ok=True)
    if pairs == "adjacent":
        kernels.rope_pairs_loop(lw, x, cs, y, heads, hd, p, rows)
    else:
        kernels.rope_loop(lw, x, cs, y, heads, hd, p, rows)


def _attend(lw: Lowerer, name_toks, call, pos, kw):
    _nargs(lw, call, pos, 4)
    _kw(lw, kw, ("heads", "kv_heads", "start", "shard"), call)
    shard = _shard_kw(
        lw, kw, ("heads",), "attend shards by heads: shard=heads (each sentron computes a range of heads)"
    )
    q, kc, vc = (lw.tensor_arg(a) for a in pos[:3])
    for node, t in zip(pos[:3], (q, kc, vc), strict=True):
        _dtype_ok(lw, node, t, ("f32",), "attend")
    heads = lw.const_eval(kw["heads"]) if "heads" in kw else 1
    kvh = lw.const_eval(kw["kv_heads"]) if "kv_heads" in kw else heads
    if not all(isinstance(v, int) and v >= 1 for v in (heads, kvh)) or heads % kvh:
        lw.fail(call, "heads and kv_heads are positive integers; kv_heads divides heads")
    rows, width = _rows2(q)
    hd = width // heads
    if width % heads or hd % 16:
        lw.fail(pos[0], f"attend needs a head_dim that is a multiple of 16, found {hd}")
    if len(kc.shape) != 2 or kc.shape != vc.shape or kc.shape[1] != kvh * hd:
        lw.fail(pos[1], f"the KV caches are [T, {kvh * hd}] (kv_heads * head_dim), found {list(kc.shape)}")
    if kernels.row_pitch(lw, kc, kvh * hd * 4) != kernels.row_pitch(lw, vc, kvh * hd * 4):
        kc, vc = views.dense(lw, kc), views.dense(lw, vc)  # (one row stride walks both caches)
    n = _scalar_arg(lw, pos[3], "i64")
    if isinstance(n, int) and not rows <= n <= kc.shape[0]:
        lw.fail(pos[3], f"attention length {n} is outside {rows}..{kc.shape[0]}")
    start = _scalar_arg(lw, kw["start"], "i64") if "start" in kw else 0
    o = _result(lw, name_toks[0], "f32", q.shape, pitched_ok=shard is None or lw.sentrons == 1)
    if shard is None or lw.sentrons == 1:
        kernels.attend_loop(lw, q, kc, vc, o, heads, kvh, hd, n, start, rows)
        return
    # shard=heads: a contiguous range of single heads per sentron (20 heads: 10/10 on two; whole KV
    # groups would split 12/8), each into its exchange scroll, then the all-gather of
    # tmatmul(shard=cols) (a head is hd columns); bit-identical to one sentron
    per = (heads + lw.sentrons - 1) // lw.sentrons
    ranges = [(min(heads, s * per), min(heads, (s + 1) * per)) for s in range(lw.sentrons)]

    def compute(part: Tensor, s: int) -> None:
        if ranges[s][1] > ranges[s][0]:
            kernels.attend_loop(lw, q, kc, vc, part, heads, kvh, hd, n, start, rows, ranges[s])

    spans = [(lo * hd * 4, hi * hd * 4) for lo, hi in ranges]
    # the runtime length and cache start go through memory: in registers both would stay live across
    # sentron 0's code (sentron 1's uses them after it), and attend's score loop then spilled its
    # temporaries (a 2B prefill: ~150k slow PPT translations more); each sentron reloads them, once
    b = lw.b
    runtime = [v for v in (n, start) if isinstance(v, VReg)]
    slot = lw.scratch("attargs", 8 * len(runtime)) if runtime else ""
    for i, v in enumerate(runtime):
        b.store("i64", v, slot, i * 8)

    n0, start0 = n, start

    def setup(s: int) -> None:
        nonlocal n, start
        again = {v: b.load("i64", b.new("r", "attarg"), slot, i * 8) for i, v in enumerate(runtime)}
        n, start = again.get(n0, n0), again.get(start0, start0)

    u = kernels.uniform_heads(heads, per, lw.sentrons, heads // kvh, kernels.attend_batch(heads, kvh))

    def compute_dyn(part: Tensor, me: VReg) -> None:
        # the per heads from me * per; every such sentron splits them alike (uniform_heads)
        kernels.attend_loop(lw, q, kc, vc, part, heads, kvh, hd, n, start, rows, (_sid_times(b, per), per))

    _exchange(
        lw,
        o,
        rows,
        width,
        spans,
        compute,
        defer=lw.tensors.get(o.name) is o,
        setup=setup,
        dyn=(u, compute_dyn) if u >= 2 else None,
    )


def write_row(lw: Lowerer, target_tok, idx, expr) -> None:
    """``t[i] = src``: copy the 1-row tensor ``src`` into row i (a runtime scalar) of the 2-D tensor t
    (a KV-cache append at ``pos``); rows outside t fault at run time (bounds-checked accesses)."""
    name = str(target_tok)
    t = lw.tensors.get(name)
    if t is None:
        lw.known_broken(name)
        lw.fail(target_tok, f"undefined tensor `{name}`", hint=lw.suggest(name, lw.tensors))
    if t.role in ("input", "weight"):
        lw.fail(target_tok, f"cannot assign to {t.role} tensor `{name}`")
    if len(t.shape) != 2 or t.dtype == "t2":
        lw.fail(target_tok, f"`{name}[i] = ...` writes a row of a 2-D tensor; `{name}` is {list(t.shape)}")
    src = lw.tensor_arg(expr)
    if src.dtype != t.dtype or src.numel % t.shape[1] or src.numel > t.numel:
        lw.fail(expr, f"rows of `{name}` are {t.dtype}[{t.shape[1]}], found {src.dtype}{list(src.shape)}")
    b = lw.b
    row = t.shape[1] * ELEM[t.dtype]
    nrows = src.numel // t.shape[1]
    i = _scalar_arg(lw, idx, "i64")
    if isinstance(i, int) and not 0 <= i <= t.shape[0] - nrows:
        lw.fail(idx, f"row {i} is outside 0..{t.shape[0] - nrows}")
    dst = b.new("r", "row", nospill=True)
    if isinstance(i, int):
        b.emit("DMOV", dst, imm(i * row))
    else:
        b.emit("DMUL", dst, i, imm(row), type="i64")
    z = b.new("r", nospill=True)
    b.emit("DMOV", z, imm(0))
    if t.role != "state" or lw.sentrons == 1:
        kernels.copy_row_loop(b, src.scroll, z, t.scroll, dst, row * nrows)
        return
    # a state tensor with several sentrons: every sentron holds the same rows; sentron 0 writes them (a
    # single writer per scroll between barriers), and the next read by anyone waits for a barrier (Sync)
    lw.sync.write(t.scroll)
    me = b.new("r", "sid")
    b.emit("DMOV", me, Reg("s", 0))
    flag = b.new("r")
    b.emit("DCMP", flag, me, imm(0), type="i64", mod="eq")
    skip = b.label("rowskip")
    b.emit("DBRF", skip)
    kernels.copy_row_loop(b, src.scroll, z, t.scroll, dst, row * nrows)
    b.place(skip)


ELEM = {"f32": 4, "i32": 4, "i8": 1}


def _unsupported(lw, name_toks, call, pos, kw):  # pragma: no cover
    raise Bad()


OPS = {
    "matmul": _matmul,
    "tmatmul": _tmatmul,
    "add": lambda lw, n, c, p, k: _binary(lw, n, c, p, k, "DADD"),
    "sub": lambda lw, n, c, p, k: _binary(lw, n, c, p, k, "DSUB"),
    "mul": lambda lw, n, c, p, k: _binary(lw, n, c, p, k, "DMUL"),
    "relu": lambda lw, n, c, p, k: _unary(lw, n, c, p, k, "relu"),
    "relu2": lambda lw, n, c, p, k: _unary(lw, n, c, p, k, "relu2"),
    "silu": lambda lw, n, c, p, k: _unary(lw, n, c, p, k, "silu"),
    "exp": lambda lw, n, c, p, k: _unary(lw, n, c, p, k, "exp"),
    "copy": lambda lw, n, c, p, k: _unary(lw, n, c, p, k, "copy"),
    "rmsnorm": _rmsnorm,
    "softmax": _softmax,
    "embed": _embed,
    "rope": _rope,
    "matmul_nt": _matmul_nt,
    "matmul_q8": _matmul_q8,
    "quant": _quant,
    "attend": _attend,
    "argmax": _argmax,
    "topk": _topk,
    "sample": _sample,
    "allreduce": lambda lw, n, c, p, k: _collective(lw, n, c, p, k, "allreduce"),
    "broadcast": lambda lw, n, c, p, k: _collective(lw, n, c, p, k, "broadcast"),
}


__all__ = ["lower_op", "pack_ternary_tiles", "exp_vec", "OPS", "math"]
