"""Tensor views in .phx: slice, reshape (copy-free, constant or runtime start), transpose and concat
(materialised), writes through views, matmul(x, transpose(w)) read in place -- each against numpy
for hypothesis-drawn shapes on the interpreter (-O0 and -O3, bit-identical) and the JIT."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtpu_cli.compiler import bind_inputs, compile_ir, compile_phx, read_output
from vtpu_cli.compiler.schedule import check_hazards
from vtpu_cli.core.errors import DiagnosticError
from vtpu_cli.engines.interp.interpreter import Interpreter

F32 = np.float32
ENGINES = [(0, "interp"), (3, "interp"), (3, "jit")]


def run(src, inputs, outs, opt, engine, tmp):
    return run_program(compile_phx(src, "t.phx", opt=opt)[0], inputs, outs, engine, tmp)


def execute(prog, inputs, engine, tmp, sentrons: int = 1):
    """Bind ``inputs`` and run a compiled program (natively when ``engine`` is jit; the interpreter
    checks every access for races): its result, whatever its status."""
    bind_inputs(prog, inputs)
    if engine == "jit":
        from vtpu_cli.engines.jit.engine import JitEngine

        res = JitEngine(prog, sentrons, cache_dir=tmp).run()
        assert res.engine == "jit", res.fallback
        return res
    return Interpreter(prog, sentrons).run()


def run_outputs(prog, inputs, outs, engine, tmp, sentrons: int = 1):
    """(the outputs, the run's result) of a run that must end ``ok``."""
    res = execute(prog, inputs, engine, tmp, sentrons)
    assert res.status == "ok", res.fault.render() if res.fault else res.status
    return [read_output(prog, res, o) for o in outs], res


def run_program(prog, inputs, outs, engine, tmp):
    """Run a compiled program (hazard-free, natively when ``engine`` is jit) and read its outputs."""
    assert not check_hazards(prog.code)
    res = execute(prog, inputs, engine, tmp)
    assert res.status == "ok", res.fault.render() if res.fault else res.status
    return {o: read_output(prog, res, o) for o in outs}


def all_engines(src, inputs, outs, tmp, engines=ENGINES):
    got = [run(src, inputs, outs, opt, eng, tmp) for opt, eng in engines]
    for g in got[1:]:
        for o in outs:
            np.testing.assert_array_equal(g[o], got[0][o])  # -O0 == -O3 == JIT, bit for bit
    return got[0]


def rnd(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(F32)


SETTINGS = settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def view_case(draw):
    r = draw(st.integers(1, 40))
    c = draw(st.integers(1, 40))
    s0 = draw(st.integers(0, r - 1))
    n0 = draw(st.integers(1, r - s0))
    s1 = draw(st.integers(0, c - 1))
    n1 = draw(st.integers(1, c - s1))
    pos = draw(st.integers(0, r - 1))
    r2 = draw(st.integers(1, 20))
    seed = draw(st.integers(0, 2**16))
    return r, c, s0, n0, s1, n1, pos, r2, seed


VIEWS = """input x: f32[{r}, {c}]
input z: f32[{r2}, {c}]
input zc: f32[{r}, {r2}]
input p: i32[1]
output a: f32[{n0}, {c}]
output b: f32[{r}, {n1}]
output t: f32[{c}, {r}]
output k0: f32[{rr}, {c}]
output k1: f32[{r}, {cc}]
output m: f32[{c}, {r}]
output q: f32[1, {c}]
output w: f32[{r}, {c}]
a = add(slice(x, {s0}, {n0}), 1.0)
b = slice(x, {s1}, {n1}, axis=1)
t = transpose(x)
k0 = concat(x, z)
k1 = concat(x, zc, axis=1)
m = reshape(x, {c}, {r})
let p32: i32 = load(p, 0)
let pos: i64 = i64(p32)
q = mul(slice(x, pos, 1), 2.0)
w = copy(x)
v = slice(w, pos, 1)
v = sub(v, v)
"""


@pytest.mark.parametrize(
    "engines", [ENGINES[:2], pytest.param(ENGINES[1:], id="jit", marks=pytest.mark.slow)]
)
@SETTINGS
@given(case=view_case())
def test_views_against_numpy(tmp_path, engines, case):
    check_views(tmp_path, engines, case)


def test_views_on_the_jit(tmp_path):
    """One fixed case on the JIT in the default suite (the property test runs it drawn with -m slow)."""
    check_views(tmp_path, ENGINES[1:], (19, 21, 3, 7, 5, 9, 11, 4, 7))


def check_views(tmp_path, engines, case):
    r, c, s0, n0, s1, n1, pos, r2, seed = case
    src = VIEWS.format(r=r, c=c, s0=s0, n0=n0, s1=s1, n1=n1, r2=r2, rr=r + r2, cc=c + r2)
    x, z, zc = rnd(seed, r, c), rnd(seed + 1, r2, c), rnd(seed + 2, r, r2)
    got = all_engines(
        src,
        {"x": x, "z": z, "zc": zc, "p": np.array([pos], np.int32)},
        ["a", "b", "t", "k0", "k1", "m", "q", "w"],
        str(tmp_path),
        engines,
    )
    np.testing.assert_array_equal(got["a"], x[s0 : s0 + n0] + F32(1))
    np.testing.assert_array_equal(got["b"], x[:, s1 : s1 + n1])
    np.testing.assert_array_equal(got["t"], x.T)
    np.testing.assert_array_equal(got["k0"], np.concatenate([x, z]))
    np.testing.assert_array_equal(got["k1"], np.concatenate([x, zc], axis=1))
    np.testing.assert_array_equal(got["m"], x.reshape(c, r))
    np.testing.assert_array_equal(got["q"], x[pos : pos + 1] * F32(2))
    want_w = x.copy()
    want_w[pos] = 0
    np.testing.assert_array_equal(got["w"], want_w)


@pytest.mark.parametrize(
    "engines", [ENGINES[:2], pytest.param(ENGINES[1:], id="jit", marks=pytest.mark.slow)]
)
@SETTINGS
@given(m=st.integers(1, 5), k=st.integers(1, 40), n=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_matmul_transposed_operand_is_read_in_place(tmp_path, engines, m, k, n, seed):
    src = f"""input x: f32[{m}, {k}]
input w: f32[{n}, {k}]
input v: f32[{n}, {k}]
output y: f32[{m}, {n}]
output y2: f32[{m}, {k}]
y = matmul(x, transpose(w))
y2 = matmul_nt(slice(y, 0, {m}), transpose(v))
"""
    x, w, v = rnd(seed, m, k), rnd(seed + 1, n, k), rnd(seed + 2, n, k)
    got = all_engines(src, {"x": x, "w": w, "v": v}, ["y", "y2"], str(tmp_path), engines)
    want = np.zeros((m, n), F32)
    for i in range(m):  # matmul_nt numerics: 16 lane partial sums, then a reduction; compare loosely
        want[i] = (x[i].astype(np.float64) @ w.T.astype(np.float64)).astype(F32)
    np.testing.assert_allclose(got["y"], want, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(got["y2"], got["y"].astype(np.float64) @ v, rtol=2e-4, atol=2e-4)
    # no copy: the same code as matmul_nt on the untransposed weight
    a = compile_phx(src.replace("matmul(x, transpose(w))", "matmul_nt(x, w)"), "t.phx")[0]
    b = compile_phx(src, "t.phx")[0]
    assert len(a.code) == len(b.code)


def _mem_ops(ir: str) -> int:
    return sum(1 for line in ir.splitlines() if line.strip().startswith(("SGATHER", "SSCATTR")))


def test_slice_and_reshape_are_copy_free():
    plain = "input x: f32[8, 48]\ninput x2: f32[3, 48]\noutput y: f32[3, 48]\ny = relu(x2)\n"
    const = "input x: f32[8, 48]\noutput y: f32[3, 48]\ny = relu(slice(x, 2, 3))\n"
    rt = (
        "input x: f32[8, 48]\ninput p: i32[1]\noutput y: f32[3, 48]\nlet p32: i32 = load(p, 0)\n"
        "let s: i64 = i64(p32)\ny = relu(slice(x, s, 3))\n"
    )
    resh = "input x: f32[9, 16]\noutput y: f32[3, 48]\ny = relu(reshape(x, 3, -1))\n"
    n = _mem_ops(compile_ir(plain))
    assert _mem_ops(compile_ir(const)) == n
    assert _mem_ops(compile_ir(rt)) == n + 2  # + the load of p, + the out-of-range trap read
    assert _mem_ops(compile_ir(resh)) == n
    # a constant start folds into the displacement: exactly the plain program's length
    assert len(compile_phx(const)[0].code) == len(compile_phx(plain)[0].code)


def test_kv_append_through_a_view_in_a_runtime_loop(tmp_path):
    src = """input x: f32[5, 24]
input p: i32[1]
output kc: f32[16, 24]
let p32: i32 = load(p, 0)
let n: i64 = i64(p32)
for i in 0..n {
  row = slice(kc, i + 3, 1)
  row = mul(slice(x, i, 1), 3.0)
}
"""
    x = rnd(5, 5, 24)
    for n in (0, 1, 5):
        got = all_engines(src, {"x": x, "p": np.array([n], np.int32)}, ["kc"], str(tmp_path))
        want = np.zeros((16, 24), F32)
        want[3 : 3 + n] = x[:n] * F32(3)
        np.testing.assert_array_equal(got["kc"], want)


def test_large_transpose_and_concat_are_loops():
    src = """input x: f32[300, 70]
input z: f32[300, 10]
output t: f32[70, 300]
output k: f32[300, 80]
t = transpose(x)
k = concat(x, z, axis=1)
"""
    prog, _ = compile_phx(src, "t.phx")
    assert len(prog.code) < 200
    x, z = rnd(1, 300, 70), rnd(2, 300, 10)
    bind_inputs(prog, {"x": x, "z": z})
    res = Interpreter(prog, 1).run()
    assert res.status == "ok"
    np.testing.assert_array_equal(read_output(prog, res, "t"), x.T)
    np.testing.assert_array_equal(read_output(prog, res, "k"), np.concatenate([x, z], axis=1))


def test_view_names_rebind_and_tensors_receive_copies():
    src = """input x: f32[4, 16]
output y: f32[1, 16]
output c: f32[1, 16]
v = slice(x, 0, 1)
v = slice(x, 3, 1)
y = copy(v)
c = slice(x, 2, 1)
"""
    prog, _ = compile_phx(src, "t.phx", opt=3)
    x = rnd(3, 4, 16)
    bind_inputs(prog, {"x": x})
    res = Interpreter(prog, 1).run()
    np.testing.assert_array_equal(read_output(prog, res, "y"), x[3:4])
    np.testing.assert_array_equal(read_output(prog, res, "c"), x[2:3])


def diag(src):
    with pytest.raises(DiagnosticError) as e:
        compile_phx(src, "t.phx")
    return e.value.diagnostics


@pytest.mark.parametrize(
    "line, message",
    [
        ("y = copy(slice(x, 3, 4))", "slice 3..7 is outside dimension 0 of `x` [4, 8]"),
        ("y = copy(slice(x, 0, 9, axis=1))", "slice length 9 is outside 1..8"),
        ("y = copy(reshape(x, 5, 7))", "reshape of `x` [4, 8] (32 elements) to [5, 7] (35 elements)"),
        ("y = add(slice(x, 0, 2), x)", "shape mismatch: [2, 8] and [4, 8]"),
        ("y = concat(x, g)", "shape mismatch: concat along axis 0 of [4, 8] and [3]"),
        ("y = transpose(g)", "transpose takes a 2-D tensor"),
        ("y = slice(x, 0, 2)", "shape mismatch: `y` is [4, 8] but slice(...) makes [2, 8]"),
        ("v = slice(x, 0, 1)\nv = copy(g)", "cannot assign to `v`: it is a view of input tensor `x`"),
        ("y = copy(x)\nv = slice(y, 1, 2)\nv = add(slice(y, 0, 2), 1.0)", "overlapping view"),
        ("y = copy(slice(x, 0.5, 1))", "a slice start is an integer"),
        ("y = copy(slice(w, 0, 1))", "t2 (ternary) weight"),
        ("y = copy(slice(x, 0, 2, axis=2))", "axis 2 is outside 0..1"),
    ],
)
def test_view_errors_have_locations(line, message):
    src = "input x: f32[4, 8]\ninput g: f32[3]\nweight w: t2[16, 16]\noutput y: f32[4, 8]\n" + line + "\n"
    ds = diag(src)
    assert any(message in d.message for d in ds), [d.message for d in ds]
    d = next(d for d in ds if message in d.message)
    assert d.line >= 5 and d.col >= 1


def test_cli_view_error_exits_2(tmp_path):
    p = tmp_path / "bad.phx"
    p.write_text("input x: f32[4, 8]\noutput y: f32[4, 8]\ny = copy(slice(x, 2, 4))\n")
    r = subprocess.run(
        [sys.executable, "-m", "vtpu_cli.cli.main", "cc", str(p)], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert "bad.phx:3:" in r.stderr and "outside dimension 0" in r.stderr
    assert "Traceback" not in r.stderr


def test_nested_views_and_layer_views(tmp_path):
    src = """input x: f32[10, 12]
input st: f32[3, 4, 8] layers 3
input p: i32[1]
output a: f32[2, 12]
output b: f32[3, 8]
output c: f32[3, 2, 8]
let p32: i32 = load(p, 0)
let pos: i64 = i64(p32)
a = copy(slice(slice(x, pos, 4), 1, 2))
b = relu(slice(reshape(slice(x, 2, 8), 12, 8), pos, 3))
for l in 0..3 {
  r = slice(c, l, 1)
  r = copy(reshape(slice(st[l], 1, 2), 1, 2, 8))
}
"""
    # 3-D shapes are refused: tensors have one or two dimensions
    assert any("one or two dimensions" in d.message for d in diag(src))
    src = src.replace("input st: f32[3, 4, 8] layers 3", "input st: f32[4, 8] layers 3")
    src = src.replace("output c: f32[3, 2, 8]", "output c: f32[3, 16]")
    src = src.replace("reshape(slice(st[l], 1, 2), 1, 2, 8)", "reshape(slice(st[l], 1, 2), 1, 16)")
    x = rnd(1, 10, 12)
    st = rnd(2, 3, 4, 8)
    got = all_engines(src, {"x": x, "st": st, "p": np.array([3], np.int32)}, ["a", "b", "c"], str(tmp_path))
    np.testing.assert_array_equal(got["a"], x[4:6])
    np.testing.assert_array_equal(got["b"], np.maximum(x[2:10].reshape(12, 8)[3:6], 0))
    np.testing.assert_array_equal(got["c"], st[:, 1:3].reshape(3, 16))


@pytest.mark.slow
def test_views_in_a_two_sentron_program(tmp_path):
    """Views of private working copies (outputs of a sharded program), a runtime-offset write, and a
    transpose: the same bits on 1 and 2 sentrons, on the interpreter and natively on the JIT."""
    from vtpu_cli.engines.jit.engine import JitEngine

    src = """input x: f32[8, 32]
weight w: f32[32, 32]
input p: i32[1]
output y: f32[8, 32]
output z: f32[32, 8]
let p32: i32 = load(p, 0)
let pos: i64 = i64(p32)
h = matmul(slice(x, 0, 4), w, shard=cols)
r = slice(y, pos, 4)
r = copy(h)
z = transpose(y)
"""
    inputs = {"x": rnd(0, 8, 32), "w": rnd(1, 32, 32), "p": np.array([3], np.int32)}
    outs = []
    for n, engine in ((1, "interp"), (2, "interp"), (2, "jit")):
        prog, _ = compile_phx(src, "t.phx", opt=3, sentrons=n)
        bind_inputs(prog, inputs)
        if engine == "jit":
            res = JitEngine(prog, n, cache_dir=str(tmp_path)).run()
            assert res.engine == "jit", res.fallback
        else:
            res = Interpreter(prog, n).run()
        assert res.status == "ok"
        outs.append((read_output(prog, res, "y"), read_output(prog, res, "z")))
    for y, z in outs:
        np.testing.assert_array_equal(y, outs[0][0])
        np.testing.assert_array_equal(z, y.T)
    assert not outs[0][0][:3].any() and not outs[0][0][7:].any() and outs[0][0][3:7].any()


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_runtime_slice_start_out_of_range_faults(tmp_path, engine):
    src = """input x: f32[8, 16]
input p: i32[1]
output kc: f32[8, 16]
let p32: i32 = load(p, 0)
let pos: i64 = i64(p32)
row = slice(kc, pos, 2)
row = copy(slice(x, 0, 2))
"""
    prog, _ = compile_phx(src, "t.phx", opt=3)
    x = rnd(4, 8, 16)
    for pos, ok in ((0, True), (6, True), (7, False), (-1, False), (1 << 20, False)):
        bind_inputs(prog, {"x": x, "p": np.array([pos], np.int32)})
        if engine == "jit":
            from vtpu_cli.engines.jit.engine import JitEngine

            res = JitEngine(prog, 1, cache_dir=str(tmp_path)).run()
        else:
            res = Interpreter(prog, 1).run()
        assert (res.status == "ok") == ok, (pos, res.status)
        if ok:
            want = np.zeros((8, 16), F32)
            want[pos : pos + 2] = x[:2]
            np.testing.assert_array_equal(read_output(prog, res, "kc"), want)
        else:
            assert res.fault is not None and prog.lines[res.fault.siw] == 6


def test_views_as_function_arguments():
    src = """input x: f32[6, 16]
output y: f32[6, 16]
fn twice(a, b) {
  b = add(a, a)
}
for l in 0..6 {
  twice(slice(x, l, 1), slice(y, l, 1))
}
"""
    x = rnd(8, 6, 16)
    got = all_engines(src, {"x": x}, ["y"], None, ENGINES[:2])
    np.testing.assert_array_equal(got["y"], x + x)


KV_PROJ = """input x: f32[1, 64]
weight wt: t2[64, 48] scale 0.25
weight w: f32[64, 48]
input p: i32[1]
output kc: f32[8, 48]
output vc: f32[8, 48]
let p32: i32 = load(p, 0)
let pos: i64 = i64(p32)
k = slice(kc, pos, 1)
k = tmatmul(x, wt)
v = slice(vc, pos, 1)
v = matmul(x, w)
"""


@pytest.mark.parametrize("force_loops", [False, True])
def test_projections_write_straight_into_the_kv_cache(force_loops):
    """KV append without a copy: the projections' stores land in row `pos` of the caches."""
    from test_phx_scale import matmul_ref, tmatmul_ref

    rng = np.random.default_rng(0)
    x, wt, w = rnd(1, 1, 64), rng.integers(-1, 2, (64, 48)), rnd(2, 64, 48)
    for opt in (0, 3):
        prog, _ = compile_phx(KV_PROJ, "t.phx", opt=opt, force_loops=force_loops)
        bind_inputs(prog, {"x": x, "wt": wt, "w": w, "p": np.array([5], np.int32)})
        res = Interpreter(prog, 1).run()
        assert res.status == "ok"
        kc, vc = read_output(prog, res, "kc"), read_output(prog, res, "vc")
        np.testing.assert_array_equal(kc[5:6], tmatmul_ref(x, wt, 0.25))
        np.testing.assert_array_equal(vc[5:6], matmul_ref(x, w))
        assert not kc[:5].any() and not kc[6:].any() and not vc[:5].any() and not vc[6:].any()
    # as many stores as computing into tensors of their own: nothing is copied
    own = KV_PROJ.replace("k = slice(kc, pos, 1)\n", "").replace("v = slice(vc, pos, 1)\n", "")
    own = own.replace("output kc: f32[8, 48]", "output k: f32[1, 48]").replace(
        "output vc: f32[8, 48]", "output v: f32[1, 48]"
    )
    stores = [
        sum(
            1
            for ln in compile_ir(s, force_loops=force_loops).splitlines()
            if ln.strip().startswith("SSCATTR")
        )
        for s in (KV_PROJ, own)
    ]
    assert stores[0] == stores[1]


def test_disjoint_views_of_one_tensor_in_one_statement(tmp_path):
    """Writing one part of a tensor while reading another, disjoint part of it (constant places) is
    allowed -- elementwise and matmul -- and exact; overlapping parts stay an error (above)."""
    src = """input x: f32[4, 16]
input w: f32[16, 16]
output y: f32[4, 16]
y = copy(x)
v = slice(y, 2, 2)
v = add(slice(y, 0, 2), 1.0)
u = slice(y, 0, 1)
u = matmul(slice(y, 3, 1), w)
"""
    x, w = rnd(5, 4, 16), rnd(6, 16, 16)
    got = all_engines(src, {"x": x, "w": w}, ["y"], str(tmp_path))
    want = x.copy()
    want[2:4] = x[0:2] + F32(1)
    np.testing.assert_array_equal(got["y"][1:], want[1:])
    np.testing.assert_allclose(got["y"][0:1], want[3:4] @ w, rtol=1e-5, atol=1e-5)


def _no_pitch(monkeypatch):
    """Element-wise ops take column slices as materialised copies again (the path before ``pitch``)."""
    import vtpu_cli.compiler.views as views

    monkeypatch.setattr(views, "ELEMENTWISE", ())
    monkeypatch.setattr(views, "PITCHED", ())


@SETTINGS
@given(
    r=st.integers(2, 9),
    c=st.integers(2, 70),
    data=st.data(),
    op=st.sampled_from(["add", "sub", "mul", "relu", "copy", "exp", "silu"]),
    seed=st.integers(0, 2**16),
)
def test_column_slices_are_read_in_place_by_elementwise_ops(tmp_path, monkeypatch, r, c, data, op, seed):
    """``op(slice(x, s, n, axis=1), ...)`` of a tensor of several rows reads the columns in place (no
    copy first): the same bits as the materialising form on every engine, numpy's values for the exact
    ops, and fewer SIWs."""
    n = data.draw(st.integers(1, c))
    s0 = data.draw(st.integers(0, c - n))
    s1 = data.draw(st.integers(0, c - n))
    binary = op in ("add", "sub", "mul")
    rhs = f", slice(x, {s1}, {n}, axis=1)" if binary else ""
    src = (
        f"input x: f32[{r}, {c}]\ninput z: f32[{r}, {n}]\noutput y: f32[{r}, {n}]\noutput w: f32[{r}, {n}]\n"
        f"y = {op}(slice(x, {s0}, {n}, axis=1){rhs})\n"
        + (f"w = {op}(z, slice(x, {s1}, {n}, axis=1))\n" if binary else "w = copy(z)\n")
    )
    x, z = rnd(seed, r, c), rnd(seed + 1, r, n)
    inputs = {"x": x, "z": z}
    got = all_engines(src, inputs, ["y", "w"], str(tmp_path))
    with monkeypatch.context() as mp:
        _no_pitch(mp)
        ref = all_engines(src, inputs, ["y", "w"], str(tmp_path))
        copied = _mem_ops(compile_ir(src))
    for o in ("y", "w"):
        np.testing.assert_array_equal(got[o], ref[o])
    a, b = x[:, s0 : s0 + n], x[:, s1 : s1 + n]
    exact = {"add": a + b, "sub": a - b, "mul": a * b, "relu": np.maximum(a, F32(0)), "copy": a}
    if op in exact:
        np.testing.assert_array_equal(got["y"], exact[op])
    assert _mem_ops(compile_ir(src)) < copied  # the copy's loads and stores are gone


def test_a_column_slice_of_many_rows_read_in_place_on_the_jit(tmp_path):
    """4,096 rows: the row loop, not a copy, on both engines."""
    src = "input x: f32[4096, 48]\ninput z: f32[4096, 20]\noutput y: f32[4096, 20]\ny = mul(slice(x, 7, 20, axis=1), z)\n"
    x, z = rnd(8, 4096, 48), rnd(9, 4096, 20)
    got = all_engines(src, {"x": x, "z": z}, ["y"], str(tmp_path), engines=[(2, "interp"), (2, "jit")])
    np.testing.assert_array_equal(got["y"], x[:, 7:27] * z)
    assert len(compile_phx(src, "t.phx", opt=2)[0].code) < 40


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 200), cols=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_transpose_of_int8(tmp_path, rows, cols, seed):
    """``transpose`` of an i8 tensor (64 one-byte lanes per strided gather; fewer than 64 rows element
    by element): numpy's ``x.T`` on every engine, bit for bit."""
    src = f"input x: i8[{rows}, {cols}]\noutput t: i8[{cols}, {rows}]\nt = transpose(x)\n"
    x = np.random.default_rng(seed).integers(-128, 128, (rows, cols)).astype(np.int8)
    got = all_engines(src, {"x": x}, ["t"], str(tmp_path))
    np.testing.assert_array_equal(got["t"], x.T)


def test_large_int8_transpose_is_a_loop(tmp_path):
    """600 x 40 i8 (nine full groups of 64 rows and a tail per output row): a loop, numpy's values."""
    src = "input x: i8[600, 40]\noutput t: i8[40, 600]\nt = transpose(x)\n"
    prog, _ = compile_phx(src, "t.phx")
    assert len(prog.code) < 100
    x = np.random.default_rng(5).integers(-128, 128, (600, 40)).astype(np.int8)
    got = all_engines(src, {"x": x}, ["t"], str(tmp_path))
    np.testing.assert_array_equal(got["t"], x.T)


def _no_transposed_reads():
    import vtpu_cli.compiler.views as views

    mp = pytest.MonkeyPatch()
    mp.setattr(views, "transposed_ok", lambda *a: False)
    return mp


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    r=st.integers(1, 70),
    c=st.integers(1, 20),
    op=st.sampled_from(["add", "mul", "relu", "copy", "silu"]),
    loops=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_elementwise_ops_read_a_transpose_in_place(tmp_path, r, c, op, loops, seed):
    """``y = add(transpose(a), b)`` / ``relu(transpose(a))``: rows of the view (columns of ``a``)
    read by strided gathers, a partial last piece as the row's last 16 elements; the bits of the
    materialised transpose on every engine, numpy's values, and fewer loads and stores executed
    (from 16 rows of ``a`` up; below, the copy stays)."""
    binary = op in ("add", "mul")
    expr = f"{op}(transpose(a), b)" if binary else f"{op}(transpose(a))"
    src = f"input a: f32[{r}, {c}]\ninput b: f32[{c}, {r}]\noutput y: f32[{c}, {r}]\ny = {expr}\n"
    a, bv = rnd(seed, r, c), rnd(seed + 1, c, r)
    inputs = {"a": a, "b": bv}
    got, s_ops = [], []
    for inplace in (True, False):
        mp = None if inplace else _no_transposed_reads()
        try:
            for opt, eng in ENGINES:
                prog = compile_phx(src, "t.phx", opt=opt, force_loops=loops)[0]
                got.append(run_program(prog, inputs, ["y"], eng, str(tmp_path))["y"])
                if opt == 0:
                    s_ops.append(execute(prog, inputs, "interp", None).ops_by_pipe["S"])
        finally:
            if mp is not None:
                mp.undo()
    for g in got[1:]:
        np.testing.assert_array_equal(g, got[0])
    t = a.T.astype(np.float64)
    want = {"add": t + bv, "mul": t * bv, "relu": np.maximum(t, 0), "copy": t, "silu": t / (1 + np.exp(-t))}[
        op
    ]
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)
    if r >= 16:
        assert s_ops[0] < s_ops[1]
    else:
        assert s_ops[0] == s_ops[1]


@pytest.mark.parametrize(
    "stmt, r, inplace",
    [
        ("s = add(transpose(s), b)", 16, False),  # the result is the transposed tensor: copied first
        ("b = add(transpose(a), b)", 20, False),  # a partial piece would re-read what was written
        ("b = add(transpose(a), b)", 32, True),  # whole pieces: each element read, then written
    ],
)
def test_a_transpose_read_in_place_never_reads_what_the_statement_wrote(tmp_path, stmt, r, inplace):
    src = (
        f"input a: f32[{r}, {r}]\ntensor s: f32[{r}, {r}]\ntensor b: f32[{r}, {r}]\ninput b0: f32[{r}, {r}]\n"
        f"output y: f32[{r}, {r}]\ns = copy(a)\nb = copy(b0)\n{stmt}\ny = copy({stmt[0]})\n"
    )
    a, b0 = rnd(3, r, r), rnd(4, r, r)
    prog = compile_phx(src, "t.phx", opt=2)[0]
    got = run_program(prog, {"a": a, "b0": b0}, ["y"], "interp", str(tmp_path))["y"]
    np.testing.assert_array_equal(got, (a.T + b0).astype(F32))
    mp = _no_transposed_reads()
    try:
        copied = compile_phx(src, "t.phx", opt=2)[0]
    finally:
        mp.undo()
    s_in = execute(prog, {"a": a, "b0": b0}, "interp", None).ops_by_pipe["S"]
    s_cp = execute(copied, {"a": a, "b0": b0}, "interp", None).ops_by_pipe["S"]
    assert (s_in < s_cp) == inplace


@pytest.mark.parametrize("r", [16, 21])
def test_integer_transposes_are_read_in_place_too(tmp_path, r):
    """``add(transpose(a), b)`` and ``copy(transpose(a))`` of i32: numpy's values on every engine,
    fewer loads and stores than the materialised transpose."""
    src = (
        f"input a: i32[{r}, 7]\ninput b: i32[7, {r}]\noutput y: i32[7, {r}]\noutput z: i32[7, {r}]\n"
        "y = add(transpose(a), b)\nz = copy(transpose(a))\n"
    )
    rng = np.random.default_rng(r)
    a = rng.integers(-(2**31), 2**31, (r, 7)).astype(np.int32)
    b = rng.integers(-(2**31), 2**31, (7, r)).astype(np.int32)
    got = all_engines(src, {"a": a, "b": b}, ["y", "z"], str(tmp_path))
    np.testing.assert_array_equal(got["y"], (a.T.astype(np.int64) + b).astype(np.int32))
    np.testing.assert_array_equal(got["z"], a.T)
    prog = compile_phx(src, "t.phx", opt=2)[0]
    mp = _no_transposed_reads()
    try:
        copied = compile_phx(src, "t.phx", opt=2)[0]
    finally:
        mp.undo()
    ins = {"a": a, "b": b}
    assert (
        execute(prog, ins, "interp", None).ops_by_pipe["S"]
        < execute(copied, ins, "interp", None).ops_by_pipe["S"]
    )
