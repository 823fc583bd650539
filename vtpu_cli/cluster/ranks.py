"""`mpiexec -n R vtpu run prog --sentrons N`: the sentrons spread over the ranks, one report on rank 0.

Each rank runs the sentrons :func:`~vtpu_cli.fleet.mpi.block_range` gives it, over an
:class:`~vtpu_cli.fleet.mpi.MpiTransport`: natively as JIT threads (:class:`RankJit`, with
:mod:`vtpu_cli.cluster.bridge` carrying the native C pipe across ranks) when :func:`jit_reason` allows,
else on the reference interpreter (:class:`RankInterpreter`, same per-sentron semantics as one process).
Three things make the distributed run report what one process would (described here for the
interpreter ranks; the JIT ranks reuse the control plane and replay non-ok runs on the interpreter):

* **Memory** (docs/cluster.md, "the substrate router"): in the default *homed* mode each scroll lives on
  the rank its coordinate names (:mod:`vtpu_cli.cluster.router`) and other ranks reach it through that
  rank; in *replicated* mode every rank keeps the whole image and ships the scrolls it wrote to every
  other rank before the next C-pipe item leaves it (a release), items being applied causally. Either
  way a conforming program reads what it would in one process, and rank 0 ends with the whole image.
* **Termination and deadlock** (distributed watchdog): rank 0 runs probe waves; when two consecutive
  waves find every rank idle, with every data item sent also received and no counter moved, the run is
  over: finished if every sentron halted, otherwise a deadlock, reported with the full wait graph.
* **Faults**: a rank whose sentron faults tells rank 0, which stops every rank; the report is the
  fault of the lowest sentron id among those that faulted before the stop.

Rank 0 then rebuilds one :class:`RunResult` (all sentrons' registers, the merged memory, summed
statistics), so the runner prints it exactly as a single-process run; the other ranks exit with the
same exit code.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from vtpu_cli.binary.program import Program
from vtpu_cli.cluster import checkpoint, races
from vtpu_cli.cluster.env import SIZE_VARS, under_mpi, world_size_from_env  # noqa: F401  (re-exported)
from vtpu_cli.cluster.router import ACQUIRES, Router
from vtpu_cli.core import coords
from vtpu_cli.core.errors import Exit, VtpuError
from vtpu_cli.engines.base import (
    STATUS_DEADLOCK,
    STATUS_FAULT,
    STATUS_LIMIT,
    STATUS_OK,
    Fault,
    RunResult,
    SemanticsEnv,
    SentronState,
    count_ops,
)
from vtpu_cli.engines.interp.interpreter import Interpreter
from vtpu_cli.engines.select import EngineOptions, Fallback
from vtpu_cli.fleet.cpipe import Fleet
from vtpu_cli.fleet.mpi import MpiTransport
from vtpu_cli.fleet.transport import Message
from vtpu_cli.machine.memory import MemFault, Memory, scroll_buffer
from vtpu_cli.machine.semantics import OpFault

INSTALL_HINT = "install the cluster extra: pip install 'vtpu[cluster]' (mpi4py and the mpich wheel)"
WAVE_INTERVAL_S = 0.002  # rank 0's pause between termination waves
IDLE_SLEEP_MAX_S = 0.0005  # an idle rank's longest nap between polls (oversubscribed cores)
BRIDGE_SLEEP_MAX_S = float(os.environ.get("VTPU_CLUSTER_BRIDGE_NAP_S", "0.00005"))
# while a local sentron runs the JIT bridge yields (stays close) for BRIDGE_BUSY_SPIN_S after the last
# movement, then naps, doubling up to BRIDGE_BUSY_NAP_MAX_S (a long compute phase keeps its core)
BRIDGE_YIELD = os.environ.get("VTPU_CLUSTER_BRIDGE_YIELD", "1") != "0"
BRIDGE_BUSY_SPIN_S = float(os.environ.get("VTPU_CLUSTER_BUSY_SPIN_S", "0.0005"))
BRIDGE_BUSY_NAP_MAX_S = float(os.environ.get("VTPU_CLUSTER_BUSY_NAP_S", "0.0002"))
EXCHANGE_NAP = os.environ.get("VTPU_CLUSTER_EXCHANGE_NAP", "1") != "0"  # nap while waiting for the others
# compare only the scrolls the writer words name at a release (RankJit._stored_scrolls): off by default
# until a model mismatch seen with it on is understood (docs/cluster.md)
STORE_FILTER = os.environ.get("VTPU_CLUSTER_STORE_FILTER", "0") == "1"
ABORT_GRACE_S = 5.0  # how long a failing rank waits for the others to acknowledge its stop


MEMORY_MODES = ("replicated", "homed")


def memory_mode() -> str:
    """How scrolls are kept across ranks (docs/cluster.md): ``$VTPU_CLUSTER_MEMORY``, default homed."""
    mode = os.environ.get("VTPU_CLUSTER_MEMORY", "homed")
    if mode not in MEMORY_MODES:
        raise VtpuError(
            f"VTPU_CLUSTER_MEMORY={mode!r} is not a memory mode", hint="choose " + " or ".join(MEMORY_MODES)
        )
    return mode


def sentrons(given: int, argv: list[str] | None = None) -> int:
    """``--sentrons`` under mpiexec: as given, or the rank count when the command line did not name it."""
    args = sys.argv[1:] if argv is None else argv
    named = any(
        a in ("-n", "--sentrons") or a.startswith("--sentrons=") or (a.startswith("-n") and a[2:].isdigit())
        for a in args
    )
    return given if named else max(given, world_size_from_env())


def init_mpi() -> Any:
    """MPI_Init with MPI_THREAD_MULTIPLE (needed for sentron threads per rank); exit 3 when missing."""
    try:
        import mpi4py

        if "MPI4PY_RC_THREAD_LEVEL" not in os.environ:  # the environment may ask for less (tests do)
            mpi4py.rc.thread_level = "multiple"
        from mpi4py import MPI
    except ImportError as e:
        raise VtpuError(
            f"running under mpiexec needs mpi4py ({e})", hint=INSTALL_HINT, exit_code=Exit.ERROR
        ) from None
    provided = MPI.Query_thread()
    if provided < MPI.THREAD_MULTIPLE:
        names = {
            MPI.THREAD_SINGLE: "SINGLE",
            MPI.THREAD_FUNNELED: "FUNNELED",
            MPI.THREAD_SERIALIZED: "SERIALIZED",
        }
        raise VtpuError(
            f"the MPI library provides MPI_THREAD_{names.get(provided, provided)}, "
            "but vtpu needs MPI_THREAD_MULTIPLE (sentrons of a rank run as threads)",
            hint="use an MPI built with thread support, e.g. " + INSTALL_HINT,
            exit_code=Exit.ERROR,
        )
    return MPI.COMM_WORLD


def _name_on_signal(rank: int) -> None:
    """A rank stopped by a signal says which rank it was before it goes (mpiexec names only the pid)."""

    def handler(sig: int, _frame) -> None:
        os.write(
            2,
            f"vtpu: rank {rank} (pid {os.getpid()} on {socket.gethostname()}) stopped by signal {sig}\n".encode(),
        )
        os._exit(128 + sig)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    # The Python-level handler runs only when the main thread returns to Python, which a rank blocked in
    # an MPI call may not do for a long time; the C-level handler also writes the signal number to the
    # wake-up pipe at once, and a thread of our own acts on it.
    import threading

    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)

    def watch() -> None:
        while True:
            got = os.read(r, 64)
            for sig in got:
                if sig in (signal.SIGTERM, signal.SIGHUP):
                    handler(sig, None)

    threading.Thread(target=watch, name="vtpu-signals", daemon=True).start()


class RankStopped(Exception):
    """Another rank failed and asked this one to stop; it has printed why."""

    def __init__(self, code: int):
        super().__init__(f"stopped by another rank (exit {code})")
        self.code = code


@dataclass
class Checkpointing:
    """Checkpoint/restart settings: the ``RunOptions`` fields ``checkpoint``, ``checkpoint_every`` and
    ``resume`` when the CLI has them, else ``$VTPU_CHECKPOINT``, ``$VTPU_CHECKPOINT_EVERY``, ``$VTPU_RESUME``."""

    directory: str | None = None
    every: int = 1
    resume: str | None = None

    @classmethod
    def from_options(cls, o: Any) -> Checkpointing:
        env = os.environ
        every = getattr(o, "checkpoint_every", None) or env.get("VTPU_CHECKPOINT_EVERY") or 1
        try:
            every = int(every)
        except ValueError:
            raise VtpuError(
                f"the checkpoint interval must be a whole number of barriers, not {every!r}"
            ) from None
        if every < 1:
            raise VtpuError(f"the checkpoint interval must be at least 1 barrier, not {every}")
        ck = getattr(o, "checkpoint", None) or env.get("VTPU_CHECKPOINT") or None
        rs = getattr(o, "resume", None) or env.get("VTPU_RESUME") or None
        return cls(str(ck) if ck else None, every, str(rs) if rs else None)

    @property
    def wanted(self) -> bool:
        return bool(self.directory or self.resume)


_settings = Checkpointing()


def configure(o: Any) -> bool:
    """The runner's hook: True when this run goes through the cluster engine (under mpiexec, or with
    checkpointing or a resume asked for). Under mpiexec ``--sentrons`` defaults to the rank count."""
    global _settings
    _settings = Checkpointing.from_options(o)
    if under_mpi():
        o.sentrons = sentrons(o.sentrons)
        return True
    return _settings.wanted


class LocalComm:
    """A one-rank stand-in for an MPI communicator: checkpointing in one process needs no MPI."""

    def Get_rank(self) -> int:  # noqa: N802 - the mpi4py names
        return 0

    def Get_size(self) -> int:  # noqa: N802
        return 1

    def Dup(self) -> LocalComm:  # noqa: N802
        return self

    def Free(self) -> None:  # noqa: N802
        pass

    def Iprobe(self, **_kw) -> bool:  # noqa: N802
        return False

    def gather(self, obj: Any, root: int = 0) -> list:
        return [obj]

    def Ibarrier(self) -> Any:  # noqa: N802
        return self

    def Test(self) -> bool:  # noqa: N802 - the completed request Ibarrier returns
        return True

    def isend(self, obj: Any, dest: int, tag: int):  # pragma: no cover - nothing is remote
        raise AssertionError("a one-rank run has no other rank")


def make_engine(
    program: Program,
    sentrons: int,
    engine: str,
    max_steps,
    topo,
    mem: Memory,
    cache_dir=None,
    no_cache=False,
    trace=False,
) -> tuple[ClusterEngine, str | None]:
    """This rank's engine and, on rank 0, why it is not the JIT (the signature of ``api.make_engine``)."""
    eng = open_engine(
        program,
        mem,
        EngineOptions(
            engine=engine,
            sentrons=sentrons,
            max_steps=max_steps,
            topology=topo,
            trace=trace,
            cache_dir=cache_dir,
            no_cache=no_cache,
        ),
    )
    return eng, eng.reason


