"""The svISA assembler: ``.vasm`` text -> :class:`Program`.

The file is split into logical lines (and ``{ ... }`` bundles); each line is parsed on its own with
the Lark grammar ``grammar/vasm.lark``, so one bad line never hides the next: every error in the file
is collected and reported together as :class:`DiagnosticError`.
"""

from __future__ import annotations

import difflib
import math
import re
import struct
from dataclasses import dataclass
from functools import lru_cache

from vtpu_cli.binary.limits import MAX_DATA_DIMS, MAX_GROUP_MEMBERS, MAX_SCROLL_BYTES, MAX_SENTRON_ID
from vtpu_cli.binary.program import (
    MEM_CONTIG,
    MEM_INDEXED,
    MEM_STRIDED,
    TENSOR_ROLES,
    DataScroll,
    Imm,
    Instr,
    Mem,
    Output,
    Program,
    Reg,
    TensorDecl,
    check_instr,
    siw_from_instrs,
)
from vtpu_cli.core import coords
from vtpu_cli.core.errors import Diagnostic, DiagnosticError
from vtpu_cli.core.resources import grammar_cache_path
from vtpu_cli.isa.table import (
    ANY_SENDER,
    BY_NAME,
    HOME_COORD,
    REG_COUNTS,
    SPECIAL_REGS,
    TYPES,
    Op,
    default_type,
    mem_form_error,
    split_mnemonic,
    type_size,
)

# Float literals -> bits without numpy (``vtpu asm`` never loads it): the same rounding as
# ``core.numerics.f32_bits``/``bf16_bits`` (nearest even, overflow to inf, NaN canonical); a test checks
# they agree bit for bit.
_F32 = struct.Struct("<f")
_U32 = struct.Struct("<I")
CANON_NAN32 = 0x7FC00000
CANON_NAN16 = 0x7FC0


def f32_bits(x: float) -> int:
    if x != x:
        return CANON_NAN32
    try:
        return _U32.unpack(_F32.pack(x))[0]
    except OverflowError:  # rounds beyond the largest finite f32
        return 0xFF800000 if x < 0 else 0x7F800000


def bf16_bits(x: float) -> int:
    bits = f32_bits(x)
    if (bits & 0x7F800000) == 0x7F800000 and (bits & 0x7FFFFF):
        return (bits >> 16) & 0x8000 | CANON_NAN16
    lsb = (bits >> 16) & 1
    return ((bits + 0x7FFF + lsb) >> 16) & 0xFFFF


def sext(v: int, bits: int) -> int:
    """Two's-complement wrap of v to a signed ``bits``-bit value."""
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


_PACK = {"<i8": "q", "<i4": "i", "<i2": "h", "i1": "b"}


@lru_cache(maxsize=1)
def _parser():
    from lark import Lark

    from vtpu_cli.core.resources import grammar_text

    text = grammar_text("vasm.lark")
    opts = dict(parser="lalr", lexer="contextual", propagate_positions=False, maybe_placeholders=True)
    cache = grammar_cache_path("vasm", text)
    if cache is not None:
        try:
            return Lark(text, cache=cache, **opts)
        except Exception:  # noqa: BLE001 - an unreadable or stale cache only costs the rebuild
            pass
    return Lark(text, **opts)


class _LineError(Exception):
    def __init__(self, message: str, col: int, length: int = 1, hint: str | None = None):
        super().__init__(message)
        self.message, self.col, self.length, self.hint = message, col, length, hint


# ----------------------------------------------------------------------------- parsed operands
@dataclass
class Tok:
    kind: str  # word | num | coord | string | mem
    text: str
    col: int
    neg: bool = False
    mem: tuple | None = None  # (base Tok, [(sign, Tok)], stride Tok|None)

    @property
    def length(self) -> int:
        return max(len(self.text), 1)


def _tok(tree_or_token) -> Tok:
    from lark import Token, Tree

    if isinstance(tree_or_token, Token):
        kind = {"WORD": "word", "COORD": "coord", "STRING": "string", "NUMBER": "num"}.get(
            tree_or_token.type, "punct"
        )
        return Tok(kind, str(tree_or_token), tree_or_token.column)
    t: Tree = tree_or_token
    if t.data in (
        "word",
        "coord",
        "string",
        "punct",
        "punct_eq",
        "punct_lb",
        "punct_rb",
        "punct_colon",
        "comma",
    ):
        if not t.children:
            sym = {"punct_eq": "=", "punct_lb": "[", "punct_rb": "]", "punct_colon": ":", "comma": ","}[
                t.data
            ]
            return Tok("punct", sym, 0)
        tok = _tok(t.children[0])
        return tok
    if t.data == "negword":  # -inf / -nan / -CONST
        neg, word = t.children
        return Tok("word", str(word), neg.column, neg=True)
    if t.data == "number":
        neg, num = t.children
        return Tok("num", str(num), (neg or num).column, neg=neg is not None)
    if t.data == "mem":
        base = _tok(t.children[0])
        terms = []
        stride = None
        for ch in t.children[1:]:
            if ch is None:
                continue
            if ch.data == "mterm":
                sign, val = ch.children
                terms.append((str(sign), _tok(val)))
            elif ch.data == "stride":
                neg, val = ch.children
                st = _tok(val)
                st.neg = neg is not None
                stride = st
        return Tok("mem", "[...]", base.col - 1, mem=(base, terms, stride))
    raise AssertionError(t.data)


# ----------------------------------------------------------------------------- literals
def parse_int(tok: Tok) -> int:
    text = tok.text.replace("_", "")
    try:
        if text.lower().startswith("0x"):
            v = int(text, 16)
        elif text.lower().startswith("0b"):
            v = int(text, 2)
        else:
            v = int(text, 10)
    except ValueError:
        raise _LineError(f"expected an integer, found `{tok.text}`", tok.col, tok.length) from None
    return -v if tok.neg else v


def _is_float_text(text: str) -> bool:
    t = text.lower()
    return not t.startswith(("0x", "0b")) and ("." in t or "e" in t)


def parse_float_bits(tok: Tok, t: str) -> int:
    """A float literal in an f32/bf16 context -> bits. Hex literals are raw bit patterns."""
    width = 32 if t == "f32" else 16
    if tok.kind == "word":
        name = tok.text.lower()
        if name not in ("inf", "nan"):
            raise _LineError(f"expected a number, found `{tok.text}`", tok.col, tok.length)
        val = float(name)
        if tok.neg:
            val = -val
    elif tok.text.lower().startswith(("0x", "0b")):
        bits = parse_int(tok)
        if tok.neg or not 0 <= bits < (1 << width):
            raise _LineError(f"raw {t} bit pattern {tok.text} does not fit {width} bits", tok.col, tok.length)
        return bits
    else:
        val = float(tok.text.replace("_", ""))
        if math.isinf(val):  # a finite literal too large for any float (1e400)
            val = 1e300
        if tok.neg:
            val = -val
    return _finite_bits(val, t, tok)


