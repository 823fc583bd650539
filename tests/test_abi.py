"""The JIT's native context block is declared once (engines/jit/abi.py); check the layout it derives."""

from __future__ import annotations

import numpy as np

from vtpu_cli.engines.jit import abi
from vtpu_cli.isa.table import REG_COUNTS, VEC_BYTES


def test_fields_are_aligned_disjoint_and_fit():
    spans = sorted((abi.OFFSETS[f.name], abi.OFFSETS[f.name] + f.size, f) for f in abi.FIELDS)
    for (_, a1, fa), (b0, _, fb) in zip(spans, spans[1:], strict=False):
        assert a1 <= b0, f"{fa.name} overlaps {fb.name}"
    for off, _, f in spans:
        assert off % f.align == 0, f.name
    assert spans[-1][1] <= abi.CTX_SIZE and abi.CTX_SIZE % 64 == 0


def test_register_files_match_the_isa():
    by = {f.name: f for f in abi.FIELDS}
    assert by["r"].count == REG_COUNTS["r"]
    assert by["p"].count == 2 * REG_COUNTS["p"]
    assert by["v"].count == REG_COUNTS["v"] * VEC_BYTES
    assert by["m"].count == REG_COUNTS["m"] * VEC_BYTES
    assert by["mlen"].count == REG_COUNTS["m"]


def test_watchdog_words_have_their_own_cache_lines():
    for name in ("blocked", "cstat"):
        assert abi.OFFSETS[name] % 64 == 0


def test_named_view_and_offsets_agree():
    ctx = np.zeros(abi.CTX_SIZE, np.uint8)
    named = ctx.view(abi.CTX_DTYPE)[0]
    named["status"] = 7
    named["r"][3] = -5
    named["v"][64 * 2 + 1] = 9
    i64 = ctx[: abi.OFF_V].view(np.int64)
    assert i64[abi.OFF_STATUS // 8] == 7
    assert i64[abi.OFF_R // 8 + 3] == -5
    assert ctx[abi.OFF_V + 64 * 2 + 1] == 9


def test_c_pipe_statistics_fit():
    from vtpu_cli.engines.jit import comm

    assert len(comm.STAT_NAMES) <= {f.name: f for f in abi.FIELDS}["cstat"].count
