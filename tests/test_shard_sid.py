"""Sharded ops whose code does not grow with the sentron count: the sentrons that own equal shares of
a ``tmatmul``/``matmul_q8`` (``shard=cols``), a ``quant`` (``shard=rows``) or an ``attend``
(``shard=heads``) run one copy of the code, their share's offset computed from the sentron id at run
time and their exchange scroll found by coordinate arithmetic on it; only a sentron with a smaller
share (the last) keeps static code. Same bits as one sentron, on both engines."""

from __future__ import annotations

import numpy as np
import pytest
from test_phx_scale import attend_ref, rnd, run

from vtpu_cli.compiler import compile_phx

# 8 heads of 2 KV groups, 64 rows of 128 columns: every split below is exact or leaves the last
# sentron(s) a smaller share (static code beside the runtime-indexed copy)
SRC = """input x: f32[M, 128]
input g: f32[128]
input kc: f32[12, 32]
input vc: f32[12, 32]
input nn: i32[1]
weight w: t2[128, 128] scale 0.5
weight wg: t2[128, 128] scale 0.25
weight w8: i8[80, 128]
weight ws: f32[80]
output q: i8[M, 128]
output s: f32[M]
output y: f32[M, 128]
output z: f32[M, 80]
output o: f32[M, 128]
kernel k {
  q, s = quant(x, norm=g, eps=0.001, shard=rows)
  y = tmatmul(q, w, s, shard=cols, scale=0.5, gate=wg, gate_scale=0.25, act=relu2, add=x)
  z = matmul_q8(y, w8, ws, shard=cols)
  let c: i32 = load(nn, 0)
  let n: i64 = i64(c)
  o = attend(y, kc, vc, n, heads=8, kv_heads=2, start=2, shard=heads)
}
"""
OUTS = ["q", "s", "y", "z", "o"]


def _inputs(m: int) -> dict:
    rng = np.random.default_rng(7)
    return {
        "x": rnd(1, m, 128),
        "g": (1 + rnd(2, 128) * 0.1).astype(np.float32),
        "kc": rnd(3, 12, 32),
        "vc": rnd(4, 12, 32),
        "nn": np.array([9], np.int32),
        "w": rng.integers(-1, 2, (128, 128), dtype=np.int8),
        "wg": rng.integers(-1, 2, (128, 128), dtype=np.int8),
        "w8": rng.integers(-127, 128, (80, 128), dtype=np.int8),
        "ws": (rng.random(80) * 0.01).astype(np.float32),
    }


@pytest.mark.parametrize("m, sentrons", [(1, 4), (8, 4), (8, 3), (4, 8), (2, 5)])
def test_runtime_indexed_shares_give_the_bits_of_one_sentron(m, sentrons):
    src = SRC.replace("M", str(m))
    inputs = _inputs(m)
    want, _ = run(src, inputs, OUTS)
    got, _ = run(src, inputs, OUTS, sentrons=sentrons)
    for name, a, b in zip(OUTS, want, got, strict=True):
        assert a.tobytes() == b.tobytes(), name
    assert np.abs(want[2]).max() > 0 and np.abs(want[4]).max() > 0
    # the attention output against a float64 reference (the op works, not only agrees with itself)
    y = want[2]
    for i in range(m):
        ref = attend_ref(y[i], inputs["kc"][2:], inputs["vc"][2:], 9 - m + 1 + i, 8, 2)
        np.testing.assert_allclose(want[4][i], ref, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("m, sentrons", [(8, 4), (2, 3)])
def test_runtime_indexed_shares_on_the_jit(m, sentrons, tmp_path):
    src = SRC.replace("M", str(m))
    inputs = _inputs(m)
    want, _ = run(src, inputs, OUTS)
    got, _ = run(src, inputs, OUTS, sentrons=sentrons, engine="jit", tmp=tmp_path)
    for name, a, b in zip(OUTS, want, got, strict=True):
        assert a.tobytes() == b.tobytes(), name


def _siws(text: str, sentrons: int) -> int:
    prog, _ = compile_phx(text, "bitnet.phx", opt=2, force_loops=True, sentrons=sentrons)
    return len(prog.code)


@pytest.mark.parametrize("tokens", [1, 16])
def test_model_step_size_does_not_grow_with_the_sentron_count(tokens):
    """The shipped decoder step (every projection ``shard=cols``, a prefill's norms ``shard=rows`` and
    attention ``shard=heads``) on 2 .. 16 sentrons: within a few hundred SIWs of its size on 2 (with
    static code per sentron it was ~6x larger on 16 than on 2 for the 2B shape)."""
    from vtpu_cli.models.compiled import StepShape

    def text(ns: int) -> str:
        return StepShape(256, 512, 16, 4, 16, 2, 1024, 64, 1e-5, tokens=tokens, sentrons=ns).text()

    one, two, sixteen = _siws(text(1), 1), _siws(text(2), 2), _siws(text(16), 16)
    assert sixteen < two * 1.25, (one, two, sixteen)
    assert two < one * 1.6, (one, two)


MATMUL = """input x: f32[M, K]
weight w: f32[K, N]
output yc: f32[M, N]
output yk: f32[M, N]
yc = matmul(x, w, shard=cols)
yk = matmul(x, w, shard=k)
"""


@pytest.mark.parametrize(
    "m, k, n, sentrons, engine",
    [(1, 40, 640, 4, "interp"), (1, 40, 640, 3, "jit"), (3, 33, 64, 4, "interp"), (5, 64, 96, 3, "jit")],
)
def test_f32_matmul_shares_indexed_at_run_time(m, k, n, sentrons, engine, tmp_path):
    """f32 ``matmul`` in loop form, ``shard=cols`` (the streaming GEMV at M = 1, the register tile
    above) and ``shard=k``, with runtime-indexed shares (and a smaller last one on 3 sentrons): exactly
    ``x @ w`` (small integers: every sum is exact) and the bits of one sentron."""
    src = MATMUL.replace("M", str(m)).replace("K", str(k)).replace("N", str(n))
    rng = np.random.default_rng(m * 1000 + n)
    inputs = {
        "x": rng.integers(-3, 4, (m, k)).astype(np.float32),
        "w": rng.integers(-3, 4, (k, n)).astype(np.float32),
    }
    want, _ = run(src, inputs, ["yc", "yk"])
    got, _ = run(src, inputs, ["yc", "yk"], sentrons=sentrons, engine=engine, tmp=tmp_path)
    ref = inputs["x"] @ inputs["w"]
    for a, b in zip(want, got, strict=True):
        assert a.tobytes() == b.tobytes()
        assert np.array_equal(b, ref)
