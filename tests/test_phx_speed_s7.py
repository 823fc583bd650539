"""Session-7 compile-speed changes that need their own checks (the byte-identity corpus is
tests/test_phx_speed.py): the shelf arithmetic of the coordinate colouring, and many-sentron compiles
whose colouring used to grow with sentrons x 999 candidate shelves."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vtpu_cli.compiler import compile_phx
from vtpu_cli.compiler.ir import private_coord
from vtpu_cli.compiler.lower import RESERVED_LIBRARY, ppt_set, private_shelf_coords, private_shelf_sets


@given(
    st.integers(1, 40),
    st.integers(1, 999),
    st.integers(1, 999),
)
def test_private_shelf_arithmetic_is_private_coord(sentrons, lib, shelf):
    first, step = private_shelf_coords(lib, sentrons)
    assert len(first) == sentrons
    for s in {0, sentrons // 2, sentrons - 1}:
        assert first[s] + (shelf - 1) * step == private_coord(s, lib, shelf)


@given(
    st.integers(1, 24),
    st.integers(1, 999),
    st.integers(1, 999),
    st.integers(0, 40),
    st.sampled_from([2, 64, 256, 4096]),
)
def test_private_shelf_sets_are_the_ppt_sets(sentrons, lib, v0, n, sets):
    """The colouring's per-shelf PPT sets (Morton key of the sentron's coordinate OR that of the shelf
    field) equal ppt_set of the packed coordinate."""
    shelves = range(v0, min(v0 + n, 1000))
    rows = private_shelf_sets(lib, sentrons, shelves, sets)
    assert len(rows) == sentrons
    for s in {0, sentrons - 1}:
        assert rows[s] == [ppt_set(private_coord(s, lib, v), sets) for v in shelves]


def test_reserved_scratch_library_shelves_on_many_sentrons():
    first, step = private_shelf_coords(RESERVED_LIBRARY + 8, 16)
    assert len(set(first)) == 16
    assert first[15] + 998 * step == private_coord(15, RESERVED_LIBRARY + 8, 999)


def test_many_sentron_compile_picks_distinct_scratch_shelves():
    """A program with scratch scrolls on 8 sentrons compiles (the colouring tries the shelves of every
    sentron) to the same code as before: distinct private shelves, deterministic."""
    from vtpu_cli.models.compiled import StepShape

    text = StepShape(64, 128, 2, 1, 32, 2, 256, 64, 1e-5).text()
    a, rep = compile_phx(text, "m.phx", opt=2, sentrons=8, force_loops=True)
    b, _ = compile_phx(text, "m.phx", opt=2, sentrons=8, force_loops=True)
    assert a.code == b.code and a.sentrons == 8 and rep["total"]["siws"] == len(a.code)
    private = [d.coord for d in a.data if d.zero]
    assert len(private) >= 8 and len(private) == len(set(private))
