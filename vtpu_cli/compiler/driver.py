"""phextcc driver: ``.phx`` text -> Program (+ report), and the ``vtpu cc`` command body.

Pipeline: parse (Lark) -> check + lower to level-1 IR (level-2 ops tiled) -> register allocation with
spilling -> dependency analysis + list scheduling into SIWs -> Program. Optimisation levels:

* ``-O0``: one op per SIW in program order, loops stay loops (the reference schedule);
* ``-O1``: list scheduling, loops stay loops;
* ``-O2``: + full unrolling of small loops (static offsets, exact alias analysis);
* ``-O3``: + software pipelining of the loops that remain, and matmul tile autotuning (``vtpu cc``).
"""

from __future__ import annotations

import json
import time
from itertools import repeat
from pathlib import Path

from vtpu_cli.binary.program import DataScroll, Instr, Output, Program, TensorDecl
from vtpu_cli.compiler import tensors, views
from vtpu_cli.compiler.addrfold import fold_addresses
from vtpu_cli.compiler.colslices import plan_column_views
from vtpu_cli.compiler.concats import plan_concats
from vtpu_cli.compiler.ir import (
    VI,
    CompileError,
    Label,
    _instr,
    dump,
    imm,
    private_coord,  # noqa: F401 - imported from here by tests
)
from vtpu_cli.compiler.lower import RESERVED_LIBRARY, Lowerer, private_shelf_coords
from vtpu_cli.compiler.parser import MAX_DEPTH, parse
from vtpu_cli.compiler.regalloc import SPILL_P, allocate
from vtpu_cli.compiler.schedule import schedule, to_siws
from vtpu_cli.core import coords
from vtpu_cli.core.errors import Diagnostic, DiagnosticError, VtpuError
from vtpu_cli.isa.table import BY_NAME, NOP_NAMES, OPS

EMITS = ("siw", "vasm", "ir")


PROGRESS_DELAY_S = 2.0  # a compile running longer than this shows a progress bar (stderr on a terminal)
# phase -> (start, end) percent of the bar (measured shares of a model-scale compile)
_PHASES = {
    "parse": (0, 10),
    "lower": (10, 35),
    "allocate": (35, 65),
    "schedule": (65, 97),
    "encode": (97, 100),
}


