"""Tensor parallelism (``--sentrons N``): ``shard=cols`` through exchange scrolls, state tensors (the KV
cache) and the automatic barriers of ``compiler.lower.Sync``.

Every check is exact: sharding by columns changes which sentron computes an output, never how, so
N = 2 must give the same bits as N = 1 (outputs, logits, tokens and KV-cache rows). The interpreter
checks every access against the happens-before rule at scroll granularity, so "status ok" on it means
the run was race-free; the same program with its barriers left out must fault with "data race".
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from phxrun import run_phx

from vtpu_cli.compiler import compile_phx
from vtpu_cli.compiler.driver import bind_inputs
from vtpu_cli.compiler.lower import Sync
from vtpu_cli.core.errors import DiagnosticError
from vtpu_cli.models.bench_generate import build
from vtpu_cli.models.compiled import CompiledModel, StepShape, compile_step

SHARD_SRC = """
input x: f32[3, 64]
weight w: t2[64, 80] scale 0.25
weight w8: i8[40, 64]
weight ws: f32[40]
output y: f32[3, 80]
output z: f32[3, 40]
kernel k {
  y = tmatmul(x, w, shard=cols)
  z = matmul_q8(x, w8, ws, shard=cols)
}
"""

# a KV-cache-like state tensor: rows appended at a runtime position in a runtime loop (one sharded
# projection per trip), then read back; run twice to see the rows of the first run persist
STATE_SRC = """
input x: f32[4, 32]
input pos: i32[2]
weight w: t2[32, 32] scale 0.5
tensor kc: f32[16, 32] @ 3.1.1/1.1.1/1.1.1
output y: f32[1, 32]
kernel k {
  let p0: i32 = load(pos, 0)
  let n0: i32 = load(pos, 4)
  let p: i64 = i64(p0)
  let n: i64 = i64(n0)
  for i in 0..n {
    r = slice(x, i, 1)
    k = tmatmul(r, w, shard=cols)
    kc[p + i] = k
  }
  y = add(slice(kc, 0, 1), slice(kc, p, 1))
}
"""


def _inputs(rng):
    return {
        "x": rng.standard_normal((3, 64)).astype(np.float32),
        "w": rng.integers(-1, 2, (64, 80), dtype=np.int8),
        "w8": rng.integers(-127, 128, (40, 64), dtype=np.int8),
        "ws": (rng.random(40) * 0.01).astype(np.float32),
    }


def _run(src: str, inputs: dict, outs: list[str], sentrons: int, engine: str = "interp", **kw):
    return list(run_phx(src, inputs, outs, sentrons, engine, **kw).values())


@pytest.mark.parametrize("force_loops", [False, True])
def test_shard_cols_is_bit_identical_for_any_sentron_count(force_loops):
    inputs = _inputs(np.random.default_rng(3))
    want = _run(SHARD_SRC, inputs, ["y", "z"], 1, force_loops=force_loops)
    for ns in (2, 3):
        got = _run(SHARD_SRC, inputs, ["y", "z"], ns, force_loops=force_loops)
        for a, b in zip(want, got, strict=True):
            assert np.array_equal(a, b)
    assert np.abs(want[0]).max() > 0 and np.abs(want[1]).max() > 0


def test_shard_cols_on_the_jit_matches_the_interpreter():
    inputs = _inputs(np.random.default_rng(4))
    want = _run(SHARD_SRC, inputs, ["y", "z"], 1)
    got = _run(SHARD_SRC, inputs, ["y", "z"], 2, engine="jit")
    for a, b in zip(want, got, strict=True):
        assert np.array_equal(a, b)


def _state_run(sentrons: int, runs: list[tuple[int, int]], engine: str = "interp"):
    """Run STATE_SRC once per (pos, n) on one Memory (state kept between runs); y and kc after each."""
    from vtpu_cli.engines.select import EngineOptions, open_engine
    from vtpu_cli.machine.memory import Memory, scroll_buffer

    prog, _ = compile_phx(STATE_SRC, "tp.phx", opt=2, sentrons=sentrons)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 32)).astype(np.float32)
    bind_inputs(prog, {"x": x, "w": rng.integers(-1, 2, (32, 32), dtype=np.int8)})
    mem = Memory(mem_limit=1 << 30)
    for d in prog.data:
        mem.add(d.coord, scroll_buffer(d.size, None if d.zero else d.data), dtype=d.dtype, shape=d.shape)
    names = prog.coord_names
    out = []
    for pos, n in runs:
        mem.table[names["pos"]].buf[:] = np.array([pos, n], np.int32).view(np.uint8)
        for sc in mem.table.values():  # a fresh happens-before history per run (as StepRunner does)
            sc.writer, sc.write_epoch = -1, -1
            sc.__dict__.pop("_reads", None)
        eng = open_engine(prog, mem, EngineOptions(engine=engine, sentrons=sentrons, max_steps=None))
        res = eng.run()
        out.append(
            (res, mem.table[names["y"]].buf.view(np.float32).copy(), mem.table[names["kc"]].buf.copy())
        )
    return out


def test_state_tensor_rows_persist_between_runs_and_match_one_sentron():
    runs = [(0, 3), (3, 2), (5, 1)]
    one = _state_run(1, runs)
    two = _state_run(2, runs)
    for (r1, y1, k1), (r2, y2, k2) in zip(one, two, strict=True):
        assert r1.status == "ok" and r2.status == "ok", r2.fault.render() if r2.fault else ""
        assert np.array_equal(y1, y2) and np.array_equal(k1, k2)
    kc = two[-1][2].view(np.float32).reshape(16, 32)
    assert np.abs(kc[:6]).min(axis=1).max() > 0 and not kc[6:].any()  # rows 0..5 written, over 3 runs
    # y of the last run reads row 0, written by the first run: the state persisted
    assert np.array_equal(two[-1][1], kc[0] + kc[5])


@pytest.mark.parametrize("engine", ["interp", pytest.param("jit", marks=pytest.mark.slow)])
def test_removing_the_barriers_makes_the_race_checker_fire(monkeypatch, engine):
    monkeypatch.setattr(Sync, "barrier", lambda self: self.synced())  # "forget" every automatic CBAR
    res, _, _ = _state_run(2, [(0, 3)], engine)[0]
    assert res.status != "ok"
    assert "data race" in res.fault.render()


@pytest.mark.slow
def test_state_tensor_two_sentrons_on_the_jit_race_free_and_identical():
    runs = [(0, 3), (3, 2), (5, 1)]
    one, two = _state_run(1, runs, "jit"), _state_run(2, runs, "jit")
    for (_, y1, k1), (r2, y2, k2) in zip(one, two, strict=True):
        assert r2.status == "ok" and r2.engine == "jit" and not getattr(r2, "replay", "")
        assert np.array_equal(y1, y2) and np.array_equal(k1, k2)


def test_barriers_are_placed_where_needed():
    """One barrier per sharded op (before its copies), one before the KV read; a loop whose only
    barrier is its own op gets one more at the end of the body (its next trip writes the exchange
    scrolls the previous trip's copies read)."""

    def cbars(src: str, ns: int) -> int:
        prog, _ = compile_phx(src, "tp.phx", opt=2, sentrons=ns)
        return sum(1 for siw in prog.code for ins in siw if ins.op.name == "CBAR")

    assert cbars(STATE_SRC, 1) == 0
    # guard (1) + in the loop: the op's barrier and the wrap-around one (2; the latter also orders the
    # kc rows before the read after the loop) + publishing the output (1)
    assert cbars(STATE_SRC, 2) == 4
    # the model step per layer (in the loop body once): q/k/v, the KV append, o, gate/up, down; then
    # the head, the guard, publishing: the loop needs no wrap-around barrier (q's write follows wd's
    # copies across the other barriers)
    shape = StepShape(64, 128, 2, 1, 32, 2, 256, 64, 1e-5, sentrons=2)
    prog, _ = compile_step(shape)
    assert sum(1 for siw in prog.code for ins in siw if ins.op.name == "CBAR") == 5 + 1 + 1 + 1


@pytest.mark.parametrize(
    "body, message",
    [
        ("s = add(a, a)", "state tensor"),
        ("let v: f32x16 = load(a, 0)\nstore(s, 0, v)", "state tensor"),
    ],
)
def test_state_tensor_writes_other_than_rows_are_refused_with_several_sentrons(body, message):
    src = f"input a: f32[1, 16]\ntensor s: f32[1, 16] @ 3.1.1/1.1.1/1.1.1\noutput y: f32[1, 16]\n{body}\ny = copy(s)\n"
    compile_phx(src, "tp.phx", sentrons=1)  # one sentron: an ordinary tensor at a coordinate
    with pytest.raises(DiagnosticError) as e:
        compile_phx(src, "tp.phx", sentrons=2)
    assert message in str(e.value)


def test_state_tensor_is_one_plain_scroll():
    with pytest.raises(DiagnosticError) as e:
        compile_phx("tensor s: f32[4, 16] @ 3.1.1/1.1.1/1.1.1 layers 2\n", "tp.phx")
    assert "state tensor" in str(e.value)


# ---------------------------------------------------------------------- the model
def _decode(ns: int, engine: str, shape=(64, 128, 2, 2, 1, 256, 64), steps: int = 4):
    m = build(*shape)
    cm = CompiledModel(m, ctx=32, engine=engine, prefill=(4,), sentrons=ns)
    logits = [cm.forward([1, 2, 3, 5, 7])[0].copy()]  # a 4-token prefill chunk, then one token
    toks = [cm.runner.token()]
    for _ in range(steps):
        logits.append(cm.forward([toks[-1]])[0].copy())
        toks.append(cm.runner.token())
    return np.array(logits), toks, cm.kc.copy(), cm.vc.copy(), cm.engines_used


def test_model_two_sentrons_bit_identical_interp():
    one, two = _decode(1, "interp"), _decode(2, "interp")
    assert np.array_equal(one[0], two[0])  # logits of the prefill and of every decode step
    assert one[1] == two[1]
    assert np.array_equal(one[2], two[2]) and np.array_equal(one[3], two[3])  # the KV cache persisted
    assert one[2].any()


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(64, 128, 2, 2, 1, 256, 64), (256, 704, 3, 4, 2, 1000, 128)])
def test_model_two_sentrons_bit_identical_jit(shape, monkeypatch):
    monkeypatch.setenv("VTPU_JIT_COMPILE_TIMEOUT", "1800")  # a loaded host: no interpreter fallback
    one, two = _decode(1, "jit", shape, 8), _decode(2, "jit", shape, 8)
    assert two[4] == {"jit"}
    assert np.array_equal(one[0], two[0]) and one[1] == two[1]
    assert np.array_equal(one[2], two[2]) and np.array_equal(one[3], two[3])


