"""vBench: gate logic with injected measurements, the JSON schema, and unverified results never pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vtpu_cli.bench.suite import (
    PROGRAM_KEYS,
    bench_dir,
    evaluate_gate,
    gate_exit,
    load_manifests,
    run_benchmark,
)

HOST = {"cores": 2, "tsc_ghz": 2.6, "cycle_source": {"source": "tsc"}}


def prog(name, opc=3.0, verified=True, phases=("phase0",), **kw):
    d = {
        "name": name,
        "phases": list(phases),
        "verified": verified,
        "ops_per_cycle": opc,
        "ops_per_tsc": opc * 1.2 if opc else None,
        "native": True,
        "engine": "jit",
        "error": None,
        "sentrons": 1,
        "gops": 1.0,
        "ppt_hit_rate": None,
    }
    d.update(kw)
    return d


def test_phase0_pass_fail_and_unmeasured():
    ok = evaluate_gate("phase0", [prog("a", 3.0), prog("b", 2.7)], HOST, "jit")
    assert ok[0]["passed"] is True and abs(ok[0]["value"] - (3.0 * 2.7) ** 0.5) < 1e-12
    assert gate_exit(ok) == 0
    low = evaluate_gate("phase0", [prog("a", 3.0), prog("b", 1.0)], HOST, "jit")
    assert low[0]["passed"] is False and gate_exit(low) == 1
    interp = evaluate_gate("phase0", [prog("a", 9.0)], HOST, "interp")
    assert interp[0]["passed"] is None and gate_exit(interp) == 3 and "JIT" in interp[0]["not_measured"]
    none = evaluate_gate("phase0", [], HOST, "jit")
    assert gate_exit(none) == 3


def test_unverified_program_cannot_pass_a_gate():
    crit = evaluate_gate("phase0", [prog("a", 9.0), prog("bad", 9.0, verified=False)], HOST, "jit")
    assert crit[0]["passed"] is False and crit[0]["value"] == 0.0 and "bad" in crit[0]["note"]


def test_a_program_that_did_not_run_natively_or_faulted_fails_the_gate():
    interp = prog("b", 9.0, native=False, engine="interp", fallback="unsupported op")
    crit = evaluate_gate("phase0", [prog("a", 3.0), interp], HOST, "jit")
    assert crit[0]["passed"] is False and gate_exit(crit) == 1 and "natively" in crit[0]["note"]
    faulted = prog("c", None, verified=False, error="run fault: ...")
    crit = evaluate_gate("phase0", [prog("a", 3.0), faulted], HOST, "jit")
    assert crit[0]["passed"] is False and gate_exit(crit) == 1 and "fault" in crit[0]["note"]
    tp = [prog("bal", phases=("phase0",), throughput=True, sentrons=2, gops=99.0, native=False)]
    assert gate_exit(evaluate_gate("phase1", tp, HOST, "jit")[1:]) == 1


def test_gate_uses_core_cycles_and_reports_tsc_ticks():
    crit = evaluate_gate("phase0", [prog("a", 2.0), prog("b", 2.0)], HOST, "jit")
    assert crit[0]["value"] == 2.0 and abs(crit[0]["per_tsc_tick"] - 2.4) < 1e-12


def test_gate_reports_ops_per_oncpu_cycle():
    """Beside the gate's value (TSC ticks x core clock), the geomean per on-CPU cycle: each run's native
    ticks or its process CPU time, whichever is less (preemption by other processes left out)."""
    ps = [
        prog("a", 2.0, rates={"ops_per_oncpu_cycle": 3.0}),
        prog("b", 1.0, rates={"ops_per_oncpu_cycle": 3.0}),
    ]
    crit = evaluate_gate("phase0", ps, HOST, "jit")
    assert abs(crit[0]["value"] - 2.0**0.5) < 1e-12 and abs(crit[0]["per_oncpu_cycle"] - 3.0) < 1e-12
    assert crit[0]["passed"] is False  # the gate itself stays on TSC ticks
    ps[1]["rates"] = {}
    assert evaluate_gate("phase0", ps, HOST, "jit")[0]["per_oncpu_cycle"] is None


@pytest.mark.parametrize("name", ["d_heavy", "c_heavy"])
def test_oncpu_cycles_bound_the_run(name):
    """Per on-CPU cycle is never below per TSC-derived core cycle nor below per process-CPU cycle: each
    run's on-CPU ticks are the lesser of its native ticks and its CPU time (which includes the
    engine's set-up around the native run)."""
    m = {m.name: m for m in load_manifests()}[name]
    r = run_benchmark(m, "jit", "quick", 3)
    assert r["verified"] and r["native"], r["error"]
    if r["core_per_tsc"] is None:
        pytest.skip("no core clock on this host")
    on = r["rates"]["ops_per_oncpu_cycle"]
    assert on >= r["ops_per_cycle"] * (1 - 1e-9) and on >= r["ops_per_cpu_cycle"] * (1 - 1e-9)