class CompileProgress:
    """A transient rich progress bar on stderr for long compiles: it appears only when a compile has
    run ``delay`` seconds (a timer thread; short compiles print nothing) and only when stderr is a
    terminal. Nested compiles (the tile autotuner compiles candidates) share the outer bar."""

    _active = False

    def __init__(self, filename: str, enabled: bool | None = None, delay: float | None = None):
        import sys
        import threading

        if enabled is None:
            enabled = sys.stderr.isatty()
        self.enabled = enabled and not CompileProgress._active
        self.filename = filename
        self.phase = "parse"
        self.pct = 0.0
        self.bar = None
        self.closed = False
        self.lock = threading.Lock()
        self.timer = None
        if self.enabled:
            CompileProgress._active = True
            self.timer = threading.Timer(PROGRESS_DELAY_S if delay is None else delay, self._show)
            self.timer.daemon = True
            self.timer.start()

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with self.lock:
            if self.closed:
                return
            self.bar = Progress(
                TextColumn("phextcc {task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.task = self.bar.add_task(self._text(), total=100, completed=self.pct)
            self.bar.start()

    def _text(self) -> str:
        return f"{self.filename}: {self.phase}"

    def __call__(self, phase: str, frac: float = 0.0) -> None:
        """Entering ``phase`` (or ``frac`` of the way through it)."""
        if not self.enabled:
            return
        lo, hi = _PHASES[phase]
        self.phase, self.pct = phase, lo + (hi - lo) * min(max(frac, 0.0), 1.0)
        with self.lock:
            if self.bar is not None:
                self.bar.update(self.task, description=self._text(), completed=self.pct)

    def close(self) -> None:
        if not self.enabled:
            return
        with self.lock:
            self.closed = True
            if self.timer is not None:
                self.timer.cancel()
            if self.bar is not None:
                self.bar.stop()
        CompileProgress._active = False


def _front(
    text: str,
    filename: str,
    opt: int,
    sentrons: int,
    tune: bool,
    tile=None,
    force_loops: bool = False,
    progress: CompileProgress | None = None,
) -> Lowerer:
    if sentrons < 1:
        raise VtpuError("--sentrons must be at least 1")
    if opt not in (0, 1, 2, 3):
        raise VtpuError(f"unknown optimisation level -O{opt}", hint="use -O0, -O1, -O2 or -O3")
    tree, diags = parse(text, filename)
    if diags:
        raise DiagnosticError(diagnostics=diags)
    if progress is not None:
        progress("lower")
    shapes: dict = {}
    for _ in range(2):
        lw = _lower(tree, text, filename, opt, sentrons, tune, tile, force_loops, shapes)
        if lw.diags or not lw.concat_shapes_found:
            break
        # a column concat of several rows into a new name copied its parts because its row length was
        # not known when the first part was made: lower again, knowing it (the parts are then made in
        # the result's columns where their ops can write rows apart)
        shapes = dict(lw.concat_shapes_found)
    if not lw.diags:
        from vtpu_cli.compiler.tensors import publish_outputs

        publish_outputs(lw)
    if lw.diags:
        # one diagnostic per (place, message): an error inside an unrolled loop is reported once
        uniq = {(d.line, d.col, d.message): d for d in reversed(lw.diags)}
        raise DiagnosticError(diagnostics=sorted(uniq.values(), key=lambda d: (d.line, d.col)))
    _prologue(lw)
    return lw


def _lower(tree, text, filename, opt, sentrons, tune, tile, force_loops, concat_shapes: dict) -> Lowerer:
    """One lowering of the syntax tree into a fresh Lowerer (``concat_shapes``: see ``_front``)."""
    import sys

    lw = Lowerer(text, filename, opt, sentrons, tune)
    lw.compile_phx = compile_phx
    lw.tensor_lowering = tensors
    lw.view_lowering = views
    lw.forced_tile = tile
    lw.force_loops = force_loops
    lw.concat_plan = plan_concats(tree, sentrons)
    # (a column slice spells out `axis`: a program without the word has none, and skips the tree walk)
    lw.column_views = (
        plan_column_views(tree, sentrons, views.PITCHED, lw.concat_plan) if "axis" in text else None
    )
    lw.concat_shapes = concat_shapes
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20 * MAX_DEPTH))  # the checker recurses once per nesting level
    try:
        lw.run(tree)
    finally:
        sys.setrecursionlimit(limit)
    return lw


SENTRON_GROUP = "phx_sentrons"  # members 0..N-1: the sentron count a program was compiled for


def _prologue(lw: Lowerer) -> None:
    """Multi-sentron programs start with a guard: run with another sentron count, a CBAR on the
    group ``phx_sentrons`` (members 0..N-1) faults, naming the group (a sentron outside it, or a
    member the fleet does not have). Their private scratch scrolls are preloaded zero scrolls, one
    per sentron at its home-relative coordinate (:func:`private_coord`), not SALLOCs: the program
    never changes the scroll table, so the JIT can run it on several threads."""
    pro = []
    b = lw.b
    if lw.sentrons > 1:
        from vtpu_cli.binary.program import Reg

        cnt, flag, ok = b.new("r", "scount"), b.new("r"), b.label("count_ok")
        pro += [
            VI(BY_NAME["DMOV"], None, None, None, [cnt, Reg("s", 1)]),
            VI(BY_NAME["DCMP"], "ne", "i64", None, [flag, cnt, imm(lw.sentrons)]),
            VI(BY_NAME["DBRF"], None, None, None, [ok]),
            VI(BY_NAME["CBAR"], None, None, None, [imm(1)]),
            ok,
        ]
    b.code[0:0] = pro


