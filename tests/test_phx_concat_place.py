"""Copy-free concat (compiler/concats.py, views.place_part): parts computed straight into the result's
storage. Each case runs with placement and with it turned off, on the interpreter (-O0, -O3) and the
JIT: the same bits, numpy's values, and the copy's loads and stores gone only where placement applies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_phx_views import run_program

import vtpu_cli.compiler.driver as driver
from vtpu_cli.compiler import compile_phx

F32 = np.float32
ENGINES = [(0, "interp"), (3, "interp"), (2, "jit")]


def _compile(src: str, opt: int, place: bool, sentrons: int = 1):
    if place:
        return compile_phx(src, "t.phx", opt=opt, sentrons=sentrons)[0]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(driver, "plan_concats", lambda tree, sentrons: None)
        return compile_phx(src, "t.phx", opt=opt, sentrons=sentrons)[0]


def _mem_ops(prog) -> int:
    return sum(1 for siw in prog.code for i in siw if i.op.name in ("SGATHER", "SSCATTR"))


def both(src, inputs, outs, tmp, engines=ENGINES):
    """Outputs (placed == copied on every engine, bit for bit) and the mem ops (placed, copied)."""
    got = []
    mem = None
    for opt, eng in engines:
        placed, copied = _compile(src, opt, True), _compile(src, opt, False)
        if mem is None:
            mem = (_mem_ops(placed), _mem_ops(copied))
        got.append(run_program(placed, inputs, outs, eng, tmp))
        got.append(run_program(copied, inputs, outs, eng, tmp))
    for g in got[1:]:
        for o in outs:
            np.testing.assert_array_equal(g[o], got[0][o])
    return got[0], mem


def rnd(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(F32)


OPS = {
    "add": ("add({x}, {z})", lambda x, z: x + z),
    "mul": ("mul({x}, {z})", lambda x, z: x * z),
    "relu": ("relu({x})", lambda x, z: np.maximum(x, F32(0))),
    "sub": ("sub({z}, {x})", lambda x, z: z - x),
}


@st.composite
def concat_case(draw):
    form = draw(st.sampled_from(["rows", "cols1", "flat"]))
    nparts = draw(st.integers(2, 4))
    width = draw(st.integers(1, 40))
    sizes = [draw(st.integers(1, 12)) for _ in range(nparts)]
    ops = [draw(st.sampled_from(sorted(OPS))) for _ in range(nparts)]
    declared = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return form, width, sizes, ops, declared, seed


def _shape(form, width, n):
    return {"rows": (n, width), "cols1": (1, n * width), "flat": (n * width,)}[form]


def _case_src(form, width, sizes, ops, declared):
    lines, ins = [], {}
    for k, n in enumerate(sizes):
        shp = _shape(form, width, n)
        lines.append(f"input x{k}: f32[{', '.join(map(str, shp))}]")
        lines.append(f"input z{k}: f32[{', '.join(map(str, shp))}]")
        ins[k] = shp
    axis = 1 if form == "cols1" else 0
    total = sum(sizes)
    out_shape = {"rows": (total, width), "cols1": (1, total * width), "flat": (total * width,)}[form]
    lines.append(f"output y: f32[{', '.join(map(str, out_shape))}]")
    body = [f"p{k} = {OPS[op][0].format(x=f'x{k}', z=f'z{k}')}" for k, op in enumerate(ops)]
    parts = ", ".join(f"p{k}" for k in range(len(sizes)))
    ax = ", axis=1" if axis else ""
    if declared:
        body.append(f"y = concat({parts}{ax})")
    else:
        body += [f"c = concat({parts}{ax})", "y = mul(c, 2.0)"]
    return "\n".join(lines + body) + "\n", ins, axis


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=concat_case())
def test_placed_parts_against_numpy(tmp_path, case):
    form, width, sizes, ops, declared, seed = case
    src, shapes, axis = _case_src(form, width, sizes, ops, declared)
    inputs = {}
    want_parts = []
    for k, shp in shapes.items():
        x, z = rnd(seed + 2 * k, *shp), rnd(seed + 2 * k + 1, *shp)
        inputs[f"x{k}"], inputs[f"z{k}"] = x, z
        want_parts.append(OPS[ops[k]][1](x, z))
    want = np.concatenate(want_parts, axis=axis)
    if not declared:
        want = want * F32(2)
    got, (placed, copied) = both(src, inputs, ["y"], str(tmp_path))
    np.testing.assert_array_equal(got["y"], want)
    assert placed < copied  # the concat's loads and stores are gone


def test_a_million_elements_in_loops(tmp_path):
    """1 M elements in four parts, each computed by a loop straight into the result (JIT and
    interpreter): no copy loop left, the same program size whatever the part size."""

    def src(n):
        return (
            f"input x: f32[{n}]\ninput z: f32[{n}]\noutput y: f32[{4 * n}]\n"
            "a = add(x, z)\nb = mul(x, z)\nc = sub(x, z)\nd = relu(x)\ny = concat(a, b, c, d)\n"
        )

    n = 1 << 18
    x, z = rnd(1, n), rnd(2, n)
    got, (placed, copied) = both(src(n), {"x": x, "z": z}, ["y"], str(tmp_path), ENGINES[1:])
    np.testing.assert_array_equal(got["y"], np.concatenate([x + z, x * z, x - z, np.maximum(x, F32(0))]))
    assert placed < copied
    small = _compile(src(1 << 12), 3, True)
    assert len(_compile(src(n), 3, True).code) == len(small.code)


def test_parts_that_read_earlier_parts_and_matmuls(tmp_path):
    """A part computed from an earlier one (disjoint parts of one storage: allowed), and matmul parts."""
    src = """input x: f32[3, 16]
