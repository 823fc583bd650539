"""The JIT's module building (docs/jit.md, "Compile time"): ``irbase.FastBuilder`` makes the frequent
instructions with their text computed at creation, so it must print exactly the module llvmlite's own
``IRBuilder`` prints -- then the native code cannot differ."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_jit import programs

jit = pytest.importorskip("vtpu_cli.engines.jit.engine")
if not jit.jit_available()[0]:  # pragma: no cover
    pytest.skip("JIT unavailable", allow_module_level=True)

from llvmlite import ir  # noqa: E402

from vtpu_cli.asm.assembler import assemble  # noqa: E402
from vtpu_cli.bench.suite import assemble_program, load_manifests  # noqa: E402
from vtpu_cli.engines.jit import compile as C  # noqa: E402
from vtpu_cli.engines.jit import irbase  # noqa: E402


def _variant(**kw) -> C._Variant:
    cpu, features = C.host_target()
    return C._Variant(
        **{"limit": "none", "portable": False, "ppt_sets": 64, "cpu": cpu, "features": features, **kw}
    )


def _both(prog, v, parts: int = 1) -> tuple[list[str], list[str]]:
    """The module texts built with llvmlite's IRBuilder and printed by llvmlite, and as the JIT builds
    and prints them (FastBuilder, ``compile._module_text``)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(irbase, "BUILDER", ir.IRBuilder)
        mp.setattr(C, "_module_text", str)
        ref = C.build_parts(prog, v, parts)[0]
    assert irbase.BUILDER is irbase.FastBuilder and C._module_text is not str
    fast = C.build_parts(prog, v, parts)[0]
    return ref, fast


def test_the_fast_builder_is_the_default():
    assert irbase.BUILDER is irbase.FastBuilder
    assert isinstance(
        irbase.builder(
            ir.Function(ir.Module(), ir.FunctionType(ir.VoidType(), []), "f").append_basic_block()
        ),
        irbase.FastBuilder,
    )


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    prog=programs(),
    precise=st.booleans(),
    limit=st.sampled_from(["none", "local", "shared"]),
    single=st.booleans(),
    lift=st.booleans(),
)
def test_same_text_as_llvmlite_on_random_programs(prog, precise, limit, single, lift):
    ref, fast = _both(prog, _variant(precise=precise, limit=limit, single=single, lift=lift))
    assert fast == ref


@pytest.mark.parametrize("lift", [False, True], ids=["tier1", "tier0"])
@pytest.mark.parametrize("m", load_manifests(), ids=lambda m: m.name)
def test_same_text_as_llvmlite_on_the_bench_programs(m, lift):
    prog = assemble_program(m, m.params_for("quick"))
    ref, fast = _both(prog, _variant(single=m.sentrons == 1, lift=lift))
    assert fast == ref
    assert sum(t.count("\n") for t in fast) > 200


def test_same_text_as_llvmlite_on_a_split_program(monkeypatch):
    """Regions, a dispatcher and several parts (the large-program path)."""
    monkeypatch.setattr(C, "SPLIT_SIWS", 8)
    monkeypatch.setattr(C, "REGION_SIWS", 6)
    src = ["DMOV r1, 3", "DMOV r2, 0", "loop:"]
    src += [f"DADD r{3 + k % 4}, r{3 + k % 4}, {k + 1}" for k in range(20)]
    src += ["DLOOP r1, loop", "DHALT"]
    prog = assemble("\n".join(src) + "\n")
    for parts in (1, 3):
        ref, fast = _both(prog, _variant(), parts)
        assert len(fast) == parts and fast == ref


@pytest.mark.parametrize("m", ["f32_gemm", "ring_allreduce"])
@pytest.mark.parametrize("dismantle", [True, False])
def test_a_built_module_is_freed_without_the_cyclic_collector(m, dismantle, monkeypatch):
    """``compile._dismantle`` breaks the module's reference cycles once its text is made: with the
    collector off, reference counting alone frees every function, block and instruction (left to the
    collector, a model step's ~200,000 objects cost a 0.12-0.16 s collection when it came back on).
    Without it (``dismantle=False``) the same objects stay alive: the check can fail."""
    import gc
    import weakref

    refs: list = []
    real = C._dismantle

    def watch(mod):
        fns = [f for f in mod.functions if f.blocks]
        refs.extend(weakref.ref(x) for x in [mod, *fns, *(b for f in fns for b in f.blocks)])
        refs.extend(weakref.ref(i) for f in fns for b in f.blocks for i in b.instructions[:50])
        if dismantle:
            real(mod)

    monkeypatch.setattr(C, "_dismantle", watch)
    mf = {x.name: x for x in load_manifests()}[m]
    prog = assemble_program(mf, mf.params_for("quick"))
    was = gc.isenabled()
    gc.disable()
    try:
        text, _ = C.build_tier0(prog, _variant(single=mf.sentrons == 1))
        assert "define" in text and len(refs) > 50
        alive = [r() for r in refs if r() is not None]
        if dismantle:
            assert not alive, f"{len(alive)} objects kept alive, e.g. {type(alive[0]).__name__}"
        else:
            assert len(alive) == len(refs)
        del alive
    finally:
        if was:
            gc.enable()
        gc.collect()
