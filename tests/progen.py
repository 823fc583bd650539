"""Hypothesis strategies that build valid svISA programs straight from the op table."""

from __future__ import annotations

from hypothesis import strategies as st

from vtpu_cli.binary.program import (
    MEM_CONTIG,
    MEM_INDEXED,
    MEM_STRIDED,
    DataScroll,
    Imm,
    Instr,
    Mem,
    Output,
    Program,
    Reg,
    check_instr,
)
from vtpu_cli.core import coords
from vtpu_cli.core.numerics import bf16_bits, f32_bits
from vtpu_cli.isa.table import ANY_SENDER, HOME_COORD, OPS, PIPES, REG_COUNTS, lanes

REAL_OPS = [op for op in OPS if not op.is_nop]
COORD_POOL = [coords.pack(coords.Coord((1, 1, 1, 1, 1, 1, 1, 1, k))) for k in (1, 2, 3, 999)]


def reg(cls: str):
    return st.integers(0, REG_COUNTS[cls] - 1).map(lambda i: Reg(cls, i))


def typed_imm(t: str | None):
    if t == "f32":
        return st.one_of(
            st.floats(width=32, allow_nan=False).map(f32_bits), st.just(0x7FC00000), st.integers(0, 2**32 - 1)
        )
    if t == "bf16":
        return st.floats(width=32, allow_nan=False).map(bf16_bits)
    bits = {"i8": 8, "i16": 16, "i32": 32}.get(t or "i64", 64)
    return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


@st.composite
def instr(draw, op=None, ncode: int = 8, ngroups: int = 1):
    op = op or draw(st.sampled_from(REAL_OPS))
    mod = draw(st.sampled_from(op.mods)) if op.mods else None
    t = draw(st.sampled_from(op.types)) if op.types else None
    t2 = draw(st.sampled_from(op.types2)) if op.types2 else None
    form = "v" if op.vector_only else draw(st.sampled_from("rv"))
    if op.name == "DMOV":
        t = None
    args = []
    for i, spec in enumerate(op.operands):
        if spec.optional and draw(st.booleans()):
            args.append(None)
            continue
        k = spec.kind
        rng = {idx: (lo, hi) for idx, lo, hi in op.imm_range}
        if k in ("r", "v", "p", "m"):
            args.append(draw(reg(k)))
        elif k == "rv":
            args.append(draw(reg(form)))
        elif k == "rvi":
            if form == "r" or draw(st.booleans()):
                args.append(draw(st.one_of(reg(form), typed_imm(t).map(Imm))))
            else:
                args.append(draw(reg(form)))
        elif k == "rvs":
            if form == "v":
                args.append(draw(reg("v")))
            else:
                choice = draw(st.integers(0, 2))
                if choice == 0:
                    args.append(draw(reg("r")))
                elif choice == 1:
                    args.append(Reg("s", draw(st.integers(0, 2))))
                else:
                    t = draw(st.sampled_from(["i64", "f32"]))
                    args.append(Imm(draw(typed_imm(t))))
        elif k == "ri":
            if op.name == "CRECV" and draw(st.booleans()):
                args.append(Imm(ANY_SENDER))
            else:
                imm_t = t if op.name == "DBCAST" else None
                lo, hi = rng.get(i, (None, None))
                ims = st.integers(lo, hi) if lo is not None else typed_imm(imm_t)
                args.append(draw(st.one_of(reg("r"), ims.map(Imm))))
        elif k == "imm":
            lo, hi = rng.get(i, (0, 100))
            if i in op.pow2:
                args.append(Imm(2 ** draw(st.integers(0, 12))))
            else:
                args.append(Imm(draw(st.integers(lo, hi))))
        elif k == "label":
            args.append(Imm(draw(st.integers(0, ncode))))
        elif k == "coord":
            args.append(Imm(draw(st.sampled_from([*COORD_POOL, HOME_COORD]))))
        elif k == "group":
            args.append(Imm(draw(st.integers(0, ngroups))))
        elif k == "mem":
            modes = [MEM_CONTIG, MEM_STRIDED] + ([MEM_INDEXED] if t in ("f32", "i32", "i64") else [])
            mode = draw(st.sampled_from(modes)) if form == "v" else MEM_CONTIG
            off = draw(st.one_of(reg("r"), st.integers(-(2**31), 2**31 - 1).map(Imm)))
            if mode == MEM_CONTIG:
                extra = draw(st.one_of(st.none(), st.integers(1, 64).map(Imm))) if form == "v" else None
            elif mode == MEM_STRIDED:
                extra = draw(st.one_of(reg("r"), st.integers(-1000, 1000).map(Imm)))
            else:
                extra = draw(reg("v"))
            # a register offset may carry a displacement (svISA v2), often a small one
            disp = 0
            if isinstance(off, Reg) and draw(st.booleans()):
                disp = draw(st.one_of(st.integers(-128, 256), st.integers(-(2**31), 2**31 - 1)))
            args.append(Mem(draw(st.integers(0, 7)), off, mode, extra, disp))
    if op.name == "DMOV" and isinstance(args[1], Imm):
        t = t or "i64"
    if op.name == "DCVT" and args[2] is not None and check_instr(Instr(op, mod, t, t2, tuple(args))):
        args[2] = None  # a part is only valid between vector types of different widths
    return Instr(op, mod, t, t2, tuple(args))


