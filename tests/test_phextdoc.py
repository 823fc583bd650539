"""Tests for vtpu_cli.machine.phextdoc: .phext document parsing/formatting, file I/O, agreement with PyPI phext."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtpu_cli.core.coords import Coord
from vtpu_cli.core.errors import FormatError, VtpuError
from vtpu_cli.machine.phextdoc import (
    BREAK_DIM,
    DELIMITERS,
    format_phext,
    iter_phext,
    parse_phext,
    read_phext,
    write_phext,
)

C = Coord.parse

# Small parts keep the documents short; a few large ones exercise long delimiter runs.
small_part = st.one_of(st.integers(1, 4), st.sampled_from([1, 1, 1, 37, 999]))
coords = st.tuples(*([small_part] * 9)).map(Coord)
text_chars = st.one_of(
    st.sampled_from(list("ab \n\r\t") + ["\x1b", "\x02", "\x03", "\x00", "\u00e9", "\U0001f600"]),
    st.characters(blacklist_characters=DELIMITERS, blacklist_categories=("Cs",)),
)
scroll_text = st.text(text_chars, min_size=1, max_size=12)
documents = st.dictionaries(coords, scroll_text, max_size=8)
raw_chars = st.one_of(st.sampled_from(list(DELIMITERS) + ["\x1b", "\n", "a", "b"]), st.characters())
raw_text = st.text(raw_chars, max_size=60)


def test_delimiter_code_points():
    # Checked against phext 0.3.2 (PyPI), the Python port of libphext-rs.
    assert [f"U+{ord(ch):04X}" for ch in DELIMITERS] == [
        "U+0001",  # library
        "U+001F",  # shelf
        "U+001E",  # series
        "U+001D",  # collection
        "U+001C",  # volume
        "U+001A",  # book
        "U+0019",  # chapter
        "U+0018",  # section
        "U+0017",  # scroll
    ]
    assert "\x1b" not in BREAK_DIM


def test_parse_examples():
    doc = "a\x17b\x18c\x01d\x17\x17e\x1b"
    assert parse_phext(doc) == {
        C("1.1.1/1.1.1/1.1.1"): "a",
        C("1.1.1/1.1.1/1.1.2"): "b",
        C("1.1.1/1.1.1/1.2.1"): "c",
        C("2.1.1/1.1.1/1.1.1"): "d",
        C("2.1.1/1.1.1/1.1.3"): "e\x1b",
    }
    assert parse_phext("") == {}
    assert parse_phext("\x17\x17") == {}
    assert list(iter_phext("\x17x\x17", include_empty=True)) == [
        (C("1.1.1/1.1.1/1.1.1"), ""),
        (C("1.1.1/1.1.1/1.1.2"), "x"),
        (C("1.1.1/1.1.1/1.1.3"), ""),
    ]


def test_format_examples():
    assert format_phext({}) == ""
    assert format_phext({C("1.1.1/1.1.1/1.1.1"): "x"}) == "x"
    assert format_phext({"1.1.1/1.1.1/1.1.3": "x"}) == "\x17\x17x"
    # higher dimension first, then the lower parts counted up from 1; empty scrolls omitted
    doc = {C("1.1.2/1.1.1/1.2.3"): "y", C("1.1.1/1.1.1/1.1.1"): "x", C("3.1.1/1.1.1/1.1.1"): ""}
    assert format_phext(doc) == "x\x1e\x18\x17\x17y"
    doc = {C("1.1.1/1.1.1/2.1.1"): "b", C("1.1.1/1.1.1/1.5.1"): "a"}
    assert format_phext(doc) == "\x18\x18\x18\x18a\x19b"


def test_format_rejects_delimiters_in_text_and_duplicates():
    with pytest.raises(VtpuError, match="section delimiter U\\+0018"):
        format_phext({C("1.1.1/1.1.1/1.1.1"): "a\x18b"})
    with pytest.raises(VtpuError, match="twice"):
        format_phext({C("1.1.1/1.1.1/1.1.2"): "a", "1.1.1/1.1.1/1.1.2": "b"})
    with pytest.raises(VtpuError):
        format_phext({"1.1.1/1.1.1/1.1.0": "a"})
    with pytest.raises(VtpuError):
        format_phext({C("1.1.1/1.1.1/1.1.1"): 5})  # type: ignore[dict-item]


def test_parse_rejects_part_past_999():
    assert parse_phext("\x17" * 998 + "x") == {C("1.1.1/1.1.1/1.1.999"): "x"}
    with pytest.raises(FormatError, match="scroll break"):
        parse_phext("\x17" * 999 + "x")
    with pytest.raises(FormatError, match="library"):
        parse_phext("\x01" * 999)


@given(documents)
def test_roundtrip_document(doc):
    text = format_phext(doc)
    assert parse_phext(text) == {c: t for c, t in doc.items() if t}
    assert list(parse_phext(text)) == sorted(doc)  # document order is coordinate order
    assert format_phext(parse_phext(text)) == text


@settings(max_examples=300)
@given(raw_text)
def test_parse_then_format_is_normalisation(text):
    doc = parse_phext(text)
    keys = list(doc)
    assert keys == sorted(keys) and all(doc.values())
    normal = format_phext(doc)
    assert parse_phext(normal) == doc
    assert len(normal) <= len(text)  # minimal delimiters, no empty scrolls
    # Every character of a scroll survives; only delimiters and empty scrolls are dropped.
    assert "".join(doc.values()) == "".join(ch for ch in text if ch not in BREAK_DIM)


@given(st.lists(coords, min_size=1, max_size=6, unique=True))
def test_format_uses_minimal_delimiters(cs):
    """Per scroll, the delimiters used equal the provable lower bound for reaching it from its predecessor."""
    cs = sorted(cs)
    text = format_phext(dict.fromkeys(cs, "x"))
    here = (1,) * 9
    expected = 0
    for c in cs:
        if c.parts != here:
            d = next(i for i in range(9) if c.parts[i] != here[i])
            expected += c.parts[d] - here[d] + sum(p - 1 for p in c.parts[d + 1 :])
            here = c.parts
    assert len(text) - len(cs) == expected


# ------------------------------------------------------------------------------------------- files


def test_read_write_roundtrip(tmp_path):
    doc = {C("1.1.1/1.1.1/1.1.1"): "line one\r\nline two\n", C("1.2.1/1.1.1/1.1.7"): "caf\u00e9 \U0001f600"}
    path = tmp_path / "doc.phext"
    write_phext(path, doc)
    assert read_phext(path) == doc
    assert path.read_bytes() == format_phext(doc).encode("utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["doc.phext"]  # no temp file left behind
    os.chmod(path, 0o600)
    write_phext(str(path), {C("2.1.1/1.1.1/1.1.1"): "z"})  # overwrite keeps the mode
    assert read_phext(path) == {C("2.1.1/1.1.1/1.1.1"): "z"}
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_write_failure_leaves_destination_untouched(tmp_path):
    path = tmp_path / "doc.phext"
    write_phext(path, {C("1.1.1/1.1.1/1.1.1"): "keep"})
    with pytest.raises(VtpuError):
        write_phext(path, {C("1.1.1/1.1.1/1.1.1"): "bad\x17"})
    assert read_phext(path) == {C("1.1.1/1.1.1/1.1.1"): "keep"}
    assert [p.name for p in tmp_path.iterdir()] == ["doc.phext"]
    with pytest.raises(VtpuError, match="cannot write"):
        write_phext(tmp_path / "missing-dir" / "x.phext", {C("1.1.1/1.1.1/1.1.1"): "x"})


def test_read_errors(tmp_path):
    with pytest.raises(VtpuError, match="no such file"):
        read_phext(tmp_path / "nope.phext")
    with pytest.raises(VtpuError, match="directory"):
        read_phext(tmp_path)
    bad = tmp_path / "bad.phext"
    bad.write_bytes(b"ok\xff")
    with pytest.raises(FormatError, match="UTF-8"):
        read_phext(bad)
    big = tmp_path / "big.phext"
    big.write_text("\x1f" * 999, encoding="utf-8")
    with pytest.raises(FormatError, match="big.phext"):
        read_phext(big)


# ---------------------------------------------------------------------- agreement with PyPI phext


def _phext_api():
    pytest.importorskip("phext.phext", reason="the optional 'phext' package is not installed")
    from phext.coordinate import Coordinate
    from phext.phext import Phext

    return Phext(), Coordinate


def _fits(text: str) -> bool:
    """True when no part passes 999 (where the phext package saturates and we raise)."""
    try:
        parse_phext(text)
    except FormatError:
        return False
    return True


@settings(max_examples=300)
@given(raw_text)
def test_parse_agrees_with_phext_package(text):
    ph, _ = _phext_api()
    ours = {str(c): t for c, t in parse_phext(text).items()}
    theirs = {str(c): t for c, t in ph.explode(text).items()}
    assert ours == theirs


@given(documents)
def test_format_agrees_with_phext_package(doc):
    ph, Coordinate = _phext_api()
    ours = format_phext(doc)
    ordered = {Coordinate(*c.parts): t for c, t in sorted(doc.items()) if t}
    assert ph.implode(ordered) == ours
    assert {str(c): t for c, t in ph.explode(ours).items()} == {str(c): t for c, t in doc.items() if t}


def test_phext_package_saturates_where_we_raise():
    ph, _ = _phext_api()
    text = "\x17" * 999 + "x"
    assert not _fits(text)
    assert {str(c): t for c, t in ph.explode(text).items()} == {"1.1.1/1.1.1/1.1.999": "x"}
