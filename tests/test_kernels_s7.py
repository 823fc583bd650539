"""Session 7 kernel variants: tmatmul's two phases callable apart, with a tile range known only at run
time (the dynamically claimed shard=cols tile groups build on it); every tile bit-identical to the static
lowering, on both engines."""

from __future__ import annotations

import numpy as np
import pytest

from vtpu_cli.compiler import bind_inputs, compile_phx, kernels, read_output
from vtpu_cli.compiler.ir import imm
from vtpu_cli.engines.interp.interpreter import Interpreter

F32 = np.float32


def _run(prog, engine: str, tmp) -> object:
    if engine == "jit":
        from vtpu_cli.engines.jit.engine import JitEngine

        res = JitEngine(prog, 1, cache_dir=tmp).run()
        assert res.engine == "jit", res.fallback
    else:
        res = Interpreter(prog, 1).run()
    assert res.status == "ok", res.fault.render() if res.fault else res.status
    return res


def _runtime_groups(group: int):
    """A tmatmul_loop stand-in: phase 1 once, then ``group``-tile ranges from a register bumped at run
    time (a DLOOP), the rest of the tiles (a partial one included) as a static range."""

    def loop_form(lw, x, w, y, t_lo, t_hi, wscale, pre=None):
        b = lw.b
        bufs = kernels.tmatmul_prep(lw, x, pre)
        groups = kernels.full_tiles(w.shape[1], t_lo, t_hi) // group
        tile = b.new("r", "tile", nospill=True)
        b.emit("DMOV", tile, imm(t_lo))

        def one() -> None:
            kernels.tmatmul_tiles(lw, x, w, y, bufs, tile, None, wscale, count=group)
            b.emit("DADD", tile, tile, imm(group), type="i64")

        kernels.loop(b, groups, one, "grp")
        if t_lo + groups * group < t_hi:
            kernels.tmatmul_tiles(lw, x, w, y, bufs, t_lo + groups * group, t_hi, wscale)

    return loop_form


@pytest.mark.parametrize("m,k,n,group", [(1, 64, 600, 3), (1, 48, 1024, 8), (5, 40, 530, 2), (4, 32, 256, 5)])
@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_tmatmul_runtime_tile_ranges_bit_identical(monkeypatch, tmp_path, m, k, n, group, engine):
    rng = np.random.default_rng(m * 1000 + n + group)
    x = rng.standard_normal((m, k)).astype(F32)
    w = rng.integers(-1, 2, (k, n))
    src = (
        f"input x: f32[{m},{k}]\nweight w: t2[{k},{n}] scale 0.5\noutput y: f32[{m},{n}]\ny = tmatmul(x, w)\n"
    )
    outs = []
    for variant in ("static", "runtime"):
        if variant == "runtime":
            monkeypatch.setattr(kernels, "tmatmul_loop", _runtime_groups(group))
        prog, _ = compile_phx(src, "t.phx", opt=2, force_loops=True)
        bind_inputs(prog, {"x": x, "w": w})
        outs.append(read_output(prog, _run(prog, engine, tmp_path), "y"))
    np.testing.assert_array_equal(outs[0], outs[1])
    # and the documented numerics: per-token int8 absmax, exact integer dot, f32 rescale
    am = np.maximum(np.abs(x).max(1), F32(1e-30)).astype(F32)
    q = np.rint((x * (F32(127) / am)[:, None]).astype(F32)).astype(np.int64)
    want = ((q @ w.astype(np.int64)).astype(F32) * ((am / F32(127)).astype(F32) * F32(0.5))[:, None]).astype(
        F32
    )
    np.testing.assert_array_equal(outs[1], want)


