"""Tests for vtpu_cli.core.coords: text format, packing, Morton keys and per-dimension arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vtpu_cli.core.coords import (
    DIMS,
    ORIGIN,
    PART_MAX,
    PART_MIN,
    Coord,
    CoordError,
    advance,
    advance_packed,
    as_coord,
    dim_index,
    distance,
    distance_packed,
    format_packed,
    from_bytes16,
    get_part_packed,
    home_coord,
    home_packed,
    is_valid_packed,
    morton_key,
    morton_key_packed,
    morton_unkey,
    pack,
    pack_parts,
    parse_packed,
    set_part,
    set_part_packed,
    to_bytes16,
    unpack,
)
from vtpu_cli.core.errors import VtpuError

part = st.integers(PART_MIN, PART_MAX)
# Bias towards the edges, where off-by-one mistakes live.
edge_part = st.one_of(part, st.sampled_from([1, 2, 3, 498, 499, 500, 511, 512, 997, 998, 999]))
parts9 = st.tuples(*([edge_part] * 9))
coords = parts9.map(Coord)
dims = st.integers(0, 8)
modes = st.sampled_from(["fault", "wrap", "carry"])


def base999(c: Coord, upto: int) -> int:
    """Parts 0..upto as a base-999 number (the carry-mode odometer reading)."""
    x = 0
    for p in c.parts[: upto + 1]:
        x = x * 999 + (p - 1)
    return x


# ------------------------------------------------------------------------------------------- text


def test_parse_and_format_examples():
    c = Coord.parse("  1.2.3/4.5.6/7.8.9\n")
    assert c.parts == (1, 2, 3, 4, 5, 6, 7, 8, 9)
    assert str(c) == "1.2.3/4.5.6/7.8.9"
    assert repr(c) == "Coord('1.2.3/4.5.6/7.8.9')"
    assert [getattr(c, name) for name in DIMS] == list(range(1, 10))
    assert c["volume"] == 5 and c[4] == 5
    assert f"{c:>20}" == "   1.2.3/4.5.6/7.8.9"
    assert Coord.parse("999.999.999/999.999.999/999.999.999").parts == (999,) * 9
    assert Coord.parse("001.1.1/1.1.1/1.1.0002") == Coord.of(1, 1, 1, 1, 1, 1, 1, 1, 2)
    assert str(ORIGIN) == "1.1.1/1.1.1/1.1.1"


@pytest.mark.parametrize(
    "text, fragment, col",
    [
        ("", "empty coordinate", 0),
        ("   ", "empty coordinate", 3),
        ("1.1.1/1.1.1/1.1", "only 8 parts", 15),
        ("1.1.1/1.1.1/1.1.1000", "part 9 (scroll) is 1000; parts must be 1..999", 16),
        ("1.1.1/1.1000.1/1.1.1", "part 5 (volume) is 1000; parts must be 1..999", 8),
        ("1.1.1/1.0.1/1.1.1", "part 5 (volume) is 0", 8),
        ("  0.1.1/1.1.1/1.1.1", "part 1 (library) is 0", 2),
        ("1.1.1.1/1.1/1.1.1", "expected '/' after coordinate part 3 (series), found '.'", 5),
        ("1.1/1.1.1/1.1.1", "expected '.' after coordinate part 2 (shelf), found '/'", 3),
        ("1.1.1/1.1.1/1.1.1/", "exactly 9 parts", 17),
        ("1.1.1/1.1.1/1.1.1.1", "exactly 9 parts", 17),
        ("1.1.1/1..1/1.1.1", "part 5 (volume) is empty", 8),
        ("1.1.1/1.1.1/1.1.", "part 9 (scroll) is empty", 16),
        ("1.x.1/1.1.1/1.1.1", "unexpected character 'x' in coordinate part 2 (shelf)", 2),
        ("1.1.1/1.1.1/1.1.-1", "unexpected character '-'", 16),
        ("1.1.1 /1.1.1/1.1.1", "unexpected character ' '", 5),
        ("\uff11.1.1/1.1.1/1.1.1", "unexpected character", 0),
        ("1" * 5000 + ".1.1/1.1.1/1.1.1", "part 1 (library) is", 0),
    ],
)
def test_parse_errors_name_the_part_and_column(text, fragment, col):
    with pytest.raises(CoordError) as ei:
        Coord.parse(text)
    assert fragment in ei.value.message
    assert ei.value.col == col
    assert isinstance(ei.value, VtpuError) and ei.value.hint


def test_parse_rejects_non_string():
    with pytest.raises(CoordError):
        Coord.parse(None)  # type: ignore[arg-type]


@given(coords)
def test_parse_format_roundtrip(c):
    assert Coord.parse(str(c)) == c
    assert Coord.parse(f" \t{c}\n") == c
    assert parse_packed(str(c)) == pack(c)
    assert format_packed(pack(c)) == str(c)


@given(parts9)
def test_text_with_leading_zeros_parses(parts):
    text = "{}.{}.{}/{}.{}.{}/{}.{}.{}".format(*(f"{p:04d}" for p in parts))
    assert Coord.parse(text).parts == parts


_fuzz_chars = st.sampled_from(list("0123456789./ \t\n-+x_") + ["\uff11", "\u0661", "\u00b2", "\x00", "\x17"])


@settings(max_examples=400)
@given(st.one_of(st.text(_fuzz_chars, max_size=40), st.text(max_size=30)))
def test_parse_fuzz_only_raises_coord_error(text):
    try:
        c = Coord.parse(text)
    except CoordError as e:
        assert e.col is None or 0 <= e.col <= len(text)
        return
    # Anything accepted is a valid coordinate whose canonical text means the same thing.
    assert Coord.parse(str(c)) == c
    assert all(PART_MIN <= p <= PART_MAX for p in c.parts)


@settings(max_examples=300)
@given(parts9, st.integers(0, 8), st.sampled_from(["0", "1000", "", "a", "1.1", "-1", "99999"]))
def test_parse_fuzz_mutated_part(parts, i, bad):
    fields = [str(p) for p in parts]
    fields[i] = bad
    text = "{}.{}.{}/{}.{}.{}/{}.{}.{}".format(*fields)
    with pytest.raises(CoordError):
        Coord.parse(text)


def test_constructor_validates():
    with pytest.raises(CoordError, match=r"part 9 \(scroll\) is 0"):
        Coord((1,) * 8 + (0,))
    with pytest.raises(CoordError, match="9 parts"):
        Coord((1,) * 8)
    with pytest.raises(CoordError, match="integer"):
        Coord((1,) * 8 + (True,))
    with pytest.raises(CoordError, match="integer"):
        Coord((1.0,) * 9)  # type: ignore[arg-type]
    with pytest.raises(CoordError):
        Coord(5)  # type: ignore[arg-type]
    assert Coord([1] * 9) == ORIGIN  # type: ignore[arg-type]
    assert as_coord("1.1.1/1.1.1/1.1.1") == as_coord(0) == as_coord([1] * 9) == as_coord(ORIGIN) == ORIGIN


def test_dim_index():
    assert dim_index("library") == 0 and dim_index(" Scroll ") == 8 and dim_index(4) == 4
    for bad in (-1, 9, "page", True, 1.0):
        with pytest.raises(CoordError):
            dim_index(bad)  # type: ignore[arg-type]


@given(coords, coords)
def test_coord_order_is_lexicographic(a, b):
    assert (a < b) == (a.parts < b.parts)
    assert (a == b) == (a.parts == b.parts)
    assert (hash(a) == hash(b)) or a != b


# ---------------------------------------------------------------------------------------- packing


def test_pack_layout():
    c = Coord.parse("2.1.1/1.1.1/1.1.3")
    assert pack(c) == (1 << 80) | 2
    assert pack(ORIGIN) == 0
    top = Coord((999,) * 9)
    assert pack(top) < 1 << 90
    for i in range(9):
        parts = [1] * 9
        parts[i] = 999
        assert pack_parts(parts) == 998 << (10 * (8 - i))
        assert get_part_packed(pack_parts(parts), i) == 999


@given(coords)
def test_pack_roundtrip(c):
    v = pack(c)
    assert 0 <= v < 1 << 90
    assert is_valid_packed(v)
    assert unpack(v) == c
    assert pack_parts(c.parts) == v == c.pack()
    assert from_bytes16(to_bytes16(v)) == v
    assert to_bytes16(v) == v.to_bytes(16, "little")
    assert [get_part_packed(v, i) for i in range(9)] == list(c.parts)


@given(coords, coords)
def test_pack_order_and_injective(a, b):
    assert (pack(a) < pack(b)) == (a < b)
    assert (pack(a) == pack(b)) == (a == b)


@given(st.integers(0, (1 << 128) - 1))
def test_unpack_accepts_exactly_valid_packings(v):
    fields = [(v >> (10 * (8 - i))) & 1023 for i in range(9)]
    valid = v >> 90 == 0 and all(f <= 998 for f in fields)
    assert is_valid_packed(v) == valid
    if valid:
        assert pack(unpack(v)) == v
    else:
        with pytest.raises(CoordError):
            unpack(v)
        with pytest.raises(CoordError):
            to_bytes16(v)
        with pytest.raises(CoordError):
            from_bytes16(v.to_bytes(16, "little"))


@given(parts9, dims, st.integers(999, 1023))
def test_unpack_rejects_each_oversized_field(parts, i, f):
    v = pack_parts(parts)
    v = (v & ~(1023 << (10 * (8 - i)))) | (f << (10 * (8 - i)))
    assert not is_valid_packed(v)
    with pytest.raises(CoordError, match=DIMS[i]):
        unpack(v)


def test_unpack_rejects_bad_values():
    for bad in (-1, 1 << 90, 1 << 127, True, "0", 1.0):
        assert not is_valid_packed(bad)  # type: ignore[arg-type]
        with pytest.raises(CoordError):
            unpack(bad)  # type: ignore[arg-type]
    with pytest.raises(CoordError, match="16 bytes"):
        from_bytes16(b"\0" * 15)


def test_pack_parts_validates():
    with pytest.raises(CoordError, match="9 parts"):
        pack_parts([1] * 10)
    with pytest.raises(CoordError, match=r"part 3 \(series\) is 1000"):
        pack_parts([1, 1, 1000, 1, 1, 1, 1, 1, 1])
    with pytest.raises(CoordError, match="integer"):
        pack_parts([1, 1, "1", 1, 1, 1, 1, 1, 1])  # type: ignore[list-item]


# ------------------------------------------------------------------------------------------ Morton


def test_morton_layout():
    # scroll bit b -> key bit 9b, library bit b -> key bit 9b + 8
    assert morton_key(ORIGIN) == 0
    assert morton_key(Coord.parse("1.1.1/1.1.1/1.1.2")) == 1
    assert morton_key(Coord.parse("1.1.1/1.1.1/1.2.1")) == 2
    assert morton_key(Coord.parse("2.1.1/1.1.1/1.1.1")) == 1 << 8
    assert morton_key(Coord.parse("1.1.1/1.1.1/1.1.3")) == 1 << 9
    assert morton_key(Coord.parse("513.1.1/1.1.1/1.1.1")) == 1 << 89
    assert morton_key(Coord((999,) * 9)) < 1 << 90


@given(coords)
def test_morton_bijective(c):
    k = morton_key(c)
    assert 0 <= k < 1 << 90
    assert morton_key_packed(pack(c)) == k == c.morton()
    assert morton_unkey(k) == c


@given(coords, coords)
def test_morton_injective(a, b):
    assert (morton_key(a) == morton_key(b)) == (a == b)


def test_morton_unkey_rejects_unreachable_keys():
    k = sum(1 << (9 * b) for b in range(10))  # scroll field = 1023 -> part 1024
    with pytest.raises(CoordError, match="scroll"):
        morton_unkey(k)
    with pytest.raises(CoordError):
        morton_unkey(1 << 90)


def _tz(x: int) -> int:
    return (x & -x).bit_length() - 1


@given(coords, dims)
def test_morton_neighbour_locality(c, i):
    """Stepping part i from p to p+1 raises the key by at least 1 and at most 2**(9*tz(p) + 8 - i).

    tz(p) = trailing zero bits of p (the one-based part before the step), i.e. the number of bits that
    flip in p - 1. So half of all unit steps (odd p) move the key by at most 2**(8-i) <= 256, and a
    step never moves the key past the next aligned Z-order block of its size.
    """
    p = c.parts[i]
    assume(p < PART_MAX)
    d = morton_key(advance(c, i, 1)) - morton_key(c)
    assert 1 <= d <= 1 << (9 * _tz(p) + 8 - i)
    if p % 2 == 1:
        assert d == 1 << (8 - i)


@given(coords, coords)
def test_morton_monotone_in_every_part(a, b):
    lo = Coord(tuple(map(min, a.parts, b.parts)))
    hi = Coord(tuple(map(max, a.parts, b.parts)))
    assert morton_key(lo) <= morton_key(a) <= morton_key(hi)


# -------------------------------------------------------------------------------------- arithmetic


def test_advance_examples():
    c = Coord.parse("1.1.1/1.1.1/1.999.999")
    assert str(advance(c, "scroll", 1, "carry")) == "1.1.1/1.1.1/2.1.1"
    assert str(advance(c, 8, 1, "wrap")) == "1.1.1/1.1.1/1.999.1"
    assert str(advance(c, 7, 1, "carry")) == "1.1.1/1.1.1/2.1.999"
    assert str(advance(ORIGIN, 8, -1, "wrap")) == "1.1.1/1.1.1/1.1.999"
    assert str(advance(ORIGIN, 8, -1000, "wrap")) == "1.1.1/1.1.1/1.1.999"
    assert str(advance(Coord.parse("1.1.1/1.1.1/2.1.1"), 8, -1, "carry")) == "1.1.1/1.1.1/1.999.999"
    assert str(c.advance("section", -998)) == "1.1.1/1.1.1/1.1.999"
    with pytest.raises(CoordError, match=r"part 9 \(scroll\) would become 1000"):
        advance(c, 8, 1)
    with pytest.raises(CoordError, match="library"):
        advance(Coord((999,) * 9), 8, 1, "carry")
    with pytest.raises(CoordError, match="library"):
        advance(ORIGIN, 5, -1, "carry")
    with pytest.raises(CoordError, match="mode"):
        advance(ORIGIN, 8, 0, "saturate")
    with pytest.raises(CoordError, match="dimension"):
        advance(ORIGIN, 9, 1)
    assert advance_packed(0, "scroll", 1) == 1  # type: ignore[arg-type]
    with pytest.raises(CoordError):
        advance_packed(0, "page", 1)  # type: ignore[arg-type]
    with pytest.raises(CoordError):
        advance_packed(1 << 90, 8, 1)
    with pytest.raises(CoordError):
        advance_packed(0, 8, 1.0)  # type: ignore[arg-type]


deltas = st.one_of(st.integers(-2100, 2100), st.integers(-(10**12), 10**12), st.integers(-(999**9), 999**9))


@given(coords, dims, deltas)
def test_fault_raises_exactly_when_out_of_range(c, i, delta):
    target = c.parts[i] + delta
    if PART_MIN <= target <= PART_MAX:
        r = advance(c, i, delta, "fault")
        assert r.parts == c.parts[:i] + (target,) + c.parts[i + 1 :]
        assert advance_packed(pack(c), i, delta) == pack(r)
    else:
        with pytest.raises(CoordError):
            advance(c, i, delta, "fault")
        with pytest.raises(CoordError):
            advance_packed(pack(c), i, delta, "fault")


@given(coords, dims, deltas)
def test_wrap_invariants(c, i, delta):
    r = advance(c, i, delta, "wrap")
    assert r.parts[:i] == c.parts[:i] and r.parts[i + 1 :] == c.parts[i + 1 :]
    assert (r.parts[i] - 1) == (c.parts[i] - 1 + delta) % 999
    assert advance(r, i, -delta, "wrap") == c
    assert advance(c, i, delta + 999, "wrap") == r


@given(coords, dims, deltas)
def test_carry_invariants(c, i, delta):
    before = base999(c, i)
    limit = 999 ** (i + 1)
    if 0 <= before + delta < limit:
        r = advance(c, i, delta, "carry")
        assert base999(r, i) == before + delta  # odometer semantics
        assert r.parts[i + 1 :] == c.parts[i + 1 :]  # lower parts untouched
        assert advance(r, i, -delta, "carry") == c  # +d then -d is the identity
        assert (r > c) == (delta > 0) and (r == c) == (delta == 0)
        assert advance_packed(pack(c), i, delta, "carry") == pack(r)
    else:
        with pytest.raises(CoordError):
            advance(c, i, delta, "carry")


@given(coords, dims, st.integers(-2000, 2000), st.integers(-2000, 2000))
def test_carry_composes(c, i, d1, d2):
    try:
        r = advance(advance(c, i, d1, "carry"), i, d2, "carry")
    except CoordError:
        return
    assert advance(c, i, d1 + d2, "carry") == r


@given(coords, dims, part)
def test_set_part(c, i, value):
    r = set_part(c, i, value)
    assert r.parts == c.parts[:i] + (value,) + c.parts[i + 1 :]
    assert set_part_packed(pack(c), i, value) == pack(r)
    assert c.with_part(DIMS[i], value) == r


@given(coords, dims, st.one_of(st.integers(-5, 0), st.integers(1000, 5000)))
def test_set_part_rejects_out_of_range(c, i, value):
    with pytest.raises(CoordError, match=DIMS[i]):
        set_part(c, i, value)
    with pytest.raises(CoordError, match=DIMS[i]):
        set_part_packed(pack(c), i, value)


# ------------------------------------------------------------------------------ distance and homes


@given(coords, coords, coords)
def test_distance_is_a_metric(a, b, c):
    assert distance(a, b) == distance(b, a) == distance_packed(pack(a), pack(b))
    assert (distance(a, b) == 0) == (a == b)
    assert distance(a, c) <= distance(a, b) + distance(b, c)


@given(coords, dims)
def test_unit_step_has_distance_one(c, i):
    assume(c.parts[i] < PART_MAX)
    assert distance(c, advance(c, i, 1)) == 1


def test_home_coord_rule():
    assert str(home_coord(0)) == "1.1.1/1.1.1/1.1.1"
    assert str(home_coord(41)) == "1.1.1/1.1.1/1.1.42"
    assert str(home_coord(998)) == "1.1.1/1.1.1/1.1.999"
    assert str(home_coord(999)) == "1.1.1/1.1.1/1.2.1"
    assert str(home_coord(999 * 999)) == "1.1.1/1.1.1/2.1.1"
    assert home_coord(999**9 - 1) == Coord((999,) * 9)
    for bad in (-1, 999**9, 1.5, True):
        with pytest.raises(CoordError):
            home_coord(bad)  # type: ignore[arg-type]


@given(st.integers(0, 999**3))
def test_home_coord_is_base999_and_ordered(n):
    h = home_coord(n)
    assert home_packed(n) == pack(h)
    assert base999(h, 8) == n
    assert h < home_coord(n + 1)
