"""phextcc at model scale: loop-based lowering (same bits as the unrolled form, size independent of
the tensor), long rows, sharded tmatmul, weight scales as data, and the compiler bugs of issue #13/#18
(each with the input that used to crash or silently misbehave)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtpu_cli.compiler import bind_inputs, compile_phx, read_output
from vtpu_cli.compiler.schedule import check_hazards
from vtpu_cli.core.errors import DiagnosticError
from vtpu_cli.engines.interp.interpreter import Interpreter

F32 = np.float32


def run(src, inputs, outs, opt=2, sentrons=1, force_loops=False, engine="interp", tmp=None):
    prog, rep = compile_phx(src, "t.phx", opt=opt, sentrons=sentrons, force_loops=force_loops)
    assert not check_hazards(prog.code)
    bind_inputs(prog, inputs)
    if engine == "jit":
        from vtpu_cli.engines.jit.engine import JitEngine

        res = JitEngine(prog, sentrons, cache_dir=tmp).run()
        assert res.engine == "jit", res.fallback
    else:
        res = Interpreter(prog, sentrons).run()
    assert res.status == "ok", res.fault.render() if res.fault else res.status
    return [read_output(prog, res, o) for o in outs], rep


def rnd(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(F32)


def matmul_ref(x, w):
    acc = (x[:, :1].astype(np.float64) * w[:1].astype(np.float64)).astype(F32)
    for k in range(1, x.shape[1]):
        acc = (x[:, k : k + 1].astype(np.float64) * w[k : k + 1].astype(np.float64) + acc).astype(F32)
    return acc


def tmatmul_ref(x, w, ws):
    am = np.maximum(np.abs(x).max(1), F32(1e-30)).astype(F32)
    inv = (F32(127) / am).astype(F32)
    q = np.rint((x * inv[:, None]).astype(F32)).astype(np.int64)
    sc = ((am / F32(127)).astype(F32) * F32(ws)).astype(F32)
    return ((q @ w).astype(F32) * sc[:, None]).astype(F32)


def rms_ref(x, g, eps=1e-5):
    x64 = x.astype(np.float64)
    return (x64 / np.sqrt((x64 * x64).mean(1, keepdims=True) + eps) * g).astype(F32)


def diags(src, sentrons=1):
    with pytest.raises(DiagnosticError) as e:
        compile_phx(src, "t.phx", opt=2, sentrons=sentrons)
    return e.value.diagnostics


# ------------------------------------------------------------------ loop lowering == unrolled lowering
KERNELS = """input x: f32[{m},{k}]
weight w: f32[{k},{n}]
weight wt: t2[{k},{n}] scale 0.125
input g: f32[{k}]
output y: f32[{m},{n}]
output t: f32[{m},{n}]
output r: f32[{m},{k}]
output s: f32[{m},{k}]
output a: i32[{m}]
output tv: f32[{m},2]
output ti: i32[{m},2]
y = matmul(x, w)
t = tmatmul(x, wt)
r = rmsnorm(x, g)
s = softmax(x)
a = argmax(x)
tv, ti = topk(x, 2)
"""


@settings(max_examples=5, deadline=None)
@given(st.integers(1, 6), st.integers(2, 70), st.integers(1, 70), st.integers(0, 99))
def test_loop_lowering_is_bit_identical_to_unrolled(m, k, n, seed):
    x, w, g = np.round(rnd(seed, m, k) * 4) / 4, rnd(seed + 1, k, n), rnd(seed + 2, k)  # with ties
    wt = np.random.default_rng(seed).integers(-1, 2, (k, n)).astype(np.int8)
    src = KERNELS.format(m=m, k=k, n=n)
    inputs = {"x": x, "w": w, "wt": wt, "g": g}
    names = ["y", "t", "r", "s", "a", "tv", "ti"]
    ref, _ = run(src, inputs, names, opt=0)
    for opt in (0, 3):
        got, _ = run(src, inputs, names, opt=opt, force_loops=True)
        for a, b in zip(ref, got, strict=True):
            assert a.tobytes() == b.tobytes()
    y, t, r, s, a, tv, ti = got
    order = np.argsort(-x, axis=1, kind="stable")[:, :2]
    np.testing.assert_array_equal(ti, order)
    np.testing.assert_array_equal(tv, np.take_along_axis(x, order, 1))
    np.testing.assert_array_equal(y, matmul_ref(x, w))
    np.testing.assert_array_equal(t, tmatmul_ref(x, wt, 0.125))
    np.testing.assert_allclose(r, rms_ref(x, g), rtol=2e-5, atol=1e-6)
    e = np.exp(x.astype(np.float64) - x.max(1, keepdims=True))
    np.testing.assert_allclose(s, e / e.sum(1, keepdims=True), rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(a, x.argmax(1))


@pytest.mark.parametrize(
    "body, names",
    [
        ("y = matmul(x, w)\nr = rmsnorm(x, g)\ns = softmax(x)\na = argmax(x)\n", ["y", "r", "s", "a"]),
        ("t = tmatmul(x, wt)\n", ["t"]),
        ("t = tmatmul(x, wt)\ny = matmul(x, w)\n", ["t", "y"]),
    ],
)
def test_loop_kernels_on_the_jit(tmp_path, body, names):
    m, k, n = 3, 45, 37
    x, w, g = rnd(7, m, k), rnd(8, k, n), rnd(9, k)
    wt = np.random.default_rng(7).integers(-1, 2, (k, n)).astype(np.int8)
    src = KERNELS.split("y = matmul")[0].format(m=m, k=k, n=n) + body
    inputs = {"x": x, "w": w, "wt": wt, "g": g}
    ref, _ = run(src, inputs, names, opt=3, force_loops=True)
    got, _ = run(src, inputs, names, opt=3, force_loops=True, engine="jit", tmp=str(tmp_path))
    for a, b in zip(ref, got, strict=True):
        assert a.tobytes() == b.tobytes()


GEMV = """input x: f32[1,{h}]
weight w: f32[{h},{h}]
weight wt: t2[{h},{f}] scale 0.5
input g: f32[{h}]
output y: f32[1,{h}]
output t: f32[1,{f}]
output s: f32[1,{f}]
output a: i32[1]
output r: f32[1,{h}]
y = matmul(x, w)
t = tmatmul(x, wt)
s = softmax(t)
a = argmax(t)
r = rmsnorm(x, g)
"""


def test_program_size_does_not_grow_with_hidden_size():
    sizes = {}
    for h in (256, 2560):
        _, rep = compile_phx(GEMV.format(h=h, f=h * 27 // 10), "t.phx", opt=3)
        sizes[h] = rep["total"]["siws"]
    assert sizes[2560] <= sizes[256] + 32
    assert max(sizes.values()) < 600


def test_topk_over_a_long_row():
    d = 2000
    x = np.round(rnd(9, 2, d) * 8) / 8  # many ties: the lower index wins
    src = f"input x: f32[2,{d}]\noutput v: f32[2,7]\noutput i: i32[2,7]\nv, i = topk(x, 7)\n"
    (v, i), _ = run(src, {"x": x}, ["v", "i"], opt=3)
    order = np.argsort(-x, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(i, order)
    np.testing.assert_array_equal(v, np.take_along_axis(x, order, 1))


def test_long_rows_softmax_argmax():
    d = 3001  # > 128 elements, not a multiple of 16
    x = rnd(5, 2, d) * F32(4)
    x[1, 2999] = 50.0
    src = f"input x: f32[2,{d}]\noutput s: f32[2,{d}]\noutput a: i32[2]\ns = softmax(x)\na = argmax(x)\n"
    (s, a), _ = run(src, {"x": x}, ["s", "a"], opt=3)
    e = np.exp(x.astype(np.float64) - x.max(1, keepdims=True))
    np.testing.assert_allclose(s, e / e.sum(1, keepdims=True), rtol=3e-6, atol=1e-9)
    np.testing.assert_array_equal(a, [x[0].argmax(), 2999])


def test_large_gemv_tmatmul_against_numpy():
    h, f = 512, 700
    x, w = rnd(11, 1, h), rnd(12, h, h)
    wt = np.random.default_rng(11).integers(-1, 2, (h, f)).astype(np.int8)
    src = (
        f"input x: f32[1,{h}]\nweight w: f32[{h},{h}]\nweight wt: t2[{h},{f}] scale 0.03\n"
        f"output y: f32[1,{h}]\noutput t: f32[1,{f}]\ny = matmul(x, w)\nt = tmatmul(x, wt)\n"
    )
    (y, t), rep = run(src, {"x": x, "w": w, "wt": wt}, ["y", "t"], opt=3)
    assert rep["total"]["siws"] < 300
    np.testing.assert_array_equal(y, matmul_ref(x, w))
    np.testing.assert_array_equal(t, tmatmul_ref(x, wt, 0.03))


def test_tmatmul_shard_cols_and_scale_as_data():
    m, k, n = 2, 40, 70
    x = rnd(13, m, k)
    wt = np.random.default_rng(13).integers(-1, 2, (k, n)).astype(np.int8)
    src = f"""input x: f32[{m},{k}]
