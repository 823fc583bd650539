"""assemble -> encode -> decode -> disassemble -> assemble is the identity (property-based)."""

from conftest import PROGRAMS
from hypothesis import given
from progen import program

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.asm.disassembler import disassemble
from vtpu_cli.binary import siwfile


@given(program())
def test_generated_programs_round_trip(prog):
    blob = siwfile.encode(prog)
    decoded = siwfile.decode(blob)
    assert siwfile.encode(decoded) == blob
    text = disassemble(decoded)
    again = assemble(text, "roundtrip.vasm")
    assert siwfile.encode(again) == blob, text


def test_example_programs_round_trip():
    files = sorted(PROGRAMS.glob("*.vasm"))
    assert len(files) >= 3
    for f in files:
        prog = assemble(f.read_text(), str(f))
        blob = siwfile.encode(prog)
        text = disassemble(siwfile.decode(blob))
        assert siwfile.encode(assemble(text, "x.vasm")) == blob, f


def test_no_line_map_round_trips():
    prog = assemble((PROGRAMS / "dot.vasm").read_text(), "dot.vasm", debug_lines=False)
    assert prog.lines == []
    blob = siwfile.encode(prog)
    text = disassemble(siwfile.decode(blob))
    assert ".lines off" in text
    assert siwfile.encode(assemble(text, "x.vasm")) == blob


def test_special_float_immediates_round_trip():
    text = (
        ".const K = 5\n    DBCAST.f32 v0, -inf\n    DSEL.f32 v1, v2, v3, inf\n    DMOV r1, -K\n"
        "    DBCAST.f32 v4, -0.0\n    DBCAST.f32 v5, 0x7fc00001\n    DBCAST.bf16 v6, -inf\n"
    )
    blob = siwfile.encode(assemble(text, "s.vasm"))
    again = disassemble(siwfile.decode(blob))
    assert "-inf" in again and "-0.0" in again and "0x7fc00001" in again
    assert siwfile.encode(assemble(again, "s2.vasm")) == blob


@given(program(max_siws=10))
def test_generated_programs_run_without_crashing(prog):
    """Any valid program either finishes or stops with a fault/deadlock/step limit: never an exception."""
    from vtpu_cli.engines.interp.interpreter import Interpreter

    for n in (1, 3):
        res = Interpreter(prog, n, max_steps=300).run()
        assert res.status in ("ok", "fault", "deadlock", "step-limit")
        if res.status != "ok":
            assert res.fault is not None and res.fault.message