def compile_ir(
    text: str,
    filename: str = "<input>",
    opt: int = 2,
    sentrons: int = 1,
    tune: bool = False,
    force_loops: bool = False,
) -> str:
    """The level-1 IR (after lowering and address folding, before register allocation) as text."""
    code = _front(text, filename, opt, sentrons, tune, force_loops=force_loops).b.code
    if opt >= 1 and FOLD_ADDRESSES:
        fold_addresses(code)
    return dump(code)


def compile_phx(
    text: str,
    filename: str = "<input>",
    opt: int = 2,
    sentrons: int = 1,
    tune: bool = False,
    tile: tuple[int, int] | None = None,
    force_loops: bool = False,
    progress: bool | None = None,
):
    """Compile ``.phx`` text; returns (Program, report dict). Raises DiagnosticError on user errors.
    ``force_loops`` lowers every tensor op that has a loop form to loops, whatever its size.
    ``progress``: show a progress bar on stderr when the compile takes over ``PROGRESS_DELAY_S``
    (None: only when stderr is a terminal)."""
    import gc

    import numpy  # noqa: F401  (the data and constant scrolls need it: imported once, outside the timing)

    bar = CompileProgress(filename, progress)
    # The compile allocates ~10 objects per IR op and frees them together at the end: the cyclic
    # collector's passes over that growing heap cost 8-35% of the time (1.5x on a 7k-op unrolled
    # matmul), and find nothing to free, so it is paused for the compile.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile(text, filename, opt, sentrons, tune, tile, force_loops, bar)
    finally:
        if was_enabled:
            gc.enable()
        bar.close()


def _compile(text, filename, opt, sentrons, tune, tile, force_loops, bar: CompileProgress):
    t0 = time.perf_counter()
    lw = _front(text, filename, opt, sentrons, tune, tile, force_loops, bar)
    if opt >= 1 and FOLD_ADDRESSES:  # [p + y + c] for DADD x, y, c + [p + x] (IR ops: those left)
        fold_addresses(lw.b.code)
    ir_ops = sum(map(isinstance, lw.b.code, repeat(VI)))
    bar("allocate")
    try:
        alloc = allocate(lw.b.code)
    except CompileError as e:
        hint = "split the computation into smaller statements"
        if e.line:
            src = lw.lines[e.line - 1] if 0 < e.line <= len(lw.lines) else None
            d = Diagnostic(str(e), filename, e.line, 1, src, hint, max(1, len(src or "")))
            raise DiagnosticError(diagnostics=[d]) from None
        raise VtpuError(f"{filename}: {e}", hint=hint) from None
    items = alloc.items
    spill_ids: set[int] = set()
    spill_bytes = 0
    if alloc.spills:  # the allocator's first item is the ("spill-setup", bytes) marker
        spill_bytes = items[0][1]
        items = [(ins, None, 0) for ins in _spill_setup(spill_bytes, sentrons)] + items[1:]
        spill_ids = {
            id(it[0])
            for it in items
            if it.__class__ is tuple and it[1] is not None and it[1].scroll == "$spill"
        }
    bar("schedule")
    sched = schedule(items, reorder=opt >= 1, on_block=lambda f: bar("schedule", f) if bar.enabled else None)
    bar("encode")
    code = _resolve(to_siws(sched.siws), sched.labels, getattr(sched, "branches", None))
    prog = Program(code=code, source_file=filename, lines=list(sched.lines))
    prog.labels = {k.split(":", 1)[1]: v for k, v in sched.labels.items() if k.startswith("@kernel:")}
    if sentrons > 1:
        prog.groups = [(SENTRON_GROUP, tuple(range(sentrons)))]
    _data(lw, prog, spill_bytes)
    elapsed = time.perf_counter() - t0
    report = _report(lw, prog, sched, alloc, spill_ids, ir_ops, elapsed, opt, sentrons)
    return prog, report


