"""phextcc: every tensor op and compositions against numpy, O0 vs O3 bit-exactness, diagnostics,
the intra-SIW hazard rule on emitted code, and the `vtpu cc` command body."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.asm.disassembler import disassemble
from vtpu_cli.compiler import bind_inputs, compile_phx, read_output
from vtpu_cli.compiler.schedule import check_hazards
from vtpu_cli.core.errors import DiagnosticError
from vtpu_cli.engines.interp.interpreter import Interpreter

FEW = settings(max_examples=4, deadline=None)
F32 = np.float32


def run(src: str, inputs: dict, outs: list[str], opt: int = 2, sentrons: int = 1):
    prog, rep = compile_phx(src, "t.phx", opt=opt, sentrons=sentrons)
    assert not check_hazards(prog.code)
    bind_inputs(prog, inputs)
    res = Interpreter(prog, sentrons).run()
    assert res.status == "ok", res.fault.render() if res.fault else res.status
    return [read_output(prog, res, o) for o in outs], rep, prog


def both(src, inputs, outs, sentrons=1):
    """Run at -O0 and -O3; the outputs must be bit-identical; returns the -O3 outputs."""
    a, _, _ = run(src, inputs, outs, 0, sentrons)
    b, rep, _ = run(src, inputs, outs, 3, sentrons)
    for x, y in zip(a, b, strict=True):
        assert x.tobytes() == y.tobytes()
    return b, rep


def rnd(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(F32)


def matmul_ref(x, w):
    """Sequential fused accumulation over k, like the compiled code (first term a plain product)."""
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


# ------------------------------------------------------------------ level 1
L1 = """
input x: f32[64]
output y: f32[32]
let acc: f32x16 = 0.0
let n: i64 = 0
for i in 0..4 {
  let a: f32x16 = load(x, i * 64)
  acc = fma(a, a, acc)
  n = n + 1
}
for j in 0..20 { n = n + 2 }
let s: f32 = sum(acc)
if n > 40 { s = s * 2.0 } else { s = s - 1.0 }
store(y, 0, bcast(s))
store(y, 64, bcast(f32(n)))
"""


def test_level1_end_to_end():
    x = np.arange(64, dtype=F32) / 8
    (y,), rep = both(L1, {"x": x}, ["y"])
    assert y[0] == F32(2 * np.float64((x * x).sum()))  # exact: small integers / 64
    assert y[16] == 44.0
    assert rep["total"]["density"] > 1.0


# ------------------------------------------------------------------ elementwise and activations
@FEW
@given(st.integers(1, 5), st.integers(1, 40), st.integers(0, 99))
def test_elementwise(m, n, seed):
    a, b = rnd(seed, m, n), rnd(seed + 1, m, n)
    src = f"""input a: f32[{m},{n}]
input b: f32[{m},{n}]
output s: f32[{m},{n}]
output d: f32[{m},{n}]
output p: f32[{m},{n}]
output r: f32[{m},{n}]
output r2: f32[{m},{n}]
output k: f32[{m},{n}]
s = add(a, b)
d = sub(a, b)
p = mul(a, b)
r = relu(a)
r2 = relu2(b)
k = mul(a, 0.5)
"""
    s, d, p, r, r2, k = both(src, {"a": a, "b": b}, ["s", "d", "p", "r", "r2", "k"])[0]
    np.testing.assert_array_equal(s, a + b)
    np.testing.assert_array_equal(d, a - b)
    np.testing.assert_array_equal(p, a * b)
    np.testing.assert_array_equal(r, np.maximum(a, 0))
    np.testing.assert_array_equal(r2, np.maximum(b, 0) ** 2)
    np.testing.assert_array_equal(k, a * F32(0.5))


def test_int_elementwise():
    a = np.arange(-20, 20, dtype=np.int32)
    src = "input a: i32[40]\noutput y: i32[40]\ny = mul(a, 3)\ny = add(y, a)\n"
    (y,), _ = both(src, {"a": a}, ["y"])
    np.testing.assert_array_equal(y, a * 4)


EXP_REL_BOUND = 4e-7  # documented in docs/phx.md (measured maximum about 2.4e-7)


def test_exp_polynomial_error_bound():
    x = np.linspace(-87, 88, 16 * 40, dtype=F32)
    src = "input x: f32[640]\noutput y: f32[640]\ny = exp(x)\n"
    (y,), _, _ = run(src, {"x": x}, ["y"])
    rel = np.abs(y.astype(np.float64) / np.exp(x.astype(np.float64)) - 1)
    assert rel.max() < EXP_REL_BOUND


@FEW
@given(st.integers(1, 4), st.integers(1, 40), st.integers(0, 99))
def test_silu_softmax_rmsnorm(m, n, seed):
    x = rnd(seed, m, n) * 3
    g = rnd(seed + 7, n)
    src = f"""input x: f32[{m},{n}]
