"""Functions that return tensors (``return e`` / ``return e0, e1``; ``y = f(...)``): inlined at the
call, the returned op writing straight into the caller's tensor, on both engines and at -O0/-O3,
against numpy and against the same program written without ``return``; and every misuse rejected with
its location (docs/phx.md, "Functions")."""

from __future__ import annotations

import numpy as np
import pytest
from test_phx_scale import diags, rms_ref, rnd, run

F32 = np.float32
ENGINES = [(0, "interp"), (3, "interp"), (2, "jit")]

LAYERS = """const L = 3
input x0: f32[2, 64]
weight wf: f32[64, 64] layers L
input g: f32[64]
input nl: i32[1]
output x: f32[2, 64]

fn block(h, w) {
  t = rmsnorm(h, g)
  u = matmul(t, w)
  return add(h, u)
}

x = copy(x0)
let c: i32 = load(nl, 0)
let n: i64 = i64(c)
for l in 0..n {
  x = block(x, wf[l])
}
"""

# the same layers written the old way: the function writes a tensor it shares with its caller
LAYERS_NO_RETURN = LAYERS.replace("  return add(h, u)\n", "  x = add(h, u)\n").replace(
    "  x = block(x, wf[l])\n", "  block(x, wf[l])\n"
)


@pytest.mark.parametrize("opt,engine", ENGINES)
def test_a_layer_function_returns_the_residual_in_a_runtime_loop(tmp_path, opt, engine):
    x0, g, wf = rnd(1, 2, 64), (1 + 0.1 * rnd(2, 64)).astype(F32), rnd(3, 3, 64, 64) * F32(0.2)
    inputs = {"x0": x0, "g": g, "wf": wf, "nl": np.array([3], np.int32)}
    (x,), _ = run(LAYERS, inputs, ["x"], opt=opt, engine=engine, tmp=str(tmp_path))
    (old,), _ = run(LAYERS_NO_RETURN, inputs, ["x"], opt=opt, engine=engine, tmp=str(tmp_path))
    assert x.tobytes() == old.tobytes()  # same ops, same bits
    h = x0.astype(np.float64)
    for w in wf:
        h = (h + rms_ref(h.astype(F32), g).astype(np.float64) @ w).astype(F32).astype(np.float64)
    np.testing.assert_allclose(x, h, rtol=1e-4, atol=1e-4)


def test_the_returned_op_writes_the_callers_tensor_without_a_copy():
    """``y = f(x)`` with ``return matmul(...)`` compiles to the code of ``y = matmul(...)`` inline."""
    from vtpu_cli.compiler import compile_phx

    head = "input x: f32[4, 32]\nweight w: f32[32, 32]\noutput y: f32[4, 32]\n"
    a, _ = compile_phx(head + "fn f(a, b) {\n  return matmul(a, b)\n}\ny = f(x, w)\n", "t.phx", opt=2)
    b, _ = compile_phx(head + "y = matmul(x, w)\n", "t.phx", opt=2)
    assert [str(i) for s in a.code for i in s] == [str(i) for s in b.code for i in s]


def test_a_target_named_like_a_parameter_is_the_callers():
    """``x = f(h, w)`` where f's first parameter is named ``x``: the result goes to the caller's ``x``,
    computed from ``h`` (the parameter), and ``h`` is left as it was."""
    src = """input h0: f32[2, 16]
weight w: f32[16, 16]
output x: f32[2, 16]
output h: f32[2, 16]

fn f(x, w) {
  t = matmul(x, w)
  return relu(t)
}

h = copy(h0)
x = copy(h0)
x = mul(x, 0.0)
x = f(h, w)
"""
    h0, w = rnd(4, 2, 16), rnd(5, 16, 16)
    (x, h), _ = run(src, {"h0": h0, "w": w}, ["x", "h"])
    np.testing.assert_array_equal(h, h0)
    np.testing.assert_allclose(x, np.maximum(h0.astype(np.float64) @ w, 0), rtol=1e-5, atol=1e-5)


