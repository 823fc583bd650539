"""svISA v2's ``[p + rN + disp]`` address mode: assembler, disassembler and .siw round trips, the
interpreter and the JIT agreeing (values and faults, wrapping included), and phextcc's address folding
(``compiler/addrfold.py``): fewer SIWs, the same bits."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.asm.disassembler import disassemble
from vtpu_cli.binary import siwfile
from vtpu_cli.binary.program import MEM_CONTIG, MEM_INDEXED, MEM_STRIDED, Imm, Instr, Mem, Program, Reg
from vtpu_cli.compiler import compile_phx
from vtpu_cli.compiler import driver as phx_driver
from vtpu_cli.compiler.addrfold import fold_addresses
from vtpu_cli.compiler.driver import bind_inputs, read_output
from vtpu_cli.compiler.ir import VI, Builder, Label, MemInfo, VMem, imm
from vtpu_cli.core.errors import FormatError
from vtpu_cli.engines.compare import same_result
from vtpu_cli.engines.interp.interpreter import Interpreter
from vtpu_cli.isa.table import BY_NAME

jc = pytest.importorskip("vtpu_cli.engines.jit.compile")
JIT_OK, WHY = jc.jit_available()
needs_jit = pytest.mark.skipif(not JIT_OK, reason=f"JIT unavailable: {WHY}")

HEAD = """.coord A = 1.1.1/1.1.1/1.1.1
.coord C = 1.1.1/1.1.1/1.1.3
.data A f32 {vals}
.zero C f32[32]
.output C
    SCOORD p0, A
    SCOORD p2, C
