"""Column slices of several rows read and written in place by matmul and matmul_nt (rows ``pitch``
bytes apart), and column concats of several rows whose parts are made in the result's columns: the
same bits as the copying forms on the interpreter (-O0, -O3) and the JIT, numpy's values, and the
copies' loads and stores gone (docs/phx.md, "Tensor views")."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_phx_scale import attend_ref, rope_ref
from test_phx_views import SETTINGS, execute, run_program

import vtpu_cli.compiler.driver as driver
import vtpu_cli.compiler.views as views
from vtpu_cli.compiler import bind_inputs, compile_phx
from vtpu_cli.engines.interp.interpreter import Interpreter

F32 = np.float32
ENGINES = [(0, "interp"), (3, "interp"), (2, "jit")]


def rnd(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(F32)


def _compile(src: str, opt: int, in_place: bool, force_loops: bool = False, sentrons: int = 1):
    """Compiled with column slices and concats in place, or (``in_place=False``) with the copies."""
    if in_place:
        return compile_phx(src, "t.phx", opt=opt, force_loops=force_loops, sentrons=sentrons)[0]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(views, "PITCHED", views.ELEMENTWISE)  # matmul operands materialised
        mp.setattr(driver, "plan_concats", lambda tree, sentrons: None)
        return compile_phx(src, "t.phx", opt=opt, force_loops=force_loops, sentrons=sentrons)[0]


def _mem_ops(prog) -> int:
    return sum(1 for siw in prog.code for i in siw if i.op.name in ("SGATHER", "SSCATTR"))


def _executed_s_ops(prog, inputs, engine: str = "interp", tmp=None) -> int:
    """S-pipe ops executed (the loads and stores that ran, loops counted per trip): the interpreter's
    count, or the JIT's from the native code's per-block counters."""
    res = execute(prog, inputs, engine, tmp)
    assert res.status == "ok"
    return res.ops_by_pipe.get("S", 0)


def both(src, inputs, outs, tmp, force_loops=False, engines=ENGINES):
    """Outputs (in place == copied on every engine, bit for bit) and the S-pipe ops executed at -O0
    (in place, copied)."""
    got, mem = [], None
    for opt, eng in engines:
        a = _compile(src, opt, True, force_loops)
        c = _compile(src, opt, False, force_loops)
        if mem is None:
            mem = (_executed_s_ops(a, inputs), _executed_s_ops(c, inputs))
        got.append(run_program(a, inputs, outs, eng, tmp))
        got.append(run_program(c, inputs, outs, eng, tmp))
    for g in got[1:]:
        for o in outs:
            np.testing.assert_array_equal(g[o], got[0][o])
    return got[0], mem


@SETTINGS
@given(
    m=st.integers(1, 9),
    k=st.integers(1, 40),
    n=st.integers(1, 40),
    pad=st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)),
    which=st.sampled_from(["x", "w", "both"]),
    nt=st.booleans(),
    loops=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_matmul_reads_column_slices_in_place(tmp_path, m, k, n, pad, which, nt, loops, seed):
    """``matmul(slice(X, s, K, axis=1), slice(W, t, N, axis=1))`` (and ``matmul_nt``, whose w rows are
    its columns): either operand a column slice of a wider tensor, unrolled or in loops."""
    xl, xr, wl, wr = pad
    xs = which in ("x", "both") and xl + xr > 0
    ws = which in ("w", "both") and wl + wr > 0
    wrows, wcols = (n, k) if nt else (k, n)
    xshape = (m, xl + k + xr) if xs else (m, k)
    wshape = (wrows, wl + wcols + wr) if ws else (wrows, wcols)
    xa = f"slice(x, {xl}, {k}, axis=1)" if xs else "x"
    wa = f"slice(w, {wl}, {wcols}, axis=1)" if ws else "w"
    op = "matmul_nt" if nt else "matmul"
    src = (
        f"input x: f32[{xshape[0]}, {xshape[1]}]\ninput w: f32[{wshape[0]}, {wshape[1]}]\n"
        f"output y: f32[{m}, {n}]\ny = {op}({xa}, {wa})\n"
    )
    x, w = rnd(seed, *xshape), rnd(seed + 1, *wshape)
    got, (placed, copied) = both(src, {"x": x, "w": w}, ["y"], str(tmp_path), force_loops=loops)
    xv = x[:, xl : xl + k] if xs else x
    wv = w[:, wl : wl + wcols] if ws else w
    want = xv.astype(np.float64) @ (wv.T if nt else wv).astype(np.float64)
    np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-4)
    if (xs and m > 1) or (ws and wrows > 1):  # (a slice of one row is contiguous: a view either way)
        assert placed < copied  # the operand copies' loads and stores are gone


@SETTINGS
@given(
    m=st.integers(2, 9),
    c=st.integers(2, 80),
    data=st.data(),
    op=st.sampled_from(["softmax", "rmsnorm"]),
    loops=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_row_ops_read_column_slices_in_place(tmp_path, m, c, data, op, loops, seed):
    """``softmax(slice(x, s, n, axis=1))`` and ``rmsnorm(slice(...), g)`` read the columns in place."""
    n = data.draw(st.integers(1, c))
    s0 = data.draw(st.integers(0, c - n))
    arg = f"slice(x, {s0}, {n}, axis=1)"
    expr = f"softmax({arg})" if op == "softmax" else f"rmsnorm({arg}, g)"
    src = f"input x: f32[{m}, {c}]\ninput g: f32[{n}]\noutput y: f32[{m}, {n}]\ny = {expr}\n"
    x, g = rnd(seed, m, c), rnd(seed + 1, n)
    got, (placed, copied) = both(src, {"x": x, "g": g}, ["y"], str(tmp_path), force_loops=loops)
    xv = x[:, s0 : s0 + n].astype(np.float64)
    if op == "softmax":
        e = np.exp(xv - xv.max(axis=1, keepdims=True))
        want = e / e.sum(axis=1, keepdims=True)
    else:
        want = xv / np.sqrt((xv * xv).mean(axis=1, keepdims=True) + 1e-5) * g
    np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-5)
    if n < c:
        assert placed < copied


@st.composite
def column_concat(draw):
    nparts = draw(st.integers(2, 4))
    m = draw(st.integers(2, 9))
    widths = [draw(st.integers(1, 24)) for _ in range(nparts)]
    kinds = [
        draw(st.sampled_from(["matmul", "matmul_nt", "add", "relu", "softmax", "rmsnorm"]))
        for _ in range(nparts)
    ]
    k, loops, declared = draw(st.integers(1, 24)), draw(st.booleans()), draw(st.booleans())
    return m, widths, kinds, k, loops, declared, draw(st.integers(0, 2**16))


@SETTINGS
@given(case=column_concat())
def test_column_concat_parts_are_made_in_place(tmp_path, case):
    """``y = concat(p0, p1, ..., axis=1)`` of several rows into a declared result or a new name: each
    part is made by its op straight into the result's columns (matmul, matmul_nt, softmax, rmsnorm and element-wise ops write
    rows apart)."""
    m, widths, kinds, k, loops, declared, seed = case
    total = sum(widths)
    lines = [f"input x: f32[{m}, {k}]", f"output y: f32[{m}, {total}]"]
    inputs = {"x": rnd(seed, m, k)}
    want = []
    x64 = inputs["x"].astype(np.float64)
    for i, (wd, kind) in enumerate(zip(widths, kinds, strict=True)):
        if kind == "matmul":
            lines.insert(1, f"input w{i}: f32[{k}, {wd}]")
            inputs[f"w{i}"] = rnd(seed + 1 + i, k, wd)
            want.append(x64 @ inputs[f"w{i}"].astype(np.float64))
        elif kind == "matmul_nt":
            lines.insert(1, f"input w{i}: f32[{wd}, {k}]")
            inputs[f"w{i}"] = rnd(seed + 1 + i, wd, k)
            want.append(x64 @ inputs[f"w{i}"].astype(np.float64).T)
        else:
            lines.insert(1, f"input w{i}: f32[{m}, {wd}]")
            inputs[f"w{i}"] = rnd(seed + 1 + i, m, wd)
            w64 = inputs[f"w{i}"].astype(np.float64)
            if kind == "softmax":
                e = np.exp(w64 - w64.max(axis=1, keepdims=True))
                want.append(e / e.sum(axis=1, keepdims=True))
            elif kind == "rmsnorm":
                lines.insert(1, f"input g{i}: f32[{wd}]")
                inputs[f"g{i}"] = rnd(seed + 7 + i, wd)
                want.append(w64 / np.sqrt((w64 * w64).mean(axis=1, keepdims=True) + 1e-5) * inputs[f"g{i}"])
            else:
                want.append(w64 + 1.0 if kind == "add" else np.maximum(w64, 0.0))
    for i, kind in enumerate(kinds):
        expr = {
            "matmul": f"matmul(x, w{i})",
            "matmul_nt": f"matmul_nt(x, w{i})",
            "add": f"add(w{i}, 1.0)",
            "relu": f"relu(w{i})",
            "softmax": f"softmax(w{i})",
            "rmsnorm": f"rmsnorm(w{i}, g{i})",
        }[kind]
        lines.append(f"p{i} = {expr}")
    parts = ", ".join(f"p{i}" for i in range(len(kinds)))
    if declared:
        lines.append(f"y = concat({parts}, axis=1)")
    else:  # a new name: its row length is found by a first lowering (driver._front), then placed
        lines += [f"c = concat({parts}, axis=1)", "y = copy(c)"]
    src = "\n".join(lines) + "\n"
    got, (placed, copied) = both(src, inputs, ["y"], str(tmp_path), force_loops=loops)
    np.testing.assert_allclose(got["y"], np.concatenate(want, axis=1), rtol=1e-4, atol=1e-4)
    assert placed < copied  # the concat's loads and stores are gone


MHA = """const T = {t}
const H = {h}
const HD = {hd}
const D = {d}
input x: f32[T, D]
weight wq: f32[D, D]
weight wk: f32[D, D]
weight wv: f32[D, D]
output attn: f32[T, D]
q = matmul(x, wq)
k = matmul(x, wk)
v = matmul(x, wv)
{heads}
attn = concat({outs}, axis=1)
"""

HEAD = """s{i} = matmul_nt(slice(q, {o}, HD, axis=1), slice(k, {o}, HD, axis=1))
s{i} = mul(s{i}, {scale})
p{i} = softmax(s{i})
o{i} = matmul(p{i}, slice(v, {o}, HD, axis=1))"""


def mha_src(t: int, h: int, hd: int) -> str:
    d = h * hd
    heads = "\n".join(HEAD.format(i=i, o=i * hd, scale=repr(float(1 / np.sqrt(hd)))) for i in range(h))
    return MHA.format(t=t, h=h, hd=hd, d=d, heads=heads, outs=", ".join(f"o{i}" for i in range(h)))


def mha_ref(x, wq, wk, wv, h, hd):
    x64 = x.astype(np.float64)
    q, k, v = (x64 @ w.astype(np.float64) for w in (wq, wk, wv))
    out = []
    for i in range(h):
        sl = slice(i * hd, (i + 1) * hd)
        s = q[:, sl] @ k[:, sl].T * (1 / np.sqrt(hd))
        p = np.exp(s - s.max(axis=1, keepdims=True))
        out.append((p / p.sum(axis=1, keepdims=True)) @ v[:, sl])
    return np.concatenate(out, axis=1)


def test_attention_written_by_hand_copies_no_head(tmp_path):
    """Multi-head attention written with per-head column slices and a column concat: no head's q, k or v
    is copied and no head output is copied into the result; same bits as the copying form."""
    t, h, hd = 6, 4, 8
    src = mha_src(t, h, hd)
    d = h * hd
    x, wq, wk, wv = (rnd(s, *shp) for s, shp in ((1, (t, d)), (2, (d, d)), (3, (d, d)), (4, (d, d))))
    inputs = {"x": x, "wq": wq, "wk": wk, "wv": wv}
    got, (placed, copied) = both(src, inputs, ["attn"], str(tmp_path))
    np.testing.assert_allclose(got["attn"], mha_ref(x, wq, wk, wv, h, hd), rtol=1e-4, atol=1e-5)
    # each head's q, k and v copy (T rows of one 32-byte piece: a load and a store each) and its share
    # of the concat's copy are gone
    assert copied - placed >= h * 4 * t * 2


def test_attention_written_by_hand_at_prefill_size_on_the_jit(tmp_path):
    """The same at a prefill's size (128 tokens, 8 heads of 64): loops, natively, against numpy."""
    t, h, hd = 128, 8, 64
    src = mha_src(t, h, hd)
    d = h * hd
    x, wq, wk, wv = (
        rnd(s, *shp) * F32(0.1) for s, shp in ((1, (t, d)), (2, (d, d)), (3, (d, d)), (4, (d, d)))
    )
    inputs = {"x": x, "wq": wq, "wk": wk, "wv": wv}
    prog = _compile(src, 2, True)
    got = run_program(prog, inputs, ["attn"], "jit", str(tmp_path))
    np.testing.assert_allclose(got["attn"], mha_ref(x, wq, wk, wv, h, hd), rtol=1e-3, atol=1e-4)
    tmp = str(tmp_path)
    placed = _executed_s_ops(prog, inputs, "jit", tmp)
    copied = _executed_s_ops(_compile(src, 2, False), inputs, "jit", tmp)
    # per head: q, k and v slices (3 x 128 rows of one 256-byte row: 4 loads + 4 stores each) and the
    # head's share of the concat (the same again) are no longer copied
    assert copied - placed >= h * 4 * t * 8, (placed, copied)


