"""Tiered JIT compilation (docs/jit.md, "Tiers"): tier-0 code (every function through the light
pipeline) is exact against the interpreter, a tiered engine runs tier-0 code first and tier-1 code from
the run after the background compile landed, faults and exit states never depend on the tier, and the
switch ``$VTPU_JIT_TIERED=0`` turns tiers off."""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from test_jit import _interp_ok, programs

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.engines.compare import same_result
from vtpu_cli.engines.interp.interpreter import Interpreter

jit = pytest.importorskip("vtpu_cli.engines.jit.engine")
if not jit.jit_available()[0]:  # pragma: no cover
    pytest.skip("JIT unavailable", allow_module_level=True)

from vtpu_cli.engines.jit import compile as C  # noqa: E402

LOOP = """
.coord A = 1.1.1/1.1.1/1.1.1
.coord B = 1.1.1/1.1.1/1.1.2
.zero A f32[256]
.zero B f32[256]
    SCOORD p0, A
    SCOORD p1, B
    DMOV r1, 16
    DMOV r2, 0
    DBCAST.f32 v2, 0x3FC00000
loop:
    DFMA.f32 v0, v2, v2, v0 | SGATHER.f32 v1, [p0 + r2]
    DADD.f32 v3, v1, v0
    DNOP | SSCATTR.f32 [p1 + r2], v3
    DADD r2, r2, 64
    DLOOP r1, loop
"""


def _exact(prog, res, ref) -> None:
    assert same_result(ref, res) == []
    assert res.siws == ref.siws and res.ops_by_pipe == ref.ops_by_pipe
    assert (res.memory.stats.hits, res.memory.stats.misses) == (
        ref.memory.stats.hits,
        ref.memory.stats.misses,
    )


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(prog=programs())
def test_tier0_code_is_exact_on_random_programs(tmp_path_factory, prog):
    """Differential: tier-0 native code (asserted: ``res.tier == 0``) against the golden model,
    results, counts, PPT hits and misses, faults included."""
    assume(_interp_ok(prog))
    ref = Interpreter(prog).run()
    res = jit.JitEngine(prog, opt=C.TIER0_OPT, cache_dir=tmp_path_factory.mktemp("t0")).run()
    assert res.engine == "jit" and res.tier == 0
    _exact(prog, res, ref)


def test_tier0_marks_every_function_optnone():
    """The tier-0 pipeline leaves no function to the O2 pipeline: every defined function is optnone."""
    import llvmlite.binding as llvm

    prog = assemble(LOOP)
    C._init()
    cpu, feat = C.host_target()
    v = C._Variant("none", False, 64, cpu, feat)
    text, _ = C.build_module(prog, v)
    mod = llvm.parse_assembly(text)
    C._all_cold(mod)
    C._optimise_all(mod, C._target_machine(cpu, feat, 0), C.TIER0_OPT)
    fns = [f for f in mod.functions if not f.is_declaration]
    assert fns and all(b"optnone" in b" ".join(f.attributes) for f in fns)


def _fresh(tmp_path, src: str = LOOP, trips: int = 16):
    """A program no earlier test compiled (loaded code stays in the process: ``compile._loaded``)."""
    return assemble(src.replace("DMOV r1, 16", f"DMOV r1, {trips}")), tmp_path / "cache"


def test_tiered_engine_runs_tier0_then_tier1_at_a_run_boundary(tmp_path):
    prog, cache = _fresh(tmp_path)
    ref = Interpreter(prog).run()
    eng = jit.JitEngine(prog, cache_dir=cache, tiered=True, rerunnable=True)
    first = eng.run()
    assert first.tier == 0
    _exact(prog, first, ref)
    assert eng.wait_optimised(timeout=120), eng.tier1_error
    second = eng.run()  # the same program again from its own output memory: same bytes
    assert second.tier == 1 and second.cache_hit == "disk"  # stored by the detached compile, then loaded
    assert same_result(ref, second) == []
    assert list(cache.glob("jit-*.o"))  # only tier-1 objects are stored: exactly one
    assert len(list(cache.glob("jit-*.o"))) == 1
    # a new engine finds the optimised code cached and never runs tier 0
    again = jit.JitEngine(prog, cache_dir=cache, tiered=True).run()
    assert again.tier == 1


