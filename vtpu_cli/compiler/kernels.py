"""Loop-based lowering of tensor ops whose unrolled code would grow with the tensor (model scale).

The unrolled lowering in :mod:`.tensors` emits straight-line code proportional to the number of
weights; above a size threshold each op is instead lowered here into ``DLOOP`` nests whose bodies are
fixed tiles, so the program size depends on the op mix, not on the hidden size. Addresses are byte
offsets in loop-carried *pointer registers*; a displacement inside a tile is written as a ``DADD``
that address folding (:mod:`.addrfold`) turns into the access's ``[p + r + imm]``. Tails (a partial 16-lane chunk, a remainder row block
or column group) get one static copy of the tile, so code size is bounded by a constant per op.

Numerics are identical to the unrolled lowering, element for element: the same ops are applied in
the same order (matmul accumulates over k sequentially, first term a ``DMUL``; row sums accumulate
chunk by chunk in index order, then one ``DRED``), so a program gives the same bits whichever way an
op is lowered (tested by forcing loop mode on small shapes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from vtpu_cli.binary.program import Imm
from vtpu_cli.compiler.ir import Builder, MemInfo, VMem, VReg, imm
from vtpu_cli.compiler.tune import cpu_vendor
from vtpu_cli.compiler.vecmath import const_iota, exp_vec, neg_inf
from vtpu_cli.core.numerics import f32_bits

if TYPE_CHECKING:
    from vtpu_cli.compiler.lower import Lowerer

# An op whose unrolled form would exceed this many IR ops is lowered to loops. Small ops stay
# unrolled (static offsets, exact alias analysis, no loop overhead).
LOOP_OPS = 1536


def F(x: float) -> Imm:
    return imm(f32_bits(x))


# ---------------------------------------------------------------------- pointer registers
def ptr(b: Builder, init, hint: str = "ptr") -> VReg:
    """A fresh loop-carried byte-offset register initialised to an int or a copy of a register."""
    r = b.new("r", hint, nospill=True)
    b.emit("DMOV", r, init if isinstance(init, VReg) else imm(int(init)))
    return r


def at(b: Builder, r: VReg, disp: int) -> VReg:
    """``r + disp`` in a register (``r`` itself when disp is 0)."""
    if disp == 0:
        return r
    t = b.new("r", "addr")
    b.emit("DADD", t, r, imm(disp), type="i64")
    return t


def bump(b: Builder, r: VReg, delta: int | VReg) -> None:
    """``r += delta`` (an int, or a register holding an offset known at run time)."""
    if isinstance(delta, VReg):
        b.emit("DADD", r, r, delta, type="i64")
    elif delta:
        b.emit("DADD", r, r, imm(delta), type="i64")


def row_pitch(lw: Lowerer, t, row_bytes: int) -> int:
    """Bytes from one row of ``t`` to the next: ``row_bytes`` for a dense tensor, the base tensor's row
    for a column slice read or written in place (``Scroll.pitch``)."""
    return lw.b.scrolls[t.scroll].pitch or row_bytes


def elem_stride(lw: Lowerer, t) -> int:
    """Bytes from one f32 element of a row of ``t`` to the next: 4, or the base's row for a transposed
    view read in place (``Scroll.estride``)."""
    return lw.b.scrolls[t.scroll].estride or 4


def scaled(b: Builder, v: int | VReg, k: int) -> int | VReg:
    """``v * k``: an int, or a fresh register when ``v`` is one (an offset known at run time)."""
    if not isinstance(v, VReg):
        return v * k
    r = b.new("r", "off")
    b.emit("DMUL", r, v, imm(k), type="i64")
    return r


def loop(b: Builder, count, body: Callable[[], None], hint: str = "k") -> None:
    """``body()`` ``count`` times: inline for 1, a DLOOP for more; a register count may be 0 at run
    time (guarded by a branch around the loop)."""
    if isinstance(count, int):
        if count <= 0:
            return
        if count == 1:
            body()
            return
        b.counted_loop(count, body, hint)
        return
    cnt = b.new("r", "count", nospill=True)
    b.emit("DMOV", cnt, count)
    flag = b.new("r")
    skip = b.label("skip")
    b.emit("DCMP", flag, cnt, imm(0), type="i64", mod="gt")
    b.emit("DBRF", skip)
    b.counted_loop(cnt, body, hint)
    b.place(skip)


def ld(b: Builder, t: str, scroll: str, off: VReg, nb: int = 64, cls: str = "v") -> VReg:
    dst = b.new(cls)
    return b.load(t, dst, scroll, 0, nb if cls == "v" else None, rel=off)


def st(b: Builder, t: str, v: VReg, scroll: str, off: VReg, nb: int = 64) -> None:
    b.store(t, v, scroll, 0, nb if v.cls == "v" else None, rel=off)


def bcast_ld(b: Builder, t: str, scroll: str, off: VReg) -> VReg:
    """One element at a register offset broadcast to every lane (stride-0 gather)."""
    from vtpu_cli.isa.table import type_size

    dst = b.new("v", "x")
    p = b.base(scroll)
    b.emit("SGATHER", dst, VMem(p, off, 1, 0), type=t, mem=MemInfo(scroll, False, 0, type_size(t), off))
    return dst


def chunk_loop(b: Builder, n: int, esize: int, off0: VReg, each: Callable[[VReg, int, bool], None]) -> None:
    """Visit the 64-byte chunks of a run of ``n`` elements starting at byte offset ``off0``, in order:
    ``each(offset_register, nbytes, first)``; full chunks in a loop (the first one peeled, so a
    reduction can start with a plain op), then the partial tail chunk."""
    total = n * esize
    nfull, tail = divmod(total, 64)
    p = ptr(b, off0)
    if nfull:
        each(p, 64, True)
        bump(b, p, 64)

        def body():
            each(p, 64, False)
            bump(b, p, 64)

        loop(b, nfull - 1, body, "chunk")
    if tail:
        each(p, tail, nfull == 0)


def rows_loop(b: Builder, m: int, ptrs: list[tuple[VReg, int]], body: Callable[[], None]) -> None:
    """``body()`` for each of ``m`` rows; after each row every (pointer, stride) advances."""

    def one():
        body()
        for r, s in ptrs:
            bump(b, r, s)

    loop(b, m, one, "row")


def full_tiles(n: int, t_lo: int, t_hi: int) -> int:
    """How many of the 16-column tiles t_lo..t_hi of an n-column matrix are full (64 bytes of f32):
    those before tile n // 16 (the bytes shrink with the tile index). Counted, not listed: a 128k-column
    LM head has 8,016 tiles."""
    return max(0, min(t_hi, n // 16) - t_lo)


def tile_bytes(n: int, t_lo: int, t_hi: int) -> list[int]:
    """Bytes of each 16-column f32 tile t_lo..t_hi of an n-column matrix (64, the last one less)."""
    return [min(64, (n - j * 16) * 4) for j in range(t_lo, t_hi)]


# ---------------------------------------------------------------------- f32 matmul
MM_ROWS, MM_TILES, MM_TILES_1 = 4, 4, 8  # f32 matmul register tile: rows x 16-column tiles (M = 1: 1 x 8)
MM_PACK_STRIDE = (
    4096  # pack the w strip when its row stride (bytes) is at least this (1 KiB: measured slower)
)


def matmul_loop(
    lw: Lowerer, x, w, y, t_lo: int | VReg, t_hi: int, k_lo: int | VReg = 0, k_hi: int | None = None
) -> None:
    """y[:, tiles t_lo..t_hi) = x[:, k_lo:k_hi] @ w[k_lo:k_hi, tiles] with an rr x cc register tile:
    loops over column groups, row blocks inside (the group's strip of w, K x cc*16 floats, stays in
    cache while every row block reads it) and k (k = k_lo peeled: its product is a DMUL, then DFMA in k
    order). A k range (``shard=k``: one sentron's partial product) must not be empty. ``t_lo`` (``k_lo``)
    may be an i64 register, a first tile (row of w) known at run time: ``t_hi`` (``k_hi``) is then the
    count, and the tiles must be full 16-column tiles. Each output is computed exactly as with static
    bounds."""
    b = lw.b
    m, k = x.shape
    n = w.shape[1]
    xs, ws, ys = row_pitch(lw, x, k * 4), row_pitch(lw, w, n * 4), row_pitch(lw, y, n * 4)  # row strides
    xe = elem_stride(lw, x)  # x's k step
    if isinstance(k_lo, VReg):
        kn = k_hi
    else:
        k_hi = k if k_hi is None else k_hi
        kn = k_hi - k_lo
    assert kn >= 1, "matmul_loop: empty k range"
    dyn_t = isinstance(t_lo, VReg)
    nfull = t_hi if dyn_t else full_tiles(n, t_lo, t_hi)
    if m == 1 and nfull > MM_TILES_1:
        c0 = scaled(b, t_lo, 64)
        width = nfull * 64 if dyn_t else min(t_hi * 16, n) * 4 - c0
        gemv_rows_loop(lw, x, w, y, c0, width, k_lo, kn, xe)
        return
    rr = min(MM_ROWS, m)
    cc = max(1, min(MM_TILES_1 if rr == 1 else MM_TILES, nfull))
    groups = nfull // cc
    rem = [64] * (nfull - groups * cc) if dyn_t else tile_bytes(n, t_lo + groups * cc, t_hi)
    col = ptr(b, scaled(b, t_lo, 64), "col")
    # Pack the group's strip of w (K rows of cc*64 bytes, n*4 bytes apart) contiguously when several row
    # blocks will read it: a 4 KiB row stride maps every k onto the same few cache sets and pages.
    pack = lw.scratch("mmpack", kn * cc * 64) if m >= 2 * rr and groups and ws >= MM_PACK_STRIDE else None
    koff = scaled(b, k_lo, ws)
    xoff = scaled(b, k_lo, xe)
    strip = {"scroll": w.scroll, "stride": ws, "base": col, "koff": koff}

    def kblock(nrows: int, tnb: list[int], xrow: VReg, yrow: VReg) -> None:
        xp, wp = ptr(b, xrow, "xp"), ptr(b, strip["base"], "wp")
        bump(b, xp, xoff)
        bump(b, wp, strip["koff"])
        acc = [[b.new("v", "acc") for _ in tnb] for _ in range(nrows)]

        def step(first: bool) -> None:
            wv = [ld(b, "f32", strip["scroll"], at(b, wp, c * 64), nb) for c, nb in enumerate(tnb)]
            for r in range(nrows):
                xb = bcast_ld(b, "f32", x.scroll, at(b, xp, r * xs))
                for c in range(len(tnb)):
                    if first:
                        b.emit("DMUL", acc[r][c], xb, wv[c], type="f32")
                    else:
                        b.emit("DFMA", acc[r][c], xb, wv[c], acc[r][c], type="f32")
            bump(b, xp, xe)
            bump(b, wp, strip["stride"])

        step(True)
        loop(b, kn - 1, lambda: step(False))
        yb = b.new("r", "yb")
        b.emit("DADD", yb, yrow, col, type="i64")
        for r in range(nrows):
            for c, nb in enumerate(tnb):
                st(b, "f32", acc[r][c], y.scroll, at(b, yb, r * ys + c * 64), nb)

    def section(tnb: list[int]) -> None:
        xrow, yrow = ptr(b, 0, "xrow"), ptr(b, 0, "yrow")
        rows_loop(b, m // rr, [(xrow, rr * xs), (yrow, rr * ys)], lambda: kblock(rr, tnb, xrow, yrow))
        if m % rr:
            kblock(m % rr, tnb, xrow, yrow)

    def grp() -> None:
        if pack is not None:
            sp, dp = ptr(b, col, "sp"), ptr(b, 0, "dp")
            bump(b, sp, koff)

            def copy_k() -> None:
                for c in range(cc):
                    v = ld(b, "f32", w.scroll, at(b, sp, c * 64))
                    st(b, "f32", v, pack, at(b, dp, c * 64))
                bump(b, sp, ws)
                bump(b, dp, cc * 64)

            loop(b, kn, copy_k, "pack")
            strip.update(scroll=pack, stride=cc * 64, base=zero, koff=0)
        section([64] * cc)
        strip.update(scroll=w.scroll, stride=ws, base=col, koff=koff)
        bump(b, col, cc * 64)

    zero = ptr(b, 0, "zero") if pack is not None else None
    loop(b, groups, grp, "cols")
    if rem:
        section(rem)


GEMV_UNROLL, GEMV_ROWS = 2, 4  # gemv_rows_loop: 64-byte chunks per trip, rows of w per pass over y


def gemv_rows_loop(
    lw: Lowerer, x, w, y, c0: int | VReg, width: int, k_lo: int | VReg, kn: int, xe: int = 4
) -> None:
    """y[0, bytes c0..c0+width) = x[0, k_lo:k_lo+kn] @ w[same rows, same columns] for M = 1 (``c0`` and
    ``k_lo`` ints or registers: offsets known at run time), streaming w in
    memory order: each pass over the output row takes ``GEMV_ROWS`` rows of w (the first pass starts
    with a plain product, later ones load y), chaining one DFMA per row in k order, then stores y. The
    register-tile form reads a 512-byte strip of every row, rows a page apart at N >= 1024, and ran at
    ~0.4 of the memory bandwidth; here the weights stream and the output row stays in cache. Each
    element's k order, its first plain product and its one rounding per step are the register-tile
    form's, so the bits are the same."""
    b = lw.b
    n = w.shape[1]
    ws = row_pitch(lw, w, n * 4)  # bytes between rows of w (a column slice of a wider matrix: more)
    nfull, tail = divmod(width, 64)
    trips, left = divmod(nfull, GEMV_UNROLL)
    xp = ptr(b, scaled(b, k_lo, xe), "xp")  # x's elements xe bytes apart (4, or a transposed view's)
    if isinstance(k_lo, VReg) or isinstance(c0, VReg):
        wrow = ptr(b, scaled(b, k_lo, ws), "wrow")
        bump(b, wrow, c0)
    else:
        wrow = ptr(b, k_lo * ws + c0, "wrow")

    def rows(nr: int, first: bool) -> None:
        xb = [bcast_ld(b, "f32", x.scroll, at(b, xp, r * xe)) for r in range(nr)]
        wq, yq = ptr(b, wrow, "wq"), ptr(b, c0, "yq")

        def chunk(disp: int, nb: int) -> None:
            ya = at(b, yq, disp)
            acc = None if first else ld(b, "f32", y.scroll, ya, nb)
            for r in range(nr):
                wv = ld(b, "f32", w.scroll, at(b, wq, r * ws + disp), nb)
                a = b.new("v", "acc")
                if acc is None:
                    b.emit("DMUL", a, xb[r], wv, type="f32")
                else:
                    b.emit("DFMA", a, xb[r], wv, acc, type="f32")
                acc = a
            st(b, "f32", acc, y.scroll, ya, nb)

        def trip() -> None:
            for u in range(GEMV_UNROLL):
                chunk(u * 64, 64)
            bump(b, wq, GEMV_UNROLL * 64)
            bump(b, yq, GEMV_UNROLL * 64)

        loop(b, trips, trip, "chunk")
        for u in range(left):
            chunk(u * 64, 64)
        if tail:
            chunk(left * 64, tail)
        bump(b, xp, nr * xe)
        bump(b, wrow, nr * ws)

    first = min(kn, GEMV_ROWS)
    rows(first, True)
    passes, rest = divmod(kn - first, GEMV_ROWS)
    loop(b, passes, lambda: rows(GEMV_ROWS, False))
    if rest:
        rows(rest, False)


# ---------------------------------------------------------------------- ternary matmul
def quantise_row(
    lw: Lowerer, x, xrow: VReg, k: int, qscroll: str, qrow: VReg, tail_bytes: int, one: VReg
) -> VReg:
    """One row of per-token int8 absmax quantisation: am = max(max |x|, 1e-30), q = DCVT.i8(x * (127 /
    am)) (round to nearest even) stored at ``qscroll[qrow..]`` (the last group stores ``tail_bytes``);
    returns the register holding am / 127 (the dequantisation scale)."""
    b = lw.b
    mx = b.new("v", "amax")

    def amax(p, nb, first):
        v = ld(b, "f32", x.scroll, p, nb)
        if first:
            b.emit("DAND", mx, v, imm(0x7FFFFFFF), type="i32")
        else:
            a = b.new("v")
            b.emit("DAND", a, v, imm(0x7FFFFFFF), type="i32")
            b.emit("DMAX", mx, mx, a, type="f32")

    chunk_loop(b, k, 4, xrow, amax)
    am = b.new("r")
    b.emit("DRED", am, mx, type="f32", mod="max")
    b.emit("DMAX", am, am, F(1e-30), type="f32")
    inv = b.new("r")
    b.emit("DDIV", inv, one, am, type="f32")
    s127 = b.new("r")
    b.emit("DDIV", s127, am, F(127.0), type="f32")
    vinv = b.new("v")
    b.emit("DBCAST", vinv, inv, type="f32")
    # four 16-lane parts per 64-byte i8 vector
    xp, qp = ptr(b, xrow, "xp"), ptr(b, qrow, "qp")

    def quant(parts: list[int]) -> VReg:
        q = b.new("v", "q")
        if len(parts) < 4:
            b.emit("DBCAST", q, imm(0), type="i8")
        for part, nb in enumerate(parts):
            v = ld(b, "f32", x.scroll, at(b, xp, part * 64), nb)
            sv = b.new("v")
            b.emit("DMUL", sv, v, vinv, type="f32")
            b.emit("DCVT", q, sv, imm(part), type="i8", type2="f32")
        return q

    def qgroup():
        q = quant([64] * 4)
        st(b, "i8", q, qscroll, qp, 64)
        bump(b, xp, 256)
        bump(b, qp, 64)

    loop(b, k // 64, qgroup, "quant")
    if k % 64:
        left = (k % 64) * 4
        parts = [min(64, left - o) for o in range(0, left, 64)]
        q = quant(parts)
        st(b, "i8", q, qscroll, qp, tail_bytes)
    return s127


def quant_loop(lw: Lowerer, x, q8, qs) -> None:
    """``q8, qs = quant(x)``: every row quantised (see :func:`quantise_row`), qs[i] = am_i / 127."""
    b = lw.b
    m, k = x.shape if len(x.shape) == 2 else (1, x.shape[0])
    one = b.new("r", "c127")
    b.emit("DMOV", one, F(127.0), type="f32")
    xrow, qrow, srow = ptr(b, 0, "xrow"), ptr(b, 0, "qrow"), ptr(b, 0, "srow")

    def row():
        s127 = quantise_row(lw, x, xrow, k, q8.scroll, qrow, k - (k // 64) * 64, one)
        st(b, "f32", s127, qs.scroll, srow)

    rows_loop(b, m, [(xrow, row_pitch(lw, x, k * 4)), (qrow, k), (srow, 4)], row)


# Register tiles of the ternary matmul: rows x 16-column tiles per DTDOT block. Rows of a block share
# each weight vector, so the engine decodes a weight plane once for all of them (the JIT's DTDOT
# shift/mask is CSE'd within a block): M = 1 takes 8 tiles (4 on AMD), a prefill 4 rows x 4 tiles.
# M = 1 reads each tile of a block from its own stream (TM_STREAMS_1): on AMD Zen 4 8 concurrent weight
# streams (with the JIT's prefetches 512 bytes ahead in each) ran the 2B GEMVs at 19-23 GB/s, 4 streams
# at 24-30 (best of 21 runs, 12 x 2560x6912, 53 MB, alternated; a native read 22-31); Intel keeps 8.
AMD = cpu_vendor() == "amd"
TM_TILES_1 = 4 if AMD else 8
TM_ROWS, TM_TILES = 4, 4
TM_KUNROLL_1 = 1  # M = 1: 16-row K steps per trip of the K loop
TM_STREAMS_1 = True  # M = 1: the tiles of a block far apart, one stream each (see tmatmul_loop's streams)


def tm_tile(m: int) -> tuple[int, int]:
    """(rows, column tiles) of the tmatmul register tile for M rows."""
    return (1, TM_TILES_1) if m == 1 else (min(TM_ROWS, m), TM_TILES)


def row_sums_loop(lw: Lowerer, qbuf: str, m: int, k16: int, sums: str) -> None:
    """sums.i32[i] = sum of the K16 int8 values of row i of ``qbuf`` (``DTDOT`` with code 1 in every
    byte: 16 lane sums per 64 bytes, then ``DRED.add``): the code offset tmatmul takes once per row."""
    b = lw.b
    ones = b.new("v", "ones")
    b.emit("DBCAST", ones, imm(1), type="i8")
    qrow, srow = ptr(b, 0, "qrow"), ptr(b, 0, "srow")

    def row() -> None:
        acc = b.new("v", "qsum")

        def each(p: VReg, nb: int, first: bool) -> None:
            if first:
                b.emit("DBCAST", acc, imm(0), type="i32")
            b.emit("DTDOT", acc, ld(b, "i8", qbuf, p, nb), ones, imm(0))

        chunk_loop(b, k16, 1, qrow, each)
        tot = b.new("r")
        b.emit("DRED", tot, acc, type="i32", mod="add")
        st(b, "i32", tot, sums, srow)

    rows_loop(b, m, [(qrow, k16), (srow, 4)], row)


def tmatmul_loop(lw: Lowerer, x, w, y, t_lo: int, t_hi: int, wscale, pre=None) -> None:
    """All rows quantised first (absmax loop over chunks, int8 in 64-element groups) and each row's sum
    of q taken, then the ternary dot over row blocks x column groups x k groups of 16 (loops); see
    docs/phx.md for numerics. ``wscale`` is a python float (immediate) or an f32 scalar register.
    ``pre = (q8, qs)``: x is already quantised (``quant``; K a multiple of 16), so the quantisation is
    skipped.

    The weights are in the interleaved t2 layout and ``DTDOT`` adds q * code with code = w + 1, so each
    output tile ends with one ``DSUB`` of the row's sum of q: sum q * (w + 1) - sum q = sum q * w exactly
    (int32 wraps the same either way).

    The two phases are also callable apart (:func:`tmatmul_prep` once, then :func:`tmatmul_tiles` per
    range of tiles, e.g. a tile group claimed at run time): each tile is computed exactly as here."""
    bufs = tmatmul_prep(lw, x, pre)
    tmatmul_tiles(lw, x, w, y, bufs, t_lo, t_hi, wscale)


def tmatmul_prep(lw: Lowerer, x, pre=None) -> tuple[str, str, str]:
    """Phase 1 of :func:`tmatmul_loop`: every row of x quantised (unless ``pre = (q8, qs)``) and each
    row's sum of q; returns the scroll keys (int8 rows of K16 bytes, f32 row scales, i32 row sums)."""
    b = lw.b
    m, k = x.shape
    k16 = (k + 15) // 16 * 16
    if pre is None:
        qbuf, sbuf = lw.scratch("q", m * k16), lw.scratch("qs", m * 4)

        def quantise() -> None:
            one = b.new("r", "c127")
            b.emit("DMOV", one, F(127.0), type="f32")
            xrow, qrow, srow = ptr(b, 0, "xrow"), ptr(b, 0, "qrow"), ptr(b, 0, "srow")

            def qrow_():
                s127 = quantise_row(lw, x, xrow, k, qbuf, qrow, k16 - (k // 64) * 64, one)
                st(b, "f32", s127, sbuf, srow)

            rows_loop(b, m, [(xrow, row_pitch(lw, x, k * 4)), (qrow, k16), (srow, 4)], qrow_)

        in_region(b, quantise)
    else:
        qbuf, sbuf = pre[0].scroll, pre[1].scroll
    sums = lw.scratch("qsum", m * 4)
    in_region(b, lambda: row_sums_loop(lw, qbuf, m, k16, sums))
    return qbuf, sbuf, sums


def tmatmul_tiles(
    lw: Lowerer, x, w, y, bufs: tuple[str, str, str], t_lo, t_hi: int | None, wscale, count: int = 0
) -> None:
    """Phase 2 of :func:`tmatmul_loop`: y[:, tiles t_lo..t_hi) from the phase-1 buffers ``bufs``.
    ``t_lo`` may be an i64 register (a tile index known at run time; ``t_hi`` None): then the ``count``
    tiles from it, which must all be full 16-column tiles -- the caller keeps a partial last tile to a
    static range. Each tile is computed exactly as in a static range."""
    b = lw.b
    m, k = x.shape
    n = w.shape[1]
    k16 = (k + 15) // 16 * 16
    qbuf, sbuf, sums = bufs
    dynamic = isinstance(t_lo, VReg)
    if dynamic:
        if count < 1 or count > n // 16:  # pragma: no cover - the caller's split
            raise ValueError(f"a runtime tile range needs 1..{n // 16} full tiles, got {count}")
        nfull = count
    else:
        nfull = full_tiles(n, t_lo, t_hi)
    rr, cc = tm_tile(m)
    cc = max(1, min(cc, nfull))
    groups = nfull // cc
    ypitch = row_pitch(lw, y, n * 4)  # y's row stride (a placed part of a column concat: its result's)
    rem = [64] * (nfull - groups * cc) if dynamic else tile_bytes(n, t_lo + groups * cc, t_hi)
    ws = wscale if isinstance(wscale, VReg) else F(wscale)
    # column groups outside, row blocks inside: the group's weights (cc tiles x K/4 bytes) stay in cache
    # while every row block reads them
    if dynamic:
        wcol, ycol = b.new("r", "wcol", nospill=True), b.new("r", "ycol", nospill=True)
        b.emit("DMUL", wcol, t_lo, imm(k16 * 4), type="i64")
        b.emit("DMUL", ycol, t_lo, imm(64), type="i64")
    else:
        wcol, ycol = ptr(b, t_lo * k16 * 4, "wcol"), ptr(b, t_lo * 64, "ycol")

    def block(nrows: int, tnb: list[int], qblk: VReg, yblk: VReg, sblk: VReg, gap: int = 1) -> None:
        """Tiles wcol, wcol + gap, ... (``gap`` tiles apart) for ``nrows`` rows."""
        wp, qq = ptr(b, wcol, "wp"), ptr(b, qblk, "qq")
        acc = [[b.new("v", "acc") for _ in tnb] for _ in range(nrows)]
        for row_acc in acc:
            for a0 in row_acc:
                b.emit("DBCAST", a0, imm(0), type="i32")

        def kstep():
            wv = [ld(b, "i8", w.scroll, at(b, wp, c * gap * k16 * 4)) for c in range(len(tnb))]
            for q in range(4):
                for r in range(nrows):
                    xb = bcast_ld(b, "i32", qbuf, at(b, qq, r * k16 + q * 4))
                    for c in range(len(tnb)):
                        b.emit("DTDOT", acc[r][c], xb, wv[c], imm(q))
            bump(b, wp, 64)
            bump(b, qq, 16)

        u = TM_KUNROLL_1 if m == 1 else 1

        def ksteps() -> None:
            for _ in range(u):
                kstep()

        loop(b, k16 // 16 // u, ksteps, "kq")
        for _ in range(k16 // 16 % u):
            kstep()
        yp = b.new("r", "yp")
        b.emit("DADD", yp, yblk, ycol, type="i64")
        for r in range(nrows):
            s127 = ld(b, "f32", sbuf, at(b, sblk, r * 4), cls="r")
            sc = b.new("r")
            b.emit("DMUL", sc, s127, ws, type="f32")
            vsc = b.new("v")
            b.emit("DBCAST", vsc, sc, type="f32")
            vsum = b.new("v")
            b.emit("DBCAST", vsum, ld(b, "i32", sums, at(b, sblk, r * 4), cls="r"), type="i32")
            for c, nb in enumerate(tnb):
                a1 = b.new("v")
                b.emit("DSUB", a1, acc[r][c], vsum, type="i32")
                f = b.new("v")
                b.emit("DCVT", f, a1, None, type="f32", type2="i32")
                o = b.new("v")
                b.emit("DMUL", o, f, vsc, type="f32")
                st(b, "f32", o, y.scroll, at(b, yp, r * ypitch + c * gap * 64), nb)

    def cgroup(tnb: list[int]) -> None:
        qblk, yblk, sblk = ptr(b, 0, "qblk"), ptr(b, 0, "yblk"), ptr(b, 0, "sblk")
        rows_loop(
            b,
            m // rr,
            [(qblk, rr * k16), (yblk, rr * ypitch), (sblk, rr * 4)],
            lambda: block(rr, tnb, qblk, yblk, sblk),
        )
        if m % rr:
            block(m % rr, tnb, qblk, yblk, sblk)
        bump(b, wcol, len(tnb) * k16 * 4)
        bump(b, ycol, len(tnb) * 64)

    def streams() -> None:
        # M = 1: cc streams of ``groups`` consecutive tiles each; trip i takes tile i of every stream, so
        # each stream reads its weights front to back (a group of adjacent tiles starts cc streams cold,
        # and each tile's last prefetches land on the next tile, which another stream already read)
        zero = ptr(b, 0, "q0")

        def one() -> None:
            block(1, [64] * cc, zero, zero, zero, groups)
            bump(b, wcol, k16 * 4)
            bump(b, ycol, 64)

        loop(b, groups, one, "cols")
        bump(b, wcol, (cc - 1) * groups * k16 * 4)
        bump(b, ycol, (cc - 1) * groups * 64)

    def main() -> None:
        b.base(w.scroll)  # a layer-indexed weight's coordinate: defined here, not in the K loop
        if m == 1 and TM_STREAMS_1 and groups > 1:
            streams()
        else:
            loop(b, groups, lambda: cgroup([64] * cc), "cols")
        if rem:
            cgroup(rem)

    in_region(b, main)


def in_region(b: Builder, body: Callable[[], None]) -> None:
    """``body`` in a coordinate-register region of its own: its scrolls' coordinates are defined at its
    start. A statement's phases (quantise, row sums, the dot loop) each address at most five scrolls,
    but together more than the five a region hoists: the rest would be re-defined at every use, inside
    the loops (a slow PPT translation per trip)."""
    saved = b.push_region()
    try:
        body()
    finally:
        b.pop_region(saved)


# ---------------------------------------------------------------------- all-gather of column tiles
def gather_cols_loop(
    lw: Lowerer, parts: list[str], dst: str, m: int, n: int, spans: list[tuple[int, int]]
) -> None:
    """dst[:, c0/4 .. c1/4) = part[:, same] for each (part, (c0, c1)) in bytes of a row of an [m, n] f32
    tensor: the columns of exchange scrolls copied into a sentron's result, or a sentron's own columns
    into its exchange scroll (plain loads and stores: exact, no C-pipe payload)."""
    b = lw.b
    row = ptr(b, 0, "grow")

    def one() -> None:
        for key, (c0, c1) in zip(parts, spans, strict=True):
            if c1 > c0:
                off = ptr(b, row, "gcol")
                bump(b, off, c0)
                copy_row_loop(b, key, off, dst, off, c1 - c0)
        bump(b, row, n * 4)

    loop(b, m, one, "grow")


def gather_uniform_loop(lw: Lowerer, view_of, dst: str, m: int, n: int, u: int, width: int) -> None:
    """dst[:, j * width/4 .. (j + 1) * width/4) = part j's same columns for j = 0 .. u-1 (bytes of a row
    of an [m, n] f32 tensor): :func:`gather_cols_loop` for the sentrons that own equal column ranges,
    as one loop over their exchange scrolls (``view_of(j_register)``: part j's scroll, whose coordinate
    is computed from j), so the code does not grow with the sentron count."""
    b = lw.b
    j, col = ptr(b, 0, "gpart"), ptr(b, 0, "gcol")

    def part() -> None:
        key = view_of(j)
        b.base(key)  # its coordinate, once per part (not in the row loop)
        row = ptr(b, col, "grow")

        def one() -> None:
            copy_row_loop(b, key, row, dst, row, width)
            bump(b, row, n * 4)

        loop(b, m, one, "grow")
        bump(b, j, 1)
        bump(b, col, width)

    loop(b, u, part, "gpart")


def sum_parts_loop(lw: Lowerer, parts: list[str], dst: str, m: int, n: int) -> None:
    """dst = ((part0 + part1) + part2) ... elementwise over an [m, n] f32 tensor: the partial products of
    ``shard=k`` summed in ascending sentron order, one f32 rounding per step (CREDUCE's order, so the
    result is bit-identical to the unrolled form's all-reduce)."""
    b = lw.b
    row = ptr(b, 0, "srow")

    def one() -> None:
        def each(p: VReg, nb: int, first: bool) -> None:
            acc = ld(b, "f32", parts[0], p, nb)
            for key in parts[1:]:
                v = ld(b, "f32", key, p, nb)
                s = b.new("v", "psum")
                b.emit("DADD", s, acc, v, type="f32")
                acc = s
            st(b, "f32", acc, dst, p, nb)

        chunk_loop(b, n, 4, row, each)
        bump(b, row, n * 4)

    loop(b, m, one, "srow")


# ---------------------------------------------------------------------- row ops
def row_delta(b: Builder, xrow: VReg, yrow: VReg | None) -> VReg | None:
    """``yrow - xrow`` in a register (None when y's rows are x's: one pointer serves both)."""
    if yrow is None:
        return None
    dy = b.new("r", "dy")
    b.emit("DSUB", dy, yrow, xrow, type="i64")
    return dy


def y_at(b: Builder, p: VReg, dy: VReg | None) -> VReg:
    """The y address of the chunk at x offset ``p``."""
    if dy is None:
        return p
    t = b.new("r", "addr")
    b.emit("DADD", t, p, dy, type="i64")
    return t


def _row_ptrs(lw: Lowerer, x, y, d: int) -> tuple[VReg, VReg | None, list]:
    """Row pointers of a row op reading x and writing y ([m, d] f32): x's, y's when its rows are
    another distance apart (a column slice read or written in place), and rows_loop's list."""
    b = lw.b
    xs, ys = row_pitch(lw, x, d * 4), row_pitch(lw, y, d * 4)
    xrow = ptr(b, 0, "xrow")
    if xs == ys:
        return xrow, None, [(xrow, xs)]
    yrow = ptr(b, 0, "yrow")
    return xrow, yrow, [(xrow, xs), (yrow, ys)]


def rmsnorm_loop(lw: Lowerer, x, g, y, m: int, d: int, eps: float) -> None:
    """Two passes per row (sum of squares, then scale): nothing of the row is kept in registers."""
    b = lw.b
    one = b.new("r")
    b.emit("DMOV", one, F(1.0), type="f32")
    xrow, yrow, steps = _row_ptrs(lw, x, y, d)

    def row():
        dy = row_delta(b, xrow, yrow)
        acc = b.new("v", "ss")

        def sq(p, nb, first):
            v = ld(b, "f32", x.scroll, p, nb)
            if first:
                b.emit("DMUL", acc, v, v, type="f32")
            else:
                b.emit("DFMA", acc, v, v, acc, type="f32")

        chunk_loop(b, d, 4, xrow, sq)
        ss = b.new("r")
        b.emit("DRED", ss, acc, type="f32", mod="add")
        b.emit("DDIV", ss, ss, F(float(d)), type="f32")
        b.emit("DADD", ss, ss, F(eps), type="f32")
        b.emit("DSQRT", ss, ss, type="f32")
        inv = b.new("r")
        b.emit("DDIV", inv, one, ss, type="f32")
        vinv = b.new("v")
        b.emit("DBCAST", vinv, inv, type="f32")
        gp = ptr(b, 0, "gp")

        def scale(p, nb, first):
            v = ld(b, "f32", x.scroll, p, nb)
            t1 = b.new("v")
            b.emit("DMUL", t1, v, vinv, type="f32")
            gg = ld(b, "f32", g.scroll, gp, nb)
            t2 = b.new("v")
            b.emit("DMUL", t2, t1, gg, type="f32")
            st(b, "f32", t2, y.scroll, y_at(b, p, dy), nb)
            bump(b, gp, 64)

        chunk_loop(b, d, 4, xrow, scale)

    rows_loop(b, m, steps, row)


def row_max(lw: Lowerer, x, xrow: VReg, d: int, mask, ninf) -> VReg:
    """Scalar register: max of one row (the tail chunk's missing lanes read as -inf); ``x`` is a
    tensor or a scroll key."""
    b = lw.b
    mx = b.new("v", "max")
    scroll = x if isinstance(x, str) else x.scroll

    def visit(p, nb, first):
        v = ld(b, "f32", scroll, p, nb)
        if nb < 64:
            v2 = b.new("v")
            b.emit("DSEL", v2, mask, v, ninf, type="f32")
            v = v2
        if first:
            b.emit("DMOV", mx, v)
        else:
            b.emit("DMAX", mx, mx, v, type="f32")

    chunk_loop(b, d, 4, xrow, visit)
    r = b.new("r")
    b.emit("DRED", r, mx, type="f32", mod="max")
    return r


def softmax_loop(lw: Lowerer, x, y, m: int, d: int, mask, ninf) -> None:
    """Three passes per row (any length): max; e = exp(x - max) stored into y while summing (vector
    accumulator, chunks in order); y *= 1/sum."""

    b = lw.b
    one = b.new("r")
    b.emit("DMOV", one, F(1.0), type="f32")
    xrow, yrow, steps = _row_ptrs(lw, x, y, d)

    def row():
        dy = row_delta(b, xrow, yrow)
        rmax = row_max(lw, x, xrow, d, mask, ninf)
        vmax = b.new("v")
        b.emit("DBCAST", vmax, rmax, type="f32")
        acc = b.new("v", "sum")

        def ex(p, nb, first):
            v = ld(b, "f32", x.scroll, p, nb)
            t = b.new("v")
            b.emit("DSUB", t, v, vmax, type="f32")
            e = exp_vec(b, t)
            if nb < 64:
                e2 = b.new("v")
                b.emit("DSEL", e2, mask, e, F(0.0), type="f32")
                e = e2
            st(b, "f32", e, y.scroll, y_at(b, p, dy), nb)
            if first:
                b.emit("DMOV", acc, e)
            else:
                b.emit("DADD", acc, acc, e, type="f32")

        chunk_loop(b, d, 4, xrow, ex)
        s = b.new("r")
        b.emit("DRED", s, acc, type="f32", mod="add")
        inv = b.new("r")
        b.emit("DDIV", inv, one, s, type="f32")
        vinv = b.new("v")
        b.emit("DBCAST", vinv, inv, type="f32")

        def sc(p, nb, first):
            ya = y_at(b, p, dy)
            v = ld(b, "f32", y.scroll, ya, nb)
            o = b.new("v")
            b.emit("DMUL", o, v, vinv, type="f32")
            st(b, "f32", o, y.scroll, ya, nb)

        chunk_loop(b, d, 4, xrow, sc)

    rows_loop(b, m, steps, row)


def first_max(lw: Lowerer, scroll: str, xrow: VReg, d: int, mask, ninf, iota: VReg) -> tuple[VReg, VReg]:
    """(index, value) registers: the lowest index of the maximum of one row (two passes)."""
    b = lw.b
    rmax = row_max(lw, scroll, xrow, d, mask, ninf)
    vmax = b.new("v")
    b.emit("DBCAST", vmax, rmax, type="f32")
    idx = b.new("v", "idx")
    b.emit("DMOV", idx, iota)
    best = b.new("v", "best")

    def visit(p, nb, first):
        v = ld(b, "f32", scroll, p, nb)
        if nb < 64:
            v2 = b.new("v")
            b.emit("DSEL", v2, mask, v, ninf, type="f32")
            v = v2
        eq = b.new("v")
        b.emit("DCMP", eq, v, vmax, type="f32", mod="eq")
        cand = b.new("v")
        b.emit("DSEL", cand, eq, idx, imm(0x7FFFFFFF), type="i32")
        if first:
            b.emit("DMOV", best, cand)
        else:
            b.emit("DMIN", best, best, cand, type="i32")
        b.emit("DADD", idx, idx, imm(16), type="i32")

    chunk_loop(b, d, 4, xrow, visit)
    r = b.new("r", "arg")
    b.emit("DRED", r, best, type="i32", mod="min")
    return r, rmax


def topk_loop(lw: Lowerer, x, idx_t, val_t, m: int, d: int, kk: int, mask, ninf, iota: VReg) -> None:
    """Rows of any length: copy the row to a scratch, then k times: (lowest index of the max, max),
    and overwrite that element with -inf -- the same selection as the register version."""

    b = lw.b
    work = lw.scratch("topk", d * 4)
    ninf_s = b.new("r", "ninf")
    b.load("f32", ninf_s, const_iota(lw), 64)
    xrow, orow, zero = ptr(b, 0, "xrow"), ptr(b, 0, "orow"), ptr(b, 0, "zero")

    def row():
        copy_row_loop(b, x.scroll, xrow, work, zero, d * 4)
        op = ptr(b, orow, "op")

        def pick():
            i, v = first_max(lw, work, zero, d, mask, ninf, iota)
            st(b, "i32", i, idx_t.scroll, op)
            if val_t is not None:
                st(b, "f32", v, val_t.scroll, op)
            off = b.new("r")
            b.emit("DMUL", off, i, imm(4), type="i64")
            st(b, "f32", ninf_s, work, off)
            bump(b, op, 4)

        loop(b, kk, pick, "pick")

    rows_loop(b, m, [(xrow, row_pitch(lw, x, d * 4)), (orow, kk * 4)], row)


# the sample op's counter-based RNG (splitmix64: a Weyl step per row, then its finaliser)
RNG_GAMMA = 0x9E3779B97F4A7C15
RNG_MUL1, RNG_MUL2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _s64(v: int) -> int:
    """A 64-bit pattern as the signed immediate the assembler writes."""
    return v - (1 << 64) if v >= 1 << 63 else v


def sample_loop(
    lw: Lowerer, x, y, idx_t, val_t, m: int, d: int, kk: int, invt, top_p, seed, mask, ninf, iota
) -> None:
    """``y[r] = sample(x[r], ...)`` (docs/phx.md "sample"): the top ``kk`` candidates (topk's order),
    ``e_j = exp((v_j - v_0) * invt)``, the running sums ``c_j`` in order, ``keep = min(1 + #{c_j <
    top_p * c_last}, kk)``, ``u`` the top 24 bits of splitmix64(seed + (r + 1) * gamma) times 2^-24,
    and the candidate ``min(#{c_j <= u * c[keep - 1]}, keep - 1)``. ``invt``, ``top_p`` and ``seed``
    are registers or constants; ``idx_t``/``val_t`` are ``[m, kk]`` scratch tensors for the candidates."""
    b = lw.b
    topk_loop(lw, x, idx_t, val_t, m, d, kk, mask, ninf, iota)
    vals, idxs = val_t.scroll, idx_t.scroll
    ex, cum = lw.scratch("sexp", kk * 4), lw.scratch("scum", kk * 4)
    kmask = None
    if kk % 16:
        kmask = b.new("v", "kmask")
        b.emit("DCMP", kmask, iota, imm(kk % 16), type="i32", mod="lt")

    def reg(value, t: str) -> VReg:
        if isinstance(value, VReg):
            return value
        r = b.new("r", "k", nospill=True)
        b.emit("DMOV", r, F(value) if t == "f32" else imm(_s64(value & ((1 << 64) - 1))), type=t)
        return r

    vinvt = b.new("v", "invt")
    b.emit("DBCAST", vinvt, reg(invt, "f32"), type="f32")
    topp = reg(top_p, "f32")
    h0 = b.new("r", "weyl", nospill=True)
    b.emit("DADD", h0, reg(seed, "i64"), imm(_s64(RNG_GAMMA)), type="i64")
    vrow, yp, zero = ptr(b, 0, "vrow"), ptr(b, 0, "yp"), ptr(b, 0, "zero")

    def row() -> None:
        v0 = ld(b, "f32", vals, vrow, cls="r")
        vv0 = b.new("v")
        b.emit("DBCAST", vv0, v0, type="f32")

        def expo(p: VReg, nb: int, first: bool) -> None:
            src = b.new("r", "sp")
            b.emit("DADD", src, vrow, p, type="i64")
            v = ld(b, "f32", vals, src, nb)
            t = b.new("v")
            b.emit("DSUB", t, v, vv0, type="f32")
            z = b.new("v")
            b.emit("DMUL", z, t, vinvt, type="f32")
            e = exp_vec(b, z)
            if nb < 64:
                e2 = b.new("v")
                b.emit("DSEL", e2, kmask, e, F(0.0), type="f32")
                e = e2
            st(b, "f32", e, ex, p, nb)

        chunk_loop(b, kk, 4, zero, expo)
        # running sums, one f32 rounding per addition in candidate order
        c = b.new("r", "cum", nospill=True)
        b.load("f32", c, ex, 0)
        b.store("f32", c, cum, 0)
        q = ptr(b, 4, "q")

        def add_one() -> None:
            e = ld(b, "f32", ex, q, cls="r")
            b.emit("DADD", c, c, e, type="f32")
            st(b, "f32", c, cum, q)
            bump(b, q, 4)

        loop(b, kk - 1, add_one, "cum")
        thr = b.new("r", "thr", nospill=True)
        b.emit("DMUL", thr, topp, c, type="f32")

        def count(limit: VReg, cond: str) -> VReg:
            """#{j < kk: cum_j <cond> limit} (the sums never decrease: the first j that fails)."""
            n = b.new("r", "cnt", nospill=True)
            b.emit("DMOV", n, imm(0))
            q2 = ptr(b, 0, "q")

            def one() -> None:
                cj = ld(b, "f32", cum, q2, cls="r")
                f = b.new("r")
                b.emit("DCMP", f, cj, limit, type="f32", mod=cond)
                b.emit("DADD", n, n, f, type="i64")
                bump(b, q2, 4)

            loop(b, kk, one, "cnt")
            return n

        keep = count(thr, "lt")
        b.emit("DADD", keep, keep, imm(1), type="i64")
        b.emit("DMIN", keep, keep, imm(kk), type="i64")
        last = b.new("r", "last", nospill=True)
        b.emit("DSUB", last, keep, imm(1), type="i64")
        off = b.new("r")
        b.emit("DMUL", off, last, imm(4), type="i64")
        mass = ld(b, "f32", cum, off, cls="r")
        # u: the top 24 bits of splitmix64 of this row's Weyl value, as f32 in [0, 1) (exact)
        h = b.new("r", "h")
        b.emit("DMOV", h, h0)
        for shift, mul in ((30, RNG_MUL1), (27, RNG_MUL2)):
            t = b.new("r")
            b.emit("DSHR", t, h, imm(shift), type="i64")
            b.emit("DXOR", h, h, t, type="i64")
            b.emit("DMUL", h, h, reg(mul, "i64"), type="i64")
        t = b.new("r")
        b.emit("DSHR", t, h, imm(31), type="i64")
        b.emit("DXOR", h, h, t, type="i64")
        b.emit("DSHR", h, h, imm(40), type="i64")
        u = b.new("r", "u")
        b.emit("DCVT", u, h, None, type="f32", type2="i64")
        b.emit("DMUL", u, u, F(2.0**-24), type="f32")
        b.emit("DMUL", u, u, mass, type="f32")
        pick = count(u, "le")
        b.emit("DMIN", pick, pick, last, type="i64")
        b.emit("DMUL", pick, pick, imm(4), type="i64")
        b.emit("DADD", pick, pick, vrow, type="i64")
        tok = ld(b, "i32", idxs, pick, cls="r")
        st(b, "i32", tok, y.scroll, yp)
        bump(b, vrow, kk * 4)
        bump(b, yp, 4)
        b.emit("DADD", h0, h0, imm(_s64(RNG_GAMMA)), type="i64")

    loop(b, m, row, "srow")


def argmax_loop(lw: Lowerer, x, y, m: int, d: int, mask, ninf, iota: VReg) -> None:
    """Two passes per row: the max, then the lowest index whose value equals it."""
    b = lw.b
    xrow, yp = ptr(b, 0, "xrow"), ptr(b, 0, "yp")

    def row():
        r, _ = first_max(lw, x.scroll, xrow, d, mask, ninf, iota)
        st(b, "i32", r, y.scroll, yp)

    rows_loop(b, m, [(xrow, row_pitch(lw, x, d * 4)), (yp, 4)], row)


def copy_row_loop(b: Builder, src: str, soff: VReg, dst: str, doff: VReg, nbytes: int) -> None:
    """Copy ``nbytes`` from src[soff..] to dst[doff..] in 64-byte pieces (a loop plus a tail)."""
    s, d = ptr(b, soff, "sp"), ptr(b, doff, "dp")
    nfull, tail = divmod(nbytes, 64)

    def one(nb):
        v = ld(b, "i8", src, s, nb)
        st(b, "i8", v, dst, d, nb)
        bump(b, s, 64)
        bump(b, d, 64)

    loop(b, nfull, lambda: one(64), "copy")
    if tail:
        one(tail)


# ---------------------------------------------------------------------- transformer ops
def half_chunks(half: int) -> list[tuple[int, int]]:
    """(byte offset, byte count) of the 64-byte pieces of one half of a head (f32)."""
    return [(o, min(64, half * 4 - o)) for o in range(0, half * 4, 64)]


class _RopeWalk:
    """The pointers both RoPE forms walk: the table row of position pos (one row further per token),
    each head of x, and y's own head pointer when its rows are apart otherwise (column slices in
    place: ``row_pitch``)."""

    def __init__(self, lw: Lowerer, x, cs, y, heads: int, hd: int, pos) -> None:
        b = self.b = lw.b
        self.hd = hd
        width = heads * hd * 4
        xs, ys = row_pitch(lw, x, width), row_pitch(lw, y, width)
        self.row = ptr(b, 0, "cs")
        self.cstep = row_pitch(lw, cs, hd * 4)
        if isinstance(pos, VReg):
            b.emit("DMUL", self.row, pos, imm(self.cstep), type="i64")
        else:
            b.emit("DMOV", self.row, imm(int(pos) * self.cstep))
        self.hp = ptr(b, 0, "head")
        self.yp = ptr(b, 0, "yhead") if xs != ys else None
        self.gaps = (xs - width, ys - width)  # past the columns of other tensors to the next row

    def next_head(self) -> None:
        bump(self.b, self.hp, self.hd * 4)
        if self.yp is not None:
            bump(self.b, self.yp, self.hd * 4)

    def next_token(self, rows: int) -> None:
        bump(self.b, self.row, self.cstep)
        if rows > 1:
            bump(self.b, self.hp, self.gaps[0])
            if self.yp is not None:
                bump(self.b, self.yp, self.gaps[1])


def rope_loop(lw: Lowerer, x, cs, y, heads: int, hd: int, pos, rows: int = 1) -> None:
    """Rotary embedding of ``rows`` tokens at positions pos, pos+1, ..., half-split convention: for
    each head, with c = cs[p, :hd/2], s = cs[p, hd/2:]: y1 = x1*c - x2*s, y2 = x2*c + x1*s (each
    product rounded, then the sum)."""
    b = lw.b
    half = hd // 2
    walk = _RopeWalk(lw, x, cs, y, heads, hd, pos)
    row, hp, yp = walk.row, walk.hp, walk.yp
    pieces = half_chunks(half)
    cvec: list = []
    svec: list = []

    def token():
        cvec[:] = [ld(b, "f32", cs.scroll, at(b, row, off), nb) for off, nb in pieces]
        svec[:] = [ld(b, "f32", cs.scroll, at(b, row, half * 4 + off), nb) for off, nb in pieces]
        loop(b, heads, head, "head")
        walk.next_token(rows)

    def head():
        for (off, nb), c, s in zip(pieces, cvec, svec, strict=True):
            p1, p2 = at(b, hp, off), at(b, hp, half * 4 + off)
            q1, q2 = (p1, p2) if yp is None else (at(b, yp, off), at(b, yp, half * 4 + off))
            x1 = ld(b, "f32", x.scroll, p1, nb)
            x2 = ld(b, "f32", x.scroll, p2, nb)
            a, bb, y1 = b.new("v"), b.new("v"), b.new("v")
            b.emit("DMUL", a, x1, c, type="f32")
            b.emit("DMUL", bb, x2, s, type="f32")
            b.emit("DSUB", y1, a, bb, type="f32")
            a2, b2, y2 = b.new("v"), b.new("v"), b.new("v")
            b.emit("DMUL", a2, x2, c, type="f32")
            b.emit("DMUL", b2, x1, s, type="f32")
            b.emit("DADD", y2, a2, b2, type="f32")
            st(b, "f32", y1, y.scroll, q1, nb)
            st(b, "f32", y2, y.scroll, q2, nb)
        walk.next_head()

    loop(b, rows, token, "token")


def rope_pairs_loop(lw: Lowerer, x, cs, y, heads: int, hd: int, pos, rows: int = 1) -> None:
    """Rotary embedding with adjacent pairs (``pairs=adjacent``; GPT-J's and GGML's "normal" layout):
    pair i of a head is (x[2i], x[2i+1]) and turns by the angle of c = cs[p, i], s = cs[p, hd/2 + i]:
    y[2i] = x[2i]*c - x[2i+1]*s, y[2i+1] = x[2i+1]*c + x[2i]*s (each product rounded, then the sum).
    Per token the table row is spread once into a scratch: each c twice, and each s twice with the even
    lane's sign flipped (-s, s); per 16-lane chunk of a head: y = x*c + swap(x)*s' with the pair-swapped
    x (DSHUF). The same roundings as the half-split form: x1*(-s) is -(x1*s) exactly (rounding is
    symmetric) and a + (-b) is a - b in IEEE arithmetic, signed zeros included."""
    b = lw.b
    half = hd // 2
    walk = _RopeWalk(lw, x, cs, y, heads, hd, pos)
    row, hp, yp = walk.row, walk.hp, walk.yp
    pieces = [(o, min(64, hd * 4 - o)) for o in range(0, hd * 4, 64)]  # 16-lane chunks of one head
    iota = b.load("i32", b.new("v", "iota"), const_iota(lw), 0)
    dup, swap, odd, even = b.new("v", "dup"), b.new("v", "swap"), b.new("v"), b.new("v")
    sign = b.new("v", "sign")
    b.emit("DSHR", dup, iota, imm(1), type="i32")  # 0 0 1 1 2 2 ...: each table value twice
    b.emit("DXOR", swap, iota, imm(1), type="i32")  # 1 0 3 2 ...: the other element of the pair
    b.emit("DAND", odd, iota, imm(1), type="i32")
    b.emit("DXOR", even, odd, imm(1), type="i32")
    b.emit("DSHL", sign, even, imm(31), type="i32")  # the sign bit in the even lanes
    # this token's c, s spread over the lanes of a head: in registers for up to 8 chunks (head_dim
    # <= 128: 16 vectors), else in a scratch the heads load from
    spread = lw.scratch("ropecs", 2 * hd * 4) if len(pieces) > 8 else None
    cvec: list = []
    svec: list = []

    def token():
        cvec.clear()
        svec.clear()
        for off, nb in pieces:  # chunk at byte off of a head: pairs off/8 .. , table values at off/2
            for base, dst, keep in ((0, off, cvec), (half * 4, hd * 4 + off, svec)):
                v = ld(b, "f32", cs.scroll, at(b, row, base + off // 2), nb // 2)
                w = b.new("v")
                b.emit("DSHUF", w, v, dup, type="f32")
                if base:  # sin: -s in the even lanes (the sign bit flipped: exact)
                    w2 = b.new("v")
                    b.emit("DXOR", w2, w, sign, type="i32")
                    w = w2
                if spread is None:
                    keep.append(w)
                else:
                    b.store("f32", w, spread, dst, nb)
        loop(b, heads, head, "head")
        walk.next_token(rows)

    def head():
        for k, (off, nb) in enumerate(pieces):
            xv = ld(b, "f32", x.scroll, at(b, hp, off), nb)
            if spread is None:
                c, s = cvec[k], svec[k]
            else:
                c = b.load("f32", b.new("v"), spread, off, nb)
                s = b.load("f32", b.new("v"), spread, hd * 4 + off, nb)
            sw, a, bb, yv = (b.new("v") for _ in range(4))
            b.emit("DSHUF", sw, xv, swap, type="f32")
            b.emit("DMUL", a, xv, c, type="f32")
            b.emit("DMUL", bb, sw, s, type="f32")
            b.emit("DADD", yv, a, bb, type="f32")
            st(b, "f32", yv, y.scroll, at(b, hp if yp is None else yp, off), nb)
        walk.next_head()

    loop(b, rows, token, "token")


ATT_HEADS = 4  # query heads of one KV group per pass over the cache rows (each K/V row load feeds them all)
ATT_ACC = 16  # accumulators of the weighted-sum pass (heads x 16-lane chunks)


def attend_batch(heads: int, kv_heads: int) -> int:
    """How many consecutive heads of one KV group :func:`attend_loop` takes per pass over the cache."""
    group = heads // kv_heads
    return max(d for d in range(1, min(ATT_HEADS, group) + 1) if group % d == 0)


def head_segments(lo: int, hi: int, group: int, hb: int) -> list[tuple[int, int, int]]:
    """Heads lo..hi as (first, end, batch) runs for :func:`attend_loop`: whole ``hb`` batches, and
    before and after them the heads of a cut batch in the largest batch that divides the group, the
    run's start and its length (a batch never spans two KV groups)."""
    a = min(hi, -(-lo // hb) * hb)
    z = max(a, hi // hb * hb)
    out = []
    for s_lo, s_hi, whole in ((lo, a, False), (a, z, True), (z, hi, False)):
        if s_hi > s_lo:
            fits = [
                d for d in range(1, hb + 1) if group % d == 0 and s_lo % d == 0 and (s_hi - s_lo) % d == 0
            ]
            out.append((s_lo, s_hi, hb if whole else max(fits)))
    return out


def uniform_heads(heads: int, per: int, ns: int, group: int, hb: int) -> int:
    """How many sentrons, from 0, own ``per`` heads each (from s * per) split into the same segments
    relative to their first head as sentron 0's (:func:`head_segments`): they can share one copy of
    :func:`attend_loop` whose first head is computed at run time."""
    sig0 = [(a, z, sb) for a, z, sb in head_segments(0, per, group, hb)]
    u = 0
    while u < ns and (u + 1) * per <= heads:
        lo = u * per
        if [(a - lo, z - lo, sb) for a, z, sb in head_segments(lo, lo + per, group, hb)] != sig0:
            break
        u += 1
    return u


def attend_loop(
    lw: Lowerer,
    q,
    kc,
    vc,
    o,
    heads: int,
    kv_heads: int,
    hd: int,
    length,
    start=0,
    rows: int = 1,
    head_range: tuple[int | VReg, int] | None = None,
    template: int = 0,
) -> None:
    """Grouped-query attention of ``rows`` tokens over a KV cache from row ``start`` (several layers'
    caches can share one tensor), causal: token i of M attends to ``length - M + 1 + i`` rows;
    per head h (kv group g = h // (heads / kv_heads)): s_t = (q_h . k_t,g) * (1/sqrt(hd)) for t < length;
    p = exp(s - max s) (masked lanes contribute 0); o_h = (sum_t p_t v_t,g) * (1 / sum_t p_t).

    Heads are taken ``hb`` at a time (consecutive heads of one KV group): each pass over the cache rows
    loads a K (V) row chunk once for all of them. Per head the ops and their order are those of one
    head alone, so the result does not depend on ``hb``, nor on which other heads run: ``head_range``
    (lo, hi), any heads, computes heads lo..hi only (``shard=heads``: one sentron's share), the other
    columns of ``o`` untouched. A range that cuts a batch takes the cut part in smaller batches (the
    largest that divide the group and the part; :func:`head_segments`): a KV group may then be read by
    two sentrons (reads only: race-free). ``head_range = (register, count)``: the ``count`` heads from
    a first head known at run time, whose segments are those of :func:`head_segments` from
    ``template`` (any first head with the same split: see :func:`uniform_heads`)."""

    b = lw.b
    t_max = kc.shape[0]
    t16 = (t_max + 15) // 16 * 16
    group = heads // kv_heads
    hb = attend_batch(heads, kv_heads)
    h_lo, h_hi = head_range if head_range is not None else (0, heads)
    dynamic = isinstance(h_lo, VReg)
    if dynamic:
        count = h_hi
        segments = [
            (a - template, z - template, sb)
            for a, z, sb in head_segments(template, template + count, group, hb)
        ]
    else:
        if not 0 <= h_lo < h_hi <= heads:  # pragma: no cover - caller's split
            raise ValueError(f"head range {h_lo}..{h_hi} is not in 0..{heads}")
        count = h_hi - h_lo
        segments = head_segments(h_lo, h_hi, group, hb)
    scores = lw.scratch("scores", hb * t16 * 4)
    row_kv = row_pitch(lw, kc, kc.shape[1] * 4)  # (v's rows are as far apart: _attend)
    nch = hd // 16
    inv_sqrt = 1.0 / (hd**0.5)
    one = b.new("r")
    b.emit("DMOV", one, F(1.0), type="f32")
    n = b.new("r", "len", nospill=True)
    b.emit("DMOV", n, length if isinstance(length, VReg) else imm(int(length)))
    if rows > 1:
        b.emit("DSUB", n, n, imm(rows - 1), type="i64")
    vlen = b.new("v", "vlen")
    iota = b.load("i32", b.new("v", "iota"), const_iota(lw), 0)
    ninf = neg_inf(lw)
    nchunks = b.new("r", "nch", nospill=True)
    width = heads * hd * 4
    qs, os_ = row_pitch(lw, q, width), row_pitch(lw, o, width)  # row strides (column slices in place)
    if dynamic:
        qp = b.new("r", "qh", nospill=True)
        b.emit("DMUL", qp, h_lo, imm(hd * 4), type="i64")
    else:
        qp = ptr(b, h_lo * hd * 4, "qh")
    op_ = qp if qs == os_ else ptr(b, qp, "oh")  # o's own pointer when its rows are apart otherwise
    kvbase = ptr(b, 0, "kvbase")
    if isinstance(start, VReg):
        b.emit("DMUL", kvbase, start, imm(row_kv), type="i64")
    elif start:
        b.emit("DMOV", kvbase, imm(int(start) * row_kv))
    kvp, hcount = ptr(b, kvbase, "kvh"), ptr(b, 0, "hcount")

    def token():
        for i, (s_lo, s_hi, sb) in enumerate(segments):
            b.emit("DMOV", kvp, kvbase)
            if dynamic:  # s_lo is relative to the runtime first head: its KV group and place in it
                h, g = b.new("r", "head"), b.new("r", "kvg")
                b.emit("DADD", h, h_lo, imm(s_lo), type="i64")
                b.emit("DDIV", g, h, imm(group), type="i64")
                t = b.new("r", "kvoff")
                b.emit("DMUL", t, g, imm(hd * 4), type="i64")
                b.emit("DADD", kvp, kvp, t, type="i64")
                b.emit("DMUL", g, g, imm(group), type="i64")
                b.emit("DSUB", hcount, h, g, type="i64")
                b.emit("DDIV", hcount, hcount, imm(sb), type="i64")
            else:
                bump(b, kvp, s_lo // group * hd * 4)  # the segment's first KV group (nothing from head 0)
                b.emit("DMOV", hcount, imm(s_lo % group // sb))
            if i == 0:
                b.emit("DBCAST", vlen, n, type="i32")
                b.emit("DADD", nchunks, n, imm(15), type="i64")
                b.emit("DSHR", nchunks, nchunks, imm(4), type="i64")
            loop(b, (s_hi - s_lo) // sb, lambda sb=sb: batch(sb), "heads")
        bump(b, qp, qs - count * hd * 4)  # past the other heads (and columns) to the next row
        if op_ is not qp:
            bump(b, op_, os_ - count * hd * 4)
        bump(b, n, 1)

    vscale = b.new("v", "scale")
    b.emit("DBCAST", vscale, F(inv_sqrt), type="f32")

    def masked(chunk_idx: VReg, sp: VReg, fill):
        """16 scores of the scratch, scaled by 1/sqrt(hd) (the score pass stores the raw dot products:
        a vector DMUL here rounds exactly as the scalar one per score did), lanes past the length
        replaced by ``fill``."""
        raw = ld(b, "f32", scores, sp)
        v = b.new("v")
        b.emit("DMUL", v, raw, vscale, type="f32")
        m = b.new("v")
        b.emit("DCMP", m, chunk_idx, vlen, type="i32", mod="lt")
        r = b.new("v")
        b.emit("DSEL", r, m, v, fill, type="f32")
        return r

    def softmax_scores(j: int) -> VReg:
        """Head j of the batch: scores[j] <- exp(s - max) (masked lanes 0); returns 1 / sum."""
        mx = b.new("v", "mx")
        b.emit("DMOV", mx, ninf)
        ci, sp2 = b.new("v", "ci"), ptr(b, j * t16 * 4, "sp2")
        b.emit("DMOV", ci, iota)

        def cmax():
            v = masked(ci, sp2, ninf)
            b.emit("DMAX", mx, mx, v, type="f32")
            b.emit("DADD", ci, ci, imm(16), type="i32")
            bump(b, sp2, 64)

        loop(b, nchunks, cmax, "max")
        rmax = b.new("r")
        b.emit("DRED", rmax, mx, type="f32", mod="max")
        vmax = b.new("v")
        b.emit("DBCAST", vmax, rmax, type="f32")
        tot = b.new("v", "sum")
        b.emit("DBCAST", tot, F(0.0), type="f32")
        ci3, sp3 = b.new("v", "ci"), ptr(b, j * t16 * 4, "sp3")
        b.emit("DMOV", ci3, iota)

        def cexp():
            v = masked(ci3, sp3, vmax)
            t = b.new("v")
            b.emit("DSUB", t, v, vmax, type="f32")
            e = exp_vec(b, t)
            m = b.new("v")
            b.emit("DCMP", m, ci3, vlen, type="i32", mod="lt")
            e2 = b.new("v")
            b.emit("DSEL", e2, m, e, F(0.0), type="f32")
            st(b, "f32", e2, scores, sp3)
            b.emit("DADD", tot, tot, e2, type="f32")
            b.emit("DADD", ci3, ci3, imm(16), type="i32")
            bump(b, sp3, 64)

        loop(b, nchunks, cexp, "exp")
        s = b.new("r")
        b.emit("DRED", s, tot, type="f32", mod="add")
        inv = b.new("r")
        b.emit("DDIV", inv, one, s, type="f32")
        vinv = b.new("v")
        b.emit("DBCAST", vinv, inv, type="f32")
        return vinv

    def batch(hb: int):
        # scores of the hb heads in one pass over the K rows (q chunks re-read from L1 per row: hb
        # heads x nch chunks would not fit the registers)
        kp, sp = ptr(b, kvp, "kp"), ptr(b, 0, "sp")

        def score():
            acc = [b.new("v") for _ in range(hb)]
            for c in range(nch):
                kv = ld(b, "f32", kc.scroll, at(b, kp, c * 64))
                for j in range(hb):
                    qv = ld(b, "f32", q.scroll, at(b, qp, (j * hd + c * 16) * 4))
                    if c == 0:
                        b.emit("DMUL", acc[j], qv, kv, type="f32")
                    else:
                        b.emit("DFMA", acc[j], qv, kv, acc[j], type="f32")
            for j in range(hb):
                sv = b.new("r")
                b.emit("DRED", sv, acc[j], type="f32", mod="add")  # scaled in softmax_scores
                st(b, "f32", sv, scores, at(b, sp, j * t16 * 4))
            bump(b, kp, row_kv)
            bump(b, sp, 4)

        loop(b, n, score, "score")
        vinv = [softmax_scores(j) for j in range(hb)]
        # weighted sum of values: passes over the V rows, each covering `span` chunks of every head
        # (hb x span accumulators), so each V cache line is read once per batch
        span = max(d for d in range(1, nch + 1) if nch % d == 0 and hb * d <= ATT_ACC)
        for c0 in range(0, nch, span):
            acc = [[b.new("v", "o") for _ in range(span)] for _ in range(hb)]
            for row_acc in acc:
                for a in row_acc:
                    b.emit("DBCAST", a, F(0.0), type="f32")
            vp, sp4 = ptr(b, kvp, "vp"), ptr(b, 0, "sp4")

            def wsum(c0=c0, acc=acc, vp=vp, sp4=sp4):
                pv = [bcast_ld(b, "f32", scores, at(b, sp4, j * t16 * 4)) for j in range(hb)]
                for c in range(span):
                    vv = ld(b, "f32", vc.scroll, at(b, vp, (c0 + c) * 64))
                    for j in range(hb):
                        b.emit("DFMA", acc[j][c], pv[j], vv, acc[j][c], type="f32")
                bump(b, vp, row_kv)
                bump(b, sp4, 4)

            loop(b, n, wsum, "wsum")
            for j in range(hb):
                for c in range(span):
                    r = b.new("v")
                    b.emit("DMUL", r, acc[j][c], vinv[j], type="f32")
                    st(b, "f32", r, o.scroll, at(b, op_, (j * hd + (c0 + c) * 16) * 4))
        # next batch of heads; the kv group advances every group / hb batches
        bump(b, qp, hb * hd * 4)
        if op_ is not qp:
            bump(b, op_, hb * hd * 4)
        b.emit("DADD", hcount, hcount, imm(1), type="i64")
        if group // hb > 1:
            flag = b.new("r")
            same = b.label("same_group")
            b.emit("DCMP", flag, hcount, imm(group // hb), type="i64", mod="eq")
            b.emit("DBRF", same)
            b.emit("DMOV", hcount, imm(0))
            bump(b, kvp, hd * 4)
            b.place(same)
        else:
            bump(b, kvp, hd * 4)

    loop(b, rows, token, "token")


def matmul_nt_loop(lw: Lowerer, x, w, y) -> None:
    """y[M, N] = x[M, K] @ w[N, K]^T (the weight used transposed, e.g. a tied embedding as the LM head):
    each output is a dot product of two contiguous rows: 16 lane partial sums (DMUL for the first
    16-element chunk, then DFMA chunk by chunk; a partial last chunk reads zeros), then DRED.add.
    Four rows of w share each x chunk load."""
    b = lw.b
    m, k = x.shape
    n = w.shape[0]
    xs, ws, ys = row_pitch(lw, x, k * 4), row_pitch(lw, w, k * 4), row_pitch(lw, y, n * 4)  # row strides
    rb = 4
    xrow, yrow = ptr(b, 0, "xrow"), ptr(b, 0, "yrow")

    def block(nrows: int, wrow: VReg, yp: VReg) -> None:
        acc = [b.new("v", "acc") for _ in range(nrows)]
        xp, wp = ptr(b, xrow, "xp"), ptr(b, wrow, "wp")

        def visit(nb: int, first: bool) -> None:
            xv = ld(b, "f32", x.scroll, xp, nb)
            for r in range(nrows):
                wv = ld(b, "f32", w.scroll, at(b, wp, r * ws), nb)
                if first:
                    b.emit("DMUL", acc[r], xv, wv, type="f32")
                else:
                    b.emit("DFMA", acc[r], xv, wv, acc[r], type="f32")
            bump(b, xp, 64)
            bump(b, wp, 64)

        nfull, tail = divmod(k * 4, 64)
        if nfull:
            visit(64, True)
            loop(b, nfull - 1, lambda: visit(64, False), "k")
        if tail:
            visit(tail, nfull == 0)
        for r in range(nrows):
            s = b.new("r")
            b.emit("DRED", s, acc[r], type="f32", mod="add")
            st(b, "f32", s, y.scroll, at(b, yp, r * 4))

    def row() -> None:
        wrow, yp = ptr(b, 0, "wrow"), ptr(b, yrow, "yp")

        def blk() -> None:
            block(rb, wrow, yp)
            bump(b, wrow, rb * ws)
            bump(b, yp, rb * 4)

        loop(b, n // rb, blk, "nblk")
        if n % rb:
            block(n % rb, wrow, yp)

    rows_loop(b, m, [(xrow, xs), (yrow, ys)], row)


# ---------------------------------------------------------------------- int8 weight matrix (LM head)
# weight rows (outputs) per block: one quantised-activation chunk load feeds this many DDOTs. On AMD
# Zen 4 fewer concurrent row streams read faster (Q8_STREAMS; 2560x32768 int8, 84 MB, best of 21 runs,
# native read 27-32 GB/s: 8 rows 19-24 GB/s; 4 rows 25-27 with the JIT's prefetches 512 bytes ahead and
# 31-33 with 256 or none; 2 rows 27-32); Intel keeps 8
Q8_ROWS = 4 if AMD else 8
Q8_KUNROLL = 2  # 64-byte K chunks per trip of the K loop (8 x 2: the 2B head 13 % faster than 4 x 1)
# per row of x: the Q8_ROWS weight rows of a block are far apart (Q8_ROWS streams, each reading consecutive
# rows) instead of adjacent (a block's rows started cold, and the last 512 bytes of each row prefetched
# the start of the next row, which another stream had already read)
Q8_STREAMS = True


def matmul_q8_loop(
    lw: Lowerer, x, w8, ws, y, per_row_scale: bool, n_lo: int | VReg = 0, n_hi: int | None = None
) -> None:
    """y[M, N] = x[M, K] @ w8[N, K]^T with int8 weights and f32 scales (a compact LM head).

    Per row of x: per-token int8 absmax quantisation exactly as ``quant`` (am = max(max |x|, 1e-30),
    q = DCVT.i8(x * (127 / am)), sx = am / 127) into a zero-padded scratch row of ceil(K/64)*64 bytes;
    then per output n: acc = sum_k q[k] * w8[n, k] as 16 int32 lane sums (``DDOT.i8`` over 64-byte chunks
    in k order; a partial last chunk reads zeros), reduced with ``DRED.add.i32`` (exact: |acc| <=
    127 * 127 * K < 2^31), and y = f32(acc) * f32(ws[n] * sx) (``ws[0]`` with one per-tensor scale).
    Every integer step is exact, so the result is independent of the lane and block order. Only
    outputs ``n_lo .. n_hi - 1`` are computed (``shard=cols``: each sentron a range of rows of w8);
    ``n_lo`` may be an i64 register (a first row known at run time), then ``n_hi`` is the row count."""
    b = lw.b
    m, k = x.shape if len(x.shape) == 2 else (1, x.shape[0])
    n = w8.shape[0]
    dynamic = isinstance(n_lo, VReg)
    n_hi = n if n_hi is None else n_hi
    cnt = n_hi if dynamic else n_hi - n_lo
    k64 = (k + 63) // 64 * 64
    qbuf = lw.scratch("q8", k64)
    one = b.new("r", "c127")
    b.emit("DMOV", one, F(127.0), type="f32")
    nfull, tail = divmod(k, 64)
    xrow, yrow, zero = ptr(b, 0, "xrow"), ptr(b, 0, "yrow"), ptr(b, 0, "zero")
    wsc = None
    if not per_row_scale:
        wsc = b.new("r", "ws")
        b.load("f32", wsc, ws.scroll, 0)

    def block(nrows: int, wp: VReg, sp: VReg, yp: VReg, sx: VReg, gap: int = 1) -> None:
        """Rows wp, wp + gap, ... (``gap`` rows apart) of w8 against the quantised row."""
        acc = [b.new("v", "acc") for _ in range(nrows)]
        qp, kp = ptr(b, 0, "qp"), ptr(b, wp, "kp")

        def kstep(nb: int, first: bool) -> None:
            qv = ld(b, "i8", qbuf, qp, 64)
            for r in range(nrows):
                wv = ld(b, "i8", w8.scroll, at(b, kp, r * gap * k), nb)
                if first:
                    b.emit("DBCAST", acc[r], imm(0), type="i32")
                b.emit("DDOT", acc[r], wv, qv, type="i8")
            bump(b, qp, 64)
            bump(b, kp, 64)

        if nfull:
            kstep(64, True)
            u = max(1, Q8_KUNROLL)

            def ksteps() -> None:
                for _ in range(u):
                    kstep(64, False)

            loop(b, (nfull - 1) // u, ksteps, "k")
            for _ in range((nfull - 1) % u):
                kstep(64, False)
        if tail:
            kstep(tail, nfull == 0)
        for r in range(nrows):
            _q8_out(b, acc[r], sx, ws if per_row_scale else wsc, sp, y.scroll, yp, r * gap * 4, r * gap * 4)

    def row() -> None:
        sx = quantise_row(lw, x, xrow, k, qbuf, zero, 64, one)
        if dynamic:
            wp, sp = b.new("r", "wp", nospill=True), b.new("r", "sp", nospill=True)
            b.emit("DMUL", wp, n_lo, imm(k), type="i64")
            b.emit("DMUL", sp, n_lo, imm(4), type="i64")
            yp = b.new("r", "yp", nospill=True)
            b.emit("DADD", yp, yrow, sp, type="i64")
        else:
            wp, sp, yp = ptr(b, n_lo * k, "wp"), ptr(b, n_lo * 4, "sp"), ptr(b, yrow, "yp")
            bump(b, yp, n_lo * 4)
        _q8_weight_blocks(
            b, cnt, lambda nrows, gap: block(nrows, wp, sp, yp, sx, gap), [(wp, k), (sp, 4), (yp, 4)]
        )

    if m > 1 and Q8_ACCS // Q8_ROWS > 1:
        _q8_batched(lw, x, w8, ws, y, per_row_scale, n_lo, cnt, m, k, one, wsc)
        return
    rows_loop(b, m, [(xrow, k * 4), (yrow, n * 4)], row)


# accumulators of a batched matmul_q8 block (M > 1): Q8_ROWS weight rows x Q8_ACCS // Q8_ROWS rows of x, so
# each 64-byte weight chunk loaded feeds several rows of x (one per row was a pass over the whole
# weight matrix per row: a 64-token scoring run read the 2B head 64 times)
Q8_ACCS = 16


def _q8_batched(lw: Lowerer, x, w8, ws, y, per_row_scale: bool, n_lo, cnt, m: int, k: int, one, wsc) -> None:
    """``matmul_q8_loop`` for M > 1: every row of x quantised first (the same ops as one row at a time),
    then per block of weight rows the rows of x in groups, each weight chunk loaded once per group. The
    sums are exact integers and every output gets the ops it gets alone, so the bits are unchanged."""
    b = lw.b
    k64 = (k + 63) // 64 * 64
    qall = lw.scratch("q8m", m * k64)
    sxs = lw.scratch("q8s", m * 4)
    xrow, qrow, srow = ptr(b, 0, "xrow"), ptr(b, 0, "qrow"), ptr(b, 0, "srow")

    def quant_one() -> None:
        st(b, "f32", quantise_row(lw, x, xrow, k, qall, qrow, 64, one), sxs, srow)

    # two coordinate-register regions (in_region): together the phases address six scrolls, one more
    # than a region hoists, and the one left out (y) would be re-defined at every store
    in_region(b, lambda: rows_loop(b, m, [(xrow, k * 4), (qrow, k64), (srow, 4)], quant_one))
    in_region(b, lambda: _q8_blocks(lw, w8, ws, y, per_row_scale, n_lo, cnt, m, k, wsc, qall, sxs))


def _q8_blocks(
    lw: Lowerer, w8, ws, y, per_row_scale: bool, n_lo, cnt, m: int, k: int, wsc, qall, sxs
) -> None:
    """The block phase of :func:`_q8_batched`: per block of weight rows, the quantised rows of x."""
    b = lw.b
    n = w8.shape[0]
    k64 = (k + 63) // 64 * 64
    nfull, tail = divmod(k, 64)
    rb = Q8_ROWS
    mr = min(m, max(1, Q8_ACCS // rb))
    if isinstance(n_lo, VReg):
        wp, sp = b.new("r", "wp", nospill=True), b.new("r", "sp", nospill=True)
        b.emit("DMUL", wp, n_lo, imm(k), type="i64")
        b.emit("DMUL", sp, n_lo, imm(4), type="i64")
    else:
        wp, sp = ptr(b, n_lo * k, "wp"), ptr(b, n_lo * 4, "sp")

    def block(nrows: int, gap: int) -> None:
        """Weight rows wp, wp + gap, ... (outputs sp / 4, ...) against every row of x."""
        gq, gs, gy = ptr(b, 0, "gq"), ptr(b, 0, "gs"), ptr(b, sp, "gy")

        def group(nx: int) -> None:
            acc = [[b.new("v", "acc") for _ in range(nx)] for _ in range(nrows)]
            qp, kp = ptr(b, gq, "qp"), ptr(b, wp, "kp")

            def kstep(nb: int, first: bool) -> None:
                qv = [ld(b, "i8", qall, at(b, qp, i * k64), 64) for i in range(nx)]
                for r in range(nrows):
                    wv = ld(b, "i8", w8.scroll, at(b, kp, r * gap * k), nb)
                    for i in range(nx):
                        if first:
                            b.emit("DBCAST", acc[r][i], imm(0), type="i32")
                        b.emit("DDOT", acc[r][i], wv, qv[i], type="i8")
                bump(b, qp, 64)
                bump(b, kp, 64)

            if nfull:
                kstep(64, True)
                loop(b, nfull - 1, lambda: kstep(64, False), "k")
            if tail:
                kstep(tail, nfull == 0)
            for i in range(nx):
                sx = ld(b, "f32", sxs, at(b, gs, i * 4), cls="r")
                for r in range(nrows):
                    scale = ws if per_row_scale else wsc
                    _q8_out(b, acc[r][i], sx, scale, sp, y.scroll, gy, r * gap * 4, i * n * 4 + r * gap * 4)

        def full_group() -> None:
            group(mr)
            bump(b, gq, mr * k64)
            bump(b, gs, mr * 4)
            bump(b, gy, mr * n * 4)

        loop(b, m // mr, full_group, "xgrp")
        if m % mr:
            group(m % mr)

    _q8_weight_blocks(b, cnt, block, [(wp, k), (sp, 4)])


def _q8_out(
    b: Builder, acc: VReg, sx: VReg, scale, sp: VReg, y: str, yp: VReg, s_off: int, y_off: int
) -> None:
    """One output of ``matmul_q8``: y = f32(the lane sum of ``acc``) * (scale * sx), ``scale`` the per-row
    scale at ``sp + s_off`` (a Tensor: ws) or the per-tensor one (a register), stored at ``yp + y_off``."""
    t = b.new("r")
    b.emit("DRED", t, acc, type="i32", mod="add")
    f = b.new("r")
    b.emit("DCVT", f, t, None, type="f32", type2="i32")
    sc = b.new("r")
    if isinstance(scale, VReg):
        b.emit("DMUL", sc, scale, sx, type="f32")
    else:
        b.emit("DMUL", sc, ld(b, "f32", scale.scroll, at(b, sp, s_off), cls="r"), sx, type="f32")
    o = b.new("r")
    b.emit("DMUL", o, f, sc, type="f32")
    st(b, "f32", o, y, at(b, yp, y_off))


def _q8_weight_blocks(b: Builder, cnt: int, block, ptrs: list[tuple[VReg, int]]) -> None:
    """``block(nrows, gap)`` over ``cnt`` weight rows in blocks of ``Q8_ROWS``; ``ptrs``: (register, bytes
    per weight row) advanced between blocks. With ``Q8_STREAMS``, Q8_ROWS streams of ``per`` consecutive
    rows each: block i takes row i of every stream (``gap`` = per), so each stream reads its weights
    front to back (the next block's row follows the last one); the rest, adjacent rows."""
    rb = Q8_ROWS
    per = cnt // rb
    if Q8_STREAMS and per > 1:

        def sblk() -> None:
            block(rb, per)
            for r, s in ptrs:
                bump(b, r, s)

        loop(b, per, sblk, "nblk")
        for r, s in ptrs:
            bump(b, r, (rb - 1) * per * s)
    else:

        def blk() -> None:
            block(rb, 1)
            for r, s in ptrs:
                bump(b, r, rb * s)

        loop(b, per, blk, "nblk")
    if cnt % rb:
        block(cnt % rb, 1)
