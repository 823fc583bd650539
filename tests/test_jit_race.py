"""The JIT's native data-race detector (issue #11, bug 5): a program's outcome never depends on --engine.

Racy programs must fault on the JIT exactly as on the interpreter (same message, sentron, SIW, exit
code); race-free programs synchronised by messages or collectives must run natively with no replay.
"""

from __future__ import annotations

import pytest
from conftest import PROGRAMS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.engines.base import load_memory
from vtpu_cli.engines.interp.interpreter import Interpreter
from vtpu_cli.engines.jit.engine import JitEngine, jit_available
from vtpu_cli.machine.memory import Memory

pytestmark = pytest.mark.skipif(not jit_available()[0], reason="needs the JIT")


def _both(src: str, n: int, tmp_path=None):
    prog = assemble(src, "race.vasm")
    a = Interpreter(prog, n).run()
    mem = Memory()
    load_memory(prog, mem)
    b = JitEngine(prog, n, memory=mem, no_cache=True).run()
    assert b.engine == "jit" and b.fallback is None  # the native code ran (no silent fallback)
    return a, b


def _same_outcome(a, b) -> None:
    assert a.status == b.status
    assert (a.fault.render() if a.fault else None) == (b.fault.render() if b.fault else None)
    if a.fault is not None:
        assert (a.fault.sentron, a.fault.siw) == (b.fault.sentron, b.fault.siw)


def _race_free(a, b) -> None:
    """Race-free: identical results and no native race flag (a replay would have hidden one)."""
    _same_outcome(a, b)
    assert a.status == "ok" and b.replay == "", b.replay
    for sa, sb in zip(a.sentrons, b.sentrons, strict=True):
        assert sa.R == sb.R
    assert {c: bytes(sc.buf) for c, sc in a.memory.table.items()} == {
        c: bytes(sc.buf) for c, sc in b.memory.table.items()
    }


@pytest.mark.parametrize("name", ["vadd.vasm", "fleet/race.vasm"])
def test_racy_example_programs_fault_on_both_engines(name):
    a, b = _both((PROGRAMS / name).read_text(), 4)
    assert a.status == "fault" and "data race" in a.fault.message
    _same_outcome(a, b)
    assert b.replay == "interp"  # native code found the race and the golden model reported it


@pytest.mark.parametrize("engine", ["jit", "interp"])
def test_racy_program_exit_code_does_not_depend_on_the_engine(engine, capsys):
    from vtpu_cli.cli.main import cli

    rc = cli(["run", str(PROGRAMS / "fleet/race.vasm"), "-n", "4", "--engine", engine, "--no-cache"])
    assert rc == 1
    assert "data race: load from 1.1.1/1.1.1/1.1.1, which sentron 0 wrote" in capsys.readouterr().err


def test_single_sentron_programs_have_no_race_check():
    """One sentron pays nothing: no race-detector function in the module."""
    from vtpu_cli.engines.jit.compile import _Variant, build_module

    prog = assemble((PROGRAMS / "vadd.vasm").read_text(), "vadd.vasm")
    v1 = _Variant("none", False, 64, "x86-64", "", single=True)
    vn = _Variant("none", False, 64, "x86-64", "", single=False)
    assert "vtpu_race" not in build_module(prog, v1)[0]
    assert "vtpu_race_write" in build_module(prog, vn)[0]


HEADER = """
.coord S = 1.1.1/1.1.1/1.1.1
.coord T = 1.1.1/1.1.1/1.1.2
.data S i64 5 6 7 8
.data T i64 0 0 0 0
.output r5
    DMOV r1, sid                 | SCOORD p0, S
    DMOV r2, scount              | SCOORD p1, T
"""

MESSAGES = (
    HEADER
    + """
    DMOV r13, 20
loop:
    DCMP.eq r9, r1, 0
    DBRF other
    SGATHER.i64 r3, [p0]
    DADD.i64 r3, r3, 1
    SSCATTR.i64 [p0], r3
    CPACK.i64 m0, r3
    CSEND m0, 1
    CRECV m1, 1
    SGATHER.i64 r5, [p0]
    DJMP next
other:
    DCMP.eq r9, r1, 1
    DBRF next
    CRECV m1, 0
    SGATHER.i64 r3, [p0]
    DMUL.i64 r3, r3, 3
    SSCATTR.i64 [p0], r3
    CPACK.i64 m0, r3
    CSEND m0, 0
next:
    DLOOP r13, loop
"""
)