input ws: f32[1]
weight wt: t2[{k},{n}] scale ws
output y: f32[{m},{n}]
y = tmatmul(x, wt, shard=cols)
"""
    inputs = {"x": x, "wt": wt, "ws": np.array([0.37], F32)}
    (one,), _ = run(src, inputs, ["y"], opt=3)
    (two,), _ = run(src, inputs, ["y"], opt=3, sentrons=2)
    np.testing.assert_array_equal(one, tmatmul_ref(x, wt, F32(0.37)))
    assert one.tobytes() == two.tobytes()


def test_multi_sentron_program_runs_natively_on_the_jit(tmp_path):
    """Private scratch scrolls are preloaded per sentron (no SALLOC), so the JIT runs the sharded
    program on two threads instead of falling back to the interpreter."""
    m, k, n = 2, 40, 70
    x = rnd(14, m, k)
    wt = np.random.default_rng(14).integers(-1, 2, (k, n)).astype(np.int8)
    src = f"""input x: f32[{m},{k}]
weight wt: t2[{k},{n}] scale 0.5
output y: f32[{m},{n}]
h = tmatmul(x, wt, shard=cols)
y = relu(h)
"""
    prog, _ = compile_phx(src, "t.phx", opt=3, sentrons=2)
    assert not any(ins.op.name == "SALLOC" for siw in prog.code for ins in siw)
    (y,), _ = run(src, {"x": x, "wt": wt}, ["y"], opt=3, sentrons=2, engine="jit", tmp=str(tmp_path))
    np.testing.assert_array_equal(y, np.maximum(tmatmul_ref(x, wt, 0.5), 0))


def test_const_in_shapes():
    src = "const D = 24\nconst M = 2\ninput x: f32[M, D]\noutput y: f32[M, D]\ny = relu(x)\n"
    x = rnd(1, 2, 24)
    (y,), _ = run(src, {"x": x}, ["y"])
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    d = diags("input x: f32[Q, 4]\noutput y: f32[4]\n")
    assert "`Q` is not a constant" in d[0].message


# ------------------------------------------------------------------ compiler bugs (issues #13, #18)
def test_failed_let_reports_the_real_error():
    d = diags("input x: f32[16]\noutput y: f32[16]\nlet x: f32x16 = load(x, 0)\nlet z: f32x16 = x\n")
    assert [x.line for x in d] == [3, 4]
    assert "is a tensor" in d[0].message and "tensor `x` used as a value" in d[1].message
    d = diags("input q: f32[16]\nlet a: f32x16 = load(nope, 0)\nlet b: f32x16 = a\nstore(q, 0, b)\n")
    assert len(d) == 1 and "undefined tensor `nope`" in d[0].message


def test_builtin_used_as_value():
    d = diags("input x: f32[16]\nlet a: i64 = sid\nlet b: i64 = 1 + load\n")
    assert [x.message for x in d] == ["`sid` is a function, not a value", "`load` is a function, not a value"]


def test_if_without_else():
    src = """input x: f32[16]
output y: f32[16]
let n: i64 = 3
let v: f32x16 = load(x, 0)
if n > 2 { v = v * bcast(2.0) }
if n > 5 { v = v * bcast(3.0) }
store(y, 0, v)
"""
    x = rnd(2, 16)
    (y,), _ = run(src, {"x": x}, ["y"])
    np.testing.assert_array_equal(y, x * F32(2))


def test_else_if_chain_of_tmatmuls():
    branches = " else ".join(f"if n == {i} {{ y = tmatmul(x, w) }}" for i in range(5))
    src = f"""input x: f32[1, 64]