def test_tiers_off_by_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(jit.TIERED_ENV, "0")
    prog, cache = _fresh(tmp_path, trips=15)
    eng = jit.JitEngine(prog, cache_dir=cache, tiered=True, no_cache=True)
    assert eng.run().tier == 1 and eng.tier1 is None


def test_engines_default_to_one_tier_and_open_engine_asks_through_the_context(tmp_path):
    from vtpu_cli.engines.select import EngineOptions, open_engine
    from vtpu_cli.machine.memory import Memory

    prog, cache = _fresh(tmp_path, trips=14)
    assert jit.JitEngine(prog, cache_dir=cache).tiered is False
    with jit.tiered_engines():
        eng = open_engine(prog, Memory(), EngineOptions(cache_dir=cache, no_cache=True))
    assert eng.tiered is True and eng.compiled.tier == 0
    assert eng.wait_optimised(120) and eng.compiled.tier == 1


FAULT = """
.coord A = 1.1.1/1.1.1/1.1.1
.zero A f32[32]
    SCOORD p0, A
    DMOV r1, 40
    DMOV r2, 0
loop:
    DFMA.f32 v0, v2, v2, v0 | SGATHER.f32 v1, [p0 + r2]
    DADD r2, r2, 4
    DLOOP r1, loop
"""


@pytest.mark.parametrize("replay", ["interp", "precise"])
def test_a_fault_in_tier0_code_reports_as_the_interpreter(tmp_path, replay):
    prog, cache = _fresh(tmp_path, FAULT.replace("DMOV r1, 40", f"DMOV r1, {40 + (replay == 'precise')}"))
    ref = Interpreter(prog).run()
    assert ref.status == "fault"
    eng = jit.JitEngine(prog, cache_dir=cache, tiered=True)
    if replay == "precise":
        eng.replay_interp_steps = -1
    res = eng.run()
    assert res.status == ref.status and res.fault.render() == ref.fault.render()
    assert res.tier == 0 and res.native_faults and res.replay == replay
    assert same_result(ref, res) == []


def test_a_failed_tier1_compile_keeps_the_tier0_code(tmp_path, monkeypatch):
    prog, cache = _fresh(tmp_path, trips=13)

    def failing(program, **kw):
        raise jit.JitError("a test's reason")

    monkeypatch.setattr(jit, "compile_detached", failing)
    eng = jit.JitEngine(prog, cache_dir=cache, tiered=True, rerunnable=True)
    assert eng.run().tier == 0
    assert eng.wait_optimised(60) is False
    assert eng.tier1_error == "a test's reason"
    res = eng.run()
    assert res.tier == 0 and res.status == "ok"


RING = """
    DMOV r1, sid
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
    DCVT.f32.i64 r6, r1
    CREDUCE.add.f32 r7, r6, 0
    CBAR 0
    CCAST r10, r5, 0, 0
"""


@pytest.mark.parametrize("sentrons", [1, 2, 4])
def test_tier0_code_is_exact_with_the_c_pipe_and_several_sentrons(tmp_path, sentrons):
    """The native C pipe (the one-sentron ring in the stack frame; the fleet block and collectives of
    several sentrons) on tier-0 code, against the interpreter."""
    prog = assemble(RING)
    ref = Interpreter(prog, sentrons).run()
    res = jit.JitEngine(prog, sentrons, opt=C.TIER0_OPT, cache_dir=tmp_path).run()
    assert res.engine == "jit" and res.tier == 0
    assert same_result(ref, res) == [] and res.siws == ref.siws


# a strided loop whose count, start and stride are immediates tier 0 lifts into its IMMS table; the
# innermost loop's immediate stays in the code
SHAPED = """
.coord A = 1.1.1/1.1.1/1.1.1
.coord B = 1.1.1/1.1.1/1.1.2
.zero A i32[512]
.zero B i32[512]
    SCOORD p0, A
    SCOORD p1, B
    DMOV r1, {trips}
    DMOV r2, {start}
    DMOV r3, 7
outer:
    DMOV r5, 3
inner:
    DADD r6, r6, 5
    DLOOP r5, inner
    DADD r3, r3, {step} | SGATHER.i32 v1, [p0 + r2]
    DBCAST.i32 v2, r3
    DADD.i32 v1, v1, v2
    DNOP | SSCATTR.i32 [p1 + r2], v1
    DADD r2, r2, {stride}
    DSUB r4, r3, {step}
    DLOOP r1, outer
    DHALT
"""


