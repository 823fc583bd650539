"""Session-8 compile-speed changes that need their own checks (the byte-identity corpus is
tests/test_phx_speed.py): the numpy coordinate colouring against the colouring it replaced
(tests/phx_colour_ref.py), choice for choice, and its vectorised PPT sets against ``ppt_set``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtpu_cli.binary.siwfile import encode
from vtpu_cli.compiler import compile_phx
from vtpu_cli.compiler import lower as lower_mod
from vtpu_cli.compiler.ir import private_coord
from vtpu_cli.compiler.lower import (
    COLOURED_LIBRARIES,
    ppt_set,
    private_shelf_sets,
    shelf_keys,
    shelf_set_matrix,
)
from vtpu_cli.core import coords

sys.path.insert(0, str(Path(__file__).parent))
import phx_colour_ref  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 20), st.integers(1, 999), st.sampled_from([2, 64, 256, 4096]))
def test_shelf_set_matrix_is_ppt_set_of_every_shelf(sentrons, lib, sets):
    """Row s, column v - 1: ppt_set of sentron s's private coordinate of shelf v (every shelf)."""
    keys, step = shelf_keys(lib, sentrons)
    m = shelf_set_matrix(keys, step, sets)
    assert m.shape == (sentrons, 999)
    assert m.tolist() == private_shelf_sets(lib, sentrons, range(1, 1000), sets)
    for s in {0, sentrons - 1}:
        for v in (1, 2, 500, 998, 999):
            assert m[s, v - 1] == ppt_set(private_coord(s, lib, v), sets)


@pytest.mark.parametrize("lib", COLOURED_LIBRARIES)
def test_shelf_set_matrix_of_a_shared_coordinate(lib):
    """A compiler-chosen shared coordinate (part 1 = the shelf): every shelf's set from one key."""
    c = coords.pack_parts([lib, 1, 3, 1, 1, 1, 1, 1, 1])
    step = coords.set_part_packed(c, 1, 2) - c
    row = shelf_set_matrix([coords.morton_key_packed(c)], step)[0]
    assert row.tolist() == [ppt_set(c + (v - 1) * step, 64) for v in range(1, 1000)]


def _compile_both(monkeypatch, text: str, **kw):
    got = compile_phx(text, "m.phx", **kw)[0]
    monkeypatch.setattr(lower_mod, "colour_coordinates", phx_colour_ref.colour_coordinates)
    want = compile_phx(text, "m.phx", **kw)[0]
    monkeypatch.undo()
    return got, want


@pytest.mark.parametrize("sentrons", [1, 2, 3, 5, 16])
def test_colouring_matches_the_reference_on_many_sentrons(monkeypatch, sentrons):
    """Same private shelves and shared coordinates (so the same bytes) as the colouring it replaced."""
    from vtpu_cli.models.compiled import StepShape

    text = StepShape(64, 128, 2, 1, 32, 2, 256, 64, 1e-5).text()
    got, want = _compile_both(monkeypatch, text, opt=2, sentrons=sentrons, force_loops=True)
    assert [d.coord for d in got.data] == [d.coord for d in want.data]
    assert encode(got) == encode(want)
    coords_ = [d.coord for d in got.data]
    assert len(coords_) == len(set(coords_))  # distinct scrolls (private shelves included)


@pytest.mark.parametrize("sentrons", [1, 2])
def test_colouring_matches_the_reference_on_the_2b_shaped_model(monkeypatch, sentrons):
    from vtpu_cli.models.compiled import StepShape

    text = StepShape(2560, 6912, 20, 5, 128, 30, 128256, 4096, 1e-5).text()
    got, want = _compile_both(monkeypatch, text, opt=2, sentrons=sentrons, force_loops=True)
    assert [d.coord for d in got.data] == [d.coord for d in want.data]
    assert encode(got) == encode(want)


def test_recording_builder_groups_statement_phases_apart():
    """A coordinate region opened outside the statement's loops is a group of its own (phases run one
    after the other); one opened inside a loop of the statement records into the enclosing group."""
    from vtpu_cli.compiler.ir import Scroll
    from vtpu_cli.compiler.lower import RecordingBuilder

    b = RecordingBuilder()
    for k, name in enumerate("abcde", 1):
        b.scrolls[name] = Scroll(name, "f32", (16,), 64, coord=coords.pack_parts([1, 1, 1, 1, 1, 1, 1, 1, k]))
    outer = b.open_group()
    b.base("a")
    saved = b.push_region()  # a phase: its own group
    b.base("b")
    b.pop_region(saved)

    def body() -> None:
        inner = b.push_region()  # inside the statement's loop: same group as "c"
        b.base("d")
        b.pop_region(inner)

    b.base("c")
    b.counted_loop(4, body)
    b.close_group(outer)
    assert b.group is None
    assert b.groups == [{"a", "c", "d"}, {"b"}]
    # a statement that starts inside a loop (a user loop around it) still splits its phases
    b.groups.clear()

    def stmt() -> None:
        g = b.open_group()
        b.base("a")
        saved = b.push_region()
        b.base("e")
        b.pop_region(saved)
        b.close_group(g)

    b.counted_loop(4, stmt)
    assert b.groups == [{"a"}, {"e"}]
