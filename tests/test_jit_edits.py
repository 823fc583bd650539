"""SALLOC, SFREE and SFLUSH with several sentrons on the JIT (issue #13): native, and never stale.

The host edits the one scroll table in place while the other sentrons run; an acquire (CRECV, a
collective) refreshes a sentron's PPT when the table changed. The edits are race-checked like writes
(SFLUSH like a read) on both engines, so an unsynchronised use is a data race on both, with the
interpreter's report. Each race-free test is built so that a stale pointer would change the outcome
(a dead scroll read without a fault, a write lost in a moved buffer, an out-of-bounds size), and checks
that the native code ran to the end with no replay.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import PROGRAMS
from hypothesis import given, settings
from hypothesis import strategies as st

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.engines.base import load_memory
from vtpu_cli.engines.interp.interpreter import Interpreter
from vtpu_cli.engines.jit.engine import JitEngine, jit_available
from vtpu_cli.machine.memory import Memory

pytestmark = pytest.mark.skipif(not jit_available()[0], reason="needs the JIT")


def _both(src: str, n: int, runs: int = 1):
    prog = assemble(src, "edits.vasm")
    a = Interpreter(prog, n).run()
    out = []
    for _ in range(runs):
        mem = Memory()
        load_memory(prog, mem)
        b = JitEngine(prog, n, memory=mem, no_cache=True).run()
        assert b.engine == "jit" and b.fallback is None  # native code ran (no fallback)
        out.append(b)
    return a, out


def _scrolls(res) -> dict[int, bytes]:
    return {c: bytes(sc.buf) for c, sc in res.memory.table.items()}


def _race_free(a, bs) -> None:
    """The same result as the interpreter, reached by native code alone (no replay)."""
    assert a.status == "ok", a.fault and a.fault.render()
    for b in bs:
        assert b.status == "ok" and b.replay == "" and b.native_faults == (), (b.replay, b.fault)
        assert [s.R for s in a.sentrons] == [s.R for s in b.sentrons]
        assert _scrolls(a) == _scrolls(b)
        assert a.siws == b.siws
        # PPT translations: the total is exact (each sentron simulates its own cache: the hit/miss split
        # is not the interpreter's shared-cache split)
        assert a.memory.stats.translations == b.memory.stats.translations
        assert (a.memory.stats.flushes, a.memory.stats.flushed_bytes) == (
            b.memory.stats.flushes,
            b.memory.stats.flushed_bytes,
        )


def _same_fault(a, b) -> None:
    assert a.status == b.status == "fault"
    assert a.fault.render() == b.fault.render()
    assert (a.fault.sentron, a.fault.siw) == (b.fault.sentron, b.fault.siw)


def test_matmul_scatter_salloc_sfree_16_sentrons_native():
    prog = assemble((PROGRAMS / "fleet" / "matmul_scatter.vasm").read_text(), "matmul_scatter.vasm")
    a = Interpreter(prog, 16).run()
    mem = Memory()
    load_memory(prog, mem)
    eng = JitEngine(prog, 16, memory=mem, no_cache=True)
    for _ in range(3):  # a rerun starts from the memory the last one left: the same result each time
        b = eng.run()
        assert b.engine == "jit" and b.replay == "" and b.cycles > 0
        assert _scrolls(a) == _scrolls(b)
        assert b.fleet.stats.messages == a.fleet.stats.messages == 30
    assert not eng._graveyard  # nothing outlives the run


# sentron 0 makes a scroll, everyone reads it (so it sits in every sentron's PPT and p0's translation),
# sentron 0 frees it after a barrier, and after the next barrier the others read it again: a fault at
# that read on every sentron that reaches it (a stale translation would read the dead buffer and halt)
FREED_THEN_READ = """
.coord S = 1.1.4/1.1.1/1.1.7
    DMOV r1, sid                 | SCOORD p0, S
    DCMP.eq r9, r1, 0
    DBRF wait1
    DMOV r2, 64
                                 | SALLOC p0, r2
    DBCAST.f32 v0, 7.0
                                 | SSCATTR.f32 [p0], v0
wait1:
                                 |                          | CBAR all
                                 | SGATHER.f32 v1, [p0]
                                 |                          | CBAR all
    DCMP.eq r9, r1, 0
    DBRF wait2
                                 | SFREE p0
    DHALT
wait2:
                                 |                          | CBAR all
                                 | SGATHER.f32 v2, [p0]
