"""JIT compile time: stays linear in program size (issue #13), and the static translation knowledge
that keeps it so (known-MRU p registers, constant coordinates) stays exact against the interpreter."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.engines.compare import same_result
from vtpu_cli.engines.interp.interpreter import Interpreter, load_memory
from vtpu_cli.machine.memory import Memory

jit = pytest.importorskip("vtpu_cli.engines.jit.engine")
jc = pytest.importorskip("vtpu_cli.engines.jit.compile")
OK, WHY = jc.jit_available()
pytestmark = pytest.mark.skipif(not OK, reason=f"JIT unavailable: {WHY}")

_CACHE = tempfile.mkdtemp(prefix="vtpu-jit-ct-")
COORDS = [f"1.1.1/1.1.{1 + k // 3}/1.1.{1 + k % 3}" for k in range(6)]


def straight_line(n: int, pregs: int = 2) -> str:
    """The coordinator's bench shape: n SIWs of a D op bundled with a gather, p registers in turn."""
    lines = []
    for k in range(pregs):
        lines += [f".coord S{k} = {COORDS[k]}", f".zero S{k} f32[4096]", f"SCOORD p{k}, S{k}"]
    for i in range(n):
        lines.append(
            f"DADD.f32 v{i % 8}, v{(i + 1) % 8}, v{(i + 2) % 8} | "
            f"SGATHER.f32 v{8 + i % 8}, [p{i % pregs} + {(i * 64) % 16000}]"
        )
    lines.append("DHALT")
    return "\n".join(lines) + "\n"


def _cpu_s() -> float:
    """CPU seconds of this process and its waited-for children (large IR compiles in a child)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _compile_cpu_s(src: str) -> float:
    """CPU seconds of one uncached compile (IR building + LLVM), best of three."""
    prog = assemble(src)
    best = float("inf")
    for _ in range(3):
        t0 = _cpu_s()
        jc.compile_program(prog, no_cache=True)
        best = min(best, _cpu_s() - t0)
    return best


def test_compile_time_is_not_superlinear(monkeypatch):
    """4x the SIWs must cost well under 16x the compile time (it was ~25x before static MRU tracking:
    an LLVM InstCombine blow-up). CPU time, best of three, and a generous bound (< 12x; measured ~4x
    alone, 8.7x once inside the whole suite, whose large heap makes the collections a build triggers
    dearer), so a loaded machine or a long suite does not make it flaky. Both programs compile as one function (no region
    split, one job), so the ratio is LLVM's and the lowering's alone; the region split has its own
    structural bound in test_jit_regions.py. (This loop-free program compiles with the light pipeline,
    split or not: docs/jit.md, "Cold code".)"""
    monkeypatch.setenv(jc.JOBS_ENV, "1")
    monkeypatch.setattr(jc, "SPLIT_SIWS", 10**9)
    small = _compile_cpu_s(straight_line(500))
    large = _compile_cpu_s(straight_line(2000))
    assert large < 12 * small, (small, large)


def _mem(prog, sets: int, ways: int) -> Memory:
    m = Memory(sets=sets, ways=ways)
    load_memory(prog, m)
    return m


def traffic_src(steps, loop_at: int) -> str:
    """S traffic over p0..p3 and the scrolls of ``COORDS`` (i32[64] each): ``("coord", p, c)`` points p at
    scroll c (c == 6: ``NONE``, a coordinate with no scroll), ``("load"/"store", p, i)`` element i (past 63:
    out of bounds), ``("div", 0/1, 0)`` a division by r8 = 0 (faults) or by r7 = 1; steps from ``loop_at``
    on run three times."""
    lines = []
    for k, c in enumerate(COORDS):
        vals = ", ".join(str(k * 1000 + i) for i in range(64))
        lines += [f".coord C{k} = {c}", f".data C{k} i32 {vals}"]
    lines += [".coord NONE = 1.1.1/1.1.9/1.1.9", ".output C0, C1, r6"]
    lines += [f"SCOORD p{p}, C{p}" for p in range(4)]
    lines += ["DMOV r1, 3", "DMOV r7, 1"]
    for i, (kind, p, x) in enumerate(steps):
        if i == loop_at:
            lines.append("loop:")
        if kind == "coord":
            lines.append(f"SCOORD p{p}, {'NONE' if x == 6 else f'C{x}'}")
        elif kind == "load":
            lines += [f"SGATHER.i32 r3, [p{p} + {4 * x}]", "DADD r6, r6, r3"]
        elif kind == "store":
            lines.append(f"SSCATTR.i32 [p{p} + {4 * x}], r6")
        else:
            lines.append("DDIV r5, r6, r7" if p else "DDIV r5, r6, r8")
    if loop_at < len(steps):
        lines.append("DLOOP r1, loop")
    return "\n".join(lines) + "\n"


# one step: ("coord", p, c) | ("load", p, off) | ("store", p, off)
_step = st.one_of(
    st.tuples(st.just("coord"), st.integers(0, 3), st.integers(0, 5)),
    st.tuples(st.just("load"), st.integers(0, 3), st.integers(0, 63)),
    st.tuples(st.just("store"), st.integers(0, 3), st.integers(0, 63)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(_step, min_size=1, max_size=40),
    loop_at=st.integers(0, 40),
    geometry=st.sampled_from([(1, 1), (1, 4), (2, 2), (4, 1), (64, 4)]),
    mask=st.booleans(),
)
def test_static_translation_knowledge_is_exact(steps, loop_at, geometry, mask):
    """Random S traffic over 4 p registers and 6 scrolls (constant and re-pointed coordinates, part
    of it in a loop so blocks merge): results, PPT hit/miss counters and the final LRU state equal the
    interpreter's for several cache geometries, including ones where every coordinate shares a set;
    with the MRU flags per register and (``mask``: as large programs have them) in one mask with the
    slow translation out of line."""
    prog = assemble(traffic_src(steps, loop_at))
    sets, ways = geometry
    ref = Interpreter(prog, memory=_mem(prog, sets, ways)).run()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jc, "MRU_MASK_SIWS", -1 if mask else 10**9)
        res = jit.JitEngine(prog, memory=_mem(prog, sets, ways), no_cache=True).run()
    assert res.engine == "jit" and same_result(ref, res) == []
    stats = res.memory.stats
    assert (stats.hits, stats.misses) == (ref.memory.stats.hits, ref.memory.stats.misses)
    assert res.memory._cache == ref.memory._cache


def test_constant_coordinates_survive_joins_only_when_equal():
    """The must-analysis keeps a register's constant across a join only when every path agrees."""
    prog = assemble(
        "\n".join(
            [f".coord C{k} = {c}" for k, c in enumerate(COORDS[:3])]
            + [f".zero C{k} i32[16]" for k in range(3)]
            + [
                "SCOORD p0, C0",
                "SCOORD p1, C1",
                "DMOV r1, 2",
                "top:",
                "SGATHER.i32 r2, [p0]",
                "SCOORD p1, C2",
                "DLOOP r1, top",
                "DHALT",
            ]
        )
        + "\n"
    )
    leaders = jc._leaders(prog)
    consts = jc._const_coords(prog, leaders)
    head = leaders[1]
    assert set(consts[head]) == {0}  # p0 agrees on both edges, p1 does not (C1 vs C2)


