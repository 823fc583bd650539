"""Tiered JIT compilation (docs/jit.md, "Tiers"): tier-0 code (every function through the light
pipeline) is exact against the interpreter, a tiered engine runs tier-0 code first and tier-1 code from
the run after the background compile landed, faults and exit states never depend on the tier, and the
switch ``$VTPU_JIT_TIERED=0`` turns tiers off."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
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
