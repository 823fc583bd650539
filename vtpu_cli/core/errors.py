"""Errors, diagnostics and the one exit-code table shared by every command.

Every user mistake becomes a :class:`VtpuError` (or a :class:`DiagnosticError` carrying several
source-located diagnostics); the CLI renders it with rich and exits with its code, so no Python
traceback ever reaches a user.
"""

from __future__ import annotations

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
        }


@dataclass
class DiagnosticError(VtpuError):
    """Several diagnostics reported together (all errors of a file in one run)."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.diagnostics)
        first = self.diagnostics[0].header() if n else "error"
        VtpuError.__init__(self, first if n == 1 else f"{n} errors; first: {first}")


def render_diagnostics(diags: list[Diagnostic], console=None) -> None:
    """Print diagnostics rustc-style: header, source line with a caret, hint."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console(stderr=True, highlight=False, soft_wrap=True)
    for d in diags:
        colour = "red" if d.severity == "error" else "yellow"
        loc = d.file + (f":{d.line}:{d.col}" if d.line else "")
        console.print(f"[bold]{escape(loc)}:[/bold] [bold {colour}]{d.severity}:[/] {escape(d.message)}")
        if d.source_line is not None and d.line:
            gutter = str(d.line)
            pad = " " * len(gutter)
            console.print(f"[blue]{pad} |[/blue]")
            console.print(f"[blue]{gutter} |[/blue] {escape(d.source_line.rstrip())}")
            caret = " " * max(d.col - 1, 0) + "^" * max(d.length, 1)
            console.print(f"[blue]{pad} |[/blue] [bold {colour}]{caret}[/]")
        if d.hint:
            console.print(f"  [cyan]= hint:[/cyan] {escape(d.hint)}")
    if len(diags) > 1:
        console.print(f"[bold red]{len(diags)} errors[/bold red]")