def test_several_results_and_a_returned_name():
    """``q, s = f(x)`` from one two-result op; ``a, b = g(x)`` from two expressions; ``y = h(x)``
    returning a name the body computed (a copy: two calls give two tensors)."""
    src = """input x: f32[2, 32]
output a: f32[2, 32]
output b: f32[2, 32]
output q: i8[2, 32]
output s: f32[2]
output y1: f32[2, 32]
output y2: f32[2, 32]

fn two(v) {
  return add(v, v), mul(v, v)
}
fn quantise(v) {
  return quant(v)
}
fn pos(v) {
  t = relu(v)
  return t
}

a, b = two(x)
q, s = quantise(x)
y1 = pos(x)
y2 = pos(a)
"""
    x = rnd(6, 2, 32)
    (a, b, q, s, y1, y2), _ = run(src, {"x": x}, ["a", "b", "q", "s", "y1", "y2"])
    np.testing.assert_array_equal(a, x + x)
    np.testing.assert_array_equal(b, x * x)
    np.testing.assert_array_equal(y1, np.maximum(x, 0))
    np.testing.assert_array_equal(y2, np.maximum(x + x, 0))
    from vtpu_cli.compiler import compile_phx

    _, rep = compile_phx(src, "t.phx", opt=2)
    notes = [c for c in rep["copies"] if "returned tensor" in c["what"]]
    assert [(c["line"], c["bytes"]) for c in notes] == [(17, 2 * 32 * 4)]  # at `return t`, once
    am = np.abs(x).max(1)
    np.testing.assert_allclose(s, am / 127, rtol=1e-6)
    assert np.abs(q.astype(np.int64)).max() == 127


def test_returning_the_callers_own_tensor_is_a_no_op():
    src = "input x0: f32[1, 16]\noutput x: f32[1, 16]\nfn ident(x) {\n  return x\n}\nx = copy(x0)\nx = ident(x)\n"
    x0 = rnd(7, 1, 16)
    (x,), _ = run(src, {"x0": x0}, ["x"])
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize(
    "body,call,message",
    [
        ("t = relu(a)\n  return t\n  t = relu(t)", "y = f(x)", "`return` must be the last statement"),
        ("for i in 0..2 {\n    return relu(a)\n  }", "y = f(x)", "`return` must be the last statement"),
        ("return relu(a)", "f(x)", "`f` returns 1 value(s): use it"),
        ("t = relu(a)", "y = f(x)", "`f` returns nothing"),
        ("return relu(a), relu(a)", "y = f(x)", "returns 2 tensors, assigned to 1 name(s)"),
        ("return 1.0", "y = f(x)", "assigned to a tensor: `return` a tensor op"),
        ("return relu(a), relu(a)", "let v = 1.0\ny, v = f(x)", "`v` is a register variable"),
        ("return relu(a)", "let v: f32 = f(x)", "tensor op `relu` must be assigned to a tensor"),
        ("return 1.0", "let v = f(x)", "the type of `f(...)` is not inferred"),
        ("return 1.0, 2.0", "let v: f32 = f(x) + 1.0", "returns 2 values; an expression takes one"),
        ("t = relu(a)", "let v: f32 = f(x)", "`f` returns nothing"),
    ],
)
def test_misused_returns_are_errors_with_their_place(body, call, message):
    src = f"input x: f32[1, 16]\noutput y: f32[1, 16]\nfn f(a) {{\n  {body}\n}}\n{call}\n"
    d = diags(src)
    assert any(message in x.message for x in d), [x.message for x in d]
    assert all(x.line > 0 and x.col > 0 for x in d)


def test_return_outside_a_function_is_an_error():
    d = diags("input x: f32[1, 16]\nreturn relu(x)\n")
    assert "outside a function" in d[0].message and d[0].line == 2


def test_a_failed_assignment_is_reported_once():
    """A nested op (not in the language) is reported with a hint, and the name it would have made is
    not reported again as undefined where it is used; likewise a failed call of a function."""
    d = diags(
        "input x: f32[4, 16]\nweight a: f32[16, 16]\noutput y: f32[4, 16]\n"
        "h = relu(matmul(x, a))\ny = matmul(h, a)\n"
    )
    assert len(d) == 1 and "do not nest" in d[0].message and d[0].line == 4
    d = diags(
        "input x: f32[4, 16]\noutput y: f32[4, 16]\nfn f(a, b) {\n  return add(a, b)\n}\n"
        "h = f(x)\ny = relu(h)\n"
    )
    assert len(d) == 1 and "takes 2 argument(s), got 1" in d[0].message


