"""``quant(x, norm=g, eps=e, shard=rows)``: the RMSNorm fused into the int8 quantisation, and its rows
split over the sentrons (each sentron normalises and quantises a range of rows, then every sentron
copies every owner's int8 rows and scales).

It must give the bits of ``rmsnorm`` then ``quant`` on one sentron, for any sentron count (including
fewer rows than sentrons), on the interpreter (which checks every access for races) and on the JIT,
and feed a sharded ``tmatmul`` exactly like the quantisation ``tmatmul`` does itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from phxrun import run_phx

from vtpu_cli.compiler import compile_phx
from vtpu_cli.core.errors import DiagnosticError

HEAD = """
input x: f32[M, 96]
input g: f32[96]
weight w: t2[96, 48] scale 0.5
output q: i8[M, 96]
output s: f32[M]
output y: f32[M, 48]
"""

FUSED = """
kernel k {
  q, s = quant(x, norm=g, eps=0.001, shard=rows)
  y = tmatmul(q, w, s, shard=cols)
}
"""

SEPARATE = """
kernel k {
  xn = rmsnorm(x, g, eps=0.001)
  q, s = quant(xn)
  y = tmatmul(xn, w, shard=cols)
}
"""


def _inputs(m: int, seed: int = 4) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "x": (rng.standard_normal((m, 96)) * 3).astype(np.float32),
        "g": (1 + rng.standard_normal(96) * 0.1).astype(np.float32),
        "w": rng.integers(-1, 2, (96, 48), dtype=np.int8),
    }


def _run(src: str, inputs: dict, sentrons: int, engine: str = "interp", **kw) -> dict[str, np.ndarray]:
    return run_phx(src, inputs, ["q", "s", "y"], sentrons, engine, **kw)


def _reference(inp: dict) -> tuple[np.ndarray, np.ndarray]:
    """Float32 numpy of the documented numerics: rmsnorm (sum of squares / d + eps, sqrt, 1 / that,
    times x, times g), then per-row absmax int8 with round to nearest even."""
    x = inp["x"]
    f = np.float32
    ms = (np.square(x.astype(np.float64)).sum(axis=1) / 96 + 0.001).astype(f)
    xn = (x * (f(1) / np.sqrt(ms))[:, None]).astype(f) * inp["g"]
    am = np.abs(xn).max(axis=1).astype(f)
    q = np.rint(xn * (f(127) / am)[:, None]).astype(np.int8)
    return q, (am / f(127)).astype(f)


@pytest.mark.parametrize("m", [1, 2, 5, 8])
def test_fused_row_split_quant_gives_the_bits_of_rmsnorm_then_quant(m):
    inp = _inputs(m)
    want = _run((HEAD + SEPARATE).replace("M", str(m)), inp, 1)
    q, s = _reference(inp)
    assert np.abs(want["q"].astype(int) - q).max() <= 1  # a float64 sum of squares may round differently
    np.testing.assert_allclose(want["s"], s, rtol=1e-5)
    for ns in (1, 2, 3):
        for fl in (False, True):
            got = _run((HEAD + FUSED).replace("M", str(m)), inp, ns, force_loops=fl)
            for k in want:
                assert np.array_equal(got[k], want[k]), (k, ns, fl)


def test_row_split_without_norm_and_without_shard():
    inp = _inputs(6, seed=8)
    src = (HEAD + "kernel k {\n  q, s = quant(x, shard=rows)\n  y = tmatmul(q, w, s)\n}\n").replace("M", "6")
    want = _run((HEAD + "kernel k {\n  q, s = quant(x)\n  y = tmatmul(x, w)\n}\n").replace("M", "6"), inp, 1)
    for ns in (1, 2, 4):
        got = _run(src, inp, ns)
        for k in want:
            assert np.array_equal(got[k], want[k]), (k, ns)
    got = _run((HEAD + FUSED).replace("M", "6").replace(", shard=rows", ""), inp, 2)
    want = _run((HEAD + SEPARATE).replace("M", "6"), inp, 1)
    assert np.array_equal(got["q"], want["q"]) and np.array_equal(got["y"], want["y"])


@pytest.mark.slow
def test_fused_row_split_quant_on_the_jit():
    inp = _inputs(5)
    want = _run((HEAD + SEPARATE).replace("M", "5"), inp, 1)
    got = _run((HEAD + FUSED).replace("M", "5"), inp, 2, engine="jit")
    for k in want:
        assert np.array_equal(got[k], want[k]), k


@pytest.mark.parametrize(
    "stmt, message",
    [
        ("q, s = quant(x, shard=cols)", "quant shards by rows"),
        ("q, s = quant(x, eps=0.1)", "eps needs norm="),
        ("q, s = quant(x, norm=x)", "the RMSNorm gain must be [96]"),
        ("q, s = quant(x, scale=2)", "scale"),
    ],
)
def test_bad_quant_keywords_are_diagnosed(stmt, message):
    src = HEAD.replace("M", "2") + "kernel k {\n  " + stmt + "\n}\n"
    with pytest.raises(DiagnosticError) as e:
        compile_phx(src, "rows.phx", opt=2)
    assert message in str(e.value)
