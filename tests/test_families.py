"""Semantics as data: every op has a golden hook and a lowering; families and packing are shared."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from vtpu_cli.isa.families import BINARY, COMPARE
from vtpu_cli.isa.table import CMP_CONDS, OPS
from vtpu_cli.isa.ternary import pack_codes, pack_weights, unpack_codes, unpack_weights
from vtpu_cli.machine.semantics import SEM


def test_every_op_has_semantics_and_a_lowering():
    from vtpu_cli.engines.jit.lowering import LOWER

    missing_sem = [op.name for op in OPS if op.name not in SEM]
    missing_low = [op.name for op in OPS if op.name not in LOWER and not op.is_nop]
    assert missing_sem == [] and missing_low == [], (missing_sem, missing_low)


def test_binary_families_cover_their_ops_and_name_real_functions():
    from llvmlite import ir

    builder = ir.IRBuilder
    names = {op.name for op in OPS}
    assert set(BINARY) <= names
    for rule in BINARY.values():
        if rule.np_int:
            assert callable(getattr(np, rule.np_int)), rule
        if rule.np_f32:
            assert callable(getattr(np, rule.np_f32)), rule
        if rule.ir_f32:
            assert callable(getattr(builder, rule.ir_f32)), rule
        if rule.family in ("wrap", "bitwise", "shift"):
            assert callable(getattr(builder, rule.ir_int)), rule
    assert set(COMPARE) == set(CMP_CONDS)


def test_op_properties_live_on_the_rows():
    by = {op.name: op for op in OPS}
    assert {n for n, o in by.items() if o.edits_scrolls} == {"SALLOC", "SFREE", "SFLUSH"}
    assert all(by[n].pipe == "S" for n, o in by.items() if o.no_memory)
    assert all(by[n].pipe == "D" for n, o in by.items() if o.defers_nan)


@given(st.lists(st.integers(0, 2), min_size=0, max_size=300))
def test_ternary_codes_round_trip(codes):
    packed = pack_codes(np.array(codes, np.uint8))
    assert packed.shape == ((len(codes) + 3) // 4,)
    assert unpack_codes(packed, len(codes)).tolist() == codes
    for k, c in enumerate(codes):  # the documented bit position
        assert (int(packed[k // 4]) >> (2 * (k % 4))) & 3 == c


@given(st.lists(st.integers(-1, 1), min_size=1, max_size=64), st.integers(1, 4))
def test_ternary_weights_round_trip_in_rows(w, rows):
    m = np.array([w] * rows, np.int8)
    assert (unpack_weights(pack_weights(m), len(w)) == m).all()
