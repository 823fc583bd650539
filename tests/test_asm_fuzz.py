"""Hostile assembler text (issues #11 and #18): a mutation fuzzer over the example programs plus the
regressions it and others found. Properties for every input: the assembler raises only
``DiagnosticError``/``VtpuError`` (never another exception), finishes well inside a hang bound, and
whatever assembles survives encode -> decode -> disassemble -> assemble bit for bit.

The default suite runs a fixed sample (``FUZZ_SAMPLE`` inputs, seeded); the campaign is
``VTPU_FUZZ_N=100000 python -m pytest -m slow tests/test_asm_fuzz.py``.
"""

from __future__ import annotations

import os
import random
import struct
import time

import pytest
from conftest import PROGRAMS
from hypothesis import given
from hypothesis import strategies as st
from test_errors import vtpu

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.asm.disassembler import disassemble
from vtpu_cli.binary import siwfile
from vtpu_cli.core.errors import DiagnosticError, VtpuError, render_text

HANG_S = 5.0  # CPU seconds: an input that needs more is a hang (a finding); CPU time, not wall time, so a
# loaded machine (or a niced campaign) does not report scheduling delays as hangs
FUZZ_SAMPLE = 300

SEEDS = [p.read_text() for p in sorted(PROGRAMS.glob("*.vasm"))] + [
    p.read_text() for p in sorted((PROGRAMS / "errors").glob("*.vasm"))
]
HOSTILE = [
    "9" * 400,
    "1e400",
    "-1e400",
    "0x" + "f" * 40,
    "18446744073709551616",
    "-inf",
    "nan",
    "1.1.1/1.1.1/1.1.1",
    "999.999.999/999.999.999/999.999.999",
    "1.1.1/1.1.1/1.1.1000",
    ".loc 18446744073709551616",
    ".loc -1",
    ".loc 4294967296",
    '.file "\x1b]0;owned\x07"',
    '.include "."',
    '.include "/dev/zero"',
    "{",
    "}",
    "|",
    ",",
    "[p0 + r1 : 3]",
    "r16",
    "v32",
    "\x00",
    "\ufeff",
    "DADD.f32 v1, v1, v1 | " * 50,
]


def mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines() or [""]
    for _ in range(rng.randint(1, 4)):
        k = rng.randrange(len(lines))
        op = rng.randrange(6)
        if op == 0:  # replace a token with a hostile one
            toks = lines[k].split()
            if toks:
                toks[rng.randrange(len(toks))] = rng.choice(HOSTILE)
                lines[k] = " ".join(toks)
        elif op == 1:  # insert a hostile line
            lines.insert(k, rng.choice(HOSTILE))
        elif op == 2:  # flip a character
            if lines[k]:
                i = rng.randrange(len(lines[k]))
                lines[k] = lines[k][:i] + chr(rng.randrange(32, 127)) + lines[k][i + 1 :]
        elif op == 3:  # duplicate a line
            lines.insert(k, lines[k])
        elif op == 4:  # truncate a line
            lines[k] = lines[k][: rng.randrange(len(lines[k]) + 1)]
        else:  # repeat a line many times (long files)
            lines[k:k] = [lines[k]] * rng.randint(2, 200)
    return "\n".join(lines) + "\n"


def check_one(text: str) -> str:
    """Assemble one input and check the properties; returns "ok" or "error" (never raises otherwise)."""
    t0 = time.process_time()
    try:
        prog = assemble(text, "fuzz.vasm", max_errors=100)
    except DiagnosticError as e:
        assert e.diagnostics and all(d.message for d in e.diagnostics)
        rendered = render_text(e.diagnostics)
        # long lines are cut around the caret: output stays proportional to the number of errors
        assert len(rendered) <= 1200 * len(e.diagnostics) + 200
        outcome = "error"
    except VtpuError:
        outcome = "error"
    else:
        blob = siwfile.encode(prog)
        back = siwfile.decode(blob, "fuzz.siw")
        again = assemble(disassemble(back), "again.vasm")
        assert siwfile.encode(again) == blob
        outcome = "ok"
    assert time.process_time() - t0 < HANG_S, f"hang: {time.process_time() - t0:.1f} CPU s"
    return outcome


