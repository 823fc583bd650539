"""End-to-end CLI behaviour: outputs, JSON, stats, traces, disassembly, version."""

from __future__ import annotations

import json

import pytest
from conftest import PROGRAMS, interruptible
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
    assert "svISA v2" in vtpu("--version").stdout
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
        preexec_fn=interruptible,
    )
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert p.returncode == 130 and "interrupted" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------- issue 16
VADD = PROGRAMS / "vadd.vasm"
DOT_PHX = PROGRAMS / "phx" / "dot.phx"


def _json(r) -> dict:
    """The one JSON document a --json command prints, whatever the outcome."""
    assert r.stdout.count("\n{") == 0 and r.stdout.lstrip().startswith("{"), r.stdout + r.stderr
    return json.loads(r.stdout)


def test_json_is_one_document_for_every_outcome(tmp_path):
    """Defect 1: cc/run/asm with --json print one JSON document for success and for bad input."""
    bad_phx = tmp_path / "bad.phx"
    bad_phx.write_text("let x = \n")
    r = vtpu("cc", str(bad_phx), "--json")
    doc = _json(r)
    assert r.returncode == 2 and doc["ok"] is False and doc["diagnostics"][0]["line"] == 1
    r = vtpu("cc", str(DOT_PHX), "--json", "-o", str(tmp_path / "x.siw"))
    doc = _json(r)
    assert r.returncode == 0 and doc["ok"] and doc["output"].endswith("x.siw") and doc["report"]["functions"]
    for args in (("run", str(tmp_path / "missing.vasm"), "--json"), ("run", str(bad_phx), "--json")):
        r = vtpu(*args)
        doc = _json(r)
        assert r.returncode == 2 and doc["status"] == "error" and doc["error"]
    r = vtpu("run", str(VADD), "--json", "--sentrons", "0")
    assert r.returncode == 2 and _json(r)["status"] == "error"  # a usage error too


