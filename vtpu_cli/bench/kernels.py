"""Compiled-kernel benchmarks: phextcc's tensor ops on the JIT against a baseline measured in the same run.

``python -m vtpu_cli.bench.kernels [--quick] [--only NAME...] [--repeats N] [--json FILE]``

Every row compiles one ``.phx`` statement, runs it natively (``JitEngine``, native time ``run_s``),
checks the output against an independent numpy reference (bit for bit where the op's numerics are
exact, see docs/kernels.md) and times a baseline doing the same work in the same process,
interleaved run by run with the kernel so both see the same machine load:

* ``tgemv``  -- ternary GEMV (``tmatmul``, M = 1) against a streaming read of the same packed weight
  bytes (numpy's sum of 64-bit words; the memory-bandwidth roofline of this run);
* ``tgemm``  -- ternary GEMM (``tmatmul``, M = 64, prefill) against numpy f32 ``x @ w`` on the same shape;
* ``gemm``   -- f32 ``matmul`` against numpy/OpenBLAS single-threaded (``OPENBLAS_NUM_THREADS=1`` is set
  before numpy loads);
* ``q8``     -- the int8 LM head ``matmul_q8`` against numpy f32 ``x @ w.T`` and against the f32
  ``matmul_nt`` it replaces, and the same streaming read of its int8 bytes;
* ``hand``   -- compiled kernels against the hand-written bench kernels (``vtpu bench ternary_gemv
  f32_gemm``) on the same work per weight / per FLOP.

Times are medians; ratios are ``baseline time / kernel time`` (> 1: the kernel is faster) except the
roofline fraction (kernel bytes/s over streaming bytes/s). Density is the compiled program's non-NOP
ops per SIW (``vtpu cc --report``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402

from vtpu_cli.bench.stream import native_reader  # noqa: E402

F32 = np.float32


@dataclass
class Row:
    """One measured kernel: what it is, its times, its baseline and whether it was verified."""

    group: str
    name: str
    shape: str
    kernel_s: float = 0.0
    base_s: float = 0.0
    base_what: str = ""
    verified: bool = False
    siws: int = 0
    density: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.base_s / self.kernel_s if self.kernel_s else 0.0


# ---------------------------------------------------------------------- references (independent numpy)
def tmatmul_ref(x: np.ndarray, w: np.ndarray, ws: float) -> np.ndarray:
    """docs/phx.md "Ternary matmul": per-token int8 absmax, exact integer dot, f32 rescale."""
    am = np.maximum(np.abs(x).max(1), F32(1e-30)).astype(F32)
    inv = (F32(127) / am).astype(F32)
    q = np.rint((x * inv[:, None]).astype(F32)).astype(np.int64)
    sc = ((am / F32(127)).astype(F32) * F32(ws)).astype(F32)
    return ((q @ w.astype(np.int64)).astype(F32) * sc[:, None]).astype(F32)


def q8_ref(x: np.ndarray, w8: np.ndarray, ws: np.ndarray) -> np.ndarray:
    """docs/kernels.md "matmul_q8": per-token int8 absmax of x, exact int32 dot with the int8 rows of
    w8, then ``f32(acc) * f32(ws[n] * sx)``."""
    am = np.maximum(np.abs(x).max(1), F32(1e-30)).astype(F32)
    inv = (F32(127) / am).astype(F32)
    q = np.rint((x * inv[:, None]).astype(F32)).astype(np.int64)
    sx = (am / F32(127)).astype(F32)
    acc = q @ w8.astype(np.int64).T
    sc = (ws[None, :].astype(F32) * sx[:, None]).astype(F32)
    return (acc.astype(F32) * sc).astype(F32)


# ---------------------------------------------------------------------- running compiled code
def compile_kernel(src: str, inputs: dict, opt: int = 2):
    """(program, report) of a ``.phx`` source with its inputs bound."""
    from vtpu_cli.compiler.driver import bind_inputs, compile_phx

    prog, rep = compile_phx(src, "bench.phx", opt=opt)
    bind_inputs(prog, inputs)
    return prog, rep


def jit_run(prog):
    """One native run: (seconds of native execution, result); raises if it did not run natively."""
    from vtpu_cli.engines.jit.engine import JitEngine

    res = JitEngine(prog).run()
    if res.engine != "jit" or getattr(res, "replay", ""):
        raise RuntimeError(f"did not run natively: {res.fallback or res.replay}")
    if res.status != "ok":
        raise RuntimeError(f"run {res.status}: {res.fault.render() if res.fault else ''}")
    return res.run_s, res


def output(prog, res, name: str) -> np.ndarray:
    from vtpu_cli.compiler.driver import read_output

    return read_output(prog, res, name)


def paired(kernel: Callable[[], float], base: Callable[[], None], repeats: int) -> tuple[float, float]:
    """Medians of ``kernel()`` (returns its own time) and of timed ``base()`` runs, alternated."""
    ks, bs = [], []
    for _ in range(repeats):
        ks.append(kernel())
        t = time.perf_counter()
        base()
        bs.append(time.perf_counter() - t)
    return statistics.median(ks), statistics.median(bs)


def stream_read(raw: bytes) -> Callable[[], None]:
    """A one-pass streaming read of ``raw`` (numpy's vectorised sum of 64-bit words)."""
    words = np.frombuffer(raw, np.uint64, len(raw) // 8)
    return lambda: words.sum()


def scroll_bytes(prog, name: str) -> bytes:
    c = prog.coord_names[name]
    return next(d for d in prog.data if d.coord == c).data


def _density(rep: dict) -> tuple[int, float]:
    fs = [f for f in rep["functions"] if f["name"] == "k"]
    f = fs[0] if fs else rep["total"]
    return f["siws"], f["density"]


# ---------------------------------------------------------------------- the benchmarks
def bench_tgemv(k: int, n: int, repeats: int) -> Row:
    rng = np.random.default_rng(1)
    w = rng.integers(-1, 2, (k, n), dtype=np.int8)
    x = rng.standard_normal((1, k)).astype(F32)
    src = f"input x: f32[1, {k}]\nweight w: t2[{k}, {n}] scale 0.5\noutput y: f32[1, {n}]\nkernel k {{ y = tmatmul(x, w) }}\n"
    prog, rep = compile_kernel(src, {"x": x, "w": w})
    _, res = jit_run(prog)
    ok = np.array_equal(output(prog, res, "y"), tmatmul_ref(x, w, 0.5))
    raw = scroll_bytes(prog, "w")
    ks, bs = paired(lambda: jit_run(prog)[0], stream_read(raw), repeats)
    siws, dens = _density(rep)
    row = Row(
        "tgemv", "tmatmul M=1", f"{k}x{n} ({len(raw) / 2**20:.1f} MiB)", ks, bs, "stream read", ok, siws, dens
    )
    row.extra = {
        "bytes": len(raw),
        "kernel_gbytes": len(raw) / ks / 1e9,
        "stream_gbytes": len(raw) / bs / 1e9,
        "gweights": k * n / ks / 1e9,
    }
    return row


def bench_tgemv_dram(k: int, n: int, count: int, repeats: int) -> Row | list[Row]:
    """``count`` ternary GEMVs of distinct weights in one kernel, together larger than the last-level
    cache (300 MiB on this host: a 64 MiB operand read repeatedly is an L3 stream), against a native
    read of the same weight scrolls: the DRAM roofline of the decode step's GEMVs."""
    from vtpu_cli.engines.jit.engine import JitEngine

    read = native_reader()
    if read is None:
        return []
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, k)).astype(F32)
    decl = "".join(f"weight w{i}: t2[{k}, {n}] scale 0.5\noutput y{i}: f32[1, {n}]\n" for i in range(count))
    body = "\n".join(f"  y{i} = tmatmul(x, w{i})" for i in range(count))
    src = f"input x: f32[1, {k}]\n{decl}kernel k {{\n{body}\n}}\n"
    from vtpu_cli.compiler.driver import bind_inputs, compile_phx

    prog, rep = compile_phx(src, "bench.phx", opt=2)
    ws = {}
    for i in range(count):  # one int8 matrix at a time: only the packed tiles stay
        w = rng.integers(-1, 2, (k, n), dtype=np.int8)
        bind_inputs(prog, {"x": x, f"w{i}": w})
        ws[i] = w if i == 0 else None
    eng = JitEngine(prog, rerunnable=True)
    res = eng.run()
    if res.engine != "jit" or res.status != "ok":
        raise RuntimeError(f"did not run natively: {res.fallback or res.status}")
    ok = np.array_equal(output(prog, res, "y0"), tmatmul_ref(x, ws[0], 0.5))
    bufs = [eng.mem.table[prog.coord_names[f"w{i}"]].buf for i in range(count)]
    nbytes = sum(b.size for b in bufs)
    ks, bs = paired(lambda: eng.run().run_s, lambda: [read(b) for b in bufs], repeats)
    siws, dens = _density(rep)
    row = Row("tgemv", f"{count} x tmatmul M=1", f"{k}x{n} ({nbytes / 2**20:.0f} MiB)", ks, bs, "native read")
    row.verified, row.siws, row.density = ok, siws, dens
    row.extra = {
        "bytes": nbytes,
        "kernel_gbytes": nbytes / ks / 1e9,
        "stream_gbytes": nbytes / bs / 1e9,
        "gweights": count * k * n / ks / 1e9,
    }
    return row