"""


@pytest.mark.parametrize("n", [2, 4])
def test_a_scroll_freed_before_a_barrier_is_gone_after_it(n):
    src = FREED_THEN_READ.replace(
        "    DHALT\nwait2:",
        "                                 |                          | CBAR all\n    DHALT\nwait2:",
    )
    prog = assemble(src, "freed.vasm")
    read_pc = next(pc for pc, siw in enumerate(prog.code) if siw[1].op.name == "SGATHER" and pc > 10)
    a, (b,) = _both(src, n)
    assert a.status == "fault" and "no scroll at" in a.fault.message and a.fault.siw == read_pc
    _same_fault(a, b)
    # the native run itself faulted there (it was not the replay alone): every native fault is that read
    assert b.native_faults and {pc for _, pc, _ in b.native_faults} == {read_pc}


# a scroll freed and made again with twice the size between two barriers: the readers must see the new
# buffer (its size and bytes), not the translation they made before
REALLOC = """
.coord S = 1.1.4/1.1.1/1.1.7
.output r4 r5
    DMOV r1, sid                 | SCOORD p0, S
    DCMP.eq r9, r1, 0
    DBRF wait1
    DMOV r2, 64
                                 | SALLOC p0, r2
    DMOV r3, 11
                                 | SSCATTR.i64 [p0], r3
wait1:
                                 |                          | CBAR all
                                 | SGATHER.i64 r4, [p0]
                                 |                          | CBAR all
    DCMP.eq r9, r1, 0
    DBRF wait2
                                 | SFREE p0
    DMOV r2, 128
                                 | SALLOC p0, r2
    DMOV r3, 22
                                 | SSCATTR.i64 [p0 + 64], r3
wait2:
                                 |                          | CBAR all
                                 | SGATHER.i64 r5, [p0 + 64]
                                 |                          | CBAR all
"""


@pytest.mark.parametrize("n", [2, 4, 16])
def test_a_scroll_made_again_larger_is_seen_after_a_barrier(n):
    a, bs = _both(REALLOC, n, runs=3)
    _race_free(a, bs)
    assert all(s.R[4] == 11 and s.R[5] == 22 for s in bs[0].sentrons)


# SFLUSH moves a scroll to the cold tier (a new buffer); a write after the barrier must land in it
FLUSH_THEN_WRITE = """
.coord S = 1.1.4/1.1.1/1.1.7
.zero S i64 8
.output r4
    DMOV r1, sid                 | SCOORD p0, S
                                 | SGATHER.i64 r6, [p0]
                                 |                          | CBAR all
    DCMP.eq r9, r1, 0
    DBRF writer
                                 | SFLUSH p0
                                 |                          | CBAR all
                                 |                          | CBAR all
                                 | SGATHER.i64 r4, [p0 + 8]
    DHALT
writer:
                                 |                          | CBAR all
    DCMP.eq r9, r1, 1
    DBRF idle
    DMOV r3, 6
                                 | SSCATTR.i64 [p0 + 8], r3
idle:
                                 |                          | CBAR all
"""


@pytest.mark.parametrize("n", [2, 4])
def test_a_write_after_sflush_lands_in_the_moved_scroll(n):
    a, bs = _both(FLUSH_THEN_WRITE, n, runs=3)
    _race_free(a, bs)
    assert bs[0].sentrons[0].R[4] == 6
    assert bs[0].memory.stats.flushes == 1


# ---------------------------------------------------------------------------- races (both engines)
SALLOC_UNSYNCED = """
.coord S = 1.1.4/1.1.1/1.1.7
    DMOV r1, sid                 | SCOORD p0, S
    DCMP.eq r9, r1, 0
    DBRF reader
                                 | SALLOC p0, 64
    DHALT
reader:
    DMOV r2, 3
spin:
    DLOOP r2, spin
                                 | SGATHER.i64 r4, [p0]
"""

SFREE_UNSYNCED = """
.coord S = 1.1.4/1.1.1/1.1.7
.zero S i64 8
    DMOV r1, sid                 | SCOORD p0, S
    DCMP.eq r9, r1, 0
    DBRF reader
    DMOV r2, 3
spin:
    DLOOP r2, spin
                                 | SFREE p0
    DHALT
reader:
                                 | SGATHER.i64 r4, [p0]
"""

REALLOC_UNSYNCED = """
.coord S = 1.1.4/1.1.1/1.1.7
.zero S i64 8
    DMOV r1, sid                 | SCOORD p0, S
    DCMP.eq r9, r1, 0
    DBRF other
                                 | SFREE p0
    DHALT
