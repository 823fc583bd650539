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
            args.append(Mem(draw(st.integers(0, 7)), off, mode, extra))
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
