"""The JIT's rerunnable mode (a model's step run again and again on one engine) reports every fault
the way a normal run does: a native stop it cannot report itself (a data race, left to the golden
model) must not come back as "ok"."""

from __future__ import annotations

import numpy as np
import pytest

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.engines.base import load_memory
from vtpu_cli.engines.interp.interpreter import Interpreter
from vtpu_cli.engines.jit.engine import jit_available
from vtpu_cli.engines.select import EngineOptions, open_engine
from vtpu_cli.machine.memory import Memory

pytestmark = pytest.mark.skipif(not jit_available()[0], reason="needs the JIT")

# each sentron loads and stores its own slot of ONE scroll with no synchronisation: a data race at
# scroll granularity (docs/interpreter.md)
RACY = """
.coord S = 1.1.1/1.1.1/1.1.1
.zero S i64 2
    DMOV r1, sid                 | SCOORD p0, S
    DMUL r2, r1, 8
                                 | SGATHER.i64 r3, [p0 + r2]
    DADD r3, r3, 1
                                 | SSCATTR.i64 [p0 + r2], r3
    DHALT
"""

# race-free: each sentron writes its own scroll, then an all-reduce of the values
CLEAN = """
.coord A = 1.1.1/1.1.1/1.1.1
.coord B = 1.1.1/1.1.1/1.1.2
.zero A i64 1
.zero B i64 1
    DMOV r1, sid                 | SCOORD p0, A
    DCMP.eq r9, r1, 0            | SCOORD p1, B
    DMUL r2, r1, 7
    DADD r2, r2, 3
    DBRF other
                                 | SSCATTR.i64 [p0], r2
    DJMP done
other:
                                 | SSCATTR.i64 [p1], r2
done:
    DHALT
"""


def _jit(prog, n: int, mem: Memory | None = None):
    if mem is None:
        mem = Memory()
        load_memory(prog, mem)
    return open_engine(prog, mem, EngineOptions(engine="jit", sentrons=n, max_steps=None, rerunnable=True))


def _render(r) -> str | None:
    return r.fault.render() if r.fault else None


@pytest.mark.parametrize("repeat", range(3))
def test_rerunnable_data_race_is_reported_like_the_interpreter(repeat):
    prog = assemble(RACY, "racy.vasm")
    a = Interpreter(prog, 2).run()
    assert a.status == "fault" and "data race" in a.fault.message
    b = _jit(prog, 2).run()
    assert b.engine == "jit" and b.fallback is None  # the native code ran
    assert b.status == a.status
    assert _render(b) == _render(a)
    assert (b.fault.sentron, b.fault.siw) == (a.fault.sentron, a.fault.siw)


def test_rerunnable_clean_program_runs_ok_every_time():
    prog = assemble(CLEAN, "clean.vasm")
    a = Interpreter(prog, 2).run()
    assert a.status == "ok"
    want = {c: bytes(sc.buf) for c, sc in a.memory.table.items()}
    assert sorted(np.frombuffer(b, np.int64)[0] for b in want.values()) == [3, 10]
    mem = Memory()
    load_memory(prog, mem)
    eng = _jit(prog, 2, mem)
    for _ in range(3):
        b = eng.run()
        assert b.engine == "jit" and b.fallback is None and b.status == "ok" and not b.replay
        assert {c: bytes(sc.buf) for c, sc in b.memory.table.items()} == want
        for sa, sb in zip(a.sentrons, b.sentrons, strict=True):
            assert sa.R == sb.R


def test_rerunnable_engine_threads_end_with_the_engine():
    """The sentron threads kept between runs must not outlive their engine (a model reloaded many
    times would otherwise pile up parked threads)."""
    import gc
    import threading
    import time

    def sentron_threads() -> int:
        return sum(t.name.startswith("vtpu-sentron") for t in threading.enumerate())

    prog = assemble(CLEAN, "clean.vasm")
    gc.collect()  # engines of earlier tests
    time.sleep(0.05)
    before = sentron_threads()
    for _ in range(3):
        eng = _jit(prog, 2)
        assert eng.run().status == "ok" and eng.run().status == "ok"
        del eng
        gc.collect()
    for _ in range(100):
        if sentron_threads() <= before:
            break
        time.sleep(0.01)
    assert sentron_threads() <= before
