"""The reference's llama.cpp emulation options (issue 14's perplexity comparison) and the confident
synthetic model of programs/models/make_large.py."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtpu_cli.models import ModelError, load_model
from vtpu_cli.models.reference import (
    LLAMA_CPP,
    QK_K,
    Reference,
    glu,
    quantize_activations,
    quantize_activations_q8k,
)
from vtpu_cli.models.synth import write_all

ROOT = Path(__file__).resolve().parents[1]


def _ggml_q8_k(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A scalar transliteration of ggml's quantize_row_q8_K_ref (float32 throughout): (q, d) per block."""
    qs, ds = [], []
    for b in range(0, x.size, QK_K):
        blk = x[b : b + QK_K].astype(np.float32)
        mx, amax = np.float32(0), np.float32(0)
        for v in blk:
            if abs(v) > amax:
                amax, mx = abs(v), v
        if amax == 0:
            qs.append(np.zeros(QK_K)), ds.append(np.float32(0))
            continue
        iscale = np.float32(-127.0) / mx
        qs.append(np.array([min(127, int(np.rint(np.float32(iscale * v)))) for v in blk], float))
        ds.append(np.float32(1) / iscale)
    return np.array(qs), np.array(ds, np.float32)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.floats(1e-6, 1e4),
    st.floats(1e-6, 1e4),
    st.booleans(),
    st.integers(0, 40),
)
def test_q8k_matches_ggml_transliteration(seed: int, s0: float, s1: float, zero: bool, ties: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(2 * QK_K) * np.repeat([s0, s1], QK_K)).astype(np.float32)
    m = np.abs(x[QK_K:]).max()
    x[QK_K : QK_K + ties] = m * (2 * rng.integers(-127, 127, ties) + 1) / 254  # near rounding ties
    if zero:
        x[:QK_K] = 0
    q, d = _ggml_q8_k(x)
    got = quantize_activations_q8k(x[None])[0]
    assert np.array_equal(got, (q * d.astype(np.float64)[:, None]).reshape(-1))
    # each block's error is at most half a step (amax / 127 of that block), up to float32 rounding
    for b in range(2):
        blk = x[b * QK_K : (b + 1) * QK_K].astype(np.float64)
        err = np.abs(got[b * QK_K : (b + 1) * QK_K] - blk)
        assert err.max() <= np.abs(blk).max() / 127 * 0.5 * (1 + 1e-4)  # float32 iscale * x


def test_q8k_uses_the_first_signed_maximum_and_rounds_half_to_even() -> None:
    x = np.zeros(QK_K, np.float32)
    x[3], x[7], x[9] = -2.0, 2.0, 1.0 / 127 * 2 * 2.5  # -2 comes first: iscale = +63.5
    got = quantize_activations_q8k(x[None])[0]
    assert got[3] == pytest.approx(-2.0, rel=1e-7) and got[7] == pytest.approx(2.0, rel=1e-7)
    # 2.5/63.5 * 63.5 = 2.5 -> 2 (half to even), times d = 1/63.5
    assert got[9] == pytest.approx(2 / 63.5, rel=1e-7)


def test_q8k_rejects_a_partial_block() -> None:
    with pytest.raises(ModelError, match="multiple of 256"):
        quantize_activations_q8k(np.ones((1, 300)))


def test_block_scales_are_never_coarser_than_the_token_scale() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 1024)) * np.repeat([[1.0, 0.05, 3.0, 0.2]], 256, axis=1)
    xq, s = quantize_activations(x)
    token_err = np.abs(xq * s - x).mean()
    block_err = np.abs(quantize_activations_q8k(x) - x).mean()
    assert block_err < 0.5 * token_err