def _conflict(a: Instr, b: Instr) -> bool:
    ra, wa = a.regs()
    rb, wb = b.regs()
    return bool((wa & (rb | wb)) | (wb & ra))


@st.composite
def program(draw, max_siws: int = 8):
    n = draw(st.integers(1, max_siws))
    groups = [("g1", (0, 2, 4)), ("everyone", None)]
    by_pipe = {p: [op for op in REAL_OPS if op.pipe == p] for p in PIPES}
    code = []
    for _ in range(n):
        slots = []
        for p in PIPES:
            if draw(st.booleans()):
                ins = draw(instr(op=draw(st.sampled_from(by_pipe[p])), ncode=n, ngroups=len(groups)))
                if any(_conflict(ins, other) for other in slots if not other.is_nop):
                    ins = Instr(OPS[[o.name for o in OPS].index(p + "NOP")])
            else:
                ins = Instr(OPS[[o.name for o in OPS].index(p + "NOP")])
            slots.append(ins)
        code.append(tuple(slots))
    data = [
        DataScroll(COORD_POOL[0], "f32", (2,), bytes(8)),
        DataScroll(COORD_POOL[1], "t2", (5,), b"\x19\x02"),
        DataScroll(COORD_POOL[2], "i8", (0,), b"", zero=True, nbytes=0),
    ]
    return Program(
        code=code,
        labels={"start": 0, "end": n},
        coord_names={"X": COORD_POOL[0]},
        groups=groups,
        data=data,
        outputs=[
            Output("reg", reg=Reg("r", 1), dtype="i64"),
            Output("scroll", coord=COORD_POOL[0], dtype="f32"),
        ],
        source_file="gen.vasm",
        lines=list(range(1, n + 1)),
    )


__all__ = ["instr", "program", "lanes"]


# ----------------------------------------------------------------------------- richer generators (#11)
# Source-level generators for the differential campaign: nested counted loops with many trips, every S
# op (SALLOC/SFREE/SDEDUP/SPREFCH/SFLUSH included), strided accesses with any stride, indexed accesses,
# and multi-sentron CSEND/CRECV/CBAR/CREDUCE/CCAST patterns on 2..16 sentrons. They produce assembly
# text, so labels and loops stay readable in a failure report.

_DTYPES = ("i64", "i32", "i16", "i8", "f32")


def _d_line(draw, regs=range(0, 8), vregs=range(0, 8)) -> str:
    """One D-pipe op on scalar or vector registers (no control flow)."""
    op = draw(
        st.sampled_from(["DADD", "DSUB", "DMUL", "DMIN", "DMAX", "DAND", "DXOR", "DSHL", "DFMA", "DCMP"])
    )
    t = draw(st.sampled_from(("i32", "i16", "i8", "i64") if op in ("DAND", "DXOR", "DSHL") else _DTYPES))
    vec = draw(st.booleans())
    pool = [f"v{i}" for i in vregs] if vec else [f"r{i}" for i in regs]
    d, a, b = (draw(st.sampled_from(pool)) for _ in range(3))
    if draw(st.booleans()) and op != "DFMA":
        b = str(draw(st.integers(-3, 9)))
    mod = ".lt" if op == "DCMP" else ""
    if op == "DFMA":
        return f"    DFMA.{t} {d}, {a}, {b}, {draw(st.sampled_from(pool))}"
    return f"    {op}{mod}.{t} {d}, {a}, {b}"


