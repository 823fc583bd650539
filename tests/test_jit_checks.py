"""Bounds checks of the JIT's S-pipe lowering against the interpreter, at the edges.

The contiguous and span checks are one unsigned compare against ``max(size - n + 1, 0)`` and the
indexed check compares the i32 indexes with bounds derived from the offset and the scroll size
(``lowering._ends``, ``lowering._index_out_of_range``): these tests draw offsets, indexes and scroll
sizes around every boundary (negative offsets, offsets near 2**62, indexes at the i32 extremes, scrolls
shorter than the access) and require the same result -- or the same fault at the same SIW and slot --
as the golden model, with the native code running (``both`` asserts it).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtpu_cli.asm.assembler import assemble

pytest.importorskip("llvmlite")

from test_jit import both  # noqa: E402

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1

_IDX = st.one_of(
    st.integers(-3, 80),
    st.sampled_from([I32_MIN, I32_MIN + 1, I32_MAX, I32_MAX - 1, -(1 << 30), 1 << 29, 63, 64, 65]),
)
_OFF = st.one_of(
    st.integers(-8, 16),
    st.integers(-300, 600),
    st.sampled_from([(1 << 62) - 4, 1 << 62, (1 << 62) + 4, -(1 << 62), -(1 << 62) - 4, 1 << 40, -(1 << 33)]),
)


def _prog(size: int, idx: list[int], off: int, t: str, store: bool, loop: int) -> str:
    data = ", ".join(str((i * 29 + 7) % 251) for i in range(size))
    access = f"SSCATTR.{t} [p0 + r2 + v1], v3" if store else f"SGATHER.{t} v2, [p0 + r2 + v1]"
    return f"""
.coord X = 1.2.2/1.1.1/1.1.1
.coord I = 1.2.2/1.1.1/1.1.2
.data X u8[{size}] {data}
.data I i32[16] {", ".join(map(str, idx))}
    SCOORD p0, X                      | DMOV r2, {off}
    SCOORD p1, I                      | DMOV r1, {loop}
    SGATHER.i32 v1, [p1]              | DBCAST.i32 v3, 77
loop:
    {access}
    DADD.i32 v3, v3, 1
    DLOOP r1, loop
"""


_EDGES = st.tuples(
    st.sampled_from([1, 3, 4, 8, 60, 64, 252, 256, 257, 300, 1024]),
    st.lists(_IDX, min_size=16, max_size=16),
    _OFF,
)
# mostly in range: the window (< 256 bytes) and per-lane paths, one index sometimes past the end
_INSIDE = st.tuples(
    st.sampled_from([256, 257, 300, 512, 1024]),
    st.lists(st.integers(0, 40), min_size=16, max_size=16),
    st.sampled_from([0, 4, 8, 64, 100, 128, 2]),
)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    case=st.one_of(_EDGES, _INSIDE),
    t=st.sampled_from(["i32", "f32", "i64"]),
    store=st.booleans(),
    loop=st.sampled_from([1, 3]),
)
def test_indexed_access_bounds_match_the_interpreter(case, t, store, loop):
    size, idx, off = case
    prog = assemble(_prog(size, idx, off, t, store, loop))
    ref, res, diffs = both(prog)
    assert diffs == [], diffs
    assert res.status == ref.status


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 128, 200])
@pytest.mark.parametrize("off", [-1, 0, 1, 4, 60, 64, 72, 136, -(1 << 62), (1 << 62) + 8, (1 << 63) - 1])
def test_contiguous_and_span_bounds_match_the_interpreter(size, off):
    """Contiguous scalar and vector accesses, partial vectors and constant-stride span loads (124 bytes)
    at every edge of the scroll (sizes below the access width included)."""
    data = ", ".join(str(i % 256) for i in range(size)) if size else ""
    decl = f".data X u8[{size}] {data}" if size else ".zero X u8[0]"
    for access in (
        "SGATHER.i64 r3, [p0 + r2]",
        "SSCATTR.i32 [p0 + r2], r1",
        "SGATHER.f32 v2, [p0 + r2]",
        "SSCATTR.i32 [p0 + r2], v2",
        "SGATHER.i32 v2, [p0 + r2 : 8]",
        "SGATHER.i32 v2, [p0 + r2 : 4]",
    ):
        prog = assemble(f"""
.coord X = 1.2.2/1.1.1/1.1.1
{decl}
    SCOORD p0, X                      | DMOV r2, {off}
    DMOV r1, 2
loop:
    {access}
    DLOOP r1, loop
""")
        ref, res, diffs = both(prog)
        assert diffs == [], (access, diffs)
        assert res.status == ref.status, access