def bench_tgemm(m: int, k: int, n: int, repeats: int) -> Row:
    rng = np.random.default_rng(2)
    w = rng.integers(-1, 2, (k, n), dtype=np.int8)
    x = rng.standard_normal((m, k)).astype(F32)
    src = f"input x: f32[{m}, {k}]\nweight w: t2[{k}, {n}] scale 0.5\noutput y: f32[{m}, {n}]\nkernel k {{ y = tmatmul(x, w) }}\n"
    prog, rep = compile_kernel(src, {"x": x, "w": w})
    _, res = jit_run(prog)
    ok = np.array_equal(output(prog, res, "y"), tmatmul_ref(x, w, 0.5))
    wf = w.astype(F32)
    ks, bs = paired(lambda: jit_run(prog)[0], lambda: x @ wf, repeats)
    siws, dens = _density(rep)
    row = Row("tgemm", f"tmatmul M={m}", f"{m}x{k}x{n}", ks, bs, "numpy f32 x @ w", ok, siws, dens)
    row.extra = {"gweights": m * k * n / ks / 1e9, "numpy_gflops": 2 * m * k * n / bs / 1e9}
    return row


def bench_gemm(m: int, k: int, n: int, repeats: int, reps: int = 1) -> Row:
    """f32 matmul; ``reps`` > 1 runs it that many times in one program (a loop around the op), the
    way the hand-written f32_gemm kernel repeats its tile, so entry costs do not dominate small shapes."""
    rng = np.random.default_rng(3)
    a = rng.integers(-4, 5, (m, k)).astype(F32)  # small integers: every sum is exact in any order
    b = rng.integers(-4, 5, (k, n)).astype(F32)
    body = "y = matmul(a, b)" if reps == 1 else f"for i in 0..{reps} {{ y = matmul(a, b) }}"
    src = f"input a: f32[{m}, {k}]\ninput b: f32[{k}, {n}]\noutput y: f32[{m}, {n}]\nkernel k {{ {body} }}\n"
    prog, rep = compile_kernel(src, {"a": a, "b": b})
    _, res = jit_run(prog)
    ok = np.array_equal(output(prog, res, "y"), a @ b)

    def blas() -> None:
        for _ in range(reps):
            a @ b

    ks, bs = paired(lambda: jit_run(prog)[0], blas, repeats)
    siws, dens = _density(rep)
    row = Row("gemm", "matmul f32", f"{m}x{k}x{n}", ks, bs, "OpenBLAS 1 thread", ok, siws, dens)
    flop = 2 * m * k * n * reps
    row.extra = {"gflops": flop / ks / 1e9, "blas_gflops": flop / bs / 1e9}
    return row