BARRIERS = (
    HEADER
    + """
    DMOV r13, 12
loop:
    DAND.i64 r4, r13, 3
    DCMP.eq r9, r1, r4
    DBRF readers
    SGATHER.i64 r3, [p0 + 8]
    DADD.i64 r3, r3, r1
    SSCATTR.i64 [p0 + 8], r3
readers:
    CBAR 0
    SGATHER.i64 r5, [p0 + 8]
    SGATHER.i64 r6, [p1]
    CBAR 0
    DLOOP r13, loop
"""
)


def test_messages_synchronise_writers_and_readers():
    _race_free(*_both(MESSAGES, 3))


def test_barriers_synchronise_writers_and_readers():
    _race_free(*_both(BARRIERS, 4))


def test_collectives_synchronise():
    src = (
        HEADER
        + """
    DCMP.eq r9, r1, 0
    DBRF wait
    SSCATTR.i64 [p1], r2
wait:
    CREDUCE.add.i64 r7, r1, 0
    SGATHER.i64 r5, [p1]
"""
    )
    _race_free(*_both(src, 4))


def test_read_then_unsynchronised_write_is_a_race():
    """Sentron 1 reads S; sentron 0 writes it later without synchronising: the *write* is the race."""
    src = (
        HEADER
        + """
    DCMP.eq r9, r1, 1
    DBRF writer
    SGATHER.i64 r5, [p0]
    DHALT
writer:
    DMOV r3, 1
    DMOV r3, 2
    DMOV r3, 3
    DCMP.eq r9, r1, 0
    DBRF done
    SSCATTR.i64 [p0], r3
done:
"""
    )
    a, b = _both(src, 2)
    assert a.status == "fault" and "which sentron 1 read without synchronising" in a.fault.message
    _same_outcome(a, b)
    assert b.replay == "interp"


def test_race_after_a_synchronised_phase():
    """Messages synchronise the first round trip only; the second write is unsynchronised."""
    src = (
        HEADER
        + """
    DCMP.eq r9, r1, 0
    DBRF other
    SSCATTR.i64 [p0], r2
    CPACK.i64 m0, r2
    CSEND m0, 1
    SSCATTR.i64 [p0], r1
    DHALT
other:
    CRECV m1, 0
    SGATHER.i64 r5, [p0]
    SGATHER.i64 r5, [p0]
"""
    )
    a, b = _both(src, 2)
    assert a.status == "fault" and "data race" in a.fault.message
    _same_outcome(a, b)


def _sync(kind: str, k: int) -> list[str]:
    """Lines that synchronise every pair of sentrons: a barrier, a reduction, or all-to-all messages."""
    if kind == "bar":
        return ["    CBAR 0"]
    if kind == "reduce":
        return ["    CREDUCE.add.i64 r7, r1, 0"]
    lines = ["    CPACK.i64 m0, r1"]
    for what, op in (("snd", "CSEND m0, r12"), ("rcv", "CRECV m1, r12")):
        lines += [
            "    DMOV r12, 0",
            f"{what}{k}:",
            "    DCMP.eq r9, r12, r1",
            f"    DBRT {what}n{k}",
            f"    {op}",
            f"{what}n{k}:",
            "    DADD r12, r12, 1",
            "    DCMP.lt r9, r12, r2",
            f"    DBRT {what}{k}",
        ]
    return lines


@st.composite
def phased_source(draw) -> tuple[str, int, bool]:
    """2..6 sentrons, a loop of phases; in each phase one sentron writes one scroll and the others read
    the other scrolls, phases separated by a barrier, a reduction or all-to-all messages (or, when
    ``racy``, one separation left out)."""
    n = draw(st.integers(2, 6))
    phases = draw(st.integers(1, 4))
    racy = draw(st.booleans())
    drop = draw(st.integers(0, phases - 1)) if racy else -1
    sync = draw(st.sampled_from(["bar", "reduce", "a2a"]))
    lines = [
        ".coord A = 1.1.1/1.1.1/1.1.1",
        ".coord B = 1.1.1/1.1.1/1.1.2",
        ".coord C = 1.1.1/1.1.1/1.1.3",
        ".data A i64 1 2",
        ".data B i64 3 4",
        ".data C i64 5 6",
        ".output r5, r6",
        "    DMOV r1, sid                 | SCOORD p0, A",
        "    DMOV r2, scount              | SCOORD p1, B",
        "    SCOORD p2, C",
        f"    DMOV r13, {draw(st.integers(1, 5))}",
        "loop:",
    ]
    for k in range(phases):
        w = draw(st.integers(0, n - 1))
        x = draw(st.integers(0, 2))
        lines += [
            f"    DCMP.eq r9, r1, {w}",
            f"    DBRF rd{k}",
            f"    SGATHER.i64 r3, [p{x}]",
            "    DADD.i64 r3, r3, r13",
            f"    SSCATTR.i64 [p{x} + 8], r3",
            f"    DJMP sync{k}",
            f"rd{k}:",
        ]
        for y in range(3):
            if y != x and draw(st.booleans()):
                lines.append(f"    SGATHER.i64 r{5 + y % 2}, [p{y} + {8 * draw(st.integers(0, 1))}]")
        lines.append(f"sync{k}:")
        if k != drop:
            lines += _sync(sync, k)
        if draw(st.booleans()):
            lines.append("    CFENCE")
    lines.append("    DLOOP r13, loop")
    return "\n".join(lines) + "\n", n, racy