weight g: f32[{n}]
output a: f32[{m},{n}]
output b: f32[{m},{n}]
output c: f32[{m},{n}]
a = silu(x)
b = softmax(x)
c = rmsnorm(x, g, eps=1e-5)
"""
    a, b, c = both(src, {"x": x, "g": g}, ["a", "b", "c"])[0]
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(a, x64 / (1 + np.exp(-x64)), rtol=2e-6, atol=1e-6)
    sm = np.exp(x64 - x64.max(1, keepdims=True))
    np.testing.assert_allclose(b, sm / sm.sum(1, keepdims=True), rtol=2e-6, atol=1e-7)
    rms = x64 / np.sqrt((x64 * x64).mean(1, keepdims=True) + 1e-5) * g
    np.testing.assert_allclose(c, rms, rtol=1e-5, atol=1e-6)


@FEW
@given(st.integers(1, 4), st.integers(2, 40), st.integers(1, 3), st.integers(0, 99))
def test_argmax_topk(m, n, k, seed):
    k = min(k, n)
    x = np.round(rnd(seed, m, n) * 4) / 4  # ties on purpose: the first index wins
    src = f"""input x: f32[{m},{n}]
output a: i32[{m}]
output v: f32[{m},{k}]
output i: i32[{m},{k}]
a = argmax(x)
v, i = topk(x, {k})
"""
    a, v, i = both(src, {"x": x}, ["a", "v", "i"])[0]
    np.testing.assert_array_equal(a, x.argmax(1))
    order = np.argsort(-x, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(i, order)
    np.testing.assert_array_equal(v, np.take_along_axis(x, order, 1))


# ------------------------------------------------------------------ matmuls
@FEW
@given(st.integers(1, 5), st.integers(1, 24), st.integers(1, 40), st.integers(0, 99))
def test_matmul(m, k, n, seed):
    x, w = rnd(seed, m, k), rnd(seed + 1, k, n)
    src = f"input x: f32[{m},{k}]\nweight w: f32[{k},{n}]\noutput y: f32[{m},{n}]\ny = matmul(x, w)\n"
    (y,), _ = both(src, {"x": x, "w": w}, ["y"])
    np.testing.assert_array_equal(y, matmul_ref(x, w))


@FEW
@given(st.integers(1, 3), st.integers(1, 70), st.integers(1, 36), st.integers(0, 99))
def test_tmatmul_exact(m, k, n, seed):
    x = rnd(seed, m, k)
    w = np.random.default_rng(seed).integers(-1, 2, (k, n))
    src = f"input x: f32[{m},{k}]\nweight w: t2[{k},{n}] scale 0.125\noutput y: f32[{m},{n}]\ny = tmatmul(x, w)\n"
    (y,), _ = both(src, {"x": x, "w": w}, ["y"])
    np.testing.assert_array_equal(y, tmatmul_ref(x, w, 0.125))


@FEW
@given(st.integers(1, 20), st.integers(1, 6), st.integers(1, 40), st.integers(0, 99))
def test_embed_dedup(n, vocab, d, seed):
    table = rnd(seed, vocab, d)
    ids = np.random.default_rng(seed).integers(0, vocab, n).astype(np.int32)
    src = f"weight t: f32[{vocab},{d}]\ninput ids: i32[{n}]\noutput e: f32[{n},{d}]\ne = embed(t, ids)\n"
    (e,), _ = both(src, {"t": table, "ids": ids}, ["e"])
    np.testing.assert_array_equal(e, table[ids])


# ------------------------------------------------------------------ compositions
def test_mlp():
    x, w1, w2 = rnd(1, 4, 24), rnd(2, 24, 32), rnd(3, 32, 20)
    src = """input x: f32[4, 24]