def _many_loops(n_loops: int, body: int) -> str:
    """An outer loop around ``n_loops`` counted inner loops of ``body`` SIWs, with straight code
    between them and after the outer loop (more than LARGE_PROGRAM_SIWS SIWs in all)."""
    lines = [
        ".coord A = 1.1.1/1.1.1/1.1.1",
        ".zero A i32[64]",
        ".output r6, r7",
        "SCOORD p0, A",
        "DMOV r5, 3",
    ]
    lines.append("outer:")
    for k in range(n_loops):
        lines += [f"DMOV r1, {1 + k % 4}", f"in{k}:"]
        lines += [f"DADD r6, r6, {k + j}" for j in range(body)]
        lines += ["SGATHER.i64 r3, [p0 + 8]", "DADD r7, r7, r3", f"DLOOP r1, in{k}", "DADD r7, r7, 1"]
    lines += ["DLOOP r5, outer"]
    lines += [f"DADD r6, r6, {j}" for j in range(40)]
    lines.append("DHALT")
    return "\n".join(lines) + "\n"


def test_block_counts_exact_with_memory_counters():
    """Large programs keep only the hot innermost loops' block counters in SSA; the others count in
    memory (looped blocks) or store 1 (blocks that run once). Per-SIW counts, SIWs and ops per pipe
    equal the interpreter's."""
    prog = assemble(_many_loops(24, 24))
    assert len(prog.code) > jc.LARGE_PROGRAM_SIWS
    leaders = jc._leaders(prog)
    ssa, looped = jc._block_counters(prog, leaders)
    assert 0 < len(ssa) <= jc.SSA_COUNTERS and looped - ssa and set(range(len(leaders))) - looped
    interp = Interpreter(prog)
    ref = interp.run()
    res = jit.JitEngine(prog, cache_dir=_CACHE).run()
    assert res.engine == "jit" and same_result(ref, res) == []
    assert res.counts == interp.counts
    assert (res.siws, res.ops_by_pipe) == (ref.siws, ref.ops_by_pipe)


def test_large_ir_compiles_in_a_time_limited_child(monkeypatch):
    """IR over CHILD_IR_LINES is compiled by a child process: the result still runs natively and equals
    the interpreter's; over $VTPU_JIT_COMPILE_TIMEOUT the child is killed and the interpreter runs the
    program, with the reason (a compile that cannot be stopped in-process is now bounded)."""
    from vtpu_cli.engines.select import EngineOptions, open_engine

    src = straight_line(1500)
    prog = assemble(src)
    assert jc.build_module(prog, jc._Variant("none", False, 64, *jc.host_target()))[0].count("\n") > (
        jc.CHILD_IR_LINES
    )

    def run(timeout: str | None):
        if timeout is None:
            monkeypatch.delenv(jc.COMPILE_TIMEOUT_ENV, raising=False)
        else:
            monkeypatch.setenv(jc.COMPILE_TIMEOUT_ENV, timeout)
        mem = Memory()
        load_memory(prog, mem)
        return open_engine(prog, mem, EngineOptions(engine="jit", no_cache=True)).run()

    native = run(None)
    assert native.engine == "jit" and native.fallback is None and native.status == "ok"
    mem = Memory()
    load_memory(prog, mem)
    golden = Interpreter(prog, 1, memory=mem).run()
    assert same_result(golden, native) == []
    # a limit no compile can meet, whatever the host's load: 0.05 CPU-s (whole seconds in RLIMIT_CPU)
    # and 5 microseconds of wall clock
    monkeypatch.setattr(jc, "WALL_PER_CPU_S", 1e-4)
    slow = run("0.05")
    assert slow.engine == "interp" and "native compile ran over" in slow.fallback
    assert jc.COMPILE_TIMEOUT_ENV in slow.fallback
    assert same_result(golden, slow) == []