def test_a_part_read_by_an_op_that_reads_whole_rows(tmp_path):
    """A part placed in the result's columns and also read by other ops (softmax, rmsnorm and quant read
    it in place): every value as with the copying concat."""
    src = """input x: f32[5, 12]
input w: f32[12, 20]
input g: f32[20]
output y: f32[5, 32]
output r: f32[5, 20]
output s: f32[5, 20]
a = matmul(x, w)
b = relu(x)
r = rmsnorm(a, g)
s = softmax(a)
q, qs = quant(a)
y = concat(a, b, axis=1)
"""
    x, w, g = rnd(1, 5, 12), rnd(2, 12, 20), rnd(3, 20)
    got, (placed, copied) = both(src, {"x": x, "w": w, "g": g}, ["y", "r", "s"], str(tmp_path))
    a = x.astype(np.float64) @ w.astype(np.float64)
    np.testing.assert_allclose(got["y"], np.concatenate([a, np.maximum(x, 0)], axis=1), rtol=1e-5, atol=1e-5)
    e = np.exp(a - a.max(axis=1, keepdims=True))
    np.testing.assert_allclose(got["s"], e / e.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)


def test_parts_of_one_result_read_each_other(tmp_path):
    """``b = add(a, 1.0)`` with a and b both columns of y: disjoint columns of one tensor, not an
    overlapping view (and ``c = matmul(b, w)`` reading one part while writing another)."""
    src = """input x: f32[4, 8]
input w: f32[8, 8]
output y: f32[4, 24]
a = relu(x)
b = add(a, 1.0)
c = matmul(b, w)
y = concat(a, b, c, axis=1)
"""
    x, w = rnd(5, 4, 8), rnd(6, 8, 8)
    got, (placed, copied) = both(src, {"x": x, "w": w}, ["y"], str(tmp_path))
    a = np.maximum(x, 0)
    b = a + F32(1)
    np.testing.assert_allclose(got["y"], np.concatenate([a, b, b @ w], axis=1), rtol=1e-5, atol=1e-5)
    assert placed < copied