FOLD_ADDRESSES = True  # address folding at -O1 and up (addrfold.py; off only to compare against)


def _spill_setup(nbytes: int, sentrons: int = 1) -> list[Instr]:
    """p7 = the spill scroll (home, library 999): SALLOC'd with one sentron, preloaded with several."""
    from vtpu_cli.binary.program import Reg

    p = Reg("p", SPILL_P)
    setup = [
        Instr(BY_NAME["SCOORD"], None, None, None, (p, imm(-1))),
        Instr(BY_NAME["SINDEX"], "set", None, None, (p, p, imm(0), imm(RESERVED_LIBRARY + 9))),
    ]
    if sentrons == 1:
        setup.append(Instr(BY_NAME["SALLOC"], None, None, None, (p, imm(nbytes), None)))
    return setup


# SIW slots that can hold a branch (the op table puts every branch in the D pipe)
_BRANCH_SLOTS = tuple(sorted({"DSC".index(op.pipe) for op in OPS if op.branch}))


def _resolve(code: list, labels: dict[str, int], branches: list[int] | None = None) -> list:
    """Branch targets: Labels -> SIW indexes (in place; only SIWs holding a branch are rebuilt).
    ``branches``: the SIWs that hold a branch (D slot), as the scheduler recorded them; else found."""
    if branches is None:
        branches = [k for p in _BRANCH_SLOTS for k, siw in enumerate(code) if siw[p].op.branch]
    for k in branches:
        siw = code[k]
        for p in _BRANCH_SLOTS:
            ins = siw[p]
            if not ins.op.branch:
                continue
            if any(isinstance(a, Label) for a in ins.args):
                args = tuple(imm(labels[a.name]) if isinstance(a, Label) else a for a in ins.args)
                new = list(siw)
                new[p] = _instr(ins.op, ins.mod, ins.type, ins.type2, args)
                code[k] = siw = tuple(new)
    return code


def _data(lw: Lowerer, prog: Program, spill_bytes: int = 0) -> None:
    data = []
    if lw.sentrons > 1:
        private = [(sc.private, sc.nbytes) for sc in lw.b.scrolls.values() if sc.private is not None]
        if spill_bytes:
            private.append(((RESERVED_LIBRARY + 9, 1), spill_bytes))
        shelf_coords: dict[int, tuple[list[int], int]] = {}  # library -> private_shelf_coords
        for (lib, shelf), nbytes in private:
            got = shelf_coords.get(lib)
            if got is None:
                got = shelf_coords[lib] = private_shelf_coords(lib, lw.sentrons)
            first, step = got  # private_coord(s, lib, shelf) without packing per scroll and sentron
            n = max(nbytes, 1)
            for s in range(lw.sentrons):
                data.append(DataScroll(first[s] + (shelf - 1) * step, "u8", (n,), b"", zero=True, nbytes=n))
    for sc in lw.b.scrolls.values():
        if sc.private is not None or sc.coord is None or sc.alias is not None:
            continue
        shape = sc.shape if sc.role != "scratch" else (sc.nbytes,)
        dtype = sc.dtype if sc.role != "scratch" else "u8"
        if dtype == "t2":
            shape = (sc.nbytes * 4,)  # stored in phextcc's tile layout; see docs/phx.md
        for layer in range(sc.layers):
            if sc.data is not None:
                data.append(DataScroll(sc.coord + layer, dtype, shape, sc.data))
            else:
                data.append(DataScroll(sc.coord + layer, dtype, shape, b"", zero=True, nbytes=sc.nbytes))
            if layer:
                prog.coord_names[f"{sc.name}_{layer}"] = sc.coord + layer
    prog.data = sorted(data, key=lambda d: d.coord)
    prog.sentrons = lw.sentrons
    for t in lw.tensors.values():
        if t.role in ("input", "weight", "output"):
            sc = lw.b.scrolls[t.name]
            prog.coord_names[t.name] = sc.coord
            prog.tensors.append(TensorDecl(t.name, t.role, sc.coord, t.dtype, tuple(t.shape), sc.layers))
        if t.role == "output":
            prog.outputs.append(Output("scroll", coord=lw.b.scrolls[t.name].coord, dtype=t.dtype))
        if t.role == "state":  # named, and dumped like an output (it is written in place)
            prog.coord_names[t.name] = lw.b.scrolls[t.name].coord
            prog.outputs.append(Output("scroll", coord=lw.b.scrolls[t.name].coord, dtype=t.dtype))


