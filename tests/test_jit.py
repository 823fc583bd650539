"""The JIT engine: differential tests against the interpreter (the golden model), ABI and cache tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.binary.program import (
    MEM_CONTIG,
    MEM_INDEXED,
    MEM_STRIDED,
    DataScroll,
    Imm,
    Instr,
    Mem,
    Program,
    Reg,
    nop,
)
from vtpu_cli.core import coords
from vtpu_cli.engines.compare import same_result
from vtpu_cli.engines.interp.interpreter import Interpreter
from vtpu_cli.isa.table import BY_NAME, OPS, type_size
from vtpu_cli.machine.memory import Memory
from vtpu_cli.machine.semantics import OpFault

jit = pytest.importorskip("vtpu_cli.engines.jit.engine")
jc = pytest.importorskip("vtpu_cli.engines.jit.compile")
OK, WHY = jc.jit_available()
pytestmark = pytest.mark.skipif(not OK, reason=f"JIT unavailable: {WHY}")

A = coords.pack(coords.Coord((1, 1, 1, 1, 1, 1, 1, 1, 1)))
B = coords.pack(coords.Coord((1, 1, 1, 1, 1, 1, 1, 1, 2)))
Z = coords.pack(coords.Coord((1, 1, 1, 1, 1, 1, 1, 1, 3)))  # zero-length scroll
MISSING = coords.pack(coords.Coord((1, 1, 1, 1, 1, 1, 1, 1, 9)))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jitcache")


_CACHE_DIR = None


def _cache_dir():
    global _CACHE_DIR
    if _CACHE_DIR is None:
        import tempfile

        _CACHE_DIR = tempfile.mkdtemp(prefix="vtpu-jit-test-")
    return _CACHE_DIR


def both(
    program: Program, sentrons: int = 1, *, max_steps=None, portable=False, states=True, replay=None, **kw
):
    """Run both engines; return (interp result, jit result, differences).

    ``replay="precise"`` makes a faulting fast-variant run replay natively with the precise variant
    (by default short runs replay in the interpreter)."""
    ref = Interpreter(program, sentrons, max_steps=max_steps).run()
    eng = jit.JitEngine(
        program, sentrons, max_steps=max_steps, portable=portable, cache_dir=_cache_dir(), **kw
    )
    if replay == "precise":
        eng.replay_interp_steps = -1
    res = eng.run()
    assert res.engine == "jit", res.fallback
    if res.native_faults:  # the native run faulted, where the replay reports (checked by the engine too)
        assert res.replay and ref.fault is not None and ref.fault.kind == "fault"
        if sentrons == 1:
            (sid, pc, slot), f = res.native_faults[0], ref.fault
            assert (sid, pc, "DSC"[slot]) == (f.sentron, f.siw, f.pipe)
    return ref, res, same_result(ref, res, states=states)


def check(program: Program, sentrons: int = 1, **kw):
    ref, res, diffs = both(program, sentrons, **kw)
    assert diffs == [], diffs
    assert res.siws == ref.siws and res.ops_by_pipe == ref.ops_by_pipe
    if sentrons == 1:
        assert (res.memory.stats.hits, res.memory.stats.misses) == (
            ref.memory.stats.hits,
            ref.memory.stats.misses,
        )
    return ref, res


# =================================================================== a generator of runnable programs
D_OPS = [op for op in OPS if op.pipe == "D" and not op.branch and op.name not in ("DNOP", "DHALT")]


def _siw(*instrs: Instr):
    slots = {p: nop(p) for p in "DSC"}
    for i in instrs:
        slots[i.op.pipe] = i
    return (slots["D"], slots["S"], slots["C"])


def _ins(name, *args, t=None, mod=None, t2=None):
    op = BY_NAME[name]
    return Instr(op, mod if mod is not None else (op.mods[0] if op.mods else None), t, t2, tuple(args))


r = lambda i: Reg("r", i)  # noqa: E731
v = lambda i: Reg("v", i)  # noqa: E731
p = lambda i: Reg("p", i)  # noqa: E731


@st.composite
def d_instr(draw):
    """A random D-pipe compute op (any type/form) on registers that the preamble initialised."""
    from progen import instr

    ins = draw(instr(op=draw(st.sampled_from(D_OPS))))
    if ins.op.name == "DCVT" and ins.args[0].cls == "v" and ins.args[2] is not None:
        ds, ss = (type_size(ins.type), type_size(ins.type2))
        n = 64 // max(ds, ss)
        assume(ds == ss or (ins.args[2].value + 1) * n <= 64 // min(ds, ss))
    return ins


@st.composite
def s_instr(draw, scroll_size: int):
    """Memory ops near the bounds of scroll A (p0), B (p1) or the zero-length scroll (p2)."""
    kind = draw(st.sampled_from(["scalar", "contig", "strided", "indexed", "sindex", "spart", "missing"]))
    store = draw(st.booleans())
    name = "SSCATTR" if store else "SGATHER"
    base = draw(st.sampled_from([0, 0, 1, 2]))
    near = st.one_of(
        st.integers(-4, scroll_size + 4),
        st.integers(0, scroll_size - 1),
        st.sampled_from([scroll_size - 64, scroll_size - 8, -(2**40)]),
    )
    if kind == "scalar":
        t = draw(st.sampled_from(["f32", "i64", "i32", "i16", "i8", "bf16"]))
        m = Mem(base, Imm(draw(near)))
        reg = r(draw(st.integers(0, 7)))
    elif kind == "contig":
        t = draw(st.sampled_from(["f32", "i32", "i8", "bf16", "i64"]))
        nb = draw(st.one_of(st.none(), st.integers(1, 64)))
        m = Mem(base, Imm(draw(near)), MEM_CONTIG, None if nb is None else Imm(nb))
        reg = v(draw(st.integers(0, 7)))
    elif kind == "strided":
        t = draw(st.sampled_from(["f32", "i32", "i16", "i8", "i64", "bf16"]))
        stride = draw(st.one_of(st.integers(-8, 16), st.just(1 << 41)))
        if draw(st.booleans()):
            m = Mem(base, Imm(draw(near)), MEM_STRIDED, Imm(stride))
        else:
            m = Mem(base, r(8), MEM_STRIDED, r(9))
        reg = v(draw(st.integers(0, 7)))
    elif kind == "indexed":
        t = draw(st.sampled_from(["f32", "i32", "i64"]))
        m = Mem(base, Imm(draw(st.integers(-4, 64))), MEM_INDEXED, v(10))
        reg = v(draw(st.integers(0, 7)))
    elif kind == "sindex":
        mode = draw(st.sampled_from(["add", "wrap", "set", "carry"]))
        delta = draw(
            st.one_of(
                st.integers(-1000, 1000),
                st.integers(-3, 3),
                st.integers(-(2**63), 2**63 - 1),
                st.integers(-(999**3), 999**3),
            )
        )
        dim = draw(st.integers(0, 8))
        return _ins(
            "SINDEX",
            p(draw(st.integers(3, 5))),
            p(draw(st.sampled_from([0, 3]))),
            Imm(dim),
            Imm(delta),
            mod=mode,
        )
    elif kind == "spart":
        return _ins(
            "SPART", r(draw(st.integers(0, 7))), p(draw(st.integers(0, 5))), Imm(draw(st.integers(0, 8)))
        )
    else:
        return _ins("SGATHER", v(0), Mem(6, Imm(0)), t="i8")
    args = (m, reg) if store else (reg, m)
    return _ins(name, *args, t=t)


@st.composite
def programs(draw, max_body: int = 8):
    size = 256
    data_a = draw(st.binary(min_size=size, max_size=size))
    data_b = draw(st.binary(min_size=128, max_size=128))
    pre = [
        _siw(_ins("SCOORD", p(0), Imm(A))),
        _siw(_ins("SCOORD", p(1), Imm(B))),
        _siw(_ins("SCOORD", p(2), Imm(Z))),
        _siw(_ins("SCOORD", p(6), Imm(MISSING))),
    ]
    for i in range(8):
        pre.append(_siw(_ins("SGATHER", v(i), Mem(0, Imm(draw(st.integers(0, size - 64)))), t="i8")))
    for i in range(8):
        pre.append(
            _siw(
                _ins(
                    "DMOV",
                    r(i),
                    Imm(
                        draw(
                            st.one_of(
                                st.integers(-3, 3),
                                st.integers(-(2**63), 2**63 - 1),
                                st.integers(0, 2**32 - 1),
                            )
                        )
                    ),
                    t="i64",
                )
            )
        )
    pre.append(_siw(_ins("DMOV", r(8), Imm(draw(st.integers(-2, 200))), t="i64")))
    pre.append(_siw(_ins("DMOV", r(9), Imm(draw(st.integers(-4, 12))), t="i64")))
    pre.append(_siw(_ins("DBCAST", v(10), Imm(draw(st.integers(-1, 40))), t="i32")))
    body = []
    for _ in range(draw(st.integers(1, max_body))):
        what = draw(st.sampled_from(["d", "d", "d", "s", "ds", "c"]))
        if what == "d":
            body.append(_siw(draw(d_instr())))
        elif what == "s":
            body.append(_siw(draw(s_instr(size))))
        elif what == "c":
            src = draw(st.sampled_from([r(draw(st.integers(0, 7))), v(draw(st.integers(0, 7)))]))
            t = draw(st.sampled_from(["f32", "i64", "i32", "i16", "i8", "bf16"]))
            m = Reg("m", draw(st.integers(0, 3)))
            body.append(_siw(_ins("CPACK", m, src, t=t)))
            dst = r(draw(st.integers(0, 7))) if draw(st.booleans()) else v(draw(st.integers(0, 7)))
            body.append(_siw(_ins("CUNPACK", dst, m, t=draw(st.sampled_from(["f32", "i64", "i16", "i8"])))))
        else:
            dd, ss = draw(d_instr()), draw(s_instr(size))
            from progen import _conflict

            body.append(_siw(dd, ss) if not _conflict(dd, ss) else _siw(dd))
    code = list(pre)
    if draw(st.booleans()):  # wrap the body in a counted loop (r15) with a conditional skip inside
        code.append(_siw(_ins("DMOV", r(15), Imm(draw(st.integers(1, 3))), t="i64")))
        head = len(code)
        code.append(
            _siw(
                _ins(
                    "DCMP",
                    r(14),
                    r(draw(st.integers(0, 7))),
                    Imm(0),
                    t="i64",
                    mod=draw(st.sampled_from(["lt", "eq", "ne"])),
                )
            )
        )
        code.append(_siw(_ins("DBRT", Imm(head + 3))))
        code.append(_siw(_ins("DADD", r(13), r(13), Imm(1), t="i64")))
        body = [
            s
            for s in body
            if not any(
                isinstance(a, Reg) and a.cls == "r" and a.idx in (13, 14, 15) for i in s for a in i.args
            )
        ]
        code.extend(body)
        code.append(_siw(_ins("DLOOP", r(15), Imm(head))))
    else:
        code.extend(body)
    if draw(st.booleans()):
        code.append(_siw(_ins("DHALT")))
        code.append(_siw(_ins("DMOV", r(0), Imm(12345), t="i64")))
    data = [
        DataScroll(A, "u8", (size,), data_a),
        DataScroll(B, "u8", (128,), data_b),
        DataScroll(Z, "u8", (0,), b"", zero=True, nbytes=0),
    ]
    return Program(code=code, data=data, lines=list(range(1, len(code) + 1)))


def _interp_ok(prog: Program, **kw) -> bool:
    """False when the interpreter itself crashes on the program (known golden-model issues, see report)."""
    try:
        Interpreter(prog, **kw).run()
    except OpFault:
        return False
    except (ValueError, IndexError):
        return False
    return True


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs())
def test_differential_random_programs(prog):
    assume(_interp_ok(prog))
    check(prog)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs(max_body=16))
def test_differential_random_programs_slow(prog):
    assume(_interp_ok(prog))
    check(prog)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs(max_body=5))
def test_differential_portable_lowering(prog):
    assume(_interp_ok(prog))
    check(prog, portable=True)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_differential_arbitrary_op_table_programs(data):
    """Any op from the table with any operands (progen), step-limited: faults, limits and all."""
    from progen import program

    prog = data.draw(program(max_siws=6))
    assume(_interp_ok(prog, max_steps=40))
    check(prog, max_steps=40)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs())
def test_differential_precise_replay(prog):
    """A native fault replayed natively (precise variant: registers written back at the fault)."""
    ref, res = check(prog, replay="precise")
    if ref.status == "fault":
        assert res.replay == "precise"


# =================================================================== hand-written cases
def test_fault_replay_in_interpreter_and_natively():
    prog = assemble("""