def test_sharded_matmul_of_a_column_slice(tmp_path):
    """``shard=cols`` on 2 sentrons reads a dense copy of a column-slice operand: the same values."""
    from vtpu_cli.compiler import read_output

    src = "input x: f32[4, 40]\ninput w: f32[16, 64]\noutput y: f32[4, 64]\n"
    src += "y = matmul(slice(x, 8, 16, axis=1), w, shard=cols)\n"
    x, w = rnd(7, 4, 40), rnd(8, 16, 64)
    prog = compile_phx(src, "t.phx", opt=2, sentrons=2, force_loops=True)[0]
    bind_inputs(prog, {"x": x, "w": w})
    res = Interpreter(prog, 2).run()
    assert res.status == "ok"
    want = x[:, 8:24].astype(np.float64) @ w.astype(np.float64)
    np.testing.assert_allclose(read_output(prog, res, "y"), want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- column slices bound to a name
def _compile_bound(src: str, opt: int, views_on: bool):
    if views_on:
        return compile_phx(src, "t.phx", opt=opt)[0]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(driver, "plan_column_views", lambda *a: None)
        return compile_phx(src, "t.phx", opt=opt)[0]


def bound_both(src, inputs, outs, tmp):
    """Outputs (bound views == copies on every engine, bit for bit) and the S-pipe ops executed at -O0
    (views, copies)."""
    got, mem = [], None
    for opt, eng in ENGINES:
        a, c = _compile_bound(src, opt, True), _compile_bound(src, opt, False)
        if mem is None:
            mem = (_executed_s_ops(a, inputs), _executed_s_ops(c, inputs))
        got.append(run_program(a, inputs, outs, eng, tmp))
        got.append(run_program(c, inputs, outs, eng, tmp))
    for g in got[1:]:
        for o in outs:
            np.testing.assert_array_equal(g[o], got[0][o])
    return got[0], mem


def test_column_slices_bound_to_names_are_read_in_place(tmp_path):
    """``v = slice(x, s, n, axis=1)`` read only by ops that take rows apart, with nothing that could write
    x or v before the last read: no copy, the same values."""
    src = """input x: f32[6, 40]
input w: f32[8, 8]
input w2: f32[12, 8]
output y: f32[6, 8]
output z: f32[6, 8]
output s: f32[6, 8]
output t: f32[6, 12]
v = slice(x, 8, 8, axis=1)
u = slice(x, 20, 8, axis=1)
y = matmul(v, w)
z = add(v, u)
s = softmax(u)
t = matmul(v, transpose(w2))
"""
    x, w, w2 = rnd(1, 6, 40), rnd(2, 8, 8), rnd(3, 12, 8)
    got, (views_, copies) = bound_both(src, {"x": x, "w": w, "w2": w2}, ["y", "z", "s", "t"], str(tmp_path))
    v, u = x[:, 8:16], x[:, 20:28]
    np.testing.assert_array_equal(got["z"], v + u)
    np.testing.assert_allclose(got["y"], v.astype(np.float64) @ w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["t"], v.astype(np.float64) @ w2.T, rtol=1e-5, atol=1e-5)
    # the two copies (a load and a store per row each) are gone; the add then reads its rows one by one
    # (two loads and a store per 32-byte row instead of per 64-byte piece), so the net saving is smaller
    assert views_ < copies


KEEP_THE_COPY = {
    "x written after the binding": ("v = slice(x, 2, 4, axis=1)\nx = add(x, 1.0)\ny = add(v, 0.0)\n", None),
    "v written after the binding": ("v = slice(x, 2, 4, axis=1)\nv = add(v, 1.0)\ny = add(v, 0.0)\n", None),
    "read by an op that takes dense rows": (
        "v = slice(x, 2, 4, axis=1)\nq = allreduce(v)\ny = add(v, 0.0)\n",
        None,
    ),
    "read in a loop": ("v = slice(x, 2, 4, axis=1)\nfor i in 0..2 {\n  y = add(v, 0.0)\n}\n", None),
    "a view of it bound": ("v = slice(x, 2, 4, axis=1)\nr = slice(v, 0, 2)\ny = add(v, 0.0)\n", None),
    "x written between two reads": (
        "v = slice(x, 2, 4, axis=1)\ny = add(v, 0.0)\nx = add(x, 1.0)\ny = add(v, 0.0)\n",
        None,
    ),
    "x written through a row view": (
        "r = slice(x, 0, 1)\nv = slice(x, 2, 4, axis=1)\nr = add(r, 1.0)\ny = add(v, 0.0)\n",
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(KEEP_THE_COPY))
def test_bound_column_slices_that_keep_their_copy(tmp_path, name):
    """Where a view could be told from the copy (or cannot be proven not to be), the copy stays."""
    body, _ = KEEP_THE_COPY[name]
    decl = "tensor x: f32[5, 8]\n" if "x written" in name else "input x: f32[5, 8]\n"
    src = decl + "input x2: f32[5, 4]\noutput y: f32[5, 4]\n"
    if "x written" in name:
        src = "input x0: f32[5, 8]\n" + src + "x = copy(x0)\n"
    src += body
    x = rnd(4, 5, 8)
    inputs = {"x0" if "x written" in name else "x": x, "x2": rnd(5, 5, 4)}
    got, (views_, copies) = bound_both(src, inputs, ["y"], str(tmp_path))
    assert views_ == copies  # the same program
    want = x[:, 2:6] + (F32(1) if name.startswith("v written") else F32(0))
    np.testing.assert_array_equal(got["y"], want)


def test_attention_with_named_head_slices_copies_no_head(tmp_path):
    """Per-head q, k and v bound to names (``qh = slice(q, h*HD, HD, axis=1)``): no copies either."""
    t, h, hd = 6, 4, 8
    named = mha_src(t, h, hd)
    for i in range(h):
        o = i * hd
        named = named.replace(
            f"s{i} = matmul_nt(slice(q, {o}, HD, axis=1), slice(k, {o}, HD, axis=1))",
            f"q{i} = slice(q, {o}, HD, axis=1)\nk{i} = slice(k, {o}, HD, axis=1)\n"
            f"v{i} = slice(v, {o}, HD, axis=1)\ns{i} = matmul_nt(q{i}, k{i})",
        ).replace(f"o{i} = matmul(p{i}, slice(v, {o}, HD, axis=1))", f"o{i} = matmul(p{i}, v{i})")
    assert named.count("= slice(") == 3 * h
    d = h * hd
    x, wq, wk, wv = (rnd(s, *shp) for s, shp in ((1, (t, d)), (2, (d, d)), (3, (d, d)), (4, (d, d))))
    inputs = {"x": x, "wq": wq, "wk": wk, "wv": wv}
    got, (views_, copies) = bound_both(named, inputs, ["attn"], str(tmp_path))
    np.testing.assert_allclose(got["attn"], mha_ref(x, wq, wk, wv, h, hd), rtol=1e-4, atol=1e-5)
    assert copies - views_ >= h * 3 * t * 2
    inline = _executed_s_ops(_compile(mha_src(t, h, hd), 0, True), inputs)
    assert views_ == inline  # the named form runs the same loads and stores as the inline one


def _at_each_start(prog, x, w, n, starts, elementwise, product: str, engine: str, tmp: str) -> None:
    """Run ``prog`` with the slice start ``p`` at each of ``starts`` ((start, in range?)): a start out
    of range faults; else output ``elementwise[0]`` is ``elementwise[1](x[:, p:p+n])`` exactly and
    output ``product`` that slice times w."""
    from vtpu_cli.compiler import read_output

    for pos, ok in starts:
        res = execute(prog, {"x": x, "w": w, "p": np.array([pos], np.int32)}, engine, tmp)
        assert (res.status == "ok") == ok, (pos, res.status)
        if ok:
            v = x[:, pos : pos + n]
            np.testing.assert_array_equal(read_output(prog, res, elementwise[0]), elementwise[1](v))
            want = v.astype(np.float64) @ w
            np.testing.assert_allclose(read_output(prog, res, product), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_a_column_slice_at_a_runtime_start_is_read_in_place(tmp_path, engine):
    """``slice(x, pos, n, axis=1)`` with ``pos`` known at run time, read in place by an element-wise op
    and by matmul: the values of numpy's slice at every start, and a fault for a start out of range."""
    src = """input x: f32[7, 40]
input w: f32[9, 5]
input p: i32[1]
output y: f32[7, 9]
output z: f32[7, 5]
let p32: i32 = load(p, 0)
let pos: i64 = i64(p32)
y = mul(slice(x, pos, 9, axis=1), 2.0)
z = matmul(slice(x, pos, 9, axis=1), w)
"""
    prog, _ = compile_phx(src, "t.phx", opt=3)
    x, w = rnd(1, 7, 40), rnd(2, 9, 5)
    starts = ((0, True), (13, True), (31, True), (32, False), (-1, False))
    _at_each_start(prog, x, w, 9, starts, ("y", lambda v: v * F32(2)), "z", engine, str(tmp_path))
    # the element-wise op alone: in place against every column slice copied first (PITCHED empty)
    one = src.replace("z = matmul(slice(x, pos, 9, axis=1), w)\n", "").replace("output z: f32[7, 5]\n", "")
    inputs = {"x": x, "w": w, "p": np.array([13], np.int32)}
    in_place = _executed_s_ops(compile_phx(one, "t.phx", opt=3)[0], inputs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(views, "PITCHED", ())
        copied = _executed_s_ops(compile_phx(one, "t.phx", opt=3)[0], inputs)
    assert in_place < copied, (in_place, copied)


@pytest.mark.parametrize("shard", ["", ", shard=k"])
def test_gemv_reads_a_column_slice_of_the_weights_in_place(tmp_path, shard):
    """M = 1 with more than 128 output columns (the streaming GEMV form) of a weight that is a column
    slice of a wider matrix (and the same sharded over k on one sentron)."""
    src = "input x: f32[1, 24]\ninput w: f32[24, 260]\noutput y: f32[1, 200]\n"
    src += f"y = matmul(x, slice(w, 5, 200, axis=1){shard})\n"
    x, w = rnd(1, 1, 24), rnd(2, 24, 260)
    got, (placed, copied) = both(src, {"x": x, "w": w}, ["y"], str(tmp_path), force_loops=True)
    np.testing.assert_allclose(got["y"], x.astype(np.float64) @ w[:, 5:205], rtol=1e-5, atol=1e-5)
    assert placed < copied


@SETTINGS
@given(
    m=st.integers(1, 20),
    k=st.integers(1, 30),
    n=st.sampled_from([1, 7, 16, 40, 200]),
    nt=st.booleans(),
    loops=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_matmul_reads_a_transposed_first_operand_in_place(tmp_path, m, k, n, nt, loops, seed):
    """``matmul(transpose(a), w)``: x's row r is a's column r, read element by element where it lies
    (the kernels broadcast each x element anyway); with ``transpose(w)`` too it is a matmul_nt, whose
    first operand is then copied. Same bits as the copying form, numpy's values."""
    wshape = (n, k) if nt else (k, n)
    wa = "transpose(w)" if nt else "w"
    src = (
        f"input a: f32[{k}, {m}]\ninput w: f32[{wshape[0]}, {wshape[1]}]\noutput y: f32[{m}, {n}]\n"
        f"y = matmul(transpose(a), {wa})\n"
    )
    a, w = rnd(seed, k, m), rnd(seed + 1, *wshape)
    got, (placed, copied) = both(src, {"a": a, "w": w}, ["y"], str(tmp_path), force_loops=loops)
    want = a.T.astype(np.float64) @ (w.T if nt else w).astype(np.float64)
    np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-4)
    if not nt and m > 1 and k > 1:
        assert placed < copied  # the transpose's gathers and stores are gone


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_a_bound_column_slice_at_a_runtime_start(tmp_path, engine):
    """``v = slice(x, pos, n, axis=1)`` bound to a name with ``pos`` known at run time: a view (the start
    is taken when it is made, like the copy's), the values at every start, a fault out of range."""
    src = """input x: f32[6, 30]
input w: f32[8, 3]
input p: i32[1]
output y: f32[6, 3]
output z: f32[6, 8]
let p32: i32 = load(p, 0)
let pos: i64 = i64(p32)
v = slice(x, pos, 8, axis=1)
y = matmul(v, w)
z = add(v, v)
"""
    prog = compile_phx(src, "t.phx", opt=2)[0]
    copied = _compile_bound(src, 2, False)
    x, w = rnd(1, 6, 30), rnd(2, 8, 3)
    inputs = {"x": x, "w": w, "p": np.array([5], np.int32)}
    assert _executed_s_ops(prog, inputs) < _executed_s_ops(copied, inputs)
    starts = ((0, True), (5, True), (22, True), (23, False), (-2, False))
    _at_each_start(prog, x, w, 8, starts, ("z", lambda v: v + v), "y", engine, str(tmp_path))


def _tmatmul_ref(x, w, scale):
    """Per-token int8 absmax quantisation (round half to even), exact integer dot, then the scales."""
    am = np.maximum(np.abs(x).max(axis=1, keepdims=True), F32(1e-30)).astype(F32)
    q = np.rint(x * (F32(127) / am)).astype(np.int64)
    return q @ w.astype(np.int64), am / F32(127) * F32(scale)


@SETTINGS
@given(
    m=st.integers(1, 9),
    k=st.integers(1, 70),
    n=st.integers(1, 40),
    pad=st.tuples(st.integers(0, 20), st.integers(0, 20)),
    loops=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_tmatmul_reads_a_column_slice_in_place(tmp_path, m, k, n, pad, loops, seed):
    """``tmatmul(slice(X, s, K, axis=1), w)``: the rows are quantised where they lie (unrolled or in
    loops); the same bits as the copying form."""
    left, right = pad
    src = (
        f"input x: f32[{m}, {left + k + right}]\nweight w: t2[{k}, {n}] scale 0.5\noutput y: f32[{m}, {n}]\n"
        f"y = tmatmul(slice(x, {left}, {k}, axis=1), w)\n"
    )
    x = rnd(seed, m, left + k + right)
    w = np.random.default_rng(seed).integers(-1, 2, (k, n))
    got, (placed, copied) = both(src, {"x": x, "w": w}, ["y"], str(tmp_path), force_loops=loops)
    dots, scales = _tmatmul_ref(x[:, left : left + k], w, 0.5)
    np.testing.assert_allclose(got["y"], dots * scales, rtol=1e-5, atol=1e-5)
    if m > 1 and left + right > 0:
        assert placed < copied


def test_tmatmul_residual_that_is_a_placed_part(tmp_path):
    """A part placed in a column concat's result, used as a tmatmul's ``add=`` residual and as its input
    (both read in place, rows apart)."""
    src = """input x: f32[4, 32]
weight w: t2[32, 32] scale 0.25
output y: f32[4, 64]
output r: f32[4, 32]
a = relu(x)
b = mul(x, 2.0)
r = tmatmul(a, w, add=a)
y = concat(a, b, axis=1)
"""
    x = rnd(3, 4, 32)
    w = np.random.default_rng(3).integers(-1, 2, (32, 32))
    got, (placed, copied) = both(src, {"x": x, "w": w}, ["y", "r"], str(tmp_path), force_loops=True)
    a = np.maximum(x, F32(0))
    np.testing.assert_array_equal(got["y"], np.concatenate([a, x * F32(2)], axis=1))
    dots, scales = _tmatmul_ref(a, w, 0.25)
    np.testing.assert_allclose(got["r"], dots * scales + a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm", ["", ", norm=g"])
@pytest.mark.parametrize("loops", [False, True])
def test_quant_reads_a_column_slice_in_place(tmp_path, norm, loops):
    """``q, s = quant(slice(x, 5, 70, axis=1)[, norm=g])``: rows quantised where they lie."""
    src = "input x: f32[5, 90]\ninput g: f32[70]\noutput q: i8[5, 70]\noutput s: f32[5]\n"
    src += f"q, s = quant(slice(x, 5, 70, axis=1){norm})\n"
    x, g = rnd(4, 5, 90), rnd(5, 70)
    got, (placed, copied) = both(src, {"x": x, "g": g}, ["q", "s"], str(tmp_path), force_loops=loops)
    v = x[:, 5:75].astype(np.float64)
    if norm:
        v = (v / np.sqrt((v * v).mean(axis=1, keepdims=True) + 1e-5) * g).astype(F32).astype(np.float64)
    am = np.maximum(np.abs(v).max(axis=1), 1e-30)
    np.testing.assert_allclose(got["s"], am / 127, rtol=1e-5)
    assert np.abs(got["q"].astype(np.int64) - np.rint(v * (127 / am[:, None]))).max() <= 1
    assert placed < copied


def test_quant_sharded_by_rows_reads_a_dense_copy():
    """``shard=rows`` on 2 sentrons takes a dense copy of a column-slice input: the one-sentron values."""
    from vtpu_cli.compiler import read_output

    src = "input x: f32[6, 40]\noutput q: i8[6, 32]\noutput s: f32[6]\n"
    src += "q, s = quant(slice(x, 4, 32, axis=1), shard=rows)\n"
    x = rnd(6, 6, 40)
    outs = {}
    for n in (1, 2):
        prog = compile_phx(src, "t.phx", opt=2, sentrons=n)[0]
        bind_inputs(prog, {"x": x})
        res = Interpreter(prog, n).run()
        assert res.status == "ok"
        outs[n] = [read_output(prog, res, o) for o in ("q", "s")]
    for a, b in zip(outs[1], outs[2], strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_report_says_where_views_still_copy(tmp_path, capsys):
    """``report["copies"]`` (and ``vtpu cc --report``'s notes) list each statement that still copies --
    the line, why, and the bytes per execution -- and nothing for the forms read in place."""
    src = """input x: f32[8, 32]
input w: f32[16, 16]
output y: f32[8, 16]
output z: f32[8, 16]
output s: f32[16, 16]
y = matmul(slice(x, 0, 16, axis=1), w)
z = allreduce(slice(x, 16, 16, axis=1))
s = transpose(w)
"""
    rep = compile_phx(src, "t.phx", opt=2)[1]
    assert rep["copies"] == [
        {"line": 7, "what": "column slice of `x` copied", "bytes": 512},
        {"line": 8, "what": "transpose of `w` materialised", "bytes": 1024},
    ]
    assert compile_phx(mha_src(6, 4, 8), "m.phx", opt=2)[1]["copies"] == []
    from vtpu_cli.cli.main import cli

    f = tmp_path / "c.phx"
    f.write_text(src)
    assert cli(["cc", str(f), "--report", "-o", str(tmp_path / "c.siw")]) == 0
    out = capsys.readouterr().out  # (one line per note: grep-able like a diagnostic)
    assert f"{f}:7: note: column slice of `x` copied (512 bytes)" in out


def test_a_column_concat_of_twenty_parts_that_copies():
    """20 heads' outputs concatenated by columns on 2 sentrons (no placement there): the copy runs a
    row loop per part (a pointer per part live across one loop ran out of registers)."""
    from vtpu_cli.compiler import read_output

    parts = [f"p{i} = mul(x, {float(i)})" for i in range(20)]
    src = "input x: f32[40, 4]\noutput y: f32[40, 80]\n" + "\n".join(parts) + "\n"  # (40 rows: loops)
    src += f"y = concat({', '.join(f'p{i}' for i in range(20))}, axis=1)\n"
    x = rnd(9, 40, 4)
    prog = compile_phx(src, "t.phx", opt=2, sentrons=2, force_loops=True)[0]
    bind_inputs(prog, {"x": x})
    res = Interpreter(prog, 2).run()
    assert res.status == "ok"
    want = np.concatenate([x * F32(i) for i in range(20)], axis=1)
    np.testing.assert_array_equal(read_output(prog, res, "y"), want)


def _rope_rows(x, cs, pos, heads):
    """Rotary embedding of the rows of x at positions pos, pos+1, ... (``test_phx_scale.rope_ref`` per row)."""
    return np.stack([rope_ref(row, cs, pos + i, heads) for i, row in enumerate(x)])


def _attend_rows(q, kc, vc, n, heads, kvh):
    """Causal attention of the rows of q: row i of M attends to ``n - M + 1 + i`` rows (``attend_ref``)."""
    m = len(q)
    return np.stack([attend_ref(row, kc, vc, n - m + 1 + i, heads, kvh) for i, row in enumerate(q)])


@SETTINGS
@given(
    hk=st.sampled_from([(2, 1), (4, 2), (4, 4), (8, 2)]),
    hd=st.sampled_from([16, 32]),
    m=st.integers(2, 5),
    pads=st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(0, 5)),
    same_pitch=st.booleans(),
    loops=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_rope_and_attend_read_column_slices_in_place(tmp_path, hk, hd, m, pads, same_pitch, loops, seed):
    """A fused QKV projection's prefill rows: ``rope(slice(qkv, s, H*hd, axis=1), ...)`` and ``attend``
    of such a slice over K and V caches that are column slices of one tensor read the columns where
    they lie (a rope table that is a column slice too); caches whose rows are apart by different
    strides are made dense (one row stride walks both)."""
    heads, kvh = hk
    width, kvw = heads * hd, kvh * hd
    lpad, rpad, cpad = pads
    t, pos = 12, 3
    n = pos + m
    c = lpad + width + rpad
    kvcols = 2 * kvw + rpad
    vdecl = f"input vd: f32[{t}, {kvw}]\n" if not same_pitch else ""
    vexpr = f"slice(kv, {kvw}, {kvw}, axis=1)" if same_pitch else "vd"
    src = (
        f"input qkv: f32[{m}, {c}]\ninput cst: f32[{t}, {hd + cpad}]\ninput kv: f32[{t}, {kvcols}]\n{vdecl}"
        f"output r: f32[{m}, {width}]\noutput o: f32[{m}, {width}]\n"
        f"r = rope(slice(qkv, {lpad}, {width}, axis=1), slice(cst, 0, {hd}, axis=1), {pos}, heads={heads})\n"
        f"o = attend(slice(qkv, {lpad}, {width}, axis=1), slice(kv, 0, {kvw}, axis=1), {vexpr}, {n}, "
        f"heads={heads}, kv_heads={kvh})\n"
    )
    qkv, kv, vd = rnd(seed, m, c), rnd(seed + 1, t, kvcols), rnd(seed + 2, t, kvw)
    ang = np.arange(t)[:, None] * (500.0 ** (-np.arange(hd // 2) / (hd // 2)))[None, :]
    cst = np.concatenate([np.cos(ang), np.sin(ang), rnd(seed + 3, t, cpad)], 1).astype(F32)
    inputs = {"qkv": qkv, "cst": cst, "kv": kv}
    if not same_pitch:
        inputs["vd"] = vd
    got, (placed, copied) = both(src, inputs, ["r", "o"], str(tmp_path), force_loops=loops)
    q = qkv[:, lpad : lpad + width]
    np.testing.assert_array_equal(got["r"], _rope_rows(q, cst[:, :hd], pos, heads))
    vc = kv[:, kvw : 2 * kvw] if same_pitch else vd
    want = _attend_rows(q, kv[:, :kvw], vc, n, heads, kvh)
    np.testing.assert_allclose(got["o"], want, rtol=2e-5, atol=2e-6)
    assert placed < copied  # q's copies (and the table's, the caches') are gone


def test_rope_and_attend_results_are_placed_concat_parts(tmp_path):
    """``y = concat(rope(...), attend(...), axis=1)`` of prefill rows: both made in y's columns."""
    m, heads, hd, t, pos = 3, 2, 16, 8, 2
    width = heads * hd
    src = (
        f"input x: f32[{m}, {width}]\ninput cs: f32[{t}, {hd}]\ninput kc: f32[{t}, {width}]\n"
        f"input vc: f32[{t}, {width}]\noutput y: f32[{m}, {2 * width}]\n"
        f"a = rope(x, cs, {pos}, heads={heads})\n"
        f"o = attend(a, kc, vc, {pos + m}, heads={heads})\n"
        "y = concat(a, o, axis=1)\n"
    )
    x, kc, vc = rnd(1, m, width), rnd(2, t, width), rnd(3, t, width)
    ang = np.arange(t)[:, None] * (500.0 ** (-np.arange(hd // 2) / (hd // 2)))[None, :]
    cs = np.concatenate([np.cos(ang), np.sin(ang)], 1).astype(F32)
    got, (placed, copied) = both(src, {"x": x, "cs": cs, "kc": kc, "vc": vc}, ["y"], str(tmp_path))
    a = _rope_rows(x, cs, pos, heads)
    np.testing.assert_array_equal(got["y"][:, :width], a)
    np.testing.assert_allclose(
        got["y"][:, width:], _attend_rows(a, kc, vc, pos + m, heads, heads), rtol=2e-5, atol=2e-6
    )
    assert placed < copied  # no copy of a or o into y
    assert compile_phx(src, "t.phx")[1]["copies"] == []


@SETTINGS
@given(
    m=st.integers(2, 9),
    k=st.integers(1, 40),
    n=st.integers(1, 40),
    pad=st.tuples(st.integers(0, 20), st.integers(1, 20)),
    act=st.sampled_from(["", ", scale=0.5, act=relu2"]),
    loops=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_tmatmul_residual_that_is_a_column_slice(tmp_path, m, k, n, pad, act, loops, seed):
    """``tmatmul(x, w, add=slice(R, s, N, axis=1))``: the epilogue reads the residual's rows where they
    lie (its own row pointer); the same bits as the copying form, one fewer copy."""
    left, right = pad
    src = (
        f"input x: f32[{m}, {k}]\ninput r: f32[{m}, {left + n + right}]\nweight w: t2[{k}, {n}] scale 0.5\n"
        f"output y: f32[{m}, {n}]\ny = tmatmul(x, w{act}, add=slice(r, {left}, {n}, axis=1))\n"
    )
    x, r = rnd(seed, m, k), rnd(seed + 1, m, left + n + right)
    w = np.random.default_rng(seed).integers(-1, 2, (k, n))
    got, (placed, copied) = both(src, {"x": x, "w": w, "r": r}, ["y"], str(tmp_path), force_loops=loops)
    dots, scales = _tmatmul_ref(x, w, 0.5)
    p = (dots * scales).astype(F32)
    if act:
        p = np.maximum(p * F32(0.5), F32(0)) ** 2
    np.testing.assert_allclose(got["y"], p + r[:, left : left + n], rtol=1e-5, atol=1e-5)
    assert placed < copied if n >= 16 else placed <= copied  # (a row of a few bytes: a copy's cost)


def test_sharded_tmatmul_residual_that_is_a_column_slice():
    """``shard=cols`` on 2 sentrons: each sentron's epilogue reads its columns of the residual in place;
    the same bits as one sentron."""
    from vtpu_cli.compiler import read_output

    src = (
        "input x: f32[5, 48]\ninput r: f32[5, 70]\nweight w: t2[48, 40] scale 0.25\noutput y: f32[5, 40]\n"
        "y = tmatmul(x, w, shard=cols, add=slice(r, 7, 40, axis=1))\n"
    )
    x, r = rnd(4, 5, 48), rnd(5, 5, 70)
    w = np.random.default_rng(4).integers(-1, 2, (48, 40))
    got = []
    for sentrons in (1, 2):
        prog = compile_phx(src, "t.phx", opt=2, sentrons=sentrons, force_loops=True)[0]
        bind_inputs(prog, {"x": x, "w": w, "r": r})
        res = Interpreter(prog, sentrons).run()
        assert res.status == "ok"
        got.append(read_output(prog, res, "y"))
        assert compile_phx(src, "t.phx", opt=2, sentrons=sentrons)[1]["copies"] == []
    np.testing.assert_array_equal(got[0], got[1])
    dots, scales = _tmatmul_ref(x, w, 0.25)
    np.testing.assert_allclose(got[1], dots * scales + r[:, 7:47], rtol=1e-5, atol=1e-5)


@SETTINGS
@given(
    m=st.integers(2, 6),
    c=st.integers(2, 300),
    data=st.data(),
    loops=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_argmax_reads_a_column_slice_in_place(tmp_path, m, c, data, loops, seed):
    """``argmax(slice(logits, s, n, axis=1))`` (a vocabulary padded past its real size): the first
    maximum of the columns, read where they lie; unrolled and in loops."""
    n = data.draw(st.integers(1, c))
    s0 = data.draw(st.integers(0, c - n))
    src = f"input x: f32[{m}, {c}]\noutput y: i32[{m}]\ny = argmax(slice(x, {s0}, {n}, axis=1))\n"
    x = rnd(seed, m, c)
    got, (placed, copied) = both(src, {"x": x}, ["y"], str(tmp_path), force_loops=loops)
    np.testing.assert_array_equal(got["y"], np.argmax(x[:, s0 : s0 + n], axis=1))
    if n < c:
        assert placed < copied


@pytest.mark.parametrize("loops", [False, True])
def test_argmax_and_topk_of_a_column_slice_unrolled_and_in_loops(tmp_path, loops):
    """``argmax`` and ``topk`` (values and indices) of columns 5..24 of each row, read where they lie."""
    src = (
        "input x: f32[3, 40]\noutput y: i32[3]\noutput tv: f32[3, 4]\noutput ti: i32[3, 4]\n"
        "y = argmax(slice(x, 5, 20, axis=1))\ntv, ti = topk(slice(x, 5, 20, axis=1), 4)\n"
    )
    x = rnd(11, 3, 40)
    got, (placed, copied) = both(src, {"x": x}, ["y", "tv", "ti"], str(tmp_path), force_loops=loops)
    v = x[:, 5:25]
    np.testing.assert_array_equal(got["y"], np.argmax(v, axis=1))
    order = np.argsort(-v, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(got["ti"], order)
    np.testing.assert_array_equal(got["tv"], np.take_along_axis(v, order, axis=1))
    assert placed < copied


@pytest.mark.parametrize("loops", [False, True])
def test_sample_of_a_column_slice_reads_it_in_place(tmp_path, loops):
    """``sample(slice(logits, 3, 50, axis=1), seed, k=8, temp=0.7, top_p=0.9)`` (a padded vocabulary):
    the same tokens as the dense copy, on every engine, the docs' steps in numpy, and the copy gone."""
    from test_sample import sample_ref

    src = (
        "input x: f32[4, 64]\noutput y: i32[4]\n"
        "y = sample(slice(x, 3, 50, axis=1), 1234, k=8, temp=0.7, top_p=0.9)\n"
    )
    x = rnd(21, 4, 64) * F32(3.0)
    got, (placed, copied) = both(src, {"x": x}, ["y"], str(tmp_path), force_loops=loops)
    want, _ = sample_ref(x[:, 3:53], 1234, 8, 0.7, 0.9)
    np.testing.assert_array_equal(got["y"], want)
    assert placed < copied


@pytest.mark.parametrize("loops", [False, True])
@pytest.mark.parametrize("form", ["plain", "quantised", "epilogue", "residual"])
def test_tmatmul_results_are_placed_parts_of_a_column_concat(tmp_path, loops, form):
    """``qkv = concat(q, k, v, axis=1)`` of three prefill projections (4 rows): each ``tmatmul`` writes
    its rows into the result's columns -- the unrolled form, the loop form, a pre-quantised input, an
    epilogue (``scale=``, ``act=``: the product through a dense scratch, the epilogue's stores where the
    rows lie), a residual that is a column slice read in place -- and the concat copies nothing.
    Bits: the copying form on every engine; values: the reference."""
    from test_phx_scale import tmatmul_ref

    col = {"wq": 0, "wk": 48, "wv": 80}
    call = {
        "plain": "tmatmul(x, {w})",
        "quantised": "tmatmul(xq, {w}, xs)",
        "epilogue": "tmatmul(x, {w}, scale=0.5, act=relu)",
        "residual": "tmatmul(x, {w}, add=slice(r, {c}, {n}, axis=1))",
    }[form]
    widths = {"wq": 48, "wk": 32, "wv": 32}
    src = (
        "input x: f32[4, 64]\ninput r: f32[4, 112]\nweight wq: t2[64, 48]\nweight wk: t2[64, 32]\n"
        "weight wv: t2[64, 32]\noutput qkv: f32[4, 112]\n"
        + ("xq, xs = quant(x)\n" if form == "quantised" else "")
        + "".join(
            f"{p} = {call.format(w=w, c=col[w], n=widths[w])}\n"
            for p, w in (("q", "wq"), ("k", "wk"), ("v", "wv"))
        )
        + "qkv = concat(q, k, v, axis=1)\n"
    )
    rng = np.random.default_rng(5)
    x, r = rnd(12, 4, 64), rnd(13, 4, 112)
    ws = {n: rng.integers(-1, 2, (64, c)).astype(np.int8) for n, c in widths.items()}
    got, (placed, copied) = both(src, {"x": x, "r": r, **ws}, ["qkv"], str(tmp_path), force_loops=loops)
    parts = [tmatmul_ref(x, ws[n], 1.0) for n in ("wq", "wk", "wv")]
    want = np.concatenate(parts, 1)
    if form == "epilogue":
        want = np.maximum(want * F32(0.5), 0)
    elif form == "residual":
        want = r + want
    np.testing.assert_allclose(got["qkv"], want, rtol=1e-6, atol=1e-5)
    assert placed < copied


@pytest.mark.parametrize("sentrons", [2, 3])
def test_bound_column_views_on_several_sentrons(tmp_path, sentrons):
    """``v = slice(x, 8, 16, axis=1)`` read in place by ``matmul`` and ``softmax``, and a column view of
    a state tensor (rows written by sentron 0, a barrier, then read in place): the copying program's
    bits on the interpreter (race-checked) and the JIT, with fewer loads and stores."""
    from test_phx_views import run_outputs

    src = """input x: f32[6, 48]
weight w: f32[16, 24]
input kc: f32[8, 32]
tensor st: f32[8, 32] @ 3.1.1/1.1.1/1.1.1
output y: f32[6, 24]
output z: f32[6, 16]
output u: f32[8, 16]
v = slice(x, 8, 16, axis=1)
y = matmul(v, w)
z = softmax(v)
let r: i64 = 2
st[r] = slice(kc, 2, 1)
barrier()
s2 = slice(st, 16, 16, axis=1)
u = relu(s2)
"""
    rng = np.random.default_rng(sentrons)
    inputs = {"x": rnd(1, 6, 48), "w": rnd(2, 16, 24), "kc": rng.standard_normal((8, 32)).astype(F32)}
    got, s_ops = {}, {}
    for view in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            if not view:
                mp.setattr(driver, "plan_column_views", lambda *a, **k: None)
            prog = compile_phx(src, "t.phx", opt=2, sentrons=sentrons)[0]
        for eng in ("interp", "jit"):
            got[(view, eng)], res = run_outputs(prog, inputs, ["y", "z", "u"], eng, str(tmp_path), sentrons)
            if eng == "interp":
                s_ops[view] = res.ops_by_pipe["S"]
    for g in got.values():
        for a, b in zip(g, got[(False, "interp")], strict=True):
            np.testing.assert_array_equal(a, b)
    want_u = np.zeros((8, 16), F32)
    want_u[2] = np.maximum(inputs["kc"][2, 16:], 0)
    np.testing.assert_array_equal(got[(True, "interp")][2], want_u)
    assert s_ops[True] < s_ops[False]
