"""DTDOT (ternary code dot-accumulate, interleaved t2 layout) and phextcc's interleaved weight tiles.

The interpreter's semantics are checked against an independent formula, and the JIT against the
interpreter with the native run asserted (both the VNNI/GFNI lowering and the portable one); the tile
packing against a per-code definition, and tmatmul through both lowerings against the numpy reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtpu_cli.binary.program import DataScroll, Imm, Instr, Mem, Program, Reg, nop
from vtpu_cli.core import coords
from vtpu_cli.engines.compare import same_result
from vtpu_cli.engines.interp.interpreter import Interpreter
from vtpu_cli.isa.table import BY_NAME

A = coords.pack(coords.Coord((1, 1, 1, 1, 1, 1, 1, 1, 1)))


def _ins(name: str, *args, t: str | None = None) -> Instr:
    return Instr(BY_NAME[name], None, t, None, tuple(args))


def _siw(ins: Instr):
    slots = {p: nop(p) for p in "DSC"}
    slots[ins.op.pipe] = ins
    return (slots["D"], slots["S"], slots["C"])


def _v(i: int) -> Reg:
    return Reg("v", i)


def dtdot_ref(acc: np.ndarray, a: np.ndarray, w: np.ndarray, q: int) -> np.ndarray:
    """Independent definition: code k of plane q = bits 2q..2q+1 of byte k, raw (0..3), int32 wrap."""
    out = acc.astype(np.int64).copy()
    for j in range(16):
        for t in range(4):
            k = 4 * j + t
            out[j] += int(a[k]) * ((int(w[k]) >> (2 * q)) & 3)
    return ((out + 2**31) % 2**32 - 2**31).astype(np.int32)


def _program(acc: np.ndarray, a: np.ndarray, w: np.ndarray, planes: list[int]) -> Program:
    """v0 = a, v1 = w, v2 = acc; then DTDOT v2, v0, v1, q for each q of ``planes``."""
    raw = a.astype(np.int8).tobytes() + w.astype(np.uint8).tobytes() + acc.astype(np.int32).tobytes()
    code = [
        _siw(_ins("SCOORD", Reg("p", 0), Imm(A))),
        _siw(_ins("SGATHER", _v(0), Mem(0, Imm(0)), t="i8")),
        _siw(_ins("SGATHER", _v(1), Mem(0, Imm(64)), t="i8")),
        _siw(_ins("SGATHER", _v(2), Mem(0, Imm(128)), t="i32")),
    ]
    code += [_siw(_ins("DTDOT", _v(2), _v(0), _v(1), Imm(q))) for q in planes]
    return Program(code=code, data=[DataScroll(A, "u8", (192,), raw)])


def _expected(acc, a, w, planes):
    for q in planes:
        acc = dtdot_ref(acc, a, w, q)
    return acc


vec_i8 = st.lists(st.integers(-128, 127), min_size=64, max_size=64).map(lambda v: np.array(v, np.int8))
vec_u8 = st.lists(st.integers(0, 255), min_size=64, max_size=64).map(lambda v: np.array(v, np.uint8))
vec_acc = st.lists(st.integers(-(2**31), 2**31 - 1), min_size=16, max_size=16).map(
    lambda v: np.array(v, np.int32)
)
planes_st = st.lists(st.integers(0, 3), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(vec_acc, vec_i8, vec_u8, planes_st)
def test_dtdot_interpreter_matches_definition(acc, a, w, planes):
    res = Interpreter(_program(acc, a, w, planes)).run()
    assert res.status == "ok"
    got = res.sentrons[0].view("i32")[2]
    assert got.tolist() == _expected(acc, a, w, planes).tolist()


def test_dtdot_edges():
    """Extremes: -128 activations against code 3 (reserved, computes as 3) in every plane, and a wrap."""
    a = np.full(64, -128, np.int8)
    w = np.full(64, 0xFF, np.uint8)
    acc = np.full(16, -(2**31), np.int32)
    res = Interpreter(_program(acc, a, w, [0, 3])).run()
    # -2**31 + 2 planes * 4 products * (-128 * 3) wraps around to 2**31 - 3072
    assert res.sentrons[0].view("i32")[2].tolist() == [2**31 - 3072] * 16
    # plane selection: only plane 2 set -> planes 0, 1, 3 add nothing
    w = np.full(64, 0b00_10_00_00, np.uint8)
    a = np.arange(64, dtype=np.int8)
    zero = np.zeros(16, np.int32)
    r0 = Interpreter(_program(zero, a, w, [0, 1, 3])).run()
    r2 = Interpreter(_program(zero, a, w, [2])).run()
    assert not r0.sentrons[0].view("i32")[2].any()
    assert r2.sentrons[0].view("i32")[2].tolist() == [2 * sum(range(4 * j, 4 * j + 4)) for j in range(16)]


jit = pytest.importorskip("vtpu_cli.engines.jit.engine")
jc = pytest.importorskip("vtpu_cli.engines.jit.compile")
OK, WHY = jc.jit_available()
needs_jit = pytest.mark.skipif(not OK, reason=f"JIT unavailable: {WHY}")


@pytest.fixture(scope="module")
def jit_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("t2jit")


@needs_jit
@pytest.mark.parametrize("portable", [False, True])
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(vec_acc, vec_i8, vec_u8, planes_st)
def test_dtdot_jit_matches_interpreter(jit_cache, portable, acc, a, w, planes):
    """Native execution asserted; the plane sequence draws every lowering (mask only, shift or GFNI)."""
    prog = _program(acc, a, w, planes)
    ref = Interpreter(prog).run()
    res = jit.JitEngine(prog, portable=portable, cache_dir=str(jit_cache)).run()
    assert res.engine == "jit", res.fallback
    assert not getattr(res, "replay", "")
    assert same_result(ref, res) == []
    assert res.sentrons[0].view("i32")[2].tolist() == _expected(acc, a, w, planes).tolist()


@needs_jit
def test_dtdot_lowering_has_no_shuffles():
    """What makes DTDOT cheap: on a VNNI host no byte shuffle (vpermb / vpmultishiftqb) and no per-op
    correction; planes 1-3 one vgf2p8affineqb each where the host has GFNI."""
    cpu, feats = jc.host_target()
    if "+avx512vnni" not in feats.split(","):
        pytest.skip("host without AVX-512 VNNI")
    z = np.zeros(16, np.int32)
    asm = jc.emit_assembly(_program(z, np.zeros(64, np.int8), np.zeros(64, np.uint8), [0, 1, 2, 3]))
    assert asm.count("vpdpbusd") == 4
    assert "vpermb" not in asm and "vpmultishiftqb" not in asm and "vpsubd" not in asm
    if "+gfni" in feats.split(","):  # planes 1-3 by GFNI; on AMD plane 1 only (lowering._amd)
        assert asm.count("vgf2p8affineqb") == (1 if "+sse4a" in feats.split(",") else 3)


@needs_jit
def test_dtdot_jit_without_gfni(monkeypatch, tmp_path):
    """The VNNI lowering on a CPU without GFNI (16-bit shift + byte mask): forced by building for the
    host's features minus GFNI; same bits as the interpreter, and the shift form is what was emitted."""
    host = jc.host_target

    def no_gfni(portable: bool = False):
        cpu, feats = host(portable)
        return cpu, ",".join("-gfni" if f == "+gfni" else f for f in feats.split(","))

    monkeypatch.setattr(jc, "host_target", no_gfni)
    rng = np.random.default_rng(7)
    acc = rng.integers(-(2**31), 2**31, 16, dtype=np.int64).astype(np.int32)
    a = rng.integers(-128, 128, 64).astype(np.int8)
    w = rng.integers(0, 256, 64).astype(np.uint8)
    prog = _program(acc, a, w, [0, 1, 2, 3, 2])
    asm = jc.emit_assembly(prog)
    assert "vgf2p8affineqb" not in asm and "vpsrlw" in asm
    ref = Interpreter(prog).run()
    res = jit.JitEngine(prog, cache_dir=str(tmp_path)).run()
    assert res.engine == "jit", res.fallback
    assert same_result(ref, res) == []
    assert res.sentrons[0].view("i32")[2].tolist() == _expected(acc, a, w, [0, 1, 2, 3, 2]).tolist()