input w: f32[16, 16]
output y: f32[9, 16]
a = matmul(x, w)
b = add(a, 1.0)
c = matmul(b, w)
y = concat(a, b, c)
"""
    x, w = rnd(1, 3, 16), rnd(2, 16, 16)
    got, (placed, copied) = both(src, {"x": x, "w": w}, ["y"], str(tmp_path))
    a = got["y"][:3]
    np.testing.assert_array_equal(got["y"][3:6], a + F32(1))
    np.testing.assert_allclose(a, x @ w, rtol=1e-5, atol=1e-5)
    assert placed < copied


def test_in_a_loop_each_trip_concatenates_its_own_parts(tmp_path):
    src = """input x: f32[4, 32]
output acc: f32[2, 32]
for i in 0..4 {
  a = mul(slice(x, i, 1), 2.0)
  b = add(slice(x, i, 1), 1.0)
  c = concat(a, b)
  acc = add(acc, c)
}
"""
    x = rnd(3, 4, 32)
    got, (placed, copied) = both(src, {"x": x}, ["acc"], str(tmp_path))
    want = np.zeros((2, 32), F32)
    for i in range(4):
        want = want + np.concatenate([x[i : i + 1] * F32(2), x[i : i + 1] + F32(1)])
    np.testing.assert_array_equal(got["acc"], want)
    assert placed < copied


def test_a_loop_that_reads_the_last_trips_result_before_its_parts(tmp_path):
    """Reading the result before the first part is made (it still holds the previous trip's concat)
    is allowed: nothing has been placed over it yet."""
    src = """input x: f32[3, 16]
output acc: f32[2, 16]
tensor c: f32[2, 16]
for i in 0..3 {
  acc = add(acc, c)
  a = mul(slice(x, i, 1), 2.0)
  b = add(slice(x, i, 1), 1.0)
  c = concat(a, b)
}
"""
    x = rnd(4, 3, 16)
    got, (placed, copied) = both(src, {"x": x}, ["acc"], str(tmp_path))
    want, c = np.zeros((2, 16), F32), np.zeros((2, 16), F32)
    for i in range(3):
        want = want + c
        c = np.concatenate([x[i : i + 1] * F32(2), x[i : i + 1] + F32(1)])
    np.testing.assert_array_equal(got["acc"], want)
    assert placed < copied


NOT_PLACED = {
    "part written again after the concat": """input x: f32[16]
output y: f32[32]
output r: f32[16]
a = add(x, 1.0)
b = mul(x, 2.0)
c = concat(a, b)
a = add(x, 5.0)
y = copy(c)
r = copy(a)
""",
    "result read between its parts and the concat (loop-carried)": """input x: f32[16]
output y: f32[32]
tensor c: f32[32]
for i in 0..3 {
  a = add(x, 1.0)
  y = add(c, 1.0)
  b = mul(x, 2.0)
  c = concat(a, b)
}
""",
    "part read by a scalar load": """input x: f32[16]
output y: f32[32]
output s: f32[1]
a = add(x, 1.0)
b = mul(x, 2.0)
let v: f32 = load(a, 0)
y = concat(a, b)
s = mul(slice(x, 0, 1), v)
""",
    "parts made out of order": """input x: f32[16]
output y: f32[32]
b = mul(x, 2.0)
a = add(x, 1.0)
y = concat(a, b)
""",
    "an input as a part": """input x: f32[16]
output y: f32[32]
a = add(x, 1.0)
y = concat(a, x)
""",
    "columns of several rows made by an op that writes whole rows": """input x: f32[3, 16]
output y: f32[3, 32]
a = allreduce(x)
b = mul(x, 2.0)
y = concat(a, b, axis=1)
""",
}


@pytest.mark.parametrize("name", sorted(NOT_PLACED))
def test_cases_that_keep_the_copy(tmp_path, name):
    """Where placing could be seen (or cannot line up), the concat copies as before: same results."""
    src = NOT_PLACED[name]
    shapes = {"x": (3, 16) if "several rows" in name else (16,)}
    outs = [ln.split()[1].rstrip(":") for ln in src.splitlines() if ln.startswith("output")]
    x = rnd(7, *shapes["x"])
    got, (placed, copied) = both(src, {"x": x}, outs, str(tmp_path))
    assert placed == copied
    if name.startswith("part written again"):
        np.testing.assert_array_equal(got["y"], np.concatenate([x + F32(1), x * F32(2)]))
        np.testing.assert_array_equal(got["r"], x + F32(5))
    if name.startswith("result read between"):
        np.testing.assert_array_equal(got["y"], np.concatenate([x + F32(1), x * F32(2)]) + F32(1))


SEVERAL = {
    "rows": (
        "input x: f32[4, 32]\noutput c: f32[8, 32]\na = relu(x)\nb = add(x, x)\nc = concat(a, b)\n",
        True,
    ),
    "columns": (
        "input x: f32[4, 32]\noutput c: f32[4, 64]\na = relu(x)\nb = add(x, x)\nc = concat(a, b, axis=1)\n",
        True,
    ),
    "matmul columns": (
        "input x: f32[4, 32]\nweight w: f32[32, 48]\noutput c: f32[4, 80]\n"
        "a = matmul(x, w)\nb = relu(x)\nc = concat(a, b, axis=1)\n",
        True,
    ),
    "sharded one-row parts": (
        "input x: f32[1, 64]\nweight w: t2[64, 64]\nweight w2: t2[64, 32]\noutput c: f32[1, 96]\n"
        "a = tmatmul(x, w, shard=cols)\nb = tmatmul(x, w2, shard=cols)\nc = concat(a, b, axis=1)\n",
        True,
    ),
    "sharded rows apart": (  # a shard=cols result of several rows is gathered densely: copied
        "input x: f32[4, 64]\nweight w: t2[64, 64]\nweight w2: t2[64, 32]\noutput c: f32[4, 96]\n"
        "a = tmatmul(x, w, shard=cols)\nb = tmatmul(x, w2)\nc = concat(a, b, axis=1)\n",
        False,
    ),
    "new name, then an output": (
        "input x: f32[4, 32]\noutput y: f32[8, 32]\na = relu(x)\nb = add(x, x)\nc = concat(a, b)\ny = copy(c)\n",
        True,
    ),
}


@pytest.mark.parametrize("sentrons", [2, 3])
@pytest.mark.parametrize("name", sorted(SEVERAL))
def test_several_sentrons_place_their_private_parts(tmp_path, name, sentrons):
    """Every part and result is a sentron's private tensor, so placing works the same on N sentrons:
    the copying program's bits on the interpreter (which checks every access for races) and natively,
    fewer loads and stores executed -- except where an op shares its rows out (``shard=cols`` over
    several rows), which keeps the copy."""
    from test_phx_views import run_outputs

    src, placed_expected = SEVERAL[name]
    rng = np.random.default_rng(sentrons)
    import re

    m, k = map(int, re.search(r"input x: f32\[(\d+), (\d+)\]", src).groups())
    inputs = {"x": rng.standard_normal((m, k)).astype(F32)}
    if "w: f32[32, 48]" in src:
        inputs["w"] = rng.standard_normal((32, 48)).astype(F32)
    if "t2" in src:
        inputs["w"] = rng.integers(-1, 2, (64, 64)).astype(np.int8)
        inputs["w2"] = rng.integers(-1, 2, (64, 32)).astype(np.int8)
    out = "y" if "output y" in src else "c"
    got, s_ops = {}, {}
    for place in (True, False):
        prog = _compile(src, 2, place, sentrons)
        for eng in ("interp", "jit"):
            (got[(place, eng)],), res = run_outputs(prog, inputs, [out], eng, str(tmp_path), sentrons)
            if eng == "interp":
                s_ops[place] = res.ops_by_pipe["S"]
    for g in got.values():
        np.testing.assert_array_equal(g, got[(False, "interp")])
    assert (s_ops[True] < s_ops[False]) == placed_expected, s_ops


def test_a_declared_result_of_another_shape_is_still_an_error():
    """Placing the parts in a declared result whose bytes fit but whose shape differs must not turn the
    copy's shape error into a silent success."""
    from vtpu_cli.core.errors import DiagnosticError

    src = "input x: f32[16]\noutput y: f32[2, 16]\na = add(x, 1.0)\nb = mul(x, 2.0)\ny = concat(a, b)\n"
    for place in (True, False):
        with pytest.raises(DiagnosticError, match="shape mismatch"):
            _compile(src, 2, place)


@pytest.mark.parametrize("rows", [1, 3, 40])
@pytest.mark.parametrize("axis", [0, 1])
def test_parts_placed_before_one_that_is_not_are_not_copied_again(tmp_path, rows, axis):
    """``c = concat(a, b, d)``: ``a`` and ``b`` are placed in c's storage, ``d`` (a ``tmatmul`` with an
    epilogue) cannot be, so the concat copies -- only ``d``: the parts already in place are neither made
    dense nor copied onto themselves (fewer loads and stores than with placement off, where before they
    cost two copies more). Same bits on every engine, numpy's values; 40 rows take the row loop."""
    cols = 32
    shape = f"[{3 * rows}, {cols}]" if axis == 0 else f"[{rows}, {3 * cols}]"
    src = (
        f"input x: f32[{rows}, {cols}]\nweight w: t2[{cols}, {cols}]\noutput c: f32{shape}\n"
        "a = relu(x)\nb = add(x, x)\nd = tmatmul(x, w, scale=1.0)\n"
        f"c = concat(a, b, d, axis={axis})\n"
    )
    from test_phx_scale import tmatmul_ref
    from test_phx_views import execute

    x = rnd(3, rows, cols)
    w = np.random.default_rng(4).integers(-1, 2, (cols, cols)).astype(np.int8)
    inputs = {"x": x, "w": w}
    got, _ = both(src, inputs, ["c"], str(tmp_path))
    want = np.concatenate([np.maximum(x, 0), x + x, tmatmul_ref(x, w, 1.0)], axis)
    np.testing.assert_allclose(got["c"], want, rtol=1e-6, atol=1e-5)
    # loads and stores executed (a placed row-wise op is unrolled per row: the static count can be
    # higher while the run does less)
    placed, copied = (
        execute(_compile(src, 0, p), inputs, "interp", None).ops_by_pipe["S"] for p in (True, False)
    )
    assert placed < copied