.coord A = 1.1.1/1.1.1/1.1.1
.zero A f32[32]
    SCOORD p0, A
    DMOV r1, 40
    DMOV r2, 0
loop:
    DFMA.f32 v0, v2, v2, v0 | SGATHER.f32 v1, [p0 + r2]
    DADD r2, r2, 4
    DADD.i32 v3, v3, v1
    DMOV v2, v1
    DLOOP r1, loop
""")
    for replay in (None, "precise"):
        ref, res = check(prog, replay=replay)
        assert res.status == "fault" and "out-of-bounds load" in res.fault.message
        assert res.replay == (replay or "interp") and res.cycles > 0


def test_sindex_carry_native():
    prog = assemble("""
.coord A = 1.1.1/1.1.998/999.999.998
    SCOORD p0, A
    SINDEX.carry p1, p0, 8, 1
    SINDEX.carry p2, p0, 8, 3
    SINDEX.carry p3, p0, 7, -999000
    SINDEX.carry p4, p0, 8, -2000
    DMOV r1, 9223372036854775807
    SINDEX.carry p5, p0, 8, r1
""")
    ref, res = check(prog)
    assert res.status == "ok" and res.sentrons[0].P[2] == coords.parse_packed("1.1.1/1.1.999/1.1.2")
    over = assemble("""
.coord A = 999.999.999/999.999.999/999.999.998
    SCOORD p0, A
    SINDEX.carry p1, p0, 8, 1
    SINDEX.carry p2, p0, 8, 2
