"""Kernel tiles (compiler/kernels.py) and the int8 LM-head op ``matmul_q8``: independent numpy references
on hypothesis-drawn shapes on both engines, -O0 against -O3 bit for bit, and the compiled-kernel
benchmark's smoke run (measurements are never asserted)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtpu_cli.compiler import bind_inputs, compile_phx, read_output
from vtpu_cli.compiler.schedule import check_hazards
from vtpu_cli.core.errors import DiagnosticError
from vtpu_cli.engines.interp.interpreter import Interpreter

F32 = np.float32
FEW = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def run(src, inputs, outs, opt=2, engine="interp", tmp=None, force_loops=False):
    prog, _ = compile_phx(src, "t.phx", opt=opt, force_loops=force_loops)
    assert not check_hazards(prog.code)
    bind_inputs(prog, inputs)
    if engine == "jit":
        from vtpu_cli.engines.jit.engine import JitEngine

        res = JitEngine(prog, 1, cache_dir=tmp).run()
        assert res.engine == "jit", res.fallback
    else:
        res = Interpreter(prog, 1).run()
    assert res.status == "ok", res.fault.render() if res.fault else res.status
    return [read_output(prog, res, o) for o in outs]


def q8_ref(x, w8, ws):
    """Written from docs/kernels.md, not from the compiler: per-token int8 absmax of x (round half to
    even), the exact integer dot with each int8 row of w8, then f32(acc) * f32(ws[n] * sx)."""
    x = np.atleast_2d(x).astype(F32)
    am = np.maximum(np.abs(x).max(axis=1), F32(1e-30)).astype(F32)
    q = np.rint((x * (F32(127) / am)[:, None]).astype(F32)).astype(np.int64)
    sx = (am / F32(127)).astype(F32)
    acc = q @ w8.astype(np.int64).T
    scale = (np.broadcast_to(ws, (w8.shape[0],))[None, :] * sx[:, None]).astype(F32)
    return (acc.astype(F32) * scale).astype(F32)


def tmatmul_ref(x, w, ws):
    am = np.maximum(np.abs(x).max(1), F32(1e-30)).astype(F32)
    q = np.rint((x * (F32(127) / am)[:, None]).astype(F32)).astype(np.int64)
    sc = ((am / F32(127)).astype(F32) * F32(ws)).astype(F32)
    return ((q @ w).astype(F32) * sc[:, None]).astype(F32)


def q8_src(m, k, n, nscale, one_d=False):
    xs = f"f32[{k}]" if one_d else f"f32[{m}, {k}]"
    ys = f"f32[{n}]" if one_d else f"f32[{m}, {n}]"
    return (
        f"input x: {xs}\nweight w8: i8[{n}, {k}]\ninput ws: f32[{nscale}]\noutput y: {ys}\n"
        "y = matmul_q8(x, w8, ws)\n"
    )


def q8_inputs(seed, m, k, n, per_row):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, k)) * rng.choice([1e-3, 1.0, 50.0])).astype(F32)
    w8 = rng.integers(-128, 128, (n, k)).astype(np.int8)
    ws = (rng.random(n if per_row else 1) * 0.1 + 1e-3).astype(F32)
    return x, w8, ws


@FEW
@given(st.integers(1, 3), st.integers(1, 200), st.integers(1, 19), st.booleans(), st.integers(0, 999))
def test_matmul_q8_interp_matches_numpy_and_o0(m, k, n, per_row, seed):
    x, w8, ws = q8_inputs(seed, m, k, n, per_row)
    src = q8_src(m, k, n, ws.size)
    want = q8_ref(x, w8, ws)
    for opt in (0, 3):
        (y,) = run(src, {"x": x, "w8": w8, "ws": ws}, ["y"], opt=opt)
        np.testing.assert_array_equal(y, want)


@FEW
@given(st.integers(1, 2), st.integers(1, 300), st.integers(1, 40), st.booleans(), st.integers(0, 999))
def test_matmul_q8_jit_matches_numpy(tmp_path, m, k, n, per_row, seed):
    x, w8, ws = q8_inputs(seed, m, k, n, per_row)
    (y,) = run(
        q8_src(m, k, n, ws.size), {"x": x, "w8": w8, "ws": ws}, ["y"], opt=3, engine="jit", tmp=str(tmp_path)
    )
    np.testing.assert_array_equal(y, q8_ref(x, w8, ws))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.integers(2, 11),
    st.integers(1, 200),
    st.integers(1, 30),
    st.booleans(),
    st.sampled_from(["interp", "jit"]),
    st.integers(0, 999),
)
def test_matmul_q8_batched_rows(tmp_path, m, k, n, per_row, engine, seed):
    """M > 1 in loop form: every row of x is quantised first, then each block of weight rows meets the
    rows of x in groups (kernels._q8_batched: groups of Q8_ACCS // Q8_ROWS rows and a remainder group);
    the bits of the reference for every output, at -O0 and -O3 alike on the interpreter, -O3 natively."""
    x, w8, ws = q8_inputs(seed, m, k, n, per_row)
    want = q8_ref(x, w8, ws)
    for opt in (0, 3) if engine == "interp" else (3,):
        (y,) = run(
            q8_src(m, k, n, ws.size), {"x": x, "w8": w8, "ws": ws}, ["y"], opt, engine, str(tmp_path), True
        )
        np.testing.assert_array_equal(y, want)


def test_matmul_q8_one_d_input_and_extremes():
    """A [K] token; int8 extremes (-128 and 127 weights, a row of zeros: am = 1e-30 -> all-zero q)."""
    k, n = 130, 9
    w8 = np.full((n, k), -128, np.int8)
    w8[1::2] = 127
    ws = np.linspace(0.01, 0.09, n).astype(F32)
    x = np.linspace(-3, 3, k).astype(F32)
    (y,) = run(q8_src(1, k, n, n, one_d=True), {"x": x, "w8": w8, "ws": ws}, ["y"])
    np.testing.assert_array_equal(y, q8_ref(x, w8, ws)[0])
    (y0,) = run(q8_src(1, k, n, n, one_d=True), {"x": np.zeros(k, F32), "w8": w8, "ws": ws}, ["y"])
    assert not y0.any()


def test_matmul_q8_errors():
    def diag(src):
        with pytest.raises(DiagnosticError) as e:
            compile_phx(src, "t.phx")
        return str(e.value)

    assert "w8[N, 64]" in diag(
        "input x: f32[1, 64]\nweight w8: i8[8, 32]\ninput ws: f32[8]\ny = matmul_q8(x, w8, ws)\n"
    )
    assert "f32[8]" in diag(
        "input x: f32[1, 64]\nweight w8: i8[8, 64]\ninput ws: f32[3]\ny = matmul_q8(x, w8, ws)\n"
    )
    assert "int8 weights" in diag(
        "input x: f32[1, 64]\nweight w8: f32[8, 64]\ninput ws: f32[8]\ny = matmul_q8(x, w8, ws)\n"
    )


@FEW
@given(st.integers(1, 9), st.integers(1, 70), st.integers(1, 90), st.integers(0, 999))
def test_tmatmul_row_blocks_bit_identical(m, k, n, seed):
    """The row-blocked tmatmul tile (loop form) against the unrolled form, the numpy reference and -O0."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(F32)
    w = rng.integers(-1, 2, (k, n))
    src = f"input x: f32[{m},{k}]\nweight w: t2[{k},{n}] scale 0.25\noutput y: f32[{m},{n}]\ny = tmatmul(x, w)\n"
    want = tmatmul_ref(x, w, 0.25)
    for opt, loops in ((0, True), (3, True), (2, False)):
        (y,) = run(src, {"x": x, "w": w}, ["y"], opt=opt, force_loops=loops)
        np.testing.assert_array_equal(y, want)


def test_tmatmul_prefill_on_the_jit(tmp_path):
    rng = np.random.default_rng(5)
    m, k, n = 6, 96, 200
    x = rng.standard_normal((m, k)).astype(F32)
    w = rng.integers(-1, 2, (k, n))
    src = (
        f"input x: f32[{m},{k}]\nweight w: t2[{k},{n}] scale 0.5\noutput y: f32[{m},{n}]\ny = tmatmul(x, w)\n"
    )
    (y,) = run(src, {"x": x, "w": w}, ["y"], opt=3, engine="jit", tmp=str(tmp_path), force_loops=True)
    np.testing.assert_array_equal(y, tmatmul_ref(x, w, 0.5))


def test_kernel_bench_quick_smoke(capsys):
    """The benchmark runs and verifies its outputs (numbers are reported, never asserted)."""
    pytest.importorskip("llvmlite")
    from vtpu_cli.bench import kernels as kb

    row = kb.bench_q8(1, 64, 40, 1)[0]
    assert row.verified and row.kernel_s > 0 and row.base_s > 0


@pytest.mark.parametrize("m,k,n", [(9, 37, 1040), (8, 4, 1024), (16, 20, 512), (1, 33, 300)])
def test_matmul_packed_strip_bit_identical(m, k, n):
    """Loop-form f32 matmul (column groups outside, row blocks inside; the w strip packed when several
    row blocks read it) gives the unrolled form's bits and -O0's."""
    rng = np.random.default_rng(m * 1000 + n)
    x = rng.standard_normal((m, k)).astype(F32)
    w = rng.standard_normal((k, n)).astype(F32)
    src = f"input x: f32[{m},{k}]\ninput w: f32[{k},{n}]\noutput y: f32[{m},{n}]\ny = matmul(x, w)\n"
    outs = [
        run(src, {"x": x, "w": w}, ["y"], opt=o, force_loops=f)[0]
        for o, f in ((0, True), (3, True), (2, False))
    ]
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    xi = rng.integers(-4, 5, (m, k)).astype(F32)
    wi = rng.integers(-4, 5, (k, n)).astype(F32)
    (yi,) = run(src, {"x": xi, "w": wi}, ["y"], opt=3, force_loops=True)
    np.testing.assert_array_equal(yi, xi @ wi)


@pytest.mark.parametrize("heads,kvh,hd,rows", [(8, 2, 32, 1), (6, 3, 16, 3), (4, 4, 48, 1), (12, 1, 16, 2)])
def test_attend_head_batches_bit_identical(monkeypatch, heads, kvh, hd, rows):
    """Attention takes several query heads of one KV group per pass over the cache rows; the bits must
    be those of one head per pass (and of -O0)."""
    from vtpu_cli.compiler import kernels

    t, n = 40, 23
    rng = np.random.default_rng(heads * 100 + hd)
    q = rng.standard_normal((rows, heads * hd)).astype(F32)
    kc = rng.standard_normal((t, kvh * hd)).astype(F32)
    vc = rng.standard_normal((t, kvh * hd)).astype(F32)
    src = (
        f"input q: f32[{rows}, {heads * hd}]\ninput kc: f32[{t}, {kvh * hd}]\ninput vc: f32[{t}, {kvh * hd}]\n"
        f"output o: f32[{rows}, {heads * hd}]\no = attend(q, kc, vc, {n}, heads={heads}, kv_heads={kvh})\n"
    )
    outs = []
    for hb, opt in ((1, 0), (1, 3), (4, 3), (8, 2)):
        monkeypatch.setattr(kernels, "ATT_HEADS", hb)
        outs.append(run(src, {"q": q, "kc": kc, "vc": vc}, ["o"], opt=opt)[0])
    for other in outs[1:]:
        np.testing.assert_array_equal(outs[0], other)


@pytest.mark.parametrize("rows,n", [(1, 23), (3, 9), (5, 8)])
def test_attend_runtime_length_engines_bit_identical(tmp_path, rows, n):
    """The score pass stores raw dot products and the softmax passes scale them 16 at a time: the
    interpreter and the JIT (-O0 and -O3) give the same bits for a runtime length, decode and prefill
    rows (row i sees n - rows + 1 + i cache rows), and the values of the float64 formula."""
    heads, kvh, hd, t = 4, 2, 32, 30
    rng = np.random.default_rng(rows * 10 + n)
    q = rng.standard_normal((rows, heads * hd)).astype(F32)
    kv = rng.standard_normal((2 * t, kvh * hd)).astype(F32)
    src = (
        f"input q: f32[{rows}, {heads * hd}]\ninput kv: f32[{2 * t}, {kvh * hd}]\ninput nv: i32[1]\n"
        f"output o: f32[{rows}, {heads * hd}]\nlet n32: i32 = load(nv, 0)\nlet n: i64 = i64(n32)\n"
        f"o = attend(q, slice(kv, 0, {t}), slice(kv, {t}, {t}), n, heads={heads}, kv_heads={kvh}, start=0)\n"
    )
    inputs = {"q": q, "kv": kv, "nv": np.array([n], np.int32)}
    outs = [
        run(src, inputs, ["o"], opt=opt, engine=engine, tmp=tmp_path, force_loops=True)[0]
        for opt, engine in ((2, "interp"), (0, "jit"), (3, "jit"))
    ]
    for other in outs[1:]:
        np.testing.assert_array_equal(outs[0], other)
    scale = 1 / np.sqrt(hd)
    for i in range(rows):  # and the values: the float64 formula
        ni = n - rows + 1 + i
        for h in range(heads):
            g = h // (heads // kvh)
            k = kv[:ni, g * hd : (g + 1) * hd].astype(np.float64)
            v = kv[t : t + ni, g * hd : (g + 1) * hd].astype(np.float64)
            s = k @ q[i, h * hd : (h + 1) * hd].astype(np.float64) * scale
            p = np.exp(s - s.max())
            np.testing.assert_allclose(
                outs[0][i, h * hd : (h + 1) * hd], p @ v / p.sum(), rtol=2e-5, atol=2e-6
            )


@pytest.mark.parametrize("ns,m,k,n", [(2, 1, 64, 600), (3, 2, 40, 530), (4, 1, 32, 48), (3, 1, 16, 5000)])
def test_sharded_tmatmul_all_gather(ns, m, k, n):
    """shard=cols: the exchange-scroll all-gather gives every sentron the whole output, bit-identical
    to one sentron, for uneven tile ranges, partial tiles and an owner with no tiles."""
    rng = np.random.default_rng(ns * 100 + n)
    x = rng.standard_normal((m, k)).astype(F32)
    w = rng.integers(-1, 2, (k, n))
    src = (
        f"input x: f32[{m},{k}]\nweight w: t2[{k},{n}] scale 0.5\noutput y: f32[{m},{n}]\n"
        "y = tmatmul(x, w, shard=cols)\n"
    )
    prog, _ = compile_phx(src, "t.phx", opt=3, sentrons=ns)
    bind_inputs(prog, {"x": x, "w": w})
    res = Interpreter(prog, ns).run()
    assert res.status == "ok", res.fault.render() if res.fault else res.status
    np.testing.assert_array_equal(read_output(prog, res, "y"), tmatmul_ref(x, w, 0.5))


def test_sharded_tmatmul_on_the_jit(tmp_path):
    from vtpu_cli.engines.jit.engine import JitEngine

    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 128)).astype(F32)
    w = rng.integers(-1, 2, (128, 1100))
    src = "input x: f32[1,128]\nweight w: t2[128,1100] scale 0.5\noutput y: f32[1,1100]\ny = tmatmul(x, w, shard=cols)\n"
    prog, _ = compile_phx(src, "t.phx", opt=3, sentrons=2)
    bind_inputs(prog, {"x": x, "w": w})
    res = JitEngine(prog, 2, cache_dir=str(tmp_path)).run()
    assert res.engine == "jit" and res.status == "ok", res.fallback
    np.testing.assert_array_equal(read_output(prog, res, "y"), tmatmul_ref(x, w, 0.5))


def test_every_tensor_op_is_known_to_the_checker():
    """lower.py's checker keeps its own tuple of tensor-op names (it cannot import tensors.py); an op
    added to the table but not to the tuple would be 'unknown tensor op' at its first use."""
    from vtpu_cli.compiler import lower, tensors

    assert set(tensors.OPS) <= set(lower._TENSOR_OPS), set(tensors.OPS) - set(lower._TENSOR_OPS)