def campaign(n: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    counts = {"ok": 0, "error": 0}
    for _ in range(n):
        text = mutate(rng.choice(SEEDS), rng)
        counts[check_one(text)] += 1
    return counts


def test_fuzz_fixed_sample():
    counts = campaign(FUZZ_SAMPLE, seed=1611)
    assert counts["ok"] > 0 and counts["error"] > 0  # the mutator reaches both sides


@pytest.mark.slow
def test_fuzz_campaign():
    n = int(os.environ.get("VTPU_FUZZ_N", "100000"))
    counts = campaign(n, seed=int(os.environ.get("VTPU_FUZZ_SEED", "18")))
    print(f"assembler fuzz campaign: {n} inputs, {counts}")


# ---------------------------------------------------------------------------------------------- regressions
@pytest.mark.parametrize("value", ["18446744073709551616", "4294967296", "-1"])
def test_loc_out_of_range_is_a_diagnostic(value):
    with pytest.raises(DiagnosticError, match=r"\.loc line .* is out of range \(0\.\.4294967295\)"):
        assemble(f".loc {value}\n    DHALT\n")
    assert assemble(".loc 4294967295\n    DHALT\n").lines == [4294967295]


@pytest.mark.parametrize(
    "text",
    [
        ".data 1.1.1/1.1.1/1.1.1 f32 " + "9" * 400,
        ".data 1.1.1/1.1.1/1.1.1 bf16 1e400",
        "    DADD.f32 v1, v1, " + "9" * 400,
        "    DADD.f32 v1, v1, 3.5e38",
        ".data 1.1.1/1.1.1/1.1.1 f32 -" + "9" * 400 + ".0",
    ],
)
def test_huge_float_literals_are_diagnostics(text):
    with pytest.raises(DiagnosticError, match="out of range for"):
        assemble(text + "\n")


def test_largest_finite_and_infinite_literals_assemble():
    prog = assemble(".data 1.1.1/1.1.1/1.1.1 f32 3.4028234e38, inf, -inf, -0.0\n")
    assert struct.unpack("<4I", prog.data[0].data) == (0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x80000000)


@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20))
def test_disasm_roundtrips_every_f32_bit_pattern(bits):
    """Infinities, NaN payloads (quiet, signalling, negative), subnormals: disasm writes what asm reads."""
    prog = assemble(".data 1.1.1/1.1.1/1.1.1 hex \"" + struct.pack(f"<{len(bits)}I", *bits).hex() + '"\n'
                    if False else ".zero 1.1.1/1.1.1/1.1.2 f32[1]\n")  # fmt: skip
    raw = struct.pack(f"<{len(bits)}I", *bits)
    text = f'.data 1.1.1/1.1.1/1.1.1 f32[{len(bits)}] hex "{raw.hex()}"\n'
    prog = assemble(text)
    again = assemble(disassemble(prog))
    assert again.data[0].data == raw
    assert siwfile.encode(again) == siwfile.encode(prog)


@given(st.lists(st.integers(0, 2**16 - 1), min_size=1, max_size=20))
def test_disasm_roundtrips_every_bf16_bit_pattern(bits):
    raw = struct.pack(f"<{len(bits)}H", *bits)
    prog = assemble(f'.data 1.1.1/1.1.1/1.1.1 bf16[{len(bits)}] hex "{raw.hex()}"\n')
    assert assemble(disassemble(prog)).data[0].data == raw


def test_disasm_writes_negative_infinity_that_asm_reads():
    prog = assemble(
        ".data 1.1.1/1.1.1/1.1.1 f32 -inf, inf, 1.5\n.output r1\n    DADD.f32 r1, r1, -inf\n    DHALT\n"
    )
    text = disassemble(prog)
    assert "-inf" in text
    assert siwfile.encode(assemble(text)) == siwfile.encode(prog)


def test_long_lines_are_cut_around_the_caret_and_errors_capped(tmp_path):
    """#18: a 34 KB line with 2,000 slots printed 102 MB of stderr; now each diagnostic shows a window."""
    line = "    " + " | ".join(["DADD r1, r1, r1"] * 2000)
    src = tmp_path / "long.vasm"
    src.write_text(line + "\n")
    with pytest.raises(DiagnosticError) as e:
        assemble(line + "\n", max_errors=0)
    assert len(render_text(e.value.diagnostics)) < 400 * len(e.value.diagnostics)
    r = vtpu("asm", str(src))
    assert r.returncode == 2 and len(r.stderr) < 20_000 and "more not shown (--error-limit)" in r.stderr
    assert max(len(x) for x in r.stderr.splitlines()) < 200


