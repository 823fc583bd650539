"""A fuzz harness for ``.siw`` bytes: seeds, mutators, hostile crafted programs and the oracle.

Inputs come from three mutators over the example programs (``programs/**/*.vasm``, assembled):

* ``bytes``: flips, interesting values (0, 1, -1, 2^31, 2^32-1, 64 GiB, 16 TiB ...) written over u8/u32/u64
  fields, inserted/deleted/truncated bytes; the checksum is recomputed for most of them, so the loader's
  field checks -- not the SHA-256 -- must catch the damage;
* ``struct``: a decoded program with one field changed (an operand, immediate, type, group, data entry)
  and re-encoded: a canonical file with a valid checksum whose only fault is its meaning;
* ``hostile``: the crafted cases from issue #11/#18 (``DTERNARY q=5``, ``SPART dim=9``, ``SALLOC align=0``,
  group numbers out of range, mixed scalar/vector operands, duplicate group members or data coordinates,
  data sections declaring 64 GiB / 16 TiB ...).

The oracle (:func:`check`): decoding raises only :class:`FormatError`; an accepted file is exactly what
the assembler writes for its own disassembly (so the loader accepted nothing the assembler would reject);
decoding allocates O(file size); running an accepted program on the interpreter under a small memory
budget ends in a result or a :class:`VtpuError` -- never another exception -- within the time limit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import signal
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.asm.disassembler import disassemble
from vtpu_cli.binary import siwfile
from vtpu_cli.binary.program import DataScroll, Imm, Instr, Mem, Program, Reg
from vtpu_cli.core.errors import DiagnosticError, FormatError, VtpuError
from vtpu_cli.isa.table import BY_NAME, OPS

ROOT = Path(__file__).resolve().parents[2]
RUN_MEM_LIMIT = 64 << 20  # the budget accepted programs run under
DECODE_ALLOC_FACTOR = 16  # decoding may allocate at most this many times the file size (+ 1 MiB)
TIME_LIMIT_S = 5.0
RUN_STEPS = 3000

INTERESTING_U64 = (
    0,
    1,
    2,
    7,
    8,
    9,
    63,
    64,
    65,
    255,
    256,
    0x7FFF,
    0xFFFF,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    1 << 32,
    64 << 30,
    16 << 40,
    (1 << 63) - 1,
    1 << 63,
    (1 << 64) - 1,
)


def reseal(body: bytes) -> bytes:
    """Append a fresh SHA-256 trailer: the file passes the checksum and must fail on its fields."""
    return body + hashlib.sha256(body).digest()


def seed_programs(max_source_bytes: int | None = None) -> list[tuple[str, Program]]:
    """Every example program that assembles (programs/errors/ excluded), by relative path; with
    `max_source_bytes`, only sources up to that size (the quick sample skips the big data programs)."""
    out = []
    for f in sorted((ROOT / "programs").glob("**/*.vasm")):
        if "errors" in f.parts or (max_source_bytes is not None and f.stat().st_size > max_source_bytes):
            continue
        try:
            out.append((str(f.relative_to(ROOT)), assemble(f.read_text(), f.name)))
        except DiagnosticError:  # a program being rewritten elsewhere; the others suffice
            continue
    return out


# ----------------------------------------------------------------------------- mutators
def mutate_bytes(blob: bytes, rng: random.Random) -> bytes:
    body = bytearray(blob[: -siwfile.DIGEST_BYTES])
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        kind = rng.randrange(7)
        pos = rng.randrange(len(body))
        if kind == 0:
            body[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            body[pos] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif kind in (2, 3):
            fmt = "<I" if kind == 2 else "<Q"
            pos = pos - pos % 4
            if pos + struct.calcsize(fmt) <= len(body):
                v = rng.choice(INTERESTING_U64) & ((1 << (8 * struct.calcsize(fmt))) - 1)
                struct.pack_into(fmt, body, pos, v)
        elif kind == 4:
            del body[pos : pos + rng.choice((1, 4, 8, 16, 48))]
        elif kind == 5:
            body[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 4, 8))))
        else:
            del body[rng.randrange(len(body)) :]
        if not body:
            body = bytearray(b"\0")
    body_b = bytes(body)
    return reseal(body_b) if rng.random() < 0.9 else body_b + blob[-siwfile.DIGEST_BYTES :]


def _rand_imm(rng: random.Random) -> int:
    v = rng.choice(INTERESTING_U64)
    return rng.choice((v, -v, rng.randrange(-10, 10)))


def _mutate_arg(arg, rng: random.Random):
    if isinstance(arg, Imm):
        return Imm(_rand_imm(rng))
    if isinstance(arg, Reg):
        cls = rng.choice(("r", "v", "p", "m", "s", arg.cls, arg.cls))
        return Reg(cls, rng.choice((0, 1, arg.idx, 2, 15, 31)))
    if isinstance(arg, Mem):
        which = rng.randrange(5)
        if which == 4:  # svISA v2 displacements, in and out of range, on any offset
            return dataclasses.replace(arg, disp=rng.choice((0, 1, -1, 64, 1 << 31, -(1 << 31) - 1)))
        if which == 0:
            return dataclasses.replace(arg, mode=rng.randrange(3))
        if which == 1:
            return dataclasses.replace(arg, off=_mutate_arg(arg.off, rng))
        if which == 2:
            return dataclasses.replace(
                arg, extra=rng.choice((None, Imm(_rand_imm(rng)), Reg("v", 1), Reg("r", 2)))
            )
        return dataclasses.replace(arg, base=rng.randrange(8))
    return rng.choice((None, Imm(_rand_imm(rng)), Reg("r", 1), Reg("v", 1)))


def mutate_struct(prog: Program, rng: random.Random) -> Program:
    """One semantic change to a copy of `prog`; encoded canonically by the caller."""
    p = dataclasses.replace(
        prog,
        code=list(prog.code),
        groups=list(prog.groups),
        data=list(prog.data),
        outputs=list(prog.outputs),
        labels=dict(prog.labels),
    )
    what = rng.randrange(10)
    if what <= 5 and p.code:
        i = rng.randrange(len(p.code))
        k = rng.randrange(3)
        siw = list(p.code[i])
        ins = siw[k]
        if ins.is_nop or what == 5:  # put a random op of this pipe there
            pipe_ops = [o for o in OPS if o.pipe == ins.op.pipe]
            op = rng.choice(pipe_ops)
            args = tuple(_mutate_arg(None, rng) if rng.random() < 0.5 else Reg("r", 1) for _ in op.operands)
            t = rng.choice((None, *op.types)) if op.types else None
            t2 = rng.choice(op.types2) if op.types2 else None
            ins = Instr(op, op.mods[0] if op.mods else None, t, t2, args)
        elif ins.args and what < 4:
            j = rng.randrange(len(ins.args))
            args = list(ins.args)
            args[j] = _mutate_arg(args[j], rng)
            ins = dataclasses.replace(ins, args=tuple(args))
        else:
            t = rng.choice((None, "f32", "i8", "i64", "t2", "bf16"))
            ins = dataclasses.replace(ins, type=t)
        siw[k] = ins
        p.code[i] = tuple(siw)
    elif what == 6:
        members = tuple(rng.choice(((0, 0), (1, 0), (5, 1 << 30), (), tuple(range(3)))))
        p.groups.append((rng.choice(("g", "all", "x\x1b[31m", "g")), members or None))
    elif what == 7 and p.data:
        j = rng.randrange(len(p.data))
        d = p.data[j]
        choice = rng.randrange(4)
        if choice == 0:
            p.data.append(d)  # duplicate coordinate
        elif choice == 1:
            p.data[j] = DataScroll(
                d.coord, d.dtype, (rng.choice(INTERESTING_U64),), b"", True, rng.choice(INTERESTING_U64)
            )
        elif choice == 2:
            p.data[j] = dataclasses.replace(d, shape=tuple(x + 1 for x in d.shape))
        else:
            p.data[j] = dataclasses.replace(d, dtype=rng.choice(("t2", "u8", "i64")))
    elif what == 8:
        p.labels[rng.choice(("L", "bad name", "\x1b]0;x\x07"))] = rng.choice(
            (0, len(p.code), len(p.code) + 5)
        )
    else:
        p.source_file = rng.choice(("a.vasm", "\x1b[2J", "x" * 300))
    return p


def safe_encode(prog: Program) -> bytes | None:
    """Encode a mutated program; None when the encoder itself cannot represent it (e.g. an immediate
    beyond 64 bits) -- such a program cannot reach a file, so it is not a loader input."""
    try:
        return siwfile.encode(prog)
    except Exception:  # noqa: BLE001 - any encoder refusal means "not a possible file"
        return None


def _with_instr(prog: Program, siw_index: int, ins: Instr) -> Program:
    code = list(prog.code)
    siw = list(code[siw_index])
    siw[("D", "S", "C").index(ins.op.pipe)] = ins
    code[siw_index] = tuple(siw)
    return dataclasses.replace(prog, code=code)


def hostile_cases(base: Program) -> list[tuple[str, Program]]:
    """Crafted programs the assembler would reject, each named by the rule it breaks."""
    op = BY_NAME
    r1, r2, v0, v1, v2, p0, p1 = (
        Reg("r", 1),
        Reg("r", 2),
        Reg("v", 0),
        Reg("v", 1),
        Reg("v", 2),
        Reg("p", 0),
        Reg("p", 1),
    )
    one = dataclasses.replace(
        base,
        code=[base.code[0]],
        labels={},
        lines=base.lines[:1],
        outputs=[o for o in base.outputs if o.kind == "reg"],
    )
    cases: list[tuple[str, Program]] = []

    def instr(name: str, *args, mod=None, t=None, t2=None) -> None:
        o = op[name]
        ins = Instr(o, mod if mod is not None else (o.mods[0] if o.mods else None), t, t2, tuple(args))
        label = f"{name} " + ", ".join(str(getattr(a, "value", a)) for a in args)
        cases.append((label, _with_instr(one, 0, ins)))

    instr("DTERNARY", v0, v1, v2, Imm(5))
    instr("DTERNARY", v0, v1, v2, Imm(-1))
    instr("SPART", r1, p0, Imm(9))
    instr("SINDEX", p0, p1, Imm(9), Imm(1), mod="add")
    instr("SINDEX", p0, p1, Imm(-1), Imm(1), mod="add")
    instr("SALLOC", p0, Imm(64), Imm(0))
    instr("SALLOC", p0, Imm(64), Imm(3))
    instr("SALLOC", p0, Imm(64), Imm(8192))
    instr("SALLOC", p0, Imm(-1), None)
    instr("SALLOC", p0, Imm(1 << 40), None)
    instr("CBAR", Imm(1))
    instr("CBAR", Imm(-1))
    instr("CREDUCE", r1, r2, Imm(7), mod="add", t="i64")
    instr("CCAST", r1, r2, Imm(0), Imm(99), t="i64")
    instr("DADD", r1, v0, Imm(64), t="i64")  # mixed scalar/vector operands
    instr("DFMA", v0, r1, v1, v2, t="f32")
    instr("DBCAST", r1, Imm(3), t="i32")  # vector-only op in scalar form: wrong class, caught by the decoder
    instr("DSHUF", v0, v1, v2, t="i32")  # valid control; kept to show the harness accepts good input
    instr("DSQRT", r1, r2, t="f32")
    instr("DMOV", v0, Imm(1), t="i64")
    instr("DMOV", v0, Reg("s", 0))
    instr("DCVT", v0, v1, Imm(5), t="f32", t2="i32")
    instr("DCVT", v0, v1, Imm(9), t="i8", t2="f32")
    instr("DADD", r1, r2, Imm(1))  # typed op without a type
    instr("SGATHER", v0, Mem(0, Imm(0), 0, Imm(0)), t="i32")  # byte count 0
    instr("SGATHER", v0, Mem(0, Imm(0), 0, Imm(65)), t="i32")
    instr("SGATHER", v0, Mem(0, Imm(1 << 40), 0, None), t="i32")  # offset beyond 32 bits
    instr("SGATHER", r1, Mem(0, Imm(0), 1, Imm(4)), t="i32")  # scalar strided
    instr("SGATHER", v0, Mem(0, Imm(0), 2, v1), t="i8")  # indexed narrow
    instr("DJMP", Imm(1 << 20))
    # intra-SIW hazard
    haz = (
        Instr(op["DADD"], None, "i64", None, (r1, r2, Imm(1))),
        Instr(op["SGATHER"], None, "i64", None, (r1, Mem(0, Imm(0)))),
        Instr(op["CNOP"]),
    )
    cases.append(("hazard r1", dataclasses.replace(one, code=[haz])))
    # groups
    cases.append(("duplicate group members", dataclasses.replace(one, groups=[("g", (0, 0))])))
    cases.append(("unsorted group members", dataclasses.replace(one, groups=[("g", (1, 0))])))
    cases.append(("group member 2^31", dataclasses.replace(one, groups=[("g", (0, 1 << 31))])))
    cases.append(("group named all", dataclasses.replace(one, groups=[("all", None)])))
    cases.append(("group defined twice", dataclasses.replace(one, groups=[("g", None), ("g", (0,))])))
    cases.append(("group name with ESC", dataclasses.replace(one, groups=[("g\x1b[31m", None)])))
    # names
    cases.append(("label with OSC", dataclasses.replace(one, labels={"\x1b]0;pwn\x07": 0})))
    cases.append(
        (
            "source file with ESC",
            dataclasses.replace(one, source_file="\x1b[2J.vasm", lines=[1] * len(one.code)),
        )
    )
    # data
    from vtpu_cli.core import coords

    c = coords.pack(coords.Coord.parse("1.1.1/1.1.1/1.1.7"))
    d = DataScroll(c, "u8", (4,), b"abcd")
    cases.append(("duplicate data coordinate", dataclasses.replace(one, data=[d, d])))
    for size in (64 << 30, 16 << 40, (1 << 31) + 1):
        cases.append(
            (
                f"zero scroll of {size} bytes",
                dataclasses.replace(one, data=[DataScroll(c, "u8", (size,), b"", True, size)]),
            )
        )
    big = [
        DataScroll(
            coords.pack(coords.Coord.parse(f"1.1.1/1.1.1/1.1.{k}")), "u8", (1 << 31,), b"", True, 1 << 31
        )
        for k in range(1, 400)
    ]
    cases.append(("399 zero scrolls of 2 GiB", dataclasses.replace(one, data=big)))
    cases.append(
        ("shape/size mismatch", dataclasses.replace(one, data=[DataScroll(c, "i32", (3,), b"abcd")]))
    )
    return cases


def _set_u64_in_data(blob: bytes, value: int) -> bytes:
    """Overwrite the declared byte size of the first data entry (file-backed or zero) and reseal."""
    body = bytearray(blob[: -siwfile.DIGEST_BYTES])
    nsec = siwfile.HEADER.unpack_from(body)[5]
    for i in range(nsec):
        kind, count, off, size = siwfile.SECTION.unpack_from(
            body, siwfile.HEADER.size + i * siwfile.SECTION.size
        )
        if kind == siwfile.SEC_DATA and count:
            ndim = body[off + 6]
            struct.pack_into("<Q", body, off + 8 + 8 * ndim, value)
            return reseal(bytes(body))
    raise ValueError("no data section")


def declared_size_cases(blob: bytes) -> list[tuple[str, bytes]]:
    """Raw files whose first data entry declares a huge size, checksum recomputed."""
    return [
        (f"declared size {v}", _set_u64_in_data(blob, v))
        for v in (64 << 30, 16 << 40, (1 << 64) - 1, 1 << 31)
    ]


# ----------------------------------------------------------------------------- the oracle
class _Timeout(BaseException):  # not an Exception: code under test cannot swallow it
    pass


def _alarm(_signum, _frame):
    raise _Timeout


@dataclasses.dataclass
class Outcome:
    accepted: bool
    finding: str | None = None  # None: the input was handled correctly
    seconds: float = 0.0


WALL_BACKSTOP_S = 60.0


class _Limit:
    """Interrupt a pure-Python loop (loader, interpreter) with _Timeout after `seconds` of this process's
    CPU time (SIGPROF), or WALL_BACKSTOP_S of wall time (SIGALRM) for anything that would block. CPU time
    is the measure so that a campaign run at low priority on a busy machine reports real hangs only."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self):
        self.old = (signal.signal(signal.SIGPROF, _alarm), signal.signal(signal.SIGALRM, _alarm))
        signal.setitimer(signal.ITIMER_PROF, self.seconds)
        signal.setitimer(signal.ITIMER_REAL, max(self.seconds, WALL_BACKSTOP_S))

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGPROF, self.old[0])
        signal.signal(signal.SIGALRM, self.old[1])
        return False


