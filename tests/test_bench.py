"""vBench: gate logic with injected measurements, the JSON schema, and unverified results never pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import PROGRAMS

from vtpu_cli.bench.suite import evaluate_gate, gate_exit, load_manifests, run_benchmark

HOST = {"cores": 2, "tsc_ghz": 2.6, "cycle_source": {"source": "tsc"}}


def prog(name, opc=3.0, verified=True, phases=("phase0",), **kw):
    d = {
        "name": name,
        "phases": list(phases),
        "verified": verified,
        "ops_per_cycle": opc,
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


def vtpu(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "vtpu_cli.cli.main", *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_json_schema(tmp_path):
    out = tmp_path / "b.json"
    r = vtpu("bench", "--engine", "interp", "--quick", "--gate", "phase1", "row_walk", "--json", str(out))
    doc = json.loads(out.read_text())
    assert {"gate", "passed", "cycle_source", "host", "criteria", "programs"} <= set(doc)
    assert {"cpu", "features", "cores", "tsc_ghz"} <= set(doc["host"])
    for c in doc["criteria"]:
        assert {"name", "value", "threshold", "passed"} <= set(c)
    p = doc["programs"][0]
    assert {"name", "verified", "ops_per_cycle", "seconds", "rates", "ppt_hit_rate"} <= set(p)
    assert p["name"] == "row_walk" and p["verified"] is True
    assert r.returncode == 3  # node throughput is not measurable on the interpreter


def test_a_wrong_program_is_unverified_and_fails(tmp_path):
    d = tmp_path / "bench"
    d.mkdir()
    src = (
        (PROGRAMS / "bench" / "d_heavy.vasm").read_text().replace("DBCAST.f32 v0, 0.0", "DBCAST.f32 v0, 1.0")
    )
    (d / "wrong.vasm").write_text(src)
    (d / "wrong.toml").write_text(
        'name = "wrong"\nprogram = "wrong.vasm"\nphases = ["phase0"]\n'
        'reference = "d_heavy"\n[params.quick]\nITERS = 10\n'
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
