"""The Python API (``import vtpu``): assemble, compile, load, run; results as numpy arrays; errors that
carry the CLI's diagnostics; and the examples in docs/python.md, run as written."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import PROGRAMS, ROOT

import vtpu

VADD = PROGRAMS / "vadd.vasm"
DOT_PHX = PROGRAMS / "phx" / "dot.phx"


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_load_and_run_vasm_outputs_are_arrays(engine):
    prog = vtpu.load(VADD)
    assert prog.language == "vasm" and prog.siws == 9 and prog.names["C"] == "1.1.1/1.1.1/1.1.3"
    res = prog.run(engine=engine)
    assert res.ok and res.fault is None and res.engine == engine
    c = res.outputs["C"]
    assert c.dtype == np.float32 and c.shape == (32,)
    want = np.arange(1, 33, dtype=np.float32) + np.where(np.arange(32) < 16, 0.5, -1.0).astype(np.float32)
    np.testing.assert_array_equal(c, want)
    assert res.stats["siws"] == 9 and res.stats["ops"] == 11 and res.stats["engine"] == engine


def test_inputs_by_name_and_by_coordinate():
    prog = vtpu.load(VADD)
    a = np.full(32, 10, np.float32)
    b = np.arange(32, dtype=np.float32)
    r1 = prog.run(inputs={"A": a, "1.1.1/1.1.1/1.1.2": b}, engine="interp")
    np.testing.assert_array_equal(r1["C"], a + b)
    r2 = prog.run(engine="interp")  # the program itself is unchanged by a run with inputs
    assert r2["C"][0] == 1.5
    with pytest.raises(vtpu.VtpuError, match="neither a name"):
        prog.run(inputs={"Z": a})
    with pytest.raises(vtpu.VtpuError, match="without loss"):
        prog.run(inputs={"A": np.ones(32, np.float64) + 0.5j})


def test_compile_phx_and_run_with_inputs():
    prog = vtpu.compile(DOT_PHX.read_text(), opt=2)
    assert prog.language == "phx" and prog.report["functions"][0]["siws"] == prog.siws
    x = np.arange(64, dtype=np.float32)
    y = np.full(64, 2, np.float32)
    res = prog.run(inputs={"x": x, "y": y}, engine="jit")
    assert res.ok
    np.testing.assert_array_equal(res.outputs["r"], np.full(16, float(np.dot(x, y)), np.float32))
    with pytest.raises(vtpu.VtpuError, match="bytes for a"):
        prog.run(inputs={"x": np.ones(3, np.float32)})


def test_a_compiled_program_runs_only_on_its_sentron_count():
    """A program compiled for 2 sentrons splits its work in two: on 1 it would return half an output."""
    prog2 = vtpu.compile(DOT_PHX.read_text(), opt=2, sentrons=2)
    x = np.arange(64, dtype=np.float32)
    with pytest.raises(vtpu.VtpuError, match="compiled for 2 sentron"):
        prog2.run(inputs={"x": x, "y": x}, sentrons=1, engine="interp")
    res = prog2.run(inputs={"x": x, "y": x}, sentrons=2, engine="interp")
    assert res.ok
    np.testing.assert_array_equal(res.outputs["r"][:16], np.full(16, float(np.dot(x, x)), np.float32))


def test_register_outputs_have_one_row_per_sentron():
    prog = vtpu.assemble(".output r1\n    DMOV r1, sid\n    DHALT\n")
    res = prog.run(sentrons=4, engine="interp")
    np.testing.assert_array_equal(res.outputs["r1"], [0, 1, 2, 3])


def test_faults_are_results_and_raise_on_request():
    res = vtpu.load(PROGRAMS / "errors" / "out_of_bounds.vasm").run(engine="interp")
    assert not res.ok and res.status == "fault" and res.fault.sentron == 0
    with pytest.raises(vtpu.RunFault) as e:
        res.raise_for_fault()
    assert e.value.exit_code == 1 and "fault in sentron 0" in str(e.value)


def test_errors_carry_the_cli_diagnostics():
    with pytest.raises(vtpu.DiagnosticError) as e:
        vtpu.assemble("    DADDD r1, r2, r3\n", filename="x.vasm")
    d = e.value.diagnostics[0]
    assert (d.file, d.line, d.col, d.message) == ("x.vasm", 1, 5, "unknown op `DADDD`")
    assert str(e.value).splitlines()[:4] == [
        "x.vasm:1:5: error: unknown op `DADDD`",
        "  |",
        "1 |     DADDD r1, r2, r3",
        "  |     ^^^^^",
    ]
    assert e.value.exit_code == 2
    with pytest.raises(vtpu.VtpuError, match="looks like the .phx language"):
        vtpu.assemble(DOT_PHX.read_text())
    with pytest.raises(vtpu.VtpuError, match="looks like svISA assembly"):
        vtpu.compile(VADD.read_text())
    with pytest.raises(vtpu.VtpuError, match="no such file"):
        vtpu.load("nowhere.vasm")
    with pytest.raises(vtpu.VtpuError, match="unknown engine"):
        vtpu.load(VADD).run(engine="gpu")


def test_save_load_disassemble_roundtrip(tmp_path):
    prog = vtpu.load(VADD)
    path = prog.save(tmp_path / "v.siw")
    again = vtpu.load(path)
    assert again.language == "siw" and again.to_bytes() == prog.to_bytes()
    assert vtpu.assemble(again.disassemble()).to_bytes() == prog.to_bytes()


def test_defines_override_source_constants():
    text = ".const N = 5\n.output r1\n    DMOV r1, N\n    DHALT\n"
    assert vtpu.assemble(text).run(engine="interp")["r1"][0] == 5
    assert vtpu.assemble(text, defines={"N": 9}).run(engine="interp")["r1"][0] == 9
    with pytest.raises(vtpu.VtpuError, match="integer or a coordinate"):
        vtpu.assemble(text, defines={"N": "lots"})


def _doc_examples() -> list[tuple[int, str]]:
    text = (ROOT / "docs" / "python.md").read_text()
    return [
        (text[: m.start()].count("\n") + 1, m.group(1))
        for m in re.finditer(r"```python\n(.*?)```", text, re.S)
    ]


def test_docs_python_examples_run_as_written(tmp_path, monkeypatch):
    """Every ```python block of docs/python.md runs, in order, in one namespace (from the repo root)."""
    monkeypatch.chdir(ROOT)
    blocks = _doc_examples()
    assert len(blocks) >= 4
    ns: dict = {"__name__": "docs_python", "TMP": tmp_path}
    for line, code in blocks:
        try:
            exec(compile(code, f"docs/python.md:{line}", "exec"), ns)
        except Exception as e:  # pragma: no cover - the message names the failing block
            raise AssertionError(f"docs/python.md block at line {line} failed: {e!r}") from e
