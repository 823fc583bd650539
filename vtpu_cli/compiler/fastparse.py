"""A hand-written recursive-descent parser for ``.phx`` that builds the same Lark tree as
``grammar/phx.lark`` (same rule names, tokens, ``None`` placeholders and positions), about 3x faster
than the LALR parser with position propagation.

It is the fast path only: on any input it does not accept it raises :class:`Reject`, and
:func:`~.parser.parse` re-parses with Lark, which produces the diagnostics (error recovery, expected
tokens). ``tests/test_phx_parse.py`` checks that both parsers build identical trees.
"""

from __future__ import annotations

import re

from lark import Token, Tree
from lark.tree import Meta

# a token with the whitespace and comments before it: (prefix, token) pairs, the token empty at the end.
# The prefix is possessive (no backtracking into it) and the alternatives come most frequent first:
# names, operators and numbers start with different characters, so only the order of the number
# forms among themselves matters (a coordinate before a float before an integer).
_TOKEN = re.compile(
    r"((?:[ \t\r\n]+|#[^\n]*)*+)"
    r"([A-Za-z_][A-Za-z_0-9]*"  # NAME
    r"|==|!=|<=|>=|<<|>>|\.\.|[-+*/%&|^<>=(){}\[\],;:@]"  # operators
    r"|\d+\.\d+\.\d+/\d+\.\d+\.\d+/\d+\.\d+\.\d+"  # COORD
    r"|\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+"  # FLOAT
    r"|0[xX][0-9a-fA-F_]+|0[bB][01_]+|\d[\d_]*"  # INT
    r"|\Z)"
)
# words of the grammar (the contextual lexer reads them as keywords where the grammar allows them)
KEYWORDS = {
    "let",
    "for",
    "in",
    "step",
    "if",
    "else",
    "kernel",
    "coord",
    "const",
    "input",
    "weight",
    "output",
    "tensor",
    "scale",
    "layers",
    "fn",
    "return",
}
_CMP = ("==", "!=", "<=", ">=", "<", ">")
_SUM = {"+": "add", "-": "sub"}
_PRODUCT = {
    "*": "mul",
    "/": "div",
    "%": "mod",
    "<<": "shl",
    ">>": "shr",
    "&": "band",
    "|": "bor",
    "^": "bxor",
}
_ROLES = ("input", "weight", "output", "tensor")
_STMT_KEYWORDS = ("let", "for", "if", "return")
_ITEM_KEYWORDS = ("coord", "const", "kernel", "fn", *_ROLES)


class Reject(Exception):
    """The fast parser does not accept the input (Lark decides, and reports errors)."""


class _Tok:
    """A lexed token: kind (NAME INT FLOAT COORD or the operator text), text and position."""

    __slots__ = ("kind", "text", "pos", "line", "col", "end", "eline", "ecol")

    def __init__(self, kind, text, pos, line, col, end, eline, ecol):
        self.kind, self.text, self.pos, self.line, self.col = kind, text, pos, line, col
        self.end, self.eline, self.ecol = end, eline, ecol


def _number_kind(s: str) -> str:
    """COORD, FLOAT or INT: which alternative of the token pattern matched a token that starts with a
    digit (they are tried in that order, and each excludes the next: a coordinate has '/', a hex or
    binary literal its prefix, a float '.' or an exponent)."""
    if "/" in s:
        return "COORD"
    if s[:2] in ("0x", "0X", "0b", "0B"):
        return "INT"
    if "." in s or "e" in s or "E" in s:
        return "FLOAT"
    return "INT"


def _lex(text: str) -> list[_Tok]:
    """Tokens with Lark's positions, from one ``findall`` of (whitespace/comments, token) pairs (no
    match object per token). ``findall`` skips characters no token starts with, so the positions are
    summed from the pieces' lengths and a text whose pieces do not add up to its length rejects;
    tokens never span lines, so the line and its start offset only move in the whitespace runs."""
    toks: list[_Tok] = []
    append = toks.append
    new = _new
    line, linestart, pos = 1, 0, 0
    for ws, s in _TOKEN.findall(text):
        if ws:
            nl = ws.count("\n")
            if nl:
                line += nl
                linestart = pos + ws.rfind("\n") + 1
            pos += len(ws)
        if not s:
            break
        c = s[0]
        if c.isdigit():
            kind = _number_kind(s)
        elif c.isalpha() or c == "_":
            kind = "NAME"
        else:
            kind = s
        n = len(s)
        col = pos - linestart + 1
        t = new(_Tok)  # _Tok(...) without the __init__ frame: one per token
        t.kind = kind
        t.text = s
        t.pos = pos
        t.line = t.eline = line
        t.col = col
        pos += n
        t.end = pos
        t.ecol = col + n
        append(t)
    if pos != len(text):
        raise Reject
    return toks