other:
    DMOV r2, 3
spin:
    DLOOP r2, spin
                                 | SALLOC p0, 64
"""


@pytest.mark.parametrize(
    "src, message",
    [
        (SALLOC_UNSYNCED, "data race: load from 1.1.4/1.1.1/1.1.7, which sentron 0 wrote without"),
        (SFREE_UNSYNCED, "data race: SFREE of 1.1.4/1.1.1/1.1.7, which sentron 1 read without"),
        (REALLOC_UNSYNCED, "data race: SALLOC of 1.1.4/1.1.1/1.1.7, which sentron 0 freed without"),
    ],
    ids=["salloc-read", "read-sfree", "sfree-salloc"],
)
def test_unsynchronised_scroll_lifetimes_are_races_on_both_engines(src, message):
    for _ in range(5):  # whichever order the threads take, the report is the interpreter's
        a, (b,) = _both(src, 2)
        assert message in a.fault.message
        _same_fault(a, b)
        assert b.replay == "interp"


def test_the_same_program_with_barriers_is_race_free():
    src = SALLOC_UNSYNCED.replace("    DHALT\nreader:", "                  |  | CBAR all\n    DHALT\nreader:")
    src = src.replace(
        "spin:\n    DLOOP r2, spin\n", "spin:\n    DLOOP r2, spin\n                  |  | CBAR all\n"
    )
    a, bs = _both(src, 2, runs=3)
    _race_free(a, bs)


# every sentron makes many scrolls of its own and keeps them: more live coordinates than a run's table
# has room for at first (the run is replayed, and the engine's next run gets a larger table)
CHURN = """
.output r5
    DMOV r1, sid                 | SCOORD p0, home
    DMOV r2, 100                 | SINDEX.set p0, p0, 0, 5
    DMOV r5, 0
make:
    DMOV r3, 64                  | SINDEX.add p0, p0, 6, 1
                                 | SALLOC p0, r3
                                 | SSCATTR.i64 [p0], r2
                                 | SGATHER.i64 r4, [p0]
    DADD r5, r5, r4              | SFLUSH p0
    DLOOP r2, make
                                 |                          | CBAR all
    DMOV r2, 100
unmake:
                                 | SFREE p0
    DLOOP r2, unmake             | SINDEX.add p0, p0, 6, -1
"""


def test_a_run_that_outgrows_its_scroll_table_is_replayed_then_fits():
    prog = assemble(CHURN, "churn.vasm")
    a = Interpreter(prog, 2).run()
    assert a.status == "ok" and a.sentrons[0].R[5] == sum(range(1, 101))
    mem = Memory()
    load_memory(prog, mem)
    eng = JitEngine(prog, 2, memory=mem, no_cache=True)
    first = eng.run()
    assert first.status == "ok" and first.replay == "interp"  # 200 new coordinates > room for 64
    flushes = mem.stats.flushes
    assert flushes == 200  # the replay's: the native part's were undone with the memory
    again = eng.run()
    assert again.status == "ok" and again.replay == "", again.replay
    assert [s.R[5] for s in again.sentrons] == [s.R[5] for s in a.sentrons]
    assert mem.stats.flushes - flushes == 200 and not mem.table


def test_freed_slots_are_reused_so_long_runs_stay_native():
    """400 trips of HANDOFF below make 400 coordinates, one live at a time: freed ones' slots are
    recycled once every sentron has scrubbed its PPT past the SFREE, so the first table suffices."""
    src = HANDOFF.replace("DMOV r2, 40", "DMOV r2, 400")
    a, bs = _both(src, 4)
    _race_free(a, bs)
    assert bs[0].sentrons[3].R[5] == sum(range(1, 401))


# sentron 0 makes a scroll at a new coordinate each trip, the others read it between barriers, then
# sentron 0 frees it; every sentron's PPT keeps seeing scrolls come and go (refreshes, reclaimed buffers)
HANDOFF = """
.output r5
    DMOV r1, sid                 | SCOORD p0, 1.1.4/1.1.1/1.1.1
    DMOV r2, 40
    DMOV r5, 0
trip:
    DCMP.eq r9, r1, 0            | SINDEX.add p0, p0, 8, 1
    DBRF readers
    DMOV r3, 64
                                 | SALLOC p0, r3
                                 | SSCATTR.i64 [p0 + 8], r2
