"""Deferred NaN canonicalisation across blocks (session 7): loop-carried f32 results stay raw across
loop edges and are canonicalised only where they are observed. Programs whose loop-carried values
become NaN with different payloads (0*inf, inf-inf, NaNs loaded from memory with payloads and signs)
are observed by every kind of observer; the interpreter and the JIT (native code) must agree bit for
bit, on the fast variant and on its fault replays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.engines.compare import same_result
from vtpu_cli.engines.interp.interpreter import Interpreter

jit = pytest.importorskip("vtpu_cli.engines.jit.engine")
jc = pytest.importorskip("vtpu_cli.engines.jit.compile")
OK, WHY = jc.jit_available()
pytestmark = pytest.mark.skipif(not OK, reason=f"JIT unavailable: {WHY}")

# NaNs of several payloads and signs (quiet, signalling, negative), infinities, zeros and ordinary values
WORDS = [
    0x7FC00001, 0xFFC00123, 0x7F800001, 0xFFFFFFFF, 0x7FBFFFFF, 0x7F800000, 0xFF800000, 0x00000000,
    0x80000000, 0x3F800000, 0xBF800000, 0x7FC00000, 0xFFC00000, 0x40000000, 0x00000001, 0xC0400000,
]  # fmt: skip
# 0, +inf, -inf, 1 (x4): 0*inf and inf-inf make NaNs in the loop
SPECIAL = [0x00000000, 0x7F800000, 0xFF800000, 0x3F800000] * 4

HEADER = """
.coord A = 1.1.1/1.1.1/1.1.1
.coord B = 1.1.1/1.1.1/1.1.2
.data A i32[32] {words}
.zero B u8[4096]
.output B
    SCOORD p0, A
    SCOORD p1, B
