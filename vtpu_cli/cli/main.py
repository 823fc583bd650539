"""The ``vtpu`` command line (Typer). Heavy modules are imported inside commands to keep start-up fast.

Exit codes (one table for every command; see README "Exit codes"): 0 success, 1 the program faulted /
deadlocked / hit --max-steps or a gate failed, 2 bad usage or bad input, 3 not measurable / missing
capability, 130 interrupted.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vtpu_cli.core.errors import DiagnosticError, Exit, VtpuError

app = typer.Typer(
    name="vtpu",
    help="Toolchain and runtime for the vtpu virtual tensor processor (svISA v1).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Engine(StrEnum):
    interp = "interp"
    jit = "jit"


def _version(value: bool) -> None:
    if value:
        from vtpu_cli import __version__

        typer.echo(f"vtpu {__version__} (svISA v1, .siw format 1)")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """vtpu: assemble, run and measure programs for a 3-pipe virtual tensor processor."""


def report_error(e: VtpuError) -> int:
    """Render a user-facing error (diagnostics with carets, or one message with a hint); return its code."""
    from rich.markup import escape

    from vtpu_cli.core.errors import render_diagnostics

    if isinstance(e, DiagnosticError):
        render_diagnostics(e.diagnostics)
    else:
        con = _console(stderr=True)
        con.print(f"[bold red]error:[/bold red] {escape(e.message)}")
        if e.hint:
            con.print(f"  [cyan]= hint:[/cyan] {escape(e.hint)}")
    return int(e.exit_code)


def guard(fn):
    """Wrap a command so that VtpuError and Ctrl-C become clean messages and exit codes."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VtpuError as e:
            raise typer.Exit(report_error(e)) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(int(Exit.INTERRUPTED)) from None

    return wrapper


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------- asm / disasm
@app.command()
@guard
def asm(
    source: Annotated[Path, typer.Argument(help="svISA assembly (.vasm).")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Output .siw (default: SOURCE with .siw).")
    ] = None,
    no_lines: Annotated[
        bool, typer.Option("--no-lines", help="Omit the source-line map from the binary.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary (or the diagnostics) to stdout.")
    ] = False,
) -> None:
    """Assemble svISA text into a .siw binary."""
    import json

    from vtpu_cli.asm.assembler import assemble
    from vtpu_cli.asm.loader import read_source
    from vtpu_cli.binary import siwfile
    from vtpu_cli.core.fileio import write_atomic

    text = read_source(source)
    out = output or source.with_suffix(".siw")
    try:
        program = assemble(text, str(source), debug_lines=not no_lines)
    except DiagnosticError as e:
        if json_out:
            typer.echo(
                json.dumps({"ok": False, "diagnostics": [d.as_dict() for d in e.diagnostics]}, indent=2)
            )
            raise typer.Exit(int(Exit.USAGE)) from None
        raise
    blob = siwfile.encode(program)
    write_atomic(out, blob)
    summary = {
        "ok": True,
        "output": str(out),
        "siws": len(program.code),
        "ops": program.op_count(),
        "bytes": len(blob),
    }
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _console(stderr=True).print(
            f"wrote {out}: {summary['siws']} SIWs, {summary['ops']} ops, {len(blob)} bytes"
        )


@app.command()
@guard
def disasm(
    binary: Annotated[Path, typer.Argument(help="A .siw binary.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to a file instead of stdout.")
    ] = None,
) -> None:
    """Print assembly that re-assembles to the identical binary."""
    from vtpu_cli.asm.disassembler import disassemble
    from vtpu_cli.binary import siwfile
    from vtpu_cli.core.fileio import write_atomic

    text = disassemble(siwfile.read(str(binary)))
    if output:
        write_atomic(output, text.encode())
    else:
        sys.stdout.write(text)