@pytest.mark.parametrize("sentrons,engine", [(2, "interp"), (2, "jit"), (4, "interp")])
def test_a_function_returning_a_sharded_op_on_several_sentrons(tmp_path, sentrons, engine):
    """``return tmatmul(h, c, shard=cols)``: the same bits as the statements written inline."""
    head = "input x: f32[1, 128]\nweight w: t2[128, 256]\nweight w2: t2[256, 128]\noutput y: f32[1, 128]\n"
    fsrc = head + (
        "fn proj(a, b, c) {\n  h = tmatmul(a, b, shard=cols)\n  h = relu(h)\n"
        "  return tmatmul(h, c, shard=cols)\n}\ny = proj(x, w, w2)\n"
    )
    isrc = head + "h = tmatmul(x, w, shard=cols)\nh = relu(h)\ny = tmatmul(h, w2, shard=cols)\n"
    rng = np.random.default_rng(0)
    inputs = {
        "x": rnd(1, 1, 128),
        "w": rng.integers(-1, 2, (128, 256)).astype(np.int8),
        "w2": rng.integers(-1, 2, (256, 128)).astype(np.int8),
    }
    (a,), _ = run(fsrc, inputs, ["y"], sentrons=sentrons, engine=engine, tmp=str(tmp_path))
    (b,), _ = run(isrc, inputs, ["y"], sentrons=sentrons, engine=engine, tmp=str(tmp_path))
    assert a.tobytes() == b.tobytes() and np.abs(a).max() > 1


@pytest.mark.parametrize("axis", [0, 1])
def test_returned_ops_are_placed_parts_of_a_concat(axis):
    """``p = f(x, w); q = g(x); c = concat(p, q)``: each returned op writes its part straight into
    c's storage (the concat's copies gone), with numpy's values, rows or columns."""
    import vtpu_cli.compiler.driver as driver
    from vtpu_cli.compiler import compile_phx

    shape = "[4, 16]" if axis == 0 else "[2, 32]"
    src = (
        f"input x: f32[2, 16]\nweight w: f32[16, 16]\noutput c: f32{shape}\n"
        "fn f(a, b) {\n  t = matmul(a, b)\n  return relu(t)\n}\nfn g(a) {\n  return add(a, a)\n}\n"
        f"p = f(x, w)\nq = g(x)\nc = concat(p, q, axis={axis})\n"
    )
    x, w = rnd(1, 2, 16), rnd(2, 16, 16)
    (c,), _ = run(src, {"x": x, "w": w}, ["c"])
    want = np.concatenate([np.maximum(x.astype(np.float64) @ w, 0), x + x], axis)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)

    def s_ops(prog):
        return sum(1 for siw in prog.code for i in siw if i.op.name in ("SGATHER", "SSCATTR"))

    placed = s_ops(compile_phx(src, "t.phx", opt=2)[0])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(driver, "plan_concats", lambda tree, sentrons: None)
        copied = s_ops(compile_phx(src, "t.phx", opt=2)[0])
    assert placed < copied


def test_an_error_in_a_function_body_names_the_call():
    """The second call's shapes do not fit the body: the error is at the body's line, with a note
    naming the call (rendered as ``= note:`` and in ``--json``)."""
    from vtpu_cli.core.errors import render_text

    src = (
        "input x: f32[4, 16]\ninput z: f32[4, 8]\noutput y: f32[4, 16]\n"
        "fn f(a, b) {\n  t = add(a, b)\n  return relu(t)\n}\ny = f(x, x)\ny = f(x, z)\n"
    )
    d = diags(src)
    assert len(d) == 1 and d[0].line == 5 and "shape mismatch" in d[0].message
    assert d[0].note == "in `f` called at t.phx:9:5" and d[0].as_dict()["note"] == d[0].note
    assert "  = note: in `f` called at t.phx:9:5" in render_text(d)
    assert diags("input x: f32[4]\noutput y: f32[8]\ny = relu(x)\n")[0].note is None