""")
    ref, res = check(over)
    assert res.status == "fault" and "overflows the library" in res.fault.message


def test_deferred_nan_canonicalisation_is_exact():
    """f32 results that may be raw NaNs (0*inf gives x86's negative default NaN) cross loop edges;
    every bit-level reader sees the canonical 0x7FC00000 (stores, integer ops, bf16, messages)."""
    prog = assemble("""
.coord A = 1.1.1/1.1.1/1.1.1
.coord B = 1.1.1/1.1.1/1.1.2
.data A f32[16] 0.0, 1.0, -2.5, 3.0, 0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0
.zero B u8[512]
    SCOORD p0, A
    SCOORD p1, B
    DMOV r1, 3
    DBCAST.f32 v1, 0x7F800000         ; +inf
    SGATHER.f32 v2, [p0]
loop:
    DFMA.f32 v0, v1, v2, v0           ; inf * 0 -> NaN in lanes 0, 4, 8, 12
    DMUL.f32 v4, v1, v2
    DSUB.f32 v5, v4, v4
    DSQRT.f32 v6, v5
    DCMP.lt.f32 v7, v0, v2
    DLOOP r1, loop
    DADD.i32 v8, v0, 0                | SSCATTR.f32 [p1], v0
    DCVT.bf16.f32 v9, v4, 0           | SSCATTR.f32 [p1 + 64], v5
    DRED.add.f32 r2, v6               | SSCATTR.f32 [p1 + 128], v6
    DMOV v10, v5                      | SSCATTR.f32 [p1 + 192], v8 | CPACK.f32 m0, v4
""")
    ref, res = check(prog)
    bits = res.memory.table[B].buf[:64].view("<u4")
    assert bits[0] == 0x7FC00000


def test_native_ppt_lru_with_set_conflicts():
    """More scrolls than ways in one PPT set (2 sets): hits, misses and LRU order match exactly."""
    lines = []
    for i in range(12):
        lines.append(f".coord S{i} = 1.1.1/1.1.1/1.1.{i + 1}\n.zero S{i} i32[16]")
    body = [f"    SCOORD p{i % 8}, S{i}" for i in range(8)]
    prog_text = (
        "\n".join(lines)
        + "\n"
        + "\n".join(body)
        + """
    DMOV r1, 5
loop:
    SGATHER.i32 v0, [p0]
    SGATHER.i32 v1, [p1]
    SGATHER.i32 v2, [p2]
    SGATHER.i32 v3, [p0]
    SGATHER.i32 v4, [p3]
    SGATHER.i32 v5, [p4]
    SGATHER.i32 v6, [p5]
    SGATHER.i32 v7, [p6]
    SGATHER.i32 v8, [p7]
    SGATHER.i32 v9, [p7]
    DLOOP r1, loop
"""
    )
    prog = assemble(prog_text)
    for sets in (1, 2, 64):
        ref = Interpreter(prog, memory=_mem_sets(prog, sets)).run()
        res = jit.JitEngine(prog, memory=_mem_sets(prog, sets), cache_dir=_cache_dir()).run()
        assert same_result(ref, res) == []
        assert (res.memory.stats.hits, res.memory.stats.misses) == (
            ref.memory.stats.hits,
            ref.memory.stats.misses,
        )
        assert res.memory._cache == ref.memory._cache


def _mem_sets(prog, sets):
    from vtpu_cli.engines.interp.interpreter import load_memory

    m = Memory(sets=sets)
    load_memory(prog, m)
    return m


def test_minimal_loop_gather_scatter():
    prog = assemble("""
.coord A = 1.1.1/1.1.1/1.1.1
.data A i32 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16
    SCOORD p0, A
    DMOV r1, 10
loop:
    DADD r2, r2, 3  | SGATHER.i32 v0, [p0]
    DADD.i32 v1, v1, v0
    DLOOP r1, loop | SSCATTR.i32 [p0], v1
""")
    ref, res = check(prog)
    assert res.sentrons[0].R[2] == 30
    assert np.array_equal(res.memory.table[A].buf, ref.memory.table[A].buf)
    assert res.ppt_fast_hits > 0


@pytest.mark.parametrize("name", ["ternary_dot.vasm", "vadd.vasm", "dot.vasm"])
def test_example_programs(name):
    from pathlib import Path

    prog = assemble((Path(__file__).parent.parent / "programs" / name).read_text(), name)
    ref, res = check(prog)
    if name == "ternary_dot.vasm":
        assert res.sentrons[0].R[1] == 795


@pytest.mark.parametrize("portable", [False, True])
def test_ternary_and_ddot_lowerings(portable):
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, 64, dtype=np.int8).tobytes()
    w = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()  # includes the reserved code 3
    b = rng.integers(-128, 128, 64, dtype=np.int8).tobytes()
    code = [
        _siw(_ins("SCOORD", p(0), Imm(A))),
        _siw(_ins("SGATHER", v(0), Mem(0, Imm(0)), t="i8")),
        _siw(_ins("SGATHER", v(1), Mem(0, Imm(64)), t="i8")),
        _siw(_ins("SGATHER", v(2), Mem(0, Imm(128)), t="i8")),
        _siw(_ins("DBCAST", v(3), Imm(7), t="i32")),
        _siw(_ins("DTERNARY", v(3), v(0), v(1), Imm(0))),
        _siw(_ins("DTERNARY", v(3), v(0), v(1), Imm(3))),
        _siw(_ins("DDOT", v(4), v(0), v(2), t="i8")),
        _siw(_ins("DDOT", v(5), v(0), v(2), t="bf16")),
    ]
    prog = Program(code=code, data=[DataScroll(A, "u8", (192,), a + w + b)])
    ref, res = check(prog, portable=portable)
    assert res.sentrons[0].view("i32")[4].tolist() == ref.sentrons[0].view("i32")[4].tolist()
    assert any(res.sentrons[0].view("i32")[3])


def test_f32_edge_values_bit_exact():
    specials = np.array(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            np.nan,
            1e-45,
            -1e-45,
            3.4e38,
            -3.4e38,
            1.0,
            -1.5,
            2.5,
            0.5,
            1e10,
            -7.0,
            16777217.0,
        ],
        np.float32,
    )
    raw = specials.tobytes() + specials[::-1].tobytes() + np.array([-np.nan] * 16, np.float32).tobytes()
    code = [
        _siw(_ins("SCOORD", p(0), Imm(A))),
        _siw(_ins("SGATHER", v(0), Mem(0, Imm(0)), t="f32")),
        _siw(_ins("SGATHER", v(1), Mem(0, Imm(64)), t="f32")),
        _siw(_ins("SGATHER", v(2), Mem(0, Imm(128)), t="f32")),
    ]
    k = 3
    for name in ("DADD", "DSUB", "DMUL", "DDIV", "DMIN", "DMAX"):
        code.append(_siw(_ins(name, v(k), v(0), v(1), t="f32")))
        k += 1
    code.append(_siw(_ins("DFMA", v(k), v(0), v(1), v(2), t="f32")))
    code.append(_siw(_ins("DSQRT", v(k + 1), v(0), t="f32")))
    for i, (dt, st_) in enumerate(
        [("i32", "f32"), ("i8", "f32"), ("bf16", "f32"), ("i64", "f32"), ("f32", "bf16")]
    ):
        code.append(_siw(_ins("DCVT", v(k + 2 + i), v(0), None, t=dt, t2=st_)))
    for i, op in enumerate(("add", "min", "max")):
        code.append(_siw(_ins("DRED", r(i), v(0), t="f32", mod=op)))
    for i, cc in enumerate(("eq", "ne", "lt", "ge")):
        code.append(_siw(_ins("DCMP", v(20 + i), v(0), v(1), t="f32", mod=cc)))
    prog = Program(code=code, data=[DataScroll(A, "u8", (len(raw),), raw)])
    check(prog)


def test_integer_division_and_shift_edges():
    prog = assemble("""
    DMOV r1, 0x8000000000000000
    DMOV r2, -1
    DDIV r3, r1, r2
    DMOV r4, 70
    DSHL r5, r2, r4
    DSAR r6, r1, r4
    DSHR.i8 r7, r2, 9
    DDIV.i8 r8, r2, 0
""")
    ref, res = check(prog)
    assert res.status == "fault" and res.fault.message == "integer division by zero"
    assert res.sentrons[0].R[3] == -(2**63) and res.sentrons[0].R[5] == 0 and res.sentrons[0].R[6] == -1


def test_out_of_bounds_fault_is_identical():
    prog = assemble("""
.coord A = 1.1.1/1.1.1/1.1.1
.data A i8[8] 1, 2, 3, 4, 5, 6, 7, 8
    SCOORD p0, A
    DMOV r1, 4
    SGATHER.i32 r2, [p0 + r1]
    SGATHER.i64 r3, [p0 + r1]
""")
    ref, res = check(prog)
    assert res.status == "fault" and "out-of-bounds load of 8 byte(s)" in res.fault.message
    assert (res.fault.siw, res.fault.pipe, res.fault.op) == (3, "S", "SGATHER.i64")


def test_zero_length_scroll_and_missing_scroll():
    code = [_siw(_ins("SCOORD", p(0), Imm(Z))), _siw(_ins("SGATHER", r(1), Mem(0, Imm(0)), t="i8"))]
    prog = Program(code=code, data=[DataScroll(Z, "u8", (0,), b"", zero=True, nbytes=0)])
    ref, res = check(prog)
    assert "scroll size 0" in res.fault.message
    code = [_siw(_ins("SCOORD", p(0), Imm(MISSING))), _siw(_ins("SSCATTR", Mem(0, Imm(3)), r(1), t="i8"))]
    ref, res = check(Program(code=code))
    assert res.fault.message.startswith("no scroll at")


def test_unaligned_numpy_buffers():
    """Scroll buffers that are not 64-byte aligned (numpy gives no such promise)."""
    raw = np.zeros(64 * 4 + 1, np.uint8)
    buf = raw[1 : 65 * 3 + 1]  # misaligned view
    assert buf.ctypes.data % 64 != 0
    buf[:] = np.arange(buf.size, dtype=np.uint8)
    prog = assemble("""
.coord A = 1.1.1/1.1.1/1.1.1
    SCOORD p0, A
    SGATHER.f32 v0, [p0 + 3]
    DADD.i32 v1, v0, 1
    SSCATTR.i32 [p0 + 7], v1
    SGATHER.i16 v2, [p0 + 1 : 3]
""")

    def mem():
        m = Memory()
        m.add(A, buf.copy() if False else raw[1 : 65 * 3 + 1].copy())
        return m

    ref = Interpreter(prog, memory=mem()).run()
    m = Memory()
    m.add(A, buf)
    res = jit.JitEngine(prog, memory=m, cache_dir=_cache_dir()).run()
    assert same_result(ref, res) == []
    assert res.memory.table[A].buf.ctypes.data % 64 != 0


def test_step_limit_matches():
    prog = assemble("""
    DMOV r1, 1
loop:
    DADD r2, r2, r1
    DJMP loop
""")
    ref, res = check(prog, max_steps=101)
    assert res.status == "step-limit" and res.sentrons[0].R[2] == ref.sentrons[0].R[2] == 50


def test_step_limit_at_every_step_of_a_loop():
    """The limit at every SIW of a loop whose body is one block (loads, a store, register chains): the
    native code stops at the block's start and the interpreter runs the rest -- registers, memory,
    counts and PPT statistics as the interpreter's own run."""
    prog = assemble("""
.coord X = 1.1.1/1.1.1/1.1.1
.data X i64[4] 1, 2, 3, 4
    SCOORD p0, X
    DMOV r1, 1
loop:
    DADD r2, r2, r1                | SGATHER.i64 r3, [p0 + 8]
    DMUL r4, r2, 3
    DADD r5, r4, r3                | SSCATTR.i64 [p0 + 16], r4
    DSUB r6, r5, 1
    DJMP loop
""")
    for steps in range(0, 40):
        ref, res = check(prog, max_steps=steps)
        assert res.status == "step-limit" or steps < 2


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs(), st.integers(0, 400))
def test_step_limit_anywhere_in_a_block(prog, steps):
    """A one-sentron step limit is checked once per block natively (a block that would cross it exits
    at its start and the interpreter runs the rest): stopping at any step of random programs -- loops,
    memory, faults before the limit -- gives the interpreter's state, counts and PPT statistics."""
    check(prog, max_steps=steps)