def test_tier0_lifts_immediates_and_shares_code_between_programs_of_one_shape(tmp_path, monkeypatch):
    """Programs differing only in lifted immediates (a model's prefill variants) get the same tier-0 IR
    text, compile once, and each runs with its own values -- exact against the interpreter; the
    object is never stored on disk (its immediates are written in at load)."""
    C._init()
    cpu, feat = C.host_target()
    v = C._Variant("none", False, 64, cpu, feat)
    shapes = [dict(trips=4, start=0, step=3, stride=64), dict(trips=6, start=128, step=-5, stride=-16)]
    progs = [assemble(SHAPED.format(**s)) for s in shapes]
    (t1, vals1), (t2, vals2) = (C.build_tier0(p, v) for p in progs)
    assert t1 == t2 and vals1 != vals2 and len(vals1) == len(vals2) == 7
    slots, _ = C._imm_slots(progs[0])
    inner = C._innermost(progs[0])
    liftable = [pc for pc, siw in enumerate(progs[0].code) if any(C._lifted(i) is not None for i in siw)]
    assert [pc for pc in liftable if inner[pc]] == [6]  # DADD r6, r6, 5: stays in the code
    assert sorted(pc for pc, _ in slots) == [pc for pc in liftable if not inner[pc]]
    assert C._shape_key(progs[0], v) == C._shape_key(progs[1], v)
    assert "vtpu_imms" in t1 and C.build_module(progs[0], v)[0] != C.build_module(progs[1], v)[0]
    compiled = []
    real = C._compile_object
    monkeypatch.setattr(C, "_compile_object", lambda *a: compiled.append(1) or real(*a))
    monkeypatch.setattr(C, "_TIER0_JOBS", {})
    for prog in progs:
        ref = Interpreter(prog).run()
        res = jit.JitEngine(prog, opt=C.TIER0_OPT, cache_dir=tmp_path).run()
        assert res.engine == "jit" and res.tier == 0
        _exact(prog, res, ref)
    assert len(compiled) == 1  # the second program took the first one's object
    assert not list(tmp_path.glob("jit-*.o"))


def test_tier0_compiles_its_own_object_when_a_same_shape_program_lowers_differently(tmp_path, monkeypatch):
    """The shape key is only a hint: a program whose tier-0 text differs compiles its own object."""
    prog = assemble(SHAPED.format(trips=5, start=64, step=2, stride=64))
    job = C._Tier0Job()
    job.shape, job.obj = b"\0" * 32, b"not an object"
    job.done.set()
    C._init()
    cpu, feat = C.host_target()
    monkeypatch.setattr(C, "_TIER0_JOBS", {C._shape_key(prog, C._Variant("none", False, 64, cpu, feat)): job})
    ref = Interpreter(prog).run()
    res = jit.JitEngine(prog, opt=C.TIER0_OPT, cache_dir=tmp_path).run()
    assert res.tier == 0
    _exact(prog, res, ref)
    assert list(C._TIER0_JOBS.values()) == [job]  # it was taken for a twin (no job of its own)


def test_a_failed_tier0_compile_is_not_shared(tmp_path, monkeypatch):
    """A tier-0 compile that fails leaves no job behind: the next compile of that shape is a first one
    (it compiles, and is then the one later compiles share)."""
    prog = assemble(SHAPED.format(trips=3, start=0, step=1, stride=64))
    monkeypatch.setattr(C, "_TIER0_JOBS", {})
    real = C._compile_object

    def boom(*a):
        raise C.JitError("boom")

    monkeypatch.setattr(C, "_compile_object", boom)
    with pytest.raises(C.JitError):
        C.compile_program(prog, opt=C.TIER0_OPT, cache_dir=tmp_path)
    assert C._TIER0_JOBS == {}
    monkeypatch.setattr(C, "_compile_object", real)
    comp = C.compile_program(prog, opt=C.TIER0_OPT, cache_dir=tmp_path)
    assert comp.tier == 0 and len(C._TIER0_JOBS) == 1
    job = next(iter(C._TIER0_JOBS.values()))
    assert job.done.is_set() and job.obj