weight w: t2[64, 64] scale 0.5
output y: f32[1, 64]
let n: i64 = sid()
{branches} else {{ y = tmatmul(x, w) }}
"""
    x = rnd(3, 1, 64)
    w = np.random.default_rng(3).integers(-1, 2, (64, 64)).astype(np.int8)
    (y,), _ = run(src, {"x": x, "w": w}, ["y"], opt=3)
    np.testing.assert_array_equal(y, tmatmul_ref(x, w, 0.5))


def test_error_in_unrolled_loop_reported_once():
    d = diags("input x: f32[64]\nfor i in 0..4 { let a: f32x16 = load(q, i * 16) }\n")
    assert len(d) == 1 and "undefined tensor `q`" in d[0].message


def test_deeply_nested_expressions():
    long_sum = "+".join(["1"] * 3000)
    d = diags(f"input x: f32[16]\nlet a: i64 = {long_sum}\nlet b: i64 = {'-' * 3000}1\n")
    assert [x.line for x in d] == [2, 3]
    assert all("nested too deeply" in x.message for x in d)
    src = (
        f"input x: f32[16]\noutput y: i32[16]\nlet a: i32 = {'+'.join(['1'] * 150)}\nstore(y, 0, bcast(a))\n"
    )
    (y,), _ = run(src, {"x": np.zeros(16, F32)}, ["y"])
    assert (y == 150).all()


def test_huge_tensor_rejected_at_type_check():
    d = diags("input x: f32[1000000000000]\ninput z: f32[1000000, 1000000]\n")
    assert len(d) == 2 and all("limit is 4,294,967,296" in x.message for x in d)


def test_program_for_two_sentrons_refuses_one():
    src = "input x: f32[4, 32]\nweight w: f32[32, 64]\noutput y: f32[4, 64]\ny = matmul(x, w, shard=cols)\n"
    prog, _ = compile_phx(src, "t.phx", sentrons=2)
    assert prog.groups == [("phx_sentrons", (0, 1))]
    x, w = rnd(1, 4, 32), rnd(2, 32, 64)
    bind_inputs(prog, {"x": x, "w": w})
    res = Interpreter(prog, 1).run()
    assert res.status != "ok" and "phx_sentrons" in res.fault.render()
    res = Interpreter(prog, 3).run()
    assert res.status != "ok" and "phx_sentrons" in res.fault.render()
    res = Interpreter(prog, 2).run()
    assert res.status == "ok"
    np.testing.assert_array_equal(read_output(prog, res, "y"), matmul_ref(x, w))
    one, _ = compile_phx(src, "t.phx", sentrons=1)
    assert one.groups == []


@pytest.mark.parametrize("ns,m,k,n", [(2, 3, 48, 200), (3, 1, 32, 530), (4, 2, 16, 48)])
def test_sharded_f32_matmul_in_loop_form(ns, m, k, n):
    """``matmul(..., shard=cols)`` lowered to loops shares tmatmul's exchange-scroll all-gather (no
    C-pipe payload): every sentron ends with the whole product, equal to the reference, for uneven
    tile ranges, partial tiles and an owner with no tiles."""
    rng = np.random.default_rng(ns * 10 + n)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    src = f"input x: f32[{m}, {k}]\nweight w: f32[{k}, {n}]\noutput y: f32[{m}, {n}]\ny = matmul(x, w, shard=cols)\n"
    prog, _ = compile_phx(src, "t.phx", sentrons=ns, force_loops=True)
    names = {ins.op.name for siw in prog.code for ins in siw}
    assert "CBAR" in names and "CCAST" not in names and "CSEND" not in names
    bind_inputs(prog, {"x": x, "w": w})
    res = Interpreter(prog, ns).run()
    assert res.status == "ok", res.fault.render() if res.fault else res.status
    np.testing.assert_array_equal(read_output(prog, res, "y"), matmul_ref(x, w))


def shard_k_ref(x, w, ns):
    """``shard=k``: sentron s's partial product over k rows [s*per, (s+1)*per) (sequential fused
    accumulation), the partials summed in sentron order with one f32 rounding per step."""
    k = x.shape[1]
    per = -(-k // ns)
    parts = [
        matmul_ref(x[:, s * per : (s + 1) * per], w[s * per : (s + 1) * per])
        if s * per < k
        else np.zeros((x.shape[0], w.shape[1]), F32)  # a sentron with no rows contributes zeros
        for s in range(ns)
    ]
    acc = parts[0]
    for p in parts[1:]:
        acc = (acc + p).astype(F32)
    return acc


@settings(max_examples=5, deadline=None)
@given(
    st.integers(2, 4),
    st.integers(1, 5),
    st.integers(4, 70),
    st.integers(1, 70),
)
def test_shard_k_loop_form_matches_reference(ns, m, k, n):
    """``matmul(..., shard=k)`` in loop form (each sentron's partial over its k rows into an exchange
    scroll, a barrier, then every sentron sums the partials in sentron order): equal to the reference
    bit for bit on the interpreter (the next test runs the loop form natively), for uneven k splits
    and partial column tiles; no C-pipe payload."""
    k = max(k, ns)
    x, w = rnd(k, m, k), rnd(n, k, n)
    src = f"input x: f32[{m}, {k}]\nweight w: f32[{k}, {n}]\noutput y: f32[{m}, {n}]\ny = matmul(x, w, shard=k)\n"
    prog, _ = compile_phx(src, "t.phx", sentrons=ns, force_loops=True)
    names = {ins.op.name for siw in prog.code for ins in siw}
    if (ns - 1) * -(-k // ns) < k:  # every sentron has k rows: the loop form
        assert "CBAR" in names and "CREDUCE" not in names
    else:  # a sentron without rows (k = 4 on 3 sentrons: 2, 2, 0): the unrolled form
        assert "CREDUCE" in names
    (y,), _ = run(src, {"x": x, "w": w}, ["y"], sentrons=ns, force_loops=True, engine="interp")
    np.testing.assert_array_equal(y, shard_k_ref(x, w, ns))


@pytest.mark.parametrize("ns,m,k,n", [(2, 2, 16, 40), (3, 1, 17, 33), (4, 3, 8, 16)])
def test_shard_k_loop_form_matches_unrolled_form(ns, m, k, n):
    """The loop form's bits equal the unrolled form's (per-sentron tiles, CREDUCE all-reduce)."""
    x, w = rnd(1, m, k), rnd(2, k, n)
    src = f"input x: f32[{m}, {k}]\nweight w: f32[{k}, {n}]\noutput y: f32[{m}, {n}]\ny = matmul(x, w, shard=k)\n"
    unrolled, _ = compile_phx(src, "t.phx", sentrons=ns)
    assert "CREDUCE" in {ins.op.name for siw in unrolled.code for ins in siw}
    (a,), _ = run(src, {"x": x, "w": w}, ["y"], sentrons=ns)
    (b,), _ = run(src, {"x": x, "w": w}, ["y"], sentrons=ns, force_loops=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, shard_k_ref(x, w, ns))
    if ns == 2:  # the loop form natively too
        (c,), _ = run(src, {"x": x, "w": w}, ["y"], sentrons=ns, force_loops=True, engine="jit")
        np.testing.assert_array_equal(c, a)


@settings(max_examples=8, deadline=None)
@given(
    st.integers(1, 23),
    st.integers(145, 700),
    st.sampled_from([None, "k", "cols"]),
    st.sampled_from(["interp", "jit"]),
)
def test_gemv_streams_rows_with_the_tile_forms_bits(k, n, shard, engine):
    """M = 1 with more than 8 column tiles: ``kernels.gemv_rows_loop`` (passes of 4 rows of w over the
    output row, the first a plain product) gives the sequential-accumulation bits of the register-tile
    form, for every rest of rows and partial tail chunk, unsharded and sharded on 2 sentrons."""
    ns = 1 if shard is None else 2
    k = max(k, ns)
    x, w = rnd(k, 1, k), rnd(n, k, n)
    kw = "" if shard is None else f", shard={shard}"
    src = f"input x: f32[1, {k}]\nweight w: f32[{k}, {n}]\noutput y: f32[1, {n}]\ny = matmul(x, w{kw})\n"
    from vtpu_cli.compiler import compile_ir

    if shard != "cols" or n // 16 // 2 > 8:  # more than 8 full tiles (per sentron with shard=cols)
        assert "wrow" in compile_ir(src, "t.phx", sentrons=ns, force_loops=True)  # the streaming form
    (y,), _ = run(src, {"x": x, "w": w}, ["y"], sentrons=ns, force_loops=True, engine=engine)
    np.testing.assert_array_equal(y, shard_k_ref(x, w, ns) if shard == "k" else matmul_ref(x, w))


def test_shard_k_program_size_does_not_grow_with_k():
    """A DRAM-sized shard=k GEMV (K = 8192, N = 4096: 128 MiB of f32 weights) is a short loop program."""
    sizes = []
    for k, n in ((256, 128), (8192, 4096)):
        src = f"input x: f32[1, {k}]\nweight w: f32[{k}, {n}]\noutput y: f32[1, {n}]\ny = matmul(x, w, shard=k)\n"
        prog, _ = compile_phx(src, "t.phx", sentrons=2)
        sizes.append(len(prog.code))
    assert sizes[1] <= sizes[0] + 8 and sizes[1] < 200, sizes


# ------------------------------------------------------------------ per-layer weights, runtime extents
LAYERS = """const L = 3
input x: f32[1, 64]
input nl: i32[1]
weight w: t2[64, 48] @ 1.1.1/1.1.1/1.1.5 scale 0.5 layers L
weight wf: f32[64, 64] layers L
output y: f32[1, 48]
output z: f32[1, 64]
tensor h: f32[1, 64]
h = copy(x)
let c: i32 = load(nl, 0)
let n: i64 = i64(c)
for l in 0..n {
  h = matmul(h, wf[l])
}
z = copy(h)
let two: i64 = n - 1
y = tmatmul(x, w[two])
"""


@pytest.mark.parametrize("layers", [1, 3])
def test_layer_loop_selects_weights_by_coordinate(layers):
    x = rnd(1, 1, 64)
    w = np.random.default_rng(1).integers(-1, 2, (3, 64, 48)).astype(np.int8)
    wf = rnd(2, 3, 64, 64) * F32(0.2)
    inputs = {"x": x, "w": w, "wf": wf, "nl": np.array([layers], np.int32)}
    for opt in (0, 3):
        for force in (False, True):
            (y, z), _ = run(LAYERS, inputs, ["y", "z"], opt=opt, force_loops=force)
            h = x
            for layer in range(layers):
                h = matmul_ref(h, wf[layer])
            np.testing.assert_array_equal(z, h)
            np.testing.assert_array_equal(y, tmatmul_ref(x, w[layers - 1], 0.5))


def test_runtime_loop_bounds():
    src = """input nn: i32[2]