def test_step_limit_is_checked_once_per_block_in_the_native_code():
    """The artefact: a 40-SIW block compiled with a step limit has one limit check (an ``icmp sgt``
    of the running count plus the block's length), not one per SIW; with a C-pipe op it keeps one per
    SIW (its messages in flight live in the native ring, which the interpreter cannot continue)."""
    from vtpu_cli.engines.jit import compile as jc

    body = "".join(f"    DADD r{1 + i % 8}, r{1 + i % 8}, {i}\n" for i in range(40))
    cpu, feats = jc.host_target()
    v = jc._Variant("local", False, 64, cpu, feats, 4, True, True)
    text = jc.build_module(assemble(body + "    DHALT\n"), v)[0]
    assert text.count("icmp sgt i64") == 1
    with_c = assemble(body + "    DMOV r9, 1 | | CPACK m0, r1\n    DHALT\n")
    assert not jc.block_limited(with_c, v) and jc.block_limited(assemble(body), v)
    assert jc.build_module(with_c, v)[0].count("icmp eq i64") >= 40


def test_slow_ops_salloc_sfree_sdedup_prefetch_flush():
    prog = assemble("""
.coord N = 2.1.1/1.1.1/1.1.1
    SCOORD p1, N
    DMOV r1, 100
    SALLOC p1, r1
    DBCAST.i32 v0, 5
    SSCATTR.i32 [p1 + 4], v0
    SPREFCH p1
    SFLUSH p1
    SGATHER.i32 v1, [p1]
    SDEDUP v2, v3, r4, v1
    SINDEX.carry p2, p1, 8, 1500
    SFREE p1
    SGATHER.i32 v5, [p1]
""")
    ref, res = check(prog)
    assert res.status == "fault" and res.fault.message.startswith("no scroll")
    assert res.sentrons[0].R[4] == 2


def test_single_sentron_collectives_and_self_messages():
    prog = assemble("""
    DMOV r1, 41
    CPACK m0, r1
    CSEND m0, 0
    CRECV m1, -1, r2
    CUNPACK r3, m1
    CREDUCE.add.i64 r4, r3, 0
    CBAR 0
    CCAST r5, r4, 0, 0
    CRECV m2, 0
""")
    ref, res = check(prog)
    assert res.status == "deadlock" and res.sentrons[0].R[5] == 41


# =================================================================== several sentrons
def test_multi_sentron_ring_and_collectives():
    prog = assemble("""
    DMOV r1, sid             ; r1 = id
    DMOV r2, scount
    DADD r3, r1, 1
    DCMP.eq r9, r3, r2
    DBRF nowrap
    DMOV r3, 0
nowrap:
    CPACK m0, r1
    DMOV r8, 20
loop:
    CSEND m0, r3
    CRECV m1, -1, r4
    DADD r5, r5, r4
    DLOOP r8, loop
    DMUL.f32 r6, r1, r1
    DCVT.f32.i64 r6, r1
    CREDUCE.add.f32 r7, r6, 0
    CBAR 0
    CCAST r10, r5, 0, 0
""")
    for n in (1, 2, 16):
        ref, res, diffs = both(prog, n)
        assert diffs == [], diffs
        assert res.siws == ref.siws