def open_engine(
    program: Program, memory: Memory, o: EngineOptions, *, exit_workers: bool = True
) -> ClusterEngine:
    """The engine for this rank (the signature of :func:`vtpu_cli.engines.select.open_engine`).

    With ``exit_workers`` (the CLI) ranks other than 0 end the process after the run; without it (a
    library running several programs, such as a decode loop) they return their own part of the result:
    their sentrons' registers, their memory, and the run's status (the fault and outputs are rank 0's)."""
    if o.trace:
        raise VtpuError(
            "--trace is not available under mpiexec or with checkpointing: traces record the "
            "single-process interpreter's lockstep schedule",
            hint="trace a plain single-process run",
            exit_code=Exit.ERROR,
        )
    jit = None
    if under_mpi():
        comm = init_mpi()
        _name_on_signal(comm.Get_rank())
        why = None
        if o.engine == "jit":
            try:
                jit, why = jit_reason(program, memory, o, _settings)
            except Exception as e:  # every rank must reach the agreement below, whatever happened here
                jit, why = None, f"the JIT could not prepare this program on rank {comm.Get_rank()} ({e})"
            # every rank must take the same path (a compile that timed out on one rank only, ...)
            whys = comm.allgather(why)
            why = next((w for w in whys if w is not None), None)
            if why is not None:
                jit = None
                why = f"under mpiexec ({comm.Get_size()} ranks) every rank runs its sentrons on the interpreter: {why}"
    else:
        comm = LocalComm()
        why = "checkpoint/restart runs on the interpreter: the JIT cannot stop at a barrier for a checkpoint yet"
    reason = why if o.engine == "jit" and comm.Get_rank() == 0 else None
    return ClusterEngine(program, memory, o, comm, reason, _settings, exit_workers=exit_workers, jit=jit)


class ClusterEngine(Fallback):
    """This rank's share of the run. ``run`` returns the whole run's result on rank 0; on the other ranks
    it ends the process with the run's exit code (they have nothing to report)."""

    def __init__(
        self,
        program: Program,
        memory: Memory,
        o: EngineOptions,
        comm: Any,
        reason: str | None,
        ckpt: Checkpointing | None = None,
        *,
        exit_workers: bool = True,
        jit: Any = None,
        spmd: Any = None,
    ):
        """``jit``: a compiled :class:`~vtpu_cli.engines.jit.engine.JitEngine` for the whole run; this
        rank then runs its sentrons natively (:class:`RankJit`), else on the interpreter. ``spmd``: the
        :class:`~vtpu_cli.cluster.spmd.SpmdEngine` this run is one of (with ``jit`` only)."""
        self.program, self.n, self.mem = program, o.sentrons, memory
        self.reason = reason
        self.exit_workers = exit_workers
        self.comm = comm = comm.Dup()  # a run's own context: nothing of an earlier run can leak in
        self.inner: RankInterpreter
        if jit is not None:
            self.inner = RankJit(
                program,
                o.sentrons,
                comm,
                topology=o.topology,
                memory=memory,
                jit=jit,
                ckpt=ckpt,
                max_steps=o.max_steps,
                spmd=spmd,
            )
        else:
            self.inner = RankInterpreter(
                program,
                o.sentrons,
                comm,
                max_steps=o.max_steps,
                topology=o.topology,
                memory=memory,
                ckpt=ckpt,
            )

    def run(self) -> RunResult:
        try:
            res = self.inner.run()
            self.inner.transport.finish()  # nothing of this run may reach a later one (context reuse)
        except RankStopped as e:  # another rank failed and asked this one to stop: it said why
            if self.exit_workers:
                sys.stdout.flush()
                raise SystemExit(e.code) from None
            raise
        except BaseException as e:  # a rank that cannot go on takes the others down rather than hang them
            if self.inner.size > 1:
                what = "interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}"
                code = int(Exit.INTERRUPTED if isinstance(e, KeyboardInterrupt) else Exit.ERROR)
                sys.stderr.write(f"vtpu: rank {self.inner.rank}: {what}; stopping every rank\n")
                sys.stderr.flush()
                # ask first, so that every rank exits with the code itself; MPI_Abort kills the ones that
                # do not answer, and a launcher then reports the signal instead of the code
                if not self.inner.stop_others(code, ABORT_GRACE_S):
                    self.comm.Abort(code)
                if self.exit_workers:
                    sys.stdout.flush()
                    raise SystemExit(code) from None
            raise
        finally:
            self.comm.Free()
        if self.inner.rank != 0 and self.exit_workers:
            sys.stdout.flush()
            raise SystemExit(int(Exit.OK if res.status == STATUS_OK else Exit.FAULT))
        if self.inner.rank != 0:
            return res
        if not isinstance(self.inner, RankJit):
            res.engine, res.fallback = "interp", self.reason
        res.cluster = self.report()  # type: ignore[attr-defined]  # for reports that know about ranks
        return res

    def report(self) -> dict:
        """Rank 0, after the run: ranks, memory mode, per-rank timing and traffic, checkpoints written."""
        inner = self.inner
        per = inner.per_rank
        return {
            "ranks": inner.size,
            "memory": inner.memory_mode,
            "remote_messages": sum(p["remote_messages"] for p in per),
            "remote_scroll_bytes": sum(p["scroll_bytes"] for p in per),
            "remote_scroll_accesses": sum(p["remote_accesses"] for p in per),
            "update_bytes": sum(p["update_bytes"] for p in per),
            "per_rank": per,
            "checkpoints": [{"bytes": b, "seconds": t} for b, t in inner.ckpt_log],
        }