def test_glu_variants() -> None:
    gate = np.array([-800.0, -1.0, 0.0, 2.0])
    up = np.array([3.0, 3.0, 3.0, 3.0])
    assert np.array_equal(glu(gate, up), [0.0, 0.0, 0.0, 12.0])
    silu = glu(gate, up, "silu")
    assert silu[0] == 0.0 and silu[2] == 0.0
    assert silu[1] == pytest.approx(-3.0 / (1 + math.e)) and silu[3] == pytest.approx(
        6.0 / (1 + math.exp(-2))
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return load_model(write_all(tmp_path_factory.mktemp("bitnet"))["tq2_0"])


def test_block_bitlinear_is_the_sum_of_per_block_products(tiny) -> None:
    w = tiny.layers[0].w_down  # 512 inputs: two q8_K blocks
    x = np.random.default_rng(1).standard_normal((3, w.cols))
    got = Reference(tiny, activations="block256").bitlinear(x, w)
    dense = w.ternary().astype(np.float64)
    want = np.zeros((3, w.rows))
    for t in range(3):
        q, d = _ggml_q8_k(x[t].astype(np.float32))
        for b in range(w.cols // QK_K):
            want[t] += d[b] * (dense[:, b * QK_K : (b + 1) * QK_K] @ q[b])
    assert np.allclose(got, want * w.scale, rtol=1e-12, atol=1e-12)


def test_f16_head_rounds_the_hidden_state(tiny) -> None:
    h = np.random.default_rng(2).standard_normal((2, tiny.config.hidden)) * 3
    e = tiny.lm_head.row_range(0, tiny.config.vocab).astype(np.float64)
    got = Reference(tiny, head="f16").logits(h)
    assert np.allclose(got, h.astype(np.float16).astype(np.float64) @ e.T, rtol=1e-12, atol=1e-12)
    assert not np.allclose(got, Reference(tiny).logits(h), rtol=1e-9, atol=1e-9)


def test_llama_cpp_emulation_runs_and_stays_close(tiny) -> None:
    ids = tiny.tokenizer.encode("The quick brown fox jumps over the lazy dog")
    base = Reference(tiny).forward(ids)
    for opts in (LLAMA_CPP, {"kv": "f16"}, {"ffn_act": "silu"}, {"activations": "block256"}):
        lg = Reference(tiny, **opts).forward(ids)
        assert lg.shape == base.shape and np.isfinite(lg).all()
        assert not np.array_equal(lg, base), opts
    # numerics alone (the same relu^2 model) move the logits by a few per cent; SiLU is another model
    num = Reference(tiny, head="f16", activations="block256", kv="f16").forward(ids)
    assert np.abs(num - base).mean() < 0.1 * np.abs(base).mean()
    silu = Reference(tiny, ffn_act="silu").forward(ids)
    assert np.abs(silu - base).mean() > 0.2 * np.abs(base).mean()


def test_bad_option_is_a_clear_error(tiny) -> None:
    with pytest.raises(ValueError, match="ffn_act must be one of relu2, silu"):
        Reference(tiny, ffn_act="gelu")
    with pytest.raises(ValueError, match="activations"):
        Reference(tiny, activations="block32")


def _make_large():
    spec = importlib.util.spec_from_file_location("make_large", ROOT / "programs/models/make_large.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_confident_model_predicts_its_fit_text(tmp_path: Path) -> None:
    ml = _make_large()
    ml.fit_symmetric_bigram.__defaults__ = (500, 1e-4)  # a shorter fit keeps the test fast
    text = "the cat sat on the mat and the dog sat on the log; " * 6
    (tmp_path / "fit.txt").write_text(text)
    out = tmp_path / "c.gguf"
    assert (
        ml.main([str(out), "--preset", "tiny", "--confident", "--fit-text", str(tmp_path / "fit.txt")]) == 0
    )
    m = load_model(out)
    ids = m.tokenizer.encode(text)[:100]
    lg = Reference(m).forward(ids)[:-1]
    lp = lg - lg.max(1, keepdims=True)
    lp -= np.log(np.exp(lp).sum(1, keepdims=True))
    ppl = float(np.exp(-np.mean(lp[np.arange(len(ids) - 1), ids[1:]])))
    assert ppl < 5.0, ppl  # a random model of this vocabulary (300) is near or above 300
