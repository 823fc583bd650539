"""Large programs are lowered as region functions behind a dispatcher (``compile._regions``): the compile
stays linear in program size (structure checked here, not wall-clock time), and the split code is exact
against the interpreter -- results, per-block counts, PPT counters, step limits -- also when regions are
forced far smaller than by default, on random programs."""

from __future__ import annotations

import tempfile

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.engines.compare import same_result
from vtpu_cli.engines.interp.interpreter import Interpreter, load_memory
from vtpu_cli.machine.memory import Memory

jit = pytest.importorskip("vtpu_cli.engines.jit.engine")
jc = pytest.importorskip("vtpu_cli.engines.jit.compile")
OK, WHY = jc.jit_available()
pytestmark = pytest.mark.skipif(not OK, reason=f"JIT unavailable: {WHY}")
_CACHE = tempfile.mkdtemp(prefix="vtpu-jit-regions-")


def layered(n_loops: int, body: int = 6, trips: int = 3) -> str:
    """A model-step shape: one outer ("layer") loop around ``n_loops`` small counted loops that stream
    through a scroll, with straight code between them, and straight code after the outer loop."""
    lines = [
        ".coord A = 1.1.1/1.1.1/1.1.1",
        ".coord B = 1.1.1/1.1.1/1.1.2",
        ".data A i32 " + ", ".join(str(7 * i + 1) for i in range(64)),
        ".zero B i32[64]",
        ".output B, r6, r7",
        "SCOORD p0, A",
        "SCOORD p1, B",
        f"DMOV r5, {trips}",
        "outer:",
    ]
    for k in range(n_loops):
        lines += [f"DMOV r1, {1 + k % 3}", "DMOV r2, 0", f"in{k}:"]
        lines += [f"DADD r6, r6, {k + j}" for j in range(body)]
        lines += [
            "SGATHER.i32 r3, [p0 + r2]",
            "DADD r7, r7, r3",
            "DADD r2, r2, 4",
            f"DLOOP r1, in{k}",
            f"SSCATTR.i32 [p1 + {4 * (k % 64)}], r7",
            "DXOR r7, r7, r6",
        ]
    lines += ["DLOOP r5, outer"]
    lines += [f"DADD r6, r6, {j}" for j in range(30)]
    lines.append("DHALT")
    return "\n".join(lines) + "\n"


def _variant(single: bool = True):
    return jc._Variant("none", False, 64, *jc.host_target(), 4, False, single)


def _functions(text: str) -> dict[str, int]:
    """IR lines per defined function."""
    out, name, n = {}, None, 0
    for line in text.splitlines():
        if line.startswith("define "):
            name, n = line.split("@", 1)[1].split("(", 1)[0].strip('"'), 0
        elif line.startswith("}") and name:
            out[name], name = n, None
        elif name:
            n += 1
    return out


@settings(max_examples=20, deadline=None)
@given(n_loops=st.integers(1, 60), body=st.integers(1, 40), region=st.sampled_from([4, 16, 64, 512]))
def test_regions_cover_the_program_and_never_cut_a_small_loop(n_loops, body, region):
    prog = assemble(layered(n_loops, body))
    n = len(prog.code)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jc, "SPLIT_SIWS", 0)
        mp.setattr(jc, "REGION_SIWS", region)
        leaders = jc._leaders(prog)
        regions = jc._regions(prog, leaders, _variant())
    assert regions[0][0] == 0 and regions[-1][1] == n
    assert all(a < z for a, z in regions)
    assert all(z == a2 for (_, z), (a2, _) in zip(regions, regions[1:], strict=False))
    small = [
        (siw[0].args[-1].value, pc)
        for pc, siw in enumerate(prog.code)
        if siw[0].op.branch and 0 <= siw[0].args[-1].value <= pc and pc - siw[0].args[-1].value < region
    ]
    for a, _z in regions[1:]:
        assert a in leaders
        assert not any(t < a <= s for t, s in small), (a, small)
    # bounded: a region grows past REGION_SIWS only by one small loop
    assert max(z - a for a, z in regions) <= 2 * region + body + 8


def test_compile_work_is_linear_in_program_size():
    """Twice the layer-loop body: about twice the IR, in about twice as many functions, and the
    largest function (what one LLVM pass sees at once) no larger. Before the split, the whole step was
    one function whose loop passes scaled with its size times its fault exits."""
    sizes = {}
    for k in (120, 240):
        prog = assemble(layered(k))
        assert len(prog.code) > jc.SPLIT_SIWS
        text, _ = jc.build_module(prog, _variant())
        fns = _functions(text)
        # the 31 loop-free SIWs after the outer loop are one cold region at both sizes
        cold = {
            line.split("@", 1)[1].split("(", 1)[0].strip('"')
            for line in text.splitlines()
            if line.startswith("define ") and " cold " in line
        }
        regions = [v for name, v in fns.items() if name.startswith("vtpu_region") and name not in cold]
        sizes[k] = (sum(fns.values()), len(regions), max(regions), len(prog.code))
    (lines1, nf1, big1, siws1), (lines2, nf2, big2, siws2) = sizes[120], sizes[240]
    assert 1.8 < siws2 / siws1 < 2.2
    assert lines2 / lines1 < 2.3, sizes
    assert nf2 >= 1.7 * nf1, sizes
    assert big2 <= 1.3 * big1, sizes
    assert lines2 / siws2 < 60, sizes  # IR per SIW stays small