def test_closed_pipe_and_full_disk_end_cleanly(tmp_path):
    """Defect 2: /dev/full is a clean error; a closed pipe ends quietly (no traceback)."""
    import subprocess
    import sys

    siw = tmp_path / "v.siw"
    assert vtpu("asm", str(VADD), "-o", str(siw)).returncode == 0
    cmd = [sys.executable, "-m", "vtpu_cli.cli.main"]
    for args in (["disasm", str(siw)], ["run", str(siw), "--json", "--engine", "interp"]):
        with open("/dev/full", "w") as full:
            r = subprocess.run(cmd + args, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
        assert r.returncode == 2 and "cannot write to standard output" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    p = subprocess.Popen(cmd + ["isa", "--markdown"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.readline()
    p.stdout.close()  # the reader goes away after one line, like `| head -1`
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) in (0, 141) and err == ""


def test_output_that_is_the_input_is_refused(tmp_path):
    """Defect 3."""
    src = tmp_path / "x.vasm"
    src.write_text(VADD.read_text())
    r = vtpu("asm", str(src), "-o", str(src))
    assert r.returncode == 2 and "is the input file" in r.stderr and src.read_text() == VADD.read_text()
    phx = tmp_path / "x.phx"
    phx.write_text(DOT_PHX.read_text())
    r = vtpu("cc", str(phx), "-o", str(phx))
    assert r.returncode == 2 and phx.read_text() == DOT_PHX.read_text()


def test_cc_emit_writes_the_file_its_help_names(tmp_path):
    """Defect 4: --emit vasm writes SOURCE.vasm (help says so); -o - writes stdout."""
    phx = tmp_path / "m.phx"
    phx.write_text(DOT_PHX.read_text())
    r = vtpu("cc", str(phx), "--emit", "vasm")
    assert r.returncode == 0 and r.stdout == "" and (tmp_path / "m.vasm").read_text().startswith("; svISA")
    assert f"wrote {tmp_path / 'm.vasm'}" in r.stderr
    r = vtpu("cc", str(phx), "--emit", "vasm", "-o", "-")
    assert r.stdout == (tmp_path / "m.vasm").read_text()
    assert "SOURCE with .siw, .vasm or .ir" in " ".join(vtpu("cc", "-h").stdout.split())


def test_cc_on_a_directory_a_binary_or_assembly_is_a_clean_error(tmp_path):
    """Defects 5 and 6."""
    siw = tmp_path / "v.siw"
    vtpu("asm", str(VADD), "-o", str(siw))
    for path, needle in (
        (tmp_path, "is a directory"),
        (siw, "not UTF-8 text"),
        (VADD, "svISA assembly, not the .phx language"),
    ):
        r = vtpu("cc", str(path))
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = vtpu("run", str(DOT_PHX), "--engine", "interp")  # run compiles .phx on the fly
    assert r.returncode == 0 and r.stdout.startswith("r (1.1.1/1.1.1/1.1.3) f32[16]"), r.stderr


def test_help_and_usage_errors_speak_plainly():
    """Defect 9: -h works, metavars are plain, choices listed, no framework wording."""
    h = vtpu("run", "-h")
    assert h.returncode == 0 and "PROGRAM" in h.stdout
    for leak in ("{PROGRAM}", "list[Path]", "<str>", "[[NAME]...]"):
        assert leak not in h.stdout
    assert "phase0,phase1,phase2" in vtpu("bench", "-h").stdout.replace(" ", "")
    assert "{siw,vasm,ir}" in vtpu("cc", "-h").stdout
    r = vtpu("run", str(VADD), "-n", "0")
    assert r.returncode == 2 and "must be at least 1, got 0" in r.stderr and "Input should" not in r.stderr
    r = vtpu("run", str(VADD), "--engine", "gpu")
    assert r.returncode == 2 and "invalid choice: 'gpu'" in r.stderr and "Value error" not in r.stderr
    r = vtpu("run", str(VADD), "--bogus")
    assert r.returncode == 2 and "unknown option --bogus" in r.stderr and "did you mean" not in r.stderr
    r = vtpu("run", str(VADD), "--sentron", "2")
    assert "did you mean --sentrons?" in r.stderr


def test_out_all_without_out_and_bom(tmp_path):
    """Defect 10 (the parts in main.py and the assembler): --out-all needs --out; a BOM is not an error;
    every command says what it wrote."""
    r = vtpu("run", str(VADD), "--out-all")
    assert r.returncode == 2 and "--out-all needs --out" in r.stderr
    bom = tmp_path / "bom.vasm"
    bom.write_bytes(b"\xef\xbb\xbf" + VADD.read_bytes())
    r = vtpu("run", str(bom), "--engine", "interp", "--out", str(tmp_path / "o.safetensors"))
    assert r.returncode == 0 and "C (1.1.1/1.1.1/1.1.3)" in r.stdout
    assert f"wrote {tmp_path / 'o.safetensors'}" in r.stderr
    r = vtpu("disasm", str(tmp_path / "none.siw"))
    assert r.returncode == 2


def test_conventions_quiet_color_stdin_defines_isa_op(tmp_path):
    src = tmp_path / "d.vasm"
    src.write_text(".const N = 5\n.output r1\n    DMOV r1, N\n    DHALT\n")
    r = vtpu("-q", "asm", str(src))
    assert r.returncode == 0 and r.stderr == ""
    r = vtpu("asm", "-", "-o", str(tmp_path / "s.siw"), stdin=src.read_text())
    assert r.returncode == 0 and (tmp_path / "s.siw").exists()
    r = vtpu("run", "-", "--engine", "interp", "-D", "N=42", stdin=src.read_text())
    assert r.stdout.strip() == "sentron 0: r1.i64 = 42", r.stderr
    r = vtpu("run", str(src), "--engine", "interp", "-D", "N=0x10")
    assert r.stdout.strip() == "sentron 0: r1.i64 = 16"
    r = vtpu("--color", "always", "asm", str(tmp_path / "missing.vasm"))
    assert "\x1b[" in r.stderr
    r = vtpu("asm", str(tmp_path / "missing.vasm"), "--color", "never")
    assert "\x1b[" not in r.stderr and "no such file" in r.stderr
    r = vtpu("isa", "dfma")
    assert r.returncode == 0 and r.stdout.startswith("DFMA") and "fused multiply-add" in r.stdout
    r = vtpu("isa", "DFMAX")
    assert r.returncode == 2 and "did you mean" in r.stderr


def test_warnings_and_werror(tmp_path):
    src = tmp_path / "w.vasm"
    src.write_text(".const UNUSED = 3\n    DMOV r1, 1\n    DHALT\n")
    r = vtpu("asm", str(src))
    assert r.returncode == 0 and "warning: `UNUSED` is defined but never used" in r.stderr
    assert "no `.output`" in r.stderr
    (tmp_path / "w.siw").unlink()
    r = vtpu("asm", str(src), "-W", "error")
    assert r.returncode == 2 and "error: `UNUSED`" in r.stderr and not (tmp_path / "w.siw").exists()


def test_include_and_error_limit(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "consts.vasm").write_text(".const N = 7\n")
    main = tmp_path / "main.vasm"
    main.write_text('.include "lib/consts.vasm"\n.output r1\n    DMOV r1, N\n    DHALT\n')
    r = vtpu("run", str(main), "--engine", "interp")
    assert r.stdout.strip() == "sentron 0: r1.i64 = 7", r.stderr
    bad = tmp_path / "bad.vasm"
    bad.write_text("FOO\n" * 50 + '.include "nowhere.vasm"\n')
    r = vtpu("asm", str(bad), "--error-limit", "3")
    assert r.returncode == 2 and r.stderr.count("error: unknown op") == 3


def test_completion_script_and_candidates(tmp_path):
    r = vtpu("--show-completion", "bash")
    assert r.returncode == 0 and "complete -o default -F _vtpu_complete vtpu" in r.stdout
    assert vtpu("__complete", "1", "vtpu", "r").stdout.split() == ["run"]
    assert "--sentrons" in vtpu("__complete", "2", "vtpu", "run", "--sen").stdout.split()
    assert vtpu("__complete", "3", "vtpu", "run", "--engine", "").stdout.split() == ["jit", "interp"]
    import os
    import subprocess
    import sys

    env = dict(os.environ, HOME=str(tmp_path), SHELL="/bin/bash", XDG_DATA_HOME=str(tmp_path / "share"))
    r = subprocess.run(
        [sys.executable, "-m", "vtpu_cli.cli.main", "--install-completion"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and (tmp_path / "share/bash-completion/completions/vtpu").exists()


def test_topo_alltoall_without_scipy_is_a_clean_exit_3(tmp_path):
    """scipy lives in the vtpu[pod] extra: without it, a clear message and exit 3 (not a traceback)."""
    import os
    import subprocess
    import sys

    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nclass _NoScipy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'scipy' or name.startswith('scipy.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, _NoScipy())\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run(
        [sys.executable, "-m", "vtpu_cli.cli.main", "topo", "alltoall", "4x4x4"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert "pip install 'vtpu[pod]'" in r.stderr and "Traceback" not in r.stderr
    assert vtpu("topo", "show", "4x4x4").returncode == 0


def test_json_dump_and_missing_output_scroll(tmp_path):
    """Defect 10: --json --dump carries the registers; an .output scroll that does not exist fails."""
    r = vtpu("run", str(PROGRAMS / "ternary_dot.vasm"), "--json", "--dump", "--engine", "interp")
    doc = _json(r)
    assert r.returncode == 0 and doc["registers"][0]["r"][1] == 795 and doc["registers"][0]["halted"]
    src = tmp_path / "m.vasm"
    src.write_text(".coord X = 1.1.1/1.1.1/1.1.9\n.output X\n    DHALT\n")
    r = vtpu("run", str(src), "--engine", "interp")
    assert r.returncode == 1 and "`.output X`: no scroll at 1.1.1/1.1.1/1.1.9" in r.stderr
    r = vtpu("run", str(src), "--json")
    assert r.returncode == 1 and _json(r)["status"] == "missing-output"


def test_run_reuses_the_assembled_program_and_rebuilds_a_damaged_entry(tmp_path, monkeypatch):
    """`vtpu run x.vasm` keeps the assembled .siw (start-up): same source -> same program without the
    assembler; an edited source or a damaged entry -> assembled afresh."""
    from vtpu_cli.asm import loader

    monkeypatch.setenv("VTPU_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "p.vasm"
    src.write_text(".output r1\n    DMOV r1, 5\n    DHALT\n")
    first = loader.load_program(src)
    entries = list((tmp_path / "cache" / "asm").glob("*.siw"))
    assert len(entries) == 1 and oct(entries[0].parent.stat().st_mode & 0o777) == "0o700"
    again = loader.load_program(src)
    assert again.code == first.code and again.outputs == first.outputs and again.source_file == str(src)
    entries[0].write_bytes(b"damaged")
    assert loader.load_program(src).code == first.code
    src.write_text(".output r1\n    DMOV r1, 6\n    DHALT\n")
    assert loader.load_program(src).code != first.code


def test_every_package_ships_in_the_wheel():
    """pyproject lists packages by hand (the grammar folder is mapped in): a new subpackage missing from
    the list installs a `vtpu` that fails with ModuleNotFoundError outside the checkout."""
    import tomllib

    from conftest import ROOT

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("vtpu", "vtpu_cli")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert found <= listed, sorted(found - listed)
    assert "vtpu_cli.grammar" in listed


def test_generate_and_perplexity_are_wired(tmp_path):
    """The model commands are thin: parse, call models.generate (tested there against the reference)."""
    assert "--prompt-file" in vtpu("generate", "-h").stdout
    r = vtpu("generate", str(tmp_path / "none.gguf"), "-p", "hi", "--engine", "interp")
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = vtpu("perplexity", str(tmp_path / "none.gguf"), str(tmp_path / "t.txt"), "--json")
    assert r.returncode == 2 and json.loads(r.stdout)["status"] == "error"
    r = vtpu("generate", str(tmp_path / "none.gguf"), "--temp", "hot")
    assert r.returncode == 2 and "invalid float value: 'hot'" in r.stderr


def test_mem_limit_bounds_what_a_run_may_allocate(tmp_path):
    src = tmp_path / "big.vasm"
    src.write_text(".output r1\n    SCOORD p0, 1.1.1/1.1.1/1.1.9\n    SALLOC p0, 100000000\n    DMOV r1, 7\n")
    small = vtpu("run", str(src), "--engine", "interp", "--mem-limit", "64M")
    assert small.returncode == 1 and "would exceed the memory budget of 64.0 MiB" in small.stderr
    big = vtpu("run", str(src), "--engine", "interp", "--mem-limit", "1G")
    assert big.returncode == 0 and "r1.i64 = 7" in big.stdout
    bad = vtpu("run", str(src), "--mem-limit", "lots")
    assert bad.returncode == 2 and "--mem-limit" in bad.stderr


def _peak_rss_mb(*args: str) -> tuple[float, str]:
    """Run `vtpu ARGS` in a fresh child and return (its peak RSS in MB, its stdout)."""
    import subprocess
    import sys

    probe = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run([sys.executable, '-m', 'vtpu_cli.cli.main', *sys.argv[1:]], capture_output=True)\n"
        "sys.stderr.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
        "sys.stdout.buffer.write(r.stdout)\n"
    )
    p = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, timeout=120)
    return int(p.stderr.decode().strip().splitlines()[-1]) / 1024, p.stdout.decode()


def test_huge_output_scrolls_are_streamed_not_copied(tmp_path):
    """A 64 MiB `.output` scroll is printed, written to --out and (at 8 MiB) to --json without Python
    lists or byte copies of it: peak RSS was 758 MB (text), 876 MB (--out) and ~2.3 GB (--json, 64 MiB)."""
    import numpy as np

    from vtpu_cli.machine.tensorfile import read_safetensors, write_safetensors

    big = tmp_path / "big.vasm"
    big.write_text(
        ".coord C = 1.1.1/1.1.1/1.1.3\n.zero C f32[16777216]\n.output C\n"
        "    SCOORD p2, C\n    DADD.f32 v4, v4, v4\n    SSCATTR.f32 [p2], v4\n"
    )
    mb, out = _peak_rss_mb("run", str(big), "--engine", "interp")
    assert out.startswith("C (1.1.1/1.1.1/1.1.3) f32[16777216] = [0.0, 0.0,") and "(16777216 values)]" in out
    assert mb < 200, mb
    st = tmp_path / "o.safetensors"
    mb, _ = _peak_rss_mb("run", str(big), "--engine", "interp", "--out", str(st))
    assert mb < 200, mb
    (dtype, shape, raw) = read_safetensors(str(st))["1.1.1/1.1.1/1.1.3"]
    assert (dtype, tuple(shape), len(raw)) == ("f32", (16777216,), 64 << 20)
    # --json: every value, in order, with non-finite values spelled as strings and rows nested
    vals = np.arange(2 * 1048576, dtype=np.float32).reshape(2, 1048576)
    vals[1, 5], vals[1, 6], vals[0, 7] = np.inf, -np.inf, np.nan
    mem = tmp_path / "in.safetensors"
    write_safetensors(str(mem), {"1.1.1/1.1.1/1.1.3": ("f32", vals.shape, vals.tobytes())})
    two = tmp_path / "two.vasm"
    two.write_text(
        ".coord C = 1.1.1/1.1.1/1.1.3\n.zero C f32[2, 1048576]\n.output C\n    DADD.f32 v4, v4, v4\n"
    )
    mb, out = _peak_rss_mb("run", str(two), "--engine", "interp", "--mem", str(mem), "--json")
    doc = json.loads(out)
    v = doc["outputs"][0]["value"]
    assert doc["outputs"][0]["shape"] == [2, 1048576] and len(v) == 2 and len(v[0]) == 1048576
    assert v[0][:3] == [0.0, 1.0, 2.0] and v[0][7] == "nan" and v[1][5:7] == ["inf", "-inf"]
    assert v[1][-1] == float(2 * 1048576 - 1)
    assert mb < 150, mb  # was ~290 MB (16 M Python floats per 64 MiB)