class RankInterpreter(Interpreter):
    """The interpreter loop over this rank's sentrons, plus the watchdog and the final exchange."""

    def __init__(
        self,
        program: Program,
        n: int,
        comm: Any,
        *,
        max_steps: int | None,
        topology,
        memory: Memory,
        ckpt: Checkpointing | None = None,
        coherent: bool = True,
    ):
        """``coherent=False``: no memory mode is set up (the JIT path, for programs that never write
        memory: every rank's full image stays valid; see :class:`RankJit`)."""
        if n < 1:
            raise ValueError("at least one sentron")
        self.program = program
        self.n = n
        self.max_steps = max_steps
        self.tracing = False
        self.trace = None
        self.mem = memory
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.transport = tr = MpiTransport(comm, n)
        self.fleet = Fleet(n, program.groups, topology, transport=tr)
        self.env = SemanticsEnv(memory, self.fleet)
        self.env.note_access = self._note_access
        self.env.note_lifetime = self._note_lifetime
        self.states = [SentronState(i, n) for i in range(n)]
        self.fleet.homes = {s.home: s.id for s in self.states}
        self.counts = [0] * len(program.code)
        self.mine = [self.states[i] for i in tr.local]
        # the interpreter's closures for this rank's sentrons (the JIT ranks, coherent=False, need none)
        self.code = [self._compile(s) if s.id in tr.local and coherent else None for s in self.states]
        self.dirty: dict[int, None] = {}  # scrolls written here since the last release, in order
        self._alloc, self._free = memory.alloc, memory.free
        self.memory_mode = memory_mode() if coherent else "replicated"
        self.router: Router | None = None
        if self.memory_mode == "replicated" and coherent:
            memory.alloc = self._tracked_alloc  # type: ignore[method-assign]
            memory.free = self._tracked_free  # type: ignore[method-assign]
            tr.before_remote = self._take_dirty
        tr.apply_update = self._apply_update
        tr.on_control = self._control
        self.stop: str | None = None
        self.aborted: int | None = None  # the exit code another rank asked for when it failed
        self.abort_acks: set[int] = set()
        self.reports: list[tuple[str, dict | None]] = []  # rank 0: halts reported by the ranks
        self.wave = 0
        self.replies: dict[int, tuple] = {}
        self.prev_snapshot: tuple | None = None
        self.last_wave = 0.0
        self.idle = False
        self.total = 0
        # checkpoint/restart: every K-th CBAR on group all parks the sentron until the cut is written
        self.ckpt = ckpt or Checkpointing()
        scan = program_scan(program)
        self.cbar_pcs = scan.cbar_pcs
        self.cbars = [0] * n
        self.parked: set[int] = set()
        self.ckpt_due = False
        self.ckpt_log: list[tuple[int, float]] = []  # (bytes, seconds) per checkpoint written
        self.exec_s = 0.0  # time in rounds where a sentron of this rank executed an SIW
        self.per_rank: list[dict] = []  # rank 0, after the run: each rank's timing and traffic
        # races across ranks (cluster/races.py): every rank records its sentrons' accesses, rank 0 checks
        # them all at the end and, on a race, reruns the program as one process for the golden report
        stores = scan.stores
        self.race_log: races.AccessLog | None = (
            {} if coherent and self.size > 1 and self.fleet.race_check and stores else None
        )
        self.race: tuple[int, int, int] | None = None  # rank 0: the race the records show
        self.start: races.StartImage | None = (
            races.StartImage(memory) if self.race_log is not None and self.rank == 0 else None
        )
        if self.ckpt.resume:
            self._restore(checkpoint.load(self.ckpt.resume, program, n))
        self.acquire_pcs = scan.acquire_pcs
        if self.memory_mode == "homed" and coherent:
            self.router = Router(memory, tr, n)
            if self.start is not None:
                self.router.before_write = self.start.before_write
            self.router.drop_foreign()
            tr.before_remote = self._homed_release

    # ------------------------------------------------------------------ memory coherence
    def _note_access(self, s, sc, write: bool, ins, what: str = "") -> None:
        self.fleet.note_access(s, sc, write, ins, what)
        log = self.race_log
        if log is not None:
            clock = self.fleet.clock[s.id]
            k = (sc.coord, s.id, write, clock[s.id])
            if k not in log:
                log[k] = tuple(clock)
            if write and self.start is not None:
                self.start.before_write(sc.buf)
        if write:
            if self.router is not None:
                self.router.note_write(sc.coord)
            else:
                self.dirty[sc.coord] = None

    def _note_lifetime(self, s, sc, ins, free: bool) -> None:
        """SALLOC/SFREE write the coordinate (``Fleet.note_lifetime``): checked here and recorded for the
        check across ranks like any store."""
        self.fleet.note_lifetime(s, sc, ins, free)
        log = self.race_log
        if log is not None:
            clock = self.fleet.clock[s.id]
            log.setdefault((sc.coord, s.id, True, clock[s.id]), tuple(clock))

    def _tracked_alloc(self, coord: int, size: int, align: int, owner: int):
        sc = self._alloc(coord, size, align, owner)
        self.dirty[coord] = None
        return sc

    def _tracked_free(self, coord: int) -> None:
        self._free(coord)
        self.dirty[coord] = None

    def _take_dirty(self) -> list:
        """The scrolls written here since the last release, as update entries; the record starts afresh."""
        out = self._dirty_entries()
        self.dirty.clear()
        return out

    def _final_entries(self, clear: bool) -> list:
        """What rank 0 needs from this rank for the whole image: the scrolls homed here (homed memory)
        or the writes not yet shipped (replicated memory)."""
        if self.router is not None:
            return self.router.home_entries()
        return self._take_dirty() if clear else self._dirty_entries()

    def _dirty_entries(self) -> list:
        out = []
        for coord in self.dirty:
            sc = self.mem.table.get(coord)
            if sc is None:
                out.append((coord, None))
            else:
                meta = (sc.dtype, tuple(sc.shape), sc.align, sc.owner, sc.writer, sc.write_epoch)
                out.append((coord, meta, sc.buf.tobytes()))
        return out

    def _apply_update(self, entries: list) -> None:
        mem = self.mem
        for e in entries:
            coord = e[0]
            if e[1] is None:
                if coord in mem.table:
                    self._free(coord)
                continue
            (dtype, shape, align, owner, writer, epoch), raw = e[1], e[2]
            sc = mem.table.get(coord)
            if sc is not None and sc.size != len(raw):
                self._free(coord)
                sc = None
            if sc is None:
                try:
                    sc = mem.add(
                        coord,
                        scroll_buffer(len(raw), raw),
                        dtype=dtype,
                        shape=shape,
                        align=align,
                        owner=owner,
                    )
                except MemFault:  # over this rank's budget: the owner's run faults on its own terms
                    continue
            else:
                if self.start is not None:
                    self.start.before_write(sc.buf)
                sc.buf[:] = np.frombuffer(raw, np.uint8)
            sc.writer, sc.write_epoch = writer, epoch

    # ------------------------------------------------------------------ control plane
    def _control(self, src: int, obj: tuple) -> None:
        kind = obj[0]
        if kind == "probe":
            self.transport.send_control(("reply", obj[1], self._snapshot()), 0)
        elif kind == "reply":
            if obj[1] == self.wave:
                self.replies[src] = obj[2]
        elif kind == "halt":
            self.reports.append((obj[1], obj[2]))
        elif kind == "stop":
            self.stop = obj[1]
        elif kind == "ckpt":
            self.ckpt_due = True
        elif kind == "abort":  # another rank failed: acknowledge, then leave the loop and exit
            self.aborted = obj[1]
            self.stop = "aborted"
            self.transport.send_control(("abort-ack",), src)
        elif kind == "abort-ack":
            self.abort_acks.add(src)

    def stop_others(self, code: int, grace_s: float) -> bool:
        """Ask every other rank to exit with ``code``; True once all have acknowledged within ``grace_s``."""
        try:
            tr = self.transport
            for r in range(self.size):
                if r != self.rank:
                    tr.send_control(("abort", code), r)
            deadline = time.monotonic() + grace_s
            while len(self.abort_acks) < self.size - 1 and time.monotonic() < deadline:
                tr.poll()
                time.sleep(1e-3)
            return len(self.abort_acks) == self.size - 1
        except Exception:  # the transport itself is what failed
            return False

    def _snapshot(self) -> tuple:
        tr = self.transport
        halted = all(s.halted for s in self.mine)
        unparked = sum(1 for s in self.mine if not s.halted and s.id not in self.parked)
        activity = self.total + self.fleet.changes + tr.changes
        idle = self.idle and not tr.in_request
        return (idle, tr.sent, tr.received, activity, halted, unparked, len(self.parked))

    def _halt(self, status: str, fault: Fault | None) -> None:
        """This rank cannot go on (fault, step limit): rank 0 stops everyone."""
        fd = fault.as_dict() if fault else None
        if self.rank == 0:
            self.reports.append((status, fd))
        else:
            self.transport.send_control(("halt", status, fd), 0)

    def _coordinate(self) -> None:
        """Rank 0: turn halt reports into a stop; run termination waves while idle."""
        if self.stop is not None:
            return
        if self.reports:
            return self._broadcast_stop(self.reports[0][0])
        now = time.perf_counter()
        if self.replies and len(self.replies) == self.size:
            snap = tuple(self.replies[r] for r in range(self.size))
            self.replies = {}
            quiet = all(x[0] for x in snap) and sum(x[1] for x in snap) == sum(x[2] for x in snap)
            if quiet and all(x[4] for x in snap):
                # every sentron has halted and nothing is in flight: nothing can happen any more, and a
                # second wave would only confirm it (a halted sentron never runs again)
                return self._broadcast_stop(STATUS_OK)
            if quiet and snap == self.prev_snapshot:
                if any(x[6] for x in snap) and not any(x[5] for x in snap):  # every live sentron parked
                    self.prev_snapshot = None
                    self.ckpt_due = True
                    for r in range(1, self.size):
                        self.transport.send_control(("ckpt",), r)
                    return
                return self._broadcast_stop(STATUS_OK if all(x[4] for x in snap) else STATUS_DEADLOCK)
            self.prev_snapshot = snap if quiet else None
            self.last_wave = now
            return
        if self.replies or not self.idle or now - self.last_wave < WAVE_INTERVAL_S:
            return
        self.wave += 1
        self.replies = {0: self._snapshot()}
        for r in range(1, self.size):
            self.transport.send_control(("probe", self.wave), r)

    def _broadcast_stop(self, status: str) -> None:
        self.stop = status
        for r in range(1, self.size):
            self.transport.send_control(("stop", status), r)

    # ------------------------------------------------------------------ checkpoint/restart
    def _write_checkpoint(self) -> None:
        """Every rank sends its part of the cut (all its sentrons are parked, nothing is in flight) to
        rank 0, which writes one file; then the sentrons go on."""
        t0 = time.perf_counter()
        self.ckpt_due = False
        tr, fl = self.transport, self.fleet
        part = {
            "states": {s.id: _state_record(s, self.cbars[s.id]) for s in self.mine},
            "vregs": {s.id: s.V.copy() for s in self.mine},
            "clocks": {s.id: list(fl.clock[s.id]) for s in self.mine},
            "queues": [
                (src, dst, [(m.payload.hex(), list(m.clock), m.hops) for m in q])
                for (src, dst), q in sorted(tr.queues.items())
                if q
            ],
            "dirty": self._final_entries(clear=False) if self.rank else [],
            "counts": list(self.counts),
            "fleet": (fl.stats.messages, fl.stats.bytes, fl.stats.hops, fl.stats.routed, dict(tr.instances)),
        }
        got = self.comm.gather(part, root=0)
        if self.rank == 0:
            states: dict = {}
            vregs = np.zeros((self.n,) + self.states[0].V.shape, np.uint8)
            clocks: list = [None] * self.n
            queues: list = []
            counts = np.zeros(len(self.counts), np.int64)
            fleet = {"messages": 0, "bytes": 0, "hops": 0, "routed": 0, "instances": {}}
            for p in got:
                self._apply_update(p["dirty"])
                states.update(p["states"])
                for sid, v in p["vregs"].items():
                    vregs[sid] = v
                for sid, c in p["clocks"].items():
                    clocks[sid] = c
                queues += p["queues"]
                counts += np.asarray(p["counts"], np.int64)
                for k, v in zip(("messages", "bytes", "hops", "routed"), p["fleet"][:4], strict=True):
                    fleet[k] += v
                for k, v in p["fleet"][4].items():
                    fleet["instances"][k] = fleet["instances"].get(k, 0) + v
            scrolls = [
                (
                    {
                        "coord": str(sc.coord),
                        "dtype": sc.dtype,
                        "shape": list(sc.shape),
                        "align": sc.align,
                        "owner": sc.owner,
                        "writer": sc.writer,
                        "write_epoch": sc.write_epoch,
                    },
                    np.frombuffer(sc.buf.tobytes(), np.uint8),
                )
                for sc in self.mem.table.values()
            ]
            ck = checkpoint.Checkpoint(
                checkpoint.program_digest(self.program),
                self.n,
                max(st["cbars"] for st in states.values()),
                [states[i] for i in range(self.n)],
                vregs,
                clocks,
                sorted(queues),
                [int(x) for x in counts],
                fleet,
                scrolls,
            )
            size = checkpoint.save(self.ckpt.directory, ck)
            took = time.perf_counter() - t0
            self.ckpt_log.append((size, took))
            sys.stderr.write(
                f"vtpu: checkpoint after barrier {ck.barriers} -> {self.ckpt.directory} "
                f"({size:,} bytes, {took * 1e3:.1f} ms)\n"
            )
            self.wave += 1  # replies to an earlier probe are stale
            self.replies = {}
            if self.router is not None:
                self.router.drop_foreign()
        self.parked.clear()
        self.prev_snapshot = None

    def _restore(self, ck: checkpoint.Checkpoint) -> None:
        """Continue from ``ck``: any rank count (or one process) can resume any checkpoint."""
        for sid, st in enumerate(ck.states):
            s = self.states[sid]
            # in place: the compiled SIWs hold these very lists
            s.R[:] = [int(x) for x in st["r"]]
            s.P[:] = [int(x) for x in st["p"]]
            s.M[:] = [bytes.fromhex(x) for x in st["m"]]
            s.flags, s.pc, s.halted = st["flags"], st["pc"], st["halted"]
            s.coll_seq.clear()
            s.coll_seq.update({int(k): v for k, v in st["coll_seq"].items()})
            s.V[:] = ck.vregs[sid]
            self.cbars[sid] = st["cbars"]
        self.fleet.clock = [list(c) for c in ck.clocks]
        tr = self.transport
        for src, dst, msgs in ck.queues:
            if tr.owner[dst] == self.rank:
                tr.queues[(src, dst)] = deque(Message(src, bytes.fromhex(p), list(c), h) for p, c, h in msgs)
            elif tr.owner[src] == self.rank:
                tr.in_flight[(src, dst)] = len(msgs)
        mem = self.mem
        for coord in list(mem.table):
            self._free(coord)
        for meta, raw in ck.scrolls:
            sc = mem.add(
                int(meta["coord"]),
                scroll_buffer(raw.size, raw.tobytes()),
                dtype=meta["dtype"],
                shape=tuple(meta["shape"]),
                align=meta["align"],
                owner=meta["owner"],
            )
            sc.writer, sc.write_epoch = meta["writer"], meta["write_epoch"]
        if self.rank == 0:
            self.counts = list(ck.counts)
            st = self.fleet.stats
            f = ck.fleet
            st.messages, st.bytes, st.hops, st.routed = f["messages"], f["bytes"], f["hops"], f["routed"]
            tr.instances = dict(f["instances"])

    # ------------------------------------------------------------------ running
    def run(self) -> RunResult:
        t0 = time.perf_counter()
        with np.errstate(all="ignore"):
            rounds, local_fault = self._loop()
        if self.aborted is not None:
            raise RankStopped(self.aborted)
        status, fault = self._exchange(local_fault, rounds, time.perf_counter() - t0)
        if self.router is not None:
            self.router.uninstall()
        for name in ("alloc", "free"):  # the replicated mode's write tracking
            self.mem.__dict__.pop(name, None)
        if self.checks_races:
            golden = None
            if self.race is not None:
                coord, sid, other = self.race
                where = (
                    f"seen by sentron {sid}'s rank"
                    if other < 0
                    else f"sentrons {sid} and {other} on {coords.format_packed(coord)}"
                )
                sys.stderr.write(
                    f"vtpu: a data race across ranks ({where}): the report is the single-process "
                    "interpreter's, run again on rank 0\n"
                )
                golden = self._golden()
            # every rank ends with the golden status (its exit code), not the one its own part saw
            agreed = self._agree(golden.status if golden is not None else None)
            if golden is not None:
                return golden
            if agreed is not None:
                status = agreed
        wall = time.perf_counter() - t0
        siws, ops = count_ops(self.program, self.counts)
        return RunResult(status, fault, self.states, self.mem, self.fleet, siws, ops, self.rounds, wall)

    def _agree(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank. The other ranks wait napping, not spinning in MPI: rank 0
        may be running the program again, and on a host with few cores it needs them."""
        req = self.comm.Ibarrier()
        while not req.Test():
            time.sleep(IDLE_SLEEP_MAX_S)
        return self.comm.bcast(value, root=0)

    def _golden(self) -> RunResult:
        """Rank 0, after a race across ranks: the run again as one process, from the memory this run
        started from (or the checkpoint it resumed), whose report is the single-process one."""
        assert self.start is not None
        self.start.restore(self.mem)
        if self.ckpt.resume:
            one: Interpreter = RankInterpreter(
                self.program,
                self.n,
                LocalComm(),
                max_steps=self.max_steps,
                topology=self.fleet.topology,
                memory=self.mem,
                ckpt=Checkpointing(resume=self.ckpt.resume),
            )
        else:
            one = Interpreter(
                self.program, self.n, max_steps=self.max_steps, topology=self.fleet.topology, memory=self.mem
            )
        with np.errstate(all="ignore"):
            return one.run()

    def _loop(self) -> tuple[int, Fault | None]:
        code, counts, fleet, tr = self.code, self.counts, self.fleet, self.transport
        ncode = len(self.program.code)
        mine = self.mine
        budget = None
        if self.max_steps is not None:
            budget = self.max_steps * len(mine) // self.n
        rounds = 0
        nap = 0.0
        local_fault: Fault | None = None
        parked, cbar_pcs = self.parked, self.cbar_pcs
        router = self.router
        every = self.ckpt.every if self.ckpt.directory else 0
        halted_reported = False
        while self.stop is None:
            progress = False
            changes = fleet.changes
            if local_fault is None:
                t_round = time.perf_counter()
                for s in mine:
                    if s.halted or s.id in parked:
                        continue
                    pc = s.pc
                    if pc >= ncode:
                        s.halted = True
                        continue
                    if budget is not None and self.total >= budget:
                        local_fault = self._limit_fault()
                        self._halt(STATUS_LIMIT, local_fault)
                        break
                    fns, ready = code[s.id][pc]
                    try:
                        if ready is not None and not ready():
                            continue
                        s.wait = None
                        s.pc = pc + 1
                        for f in fns:
                            f()
                        if router is not None:
                            self._router_step(pc)
                    except OpFault as e:
                        s.pc = pc
                        local_fault = self._fault(s, pc, e)
                        self._halt(STATUS_FAULT, local_fault)
                        break
                    counts[pc] += 1
                    self.total += 1
                    progress = True
                    if pc in cbar_pcs:
                        self.cbars[s.id] += 1
                        if every and self.cbars[s.id] % every == 0:
                            parked.add(s.id)
                    if s.pc >= ncode:
                        s.halted = True
                if progress:
                    self.exec_s += time.perf_counter() - t_round
                if any(not s.halted for s in mine) or not halted_reported:
                    rounds += 1
                    halted_reported = all(s.halted for s in mine)
            changed = tr.poll()
            self.idle = local_fault is not None or not (progress or changed or fleet.changes != changes)
            if self.rank == 0:
                self._coordinate()
            if self.ckpt_due and self.stop is None:
                self._write_checkpoint()
                continue
            if self.idle:
                if nap:
                    time.sleep(nap)
                nap = min(IDLE_SLEEP_MAX_S, nap * 2 or 1e-5)
            else:
                nap = 0.0
        self.rounds = rounds
        return rounds, local_fault

    def _homed_release(self) -> None:
        """Before a C-pipe item leaves the rank: stores to remote scrolls go home first."""
        assert self.router is not None
        self.router.write_back()

    def _router_step(self, pc: int) -> None:
        """After an acquire, write back and drop the cache; a refused write-back is this SIW's fault."""
        assert self.router is not None
        try:
            self.router.after_step(pc in self.acquire_pcs)
        except MemFault as e:
            ops = [i for i in self.program.code[pc] if not i.is_nop]
            ins = next((i for i in ops if i.op.pipe == "S"), ops[0])
            raise OpFault(ins, str(e)) from None

    def _exchange(self, local_fault: Fault | None, rounds: int, wall: float) -> tuple[str, Fault | None]:
        """Every rank sends its sentrons, unshipped writes and counters to rank 0, which merges them."""
        tr, fl = self.transport, self.fleet
        # every rank has left its loop once this barrier completes; until then keep serving remote scroll
        # requests (a rank may be waiting on one of ours) and taking in what is still arriving
        if self.router is not None:
            self.router.write_back()  # the homes gather the final image
        done = self.comm.Ibarrier()
        nap = 0.0
        while not done.Test():
            if tr.poll():
                nap = 0.0
            elif EXCHANGE_NAP:  # leave the core to the ranks still finishing (a spin here slowed them)
                time.sleep(nap)
                nap = min(IDLE_SLEEP_MAX_S, nap * 2 or 1e-5)
            if self.aborted is not None:
                raise RankStopped(self.aborted)
        deadline = time.perf_counter() + 2.0
        while not tr.quiet() and time.perf_counter() < deadline:
            tr.poll()
        mine = {s.id: (s.snapshot(), s.wait, dict(s.coll_seq)) for s in self.mine}
        st = fl.stats
        payload = {
            "states": mine,
            "counts": np.array(self.counts, np.int64),
            "fault": local_fault.as_dict() if local_fault else None,
            "dirty": self._final_entries(clear=True) if self.rank else [],
            "accesses": self._race_records(),
            "fleet": (st.messages, st.bytes, st.hops, st.routed, dict(st.wait_rounds)),
            "instances": dict(tr.instances),
            "ppt": vars(self.mem.stats).copy(),
            "rounds": rounds,
            "timing": {
                "rank": self.rank,
                "sentrons": len(self.mine),
                "wall_s": wall,
                "exec_s": self.exec_s,
                "remote_messages": tr.remote_messages,
                "remote_bytes": tr.remote_bytes,
                "update_bytes": tr.update_bytes,
                "scroll_bytes": self.router.bytes_in + self.router.bytes_out if self.router else 0,
                "remote_accesses": self.router.remote_accesses if self.router else 0,
                **self._timing_extra(),
            },
        }
        got = self.comm.gather(payload, root=0)
        status = self.stop or STATUS_OK
        if self.rank != 0:
            return status, local_fault
        self._merge(got)
        faults = [Fault(**p["fault"]) for p in got if p["fault"]]
        if self.checks_races:
            self.race = self._find_race(got, faults)
        fault = None
        if status == STATUS_DEADLOCK:
            fault = self._deadlock()
        elif faults:
            fault = min(faults, key=lambda f: f.sentron)
            status = STATUS_FAULT if fault.kind == "fault" else STATUS_LIMIT
        return status, fault

    def _timing_extra(self) -> dict:
        """More per-rank figures for rank 0's report (the JIT path adds its own)."""
        return {"engine": "interp"}

    @property
    def checks_races(self) -> bool:
        """Whether this run looks for data races across ranks (the same answer on every rank)."""
        return self.race_log is not None

    def _race_records(self) -> Any:
        """What rank 0 needs from this rank to find a race across ranks."""
        return races.entries(self.race_log) if self.race_log is not None else None

    def _find_race(self, got: list[dict], faults: list[Fault]) -> tuple[int, int, int] | None:
        """Rank 0: a race in all ranks' records (or one a rank saw itself: its report may not be the
        one a single process gives either)."""
        seen = next((f for f in faults if f.message.startswith("data race")), None)
        return (0, seen.sentron, -1) if seen else races.find_race([p["accesses"] for p in got])

    def _merge(self, got: list[dict]) -> None:
        total = np.zeros(len(self.counts), np.int64)
        st = self.fleet.stats
        st.messages = st.bytes = st.hops = st.routed = 0
        st.wait_rounds = {}
        inst: dict[str, int] = {}
        ppt = self.mem.stats
        for k in vars(ppt):
            setattr(ppt, k, 0)
        self.rounds = 0
        for r, p in enumerate(got):
            total += p["counts"]
            if r:
                self._apply_update(p["dirty"])
                for sid, (snap, wait, seq) in p["states"].items():
                    s = self.states[sid]
                    s.R, s.P, s.M = snap["r"], snap["p"], snap["m"]
                    s.V[:] = snap["v"]
                    s.flags, s.pc, s.halted, s.wait, s.coll_seq = (
                        snap["flags"],
                        snap["pc"],
                        snap["halted"],
                        wait,
                        seq,
                    )
            msgs, nbytes, hops, routed, waits = p["fleet"]
            st.messages += msgs
            st.bytes += nbytes
            st.hops += hops
            st.routed += routed
            for k, v in waits.items():
                st.wait_rounds[k] = st.wait_rounds.get(k, 0) + v
            for k, v in p["instances"].items():
                inst[k] = inst.get(k, 0) + v
            for k, v in p["ppt"].items():
                setattr(ppt, k, getattr(ppt, k) + v)
            self.rounds = max(self.rounds, p["rounds"])
        self.counts = [int(x) for x in total]
        self.per_rank = [p["timing"] for p in got]
        st.barriers = inst.get("CBAR", 0)
        st.collectives = sum(v for k, v in inst.items() if k != "CBAR")


@dataclass(frozen=True)
class ProgramScan:
    """What the rank engines look up in a program's code, found once per program (a model's step runs
    the same program once per token, and its code has tens of thousands of SIWs)."""

    cbar_pcs: frozenset[int]  # SIWs with a CBAR on group all (checkpoints are taken there)
    acquire_pcs: frozenset[int]  # SIWs with an acquire (the homed router drops its cache after them)
    stores: bool  # any SSCATTR
    memory_writes: list[str]  # the scroll-table ops it uses, sorted


_SCANS: dict[int, tuple[Program, int, ProgramScan]] = {}


def program_scan(program: Program) -> ProgramScan:
    hit = _SCANS.get(id(program))
    if hit is not None and hit[0] is program and hit[1] == len(program.code):
        return hit[2]
    live = [(pc, i) for pc, siw in enumerate(program.code) for i in siw if not i.is_nop]
    scan = ProgramScan(
        frozenset(pc for pc, i in live if i.op.name == "CBAR" and i.args[0].value == 0),
        frozenset(pc for pc, i in live if i.op.name in ACQUIRES),
        any(i.op.name in STORES for _, i in live),
        sorted({i.op.name for _, i in live if i.op.name in MEMORY_WRITES}),
    )
    if len(_SCANS) > 64:
        _SCANS.pop(next(iter(_SCANS)))
    _SCANS[id(program)] = (program, len(program.code), scan)
    return scan


def _state_record(s: SentronState, cbars: int) -> dict:
    """A sentron's scalar state for a checkpoint manifest (vector registers travel as an array)."""
    return {
        "r": [str(x) for x in s.R],
        "p": [str(x) for x in s.P],
        "m": [x.hex() for x in s.M],
        "flags": s.flags,
        "pc": s.pc,
        "halted": s.halted,
        "coll_seq": {str(k): v for k, v in s.coll_seq.items()},
        "cbars": cbars,
    }


# =================================================================== the JIT on every rank
# S-pipe ops that write scrolls or change the scroll table: their effects would need the memory modes'
# coherence across ranks (homed / replicated), which the native code does not report to the host
MEMORY_WRITES = ("SALLOC", "SFREE", "SFLUSH", "SPREFCH", "SDEDUP")
STORES = ("SSCATTR",)  # stores into existing scrolls: replicated by the JIT ranks (bridge.ScrollTwins)


def jit_reason(
    program: Program, memory: Memory, o: EngineOptions, ckpt: Checkpointing
) -> tuple[Any, str | None]:
    """``(JitEngine, None)`` when this rank can run its sentrons natively, else ``(None, why not)``."""
    if ckpt.wanted:
        return (
            None,
            "checkpoint/restart runs on the interpreter: the JIT cannot stop at a barrier for a checkpoint yet",
        )
    writes = program_scan(program).memory_writes
    if writes:
        return None, (
            f"{', '.join(writes)}: the JIT ranks replicate stores into existing scrolls only; allocation, "
            "freeing, tier moves and SDEDUP need the interpreter's memory coherence across ranks"
        )
    try:
        from vtpu_cli.engines.jit.engine import JitEngine
    except ImportError as e:  # pragma: no cover - llvmlite missing
        return None, f"the JIT cannot load ({e})"
    eng = JitEngine(
        program,
        o.sentrons,
        max_steps=o.max_steps,
        topology=o.topology,
        memory=memory,
        cache_dir=o.cache_dir,
        no_cache=o.no_cache,
        portable=o.portable,
        opt=o.opt,
    )
    eng.compile()
    if eng.fallback_reason is not None:
        return None, eng.fallback_reason
    return eng, None


class RankJit(RankInterpreter):
    """This rank's sentrons as native threads (:mod:`vtpu_cli.cluster.bridge` plays the other ranks'
    sentrons in the fleet block); the control plane, the final exchange and the merge are
    :class:`RankInterpreter`'s. A run that does not end ``ok`` (a fault, a deadlock, a condition the
    native C pipe leaves to the golden model) is run again from the start by a :class:`RankInterpreter`
    on every rank, whose report is the one printed -- as the single-process JIT replays in the
    interpreter; the replay starts from the memory the native run started from (a program that stores
    is snapshotted first). Stores travel between ranks as :class:`~vtpu_cli.cluster.bridge.ScrollTwins`
    diffs; programs that change the scroll table stay on the interpreter (:func:`jit_reason`)."""

    def __init__(
        self,
        program: Program,
        n: int,
        comm: Any,
        *,
        topology,
        memory: Memory,
        jit: Any,
        ckpt=None,
        max_steps: int | None = None,
        spmd: Any = None,
    ):
        super().__init__(
            program, n, comm, max_steps=max_steps, topology=topology, memory=memory, ckpt=ckpt, coherent=False
        )
        self.spmd = spmd  # one run of many (cluster/spmd.py): every rank ends with the whole memory
        self.local_fault: Fault | None = None  # this rank's step limit
        self.spin = False  # the bridge never sleeps (set per run: see bridge.oversubscribed)
        self.napping = False  # blocked sentrons nap on the doorbell the bridge rings
        self.topology = topology
        self.jit = jit
        self.bridge: Any = None
        self.replayer: RankInterpreter | None = None
        self.replay = ""
        self.reported = False
        self.activity = 0
        self.halted_all = False
        self.nap = 0.0
        self.quiet_since = 0.0  # when the bridge last saw anything move
        self.slot_coords: list[tuple[int, int]] | None = None  # _stored_scrolls: (table slot, coordinate)
        self.last_words: Any = None
        self.open_scrolls: set[int] = set()
        self.native_comm: Any = None  # the native message path's communicator (cluster/pump.py)
        self.npath: Any = None
        self.idle_wait = 0  # what blocked sentrons call when the pump has nothing to move
        self.native: Any = None  # this rank's JitRunResult of an ok run
        self.twins: Any = None  # bridge.ScrollTwins when the program stores
        self.jit_races = False  # whether this run looks for stores shared across ranks (see _race_records)

    # ------------------------------------------------------------------ the bridge loop (main thread)
    def _step(self, sens: list) -> bool:
        from vtpu_cli.cluster.bridge import Bridge, ring_bell

        hub = self.jit.hub
        if self.bridge is None:
            from vtpu_cli.cluster.pump import MAX_NATIVE_COLL_SENTRONS, NativePath

            native = self.native_comm is not None and hub.fleet_blk is not None
            self.bridge = Bridge(
                hub,
                self.n,
                self.program.groups,
                self.transport.owner,
                self.rank,
                self.transport,
                native,
                native and self.n <= MAX_NATIVE_COLL_SENTRONS,
            )
            if self.twins is not None:
                self.bridge.before_release = self._ship_stores
            if native:
                owner, groups = self.transport.owner, self.program.groups
                self.npath = NativePath(
                    hub, self.n, groups, owner, self.rank, self.native_comm, self.idle_wait
                )
                self.npath.install()
        br, tr = self.bridge, self.transport
        now = time.perf_counter()
        e0 = br.epoch()
        blocked = br.all_blocked(sens, e0)
        moved = br.step()
        if self.npath is not None:
            moved = self.npath.pump() > 0 or moved
        changed = tr.poll()
        if changed and self.napping:
            ring_bell()  # a sentron waiting for what just arrived wakes now, not when its nap runs out
        if hub.events and not self.reported:  # a local sentron faulted (or needs the golden model)
            for _, sid in hub.events:
                if sens[sid].error is not None:
                    raise RuntimeError(f"sentron {sid}: JIT runtime error: {sens[sid].error!r}")
            self.reported = True
            from vtpu_cli.engines.jit.abi import ST_LIMIT

            if all(st == ST_LIMIT for st, _ in hub.events):  # this rank used its share of --max-steps
                self.local_fault = self._limit_fault()
                self._halt(STATUS_LIMIT, self.local_fault)
            else:
                self._halt("replay", None)
        e1 = br.epoch()
        self.halted_all = not hub.live and not hub.events
        self.idle = (blocked or self.halted_all) and not moved and not changed and e1 == e0
        self.activity = e1 + br.moved + (self.npath.moved if self.npath is not None else 0)
        if self.rank == 0:
            self._coordinate()
        if self.stop is not None:
            return False
        if moved or changed or e1 != e0:
            self.nap = 0.0
            self.quiet_since = now
        if moved or changed:
            pass
        elif (self.spin and not self.halted_all) or (
            not (blocked or self.halted_all) and BRIDGE_YIELD and now - self.quiet_since < BRIDGE_BUSY_SPIN_S
        ):
            # a local sentron is running and will soon hand the bridge something: stay close
            self.nap = 0.0
            os.sched_yield()
        elif not (blocked or self.halted_all):
            # a local sentron has been computing for a while: a yielding bridge would take half its core
            # on an oversubscribed host; what it hands over next waits at most one nap
            if self.nap:
                time.sleep(self.nap)
            self.nap = min(BRIDGE_BUSY_NAP_MAX_S, self.nap * 2 or 1e-5)
        else:
            if self.nap:
                time.sleep(self.nap)
            self.nap = min(BRIDGE_SLEEP_MAX_S, self.nap * 2 or 1e-5)
        return True

    def _snapshot(self) -> tuple:
        tr, npath = self.transport, self.npath
        sent, received = (npath.sent, npath.received) if npath is not None else (0, 0)
        return (
            self.idle,
            tr.sent + sent,
            tr.received + received,
            self.activity + tr.changes,
            self.halted_all,
            0,
            0,
        )

    # ------------------------------------------------------------------ stores (bridge.ScrollTwins)
    def _stored_scrolls(self) -> set[int] | None:
        """The scrolls this rank's sentrons may have stored to since the last diff (None: any), from the
        native race detector's writer words (``epoch << 16 | sid + 1`` per scroll-table slot, written at
        a sentron's first store in each of its epochs): a scroll whose word changed since the last diff,
        or whose writer was still in the epoch of that word at the last diff (it may have stored again
        since without changing the word). Scrolls written long ago -- a KV cache between tokens -- are
        then not compared at every release."""
        from vtpu_cli.engines.jit import comm as jit_comm

        br = self.bridge
        if not STORE_FILTER or not jit_comm.RACE_CHECK or br is None or br.blk is None:
            return None
        lay, q, tab = br.lay, br.q, self.jit.tab
        if self.slot_coords is None:  # the scroll table of this run
            used = np.flatnonzero(tab[:, 1] != np.uint64((1 << 64) - 1))
            self.slot_coords = [(int(sl), int(tab[sl, 0]) | (int(tab[sl, 1]) << 64)) for sl in used]
            self.last_words = np.zeros(tab.shape[0], np.uint64)
        words = q[lay["writer"] // 8 :][: 8 * tab.shape[0] : 8].copy()  # before the bytes are compared
        own = [int(q[(lay["clocks"] + s * lay["row"]) // 8 + s]) for s in range(self.n)]
        out, still_open = set(self.open_scrolls), set()
        for sl, coord in self.slot_coords:
            w = int(words[sl])
            if not w:
                continue
            if w != int(self.last_words[sl]):
                out.add(coord)
            if w >> jit_comm.WRITER_SHIFT >= own[(w & 0xFFFF) - 1]:
                still_open.add(coord)  # its writer may store again in this epoch: compare next time too
        self.last_words, self.open_scrolls = words, still_open
        return out | still_open

    def _ship_stores(self) -> None:
        entries = self.twins.diff(self._stored_scrolls())
        if entries:
            self.transport.broadcast_update(entries, self.twins.size(entries))

    def _apply_update(self, entries: list) -> None:
        if self.twins is not None:
            self.twins.apply(entries)

    def _final_entries(self, clear: bool) -> list:
        if self.spmd is not None:  # every rank gets every rank's final stores (_share_final_stores)
            return []
        return self.twins.diff(self._stored_scrolls()) if self.twins is not None else []

    def _share_final_stores(self) -> None:
        """SPMD runs: every rank's stores not yet shipped go to every other rank, so that each ends with
        the memory rank 0 reports (a model's logits and KV cache, the next run's starting point)."""
        got = self.comm.allgather(self.twins.diff(self._stored_scrolls()))
        for r, entries in enumerate(got):
            if r != self.rank:
                self.twins.apply(entries)

    def _timing_extra(self) -> dict:
        r = self.native
        return {"engine": "jit", "cycles": r.cycles if r is not None else 0}

    # ------------------------------------------------------------------ races across ranks
    @property
    def checks_races(self) -> bool:
        return self.jit_races

    def _race_records(self) -> Any:
        """The scrolls this rank's sentrons stored to and those they accessed at all, read from the native
        race detector (a writer word per scroll, a read epoch per sentron and scroll). The native code
        keeps only the last access, not the clocks of every one, so this cannot tell a race from an
        ordered access: rank 0 treats a scroll stored on one rank and accessed on another as a *suspect*
        and asks the single-process interpreter (:meth:`_golden`)."""
        if not self.jit_races:
            return None
        hub, tab = self.jit.hub, self.jit.tab
        lay, cap = hub.fleet_lay, tab.shape[0]
        q = hub.fleet_blk.view(np.uint64)
        writers = q[lay["writer"] // 8 :][: 8 * cap : 8]
        reads = q[lay["reads"] // 8 :][: self.n * cap].reshape(self.n, cap)[sorted(self.transport.local)]
        written, accessed = set(), set()
        for slot in np.flatnonzero(tab[:, 1] != np.uint64((1 << 64) - 1)):
            coord = int(tab[slot, 0]) | (int(tab[slot, 1]) << 64)
            if writers[slot]:
                written.add(coord)
                accessed.add(coord)
            elif reads.size and reads[:, slot].any():
                accessed.add(coord)
        return written, accessed

    def _find_race(self, got: list[dict], faults: list[Fault]) -> tuple[int, int, int] | None:
        recs = [p["accesses"] for p in got]
        for a, (written, _) in enumerate(recs):
            for b, (_, accessed) in enumerate(recs):
                shared = written & accessed if a != b else set()
                if shared:
                    return min(shared), a, b
        return None

    def _golden(self) -> RunResult:
        """Rank 0, a store shared across ranks: the program again as one process on the single-process
        JIT (whose exit code and report are the interpreter's: it replays races, faults and deadlocks in
        the interpreter), from the memory the run started from; the native run's final memory is put
        back afterwards (used when the golden run agrees that nothing went wrong)."""
        from vtpu_cli.engines.jit.engine import _restore, _snapshot

        final = _snapshot(self.mem)
        _restore(self.mem, self.start_snap)
        self.jit.max_steps = self.max_steps  # the whole budget, not this rank's share
        with np.errstate(all="ignore"):
            res = self.jit.run()
        if res.status == STATUS_OK:
            _restore(self.mem, final)
        return res

    # ------------------------------------------------------------------ running
    def run(self) -> RunResult:
        from vtpu_cli.cluster.bridge import RING_BELL, ScrollTwins, oversubscribed, wait_fn, waited_cycles
        from vtpu_cli.cluster.pump import native_wanted, pump_wait
        from vtpu_cli.engines.jit.abi import OFF_TSC0, OFF_TSC1
        from vtpu_cli.engines.jit.compile import tsc_hz
        from vtpu_cli.engines.jit.engine import _restore, _snapshot

        t0 = time.perf_counter()
        mem = self.mem
        ppt = ([list(w) for w in mem._cache], vars(mem.stats).copy())
        snap = None
        if program_scan(self.program).stores:
            self.jit.build_table()  # the buffers native code will use (made contiguous here, once)
            if self.spmd is not None:  # rerunnable: a replay starts from the memory as it is (no copy)
                self.twins = self.spmd.scroll_twins(mem)
            else:
                snap = _snapshot(mem)  # a replay starts from the memory this run started from
                self.twins = ScrollTwins(mem)
        local = self.transport.local
        # a core for every thread: poll without sleeping (the latency a cluster node should see)
        self.spin = not oversubscribed(len(local))
        self.napping = not self.spin and RING_BELL
        if self.max_steps is not None:  # each rank stops after its share (as the interpreter ranks do)
            self.jit.max_steps = self.max_steps * len(local) // self.n
        self.idle_wait = wait_fn(len(local))
        waiting = self.idle_wait
        if self.twins is None and self.size > 1 and self.n > 1 and native_wanted():
            # messages move natively (cluster/pump.py): a blocked sentron pumps before it waits
            self.native_comm = self.comm.Dup()
            waiting = pump_wait(self.idle_wait)
        waited = waited_cycles()
        try:
            sens, wall, comp = self.jit.run_partial(local, self._step, waiting)
        finally:
            if self.npath is not None:
                self.npath.uninstall()  # every sentron thread has stopped: nobody pumps any more
                self.transport.remote_messages += self.npath.messages
        if self.native_comm is not None and self.aborted is None:
            # every rank gets here (ok, fault, deadlock alike): take in what is still in flight, then free
            # (after an exception or an abort the communicator is left to the process's end)
            if self.npath is not None:
                self.npath.drain(self.comm)
            else:  # no fleet block (one sentron): nothing was sent, but the others' drain is collective
                self.comm.alltoall([0] * self.size)
            self.native_comm.Free()
        waited = waited_cycles() - waited
        if self.aborted is not None:
            raise RankStopped(self.aborted)
        if self.stop not in (STATUS_OK, STATUS_LIMIT):
            if snap is not None:
                _restore(mem, snap)
            else:
                mem._cache[:] = ppt[0]
                for k, v in ppt[1].items():
                    setattr(mem.stats, k, v)
            self.twins = None
            return self._replay(comp)
        res = self.native = self.jit._finish(sens, comp, wall)
        mine = [sens[i] for i in local]  # the others' contexts never ran here
        res.cycles = (
            max(int(x.u64[OFF_TSC1 // 8]) for x in mine) - min(int(x.u64[OFF_TSC0 // 8]) for x in mine)
            if mine
            else 0
        )
        # the communication overhead's complement, as the interpreter ranks count it (time executing):
        # the sentrons' native time less what they waited in the C pipe, per local sentron
        hz, _ = tsc_hz()
        if mine and hz:
            spans = sum(max(0, int(x.u64[OFF_TSC1 // 8]) - int(x.u64[OFF_TSC0 // 8])) for x in mine)
            self.exec_s = max(0, spans - waited) / hz / len(mine)
        for sid in self.transport.local:
            self.states[sid] = res.sentrons[sid]
        self.mine = [self.states[i] for i in self.transport.local]
        self.counts = list(res.counts)
        self.rounds = res.rounds
        fs, js = self.fleet.stats, res.fleet.stats
        fs.messages, fs.bytes, fs.routed, fs.hops = js.messages, js.bytes, js.routed, js.hops
        self.transport.instances = {"CBAR": js.barriers, "CREDUCE": js.collectives}
        # repeated SPMD runs (cluster/spmd.py) keep no start image to run the program again from
        self.jit_races = self.twins is not None and self.size > 1 and self.n > 1 and self.spmd is None
        self.start_snap = snap
        status, fault = self._exchange(self.local_fault, res.rounds, time.perf_counter() - t0)
        if self.spmd is not None and self.twins is not None:
            self._share_final_stores()
        if self.jit_races:
            golden = self._golden() if self.race is not None else None
            bad = golden is not None and golden.status != STATUS_OK
            agreed = self._agree(golden.status if bad else None)  # type: ignore[union-attr]
            if bad:  # the golden report, as a replay of a native fault is
                assert golden is not None and self.race is not None
                sys.stderr.write(
                    f"vtpu: {coords.format_packed(self.race[0])} is stored on rank {self.race[1]} and "
                    f"accessed on rank {self.race[2]}, and the program run again as one process on rank 0 "
                    "does not end ok: its report is printed\n"
                )
                self.replay = "interp"
                return golden
            if agreed is not None:
                status = agreed
        siws, ops = count_ops(self.program, self.counts)
        return self._as_jit(
            RunResult(
                status, fault, self.states, mem, self.fleet, siws, ops, self.rounds, time.perf_counter() - t0
            ),
            comp,
            cycles=max((p.get("cycles", 0) for p in self.per_rank), default=res.cycles),
            counts=self.counts,
        )

    def _replay(self, comp: Any) -> RunResult:
        """Every rank runs the program again on the interpreter, from the start, for the golden report."""
        self.transport.finish()  # the native run's items still in flight: taken in before the replay
        comm = self.comm.Dup()
        try:
            self.replayer = RankInterpreter(
                self.program,
                self.n,
                comm,
                max_steps=self.max_steps,
                topology=self.topology,
                memory=self.mem,
                ckpt=self.ckpt,
            )
            res = self.replayer.run()
            self.replayer.transport.finish()
        finally:
            comm.Free()
        self.per_rank, self.memory_mode = self.replayer.per_rank, self.replayer.memory_mode
        self.replay = "interp"
        out = self._as_jit(res, comp, cycles=0, counts=self.replayer.counts)
        out.replay = "interp"
        return out

    def _as_jit(self, r: RunResult, comp: Any, cycles: int, counts: list) -> RunResult:
        from vtpu_cli.engines.jit.compile import tsc_hz
        from vtpu_cli.engines.jit.engine import JitRunResult

        hz, src = tsc_hz()
        out = JitRunResult(
            r.status,
            r.fault,
            r.sentrons,
            r.memory,
            r.fleet,
            r.siws,
            r.ops_by_pipe,
            r.rounds,
            r.wall_s,
            None,
            engine="jit",
            fallback=None,
            compile_s=comp.compile_s,
            cache_hit=comp.cache_hit,
            cycles=cycles,
            tsc_hz=hz,
            tsc_source=src,
        )
        out.run_s = cycles / hz if hz else 0.0
        out._counts = list(counts)
        return out

    def stop_others(self, code: int, grace_s: float) -> bool:
        if self.replayer is not None:  # the others listen on the replay's communicator now
            return self.replayer.stop_others(code, grace_s)
        return super().stop_others(code, grace_s)
