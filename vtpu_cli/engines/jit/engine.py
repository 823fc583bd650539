"""The llvmlite JIT engine's runtime: every sentron an OS thread running the compiled native function.

``compile.py`` turns the program into a cached native object (``lowering.py`` emits the IR); this
module runs it: per-sentron context blocks (``abi.py``), threads calling native code through ctypes
with the GIL released, host callbacks for scroll allocation/tiers and SDEDUP (the interpreter's own
semantics hooks on a shadow :class:`SentronState`, under one lock), the native C pipe's deadlock
watchdog (``comm.py``), and the replay of native faults and deadlocks in the interpreter for the
golden report. See ``docs/jit.md`` for what is exact, what is timing dependent and what falls back.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import ctypes
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vtpu_cli.binary.program import Program
from vtpu_cli.core import buffers
from vtpu_cli.core.errors import VtpuError
from vtpu_cli.core.resources import usable_cores
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
    load_memory,
)
from vtpu_cli.engines.compare import same_result
from vtpu_cli.engines.interp.interpreter import Interpreter
from vtpu_cli.engines.jit.compile import (
    TIER0_OPT,
    Compiled,
    JitError,
    _portable_env,
    block_limited,
    compile_detached,
    compile_program,
    jit_available,
    tsc_hz,
)
from vtpu_cli.fleet.cpipe import Fleet
from vtpu_cli.isa.table import PIPES
from vtpu_cli.machine.memory import Memory, ppt_set
from vtpu_cli.machine.semantics import NP, SEM, OpFault

try:  # llvmlite is a hard dependency, but the engine must degrade to a clear reason without it
    import llvmlite.binding as llvm

    from vtpu_cli.engines.jit import comm as jit_comm
    from vtpu_cli.engines.jit import lowering as L
except Exception as _e:  # pragma: no cover - exercised only on broken installs
    llvm = None
    _IMPORT_ERROR = f"llvmlite is not importable: {_e}"
else:
    _IMPORT_ERROR = ""

# a faulting fast-variant run of at most this many SIWs is replayed in the interpreter; longer ones
# natively with the precise variant
REPLAY_INTERP_STEPS = 200_000
# ... and a faulting run of several sentrons that edit the scroll table, up to this many (its fault may
# depend on timing where the golden model reports a race; past this the interpreter would take minutes)
EDIT_REPLAY_INTERP_STEPS = 20_000_000
_CB3 = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
_CB2 = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64)
_ENTRY = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)


class _Hub:
    """Shared run state: the lock/condition the C-pipe callbacks use, abort flag, deadlock bookkeeping."""

    def __init__(self, n: int):
        self.cond = threading.Condition()
        self.gen = 0
        self.checked: dict[int, int] = {}
        self.live = set(range(n))
        self.abort = buffers.zeros(1, np.int32)
        self.steps = buffers.zeros(1, np.int64)
        self.events: list[tuple[str, int]] = []  # (kind, sid) in order of occurrence
        self.deadlock = False
        self.fleet_raw = self.fleet_blk = None
        self.fleet_addr = 0

    def watch(self, sens) -> None:
        """The deadlock watchdog (native C pipe, several sentrons): every live sentron is blocked and
        failed its readiness check after the last state change (the epoch it read is the current one)."""
        if self.fleet_blk is None or self.deadlock or self.abort[0]:
            return
        lay = self.fleet_lay
        chg = self.fleet_blk[lay["chg"] : lay["chg"] + 64 * len(sens)].view(np.int64)[::8]
        e0 = int(chg.sum())  # the epoch: the sum of every sentron's change counter (comm._changes)
        with self.cond:
            live = list(self.live)
            if not live:
                return
            for sid in live:
                x = sens[sid].ext
                if x[(L.OFF_BLOCKED - L.OFF_FLEET) // 8] != 1 or x[(L.OFF_SEEN - L.OFF_FLEET) // 8] != e0:
                    return
            if int(chg.sum()) != e0 or self.abort[0]:
                return
            self.deadlock = True
            self.set_abort()

    def set_abort(self) -> None:
        self.abort[0] = 1
        self.cond.notify_all()


class _Sentron:
    def __init__(self, eng: JitEngine, sid: int):
        self.eng = eng
        self.sid = sid
        self.ctx = buffers.aligned_zeros(L.CTX_SIZE)
        self.addr = self.ctx.ctypes.data
        s = SentronState(sid, eng.n)
        V = self.ctx[L.OFF_V : L.OFF_V + 32 * 64].reshape(32, 64)
        s.V = V
        s._views = {t: V.view(NP[t]) for t in NP if t not in ("t2", "u8")}
        s._views["u8"] = V
        self.s = s
        # zero at entry: the native code counts some blocks in this array directly (see
        # compile._block_counters), so each call needs a fresh one
        self.counts = buffers.zeros(max(len(eng._comp_now.leaders), 1), np.int64)
        self.ppt = buffers.zeros(eng.mem.sets * (1 + 4 * eng.mem.ways), np.uint64)  # the native LRU state
        self.closures: dict[tuple[int, int], object] = {}
        self.fault: Fault | None = None
        self.error: BaseException | None = None
        self.status = -1
        self.i64 = self.ctx[: L.OFF_V].view(np.int64)
        self.u64 = self.ctx[: L.OFF_V].view(np.uint64)
        self.ext = self.ctx[L.OFF_FLEET : L.CTX_SIZE].view(np.int64)  # C-pipe words (see jit_comm)
        self.tgen = self.ctx[L.OFF_TGEN : L.OFF_TGEN + 8].view(np.uint64)  # its PPT's table generation

    # ------------------------------------------------------------------ ctx <-> shadow state
    def init_ctx(self, hub: _Hub) -> None:
        s, q = self.s, self.i64
        q[L.OFF_SID // 8] = s.id
        q[L.OFF_SCOUNT // 8] = s.n
        q[L.OFF_MAXSTEPS // 8] = self.eng.max_steps if self.eng.max_steps is not None else -1
        u = self.u64
        u[L.OFF_STEPS_PTR // 8] = hub.steps.ctypes.data
        u[L.OFF_ABORT_PTR // 8] = hub.abort.ctypes.data
        u[L.OFF_COUNTS_PTR // 8] = self.counts.ctypes.data
        u[L.OFF_PPT // 8] = self.ppt.ctypes.data
        u[L.OFF_SLOWCB // 8] = _CB_ADDR["slow"]
        u[L.OFF_READYCB // 8] = _CB_ADDR["ready"]
        e = self.ext
        e[:] = 0
        e[(L.OFF_FLEET - L.OFF_FLEET) // 8] = hub.fleet_addr
        e[(L.OFF_YIELD - L.OFF_FLEET) // 8] = _YIELD_ADDR
        if hub.fleet_addr:
            race = self.ctx[L.OFF_RACE : L.OFF_RACE + 32].view(np.uint64)
            race[:] = jit_comm.race_words(hub.fleet_lay, hub.fleet_addr, s.id)
        u[L.OFF_HOME // 8] = s.home & 0xFFFFFFFFFFFFFFFF
        u[L.OFF_HOME // 8 + 1] = s.home >> 64
        self.to_ctx()

    def to_ctx(self) -> None:
        s, q, u = self.s, self.i64, self.u64
        q[0:16] = s.R
        for i, p in enumerate(s.P):
            u[L.OFF_P // 8 + 2 * i] = p & 0xFFFFFFFFFFFFFFFF
            u[L.OFF_P // 8 + 2 * i + 1] = p >> 64
        q[L.OFF_FLAGS // 8] = s.flags
        for i, m in enumerate(s.M):
            self.ctx[L.OFF_M + 64 * i : L.OFF_M + 64 * i + 64] = np.frombuffer(
                m[:64].ljust(64, b"\0"), np.uint8
            )
            q[L.OFF_MLEN // 8 + i] = len(m)

    def from_ctx(self) -> None:
        s, q, u = self.s, self.i64, self.u64
        s.R[:] = [int(x) for x in q[0:16]]
        s.P[:] = [int(u[L.OFF_P // 8 + 2 * i]) | (int(u[L.OFF_P // 8 + 2 * i + 1]) << 64) for i in range(8)]
        s.flags = int(q[L.OFF_FLAGS // 8])
        for i in range(4):
            ln = int(q[L.OFF_MLEN // 8 + i])
            s.M[i] = self.ctx[L.OFF_M + 64 * i : L.OFF_M + 64 * i + ln].tobytes()

    def set_exit(self, status: int, pc: int, slot: int) -> int:
        q = self.i64
        q[L.OFF_STATUS // 8] = status
        q[L.OFF_PC // 8] = pc
        q[L.OFF_SLOT // 8] = slot
        return status

    def closure(self, pc: int, slot: int):
        key = (pc, slot)
        c = self.closures.get(key)
        if c is None:
            ins = self.eng.program.code[pc][slot]
            c = self.closures[key] = SEM[ins.op.name](ins, self.s, self.eng.env)
        return c

    def make_fault(self, pc: int, e: OpFault) -> Fault:
        return Fault.from_op(self.eng.program, self.sid, pc, e)

    # ------------------------------------------------------------------ the native PPT <-> Memory
    def ppt_to_native(self) -> None:
        """Memory's translation cache -> this sentron's native LRU block; counters zeroed."""
        mem, eng = self.eng.mem, self.eng
        sets, ways = mem.sets, mem.ways
        a = self.ppt
        a[:] = 0
        ents = a[sets:].reshape(sets, ways, 4)
        ptrs = eng.scroll_ptrs
        if eng.edits:  # entries of scrolls another sentron freed since are dropped (Memory._invalidate)
            mem._cache[:] = [[c for c in lst if c in ptrs] for lst in mem._cache]
        a[:sets] = [len(lst) for lst in mem._cache]
        for si, lst in enumerate(mem._cache):
            if lst:
                ents[si, : len(lst)] = [(c & 0xFFFFFFFFFFFFFFFF, c >> 64, *ptrs[c]) for c in lst]
        u = self.u64
        u[L.OFF_TAB // 8] = eng.tab.ctypes.data
        u[L.OFF_TABMASK // 8] = eng.tab.shape[0] - 1
        u[L.OFF_PPTHITS // 8] = 0
        u[L.OFF_PPTMISSES // 8] = 0

    def ppt_from_native(self, cache: bool = True) -> None:
        """This sentron's native LRU block and counters -> Memory (counters added, then zeroed).
        ``cache=False``: counters only (the end of a run keeps the last sentron's cache, as every
        sentron's copy replaces the whole of it)."""
        mem = self.eng.mem
        sets, ways = mem.sets, mem.ways
        a = self.ppt
        if cache:
            ents = a[sets:].reshape(sets, ways, 4)
            # through Python lists: indexing the array element by element cost ~30 us a sentron a run
            lo, hi = ents[:, :, 0].tolist(), ents[:, :, 1].tolist()
            for si, n in enumerate(a[:sets].tolist()):
                mem._cache[si] = [lo[si][k] | (hi[si][k] << 64) for k in range(n)] if n else []
            if self.eng.edits:  # a scroll another sentron freed may linger here until an acquire
                table = mem.table
                mem._cache[:] = [[c for c in lst if c in table] for lst in mem._cache]
        u = self.u64
        mem.stats.hits += int(u[L.OFF_PPTHITS // 8])
        mem.stats.misses += int(u[L.OFF_PPTMISSES // 8])
        u[L.OFF_PPTHITS // 8] = 0
        u[L.OFF_PPTMISSES // 8] = 0

    def ppt_drop(self, coord: int) -> None:
        """Remove ``coord``'s entry from this sentron's native LRU block, if it has one (the later ones
        move up, as ``Memory._invalidate`` removes it from a set's list)."""
        sets, ways = self.eng.mem.sets, self.eng.mem.ways
        si = ppt_set(coord, sets)
        n = int(self.ppt[si])
        ents = self.ppt[sets:].reshape(sets, ways, 4)[si]
        lo, hi = coord & 0xFFFFFFFFFFFFFFFF, coord >> 64
        for k in range(n):
            if int(ents[k, 0]) == lo and int(ents[k, 1]) == hi:
                ents[k : n - 1] = ents[k + 1 : n].copy()
                ents[n - 1] = 0
                self.ppt[si] = n - 1
                return

    # ------------------------------------------------------------------ callbacks (GIL held)
    def cb_slow(self, pc: int, slot: int) -> int:
        self.from_ctx()
        eng = self.eng
        hub = eng.hub
        ins = eng.program.code[pc][slot]
        room = True
        try:
            with hub.cond:
                if ins.op.blocking:
                    _, run = self.closure(pc, slot)
                    run()
                    hub.gen += 1
                    hub.cond.notify_all()
                elif slot == 1:  # S-pipe runtime ops may translate, allocate or move scrolls
                    # several sentrons: this sentron's PPT stays native and only loses the edited
                    # coordinate's entry (Memory._invalidate; after SFLUSH the next access finds the moved
                    # buffer; SFLUSH's own translation is counted on Memory's cache: the totals stay
                    # exact, the split never was with several sentrons); SPREFCH/SDEDUP round-trip
                    quick = eng.edits and ins.op.edits_scrolls
                    if not quick:
                        self.ppt_from_native()
                    coord = self.s.P[ins.args[0].idx] if ins.op.edits_scrolls else 0
                    before = eng.tgen() if eng.edits else 0
                    try:
                        self.closure(pc, slot)()
                    finally:
                        if ins.op.edits_scrolls:
                            if eng.edits:
                                room = eng.edit_table(coord)
                            else:
                                eng.build_table()
                        if quick:
                            self.ppt_drop(coord)
                            if int(self.tgen[0]) == before:  # nothing else was pending: up to date
                                self.tgen[0] = eng.tgen()
                        else:
                            self.ppt_to_native()
                            if eng.edits:
                                self.tgen[0] = eng.tgen()
                    if quick and room and not eng.over_budget():
                        return 0  # no register changed: the native code reloads what it spilled
                else:
                    self.closure(pc, slot)()
        except OpFault as e:
            self.fault = self.make_fault(pc, e)
            self.s.pc = pc
            return self.set_exit(L.ST_PYFAULT, pc, slot)
        if not room or (eng.edits and eng.over_budget()):
            # the run's scroll table is full, or the buffers kept for stale readers would pass the memory
            # budget: the interpreter replays the run (docs/jit.md)
            return self.set_exit(L.ST_REPLAY, pc, slot)
        self.to_ctx()
        return 0

    def cb_ready(self, pc: int) -> int:
        self.from_ctx()
        hub = self.eng.hub
        s = self.s
        with hub.cond:
            while True:
                if hub.abort[0]:
                    return self.set_exit(L.ST_ABORT, pc, 2)
                try:
                    ready, _ = self.closure(pc, 2)
                    ok = ready()
                except OpFault as e:
                    self.fault = self.make_fault(pc, e)
                    s.pc = pc
                    return self.set_exit(L.ST_PYFAULT, pc, 2)
                if ok:
                    s.wait = None
                    hub.checked.pop(self.sid, None)
                    return 0
                s.pc = pc
                hub.checked[self.sid] = hub.gen
                if all(hub.checked.get(x) == hub.gen for x in hub.live):
                    hub.deadlock = True
                    hub.set_abort()
                    return self.set_exit(L.ST_DEADLOCK, pc, 2)
                hub.cond.wait(0.05)

    # ------------------------------------------------------------------ the thread body
    def run(self) -> None:
        try:
            self.status = int(_ENTRY(self.eng._comp_now.entry)(self.addr))
        except BaseException as e:  # pragma: no cover - native code never raises
            self.error = e
            self.status = L.ST_ERROR
        hub = self.eng.hub
        with hub.cond:
            hub.live.discard(self.sid)
            hub.checked.pop(self.sid, None)
            hub.gen += 1
            if self.status not in (L.ST_OK, L.ST_ABORT):
                hub.events.append((self.status, self.sid))
                hub.set_abort()
            hub.cond.notify_all()


_REGISTRY: dict[int, _Sentron] = {}


class _Worker:
    """A sentron thread kept for the engine's life (rerunnable engines: a model step runs thousands of
    times). Starting a thread per sentron per run cost more than a small step itself: the start
    handshake needs the GIL, and the sentron started first spins at its first barrier while the next
    thread is still being created (measured in docs/jit.md)."""

    def __init__(self, name: str):
        # raw locks, not Events: a wake-up is one release, not a Condition's Python-level bookkeeping
        self.go = threading.Lock()
        self.go.acquire()
        self.done = threading.Lock()
        self.done.acquire()
        self.busy = False
        self.job = None
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            self.go.acquire()
            job, self.job = self.job, None
            if job is None:
                return  # stopped (the engine was collected)
            try:
                job()
            finally:
                job = None  # the job holds the engine: a parked worker must not keep it alive
                self.done.release()

    def submit(self, job) -> None:
        self.job = job
        self.busy = True
        self.go.release()

    def is_alive(self) -> bool:
        """Whether the submitted job is still running (the ``Thread.is_alive`` the run loop polls)."""
        return self.busy

    def join(self, timeout: float | None = None) -> None:
        if self.busy and self.done.acquire(timeout=-1 if timeout is None else timeout):
            self.busy = False


def _stop_workers(workers: list[_Worker]) -> None:
    for w in workers:
        w.job = None
        if w.go.locked():
            w.go.release()


def _yield_addr() -> int:
    try:
        return ctypes.cast(ctypes.CDLL(None).sched_yield, ctypes.c_void_p).value or 0
    except (OSError, AttributeError):  # pragma: no cover - no libc symbol: blocked sentrons only pause
        return 0


_YIELD_ADDR = _yield_addr()


def _wrap(fn):
    def cb(ctx, *args):
        sen = _REGISTRY.get(ctx)
        try:
            return fn(sen, *args)
        except BaseException as e:  # never let an exception unwind into native code
            if sen is None:
                return L.ST_ERROR
            sen.error = e
            q = sen.i64
            q[L.OFF_STATUS // 8] = L.ST_ERROR
            return L.ST_ERROR

    return cb


_CALLBACKS = {
    "slow": _CB3(_wrap(lambda sen, pc, slot: sen.cb_slow(pc, slot))),
    "ready": _CB2(_wrap(lambda sen, pc: sen.cb_ready(pc))),
}
_CB_ADDR = {k: ctypes.cast(v, ctypes.c_void_p).value for k, v in _CALLBACKS.items()}


# =================================================================== the engine
def _check_replay(native: tuple, out) -> None:
    """A replayed fault report is used only when the native run faulted at the same place: the replay's
    faulting sentron faulted natively, at the same SIW and slot. (With several sentrons the native run
    stops the others at the first fault, so another sentron's later fault may be absent natively.)
    A disagreement is an engine bug, never reported as the program's fault."""
    f = out.fault
    if not native:
        return
    if f is None or f.kind != "fault":
        raise JitError(f"native fault at {native} but the replay ended with status {out.status}")
    if len(out.sentrons) > 1 and f.message.startswith("data race"):
        return  # the fault ended the native run before its schedule reached the race the replay reports
    at = {sid: (pc, slot) for sid, pc, slot in native}
    if f.sentron in at:
        pc, slot = at[f.sentron]
        if (pc, PIPES[slot] if 0 <= slot < len(PIPES) else "?") != (f.siw, f.pipe):
            raise JitError(
                f"sentron {f.sentron} faulted natively at SIW {pc} slot {slot} but the replay reports "
                f"SIW {f.siw} {f.pipe} pipe ({f.message})"
            )
    elif len(at) == len(out.sentrons) or len(out.sentrons) == 1:
        raise JitError(f"native faults {native} but the replay reports sentron {f.sentron}")


@dataclass
class JitRunResult(RunResult):
    compile_s: float = 0.0
    cache_hit: str = ""
    cycles: int = 0  # TSC ticks of the native run (first entry to last exit over all sentrons)
    tsc_hz: float = 0.0
    tsc_source: str = ""
    ppt_fast_hits: int = 0
    run_s: float = 0.0  # seconds of native execution (cycles / TSC frequency)
    replay: str = ""  # "" | "interp" | "precise": how a native fault was replayed for the report
    tier: int = 1  # 0: the run executed tier-0 (quickly compiled) code; 1: fully optimised code
    # (sentron, SIW, slot) of every sentron whose fast native run faulted; a replay's report must agree
    native_faults: tuple = ()

    @property
    def counts(self) -> list[int]:
        return self._counts

    _counts: list = None  # type: ignore[assignment]


SNAPSHOT_BYTES = 64 << 20  # scrolls beyond this are not copied before a run (see JitEngine.run)
# several sentrons that edit the scroll table: a run's table has room for at least this many new
# coordinates (or one per SALLOC per sentron); a run that needs more is replayed and the next run gets
# room for four times as many
EDIT_ROOM = 64


def _fill_table(ptrs: dict[int, tuple[int, int]], room: int) -> tuple[np.ndarray, dict[int, int]]:
    """The native scroll table of ``ptrs`` (coordinate -> pointer, size), at most half full with
    ``room`` more coordinates, and each coordinate's slot (open addressing, ``lowering.table_slot``)."""
    cap = 16
    while cap < 2 * (len(ptrs) + room):
        cap *= 2
    tab = buffers.zeros((cap, 4), np.uint64)
    tab[:, 1] = L.TAB_EMPTY
    slots = {}
    for c, (ptr, size) in ptrs.items():
        lo, hi = c & 0xFFFFFFFFFFFFFFFF, c >> 64
        h = L.table_slot(lo, hi, cap - 1)
        while tab[h, 1] != L.TAB_EMPTY:
            h = (h + 1) & (cap - 1)
        tab[h] = (lo, hi, ptr, size)
        slots[c] = h
    return tab, slots


def _native_buffer(sc) -> tuple[int, int]:
    """(pointer, size) of a scroll's bytes for native code (a buffer it cannot write in place -- not
    contiguous, read-only, not u8 -- is replaced by a copy first)."""
    buf = sc.buf
    if not (buf.flags.c_contiguous and buf.flags.writeable and buf.dtype == np.uint8 and buf.ndim == 1):
        sc.buf = buf = np.array(buf, np.uint8).reshape(-1)
    return buf.ctypes.data, buf.shape[0]


MAX_JIT_SIWS = 20_000  # larger programs run on the interpreter, with a note (docs/limits.md)
MAX_JIT_SIWS_ENV = "VTPU_JIT_MAX_SIWS"


MAX_JIT_SENTRONS = 64  # larger fleets run on the interpreter, with a note (docs/limits.md)
MAX_JIT_SENTRONS_ENV = "VTPU_JIT_MAX_SENTRONS"


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        raise VtpuError(f"${name} must be a whole number") from None


TIERED_ENV = "VTPU_JIT_TIERED"  # "0": engines asked for tiered compilation compile fully at once


def tiering_allowed() -> bool:
    """Whether tiered compilation may be used (``$VTPU_JIT_TIERED`` is not ``0``)."""
    return os.environ.get(TIERED_ENV, "1").strip() != "0"


class _Tier1:
    """A tier-1 (fully optimised) compile running in the background behind tier-0 code: a thread that
    waits for child processes only (``JitEngine._tier1_compile``). ``result`` is then the loader the
    engine calls between runs in its own thread, or ``error`` the reason the compile failed (the engine
    then keeps tier 0)."""

    def __init__(self, compile_fn):
        self.t0 = time.perf_counter()
        self.result = None
        self.error: str | None = None
        self.ready_s = 0.0  # seconds from the start of the background compile to its code being loaded
        self.sent = threading.Event()  # the detached compile process has its whole job
        self.thread = threading.Thread(
            target=self._run, args=(compile_fn,), name="vtpu-jit-tier1", daemon=True
        )
        self.thread.start()

    def _run(self, compile_fn) -> None:
        try:
            self.result = compile_fn(self.sent)
        except Exception as e:  # noqa: BLE001 - any failure leaves the tier-0 code running
            self.error = str(e) or type(e).__name__
        finally:
            self.ready_s = time.perf_counter() - self.t0

    def done(self) -> bool:
        return not self.thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        self.thread.join(timeout)
        return self.done()

    def wait_sent(self, timeout: float) -> None:
        """Until the detached process holds its job (this process may then exit), the compile ended,
        or ``timeout`` seconds passed."""
        end = time.perf_counter() + timeout
        while not self.sent.wait(0.02) and not self.done() and time.perf_counter() < end:
            pass


_TIERED_DEFAULT: contextvars.ContextVar[bool] = contextvars.ContextVar("vtpu_jit_tiered", default=False)


@contextlib.contextmanager
def tiered_engines(on: bool = True) -> Iterator[None]:
    """JIT engines created inside this block (in this thread) default to ``tiered=on``: the way to ask
    for tiers through ``engines.select.open_engine``, whose options have no such field."""
    tok = _TIERED_DEFAULT.set(on)
    try:
        yield
    finally:
        _TIERED_DEFAULT.reset(tok)


BACKGROUND_ENV = "VTPU_JIT_BACKGROUND"  # "now" | "later": when a tiered engine starts its tier-1 compile


def background_now(sentrons: int) -> bool:
    """Whether a tiered engine starts its tier-1 compile at once, beside its runs, or leaves it for
    :meth:`JitEngine.start_optimised` (``vtpu generate`` calls it when the text is out, so the next
    start finds the optimised code cached): ``$VTPU_JIT_BACKGROUND`` (``now`` / ``later``), else at once
    only when this process may use at least two cores more than its sentron threads. On a 2-core host
    a background compile beside a one-sentron run slowed the tier-0 decode 1.5-2x and a 64-token
    prefill 1.6x while it ran -- more than the optimised code then gains (decode 5 %, prefill 22 %)."""
    v = os.environ.get(BACKGROUND_ENV, "").strip().lower()
    if v in ("now", "later"):
        return v == "now"
    return usable_cores() >= sentrons + 2


def max_jit_siws() -> int:
    """The largest program the JIT compiles: ``$VTPU_JIT_MAX_SIWS`` or :data:`MAX_JIT_SIWS`."""
    return _env_int(MAX_JIT_SIWS_ENV, MAX_JIT_SIWS)


class JitEngine:
    """Run a program natively; ``run()`` returns a :class:`JitRunResult` (a ``RunResult``)."""

    def __init__(
        self,
        program: Program,
        sentrons: int = 1,
        *,
        max_steps: int | None = None,
        topology=None,
        memory: Memory | None = None,
        cache_dir: str | os.PathLike | None = None,
        no_cache: bool = False,
        portable: bool = False,
        opt: int | None = None,
        rerunnable: bool = False,
        tiered: bool | None = None,
    ):
        """``rerunnable=True``: the caller promises that running the program again from the memory a
        failed run leaves behind gives the same result (e.g. a model step that rewrites only its own
        outputs). The engine then skips the pre-run copy of every scroll that makes a fault's replay
        exact, and a run that does not end ok is simply run again with that copy.

        ``tiered=True`` (default: off, or as :func:`tiered_engines` says; ``$VTPU_JIT_TIERED=0`` turns
        it off everywhere): when the optimised code is not cached, the engine compiles tier-0 code at
        once (every function through the light pipeline: a fraction of the full compile) and the
        optimised (tier-1) code in the background; a run that starts after it landed runs it (never a
        run already under way). Benchmarks leave this off, or call
        :meth:`wait_optimised`, so they time only tier-1 code."""
        if sentrons < 1:
            raise ValueError("at least one sentron")
        self.rerunnable = rerunnable
        self._workers: list[_Worker] = []  # rerunnable: the sentron threads, kept between runs
        self.program = program
        self.n = sentrons
        self.max_steps = max_steps
        self.topology = topology
        self.mem = memory if memory is not None else Memory()
        if memory is None:
            load_memory(program, self.mem)
        self.cache_dir = cache_dir
        self.no_cache = no_cache
        self.portable = portable or _portable_env()
        self.opt = opt
        self.compiled: Compiled | None = None
        self.tiered = _TIERED_DEFAULT.get() if tiered is None else tiered
        self.tier1: _Tier1 | None = None  # the background compile behind tier-0 code, if one was started
        self.tier1_deferred = False  # tier-0 code runs and its tier-1 compile waits for start_optimised()
        self.tier1_ready_s = 0.0  # how long the background compile took to land (0: none landed)
        self.tier1_error: str | None = None  # why it failed (the tier-0 code then stays)
        self.replay_interp_steps = REPLAY_INTERP_STEPS
        # several sentrons and SALLOC/SFREE/SFLUSH: the scroll table is edited in place during a run
        # (``edit_table``); ``_edit_room``: the entries a run's table keeps free for new coordinates
        self.edits = sentrons > 1 and any(ins.op.edits_scrolls for siw in program.code for ins in siw)
        # a failed run of such a program leaves scrolls made or freed: it is not run again from there
        self.rerunnable = self.rerunnable and not self.edits
        sallocs = (
            sum(1 for siw in program.code for ins in siw if ins.op.name == "SALLOC") if self.edits else 0
        )
        self._edit_room = max(EDIT_ROOM, sentrons * sallocs)
        self._graveyard: list[tuple[int, np.ndarray]] = []
        self.fallback_reason = self._check()

    def _check(self) -> str | None:
        ok, why = jit_available()
        if not ok:
            return why
        most = _env_int(MAX_JIT_SENTRONS_ENV, MAX_JIT_SENTRONS)
        if self.n > most:
            return (
                f"{self.n} sentrons: the JIT runs at most {most} (one OS thread each; many more threads "
                f"than cores cost more than they give; raise it with ${MAX_JIT_SENTRONS_ENV})"
            )
        limit = max_jit_siws()
        if len(self.program.code) > limit:
            return (
                f"the program has {len(self.program.code):,} SIWs; the JIT compiles at most {limit:,} "
                f"(LLVM's time and memory grow faster than the program; raise it with ${MAX_JIT_SIWS_ENV})"
            )
        return None

    def _compile_at(self, opt: int | None, precise: bool = False, **kw) -> Compiled | None:
        return compile_program(
            self.program,
            sentrons=self.n,
            max_steps=self.max_steps,
            ppt_sets=self.mem.sets,
            ppt_ways=self.mem.ways,
            cache_dir=self.cache_dir,
            no_cache=self.no_cache,
            portable=self.portable,
            opt=opt,
            precise=precise,
            **kw,
        )

    def compile(self, precise: bool = False) -> Compiled | None:
        """The code the next run executes (compiled, or from a cache). With tiering, this is where
        tier-1 code replaces tier-0 code once its background compile has landed: between runs."""
        if self.tier1 is not None and self.tier1.done() and not precise:
            self._take_tier1()
        if self.fallback_reason is None and (self.compiled is None or precise):
            try:
                comp = None
                if not precise and self.tiering:
                    comp = self._compile_at(self.opt, cached_only=True)
                    if comp is None:
                        comp = self._compile_at(TIER0_OPT, disk=False)
                        if background_now(self.n):
                            self.tier1 = _Tier1(self._tier1_compile)
                        else:
                            self.tier1_deferred = True
                if comp is None:
                    comp = self._compile_at(self.opt, precise)
            except L.Unsupported as e:
                self.fallback_reason = str(e)
                return None
            if precise:
                return comp
            self.compiled = comp
        return self.compiled

    def start_optimised(self, wait_sent: float = 0.0) -> bool:
        """Start the tier-1 compile that ``background_now`` left for later (nothing when none waits);
        ``wait_sent``: then wait up to that many seconds until its detached process holds its job, so
        that this process may exit and the optimised code still reaches the disk cache. True when a
        tier-1 compile is under way (or has landed)."""
        if self.tier1_deferred and self.tier1 is None:
            self.tier1_deferred = False
            self.tier1 = _Tier1(self._tier1_compile)
        if self.tier1 is not None and wait_sent > 0:
            self.tier1.wait_sent(wait_sent)
        return self.tier1 is not None or (self.compiled is not None and self.compiled.tier == 1)

    def _tier1_compile(self, sent: threading.Event):
        """The background tier-1 compile, run by the ``_Tier1`` thread; returns the loader that
        ``_take_tier1`` calls between runs, in the engine's own thread. This thread makes no LLVM
        object: LLVM's global context is not thread-safe, and an llvmlite object made here would be
        freed by the garbage collector in whatever thread it runs, beside other LLVM work (that crashed
        the test suite). So a detached process compiles and stores the object in the disk cache -- a
        run that ends first neither waits for it nor loses it, and the next start loads the optimised
        code -- or, without a disk cache (``no_cache``), in a private temporary directory."""
        tmp = tempfile.mkdtemp(prefix="vtpu-tier1-") if self.no_cache else None
        cache_dir = tmp or self.cache_dir
        try:
            compile_detached(
                self.program,
                sentrons=self.n,
                ppt_sets=self.mem.sets,
                ppt_ways=self.mem.ways,
                cache_dir=cache_dir,
                portable=self.portable,
                opt=self.opt,
                on_sent=sent.set,
            )
        except BaseException:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
            raise

        def load() -> Compiled:
            try:
                comp = compile_program(
                    self.program,
                    sentrons=self.n,
                    max_steps=self.max_steps,
                    ppt_sets=self.mem.sets,
                    ppt_ways=self.mem.ways,
                    cache_dir=cache_dir,
                    portable=self.portable,
                    opt=self.opt,
                    cached_only=True,
                )
            finally:
                if tmp:
                    shutil.rmtree(tmp, ignore_errors=True)
            if comp is None:
                raise JitError(
                    "the background compile stored no object under this program's key (the cache directory "
                    "is not private or not writable, or the JIT's sources changed since this process started)"
                )
            return comp

        return load

    @property
    def tiering(self) -> bool:
        """Whether this engine compiles in tiers (asked for, allowed, a run without a step limit, and
        no tier-0 code requested outright)."""
        return self.tiered and tiering_allowed() and self.max_steps is None and self.opt != TIER0_OPT

    def _take_tier1(self) -> None:
        t = self.tier1
        if t is None or not t.done():
            return
        self.tier1 = None
        self.tier1_ready_s = t.ready_s
        if t.result is None:
            self.tier1_error = t.error  # the tier-0 code stays: correct, only slower
            return
        try:
            self.compiled = t.result()  # LLVM work in this thread only (see _tier1_compile)
        except (JitError, L.Unsupported, OSError) as e:
            self.tier1_error = str(e) or type(e).__name__

    def wait_optimised(self, timeout: float | None = None) -> bool:
        """Wait for the background tier-1 compile (if any) and run its code from the next run on; True
        when the engine now holds tier-1 code (or compiled without tiers)."""
        self.compile()
        self.start_optimised()
        if self.tier1 is not None:
            self.tier1.wait(timeout)
            self._take_tier1()
        return self.compiled is not None and self.compiled.tier == 1

    def build_table(self) -> None:
        """The native scroll table (coordinate -> pointer, size), rebuilt when scrolls change (one
        sentron; with several, ``edit_table`` edits it in place during a run)."""
        if self.edits:
            self._build_shared_table()
            return
        table = self.mem.table
        key = getattr(self, "_tab_key", None)
        if (
            key is not None
            and len(key) == len(table)
            and all(k[0] == c and k[1] is sc.buf for k, (c, sc) in zip(key, table.items(), strict=False))
        ):
            # the same buffer objects as the last build (a rerunnable engine's next run): the same
            # table; a fresh copy, as the run may change its own
            self.tab = buffers.copy(self._tab0)
            return
        ptrs = {c: _native_buffer(sc) for c, sc in table.items()}
        self._tab_key = [(c, sc.buf) for c, sc in table.items()]  # holds the buffers: ids stay unique
        if ptrs == getattr(self, "scroll_ptrs", None):
            self.tab = buffers.copy(self._tab0)
            return
        tab, _ = _fill_table(ptrs, 0)
        self.tab = tab
        self._tab0 = tab.copy()
        self.scroll_ptrs = ptrs

    # ------------------------------------------------------------------ scroll-table edits (several sentrons)
    def _build_shared_table(self) -> None:
        """A run's table when several sentrons edit it: room for ``_edit_room`` more coordinates (at
        most half full), and the buffers and slots ``edit_table`` keeps up to date."""
        table = self.mem.table
        ptrs = {c: _native_buffer(sc) for c, sc in table.items()}
        tab, slots = _fill_table(ptrs, self._edit_room)
        self.tab, self.scroll_ptrs, self._slots = tab, ptrs, slots
        self._bufs = {c: sc.buf for c, sc in table.items()}  # what each entry points into
        self._graveyard = []
        self._freed_at: dict[int, int] = {}  # freed coordinate -> the generation of its SFREE
        self._recyclable: dict[int, int] = {}  # slot -> the freed coordinate it still holds
        self._tombs: dict[int, tuple[int, list[int]]] = {}  # recycled coordinate -> its race records
        self._filled = len(slots)  # slots that are not empty
        self._dead_bytes = 0  # bytes of the buffers in the graveyard

    def tgen(self) -> int:
        """The scroll-table generation of the run under way (``comm.H_TGEN``)."""
        return int(self.hub.fleet_blk[jit_comm.H_TGEN : jit_comm.H_TGEN + 8].view(np.uint64)[0])

    def _race_records(self, slot: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """The race detector's words of a table slot: its writer word and each sentron's read epoch
        (one-element views into the fleet block)."""
        blk, lay = self.hub.fleet_blk, self.hub.fleet_lay
        w = lay["writer"] + 64 * slot
        reads = [lay["reads"] + (k * lay["cap"] + slot) * 8 for k in range(self.n)]
        return blk[w : w + 8].view(np.uint64), [blk[r : r + 8].view(np.uint64) for r in reads]

    def edit_table(self, coord: int) -> bool:
        """Bring ``coord``'s entry in line with ``Memory`` after SALLOC/SFREE/SFLUSH ran in a callback
        (under the run's lock, while the other sentrons run): a new coordinate takes a free slot on its
        probe path (its hi word written last: the native lookup reads it first), a freed one is marked
        TAB_DEAD, a moved one gets its new pointer (before its size, which the lookup reads first); then
        the generation goes up. The old buffer stays alive until every running sentron refreshed past
        it. False when the table has no room left for a new coordinate (the run is then replayed)."""
        sc = self.mem.table.get(coord)
        tab, slot = self.tab, self._slots.get(coord)
        old = self.scroll_ptrs.get(coord)
        new = _native_buffer(sc) if sc is not None else None
        if new == old:
            return True  # the op faulted, or changed nothing the native code sees
        self.reclaim()
        gen = self.tgen() + 1
        if sc is not None and slot is None and not self._insert(coord):
            self._edit_room = 4 * max(self._edit_room, len(self._slots))  # the next run's table
            return False
        if old is not None:
            buf = self._bufs.pop(coord)
            self._graveyard.append((gen, buf))
            self._dead_bytes += buf.nbytes
        if sc is None:
            tab[slot, 3] = L.TAB_DEAD
            del self.scroll_ptrs[coord]
            self._freed_at[coord] = gen
        else:
            slot = self._slots[coord]
            if self._recyclable.pop(slot, None) is not None:
                self._tombs.pop(coord, None)  # made again before its slot went to another coordinate
            self._freed_at.pop(coord, None)
            tab[slot, 2] = new[0]
            tab[slot, 3] = new[1]
            self.scroll_ptrs[coord] = new
            self._bufs[coord] = sc.buf
        self.hub.fleet_blk[jit_comm.H_TGEN : jit_comm.H_TGEN + 8].view(np.uint64)[0] = gen
        return True

    def over_budget(self) -> bool:
        """Whether the live scrolls and the buffers kept for stale readers together exceed the run's
        memory budget (a sentron that never waits or acquires holds every freed buffer)."""
        limit = self.mem.mem_limit
        return limit is not None and self.mem.used_bytes + self._dead_bytes > limit

    def _insert(self, coord: int) -> bool:
        """Give a coordinate without an entry a slot (published dead: ``edit_table`` fills it in): the
        first empty slot on its probe path, or a slot whose freed coordinate no running sentron can
        still look up (``reclaim``), whose race records then become this coordinate's. False: none."""
        tab, cap = self.tab, self.tab.shape[0]
        if 4 * (self._filled + 1) > 3 * cap and self._recyclable:
            self._sweep()
        lo, hi = coord & 0xFFFFFFFFFFFFFFFF, coord >> 64
        h = L.table_slot(lo, hi, cap - 1)
        for _ in range(cap):
            if tab[h, 1] == L.TAB_EMPTY or h in self._recyclable:
                break
            h = (h + 1) & (cap - 1)
        else:
            return False
        old = self._recyclable.pop(h, None)
        if old is None:
            if 4 * (self._filled + 1) > 3 * cap:
                return False
            self._filled += 1
        else:
            tab[h, 1] = L.TAB_MOVING  # a lookup passes the slot while it changes hands
            del self._slots[old]
        w, reads = self._race_records(h)
        tomb = self._tombs.pop(coord, None)  # this coordinate's own records, if its slot was recycled
        w[0] = tomb[0] if tomb else 0
        for k, r in enumerate(reads):
            r[0] = tomb[1][k] if tomb else 0
        tab[h, 0], tab[h, 2], tab[h, 3] = lo, 0, L.TAB_DEAD
        tab[h, 1] = hi
        self._slots[coord] = h
        return True

    def _sweep(self) -> None:
        """Empty the recyclable slots that no other entry's probe path crosses (an entry at j whose
        first probe h is slot s or lies before it on the way to j needs s filled), so that a run that keeps
        making new coordinates does not fill its table with freed ones. A lookup of a freed coordinate
        then stops at the empty slot: absent, as it should be."""
        tab, mask = self.tab, self.tab.shape[0] - 1
        changed = True
        while changed:
            changed = False
            for s in list(self._recyclable):
                j = (s + 1) & mask
                needed = False
                while tab[j, 1] != L.TAB_EMPTY:  # a recyclable entry keeps its path too: its own
                    h = L.table_slot(int(tab[j, 0]), int(tab[j, 1]), mask)  # SALLOC may take it back
                    if (j - h) & mask >= (j - s) & mask:
                        needed = True
                        break
                    j = (j + 1) & mask
                if not needed:
                    del self._slots[self._recyclable.pop(s)]
                    tab[s, 1] = L.TAB_EMPTY
                    self._filled -= 1
                    changed = True

    def reclaim(self) -> None:
        """What no running sentron can still use, at a generation every running sentron's PPT has
        refreshed past (under the run's lock): buffers freed or moved are let go, and the slots of freed
        coordinates become recyclable (their race records kept aside, as the interpreter keeps a tomb)."""
        if not self._graveyard and not self._freed_at:
            return
        sens = self._sens
        low = min((int(sens[sid].tgen[0]) for sid in self.hub.live), default=1 << 62)
        self._graveyard = [(g, buf) for g, buf in self._graveyard if g > low]
        self._dead_bytes = sum(buf.nbytes for _, buf in self._graveyard)
        for c, g in list(self._freed_at.items()):
            if g <= low:
                del self._freed_at[c]
                slot = self._slots[c]
                w, reads = self._race_records(slot)
                self._tombs[c] = (int(w[0]), [int(r[0]) for r in reads])
                self._recyclable[slot] = c

    def _limit_on_interp(self, s: SentronState, counts: list[int]) -> tuple[str, object]:
        """A one-sentron run whose native code stopped at the start of the block its step limit falls in
        (``compile.block_limited``; registers written back): the interpreter runs the rest -- fewer
        SIWs than the block holds -- from that state and memory, so the run ends where, and as, the
        interpreter's own would (the limit, or a fault or halt before it). ``s`` and ``counts`` are
        updated in place."""
        it = Interpreter(self.program, 1, max_steps=self.max_steps - sum(counts), memory=self.mem)
        t = it.states[0]
        t.R[:], t.P[:], t.M[:] = s.R, s.P, s.M
        t.V[:] = s.V
        t.flags, t.pc, t.coll_seq = s.flags, s.pc, dict(s.coll_seq)
        with np.errstate(all="ignore"):
            status, fault, _ = it._run_single(t)
        if status == STATUS_LIMIT:
            fault = Interpreter._limit_fault(self)  # type: ignore[arg-type]  (the whole run's limit)
        for k, c in enumerate(it.counts):
            if c:
                counts[k] += c
        s.R[:], s.P[:], s.M[:] = t.R, t.P, t.M
        s.V[:] = t.V
        s.flags, s.pc, s.halted = t.flags, t.pc, t.halted
        return status, fault

    def _interp(self) -> JitRunResult:
        it = Interpreter(
            self.program, self.n, max_steps=self.max_steps, topology=self.topology, memory=self.mem
        )
        r = it.run()
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
            r.trace,
            engine="interp",
        )
        out._counts = list(it.counts)
        return out

    def run(self) -> JitRunResult:
        """Run natively. A program the JIT cannot run raises :class:`JitError`: choosing the interpreter
        instead is :func:`vtpu_cli.engines.select.open_engine`'s job, not this engine's."""
        self.compile()
        if self.fallback_reason is not None:
            raise JitError(f"the JIT cannot run this program: {self.fallback_reason}")
        comp = self.compiled
        if self.rerunnable:
            sens, wall = self._run_native(comp)
            # a sentron stopped natively without a fault of its own (ST_REPLAY: a data race or collective
            # mismatch the C pipe leaves to the golden model; ST_ABORT: stopped by another's) leaves
            # the result "ok": only a run every sentron finished counts, anything else is run again below
            if all(int(x.i64[L.OFF_STATUS // 8]) == L.ST_OK for x in sens) and not self.hub.deadlock:
                res = self._finish(sens, comp, wall)
                if res.status == STATUS_OK:
                    return res
        blocking = any(ins.op.blocking for siw in self.program.code for ins in siw)
        if not blocking and not comp.variant.precise and self.mem.used_bytes > SNAPSHOT_BYTES:
            # copying every scroll so that a fault could be replayed would double the memory: the
            # precise variant's fault exits write the state back, so it needs no copy at all
            comp = self.compile(precise=True)
        # several sentrons: a data race found natively is replayed in the interpreter (needs the copy)
        snap = None if comp.variant.precise and not blocking and self.n == 1 else _snapshot(self.mem)
        sens, wall = self._run_native(comp)
        st = [int(x.i64[L.OFF_STATUS // 8]) for x in sens]
        errors = any(x.error is not None for x in sens)
        stuck = self.hub.deadlock or L.ST_DEADLOCK in st or L.ST_REPLAY in st
        # several sentrons editing the scroll table: a fault (a host op's -- SALLOC of a live coordinate,
        # SFREE of a gone one -- or a native "no scroll") may depend on the threads' timing where the
        # golden model reports a race: the interpreter replays the run, up to EDIT_REPLAY_INTERP_STEPS
        # (a longer one is replayed natively with the precise variant, and in the interpreter after all
        # when that replay does not fault)
        edit_fault = self.edits and (L.ST_PYFAULT in st or L.ST_FAULT in st)
        if errors or not (stuck or edit_fault or (L.ST_FAULT in st and not comp.variant.precise)):
            return self._finish(sens, comp, wall)
        # A native fault in the fast variant: no registers were written back. Replay the run from the
        # saved memory: in the interpreter (the golden model) when it is short, else natively with the
        # precise variant, whose fault exits write the state back.
        cycles = max(int(x.u64[L.OFF_TSC1 // 8]) for x in sens) - min(
            int(x.u64[L.OFF_TSC0 // 8]) for x in sens
        )
        steps = sum(
            int(c) * (e - b)
            for x in sens
            for b, e, c in zip(
                comp.leaders, comp.leaders[1:] + [len(self.program.code)], x.counts, strict=False
            )
        )
        native = tuple(
            (x.sid, int(x.i64[L.OFF_PC // 8]), int(x.i64[L.OFF_SLOT // 8]))
            for x, code in zip(sens, st, strict=True)
            if code == L.ST_FAULT or (edit_fault and code == L.ST_PYFAULT)
        )
        _restore(self.mem, snap)
        if stuck or steps <= self.replay_interp_steps or (edit_fault and steps <= EDIT_REPLAY_INTERP_STEPS):
            # a deadlock (or a condition the native C pipe does not report: a collective mismatch, a
            # data race) is always replayed in the interpreter: its report, wait graph included, is golden
            out = self._interp()
            out.engine, out.fallback, out.replay = "jit", None, "interp"
        else:
            # several sentrons: the precise replay may meet a race or deadlock the fast run did not reach
            # (timing); then the interpreter replays from a second copy of the initial memory
            again = _snapshot(self.mem) if self.n > 1 else None
            pcomp = self.compile(precise=True)
            sens, wall2 = self._run_native(pcomp)
            pst = [int(x.i64[L.OFF_STATUS // 8]) for x in sens]
            unfaulted = edit_fault and not {L.ST_FAULT, L.ST_PYFAULT} & set(pst)
            if again is not None and (
                self.hub.deadlock or L.ST_DEADLOCK in pst or L.ST_REPLAY in pst or unfaulted
            ):
                _restore(self.mem, again)
                out = self._interp()
                out.engine, out.fallback, out.replay = "jit", None, "interp"
            else:
                out = self._finish(sens, pcomp, wall + wall2)
                out.replay = "precise"
        out.native_faults = native
        if not stuck and not (edit_fault and out.replay == "precise"):  # timing may move that fault
            _check_replay(native, out)
        out.compile_s, out.cache_hit = comp.compile_s, comp.cache_hit
        out.tier = comp.tier  # the code the run started on (a replay's own code does not change it)
        hz, src = tsc_hz()
        out.cycles, out.tsc_hz, out.tsc_source = cycles, hz, src
        out.run_s = cycles / hz if hz else 0.0
        return out

    def run_partial(self, local, step, wait_fn: int = 0) -> tuple[list[_Sentron], float, Compiled]:
        """Run only the sentrons ``local`` natively (one rank's share under mpiexec); every other sentron
        of the fleet block is played by ``step(sens)``, which the calling thread runs in a loop until it
        returns False (``cluster/bridge.py``: it moves the other sentrons' messages and arrivals in and
        out of the block and decides, with the other ranks, when the run is over). No watchdog, no
        replay: the caller owns both. Returns every sentron (non-local ones untouched), the wall time
        and the compiled variant; ``_finish`` turns them into a result. ``wait_fn``: the address of an
        ``i32 f(void)`` that blocked sentrons call instead of ``sched_yield`` (a short sleep when the
        host has fewer cores than threads: a yielding spinner still takes the core the bridge needs)."""
        comp = self.compile()
        if comp is None or self.fallback_reason is not None:
            raise JitError(f"the JIT cannot run this program: {self.fallback_reason}")
        sens, wall = self._run_native(comp, local=list(local), step=step, wait_fn=wait_fn)
        return sens, wall, comp

    def _run_native(self, comp: Compiled, local: list[int] | None = None, step=None, wait_fn: int = 0):
        program = self.program
        self._comp_now = comp
        self.fleet = Fleet(self.n, program.groups, self.topology, race_check=False)
        self.env = SemanticsEnv(self.mem, self.fleet)
        self.hub = _Hub(self.n)
        self.build_table()
        if self.n > 1:
            hub = self.hub
            hub.fleet_raw, hub.fleet_blk, hub.fleet_lay = jit_comm.build_fleet_block(
                self.n, program.groups, self.topology, cap=self.tab.shape[0]
            )
            hub.fleet_addr = hub.fleet_blk.ctypes.data
        sens = [_Sentron(self, i) for i in range(self.n)]
        self._sens = sens
        self.fleet.homes = {x.s.home: x.sid for x in sens}
        for x in sens:
            x.init_ctx(self.hub)
            if wait_fn:
                x.ext[(L.OFF_YIELD - L.OFF_FLEET) // 8] = wait_fn
            if x is sens[0]:
                x.ppt_to_native()
            else:  # every sentron starts from the same cache: copy the first one's block
                x.ppt[:] = sens[0].ppt
                x.u64[L.OFF_TAB // 8] = self.tab.ctypes.data
                x.u64[L.OFF_TABMASK // 8] = self.tab.shape[0] - 1
                x.u64[L.OFF_PPTHITS // 8] = 0
                x.u64[L.OFF_PPTMISSES // 8] = 0
            _REGISTRY[x.addr] = x
        running = sens if local is None else [sens[i] for i in local]
        if local is not None:
            self.hub.live = set(local)
        if self.rerunnable and local is None:
            if len(self._workers) != len(running):
                self._workers = [_Worker(f"vtpu-sentron-{x.sid}") for x in running]
                weakref.finalize(self, _stop_workers, self._workers)
            threads = self._workers
        else:
            threads = [
                threading.Thread(target=x.run, name=f"vtpu-sentron-{x.sid}", daemon=True) for x in running
            ]
        t0 = time.perf_counter()
        try:
            if threads is self._workers:
                for w, x in zip(threads, running, strict=True):
                    w.submit(x.run)
            else:
                for t in threads:
                    t.start()
            try:
                if step is not None:
                    try:
                        while step(sens):
                            pass
                    finally:  # the run is over (or the bridge failed): nobody may stay blocked
                        if any(t.is_alive() for t in threads):
                            with self.hub.cond:
                                self.hub.set_abort()
                        for t in threads:
                            t.join()
                for t in threads:
                    while t.is_alive():
                        t.join(0.005 if self.n > 1 else 0.1)
                        if self.n > 1:
                            self.hub.watch(sens)
            except KeyboardInterrupt:
                with self.hub.cond:
                    self.hub.set_abort()
                for t in threads:
                    t.join()
                raise
        finally:
            for x in sens:
                _REGISTRY.pop(x.addr, None)
            self._graveyard = []  # every sentron has stopped: nothing points into them any more
        wall = time.perf_counter() - t0
        return sens, wall

    # ------------------------------------------------------------------ results
    def _finish(self, sens: list[_Sentron], comp: Compiled, wall: float) -> JitRunResult:
        program = self.program
        n = len(program.code)
        leaders = comp.leaders
        ends = leaders[1:] + [n]
        counts = [0] * n
        for x in sens:
            if x.error is not None:
                raise JitError(f"sentron {x.sid}: JIT runtime error: {x.error!r}") from x.error
        fast = 0
        fs = self.fleet.stats
        for x in sens:
            x.ppt_from_native(cache=x is sens[-1])
            fast += int(x.i64[L.OFF_FASTHITS // 8])
            cst = x.ext[(L.OFF_CSTAT - L.OFF_FLEET) // 8 :][: len(jit_comm.STAT_NAMES)]
            for name, val in zip(jit_comm.STAT_NAMES, cst, strict=True):
                setattr(fs, name, getattr(fs, name) + int(val))
        self.mem.stats.hits += fast
        status, fault = STATUS_OK, None
        for x in sens:
            x.from_ctx()
            q = x.i64
            st, pc, slot, counted = (
                int(q[o // 8]) for o in (L.OFF_STATUS, L.OFF_PC, L.OFF_SLOT, L.OFF_COUNTED)
            )
            s = x.s
            s.pc = pc
            s.halted = st == L.ST_OK
            if st in (L.ST_FAULT, L.ST_PYFAULT) and 0 < slot and pc < n:  # DHALT ran before the fault
                siw = program.code[pc]
                ready_fault = slot == 2 and siw[2].op.blocking  # C ready phase: before any slot
                s.halted = siw[0].op.name == "DHALT" and not ready_fault
            for bi, c in enumerate(x.counts[: len(leaders)].tolist()):  # a list: no numpy scalar each
                if c:
                    for k in range(leaders[bi], ends[bi]):
                        counts[k] += c
            if st != L.ST_OK and counted and pc < n:
                bi = max(i for i, ld in enumerate(leaders) if ld <= pc)
                for k in range(pc, ends[bi]):
                    counts[k] -= 1
            if st == L.ST_FAULT:
                x.fault = self._regen_fault(x, pc, slot)
            if st == L.ST_DEADLOCK or (st == L.ST_ABORT and self.hub.deadlock):
                s.pc = pc
        events = self.hub.events
        order = [sid for _, sid in events]
        first = {}
        for st, sid in events:
            first.setdefault(st, sid)
        fault_sids = [sid for sid in order if sens[sid].fault is not None]
        if fault_sids:
            status, fault = STATUS_FAULT, sens[fault_sids[0]].fault
        elif L.ST_LIMIT in first and block_limited(program, comp.variant):
            status, fault = self._limit_on_interp(sens[0].s, counts)
        elif L.ST_LIMIT in first:
            status, fault = STATUS_LIMIT, Interpreter._limit_fault(self)  # type: ignore[arg-type]
        elif self.hub.deadlock:
            status, fault = (
                STATUS_DEADLOCK,
                Interpreter._deadlock(_DeadlockView(program, [x.s for x in sens])),
            )
        siws, ops = count_ops(program, counts)
        states = []
        for x in sens:
            s = x.s
            V = np.array(s.V)
            s.V = V
            s._views = {t: V.view(NP[t]) for t in NP if t not in ("t2", "u8")}
            s._views["u8"] = V
            states.append(s)
        t0s = [int(x.u64[L.OFF_TSC0 // 8]) for x in sens]
        t1s = [int(x.u64[L.OFF_TSC1 // 8]) for x in sens]
        hz, src = tsc_hz()
        per_sentron = [
            sum(c * (ends[i] - leaders[i]) for i, c in enumerate(x.counts[: len(leaders)].tolist()))
            for x in sens
        ]
        out = JitRunResult(
            status,
            fault,
            states,
            self.mem,
            self.fleet,
            siws,
            ops,
            max(per_sentron, default=0),
            wall,
            None,
            engine="jit",
            fallback=None,
            compile_s=comp.compile_s,
            cache_hit=comp.cache_hit,
            cycles=max(t1s) - min(t0s),
            tsc_hz=hz,
            tsc_source=src,
            ppt_fast_hits=fast,
            tier=comp.tier,
        )
        out.run_s = out.cycles / hz if hz else 0.0
        out._counts = counts
        return out

    def _regen_fault(self, x: _Sentron, pc: int, slot: int) -> Fault:
        """Re-run the faulting op through the golden hook (PPT state saved and restored) for the message."""
        ins = self.program.code[pc][slot]
        mem = self.mem
        saved = (copy.copy(mem.stats), [list(w) for w in mem._cache])
        s = x.s
        try:
            f = SEM[ins.op.name](ins, s, self.env)
            if isinstance(f, tuple):  # a blocking C op: the native checks are its ready phase's
                if f[0]():
                    f[1]()
            else:
                f()
        except OpFault as e:
            return x.make_fault(pc, e)
        finally:
            mem.stats, mem._cache = saved[0], saved[1]
        raise JitError(
            f"JIT and interpreter disagree: native code faulted at SIW {pc} ({ins.mnemonic()}) but the "
            f"golden model does not"
        )


SPARSE_SNAPSHOT_BYTES = 64 << 20  # scrolls larger than this are snapshotted chunk by chunk (_sparse_copy)
SNAPSHOT_CHUNK = 2 << 20


def _sparse_copy(buf: np.ndarray) -> np.ndarray:
    """A copy of a large scroll that copies only its non-zero 2 MiB chunks into a fresh zeroed buffer.

    Fresh zeroed buffers are mapped lazily by the OS, and reading a never-written page maps the shared
    zero page, so an untouched 1 GiB scroll costs a 0.14 s scan and no resident memory instead of 1 GiB
    (issue #18: a program with C-pipe ops, or several sentrons, is snapshotted for a possible replay)."""
    from vtpu_cli.machine.memory import scroll_buffer

    n = buf.shape[0]
    out = scroll_buffer(n)
    step = SNAPSHOT_CHUNK
    for i in range(0, n - n % step, step):
        blk = buf[i : i + step]
        if blk.view(np.uint64).any():
            out[i : i + step] = blk
    tail = n - n % step
    if tail < n:
        out[tail:] = buf[tail:]
    return out


def _sparse_ok(buf) -> bool:
    return (
        isinstance(buf, np.ndarray)
        and buf.nbytes > SPARSE_SNAPSHOT_BYTES
        and buf.dtype == np.uint8
        and buf.ndim == 1
        and buf.flags.c_contiguous
    )


def _snapshot(mem: Memory):
    """What a replay needs to restart a run: every scroll's bytes and fields, the PPT and tier state."""
    scrolls = {
        c: (
            sc,
            _sparse_copy(sc.buf) if _sparse_ok(sc.buf) else buffers.copy(sc.buf, align=True),
            dict(sc.__dict__),
        )
        for c, sc in mem.table.items()
    }
    return (
        scrolls,
        [list(w) for w in mem._cache],
        copy.copy(mem.stats),
        list(mem._order),
        list(mem._hot_lru),
        mem._cold_end,
    )


def _restore(mem: Memory, snap) -> None:
    scrolls, cache, stats, order, hot, cold_end = snap
    mem.table.clear()
    for c, (sc, buf, fields) in scrolls.items():
        sc.__dict__.clear()
        sc.__dict__.update(fields)
        sc.buf = buf
        mem.table[c] = sc
    mem._cache[:] = [list(w) for w in cache]
    mem._sizes = {c: sc.size for c, sc in mem.table.items()}  # the run may have allocated and freed
    mem._used = sum(mem._sizes.values())
    mem.stats = copy.copy(stats)
    mem._order[:] = order
    mem._hot_lru[:] = hot
    mem._cold_end = cold_end


class _DeadlockView:
    def __init__(self, program, states):
        self.program = program
        self.states = states


# =================================================================== benchmarks
def run_timed(
    program: Program, sentrons: int = 1, *, repeat: int = 3, verify: bool = True, memory_factory=None, **kw
) -> dict:
    """Run a program natively ``repeat`` times (best TSC cycles kept) and verify it against the interpreter.

    ``memory_factory()`` builds a fresh Memory per run (default: the program's own data). Returns a
    dict: cycles, seconds, ops (non-NOP ops executed), ops_per_cycle, compile_s, cache_hit, verified,
    result (the last JitRunResult).
    """
    best = None
    res = None
    compile_s = None
    cache_hit = None
    for _ in range(max(repeat, 1)):
        mem = memory_factory() if memory_factory else None
        eng = JitEngine(program, sentrons, memory=mem, **kw)
        res = eng.run()
        if res.engine != "jit":
            raise JitError(f"program did not run natively: {res.fallback}")
        if compile_s is None:
            compile_s, cache_hit = res.compile_s, res.cache_hit
        best = res.cycles if best is None else min(best, res.cycles)
    verified = None
    if verify:
        mem = memory_factory() if memory_factory else None
        ref = Interpreter(program, sentrons, memory=mem).run()
        verified = res.status == STATUS_OK and same_result(ref, res) == []
    hz = res.tsc_hz
    return {
        "cycles": best,
        "seconds": best / hz if hz else 0.0,
        "ops": res.ops,
        "siws": res.siws,
        "ops_per_cycle": res.ops / best if best else 0.0,
        "compile_s": compile_s,
        "cache_hit": cache_hit,
        "verified": verified,
        "tsc_hz": hz,
        "tsc_source": res.tsc_source,
        "result": res,
    }