def bench_q8(m: int, k: int, n: int, repeats: int) -> list[Row]:
    """The int8 LM head against numpy f32 and against the f32 ``matmul_nt`` head it replaces."""
    rng = np.random.default_rng(4)
    wf = rng.standard_normal((n, k)).astype(F32)
    ws = (np.abs(wf).max(1) / 127).astype(F32)
    w8 = np.rint(wf / ws[:, None]).astype(np.int8)
    x = rng.standard_normal((m, k)).astype(F32)
    src = (
        f"input x: f32[{m}, {k}]\nweight w8: i8[{n}, {k}]\ninput ws: f32[{n}]\noutput y: f32[{m}, {n}]\n"
        "kernel k { y = matmul_q8(x, w8, ws) }\n"
    )
    prog, rep = compile_kernel(src, {"x": x, "w8": w8, "ws": ws})
    _, res = jit_run(prog)
    ok = np.array_equal(output(prog, res, "y"), q8_ref(x, w8, ws))
    raw = scroll_bytes(prog, "w8")
    ks, bs = paired(lambda: jit_run(prog)[0], stream_read(raw), repeats)
    siws, dens = _density(rep)
    rows = [
        Row(
            "q8",
            f"matmul_q8 M={m}",
            f"{m}x{k}x{n} ({len(raw) / 2**20:.0f} MiB i8)",
            ks,
            bs,
            "stream read",
            ok,
            siws,
            dens,
        )
    ]
    rows[0].extra = {"kernel_gbytes": len(raw) / ks / 1e9, "stream_gbytes": len(raw) / bs / 1e9}
    w32 = w8.astype(F32) * ws[:, None]
    rows.append(Row("q8", f"matmul_q8 M={m}", f"{m}x{k}x{n}", ks, 0.0, "numpy f32 x @ w.T", ok, siws, dens))
    _, rows[1].base_s = paired(lambda: 0.0, lambda: x @ w32.T, repeats)
    if n * k * 4 <= 2**31:  # the f32 head it replaces (one scroll holds at most 4 GiB)
        srcf = (
            f"input x: f32[{m}, {k}]\nweight w: f32[{n}, {k}]\noutput y: f32[{m}, {n}]\n"
            "kernel k { y = matmul_nt(x, w) }\n"
        )
        progf, _ = compile_kernel(srcf, {"x": x, "w": w32})
        kf = statistics.median(jit_run(progf)[0] for _ in range(max(3, repeats // 2)))
        rows.append(
            Row("q8", f"matmul_q8 M={m}", f"{m}x{k}x{n}", ks, kf, "compiled f32 matmul_nt", ok, siws, dens)
        )
    return rows


def _rerunnable(prog, ns: int, shared: dict[int, np.ndarray]):
    """A JIT engine kept between runs (like the model's step runner): returns ``run() -> seconds``.
    Scrolls in ``shared`` (coordinate -> buffer) are added by reference (one copy of big weights)."""
    from vtpu_cli.engines.select import EngineOptions, open_engine
    from vtpu_cli.machine.memory import Memory, scroll_buffer

    mem = Memory(mem_limit=1 << 40)
    for d in prog.data:
        buf = shared.get(d.coord)
        mem.add(d.coord, buf if buf is not None else scroll_buffer(d.size, None if d.zero else d.data))
    pre = set(mem.table)
    eng = open_engine(prog, mem, EngineOptions(engine="jit", sentrons=ns, max_steps=None, rerunnable=True))

    def run() -> float:
        for c in [c for c in mem.table if c not in pre]:
            mem.free(c)  # the one-sentron spill scroll (SALLOC'd per run)
        res = eng.run()
        if res.engine != "jit" or res.status != "ok" or getattr(res, "replay", ""):
            raise RuntimeError(f"{ns} sentrons did not run natively: {res.fallback or res.status}")
        return res.run_s

    return run, mem


def bench_shard(k: int, n: int, repeats: int) -> Row:
    """``tmatmul(x, w, shard=cols)`` on 2 sentrons against the same GEMV on one (ratio = 1-sentron
    time / 2-sentron time, so > 1 means the split pays). The weights are random valid codes written
    straight into the tile layout (no unpacked copy: 480 MiB of packed weights would be 2 GiB of int8);
    both programs share that one buffer and keep their engine between runs, and the two sides alternate
    run by run. Verified: the two outputs are bit-identical, and (shapes up to 2^26 weights) equal to
    the numpy reference."""
    from vtpu_cli.compiler.tensors import interleave_t2_rows

    assert k % 16 == 0 and n % 16 == 0
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, k)).astype(F32)
    codes = np.array(
        [
            a | b << 2 | c << 4 | d << 6
            for a in range(3)
            for b in range(3)
            for c in range(3)
            for d in range(3)
        ],
        np.uint8,
    )
    packed = np.empty(k * n // 4, np.uint8)  # [n, k/4] in the models' byte order
    for i in range(0, packed.size, 1 << 24):
        part = packed[i : i + (1 << 24)]
        part[:] = codes[rng.integers(0, 81, part.size, dtype=np.uint8)]
    want = None
    if k * n <= 1 << 26:  # unpack for the reference: w[k, n] = code - 1
        vt = packed.reshape(n, k // 4)
        w = np.stack([(vt >> (2 * i)) & 3 for i in range(4)], axis=2).reshape(n, k).T.astype(np.int8) - 1
        want = tmatmul_ref(x, w, 0.5)
        del w, vt
    tiles = np.empty_like(packed)
    step = 1 << 12
    pr = packed.reshape(n, k // 4)
    for r0 in range(0, n, step):
        tiles[r0 * k // 4 : min(n, r0 + step) * k // 4] = interleave_t2_rows(pr[r0 : r0 + step])
    del packed, pr
    src = f"input x: f32[1, {k}]\nweight w: t2[{k}, {n}] scale 0.5\noutput y: f32[1, {n}]\nkernel k {{ y = tmatmul(x, w, shard=cols) }}\n"
    row, outs = _two_sentrons_vs_one(
        "tmatmul shard=cols, 2 sentrons", f"{k}x{n}", {1: src, 2: src}, x, tiles, n, repeats
    )
    row.verified = np.array_equal(outs[1], outs[2]) and (want is None or np.array_equal(outs[1], want))
    return row


def _two_sentrons_vs_one(
    name: str, shape: str, srcs: dict[int, str], x: np.ndarray, wbuf: np.ndarray, n: int, repeats: int
) -> tuple[Row, dict[int, np.ndarray]]:
    """The sharded rows' measurement: the 1- and 2-sentron programs ``srcs`` (inputs ``x`` and weights
    ``w``, output ``y: f32[1, n]``) on one shared weight buffer ``wbuf``, each with its engine kept
    between runs, alternated run by run, and in the same loop the machine's own two-thread ceiling: a
    native streaming read of the same bytes by one thread and by two threads each reading half (on a
    shared host, other jobs take the second core). Returns the row (not yet verified) and each side's
    output."""
    from vtpu_cli.compiler.driver import compile_phx

    runs, outs, reps, shared = {}, {}, {}, {}
    for ns in (1, 2):
        prog, rep = compile_phx(srcs[ns], "bench.phx", opt=2, sentrons=ns, force_loops=True)
        shared[prog.coord_names["w"]] = wbuf
        shared[prog.coord_names["x"]] = np.frombuffer(x.tobytes(), np.uint8).copy()
        run, mem = _rerunnable(prog, ns, shared)
        run()
        outs[ns] = mem.table[prog.coord_names["y"]].buf.view(F32).reshape(1, n)
        runs[ns], reps[ns] = run, rep
    rd = native_reader()
    ones, twos, r1, r2 = [], [], [], []
    for _ in range(repeats):
        ones.append(runs[1]())
        twos.append(runs[2]())
        if rd is not None:
            r1.append(_timed(lambda: rd(wbuf)))
            r2.append(_timed(lambda: _two_threads(rd, wbuf)))
    one_s, two_s = statistics.median(ones), statistics.median(twos)
    siws, dens = _density(reps[2])
    row = Row("shard", name, shape, two_s, one_s, "1 sentron", False, siws, dens)
    row.extra = {"two_gbytes": wbuf.nbytes / two_s / 1e9, "one_gbytes": wbuf.nbytes / one_s / 1e9}
    if r1:
        row.extra["read_two_threads_ratio"] = statistics.median(r1) / statistics.median(r2)
    return row, outs


def bench_shard_f32(k: int, n: int, shard: str, repeats: int) -> Row:
    """``matmul(x, w, shard=k|cols)`` (f32 GEMV, M = 1) on 2 sentrons against the unsharded GEMV on one
    (ratio = 1-sentron time / 2-sentron time), the two sides alternating run by run, plus the
    machine's own two-thread read of the same bytes. The weights are small integers (every partial
    and every sum exact in any order), so verification is exact: both outputs equal ``x @ w``."""
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 4, (1, k)).astype(F32)
    w = np.empty((k, n), F32)
    for r0 in range(0, k, 512):
        w[r0 : r0 + 512] = rng.integers(-3, 4, (min(k, r0 + 512) - r0, n)).astype(F32)
    want = (x.astype(np.float64) @ w.astype(np.float64)).astype(F32)
    src = "input x: f32[1, {k}]\nweight w: f32[{k}, {n}]\noutput y: f32[1, {n}]\nkernel k {{ y = matmul(x, w{kw}) }}\n"
    row, outs = _two_sentrons_vs_one(
        f"matmul f32 shard={shard}, 2 sentrons",
        f"{k}x{n}",
        {1: src.format(k=k, n=n, kw=""), 2: src.format(k=k, n=n, kw=f", shard={shard}")},
        x,
        w.reshape(-1).view(np.uint8),
        n,
        repeats,
    )
    row.verified = np.array_equal(outs[1], want) and np.array_equal(outs[2], want)
    return row


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _two_threads(rd: Callable[[np.ndarray], None], buf: np.ndarray) -> None:
    """``rd`` over the two halves of ``buf`` in two threads (the native call releases the GIL)."""
    import threading

    h = buf.shape[0] // 2 // 256 * 256
    th = [threading.Thread(target=rd, args=(part,)) for part in (buf[:h], buf[h:])]
    for t in th:
        t.start()
    for t in th:
        t.join()


def bench_hand(repeats: int) -> list[Row]:
    """Compiled kernels against the hand-written bench kernels on the same work rate."""
    from vtpu_cli.bench import suite

    mans = {m.name: m for m in suite.load_manifests()}
    rows = []
    gv = suite.run_benchmark(mans["ternary_gemv"], "jit", "full", repeats)
    p = mans["ternary_gemv"].params_for("full")
    rows_, kk = p["ROWS"], 1024
    mine = bench_tgemv(kk, rows_, repeats)
    hw = gv["rates"].get("gweights") or 0.0
    r = Row("hand", "tmatmul M=1 vs ternary_gemv.vasm", f"{kk}x{rows_}", mine.kernel_s, 0.0, "hand-written")
    r.base_s = kk * rows_ / (hw * 1e9) if hw else 0.0
    r.verified = mine.verified and bool(gv.get("verified"))
    r.siws, r.density = mine.siws, mine.density
    rows.append(r)
    gm = suite.run_benchmark(mans["f32_gemm"], "jit", "full", repeats)
    p = mans["f32_gemm"].params_for("full")
    hw = gm["rates"].get("gflops") or 0.0
    m, reps = 4 * p["BLOCKS"], p["REPS"]
    mine = bench_gemm(m, 64, 64, repeats, reps)
    r = Row("hand", "matmul f32 vs f32_gemm.vasm", f"{m}x64x64 x{reps}", mine.kernel_s, 0.0, "hand-written")
    r.base_s = 2 * m * 64 * 64 * reps / (hw * 1e9) if hw else 0.0
    r.verified = mine.verified and bool(gm.get("verified"))
    r.siws, r.density = mine.siws, mine.density
    rows.append(r)
    return rows


PLANS: dict[str, Callable[[bool, int], list[Callable[[], Row | list[Row]]]]] = {
    "tgemv": lambda quick, rep: (
        [
            (lambda s=s: bench_tgemv(*s, rep))
            for s in ([(256, 512), (512, 2048)] if quick else [(2560, 6912), (6912, 2560), (8192, 32768)])
        ]
        + ([] if quick else [lambda: bench_tgemv_dram(2560, 131072, 6, rep)])
    ),
    "tgemm": lambda quick, rep: [
        (lambda s=s: bench_tgemm(*s, rep))
        for s in ([(8, 256, 256)] if quick else [(64, 2560, 6912), (64, 6912, 2560)])
    ],
    "gemm": lambda quick, rep: [
        (lambda s=s: bench_gemm(*s, rep))
        for s in (
            [(16, 64, 64), (1, 256, 1024)]
            if quick
            else [(64, 64, 64), (64, 256, 256), (256, 256, 256), (64, 1024, 1024), (1, 4096, 8192)]
        )
    ],
    "q8": lambda quick, rep: [
        (lambda s=s: bench_q8(*s, rep))
        for s in ([(1, 256, 1000)] if quick else [(1, 2560, 32000), (1, 2560, 128256)])
    ],
    "hand": lambda quick, rep: [] if quick else [lambda: bench_hand(rep)],
    "shard": lambda quick, rep: (
        [
            (lambda s=s: bench_shard(*s, rep))
            for s in ([(256, 1024)] if quick else [(8192, 32768), (16384, 122880)])  # 64 MiB, 480 MiB
        ]
        + [
            (lambda s=s: bench_shard_f32(*s, rep))
            for s in (
                [(256, 256, "k"), (256, 256, "cols")]
                if quick
                else [(8192, 8192, "k"), (16384, 8192, "k"), (16384, 8192, "cols")]  # 256, 512, 512 MiB
            )
        ]
    ),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vtpu_cli.bench.kernels", description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", choices=sorted(PLANS), help="benchmark groups (default: all)")
    ap.add_argument("--quick", action="store_true", help="small shapes (a smoke run)")
    ap.add_argument("--repeats", type=int, default=7, help="paired runs per kernel (medians)")
    ap.add_argument("--json", help="write the rows as JSON to this file")
    args = ap.parse_args(argv)
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from vtpu_cli.engines.jit.engine import jit_available

    ok, why = jit_available()
    if not ok:
        print(f"error: the JIT is not available here: {why}", file=sys.stderr)
        return 3
    con = Console(stderr=True)
    jobs = [j for g in (args.only or list(PLANS)) for j in PLANS[g](args.quick, max(1, args.repeats))]
    rows: list[Row] = []
    with Progress(console=con, transient=True) as prog:
        task = prog.add_task("kernels", total=len(jobs))
        for job in jobs:
            out = job()
            rows.extend(out if isinstance(out, list) else [out])
            prog.advance(task)
    tab = Table(title="compiled kernels vs baselines (medians; ratio = baseline time / kernel time)")
    for col in (
        "group",
        "kernel",
        "shape",
        "kernel ms",
        "baseline",
        "base ms",
        "ratio",
        "rate",
        "SIWs",
        "ops/SIW",
        "ok",
    ):
        tab.add_column(col)
    for r in rows:
        rate = ""
        if "kernel_gbytes" in r.extra:
            rate = f"{r.extra['kernel_gbytes']:.1f} / {r.extra['stream_gbytes']:.1f} GB/s"
        elif "two_gbytes" in r.extra:
            rate = f"{r.extra['two_gbytes']:.1f} / {r.extra['one_gbytes']:.1f} GB/s"
            if "read_two_threads_ratio" in r.extra:  # what two threads of plain reads got meanwhile
                rate += f"; 2-thread read {r.extra['read_two_threads_ratio']:.2f}x"
        elif "gflops" in r.extra:
            rate = f"{r.extra['gflops']:.1f} / {r.extra['blas_gflops']:.1f} GFLOP/s"
        elif "gweights" in r.extra:
            rate = f"{r.extra['gweights']:.1f} Gw/s"
        ratio = (
            f"{r.ratio:.3f} of roofline"
            if r.base_what in ("stream read", "native read") and r.ratio
            else f"{r.ratio:.2f}x"
        )
        tab.add_row(
            r.group,
            r.name,
            r.shape,
            f"{r.kernel_s * 1e3:.3f}",
            r.base_what,
            f"{r.base_s * 1e3:.3f}",
            ratio,
            rate,
            str(r.siws),
            f"{r.density:.2f}",
            "yes" if r.verified else "NO",
        )
    Console(width=max(Console().width, 180)).print(tab)
    if args.json:
        doc = [dict(r.__dict__, ratio=r.ratio) for r in rows]
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0 if all(r.verified for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