weight w1: f32[24, 32]
weight w2: f32[32, 20]
output y: f32[4, 20]
h = matmul(x, w1)
h = relu(h)
y = matmul(h, w2)
"""
    (y,), rep = both(src, {"x": x, "w1": w1, "w2": w2}, ["y"])
    np.testing.assert_array_equal(y, matmul_ref(np.maximum(matmul_ref(x, w1), 0), w2))


def test_ternary_mlp():
    rng = np.random.default_rng(5)
    x = rnd(4, 2, 48)
    w1, w2 = rng.integers(-1, 2, (48, 32)), rng.integers(-1, 2, (32, 16))
    src = """input x: f32[2, 48]
weight w1: t2[48, 32] scale 0.5
weight w2: t2[32, 16] scale 0.25
output y: f32[2, 16]
h = tmatmul(x, w1)
h = relu2(h)
y = tmatmul(h, w2)
"""
    (y,), _ = both(src, {"x": x, "w1": w1, "w2": w2}, ["y"])
    h = np.maximum(tmatmul_ref(x, w1, 0.5), 0) ** 2
    np.testing.assert_array_equal(y, tmatmul_ref(h, w2, 0.25))


def test_embed_rmsnorm_matmul_softmax_chain():
    table, g, w = rnd(1, 12, 32), rnd(2, 32), rnd(3, 32, 24)
    ids = np.array([3, 1, 3, 7, 1], np.int32)
    src = """weight table: f32[12, 32]
input ids: i32[5]
weight g: f32[32]
weight w: f32[32, 24]
output p: f32[5, 24]
e = embed(table, ids)
n = rmsnorm(e, g)
l = matmul(n, w)
p = softmax(l)
"""
    (p,), _ = both(src, {"table": table, "ids": ids, "g": g, "w": w}, ["p"])
    e = table[ids].astype(np.float64)
    n = e / np.sqrt((e * e).mean(1, keepdims=True) + 1e-5) * g
    logits = n @ w
    sm = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(p, sm / sm.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ across sentrons
def test_collectives_and_sharding():
    x, w = rnd(1, 3, 32), rnd(2, 32, 40)
    src = """input x: f32[3, 32]
