"""The ``vtpu`` command line, on argparse (start-up: only this module and ``core.errors`` load before a
command runs; every heavy module is imported inside the command that needs it).

Contracts CI can rely on: with ``--json`` every outcome (success, fault, bad input, bad usage) is one JSON
document on stdout; a closed stdout pipe ends quietly; a write error is a clean message; an output path
that is the input is refused; ``-`` means stdin/stdout. Exit codes (one table for every command; README
"Exit codes"): 0 success, 1 the program faulted / deadlocked / hit --max-steps or a gate failed, 2 bad
usage or bad input, 3 not measurable / missing capability, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vtpu_cli.core.errors import Diagnostic, DiagnosticError, Exit, VtpuError

COMMANDS = {
    "asm": "assemble svISA text into a .siw binary",
    "disasm": "print assembly that re-assembles to the identical binary",
    "run": "run a program (.siw, .vasm or .phx) and print its outputs",
    "cc": "compile the .phx language into packed SIWs (phextcc)",
    "bench": "run the vBench suite, verify every result and judge a phase gate",
    "isa": "show the svISA op table, or one op",
    "generate": "generate text with a BitNet b1.58 model (HF folder or .gguf)",
    "perplexity": "perplexity of a BitNet b1.58 model over a text file",
    "serve": "serve a BitNet b1.58 model over an OpenAI-compatible HTTP API",
    "topo": "TPU v4 pod topology simulator (planning at pod scale)",
}
SHELLS = ("bash", "zsh", "fish")
NEWLINE = b"\n"


class _State:
    """Global flags (-q, -v, -W, --error-limit) as the running command sees them."""

    quiet = False
    verbose = False
    werror = False
    wignore = False
    json_doc = False  # the command was asked for --json: usage errors are JSON too
    error_limit = 20


STATE = _State()


# ----------------------------------------------------------------------------- argparse plumbing
class UsageError(Exception):
    def __init__(self, message: str, prog: str):
        super().__init__(message)
        self.message, self.prog = message, prog


class _Parser(argparse.ArgumentParser):
    """argparse with vtpu's usage errors: one line, a suggestion when a flag is misspelt, exit 2."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message, self.prog)


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=min(100, _term_width()))


_TP_HELP = "tensor parallel: split every layer's matmuls and the LM head over N sentrons (threads; default 1)"


def _term_width() -> int:
    try:
        return os.get_terminal_size(2).columns
    except OSError:
        return 100


def _int_in(lo: int | None = None, hi: int | None = None, what: str = "an integer"):
    def parse(text: str) -> int:
        try:
            v = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if lo is not None and v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {v}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be at most {hi}, got {v}")
        return v

    return parse