def test_multi_sentron_deadlock_is_reported():
    prog = assemble("""
    CRECV m0, 0
""")
    ref, res, diffs = both(prog, 3)
    assert res.status == "deadlock" and diffs == [], diffs
    assert "every live sentron is blocked" in res.fault.message


def test_multi_sentron_fault():
    prog = assemble("""
    DMOV r1, sid
    DDIV r2, r1, r1
""")
    ref, res = jit.JitEngine(prog, 4, cache_dir=_cache_dir()).run(), Interpreter(prog, 4).run()
    assert ref.status == res.status == "fault"
    assert ref.fault.message == res.fault.message == "integer division by zero"
    assert ref.fault.sentron == 0


def test_too_many_sentrons_fall_back_with_reason(monkeypatch):
    prog = assemble("""
    SALLOC p0, 64
""")
    from vtpu_cli.engines.base import load_memory
    from vtpu_cli.engines.select import EngineOptions, run_program
    from vtpu_cli.machine.memory import Memory

    mem = Memory()
    load_memory(prog, mem)
    res = run_program(prog, mem, EngineOptions(sentrons=2, cache_dir=_cache_dir()))
    assert res.engine == "jit" and res.fallback is None  # SALLOC with several sentrons runs natively
    monkeypatch.setenv(jit.MAX_JIT_SENTRONS_ENV, "1")
    mem = Memory()
    load_memory(prog, mem)
    res = run_program(prog, mem, EngineOptions(sentrons=2, cache_dir=_cache_dir()))
    assert res.engine == "interp" and "2 sentrons: the JIT runs at most 1" in res.fallback


# =================================================================== cache
def test_disk_cache_roundtrip(tmp_path):
    prog = assemble("DMOV r1, 77\nDADD r2, r1, r1\n")
    key_dir = tmp_path / "c"
    jc._loaded.clear()
    e1 = jit.JitEngine(prog, cache_dir=key_dir)
    r1 = e1.run()
    assert r1.cache_hit == "" and list(key_dir.glob("jit-*.o"))
    jc._loaded.clear()
    r2 = jit.JitEngine(prog, cache_dir=key_dir).run()
    assert r2.cache_hit == "disk" and r2.sentrons[0].R[2] == 154
    r3 = jit.JitEngine(prog, cache_dir=key_dir).run()
    assert r3.cache_hit == "memory"
    r4 = jit.JitEngine(prog, cache_dir=key_dir, no_cache=True).run()
    assert r4.cache_hit == "" and r4.sentrons[0].R[2] == 154
    assert r1.cycles > 0 and r1.tsc_hz > 1e8


def test_portable_env_var(monkeypatch):
    monkeypatch.setenv("VTPU_JIT_PORTABLE", "1")
    assert jc.host_target(jc._portable_env()) == ("x86-64", "")
    prog = assemble("DMOV r1, 5\nDMUL r2, r1, r1\n")
    res = jit.JitEngine(prog, cache_dir=_cache_dir()).run()
    assert res.sentrons[0].R[2] == 25 and res.engine == "jit"


# =================================================================== native C pipe and strided gathers
@pytest.mark.parametrize(
    "stride,t,off",
    [
        (0, "i32", 8),
        (4, "i32", 0),
        (8, "i32", 4),
        (12, "i32", 0),
        (2, "i8", 1),
        (8, "i32", 8),
        (0, "i8", 255),
    ],
)
def test_constant_stride_gathers(stride, t, off):
    """Span loads + shuffle (stride 0: a broadcast); the last case per stride leaves the scroll."""
    prog = assemble(f"""
.coord X = 1.2.2/1.1.1/1.1.1
.data X i32[64] {", ".join(str(i * 7 - 100) for i in range(64))}
    SCOORD p0, X
    SGATHER.{t} v1, [p0 + {off} : {stride}]
    SGATHER.{t} v2, [p0 + 64 : {stride}]
""")
    check(prog)


def test_native_c_pipe_queue_capacity_and_collectives():
    """A full queue (17 sends without a receive) deadlocks in both engines with the same report;
    CREDUCE min/max/add over f32/i32/i64 and CCAST from a register root match for 1, 2 and 16 sentrons."""
    sends = "\n".join(["    CSEND m0, 0"] * 17)
    ref, res, diffs = both(assemble(f"    CPACK m0, r1\n{sends}\n"), 1)
    assert res.status == "deadlock" and diffs == [], diffs
    prog = (
        assemble("""
    DMOV r1, sid
    DCVT.f32.i64 r2, r1
    DBCAST.i32 v1, r1
    DCVT.f32.i32 v2, v1
    CREDUCE.max.f32 r3, r2, 0
    CREDUCE.min.i64 r4, r1, 0
    CREDUCE.add.f32 v3, v2, 0
    CREDUCE.max.i32 v4, v1, 0
    DMOV r9, 1
    DMOD r9, r9, scount
    CCAST v5, v2, r9, 0
    CBAR 0
    CCAST.i32 r6, r1, r9, 0
""")
        if "DMOD" in BY_NAME
        else assemble("""
    DMOV r1, sid
    DCVT.f32.i64 r2, r1
    DBCAST.i32 v1, r1
    DCVT.f32.i32 v2, v1
    CREDUCE.max.f32 r3, r2, 0
    CREDUCE.min.i64 r4, r1, 0
    CREDUCE.add.f32 v3, v2, 0
    CREDUCE.max.i32 v4, v1, 0
    DMOV r9, 0
    CCAST v5, v2, r9, 0
    CBAR 0
    CCAST.i32 r6, r1, r9, 0
""")
    )
    for n in (1, 2, 16):
        ref, res, diffs = both(prog, n)
        assert diffs == [], (n, diffs)
        assert res.engine == "jit" and res.replay == "", res.replay
        assert res.fleet.stats.collectives == ref.fleet.stats.collectives


def test_multi_sentron_deadlock_report_identical_16():
    """16 sentrons: a barrier that sentron 0 skips (it waits for a message): the watchdog aborts the
    native run and the interpreter replay gives the golden report, wait graph included."""
    prog = assemble("""
    DMOV r1, sid
    DCMP.eq r9, r1, 0
    DBRT zero
    CBAR 0
    DHALT
zero:
    CRECV m0, -1
""")
    ref, res, diffs = both(prog, 16)
    assert res.status == "deadlock" and diffs == [], diffs
    assert res.fault.as_dict() == ref.fault.as_dict() and res.replay == "interp"


_IDX_PROG = """
.coord X = 1.2.2/1.1.1/1.1.1
.coord Y = 1.2.2/1.1.1/1.1.2
.data X i32[64] {data}
.zero Y i32[32]
    SCOORD p0, X                      | DMOV r2, {stride}
    SCOORD p1, Y                      | DMOV r1, 2
    SGATHER.i32 v7, [p0 + {ioff}]     ; 16 indexes (elements) from X
loop:
    SGATHER.i32 v1, [p0 + {off} + v7]
    SGATHER.i64 v2, [p0 + {off} + v7]
    SGATHER.f32 v3, [p0 + {off} : r2]
    DADD.i32 v4, v1, 1                | SSCATTR.i32 [p1 + 0 + v7], v1
    SSCATTR.i64 [p1 + 0 + v7], v2
    SSCATTR.f32 [p1 + 4 : r2], v3
    DLOOP r1, loop
"""


