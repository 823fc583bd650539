"""Every error class: precise message, location, exit code, and never a Python traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import PROGRAMS
from hypothesis import given
from hypothesis import strategies as st

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.core.errors import DiagnosticError

ERR = PROGRAMS / "errors"


def vtpu(*args: str, stdin: str | None = None, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "vtpu_cli.cli.main", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        env={**os.environ, **env} if env else None,
    )


ASM_CASES = [
    ("syntax.vasm", 2, 28, "unexpected end of line"),
    ("unknown_op.vasm", 2, 5, "unknown op `DADDD`"),
    ("register_class.vasm", 2, 11, "must be a scalar register"),
    ("two_ops_one_pipe.vasm", 2, 27, "two D-pipe ops in one SIW"),
    ("hazard.vasm", 2, 27, "intra-SIW hazard on v1"),
    ("bad_literal.vasm", 2, 19, "literal 300 does not fit i8"),
    ("bad_coordinate.vasm", 2, 20, "part 5 (volume) is 1000"),
    ("undefined_label.vasm", 2, 10, "undefined label `nowhere`"),
]


@pytest.mark.parametrize("name,line,col,message", ASM_CASES)
def test_assembler_error_classes(name, line, col, message):
    path = ERR / name
    with pytest.raises(DiagnosticError) as exc:
        assemble(path.read_text(), str(path))
    d = exc.value.diagnostics[0]
    assert (d.line, d.col) == (line, col)
    assert message in d.message


@pytest.mark.parametrize("name,line,col,message", ASM_CASES[:4])
def test_cli_renders_diagnostics_with_caret_and_exit_2(name, line, col, message):
    r = vtpu("asm", str(ERR / name), "-o", "/dev/null")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert f"{name}:{line}:{col}: error:" in r.stderr
    caret_line = [ln for ln in r.stderr.splitlines() if ln.strip().endswith("^") or "^" in ln][0]
    assert caret_line.index("^") - caret_line.index("|") - 2 == col - 1


def test_unknown_op_hint_suggests_the_closest_op():
    r = vtpu("asm", str(ERR / "unknown_op.vasm"), "-o", "/dev/null")
    assert "did you mean DADD?" in r.stderr


def test_all_errors_of_a_file_are_reported_in_one_run():
    with pytest.raises(DiagnosticError) as exc:
        assemble((ERR / "many_errors.vasm").read_text(), "many_errors.vasm")
    msgs = [d.message for d in exc.value.diagnostics]
    assert len(msgs) == 4
    assert "unknown op `FOO`" in msgs[0]
    assert "takes 3 operand(s), got 2" in msgs[1]
    assert "r99 does not exist" in msgs[2]
    assert "f99" in msgs[3]


def test_asm_json_diagnostics():
    r = vtpu("asm", str(ERR / "many_errors.vasm"), "--json", "-o", "/dev/null")
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and len(doc["diagnostics"]) == 4
    assert doc["diagnostics"][2]["line"] == 4


@pytest.mark.parametrize(
    "name,needle",
    [
        (
            "out_of_bounds.vasm",
            "fault in sentron 0, SIW 2, S pipe, SGATHER.f32: out-of-bounds load of 64 byte(s) at "
            "1.1.1/1.1.1/1.1.1 + 8; scroll size 64",
        ),
        ("div_zero.vasm", "fault in sentron 0, SIW 2, D pipe, DDIV.i64: integer division by zero"),
    ],
)
def test_runtime_faults_exit_1_with_location(name, needle):
    r = vtpu("run", str(ERR / name))
    assert r.returncode == 1
    assert needle in r.stderr
    assert f"{name}:" in r.stderr and "Traceback" not in r.stderr


def test_deadlock_is_reported_with_wait_graph():
    r = vtpu("run", str(ERR / "deadlock.vasm"), "--sentrons", "3", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["status"] == "deadlock"
    waits = {w["sentron"]: w for w in doc["fault"]["waits"]}
    assert waits[0]["waits_for"] == [1] and waits[2]["waits_for"] == [0]
    assert waits[1]["waits_in"] == "CRECV from 2"


def test_max_steps_exit_code():
    r = vtpu("run", str(ERR / "infinite_loop.vasm"), "--max-steps", "1000")
    assert r.returncode == 1
    assert "stopped after 1000 SIWs" in r.stderr


def test_bad_usage_and_missing_files_exit_2():
    assert vtpu("run").returncode == 2
    assert vtpu("run", "no/such/file.siw").returncode == 2
    r = vtpu("run", str(PROGRAMS / "dot.vasm"), "--sentrons", "0")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = vtpu("run", str(PROGRAMS / "dot.vasm"), "--topology", "torus:3x3")
    assert r.returncode == 2 and "9 nodes" in r.stderr


def test_jit_runs_natively_or_says_why_it_falls_back():
    r = vtpu("run", str(PROGRAMS / "dot.vasm"), "--engine", "jit", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["engine"] == "jit" and doc["fallback"] is None
    assert "note:" not in r.stderr
    # SALLOC and SFREE with 16 sentrons run natively
    r = vtpu("run", str(PROGRAMS / "fleet" / "matmul_scatter.vasm"), "-n", "16", "--engine", "jit", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["engine"] == "jit" and doc["fallback"] is None
    r = vtpu(
        "run",
        str(PROGRAMS / "fleet" / "matmul_scatter.vasm"),
        "-n",
        "16",
        "--json",
        env={"VTPU_JIT_MAX_SENTRONS": "8"},
    )
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["engine"] == "interp" and "the JIT runs at most 8" in doc["fallback"]
    assert "note: running on the interpreter: 16 sentrons" in r.stderr


printable = st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=0x17F), max_size=200)
asmish = st.lists(
    st.sampled_from(
        [
            "DADD.f32",
            "SGATHER",
            "v1",
            "r2",
            ",",
            "[",
            "]",
            "p0",
            "+",
            "|",
            "{",
            "}",
            ".data",
            ".coord",
            "X",
            "=",
            "1.1.1/1.1.1/1.1.1",
            "1.5",
            "-3",
            "0x1f",
            ":",
            "\n",
            " ",
            "loop",
            ";",
            "f32",
            "1..3",
            '"s"',
            "DLOOP",
            "DTERNARY",
        ]
    ),
    max_size=40,
).map(" ".join)


@given(st.one_of(printable, asmish))
def test_fuzz_assembler_only_raises_clean_errors(text):
    try:
        assemble(text, "fuzz.vasm")
    except DiagnosticError as e:
        assert e.diagnostics and all(d.line >= 1 and d.message for d in e.diagnostics)
