"""``tmatmul`` epilogues (``scale=``, ``act=``, ``gate=``/``gate_scale=``, ``add=``): element-wise work
on the product, done by a ``shard=cols`` sentron on its own columns before the gather.

Each epilogue replaces separate statements (``mul``, ``relu2``, ``mul``, ``add``) and must give their
bits exactly: against the same program written with the separate statements, on 1, 2 and 3 sentrons,
on the interpreter (which also checks every access for races) and on the JIT; and against a numpy
reference of the documented numerics.
"""

from __future__ import annotations

import numpy as np
import pytest
from phxrun import run_phx

from vtpu_cli.compiler import compile_phx
from vtpu_cli.core.errors import DiagnosticError

HEAD = """
input x: f32[M, 64]
input s: f32[2]
input r: f32[M, 80]
weight wu: t2[64, 80] scale 0.5
weight wg: t2[64, 80] scale 0.25
output y: f32[M, 80]
output z: f32[M, 80]
output h: f32[M, 80]
"""

FUSED = """
kernel k {
  xq, xs = quant(x)
  let su: f32 = load(s, 0)
  let sg: f32 = load(s, 4)
  y = tmatmul(xq, wu, xs, shard=cols, scale=su, gate=wg, gate_scale=sg, act=relu2)
  z = tmatmul(x, wu, shard=cols, scale=sg, act=ACT)
  h = copy(r)
  h = tmatmul(x, wg, shard=cols, scale=su, add=h)
}
"""

SEPARATE = """
kernel k {
  xq, xs = quant(x)
  let su: f32 = load(s, 0)
  let sg: f32 = load(s, 4)
  gt = tmatmul(xq, wg, xs, shard=cols)
  up = tmatmul(xq, wu, xs, shard=cols)
  gt = mul(gt, sg)
  up = mul(up, su)
  gt = relu2(gt)
  y = mul(gt, up)
  z = tmatmul(x, wu, shard=cols)
  z = mul(z, sg)
  z = ACT(z)
  h = copy(r)
  o = tmatmul(x, wg, shard=cols)
  o = mul(o, su)
  h = add(h, o)
}
"""


def _src(body: str, m: int, act: str) -> str:
    return (HEAD + body).replace("M", str(m)).replace("ACT", act)


def _inputs(m: int, seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((m, 64)).astype(np.float32),
        "s": np.array([0.75, -1.5], np.float32),
        "r": rng.standard_normal((m, 80)).astype(np.float32),
        "wu": rng.integers(-1, 2, (64, 80), dtype=np.int8),
        "wg": rng.integers(-1, 2, (64, 80), dtype=np.int8),
    }


def _run(src: str, inputs: dict, sentrons: int, engine: str = "interp", **kw) -> dict[str, np.ndarray]:
    return run_phx(src, inputs, ["y", "z", "h"], sentrons, engine, **kw)


def _quant(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    am = np.maximum(np.abs(x).max(axis=1), np.float32(1e-30)).astype(np.float32)
    inv = (np.float32(127.0) / am).astype(np.float32)
    q = np.rint((x * inv[:, None]).astype(np.float32)).astype(np.int32)
    return q, (am / np.float32(127.0)).astype(np.float32)


def _tmm(x: np.ndarray, w: np.ndarray, wscale: float) -> np.ndarray:
    q, sc = _quant(x)
    acc = (q @ w.astype(np.int32)).astype(np.float32)
    return (acc * (sc * np.float32(wscale))[:, None]).astype(np.float32)


def _reference(inp: dict, act: str) -> dict[str, np.ndarray]:
    f = np.float32
    su, sg = inp["s"]
    up = _tmm(inp["x"], inp["wu"], 0.5) * su
    g = np.maximum(_tmm(inp["x"], inp["wg"], 0.25) * sg, f(0))
    y = (g * g) * up
    z = _tmm(inp["x"], inp["wu"], 0.5) * sg
    z = np.maximum(z, f(0)) if act == "relu" else np.maximum(z, f(0)) ** 2
    h = inp["r"] + _tmm(inp["x"], inp["wg"], 0.25) * su
    return {"y": y.astype(f), "z": z.astype(f), "h": h.astype(f)}


@pytest.mark.parametrize("m", [1, 5])
@pytest.mark.parametrize("act", ["relu2", "relu"])
def test_epilogue_gives_the_bits_of_the_separate_statements(m, act):
    inp = _inputs(m)
    want = _run(_src(SEPARATE, m, act), inp, 1)
    ref = _reference(inp, act)
    for k in want:
        np.testing.assert_allclose(want[k], ref[k], rtol=1e-5, atol=1e-5)
    for ns in (1, 2, 3):
        for fl in (False, True):
            got = _run(_src(FUSED, m, act), inp, ns, force_loops=fl)
            for k in want:
                assert np.array_equal(got[k], want[k]), (k, ns, fl)


@pytest.mark.slow
@pytest.mark.parametrize("ns", [1, 2])
def test_epilogue_on_the_jit_matches_the_interpreter(ns):
    inp = _inputs(5)
    want = _run(_src(SEPARATE, 5, "relu2"), inp, 1)
    got = _run(_src(FUSED, 5, "relu2"), inp, ns, engine="jit")
    for k in want:
        assert np.array_equal(got[k], want[k]), k


def test_epilogue_without_shard_on_one_sentron_matches():
    src = _src(FUSED, 3, "relu2").replace(", shard=cols", "")
    inp = _inputs(3, seed=9)
    want = _run(_src(SEPARATE, 3, "relu2").replace(", shard=cols", ""), inp, 1)
    got = _run(src, inp, 1)
    for k in want:
        assert np.array_equal(got[k], want[k]), k


@pytest.mark.parametrize(
    "stmt, message",
    [
        ("y = tmatmul(x, wu, act=gelu)", "act is one of"),
        ("y = tmatmul(x, wu, gate_scale=1.0)", "gate_scale needs gate="),
        ("y = tmatmul(x, wu, gate=x)", "tmatmul gate (weights)"),
        ("y = tmatmul(x, wu, add=x)", "the residual must be f32[2, 80]"),
        ("y = tmatmul(x, wu, colour=red)", "colour"),
    ],
)
def test_bad_epilogue_keywords_are_diagnosed(stmt, message):
    src = HEAD.replace("M", "2") + "kernel k {\n  " + stmt + "\n}\n"
    with pytest.raises(DiagnosticError) as e:
        compile_phx(src, "ep.phx", opt=2)
    assert message in str(e.value)
