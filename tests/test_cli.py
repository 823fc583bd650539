"""End-to-end CLI behaviour: outputs, JSON, stats, traces, disassembly, version."""

from __future__ import annotations

import json

import pytest
from conftest import PROGRAMS
from test_errors import vtpu


def test_run_prints_designated_outputs():
    r = vtpu("run", str(PROGRAMS / "ternary_dot.vasm"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "sentron 0: r1.i64 = 795"


def test_run_json_with_stats():
    r = vtpu("run", str(PROGRAMS / "dot.vasm"), "--json", "--stats")
    doc = json.loads(r.stdout)
    assert doc["status"] == "ok" and doc["fault"] is None
    assert doc["outputs"] == [{"kind": "reg", "sentron": 0, "name": "r5", "dtype": "f32", "value": -77.0}]
    st = doc["stats"]
    assert st["siws"] == 3 + 4 * 5 + 1
    assert st["ops_by_pipe"]["S"] == 2 + 8
    assert st["ops"] == sum(st["ops_by_pipe"].values())
    assert abs(st["ops_per_siw"] - st["ops"] / st["siws"]) < 1e-12


def test_asm_then_run_and_disasm(tmp_path):
    out = tmp_path / "v.siw"
    r = vtpu("asm", str(PROGRAMS / "vadd.vasm"), "-o", str(out))
    assert r.returncode == 0 and out.exists()
    r = vtpu("run", str(out))
    assert "C (1.1.1/1.1.1/1.1.3) f32[32] = [1.5, 2.5" in r.stdout
    text = vtpu("disasm", str(out)).stdout
    (tmp_path / "again.vasm").write_text(text)
    vtpu("asm", str(tmp_path / "again.vasm"), "-o", str(tmp_path / "again.siw"))
    assert (tmp_path / "again.siw").read_bytes() == out.read_bytes()


def test_trace_is_chrome_json_with_pipe_tracks(tmp_path):
    trace = tmp_path / "t.json"
    r = vtpu("run", str(PROGRAMS / "dot.vasm"), "--trace", str(trace))
    assert r.returncode == 0
    doc = json.loads(trace.read_text())
    ev = doc["traceEvents"]
    names = {e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"D pipe", "S pipe", "C pipe", "waits"} <= names
    spans = [e for e in ev if e["ph"] == "X"]
    assert sum(1 for e in spans if e["name"] == "DFMA.f32") == 4
    assert all(e["dur"] >= 1 for e in spans)


def test_version_and_help_and_isa():
    assert "svISA v1" in vtpu("--version").stdout
    h = vtpu("--help")
    assert h.returncode == 0 and "asm" in h.stdout and "run" in h.stdout
    assert "DTERNARY" in vtpu("isa").stdout


def test_topo_subcommand_is_mounted_with_clean_errors():
    r = vtpu("topo", "show", "4x4x8", "--twisted", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["diameter"] == 6 and doc["bisection_links"] == 64
    bad = vtpu("topo", "show", "4x4x9", "--twisted")
    assert bad.returncode == 2 and "cannot be twisted" in bad.stderr and "Traceback" not in bad.stderr


def test_bundle_syntax_and_dump(tmp_path):
    src = tmp_path / "b.vasm"
    src.write_text("""; a bundle spreads one SIW over several lines
    DMOV r1, 5
{
    DADD r2, r1, 1
    SCOORD p1, 1.1.1/1.1.1/1.1.7
    CPACK.i64 m0, r1
}
""")
    r = vtpu("run", str(src), "--dump", "--stats", "--json")
    doc = json.loads(r.stdout)
    assert doc["stats"]["siws"] == 2 and doc["stats"]["ops_by_pipe"] == {"D": 2, "S": 1, "C": 1}
    r = vtpu("run", str(src), "--dump")
    assert "r2=6" in r.stdout and "p1=1.1.1/1.1.1/1.1.7" in r.stdout and "m0=0500000000000000" in r.stdout


def test_cc_compiles_and_the_result_runs_on_both_engines(tmp_path):
    import numpy as np

    from vtpu_cli.machine.tensorfile import write_safetensors

    out = tmp_path / "dot.siw"
    r = vtpu("cc", str(PROGRAMS / "phx" / "dot.phx"), "-o", str(out), "-O3", "--report", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep and out.exists()
    x = np.arange(64, dtype=np.float32)
    y = np.full(64, 0.5, np.float32)
    mem = tmp_path / "in.safetensors"
    write_safetensors(
        str(mem),
        {"1.1.1/1.1.1/1.1.1": ("f32", (64,), x.tobytes()), "1.1.1/1.1.1/1.1.2": ("f32", (64,), y.tobytes())},
    )
    vals = []
    for engine in ("interp", "jit"):
        r = vtpu("run", str(out), "--mem", str(mem), "--engine", engine, "--json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        vals.append(doc["outputs"][0]["value"])
    assert vals[0] == vals[1] and vals[0][0] == float(np.dot(x, y))


def test_cc_diagnostics_exit_2(tmp_path):
    bad = tmp_path / "bad.phx"
    bad.write_text("input x: f32[4] @ 1.1.1/1.1.1/1.1.1\ny = relu(z)\n")
    r = vtpu("cc", str(bad), "-o", str(tmp_path / "b.siw"))
    assert r.returncode == 2 and "bad.phx:2:" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("extra", [["-n", "4"], ["--engine", "interp"]])
def test_ctrl_c_stops_a_runaway_program_cleanly(extra):
    import signal
    import subprocess
    import sys
    import time

    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vtpu_cli.cli.main",
            "run",
            str(PROGRAMS / "errors" / "infinite_loop.vasm"),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert p.returncode == 130 and "interrupted" in err and "Traceback" not in err