readers:
                                 |                          | CBAR all
                                 | SGATHER.i64 r4, [p0 + 8]
    DADD r5, r5, r4
                                 |                          | CBAR all
    DCMP.eq r9, r1, 0
    DBRF next
                                 | SFREE p0
next:
    DLOOP r2, trip
"""


@pytest.mark.parametrize("n", [2, 8, 16])
def test_scrolls_handed_off_every_trip(n):
    a, bs = _both(HANDOFF, n, runs=2)
    _race_free(a, bs)
    assert all(s.R[5] == sum(range(1, 41)) for s in bs[0].sentrons)


# ---------------------------------------------------------------------------- the table itself
def _lookup(tab, coord: int):
    """The native lookup, in Python: (slot, pointer, size) of a live coordinate, else None."""
    from vtpu_cli.engines.jit import lowering as L

    cap = tab.shape[0]
    lo, hi = coord & 0xFFFFFFFFFFFFFFFF, coord >> 64
    h = L.table_slot(lo, hi, cap - 1)
    for _ in range(cap):
        if int(tab[h, 1]) == L.TAB_EMPTY:
            return None
        if int(tab[h, 0]) == lo and int(tab[h, 1]) == hi:
            return None if int(tab[h, 3]) >= L.TAB_DEAD else (h, int(tab[h, 2]), int(tab[h, 3]))
        h = (h + 1) & (cap - 1)
    raise AssertionError("a probe found no empty slot")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["alloc", "alloc", "free", "free", "sync"]), st.integers(0, 30)),
        min_size=50,
        max_size=400,
    )
)
def test_table_edits_keep_every_live_coordinate_findable_at_a_fixed_slot(steps):
    """Random SALLOC/SFREE sequences through ``edit_table`` (with every sentron refreshing now and then,
    so freed slots are recycled and swept): every live coordinate is found with its buffer at the slot
    it got, every freed one is absent, and a coordinate's race records survive its free."""
    from vtpu_cli.engines.jit import comm

    prog = assemble("    SALLOC p0, 64\n    SFREE p0\n", "t.vasm")
    mem = Memory()
    eng = JitEngine(prog, 2, memory=mem, no_cache=True)
    eng._edit_room = 8  # a small table: inserts meet recycled slots and the sweep often
    eng.hub = type("Hub", (), {})()
    eng.hub.fleet_raw, eng.hub.fleet_blk, eng.hub.fleet_lay = comm.build_fleet_block(2, [], cap=16)
    eng.build_table()
    cap = eng.tab.shape[0]
    eng.hub.fleet_raw, eng.hub.fleet_blk, eng.hub.fleet_lay = comm.build_fleet_block(2, [], cap=cap)
    eng.hub.live = {0, 1}
    eng._sens = [type("S", (), {"tgen": np.zeros(1, np.uint64)})() for _ in range(2)]
    base = 0x1_0000_0000_0000_0000_0001
    slot_of: dict[int, int] = {}
    marks: dict[int, int] = {}  # coordinate -> the writer word its race record was given
    for op, k in steps:
        c = base + (k << 20)
        if op == "sync":
            for x in eng._sens:
                x.tgen[0] = eng.tgen()
            continue
        if op == "alloc" and c not in mem.table:
            mem.alloc(c, 64 + k, 64, 0)
            if not eng.edit_table(c):  # no room: the engine would replay the run
                mem.free(c)
                continue
            h = eng._slots[c]
            w, _ = eng._race_records(h)
            assert int(w[0]) == marks.get(c, 0)  # a freed coordinate's record came back with it
            marks[c] = 1000 + k
            w[0] = marks[c]
            slot_of[c] = h
        elif op == "free" and c in mem.table:
            mem.free(c)
            assert eng.edit_table(c)
        for d, h in slot_of.items():
            got = _lookup(eng.tab, d)
            if d in mem.table:
                buf = mem.table[d].buf
                assert got == (h, buf.ctypes.data, buf.shape[0])
            else:
                assert got is None
        assert eng._filled == int((eng.tab[:, 1] != np.uint64((1 << 64) - 1)).sum())


# sentron 0 makes and frees a 1 MiB scroll 300 times while sentron 1 waits at a barrier: the waiting
# sentron scrubs its PPT as it waits, so the freed buffers are let go as the run goes (they used to pile
# up until its next acquire: 300 MiB at once), and a budget they would pass sends the run to the
# interpreter
CHURN_WHILE_WAITING = """
.coord S = 1.1.4/1.1.1/1.1.7
    DMOV r1, sid                 | SCOORD p0, S
    DCMP.eq r9, r1, 0
    DBRF wait
    DMOV r2, 300
    DMOV r3, 1048576
churn:
                                 | SALLOC p0, r3
                                 | SSCATTR.i64 [p0], r2
                                 | SFREE p0
    DLOOP r2, churn
wait:
                                 |                          | CBAR all
"""