def _report(lw, prog, sched, alloc, spill_ids, ir_ops, elapsed, opt, sentrons) -> dict:
    """Per-kernel and total statistics: per-SIW op counts (the scheduler's) and spill counts (a list
    comprehension over the SIWs, only when something spilled), summed over each kernel's contiguous
    SIW range."""
    code = prog.code
    bounds = []
    for name, stats, _ in lw.kernels:
        if name == "main":
            continue
        s = sched.labels.get(f"@kernel:{name}", 0)
        e = sched.labels.get(f"@end:{name}", len(code))
        bounds.append((name, s, e, stats))
    nk = len(bounds) + 1
    n = len(code)
    # non-NOP ops per SIW: the scheduler's count, else counted (every NOP slot holds one of the three
    # table NOP ops, ``to_siws``)
    per_siw = getattr(sched, "ops", None)
    if per_siw is None or len(per_siw) != n:
        dn, sn, cn = (BY_NAME[x] for x in NOP_NAMES)
        per_siw = [3 - (d.op is dn) - (s.op is sn) - (c.op is cn) for d, s, c in code]
    spill_of = [0] * n
    if spill_ids:
        spill_of = [(id(d) in spill_ids) + (id(s) in spill_ids) + (id(c) in spill_ids) for d, s, c in code]
    siws, ops, spills = [0] * nk, [0] * nk, [0] * nk
    pipes = [[0, 0, 0] for _ in range(nk)]  # non-NOP ops per pipe (D, S, C)
    owned = 0
    k_ops = k_spills = 0
    for k, (_, s, e, _) in enumerate(bounds, 1):
        e = min(e, n)
        if e <= s:
            continue
        siws[k] = e - s
        ops[k] = sum(per_siw[s:e])
        spills[k] = sum(spill_of[s:e])
        pipes[k] = _pipe_ops(code[s:e])
        owned += e - s
        k_ops += ops[k]
        k_spills += spills[k]
    siws[0] = n - owned
    ops[0] = sum(per_siw) - k_ops
    spills[0] = sum(spill_of) - k_spills
    # main: the SIWs outside every kernel (each SIW is read once)
    cut = sorted((max(0, min(s, n)), max(0, min(e, n))) for _, s, e, _ in bounds if min(e, n) > s)
    pos = 0
    for s, e in [*cut, (n, n)]:
        if s > pos:
            pipes[0] = [a + b for a, b in zip(pipes[0], _pipe_ops(code[pos:s]), strict=True)]
        pos = max(pos, e)
    every = [sum(p[j] for p in pipes) for j in range(3)]
    kstats = [b[3] for b in bounds]
    mstats = (
        lw.b.loops - sum(k[0] for k in kstats),
        lw.b.pipelined - sum(k[1] for k in kstats),
        lw.b.unrolled - sum(k[2] for k in kstats),
    )
    names = ["main", *(b[0] for b in bounds)]
    funcs = [
        _fstats(names[k], siws[k], ops[k], spills[k], mstats if k == 0 else kstats[k - 1], pipes[k])
        for k in range(nk)
    ]
    nops = sum(ops)
    total = {
        "siws": len(code),
        "ops": nops,
        "density": round(nops / len(code), 3) if code else 0.0,
        "pipe_ops": every,
        "density_bound": _bound(nops, every),
        "spills": alloc.spills,
        "spill_ops": alloc.spill_ops,
        "pipelined_loops": lw.b.pipelined,
        "loops": lw.b.loops,
        "critical_path": sched.critical_path,
        "ir_ops": ir_ops,
        "compile_s": round(elapsed, 6),
        "ops_per_s": round(ir_ops / elapsed) if elapsed > 0 else 0,
    }
    return {
        "file": lw.filename,
        "opt": opt,
        "sentrons": sentrons,
        "functions": funcs,
        "total": total,
        "tiles": lw.tile_choices,
        # where views and in-place writes still copy (per source line; bytes per execution)
        "copies": [
            {"line": ln, "what": what, "bytes": nb} for (ln, what), nb in sorted(lw.view_copies.items())
        ],
    }