@needs_jit
@pytest.mark.parametrize("amd", [False, True])
def test_dtdot_lowering_per_vendor(monkeypatch, tmp_path, amd):
    """GFNI for planes 1-3 on Intel; on AMD (SSE4a) GFNI for plane 1 and shift + mask for planes 2 and 3
    (Zen 4's pipe balance, lowering._amd): forced by building for the host's features with SSE4a set
    or cleared; same bits as the interpreter wherever the code can run on this host."""
    cpu, feats = jc.host_target()
    have = feats.split(",")
    if "+avx512vnni" not in have or "+gfni" not in have:
        pytest.skip("host without AVX-512 VNNI and GFNI")
    host = jc.host_target

    def vendor(portable: bool = False):
        c, f = host(portable)
        rest = [x for x in f.split(",") if x not in ("+sse4a", "-sse4a")]
        return c, ",".join([*rest, "+sse4a" if amd else "-sse4a"])

    monkeypatch.setattr(jc, "host_target", vendor)
    rng = np.random.default_rng(11)
    acc = rng.integers(-(2**31), 2**31, 16, dtype=np.int64).astype(np.int32)
    a = rng.integers(-128, 128, 64).astype(np.int8)
    w = rng.integers(0, 256, 64).astype(np.uint8)
    planes = [0, 1, 2, 3, 3, 1, 2]
    prog = _program(acc, a, w, planes)
    asm = jc.emit_assembly(prog)
    assert asm.count("vpdpbusd") == len(planes)
    assert asm.count("vgf2p8affineqb") == (1 if amd else 3)  # one per distinct plane of the same w
    assert ("vpsrlw" in asm) == amd
    if amd and "+sse4a" not in have:
        return  # code built for an AMD host is only read here, not run
    ref = Interpreter(prog).run()
    res = jit.JitEngine(prog, cache_dir=str(tmp_path)).run()
    assert res.engine == "jit", res.fallback
    assert same_result(ref, res) == []
    assert res.sentrons[0].view("i32")[2].tolist() == _expected(acc, a, w, planes).tolist()