def test_generate_command_two_sentrons_same_tokens(tmp_path, monkeypatch, capsys):
    pytest.importorskip("gguf")
    pytest.importorskip("tokenizers")
    from vtpu_cli.models.generate import generate_command
    from vtpu_cli.models.synth import SynthSpec, write_all

    monkeypatch.setenv("VTPU_CACHE_DIR", str(tmp_path / "cache"))
    paths = write_all(tmp_path / "m", SynthSpec())
    got = {}
    for ns in (1, 2):
        rc = generate_command(
            paths["tq2_0"], prompt="The", n=3, temp=0.0, ctx=16, sentrons=ns, engine="interp", json_out=True
        )
        assert rc == 0
        got[ns] = json.loads(capsys.readouterr().out)["tokens"]
    assert got[1] == got[2] and len(got[1]) == 3


@pytest.mark.slow
def test_perplexity_command_two_sentrons_same_value(tmp_path, monkeypatch, capsys):
    pytest.importorskip("gguf")
    pytest.importorskip("tokenizers")
    from vtpu_cli.models.generate import perplexity_command
    from vtpu_cli.models.synth import SynthSpec, write_all

    monkeypatch.setenv("VTPU_CACHE_DIR", str(tmp_path / "cache"))
    paths = write_all(tmp_path / "m", SynthSpec())
    text = tmp_path / "t.txt"
    text.write_text("The cat sat on the mat.", encoding="utf-8")
    ppl = {}
    for ns in (1, 2):
        assert (
            perplexity_command(paths["tq2_0"], text, ctx=16, engine="interp", json_out=True, sentrons=ns) == 0
        )
        ppl[ns] = json.loads(capsys.readouterr().out)["perplexity"]
    assert ppl[1] == ppl[2] and ppl[1] > 1