@pytest.mark.parametrize("mode", ["", "masked", "x86"])
@pytest.mark.parametrize(
    "ioff,off,stride",
    [
        (0, 0, 4),  # indexes 0..15 (in range)
        (128, 0, 0),  # indexes 32..47: lanes beyond the 128-byte Y scroll -> scatter faults
        (192, 8, -4),  # negative stride: lane 15 below 0 -> fault
        (64, 4, 8),  # overlapping scatter indexes below (duplicates)
        (64, 2, 8),  # a byte offset that is not a multiple of 4 (no permute gather)
    ],
)
def test_indexed_and_strided_gather_scatter(monkeypatch, mode, ioff, off, stride):
    """Per-lane and AVX-512 (vpgatherdd/vpscatterdd, llvm.masked.*) lowerings, in- and out-of-bounds
    lanes, duplicate scatter indexes (the highest lane wins), against the interpreter."""
    from vtpu_cli.engines.jit import lowering

    monkeypatch.setattr(lowering, "VGATHER", mode)
    data = [i * 37 % 11 if 16 <= i < 32 else (i * 3) % 29 for i in range(64)]  # X[16..31]: duplicates 0..10
    prog = assemble(_IDX_PROG.format(data=", ".join(map(str, data)), ioff=ioff, off=off, stride=stride))
    ref, res, diffs = both(prog, no_cache=True)
    assert diffs == [], diffs
    assert res.status == ref.status


def test_duplicate_scatter_indexes_highest_lane_wins(monkeypatch):
    """Sixteen lanes scattered to one element: the last lane's value stays (lane order)."""
    from vtpu_cli.engines.jit import lowering

    for mode in ("", "masked", "x86"):
        monkeypatch.setattr(lowering, "VGATHER", mode)
        prog = assemble("""
.coord X = 1.2.2/1.1.1/1.1.1
.coord L = 1.2.2/1.1.1/1.1.2
.data L i32[16] 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115
.zero X i32[16]
    SCOORD p0, X
    SCOORD p1, L
    DBCAST.i32 v1, 3                  | SGATHER.i32 v2, [p1]
    SSCATTR.i32 [p0 + 0 + v1], v2
""")
        ref, res, diffs = both(prog, no_cache=True)
        assert diffs == [], (mode, diffs)
        assert (
            res.memory.table[coords.pack(coords.Coord((1, 2, 2, 1, 1, 1, 1, 1, 1)))].buf.view("<i4")[3] == 115
        )


def test_nan_payloads_canonical_at_stores_and_messages():
    """Raw NaNs of every payload (x86's 0xFFC00000 from sqrt(-x) / inf-inf, signalling and negative
    NaNs loaded from memory and run through f32 ops) are 0x7FC00000 wherever the bits are observed."""
    prog = assemble("""
.coord A = 1.1.1/1.1.1/1.1.1
.coord B = 1.1.1/1.1.1/1.1.2
.data A i32[16] 0x81000000, 0x7F800001, 0xFFFFFFFF, 0xFFC00001, 0x7FBFFFFF, 0x80000000, 0x3F800000, 0xBF800000, 0x7F800000, 0xFF800000, 0, 1, 0x80000001, 0x7FC00000, 0xFFC00000, 0x40000000
.zero B u8[512]
    SCOORD p0, A
    SCOORD p1, B
    SGATHER.f32 v0, [p0]
    DSQRT.f32 v1, v0
    DADD.f32 v2, v0, v0
    DMUL.f32 v3, v0, 0x7F800000
    DFMA.f32 v4, v0, v3, v2
    DSUB.f32 v5, v3, v3               | SSCATTR.f32 [p1], v1
    DDIV.f32 v6, v0, v5               | SSCATTR.f32 [p1 + 64], v2
                                      | SSCATTR.f32 [p1 + 128], v4
                                      | SSCATTR.f32 [p1 + 192], v6 | CPACK.f32 m0, v5
    DRED.max.f32 r3, v1               | SSCATTR.f32 [p1 + 256 : 4], v3 | CUNPACK.f32 v7, m0
""")
    ref, res = check(prog)
    bits = res.memory.table[B].buf[:320].view("<u4")
    nans = bits[(bits & 0x7FFFFFFF) > 0x7F800000]
    assert len(nans) and set(nans.tolist()) == {0x7FC00000}


@pytest.mark.parametrize(
    "nbytes,off",
    [
        (256, 0),
        (256, 156),
        (257, 0),
        (300, 200),
        (300, 160),
        (256, 160),
        (100, 0),
        (100, 36),
        (64, 0),
        (4, 0),
        (1024, 2),
    ],
)
def test_window_permute_gather(nbytes, off):
    """16 x 32-bit gathers whose lanes all lie in a scroll's first 256 bytes use four loads + vpermi2d;
    lanes at the window's last dword, lanes past it, scrolls under 256 bytes, unaligned offsets, faults."""
    idx = [(i * 7) % 25 for i in range(16)]
    prog = assemble(f"""
.coord X = 1.2.2/1.1.1/1.1.1
.coord I = 1.2.2/1.1.1/1.1.2
.data X u8[{nbytes}] {", ".join(str((i * 13 + 5) % 256) for i in range(nbytes))}
.data I i32[16] {", ".join(map(str, idx))}
    SCOORD p0, X
    SCOORD p1, I
    SGATHER.i32 v1, [p1]
    SGATHER.i32 v2, [p0 + {off} + v1]
    SGATHER.f32 v3, [p0 + 0 + v1]
""")
    check(prog)


def test_cache_is_pruned_to_its_size(tmp_path, monkeypatch):
    from vtpu_cli.engines.jit import compile as JC
    from vtpu_cli.engines.jit import engine as J

    monkeypatch.setattr(JC, "CACHE_ENTRIES", 2)
    for k in range(4):
        prog = assemble(f"    DMOV r1, {k + 1}\n    DADD r1, r1, {k}")
        J.JitEngine(prog, cache_dir=tmp_path).run()
    assert len(list(tmp_path.glob("jit-*.o"))) == 2


def test_cache_key_covers_the_whole_program_not_just_the_code(tmp_path):
    """#11 bug 4: same code, different .group membership -> different objects (the one-sentron lowering
    bakes group membership in); before, the second program silently reused the first one's object."""
    body = "    CBAR g\n    DMOV r1, 5\n"
    ok = assemble(".group g = 0..0\n" + body)
    bad = assemble(".group g = 1..1\n" + body)
    assert ok.code == bad.code and ok.groups != bad.groups
    jc._loaded.clear()
    for prog in (ok, bad, ok):
        ref = Interpreter(prog).run()
        res = jit.JitEngine(prog, cache_dir=tmp_path).run()
        assert res.status == ref.status and same_result(ref, res) == []
    assert Interpreter(bad).run().status != "ok"
    assert len(list(tmp_path.glob("jit-*.o"))) == 2


