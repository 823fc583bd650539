"""Parsing ``.phx`` text with the Lark grammar ``grammar/phx.lark`` (syntax errors become diagnostics)."""

from __future__ import annotations

from functools import lru_cache

from vtpu_cli.compiler.fastparse import KEYWORDS, Reject, parse_fast  # noqa: F401  (KEYWORDS re-exported)
from vtpu_cli.core.errors import Diagnostic


@lru_cache(maxsize=1)
def _parser():
    from lark import Lark

    from vtpu_cli.core.resources import grammar_text

    return Lark(grammar_text("phx.lark"), parser="lalr", propagate_positions=True, maybe_placeholders=True)


_NAMES = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "COORD": "a coordinate",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "COLON": "`:`",
    "EQUAL": "`=`",
    "COMMA": "`,`",
    "CMPOP": "a comparison",
    "$END": "end of file",
}


def parse(text: str, filename: str):
    """Parse tree, or a list of diagnostics (the parser recovers at statement boundaries)."""
    from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

    lines = text.splitlines()
    diags: list[Diagnostic] = []

    def diag(line: int, col: int, msg: str, length: int = 1, hint: str | None = None):
        src = lines[line - 1] if 0 < line <= len(lines) else None
        diags.append(Diagnostic(msg, filename, line, col, src, hint, length))

    def on_error(e) -> bool:
        if isinstance(e, UnexpectedToken):
            tok = e.token
            if tok.type == "$END":
                diag(
                    len(lines) or 1,
                    len(lines[-1]) + 1 if lines else 1,
                    "unexpected end of file",
                    hint=_hint(e.expected),
                )
                return False
            diag(tok.line, tok.column, f"unexpected `{tok}`", len(str(tok)), _hint(e.expected))
            return len(diags) < 50
        if isinstance(e, UnexpectedCharacters):
            diag(e.line, e.column, f"unexpected character {text[e.pos_in_stream]!r}")
            return False
        return False

    try:  # the hand-written parser builds the same tree ~3x faster; Lark decides the rest
        tree = parse_fast(text)
        _check_depth(tree, diag)
        return (None if diags else tree), diags
    except (Reject, RecursionError):
        pass
    try:
        tree = _parser().parse(text, on_error=on_error)
    except UnexpectedCharacters as e:
        if not diags:
            diag(e.line, e.column, f"unexpected character {text[e.pos_in_stream]!r}")
        return None, diags
    except UnexpectedInput as e:
        if not diags:
            diag(getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1, "syntax error")
        return None, diags
    if diags:
        return None, diags
    _check_depth(tree, diag)
    return (None if diags else tree), diags


MAX_DEPTH = 200  # expression nesting limit (documented in docs/phx.md): the checker recurses on it


def _check_depth(tree, diag) -> None:
    """Reject expressions nested more than MAX_DEPTH levels (long ``1+1+...`` chains, ``----x``) with
    a located error instead of letting the recursive checker overflow the Python stack."""
    from lark import Tree

    for item in tree.children:
        if isinstance(item, Tree):
            _check_item(item, diag)


def _check_item(item, diag) -> None:
    from lark import Tree

    stack = [(item, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            line = getattr(node.meta, "line", 1) if not node.meta.empty else 1
            col = getattr(node.meta, "column", 1) if not node.meta.empty else 1
            diag(
                line,
                col,
                f"expression nested too deeply (more than {MAX_DEPTH} levels)",
                hint="split it into several `let` statements",
            )
            return
        for ch in node.children:
            if isinstance(ch, Tree):
                stack.append((ch, depth + 1))


def _hint(expected) -> str | None:
    exp = sorted({_NAMES.get(e, e.lower() if e.isupper() and len(e) > 3 else e) for e in expected})
    exp = [e for e in exp if not e.startswith("__")]
    if not exp:
        return None
    if len(exp) > 8:
        exp = exp[:8] + ["..."]
    return "expected " + ", ".join(exp)