def _meta(first: _Tok, last: _Tok) -> Meta:
    m = _new(Meta)  # (Meta() would run an __init__ that sets ``empty``, overwritten here)
    d = m.__dict__
    d["empty"] = False
    d["line"] = d["container_line"] = first.line
    d["column"] = d["container_column"] = first.col
    d["start_pos"] = d["container_start_pos"] = first.pos
    d["end_line"] = d["container_end_line"] = last.eline
    d["end_column"] = d["container_end_column"] = last.ecol
    d["end_pos"] = d["container_end_pos"] = last.end
    return m


_str_new = str.__new__
_new = object.__new__


def _fast_tree(data: str, children: list, meta: Meta | None) -> Tree:
    """``Tree(data, children, meta)`` without the ``__init__`` frame (one per tree node); used only
    when it builds the same instance (checked below), else the constructor."""
    t = _new(Tree)
    d = t.__dict__
    d["data"] = data
    d["children"] = children
    d["_meta"] = meta
    return t


_make_tree = _fast_tree if vars(_fast_tree("x", [], None)) == vars(Tree("x", [], None)) else Tree


def _fast_token(
    kind: str, text: str, pos: int, line: int, col: int, eline: int, ecol: int, end: int
) -> Token:
    """``Token(kind, text, pos, line, col, eline, ecol, end)`` without Lark's ``__new__`` dispatch (two
    Python frames per token: ~20% of parsing). Used only when it builds an identical token (checked
    below on this Lark version), else the constructor."""
    t = _str_new(Token, text)
    t.type = kind
    t.start_pos = pos
    t.value = text
    t.line = line
    t.column = col
    t.end_line = eline
    t.end_column = ecol
    t.end_pos = end
    return t


def _same_token(a: Token, b: Token) -> bool:
    return str(a) == str(b) and all(getattr(a, k, None) == getattr(b, k, None) for k in Token.__slots__)


_ARGS = ("NAME", "x1", 3, 1, 4, 1, 6, 5)
_make_token = _fast_token if _same_token(_fast_token(*_ARGS), Token(*_ARGS)) else Token