def test_tmatmul_runtime_range_rejects_a_partial_count():
    """A runtime range covers whole tiles only: more tiles than the matrix has full ones is refused."""
    src = "input x: f32[1,32]\nweight w: t2[32,40] scale 1.0\noutput y: f32[1,40]\ny = tmatmul(x, w)\n"

    def bad(lw, x, w, y, t_lo, t_hi, wscale, pre=None):
        bufs = kernels.tmatmul_prep(lw, x, pre)
        reg = lw.b.new("r", "tile")
        lw.b.emit("DMOV", reg, imm(0))
        kernels.tmatmul_tiles(lw, x, w, y, bufs, reg, None, wscale, count=3)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernels, "tmatmul_loop", bad)
        with pytest.raises(Exception, match="full tiles"):
            compile_phx(src, "t.phx", force_loops=True)


@pytest.mark.parametrize("k,n", [(64, 600), (48, 2048), (32, 130)])
@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_tmatmul_m1_streams_bit_identical(monkeypatch, tmp_path, k, n, engine):
    """M = 1: tile i of 8 streams of consecutive tiles per block (TM_STREAMS_1) gives the bits of 8
    adjacent tiles per block and of the numpy formula (partial last tile, a remainder of whole tiles)."""
    rng = np.random.default_rng(k + n)
    x = rng.standard_normal((1, k)).astype(F32)
    w = rng.integers(-1, 2, (k, n))
    src = f"input x: f32[1,{k}]\nweight w: t2[{k},{n}] scale 0.25\noutput y: f32[1,{n}]\ny = tmatmul(x, w)\n"
    outs = []
    for streams in (False, True):
        monkeypatch.setattr(kernels, "TM_STREAMS_1", streams)
        prog, _ = compile_phx(src, "t.phx", opt=2, force_loops=True)
        bind_inputs(prog, {"x": x, "w": w})
        outs.append(read_output(prog, _run(prog, engine, tmp_path), "y"))
    np.testing.assert_array_equal(outs[0], outs[1])
    am = np.maximum(np.abs(x).max(1), F32(1e-30)).astype(F32)
    q = np.rint((x * (F32(127) / am)[:, None]).astype(F32)).astype(np.int64)
    want = ((q @ w.astype(np.int64)).astype(F32) * ((am / F32(127)).astype(F32) * F32(0.25))[:, None]).astype(
        F32
    )
    np.testing.assert_array_equal(outs[1], want)


@pytest.mark.parametrize("m,k,n", [(1, 100, 1003), (2, 64, 40), (1, 2560, 259)])
@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_matmul_q8_streams_bit_identical(monkeypatch, tmp_path, m, k, n, engine):
    """The int8 head with its 8 rows per block taken from 8 streams of consecutive rows (Q8_STREAMS)
    gives the bits of 8 adjacent rows per block and of docs/kernels.md's formula (rows left over)."""
    rng = np.random.default_rng(m * 7 + n)
    x = rng.standard_normal((m, k)).astype(F32)
    w8 = rng.integers(-127, 128, (n, k)).astype(np.int8)
    ws = (rng.random(n) * 0.01 + 0.001).astype(F32)
    src = (
        f"input x: f32[{m},{k}]\nweight w8: i8[{n},{k}]\ninput ws: f32[{n}]\noutput y: f32[{m},{n}]\n"
        "y = matmul_q8(x, w8, ws)\n"
    )
    outs = []
    for streams in (False, True):
        monkeypatch.setattr(kernels, "Q8_STREAMS", streams)
        prog, _ = compile_phx(src, "t.phx", opt=2, force_loops=True)
        bind_inputs(prog, {"x": x, "w8": w8, "ws": ws})
        outs.append(read_output(prog, _run(prog, engine, tmp_path), "y"))
    np.testing.assert_array_equal(outs[0], outs[1])
    am = np.maximum(np.abs(x).max(1), F32(1e-30)).astype(F32)
    q = np.rint((x * (F32(127) / am)[:, None]).astype(F32)).astype(np.int64)
    sx = (am / F32(127)).astype(F32)
    want = ((q @ w8.astype(np.int64).T).astype(F32) * (ws[None, :] * sx[:, None]).astype(F32)).astype(F32)
    np.testing.assert_array_equal(outs[1], want)