def test_the_compile_child_is_bounded_in_cpu_time():
    """The child's limit is CPU time (RLIMIT_CPU, SIGXCPU at the limit): a host busy with other work
    stretches a compile's wall time, not its CPU time, so a large model's compile no longer falls back to
    the interpreter because the machine was loaded. A child that burns past its limit is killed."""
    import signal
    import subprocess
    import sys

    code = "from vtpu_cli.engines.jit import compile as C\nC._limit_cpu(0.5)\nwhile True: pass\n"
    p = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, timeout=60)
    assert p.returncode == -signal.SIGXCPU


HANG_IR = Path(__file__).parent / "data" / "jit_o3_unroll_hang.ll"  # a generated random program's IR


def _emit_in_child(level: int, timeout: float) -> bool:
    """Optimise HANG_IR at ``level`` and emit it in a child process; False when it runs past ``timeout``."""
    import subprocess
    import sys

    code = (
        "import sys, llvmlite.binding as llvm\n"
        "from vtpu_cli.engines.jit import compile as C\n"
        "C._init()\n"
        "cpu, feat = C.host_target(False)\n"
        f"tm = C._target_machine(cpu, feat, opt={min(level, 3)})\n"
        f"mod = llvm.parse_assembly(open({str(HANG_IR)!r}).read())\n"
        "mod.triple = tm.triple\n"
        "mod.data_layout = str(tm.target_data)\n"
        f"C._optimise(mod, tm, {level})\n"
        "print(len(tm.emit_object(mod)))\n"
    )
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    assert p.returncode == 0, p.stderr[-2000:]
    return int(p.stdout) > 0


def test_the_o3_hang_program_compiles_at_o2():
    """The campaign's hanging program (see the next test) compiles at once at O2."""
    assert _emit_in_child(2, timeout=120)


def test_the_o3_hang_program_compiles_at_o3():
    """Found by the differential campaign (a random program, after 9,100 clean ones): with O3's loop
    unrolling its optimised IR kept instruction selection (SelectionDAG::Legalize, at every codegen
    level) busy indefinitely. O3 now runs without the loop-unrolling option, and it compiles in ms."""
    assert _emit_in_child(3, timeout=60)


def test_the_compile_child_ignores_a_vtpu_cli_in_the_working_directory(monkeypatch, tmp_path):
    """The child that compiles large IR imports the parent's vtpu_cli: a package of that name in the
    caller's working directory (another checkout, or a hostile file) is never imported. Before, the
    child's `python -c` put the working directory first on its path, ran that package and the program
    fell back to the interpreter."""
    from vtpu_cli.engines.select import EngineOptions, open_engine

    fake = tmp_path / "vtpu_cli"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise SystemExit('the working directory was imported')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(jc.COMPILE_TIMEOUT_ENV, raising=False)
    prog = assemble(straight_line(1500))  # IR over CHILD_IR_LINES: compiled in the child
    mem = Memory()
    load_memory(prog, mem)
    res = open_engine(prog, mem, EngineOptions(engine="jit", no_cache=True)).run()
    assert res.engine == "jit" and res.fallback is None and res.status == "ok"


def test_the_compile_child_imports_the_parents_vtpu_cli_before_pythonpath(monkeypatch, tmp_path):
    """A vtpu_cli elsewhere on the child's path (a stale install, another checkout on ``PYTHONPATH``)
    is never imported in place of the parent's: the parent's package root goes first on the child's
    path. Without it the child imported the other copy and the program fell back."""
    from vtpu_cli.engines.select import EngineOptions, open_engine

    other = tmp_path / "other"
    (other / "vtpu_cli").mkdir(parents=True)
    (other / "vtpu_cli" / "__init__.py").write_text("raise SystemExit('another vtpu_cli was imported')\n")
    monkeypatch.setenv("PYTHONPATH", str(other))
    monkeypatch.delenv(jc.COMPILE_TIMEOUT_ENV, raising=False)
    prog = assemble(straight_line(1500))  # IR over CHILD_IR_LINES: compiled in the child
    mem = Memory()
    load_memory(prog, mem)
    res = open_engine(prog, mem, EngineOptions(engine="jit", no_cache=True)).run()
    assert res.engine == "jit" and res.fallback is None and res.status == "ok"