""".format(words=", ".join(hex(w) for w in WORDS + SPECIAL))


L = pytest.importorskip("vtpu_cli.engines.jit.lowering")
PLANNED: list[bool] = []  # per lowered block: whether it was lowered with a NanPlan


@pytest.fixture(autouse=True)
def nan_plan(monkeypatch):
    """Record, per lowered block, whether the driver lowered it with a ``NanPlan`` (whole programs,
    fast variant: ``compile._build_function``)."""
    orig_start = L.Lowerer.block_start

    def block_start(self):
        PLANNED.append(self.nan_plan is not None)
        orig_start(self)

    monkeypatch.setattr(L.Lowerer, "block_start", block_start)
    PLANNED.clear()
    yield


def _run(src: str, cache, **kw):
    """Both engines on the fast variant (faults replayed by the interpreter and natively, precise)."""
    prog = assemble(src, "nan.vasm")
    outs = []
    for replay in (None, "precise"):
        ref = Interpreter(prog, 1, max_steps=kw.get("max_steps")).run()
        eng = jit.JitEngine(prog, 1, cache_dir=cache, **kw)
        if replay == "precise":
            eng.replay_interp_steps = -1
        res = eng.run()
        assert res.engine == "jit", res.fallback  # the native code ran
        assert same_result(ref, res, states=True) == [], replay
        outs.append((ref, res))
    assert any(PLANNED)  # the code that ran was lowered with a NanPlan
    return prog, outs


def _nan_words(buf: np.ndarray) -> set[int]:
    bits = buf.view("<u4")
    return set(bits[(bits & 0x7FFFFFFF) > 0x7F800000].tolist())


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jitcache_nan")


def test_loop_carried_nans_every_observer(cache):
    """Raw NaNs carried by a loop (and v0: loaded with payloads before the loop, overwritten raw in it)
    reach every observer, each in a block of its own: stores, integer and float compares, select,
    bitwise ops, conversions, reductions, moves, shuffles, messages and the final register file. The
    unreachable tail writes the same registers exactly, so only the whole-program dataflow (not "every
    writer is an f32 op") lets them stay raw."""
    body = """
    SGATHER.f32 v0, [p0]
    SSCATTR.f32 [p1], v0
    SGATHER.f32 v1, [p0 + 64]
    DBCAST.f32 v2, 0x7F800000
    DBCAST.f32 v3, 0.0
    DXOR.i32 v15, v15, v15
    DMOV r1, 3
loop:
    DFMA.f32 v3, v1, v2, v3
    DSUB.f32 v4, v3, v2
    DADD.f32 v5, v0, v4
    DMUL.f32 v0, v5, v1
    DDIV.f32 v6, v4, v1
    DSQRT.f32 v7, v6
    DLOOP r1, loop
    SSCATTR.f32 [p1 + 64], v3
    DJMP b1
b1:
    DCMP.eq.i32 v8, v3, v4
    SSCATTR.i32 [p1 + 128], v8
    DCMP.lt.f32 v9, v3, v1
    DJMP b2
b2:
    DSEL.f32 v10, v9, v5, v0
    SSCATTR.f32 [p1 + 192], v10
    DJMP b3
b3:
    DXOR.i32 v11, v0, v15
    SSCATTR.i32 [p1 + 256], v11
    DAND.i32 v12, v6, -1
    SSCATTR.i32 [p1 + 320], v12
    DJMP b4
b4:
    DCVT.bf16.f32 v13, v4, 0
    SSCATTR.bf16 [p1 + 384], v13
    DCVT.i32.f32 v14, v5, 0
    SSCATTR.i32 [p1 + 448], v14
    DJMP b5
b5:
    DRED.add.f32 r2, v3
    DRED.max.f32 r3, v7
    DRED.min.f32 r4, v0
    DMOV v16, v7
    SSCATTR.f32 [p1 + 512], v16
    DJMP b6
b6:
    DBCAST.i32 v17, 5
    DSHUF.f32 v18, v6, v17
    SSCATTR.f32 [p1 + 576], v18
    CPACK.f32 m0, v5
    CUNPACK.f32 v19, m0
    SSCATTR.f32 [p1 + 640], v19
    DMIN.f32 v20, v4, v5
    SSCATTR.f32 [p1 + 704], v20
    DHALT
    SGATHER.f32 v3, [p0]
    DMOV v4, v0
    DCVT.f32.i32 v5, v5, 0
    DAND.i32 v6, v6, v6
    DSUB.i32 v7, v7, v7
"""
    prog, outs = _run(HEADER + body, cache)
    for _ref, res in outs:
        buf = res.memory.table[prog.coord_names["B"]].buf
        # the first 64 bytes keep the loaded payloads; everything computed is canonical
        assert buf[:64].view("<u4").tolist() == WORDS
        f32_stores = (64, 192, 256, 320, 512, 576, 640, 704)  # (the bits of v0 and v6 go through ints)
        for off in f32_stores:
            assert _nan_words(buf[off : off + 64]) <= {0x7FC00000}, off
        assert 0x7FC00000 in _nan_words(buf[64:128])
        bf16 = buf[384:416].view("<u2")
        assert set(bf16[(bf16 & 0x7FFF) > 0x7F80].tolist()) <= {0x7FC0, 0xFFC0}
        # the register file at the end: every f32 NaN lane the loop computed is canonical
        v = np.asarray(res.sentrons[0].V[3]).view("<u4")
        assert set(v[(v & 0x7FFFFFFF) > 0x7F800000].tolist()) == {0x7FC00000}


def test_exact_value_and_raw_value_meet_at_a_loop_head(cache):
    """v3 reaches the inner loop head exactly (a load with payloads, outer loop) and raw (the DFMA of
    the back edge): the first trip must store the loaded bits, later trips the canonical NaN; an
    observation on a conditional path in the loop, and a store after the loop."""
    body = """
    SGATHER.f32 v1, [p0 + 64]
    DBCAST.f32 v2, 0x7F800000
    DMOV r6, 2
    DMOV r5, 0
outer:
    SGATHER.f32 v3, [p0]
    DMOV r1, 3
inner:
    SSCATTR.f32 [p1 + r5], v3
    DFMA.f32 v3, v1, v2, v3
    DSUB.f32 v4, v2, v2
    DCMP.eq.i64 r7, r1, 2
    DBRT skip
    DADD.i64 r8, r5, 1024
    SSCATTR.f32 [p1 + r8], v4
skip:
    DADD.i64 r5, r5, 64
    DLOOP r1, inner
    DADD.i64 r9, r5, 2048
    SSCATTR.f32 [p1 + r9], v3
    DLOOP r6, outer
"""
    prog, outs = _run(HEADER + body, cache)
    for _ref, res in outs:
        words = res.memory.table[prog.coord_names["B"]].buf.view("<u4")
        assert words[:16].tolist() == WORDS  # trip 1 of the first outer trip: the loaded bits
        assert _nan_words(words[16:48].view(np.uint8)) == {0x7FC00000}  # trips 2, 3: canonical


def test_raw_accumulators_across_a_callback(cache):
    """A Python callback (SALLOC/SFREE) in the loop reads and writes the register file: the raw
    accumulators are canonical when it runs and stay correct after it."""
    body = """
.coord N = 2.1.1/1.1.1/1.1.1
    SCOORD p2, N
    SGATHER.f32 v0, [p0]
    SGATHER.f32 v1, [p0 + 64]
    DBCAST.f32 v2, 0x7F800000
    DBCAST.f32 v3, 0.0
    DMOV r1, 4
loop:
    DFMA.f32 v3, v1, v2, v3
    DADD.f32 v5, v0, v3       | SALLOC p2, 64
    DMUL.f32 v0, v5, v1       | SSCATTR.f32 [p2], v5
    SGATHER.f32 v6, [p2]
    SFREE p2
    DLOOP r1, loop
    SSCATTR.f32 [p1], v3
    SSCATTR.f32 [p1 + 64], v6
    DJMP end
    SGATHER.f32 v3, [p0]
    DMOV v5, v1
end:
"""
    prog, outs = _run(HEADER + body, cache)
    for _ref, res in outs:
        buf = res.memory.table[prog.coord_names["B"]].buf
        assert _nan_words(buf[:128]) == {0x7FC00000}


@pytest.mark.parametrize("trips", [1, 3, 6])
def test_fault_and_step_limit_with_raw_accumulators(cache, trips):
    """A fault (an access that walks off its scroll after ``trips`` trips) and a step limit in the
    middle of a loop whose accumulators are raw NaNs: the replay reports the interpreter's registers."""
    body = f"""
    SGATHER.f32 v1, [p0 + 64]
    DBCAST.f32 v2, 0x7F800000
    DBCAST.f32 v3, 0.0
    SGATHER.f32 v0, [p0]
    DMOV r1, 100
    DMOV r5, {128 - 64 * trips}
loop:
    DFMA.f32 v3, v1, v2, v3
    DSUB.f32 v0, v0, v3
    DADD.i64 r5, r5, 64
    SGATHER.f32 v4, [p0 + r5]
    DLOOP r1, loop
    DHALT
    SGATHER.f32 v3, [p0]
    DMOV v0, v1
"""
    prog, outs = _run(HEADER + body, cache)
    for ref, res in outs:
        assert res.status == ref.status == "fault"
    prog, outs = _run(HEADER + body, cache, max_steps=12 + trips)
    for ref, res in outs:
        assert res.status == ref.status


def _both_planned(prog, cache) -> None:
    """Interpreter and JIT (fast variant) agree on a program, which runs native code lowered with a plan."""
    PLANNED.clear()
    ref = Interpreter(prog, 1).run()
    res = jit.JitEngine(prog, 1, cache_dir=cache).run()
    assert res.engine == "jit", res.fallback
    assert same_result(ref, res, states=True) == []
    assert all(PLANNED)  # (nothing lowered: the object came from this module's cache, lowered with one)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.data())
def test_random_programs_with_a_plan(cache, data):
    """The differential generators of test_jit (random SIWs over every D op, incl. f32 arithmetic on
    loaded bytes and backward DBRT/DLOOP loops; nested loops over every S op) with a NanPlan."""
    from progen import memory_source
    from test_jit import _interp_ok, programs

    if data.draw(st.booleans()):
        prog = data.draw(programs(max_body=16))
        assume(_interp_ok(prog))
    else:
        prog = assemble(data.draw(memory_source()), "gen.vasm")
    _both_planned(prog, cache)


@st.composite
def nan_loops(draw) -> str:
    """Loops (optionally nested) over v0..v5 mixing exact writes (loads of the payload words, moves,
    integer ops) and f32 arithmetic on NaN-producing inputs, observed inside and after the loops, with
    extra block boundaries and conditional paths."""
    regs = [f"v{i}" for i in range(6)]
    reg = st.sampled_from(regs)
    lines = []
    for r in regs:
        lines.append(
            draw(
                st.sampled_from(
                    [
                        f"SGATHER.f32 {r}, [p0]",
                        f"SGATHER.f32 {r}, [p0 + 64]",
                        f"DBCAST.f32 {r}, 0.0",
                        f"DBCAST.f32 {r}, 0x7F800000",
                        "",
                    ]
                )
            )
        )
    lines += ["DMOV r6, 2", "DMOV r5, 0", "outer:", "DMOV r1, 3", "loop:"]
    label = 0
    for _ in range(draw(st.integers(2, 10))):
        d, a, b, c = draw(reg), draw(reg), draw(reg), draw(reg)
        off = 64 * draw(st.integers(0, 9))  # stores of trip k go to 640 * k + off: none overwritten
        kind = draw(st.integers(0, 11))
        if kind == 0:
            lines.append(f"DFMA.f32 {d}, {a}, {b}, {c}")
        elif kind == 1:
            op = draw(st.sampled_from(["DADD", "DSUB", "DMUL", "DDIV"]))
            lines.append(f"{op}.f32 {d}, {a}, {b}")
        elif kind == 2:
            lines.append(f"DSQRT.f32 {d}, {a}")
        elif kind == 3:
            lines.append(f"SGATHER.f32 {d}, [p0 + {draw(st.sampled_from([0, 64]))}]")
        elif kind == 4:
            lines += [f"DADD.i64 r8, r5, {off}", f"SSCATTR.f32 [p1 + r8], {a}"]
        elif kind == 5:
            lines.append(f"DMOV {d}, {a}")
        elif kind == 6:
            lines.append(f"DXOR.i32 {d}, {a}, {b}")
        elif kind == 7:
            lines.append(f"DCVT.bf16.f32 {d}, {a}, 0")
        elif kind == 8:
            lines.append(f"DSEL.f32 {d}, {a}, {b}, {c}")
        elif kind == 9:
            lines += [f"DJMP l{label}", f"l{label}:"]
            label += 1
        elif kind == 10:
            lines += [
                "DCMP.eq.i64 r7, r1, 2",
                f"DBRT l{label}",
                f"DADD.i64 r8, r5, {off}",
                f"SSCATTR.f32 [p1 + r8], {a}",
                f"l{label}:",
            ]
            label += 1
        else:
            lines.append(f"DCMP.lt.f32 {d}, {a}, {b}")
    lines += ["DADD.i64 r5, r5, 640", "DLOOP r1, loop"]
    if draw(st.booleans()):
        lines += ["DADD.i64 r8, r5, 4096", f"SSCATTR.f32 [p1 + r8], {draw(reg)}"]
    lines.append("DLOOP r6, outer")
    lines += [f"SSCATTR.f32 [p1 + {4096 + 64 * i}], {r}" for i, r in enumerate(regs)]
    src = "".join(f"    {x}\n" if not x.endswith(":") else f"{x}\n" for x in lines if x)
    return HEADER.replace("u8[4096]", "u8[8192]") + src


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(nan_loops())
def test_generated_nan_loops(cache, src):
    """Interpreter and planned JIT agree on generated NaN loops (a few here; more with -m slow)."""
    _both_planned(assemble(src, "nanloop.vasm"), cache)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(nan_loops())
def test_generated_nan_loops_slow(cache, src):
    _both_planned(assemble(src, "nanloop.vasm"), cache)
