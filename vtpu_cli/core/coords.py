"""Phext coordinates: parsing, formatting, 90-bit packing, Morton keys and per-dimension arithmetic.

A coordinate is the standard 9-part phext address ``L.S.S/C.V.B/C.S.S``
(library.shelf.series / collection.volume.book / chapter.section.scroll), each part an integer
``1..999``. Dimension indices used throughout this module are 0-based: 0 = library ... 8 = scroll.

Packed form (the value a p-register holds): part *i* is stored as ``part - 1`` in the 10-bit field at
bits ``10*(8-i) .. 10*(8-i)+9``, so the library occupies bits 80..89, the scroll bits 0..9, bits 90 and
above are zero, and integer order equals coordinate order. See ``docs/coordinates.md``.

This module imports only the standard library: it is loaded at CLI start and on interpreter hot paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from vtpu_cli.core.errors import VtpuError

__all__ = [
    "CARRY",
    "DIMS",
    "FAULT",
    "MODES",
    "ORIGIN",
    "PACKED_BITS",
    "PART_MAX",
    "PART_MIN",
    "WRAP",
    "Coord",
    "CoordError",
    "advance",
    "advance_packed",
    "as_coord",
    "dim_index",
    "distance",
    "distance_packed",
    "format_packed",
    "from_bytes16",
    "get_part_packed",
    "home_coord",
    "home_packed",
    "is_valid_packed",
    "morton_key",
    "morton_key_packed",
    "morton_unkey",
    "pack",
    "pack_parts",
    "parse_packed",
    "set_part",
    "set_part_packed",
    "to_bytes16",
    "unpack",
]

DIMS: tuple[str, ...] = (
    "library",
    "shelf",
    "series",
    "collection",
    "volume",
    "book",
    "chapter",
    "section",
    "scroll",
)
NDIMS = 9
PART_MIN = 1
PART_MAX = 999
RADIX = PART_MAX - PART_MIN + 1  # 999 values per part
FIELD_BITS = 10
PACKED_BITS = NDIMS * FIELD_BITS  # 90
_FIELD = (1 << FIELD_BITS) - 1  # 1023
_SHIFT = tuple((NDIMS - 1 - i) * FIELD_BITS for i in range(NDIMS))  # library 80 ... scroll 0
_DIM_BY_NAME = {name: i for i, name in enumerate(DIMS)}

FAULT = "fault"
WRAP = "wrap"
CARRY = "carry"
MODES = frozenset((FAULT, WRAP, CARRY))

_TEXT_HINT = (
    "coordinates look like 1.1.1/1.1.1/1.1.1 "
    "(library.shelf.series/collection.volume.book/chapter.section.scroll), each part 1..999"
)

# SWAR validity check for packed values. Splitting the fields into even and odd 10-bit slots leaves
# a zero slot above each field, so adding 25 (= 1024 - 999) to every field at once sets the guard
# bit just above a field exactly when that field is >= 999 (the largest valid stored value is 998).
_EVEN_MASK = sum(_FIELD << (10 * s) for s in range(0, NDIMS, 2))
_ODD_MASK = sum(_FIELD << (10 * s) for s in range(1, NDIMS, 2))
_EVEN_ADD = sum(25 << (10 * s) for s in range(0, NDIMS, 2))
_ODD_ADD = sum(25 << (10 * s) for s in range(1, NDIMS, 2))
_EVEN_GUARD = sum(1 << (10 * s + 10) for s in range(0, NDIMS, 2))
_ODD_GUARD = sum(1 << (10 * s + 10) for s in range(1, NDIMS, 2))


class CoordError(VtpuError):
    """A malformed or out-of-range coordinate (text, parts, packed value or arithmetic result).

    ``col`` is the 0-based character offset of the offending part within the parsed text, or
    ``None`` when the error is not about a position in a piece of text.
    """

    def __init__(self, message: str, *, hint: str | None = None, col: int | None = None):
        super().__init__(message, hint=hint)
        self.col = col


def _part_label(i: int) -> str:
    return f"coordinate part {i + 1} ({DIMS[i]})"


def _range_error(i: int, value: object, col: int | None = None) -> CoordError:
    return CoordError(f"{_part_label(i)} is {value}; parts must be 1..999", hint=_TEXT_HINT, col=col)


def dim_index(dim: int | str) -> int:
    """Normalise a dimension given as an index 0..8 (0 = library) or a name (``"scroll"``)."""
    if isinstance(dim, str):
        i = _DIM_BY_NAME.get(dim.strip().lower())
        if i is None:
            raise CoordError(f"unknown coordinate dimension {dim!r}", hint="dimensions: " + ", ".join(DIMS))
        return i
    if isinstance(dim, bool) or not isinstance(dim, int) or not 0 <= dim < NDIMS:
        raise CoordError(
            f"coordinate dimension must be 0..8 (0 = library, 8 = scroll), got {dim!r}",
            hint="dimensions: " + ", ".join(f"{i}={n}" for i, n in enumerate(DIMS)),
        )
    return dim


# --------------------------------------------------------------------------------------------- Coord

_FAST_RE = re.compile(
    r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})/" * 2 + r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})"
)
_SEPARATORS = "../../.."  # the separator expected after parts 0..7


@dataclass(frozen=True, order=True, slots=True)
class Coord:
    """An immutable, validated 9-part phext coordinate; ordering is lexicographic library -> scroll."""

    parts: tuple[int, ...]

    def __post_init__(self) -> None:
        parts = self.parts
        if not isinstance(parts, tuple) or any(type(p) is not int for p in parts):
            try:
                parts = tuple(parts)
            except TypeError:
                raise CoordError(
                    f"a coordinate needs 9 integer parts, got {parts!r}", hint=_TEXT_HINT
                ) from None
            _check_parts(parts)
            object.__setattr__(self, "parts", tuple(int(p) for p in parts))  # int subclasses -> int
            return
        _check_parts(parts)

    @classmethod
    def _trusted(cls, parts: tuple[int, ...]) -> Coord:
        """Build without validation; callers guarantee 9 ints in 1..999."""
        c = object.__new__(cls)
        object.__setattr__(c, "parts", parts)
        return c

    @classmethod
    def of(cls, *parts: int) -> Coord:
        """``Coord.of(1, 1, 1, 1, 1, 1, 1, 1, 2)``."""
        return cls(parts)

    @classmethod
    def parse(cls, text: str) -> Coord:
        """Parse exactly ``a.b.c/d.e.f/g.h.i`` (ASCII digits, surrounding whitespace allowed)."""
        return cls._trusted(_parse_parts(text))

    def __str__(self) -> str:
        p = self.parts
        return f"{p[0]}.{p[1]}.{p[2]}/{p[3]}.{p[4]}.{p[5]}/{p[6]}.{p[7]}.{p[8]}"

    def __repr__(self) -> str:
        return f"Coord({str(self)!r})"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __getitem__(self, dim: int | str) -> int:
        return self.parts[dim_index(dim)]

    def pack(self) -> int:
        return pack(self)

    def morton(self) -> int:
        return morton_key(self)

    def advance(self, dim: int | str, delta: int, mode: str = FAULT) -> Coord:
        return advance(self, dim, delta, mode)

    def with_part(self, dim: int | str, value: int) -> Coord:
        return set_part(self, dim, value)

    @property
    def library(self) -> int:
        return self.parts[0]

    @property
    def shelf(self) -> int:
        return self.parts[1]

    @property
    def series(self) -> int:
        return self.parts[2]

    @property
    def collection(self) -> int:
        return self.parts[3]

    @property
    def volume(self) -> int:
        return self.parts[4]

    @property
    def book(self) -> int:
        return self.parts[5]

    @property
    def chapter(self) -> int:
        return self.parts[6]

    @property
    def section(self) -> int:
        return self.parts[7]

    @property
    def scroll(self) -> int:
        return self.parts[8]


def _check_parts(parts: tuple) -> None:
    if len(parts) != NDIMS:
        raise CoordError(f"a coordinate has 9 parts, got {len(parts)}", hint=_TEXT_HINT)
    for i, p in enumerate(parts):
        if not isinstance(p, int) or isinstance(p, bool):
            raise CoordError(f"{_part_label(i)} must be an integer, got {p!r}", hint=_TEXT_HINT)
        if not PART_MIN <= p <= PART_MAX:
            raise _range_error(i, p)


def _parse_parts(text: str) -> tuple[int, ...]:
    if not isinstance(text, str):
        raise CoordError(f"expected a coordinate string, got {type(text).__name__}", hint=_TEXT_HINT)
    core = text.strip()
    lead = len(text) - len(text.lstrip())
    m = _FAST_RE.fullmatch(core)
    if m is not None:
        parts = tuple(map(int, m.groups()))
        for i, p in enumerate(parts):
            if p < PART_MIN:  # 3 digits cannot exceed 999, only 0 is out of range here
                raise _range_error(i, p, lead + m.start(i + 1))
        return parts
    return _parse_slow(core, lead)


def _parse_slow(core: str, lead: int) -> tuple[int, ...]:
    """Parse ``core`` (``text.strip()``, starting at offset ``lead`` of the text) part by part.

    Accepts what the fast path rejects only for parts with leading zeros beyond 3 digits (``0001``);
    everything else raises a CoordError naming the offending part and its column.
    """
    if not core:
        raise CoordError("empty coordinate; expected L.S.S/C.V.B/C.S.S", hint=_TEXT_HINT, col=lead)
    parts: list[int] = []
    k = 0  # index of the part being read
    start = 0  # offset in core where part k starts
    for pos, ch in enumerate(core):
        if "0" <= ch <= "9":
            continue
        if ch in "./":
            if pos == start:
                raise CoordError(f"{_part_label(k)} is empty", hint=_TEXT_HINT, col=lead + pos)
            parts.append(_check_digits(core[start:pos], k, lead + start))
            if k == NDIMS - 1:
                raise CoordError(
                    f"unexpected {ch!r} after {_part_label(k)}: a coordinate has exactly 9 parts",
                    hint=_TEXT_HINT,
                    col=lead + pos,
                )
            want = _SEPARATORS[k]
            if ch != want:
                raise CoordError(
                    f"expected {want!r} after {_part_label(k)}, found {ch!r}", hint=_TEXT_HINT, col=lead + pos
                )
            k += 1
            start = pos + 1
            continue
        raise CoordError(f"unexpected character {ch!r} in {_part_label(k)}", hint=_TEXT_HINT, col=lead + pos)
    if start == len(core):
        raise CoordError(f"{_part_label(k)} is empty", hint=_TEXT_HINT, col=lead + start)
    parts.append(_check_digits(core[start:], k, lead + start))
    if k != NDIMS - 1:
        raise CoordError(
            f"coordinate has only {k + 1} part{'s' if k else ''}; expected 9 as L.S.S/C.V.B/C.S.S",
            hint=_TEXT_HINT,
            col=lead + len(core),
        )
    return tuple(parts)


def _check_digits(digits: str, k: int, col: int) -> int:
    stripped = digits.lstrip("0")
    if len(stripped) > 3:  # also avoids int() on huge digit strings
        shown = stripped if len(stripped) <= 12 else stripped[:6] + "..." + stripped[-3:]
        raise _range_error(k, shown, col)
    value = int(stripped or "0")
    if not PART_MIN <= value <= PART_MAX:
        raise _range_error(k, value, col)
    return value


ORIGIN = Coord._trusted((1,) * NDIMS)


def as_coord(x: Coord | str | int | Iterable[int]) -> Coord:
    """Coerce a Coord, coordinate text, packed int or 9-part sequence to a Coord."""
    if isinstance(x, Coord):
        return x
    if isinstance(x, str):
        return Coord.parse(x)
    if isinstance(x, int) and not isinstance(x, bool):
        return unpack(x)
    return Coord(tuple(x))


# ------------------------------------------------------------------------------------------- packing


def pack_parts(parts: Iterable[int]) -> int:
    """Pack 9 one-based parts (library first) into the 90-bit value; validates them."""
    if type(parts) is not tuple:
        parts = tuple(parts)
    if len(parts) != NDIMS:
        raise CoordError(f"a coordinate has 9 parts, got {len(parts)}", hint=_TEXT_HINT)
    v = 0
    for p in parts:
        if type(p) is not int or not PART_MIN <= p <= PART_MAX:
            _check_parts(parts)  # raises with the part named
            p = int(p)  # an int subclass such as IntEnum
        v = (v << FIELD_BITS) | (p - 1)
    return v


def pack(c: Coord) -> int:
    """The 90-bit packed value of ``c`` (integer order == coordinate order)."""
    p = c.parts
    return (
        ((p[0] - 1) << 80)
        | ((p[1] - 1) << 70)
        | ((p[2] - 1) << 60)
        | ((p[3] - 1) << 50)
        | ((p[4] - 1) << 40)
        | ((p[5] - 1) << 30)
        | ((p[6] - 1) << 20)
        | ((p[7] - 1) << 10)
        | (p[8] - 1)
    )


def is_valid_packed(v: int) -> bool:
    """True when ``v`` is the packing of some coordinate (a non-negative int < 2**90, fields <= 998)."""
    return (
        type(v) is int
        and v >= 0
        and not (v >> PACKED_BITS)
        and not (((v & _EVEN_MASK) + _EVEN_ADD) & _EVEN_GUARD)
        and not (((v & _ODD_MASK) + _ODD_ADD) & _ODD_GUARD)
    )


def _invalid_packed(v: object) -> CoordError:
    if not isinstance(v, int) or isinstance(v, bool):
        return CoordError(f"packed coordinate must be an int, got {type(v).__name__}")
    if v < 0:
        return CoordError(f"packed coordinate {v} is negative")
    if v >> PACKED_BITS:
        return CoordError(
            f"packed coordinate 0x{v:x} has bits set above bit 89",
            hint="a packed coordinate keeps 9 x 10-bit fields in bits 0..89; the rest must be zero",
        )
    for i in range(NDIMS):
        f = (v >> _SHIFT[i]) & _FIELD
        if f >= RADIX:
            return CoordError(
                f"packed coordinate 0x{v:x}: {_part_label(i)} field holds {f} (part {f + 1}); "
                "parts must be 1..999 (stored 0..998)"
            )
    return CoordError(f"invalid packed coordinate {v!r}")  # pragma: no cover


def _check_packed(v: int) -> None:
    if not is_valid_packed(v):
        raise _invalid_packed(v)


def _unpack_trusted(v: int) -> Coord:
    return Coord._trusted(
        (
            (v >> 80) + 1,
            ((v >> 70) & 1023) + 1,
            ((v >> 60) & 1023) + 1,
            ((v >> 50) & 1023) + 1,
            ((v >> 40) & 1023) + 1,
            ((v >> 30) & 1023) + 1,
            ((v >> 20) & 1023) + 1,
            ((v >> 10) & 1023) + 1,
            (v & 1023) + 1,
        )
    )


def unpack(v: int) -> Coord:
    """Inverse of :func:`pack`; raises CoordError unless ``v`` is a valid packing."""
    if not is_valid_packed(v):
        raise _invalid_packed(v)
    return _unpack_trusted(v)


def get_part_packed(v: int, dim: int) -> int:
    """The one-based part ``dim`` (0 = library) of packed ``v`` (``v`` is assumed valid)."""
    return ((v >> _SHIFT[dim]) & _FIELD) + 1


def format_packed(v: int) -> str:
    return str(unpack(v))


def parse_packed(text: str) -> int:
    return pack_parts(_parse_parts(text))


def to_bytes16(v: int) -> bytes:
    """The packed value as 16 little-endian bytes (the .siw coordinate-pool entry)."""
    _check_packed(v)
    return v.to_bytes(16, "little")


def from_bytes16(b: bytes | bytearray | memoryview) -> int:
    """Read a 16-byte little-endian coordinate-pool entry; validates it is a packed coordinate."""
    if len(b) != 16:
        raise CoordError(f"a packed coordinate is 16 bytes, got {len(b)}")
    v = int.from_bytes(b, "little")
    _check_packed(v)
    return v


# ---------------------------------------------------------------------------------------- Morton key


def _spread_table() -> tuple[int, ...]:
    table = [0] * (1 << FIELD_BITS)
    for x in range(1, 1 << FIELD_BITS):
        table[x] = (table[x >> 1] << NDIMS) | (x & 1)
    return tuple(table)


_SPREAD = _spread_table()  # bit b of a 10-bit x -> bit 9*b


def morton_key_packed(v: int) -> int:
    """Z-order key of a packed coordinate (``v`` is assumed valid; see :func:`morton_key`)."""
    s = _SPREAD
    return (
        (s[v >> 80] << 8)
        | (s[(v >> 70) & 1023] << 7)
        | (s[(v >> 60) & 1023] << 6)
        | (s[(v >> 50) & 1023] << 5)
        | (s[(v >> 40) & 1023] << 4)
        | (s[(v >> 30) & 1023] << 3)
        | (s[(v >> 20) & 1023] << 2)
        | (s[(v >> 10) & 1023] << 1)
        | s[v & 1023]
    )


def morton_key(c: Coord) -> int:
    """Z-order (Morton) key: bit ``b`` of ``part[i] - 1`` goes to key bit ``9*b + (8 - i)``.

    So key bit 0 is the scroll's lowest bit, bit 8 the library's lowest bit, bit 9 the scroll's
    bit 1, ..., bit 89 the library's bit 9. The key is a bijection from coordinates onto a subset of
    ``[0, 2**90)``, and it is monotone in every part.
    """
    return morton_key_packed(pack(c))


def morton_unkey(key: int) -> Coord:
    """Inverse of :func:`morton_key`; raises CoordError for keys no coordinate maps to."""
    if not isinstance(key, int) or key < 0 or key >> PACKED_BITS:
        raise CoordError(f"Morton key {key!r} is out of range 0 .. 2**90-1")
    parts = []
    for i in range(NDIMS):
        x = 0
        lane = key >> (NDIMS - 1 - i)
        for b in range(FIELD_BITS):
            x |= ((lane >> (NDIMS * b)) & 1) << b
        if x >= RADIX:
            raise CoordError(f"Morton key 0x{key:x} has {_part_label(i)} = {x + 1}; parts must be 1..999")
        parts.append(x + 1)
    return Coord._trusted(tuple(parts))


# ---------------------------------------------------------------------------------------- arithmetic


def _bad_mode(mode: object) -> CoordError:
    return CoordError(f"unknown coordinate arithmetic mode {mode!r}", hint="modes: fault, wrap, carry")


def advance_packed(v: int, dim: int, delta: int, mode: str = FAULT) -> int:
    """Add ``delta`` to part ``dim`` (0 = library .. 8 = scroll) of packed ``v``; returns the packed result.

    Modes: ``fault`` raises CoordError when the part would leave 1..999; ``wrap`` wraps it modulo
    999 within 1..999 (other parts untouched); ``carry`` treats parts library..dim as digits of a
    base-999 odometer (lower parts untouched) and raises CoordError when the library over/underflows.
    """
    if (
        type(v) is not int
        or v < 0
        or v >> PACKED_BITS
        or ((v & _EVEN_MASK) + _EVEN_ADD) & _EVEN_GUARD
        or ((v & _ODD_MASK) + _ODD_ADD) & _ODD_GUARD
    ):
        raise _invalid_packed(v)
    if type(dim) is not int or not 0 <= dim < NDIMS:
        dim = dim_index(dim)  # a name, or raises with a clear message
    if mode not in MODES:
        raise _bad_mode(mode)
    if type(delta) is not int:
        raise CoordError(f"coordinate step must be an integer, got {delta!r}")
    shift = _SHIFT[dim]
    f = (v >> shift) & _FIELD
    n = f + delta
    if 0 <= n < RADIX:
        return v + (delta << shift)
    if mode == FAULT:
        raise CoordError(
            f"{_part_label(dim)} would become {n + 1} ({f + 1} {'+' if delta >= 0 else '-'} {abs(delta)}) "
            f"at {_unpack_trusted(v)}; parts must be 1..999",
            hint="use mode 'wrap' to wrap within 1..999 or 'carry' to carry into the next dimension",
        )
    if mode == WRAP:
        return v + (((n % RADIX) - f) << shift)
    # carry: base-999 odometer over parts 0..dim
    carry, n = divmod(n, RADIX)
    out = v + ((n - f) << shift)
    d = dim
    while carry:
        d -= 1
        if d < 0:
            raise CoordError(
                f"coordinate arithmetic overflows the library: {_unpack_trusted(v)} "
                f"{'+' if delta >= 0 else '-'} {abs(delta)} along {DIMS[dim]} (mode carry)",
                hint="the result would lie outside 1.1.1/1.1.1/1.1.1 .. 999.999.999/999.999.999/999.999.999",
            )
        shift = _SHIFT[d]
        f = (out >> shift) & _FIELD
        carry, n = divmod(f + carry, RADIX)
        out += (n - f) << shift
    return out


def set_part_packed(v: int, dim: int, value: int) -> int:
    """Replace one-based part ``dim`` (0 = library) of packed ``v`` with ``value`` (1..999)."""
    if (
        type(v) is not int
        or v < 0
        or v >> PACKED_BITS
        or ((v & _EVEN_MASK) + _EVEN_ADD) & _EVEN_GUARD
        or ((v & _ODD_MASK) + _ODD_ADD) & _ODD_GUARD
    ):
        raise _invalid_packed(v)
    if type(dim) is not int or not 0 <= dim < NDIMS:
        dim = dim_index(dim)
    if type(value) is not int or not PART_MIN <= value <= PART_MAX:
        raise _range_error(dim, value)
    shift = _SHIFT[dim]
    return (v & ~(_FIELD << shift)) | ((value - 1) << shift)


def advance(c: Coord, dim: int | str, delta: int, mode: str = FAULT) -> Coord:
    """Coordinate version of :func:`advance_packed`; ``dim`` may be an index or a name."""
    return _unpack_trusted(advance_packed(pack(c), dim_index(dim), delta, mode))


def set_part(c: Coord, dim: int | str, value: int) -> Coord:
    """A copy of ``c`` with part ``dim`` set to ``value`` (1..999)."""
    i = dim_index(dim)
    if type(value) is not int or not PART_MIN <= value <= PART_MAX:
        raise _range_error(i, value)
    p = c.parts
    return Coord._trusted(p[:i] + (value,) + p[i + 1 :])


def distance(a: Coord, b: Coord) -> int:
    """L1 (Manhattan) distance over the 9 parts."""
    return sum(abs(x - y) for x, y in zip(a.parts, b.parts, strict=True))


def distance_packed(a: int, b: int) -> int:
    """L1 distance between two packed coordinates (both assumed valid)."""
    d = 0
    for _ in range(NDIMS):
        d += abs((a & _FIELD) - (b & _FIELD))
        a >>= FIELD_BITS
        b >>= FIELD_BITS
    return d


def home_packed(sentron_id: int) -> int:
    """Packed default home coordinate of sentron ``sentron_id`` (see :func:`home_coord`)."""
    if type(sentron_id) is not int or sentron_id < 0:
        raise CoordError(f"sentron id must be a non-negative integer, got {sentron_id!r}")
    try:
        return advance_packed(0, NDIMS - 1, sentron_id, CARRY)
    except CoordError:
        raise CoordError(
            f"sentron id {sentron_id} is too large for a home coordinate (max 999**9 - 1)"
        ) from None


def home_coord(sentron_id: int) -> Coord:
    """Default home coordinate of sentron ``sentron_id`` (0-based).

    ``1.1.1/1.1.1/1.1.1`` advanced by ``sentron_id`` along the scroll in carry mode: ids 0..998 are
    ``1.1.1/1.1.1/1.1.(id+1)``; id 999 is ``1.1.1/1.1.1/1.2.1`` and in general the parts are the
    base-999 digits of the id plus one, scroll least significant.
    """
    return _unpack_trusted(home_packed(sentron_id))