output y: i32[2]
let a: i32 = load(nn, 0)
let b: i32 = load(nn, 4)
let n: i64 = i64(a)
let m: i64 = i64(b)
let acc: i64 = 0
for i in 2..n step 3 { acc = acc + i }
let z: i64 = 0
for j in m..n { z = z + 1 }
store(y, 0, i32(acc))
store(y, 4, i32(z))
"""
    progs = [compile_phx(src, "t.phx", opt=opt)[0] for opt in (0, 3)]
    for n, m in [(0, 0), (2, 5), (3, 1), (20, 7), (21, 21)]:
        for prog in progs:
            bind_inputs(prog, {"nn": np.array([n, m], np.int32)})
            res = Interpreter(prog, 1).run()
            y = read_output(prog, res, "y")
            assert y[0] == sum(range(2, n, 3)) and y[1] == max(0, n - m)


def test_layer_index_errors():
    d = diags(
        "weight w: f32[4, 4] layers 2\ninput x: f32[1, 4]\noutput y: f32[1, 4]\ny = matmul(x, w)\ny = matmul(x, w[2])\n"
    )
    assert "select one: w[layer]" in d[0].message and "outside 0..1" in d[1].message


# ------------------------------------------------------------------ transformer ops
def rope_ref(x, cs, pos, heads):
    hd = x.size // heads
    h = x.reshape(heads, hd)
    half = hd // 2
    c, s = cs[pos, :half], cs[pos, half:]
    x1, x2 = h[:, :half], h[:, half:]
    y1 = ((x1 * c).astype(F32) - (x2 * s).astype(F32)).astype(F32)
    y2 = ((x2 * c).astype(F32) + (x1 * s).astype(F32)).astype(F32)
    return np.concatenate([y1, y2], 1).reshape(x.shape)


def attend_ref(q, kc, vc, n, heads, kvh):
    hd = q.size // heads
    out = np.zeros(q.size)
    for h in range(heads):
        g = h // (heads // kvh)
        qh = q.reshape(heads, hd)[h].astype(np.float64)
        k = kc[:n, g * hd : (g + 1) * hd].astype(np.float64)
        v = vc[:n, g * hd : (g + 1) * hd].astype(np.float64)
        s = k @ qh / np.sqrt(hd)
        p = np.exp(s - s.max())
        out[h * hd : (h + 1) * hd] = (p @ v) / p.sum()
    return out.reshape(q.shape)


ROPE_ATTEND = """const T = 40
const H = 4
const G = 2
const HD = 32
input x: f32[1, 128]
input kin: f32[1, 64]
input vin: f32[1, 64]
input cs: f32[T, HD]
input posv: i32[1]
output q: f32[1, 128]
output kc: f32[T, 64]
output vc: f32[T, 64]
output o: f32[1, 128]
let p32: i32 = load(posv, 0)
let pos: i64 = i64(p32)
q = rope(x, cs, pos, heads=H)
tensor kr: f32[1, 64]
kr = rope(kin, cs, pos, heads=G)
kc[pos] = kr
vc[pos] = vin
let n: i64 = pos + 1
o = attend(q, kc, vc, n, heads=H, kv_heads=G)
"""


@pytest.mark.parametrize("pos", [0, 5, 39])
def test_rope_kv_append_gqa_attention(pos, tmp_path):
    rng = np.random.default_rng(pos)
    x, kin, vin = rnd(pos, 1, 128), rnd(pos + 1, 1, 64), rnd(pos + 2, 1, 64)
    ang = np.arange(40)[:, None] * (10000.0 ** (-np.arange(16) / 16))[None, :]
    cs = np.concatenate([np.cos(ang), np.sin(ang)], 1).astype(F32)
    kc0 = rng.standard_normal((40, 64)).astype(F32)
    vc0 = rng.standard_normal((40, 64)).astype(F32)
    # the caches are outputs preloaded with earlier tokens' rows (bound like inputs)
    inputs = {
        "x": x,
        "kin": kin,
        "vin": vin,
        "cs": cs,
        "posv": np.array([pos], np.int32),
        "kc": kc0,
        "vc": vc0,
    }
    results = [
        run(ROPE_ATTEND, inputs, ["q", "kc", "vc", "o"], opt=opt, engine=engine, tmp=str(tmp_path))[0]
        for opt, engine in ((0, "interp"), (3, "interp"), (3, "jit"))
    ]
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert a.tobytes() == b.tobytes()
    q, kc, vc, o = results[0]
    np.testing.assert_array_equal(q, rope_ref(x, cs, pos, 4))
    want_kc, want_vc = kc0.copy(), vc0.copy()
    want_kc[pos] = rope_ref(kin, cs, pos, 2)[0]
    want_vc[pos] = vin[0]
    np.testing.assert_array_equal(kc, want_kc)
    np.testing.assert_array_equal(vc, want_vc)
    np.testing.assert_allclose(o, attend_ref(q, kc, vc, pos + 1, 4, 2), rtol=2e-5, atol=2e-6)


# ------------------------------------------------------------------ the BitNet layer example
def _bitnet_src(**consts) -> str:
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "programs" / "phx" / "bitnet_layer.phx").read_text()
    for k, v in consts.items():
        text = re.sub(rf"^const {k} = \d+", f"const {k} = {v}", text, flags=re.M)
    return text


def test_bitnet_layer_full_size_is_a_few_thousand_siws():
    _, rep = compile_phx(_bitnet_src(), "bitnet_layer.phx", opt=3)
    assert rep["total"]["siws"] < 3000
    _, small = compile_phx(_bitnet_src(D=256, F=704, H=4, G=2, HD=64, KV=128, T=64), "b.phx", opt=3)
    assert rep["total"]["siws"] <= small["total"]["siws"] + 64


def bitnet_ref(i, pos, heads, kvh):
    """float64 reference of one decoder layer (int8 absmax activations, ternary weights)."""

    def bitlinear(x, w, s):
        am = max(np.abs(x).max(), 1e-30)
        q = np.rint(x * (127 / am))
        return (q @ w) * (am / 127) * s

    def rms(x, g):
        return x / np.sqrt((x * x).mean() + 1e-5) * g

    def rope(v, nh):
        hd = v.size // nh
        h = v.reshape(nh, hd)
        c, s = i["rope_cs"][pos, : hd // 2], i["rope_cs"][pos, hd // 2 :]
        x1, x2 = h[:, : hd // 2], h[:, hd // 2 :]
        return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], 1).ravel()

    x = i["x"][0].astype(np.float64)
    h = rms(x, i["attn_norm"])
    q = rope(bitlinear(h, i["wq"], i["s_q"][0]), heads)
    k = rope(bitlinear(h, i["wk"], i["s_k"][0]), kvh)
    v = bitlinear(h, i["wv"], i["s_v"][0])
    kc, vc = i["kc"].astype(np.float64), i["vc"].astype(np.float64)
    kc[pos], vc[pos] = k, v
    a = attend_ref(q, kc, vc, pos + 1, heads, kvh)
    x1 = x + bitlinear(rms(a, i["attn_sub_norm"]), i["wo"], i["s_o"][0])
    h2 = rms(x1, i["ffn_norm"])
    g = np.maximum(bitlinear(h2, i["wg"], i["s_g"][0]), 0) ** 2
    gu = g * bitlinear(h2, i["wu"], i["s_u"][0])
    return x1 + bitlinear(rms(gu, i["ffn_sub_norm"]), i["wd"], i["s_d"][0])


ENGINES = [
    pytest.param(((0, "interp"), (3, "interp")), id="interp"),
    # the JIT compiles these ~1,000-SIW programs in tens of seconds today (JIT compile speed: issue #13)
    pytest.param(((3, "interp"), (3, "jit")), id="jit", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("engines", ENGINES)
def test_bitnet_layer_small_against_numpy(tmp_path, engines):
    d, f, heads, kvh, hd, t, pos = 64, 96, 4, 2, 16, 8, 5
    src = _bitnet_src(D=d, F=f, H=heads, G=kvh, HD=hd, KV=kvh * hd, T=t)
    rng = np.random.default_rng(0)
    tern = lambda *s: rng.integers(-1, 2, s).astype(np.int8)  # noqa: E731
    ang = np.arange(t)[:, None] * (10000.0 ** (-np.arange(hd // 2) / (hd // 2)))[None, :]
    i = {
        "x": rnd(1, 1, d),
        "pos_in": np.array([pos], np.int32),
        "rope_cs": np.concatenate([np.cos(ang), np.sin(ang)], 1).astype(F32),
        "attn_norm": (1 + 0.1 * rnd(2, d)).astype(F32),
        "attn_sub_norm": (1 + 0.1 * rnd(3, d)).astype(F32),
        "ffn_norm": (1 + 0.1 * rnd(4, d)).astype(F32),
        "ffn_sub_norm": (1 + 0.1 * rnd(5, f)).astype(F32),
        "kc": rnd(6, t, kvh * hd),
        "vc": rnd(7, t, kvh * hd),
        **{f"s_{n}": np.array([0.05 + 0.01 * j], F32) for j, n in enumerate("qkvogud")},
        "wq": tern(d, d),
        "wk": tern(d, kvh * hd),
        "wv": tern(d, kvh * hd),
        "wo": tern(d, d),
        "wg": tern(d, f),
        "wu": tern(d, f),
        "wd": tern(f, d),
    }
    outs = []
    for opt, engine in engines:
        (y,), _ = run(src, i, ["y"], opt=opt, engine=engine, tmp=str(tmp_path))
        outs.append(y)
    assert outs[0].tobytes() == outs[1].tobytes()
    want = bitnet_ref(i, pos, heads, kvh)
    # float64 reference: an int8 activation could round one step away; measured max error 7e-8
    np.testing.assert_allclose(outs[0][0], want, rtol=0, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("engines", ENGINES)
def test_bitnet_model_layer_loop_against_numpy(tmp_path, engines):
    import re
    from pathlib import Path

    d, f, heads, kvh, hd, t, nl, vocab, pos = 64, 96, 4, 2, 16, 8, 2, 50, 3
    consts = dict(D=d, F=f, H=heads, G=kvh, HD=hd, KV=kvh * hd, T=t, L=nl, V=vocab, LT=nl * t)
    text = (Path(__file__).parent.parent / "programs" / "phx" / "bitnet_model.phx").read_text()
    for k, v in consts.items():
        text = re.sub(rf"^const {k} = \d+", f"const {k} = {v}", text, flags=re.M)
    full, _ = compile_phx(
        (Path(__file__).parent.parent / "programs" / "phx" / "bitnet_model.phx").read_text(), "m.phx", opt=3
    )
    assert len(full.code) < 3000
    rng = np.random.default_rng(1)
    tern = lambda *s: rng.integers(-1, 2, s).astype(np.int8)  # noqa: E731
    ang = np.arange(t)[:, None] * (10000.0 ** (-np.arange(hd // 2) / (hd // 2)))[None, :]
    i = {
        "ids": np.array([7], np.int32),
        "pos_in": np.array([pos], np.int32),
        "rope_cs": np.concatenate([np.cos(ang), np.sin(ang)], 1).astype(F32),
        "emb": rnd(2, vocab, d),
        "final_norm": (1 + 0.1 * rnd(4, d)).astype(F32),
        "kc": rnd(5, nl * t, kvh * hd),
        "vc": rnd(6, nl * t, kvh * hd),
    }
    for j, name in enumerate(("attn_norm", "attn_sub_norm", "ffn_norm")):
        i[name] = (1 + 0.1 * rnd(10 + j, nl, d)).astype(F32)
    i["ffn_sub_norm"] = (1 + 0.1 * rnd(13, nl, f)).astype(F32)
    shapes = {"q": (d, d), "k": (d, kvh * hd), "v": (d, kvh * hd), "o": (d, d), "g": (d, f), "u": (d, f)}
    shapes["d"] = (f, d)
    for j, (n, shp) in enumerate(shapes.items()):
        i[f"s_{n}"] = (0.05 + 0.01 * j + 0.001 * np.arange(nl)).astype(F32)
        i[f"w{n}"] = np.stack([tern(*shp) for _ in range(nl)])
    outs = []
    for opt, engine in engines:
        o, _ = run(text, i, ["next", "kc"], opt=opt, engine=engine, tmp=str(tmp_path))
        outs.append(o)
    for o in outs[1:]:
        assert o[0].tobytes() == outs[0][0].tobytes() and o[1].tobytes() == outs[0][1].tobytes()
    # reference: the single-layer reference per layer on that layer's slice of the caches
    x = i["emb"][7][None, :].astype(np.float64)
    kc, vc = i["kc"].astype(np.float64), i["vc"].astype(np.float64)
    for layer in range(nl):
        li = {
            k: (v[layer] if k in ("attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm") else v)
            for k, v in i.items()
        }
        for n in shapes:
            li[f"w{n}"] = i[f"w{n}"][layer]
            li[f"s_{n}"] = i[f"s_{n}"][layer : layer + 1]
        li["x"] = x
        li["kc"], li["vc"] = kc[layer * t : (layer + 1) * t], vc[layer * t : (layer + 1) * t]
        x = bitnet_ref(li, pos, heads, kvh)[None, :]
    xn = x[0] / np.sqrt((x[0] ** 2).mean() + 1e-5) * i["final_norm"]
    logits = i["emb"].astype(np.float64) @ xn
    assert outs[0][0][0] == logits.argmax()


@settings(max_examples=4, deadline=None)
@given(
    st.sampled_from([(1, 1), (2, 1), (4, 2), (3, 3)]),
    st.sampled_from([16, 32, 48]),
    st.integers(1, 20),
    st.integers(0, 99),
)
def test_rope_attend_random_shapes(hk, hd, n, seed):
    heads, kvh = hk
    t = 20
    q, kc, vc = rnd(seed, heads * hd), rnd(seed + 1, t, kvh * hd), rnd(seed + 2, t, kvh * hd)
    ang = np.arange(t)[:, None] * (500.0 ** (-np.arange(hd // 2) / (hd // 2)))[None, :]
    cs = np.concatenate([np.cos(ang), np.sin(ang)], 1).astype(F32)
    src = f"""input q: f32[{heads * hd}]
