"""The op table is complete, consistent, and the committed ISA reference is generated from it."""

from conftest import ROOT

from vtpu_cli.isa.doc import isa_markdown
from vtpu_cli.isa.table import BY_CODE, NOP_NAMES, OPS, V01_OPS
from vtpu_cli.machine.semantics import SEM


def test_all_v01_ops_and_nops_present():
    names = {op.name for op in OPS}
    assert set(V01_OPS) <= names
    assert len(V01_OPS) == 24
    assert set(NOP_NAMES) <= names


def test_every_op_has_semantics_and_documentation():
    for op in OPS:
        assert op.name in SEM, op.name
        assert op.summary and op.semantics, op.name
        assert op.name[0] == op.pipe


def test_operand_fields_fit_the_slot_encoding():
    for op in OPS:
        fields = sum(3 if o.kind == "mem" else 1 for o in op.operands)
        imms = sum(1 for o in op.operands if o.kind in ("imm", "label", "coord", "group", "ri", "rvi", "rvs"))
        imms += sum(2 for o in op.operands if o.kind == "mem")
        assert fields <= 4, op.name
        assert imms <= 2 or op.mem_len, op.name


def test_opcodes_unique_and_grouped_by_pipe():
    assert len(BY_CODE) == len(OPS)
    for op in OPS:
        assert (
            {"D": 0x00, "S": 0x40, "C": 0x80}[op.pipe] <= op.code < {"D": 0x40, "S": 0x80, "C": 0xC0}[op.pipe]
        )


def test_committed_isa_reference_is_fresh():
    committed = (ROOT / "docs" / "isa.md").read_text()
    assert committed == isa_markdown(), "docs/isa.md is stale: run `vtpu isa --markdown > docs/isa.md`"
