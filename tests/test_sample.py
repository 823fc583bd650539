"""``sample(x, seed, k=, temp=, top_p=)``: top-k / temperature / top-p sampling with a counter-based
RNG, as a tensor op. Checked bit for bit against a numpy replica of docs/phx.md "sample" (the exp of
each candidate taken from the compiler's own ``exp`` op, whose numerics are tested on their own), on
both engines, and statistically against the probabilities it claims to draw from."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_phx_scale import run as phx_run

from vtpu_cli.compiler import bind_inputs, compile_phx, read_output
from vtpu_cli.core.errors import DiagnosticError
from vtpu_cli.engines.interp.interpreter import Interpreter

F32 = np.float32
M64 = (1 << 64) - 1


def _run(src: str, inputs: dict, out: str, engine: str = "interp", tmp=None) -> np.ndarray:
    (y,), _ = phx_run(src, inputs, [out], engine=engine, tmp=tmp)
    return y


def exp_op(z: np.ndarray) -> np.ndarray:
    """The compiler's ``exp`` (the same instruction sequence sample uses), run on the interpreter."""
    n = z.size
    src = f"input z: f32[{n}]\noutput e: f32[{n}]\ne = exp(z)\n"
    return _run(src, {"z": z.astype(F32)}, "e")


def splitmix_u(seed: int, row: int) -> F32:
    h = (seed + (row + 1) * 0x9E3779B97F4A7C15) & M64
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & M64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & M64
    h ^= h >> 31
    return F32(h >> 40) * F32(2.0**-24)


def sample_ref(x: np.ndarray, seed: int, k: int, temp: float, top_p: float) -> tuple[np.ndarray, list]:
    """(tokens, per row (candidate ids, their probabilities)) by docs/phx.md's steps."""
    x = np.atleast_2d(x)
    invt = F32(1.0) / F32(temp)
    toks, dists = [], []
    for r, row in enumerate(x):
        order = np.argsort(-row, kind="stable")[:k]  # topk: descending, ties by lower index
        v = row[order]
        e = exp_op(((v - v[0]).astype(F32) * invt).astype(F32))
        c = np.empty(k, F32)
        acc = F32(0)
        for j in range(k):
            acc = e[j] if j == 0 else F32(acc + e[j])
            c[j] = acc
        thr = F32(F32(top_p) * c[-1])
        keep = min(int((c < thr).sum()) + 1, k)
        mass = c[keep - 1]
        t = F32(splitmix_u(seed, r) * mass)
        pick = min(int((c <= t).sum()), keep - 1)
        toks.append(order[pick])
        p = np.diff(np.concatenate([[0.0], c[:keep].astype(np.float64)])) / float(mass)
        dists.append((order[:keep], p))
    return np.array(toks, np.int32), dists


def _src(m: int, d: int, kw: str) -> str:
    return (
        f"input x: f32[{m}, {d}]\ninput sd: i32[1]\noutput t: i32[{m}]\n"
        f"let c: i32 = load(sd, 0)\nlet s: i64 = i64(c)\nt = sample(x, s{kw})\n"
    )


@settings(max_examples=12, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 300),
    st.integers(1, 64),
    st.sampled_from([0.3, 0.8, 1.0, 1.7]),
    st.sampled_from([0.05, 0.5, 0.9, 1.0]),
    st.integers(0, 2**31 - 1),
)
def test_sample_matches_reference(m, d, k, temp, top_p, seed):
    k = min(k, d)
    x = (np.random.default_rng(seed % 1000 + d).standard_normal((m, d)) * 2).astype(F32)
    x[:, d // 2] = x[:, 0]  # a tie: the lower index ranks first
    src = _src(m, d, f", k={k}, temp={temp}, top_p={top_p}")
    got = _run(src, {"x": x, "sd": np.array([seed], np.int32)}, "t")
    want, _ = sample_ref(x, seed, k, temp, top_p)
    np.testing.assert_array_equal(got, want)


def test_sample_runtime_temperature_and_top_p_on_the_jit(tmp_path):
    """temp and top_p as runtime variables (read from tensors), the JIT against the interpreter."""
    m, d = 3, 517
    x = (np.random.default_rng(5).standard_normal((m, d)) * 3).astype(F32)
    src = (
        f"input x: f32[{m}, {d}]\ninput sd: i32[1]\ninput hp: f32[2]\noutput t: i32[{m}]\n"
        "let c: i32 = load(sd, 0)\nlet s: i64 = i64(c)\nlet tt: f32 = load(hp, 0)\nlet pp: f32 = load(hp, 4)\n"
        "t = sample(x, s, k=50, temp=tt, top_p=pp)\n"
    )
    for seed, (temp, top_p) in enumerate([(0.7, 0.9), (1.3, 0.5), (1.0, 1.0)]):
        ins = {"x": x, "sd": np.array([seed], np.int32), "hp": np.array([temp, top_p], F32)}
        a = _run(src, ins, "t")
        b = _run(src, ins, "t", engine="jit", tmp=tmp_path)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, sample_ref(x, seed, 50, temp, top_p)[0])