SCALAR_FNS = """input x: f32[64]
output y: f32[16]

fn sumsq(t) {
  let acc: f32x16 = bcast(0.0)
  for i in 0..4 {
    let a: f32x16 = load(t, i * 64)
    acc = fma(a, a, acc)
  }
  return sum(acc)
}
fn scaled(v, k) {
  return v * k
}
fn sq(a) {
  return a * a
}

let s: f32 = sumsq(x)
let z: f32 = scaled(s, 0.5) + 1.0
z = scaled(z, 2.0)
let q: f32x16 = sq(load(x, 0))
let w: f32x16 = bcast(z)
store(y, 0, w + q)
"""

SCALAR_INLINE = """input x: f32[64]
output y: f32[16]

let acc: f32x16 = bcast(0.0)
for i in 0..4 {
  let a: f32x16 = load(x, i * 64)
  acc = fma(a, a, acc)
}
let s: f32 = sum(acc)
let z: f32 = s * 0.5 + 1.0
z = z * 2.0
let a0: f32x16 = load(x, 0)
let q: f32x16 = a0 * a0
let w: f32x16 = bcast(z)
store(y, 0, w + q)
"""


@pytest.mark.parametrize("opt,engine", ENGINES)
def test_functions_returning_scalars_and_vectors(tmp_path, opt, engine):
    """``let s: f32 = sumsq(x)``, ``scaled(s, 0.5) + 1.0``, ``z = scaled(z, 2.0)``, a vector result:
    the bits of the same code written inline, and numpy's values."""
    x = rnd(8, 64)
    (y,), _ = run(SCALAR_FNS, {"x": x}, ["y"], opt=opt, engine=engine, tmp=str(tmp_path))
    (want,), _ = run(SCALAR_INLINE, {"x": x}, ["y"], opt=opt, engine=engine, tmp=str(tmp_path))
    assert y.tobytes() == want.tobytes()
    ref = (float((x.astype(np.float64) ** 2).sum()) * 0.5 + 1.0) * 2.0 + x[:16].astype(np.float64) ** 2
    np.testing.assert_allclose(y, ref, rtol=1e-5)


def test_a_function_returns_another_functions_result():
    """``return g(a)``: g's result goes to the caller's names (g inlined there), also when the caller's
    name is one of the outer function's parameters; nested calls in a runtime loop."""
    src = """input x: f32[2, 16]
input nl: i32[1]
output y: f32[2, 16]
output z: f32[2, 16]
fn g(a) {
  return relu(a)
}
fn f(a) {
  t = g(a)
  t = mul(t, 2.0)
  return add(t, a)
}
fn h(y, a) {
  return g(a)
}
let c: i32 = load(nl, 0)
let n: i64 = i64(c)
y = copy(x)
for l in 0..n {
  y = f(y)
}
z = h(y, x)
y = h(z, y)
"""
    x = rnd(1, 2, 16)
    (y, z), _ = run(src, {"x": x, "nl": np.array([3], np.int32)}, ["y", "z"])
    r = x
    for _ in range(3):
        r = (np.maximum(r, 0) * F32(2) + r).astype(F32)
    np.testing.assert_array_equal(z, np.maximum(x, 0))
    np.testing.assert_array_equal(y, np.maximum(r, 0))
    d = diags("fn f(a) {\n  return f(a)\n}\ninput x: f32[4]\noutput y: f32[4]\ny = f(x)\n")
    assert "calls itself" in d[0].message and d[0].line == 2