weight w: f32[32, 40]
output yc: f32[3, 40]
output yk: f32[3, 40]
output s: f32[3, 32]
output b: f32[3, 32]
yc = matmul(x, w, shard=cols)
yk = matmul(x, w, shard=k)
let me: f32 = f32(sid())
t = mul(x, me)
s = allreduce(t)
b = broadcast(t, root=1)
"""
    yc, yk, s, b = both(src, {"x": x, "w": w}, ["yc", "yk", "s", "b"], sentrons=3)[0]
    np.testing.assert_array_equal(yc, matmul_ref(x, w))
    np.testing.assert_allclose(yk, x.astype(np.float64) @ w, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(s, (x * F32(0) + x * F32(1)) + x * F32(2))
    np.testing.assert_array_equal(b, x)


# ------------------------------------------------------------------ software pipelining and loops
@settings(max_examples=3, deadline=None)
@given(st.integers(1501, 1540), st.sampled_from(["add", "sub", "mul"]), st.integers(0, 99))
def test_software_pipelined_loop(chunks, op, seed):
    """A memory-bound tiling loop at -O3 gets the two-stage modulo schedule (prologue, kernel with
    two register copies, epilogue for odd and even trip counts): bit-exact with -O0 and numpy, the
    fetch of iteration k+1 sits in the kernel block next to the compute of k, hazard-free, and it
    round-trips through the assembler."""
    n = chunks * 16 - (seed % 3)  # a partial tail chunk too
    a, b = rnd(seed, n), rnd(seed + 1, n)
    src = f"input a: f32[{n}]\ninput b: f32[{n}]\noutput y: f32[{n}]\ny = {op}(a, b)\n"
    (y,), rep = both(src, {"a": a, "b": b}, ["y"])
    ref = {"add": a + b, "sub": a - b, "mul": a * b}[op]
    np.testing.assert_array_equal(y, ref)
    assert rep["total"]["pipelined_loops"] == 1
    prog, _ = compile_phx(src, "t.phx", opt=3)
    vasm = disassemble(prog)
    assert len(assemble(vasm, "t.vasm").code) == len(prog.code)


def test_pipelined_kernel_interleaves_fetch_and_compute():
    from vtpu_cli.compiler import compile_ir

    src = "input a: f32[32000]\ninput b: f32[32000]\noutput y: f32[32000]\ny = add(a, b)\n"
    ir = compile_ir(src, "t.phx", opt=3)
    kernel = ir.split(".swp")[1].split("DLOOP")[0]
    lines = [ln.strip() for ln in kernel.splitlines()[1:] if ln.strip()]
    # compute+store of iteration 2t, then the fetch of 2t+1, ...: the first op is a compute, not a load
    assert lines[0].startswith("DADD.f32")
    assert sum(ln.startswith("SGATHER") for ln in lines) == 4  # two iterations' fetches
    assert sum(ln.startswith("SSCATTR") for ln in lines) == 2


def test_matmul_unrolls_only_when_tiny():
    """A matmul of more than tensors.GEMM_UNROLL_OPS products becomes loop nests (a short program,
    no tile tuning); a tiny one stays unrolled with a tuned-or-fallback tile. Both give numpy's bits."""
    from vtpu_cli.compiler.tensors import GEMM_UNROLL_OPS

    for (m, k, n), looped in (((24, 64, 64), True), ((2, 8, 16), False)):
        assert (m * k * ((n + 15) // 16) > GEMM_UNROLL_OPS) == looped
        x, w = rnd(3, m, k), rnd(4, k, n)
        src = f"input x: f32[{m},{k}]\nweight w: f32[{k},{n}]\noutput y: f32[{m},{n}]\ny = matmul(x, w)\n"
        (y,), rep = both(src, {"x": x, "w": w}, ["y"])
        np.testing.assert_array_equal(y, matmul_ref(x, w))
        assert (rep["total"]["loops"] >= 1) == looped
        assert bool(rep["tiles"]) != looped
        if looped:
            assert rep["total"]["siws"] < 120  # 24 x 64 x 64 unrolled was ~1,000 SIWs


# ------------------------------------------------------------------ emitted code is valid svISA
@settings(max_examples=6, deadline=None)
@given(st.integers(1, 4), st.integers(1, 20), st.integers(1, 36), st.sampled_from([0, 1, 2, 3]))
def test_emitted_siws_pass_the_assembler(m, k, n, opt):
    src = f"""input x: f32[{m},{k}]
weight w: f32[{k},{n}]
output y: f32[{m},{n}]
h = matmul(x, w)
h = silu(h)
y = softmax(h)
"""
    prog, _ = compile_phx(src, "t.phx", opt=opt)
    assert not check_hazards(prog.code)
    again = assemble(disassemble(prog), "t.vasm")  # the assembler's intra-SIW hazard rule
    assert len(again.code) == len(prog.code)


def test_spilling_keeps_semantics():
    # 40 live vectors force spills to the spill scroll
    lets = "\n".join(f"let v{i}: f32x16 = load(x, {i * 64})" for i in range(40))
    sums = " + ".join(f"v{i}" for i in range(40))
    src = f"input x: f32[640]\noutput y: f32[16]\n{lets}\nlet s: f32x16 = {sums}\nstore(y, 0, s)\n"
    x = rnd(3, 640)
    (y,), rep, _ = run(src, {"x": x}, ["y"], opt=1)
    assert rep["total"]["spills"] > 0
    ref = x[:16].copy()
    for i in range(1, 40):
        ref = (ref + x[16 * i : 16 * i + 16]).astype(F32)
    np.testing.assert_array_equal(y, ref)


# ------------------------------------------------------------------ diagnostics
def diags(src: str, sentrons: int = 1):
    with pytest.raises(DiagnosticError) as ei:
        compile_phx(src, "bad.phx", sentrons=sentrons)
    return ei.value.diagnostics


@pytest.mark.parametrize(
    "src,needle",
    [
        (
            "input x: f32[4, 8]\nweight w: f32[9, 4]\noutput y: f32[4, 4]\ny = matmul(x, w)\n",
            "shape mismatch",
        ),
        ("input x: f32[4]\noutput y: f32[5]\ny = relu(x)\n", "shape mismatch"),
        ("input x: i32[4]\noutput y: i32[4]\ny = relu(x)\n", "does not support dtype i32"),
        ("output y: f32[4]\ny = relu(q)\n", "undefined tensor `q`"),
        ("let a: i32 = 1\nlet b: f32 = 2.0\nlet c: i32 = a + b\n", "type mismatch"),
        ("let a: i32 = 1.5\n", "float literal"),
        ("input x: f32[4] @ 1.1.1/1.1.1/1.1.1000\n", "bad coordinate"),
        ("input x: f32[4] @ 995.1.1/1.1.1/1.1.1\n", "reserved library"),
        ("input x: f32[4] @ 1.1.1/1.1.1/1.1.1\ninput y: f32[4] @ 1.1.1/1.1.1/1.1.1\n", "same coordinate"),
        ("let a: i64 = b + 1\n", "undefined name `b`"),
        ("input x: f32[4] @ Q\n", "undefined coordinate"),
        ("let a: i64 = 1\nlet b: i64 = a +\n", "unexpected"),
        ("input x: f32[4]\noutput y: f32[4]\ny = frobnicate(x)\n", "unknown tensor op"),
    ],
)
def test_diagnostic_classes(src, needle):
    ds = diags(src)
    assert any(needle in d.message for d in ds), [d.message for d in ds]
    d = ds[0]
    assert d.file == "bad.phx" and d.line >= 1 and d.col >= 1 and d.source_line is not None


def test_all_errors_reported_in_one_run():
    src = """input x: f32[4, 8]
weight w: f32[9, 4]
output y: f32[4, 4]
y = matmul(x, w)
z = relu(nope)
let a: i32 = 2.5
"""
    ds = diags(src)
    assert [d.line for d in ds] == [4, 5, 6]
    caret = ds[1]
    assert caret.source_line[caret.col - 1 :].startswith("nope")


# ------------------------------------------------------------------ the cc command and examples
def test_cc_command(tmp_path, capsys):
    from vtpu_cli.binary.siwfile import read
    from vtpu_cli.compiler.driver import cc_command

    src = tmp_path / "m.phx"
    src.write_text(
        "input x: f32[2, 16]\nweight w: f32[16, 16]\noutput y: f32[2, 16]\n"
        "kernel mlp {\n  h = matmul(x, w)\n  y = relu(h)\n}\n"
    )
    assert cc_command(src, tmp_path / "m.siw", 2, "siw", 1, True, True) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [f["name"] for f in rep["functions"]] == ["main", "mlp"]
    assert read(str(tmp_path / "m.siw")).op_count() == rep["total"]["ops"]
    assert cc_command(src, tmp_path / "m.vasm", 3, "vasm", 1, False, False) == 0
    assemble((tmp_path / "m.vasm").read_text(), "m.vasm")
    assert cc_command(src, None, 1, "ir", 1, False, False) == 0
    assert "SGATHER" in capsys.readouterr().out


def test_examples_compile():
    from pathlib import Path

    from conftest import PROGRAMS

    files = sorted(Path(PROGRAMS, "phx").glob("*.phx"))
    assert files
    for f in files:
        prog, _ = compile_phx(f.read_text(), str(f), opt=2)
        assert not check_hazards(prog.code)


def test_tile_cache(tmp_path, monkeypatch):
    from vtpu_cli.compiler import tune

    monkeypatch.setenv("VTPU_CACHE_DIR", str(tmp_path))
    src = "input x: f32[3, 8]\nweight w: f32[8, 40]\noutput y: f32[3, 40]\ny = matmul(x, w)\n"
    _, rep = compile_phx(src, "t.phx", opt=3, tune=True)
    assert list(rep["tiles"].values())[0]["source"] == "tuned"
    assert tune.cache_path().exists()
    _, rep = compile_phx(src, "t.phx", opt=3, tune=True)
    assert list(rep["tiles"].values())[0]["source"] == "cache"


def test_a_failed_declaration_does_not_cascade():
    src = (
        "input x: f32[1, D] @ 1.1.1/1.1.1/1.1.1\n"
        "output y: f32[1, 16] @ 1.1.1/1.1.1/1.1.2\n"
        "y = relu(x)\n"
        "let a: f32 = load(x, 0)\n"
        "let b: f32 = load(q, 0)\n"
    )
    with pytest.raises(DiagnosticError) as ei:
        compile_phx(src, "c.phx")
    msgs = [(d.line, d.message) for d in ei.value.diagnostics]
    assert msgs[0] == (1, "`D` is not a constant")
    assert all("`x`" not in m for _, m in msgs)  # uses of the failed tensor stay silent
    assert any(line == 5 and "`q`" in m for line, m in msgs)  # a genuinely undefined name still reports


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_shift_operators_parse_and_shift(engine, tmp_path):
    """`<<` and `>>` once lexed as the comparison `<`/`>`; `>>` is arithmetic (keeps the sign)."""
    src = tmp_path / "sh.phx"
    src.write_text(
        "output r: i32[16] @ 1.1.1/1.1.1/1.1.1\nkernel k {\n  let a: i64 = 3\n"
        "  let b: i64 = (a << 4) + (256 >> 2) - (-64 >> 3)\n  store(r, 0, bcast(i32(b)))\n}\n"
    )
    p = subprocess.run(
        [sys.executable, "-m", "vtpu_cli.cli.main", "run", str(src), "--engine", engine, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["outputs"][0]["value"] == [48 + 64 + 8] * 16


def test_report_gives_each_kernels_density_bound():
    """``pipe_ops`` counts the non-NOP ops of each pipe in the kernel's SIWs (read back from the code)
    and ``density_bound`` is ops over the busiest pipe's: never below the density reached."""
    from vtpu_cli.compiler.driver import BY_NAME, NOP_NAMES

    src = """input x: f32[8, 64]
weight w: f32[64, 64]
output y: f32[8, 64]
output z: f32[8, 64]
kernel mm { y = matmul(x, w) }
kernel act { z = relu(y) }
"""
    prog, rep = compile_phx(src, "t.phx", opt=2)
    nops = [BY_NAME[n] for n in NOP_NAMES]
    total = [sum(1 for siw in prog.code if siw[j].op is not nops[j]) for j in range(3)]
    assert rep["total"]["pipe_ops"] == total and sum(total) == rep["total"]["ops"]
    assert rep["total"]["density_bound"] == round(rep["total"]["ops"] / max(total), 3)
    for f in rep["functions"]:
        assert sum(f["pipe_ops"]) == f["ops"]
        if f["siws"]:
            assert f["density"] <= f["density_bound"] <= 3
    assert [sum(f["pipe_ops"][j] for f in rep["functions"]) for j in range(3)] == total