def _check_phased(case) -> None:
    src, n, racy = case
    a, b = _both(src, n)
    _same_outcome(a, b)
    if not racy:
        _race_free(a, b)
    elif a.status == "ok":
        assert b.replay == ""  # the interpreter found no race: native code must not flag one either


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(phased_source())
def test_differential_phased_programs(case):
    """Random phase programs: same outcome on both engines; race-free ones never flagged natively."""
    _check_phased(case)


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_race_campaign():
    """The slow campaign: VTPU_RACE_PROGRAMS phase programs (default 2,000)."""
    import os

    @settings(
        max_examples=int(os.environ.get("VTPU_RACE_PROGRAMS", "2000")),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(phased_source())
    def run(case):
        _check_phased(case)

    run()


@pytest.mark.parametrize("messages", [True, False])
def test_ring_and_private_stream_are_race_free(messages):
    """The detector's cost benchmark (racecost): private scrolls, a shared read-only table, a message
    ring or a loop that keeps its epoch (the fast loop clone with no race checks at all)."""
    from vtpu_cli.engines.jit.racecost import ring_source

    _race_free(*_both(ring_source(300, seg=1024, messages=messages), 3))


def test_racy_stores_inside_a_loop_without_messages():
    """Every sentron stores into the shared table inside a loop that keeps its epoch: a race."""
    from vtpu_cli.engines.jit.racecost import ring_source

    src = ring_source(300, seg=1024, messages=False).replace("SSCATTR.i32 [p1 + r2]", "SSCATTR.i32 [p2 + r2]")
    a, b = _both(src, 3)
    assert a.status == "fault" and "data race" in a.fault.message
    _same_outcome(a, b)
    assert b.replay == "interp"


@pytest.mark.parametrize("replay", ["interp", "precise"])
def test_fault_after_an_unflagged_race_reports_the_race(replay):
    """Natively sentron 1 may read before sentron 0 writes and then fault (out of bounds) first; the
    interpreter's schedule meets the race first. The report is the interpreter's either way, also when a
    long run would replay natively with the precise variant (which then defers to the interpreter)."""
    src = (
        HEADER
        + """
    DCMP.eq r9, r1, 0
    DBRF reader
    SSCATTR.i64 [p0], r1
    DHALT
reader:
    DMOV r3, 1
    DMOV r3, 2
    SGATHER.i64 r5, [p0]
    SGATHER.i64 r6, [p0 + 4096]
"""
    )
    prog = assemble(src, "race.vasm")
    a = Interpreter(prog, 2).run()
    assert a.status == "fault" and "data race" in a.fault.message
    for _ in range(5):  # the native interleaving varies from run to run
        mem = Memory()
        load_memory(prog, mem)
        eng = JitEngine(prog, 2, memory=mem, no_cache=True)
        if replay == "precise":
            eng.replay_interp_steps = -1
        b = eng.run()
        assert b.engine == "jit"
        _same_outcome(a, b)


def test_racecost_command_runs(capsys):
    """``python -m vtpu_cli.engines.jit.racecost`` (the cost figures in docs/jit.md) runs end to end."""
    from vtpu_cli.engines.jit import comm, racecost

    assert racecost.main(["--rounds", "1", "--trips", "100"]) == 0
    out = capsys.readouterr().out
    assert out.count("ops/core cycle without the detector") == 4 and comm.RACE_CHECK is True
