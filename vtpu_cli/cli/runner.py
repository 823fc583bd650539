"""`vtpu run`: load inputs, pick the engine, run, and report outputs, stats, traces and faults."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vtpu_cli.binary.program import Program
from vtpu_cli.core import coords
from vtpu_cli.core.errors import Exit, VtpuError
from vtpu_cli.engines.base import STATUS_OK, RunResult, load_memory
from vtpu_cli.engines.interp.interpreter import chrome_trace
from vtpu_cli.machine.memory import MemFault, Memory, scroll_buffer


def load_inputs(mem: Memory, paths: list[Path], program: Program | None = None) -> None:
    """Preload scrolls from .safetensors and .phext documents (text scrolls).

    A safetensors key is a declared tensor's name (``x``; ``wq_1`` for layer 1 of a stack), a
    coordinate name of the program, or a coordinate. Data for a declared tensor -- by whichever key --
    must have its dtype and shape (a stack may also be given whole as ``[L, ...]``; ``t2`` weights as an
    ``I8`` -1/0/1 matrix or as the packed ``U8`` bytes `--out` writes). When any ``--mem`` file is given,
    every declared input and weight needs data from one of them or from the program itself; a missing
    one is an error naming it, not a silent zero (docs/phx.md, "Inputs and outputs by name")."""
    given: set[int] = set()
    for path in paths:
        if path.suffix == ".phext":
            from vtpu_cli.machine.phextdoc import read_phext

            try:
                scrolls = read_phext(str(path))
            except FileNotFoundError:
                raise VtpuError(f"no such file: {path}") from None
            for c, text in scrolls.items():
                raw = scroll_buffer(len(text.encode()), text.encode())
                _add(mem, coords.pack(c), raw, "u8", (raw.size,), path)
                given.add(coords.pack(c))
            continue
        from vtpu_cli.machine.tensorfile import read_safetensors

        for name, (dtype, shape, raw) in read_safetensors(str(path)).items():
            c = _resolve_key(program, name, path)
            decl = _decl_at(program, c)
            if decl is None:
                _add(mem, c, scroll_buffer(len(raw), raw), dtype, shape, path)
                given.add(c)
                continue
            for lc, ldtype, lshape, lraw in _tensor_data(decl, c, name, dtype, shape, raw, path):
                _add(mem, lc, scroll_buffer(len(lraw), lraw), ldtype, lshape, path)
                given.add(lc)
    if paths and program is not None:
        _check_missing(program, given, paths)


def _resolve_key(program: Program | None, name: str, path: Path) -> int:
    """A safetensors key -> packed coordinate: tensor name, then coordinate name, then coordinate."""
    if program is not None:
        t = program.tensor(name)
        if t is not None:
            return t.coord
        c = program.coord_names.get(name)
        if c is not None:
            return c
    try:
        return coords.parse_packed(name)
    except coords.CoordError as e:
        known = sorted(t.name for t in program.tensors) if program is not None else []
        raise VtpuError(
            f"{path}: tensor name {name!r} is not a coordinate, a tensor name or a coordinate name of the "
            f"program: {e.message}",
            hint=(f"the program's tensors: {', '.join(known)}; " if known else "")
            + "or name tensors by phext coordinate, e.g. 1.1.1/1.1.1/1.1.1",
        ) from None


def _decl_at(program: Program | None, c: int):
    """(declared tensor, layer) whose scroll is at ``c``, or None."""
    if program is None:
        return None
    for t in program.tensors:
        if t.coord <= c < t.coord + t.layers:
            return t, c - t.coord
    return None


def _describe(t) -> str:
    stack = f" x {t.layers} layers" if t.layers > 1 else ""
    return f"{t.role} tensor `{t.name}` ({t.dtype}{list(t.shape)}{stack})"


def _t2_nbytes(t) -> int | None:
    """Bytes of one layer of a t2 weight in phextcc's tile layout (docs/phx.md, "Ternary matmul")."""
    if len(t.shape) != 2:
        return None
    k, n = t.shape
    return ((n + 15) // 16) * ((k + 15) // 16) * 64


def _tensor_data(decl, c: int, key: str, dtype: str, shape, raw: bytes, path: Path):
    """Check ``--mem`` data for a declared tensor and split it into scrolls (coord, dtype, shape, bytes).
    The accepted forms are one layer as declared, or the whole stack ``[L, ...]`` under the stack's
    own name; ``t2`` as an I8 -1/0/1 matrix (packed here) or the packed U8 bytes."""
    t, layer = decl
    shape = tuple(shape)
    whole = layer == 0 and t.layers > 1 and key in (t.name, coords.format_packed(t.coord))
    forms: list[str] = []
    if t.dtype == "t2":
        nb = _t2_nbytes(t)
        if nb is None:  # only a crafted program declares this; phextcc's t2 tensors are 2-D
            raise VtpuError(f"{path}: `{key}`: {_describe(t)} is not a 2-D ternary matrix")
        forms = [f"i8{list(t.shape)} (-1/0/1)", f"u8[{nb}] (packed)"]
        if whole:
            forms += [f"i8{[t.layers, *t.shape]}", f"u8[{t.layers}, {nb}]"]
        if nb is not None and dtype == "u8" and shape in ((nb,), (t.layers, nb) if whole else (nb,)):
            n = len(raw) // nb
            return [(c + i, "t2", (nb * 4,), raw[i * nb : (i + 1) * nb]) for i in range(n)]
        if dtype == "i8" and (shape == t.shape or (whole and shape == (t.layers, *t.shape))):
            import numpy as np

            from vtpu_cli.compiler.tensors import pack_ternary_tiles

            mats = np.frombuffer(raw, np.int8).reshape((-1, *t.shape))
            if mats.size and (mats.min() < -1 or mats.max() > 1):
                raise VtpuError(
                    f"{path}: `{key}` for {_describe(t)} holds values outside -1, 0, 1",
                    hint="ternary weights are given as -1/0/1 (i8)",
                )
            return [(c + i, "t2", (nb * 4,), pack_ternary_tiles(m)) for i, m in enumerate(mats)]
    else:
        forms = [f"{t.dtype}{list(t.shape)}"] + ([f"{t.dtype}{[t.layers, *t.shape]}"] if whole else [])
        if dtype == t.dtype and shape == t.shape:
            return [(c, dtype, shape, raw)]
        if dtype == t.dtype and whole and shape == (t.layers, *t.shape):
            n = len(raw) // t.layers
            return [(c + i, dtype, t.shape, raw[i * n : (i + 1) * n]) for i in range(t.layers)]
    which = f" (layer {layer})" if t.layers > 1 and not whole else ""
    raise VtpuError(
        f"{path}: `{key}` for {_describe(t)}{which}: expected {' or '.join(forms)}, found {dtype}{list(shape)}",
        hint="the shapes and dtypes are the ones the .phx source declares (`vtpu disasm` lists them)",
    )


def _check_missing(program: Program, given: set[int], paths: list[Path]) -> None:
    """Every declared input/weight layer has data from a --mem file or from the program (bound with
    ``bind_inputs`` or ``.data``): otherwise it would silently read zeros."""
    filled = {d.coord for d in program.data if not d.zero}
    missing = []
    for t in program.tensors:
        if t.role not in ("input", "weight"):
            continue
        for layer in range(t.layers):
            c = t.coord + layer
            if c not in given and c not in filled:
                missing.append(t.name if layer == 0 else f"{t.name}_{layer}")
    if missing:
        files = ", ".join(str(p) for p in paths)
        raise VtpuError(
            f"no data for {', '.join(f'`{m}`' for m in missing)}: "
            f"declared as input/weight but in none of the --mem files ({files})",
            hint="add them to a --mem file keyed by tensor name (or coordinate); run without --mem to use zeros",
        )


def _add(mem: Memory, c: int, buf: np.ndarray, dtype: str, shape, path: Path) -> None:
    if c in mem.table:
        mem.table.pop(c)
        mem._order.remove((coords.morton_key_packed(c), c))
    try:
        mem.add(c, buf, dtype=dtype, shape=tuple(shape))
    except MemFault as e:  # pragma: no cover - guarded above
        raise VtpuError(f"{path}: {e}") from None


def output_keys(program: Program) -> dict[int, str]:
    """`--out` keys: a declared tensor's scroll is keyed by its name (layer l of a stack ``name_l``);
    every other scroll by its coordinate. The file's ``__metadata__`` maps each name to its coordinate."""
    keys: dict[int, str] = {}
    for t in program.tensors:
        for layer in range(t.layers):
            keys[t.coord + layer] = t.name if layer == 0 else f"{t.name}_{layer}"
    return keys


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return _LazyList(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if isinstance(x, list):
        return [_jsonable(v) for v in x]
    return x


def _dump_json(doc: dict) -> None:
    """Print ``doc`` as indented JSON, streamed: output arrays are encoded and written in batches."""
    parts: list[str] = []
    for part in json.JSONEncoder(indent=2).iterencode(doc):  # the pure-Python encoder: honours _LazyList
        parts.append(part)
        if len(parts) >= 1 << 16:
            sys.stdout.write("".join(parts))
            parts.clear()
    parts.append("\n")
    sys.stdout.write("".join(parts))


class _LazyList(list):
    """A numpy array that ``json.dump`` writes as a (nested) list a chunk at a time.

    ``JSONEncoder.iterencode`` uses the pure-Python encoder, which only asks a list for ``len`` and
    iteration; so a 64 MiB output scroll is written without building 16 M Python floats at once."""

    CHUNK = 1 << 16

    def __init__(self, arr: np.ndarray):
        super().__init__()
        self.arr = arr

    def __len__(self) -> int:
        return len(self.arr)

    def __bool__(self) -> bool:
        return len(self.arr) > 0

    def __iter__(self):
        a = self.arr
        if a.ndim > 1:
            for row in a:
                yield _LazyList(row)
            return
        for i in range(0, len(a), self.CHUNK):
            chunk = a[i : i + self.CHUNK]
            if chunk.dtype.kind != "f" or np.isfinite(chunk).all():
                yield from chunk.tolist()
            else:
                yield from (_jsonable(v) for v in chunk.tolist())


def reg_value(s, reg, dtype: str):
    """A register's value as the .output directive types it (vectors as lists of lanes)."""
    from vtpu_cli.core.numerics import bits_bf16, bits_f32, sext

    if reg.cls == "r":
        v = s.R[reg.idx]
        if dtype == "f32":
            return bits_f32(v)
        if dtype == "bf16":
            return bits_bf16(v)
        return sext(v, 8 * _size(dtype))
    from vtpu_cli.machine.tensorfile import as_array

    return as_array(dtype, (64 // _size(dtype) if dtype != "t2" else 256,), s.V[reg.idx].tobytes()).tolist()


def _size(dtype: str) -> int:
    from vtpu_cli.isa.table import type_size

    return type_size(dtype)


def collect_outputs(program: Program, result: RunResult) -> list[dict]:
    from vtpu_cli.machine.tensorfile import as_array

    outs = []
    for o in program.outputs:
        if o.kind == "reg":
            for s in result.sentrons:
                outs.append(
                    {
                        "kind": "reg",
                        "sentron": s.id,
                        "name": f"{o.reg}",
                        "dtype": o.dtype,
                        "value": reg_value(s, o.reg, o.dtype),
                    }
                )
        else:
            sc = result.memory.table.get(o.coord)
            name = next(
                (k for k, v in program.coord_names.items() if v == o.coord), coords.format_packed(o.coord)
            )
            if sc is None:
                outs.append(
                    {
                        "kind": "scroll",
                        "name": name,
                        "coord": coords.format_packed(o.coord),
                        "dtype": o.dtype,
                        "value": None,
                        "missing": True,
                    }
                )
                continue
            shape = sc.shape if sc.dtype == o.dtype else (-1,)
            raw = memoryview(sc.buf).cast("B")  # a view: a huge scroll is never copied to print it
            if o.dtype != "t2" and len(raw) % _size(o.dtype):
                raw = raw[: len(raw) - len(raw) % _size(o.dtype)]
            arr = as_array(
                o.dtype, tuple(shape) if shape != (-1,) else (len(raw) // max(_size(o.dtype), 1),), raw
            )
            outs.append(
                {
                    "kind": "scroll",
                    "name": name,
                    "coord": coords.format_packed(o.coord),
                    "dtype": o.dtype,
                    "shape": list(arr.shape),
                    "value": arr,
                }
            )
    return outs


def stats_dict(result: RunResult, program: Program) -> dict:
    ops = result.ops
    t = result.memory.stats
    fl = result.fleet.stats
    return {
        "siws": result.siws,
        "ops": ops,
        "ops_by_pipe": result.ops_by_pipe,
        "ops_per_siw": ops / result.siws if result.siws else 0.0,
        "rounds": result.rounds,
        "sentrons": len(result.sentrons),
        "wall_s": result.wall_s,
        "ops_per_s": ops / result.wall_s if result.wall_s > 0 else 0.0,
        "ppt": {
            "translations": t.translations,
            "hits": t.hits,
            "misses": t.misses,
            "hit_rate": t.hit_rate,
            "prefetches": t.prefetches,
            "flushes": t.flushes,
            "flushed_bytes": t.flushed_bytes,
            "evictions": t.evictions,
            "tier_bytes": result.memory.tier_bytes(),
            "sets": result.memory.sets,
            "ways": result.memory.ways,
        },
        "fleet": {
            "messages": fl.messages,
            "bytes": fl.bytes,
            "routed": fl.routed,
            "hops": fl.hops,
            "barriers": fl.barriers,
            "collectives": fl.collectives,
            "wait_rounds": fl.wait_rounds,
        },
    }


def _fmt(v) -> str:
    if isinstance(v, np.ndarray):  # format only what is shown: 64 entries per axis
        if v.ndim == 0:
            return _fmt(v.item())
        head = [_fmt(x) for x in (v[:64] if v.ndim > 1 else v[:64].tolist())]
        more = f", ... ({len(v)} values)" if len(v) > 64 else ""
        return "[" + ", ".join(head) + more + "]"
    if isinstance(v, list):
        if len(v) > 64:
            return "[" + ", ".join(_fmt(x) for x in v[:64]) + f", ... ({len(v)} values)]"
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(v) if not v.is_integer() or abs(v) >= 1e16 else f"{v:.1f}"
    return str(v)


def print_outputs(outs: list[dict]) -> None:
    for o in outs:
        if o["kind"] == "reg":
            print(f"sentron {o['sentron']}: {o['name']}.{o['dtype']} = {_fmt(o['value'])}")
        elif o.get("missing"):
            print(f"{o['name']} ({o['coord']}): <no such scroll>")
        else:
            print(f"{o['name']} ({o['coord']}) {o['dtype']}{o['shape']} = {_fmt(o['value'])}")


def print_stats(st: dict, console) -> None:
    from rich.table import Table

    tab = Table(title="run statistics", show_header=True)
    tab.add_column("metric")
    tab.add_column("value", justify="right")
    p = st["ops_by_pipe"]
    rows = [
        ("SIWs executed", f"{st['siws']:,}"),
        ("non-NOP ops (D / S / C)", f"{st['ops']:,} ({p['D']:,} / {p['S']:,} / {p['C']:,})"),
        ("non-NOP ops per SIW", f"{st['ops_per_siw']:.3f}"),
        ("sentrons / rounds", f"{st['sentrons']} / {st['rounds']:,}"),
        ("wall time", f"{st['wall_s'] * 1e3:.2f} ms"),
        ("ops per second", f"{st['ops_per_s']:,.0f}"),
        ("PPT translations", f"{st['ppt']['translations']:,}"),
        ("PPT hits / misses", f"{st['ppt']['hits']:,} / {st['ppt']['misses']:,}"),
        ("PPT hit rate", f"{st['ppt']['hit_rate'] * 100:.2f}%"),
        ("PPT cache", f"{st['ppt']['sets']} sets x {st['ppt']['ways']} ways"),
        (
            "bytes hot / warm / cold",
            " / ".join(f"{st['ppt']['tier_bytes'][k]:,}" for k in ("hot", "warm", "cold")),
        ),
        ("prefetches / flushes", f"{st['ppt']['prefetches']:,} / {st['ppt']['flushes']:,}"),
        ("messages / bytes", f"{st['fleet']['messages']:,} / {st['fleet']['bytes']:,}"),
        ("routed messages / hops", f"{st['fleet']['routed']:,} / {st['fleet']['hops']:,}"),
        ("barriers / collectives", f"{st['fleet']['barriers']:,} / {st['fleet']['collectives']:,}"),
    ]
    rows.insert(0, ("engine", st.get("engine", "interp")))
    j = st.get("jit")
    if j:
        rows += [
            ("JIT compile time", f"{j['compile_s'] * 1e3:.1f} ms ({j['cache'] or 'compiled'})"),
            ("native cycles", f"{j['cycles']:,} ({j['cycle_source']})"),
            ("non-NOP ops per cycle", f"{j['ops_per_cycle']:.3f}" if j["ops_per_cycle"] else "-"),
        ]
    for what, n in sorted(st["fleet"]["wait_rounds"].items()):
        rows.append((f"rounds waiting in {what}", f"{n:,}"))
    for r in rows:
        tab.add_row(*r)
    console.print(tab)


def state_dict(s) -> dict:
    """One sentron's registers for ``--json --dump`` (vectors and messages as hex, coordinates as text)."""
    return {
        "sentron": s.id,
        "pc": s.pc,
        "halted": s.halted,
        "flags": s.flags,
        "r": list(s.R),
        "p": [coords.format_packed(v) for v in s.P],
        "m": [m.hex() for m in s.M],
        "v": {f"v{i}": s.V[i].tobytes().hex() for i in range(s.V.shape[0]) if s.V[i].any()},
    }


def dump_state(result: RunResult) -> None:
    for s in result.sentrons:
        print(f"== sentron {s.id}  pc={s.pc}  halted={s.halted}  flags={s.flags:#x}")
        print("  " + "  ".join(f"r{i}={v}" for i, v in enumerate(s.R)))
        print("  " + "  ".join(f"p{i}={coords.format_packed(v)}" for i, v in enumerate(s.P)))
        for i, m in enumerate(s.M):
            if m:
                print(f"  m{i}={m.hex()}")
        for i in range(s.V.shape[0]):
            if s.V[i].any():
                print(f"  v{i}={s.V[i].tobytes().hex()}")


@dataclass
class RunOptions:
    engine: str = "jit"
    sentrons: int = 1
    topology: str = "ring"
    max_steps: int | None = None
    stats: bool = False
    dump: bool = False
    trace: Path | None = None
    json_out: bool = False
    mem_paths: list = field(default_factory=list)
    out: Path | None = None
    out_all: bool = False
    ppt_sets: int = 64
    ppt_ways: int = 4
    hot_bytes: int = 1 << 20
    no_cache: bool = False
    cache_dir: Path | None = None
    quiet: bool = False  # -q: no notes on stderr (results and errors only)
    checkpoint: Path | None = None  # --checkpoint DIR (cluster/checkpoint.py)
    checkpoint_every: int | None = None  # --checkpoint-every K barriers
    resume: Path | None = None  # --resume DIR


class _LazyConsole:
    def __init__(self) -> None:
        self._con = None

    def print(self, *args, **kwargs) -> None:
        if self._con is None:
            from rich.console import Console

            self._con = Console(stderr=True, highlight=False, soft_wrap=True)
        self._con.print(*args, **kwargs)


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)


def run_command(path: Path, o: RunOptions) -> int:

    from vtpu_cli.asm.loader import load_program

    err = _LazyConsole()  # rich loads only when something is printed on stderr (start-up)
    # --- cluster hook (owned by vtpu_cli/cluster): sentrons spread over mpiexec's ranks; checkpoint/restart
    from vtpu_cli.cluster.env import cluster_wanted

    clustered = False
    if cluster_wanted(o):  # the MPI machinery is imported only when the run needs it
        from vtpu_cli.cluster import ranks as cluster

        clustered = cluster.configure(o)  # under mpiexec, --sentrons defaults to the rank count
    # --- end cluster hook
    program = load_program(path)
    if o.ppt_sets & (o.ppt_sets - 1):
        raise VtpuError(f"--ppt-sets must be a power of two, got {o.ppt_sets}")
    from vtpu_cli.fleet.topology import parse_topology

    topo = parse_topology(o.topology, o.sentrons)
    if topo.n != o.sentrons:
        raise VtpuError(
            f"topology {o.topology} has {topo.n} nodes but the run has {o.sentrons} sentrons",
            hint=f"use --sentrons {topo.n} or a topology of {o.sentrons} nodes",
        )
    compiled = program.compiled_sentrons()
    if compiled and compiled != o.sentrons:
        raise VtpuError(
            f"{path}: the program was compiled for {compiled} sentron(s) but the run has {o.sentrons}",
            hint=f"run it with -n {compiled}, or recompile with `vtpu cc --sentrons {o.sentrons}`",
        )
    mem = Memory(sets=o.ppt_sets, ways=o.ppt_ways, hot_bytes=o.hot_bytes)
    load_memory(program, mem)
    load_inputs(mem, o.mem_paths, program)
    from vtpu_cli.api import make_engine

    if clustered:  # cluster hook: this rank's engine; only rank 0 returns from run()
        make_engine = cluster.make_engine  # noqa: F811

    engine, fallback = make_engine(
        program,
        o.sentrons,
        o.engine,
        o.max_steps,
        topo,
        mem,
        cache_dir=o.cache_dir,
        no_cache=o.no_cache,
        trace=o.trace is not None,
    )
    if fallback and not o.quiet:
        err.print(f"[yellow]note:[/yellow] running on the interpreter: {escape(fallback)}")
    try:
        result = engine.run()
    except KeyboardInterrupt:
        err.print("interrupted")
        return int(Exit.INTERRUPTED)
    engine_name = result.engine
    try:
        outs = collect_outputs(program, result)
        st = stats_dict(result, program)
        st["engine"] = engine_name
        if engine_name == "jit":
            st["jit"] = {
                "compile_s": result.compile_s,
                "cache": result.cache_hit,
                "cycles": result.cycles,
                "tsc_hz": result.tsc_hz,
                "cycle_source": result.tsc_source,
                "ops_per_cycle": result.ops / result.cycles if result.cycles else None,
            }
        if o.trace is not None:
            from vtpu_cli.core.fileio import write_atomic

            write_atomic(str(o.trace), json.dumps(chrome_trace(result, program, str(path))).encode())
        if o.out is not None:
            from vtpu_cli.machine.tensorfile import write_safetensors

            chosen = (
                result.memory.table.values()
                if o.out_all
                else [
                    result.memory.table[x.coord]
                    for x in program.outputs
                    if x.kind == "scroll" and x.coord in result.memory.table
                ]
            )
            keys = output_keys(program)
            named = {sc.coord: keys[sc.coord] for sc in chosen if sc.coord in keys}
            write_safetensors(
                str(o.out),
                {
                    named.get(sc.coord) or coords.format_packed(sc.coord): (
                        sc.dtype,
                        sc.shape,
                        memoryview(sc.buf).cast("B"),
                    )
                    for sc in chosen
                },
                metadata={k: coords.format_packed(c) for c, k in named.items()},
            )
        if o.json_out:
            doc = {
                "status": result.status,
                "fault": result.fault.as_dict() if result.fault else None,
                "engine": engine_name,
                "fallback": fallback,
                "outputs": [dict(x, value=_jsonable(x["value"])) for x in outs],
            }
            if o.stats:
                doc["stats"] = st
            if o.dump:
                doc["registers"] = [state_dict(s) for s in result.sentrons]
            missing = [x for x in outs if x.get("missing")]
            if missing and result.status == STATUS_OK:
                doc["status"] = "missing-output"
            doc = {"ok": doc["status"] == STATUS_OK, **doc}
            _dump_json(doc)
        else:
            print_outputs(outs)
            if o.dump:
                dump_state(result)
            if o.stats:
                from rich.console import Console

                print_stats(st, Console(highlight=False))
        missing = [x for x in outs if x.get("missing")]
        if missing and result.status == STATUS_OK:
            for x in missing:
                err.print(
                    f"[bold red]error:[/bold red] `.output {escape(x['name'])}`: no scroll at {x['coord']} "
                    "when the program ended"
                )
            return int(Exit.FAULT)
        if result.status != STATUS_OK:
            err.print(
                f"[bold red]{result.status}:[/bold red] "
                f"{escape(result.fault.render(program.source_file) if result.fault else '')}"
            )
            return int(Exit.FAULT)
        return int(Exit.OK)
    finally:
        result.memory.close()