class _Parser:
    def __init__(self, toks: list[_Tok]):
        self.toks = toks
        self.i = 0
        self.n = len(toks)

    # ------------------------------------------------------------------ helpers
    def peek(self, k: int = 0) -> _Tok | None:
        j = self.i + k
        return self.toks[j] if j < self.n else None

    def kind(self, k: int = 0) -> str | None:
        j = self.i + k
        return self.toks[j].kind if j < self.n else None

    def take(self, kind: str) -> _Tok:
        if self.i >= self.n:
            raise Reject
        t = self.toks[self.i]
        if t.kind != kind:
            raise Reject
        self.i += 1
        return t

    def keyword(self, word: str) -> _Tok:
        t = self.take("NAME")
        if t.text != word:
            raise Reject
        return t

    def at_word(self, word: str) -> bool:
        t = self.peek()
        return t is not None and t.kind == "NAME" and t.text == word

    def prev(self) -> _Tok:
        return self.toks[self.i - 1]

    @staticmethod
    def token(t: _Tok, kind: str | None = None) -> Token:
        if kind is None and t.text in KEYWORDS:
            # a keyword used as a name: whether Lark's contextual lexer reads it as the keyword
            # depends on its LALR state's lookaheads (`else` after any `}`), so Lark decides
            raise Reject
        return _make_token(kind or t.kind, t.text, t.pos, t.line, t.col, t.eline, t.ecol, t.end)

    @staticmethod
    def name(t: _Tok) -> Token:
        """A NAME where the grammar accepts nothing else (after `kernel`, `fn`, `let`, `:` ...):
        Lark reads any word there as a NAME, keywords included."""
        return _make_token("NAME", t.text, t.pos, t.line, t.col, t.eline, t.ecol, t.end)

    def tree(self, data: str, children: list, first: _Tok) -> Tree:
        return _make_tree(data, children, _meta(first, self.prev()))

    # ------------------------------------------------------------------ items
    def start(self) -> Tree:
        items = []
        while self.i < self.n:
            t = self.toks[self.i]
            if t.kind == ";":
                self.i += 1
                continue
            if t.kind == "NAME" and t.text in _ITEM_KEYWORDS:
                items.append(self.item(t))
            else:
                items.append(self.stmt())
        if not self.toks:
            return _make_tree("start", [], None)
        return _make_tree("start", items, _meta(self.toks[0], self.toks[-1]))

    def item(self, t: _Tok) -> Tree:
        w = t.text
        if w in _ROLES:
            return self.tensor_decl()
        self.i += 1
        if w == "coord":
            name = self.name(self.take("NAME"))
            self.take("=")
            return self.tree("coord_decl", [name, self.token(self.take("COORD"))], t)
        if w == "const":
            name = self.name(self.take("NAME"))
            self.take("=")
            return self.tree("const_decl", [name, self.expr()], t)
        if w == "kernel":
            name = self.name(self.take("NAME"))
            return self.tree("kernel", [name, self.block()], t)
        # fn NAME "(" [NAME ("," NAME)*] ")" block
        name = self.name(self.take("NAME"))
        self.take("(")
        params: list = []
        if self.kind() == "NAME":
            params.append(self.name(self.take("NAME")))
            while self.kind() == ",":
                self.i += 1
                params.append(self.name(self.take("NAME")))
        self.take(")")
        return self.tree("fn_def", [name, *(params or [None]), self.block()], t)

    def tensor_decl(self) -> Tree:
        first = self.take("NAME")
        role = _make_tree("role", [self.token(first, first.text.upper())], _meta(first, first))
        name = self.name(self.take("NAME"))
        self.take(":")
        dtype = self.name(self.take("NAME"))
        shape = placement = scale = layers = None
        if self.kind() == "[":
            s0 = self.take("[")
            dims = [self.dim()]
            while self.kind() == ",":
                self.i += 1
                dims.append(self.dim())
            self.take("]")
            shape = self.tree("shape", dims, s0)
        if self.kind() == "@":
            a = self.take("@")
            t = self.peek()
            if t is None or t.kind not in ("COORD", "NAME"):
                raise Reject
            self.i += 1
            placement = self.tree("placement", [self.token(t)], a)
        if self.at_word("scale"):
            s0 = self.take("NAME")
            scale = self.tree("scale", [self.expr()], s0)
        if self.at_word("layers"):
            s0 = self.take("NAME")
            layers = self.tree("layers", [self.expr()], s0)
        return self.tree("tensor_decl", [role, name, dtype, shape, placement, scale, layers], first)

    def dim(self) -> Tree:
        t = self.peek()
        if t is None or t.kind not in ("INT", "NAME"):
            raise Reject
        self.i += 1
        return _make_tree("dim", [self.token(t)], _meta(t, t))

    def block(self) -> Tree:
        first = self.take("{")
        stmts = []
        while True:
            k = self.kind()
            if k == "}":
                break
            if k == ";":
                self.i += 1
                continue
            if k is None:
                raise Reject
            stmts.append(self.stmt())
        self.take("}")
        return self.tree("block", stmts, first)

    # ------------------------------------------------------------------ statements
    def stmt(self) -> Tree:
        t = self.peek()
        if t is None or t.kind != "NAME":
            raise Reject
        w = t.text
        if w == "let":
            self.i += 1
            name = self.name(self.take("NAME"))
            ty = None
            if self.kind() == ":":
                self.i += 1
                ty = self.name(self.take("NAME"))
            self.take("=")
            return self.tree("let_stmt", [name, ty, self.expr()], t)
        if w == "for":
            self.i += 1
            name = self.name(self.take("NAME"))
            self.keyword("in")
            lo = self.expr()
            self.take("..")
            hi = self.expr()
            step = None
            if self.at_word("step"):
                self.i += 1
                step = self.expr()
            return self.tree("for_stmt", [name, lo, hi, step, self.block()], t)
        if w == "if":
            return self.if_stmt()
        if w == "return":
            self.i += 1
            exprs = [self.expr()]
            while self.kind() == ",":
                self.i += 1
                exprs.append(self.expr())
            return self.tree("return_stmt", exprs, t)
        if w in _ITEM_KEYWORDS:
            raise Reject  # a declaration inside a block: Lark reports it
        k1 = self.kind(1)
        if k1 == "=":
            self.i += 2
            return self.tree("assign", [self.token(t), self.expr()], t)
        if k1 == "(":
            c = self.call()
            return self.tree("call_stmt", [c], t)
        if k1 == "[":
            self.i += 2
            idx = self.expr()
            self.take("]")
            self.take("=")
            return self.tree("index_assign", [self.token(t), idx, self.expr()], t)
        if k1 == ",":
            self.i += 1
            names = [self.token(t)]
            while self.kind() == ",":
                self.i += 1
                names.append(self.token(self.take("NAME")))
            self.take("=")
            return self.tree("multi_assign", [*names, self.expr()], t)
        raise Reject

    def if_stmt(self) -> Tree:
        first = self.keyword("if")
        a = self.expr()
        op = self.peek()
        if op is None or op.kind not in _CMP:
            raise Reject
        self.i += 1
        b = self.expr()
        body = self.block()
        other = None
        if self.at_word("else"):
            self.i += 1
            if self.at_word("if"):
                inner_first = self.peek()
                inner = self.if_stmt()
                other = _make_tree("if_block", [inner], _meta(inner_first, self.prev()))
            else:
                other = self.block()
        kids = [a, self.token(op, "CMPOP"), b, body]
        if other is not None:  # no placeholder: `["else" _else_part]` holds an inlined rule
            kids.append(other)
        return self.tree("if_stmt", kids, first)

    # ------------------------------------------------------------------ expressions
    def expr(self):
        first = self.peek()
        left = self.product()
        while True:
            k = self.kind()
            data = _SUM.get(k) if k is not None else None
            if data is None:
                return left
            self.i += 1
            right = self.product()
            left = _make_tree(data, [left, right], _meta(first, self.prev()))

    def product(self):
        first = self.peek()
        left = self.unary()
        while True:
            k = self.kind()
            data = _PRODUCT.get(k) if k is not None else None
            if data is None:
                return left
            self.i += 1
            right = self.unary()
            left = _make_tree(data, [left, right], _meta(first, self.prev()))

    def unary(self):
        t = self.peek()
        if t is not None and t.kind == "-":
            self.i += 1
            inner = self.unary()
            return _make_tree("neg", [inner], _meta(t, self.prev()))
        return self.atom()

    def atom(self):
        t = self.peek()
        if t is None:
            raise Reject
        k = t.kind
        if k == "INT":
            self.i += 1
            return _make_tree("int_lit", [self.token(t)], _meta(t, t))
        if k == "FLOAT":
            self.i += 1
            return _make_tree("float_lit", [self.token(t)], _meta(t, t))
        if k == "NAME":
            k1 = self.kind(1)
            if k1 == "(":
                return self.call()
            if k1 == "[":
                self.i += 2
                idx = self.expr()
                self.take("]")
                return self.tree("index", [self.token(t), idx], t)
            self.i += 1
            return _make_tree("name", [self.token(t)], _meta(t, t))
        if k == "(":
            self.i += 1
            e = self.expr()
            close = self.take(")")
            d = e.meta.__dict__  # Lark: an inlined rule's tokens widen only the *container* span
            d["container_line"], d["container_column"], d["container_start_pos"] = t.line, t.col, t.pos
            d["container_end_line"], d["container_end_column"] = close.eline, close.ecol
            d["container_end_pos"] = close.end
            return e
        raise Reject

    def call(self) -> Tree:
        first = self.take("NAME")
        self.take("(")
        args: list = []
        if self.kind() != ")":
            args.append(self.arg())
            while self.kind() == ",":
                self.i += 1
                args.append(self.arg())
        self.take(")")
        return self.tree("call", [self.token(first), *(args or [None])], first)

    def arg(self):
        t = self.peek()
        if t is not None and t.kind == "NAME" and self.kind(1) == "=":
            # no argument starts with a keyword, so Lark's contextual lexer reads any word here as a
            # NAME (`scale=`, `layers=`: tests/test_phx_parse.py checks every keyword)
            self.i += 2
            return self.tree("kwarg", [self.name(t), self.expr()], t)
        return self.expr()


def parse_fast(text: str) -> Tree:
    """The Lark-identical tree of a valid program; :class:`Reject` for anything else."""
    p = _Parser(_lex(text))
    return p.start()