def test_buffers_freed_while_a_sentron_waits_stay_within_the_budget(monkeypatch):
    """How many freed buffers are kept depends on when the waiting thread runs (12-38 MiB on a quiet
    2-core host, 110-150 MiB beside two busy loops); what never depends on it: the live scrolls and the
    kept buffers stay within the run's budget -- past it the run finishes on the interpreter."""
    prog = assemble(CHURN_WHILE_WAITING, "churn.vasm")
    peak = [0]
    orig = JitEngine.edit_table

    def edit_table(self, coord):
        out = orig(self, coord)
        peak[0] = max(peak[0], self._dead_bytes + self.mem.used_bytes)
        return out

    monkeypatch.setattr(JitEngine, "edit_table", edit_table)
    limit = 4 << 20
    for _ in range(3):
        mem = Memory(mem_limit=limit)
        load_memory(prog, mem)
        res = JitEngine(prog, 2, memory=mem, no_cache=True).run()
        assert res.status == "ok" and not mem.table
        assert res.replay in ("", "interp")
    assert 0 < peak[0] <= limit + (1 << 20)  # the edit that finds the budget passed ends the run


def test_a_waiting_sentron_scrubs_its_ppt():
    """The artefact: in a program that edits the scroll table, the C pipe's wait loop calls the scrub
    (so a sentron blocked at a barrier lets the others' freed buffers go); elsewhere it does not."""
    from vtpu_cli.engines.jit import compile as C

    cpu, feat = C.host_target(False)
    v = C._Variant("none", False, 64, cpu, feat, 4, False, False)
    text, _ = C.build_module(assemble(CHURN_WHILE_WAITING, "churn.vasm"), v)
    waits = re.findall(r"\ncwyield_\d+:\n((?:  .*\n)+)", text)  # each wait loop's yield block
    assert waits and all(re.search(r'label %"refresh_\d+"', blk) for blk in waits)
    assert re.search(r'\nrefresh_\d+:\n  call void @"vtpu_ppt_scrub"', text)
    plain, _ = C.build_module(assemble((PROGRAMS / "fleet" / "race_fixed.vasm").read_text(), "r.vasm"), v)
    assert "vtpu_ppt_scrub" not in plain and "cwyield" in plain


def test_a_long_racy_run_reports_what_the_interpreter_reports():
    """Past REPLAY_INTERP_STEPS a native fault is normally replayed natively (precise variant); a
    program that edits the scroll table on several sentrons is replayed in the interpreter instead,
    whose order decides between a race and a missing scroll."""
    prog = assemble(SFREE_UNSYNCED, "racy.vasm")
    a = Interpreter(prog, 2).run()
    for _ in range(5):
        mem = Memory()
        load_memory(prog, mem)
        eng = JitEngine(prog, 2, memory=mem, no_cache=True)
        eng.replay_interp_steps = 0
        b = eng.run()
        _same_fault(a, b)
        assert b.replay == "interp"


def test_a_very_long_faulting_run_is_replayed_natively(monkeypatch):
    """Past EDIT_REPLAY_INTERP_STEPS (here 0) the precise variant replays natively: a deterministic
    fault keeps its report; a racy run ends in a fault either way (the interpreter takes over when the
    precise replay does not fault), so the exit code is the interpreter's."""
    from vtpu_cli.engines.jit import engine as E

    monkeypatch.setattr(E, "EDIT_REPLAY_INTERP_STEPS", 0)
    src = FREED_THEN_READ.replace(
        "    DHALT\nwait2:",
        "                                 |                          | CBAR all\n    DHALT\nwait2:",
    )
    for text, want in ((src, "no scroll at 1.1.4/1.1.1/1.1.7"), (SFREE_UNSYNCED, "")):
        prog = assemble(text, "long.vasm")
        for _ in range(3):
            mem = Memory()
            load_memory(prog, mem)
            eng = JitEngine(prog, 2, memory=mem, no_cache=True)
            eng.replay_interp_steps = 0
            b = eng.run()
            assert b.status == "fault" and want in b.fault.message, b.fault.render()
            assert b.replay in ("precise", "interp")