# ---------------------------------------------------------------------- the interleaved tile layout
def _tiles_by_definition(w: np.ndarray) -> np.ndarray:
    k, n = w.shape
    k16, n16 = (k + 15) // 16 * 16, (n + 15) // 16 * 16
    c = np.ones((k16, n16), np.int64)
    c[:k, :n] = w + 1
    out = np.zeros(k16 * n16 // 4, np.uint8)
    for nb in range(n16 // 16):
        for s in range(k16 // 16):
            for j in range(16):
                for t in range(4):
                    v = sum(int(c[16 * s + 4 * q + t, 16 * nb + j]) << (2 * q) for q in range(4))
                    out[(nb * (k16 // 16) + s) * 64 + 4 * j + t] = v
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_pack_ternary_tiles_is_the_documented_layout(k, n, seed):
    from vtpu_cli.compiler.tensors import pack_ternary_tiles

    w = np.random.default_rng(seed).integers(-1, 2, (k, n))
    assert np.array_equal(np.frombuffer(pack_ternary_tiles(w), np.uint8), _tiles_by_definition(w))


def test_pack_ternary_tiles_rejects_bad_values():
    from vtpu_cli.compiler.tensors import pack_ternary_tiles
    from vtpu_cli.core.errors import VtpuError

    with pytest.raises(VtpuError, match="-1, 0 or 1"):
        pack_ternary_tiles(np.array([[2, 0]]))
    with pytest.raises(VtpuError, match="2-D"):
        pack_ternary_tiles(np.array([1, 0, -1]))


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 70), st.integers(1, 70), st.integers(0, 2**32 - 1))
def test_model_tile_layout_is_the_compilers_packing(rows, cols, seed):
    """The model's conversion (from the vtpu [out, in/4] layout, in row chunks) gives the same bytes."""
    from vtpu_cli.compiler.tensors import pack_ternary_tiles
    from vtpu_cli.models import compiled
    from vtpu_cli.models.ternary import TernaryMatrix, pack_ternary

    w = np.random.default_rng(seed).integers(-1, 2, (rows, cols)).astype(np.int8)
    m = TernaryMatrix("w", rows, cols, pack_ternary(w), 1.0)
    assert compiled.tile_layout(m).tobytes() == pack_ternary_tiles(w.T)


def test_model_tile_layout_row_chunks(monkeypatch):
    """More rows than one conversion step: the chunked conversion equals the one-shot packing."""
    from vtpu_cli.compiler.tensors import pack_ternary_tiles
    from vtpu_cli.models import compiled
    from vtpu_cli.models.ternary import TernaryMatrix, pack_ternary

    w = np.random.default_rng(3).integers(-1, 2, (16 * 300 + 5, 16 * 1100)).astype(np.int8)
    m = TernaryMatrix("w", *w.shape, pack_ternary(w), 1.0)
    assert compiled.tile_layout(m).tobytes() == pack_ternary_tiles(w.T)


# ---------------------------------------------------------------------- tmatmul on the new layout
SHAPES = [(1, 37, 21, False), (3, 64, 48, False), (1, 200, 300, True), (5, 96, 80, True), (6, 48, 130, True)]


@pytest.mark.parametrize("m,k,n,loops", SHAPES)
def test_tmatmul_exact_both_lowerings(m, k, n, loops):
    """Unrolled and loop lowerings on the interleaved layout agree with the numpy reference bit for bit
    (interpreter; the JIT below)."""
    from vtpu_cli.bench.kernels import tmatmul_ref
    from vtpu_cli.compiler.driver import bind_inputs, compile_phx, read_output

    rng = np.random.default_rng(k * n)
    w = rng.integers(-1, 2, (k, n))
    x = (rng.standard_normal((m, k)) * 3).astype(np.float32)
    src = (
        f"input x: f32[{m}, {k}]\nweight w: t2[{k}, {n}] scale 0.25\noutput y: f32[{m}, {n}]\n"
        "kernel k { y = tmatmul(x, w) }\n"
    )
    prog, _ = compile_phx(src, "t.phx", opt=2, force_loops=loops)
    bind_inputs(prog, {"x": x, "w": w})
    names = {ins.op.name for siw in prog.code for ins in siw}
    assert "DTDOT" in names and "DTERNARY" not in names
    res = Interpreter(prog).run()
    assert np.array_equal(read_output(prog, res, "y"), tmatmul_ref(x, w, 0.25))
    if OK:
        r2 = jit.JitEngine(prog).run()
        assert r2.engine == "jit", r2.fallback
        assert np.array_equal(read_output(prog, r2, "y"), tmatmul_ref(x, w, 0.25))


def test_old_dternary_programs_unchanged():
    """DTERNARY keeps its meaning (quarter tiles, weight = code - 1): the shipped example still gives 795."""
    from pathlib import Path

    from vtpu_cli.asm.assembler import assemble

    src = (Path(__file__).parent.parent / "programs" / "ternary_dot.vasm").read_text()
    res = Interpreter(assemble(src, "ternary_dot.vasm")).run()
    assert res.sentrons[0].R[1] == 795