input cs: f32[{t}, {hd}]
input kc: f32[{t}, {kvh * hd}]
input vc: f32[{t}, {kvh * hd}]
input nn: i32[1]
output r: f32[{heads * hd}]
output o: f32[{heads * hd}]
let c: i32 = load(nn, 0)
let n: i64 = i64(c)
let p: i64 = n - 1
r = rope(q, cs, p, heads={heads})
o = attend(q, kc, vc, n, heads={heads}, kv_heads={kvh})
"""
    inputs = {"q": q, "cs": cs, "kc": kc, "vc": vc, "nn": np.array([n], np.int32)}
    (r0, o0), _ = run(src, inputs, ["r", "o"], opt=0)
    (r, o), _ = run(src, inputs, ["r", "o"], opt=3)
    assert r0.tobytes() == r.tobytes() and o0.tobytes() == o.tobytes()
    np.testing.assert_array_equal(r, rope_ref(q, cs, n - 1, heads))
    np.testing.assert_allclose(o, attend_ref(q, kc, vc, n, heads, kvh), rtol=2e-5, atol=2e-6)


def test_statement_over_many_tensors_does_not_run_out_of_p_registers():
    names = [f"t{i}" for i in range(11)]
    src = "".join(f"input {n}: f32[16]\n" for n in names) + "output y: f32[16]\n"
    src += "let a: f32x16 = " + " + ".join(f"load({n}, 0)" for n in names) + "\nstore(y, 0, a)\n"
    xs = {n: np.full(16, i, F32) for i, n in enumerate(names)}
    (y,), _ = run(src, xs, ["y"], opt=3)
    assert (y == sum(range(11))).all()


@settings(max_examples=4, deadline=None)
@given(st.integers(1, 3), st.integers(1, 70), st.integers(1, 11), st.integers(0, 99))
def test_matmul_transposed_operand(m, k, n, seed):
    x, w = rnd(seed, m, k), rnd(seed + 1, n, k)
    src = f"input x: f32[{m},{k}]\nweight w: f32[{n},{k}]\noutput y: f32[{m},{n}]\ny = matmul_nt(x, w)\n"
    (a,), _ = run(src, {"x": x, "w": w}, ["y"], opt=0)
    (b,), _ = run(src, {"x": x, "w": w}, ["y"], opt=3)
    assert a.tobytes() == b.tobytes()
    # lane partial sums in chunk order, then a reduction of 16 lanes (its order is the engine's)
    pad = (-k) % 16
    xp = np.pad(x, ((0, 0), (0, pad))).reshape(m, -1, 16)
    wp = np.pad(w, ((0, 0), (0, pad))).reshape(n, -1, 16)
    lanes = np.zeros((m, n, 16), F32)
    for c in range(xp.shape[1]):
        prod = xp[:, None, c, :].astype(np.float64) * wp[None, :, c, :]
        lanes = (prod + lanes).astype(F32) if c else prod.astype(F32)
    np.testing.assert_allclose(b, lanes.astype(np.float64).sum(2), rtol=1e-5, atol=1e-5)


def test_prefill_rope_append_causal_attention():
    """Batched prefill: M tokens at positions pos..pos+M-1, appended together; token i attends to
    positions 0..pos+i."""
    mm, heads, kvh, hd, t, pos = 3, 4, 2, 16, 12, 4
    src = f"""input x: f32[{mm}, {heads * hd}]
