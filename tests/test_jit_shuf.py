"""DSHUF on the JIT: one AVX-512 lane-permute intrinsic per op (vpermd, vpermq, vpermw, vpermb) where
the host has the features, else the lane-by-lane IR -- both bit for bit the interpreter's ``d[i] =
a[idx[i] mod lanes]`` for every element type, with indices far outside the lane range (negative too);
the IR holds the intrinsic and the native code the permute."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.engines.compare import same_result
from vtpu_cli.engines.interp.interpreter import Interpreter
from vtpu_cli.engines.jit import compile as jc
from vtpu_cli.engines.jit import engine as jit

OK, WHY = jc.jit_available()
needs_jit = pytest.mark.skipif(not OK, reason=f"JIT unavailable: {WHY}")

# element type -> (numpy dtype of the lanes, the permute the native code should use)
TYPES = {
    "f32": (np.uint32, "vperm"),
    "i32": (np.uint32, "vperm"),
    "i64": (np.uint64, "vpermq"),
    "i16": (np.uint16, "vpermw"),
    "bf16": (np.uint16, "vpermw"),
    "i8": (np.uint8, "vpermb"),
}
FEATURE = {"i16": "+avx512bw", "bf16": "+avx512bw", "i8": "+avx512vbmi"}


def _program(t: str, a: np.ndarray, idx: np.ndarray):
    itype = {1: "i8", 2: "i16", 4: "i32", 8: "i64"}[a.itemsize]
    words = lambda v: ", ".join(str(int(x)) for x in v)  # noqa: E731
    src = f"""
.coord A = 1.1.1/1.1.1/1.1.1
.coord I = 1.1.1/1.1.1/1.1.2
.coord Y = 1.1.1/1.1.1/1.1.3
.data A {itype} {words(a.view(np.dtype(itype.replace("i", "int"))))}
.data I {itype} {words(idx)}
.zero Y u8[64]
.output Y
    SCOORD p0, A
    SCOORD p1, I
    SCOORD p2, Y
    SGATHER.{t} v0, [p0]
    SGATHER.{t} v1, [p1]
    DSHUF.{t} v2, v0, v1
    SSCATTR.{t} [p2], v2
"""
    return assemble(src, "shuf.vasm")


def _draw(t: str, rng) -> tuple[np.ndarray, np.ndarray]:
    dt, _ = TYPES[t]
    n = 64 // np.dtype(dt).itemsize
    a = rng.integers(0, np.iinfo(dt).max, n, dtype=dt, endpoint=True)
    bits = 8 * np.dtype(dt).itemsize
    lim = min(1 << (bits - 1), 1 << 20)
    idx = rng.integers(-lim, lim, n)  # far outside 0..n-1, negative too: only the low bits count
    return a, idx


@needs_jit
@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(t=st.sampled_from(sorted(TYPES)), seed=st.integers(0, 2**16), permute=st.booleans())
def test_dshuf_matches_the_interpreter(tmp_path, t, seed, permute):
    """Native code with the permute (where the host has the features) or in the lane-by-lane form
    (the permute table emptied): the interpreter's lanes either way."""
    from vtpu_cli.engines.jit import lowering

    a, idx = _draw(t, np.random.default_rng(seed))
    need = FEATURE.get(t, "+avx512f")
    if permute and need not in jc.host_target()[1].split(","):
        return  # (a host without the feature: the other form is drawn too)
    with pytest.MonkeyPatch.context() as mp:
        if not permute:
            mp.setattr(lowering, "_PERMVAR", {})
        prog = _program(t, a, idx)
        if permute:
            cpu, feats = jc.host_target()
            v = jc._Variant("none", False, 64, cpu, feats, 4, False, True)
            assert "llvm.x86.avx512.permvar." in jc.build_module(prog, v)[0]
            assert TYPES[t][1] in jc.emit_assembly(prog)
        ref = Interpreter(prog).run()
        res = jit.JitEngine(prog, no_cache=True).run()  # (compiled here, with the table as set)
    assert res.engine == "jit", res.fallback
    assert same_result(ref, res) == []
    n = a.size
    name = {1: "i8", 2: "i16", 4: "i32", 8: "i64"}[a.itemsize]
    got = res.sentrons[0].view(name)[2][:n]
    assert got.tobytes() == a[np.mod(idx, n)].tobytes()
