"""``rope(x, cs, pos, heads=H, pairs=adjacent)``: rotary embedding of adjacent pairs (x[2i], x[2i+1]),
the layout GPT-J and GGML's "normal" mode use. Checked bit for bit against numpy's replica of the
documented roundings and against the half-split form on de-interleaved columns, for hypothesis-drawn
shapes on both engines, one token and several, constant and runtime positions, in place on a column
slice (docs/phx.md, "rope")."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_phx_scale import diags, rnd, run

F32 = np.float32


def rope_pairs_ref(x: np.ndarray, cs: np.ndarray, pos: int, heads: int) -> np.ndarray:
    """Rows of x at positions pos, pos+1, ...: each product rounded to f32, then the sum."""
    x = np.atleast_2d(x)
    hd = x.shape[1] // heads
    half = hd // 2
    out = np.empty_like(x)
    for r in range(x.shape[0]):
        c, s = cs[pos + r, :half], cs[pos + r, half:]
        h = x[r].reshape(heads, hd)
        a, b = h[:, 0::2], h[:, 1::2]
        y = np.empty_like(h)
        y[:, 0::2] = (a * c).astype(F32) - (b * s).astype(F32)
        y[:, 1::2] = (b * c).astype(F32) + (a * s).astype(F32)
        out[r] = y.reshape(-1)
    return out


def table(t: int, hd: int, theta: float = 10000.0) -> np.ndarray:
    inv = theta ** (-np.arange(0, hd, 2) / hd)
    ang = np.arange(t)[:, None] * inv[None, :]
    return np.concatenate([np.cos(ang), np.sin(ang)], 1).astype(F32)


@settings(max_examples=12, deadline=None)
@given(
    heads=st.integers(1, 4),
    half=st.integers(1, 40),
    rows=st.integers(1, 4),
    pos=st.integers(0, 5),
    runtime=st.booleans(),
    engine=st.sampled_from([(0, "interp"), (3, "interp"), (2, "jit")]),
    seed=st.integers(0, 2**16),
)
def test_adjacent_pairs_match_numpy_and_the_half_split_form(
    tmp_path_factory, heads, half, rows, pos, runtime, engine, seed
):
    hd = 2 * half
    w = heads * hd
    t = pos + rows
    x, cs = rnd(seed, rows, w) * F32(2), table(t, hd)
    p = "p" if runtime else str(pos)
    head = (
        f"input x: f32[{rows}, {w}]\ninput cs: f32[{t}, {hd}]\ninput pp: i32[1]\noutput y: f32[{rows}, {w}]\n"
    )
    head += "let c: i32 = load(pp, 0)\nlet p: i64 = i64(c)\n" if runtime else ""
    adj = head + f"y = rope(x, cs, {p}, heads={heads}, pairs=adjacent)\n"
    halves = head + f"y = rope(x, cs, {p}, heads={heads}, pairs=halves)\n"
    opt, eng = engine
    tmp = str(tmp_path_factory.mktemp("j"))
    inputs = {"x": x, "cs": cs, "pp": np.array([pos], np.int32)}
    (y,), _ = run(adj, inputs, ["y"], opt=opt, engine=eng, tmp=tmp)
    np.testing.assert_array_equal(y, rope_pairs_ref(x, cs, pos, heads))
    # the same numbers through the half-split form: de-interleave each head, rotate, interleave back
    perm = np.concatenate([np.arange(0, hd, 2), np.arange(1, hd, 2)])
    cols = (np.arange(heads)[:, None] * hd + perm[None, :]).reshape(-1)
    (yh,), _ = run(halves, {**inputs, "x": x[:, cols]}, ["y"], opt=opt, engine=eng, tmp=tmp)
    back = np.empty_like(yh)
    back[:, cols] = yh
    assert back.tobytes() == y.tobytes()


def test_adjacent_pairs_read_a_column_slice_in_place():
    """q = rope(slice(qkv, 0, H*HD, axis=1), ...) of a fused projection's prefill rows."""
    heads, hd, rows = 2, 24, 3
    w = heads * hd
    src = (
        f"input qkv: f32[{rows}, {3 * w}]\ninput cs: f32[8, {hd}]\noutput y: f32[{rows}, {w}]\n"
        f"y = rope(slice(qkv, {w}, {w}, axis=1), cs, 2, heads={heads}, pairs=adjacent)\n"
    )
    qkv, cs = rnd(3, rows, 3 * w), table(8, hd)
    (y,), rep = run(src, {"qkv": qkv, "cs": cs}, ["y"])
    np.testing.assert_array_equal(y, rope_pairs_ref(qkv[:, w : 2 * w], cs, 2, heads))
    assert not rep["copies"]


@pytest.mark.parametrize("value", ["interleaved", "1", "halves + 1"])
def test_a_bad_pairs_value_is_an_error(value):
    d = diags(
        f"input x: f32[1, 8]\ninput cs: f32[4, 8]\noutput y: f32[1, 8]\ny = rope(x, cs, 0, pairs={value})\n"
    )
    assert "pairs is `halves`" in d[0].message and d[0].line == 4


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_adjacent_pairs_keep_signed_zeros_and_infinities(tmp_path, engine):
    """Zeros of both signs, infinities and a -0.0 sine: the bits of numpy's ``a - b`` form (the kernel
    adds the product with the sign-flipped sine), NaNs as NaNs."""
    rng = np.random.default_rng(3)
    vals = np.array([0.0, -0.0, 1.0, -1.0, 2.5, -3.25, np.inf, -np.inf], F32)
    heads, hd, rows = 2, 40, 3
    x = rng.choice(vals, (rows, heads * hd)).astype(F32)
    cs = table(rows + 1, hd)
    cs[0, hd // 2 :] = -0.0
    src = (
        f"input x: f32[{rows}, {heads * hd}]\ninput cs: f32[{rows + 1}, {hd}]\noutput y: f32[{rows}, {heads * hd}]\n"
        f"y = rope(x, cs, 0, heads={heads}, pairs=adjacent)\n"
    )
    (y,), _ = run(src, {"x": x, "cs": cs}, ["y"], engine=engine, tmp=str(tmp_path))
    with np.errstate(invalid="ignore"):
        want = rope_pairs_ref(x, cs, 0, heads)
    same = (y.view(np.uint32) == want.view(np.uint32)) | (np.isnan(y) & np.isnan(want))
    assert same.all() and np.isnan(want).any() and (np.signbit(want) & (want == 0)).any()


@pytest.mark.parametrize("hd", [128, 136, 256])
@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_adjacent_pairs_at_model_head_sizes(tmp_path, hd, engine):
    """head_dim 128 (the spread table kept in registers: 8 chunks) and 136 / 256 (in a scratch the heads
    load from), 4 heads, 3 tokens at a runtime position: numpy's bits."""
    heads, rows, pos = 4, 3, 17
    w = heads * hd
    src = (
        f"input x: f32[{rows}, {w}]\ninput cs: f32[32, {hd}]\ninput pp: i32[1]\noutput y: f32[{rows}, {w}]\n"
        "let c: i32 = load(pp, 0)\nlet p: i64 = i64(c)\n"
        f"y = rope(x, cs, p, heads={heads}, pairs=adjacent)\n"
    )
    x, cs = rnd(9, rows, w), table(32, hd)
    inputs = {"x": x, "cs": cs, "pp": np.array([pos], np.int32)}
    (y,), _ = run(src, inputs, ["y"], engine=engine, tmp=str(tmp_path))
    np.testing.assert_array_equal(y, rope_pairs_ref(x, cs, pos, heads))
