"""JIT benchmarks (scratch; the numbers go to docs/jit.md). Run: OPENBLAS_NUM_THREADS=1 python programs/bench/jit_bench.py

Every result is verified: small instances against the interpreter (the golden model), the large ternary
GEMV against a numpy evaluation of the same semantics (the interpreter would take minutes on it).
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from vtpu_cli import coords  # noqa: E402
from vtpu_cli.asm import assemble  # noqa: E402
from vtpu_cli.interp import Interpreter  # noqa: E402
from vtpu_cli.jit import JitEngine, compile_program, run_timed, same_result, tsc_hz  # noqa: E402
from vtpu_cli.memory import Memory  # noqa: E402

A = coords.parse_packed("1.1.1/1.1.1/1.1.1")
B = coords.parse_packed("1.1.1/1.1.1/1.1.2")
C = coords.parse_packed("1.1.1/1.1.1/1.1.3")


def mem_of(**scrolls) -> Memory:
    m = Memory()
    for name, buf in scrolls.items():
        m.add({"A": A, "B": B, "C": C}[name], np.ascontiguousarray(buf).view(np.uint8).reshape(-1).copy())
    return m


# ------------------------------------------------------------------ 1. packed stream (D + S + C every SIW)
def stream_program(iters: int) -> str:
    return f"""
.coord A = 1.1.1/1.1.1/1.1.1
.coord B = 1.1.1/1.1.1/1.1.2
    SCOORD p0, A
    SCOORD p1, B
    DMOV r1, 0            | SGATHER.f32 v20, [p0]
    DMOV r9, {iters}      | SGATHER.f32 v21, [p0 + 64]
    DMOV r2, 64
    DMOV r3, 128
loop:
    DFMA.f32 v0, v20, v21, v0   | SGATHER.f32 v10, [p0 + r1]  | CPACK.f32 m0, v4
    DFMA.f32 v1, v20, v21, v1   | SGATHER.f32 v11, [p0 + r2]  | CPACK.f32 m1, v5
    DADD.f32 v4, v4, v10        | SGATHER.f32 v12, [p0 + r3]  | CUNPACK.f32 v6, m0
    DADD.f32 v5, v5, v11        | SSCATTR.f32 [p1], v0        | CUNPACK.f32 v7, m1
    DADD.f32 v2, v2, v12        | SSCATTR.f32 [p1 + 64], v1   | CPACK.i64 m2, r9
    DADD r1, r1, 8              | SSCATTR.f32 [p1 + 128], v4  | CUNPACK.i64 r10, m2
    DADD r2, r2, 8              | SSCATTR.f32 [p1 + 192], v6  | CPACK.i64 m3, r1
    DAND r1, r1, 1023           | SSCATTR.f32 [p1 + 256], v2  | CUNPACK.i64 r11, m3
    DAND r2, r2, 1023           | SSCATTR.f32 [p1 + 320], v7  | CPACK.f32 m0, v5
    DADD r3, r3, 8              | SGATHER.f32 v13, [p0 + 512] | CUNPACK.f32 v8, m0
    DAND r3, r3, 1023           | SSCATTR.f32 [p1 + 384], v8  | CPACK.f32 m1, v13
    DLOOP r9, loop              | SSCATTR.f32 [p1 + 448], v5  | CUNPACK.f32 v9, m1
"""


def bench_stream():
    rng = np.random.default_rng(0)
    a = rng.standard_normal(1024 // 4 + 16, np.float32) * 0.01

    def mem():
        return mem_of(A=np.concatenate([a, a[:16]])[: 256 + 16], B=np.zeros(128, np.float32))

    small = assemble(stream_program(200))
    ref = Interpreter(small, memory=mem()).run()
    t0 = time.perf_counter()
    Interpreter(small, memory=mem()).run()
    interp_s = time.perf_counter() - t0
    res = JitEngine(small, memory=mem()).run()
    assert same_result(ref, res) == [], same_result(ref, res)
    big = assemble(stream_program(2_000_000))
    out = run_timed(big, memory_factory=mem, repeat=3, verify=False)
    jit_small = run_timed(small, memory_factory=mem, repeat=5, verify=True)
    per_siw_interp = interp_s / ref.siws
    per_siw_jit = out["seconds"] / out["result"].siws
    return {
        "ops_per_cycle": out["ops_per_cycle"],
        "ops": out["ops"],
        "cycles": out["cycles"],
        "verified_small_vs_interp": jit_small["verified"],
        "interp_s_per_siw": per_siw_interp,
        "jit_s_per_siw": per_siw_jit,
        "speedup_vs_interp": per_siw_interp / per_siw_jit,
    }


# ------------------------------------------------------------------ 2. ternary GEMV
def gemv_program(row_groups: int, kchunks: int) -> str:
    """y = W x, W ternary (rows x K, 4 rows interleaved per 64-byte line: quarter q = row 4g+q), x int8."""
    return f"""