input kin: f32[{mm}, {kvh * hd}]
input vin: f32[{mm}, {kvh * hd}]
input cs: f32[{t}, {hd}]
input posv: i32[1]
output q: f32[{mm}, {heads * hd}]
output kc: f32[{t}, {kvh * hd}]
output vc: f32[{t}, {kvh * hd}]
output o: f32[{mm}, {heads * hd}]
let p32: i32 = load(posv, 0)
let pos: i64 = i64(p32)
q = rope(x, cs, pos, heads={heads})
kr = rope(kin, cs, pos, heads={kvh})
kc[pos] = kr
vc[pos] = vin
let n: i64 = pos + {mm}
o = attend(q, kc, vc, n, heads={heads}, kv_heads={kvh})
"""
    x, kin, vin = rnd(1, mm, heads * hd), rnd(2, mm, kvh * hd), rnd(3, mm, kvh * hd)
    ang = np.arange(t)[:, None] * (10000.0 ** (-np.arange(hd // 2) / (hd // 2)))[None, :]
    cs = np.concatenate([np.cos(ang), np.sin(ang)], 1).astype(F32)
    kc0, vc0 = rnd(4, t, kvh * hd), rnd(5, t, kvh * hd)
    inputs = {
        "x": x,
        "kin": kin,
        "vin": vin,
        "cs": cs,
        "posv": np.array([pos], np.int32),
        "kc": kc0,
        "vc": vc0,
    }
    (q0, kc_0, vc_0, o0), _ = run(src, inputs, ["q", "kc", "vc", "o"], opt=0)
    (q, kc, vc, o), _ = run(src, inputs, ["q", "kc", "vc", "o"], opt=3)
    assert o0.tobytes() == o.tobytes() and kc_0.tobytes() == kc.tobytes()
    want_kc, want_vc = kc0.copy(), vc0.copy()
    for i in range(mm):
        np.testing.assert_array_equal(q[i], rope_ref(x[i], cs, pos + i, heads))
        want_kc[pos + i] = rope_ref(kin[i], cs, pos + i, kvh)
        want_vc[pos + i] = vin[i]
    np.testing.assert_array_equal(kc, want_kc)
    np.testing.assert_array_equal(vc, want_vc)
    for i in range(mm):
        np.testing.assert_allclose(
            o[i], attend_ref(q[i], kc, vc, pos + 1 + i, heads, kvh), rtol=2e-5, atol=2e-6
        )


def test_spilling_with_two_sentrons(tmp_path):
    """The spill scroll of a multi-sentron program is one preloaded scroll per sentron."""
    lets = "\n".join(f"let v{i}: f32x16 = load(x, {i * 64})" for i in range(40))
    sums = " + ".join(f"v{i}" for i in range(40))
    src = f"input x: f32[640]\noutput y: f32[16]\n{lets}\nlet s: f32x16 = {sums}\nstore(y, 0, s)\n"
    x = rnd(3, 640)
    ref = x[:16].copy()
    for i in range(1, 40):
        ref = (ref + x[16 * i : 16 * i + 16]).astype(F32)
    for engine in ("interp", "jit"):
        (y,), rep = run(src, {"x": x}, ["y"], opt=1, sentrons=2, engine=engine, tmp=str(tmp_path))
        assert rep["total"]["spills"] > 0
        np.testing.assert_array_equal(y, ref)


FN = """const L = 3
input x: f32[1, 64]
weight wf: f32[64, 64] layers L
input g: f32[64]
input nl: i32[1]
output z: f32[1, 64]
tensor h: f32[1, 64]