def test_control_bytes_in_names_are_escaped_when_printed(tmp_path):
    """#18: ESC/OSC bytes in names from a file never reach the terminal raw (the assembler refuses them in
    .file; a crafted .siw is refused by the loader, and its message is printed escaped)."""
    with pytest.raises(DiagnosticError, match="control characters"):
        assemble('.file "evil\\x1b]0;owned\\x07.vasm"\n    DHALT\n')
    prog = assemble("    DHALT\n")
    prog.source_file = "evil\x1b]0;owned\x07.vasm"
    prog.labels = {"lab\x1bel": 0}
    siw = tmp_path / "c.siw"
    siw.write_bytes(siwfile.encode(prog))
    for args in (("disasm", str(siw)), ("run", str(siw), "--engine", "interp"), ("run", str(siw), "--json")):
        r = vtpu(*args)
        assert r.returncode in (0, 2) and "Traceback" not in r.stderr
        assert "\x1b" not in r.stdout + r.stderr and "\x07" not in r.stdout + r.stderr


def test_syntax_errors_have_no_knock_on_errors():
    text = "loop: DADD r1, r1,\n.const N = [\n    DLOOP r1, loop\n    DMOV r2, N\n    DHALT\n"
    with pytest.raises(DiagnosticError) as e:
        assemble(text)
    msgs = [d.message for d in e.value.diagnostics]
    assert len(msgs) == 2 and not any("undefined" in m or "not a register" in m for m in msgs), msgs


def test_hints_speak_the_docs_language():
    with pytest.raises(DiagnosticError) as e:
        assemble("    DFMA v1, v2\n")
    assert e.value.diagnostics[0].hint == "DFMA rN|vN, rN|vN, rN|vN, rN|vN|imm (see `vtpu isa DFMA`)"
    with pytest.raises(DiagnosticError) as e:
        assemble("    DADD r1, r2,\n")
    hint = e.value.diagnostics[0].hint or ""
    assert "NEG" not in hint and "__ANON" not in hint and "LSQB" not in hint


def test_assembler_float_bits_match_the_numerics_module():
    """The assembler converts literals without numpy; it must round exactly like core.numerics."""
    from vtpu_cli.asm import assembler as a
    from vtpu_cli.core import numerics as n

    rng = random.Random(7)
    vals = [0.0, -0.0, 1e-46, 3.4028235e38, 3.4028236e38, 1e39, -1e39, float("inf"), float("nan")]
    vals += [rng.uniform(-1e39, 1e39) for _ in range(2000)] + [
        rng.uniform(-1e-38, 1e-38) for _ in range(2000)
    ]
    vals += [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0] for _ in range(2000)]
    for v in vals:
        assert a.f32_bits(v) == n.f32_bits(v), v
        assert a.bf16_bits(v) == n.bf16_bits(v), v
    for v in (0, 1, -1, 2**63, 2**64 - 1, -(2**63)):
        for b in (8, 16, 32, 64):
            assert a.sext(v, b) == n.sext(v, b)


@pytest.mark.parametrize(
    "text, message",
    [
        (".zero 1.1.1/1.1.1/1.1.1 f32[-1]", "a dimension is 0.."),
        (".zero 1.1.1/1.1.1/1.1.1 f32[99999999999999999999]", "a dimension is 0.."),
        (".zero 1.1.1/1.1.1/1.1.1 f32 -5", "not negative"),
        (".data 1.1.1/1.1.1/1.1.1 f32[1,1,1,1,1,1,1,1,1] 1", "at most 8 dimensions"),
        (".group g = 0..1000000000000", "sentron ids 0..1048575"),
        (".group g = 1, 2, 99999999", "sentron ids 0..1048575"),
        (".zero 1.1.1/1.1.1/1.1.1 f32[]", "at least one dimension"),
        (".zero 1.1.1/1.1.1/1.1.1 f32[", "at least one dimension"),
    ],
)
def test_shapes_and_groups_beyond_the_format_limits_are_diagnostics(text, message):
    """Found by the campaign: a negative dimension reached the encoder (struct.error), an empty shape
    assembled into a .siw the loader refuses; a huge group range would build a list of 10^12 ids."""
    with pytest.raises(DiagnosticError, match=message):
        assemble(text + "\n    DHALT\n")
    assert check_one(".zero 1.1.1/1.1.1/1.1.1 f32[0]\n    DHALT\n") == "ok"