BRANCH_SRC = """
input a: f32[1, 16]
input c: i32[1]
tensor s: f32[4, 16] @ 3.1.1/1.1.1/1.1.1
output y: f32[1, 16]
let ci: i32 = load(c, 0)
if ci != 0 {
  s[0] = a
}
y = copy(slice(s, 0, 1))
"""


@pytest.mark.parametrize("taken", [0, 1])
def test_a_write_in_one_branch_is_ordered_before_the_read_after_the_join(taken):
    a = np.arange(16, dtype=np.float32)[None, :]
    (y,) = _run(BRANCH_SRC, {"a": a, "c": np.array([taken], np.int32)}, ["y"], 2)
    assert np.array_equal(y, a if taken else np.zeros_like(a))


@pytest.mark.slow
def test_bench_tp_pairs_sides_and_counts_slow_translations():
    """The paired benchmark: same tokens and logits on 1 and 2 sentrons, and per side the slow-path PPT
    translations (a count, unlike its timings, that a shared host does not disturb)."""
    from vtpu_cli.models.bench_tp import run

    r = run("synthetic:tiny", 2, 4, 2, 1, log=lambda s: None, waits=True)
    assert r["identical"] and r["tokens"][1] == r["tokens"][2] and len(r["tokens"][1]) == 3
    prof = r["wait_profile"]
    assert len(prof["busy_ms"]) == len(prof["wait_ms"]) == 2 and min(prof["busy_ms"]) > 0
    # 5 barriers per layer (q/k/v, the KV append, o, gate/up, down) and the head's
    assert len(prof["barriers"]) >= 5 and all(b["count"] >= 1 for b in prof["barriers"])
    for n in (1, 2):
        slow = r["slow_translations"][n]
        assert set(slow) == {"prefill", "decode_step"}
        assert all(isinstance(v, int) and v >= 0 for v in slow.values())
    assert r["prefill_ratio"] > 0 and r["decode_ratio"] > 0
    # per barrier the slow translations before it; per round the on-CPU ms of each sentron thread
    assert all(len(b["slow"]) == 2 and min(b["slow"]) >= 0 for b in prof["barriers"])
    assert sum(sum(b["slow"]) for b in prof["barriers"]) > 0
    cpu = r["prefill_cpu_ms_runs"]
    assert [len(c) for c in cpu[1]] == [1] and [len(c) for c in cpu[2]] == [2]
    assert min(min(c) for c in cpu[2]) > 0 and r["prefill_cpu_ratio"] > 0
    assert all(len(r["decode_cpu_ms_runs"][n]) == 1 and r["decode_cpu_ms_runs"][n][0] > 0 for n in (1, 2))