fn layer(w, s) {
  t = matmul(h, w)
  t = mul(t, s)
  h = rmsnorm(t, g)
}

h = copy(x)
let c: i32 = load(nl, 0)
let n: i64 = i64(c)
for l in 0..n {
  let s: f32 = 0.5
  layer(wf[l], s)
}
layer(wf[0], 2.0)
z = copy(h)
"""


def test_functions_called_in_a_runtime_loop():
    x, g, wf = rnd(1, 1, 64), (1 + 0.1 * rnd(2, 64)).astype(F32), rnd(3, 3, 64, 64) * F32(0.3)
    inputs = {"x": x, "g": g, "wf": wf, "nl": np.array([3], np.int32)}
    (z0,), _ = run(FN, inputs, ["z"], opt=0)
    (z,), _ = run(FN, inputs, ["z"], opt=3)
    assert z0.tobytes() == z.tobytes()
    h = x.astype(np.float64)
    for w, s in [(wf[0], 0.5), (wf[1], 0.5), (wf[2], 0.5), (wf[0], 2.0)]:
        h = rms_ref(((h @ w) * s).astype(F32), g).astype(np.float64)
    np.testing.assert_allclose(z, h, rtol=1e-4, atol=1e-5)
    d = diags("fn f(a) { f(a) }\ninput x: f32[4]\nf(x)\n")
    assert "calls itself" in d[0].message
    d = diags("fn f(a, b) { }\ninput x: f32[4]\nf(x)\n")
    assert "takes 2 argument(s), got 1" in d[0].message


@settings(max_examples=4, deadline=None)
@given(st.integers(1, 4), st.integers(1, 9), st.integers(1, 40), st.integers(0, 99))
def test_quant_op_and_shared_quantisation(m, k16s, n, seed):
    k = 16 * k16s
    x = rnd(seed, m, k) * F32(3)
    wa = np.random.default_rng(seed).integers(-1, 2, (k, n)).astype(np.int8)
    wb = np.random.default_rng(seed + 1).integers(-1, 2, (k, n)).astype(np.int8)
    src = f"""input x: f32[{m},{k}]