def test_sample_full_vocabulary_row_on_the_jit(tmp_path):
    """A 128,256-token logits row (BitNet-2B's vocabulary), top-40 and top-p 0.95 on the JIT."""
    d = 128256
    x = (np.random.default_rng(9).standard_normal((1, d)) * 2).astype(F32)
    x[0, 77777] = 9.0  # a clear favourite
    src = _src(1, d, ", k=40, temp=0.8, top_p=0.95")
    for seed in (1, 2, 3):
        got = _run(src, {"x": x, "sd": np.array([seed], np.int32)}, "t", engine="jit", tmp=tmp_path)
        np.testing.assert_array_equal(got, sample_ref(x, seed, 40, 0.8, 0.95)[0])


def test_sample_draws_from_the_distribution_it_describes():
    """Over 800 seeds the token frequencies follow the top-k/top-p probabilities (each within 5
    standard deviations), and no token outside the kept set is ever drawn."""
    d, k, temp, top_p = 20, 8, 1.5, 0.8
    x = np.linspace(2.0, -1.0, d).astype(F32)[None, :]
    prog, _ = compile_phx(_src(1, d, f", k={k}, temp={temp}, top_p={top_p}"), "t.phx")
    counts: dict[int, int] = {}
    n = 800
    for seed in range(n):
        bind_inputs(prog, {"x": x, "sd": np.array([seed * 7919], np.int32)})
        res = Interpreter(prog, 1).run()
        t = int(read_output(prog, res, "t")[0])
        counts[t] = counts.get(t, 0) + 1
    _, [(ids, p)] = sample_ref(x, 0, k, temp, top_p)
    assert set(counts) <= set(ids.tolist())
    for i, pi in zip(ids.tolist(), p.tolist(), strict=True):
        sd = (n * pi * (1 - pi)) ** 0.5
        assert abs(counts.get(i, 0) - n * pi) <= 5 * sd + 1, (i, counts.get(i, 0), n * pi)


@pytest.mark.parametrize(
    "call,msg",
    [
        ("sample(x, 1, k=0)", "k must be an integer constant in 1..16"),
        ("sample(x, 1, k=17)", "k must be an integer constant in 1..16"),
        ("sample(x, 1, temp=0.0)", "temp must be > 0"),
        ("sample(x, 1, top_p=1.5)", "top_p must be in (0, 1]"),
        ("sample(x, 1, p=0.5)", "unknown keyword argument `p`"),
        ("sample(x)", "takes 2 tensor argument(s)"),
    ],
)
def test_sample_bad_arguments(call, msg):
    src = f"input x: f32[16]\noutput t: i32[1]\nt = {call}\n"
    with pytest.raises(DiagnosticError) as e:
        compile_phx(src, "t.phx")
    assert msg in str(e.value)


def test_the_shipped_example_draws_what_the_reference_draws():
    """programs/phx/sample.phx with runtime seed, temperature and top-p."""
    from pathlib import Path

    src = (Path(__file__).resolve().parent.parent / "programs" / "phx" / "sample.phx").read_text()
    x = (np.random.default_rng(3).standard_normal((2, 1000)) * 2).astype(F32)
    prog, _ = compile_phx(src, "sample.phx")
    bind_inputs(prog, {"logits": x, "seed": np.array([11], np.int32), "hp": np.array([0.7, 0.9], F32)})
    res = Interpreter(prog, 1).run()
    assert res.status == "ok"
    np.testing.assert_array_equal(read_output(prog, res, "tok"), sample_ref(x, 11, 40, 0.7, 0.9)[0])
    np.testing.assert_array_equal(read_output(prog, res, "best"), x.argmax(1))