_NOPS = tuple(BY_NAME[x] for x in NOP_NAMES)  # the NOP op of each pipe (D, S, C): an empty slot


def _pipe_ops(code) -> list[int]:
    """Non-NOP ops of each pipe (D, S, C) in a run of SIWs (each slot of a SIW belongs to one pipe)."""
    return [sum(1 for siw in code if siw[j].op is not nop) for j, nop in enumerate(_NOPS)]


def _bound(ops: int, pipes: list[int]) -> float:
    """The density no schedule of these ops can exceed: one op per pipe per SIW, so at least as many
    SIWs as the busiest pipe has ops (dependencies and branches aside)."""
    busiest = max(pipes)
    return round(ops / busiest, 3) if busiest else 0.0


def _fstats(name, siws, ops, spills, stats, pipes) -> dict:
    return {
        "name": name,
        "siws": siws,
        "ops": ops,
        "density": round(ops / siws, 3) if siws else 0.0,
        "pipe_ops": pipes,
        "density_bound": _bound(ops, pipes),
        "spill_ops": spills,
        "loops": stats[0],
        "pipelined_loops": stats[1],
        "unrolled_loops": stats[2],
    }


# ---------------------------------------------------------------------- binding inputs
def bind_inputs(program: Program, arrays: dict) -> Program:
    """Put numpy arrays into the program's input/weight scrolls (by tensor name); t2 weights are
    given as -1/0/1 matrices and packed into phextcc's tile layout."""
    import numpy as np

    from vtpu_cli.compiler.tensors import pack_ternary_tiles

    by_coord = {d.coord: i for i, d in enumerate(program.data)}
    stacked = {}
    for name, arr in arrays.items():
        if f"{name}_1" in program.coord_names and name in program.coord_names:
            # a tensor declared with `layers L`: one array per layer, or a stack [L, ...]
            for layer, a in enumerate(arr):
                stacked[name if layer == 0 else f"{name}_{layer}"] = a
            continue
        stacked[name] = arr
    for name, arr in stacked.items():
        c = program.coord_names.get(name)
        if c is None or c not in by_coord:
            raise VtpuError(f"no input tensor named `{name}`")
        ds = program.data[by_coord[c]]
        if ds.dtype == "t2":
            raw = pack_ternary_tiles(arr)
        else:
            np_t = {"f32": "<f4", "i32": "<i4", "i8": "i1"}[ds.dtype]
            a = np.asarray(arr, dtype=np_t)
            if a.shape != tuple(ds.shape):
                raise VtpuError(f"`{name}` has shape {list(ds.shape)}, got {list(a.shape)}")
            raw = a.tobytes()
        if len(raw) != ds.size:
            raise VtpuError(f"`{name}`: {len(raw)} bytes for a {ds.size}-byte scroll")
        program.data[by_coord[c]] = DataScroll(ds.coord, ds.dtype, ds.shape, raw)
    return program


def read_output(program: Program, result, name: str):
    """An output tensor of a finished run as a numpy array."""
    import numpy as np

    c = program.coord_names[name]
    ds = next(d for d in program.data if d.coord == c)
    np_t = {"f32": "<f4", "i32": "<i4", "i8": "i1"}[ds.dtype]
    buf = result.memory.table[c].buf
    return np.frombuffer(buf.tobytes(), np_t).reshape(ds.shape).copy()