def test_phase1_hit_rate_and_normalised_throughput():
    ps = [
        prog("walk", phases=("phase1",), structured=True, ppt_hit_rate=0.97),
        prog("gemv", phases=("phase1",), structured=True, ppt_hit_rate=0.99),
        prog("bal", phases=("phase0",), throughput=True, sentrons=2, gops=12.0),
    ]
    crit = evaluate_gate("phase1", ps, HOST, "jit")
    assert crit[0]["value"] == 0.97 and crit[0]["passed"]
    assert abs(crit[1]["threshold"] - 60 / 32 * 2 * 2.6) < 1e-9 and crit[1]["passed"]
    assert "60 Gops/s" in crit[1]["original_target"]
    ps[0]["ppt_hit_rate"] = 0.5
    assert gate_exit(evaluate_gate("phase1", ps, HOST, "jit")) == 1
    assert gate_exit(evaluate_gate("phase1", ps, HOST, "interp")) == 3  # throughput not measured


def test_phase2_reports_the_missing_capability():
    crit = evaluate_gate("phase2", [], HOST, "jit")
    assert gate_exit(crit) == 3
    assert all(c["passed"] is None for c in crit)
    assert "MPI" in crit[0]["not_measured"]


def test_every_manifest_loads_and_quick_run_verifies():
    ms = {m.name: m for m in load_manifests()}
    assert {
        "d_heavy",
        "s_heavy",
        "c_heavy",
        "balanced",
        "double_buffer",
        "ternary_gemv",
        "f32_gemm",
        "embedding",
        "ring_allreduce",
        "pingpong",
        "row_walk",
    } <= set(ms)
    for name in ("double_buffer", "ternary_gemv", "f32_gemm", "ring_allreduce"):
        r = run_benchmark(ms[name], "interp", "quick", 1)
        assert r["verified"], (name, r["error"])
        assert r["ops"] > 0 and r["cycles"] > 0 and r["ops_per_cycle"] > 0
        assert set(r) == set(PROGRAM_KEYS) and r["engine"] == "interp" and r["native"] is False


@pytest.mark.parametrize("name", ["balanced", "d_heavy", "s_heavy", "c_heavy", "double_buffer"])
@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_phase0_streams_verify_on_both_engines(name, engine):
    """The rewritten streams: outputs checked exactly against numpy; on the JIT they run natively."""
    m = {m.name: m for m in load_manifests()}[name]
    r = run_benchmark(m, engine, "quick", 1)
    assert r["verified"] and r["error"] is None, r["error"]
    assert r["native"] is (engine == "jit")
    assert r["ops_per_tsc"] > 0 and (r["core_per_tsc"] is None or r["core_per_tsc"] > 0)


def test_a_stream_that_skips_work_is_not_verified(tmp_path):
    """The check reads what the program computed: an FMA fed the wrong operand fails it."""
    import dataclasses

    m = {m.name: m for m in load_manifests()}["d_heavy"]
    src = m.program.read_text().replace("DFMA.f32 v3, v28, v31, v3", "DFMA.f32 v3, v28, v30, v3", 1)
    assert src != m.program.read_text()
    (tmp_path / "d.vasm").write_text(src)
    r = run_benchmark(dataclasses.replace(m, program=tmp_path / "d.vasm"), "interp", "quick", 1)
    assert not r["verified"] and "ACC[3]" in r["error"]