def test_cache_key_follows_a_program_changed_in_place():
    """The program's digest is remembered per object (``siwfile.encoding_digest``): every in-place change
    -- a SIW replaced, a group's members, a data scroll's bytes, a register output, a label -- must still
    give a new key (and only a real change: an equal rebuilt program keeps it)."""
    import dataclasses

    from vtpu_cli.binary.program import Output, Reg

    src = ".group g = 0..0\n.coord A = 1.1.1/1.1.1/1.1.1\n.data A i32 1, 2, 3, 4\n    DMOV r1, 5\nend:\n    DHALT\n"
    prog = assemble(src)
    v = jc._Variant("none", False, 64, *jc.host_target(), 4, False, True)

    def key():
        return jc.program_key(prog, v, 3)

    seen = {key()}
    assert key() in seen and jc.program_key(assemble(src), v, 3) in seen  # same program, same key
    other = assemble("    DMOV r1, 6\n")
    changes = [
        lambda: prog.code.__setitem__(0, other.code[0]),
        lambda: prog.groups.__setitem__(0, ("g", (1,))),
        lambda: prog.data.__setitem__(0, dataclasses.replace(prog.data[0], data=b"\x09" * 16)),
        lambda: setattr(prog.data[0], "data", b"\x07" * 16),  # the same scroll object, other bytes
        lambda: prog.outputs.append(Output("reg", Reg("r", 1))),
        lambda: prog.labels.__setitem__("end", 0),
    ]
    for change in changes:
        change()
        k = key()
        assert k not in seen, change
        seen.add(k)


