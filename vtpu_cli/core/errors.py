"""Errors, diagnostics and the one exit-code table shared by every command.

Every user mistake becomes a :class:`VtpuError` (or a :class:`DiagnosticError` carrying several
source-located diagnostics); the CLI renders it with rich and exits with its code, so no Python
traceback ever reaches a user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum


class Exit(IntEnum):
    """Process exit codes (documented in README "Exit codes")."""

    OK = 0  # success; a gate passed
    FAULT = 1  # the program faulted, deadlocked or hit --max-steps; a gate criterion failed
    USAGE = 2  # bad usage or bad input: syntax, unknown op, corrupt .siw, missing file
    ERROR = 3  # something could not be measured or a required capability is missing
    INTERRUPTED = 130  # Ctrl-C


class VtpuError(Exception):
    """A user-facing error with an exit code and an optional hint."""

    exit_code: Exit = Exit.USAGE

    def __init__(self, message: str, *, hint: str | None = None, exit_code: Exit | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class FormatError(VtpuError):
    """A corrupt, truncated or incompatible binary/input file."""


@dataclass
class Diagnostic:
    """One located message: ``file:line:col: error: message`` plus the source line and a caret."""

    message: str
    file: str = "<input>"
    line: int = 0  # 1-based; 0 = no location
    col: int = 0  # 1-based
    source_line: str | None = None
    hint: str | None = None
    length: int = 1
    severity: str = "error"
    note: str | None = None  # where it happened besides its place (an inlined function's call site)

    def header(self) -> str:
        loc = self.file
        if self.line:
            loc += f":{self.line}:{self.col}"
        return f"{loc}: {self.severity}: {self.message}"

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            "note": self.note,
        }


@dataclass
class DiagnosticError(VtpuError):
    """Several diagnostics reported together (all errors of a file in one run)."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.diagnostics)
        first = self.diagnostics[0].header() if n else "error"
        VtpuError.__init__(self, first if n == 1 else f"{n} errors; first: {first}")

    def __str__(self) -> str:
        return render_text(self.diagnostics)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(name: str) -> str:
    """Text from a file, safe to print: control bytes (ESC, OSC, BEL...) become ``\\xNN`` escapes so a
    crafted ``.siw`` or source cannot drive the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", name)


LINE_WINDOW = 100  # characters of a long source line shown around the caret
MESSAGE_MAX = 160  # characters of a message or hint (names from files can be huge)


def _clip(text: str, limit: int = MESSAGE_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def excerpt(line: str, col: int, length: int) -> tuple[str, int, int]:
    """The part of ``line`` to show and the caret's column and length in it: a long line is cut to a
    window around the caret (marked with ``...``) so one diagnostic never prints kilobytes."""
    line = line.rstrip().expandtabs(1)
    length = max(1, min(length, LINE_WINDOW // 2))
    if len(line) <= LINE_WINDOW:
        return printable(line), col, length
    start = max(0, col - 1 - LINE_WINDOW // 2)
    end = min(len(line), start + LINE_WINDOW)
    start = max(0, end - LINE_WINDOW)
    head = "..." if start > 0 else ""
    tail = "..." if end < len(line) else ""
    return head + printable(line[start:end]) + tail, col - start + len(head), length


def _lines(d: Diagnostic) -> list[tuple[str, str]]:
    """(style, text) pieces of one diagnostic, shared by the terminal and the plain-text renderings."""
    loc = printable(d.file) + (f":{d.line}:{d.col}" if d.line else "")
    out = [("header", f"{loc}: {d.severity}: {_clip(printable(d.message))}")]
    if d.source_line is not None and d.line:
        text, col, length = excerpt(d.source_line, d.col, d.length)
        gutter = str(d.line)
        pad = " " * len(gutter)
        out += [("gutter", f"{pad} |"), ("source", f"{gutter} | {text}")]
        out.append(("caret", f"{pad} | " + " " * max(col - 1, 0) + "^" * length))
    if d.note:
        out.append(("note", f"  = note: {_clip(printable(d.note))}"))
    if d.hint:
        out.append(("hint", f"  = hint: {_clip(printable(d.hint))}"))
    return out


def render_text(diags: list[Diagnostic]) -> str:
    """Diagnostics as plain text (what ``str(DiagnosticError)`` shows in a notebook)."""
    return "\n".join(text for d in diags for _, text in _lines(d))


def render_diagnostics(diags: list[Diagnostic], console=None, limit: int = 0) -> None:
    """Print diagnostics rustc-style (header, source excerpt with a caret, hint); at most ``limit``
    (0 = all) are printed, then a count of the rest."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console(stderr=True, highlight=False, soft_wrap=True)
    shown = diags[:limit] if limit > 0 else diags
    for d in shown:
        colour = "red" if d.severity == "error" else "yellow"
        for style, text in _lines(d):
            if style == "header":
                loc, _, rest = text.partition(f": {d.severity}: ")
                console.print(f"[bold]{escape(loc)}:[/bold] [bold {colour}]{d.severity}:[/] {escape(rest)}")
            elif style == "gutter":
                console.print(f"[blue]{escape(text)}[/blue]")
            elif style == "source":
                gutter, _, src = text.partition(" | ")
                console.print(f"[blue]{gutter} |[/blue] {escape(src)}")
            elif style == "caret":
                pad, _, caret = text.partition(" | ")
                console.print(f"[blue]{pad} |[/blue] [bold {colour}]{caret}[/]")
            elif style == "note":
                console.print(f"  [cyan]= note:[/cyan] {escape(text.removeprefix('  = note: '))}")
            else:
                console.print(f"  [cyan]= hint:[/cyan] {escape(text.removeprefix('  = hint: '))}")
    errors = sum(1 for d in diags if d.severity == "error")
    if len(shown) < len(diags):
        console.print(f"[bold red]... {len(diags) - len(shown)} more not shown (--error-limit)[/bold red]")
    if errors > 1:
        console.print(f"[bold red]{errors} errors[/bold red]")