# ---------------------------------------------------------------------- CLI body
def cc_command(
    source: Path, output: Path | None, opt: int, emit: str, sentrons: int, report: bool, json_out: bool
) -> int:
    """``vtpu cc``: compile a .phx file to .siw / .vasm / IR text; optional per-function report."""
    import os

    from vtpu_cli.asm.disassembler import disassemble
    from vtpu_cli.binary.siwfile import encode
    from vtpu_cli.core.fileio import write_atomic

    source = Path(source)
    if emit not in EMITS:
        raise VtpuError(f"unknown --emit {emit!r}", hint="use siw, vasm or ir")
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VtpuError(f"no such file: {source}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise VtpuError(f"cannot read {source}: {e}") from None
    tune = opt >= 3 and os.environ.get("VTPU_PHX_TUNE", "1") != "0"
    name = str(source)
    if emit == "ir":
        text_out = compile_ir(text, name, opt, sentrons, tune)
        rep = None
        if report:
            _, rep = compile_phx(text, name, opt, sentrons, tune)
    else:
        prog, rep = compile_phx(text, name, opt, sentrons, tune)
        text_out = disassemble(prog) if emit == "vasm" else None
        if emit == "siw":
            out = output or source.with_suffix(".siw")
            write_atomic(str(out), encode(prog))
    if text_out is not None:
        if output is None:
            print(text_out, end="")
        else:
            from vtpu_cli.core.fileio import write_atomic as _wa

            _wa(str(output), text_out.encode())
    if report and rep is not None:
        print_report(rep, json_out)
    return 0


def print_report(rep: dict, json_out: bool = False) -> None:
    if json_out:
        print(json.dumps(rep, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    tab = Table(title=f"phextcc -O{rep['opt']} {rep['file']} (sentrons {rep['sentrons']})")
    for col in ("function", "SIWs", "ops", "ops/SIW", "bound", "spills", "loops", "piped", "unrolled"):
        tab.add_column(col, justify="right" if col != "function" else "left")
    for f in rep["functions"]:
        tab.add_row(
            f["name"],
            str(f["siws"]),
            str(f["ops"]),
            f"{f['density']:.2f}",
            f"{f['density_bound']:.2f}",
            str(f["spill_ops"]),
            str(f["loops"]),
            str(f["pipelined_loops"]),
            str(f["unrolled_loops"]),
        )
    t = rep["total"]
    tab.add_row(
        "[bold]total[/bold]",
        str(t["siws"]),
        str(t["ops"]),
        f"{t['density']:.2f}",
        f"{t['density_bound']:.2f}",
        str(t["spill_ops"]),
        str(t["loops"]),
        str(t["pipelined_loops"]),
        "",
    )
    con = Console()
    con.print(tab)
    con.print(
        f"critical path {t['critical_path']} latency units; {t['spills']} spilled registers; "
        f"{t['ir_ops']} IR ops compiled in {t['compile_s'] * 1e3:.1f} ms ({t['ops_per_s']:,} ops/s)"
    )
    for c in rep.get("copies", []):
        con.print(
            f"{rep['file']}:{c['line']}: note: {c['what']} ({c['bytes']:,} bytes)",
            highlight=False,
            soft_wrap=True,
        )


def diagnostics_for(text: str, filename: str = "<input>", sentrons: int = 1) -> list[Diagnostic]:
    """All diagnostics of a file (empty when it compiles)."""
    try:
        compile_phx(text, filename, 0, sentrons)
    except DiagnosticError as e:
        return e.diagnostics
    return []


__all__ = [
    "compile_phx",
    "compile_ir",
    "cc_command",
    "bind_inputs",
    "read_output",
    "print_report",
    "diagnostics_for",
    "coords",
]