def _finite_bits(val: float, t: str, tok: Tok) -> int:
    """f32/bf16 bits of a literal; a finite literal beyond the type's range is an error, not inf."""
    bits = f32_bits(val) if t == "f32" else bf16_bits(val)
    if not math.isinf(val) and (bits & 0x7FFFFFFF if t == "f32" else bits & 0x7FFF) == (
        0x7F800000 if t == "f32" else 0x7F80
    ):
        raise _LineError(
            f"`{'-' if tok.neg else ''}{_clip(tok.text)}` is out of range for {t}",
            tok.col,
            tok.length,
            hint=f"the largest finite {t} is about {'3.4e38' if t == 'f32' else '3.39e38'}; write inf for infinity",
        )
    return bits


def _clip(text: str, n: int = 24) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def int_in_type(v: int, t: str, tok: Tok) -> int:
    """Range-check an integer literal for type t (signed or unsigned spelling) and wrap it."""
    bits = type_size(t) * 8
    if not -(1 << (bits - 1)) <= v < (1 << bits):
        lo, hi = -(1 << (bits - 1)), (1 << bits) - 1
        raise _LineError(f"literal {v} does not fit {t} ({lo}..{hi})", tok.col, tok.length)
    return sext(v, bits)


def typed_imm(tok: Tok, t: str | None, consts: dict[str, int]) -> int:
    if tok.kind == "word" and tok.text in consts:
        v = -consts[tok.text] if tok.neg else consts[tok.text]
        tok = Tok("num", str(abs(v)), tok.col, neg=v < 0)
    if t in ("f32", "bf16"):
        if tok.kind not in ("num", "word"):
            raise _LineError("expected a number", tok.col, tok.length)
        if (
            tok.kind == "num"
            and not _is_float_text(tok.text)
            and not tok.text.lower().startswith(("0x", "0b"))
        ):
            v = parse_int(tok)
            try:
                fv = float(v)
            except OverflowError:  # beyond any float: certainly beyond f32/bf16
                fv = 1e300
            return _finite_bits(fv, t, tok)
        return parse_float_bits(tok, t)
    if tok.kind != "num":
        raise _LineError(f"expected an integer literal, found `{tok.text}`", tok.col, tok.length)
    if _is_float_text(tok.text):
        raise _LineError(
            f"float literal `{tok.text}` in an integer context",
            tok.col,
            tok.length,
            hint="use a .f32 op (or an integer literal)",
        )
    return int_in_type(parse_int(tok), t or "i64", tok)


# ----------------------------------------------------------------------------- registers
_REG_RE = re.compile(r"^([rvpm])(\d+)$")


def parse_reg(tok: Tok) -> Reg | None:
    if tok.kind != "word":
        return None
    if tok.text in SPECIAL_REGS:
        return Reg("s", SPECIAL_REGS.index(tok.text))
    m = _REG_RE.match(tok.text)
    if not m:
        return None
    cls, idx = m.group(1), int(m.group(2))
    if idx >= REG_COUNTS[cls]:
        raise _LineError(
            f"register {tok.text} does not exist",
            tok.col,
            tok.length,
            hint=f"{cls} registers are {cls}0..{cls}{REG_COUNTS[cls] - 1}",
        )
    return Reg(cls, idx)


_KIND_WORDS = {
    "r": "rN",
    "v": "vN",
    "p": "pN",
    "m": "mN",
    "rv": "rN|vN",
    "rvi": "rN|vN|imm",
    "rvs": "rN|vN|special",
    "ri": "rN|imm",
    "imm": "imm",
    "label": "label",
    "coord": "coord",
    "mem": "[pN+off]",
    "group": "group",
}

_CLASS_WORD = {
    "r": "a scalar register (r0..r15)",
    "v": "a vector register (v0..v31)",
    "p": "a coordinate register (p0..p7)",
    "m": "a message register (m0..m3)",
}


# ----------------------------------------------------------------------------- assembler
@dataclass
class _PendingInstr:
    instr_fields: dict
    label_toks: list  # (operand index, Tok)
    line: int


MAX_INCLUDE_DEPTH = 16
MAX_INCLUDE_BYTES = 16 << 20  # an included file is source text, not data
LOC_MAX = (1 << 32) - 1  # the .siw line map stores u32 line numbers
NAME_MAX = 4096  # bytes in a symbol, group or file name (the .siw stores u16-prefixed strings)
_INCLUDE_RE = re.compile(r'^\s*\.include\s+"((?:[^"\\]|\\.)*)"\s*(?:(?:;|#|//).*)?$')
_LABEL_RE = re.compile(r"^\s*(\.L[A-Za-z0-9_]+|[A-Za-z_][A-Za-z0-9_.]*)\s*:")
_DEF_NAME_RE = re.compile(r"^\s*\.(?:const|coord|group)\s+([A-Za-z_][A-Za-z0-9_]*)")
_KNOCK_ON_RE = re.compile(
    r"^(?:undefined label|unknown coordinate name|unknown output|unknown group|no group named)?[^`]*`([^`.]+)"
)
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class _Line:
    """One line of the expanded source: its text and where it came from (``.include`` keeps both)."""

    text: str
    file: str
    line: int