# =================================================================== a spare compile child
def _ir_job():
    C._init()
    cpu, feat = C.host_target()
    v = C._Variant("none", False, 64, cpu, feat)
    return ("ir", C.build_module(assemble(LOOP), v)[0], v, 2)


def test_a_prestarted_child_takes_the_next_job(monkeypatch):
    """``prestart_child`` starts a compile child before its job exists; the next child job goes to it
    (no second process), and the object it returns is a real one."""
    monkeypatch.setattr(C, "_spare", None)
    C.prestart_child()
    spare = C._spare[0]
    spawned = []
    real = C._spawn
    monkeypatch.setattr(C, "_spawn", lambda *a: spawned.append(1) or real(*a))
    obj = C._in_child(_ir_job())
    assert obj[:4] == b"\x7fELF" and not spawned
    assert C._spare is None and spare.wait(5) == 0


def test_a_spare_started_for_another_environment_is_not_used(monkeypatch):
    """A spare whose command line or environment differs from what a child would get now (here
    ``PYTHONPATH`` changed since) is killed, and a fresh child runs the job."""
    monkeypatch.setattr(C, "_spare", None)
    C.prestart_child()
    spare = C._spare[0]
    monkeypatch.setenv("PYTHONPATH", "/nonexistent-vtpu-test-dir")
    obj = C._in_child(_ir_job())
    assert obj[:4] == b"\x7fELF"
    assert spare.wait(5) != 0  # killed


def test_an_unused_spare_exits_quietly():
    """A spare whose parent never sends a job (its stdin closes) exits 0 with nothing on stderr."""
    p = C._spawn(*C._child_command())
    out, err = p.communicate(b"", timeout=60)
    assert p.returncode == 0 and out == b"" and err == b""