"""
VALS = ", ".join(str(i + 1) for i in range(32))


def _siw(src: str) -> bytes:
    return siwfile.encode(assemble(src, "t.vasm"))


def test_assembler_disassembler_and_header():
    src = HEAD.format(vals=VALS) + (
        "    DMOV r1, 4\n"
        "    SGATHER.f32 v0, [p0 + r1 + 60]\n"
        "    SGATHER.f32 v1, [p0 + r1 - 4 : 8]\n"
        "    SSCATTR.f32 [p2 + r1 + 60], v1, 32\n"
        "    DHALT\n"
    )
    prog = assemble(src, "t.vasm")
    mems = [a for siw in prog.code for ins in siw for a in ins.args if isinstance(a, Mem)]
    assert [(m.off, m.disp, m.mode) for m in mems if isinstance(m.off, Reg)] == [
        (Reg("r", 1), 60, MEM_CONTIG),
        (Reg("r", 1), -4, MEM_STRIDED),
        (Reg("r", 1), 60, MEM_CONTIG),
    ]
    text = disassemble(prog)
    assert text.startswith("; svISA v2")
    assert "[p0 + r1 + 60]" in text and "[p0 + r1 - 4 : 8]" in text and "[p2 + r1 + 60], v1, 32" in text
    blob = siwfile.encode(prog)
    assert siwfile.HEADER.unpack_from(blob)[2] == siwfile.ISA_V2
    again = siwfile.decode(blob, "t.siw")
    assert again.code == prog.code
    # a program without displacements is an svISA v1 file, byte for byte what it was
    plain = _siw(HEAD.format(vals=VALS) + "    SGATHER.f32 v0, [p0 + 64]\n    DHALT\n")
    assert siwfile.HEADER.unpack_from(plain)[2] == siwfile.ISA_V1


def test_displacement_needs_a_register_offset_and_fits_32_bits():
    from vtpu_cli.binary.program import check_instr

    g = BY_NAME["SGATHER"]
    assert "register offset" in check_instr(
        Instr(g, None, "f32", None, (Reg("v", 0), Mem(0, Imm(0), 0, None, 8)))
    )
    err = check_instr(Instr(g, None, "f32", None, (Reg("v", 0), Mem(0, Reg("r", 1), 0, None, 1 << 31))))
    assert "does not fit 32 bits" in err
    with pytest.raises(Exception, match="does not fit 32 bits"):
        assemble(HEAD.format(vals=VALS) + "    SGATHER.f32 v0, [p0 + r1 + 4294967296]\n    DHALT\n", "t.vasm")


def _reseal(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


def _slot_offset(blob: bytes, siw: int, slot: int) -> int:
    """Byte offset of a code slot in ``blob`` (the code section is the first in the table)."""
    _kind, _count, off, _size = siwfile.SECTION.unpack_from(blob, siwfile.HEADER.size)
    return off + siw * siwfile.SIW_BYTES + slot * siwfile.SLOT_BYTES


def test_corrupt_displacements_are_format_errors():
    blob = _siw(HEAD.format(vals=VALS) + "    DMOV r1, 4\n    SGATHER.f32 v0, [p0 + r1 + 60]\n    DHALT\n")
    body = bytearray(blob[: -siwfile.DIGEST_BYTES])
    at = _slot_offset(blob, 3, 1)  # SIW 3, S slot: the displaced gather
    assert body[at + 3] & siwfile.FLAG_DISP
    v1 = bytearray(body)
    struct.pack_into("<H", v1, 10, siwfile.ISA_V1)  # claims svISA v1
    with pytest.raises(FormatError, match="displacement in an svISA v1 file"):
        siwfile.decode(_reseal(bytes(v1)), "x.siw")
    zero = bytearray(body)
    struct.pack_into("<i", zero, at + 8, 0)  # the flag with a zero displacement
    with pytest.raises(FormatError, match="zero displacement"):
        siwfile.decode(_reseal(bytes(zero)), "x.siw")
    for slot, bit in ((0, siwfile.FLAG_DISP), (1, 0x20), (0, 0x04)):  # DMOV (D slot) / the gather
        odd = bytearray(body)
        odd[_slot_offset(blob, 2, 0) + 3 if slot == 0 else at + 3] |= bit
        with pytest.raises(FormatError, match="flag bits"):
            siwfile.decode(_reseal(bytes(odd)), "x.siw")
    rev = bytearray(body)
    struct.pack_into("<H", rev, 10, 3)
    with pytest.raises(FormatError, match="ISA revision 3 is not supported"):
        siwfile.decode(_reseal(bytes(rev)), "x.siw")


_REGS = st.integers(0, 15).map(lambda i: Reg("r", i))


@st.composite
def _mem(draw):
    mode = draw(st.sampled_from([MEM_CONTIG, MEM_STRIDED, MEM_INDEXED]))
    disp = draw(st.integers(-(1 << 31), (1 << 31) - 1).filter(bool))
    if mode == MEM_CONTIG:
        extra = draw(st.one_of(st.none(), st.integers(1, 64).map(Imm)))
    elif mode == MEM_STRIDED:
        extra = draw(st.one_of(_REGS, st.integers(-(1 << 40), 1 << 40).map(Imm)))
    else:
        extra = Reg("v", draw(st.integers(0, 31)))
    return Mem(draw(st.integers(0, 7)), draw(_REGS), mode, extra, disp)


@settings(max_examples=200, deadline=None)
@given(_mem(), st.booleans())
def test_siw_round_trip_of_displaced_operands(m, store):
    op = BY_NAME["SSCATTR" if store else "SGATHER"]
    reg = Reg("v", 3)
    ins = Instr(op, None, "f32", None, (m, reg) if store else (reg, m))
    prog = Program(code=[(Instr(BY_NAME["DNOP"]), ins, Instr(BY_NAME["CNOP"]))])
    prog.code.append((Instr(BY_NAME["DHALT"]), Instr(BY_NAME["SNOP"]), Instr(BY_NAME["CNOP"])))
    back = siwfile.decode(siwfile.encode(prog), "p.siw")
    assert back.code == prog.code
    assert assemble(disassemble(prog), "p.vasm").code == prog.code


def _program(r1: int, disp: int, store: bool) -> str:
    body = f"    DMOV r1, {r1}\n"
    if store:
        body += f"    DBCAST.f32 v0, 7.5\n    SSCATTR.f32 [p2 + r1 {'+' if disp >= 0 else '-'} {abs(disp)}], v0, 8\n"
    else:
        body += f"    SGATHER.f32 v0, [p0 + r1 {'+' if disp >= 0 else '-'} {abs(disp)}], 8\n"
        body += "    SSCATTR.f32 [p2 + 32], v0\n"
    return HEAD.format(vals=VALS) + body + "    DHALT\n"


def _both(src: str):
    prog = assemble(src, "t.vasm")
    ref = Interpreter(prog, 1).run()
    from vtpu_cli.engines.jit.engine import JitEngine

    got = JitEngine(prog, 1).run()
    assert got.engine == "jit", got.fallback
    return ref, got


@needs_jit
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(st.integers(-200, 200), st.sampled_from([(1 << 63) - 8, -(1 << 63), (1 << 63) - 1])),
    st.one_of(st.integers(-200, 200), st.sampled_from([(1 << 31) - 1, -(1 << 31), 16])),
    st.booleans(),
)
def test_interpreter_and_jit_agree_on_displaced_accesses(r1, disp, store):
    """In range, out of range on either side and with the i64 add wrapping: the same values, or the
    same fault at the same place (the JIT's native fault is replayed exactly)."""
    ref, got = _both(_program(r1, disp, store))
    assert not same_result(ref, got), (ref.status, got.status)
    off = (r1 + disp + (1 << 63)) % (1 << 64) - (1 << 63)
    assert (ref.status == "ok") == (0 <= off <= 128 - 8)
    if ref.status != "ok":
        assert f"+ {off};" in ref.fault.render()


@needs_jit
def test_a_proved_loop_clone_moves_its_bounds_by_the_displacement():
    """A fast loop clone proves ``[p + r + disp]`` in bounds from the stream register's bound plus the
    displacement: the last trip's access is the scroll's last vector (no fault); one element further and
    the clone's proof fails at dispatch, so the general loop faults exactly where the interpreter does."""
    src = """.coord A = 1.1.1/1.1.1/1.1.1
.coord C = 1.1.1/1.1.1/1.1.3
.zero A f32[256]
.zero C f32[16]
.output C
    SCOORD p0, A
    SCOORD p2, C
    DMOV r2, 0
    DMOV r3, 15
    DMOV r5, 960
    DBCAST.f32 v1, 0.0
loop:
    SGATHER.f32 v0, [p0 + r2 + DISP]
    DADD.f32 v1, v1, v0
    DADD.i64 r2, r2, 64
    DAND.i64 r2, r2, r5
    DLOOP r3, loop
    SSCATTR.f32 [p2], v1
    DHALT
"""
    ok_ref, ok_got = _both(src.replace("DISP", "64"))
    assert ok_ref.status == "ok" and not same_result(ok_ref, ok_got)
    bad_ref, bad_got = _both(src.replace("DISP", "68"))
    assert bad_ref.status != "ok" and not same_result(bad_ref, bad_got)


# ------------------------------------------------------------------ phextcc's address folding
TGEMV = """input x: f32[1, 512]
weight w: t2[512, 256] scale 0.5
output y: f32[1, 256]
kernel k { y = tmatmul(x, w) }
"""


def _compile(src: str, fold: bool, **kw):
    old = phx_driver.FOLD_ADDRESSES
    phx_driver.FOLD_ADDRESSES = fold
    try:
        return compile_phx(src, "t.phx", **kw)
    finally:
        phx_driver.FOLD_ADDRESSES = old


def _s_offsets_from_adds(prog) -> int:
    """S accesses whose offset register the SIW before wrote with ``DADD.i64 x, y, imm`` -- what folding
    removes (a static count over the code; 0 after folding in these kernels' tile loops)."""
    n = 0
    for k in range(1, len(prog.code)):
        d = prog.code[k - 1][0]
        if d.op.name != "DADD" or d.type != "i64" or not isinstance(d.args[2], Imm):
            continue
        for a in prog.code[k][1].args:
            if isinstance(a, Mem) and a.off == d.args[0] and not a.disp:
                n += 1
    return n


@pytest.mark.parametrize("opt", [2, 3])
def test_folding_shrinks_the_ternary_gemv_and_keeps_its_bits(opt):
    folded, rep = _compile(TGEMV, True, opt=opt)
    plain, rep0 = _compile(TGEMV, False, opt=opt)
    assert rep["total"]["ops"] < rep0["total"]["ops"] and len(folded.code) < len(plain.code)
    assert any(isinstance(a, Mem) and a.disp for siw in folded.code for i in siw for a in i.args)
    assert _s_offsets_from_adds(folded) < _s_offsets_from_adds(plain)
    rng = np.random.default_rng(3)
    ins = {"x": rng.standard_normal((1, 512)).astype(np.float32), "w": rng.integers(-1, 2, (512, 256))}
    outs = []
    for prog in (folded, plain):
        bind_inputs(prog, ins)
        res = Interpreter(prog, 1).run()
        assert res.status == "ok"
        outs.append(read_output(prog, res, "y"))
    assert np.array_equal(outs[0], outs[1])
    if JIT_OK:
        from vtpu_cli.engines.jit.engine import JitEngine

        res = JitEngine(folded, 1).run()
        assert res.engine == "jit" and res.status == "ok", res.fallback
        assert np.array_equal(read_output(folded, res, "y"), outs[0])


def test_model_step_program_is_smaller_with_folding():
    from vtpu_cli.models.compiled import StepShape

    src = StepShape(256, 704, 4, 2, 64, 2, 1024, 128, 1e-5).text()
    folded, rep = _compile(src, True, opt=2, force_loops=True)
    plain, rep0 = _compile(src, False, opt=2, force_loops=True)
    assert len(folded.code) < len(plain.code)
    assert rep["total"]["density_bound"] > rep0["total"]["density_bound"]


def _vi(name, *args, type=None, mem=None):
    op = BY_NAME[name]
    return VI(op, op.mods[0] if op.mods else None, type, None, list(args), mem, 1)


def test_fold_respects_redefinitions_blocks_and_other_readers():
    b = Builder()
    p, x, y, z, v = b.new("p"), b.new("r"), b.new("r"), b.new("r"), b.new("v")

    def load(off, rel):
        return _vi(
            "SGATHER", v, VMem(p, off, MEM_CONTIG, None), type="f32", mem=MemInfo("s", False, 0, 64, rel)
        )

    code = [
        _vi("DADD", x, y, imm(128), type="i64"),
        load(x, x),  # folds: [p + y + 128], its range moves to y + 128
        _vi("DADD", z, y, imm(64), type="i64"),
        _vi("DADD", y, y, imm(8), type="i64"),  # y changes: z = old y + 64 cannot fold any more
        load(z, z),
        Label(".L1"),
        load(x, x),  # another block: x is not folded here, so its DADD stays
    ]
    fold_addresses(code)
    first = code[1]
    assert first.args[1].off is y and first.args[1].disp == 128
    assert (first.mem.rel, first.mem.lo, first.mem.hi) == (y, 128, 192)
    after = [it for it in code if isinstance(it, VI) and it.op.name == "SGATHER"]
    assert after[1].args[1].off is z and after[1].args[1].disp == 0
    assert after[2].args[1].off is x
    assert sum(1 for it in code if isinstance(it, VI) and it.op.name == "DADD") == 3  # x's stays: read later


def test_fold_deletes_an_add_nothing_else_reads():
    b = Builder()
    p, x, y, v = b.new("p"), b.new("r"), b.new("r"), b.new("v")
    code = [
        _vi("DADD", x, imm(-64), y, type="i64"),  # the immediate first: the same add
        _vi("SSCATTR", VMem(p, x, MEM_STRIDED, 4), v, type="f32", mem=MemInfo("s", True, None, None, None)),
    ]
    assert fold_addresses(code) == 1
    assert len(code) == 1 and code[0].args[0].off is y and code[0].args[0].disp == -64