weight wa: t2[{k},{n}] scale 0.25
weight wb: t2[{k},{n}] scale 0.5
output q: i8[{m},{k}]
output s: f32[{m}]
output ya: f32[{m},{n}]
output yb: f32[{m},{n}]
output yc: f32[{m},{n}]
q, s = quant(x)
ya = tmatmul(q, wa, s)
yb = tmatmul(q, wb, s)
yc = tmatmul(x, wa)
"""
    outs = [run(src, {"x": x, "wa": wa, "wb": wb}, ["q", "s", "ya", "yb", "yc"], opt=o)[0] for o in (0, 3)]
    for a, b in zip(*outs, strict=True):
        assert a.tobytes() == b.tobytes()
    q, s, ya, yb, yc = outs[1]
    am = np.maximum(np.abs(x).max(1), F32(1e-30)).astype(F32)
    np.testing.assert_array_equal(q, np.rint((x * (F32(127) / am)[:, None]).astype(F32)).astype(np.int8))
    np.testing.assert_array_equal(s, (am / F32(127)).astype(F32))
    np.testing.assert_array_equal(ya, tmatmul_ref(x, wa, 0.25))
    np.testing.assert_array_equal(yb, tmatmul_ref(x, wb, 0.5))
    assert ya.tobytes() == yc.tobytes()  # the same bits as quantising inside tmatmul


def _ppt_conflicts(text: str, sentrons: int) -> tuple[int, int]:
    """(pairs of distinct single coordinates sharing a PPT set within one group -- a statement phase,
    as the colouring records them --, compiler-chosen coordinates in the set of some layer of a
    layer-indexed weight of the same group), per sentron (each sentron's private scrolls have their
    own coordinates)."""
    from vtpu_cli.compiler.driver import _front, private_coord
    from vtpu_cli.compiler.ir import VReg
    from vtpu_cli.compiler.lower import PPT_SETS, _colourable
    from vtpu_cli.machine.memory import ppt_set

    lw = _front(text, "m.phx", 2, sentrons, False, force_loops=True)
    b = lw.b
    same = layer = 0
    for g in b.groups:
        for s in range(sentrons):
            at = {}
            for k in g:
                sc = b.scrolls[k]
                if sc.private is not None:
                    at[k] = private_coord(s, *sc.private)
                elif sc.coord is not None and not isinstance(sc.layer, VReg):
                    at[k] = sc.coord
            sets: dict[int, set[int]] = {}
            for c in at.values():
                sets.setdefault(ppt_set(c, PPT_SETS), set()).add(c)
            same += sum(len(cs) - 1 for cs in sets.values())
            for k in g:
                sc = b.scrolls[k]
                if isinstance(sc.layer, VReg):
                    stack = b.scrolls[sc.alias]
                    # an exchange stack's runtime view: sentron s addresses its own layer s only
                    own = [s] if stack.by_sentron else range(stack.layers)
                    ws = {ppt_set(sc.coord + i, PPT_SETS) for i in own}
                    layer += sum(
                        ppt_set(c, PPT_SETS) in ws for k2, c in at.items() if _colourable(b.scrolls[k2])
                    )
    return same, layer


@pytest.mark.parametrize("sentrons,tokens", [(1, 1), (2, 4), (3, 1), (4, 4)])
def test_model_scratch_coordinates_avoid_ppt_conflicts(sentrons, tokens, monkeypatch):
    """The compiler numbers its own scrolls so that no two coordinates of one statement phase (a
    coordinate region outside the statement's loops: the groups the colouring records) share a
    translation-cache set (the JIT's slow path on every trip of the loop) and none sits in the set of
    any layer of a layer-indexed weight it is used with; without the colouring the 30-layer model
    program has such conflicts (so this test can fail). Two sentrons, 4 tokens: the residual h is read
    by the o and down statements' epilogues, phases apart from their weight loops (with whole
    statements as groups h had to avoid four 30-layer stacks on both sentrons at once, and one
    conflict was left)."""
    import vtpu_cli.compiler.lower as lower
    from vtpu_cli.models.compiled import StepShape

    text = StepShape(128, 256, 4, 1, 32, 30, 512, 64, 1e-5, tokens=tokens, sentrons=sentrons).text()
    assert _ppt_conflicts(text, sentrons) == (0, 0)
    monkeypatch.setattr(lower, "colour_coordinates", lambda lw: {})
    same, layer = _ppt_conflicts(text, sentrons)
    assert same + layer > 0


@pytest.mark.parametrize(
    "mm, heads, kvh, sentrons",
    [
        (1, 4, 2, 2),
        (3, 6, 2, 2),
        (2, 20, 5, 2),
        (2, 8, 8, 3),
        (1, 2, 1, 3),
        (2, 20, 5, 3),
        (3, 12, 3, 5),
        (1, 8, 2, 4),
        (2, 20, 5, 16),
    ],
)
def test_attend_shard_heads_is_bit_identical_to_one_sentron(mm, heads, kvh, sentrons):
    """``attend(..., shard=heads)``: each sentron computes a range of single heads into its exchange
    scroll (20 heads of 5 KV groups: 10/10, a group cut between two sentrons; 7/7/6; 3/3/3/3/0), then
    every sentron gathers all heads: the same bytes as one sentron (uneven splits, a sentron with no
    heads, prefill rows, a runtime length and cache start). 8 heads on 4 sentrons and 20 on 16 (2 each,
    6 with none): the sentrons with equal shares run one copy of the code, its first head computed
    from the sentron id at run time."""
    hd, t, start = 16, 12, 2
    src = f"""input q: f32[{mm}, {heads * hd}]
input kc: f32[{t}, {kvh * hd}]
input vc: f32[{t}, {kvh * hd}]
input nn: i32[1]
output o: f32[{mm}, {heads * hd}]
output y: f32[{mm}, {heads * hd}]
let c: i32 = load(nn, 0)
let n: i64 = i64(c)
o = attend(q, kc, vc, n, heads={heads}, kv_heads={kvh}, start={start}, shard=heads)
y = relu(o)
"""
    inputs = {"q": rnd(1, mm, heads * hd), "kc": rnd(2, t, kvh * hd), "vc": rnd(3, t, kvh * hd)}
    inputs["nn"] = np.array([7], np.int32)
    (o1, y1), _ = run(src, inputs, ["o", "y"], opt=3)
    (o2, y2), _ = run(src, inputs, ["o", "y"], opt=3, sentrons=sentrons)
    assert o1.tobytes() == o2.tobytes() and y1.tobytes() == y2.tobytes()
    unsharded = src.replace(", shard=heads", "")
    (o0,), _ = run(unsharded, inputs, ["o"], opt=3)
    assert o0.tobytes() == o1.tobytes()
    kc, vc = inputs["kc"][start:], inputs["vc"][start:]
    for i in range(mm):
        n_i = 7 - mm + 1 + i
        want = attend_ref(inputs["q"][i], kc, vc, n_i, heads, kvh)
        np.testing.assert_allclose(o1[i], want, rtol=2e-5, atol=2e-6)


def test_attend_head_segments_cut_a_kv_group():
    """A sentron's head range in whole batches plus the cut batch's heads in the largest batch that
    divides the group, the run's start and length (never spanning two KV groups)."""
    from vtpu_cli.compiler.kernels import head_segments

    assert head_segments(0, 10, 4, 4) == [(0, 8, 4), (8, 10, 2)]
    assert head_segments(10, 20, 4, 4) == [(10, 12, 2), (12, 20, 4)]
    assert head_segments(0, 20, 4, 4) == [(0, 20, 4)]
    assert head_segments(7, 14, 4, 4) == [(7, 8, 1), (8, 12, 4), (12, 14, 2)]
    assert head_segments(1, 3, 4, 4) == [(1, 3, 1)]


def test_attend_shard_takes_heads_only():
    src = """input q: f32[64]
input kc: f32[8, 32]
input vc: f32[8, 32]
output o: f32[64]
o = attend(q, kc, vc, 4, heads=4, kv_heads=2, shard=cols)
"""
    d = diags(src, sentrons=2)
    assert "attend shards by heads: shard=heads" in d[0].message and d[0].line == 5


# ------------------------------------------------------------------ collectives at scale
def _collective_src(n: int) -> str:
    return (
        f"input x: f32[{n}]\noutput s: f32[{n}]\noutput c: f32[{n}]\n"
        "let me: f32 = f32(sid())\nt = mul(x, me)\ns = allreduce(t)\nc = broadcast(t, root=1)\n"
    )


@pytest.mark.parametrize("opt", [0, 2, 3])
def test_collectives_are_loops_with_the_same_bits(opt):
    """allreduce/broadcast of more than 64 pieces are a loop of one collective per 64-byte piece (at
    -O3 software pipelined: the fetch of piece k+1 beside the collective of piece k), exact on 3
    sentrons (members combined in id order), with a partial tail piece."""
    n, ns = 5003, 3
    x = rnd(8, n)
    prog, rep = compile_phx(_collective_src(n), "t.phx", opt=opt, sentrons=ns)
    assert len(prog.code) < 400, len(prog.code)
    if opt == 3:
        assert rep["total"]["pipelined_loops"] >= 2
    (s, c), _ = run(_collective_src(n), {"x": x}, ["s", "c"], opt=opt, sentrons=ns)
    np.testing.assert_array_equal(s, ((x * F32(0) + x * F32(1)).astype(F32) + x * F32(2)).astype(F32))
    np.testing.assert_array_equal(c, x)


def test_collective_of_a_million_elements_on_the_jit(tmp_path):
    """A 1 M-element allreduce and broadcast on 2 sentrons (131,072 collectives each): a short
    program, run natively."""
    n, ns = 1 << 20, 2
    x = rnd(9, n)
    prog, _ = compile_phx(_collective_src(n), "t.phx", opt=3, sentrons=ns)
    assert len(prog.code) < 400, len(prog.code)
    (s, c), _ = run(_collective_src(n), {"x": x}, ["s", "c"], opt=3, sentrons=ns, engine="jit", tmp=tmp_path)
    want = (x * F32(0) + x * F32(1)).astype(F32)
    for k in range(2, ns):
        want = (want + x * F32(k)).astype(F32)
    np.testing.assert_array_equal(s, want)
    np.testing.assert_array_equal(c, x)


@settings(max_examples=4, deadline=None)
@given(
    st.integers(49, 300),
    st.integers(1, 50),
    st.sampled_from([5, 64, 130, 300]),
    st.sampled_from(["interp", "jit"]),
)
def test_embed_groups_loop(n, vocab, d, engine):
    """More than 32 ids: the groups of 16 ids are a loop (with a partial last group), for short rows
    (chunks unrolled) and long rows (copy loops); exact on both engines."""
    table = rnd(vocab, vocab, d)
    ids = np.random.default_rng(n).integers(0, vocab, n).astype(np.int32)
    src = f"weight t: f32[{vocab},{d}]\ninput ids: i32[{n}]\noutput e: f32[{n},{d}]\ne = embed(t, ids)\n"
    (e,), _ = run(src, {"t": table, "ids": ids}, ["e"], engine=engine)
    np.testing.assert_array_equal(e, table[ids])


def test_embed_program_size_does_not_grow_with_the_token_count():
    sizes = []
    for n in (64, 4096):
        src = f"weight t: f32[1000, 64]\ninput ids: i32[{n}]\noutput e: f32[{n}, 64]\ne = embed(t, ids)\n"
        sizes.append(len(compile_phx(src, "t.phx")[0].code))
    assert sizes[1] <= sizes[0] + 4 and sizes[1] < 400, sizes