class Assembler:
    def __init__(
        self,
        text: str,
        filename: str = "<input>",
        defines: dict[str, str] | None = None,
        base_dir: str | None = None,
        max_errors: int = 0,
    ):
        self.text = text
        self.filename = filename
        self.diags: list[Diagnostic] = []
        self._diag_order: list[tuple[int, int]] = []
        self.warnings: list[Diagnostic] = []
        self.max_errors = max_errors  # 0 = no limit
        self.defined_by_flag: set[str] = set()
        self.poisoned: set[str] = set()  # names whose defining line had an error (no knock-on errors)
        self.used_names: set[str] = set()
        self.name_lines: dict[str, int] = {}
        self.src: list[_Line] = []
        self._expand(text, filename, base_dir, 0, [], 0)
        self.lines = [ln.text for ln in self.src]
        self.consts: dict[str, int] = {}
        self.coord_names: dict[str, int] = {}
        self.coord_name_line: dict[str, int] = {}
        self.groups: list[tuple[str, tuple[int, ...] | None]] = []
        self.group_ids: dict[str, int] = {"all": 0}
        self.labels: dict[str, int] = {}
        self.siws: list[list[Instr | _PendingInstr]] = []
        self.siw_lines: list[int] = []
        self.data: dict[int, DataScroll] = {}
        self.outputs: list[Output] = []
        self.tensors: list[TensorDecl] = []  # .tensor: declared tensors (what phextcc records)
        self.sentrons = 0  # .sentrons N: the sentron count the program was compiled for
        self.pending_outputs: list[tuple[Tok, int]] = []
        self.loc: int | None = None
        self.source_file: str | None = None
        self.keep_lines = True
        for name, value in (defines or {}).items():
            self._define(name, value)

    # -- preprocessing
    def _expand(
        self, text: str, filename: str, base_dir: str | None, depth: int, stack: list, at: int
    ) -> None:
        """Split into lines, splicing in ``.include "file"`` (relative to the including file)."""
        import os
        import stat

        if text.startswith("\ufeff"):  # a UTF-8 byte-order mark is not part of the program
            text = text[1:]
        for n, raw in enumerate(text.splitlines(), 1):
            m = _INCLUDE_RE.match(raw) if ".include" in raw else None
            if m is None:
                self.src.append(_Line(raw, filename, n))
                continue
            self.src.append(_Line("", filename, n))  # keeps the include line addressable for errors
            here = len(self.src)
            target = _unescape(m.group(1))
            col = raw.index('"') + 1
            if base_dir is None:
                base_dir = os.path.dirname(filename) if filename not in ("<input>", "<stdin>", "-") else "."
            path = os.path.normpath(os.path.join(base_dir or ".", target))
            if depth >= MAX_INCLUDE_DEPTH or os.path.abspath(path) in stack:
                why = (
                    "includes itself"
                    if os.path.abspath(path) in stack
                    else f"nests deeper than {MAX_INCLUDE_DEPTH}"
                )
                self._error_src(here, raw, col, f"`.include` {why}", len(m.group(1)) + 2)
                continue
            try:
                st = os.stat(path)
                if not stat.S_ISREG(st.st_mode):
                    raise IsADirectoryError(path)
                if st.st_size > MAX_INCLUDE_BYTES:
                    raise OSError(f"larger than {MAX_INCLUDE_BYTES >> 20} MiB")
                with open(path, encoding="utf-8") as f:
                    body = f.read(MAX_INCLUDE_BYTES + 1)
            except (OSError, UnicodeDecodeError) as e:
                why = (
                    "no such file"
                    if isinstance(e, FileNotFoundError)
                    else "not a regular file"
                    if isinstance(e, IsADirectoryError)
                    else "cannot read it"
                )
                self._error_src(here, raw, col, f"cannot include `{target}`: {why}", len(m.group(1)) + 2)
                continue
            self._expand(body, path, os.path.dirname(path), depth + 1, [*stack, os.path.abspath(path)], here)

    def _error_src(self, idx: int, raw: str, col: int, message: str, length: int) -> None:
        ln = self.src[idx - 1]
        self.diags.append(Diagnostic(message, ln.file, ln.line, col, raw, None, length))
        self._diag_order.append((idx, col))

    def _define(self, name: str, value: str) -> None:
        """``-D NAME=VALUE``: an integer becomes a ``.const``, a coordinate a ``.coord``; the source's own
        definition of NAME is then a default that the flag overrides."""
        from vtpu_cli.core.errors import VtpuError

        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or parse_reg(Tok("word", name, 1)) is not None:
            raise VtpuError(f"-D {name}: not a valid constant name", hint="names are like ITERS or N_ROWS")
        text = value.strip()
        if "/" in text:
            try:
                self.coord_names[name] = coords.parse_packed(text)
            except coords.CoordError as e:
                raise VtpuError(f"-D {name}={value}: {e.message}") from None
        else:
            neg = text.startswith("-")
            try:
                self.consts[name] = parse_int(Tok("num", text[1:] if neg else text, 1, neg=neg))
            except _LineError:
                raise VtpuError(
                    f"-D {name}={value}: expected an integer or a coordinate", hint="e.g. -D ITERS=1000"
                ) from None
        self.defined_by_flag.add(name)

    # -- diagnostics
    def error(self, line: int, col: int, message: str, length: int = 1, hint: str | None = None) -> None:
        """Record an error at logical line ``line`` (an index into the expanded source)."""
        if 0 < line <= len(self.src):
            ln = self.src[line - 1]
            self.diags.append(Diagnostic(message, ln.file, ln.line, col, ln.text, hint, length))
        else:
            self.diags.append(Diagnostic(message, self.filename, 0, 0, None, hint, length))
        self._diag_order.append((line, col))

    def warn(self, line: int, col: int, message: str, length: int = 1, hint: str | None = None) -> None:
        ln = self.src[line - 1] if 0 < line <= len(self.src) else None
        self.warnings.append(
            Diagnostic(
                message,
                ln.file if ln else self.filename,
                ln.line if ln else 0,
                col if ln else 0,
                ln.text if ln else None,
                hint,
                length,
                severity="warning",
            )
        )

    def _poison(self, raw: str) -> None:
        """A line that failed to parse may still define a label or name: remember it so that its uses
        are not reported as knock-on `undefined` errors."""
        for rx in (_LABEL_RE, _DEF_NAME_RE):
            m = rx.match(raw)
            if m:
                self.poisoned.add(m.group(1))

    # -- driver
    def run(self, debug_lines: bool = True) -> Program:
        from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

        parser = _parser()
        bundle: list | None = None
        bundle_line = 0
        for lineno, raw in enumerate(self.lines, 1):
            if not raw.strip():
                continue
            if (
                self.max_errors
                and len(self.diags) >= self.max_errors
                and sum(1 for ln, _ in self._diag_order if ln <= lineno) >= self.max_errors
            ):
                break  # enough errors before this line: the rest of the file cannot change what is shown
            try:
                tree = parser.parse(raw)
            except UnexpectedCharacters as e:
                self._poison(raw)
                self.error(lineno, e.column, f"unexpected character {raw[e.pos_in_stream]!r}")
                continue
            except UnexpectedToken as e:
                self._poison(raw)
                tok = e.token
                if tok.type == "$END":
                    self.error(
                        lineno, len(raw.rstrip()) + 1, "unexpected end of line", hint=_expect_hint(e.expected)
                    )
                else:
                    self.error(
                        lineno,
                        tok.column,
                        f"unexpected `{tok}`",
                        len(str(tok)),
                        hint=_expect_hint(e.expected),
                    )
                continue
            except (UnexpectedEOF, UnexpectedInput) as e:  # pragma: no cover - defensive
                self._poison(raw)
                self.error(lineno, getattr(e, "column", 1) or 1, "syntax error")
                continue
            label_tree, stmt = tree.children
            if label_tree is not None:
                name_tok = label_tree.children[0]
                name = str(name_tok)
                if bundle is not None:
                    self.error(lineno, name_tok.column, "a label cannot appear inside a bundle", len(name))
                elif len(name) > NAME_MAX:
                    self.error(lineno, name_tok.column, f"a label is at most {NAME_MAX} characters", 80)
                elif name in self.labels:
                    self.error(lineno, name_tok.column, f"label `{name}` is defined twice", len(name))
                else:
                    self.labels[name] = len(self.siws)
            if stmt is None:
                continue
            if getattr(stmt, "type", None) == "LBRACE":
                if bundle is not None:
                    self.error(lineno, stmt.column, "bundles cannot nest")
                bundle, bundle_line = [], lineno
                continue
            if getattr(stmt, "type", None) == "RBRACE":
                if bundle is None:
                    self.error(lineno, stmt.column, "`}` without a matching `{`")
                    continue
                self._add_siw(bundle, bundle_line)
                bundle = None
                continue
            if stmt.data == "directive":
                if bundle is not None:
                    self.error(lineno, stmt.children[0].column, "directives cannot appear inside a bundle")
                    continue
                try:
                    self._directive(stmt, lineno)
                except _LineError as e:
                    self._poison(raw)
                    self.error(lineno, e.col, e.message, e.length, e.hint)
                continue
            instrs = []
            slots = [it for it in stmt.children if it is not None]
            for it in slots:
                ins = self._instr(it, lineno)
                if ins is not None:
                    instrs.append((ins, lineno, it.children[0].column))
            if bundle is not None:
                bundle.extend(instrs)
            elif len(slots) == len(instrs):
                self._add_siw(instrs, lineno)
        if bundle is not None:
            self.error(bundle_line, 1, "bundle `{` is never closed", hint="add a line with `}`")
        program = self._finish(debug_lines)
        self._drop_knock_on()
        if not self.diags:
            # the loader's whole-program rules: whatever assembles also loads (a rule missed above is
            # still reported, as a diagnostic without a line)
            from vtpu_cli.binary.validate import program_error

            err = program_error(program)
            if err is not None:
                self.diags.append(Diagnostic(f"invalid program: {err}", self.filename))
                self._diag_order.append((0, 0))
        if self.diags:
            order = sorted(range(len(self.diags)), key=lambda i: self._diag_order[i])
            raise DiagnosticError(diagnostics=[self.diags[i] for i in order])
        self._lint(program)
        return program

    def _drop_knock_on(self) -> None:
        """Errors about a name whose own definition failed are consequences, not new mistakes."""
        if not self.poisoned:
            return
        keep = [
            i
            for i, d in enumerate(self.diags)
            if not ((m := _KNOCK_ON_RE.match(d.message)) and m.group(1) in self.poisoned)
        ]
        self.diags = [self.diags[i] for i in keep]
        self._diag_order = [self._diag_order[i] for i in keep]

    def _lint(self, program: Program) -> None:
        """Warnings: constructs that assemble but are almost certainly mistakes."""
        if not program.outputs:
            self.warnings.append(
                Diagnostic(
                    "the program has no `.output`: a run prints nothing",
                    self.filename,
                    severity="warning",
                    hint="mark results with `.output r1, NAME, ...`",
                )
            )
        words: dict[str, int] = {}
        for text in self.lines:
            for w in _WORD_RE.findall(text):
                words[w] = words.get(w, 0) + 1
        for name, line in sorted(self.name_lines.items(), key=lambda kv: kv[1]):
            if words.get(name, 0) <= 1 and name not in self.defined_by_flag:
                col = self.lines[line - 1].find(name) + 1
                self.warn(line, max(col, 1), f"`{name}` is defined but never used", len(name))

    def _add_siw(self, instrs: list, lineno: int) -> None:
        by_pipe: dict[str, tuple] = {}
        ok = True
        for ins, line, col in instrs:
            pipe = ins["op"].pipe
            if pipe in by_pipe:
                prev = by_pipe[pipe][0]["op"].name
                self.error(
                    line,
                    col,
                    f"two {pipe}-pipe ops in one SIW ({prev} and {ins['op'].name})",
                    len(ins["op"].name),
                    hint="each SIW has exactly one slot per pipe; split the line",
                )
                ok = False
                continue
            by_pipe[pipe] = (ins, line, col)
        if not ok:
            return
        # intra-SIW hazards: no slot may read or write what another slot writes
        entries = list(by_pipe.values())
        for i, (a, _, _) in enumerate(entries):
            ra, wa = a["regs"]
            for b, line, col in entries[i + 1 :]:
                rb, wb = b["regs"]
                clash = (wa & (rb | wb)) | (wb & ra)
                if clash:
                    reg = "".join(map(str, sorted(clash)[0]))
                    self.error(
                        line,
                        col,
                        f"intra-SIW hazard on {reg}: {a['op'].name} and {b['op'].name} in one SIW",
                        len(b["op"].name),
                        hint="the three slots of an SIW are independent; move one op to the next SIW",
                    )
                    return
        self.siws.append([e[0] for e in entries])
        line = self.loc if self.loc is not None else self.src[lineno - 1].line
        self.siw_lines.append(line)
        self.loc = None

    # -- one instruction
    def _instr(self, tree, lineno: int) -> dict | None:
        mn_tok = tree.children[0]
        mnemonic = str(mn_tok)
        col = mn_tok.column
        toks = [_tok(c) for c in tree.children[1:] if c is not None]
        name, *suffixes = mnemonic.split(".")
        op = BY_NAME.get(name.upper())
        if op is None:
            close = difflib.get_close_matches(name.upper(), BY_NAME, n=1)
            self.error(
                lineno,
                col,
                f"unknown op `{name}`",
                len(name),
                hint=f"did you mean {close[0]}?" if close else "see docs/isa.md for the op list",
            )
            return None
        mod, t, t2, err = split_mnemonic(op, [s.lower() for s in suffixes])
        if err:
            self.error(lineno, col + len(name), err, len(mnemonic) - len(name))
            return None
        if t is None:
            t = default_type(op)
        try:
            return self._operands(op, mod, t, t2, toks, lineno, col, len(mnemonic))
        except _LineError as e:
            self.error(lineno, e.col, e.message, e.length, e.hint)
            return None

    def _operands(self, op: Op, mod, t, t2, toks: list[Tok], lineno: int, col: int, mlen: int) -> dict:
        specs = op.operands
        count_tok = None
        if op.mem_len and len(toks) == len(specs) + 1:
            count_tok = toks.pop()
        need = sum(1 for s in specs if not s.optional)
        if not need <= len(toks) <= len(specs):
            shape = ", ".join(
                _KIND_WORDS.get(s.kind, s.kind) + (" (optional)" if s.optional else "") for s in specs
            )
            shape = shape or "no operands"
            raise _LineError(
                f"{op.name} takes {need if need == len(specs) else f'{need}..{len(specs)}'} "
                f"operand(s), got {len(toks)}",
                col,
                mlen,
                hint=f"{op.name} {shape} (see `vtpu isa {op.name}`)",
            )
        args: list = []
        label_toks = []
        form = None  # "r" or "v" for rv operands
        for i, (spec, tok) in enumerate(zip(specs, toks, strict=False)):
            kind = spec.kind
            reg = parse_reg(tok) if tok.kind == "word" else None
            if kind in ("r", "v", "p", "m"):
                if reg is None or reg.cls != kind:
                    raise _LineError(
                        f"operand {i + 1} of {op.name} must be {_CLASS_WORD[kind]}, found `{tok.text}`",
                        tok.col,
                        tok.length,
                    )
                args.append(reg)
            elif kind in ("rv", "rvi", "rvs"):
                if reg is not None and reg.cls in ("r", "v"):
                    if form is None:
                        form = reg.cls
                    elif reg.cls != form:
                        raise _LineError(
                            f"operand {i + 1} of {op.name} is {'a vector' if reg.cls == 'v' else 'a scalar'}"
                            f" register but the instruction's form is {'vector' if form == 'v' else 'scalar'}",
                            tok.col,
                            tok.length,
                            hint="scalar and vector operands cannot mix in this op",
                        )
                    args.append(reg)
                elif kind == "rvs" and reg is not None and reg.cls == "s":
                    args.append(reg)
                elif kind in ("rvi", "rvs") and tok.kind in ("num", "word") and reg is None:
                    if (
                        tok.kind == "word"
                        and tok.text not in self.consts
                        and tok.text.lower() not in ("inf", "nan")
                    ):
                        raise _LineError(
                            f"`{tok.text}` is not a register, constant or number", tok.col, tok.length
                        )
                    args.append(Imm(typed_imm(tok, t, self.consts)))
                else:
                    raise _LineError(
                        f"operand {i + 1} of {op.name} must be a scalar or vector register, found "
                        f"`{tok.text}`",
                        tok.col,
                        tok.length,
                    )
            elif kind == "ri":
                if reg is not None and reg.cls == "r":
                    args.append(reg)
                elif op.name == "CRECV" and tok.kind == "word" and tok.text == "any":
                    args.append(Imm(ANY_SENDER))
                elif reg is None and tok.kind in ("num", "word"):
                    imm_t = t if op.name == "DBCAST" else "i64"
                    if (
                        tok.kind == "word"
                        and tok.text not in self.consts
                        and tok.text.lower() not in ("inf", "nan")
                    ):
                        raise _LineError(
                            f"`{tok.text}` is not a register, constant or number", tok.col, tok.length
                        )
                    args.append(Imm(typed_imm(tok, imm_t, self.consts)))
                else:
                    raise _LineError(
                        f"operand {i + 1} of {op.name} must be a scalar register or immediate, found "
                        f"`{tok.text}`",
                        tok.col,
                        tok.length,
                    )
            elif kind == "imm":
                if tok.kind == "word" and tok.text in self.consts:
                    v = self.consts[tok.text]
                else:
                    if tok.kind != "num" or _is_float_text(tok.text):
                        raise _LineError(
                            f"operand {i + 1} of {op.name} must be an integer immediate, found `{tok.text}`",
                            tok.col,
                            tok.length,
                        )
                    v = parse_int(tok)
                args.append(Imm(v))
            elif kind == "label":
                if tok.kind != "word" or reg is not None:
                    raise _LineError(
                        f"operand {i + 1} of {op.name} must be a label, found `{tok.text}`",
                        tok.col,
                        tok.length,
                    )
                args.append(None)
                label_toks.append((i, tok))
            elif kind == "coord":
                args.append(Imm(self._coord_operand(tok)))
            elif kind == "group":
                args.append(Imm(self._group_operand(tok)))
            elif kind == "mem":
                args.append(self._mem(tok, op))
            else:  # pragma: no cover - table error
                raise AssertionError(kind)
        # immediate ranges from the op table
        for idx, lo, hi in op.imm_range:
            if idx < len(args) and isinstance(args[idx], Imm) and not lo <= args[idx].value <= hi:
                tok = toks[idx]
                raise _LineError(
                    f"operand {idx + 1} of {op.name} must be in {lo}..{hi}, found {args[idx].value}",
                    tok.col,
                    tok.length,
                )
        for idx in op.pow2:
            if idx < len(args) and isinstance(args[idx], Imm):
                v = args[idx].value
                if v <= 0 or v & (v - 1):
                    raise _LineError(
                        f"operand {idx + 1} of {op.name} must be a power of two, found {v}",
                        toks[idx].col,
                        toks[idx].length,
                    )
        for i, a in enumerate(args):
            if isinstance(a, Mem):
                err = mem_form_error(t, a.mode)
                if err:  # reported at the operand (check_instr below repeats the rule for the loader)
                    raise _LineError(err, toks[i].col, toks[i].length)
        if count_tok is not None:
            mi = next(i for i, sp in enumerate(specs) if sp.kind == "mem")
            m = args[mi]
            if form != "v" or m.mode != MEM_CONTIG:
                raise _LineError(
                    "a byte count is only allowed on a contiguous vector access",
                    count_tok.col,
                    count_tok.length,
                )
            nb = typed_imm(count_tok, "i64", self.consts) if count_tok.kind == "num" else None
            if nb is None or not 1 <= nb <= 64:
                raise _LineError(
                    "the byte count must be an integer in 1..64", count_tok.col, count_tok.length
                )
            args[mi] = Mem(m.base, m.off, MEM_CONTIG, Imm(nb), m.disp)
        if op.vector_only and form == "r":
            raise _LineError(f"{op.name} has only a vector form", col, mlen)
        if op.name == "DMOV" and form == "v" and isinstance(args[1], Reg) and args[1].cls == "s":
            raise _LineError(
                "a special register can only be moved into a scalar register", toks[1].col, toks[1].length
            )
        if op.name == "DMOV" and form == "v" and isinstance(args[1], Imm):
            raise _LineError(
                "DMOV cannot load an immediate into a vector register",
                toks[1].col,
                toks[1].length,
                hint="use DBCAST.<type> to broadcast an immediate",
            )
        if op.name == "DMOV" and t == "f32" and isinstance(args[1], Reg):
            t = None  # register copies are untyped
        if op.name == "DMOV" and not isinstance(args[1], Imm):
            t = None
        if op.name == "DMOV" and isinstance(args[1], Imm) and t is None:
            t = "i64"
        ins = Instr(op, mod, t, t2, tuple(args) + (None,) * (len(specs) - len(args)))
        err = check_instr(ins)
        if err:
            raise _LineError(err, col, mlen)
        return {"op": op, "instr": ins, "labels": label_toks, "regs": ins.regs(), "line": lineno}

    def _coord_operand(self, tok: Tok) -> int:
        if tok.kind == "coord":
            return self._parse_coord(tok)
        if tok.kind == "word":
            if tok.text == "home":
                return HOME_COORD
            if tok.text in self.coord_names:
                return self.coord_names[tok.text]
            raise _LineError(
                f"unknown coordinate name `{tok.text}`",
                tok.col,
                tok.length,
                hint="define it with `.coord NAME = L.S.S/C.V.B/C.S.S` before use",
            )
        raise _LineError(f"expected a coordinate, found `{tok.text}`", tok.col, tok.length)

    def _parse_coord(self, tok: Tok) -> int:
        try:
            return coords.pack(coords.Coord.parse(tok.text))
        except coords.CoordError as e:
            c = getattr(e, "col", None)
            raise _LineError(
                e.message,
                tok.col + (c or 0),
                1 if c is not None else tok.length,
                hint=e.hint or "a coordinate is L.S.S/C.V.B/C.S.S with every part in 1..999",
            ) from None

    def _group_operand(self, tok: Tok) -> int:
        if tok.kind == "word" and tok.text in self.group_ids:
            return self.group_ids[tok.text]
        if tok.kind == "num" and not _is_float_text(tok.text):
            g = parse_int(tok)
            if 0 <= g <= len(self.groups):
                return g
            raise _LineError(
                f"group {g} is not declared", tok.col, tok.length, hint="declare it with `.group`"
            )
        raise _LineError(
            f"unknown group `{tok.text}`",
            tok.col,
            tok.length,
            hint="declare it with `.group NAME = a..b[:stride]`, or use `all`",
        )

    def _mem(self, tok: Tok, op: Op) -> Mem:
        if tok.kind != "mem":
            raise _LineError(
                f"{op.name} expects a memory operand like [p0 + 16], found `{tok.text}`", tok.col, tok.length
            )
        base_tok, terms, stride = tok.mem
        base = parse_reg(base_tok)
        if base is None or base.cls != "p":
            raise _LineError(
                f"a memory operand's base must be a coordinate register (p0..p7), found `{base_tok.text}`",
                base_tok.col,
                base_tok.length,
            )
        off: Reg | Imm = Imm(0)
        index = None
        imm_sum = 0
        reg_off = None
        for sign, t in terms:
            r = parse_reg(t) if t.kind == "word" else None
            if r is not None:
                if sign == "-":
                    raise _LineError("register terms can only be added", t.col, t.length)
                if r.cls == "r" and reg_off is None:
                    reg_off = r
                elif r.cls == "v" and index is None:
                    index = r
                else:
                    raise _LineError(
                        f"unexpected register `{t.text}` in memory operand",
                        t.col,
                        t.length,
                        hint="forms: [p + off], [p + rOff + disp], [p + off : stride], [p + off + vIdx]",
                    )
            else:
                if t.kind == "word" and t.text in self.consts:
                    v = self.consts[t.text]
                elif t.kind == "num":
                    v = parse_int(t)
                else:
                    raise _LineError(f"`{t.text}` is not a register, constant or number", t.col, t.length)
                imm_sum += -v if sign == "-" else v
        if not -(1 << 31) <= imm_sum < (1 << 31):
            what = "displacement" if reg_off is not None else "offset"
            raise _LineError(f"memory {what} {imm_sum} does not fit 32 bits", tok.col + 1)
        # [p + rN + disp]: a register offset with a displacement (svISA v2); [p + imm]: the immediate
        off, disp = (reg_off, imm_sum) if reg_off is not None else (Imm(imm_sum), 0)
        if index is not None and stride is not None:
            raise _LineError("a memory operand is strided or indexed, not both", stride.col, stride.length)
        if index is not None:
            return Mem(base.idx, off, MEM_INDEXED, index, disp)
        if stride is not None:
            r = parse_reg(stride) if stride.kind == "word" else None
            if r is not None and r.cls == "r":
                return Mem(base.idx, off, MEM_STRIDED, r, disp)
            if stride.kind == "word" and stride.text in self.consts:
                return Mem(base.idx, off, MEM_STRIDED, Imm(self.consts[stride.text]), disp)
            if stride.kind != "num":
                raise _LineError(
                    f"a stride is a scalar register or integer, found `{stride.text}`",
                    stride.col,
                    stride.length,
                )
            return Mem(base.idx, off, MEM_STRIDED, Imm(parse_int(stride)), disp)
        return Mem(base.idx, off, MEM_CONTIG, None, disp)

    # -- directives
    def _directive(self, tree, lineno: int) -> None:
        dtok = tree.children[0]
        name = str(dtok)
        items = [_tok(c) for c in tree.children[1:]]
        for it in items:
            if it.col == 0:
                it.col = dtok.column
        handler = getattr(self, "_d_" + name[1:], None)
        if handler is None:
            known = ", ".join("." + n[3:] for n in dir(self) if n.startswith("_d_"))
            raise _LineError(
                f"unknown directive `{name}`", dtok.column, len(name), hint=f"directives: {known}"
            )
        handler(items, dtok, lineno)

    @staticmethod
    def _strip_eq(items: list[Tok]) -> list[Tok]:
        return [t for t in items if not (t.kind == "punct" and t.text in ("=", ","))]

    def _d_coord(self, items, dtok, lineno):
        items = self._strip_eq(items)
        if len(items) != 2 or items[0].kind != "word" or items[1].kind != "coord":
            raise _LineError("usage: .coord NAME = L.S.S/C.V.B/C.S.S", dtok.column, len(dtok))
        name = items[0].text
        if name in self.defined_by_flag:
            return
        self.name_lines[name] = lineno
        if name in self.coord_names or name == "home":
            raise _LineError(f"coordinate name `{name}` is already defined", items[0].col, len(name))
        self.coord_names[name] = self._parse_coord(items[1])

    def _d_const(self, items, dtok, lineno):
        items = self._strip_eq(items)
        if len(items) != 2 or items[0].kind != "word" or items[1].kind != "num":
            raise _LineError("usage: .const NAME = INTEGER", dtok.column, len(dtok))
        if _is_float_text(items[1].text):
            raise _LineError(".const takes an integer", items[1].col, items[1].length)
        name = items[0].text
        if name in self.defined_by_flag:
            return
        self.name_lines[name] = lineno
        if name in self.consts or parse_reg(items[0]) is not None:
            raise _LineError(
                f"constant `{name}` is already defined or names a register", items[0].col, len(name)
            )
        self.consts[name] = parse_int(items[1])

    def _scroll_target(self, tok: Tok) -> int:
        if tok.kind == "coord":
            return self._parse_coord(tok)
        if tok.kind == "word" and tok.text in self.coord_names:
            return self.coord_names[tok.text]
        raise _LineError(f"expected a coordinate or .coord name, found `{tok.text}`", tok.col, tok.length)

    def _type_and_shape(self, items: list[Tok], i: int) -> tuple[str, tuple[int, ...] | None, int]:
        if i >= len(items) or items[i].kind != "word" or items[i].text not in TYPES:
            tok = items[i] if i < len(items) else items[-1]
            raise _LineError(f"expected an element type ({', '.join(TYPES)})", tok.col, tok.length)
        t = items[i].text
        i += 1
        shape = None
        if i < len(items) and items[i].kind == "punct" and items[i].text == "[":
            dims = []
            i += 1
            while i < len(items) and not (items[i].kind == "punct" and items[i].text == "]"):
                if items[i].kind == "num":
                    d = parse_int(items[i])
                    if d < 0 or d > MAX_SCROLL_BYTES:
                        raise _LineError(
                            f"a dimension is 0..{MAX_SCROLL_BYTES}, found {d}", items[i].col, items[i].length
                        )
                    dims.append(d)
                    if len(dims) > MAX_DATA_DIMS:
                        raise _LineError(f"a shape has at most {MAX_DATA_DIMS} dimensions", items[i].col)
                elif not (items[i].kind == "punct" and items[i].text == ","):
                    raise _LineError("a shape is [d0, d1, ...]", items[i].col, items[i].length)
                i += 1
            i += 1
            if not dims:
                raise _LineError("a shape needs at least one dimension", items[min(i, len(items)) - 1].col)
            shape = tuple(dims)
        return t, shape, i

    def _d_data(self, items, dtok, lineno):
        if len(items) < 2:
            raise _LineError("usage: .data COORD TYPE[shape] v0, v1, ...", dtok.column, len(dtok))
        coord = self._scroll_target(items[0])
        t, shape, i = self._type_and_shape(items, 1)
        vals = [x for x in items[i:] if not (x.kind == "punct" and x.text == ",")]
        if len(vals) == 1 and vals[0].kind == "string":
            if t != "u8":
                raise _LineError("string data needs type u8", vals[0].col, vals[0].length)
            raw = _unescape(vals[0].text[1:-1]).encode()
            n = len(raw)
        elif len(vals) == 2 and vals[0].kind == "word" and vals[0].text == "hex" and vals[1].kind == "string":
            try:
                raw = bytes.fromhex(vals[1].text[1:-1])
            except ValueError:
                raise _LineError("bad hex string", vals[1].col, vals[1].length) from None
            n = (
                _prod(shape)
                if shape is not None
                else (len(raw) * 4 if t == "t2" else len(raw) // type_size(t))
            )
            if nbytes_for(t, n) != len(raw):
                raise _LineError(
                    f"hex data has {len(raw)} bytes; {n} {t} elements need {nbytes_for(t, n)}",
                    vals[1].col,
                    vals[1].length,
                )
        else:
            raw, n = encode_values(t, vals, self.consts)
        if shape is None:
            shape = (n,)
        if nbytes_for(t, _prod(shape)) > MAX_SCROLL_BYTES:
            raise _LineError(f"scroll larger than {MAX_SCROLL_BYTES} bytes", dtok.column, len(dtok))
        if _prod(shape) != n:
            raise _LineError(
                f"shape {list(shape)} holds {_prod(shape)} elements but {n} were given",
                dtok.column,
                len(dtok),
            )
        self._add_data(DataScroll(coord, t, shape, raw), items[0])

    def _d_zero(self, items, dtok, lineno):
        if len(items) < 2:
            raise _LineError(
                "usage: .zero COORD TYPE[shape]  or  .zero COORD TYPE COUNT", dtok.column, len(dtok)
            )
        coord = self._scroll_target(items[0])
        t, shape, i = self._type_and_shape(items, 1)
        if shape is None:
            if i >= len(items) or items[i].kind != "num":
                raise _LineError(".zero needs a shape or an element count", dtok.column, len(dtok))
            count = parse_int(items[i])
            if count < 0:
                raise _LineError(
                    f"an element count is not negative, found {count}", items[i].col, items[i].length
                )
            shape = (count,)
        nbytes = nbytes_for(t, _prod(shape))
        if nbytes > MAX_SCROLL_BYTES:
            raise _LineError(f"scroll of {nbytes} bytes is too large (max 2 GiB)", dtok.column, len(dtok))
        self._add_data(DataScroll(coord, t, shape, b"", zero=True, nbytes=nbytes), items[0])

    def _add_data(self, ds: DataScroll, tok: Tok) -> None:
        if ds.coord in self.data:
            raise _LineError(f"scroll {coords.format_packed(ds.coord)} is defined twice", tok.col, tok.length)
        self.data[ds.coord] = ds

    def _d_output(self, items, dtok, lineno):
        items = [t for t in items if not (t.kind == "punct" and t.text == ",")]
        if not items:
            raise _LineError("usage: .output r1, v2.f32, NAME, ...", dtok.column, len(dtok))
        for tok in items:
            self.pending_outputs.append((tok, lineno))

    def _resolve_output(self, tok: Tok) -> Output:
        if tok.kind == "coord":
            return Output("scroll", coord=self._parse_coord(tok), dtype="")
        if tok.kind != "word":
            raise _LineError(f"`{tok.text}` cannot be an output", tok.col, tok.length)
        base, _, t = tok.text.partition(".")
        if t and t not in TYPES:
            raise _LineError(f"unknown type `.{t}`", tok.col + len(base), len(t) + 1)
        reg = parse_reg(Tok("word", base, tok.col))
        if reg is not None:
            if reg.cls not in ("r", "v"):
                raise _LineError("only r and v registers can be outputs", tok.col, tok.length)
            return Output("reg", reg=reg, dtype=t or ("i64" if reg.cls == "r" else "i32"))
        if base in self.coord_names:
            return Output("scroll", coord=self.coord_names[base], dtype=t)
        raise _LineError(
            f"unknown output `{tok.text}`",
            tok.col,
            tok.length,
            hint="outputs are registers (r1, v2.f32) or .coord names",
        )

    def _d_tensor(self, items, dtok, lineno):
        """``.tensor ROLE NAME TYPE[shape] COORD [layers L]``: a declared tensor (the .siw tensors
        section; what `vtpu disasm` prints for a phextcc program)."""
        usage = "usage: .tensor input|weight|output NAME TYPE[d0, ...] COORD [layers L]"
        if len(items) < 4 or items[0].kind != "word" or items[1].kind != "word":
            raise _LineError(usage, dtok.column, len(dtok))
        role, name = items[0].text, items[1].text
        if role not in TENSOR_ROLES:
            raise _LineError(f"a tensor role is {', '.join(TENSOR_ROLES)}", items[0].col, items[0].length)
        if any(t.name == name for t in self.tensors):
            raise _LineError(f"tensor `{name}` is declared twice", items[1].col, items[1].length)
        t, shape, i = self._type_and_shape(items, 2)
        if shape is None:
            raise _LineError("a tensor needs a shape: TYPE[d0, ...]", items[2].col, items[2].length)
        if i >= len(items):
            raise _LineError(usage, dtok.column, len(dtok))
        coord = self._scroll_target(items[i])
        layers = 1
        rest = items[i + 1 :]
        if rest:
            if len(rest) != 2 or rest[0].text != "layers" or rest[1].kind != "num":
                raise _LineError(usage, rest[0].col, rest[0].length)
            layers = parse_int(rest[1])
        self.tensors.append(TensorDecl(name, role, coord, t, shape, layers))

    def _d_sentrons(self, items, dtok, lineno):
        """``.sentrons N``: the program runs only with N sentrons (`vtpu run` checks -n against it)."""
        if len(items) != 1 or items[0].kind != "num" or _is_float_text(items[0].text):
            raise _LineError("usage: .sentrons N", dtok.column, len(dtok))
        n = parse_int(items[0])
        if not 1 <= n <= MAX_SENTRON_ID + 1:
            raise _LineError(
                f".sentrons is 1..{MAX_SENTRON_ID + 1}, found {n}", items[0].col, items[0].length
            )
        self.sentrons = n

    def _d_group(self, items, dtok, lineno):
        items = [t for t in items if not (t.kind == "punct" and t.text == "=")]
        if len(items) < 2 or items[0].kind != "word":
            raise _LineError("usage: .group NAME = a..b[:stride] | all | id, id, ...", dtok.column, len(dtok))
        name = items[0].text
        if name in self.group_ids:
            raise _LineError(f"group `{name}` is already defined", items[0].col, len(name))
        rest = items[1:]
        members: list[int] | None
        if len(rest) == 1 and rest[0].kind == "word" and rest[0].text == "all":
            members = None
        elif any(t.kind == "punct" and t.text == ".." for t in rest):
            nums = [t for t in rest if t.kind == "num"]
            has_stride = any(t.kind == "punct" and t.text == ":" for t in rest)
            if len(nums) != (3 if has_stride else 2):
                raise _LineError("a range is a..b or a..b:stride (b inclusive)", rest[0].col, rest[0].length)
            a, b = parse_int(nums[0]), parse_int(nums[1])
            s = parse_int(nums[2]) if has_stride else 1
            if s <= 0 or a < 0 or b < a:
                raise _LineError(
                    "a range needs 0 <= a <= b and a positive stride", rest[0].col, rest[0].length
                )
            if b > MAX_SENTRON_ID or (b - a) // s + 1 > MAX_GROUP_MEMBERS:
                raise _LineError(
                    f"group members are sentron ids 0..{MAX_SENTRON_ID}", rest[0].col, rest[0].length
                )
            members = list(range(a, b + 1, s))
        else:
            members = []
            for t in rest:
                if t.kind == "punct" and t.text == ",":
                    continue
                if t.kind != "num":
                    raise _LineError(f"expected a sentron id, found `{t.text}`", t.col, t.length)
                members.append(parse_int(t))
            if any(m > MAX_SENTRON_ID for m in members) or len(members) > MAX_GROUP_MEMBERS:
                raise _LineError(
                    f"group members are sentron ids 0..{MAX_SENTRON_ID}", rest[0].col, rest[0].length
                )
            if len(set(members)) != len(members) or any(m < 0 for m in members):
                raise _LineError(
                    "group members must be distinct non-negative ids", rest[0].col, rest[0].length
                )
        self.group_ids[name] = len(self.groups) + 1
        self.groups.append((name, tuple(sorted(members)) if members is not None else None))

    def _d_file(self, items, dtok, lineno):
        if len(items) != 1 or items[0].kind != "string":
            raise _LineError('usage: .file "name"', dtok.column, len(dtok))
        name = _unescape(items[0].text[1:-1])
        if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
            raise _LineError(
                "a file name cannot contain control characters", items[0].col, min(items[0].length, 80)
            )
        if len(name.encode("utf-8", "surrogatepass")) > NAME_MAX:
            raise _LineError(
                f"a file name is at most {NAME_MAX} bytes", items[0].col, min(items[0].length, 80)
            )
        self.source_file = name

    def _d_lines(self, items, dtok, lineno):
        if len(items) != 1 or items[0].text not in ("on", "off"):
            raise _LineError(
                ".lines takes `on` or `off` (whether the .siw keeps a source-line map)",
                dtok.column,
                len(dtok),
            )
        self.keep_lines = items[0].text == "on"

    def _d_loc(self, items, dtok, lineno):
        if len(items) != 1 or items[0].kind != "num":
            raise _LineError(".loc takes a line number", dtok.column, len(dtok))
        v = parse_int(items[0])
        if not 0 <= v <= LOC_MAX:
            raise _LineError(f".loc line {v} is out of range (0..{LOC_MAX})", items[0].col, items[0].length)
        self.loc = v

    def _d_include(self, items, dtok, lineno):
        raise _LineError('usage: .include "file.vasm"', dtok.column, len(dtok))

    # -- second pass
    def _finish(self, debug_lines: bool) -> Program:
        code = []
        for instrs in self.siws:
            done = []
            for ent in instrs:
                ins: Instr = ent["instr"]
                if ent["labels"]:
                    args = list(ins.args)
                    for idx, tok in ent["labels"]:
                        if tok.text not in self.labels:
                            close = difflib.get_close_matches(tok.text, self.labels, n=1)
                            self.error(
                                ent["line"],
                                tok.col,
                                f"undefined label `{tok.text}`",
                                tok.length,
                                f"did you mean `{close[0]}`?" if close else "define it with `NAME:`",
                            )
                            args[idx] = Imm(0)
                        else:
                            args[idx] = Imm(self.labels[tok.text])
                    ins = Instr(ins.op, ins.mod, ins.type, ins.type2, tuple(args))
                done.append(ins)
            code.append(siw_from_instrs(done))
        for tok, lineno in self.pending_outputs:
            try:
                self.outputs.append(self._resolve_output(tok))
            except _LineError as e:
                self.error(lineno, e.col, e.message, e.length, e.hint)
        for o in self.outputs:
            if o.kind == "scroll" and not o.dtype:
                ds = self.data.get(o.coord)
                object.__setattr__(o, "dtype", ds.dtype if ds else "u8")
        return Program(
            code=code,
            labels={k: v for k, v in self.labels.items() if not k.startswith(".L")},  # .L* labels are local
            coord_names=dict(self.coord_names),
            groups=list(self.groups),
            data=[self.data[k] for k in sorted(self.data)],
            outputs=self.outputs,
            source_file=self.source_file if self.source_file is not None else self.filename,
            lines=list(self.siw_lines) if debug_lines and self.keep_lines else [],
            tensors=list(self.tensors),
            sentrons=self.sentrons,
        )


def _expect_hint(expected) -> str | None:
    names = {
        "WORD": "a name",
        "NUMBER": "a number",
        "COORD": "a coordinate",
        "COMMA": "`,`",
        "RSQB": "`]`",
        "LSQB": "`[`",
        "VBAR": "`|`",
        "COLON": "`:`",
        "SIGN": "`+` or `-`",
        "$END": "end of line",
        "STRING": "a string",
        "NEG": "`-`",
        "DIRECTIVE": "a directive",
        "LBRACE": "`{`",
        "RBRACE": "`}`",
        "EQUAL": "`=`",
        "DOTS": "`..`",
    }
    # Lark's internal token names (e.g. __ANON_0) mean nothing to a user: say only what the docs name
    exp = sorted({names[e] for e in expected if e in names})
    if not exp:
        return None
    return "expected " + (", ".join(exp[:-1]) + " or " + exp[-1] if len(exp) > 1 else exp[0])


def _unescape(s: str) -> str:
    return s.encode("latin-1", "backslashreplace").decode("unicode_escape")


def nbytes_for(t: str, n: int) -> int:
    """Bytes needed for n elements of type t (t2 packs four per byte)."""
    return (n + 3) // 4 if t == "t2" else n * type_size(t)


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def encode_values(t: str, vals: list[Tok], consts: dict[str, int]) -> tuple[bytes, int]:
    """Typed literal values -> little-endian bytes (t2: four 2-bit codes per byte)."""
    if t == "t2":
        codes = []
        for v in vals:
            x = typed_imm(v, "i8", consts)
            if x not in (-1, 0, 1):
                raise _LineError(f"ternary values are -1, 0 or 1, found {x}", v.col, v.length)
            codes.append(x + 1)
        return pack_ternary(codes), len(codes)
    if t == "u8":
        out = []
        for v in vals:
            x = typed_imm(v, "i8", consts)
            out.append(x & 0xFF)
        return bytes(out), len(out)
    if t in ("f32", "bf16"):
        bits = [typed_imm(v, t, consts) for v in vals]
        return struct.pack(f"<{len(bits)}{'I' if t == 'f32' else 'H'}", *bits), len(bits)
    ints = [typed_imm(v, t, consts) for v in vals]
    return struct.pack(f"<{len(ints)}{_PACK[TYPES[t][2]]}", *ints), len(ints)


def pack_ternary(codes) -> bytes:
    """2-bit codes (0,1,2 = -1,0,+1) -> bytes in the one packing (``isa/ternary.py``); a partial last byte
    is zero-filled, as the .siw format has always stored it."""
    from vtpu_cli.isa.ternary import pack_codes  # numpy only for programs with t2 data

    return pack_codes([int(c) & 3 for c in codes], pad=0).tobytes()


def assemble(
    text: str,
    filename: str = "<input>",
    debug_lines: bool = True,
    *,
    defines: dict[str, str] | None = None,
    base_dir: str | None = None,
    warnings: list[Diagnostic] | None = None,
    max_errors: int = 0,
) -> Program:
    """Assemble svISA text into a :class:`Program` (raises :class:`DiagnosticError`).

    ``defines`` are ``-D NAME=VALUE`` pairs (they override the source's ``.const``/``.coord`` of the same
    name); ``.include`` paths resolve against ``base_dir`` (default: the file's folder); warnings are
    appended to ``warnings`` when given; ``max_errors`` > 0 stops after that many errors."""
    asm = Assembler(text, filename, defines=defines, base_dir=base_dir, max_errors=max_errors)
    program = asm.run(debug_lines)
    if warnings is not None:
        warnings.extend(asm.warnings)
    return program


__all__ = ["assemble", "Assembler", "pack_ternary", "encode_values"]