def test_arguments_are_read_before_any_parameter_is_bound():
    """``f(z, y)`` with ``fn f(y, a)``: ``a`` is the caller's ``y``, not the ``z`` that the parameter
    ``y`` was just bound to (a statement call, and a returning one)."""
    src = """input y: f32[1, 16]
input z: f32[1, 16]
output o: f32[1, 16]
output r: f32[1, 16]
fn f(y, a) {
  o = sub(y, a)
}
fn g(y, a) {
  return sub(y, a)
}
f(z, y)
r = g(z, y)
"""
    y, z = rnd(1, 1, 16), rnd(2, 1, 16)
    (o, r), _ = run(src, {"y": y, "z": z}, ["o", "r"])
    np.testing.assert_array_equal(o, z - y)
    np.testing.assert_array_equal(r, z - y)


def functionised_model(text: str) -> str:
    """The shipped model program with its decoder layer moved into ``fn layer(h, l)``, which returns
    the layer's last op (the FFN's down projection with the residual): ``h = layer(h, l)``."""
    head, rest = text.split("  for l in 0..nl {\n", 1)
    body, tail = rest.split("\n  }\n}\n", 1)
    last = body.rstrip().rsplit("\n", 1)
    assert last[1].strip().startswith("h = tmatmul(gq, wd[l]")
    body = last[0] + "\n    return " + last[1].strip()[len("h = ") :]
    fn = "fn layer(h, l) {\n" + body + "\n}\n\n"
    head = head.replace("kernel layers {", fn + "kernel layers {", 1)
    return head + "  for l in 0..nl {\n    h = layer(h, l)\n  }\n}\n" + tail


@pytest.mark.parametrize("sentrons", [1, 2])
def test_the_model_written_with_a_layer_function_gives_the_same_logits(monkeypatch, sentrons):
    """The 2-layer test model's prefill and decode steps, its layer a function that returns: the same
    logits, tokens and KV cache as the shipped program, bit for bit (interpreter); and at the 2B
    shape the program is as small (within the few SIWs of copying the layer index)."""
    from test_tp import _decode

    import vtpu_cli.models.compiled as compiled
    from vtpu_cli.compiler import compile_phx
    from vtpu_cli.models.compiled import StepShape

    want = _decode(sentrons, "interp")
    text = StepShape.text
    monkeypatch.setattr(compiled, "_PROGRAMS", {})
    monkeypatch.setattr(StepShape, "text", lambda self: functionised_model(text(self)))
    assert "fn layer(h, l)" in StepShape(64, 128, 2, 2, 32, 1, 256, 64, 1e-5).text()
    got = _decode(sentrons, "interp")
    assert np.array_equal(got[0], want[0]) and got[1] == want[1]
    assert np.array_equal(got[2], want[2]) and np.array_equal(got[3], want[3])
    big = StepShape(2560, 6912, 20, 5, 128, 30, 128256, 256, 1e-5, sentrons=sentrons)
    n_fn = len(compile_phx(big.text(), "m.phx", opt=2, force_loops=True, sentrons=sentrons)[0].code)
    n_plain = len(compile_phx(text(big), "m.phx", opt=2, force_loops=True, sentrons=sentrons)[0].code)
    assert n_fn <= n_plain + 8, (n_fn, n_plain)


def test_the_layers_example_against_numpy(tmp_path):
    """``programs/phx/layers.phx`` (functions returning tensors and a scalar): numpy's values on both
    engines, and no copies in its report."""
    from pathlib import Path

    src = (Path(__file__).parent.parent / "programs" / "phx" / "layers.phx").read_text()
    x0, g = rnd(1, 4, 64), (1 + 0.1 * rnd(2, 64)).astype(F32)
    w1, w2 = rnd(3, 4, 64, 128) * F32(0.1), rnd(4, 4, 128, 64) * F32(0.1)
    inputs = {"x0": x0, "g": g, "w1": w1, "w2": w2}
    h = x0.astype(np.float64)
    for layer in range(4):
        n = rms_ref(h.astype(F32), g).astype(np.float64)
        h = h + (np.maximum(n @ w1[layer], 0) ** 2) @ w2[layer]
    for engine in ("interp", "jit"):
        (x, energy), rep = run(src, inputs, ["x", "energy"], engine=engine, tmp=str(tmp_path))
        np.testing.assert_allclose(x, h, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(energy, (h[:2] ** 2).sum(), rtol=1e-3)
        assert not rep["copies"]
