"""The hand-written .phx parser (the fast path of parser.parse) builds exactly Lark's tree --
rule names, tokens (type, text, every position), None placeholders, node positions including the
container spans of parenthesised expressions -- and never accepts what Lark rejects."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lark import Tree

from vtpu_cli.compiler.fastparse import KEYWORDS, Reject, parse_fast
from vtpu_cli.compiler.parser import _parser, parse

ROOT = Path(__file__).parent.parent


def diff(a, b, path="start"):
    """First difference between two parse trees, or None."""
    if isinstance(a, Tree) != isinstance(b, Tree):
        return f"{path}: {a!r} vs {b!r}"
    if isinstance(a, Tree):
        if a.data != b.data or vars(a.meta) != vars(b.meta) or len(a.children) != len(b.children):
            return f"{path}: {a.data} {vars(a.meta)} {len(a.children)} vs {b.data} {vars(b.meta)} {len(b.children)}"
        for i, (x, y) in enumerate(zip(a.children, b.children, strict=True)):
            d = diff(x, y, f"{path}/{a.data}[{i}]")
            if d:
                return d
        return None
    if a is None or b is None:
        return None if a is b else f"{path}: {a!r} vs {b!r}"
    fields = ("type", "start_pos", "line", "column", "end_line", "end_column", "end_pos")
    ka, kb = [(str(t), *(getattr(t, f) for f in fields)) for t in (a, b)]
    return None if ka == kb else f"{path}: {ka} vs {kb}"


def check(text: str) -> None:
    try:
        want = _parser().parse(text)
    except Exception:
        want = None
    try:
        got = parse_fast(text)
    except (Reject, RecursionError):
        got = None
    if want is None:
        assert got is None, f"the fast parser accepts what Lark rejects:\n{text}"
        return
    if got is not None:
        assert diff(got, want) is None, diff(got, want)


def programs() -> list[Path]:
    return sorted((ROOT / "programs").rglob("*.phx")) + [ROOT / "vtpu_cli" / "models" / "phx" / "bitnet.phx"]


@pytest.mark.parametrize("path", programs(), ids=lambda p: p.name)
def test_shipped_programs_parse_identically(path):
    text = path.read_text()
    check(text)
    if "errors" not in path.parts:  # the examples are valid: the fast path must take them
        parse_fast(text)


# ---------------------------------------------------------------------- generated programs
NAMES = st.sampled_from(["x", "y", "w", "acc", "n", "i", "scale", "layers", "step", "in", "else", "D", "f32"])
WS = st.sampled_from([" ", "  ", "\n", " # note\n", "\t", "\n\n  "])


@st.composite
def expr(draw, depth=0):
    if depth > 3 or draw(st.booleans()):
        leaf = draw(
            st.one_of(
                NAMES,
                st.integers(0, 999).map(str),
                st.sampled_from(["0x1f", "0b101", "1_000", "2.5", "1e3", "3.25e-2"]),
            )
        )
        if draw(st.booleans()) and leaf[0].isalpha():
            kind = draw(st.sampled_from(["call", "index", "plain"]))
            if kind == "call":
                args = draw(st.lists(expr(depth + 1), max_size=3))
                if draw(st.booleans()):
                    args.append(f"{draw(NAMES)}={draw(expr(depth + 1))}")
                return f"{leaf}({', '.join(args)})"
            if kind == "index":
                return f"{leaf}[{draw(expr(depth + 1))}]"
        return leaf
    op = draw(st.sampled_from(["+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^"]))
    a, b = draw(expr(depth + 1)), draw(expr(depth + 1))
    text = f"{a}{draw(WS)}{op}{draw(WS)}{b}"
    form = draw(st.sampled_from(["plain", "paren", "neg", "double"]))
    return {"paren": f"({text})", "neg": f"-{a}", "double": f"(({text}))"}.get(form, text)


@st.composite
def statement(draw, depth=0):
    e = draw(expr())
    kind = draw(
        st.sampled_from(
            ["let", "assign", "index", "multi", "call", "for", "if", "return"] if depth < 2 else ["let"]
        )
    )
    n = draw(NAMES)
    if kind == "let":
        ty = draw(st.sampled_from(["", ": f32", ": i64", ": f32x16"]))
        return f"let {n}{ty} = {e}"
    if kind == "assign":
        return f"{n} = {e}"
    if kind == "index":
        return f"{n}[{draw(expr())}] = {e}"
    if kind == "multi":
        return f"{n}, {draw(NAMES)} = {e}"
    if kind == "call":
        return f"{n}({e})"
    if kind == "return":
        return "return " + ", ".join([e, *draw(st.lists(expr(), max_size=2))])
    body = "; ".join(draw(st.lists(statement(depth + 1), max_size=3)))
    if kind == "for":
        step = f" step {draw(expr())}" if draw(st.booleans()) else ""
        return f"for {n} in {draw(expr())}..{e}{step} {{ {body} }}"
    cmp = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
    tail = draw(st.sampled_from(["", " else { }", f" else {{ {body} }}", f" else if {e} < 2 {{ {body} }}"]))
    return f"if {draw(expr())} {cmp} {e} {{ {body} }}{tail}"


@st.composite
def program(draw):
    items = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["decl", "coord", "const", "kernel", "fn", "stmt"]))
        if kind == "decl":
            role = draw(st.sampled_from(["input", "weight", "output", "tensor"]))
            shape = draw(st.sampled_from(["", "[4]", "[4, D]", "[D,16]"]))
            place = draw(st.sampled_from(["", " @ 1.1.1/1.1.1/1.1.2", " @ C"]))
            extra = draw(st.sampled_from(["", " scale 0.5", " scale s", " layers 3", " scale s layers L"]))
            items.append(f"{role} {draw(NAMES)}: {draw(NAMES)}{shape}{place}{extra}")
        elif kind == "coord":
            items.append(f"coord {draw(NAMES)} = 1.1.1/1.1.1/1.1.{draw(st.integers(1, 9))}")
        elif kind == "const":
            items.append(f"const {draw(NAMES)} = {draw(expr())}")
        elif kind == "kernel":
            items.append(f"kernel {draw(NAMES)} {{ {draw(statement())} }}")
        elif kind == "fn":
            params = ", ".join(draw(st.lists(NAMES, max_size=3)))
            items.append(f"fn {draw(NAMES)}({params}) {{ {draw(statement())} }}")
        else:
            items.append(draw(statement()))
    sep = draw(st.sampled_from(["\n", ";", " ; ", "\n# comment\n"]))
    return sep.join(items) + draw(st.sampled_from(["", "\n", "  # end"]))


@settings(max_examples=200, deadline=None)
@given(text=program())
def test_generated_programs_parse_identically(text):
    check(text)


@settings(max_examples=200, deadline=None)
@given(text=program(), data=st.data())
def test_damaged_programs_parse_identically(text, data):
    """Cut, duplicated or inserted characters: both parsers agree on acceptance and the tree."""
    if not text:
        return
    i = data.draw(st.integers(0, len(text) - 1))
    j = data.draw(st.integers(i, min(len(text), i + 4)))
    junk = data.draw(st.sampled_from(["", "(", ")", "=", ",", "[", "{", "}", "..", "-", "@", "if", "1.1"]))
    check(text[:i] + junk + text[j:])


def test_syntax_errors_still_come_from_lark():
    tree, diags = parse("let x = (1 +\nlet y = 2\n", "t.phx")
    assert tree is None and diags and diags[0].line == 2


@pytest.mark.parametrize("word", sorted(KEYWORDS))
def test_keyword_as_keyword_argument_name_takes_the_fast_path(word):
    """`tmatmul(..., scale=load(s, 0))`: Lark reads a keyword before `=` in an argument list as a NAME;
    the fast parser builds the same tree instead of leaving the program to Lark."""
    text = f"input x: f32[4]\noutput y: f32[16]\ny = tmatmul(x, w, {word}=load(x, 0), shard=cols)\n"
    check(text)
    tree = parse_fast(text)
    kw = next(t for t in tree.iter_subtrees() if t.data == "kwarg")
    assert kw.children[0].type == "NAME" and str(kw.children[0]) == word