def test_cache_loads_only_private_sealed_objects(tmp_path):
    """#11 bug 7: objects are loaded only from a directory owned by the user and not group/world
    writable, and only when the digest recorded with the object matches."""
    import os

    prog = assemble("DMOV r1, 21\nDADD r2, r1, r1\n")
    d = tmp_path / "c"
    jc._loaded.clear()
    assert jit.JitEngine(prog, cache_dir=d).run().cache_hit == ""
    assert oct(os.stat(d).st_mode & 0o777) == "0o700"
    (obj,) = d.glob("jit-*.o")
    jc._loaded.clear()
    assert jit.JitEngine(prog, cache_dir=d).run().cache_hit == "disk"
    # a corrupted object (the seal no longer matches) is recompiled, not loaded
    blob = bytearray(obj.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    obj.write_bytes(bytes(blob))
    jc._loaded.clear()
    r = jit.JitEngine(prog, cache_dir=d).run()
    assert r.cache_hit == "" and r.sentrons[0].R[2] == 42
    # an object copied from another key's slot fails the seal too
    other = assemble("DMOV r1, 1\nDADD r2, r1, r1\n")
    jc._loaded.clear()
    jit.JitEngine(other, cache_dir=d).run()
    objs = sorted(d.glob("jit-*.o"), key=lambda f: f.stat().st_mtime)
    objs[0].write_bytes(objs[1].read_bytes())
    jc._loaded.clear()
    assert jit.JitEngine(prog, cache_dir=d).run().sentrons[0].R[2] == 42
    # a group-writable directory is not trusted (nothing loaded from it, nothing written to it)
    os.chmod(d, 0o770)
    jc._loaded.clear()
    r = jit.JitEngine(prog, cache_dir=d).run()
    assert r.cache_hit == "" and r.sentrons[0].R[2] == 42
    os.chmod(d, 0o700)
    os.chmod(objs[0], 0o666)  # a world-writable object is not trusted either
    jc._loaded.clear()
    jit.JitEngine(prog, cache_dir=d).run()
    assert jit.JitEngine(prog, cache_dir=d).run().sentrons[0].R[2] == 42


@pytest.mark.parametrize("stride", [1, 2, 3, 5, 6, 9, 10, 13, 14, 15])
@pytest.mark.parametrize("reg_stride", [False, True])
def test_strided_gathers_with_unaligned_strides(stride, reg_stride):
    """#11 bug 1: 32-bit strided gathers whose stride is not a multiple of 4 took the 256-byte window
    fast path and returned wrong lanes on the JIT."""
    nbytes = 256
    s = "r2" if reg_stride else str(stride)
    prog = assemble(f"""
.coord X = 1.2.2/1.1.1/1.1.1
.data X u8[{nbytes}] {", ".join(str((i * 29 + 7) % 256) for i in range(nbytes))}
    SCOORD p0, X | DMOV r2, {stride}
    SGATHER.i32 v1, [p0 + 0 : {s}]
    SGATHER.f32 v2, [p0 + 4 : {s}]
    SGATHER.i32 v3, [p0 + 1 : {s}]
""")
    ref, res, diffs = both(prog)
    assert diffs == [], diffs
    raw = bytes((i * 29 + 7) % 256 for i in range(nbytes))
    want = [int.from_bytes(raw[i * stride : i * stride + 4], "little", signed=True) for i in range(16)]
    assert [int(x) for x in res.sentrons[0].V[1].view(np.int32)] == want


@pytest.mark.parametrize("via_label", [False, True])
def test_nan_payloads_loaded_from_memory_survive_block_boundaries(via_label):
    """#11 bug 2: a NaN payload loaded by SGATHER and stored after a label was canonicalised on the
    JIT's fast variant (0x7fc00000) while the interpreter keeps it (0x7fc00001); the fast and precise
    variants must agree with the interpreter."""
    words = [0x7FC00001, 0xFFC00123, 0x7F800001, 0x3F800000] * 4
    hexdata = b"".join(w.to_bytes(4, "little") for w in words).hex() + "00" * 64
    jump = "    DJMP next\nnext:\n" if via_label else ""
    prog = assemble(f"""
.coord X = 1.2.2/1.1.1/1.1.1
.data X u8[128] hex "{hexdata}"
.output X
    SCOORD p0, X
    SGATHER.f32 v1, [p0]
{jump}    SSCATTR.f32 [p0 + 64], v1
    DHALT
    DADD.f32 v1, v1, v1
""")
    for replay in (None, "precise"):
        ref, res, diffs = both(prog, replay=replay)
        assert diffs == [], diffs
        out = bytes(res.memory.table[prog.coord_names["X"]].buf[64:128])
        assert [int.from_bytes(out[i : i + 4], "little") for i in range(0, 64, 4)] == words


def test_raw_registers_across_blocks():
    """Only registers whose every writer is an f32 producer (or a payload-free broadcast) stay raw across
    blocks: accumulators initialised with DBCAST 0.0 keep the fast path, loaded registers do not."""
    prog = assemble("""
    DBCAST.f32 v1, 0.0
    DBCAST.i32 v2, 0x7fc00001
    DXOR.i32 v3, v4, v4
    SGATHER.f32 v5, [p0]
    DADD.f32 v1, v1, v1
    DADD.f32 v2, v2, v2
    DADD.f32 v3, v3, v3
    DADD.f32 v5, v5, v5
    DMUL.f32 v6, v6, v6
""")
    assert jc._raw_across_blocks(prog.code) == {1, 3, 6}


def test_native_fault_location_is_checked_against_the_replay(monkeypatch):
    """#11: a native fault's report may come from a replay only if the native run faulted at the same
    sentron, SIW and slot; a disagreement is an engine error, never the program's fault."""
    prog = assemble("""
.coord X = 1.2.2/1.1.1/1.1.1
.data X i32[4] 1, 2, 3, 4
    SCOORD p0, X | DMOV r1, 3
loop:
    DLOOP r1, loop
    SGATHER.i32 r2, [p0 + 64]
""")
    ref, res, diffs = both(prog)
    assert diffs == [] and res.replay == "interp" and res.native_faults == ((0, 2, 1),)
    eng = jit.JitEngine(prog, cache_dir=_cache_dir())
    eng.replay_interp_steps = -1
    res = eng.run()
    assert res.replay == "precise" and res.native_faults == ((0, 2, 1),) and same_result(ref, res) == []
    from types import SimpleNamespace

    from vtpu_cli.engines.jit import engine as E

    bad = SimpleNamespace(
        status=ref.status, fault=dataclasses.replace(ref.fault, siw=1), sentrons=ref.sentrons
    )
    with pytest.raises(jc.JitError, match="faulted natively at SIW 2 slot 1"):
        E._check_replay(((0, 2, 1),), bad)
    with pytest.raises(jc.JitError, match="replay ended with status ok"):
        E._check_replay(((0, 2, 1),), SimpleNamespace(status="ok", fault=None, sentrons=ref.sentrons))


# =================================================================== the richer differential generators (#11)
def _diff_source(src: str, sentrons: int = 1, replay=None) -> None:
    prog = assemble(src, "gen.vasm")
    ref, res, diffs = both(prog, sentrons, replay=replay)
    assert diffs == [], (diffs, src)
    assert res.siws == ref.siws and res.ops_by_pipe == ref.ops_by_pipe, src


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_differential_nested_loops_every_s_op(data):
    """Nested loops with many trips, SALLOC/SFREE/SDEDUP/SPREFCH/SFLUSH, strided accesses of any stride and
    indexed accesses, on both variants (fast: faults replayed; precise)."""
    from progen import memory_source

    src = data.draw(memory_source())
    _diff_source(src, replay=data.draw(st.sampled_from([None, "precise"])))


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_differential_multi_sentron_patterns(data):
    """CSEND/CRECV rings (also from any sender), CBAR, CREDUCE and CCAST in loops on 2..16 sentrons."""
    from progen import fleet_source

    src, n = data.draw(fleet_source())
    _diff_source(src, n)


@pytest.mark.slow
@pytest.mark.timeout(0)  # a campaign runs for as long as it takes (hours at low priority)
def test_differential_campaign():
    """The slow campaign: VTPU_DIFF_PROGRAMS programs (default 10,000) over the three generators."""
    import os

    from hypothesis import find  # noqa: F401 - hypothesis drives the generators below
    from progen import fleet_source, memory_source

    total = int(os.environ.get("VTPU_DIFF_PROGRAMS", "10000"))
    report = os.environ.get("VTPU_DIFF_REPORT")
    done = {"memory": 0, "fleet": 0, "random": 0}

    def tick(kind: str) -> None:
        done[kind] += 1
        if report and sum(done.values()) % 100 == 0:
            with open(report, "w") as f:
                f.write(f"{done}\n")

    per = {"memory": total * 4 // 10, "fleet": total * 3 // 10}
    per["random"] = total - per["memory"] - per["fleet"]

    @settings(
        max_examples=per["memory"], deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(st.data())
    def memory(data):
        _diff_source(data.draw(memory_source()), replay=data.draw(st.sampled_from([None, "precise"])))
        tick("memory")

    @settings(
        max_examples=per["fleet"], deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(st.data())
    def fleet(data):
        src, n = data.draw(fleet_source())
        _diff_source(src, n)
        tick("fleet")

    @settings(
        max_examples=per["random"], deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(programs(max_body=16))
    def random_programs(prog):
        assume(_interp_ok(prog))
        check(prog)
        tick("random")

    fleet()
    memory()
    random_programs()
    if report:
        with open(report, "w") as f:
            f.write(f"{done} (finished)\n")


def test_halt_then_python_callback_fault_in_one_siw():
    """DHALT in the D slot, then a fault in a Python-run S op (SALLOC at a live coordinate) of the same
    SIW: the sentron is halted on both engines, as with native faults (found by the op-table generator)."""
    prog = assemble("""
.coord X = 1.1.1/1.1.1/1.1.1
.data X f32[2] 0, 0
    SCOORD p0, X
    DHALT | SALLOC p0, r0
""")
    for max_steps in (None, 40):
        ref, res, diffs = both(prog, max_steps=max_steps)
        assert diffs == [] and res.status == "fault" and res.sentrons[0].halted


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_differential_arbitrary_op_table_programs_fast_variant(data):
    """Any op from the table with any operands, on the fast variant (no step limit, so only programs
    whose branches all go forward: they terminate); faults are replayed and their location checked."""
    from progen import program

    prog = data.draw(program(max_siws=6))
    for pc, siw in enumerate(prog.code):
        for ins in siw:
            if ins.op.branch and ins.args and isinstance(ins.args[-1], Imm):
                assume(ins.args[-1].value > pc)
    assume(_interp_ok(prog))
    ref, res, diffs = both(prog)
    assert diffs == [], diffs


def test_fast_loop_clone_keeps_ppt_state_and_counts():
    """Inner loops run as a fast clone once their p registers are MRU (compile._fast_loops); an outer
    loop that moves a p register between inner loops leaves and re-enters the clone. Results, PPT
    counters and LRU state equal the interpreter's for every cache geometry."""
    from vtpu_cli.engines.jit.compile import _fast_loops, _leaders

    def data(k: int) -> str:
        return ", ".join(str(k * 100 + i) for i in range(64))

    src = f"""
.coord A = 1.1.1/1.1.1/1.1.1
.coord B = 1.1.1/1.1.1/1.1.2
.coord C = 1.1.1/1.1.2/1.1.1
.data A i32 {data(1)}
.data B i32 {data(2)}
.data C i32 {data(3)}
.coord D = 1.1.1/1.1.2/1.1.2
.zero D i32[64]
.output D, r6
    SCOORD p0, A
    SCOORD p1, B
    SCOORD p2, D
    DMOV r5, 3
outer:
    DMOV r1, 4
    DMOV r2, 0
inner:
    SGATHER.i32 v0, [p0 + r2]
    SGATHER.i32 v1, [p1 + r2]
    DADD.i32 v2, v0, v1
    SSCATTR.i32 [p2 + r2], v2
    SGATHER.i64 r3, [p1 + 8]
    DADD r6, r6, r3
    DADD r2, r2, 64
    DLOOP r1, inner
    SCOORD p1, C
    SGATHER.i32 v3, [p1]
    DLOOP r5, outer
"""
    prog = assemble(src)
    loops = _fast_loops(prog, _leaders(prog))
    assert [lp[1] for lp in loops.values()] == [(0, 1, 2)]  # only the inner loop
    for sets in (1, 2, 64):
        ref = Interpreter(prog, memory=_mem_sets(prog, sets)).run()
        res = jit.JitEngine(prog, memory=_mem_sets(prog, sets), cache_dir=_cache_dir()).run()
        assert res.engine == "jit" and same_result(ref, res) == []
        assert res.siws == ref.siws
        assert (res.memory.stats.hits, res.memory.stats.misses) == (
            ref.memory.stats.hits,
            ref.memory.stats.misses,
        )
        assert res.memory._cache == ref.memory._cache


def test_a_no_cache_recompile_keeps_the_earlier_copy_alive():
    """Two engines compiled afresh for the same program: replacing the first's entry in the loaded table
    freed its machine code, and running it again crashed the process (run in a child for that reason)."""
    import subprocess
    import sys

    code = (
        "import gc\n"
        "from vtpu_cli.asm.assembler import assemble\n"
        "from vtpu_cli.engines.jit.engine import JitEngine\n"
        "prog = assemble('DMOV r1, 21\\nDADD r2, r1, r1\\n')\n"
        "e1 = JitEngine(prog, no_cache=True)\n"
        "e1.run()\n"
        "for _ in range(3):\n"
        "    e2 = JitEngine(prog, no_cache=True)\n"
        "    r2 = e2.run().sentrons[0].R[2]\n"
        "    del e2\n"
        "    gc.collect()\n"
        "    junk = [bytearray(4096) for _ in range(10000)]  # reuse the freed pages\n"
        "print(e1.run().sentrons[0].R[2], r2)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["42", "42"]
