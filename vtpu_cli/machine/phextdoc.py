"""Reading and writing ``.phext`` documents: plain text whose scrolls are separated by phext delimiters.

A document is read left to right starting at ``1.1.1/1.1.1/1.1.1``. Every delimiter advances its own
dimension by one and resets all less significant parts to 1; everything between delimiters is the text
of the scroll at the current coordinate. The delimiter code points (checked against the ``phext`` 0.3.2
package on PyPI, the Python port of libphext-rs):

=========== ======== ==========  =========== ======== ==========
dimension   char     name        dimension   char     name
=========== ======== ==========  =========== ======== ==========
library     U+0001   SOH         book        U+001A   SUB
shelf       U+001F   US          chapter     U+0019   EM
series      U+001E   RS          section     U+0018   CAN
collection  U+001D   GS          scroll      U+0017   ETB
volume      U+001C   FS
=========== ======== ==========  =========== ======== ==========

U+001B (ESC) is deliberately not a delimiter; newlines and every other character are scroll text.

Empty scrolls carry no information and are skipped by :func:`parse_phext` (as ``phext`` does);
:func:`format_phext` writes only non-empty scrolls, with the fewest delimiters that reach each one, so
``parse_phext(format_phext(d)) == {c: t for c, t in d.items() if t}``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from vtpu_cli.core.coords import DIMS, NDIMS, PART_MAX, Coord, CoordError, as_coord
from vtpu_cli.core.errors import FormatError, VtpuError

__all__ = [
    "BREAK_DIM",
    "DELIMITERS",
    "LIBRARY_BREAK",
    "SCROLL_BREAK",
    "format_phext",
    "iter_phext",
    "parse_phext",
    "read_phext",
    "write_phext",
]

LIBRARY_BREAK = "\x01"
SHELF_BREAK = "\x1f"
SERIES_BREAK = "\x1e"
COLLECTION_BREAK = "\x1d"
VOLUME_BREAK = "\x1c"
BOOK_BREAK = "\x1a"
CHAPTER_BREAK = "\x19"
SECTION_BREAK = "\x18"
SCROLL_BREAK = "\x17"

# DELIMITERS[i] is the break character of dimension i (0 = library ... 8 = scroll).
DELIMITERS: str = (
    LIBRARY_BREAK
    + SHELF_BREAK
    + SERIES_BREAK
    + COLLECTION_BREAK
    + VOLUME_BREAK
    + BOOK_BREAK
    + CHAPTER_BREAK
    + SECTION_BREAK
    + SCROLL_BREAK
)
BREAK_DIM: dict[str, int] = {ch: i for i, ch in enumerate(DELIMITERS)}
_TEXT_RUN = re.compile("[^\x01\x17-\x1a\x1c-\x1f]+")
_ANY_BREAK = re.compile("[\x01\x17-\x1a\x1c-\x1f]")


def iter_phext(text: str, *, include_empty: bool = False) -> Iterator[tuple[Coord, str]]:
    """Yield ``(coordinate, scroll text)`` in document order (coordinates strictly increase).

    With ``include_empty`` every position between delimiters is reported, including empty scrolls.
    A document that would push a part past 999 raises :class:`FormatError` (``phext`` saturates
    instead, which would silently merge scrolls).
    """
    if not isinstance(text, str):
        raise VtpuError(f"a phext document is text, got {type(text).__name__}")
    parts = [1] * NDIMS
    pos = 0
    n = len(text)
    while True:
        m = _TEXT_RUN.match(text, pos)
        end = m.end() if m else pos
        if end > pos or include_empty:
            yield Coord._trusted(tuple(parts)), text[pos:end]
        if end >= n:
            return
        # text[end] is a delimiter
        d = BREAK_DIM[text[end]]
        if parts[d] == PART_MAX:
            raise FormatError(
                f"phext document: {DIMS[d]} break at character offset {end} moves the {DIMS[d]} past 999",
                hint=f"a document holds at most 999 {DIMS[d]}s per enclosing {DIMS[d - 1] if d else 'document'}",
            )
        parts[d] += 1
        for j in range(d + 1, NDIMS):
            parts[j] = 1
        pos = end + 1


def parse_phext(text: str) -> dict[Coord, str]:
    """Explode a phext document into ``{coordinate: text}`` for its non-empty scrolls, in order."""
    return dict(iter_phext(text))


def _delimiters_between(here: tuple[int, ...], there: tuple[int, ...]) -> str:
    """The shortest delimiter string that moves the reader from ``here`` to ``there`` (``here < there``).

    Let ``d`` be the first dimension where they differ: ``there[d] - here[d]`` breaks of dimension
    ``d`` (which reset the lower parts to 1), then ``there[j] - 1`` breaks of each lower dimension.
    No shorter string exists: parts never decrease except by being reset to 1.
    """
    d = 0
    while here[d] == there[d]:
        d += 1
    out = [DELIMITERS[d] * (there[d] - here[d])]
    for j in range(d + 1, NDIMS):
        if there[j] > 1:
            out.append(DELIMITERS[j] * (there[j] - 1))
    return "".join(out)


def format_phext(scrolls: Mapping[Coord | str, str]) -> str:
    """Implode ``{coordinate: text}`` into a phext document (keys may be Coords or coordinate text).

    Scrolls are written in coordinate order, empty ones are omitted, and each is reached with the
    minimal delimiter sequence. Scroll text must not contain a delimiter character (VtpuError).
    """
    items: list[tuple[Coord, str]] = []
    for key, value in scrolls.items():
        coord = as_coord(key)
        if not isinstance(value, str):
            raise VtpuError(f"scroll {coord} must be text, got {type(value).__name__}")
        if value:
            items.append((coord, value))
    items.sort(key=lambda kv: kv[0].parts)
    out: list[str] = []
    here = (1,) * NDIMS
    for i, (coord, value) in enumerate(items):
        if i and coord.parts == here:
            raise VtpuError(f"scroll {coord} is given twice")
        bad = _ANY_BREAK.search(value)
        if bad is not None:
            ch = bad.group()
            raise VtpuError(
                f"scroll {coord} contains the phext {DIMS[BREAK_DIM[ch]]} delimiter U+{ord(ch):04X} "
                f"at character {bad.start()}",
                hint="phext delimiters (U+0001, U+0017..U+001A, U+001C..U+001F) cannot appear inside a scroll",
            )
        if coord.parts != here:
            out.append(_delimiters_between(here, coord.parts))
            here = coord.parts
        out.append(value)
    return "".join(out)


def read_phext(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> dict[Coord, str]:
    """Read and parse a UTF-8 ``.phext`` file (no newline translation).

    The file's size is checked against `max_bytes` (default: the memory budget, docs/limits.md) before
    it is read: its scrolls become memory.
    """
    from vtpu_cli.binary import limits

    p = Path(path)
    budget = limits.default_memory_budget() if max_bytes is None else max_bytes
    try:
        with open(p, encoding="utf-8", newline="") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > budget:
                raise FormatError(
                    f"{p}: a document of {limits.format_size(size)} exceeds the memory budget of "
                    f"{limits.format_size(budget)}",
                    hint=f"raise it with --mem-limit SIZE or ${limits.MEM_LIMIT_ENV}=SIZE (docs/limits.md)",
                )
            text = fh.read()
    except FileNotFoundError:
        raise VtpuError(f"{p}: no such file", hint="check the path of the .phext document") from None
    except IsADirectoryError:
        raise VtpuError(f"{p}: is a directory, not a .phext document") from None
    except UnicodeDecodeError as e:
        raise FormatError(f"{p}: not UTF-8 text (byte offset {e.start})") from None
    except OSError as e:
        raise VtpuError(f"{p}: cannot read: {e.strerror or e}") from None
    try:
        return parse_phext(text)
    except (FormatError, CoordError) as e:
        raise FormatError(f"{p}: {e.message}", hint=e.hint) from None


def write_phext(path: str | os.PathLike[str], scrolls: Mapping[Coord | str, str]) -> None:
    """Write ``scrolls`` as a UTF-8 ``.phext`` file atomically (temp file in the same directory + os.replace).

    The document is formatted (and validated) before anything touches the disk; on any failure the
    destination is left as it was and the temporary file is removed.
    """
    from vtpu_cli.core.fileio import write_atomic

    write_atomic(path, format_phext(scrolls).encode("utf-8"))