def vtpu(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "vtpu_cli.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_json_schema(tmp_path):
    """One schema: every program entry has the same keys (those docs/bench.md lists)."""
    out = tmp_path / "b.json"
    r = vtpu(
        "bench", "--engine", "interp", "--quick", "--gate", "phase1", "row_walk", "ring_allreduce",
        "ternary_gemv", "--json", str(out),
    )  # fmt: skip
    doc = json.loads(out.read_text())
    assert {"gate", "passed", "cycle_source", "host", "criteria", "programs"} <= set(doc)
    assert {"cpu", "features", "cores", "tsc_ghz", "core_ghz"} <= set(doc["host"])
    for c in doc["criteria"]:
        assert {"name", "value", "threshold", "passed"} <= set(c)
    assert [p["name"] for p in doc["programs"]] == ["row_walk", "ring_allreduce", "ternary_gemv"]
    for p in doc["programs"]:
        assert set(p) == set(PROGRAM_KEYS), set(p) ^ set(PROGRAM_KEYS)
        assert p["verified"] is True and p["engine"] == "interp"
    gemv = doc["programs"][2]
    assert gemv["roofline"]["fraction"] > 0 and gemv["baseline"]["ratio"] > 0
    assert "same 2-bit bytes" in gemv["baseline"]["what"]
    documented = (Path(__file__).parents[1] / "docs" / "bench.md").read_text()
    for key in PROGRAM_KEYS:
        assert f'"{key}"' in documented, f"docs/bench.md does not document {key}"
    assert r.returncode == 3  # node throughput is not measurable on the interpreter


def test_json_to_stdout_and_unwritable_paths_fail_before_running(tmp_path):
    r = vtpu("bench", "--engine", "interp", "--quick", "row_walk", "--json", "-")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # stdout is the JSON document alone (the table goes to stderr)
    assert doc["programs"][0]["name"] == "row_walk" and "vBench" in r.stderr
    assert not (Path.cwd() / "-").exists()
    for bad in (tmp_path / "missing" / "b.json", tmp_path):
        r = vtpu("bench", "--engine", "interp", "--quick", "row_walk", "--json", str(bad))
        assert r.returncode == 2 and "cannot write" in r.stderr and "vBench" not in r.stderr + r.stdout


def test_suite_runs_from_any_directory(tmp_path):
    """The suite ships inside the package: no checkout, no VTPU_BENCH_DIR needed."""
    assert (bench_dir() / "balanced.toml").is_file() and "site-packages" not in str(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "VTPU_BENCH_DIR"}
    r = subprocess.run(
        [sys.executable, "-m", "vtpu_cli.cli.main", "bench", "--list"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert r.returncode == 0 and "balanced" in r.stdout


def test_a_wrong_program_is_unverified_and_fails(tmp_path):
    d = tmp_path / "bench"
    d.mkdir()
    src = (bench_dir() / "d_heavy.vasm").read_text().replace("DBCAST.f32 v0, 0.0", "DBCAST.f32 v0, 1.0")
    (d / "wrong.vasm").write_text(src)
    (d / "wrong.toml").write_text(
        'name = "wrong"\nprogram = "wrong.vasm"\nphases = ["phase0"]\n'
        'reference = "d_heavy"\n[params.quick]\nITERS = 40\nSEG = 1024\n'
    )
    env = dict(os.environ, VTPU_BENCH_DIR=str(d))
    r = vtpu("bench", "--engine", "interp", "--quick", "--json", str(tmp_path / "w.json"), env=env)
    doc = json.loads((tmp_path / "w.json").read_text())
    assert doc["programs"][0]["verified"] is False and "does not match" in doc["programs"][0]["error"]
    assert r.returncode == 1 and doc["passed"] is False


def test_list_and_unknown_names():
    r = vtpu("bench", "--list")
    assert r.returncode == 0 and "ternary_gemv" in r.stdout
    r = vtpu("bench", "nosuch")
    assert r.returncode == 2 and "unknown benchmark" in r.stderr
    r = vtpu("bench", "--gate", "phase9")
    assert r.returncode == 2


def test_generated_kernels_match_the_generator():
    """The shipped .vasm files are exactly what `python -m vtpu_cli.bench.generate` writes."""
    from vtpu_cli.bench.generate import GENERATED, with_defaults

    for name, fn in GENERATED.items():
        want = with_defaults(name, fn())
        assert (bench_dir() / name).read_text() == want, f"{name}: rerun python -m vtpu_cli.bench.generate"


def test_every_bench_program_assembles_on_its_own():
    """Each program carries its quick-size parameters as `.const` defaults (the suite overrides them)."""
    from vtpu_cli.asm.assembler import assemble

    for path in sorted(bench_dir().glob("*.vasm")):
        assert assemble(path.read_text(), str(path)).code, path.name


def test_core_clock_is_measured_against_the_tsc():
    """The add chain runs and yields a ratio (a sanity range, not a performance assertion)."""
    from vtpu_cli.core.cycles import core_clock

    c = core_clock(window_s=0.0005, windows=3)
    if c["core_per_tsc"] is None:
        pytest.skip(c["method"])
    assert 0.05 < c["core_per_tsc"] < 20 and c["core_hz"] > 0 and "dependent" in c["method"]


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_a_faulting_program_is_never_verified(tmp_path, engine):
    """A run that faults is reported with its fault and counts as unverified (and fails a gate)."""
    (tmp_path / "f.vasm").write_text(
        ".coord PARAMS = 1.2.4/1.1.9/1.1.1\n.data PARAMS i64[2] ITERS, SEG\n"
        "    DMOV r1, 1 | SCOORD p0, PARAMS\n    | SGATHER.i64 r2, [p0 + 4096]\n"
    )
    (tmp_path / "f.toml").write_text(
        'name = "f"\nprogram = "f.vasm"\nphases = ["phase0"]\nreference = "d_heavy"\n'
        "[params.quick]\nITERS = 40\nSEG = 1024\n"
    )
    (m,) = load_manifests(tmp_path)
    r = run_benchmark(m, engine, "quick", 1)
    assert r["verified"] is False and r["error"].startswith("run fault")
    crit = evaluate_gate("phase0", [r], HOST, "jit")
    assert crit[0]["passed"] is False and gate_exit(crit) == 1


def test_phase2_judges_measured_mpi_figures():
    mpi = {"latency_us": 9.0, "gops": 0.5, "overhead": 0.02}
    crit = {c["name"]: c for c in evaluate_gate("phase2", [], HOST, "jit", {"mpi": mpi})}
    lat = crit["C-pipe latency between processes (one-way, median)"]
    assert lat["value"] == 9.0 and lat["passed"] is True
    gops = crit["cluster Gops/s (normalised per core-GHz)"]
    assert gops["value"] == 0.5 and gops["passed"] is False
    over = crit["communication overhead"]
    assert over["value"] == 0.02 and over["passed"] is True


def test_short_runs_verify_and_rank():
    """``python -m vtpu_cli.bench.suite``: short native runs, verified, the fastest above the 25th
    percentile; an unknown program is an error, not a traceback."""
    from vtpu_cli.bench.suite import _short_main, short_runs
    from vtpu_cli.core.errors import VtpuError

    (r,) = short_runs(["c_heavy"], iters=200, runs=5)
    assert r["name"] == "c_heavy" and r["ops"] > 200 and r["best"] >= r["q25"] > 0
    with pytest.raises(VtpuError, match="no bench program"):
        short_runs(["nope"], iters=10, runs=1)
    assert _short_main(["--runs", "2", "--iters", "50", "double_buffer"]) == 0
    assert _short_main(["--runs", "1", "nope"]) == 1


def test_runs_alternate_and_each_run_uses_the_clock_measured_around_it(monkeypatch):
    """The timed runs of several programs alternate (a burst of other work hits a run of each, not every
    run of one), and each run's core cycles are its own ticks x the higher of the two clock readings
    taken around it; the program's figure is the median of its runs'."""
    import statistics

    from vtpu_cli.bench import suite
    from vtpu_cli.core import cycles

    if cycles.tsc_reader() is None:
        pytest.skip("no TSC on this host")
    order, readings = [], iter([1.0, 1.5, 2.0, 1.2, 1.0, 3.0, 1.1, 1.1, 2.5, 0.5, 1.3, 1.4] * 2)
    monkeypatch.setattr(
        cycles, "clock_sample", lambda *a, **k: {"core_per_tsc": next(readings), "alu_per_cycle": 4.5}
    )
    real = suite._execute

    def execute(engine, program, n, mem):
        order.append(id(program))
        return real(engine, program, n, mem)

    monkeypatch.setattr(suite, "_execute", execute)
    ms = {m.name: m for m in load_manifests()}
    benches = [suite._Timed(ms[n], "jit", "quick", 3) for n in ("c_heavy", "d_heavy")]
    a, b = suite.run_interleaved(benches)
    # one untimed warm-up round, then three timed ones, alternated
    assert order[0::2] == [order[0]] * 4 and order[1::2] == [order[1]] * 4 and order[0] != order[1]
    hz = cycles.tsc_hz()
    for r, ratios in ((a, [1.5, 3.0, 2.5]), (b, [2.0, 1.1, 1.4])):
        assert r["verified"] and r["native"], r["error"]
        per_run = [r["ops"] / (s * hz * k) for s, k in zip(r["seconds_all"], ratios, strict=True)]
        assert r["ops_per_cycle_all"] == pytest.approx(per_run, rel=1e-6)
        assert r["ops_per_cycle"] == pytest.approx(
            r["ops"] / statistics.median(s * hz * k for s, k in zip(r["seconds_all"], ratios, strict=True)),
            rel=1e-6,
        )
        assert r["core_per_tsc"] == statistics.median(ratios) and r["alu_per_cycle"] == 4.5


def test_phase0_reports_the_alu_probe():
    ps = [prog("a", 3.0, alu_per_cycle=4.6), prog("b", 2.7, alu_per_cycle=3.0), prog("c", 2.8)]
    assert evaluate_gate("phase0", ps, HOST, "jit")[0]["alu_per_cycle"] == pytest.approx(3.8)


def test_preempted_runs_are_counted(monkeypatch):
    """A run during which the process waited for a CPU for >= 1 % of its time is counted (reported, not
    dropped); the wait is read from the kernel's per-thread schedstat."""
    from vtpu_cli.bench import suite

    # warm-up takes none; timed runs wait 0, 1 s (preempted), 0, 1 s (preempted): a quick run is < 1 s
    waits = iter([0, 0, 5, 10**9 + 5, 7, 7, 7, 10**9 + 7])
    monkeypatch.setattr(suite, "_runqueue_wait_ns", lambda: next(waits))
    m = {m.name: m for m in load_manifests()}["d_heavy"]
    r = run_benchmark(m, "jit", "quick", 4)
    if r["core_per_tsc"] is None:
        pytest.skip("no core clock on this host")
    assert r["verified"] and len(r["ops_per_cycle_all"]) == 4 and r["preempted_runs"] == 2
    crit = evaluate_gate("phase0", [r], HOST, "jit")[0]
    assert crit["preempted_runs"] == 2 and crit["timed_runs"] == 4


def test_runqueue_wait_is_read_from_the_kernel():
    """Linux reports each thread's run-queue wait; the sum never decreases (None elsewhere)."""
    from vtpu_cli.bench.suite import _runqueue_wait_ns

    a = _runqueue_wait_ns()
    if a is None:
        pytest.skip("no /proc/self/task/*/schedstat")
    assert isinstance(a, int) and 0 <= a <= _runqueue_wait_ns()