def strip_data(prog: Program) -> Program:
    """The program with every data scroll zero-filled (same coordinate, type, shape and size): the
    assembler oracle then checks the data *description* without re-parsing megabytes of literals."""
    data = [DataScroll(d.coord, d.dtype, d.shape, b"", True, d.size) for d in prog.data]
    return dataclasses.replace(prog, data=data)


def check(blob: bytes, *, run: bool = True, measure_alloc: bool = False, sentrons: int = 1) -> Outcome:
    """Apply the oracle to one input (see the module docstring). Decoding and running each get
    TIME_LIMIT_S; the assembler round trip that serves as the oracle is not the product path and is
    not timed."""
    t0 = time.perf_counter()
    if measure_alloc:
        tracemalloc.start()
    try:
        with _Limit(TIME_LIMIT_S):
            prog = siwfile.decode(blob, "fuzz.siw", max_data=RUN_MEM_LIMIT)
    except FormatError:
        return Outcome(False, None, time.perf_counter() - t0)
    except _Timeout:
        return Outcome(False, f"hang: decoding took over {TIME_LIMIT_S} s", time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - the finding is the exception
        return Outcome(False, f"decode raised {type(e).__name__}: {e}", time.perf_counter() - t0)
    finally:
        if measure_alloc:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    if measure_alloc and peak > DECODE_ALLOC_FACTOR * len(blob) + (1 << 20):
        return Outcome(True, f"decode allocated {peak} bytes for a {len(blob)}-byte file")
    # accepted: the assembler must accept the program's disassembly and write the identical file
    bare = strip_data(prog)
    try:
        again = siwfile.encode(assemble(disassemble(bare), "fuzz.vasm"))
    except DiagnosticError as e:
        return Outcome(
            True, f"accepted a program the assembler rejects: {e.message}", time.perf_counter() - t0
        )
    except Exception as e:  # noqa: BLE001
        return Outcome(True, f"disasm/asm raised {type(e).__name__}: {e}", time.perf_counter() - t0)
    # the header's CPU-feature bits are metadata the assembly language cannot express (no directive):
    # compare them apart -- the loader checks them against the known bits
    again = again[:16] + blob[16:24] + again[24:-32]
    again += hashlib.sha256(again).digest()
    if again != siwfile.encode(bare):
        return Outcome(True, "accepted file differs from the assembler's encoding", time.perf_counter() - t0)
    if run:
        try:
            with _Limit(TIME_LIMIT_S):
                finding = run_program(prog, sentrons)
        except _Timeout:
            finding = f"hang: {RUN_STEPS} interpreter steps took over {TIME_LIMIT_S} s"
        if finding:
            return Outcome(True, finding, time.perf_counter() - t0)
    return Outcome(True, None, time.perf_counter() - t0)


def run_program(prog: Program, sentrons: int = 1) -> str | None:
    """Run on the interpreter under RUN_MEM_LIMIT; a finding for anything but a result or a VtpuError."""
    from vtpu_cli.engines.interp.interpreter import Interpreter, load_memory
    from vtpu_cli.machine.memory import Memory

    mem = Memory(mem_limit=RUN_MEM_LIMIT)
    try:
        load_memory(prog, mem)
        Interpreter(prog, sentrons, max_steps=RUN_STEPS, memory=mem).run()
    except _Timeout:
        raise
    except VtpuError:
        pass
    except Exception as e:  # noqa: BLE001
        return f"run raised {type(e).__name__}: {e}"
    finally:
        mem.close()
    if mem.peak_bytes > RUN_MEM_LIMIT:
        return f"run used {mem.peak_bytes} bytes, over the {RUN_MEM_LIMIT} budget"
    return None


def inputs(seed: int, count: int, max_source_bytes: int | None = None) -> Iterator[tuple[str, bytes, int]]:
    """`count` fuzz inputs (kind, bytes, sentrons), deterministic in `seed`; hostile cases first."""
    rng = random.Random(seed)
    seeds = seed_programs(max_source_bytes)
    blobs = [(name, prog, siwfile.encode(prog)) for name, prog in seeds]
    n = 0
    for _name, prog, _blob in blobs[:1]:
        for label, p in hostile_cases(prog):
            b = safe_encode(p)
            if b is not None and n < count:
                n += 1
                yield f"hostile {label}", b, 1
    for name, prog, blob in blobs:
        if prog.data:
            for label, b in declared_size_cases(blob):
                if n < count:
                    n += 1
                    yield f"{label} ({name})", b, 1
            break
    while n < count:
        name, prog, blob = rng.choice(blobs)
        ns = 4 if "fleet" in name else 1
        if rng.random() < 0.6:
            n += 1
            yield f"bytes {name}", mutate_bytes(blob, rng), ns
        else:
            b = safe_encode(mutate_struct(prog, rng))
            if b is not None:
                n += 1
                yield f"struct {name}", b, ns


Runner = Callable[[bytes], Outcome]


def campaign(
    seed: int,
    count: int,
    *,
    run_every: int = 4,
    alloc_every: int = 50,
    max_source_bytes: int | None = None,
    progress=None,
) -> dict:
    """Run `count` inputs through the oracle; returns counts by kind, acceptances and the findings."""
    kinds: dict[str, int] = {}
    accepted: dict[str, int] = {}
    findings: list[tuple[str, str]] = []
    slowest = 0.0
    t0 = time.perf_counter()
    for i, (kind, blob, sentrons) in enumerate(inputs(seed, count, max_source_bytes)):
        out = check(blob, run=i % run_every == 0, measure_alloc=i % alloc_every == 0, sentrons=sentrons)
        k = kind.split()[0]
        kinds[k] = kinds.get(k, 0) + 1
        accepted[k] = accepted.get(k, 0) + int(out.accepted)
        slowest = max(slowest, out.seconds)
        if out.finding:
            findings.append((kind, out.finding))
        if progress is not None and ((i + 1) % 1000 == 0 or out.finding):
            progress(i + 1, findings, time.perf_counter() - t0)
    return {
        "inputs": sum(kinds.values()),
        "by_kind": kinds,
        "accepted": accepted,
        "findings": findings,
        "slowest_s": slowest,
        "seconds": time.perf_counter() - t0,
    }