# ----------------------------------------------------------------------------- run
@app.command()
@guard
def run(
    program_path: Annotated[Path, typer.Argument(metavar="PROGRAM", help="A .siw binary or .vasm source.")],
    engine: Annotated[
        Engine, typer.Option("--engine", help="Execution engine (jit falls back to interp, saying why).")
    ] = Engine.jit,
    sentrons: Annotated[
        int, typer.Option("--sentrons", "-n", min=1, max=4096, help="Number of sentrons (SPMD).")
    ] = 1,
    topology: Annotated[
        str, typer.Option("--topology", help="Sentron topology: ring, torus:4x4, twisted:4x4x8...")
    ] = "ring",
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=0, help="Stop after this many SIWs (all sentrons).")
    ] = None,
    stats: Annotated[bool, typer.Option("--stats", help="Print execution statistics.")] = False,
    dump: Annotated[
        bool, typer.Option("--dump", help="Print the full register state of every sentron.")
    ] = False,
    trace: Annotated[
        Path | None, typer.Option("--trace", help="Write a Chrome/Perfetto trace (JSON).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print results as JSON to stdout.")] = False,
    mem: Annotated[
        list[Path] | None, typer.Option("--mem", help="Preload scrolls: .safetensors or .phext (repeatable).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write output scrolls to a .safetensors file.")
    ] = None,
    out_all: Annotated[
        bool, typer.Option("--out-all", help="With --out: write every scroll, not only outputs.")
    ] = False,
    ppt_sets: Annotated[
        int, typer.Option("--ppt-sets", min=1, help="PPT translation-cache sets (power of two).")
    ] = 64,
    ppt_ways: Annotated[int, typer.Option("--ppt-ways", min=1, help="PPT translation-cache ways.")] = 4,
    hot_bytes: Annotated[
        int, typer.Option("--hot-bytes", min=0, help="Size of the hot-tier arena in bytes.")
    ] = 1 << 20,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="JIT: compile afresh, do not read or write the cache.")
    ] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir", help="JIT: compiled-code cache (default $VTPU_CACHE_DIR or ~/.cache/vtpu)."
        ),
    ] = None,
) -> None:
    """Run a program and print its designated outputs."""
    from vtpu_cli.cli.runner import RunOptions, run_command

    opts = RunOptions(
        engine=engine.value,
        sentrons=sentrons,
        topology=topology,
        max_steps=max_steps,
        stats=stats,
        dump=dump,
        trace=trace,
        json_out=json_out,
        mem_paths=mem or [],
        out=out,
        out_all=out_all,
        ppt_sets=ppt_sets,
        ppt_ways=ppt_ways,
        hot_bytes=hot_bytes,
        no_cache=no_cache,
        cache_dir=cache_dir,
    )
    raise typer.Exit(run_command(program_path, opts))


# ----------------------------------------------------------------------------- cc
@app.command()
@guard
def cc(
    source: Annotated[Path, typer.Argument(help="A .phx program.")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Output file (default: SOURCE with .siw / .vasm / .ir)."),
    ] = None,
    opt: Annotated[
        int, typer.Option("-O", "--opt-level", min=0, max=3, help="Optimisation level 0..3 (-O0 .. -O3).")
    ] = 2,
    emit: Annotated[str, typer.Option("--emit", help="What to write: siw, vasm or ir.")] = "siw",
    sentrons: Annotated[
        int,
        typer.Option("--sentrons", "-n", min=1, max=4096, help="Sentrons for sharded ops and collectives."),
    ] = 1,
    report: Annotated[
        bool,
        typer.Option(
            "--report", help="Per kernel: SIWs, ops per SIW, spills, pipelined loops, critical path."
        ),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the report (or diagnostics) as JSON.")
    ] = False,
) -> None:
    """Compile a .phx program into packed SIWs (phextcc)."""
    from vtpu_cli.compiler.driver import cc_command

    raise typer.Exit(cc_command(source, output, opt, emit, sentrons, report, json_out))


# ----------------------------------------------------------------------------- bench
@app.command()
@guard
def bench(
    names: Annotated[
        list[str] | None, typer.Argument(metavar="[NAME]...", help="Benchmarks to run (default: all).")
    ] = None,
    gate: Annotated[
        str | None, typer.Option("--gate", help="Judge a gate: phase0, phase1 or phase2.")
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes (CI smoke runs).")] = False,
    engine: Annotated[Engine, typer.Option("--engine", help="Execution engine.")] = Engine.jit,
    sentrons: Annotated[
        int | None, typer.Option("--sentrons", "-n", min=1, help="Sentrons for fleet benchmarks.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the results as JSON (schema: docs/bench.md).")
    ] = None,
    list_only: Annotated[bool, typer.Option("--list", help="List the suite and exit.")] = False,
    repeats: Annotated[
        int | None, typer.Option("--repeats", min=1, help="Runs per benchmark (median reported).")
    ] = None,
    price: Annotated[float | None, typer.Option("--price", help="Hardware price in $ for SOPDW.")] = None,
) -> None:
    """Run the vBench suite, verify every result and judge a phase gate."""
    import os

    # the numpy/OpenBLAS baseline is single-threaded, like one sentron (set before numpy loads)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from vtpu_cli.bench.suite import bench_command

    raise typer.Exit(
        bench_command(names or [], gate, quick, engine.value, sentrons, json_out, list_only, repeats, price)
    )


# ----------------------------------------------------------------------------- isa
@app.command()
@guard
def isa(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the generated docs/isa.md.")] = False,
) -> None:
    """Show the svISA op table (the single source of truth)."""
    from vtpu_cli.isa.doc import isa_markdown, isa_table

    if markdown:
        sys.stdout.write(isa_markdown())
    else:
        _console().print(isa_table())


def _mount_subapps() -> None:
    from vtpu_cli.cli.topo import app as topo_app

    for info in topo_app.registered_commands:
        info.callback = guard(info.callback)
    app.add_typer(topo_app, name="topo", help="TPU v4 pod topology simulator (planning at pod scale).")


_mount_subapps()


def main() -> None:
    """Console entry point (Typer handles usage errors with exit code 2; commands are guarded)."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