@st.composite
def memory_source(draw) -> str:
    """One sentron: nested loops over every S op, strided (any stride) and indexed accesses."""
    size = draw(st.sampled_from([64, 128, 256, 300, 1024]))
    data = ", ".join(str((i * 37 + 11) % 256) for i in range(size))
    idx = ", ".join(str(draw(st.integers(0, size // 4 - 1))) for _ in range(16))
    outer, inner = draw(st.integers(1, 12)), draw(st.integers(1, 9))
    lines = [
        ".coord A = 1.2.2/1.1.1/1.1.1",
        ".coord I = 1.2.2/1.1.1/1.1.2",
        ".coord D = 1.2.2/1.1.1/1.1.9",
        f".data A u8[{size}] {data}",
        f".data I i32[16] {idx}",
        ".output r0, r1, r2, r3, v0.i32, v1.i32, v2.f32",
        "    SCOORD p0, A",
        "    SCOORD p1, I",
        "    SCOORD p2, D",
        "    SGATHER.i32 v7, [p1]",
        f"    DMOV r12, {outer}",
        "outer:",
        f"    DMOV r13, {inner}",
        "inner:",
    ]
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["d", "strided", "indexed", "contig", "alloc", "dedup", "tier", "store"]))
        if kind == "d":
            lines.append(_d_line(draw))
        elif kind == "strided":
            stride = draw(st.one_of(st.integers(-8, 20), st.sampled_from([0, 1, 2, 3, 9, 10, 17, 64, 140])))
            t = draw(st.sampled_from(["i32", "f32", "i8", "i16", "i64"]))
            lines.append(
                f"    SGATHER.{t} v{draw(st.integers(0, 5))}, [p0 + {draw(st.integers(0, 16))} : {stride}]"
            )
        elif kind == "indexed":
            t = draw(st.sampled_from(["i32", "f32", "i64"]))
            lines.append(
                f"    SGATHER.{t} v{draw(st.integers(0, 5))}, [p0 + {4 * draw(st.integers(0, 4))} + v7]"
            )
        elif kind == "contig":
            n = draw(st.integers(1, 64))
            # an svISA v2 displacement on the register offset
            d = draw(st.sampled_from(["", " + 8", " - 1", " + 64", f" + {size - 64}"]))
            lines.append(f"    SGATHER.i8 v{draw(st.integers(0, 5))}, [p0 + r13{d}], {n}")
        elif kind == "alloc":
            n = draw(st.integers(0, 512))
            lines += [
                f"    SALLOC p2, {n}",
                f"    SSCATTR.i8 [p2 + 0], r{draw(st.integers(0, 3))}" if n else "    SNOP",
                "    SFREE p2",
            ]
        elif kind == "dedup":
            lines.append(
                f"    SDEDUP.i32 v{draw(st.integers(0, 2))}, v{draw(st.integers(3, 5))}, r{draw(st.integers(0, 3))}, v7"
            )
        elif kind == "tier":
            lines.append(
                draw(st.sampled_from(["    SPREFCH p0", "    SFLUSH p0", "    SPREFCH p1", "    SFLUSH p1"]))
            )
        else:
            lines.append(
                f"    SSCATTR.i32 [p0 + {4 * draw(st.integers(0, size // 4 - 1))}], r{draw(st.integers(0, 3))}"
            )
    lines += ["    DLOOP r13, inner", "    DADD.i64 r0, r0, 1", "    DLOOP r12, outer"]
    return "\n".join(lines) + "\n"


@st.composite
def fleet_source(draw) -> tuple[str, int]:
    """2..16 sentrons running the same loop of ring messages, collectives and scroll hand-offs (race-free
    by construction: a scroll another sentron reads is written, read and freed between barriers)."""
    n = draw(st.sampled_from([2, 3, 4, 5, 8, 16]))
    trips = draw(st.integers(1, 20))
    lines = [
        ".output r0, r1, r2, r3, r4, r5, v0.i32, v1.f32",
        "    DMOV r8, sid",
        "    DMOV r9, scount",
        "    DADD.i64 r10, r8, 1",  # right neighbour
        "    DCMP.eq.i64 r11, r10, r9",
        "    DBRF right_ok",
        "    DMOV r10, 0",
        "right_ok:",
        "    DSUB.i64 r11, r8, 1",  # left neighbour
        "    DCMP.lt.i64 r12, r11, 0",
        "    DBRF left_ok",
        "    DSUB.i64 r11, r9, 1",
        "left_ok:",
        "    DMUL.i64 r0, r8, 7",
        "    DBCAST.i32 v0, r8",
        "    DCVT.f32.i32 v1, v0",
        # p3: this sentron's private coordinate (library 7 beside its home), p4: the left neighbour's
        "    SCOORD p3, home",
        "    SINDEX.set p3, p3, 0, 7",
        "    DADD.i64 r7, r11, 1",
        "    SINDEX.set p4, p3, 8, r7",
        f"    DMOV r13, {trips}",
        "loop:",
    ]
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(
            st.sampled_from(["d", "ring", "ring_v", "bar", "reduce", "reduce_v", "cast", "any", "scroll"])
        )
        if kind == "scroll":  # make a scroll, let the right neighbour read (and flush) it, free it
            lines += [
                f"    SALLOC p3, {draw(st.sampled_from([16, 64, 200]))}",
                f"    SSCATTR.i64 [p3 + 8], r{draw(st.integers(0, 5))}",
                "    CBAR 0",
                f"    SGATHER.i64 r{draw(st.integers(0, 5))}, [p4 + 8]",
            ]
            if draw(st.booleans()):
                lines.append("    SFLUSH p4")
            lines += ["    CBAR 0", "    SFREE p3"]
        elif kind == "d":
            lines.append(_d_line(draw, regs=range(0, 6), vregs=range(0, 4)))
        elif kind in ("ring", "ring_v"):
            src = f"r{draw(st.integers(0, 5))}" if kind == "ring" else f"v{draw(st.integers(0, 3))}"
            dst = f"r{draw(st.integers(0, 5))}" if kind == "ring" else f"v{draw(st.integers(0, 3))}"
            t = draw(st.sampled_from(["i64", "i32", "f32"]))
            lines += [
                f"    CPACK.{t} m0, {src}",
                "    CSEND m0, r10",
                "    CRECV m1, r11",
                f"    CUNPACK.{t} {dst}, m1",
            ]
        elif kind == "any":  # everyone sends right, then receives from whoever sent (only the left one)
            lines += [
                f"    CPACK.i64 m2, r{draw(st.integers(0, 5))}",
                "    CSEND m2, r10",
                "    CRECV m3, -1, r14",
                f"    CUNPACK.i64 r{draw(st.integers(0, 5))}, m3",
            ]
        elif kind == "bar":
            lines.append("    CBAR 0")
        elif kind in ("reduce", "reduce_v"):
            op = draw(st.sampled_from(["add", "min", "max"]))
            t = draw(st.sampled_from(["i64", "i32", "f32"]))
            if kind == "reduce":
                lines.append(
                    f"    CREDUCE.{op}.{t} r{draw(st.integers(0, 5))}, r{draw(st.integers(0, 5))}, 0"
                )
            else:
                lines.append(
                    f"    CREDUCE.{op}.{t} v{draw(st.integers(0, 3))}, v{draw(st.integers(0, 3))}, 0"
                )
        else:
            root = draw(st.integers(0, n - 1))
            t = draw(st.sampled_from(["i64", "i32", "f32"]))
            lines += [
                f"    DMOV r15, {root}",
                f"    CCAST.{t} r{draw(st.integers(0, 5))}, r{draw(st.integers(0, 5))}, r15, 0",
            ]
    lines.append("    DLOOP r13, loop")
    return "\n".join(lines) + "\n", n


__all__ += ["fleet_source", "memory_source"]