def test_background_now_by_environment_and_spare_cores(monkeypatch):
    """A tiered engine compiles tier 1 beside its runs only with two cores more than its sentrons
    (or when ``$VTPU_JIT_BACKGROUND`` says so)."""
    monkeypatch.delenv(jit.BACKGROUND_ENV, raising=False)
    monkeypatch.setattr(jit.os, "sched_getaffinity", lambda pid: set(range(2)))
    assert jit.background_now(1) is False
    monkeypatch.setattr(jit.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert jit.background_now(1) is True and jit.background_now(14) is True
    assert jit.background_now(15) is False
    monkeypatch.setenv(jit.BACKGROUND_ENV, "later")
    assert jit.background_now(1) is False
    monkeypatch.setenv(jit.BACKGROUND_ENV, "now")
    monkeypatch.setattr(jit.os, "sched_getaffinity", lambda pid: {0})
    assert jit.background_now(4) is True


def test_usable_cores_follow_a_cgroup_quota(tmp_path, monkeypatch):
    """A container limited to 2.5 CPUs on a 16-core host may use 3 cores, not 16; no quota: 16."""
    from vtpu_cli.core import resources

    monkeypatch.setattr(resources.os, "sched_getaffinity", lambda pid: set(range(16)))
    f = tmp_path / "cpu.max"
    monkeypatch.setattr(resources, "CGROUP_CPU_MAX", str(f))
    assert jit.usable_cores() == 16  # no such file
    f.write_text("250000 100000\n")
    assert jit.usable_cores() == 3
    f.write_text("max 100000\n")
    assert jit.usable_cores() == 16
    f.write_text("50000 100000\n")
    assert jit.usable_cores() == 1
    monkeypatch.delenv(jit.BACKGROUND_ENV, raising=False)
    assert jit.background_now(1) is False


@pytest.mark.parametrize("when", ["now", "later"])
def test_a_deferred_tier1_compile_starts_when_asked(tmp_path, monkeypatch, when):
    """``later``: the runs go on tier-0 code and no compile process starts until ``start_optimised``
    (which waits until the detached process holds its job); ``now``: at the first compile."""
    monkeypatch.setenv(jit.BACKGROUND_ENV, when)
    calls: list[bool] = []

    def recording(program, on_sent=None, **kw):
        calls.append(True)
        on_sent()
        raise jit.JitError("no tier-1 compile in this test")

    monkeypatch.setattr(jit, "compile_detached", recording)
    prog, cache = _fresh(tmp_path, trips=12)
    eng = jit.JitEngine(prog, cache_dir=cache, tiered=True, rerunnable=True)
    for _ in range(2):
        assert eng.run().tier == 0
    if when == "later":
        assert eng.tier1 is None and eng.tier1_deferred and calls == []
        assert eng.start_optimised(wait_sent=30) is True
        assert eng.tier1 is not None and not eng.tier1_deferred and eng.tier1.sent.is_set()
    else:
        assert calls == [True] and not eng.tier1_deferred  # started with the tier-0 compile
    assert eng.wait_optimised(30) is False and eng.tier1_error == "no tier-1 compile in this test"
    assert calls == [True]  # one compile, whenever it started
    assert eng.start_optimised() is False  # nothing left to start (and tier 1 did not land)


def test_a_detached_compile_has_a_wall_clock_limit(monkeypatch):
    """At background priority a detached compile could wait for CPU time forever on a busy host: it
    sets an alarm at WALL_PER_CPU_S times its CPU limit."""
    import signal

    set_to: list[int] = []
    monkeypatch.setattr(signal, "alarm", lambda s: set_to.append(s) or 0)
    assert C._limit_wall(120.0) == int(120 * C.WALL_PER_CPU_S) and set_to == [int(120 * C.WALL_PER_CPU_S)]
    assert C._limit_wall(0.01) == 1


@pytest.mark.parametrize("here", [True, False, None])
def test_tier0_placement_decides_where_a_compile_runs(tmp_path, monkeypatch, here):
    """``tier0_placement(here=...)``: in this process or in a child, whatever else is compiling; without
    it, a compile alone runs here and one started beside another (``_tier0_busy``) in a child."""
    import contextlib

    monkeypatch.setattr(C, "TIER0_CHILD_SIWS", 4)
    monkeypatch.setattr(C, "_TIER0_JOBS", {})
    monkeypatch.setattr(C, "_tier0_busy", 1)  # another tier-0 compile is under way
    sent: list[str] = []
    real = C._in_child
    monkeypatch.setattr(C, "_in_child", lambda job, *a: sent.append(job[0]) or real(job, *a))
    prog, cache = _fresh(tmp_path, trips=11)
    ctx = C.tier0_placement(here) if here is not None else contextlib.nullcontext()
    with ctx:
        res = jit.JitEngine(prog, opt=C.TIER0_OPT, cache_dir=cache, no_cache=True).run()
    assert res.engine == "jit" and res.tier == 0
    _exact(prog, res, Interpreter(prog).run())
    assert sent == ([] if here else ["tier0"])
    assert getattr(C._placement, "here", None) is None  # restored


def test_a_detached_compile_waits_for_another_process_compiling_the_same_key(tmp_path, monkeypatch):
    """Two background compiles of one program (a second cold start before the first one's compiles
    finished): the later one finds the lock, waits, and takes the object the first stores -- one
    compile. A lock whose process is gone is taken over at once."""
    import subprocess
    import threading

    monkeypatch.setattr(C, "LOCK_POLL_S", 0.02)
    prog, cache = _fresh(tmp_path, trips=9)
    cache.mkdir(mode=0o700)
    v = C._Variant("none", False, 64, *C.host_target(), 4, False, True, C.jit_comm.RACE_CHECK)
    key = C.program_key(prog, v, 3)  # as compile_program makes it
    lock = cache / f"jit-{key[:40]}.lock"
    lock.write_text(str(os.getpid()))  # a live process holds it
    compiled: list[int] = []
    real = C._compile_object
    monkeypatch.setattr(C, "_compile_object", lambda *a: compiled.append(1) or real(*a))
    got: list = []
    waiter = threading.Thread(
        target=lambda: got.append(C.compile_program(prog, cache_dir=cache, opt=3, exclusive=True))
    )
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and not compiled  # waiting for the lock holder's object
    first = C.compile_program(prog, cache_dir=cache, opt=3)  # the "other process" compiles and stores
    waiter.join(30)
    assert not waiter.is_alive() and got[0].cache_hit == "disk" and first.cache_hit == ""
    assert len(compiled) == 1 and lock.exists()  # (the holder's lock is its own to remove)
    # a lock left by a process that is gone: taken over, compiled here, removed
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    lock.write_text(dead.stdout.strip())
    for f in cache.glob("jit-*.o"):
        f.unlink()
    C._loaded.clear()
    res = C.compile_program(prog, cache_dir=cache, opt=3, exclusive=True)
    assert res.cache_hit == "" and len(compiled) == 2 and not lock.exists()


# one step: ("coord", p, c) -- c == 6: a coordinate with no scroll -- | ("load"/"store", p, i32 index),
# an index past 63 out of bounds | ("div", 0/1): a D op between the accesses that may fault
_seg_step = st.one_of(
    st.tuples(st.just("coord"), st.integers(0, 3), st.sampled_from([0, 1, 2, 3, 4, 5, 6, 6, 6])),
    st.tuples(st.just("load"), st.integers(0, 3), st.integers(0, 66)),
    st.tuples(st.just("store"), st.integers(0, 3), st.integers(0, 66)),
    st.tuples(st.just("div"), st.integers(0, 1), st.just(0)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@example(steps=[("load", 0, 1), ("coord", 0, 6), ("load", 0, 1)], loop_at=40, geometry=(64, 4), region=None)
@example(
    steps=[("load", k % 4, k) for k in range(8)] + [("coord", 2, 6), ("store", 1, 3), ("load", 2, 0)],
    loop_at=40,
    geometry=(2, 2),
    region=1,
)
@example(
    steps=[("load", 0, 1), ("load", 1, 2), ("coord", 0, 6), ("load", 1, 3), ("load", 0, 1)],
    loop_at=1,
    geometry=(1, 1),
    region=1,
)
@given(
    steps=st.lists(_seg_step, min_size=1, max_size=40),
    loop_at=st.integers(0, 40),
    geometry=st.sampled_from([(1, 1), (1, 4), (2, 2), (4, 1), (64, 4)]),
    region=st.sampled_from([None, 1, 4]),
)
def test_tier0_segment_translations_are_exact(steps, loop_at, geometry, region):
    """Tier 0 checks the PPT once per segment of accesses (``Lowerer._segment``, the out-of-line
    ``vtpu_ppt_seq`` of the process's runtime, called through the module's table; asserted in the
    IR): random S traffic over 4 p registers and 6 scrolls in caches where registers evict each
    other, re-pointed coordinates, a coordinate with no scroll, out-of-bounds accesses and a D op
    that may divide by zero between them (``traffic_src``) -- results, the fault and where it
    happens, PPT hits and misses and the final LRU state equal the interpreter's; also split into
    regions of 1 or 4 SIWs (``region``: one module of region functions, each with its own view of the
    runtime table, as the model's step programs are)."""
    from test_jit_compile_time import _mem, traffic_src

    prog = assemble(traffic_src(steps, loop_at))
    sets, ways = geometry
    C._init()
    cpu, feat = C.host_target()
    with pytest.MonkeyPatch.context() as mp:
        if region is not None:
            mp.setattr(C, "SPLIT_SIWS", 4)
            mp.setattr(C, "REGION_SIWS", region)
            mp.setattr(C, "COLD_MIN_SIWS", 1)
        text, _ = C.build_tier0(prog, C._Variant("none", False, sets, cpu, feat, ppt_ways=ways))
        accesses = any(k in ("load", "store") for k, _, _ in steps)
        assert ("segslow_" in text) == accesses  # a segment's check, its helper called through the table
        assert 'define internal i64 @"vtpu_ppt_translate"' not in text  # the helpers: in the runtime
        if region is not None and loop_at >= len(steps) and len(prog.code) > 12:
            assert "vtpu_region" in text  # a straight line is cut anywhere
        res = jit.JitEngine(prog, memory=_mem(prog, sets, ways), opt=C.TIER0_OPT, no_cache=True).run()
    ref = Interpreter(prog, memory=_mem(prog, sets, ways)).run()
    assert res.engine == "jit" and res.tier == 0
    assert same_result(ref, res) == []
    assert (res.fault is None) == (ref.fault is None)
    if ref.fault is not None:
        assert (res.fault.siw, res.fault.pipe, res.fault.message) == (
            ref.fault.siw,
            ref.fault.pipe,
            ref.fault.message,
        )
    stats = res.memory.stats
    assert (stats.hits, stats.misses) == (ref.memory.stats.hits, ref.memory.stats.misses)
    assert res.memory._cache == ref.memory._cache