def _mem(prog) -> Memory:
    m = Memory()
    load_memory(prog, m)
    return m


@pytest.mark.parametrize("split, region, loops", [(100, 8, 40), (100, 64, 40), (None, None, 110)])
def test_split_program_is_exact(split, region, loops, monkeypatch):
    """A program above SPLIT_SIWS whose outer loop is cut into regions (forced small, and the default
    sizes): results, per-block counts, SIWs and ops per pipe, and PPT hits/misses equal the
    interpreter's."""
    if split is not None:
        monkeypatch.setattr(jc, "SPLIT_SIWS", split)
        monkeypatch.setattr(jc, "REGION_SIWS", region)
    prog = assemble(layered(loops))
    assert len(prog.code) > jc.SPLIT_SIWS
    assert len(jc._regions(prog, jc._leaders(prog), _variant())) > 1
    interp = Interpreter(prog, memory=_mem(prog))
    ref = interp.run()
    res = jit.JitEngine(prog, memory=_mem(prog), cache_dir=_CACHE).run()
    assert res.engine == "jit" and not res.replay and same_result(ref, res) == []
    assert res.counts == interp.counts
    assert (res.siws, res.ops_by_pipe) == (ref.siws, ref.ops_by_pipe)
    assert (res.memory.stats.hits, res.memory.stats.misses) == (
        ref.memory.stats.hits,
        ref.memory.stats.misses,
    )


@pytest.mark.parametrize("steps", [1, 300, 1100, 9000])
def test_split_program_step_limit_is_exact(steps, monkeypatch):
    """--max-steps on a split program: the step count is handed from region to region."""
    monkeypatch.setattr(jc, "SPLIT_SIWS", 100)
    monkeypatch.setattr(jc, "REGION_SIWS", 32)
    prog = assemble(layered(30))
    ref = Interpreter(prog, memory=_mem(prog), max_steps=steps).run()
    res = jit.JitEngine(prog, memory=_mem(prog), max_steps=steps, cache_dir=_CACHE).run()
    assert res.engine == "jit" and same_result(ref, res) == []
    assert (res.status, res.siws) == (ref.status, ref.siws)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_forced_tiny_regions_random_programs(data):
    """Random programs (the JIT's differential generator) cut after every few SIWs, with and without
    cold regions and the MRU mask: still exact."""
    from test_jit import _interp_ok, check, programs

    prog = data.draw(programs())
    assume(_interp_ok(prog))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jc, "SPLIT_SIWS", 4)
        mp.setattr(jc, "REGION_SIWS", data.draw(st.sampled_from([1, 2, 4])))
        mp.setattr(jc, "COLD_MIN_SIWS", data.draw(st.sampled_from([1, 24])))
        mp.setattr(jc, "MRU_MASK_SIWS", data.draw(st.sampled_from([-1, 10**9])))
        check(prog, no_cache=True)


def test_parts_compile_in_parallel_load_and_cache_exactly(monkeypatch, tmp_path):
    """A split program compiled as a dispatcher plus several parts (separate objects, each compiled by
    its own child process at the same time), loaded from the compile and from the disk cache: the
    regions' table is filled and the run equals the interpreter's."""
    monkeypatch.setattr(jc, "SPLIT_SIWS", 100)
    monkeypatch.setattr(jc, "REGION_SIWS", 32)
    monkeypatch.setattr(jc, "PART_SIWS", 64)
    monkeypatch.setattr(jc, "CHILD_IR_LINES", 2000)  # the parts go to child processes
    monkeypatch.setenv(jc.JOBS_ENV, "3")
    prog = assemble(layered(40))
    assert jc.compile_parts(prog) == 4
    texts, _ = jc.build_parts(prog, _variant(), 4)
    assert len(texts) == 4 and jc.TABLE in texts[0]
    cache = tmp_path / "cache"
    interp = Interpreter(prog, memory=_mem(prog))
    ref = interp.run()
    for source in ("", "disk"):
        jc._loaded.clear()
        comp = jc.compile_program(prog, cache_dir=cache)
        assert comp.cache_hit == source
        res = jit.JitEngine(prog, memory=_mem(prog), cache_dir=cache).run()
        assert res.engine == "jit" and same_result(ref, res) == [] and res.counts == interp.counts
    blob = next(cache.glob("jit-*.o")).read_bytes()
    assert blob.startswith(jc.PACK_MAGIC)