def test_wait_log_records_every_barrier_of_each_sentron(monkeypatch):
    """The JIT's collective wait log (diagnosis, off by default): one entry per barrier and sentron, in
    program order, arrival before leaving, both sentrons at the same barrier SIWs; off, nothing is
    written."""
    from vtpu_cli.engines.jit import comm

    inputs = _inputs(np.random.default_rng(7))
    monkeypatch.setattr(comm, "WAIT_LOG_ENTRIES", 0)
    comm.wait_logs.clear()
    _run(SHARD_SRC, inputs, ["y", "z"], 2, engine="jit")
    assert not comm.wait_logs
    monkeypatch.setattr(comm, "WAIT_LOG_ENTRIES", 64)
    prog, _ = compile_phx(SHARD_SRC, "tp.phx", opt=2, sentrons=2)
    cbars = {i for i, siw in enumerate(prog.code) if any(ins.op.name == "CBAR" for ins in siw)}
    _run(SHARD_SRC, inputs, ["y", "z"], 2, engine="jit")
    (n, log, _raw), *_ = comm.wait_logs
    parts = comm.read_wait_log(n, log)
    assert n == 2 and len(parts) == 2
    (t0a, a), (t0b, b) = parts
    # two sharded ops (one barrier for both) and the final barrier before sentron 0 publishes outputs
    assert len(a) == len(b) >= 2
    assert list(a["pc"]) == list(b["pc"]) and set(a["pc"].tolist()) <= cbars
    for t0, e in parts:
        assert t0 > 0 and (e["arrive"] >= t0).all() and (e["leave"] >= e["arrive"]).all()
        assert (e["arrive"][1:] >= e["leave"][:-1]).all()
    # (TSCs of different cores are not compared: RDTSC is not serialising, and a VM's may be skewed)


def test_wait_profile_splits_busy_and_waiting_time_per_barrier():
    """bench_tp's wait profile from a hand-made log: busy = arrival - previous leave (the run's entry
    first), wait = leave - arrival, per barrier SIW (in first-seen order) and sentron, summed over
    the trips of a loop."""
    from vtpu_cli.engines.jit import comm
    from vtpu_cli.models.bench_tp import wait_profile

    cap = 4
    stride = comm.WLOG_HEAD + comm.WLOG_ENTRY * cap
    log = np.zeros(2 * stride, np.uint8)
    # (pc, arrive, leave) per sentron, TSC ticks; hz = 1000 ticks per ms below
    trips = {
        0: (100, [(7, 1100, 1500), (9, 2500, 3000), (7, 3600, 3700)]),
        1: (100, [(7, 1500, 1500), (9, 2000, 3000), (7, 3700, 3700)]),
    }
    for s, (t0, ents) in trips.items():
        head = log[s * stride : s * stride + comm.WLOG_HEAD].view(np.uint64)
        head[0], head[1] = len(ents), t0
        e = log[s * stride + comm.WLOG_HEAD : (s + 1) * stride].view(comm.WAIT_LOG_DTYPE)
        for i, (pc, a, lv) in enumerate(ents):
            e[i] = (pc, a, lv, 0)
    prof = wait_profile([(2, log)], hz=1e6)
    b7, b9 = prof["barriers"]
    assert b7["siw"] == 7 and b9["siw"] == 9 and b7["count"] == 2 and b9["count"] == 1
    assert b7["busy_ms"] == [1.6, 2.1] and b7["wait_ms"] == [0.5, 0.0]  # two trips summed
    assert b9["busy_ms"] == [1.0, 0.5] and b9["wait_ms"] == [0.5, 1.0]
    assert prof["busy_ms"] == [2.6, 2.6] and prof["wait_ms"] == [1.0, 1.0]
