"""What every engine shares: the :class:`Engine` protocol, architectural state, faults and results.

The runner, the bench, the API and the tests see engines only through this module and
:mod:`vtpu_cli.engines.select` (which picks one and owns the JIT -> interpreter fallback rule).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from vtpu_cli.binary.program import Program
from vtpu_cli.core import coords
from vtpu_cli.fleet.cpipe import Fleet
from vtpu_cli.isa.table import PIPES, REG_COUNTS, TYPES, VEC_BYTES
from vtpu_cli.machine.memory import Memory, scroll_buffer
from vtpu_cli.machine.semantics import NP, OpFault

STATUS_OK, STATUS_FAULT, STATUS_DEADLOCK, STATUS_LIMIT = "ok", "fault", "deadlock", "step-limit"

# the rank count a launcher announces (mpich/hydra, Open MPI, PMIx), read without initialising MPI
MPI_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


def world_size_from_env() -> int:
    """The rank count mpiexec announced to this process (1 when not started by mpiexec)."""
    for var in MPI_SIZE_VARS:
        v = os.environ.get(var)
        if v and v.isdigit():
            return int(v)
    return 1


class SentronState:
    """Architectural state of one sentron."""

    def __init__(self, sid: int, n: int):
        self.id = sid
        self.n = n
        self.R = [0] * REG_COUNTS["r"]
        self.V = np.zeros((REG_COUNTS["v"], VEC_BYTES), np.uint8)
        self._views = {t: self.V.view(NP[t]) for t in TYPES if t not in ("t2", "u8")}
        self._views["u8"] = self.V
        self.P = [0] * REG_COUNTS["p"]
        self.M = [b""] * REG_COUNTS["m"]
        self.flags = 0
        self.pc = 0
        self.halted = False
        self.wait = None
        self.coll_seq: dict[int, int] = {}
        self.home = coords.home_packed(sid)
        self.P = [self.home] * REG_COUNTS["p"]
        self.steps = 0

    def view(self, t: str) -> np.ndarray:
        return self._views[t]

    def snapshot(self) -> dict:
        return {
            "r": list(self.R),
            "v": self.V.copy(),
            "p": list(self.P),
            "m": list(self.M),
            "flags": self.flags,
            "pc": self.pc,
            "halted": self.halted,
        }


@dataclass
class Fault:
    kind: str  # "fault" | "deadlock" | "step-limit"
    message: str
    sentron: int = -1
    siw: int = -1
    pipe: str = ""
    op: str = ""
    line: int = 0
    waits: list = field(default_factory=list)

    @classmethod
    def from_op(cls, program: Program, sid: int, pc: int, e: OpFault) -> Fault:
        """The report of op ``e.ins`` faulting in sentron ``sid`` at SIW ``pc`` (same on every engine)."""
        lines = program.lines
        return cls(
            "fault",
            e.message,
            sid,
            pc,
            e.ins.op.pipe,
            e.ins.mnemonic(),
            lines[pc] if lines and pc < len(lines) else 0,
        )

    def render(self, source: str = "") -> str:
        if self.kind == "fault":
            loc = f"{source}:{self.line}: " if source and self.line else ""
            return (
                f"{loc}fault in sentron {self.sentron}, SIW {self.siw}, {self.pipe} pipe, {self.op}: "
                f"{self.message}"
            )
        return self.message

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "message": self.message,
            "sentron": self.sentron,
            "siw": self.siw,
            "pipe": self.pipe,
            "op": self.op,
            "line": self.line,
            "waits": self.waits,
        }


@dataclass
class RunResult:
    status: str
    fault: Fault | None
    sentrons: list[SentronState]
    memory: Memory
    fleet: Fleet
    siws: int
    ops_by_pipe: dict[str, int]
    rounds: int
    wall_s: float
    trace: list | None = None
    engine: str = "interp"  # the engine that actually ran
    fallback: str | None = None  # why the interpreter ran when the JIT was asked for

    @property
    def ops(self) -> int:
        return sum(self.ops_by_pipe.values())


class SemanticsEnv:
    """What semantics builders see: memory, fleet, access notes."""

    def __init__(self, mem: Memory, fleet: Fleet):
        self.mem = mem
        self.fleet = fleet
        self.note_access = fleet.note_access
        self.note_lifetime = fleet.note_lifetime
        self.fence = fleet.fence


_OP_MASKS: dict[int, tuple[Program, int, np.ndarray]] = {}


def _op_mask(program: Program) -> np.ndarray:
    """[SIW, pipe] = 1 where the SIW holds a non-NOP op in that pipe; computed once per program (a model's
    step runs the same program once per token, and its code has tens of thousands of SIWs)."""
    hit = _OP_MASKS.get(id(program))
    if hit is not None and hit[0] is program and hit[1] == len(program.code):
        return hit[2]
    mask = np.array(
        [[0 if ins.is_nop else 1 for ins in siw] + [0] * (len(PIPES) - len(siw)) for siw in program.code],
        np.int64,
    ).reshape(len(program.code), len(PIPES))
    if len(_OP_MASKS) > 64:  # a long-lived process compiling many programs: forget the oldest
        _OP_MASKS.pop(next(iter(_OP_MASKS)))
    _OP_MASKS[id(program)] = (program, len(program.code), mask)
    return mask


def count_ops(program: Program, counts) -> tuple[int, dict[str, int]]:
    """SIWs executed and non-NOP ops per pipe, from per-SIW execution counts."""
    c = np.asarray(counts, np.int64)
    if c.size < len(program.code):  # counts of the SIWs that ran so far: the rest ran 0 times
        c = np.concatenate((c, np.zeros(len(program.code) - c.size, np.int64)))
    per_pipe = c @ _op_mask(program)
    return int(c.sum()), {p: int(v) for p, v in zip(PIPES, per_pipe, strict=True)}


def load_memory(program: Program, mem: Memory) -> None:
    """The program's data scrolls into ``mem``: each checked against the run's budget before its buffer
    exists (a file's declared zero scroll costs nothing to declare), and a host that cannot give the
    bytes is a clean error, not a Python ``MemoryError``."""
    from vtpu_cli.binary import limits
    from vtpu_cli.core.errors import VtpuError

    for d in program.data:
        what = f"scroll {coords.format_packed(d.coord)}"
        mem.check_budget(d.size, what)
        try:
            buf = scroll_buffer(d.size, None if d.zero else d.data)
        except MemoryError:
            raise VtpuError(
                f"out of host memory loading {what} ({limits.format_size(d.size)}; "
                f"{limits.format_size(mem.used_bytes)} of the program's data loaded before it)",
                hint="free memory or run a program with smaller tensors (the process's address-space "
                "limit, `ulimit -v`, counts too)",
            ) from None
        mem.add(d.coord, buf, dtype=d.dtype, shape=d.shape)


class Engine(Protocol):
    """An execution engine: constructed for one program, memory and sentron count; ``run`` once.

    ``run`` returns a :class:`RunResult` whose ``engine`` names what actually executed ("interp" or
    "jit") and whose ``fallback`` says why the interpreter ran when the JIT was asked for."""

    program: Program
    n: int
    mem: Memory

    def run(self) -> RunResult: ...