def _define(text: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def _common() -> argparse.ArgumentParser:
    """Options every command accepts, before or after its name."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("general options")
    s = argparse.SUPPRESS
    g.add_argument("-q", "--quiet", action="store_true", default=s, help="print only results and errors")
    g.add_argument("-v", "--verbose", action="store_true", default=s, help="say more (timings, choices)")
    g.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default=s,
        help="colour diagnostics and tables (default auto; NO_COLOR in the environment means never)",
    )
    return p


def _diag_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-W",
        dest="warnings",
        choices=("error", "ignore", "default"),
        default="default",
        metavar="error|ignore",
        help="-W error: warnings fail the command (exit 2); -W ignore: do not print them",
    )
    p.add_argument(
        "--error-limit",
        type=_int_in(0),
        default=20,
        metavar="N",
        help="print at most N diagnostics (default 20; 0 = all)",
    )


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    root = _Parser(
        prog="vtpu",
        description="Toolchain and runtime for the vtpu virtual tensor processor (svISA v2).",
        epilog="Run `vtpu COMMAND -h` for a command's options. Exit codes: 0 ok, 1 the program faulted or a "
        "gate failed, 2 bad usage or input, 3 missing capability, 130 interrupted.",
        formatter_class=_Formatter,
        parents=[common],
        allow_abbrev=False,
    )
    root.add_argument("--version", action="store_true", help="print the versions and exit")
    root.add_argument(
        "--install-completion",
        nargs="?",
        const="auto",
        choices=(*SHELLS, "auto"),
        metavar="SHELL",
        help="install tab completion for bash, zsh or fish (default: $SHELL)",
    )
    root.add_argument(
        "--show-completion",
        nargs="?",
        const="auto",
        choices=(*SHELLS, "auto"),
        metavar="SHELL",
        help="print the completion script instead of installing it",
    )
    sub = root.add_subparsers(dest="command", metavar="COMMAND", title="commands", parser_class=_Parser)

    def cmd(name: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=COMMANDS[name],
            description=description,
            formatter_class=_Formatter,
            parents=[common],
            allow_abbrev=False,
        )

    p = cmd("asm", "Assemble svISA text (.vasm) into a .siw binary.")
    p.add_argument("source", metavar="SOURCE", help="svISA assembly (.vasm); - reads standard input")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="output .siw (default: SOURCE with .siw; - for stdout)"
    )
    p.add_argument("--no-lines", action="store_true", help="omit the source-line map from the binary")
    p.add_argument("--json", action="store_true", help="print a JSON summary (or the diagnostics) on stdout")
    p.add_argument(
        "-D", dest="defines", action="append", type=_define, default=[], metavar="NAME=VALUE",
        help="define (or override) a .const integer or .coord coordinate; repeatable",
    )  # fmt: skip
    _diag_options(p)

    p = cmd("disasm", "Print assembly that re-assembles to the identical binary.")
    p.add_argument("binary", metavar="BINARY", help="a .siw binary; - reads standard input")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")

    p = cmd(
        "run",
        "Run a program and print its outputs. PROGRAM is a .siw binary, .vasm assembly (assembled on the "
        "fly) or a .phx program (compiled on the fly with -O2).",
    )
    p.add_argument(
        "program", metavar="PROGRAM", help="a .siw, .vasm or .phx file; - reads assembly from stdin"
    )
    p.add_argument(
        "--engine", choices=("jit", "interp"), default="jit",
        help="execution engine (default jit; it falls back to interp, saying why)",
    )  # fmt: skip
    p.add_argument(
        "-n", "--sentrons", type=_int_in(1, 4096), default=1, metavar="N", help="sentrons (SPMD, 1..4096)"
    )
    p.add_argument(
        "--topology", default="ring", metavar="SPEC",
        help="how sentrons connect: ring (default), torus:4x4, torus:4x4x4, twisted:4x4x8",
    )  # fmt: skip
    p.add_argument("--max-steps", type=_int_in(0), metavar="N", help="stop after N SIWs (all sentrons)")
    p.add_argument("--stats", action="store_true", help="print execution statistics")
    p.add_argument("--dump", action="store_true", help="print every sentron's registers after the run")
    p.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace (JSON)")
    p.add_argument("--json", action="store_true", help="print status, fault, outputs (and stats) as JSON")
    p.add_argument(
        "--mem", action="append", default=[], metavar="FILE",
        help="preload scrolls from .safetensors or .phext; repeatable",
    )  # fmt: skip
    p.add_argument("--out", metavar="FILE", help="write the output scrolls to a .safetensors file")
    p.add_argument("--out-all", action="store_true", help="with --out: write every scroll, not only outputs")
    p.add_argument(
        "--ppt-sets",
        type=_int_in(1),
        default=64,
        metavar="N",
        help="PPT cache sets, a power of two (default 64)",
    )
    p.add_argument("--ppt-ways", type=_int_in(1), default=4, metavar="N", help="PPT cache ways (default 4)")
    p.add_argument(
        "--hot-bytes",
        type=_int_in(0),
        default=1 << 20,
        metavar="N",
        help="hot-tier arena bytes (default 1 MiB)",
    )
    p.add_argument(
        "--no-cache", action="store_true", help="JIT: compile afresh, do not read or write the cache"
    )
    p.add_argument("--cache-dir", metavar="DIR", help="JIT cache (default $VTPU_CACHE_DIR or ~/.cache/vtpu)")
    p.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="write all sentron state and scrolls to DIR/checkpoint.npz at barriers (docs/cluster.md)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_int_in(1),
        default=None,
        metavar="K",
        help="checkpoint at every K-th CBAR on group all (default 1)",
    )
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR/checkpoint.npz")
    p.add_argument(
        "--mem-limit",
        metavar="SIZE",
        help="memory budget for all scrolls, e.g. 512M or 8G (default half of physical memory, or "
        "$VTPU_MEM_LIMIT; docs/limits.md)",
    )
    p.add_argument(
        "-D", dest="defines", action="append", type=_define, default=[], metavar="NAME=VALUE",
        help="for .vasm: define or override a .const/.coord; for .phx: override a const",
    )  # fmt: skip
    _diag_options(p)

    p = cmd("cc", "Compile a .phx program into packed SIWs (phextcc); see docs/phx.md.")
    p.add_argument("source", metavar="SOURCE", help="a .phx program; - reads standard input")
    p.add_argument(
        "-o", "--output", metavar="FILE",
        help="output file (default: SOURCE with .siw, .vasm or .ir after --emit; - for stdout)",
    )  # fmt: skip
    p.add_argument(
        "-O",
        "--opt-level",
        dest="opt",
        type=_int_in(0, 3),
        default=2,
        metavar="N",
        help="optimisation level 0..3 (default 2)",
    )
    p.add_argument("--emit", choices=("siw", "vasm", "ir"), default="siw", help="what to write (default siw)")
    p.add_argument(
        "-n",
        "--sentrons",
        type=_int_in(1, 4096),
        default=1,
        metavar="N",
        help="sentrons for sharded ops and collectives",
    )
    p.add_argument("--report", action="store_true", help="per kernel: SIWs, ops per SIW, spills, loops")
    p.add_argument(
        "--json", action="store_true", help="print a JSON summary with the report (or the diagnostics)"
    )
    p.add_argument(
        "-D", dest="defines", action="append", type=_define, default=[], metavar="NAME=VALUE",
        help="override a `const NAME = ...` of the program; repeatable",
    )  # fmt: skip
    _diag_options(p)

    p = cmd("bench", "Run the vBench suite, verify every result and judge a phase gate (docs/bench.md).")
    p.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    p.add_argument("--gate", choices=("phase0", "phase1", "phase2"), help="judge a gate")
    p.add_argument("--quick", action="store_true", help="small sizes (CI smoke runs)")
    p.add_argument(
        "--engine", choices=("jit", "interp"), default="jit", help="execution engine (default jit)"
    )
    p.add_argument(
        "-n",
        "--sentrons",
        type=_int_in(1, 4096),
        metavar="N",
        help="sentrons for fleet benchmarks; with --lm, tensor parallel over N sentrons (default 1)",
    )
    p.add_argument(
        "--json", dest="json_path", metavar="FILE", help="write the results as JSON (- for stdout)"
    )
    p.add_argument("--list", action="store_true", help="list the suite and exit")
    p.add_argument("--repeats", type=_int_in(1), metavar="N", help="runs per benchmark (median reported)")
    p.add_argument("--price", type=float, metavar="DOLLARS", help="hardware price in $ for SOPDW")
    p.add_argument(
        "--lm",
        metavar="MODEL",
        help="language-model benchmark instead of the suite: a BitNet model (HF folder "
        "or .gguf) or synthetic[:tiny|100m|2b4t[,KEY=N...]] (prefill/decode tok/s, time to first token, peak "
        "RSS, roofline fraction; docs/models.md)",
    )
    p.add_argument(
        "--lm-prompt", type=_int_in(1), default=64, metavar="N", help="--lm: prompt tokens (default 64)"
    )
    p.add_argument(
        "--lm-tokens", type=_int_in(2), default=32, metavar="N", help="--lm: decoded tokens (default 32)"
    )
    p.add_argument(
        "--lm-ctx",
        type=_int_in(0),
        default=0,
        metavar="N",
        help="--lm: context (default max(256, prompt + tokens))",
    )

    p = cmd("isa", "Show the svISA op table (the single source of truth), or one op with `vtpu isa DFMA`.")
    p.add_argument("op", nargs="?", metavar="OP", help="one op to describe, e.g. DFMA")
    p.add_argument("--markdown", action="store_true", help="print the generated docs/isa.md")

    p = cmd(
        "generate",
        "Generate text with a BitNet b1.58 model (a Hugging Face folder or a .gguf file) through the compiled "
        "decoder step; statistics on stderr (docs/models.md).",
    )
    p.add_argument("model", metavar="MODEL", help="a Hugging Face checkpoint folder or a .gguf file")
    p.add_argument("-p", "--prompt", help="the prompt text")
    p.add_argument("--prompt-file", metavar="FILE", help="read the prompt from FILE")
    p.add_argument(
        "-n",
        "--tokens",
        dest="n",
        type=_int_in(0),
        default=64,
        metavar="N",
        help="tokens to generate (default 64)",
    )
    p.add_argument("--temp", type=float, default=0.8, help="sampling temperature; 0 is greedy (default 0.8)")
    p.add_argument("--top-k", type=_int_in(0), default=40, metavar="K", help="top-k sampling (default 40)")
    p.add_argument("--top-p", type=float, default=0.95, metavar="P", help="nucleus sampling (default 0.95)")
    p.add_argument("--seed", type=_int_in(), default=0, help="sampling seed (default 0)")
    p.add_argument(
        "--ctx", type=_int_in(0), default=0, metavar="N", help="context length (default: the model's)"
    )
    p.add_argument("--sentrons", type=_int_in(1, 4096), default=1, metavar="N", help=_TP_HELP)
    p.add_argument(
        "--engine", choices=("jit", "interp"), default="jit", help="execution engine (default jit)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (text, tokens, stats)")

    p = cmd("perplexity", "Perplexity of a BitNet b1.58 model over a text file (docs/models.md).")
    p.add_argument("model", metavar="MODEL", help="a Hugging Face checkpoint folder or a .gguf file")
    p.add_argument("text_file", metavar="TEXT", help="a UTF-8 text file")
    p.add_argument(
        "--ctx", type=_int_in(0), default=0, metavar="N", help="context length (default: the model's)"
    )
    p.add_argument("--sentrons", type=_int_in(1, 4096), default=1, metavar="N", help=_TP_HELP)
    p.add_argument(
        "--engine", choices=("jit", "interp"), default="jit", help="execution engine (default jit)"
    )
    p.add_argument(
        "--scoring",
        choices=("all", "second-half"),
        default="all",
        help="all: every token, in non-overlapping context windows (default); second-half: llama-perplexity's "
        "method (chunks of --ctx tokens starting with BOS, the second half of each scored)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = cmd(
        "serve",
        "Serve a BitNet b1.58 model over an OpenAI-compatible HTTP API (needs `pip install 'vtpu[serve]'`; "
        "docs/serve.md). SIGTERM or Ctrl-C drains the requests in flight and stops.",
    )
    p.add_argument("model", metavar="MODEL", help="a Hugging Face checkpoint folder or a .gguf file")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)")
    p.add_argument(
        "--port", type=_int_in(0, 65535), default=8080, help="TCP port (default 8080; 0 picks one)"
    )
    p.add_argument("--sentrons", type=_int_in(1, 4096), default=1, metavar="N", help=_TP_HELP)
    p.add_argument(
        "--max-concurrent",
        type=_int_in(1),
        default=4,
        metavar="K",
        help="sequences decoded together; bounds KV-cache memory (default 4)",
    )
    p.add_argument(
        "--ctx",
        type=_int_in(0),
        default=0,
        metavar="N",
        help="context length per sequence (default: the model's)",
    )
    p.add_argument(
        "--engine",
        choices=("jit", "interp", "reference"),
        default="jit",
        help="jit/interp: the compiled model (default jit); reference: the batched float64 numpy reference",
    )

    p = cmd("topo", "TPU v4 pod topology simulator; `vtpu topo --help` lists its commands.")
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    sub.add_parser("__complete", help=argparse.SUPPRESS, add_help=False).add_argument(
        "words", nargs=argparse.REMAINDER
    )
    # hide the internal completion command from the command list
    sub._choices_actions = [a for a in sub._choices_actions if a.dest != "__complete"]
    return root


# ----------------------------------------------------------------------------- output helpers
def _console(stderr: bool = True):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def note(message: str) -> None:
    """A progress line on stderr (what was written, timings); silenced by -q."""
    if not STATE.quiet:  # plain text: no need to load rich for one uncoloured line
        from vtpu_cli.core.errors import printable

        print(printable(message), file=sys.stderr)


def emit_json(doc: dict) -> None:
    import json

    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def error_doc(e: VtpuError) -> dict:
    """The one JSON document a --json command prints when it fails before producing results."""
    from vtpu_cli.core.errors import printable

    doc: dict = {
        "ok": False,
        "status": "error",
        "exit_code": int(e.exit_code),
        "error": printable(e.message),
        "hint": e.hint,
    }
    if isinstance(e, DiagnosticError):
        doc["diagnostics"] = [d.as_dict() for d in e.diagnostics]
    return doc


def report_error(e: VtpuError) -> int:
    """Render a user-facing error (diagnostics with carets, or one message with a hint); return its code."""
    if STATE.json_doc:
        emit_json(error_doc(e))
        return int(e.exit_code)
    from rich.markup import escape

    from vtpu_cli.core.errors import printable, render_diagnostics

    if isinstance(e, DiagnosticError):
        render_diagnostics(e.diagnostics, limit=STATE.error_limit)
    else:
        con = _console()
        con.print(f"[bold red]error:[/bold red] {escape(printable(e.message))}")
        if e.hint:
            con.print(f"  [cyan]= hint:[/cyan] {escape(printable(e.hint))}")
    return int(e.exit_code)


def show_warnings(warnings: list[Diagnostic]) -> None:
    """Print warnings (unless -W ignore / -q); with -W error they become errors and the command fails."""
    if not warnings:
        return
    if STATE.werror:
        from dataclasses import replace

        raise DiagnosticError(diagnostics=[replace(w, severity="error") for w in warnings])
    if STATE.wignore or STATE.quiet or STATE.json_doc:
        return
    from vtpu_cli.core.errors import render_diagnostics

    render_diagnostics(warnings, limit=STATE.error_limit)


def _same_file(a: str, b: str) -> bool:
    if a == "-" or b == "-":
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def check_output(path: str | None, source: str, flag: str = "-o") -> None:
    """Refuse an output that would overwrite the input, or that cannot be written (checked before work)."""
    if path is None or path == "-":
        return
    if _same_file(path, source):
        raise VtpuError(
            f"{flag} {path} is the input file: it would be overwritten",
            hint="choose another output name",
        )
    parent = Path(path).resolve().parent
    if Path(path).is_dir():
        raise VtpuError(f"{flag} {path} is a directory")
    if not parent.is_dir():
        raise VtpuError(f"{flag} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise VtpuError(f"{flag} {path}: folder {parent} is not writable")


def write_output(path: str, data: bytes, what: str) -> None:
    """Write a file atomically (or stdout for ``-``) and say so on stderr."""
    if path == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        return
    from vtpu_cli.core.fileio import write_atomic

    try:
        write_atomic(path, data)
    except OSError as e:
        raise VtpuError(f"cannot write {path}: {e.strerror or e}") from None
    note(f"wrote {path}: {what}")


def _timer():
    import time

    t0 = time.perf_counter()
    return lambda: (time.perf_counter() - t0) * 1e3


# ----------------------------------------------------------------------------- commands
def cmd_asm(a: argparse.Namespace) -> int:
    from vtpu_cli import api

    elapsed = _timer()
    out = a.output or ("-" if a.source == "-" else str(Path(a.source).with_suffix(".siw")))
    if out == "-" and a.json:
        raise VtpuError("--json and -o - both want stdout", hint="write the binary to a file with -o FILE")
    if out == "-" and sys.stdout.isatty():
        raise VtpuError("refusing to write a binary to a terminal", hint="give -o FILE (or redirect stdout)")
    check_output(out, a.source)
    text = api.read_text(a.source)
    warnings: list[Diagnostic] = []
    prog = api.assemble(
        text,
        filename="<stdin>" if a.source == "-" else a.source,
        defines=dict(a.defines),
        lines=not a.no_lines,
        warnings=warnings,
        max_errors=a.error_limit,
    )
    show_warnings(warnings)
    blob = prog.to_bytes()
    summary = {"siws": prog.siws, "ops": prog.ops, "bytes": len(blob)}
    write_output(out, blob, f"{prog.siws} SIWs, {prog.ops} ops, {len(blob)} bytes")
    if STATE.verbose:
        note(f"assembled in {elapsed():.1f} ms")
    if a.json:
        emit_json({"ok": True, "output": out, **summary, "warnings": [w.as_dict() for w in warnings]})
    return 0


def cmd_disasm(a: argparse.Namespace) -> int:
    from vtpu_cli import api

    check_output(a.output, a.binary)
    if a.binary == "-":
        from vtpu_cli.asm.loader import load_binary

        prog = api.Program(load_binary(Path("-")))
    else:
        prog = api.load(a.binary) if a.binary.endswith(".siw") else _load_siw(a.binary)
    text = prog.disassemble()
    if a.output and a.output != "-":
        write_output(a.output, text.encode(), f"{prog.siws} SIWs")
    else:
        sys.stdout.write(text)
    return 0


def _load_siw(path: str):
    from vtpu_cli import api
    from vtpu_cli.asm.loader import load_binary

    return api.Program(load_binary(Path(path)))


def _phx_defines(text: str, defines: list[tuple[str, str]]) -> str:
    """``-D NAME=VALUE`` for .phx: replace the expression of ``const NAME = ...`` (line numbers kept)."""
    import re

    for name, value in defines:
        rx = re.compile(rf"^(\s*const\s+{re.escape(name)}\s*=\s*)([^#\n]*?)(\s*(#.*)?)$", re.M)
        if not rx.search(text):
            raise VtpuError(f"-D {name}: the program declares no `const {name} = ...`")
        text = rx.sub(lambda m, v=value: m.group(1) + v + m.group(3), text, count=1)
    return text


def _wrong_language(path: str, text: str, want: str) -> None:
    from vtpu_cli.api import detect_language

    lang = "vasm" if path.endswith(".vasm") else "phx" if path.endswith(".phx") else detect_language(text)
    if want == "phx" and lang == "vasm":
        raise VtpuError(
            f"{path} is svISA assembly, not the .phx language",
            hint=f"assemble it with `vtpu asm {path}` (or run it: `vtpu run {path}`)",
        )


def cmd_cc(a: argparse.Namespace) -> int:
    from vtpu_cli import api

    elapsed = _timer()
    ext = {"siw": ".siw", "vasm": ".vasm", "ir": ".ir"}[a.emit]
    out = a.output or ("-" if a.source == "-" else str(Path(a.source).with_suffix(ext)))
    if out == "-" and a.json:
        raise VtpuError("--json and -o - both want stdout", hint="write the output to a file with -o FILE")
    if out == "-" and a.emit == "siw" and sys.stdout.isatty():
        raise VtpuError("refusing to write a binary to a terminal", hint="give -o FILE (or redirect stdout)")
    text = api.read_text(a.source)
    name = "<stdin>" if a.source == "-" else a.source
    _wrong_language(name, text, "phx")
    check_output(out, a.source)
    text = _phx_defines(text, a.defines)
    tune = a.opt >= 3 and os.environ.get("VTPU_PHX_TUNE", "1") != "0"
    report = None
    if a.emit == "ir":
        from vtpu_cli.compiler.driver import compile_ir

        data = compile_ir(text, name, a.opt, a.sentrons, tune).encode()
        what = f"{data.count(NEWLINE)} IR lines"
        if a.report or a.json:
            report = api.compile(text, opt=a.opt, sentrons=a.sentrons, filename=name, tune=tune).report
    else:
        prog = api.compile(text, opt=a.opt, sentrons=a.sentrons, filename=name, tune=tune)
        report = prog.report
        data = prog.to_bytes() if a.emit == "siw" else prog.disassemble().encode()
        what = f"{prog.siws} SIWs, {prog.ops} ops, {len(data)} bytes"
    write_output(out, data, what)
    if STATE.verbose:
        note(f"compiled in {elapsed():.1f} ms")
    if a.json:
        doc = {"ok": True, "output": out, "emit": a.emit, "bytes": len(data)}
        if report is not None:
            doc.update(siws=report.get("total", {}).get("siws"), report=report)
        emit_json(doc)
    elif a.report and report is not None:
        from vtpu_cli.compiler.driver import print_report

        print_report(report, False)
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    from vtpu_cli.cli.runner import RunOptions, run_command

    if a.out_all and not a.out:
        raise VtpuError("--out-all needs --out FILE", hint="e.g. --out all.safetensors --out-all")
    for flag, path in (("--out", a.out), ("--trace", a.trace)):
        check_output(path, a.program, flag)
    if a.ppt_sets & (a.ppt_sets - 1):
        raise VtpuError(f"--ppt-sets must be a power of two, got {a.ppt_sets}")
    if a.mem_limit is not None:
        from vtpu_cli.binary.limits import MEM_LIMIT_ENV, parse_size

        try:
            # one budget for everything the run loads: the program's data, --mem files, SALLOC
            os.environ[MEM_LIMIT_ENV] = str(parse_size(a.mem_limit))
        except ValueError as e:
            raise VtpuError(f"--mem-limit: {e}") from None
    elapsed = _timer()
    path, cleanup = _runnable(a)
    opts = RunOptions(
        engine=a.engine,
        sentrons=a.sentrons,
        topology=a.topology,
        max_steps=a.max_steps,
        stats=a.stats,
        dump=a.dump,
        trace=Path(a.trace) if a.trace else None,
        json_out=a.json,
        mem_paths=[Path(m) for m in a.mem],
        out=Path(a.out) if a.out else None,
        out_all=a.out_all,
        ppt_sets=a.ppt_sets,
        ppt_ways=a.ppt_ways,
        hot_bytes=a.hot_bytes,
        no_cache=a.no_cache,
        cache_dir=Path(a.cache_dir) if a.cache_dir else None,
        quiet=STATE.quiet,
        checkpoint=Path(a.checkpoint) if a.checkpoint else None,
        checkpoint_every=a.checkpoint_every,
        resume=Path(a.resume) if a.resume else None,
    )
    try:
        code = run_command(path, opts)
    finally:
        if cleanup:
            os.unlink(path)
    for what, p in (("output scrolls", a.out), ("trace", a.trace)):
        if p and Path(p).exists():
            note(f"wrote {p}: {what}")
    if STATE.verbose:
        note(f"vtpu run: {elapsed():.1f} ms from start to finish (exit {code})")
    return code


def _runnable(a: argparse.Namespace) -> tuple[Path, bool]:
    """The file the runner loads: the program itself, or a temporary .siw when it must be built first
    (a .phx source, -D defines, assembly from stdin, or warnings to report)."""
    from vtpu_cli import api

    src = a.program
    is_phx = src.endswith(".phx")
    if src != "-" and not is_phx and not a.defines:
        try:
            with open(src, "rb") as f:
                head = f.read(8)
        except OSError:
            return Path(src), False  # the runner reports the missing/unreadable file
        from vtpu_cli.binary.siwfile import MAGIC

        if head == MAGIC or src.endswith(".siw"):
            return Path(src), False
        text = api.read_text(src)
        if api.detect_language(text) != "phx":
            if STATE.werror or STATE.verbose:
                warnings: list[Diagnostic] = []
                api.assemble(text, filename=src, warnings=warnings, max_errors=a.error_limit)
                show_warnings(warnings)
            return Path(src), False
        is_phx = True
    text = api.read_text(src)
    name = "<stdin>" if src == "-" else src
    if is_phx or api.detect_language(text) == "phx":
        prog = api.compile(_phx_defines(text, a.defines), opt=2, sentrons=a.sentrons, filename=name)
    else:
        warnings = []
        prog = api.assemble(
            text, filename=name, defines=dict(a.defines), warnings=warnings, max_errors=a.error_limit
        )
        show_warnings(warnings)
    import tempfile

    fd, tmp = tempfile.mkstemp(suffix=".siw", prefix="vtpu-run-")
    with os.fdopen(fd, "wb") as f:
        f.write(prog.to_bytes())
    return Path(tmp), True


def cmd_bench(a: argparse.Namespace) -> int:
    # the numpy/OpenBLAS baseline is single-threaded, like one sentron (set before numpy loads)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    json_path = Path(a.json_path) if a.json_path else None
    if a.lm:
        from vtpu_cli.models.bench_lm import bench_lm_command

        return bench_lm_command(
            a.lm, a.lm_prompt, a.lm_tokens, a.lm_ctx, a.engine, a.repeats or 3, json_path, a.sentrons or 1
        )
    from vtpu_cli.bench.suite import bench_command

    return bench_command(
        a.names, a.gate, a.quick, a.engine, a.sentrons, json_path, a.list, a.repeats, a.price
    )


def cmd_isa(a: argparse.Namespace) -> int:
    if a.markdown:
        from vtpu_cli.isa.doc import isa_markdown

        sys.stdout.write(isa_markdown())
        return 0
    if a.op:
        return _isa_one(a.op)
    from vtpu_cli.isa.doc import isa_table

    _console(stderr=False).print(isa_table())
    return 0


def _isa_one(name: str) -> int:
    """`vtpu isa DFMA`: syntax, types, latency and semantics of one op."""
    import difflib

    from vtpu_cli.isa.doc import syntax
    from vtpu_cli.isa.table import BY_NAME

    op = BY_NAME.get(name.upper().split(".")[0])
    if op is None:
        close = difflib.get_close_matches(name.upper(), BY_NAME, n=3)
        raise VtpuError(
            f"no op named {name}",
            hint=f"did you mean {', '.join(close)}?" if close else "`vtpu isa` lists every op",
        )
    lines = [
        f"{op.name}  ({op.pipe} pipe, opcode 0x{op.code:02x}, latency {op.latency})",
        f"  syntax:    {syntax(op)}",
    ]
    if op.types:
        lines.append(f"  types:     {', '.join(op.types)}")
    if op.mods:
        lines.append(f"  modifiers: {', '.join(op.mods)} (default {op.mods[0]})")
    if op.summary:
        lines.append(f"  summary:   {op.summary}")
    if op.semantics:
        lines.append(f"  semantics: {op.semantics}")
    props = [
        p for p in ("branch", "blocking", "writes_flags", "reads_flags", "vector_only") if getattr(op, p)
    ]
    if props:
        lines.append(f"  properties: {', '.join(p.replace('_', ' ') for p in props)}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _spmd_quiet() -> None:
    """Under mpiexec every rank runs the same model command (SPMD, docs/cluster.md) and computes the same
    tokens; only rank 0 prints them. The other ranks' output goes nowhere; their exit codes still count
    (mpiexec reports the first non-zero one)."""
    from vtpu_cli.engines.base import world_size_from_env

    if world_size_from_env() > 1:
        from vtpu_cli.cluster.env import rank_from_env

        if rank_from_env() != 0:
            sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the process's lifetime


def cmd_generate(a: argparse.Namespace) -> int:
    from vtpu_cli.models.generate import generate_command

    _spmd_quiet()
    return generate_command(
        Path(a.model),
        prompt=a.prompt,
        prompt_file=Path(a.prompt_file) if a.prompt_file else None,
        n=a.n,
        temp=a.temp,
        top_k=a.top_k,
        top_p=a.top_p,
        seed=a.seed,
        ctx=a.ctx,
        sentrons=a.sentrons,
        engine=a.engine,
        json_out=a.json,
    )


def cmd_perplexity(a: argparse.Namespace) -> int:
    from vtpu_cli.models.generate import perplexity_command

    _spmd_quiet()
    return perplexity_command(
        Path(a.model),
        Path(a.text_file),
        ctx=a.ctx,
        engine=a.engine,
        json_out=a.json,
        scoring=a.scoring,
        sentrons=a.sentrons,
    )


def cmd_serve(a: argparse.Namespace) -> int:
    from vtpu_cli.serve import serve_command

    return serve_command(Path(a.model), a.host, a.port, a.sentrons, a.max_concurrent, a.ctx, engine=a.engine)


def cmd_topo(a: argparse.Namespace) -> int:
    from vtpu_cli.cli.topo import run as topo_run

    return topo_run(list(a.args))


HANDLERS = {
    "asm": cmd_asm,
    "disasm": cmd_disasm,
    "run": cmd_run,
    "cc": cmd_cc,
    "bench": cmd_bench,
    "isa": cmd_isa,
    "generate": cmd_generate,
    "perplexity": cmd_perplexity,
    "serve": cmd_serve,
    "topo": cmd_topo,
}


# ----------------------------------------------------------------------------- completion
def complete(words: list[str], cword: int) -> list[str]:
    """Candidates for word ``cword`` of ``words`` (words[0] is the program): commands, options, choices;
    an empty list lets the shell complete file names."""
    parser = build_parser()
    cur = words[cword] if cword < len(words) else ""
    sub = next((w for w in words[1:cword] if w in HANDLERS), None)
    target = parser
    if sub is not None:
        target = parser._subparsers._group_actions[0].choices[sub]  # type: ignore[union-attr]
    prev = words[cword - 1] if cword >= 1 else ""
    for act in target._actions:
        if prev in act.option_strings and act.choices and act.nargs != 0:
            return [c for c in act.choices if c.startswith(cur)]
    if cur.startswith("-"):
        opts = [o for act in target._actions for o in act.option_strings if act.help != argparse.SUPPRESS]
        return sorted(o for o in set(opts) if o.startswith(cur))
    if sub is None:
        return [c for c in COMMANDS if c.startswith(cur)]
    if sub == "isa":
        from vtpu_cli.isa.table import BY_NAME

        return sorted(n for n in BY_NAME if n.startswith(cur.upper()))
    return []


def completion_script(shell: str) -> str:
    if shell == "fish":
        return (
            "function __vtpu_complete\n"
            "    set -l toks (commandline -opc) (commandline -ct)\n"
            "    vtpu __complete (math (count $toks) - 1) $toks 2>/dev/null\n"
            "end\n"
            "complete -c vtpu -a '(__vtpu_complete)'\n"
        )
    script = (
        "_vtpu_complete() {\n"
        "    local IFS=$'\\n'\n"
        '    COMPREPLY=( $(vtpu __complete "$COMP_CWORD" "${COMP_WORDS[@]}" 2>/dev/null) )\n'
        "}\n"
        "complete -o default -F _vtpu_complete vtpu\n"
    )
    if shell == "zsh":
        script = "autoload -U +X bashcompinit && bashcompinit\n" + script
    return script


def install_completion(shell: str, show: bool) -> int:
    if shell == "auto":
        shell = Path(os.environ.get("SHELL", "bash")).name
        if shell not in SHELLS:
            raise VtpuError(
                f"cannot install completion for shell {shell!r}", hint="name one: bash, zsh or fish"
            )
    script = completion_script(shell)
    if show:
        sys.stdout.write(script)
        return 0
    home = Path.home()
    if shell == "bash":
        data = Path(os.environ.get("XDG_DATA_HOME", home / ".local/share"))
        target = data / "bash-completion/completions/vtpu"
    elif shell == "fish":
        target = Path(os.environ.get("XDG_CONFIG_HOME", home / ".config")) / "fish/completions/vtpu.fish"
    else:
        target = home / ".zsh/vtpu-completion.zsh"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(script)
        if shell == "zsh":
            rc = home / ".zshrc"
            line = f"source {target}\n"
            if not rc.exists() or line not in rc.read_text():
                with rc.open("a") as f:
                    f.write(line)
    except OSError as e:
        raise VtpuError(f"cannot install completion: {e}") from None
    note(f"installed {shell} completion in {target}; it applies to new shells")
    return 0


# ----------------------------------------------------------------------------- entry points
def _usage_error(e: UsageError) -> int:
    """Bad usage: one line naming the command, a pointer to its help, exit 2 (JSON under --json)."""
    message = e.message
    if STATE.json_doc:
        emit_json(
            {"ok": False, "status": "error", "exit_code": 2, "error": f"{e.prog}: {message}", "hint": None}
        )
        return int(Exit.USAGE)
    print(f"{e.prog}: error: {message}", file=sys.stderr)
    print(f"try '{e.prog} -h' for help", file=sys.stderr)
    return int(Exit.USAGE)


def _unknown_options(extra: list[str], prog: str, parser: argparse.ArgumentParser) -> UsageError:
    """argparse's leftovers as one message; a close option name is suggested only when one is close."""
    import difflib

    opts = [o for act in parser._actions for o in act.option_strings]
    word = extra[0]
    msg = f"unknown option {word}" if word.startswith("-") else f"unexpected argument {word!r}"
    close = (
        difflib.get_close_matches(word.split("=")[0], opts, n=1, cutoff=0.75) if word.startswith("-") else []
    )
    if close:
        msg += f" (did you mean {close[0]}?)"
    return UsageError(msg, prog)


def _configure(a: argparse.Namespace) -> None:
    STATE.quiet = bool(getattr(a, "quiet", False))
    STATE.verbose = bool(getattr(a, "verbose", False)) and not STATE.quiet
    color = getattr(a, "color", "auto")
    if color == "never":
        os.environ["NO_COLOR"] = "1"
        os.environ.pop("FORCE_COLOR", None)
    elif color == "always":
        os.environ.pop("NO_COLOR", None)
        os.environ["FORCE_COLOR"] = "1"
    w = getattr(a, "warnings", "default")
    STATE.werror, STATE.wignore = w == "error", w == "ignore"
    STATE.error_limit = getattr(a, "error_limit", 20)


def cli(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit code (never raises for user errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["__complete"]:
        try:
            cword = int(argv[1])
        except (IndexError, ValueError):
            return 0
        sys.stdout.write("\n".join(complete(argv[2:], cword)) + "\n")
        return 0
    parser = build_parser()
    first = next((w for w in argv if not w.startswith("-")), None)
    STATE.json_doc = first in ("asm", "run", "cc", "generate", "perplexity") and "--json" in argv
    try:
        if first == "topo":  # everything after `topo` belongs to the topo sub-app
            i = argv.index("topo")
            a, extra = parser.parse_known_args(argv[: i + 1])
            a.args = argv[i + 1 :]
        else:
            a, extra = parser.parse_known_args(argv)
            if extra:
                sub = parser._subparsers._group_actions[0].choices.get(a.command) if a.command else None  # type: ignore[union-attr]
                raise _unknown_options(extra, sub.prog if sub else "vtpu", sub or parser)
    except UsageError as e:
        return _usage_error(e)
    _configure(a)
    if a.version:
        from vtpu_cli import __version__

        print(f"vtpu {__version__} (svISA v2, .siw format 1)")
        return 0
    if a.install_completion or a.show_completion:
        try:
            return install_completion(a.show_completion or a.install_completion, bool(a.show_completion))
        except VtpuError as e:
            return report_error(e)
    if not a.command:
        parser.print_help()
        return int(Exit.USAGE) if argv else 0
    try:
        return HANDLERS[a.command](a)
    except VtpuError as e:
        return report_error(e)
    except RecursionError:
        return report_error(VtpuError("the input nests too deeply to process"))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(Exit.INTERRUPTED)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: the exit code of :func:`cli`; a closed stdout ends quietly (exit 141, like a
    Unix tool killed by SIGPIPE), a failed write to stdout is a clean error (exit 2)."""
    try:
        code = cli(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        code = 141
    except OSError as e:
        if getattr(e, "filename", None) is not None:  # a file error no command turned into a message
            print(f"error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        else:
            _silence_stdout()
            print(f"error: cannot write to standard output: {e.strerror or e}", file=sys.stderr)
        code = int(Exit.USAGE)
    sys.exit(code)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    main()