.coord A = 1.1.1/1.1.1/1.1.1
.coord B = 1.1.1/1.1.1/1.1.2
.coord C = 1.1.1/1.1.1/1.1.3
    SCOORD p0, A
    SCOORD p1, B
    SCOORD p2, C
    DMOV r1, {row_groups}
    DMOV r3, 0
    DMOV r7, 0
outer:
    DBCAST.i32 v10, 0
    DBCAST.i32 v11, 0
    DBCAST.i32 v12, 0
    DBCAST.i32 v13, 0
    DMOV r2, {kchunks // 2}
    DMOV r4, 0
inner:
    DADD r5, r4, 64         | SGATHER.i8 v1, [p1 + r4]
    DADD r6, r3, 64         | SGATHER.i8 v2, [p0 + r3]
    DTERNARY v10, v1, v2, 0 | SGATHER.i8 v3, [p1 + r5]
    DTERNARY v11, v1, v2, 1 | SGATHER.i8 v4, [p0 + r6]
    DTERNARY v12, v1, v2, 2
    DTERNARY v13, v1, v2, 3
    DTERNARY v10, v3, v4, 0
    DTERNARY v11, v3, v4, 1
    DTERNARY v12, v3, v4, 2
    DTERNARY v13, v3, v4, 3
    DADD r4, r4, 128
    DADD r3, r3, 128
    DLOOP r2, inner
    DRED.add.i32 r10, v10
    DRED.add.i32 r11, v11
    DRED.add.i32 r12, v12
    DRED.add.i32 r13, v13
    SSCATTR.i32 [p2 + r7], r10
    DADD r8, r7, 4
    SSCATTR.i32 [p2 + r8], r11
    DADD r8, r7, 8
    SSCATTR.i32 [p2 + r8], r12
    DADD r8, r7, 12
    SSCATTR.i32 [p2 + r8], r13
    DADD r7, r7, 16
    DLOOP r1, outer
"""


def gemv_data(rows: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 3, (rows, k), dtype=np.uint8)  # w + 1
    x = rng.integers(-128, 128, k, dtype=np.int8)
    # interleave: line (g, c) = 64 bytes; quarter q holds row 4g+q, weights c*64 .. c*64+63 (16 bytes)
    packed = (codes[:, 0::4] | (codes[:, 1::4] << 2) | (codes[:, 2::4] << 4) | (codes[:, 3::4] << 6)).astype(
        np.uint8
    )
    g = rows // 4
    lines = packed.reshape(g, 4, k // 64, 16).transpose(0, 2, 1, 3).reshape(-1)
    y = (codes.astype(np.int64) - 1) @ x.astype(np.int64)
    return lines, x, y.astype(np.int32)


def bench_gemv(rows: int = 4096, k: int = 16384):
    # small instance: verified against the interpreter
    ls, xs, ys = gemv_data(8, 256, 1)
    small = assemble(gemv_program(2, 4))

    def mem_s():
        return mem_of(A=ls, B=xs, C=np.zeros(8, np.int32))

    ref = Interpreter(small, memory=mem_s()).run()
    res = JitEngine(small, memory=mem_s()).run()
    assert same_result(ref, res) == []
    assert np.array_equal(res.memory.table[C].buf.view("<i4"), ys)
    lines, x, y = gemv_data(rows, k)
    prog = assemble(gemv_program(rows // 4, k // 64))
    ys_out = []

    def mem():
        m = mem_of(A=lines, B=x, C=np.zeros(rows, np.int32))
        ys_out.append(m)
        return m

    out = run_timed(prog, memory_factory=mem, repeat=3, verify=False)
    ok = np.array_equal(ys_out[-1].table[C].buf.view("<i4"), y)
    weights = rows * k
    return {
        "weights": weights,
        "weight_bytes": lines.nbytes,
        "G_weights_per_s": weights / out["seconds"] / 1e9,
        "cycles": out["cycles"],
        "verified_vs_numpy": ok,
        "small_verified_vs_interp": True,
        "ops_per_cycle": out["ops_per_cycle"],
    }


# ------------------------------------------------------------------ 3. f32 matmul tile
def matmul_program(m: int, k: int, n: int) -> str:
    """C[m x n] = A[m x k] @ B[k x n], n = 64 (four f32 vectors per row)."""
    assert n == 64
    return f"""
.coord A = 1.1.1/1.1.1/1.1.1
.coord B = 1.1.1/1.1.1/1.1.2
.coord C = 1.1.1/1.1.1/1.1.3
    SCOORD p0, A
    SCOORD p1, B
    SCOORD p2, C
    DMOV r1, {m}
    DMOV r3, 0
    DMOV r7, 0
rows:
    DBCAST.f32 v0, 0
    DBCAST.f32 v1, 0
    DBCAST.f32 v2, 0
    DBCAST.f32 v3, 0
    DMOV r2, {k}
    DMOV r4, 0
kl:
    SGATHER.f32 r5, [p0 + r3]
    DBCAST.f32 v8, r5      | SGATHER.f32 v4, [p1 + r4]
    DADD r6, r4, 64
    DFMA.f32 v0, v8, v4, v0 | SGATHER.f32 v5, [p1 + r6]
    DADD r6, r4, 128
    DFMA.f32 v1, v8, v5, v1 | SGATHER.f32 v6, [p1 + r6]
    DADD r6, r4, 192
    DFMA.f32 v2, v8, v6, v2 | SGATHER.f32 v7, [p1 + r6]
    DFMA.f32 v3, v8, v7, v3
    DADD r4, r4, 256
    DADD r3, r3, 4
    DLOOP r2, kl
    SSCATTR.f32 [p2 + r7], v0
    DADD r8, r7, 64
    SSCATTR.f32 [p2 + r8], v1
    DADD r8, r7, 128
    SSCATTR.f32 [p2 + r8], v2
    DADD r8, r7, 192
    SSCATTR.f32 [p2 + r8], v3
    DADD r7, r7, 256
    DLOOP r1, rows
"""


def bench_matmul(m: int = 64, k: int = 256, n: int = 64):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((m, k), np.float32)
    b = rng.standard_normal((k, n), np.float32)

    def mem():
        return mem_of(A=a, B=b, C=np.zeros((m, n), np.float32))

    prog = assemble(matmul_program(m, k, n))
    out = run_timed(prog, memory_factory=mem, repeat=5, verify=True)
    got = out["result"].memory.table[C].buf.view("<f4").reshape(m, n)
    ref = np.zeros((m, n), np.float32)
    for kk in range(k):  # the program's order: fused multiply-add per k, rounded once each step
        ref = (
            np.asarray(
                np.fma(a[:, kk : kk + 1].astype(np.float64), b[kk].astype(np.float64), ref), np.float32
            )
            if hasattr(np, "fma")
            else ref
        )
    flops = 2 * m * k * n
    t = []
    for _ in range(50):
        t0 = time.perf_counter()
        a @ b
        t.append(time.perf_counter() - t0)
    np_s = min(t)
    close = np.allclose(got, a @ b, rtol=1e-3, atol=1e-3)
    return {
        "GFLOPs": flops / out["seconds"] / 1e9,
        "numpy_GFLOPs": flops / np_s / 1e9,
        "ratio_vs_numpy": np_s / out["seconds"],
        "verified_vs_interp": out["verified"],
        "close_to_numpy": close,
    }


# ------------------------------------------------------------------ 4. compile time and cached start-up
def bench_compile(nsiw: int = 1000):
    lines = [".coord A = 1.1.1/1.1.1/1.1.1", ".zero A f32[64]", "SCOORD p0, A"]
    rng = np.random.default_rng(3)
    for i in range(nsiw):
        a, b, d = rng.integers(0, 16, 3)
        kind = i % 4
        if kind == 0:
            lines.append(
                f"DFMA.f32 v{d}, v{a}, v{b}, v{d} | SGATHER.f32 v{16 + a}, [p0 + {int(rng.integers(0, 192))}]"
            )
        elif kind == 1:
            lines.append(f"DADD.i32 v{d}, v{a}, v{b}")
        elif kind == 2:
            lines.append(f"DMUL r{d}, r{a}, r{b} | SSCATTR.f32 [p0 + {int(rng.integers(0, 192))}], v{16 + a}")
        else:
            lines.append(f"DMAX.f32 v{d}, v{a}, v{b}")
    prog = assemble("\n".join(lines))
    t0 = time.perf_counter()
    compile_program(prog, no_cache=True)
    cold = time.perf_counter() - t0
    import tempfile

    from vtpu_cli import jit

    with tempfile.TemporaryDirectory() as d:
        jit._loaded.clear()
        compile_program(prog, cache_dir=d)
        jit._loaded.clear()
        t0 = time.perf_counter()
        c = compile_program(prog, cache_dir=d)
        warm = time.perf_counter() - t0
        assert c.cache_hit == "disk"
    return {
        "siws": len(prog.code),
        "compile_s_per_1000_siws": cold * 1000 / len(prog.code),
        "cached_load_s": warm,
    }


def main():
    hz, src = tsc_hz()
    print(f"TSC {hz / 1e9:.3f} GHz ({src})")
    for name, fn in [
        ("compile", bench_compile),
        ("stream", bench_stream),
        ("matmul", bench_matmul),
        ("gemv", bench_gemv),
    ]:
        t0 = time.perf_counter()
        r = fn()
        print(
            name,
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()},
            f"({time.perf_counter() - t0:.1f}s)",
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
