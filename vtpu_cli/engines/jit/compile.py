"""The JIT's compiler: program -> LLVM IR (via ``lowering.py``) -> optimised object for the host CPU,
cached on disk and loaded once per process. The runtime (threads, watchdog, replay) is ``engine.py``.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import gc
import hashlib
import os
import platform
import stat
import struct
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from vtpu_cli import __version__
from vtpu_cli.binary.program import MEM_INDEXED, Imm, Program, Reg
from vtpu_cli.core.errors import VtpuError
from vtpu_cli.core.fileio import write_atomic
from vtpu_cli.engines.jit.abi import CSEQ_WORDS, OFF_CSEQ, OFF_LSTEPS

try:  # llvmlite is a hard dependency, but the engine must degrade to a clear reason without it
    import llvmlite
    import llvmlite.binding as llvm
    from llvmlite import ir

    from vtpu_cli.engines.jit import comm as jit_comm
    from vtpu_cli.engines.jit import irbase
    from vtpu_cli.engines.jit import lowering as L
except Exception as _e:  # pragma: no cover - exercised only on broken installs
    llvm = None
    _IMPORT_ERROR = f"llvmlite is not importable: {_e}"
else:
    _IMPORT_ERROR = ""


_init_lock = threading.Lock()
# LLVM's global context is not thread-safe: in-process compiles and object loading take this lock, while
# large IR compiled by a child process does not hold it (several variants can compile at once)
_llvm_lock = threading.RLock()
_initialised = False
_loaded: dict[str, tuple] = {}  # key -> (engine, entry address): compiled programs stay loaded
_superseded: list[tuple] = []  # earlier copies replaced by a no_cache compile of the same key, kept alive


class JitError(Exception):
    """An internal JIT failure (never a program fault: those are reported like the interpreter's)."""


# =================================================================== availability and target
def _init() -> None:
    global _initialised
    with _init_lock:
        if not _initialised:
            # llvmlite >= 0.48 (LLVM 22): llvm.initialize() raises; initialise only the native target
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _initialised = True


def jit_available() -> tuple[bool, str]:
    """(True, "") when the JIT can run here, else (False, reason)."""
    if _IMPORT_ERROR:
        return False, _IMPORT_ERROR
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False, f"the JIT targets x86-64; this machine is {platform.machine()}"
    try:
        _init()
        llvm.Target.from_default_triple()
    except Exception as e:  # pragma: no cover
        return False, f"LLVM native target unavailable: {e}"
    return True, ""


def host_target(portable: bool = False) -> tuple[str, str]:
    """(cpu name, feature string) the object code is built for."""
    _init()
    if portable:
        return "x86-64", ""
    return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


def _portable_env() -> bool:
    return os.environ.get("VTPU_JIT_PORTABLE", "") not in ("", "0")


def _target_machine(cpu: str, features: str, opt: int = 3):
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(
        cpu=cpu, features=features, opt=opt, reloc="pic", codemodel="jitdefault"
    )


def default_cache_dir() -> Path:
    """The JIT's objects live in the one vtpu cache root (``core.resources.cache_base``)."""
    from vtpu_cli.core.resources import cache_base

    return cache_base()


_SRC_HASH = None


def _source_hash() -> str:
    """Hash of the JIT's sources and the op tables they read: any change invalidates cached objects."""
    global _SRC_HASH
    if _SRC_HASH is None:
        h = hashlib.sha256()
        here = Path(__file__).parent
        for path in [
            *sorted(here.glob("*.py")),
            here.parents[1] / "isa" / "table.py",
            here.parents[1] / "isa" / "families.py",
        ]:
            h.update(path.read_bytes())
        _SRC_HASH = h.hexdigest()[:16]
    return _SRC_HASH


# =================================================================== module building
def _raw_across_blocks(code) -> set[int]:
    """v registers that may cross a block boundary with f32 NaN lanes not yet canonicalised: those whose
    every writer is a raw f32 producer. A register that any other op writes (SGATHER, CUNPACK, DMOV ...)
    may hold a NaN payload that must be kept, so canonicalising it at a block start would be wrong
    (#11 bug 2); such registers are canonicalised before each block end instead."""
    raw: set[int] = set()
    other: set[int] = set()
    for siw in code:
        for ins in siw:
            r = L.raw_f32_dest(ins)
            if r is not None:
                raw.add(r)
            for cls, i in L.regs_of(ins)[1]:
                if cls == "v" and i != r and not L._no_payload_nan(ins):
                    other.add(i)
    return raw - other


def _leaders(program: Program) -> list[int]:
    code = program.code
    n = len(code)
    lead = {0} if n else set()
    for pc, siw in enumerate(code):
        d = siw[0]
        if d.op.branch:
            t = d.args[-1].value
            if 0 <= t <= n:
                lead.add(t)
            lead.add(pc + 1)
        elif d.op.name == "DHALT":
            lead.add(pc + 1)
    out = sorted(x for x in lead if x < n)
    if n > SPLIT_SIWS and not _c_ops(program):
        # a program lowered as regions may be cut at leaders only: long straight runs get extra ones
        # (not in programs with C-pipe ops, whose single-sentron native ring analysis works per block)
        step = max(REGION_SIWS // 2, 1)
        extra = [x for a, z in zip(out, out[1:] + [n], strict=True) for x in range(a + step, z, step)]
        out = sorted(out + extra)
    return out


def _const_coord(ins) -> tuple[int, int] | None:
    """(p register, coordinate) when ``ins`` sets a p register to a constant coordinate."""
    from vtpu_cli.binary.program import Imm
    from vtpu_cli.isa.table import HOME_COORD

    if ins.op.name == "SCOORD" and isinstance(ins.args[1], Imm) and ins.args[1].value != HOME_COORD:
        return ins.args[0].idx, ins.args[1].value
    return None


def _transfer_consts(siw, consts: dict[int, int]) -> None:
    """Update the known constant p registers across one SIW (any other p write forgets one)."""
    for ins in siw:
        if ins.is_nop:
            continue
        cc = _const_coord(ins)
        for cls, i in L.regs_of(ins)[1]:
            if cls == "p":
                consts.pop(i, None)
        if cc is not None:
            consts[cc[0]] = cc[1]


def _const_coords(program: Program, leaders: list[int]) -> dict[int, dict[int, int]]:
    """For each block leader, the p registers that hold the same constant coordinate (a constant
    SCOORD) on every path into the block: a forward must-analysis over the SIW control-flow graph.
    Lets the lowering prove that a translation cannot clear another register's MRU flag."""
    code = program.code
    n = len(code)
    if not n:
        return {}
    ends = {}  # leader -> (out state successors)
    bounds = leaders + [n]
    succ: dict[int, list[int]] = {}
    for a, z in zip(bounds, bounds[1:], strict=False):
        d = code[z - 1][0]
        out = []
        if d.op.branch:
            t = d.args[-1].value
            if 0 <= t < n:
                out.append(t)
            if d.op.name != "DJMP" and z < n:
                out.append(z)
        elif d.op.name != "DHALT" and z < n:
            out.append(z)
        succ[a] = out
        ends[a] = z
    state: dict[int, dict[int, int] | None] = {pc: None for pc in leaders}
    state[0] = {}
    work = [0]
    while work:
        a = work.pop()
        cur = dict(state[a])  # type: ignore[arg-type]
        for pc in range(a, ends[a]):
            _transfer_consts(code[pc], cur)
        for t in succ[a]:
            old = state[t]
            new = dict(cur) if old is None else {k: c for k, c in old.items() if cur.get(k) == c}
            if t == 0:
                new = {}  # the entry edge brings unknown registers
            if new != old:
                state[t] = new
                work.append(t)
    return {pc: st for pc, st in state.items() if st}


# Programs above LARGE_PROGRAM_SIWS keep at most this many block counters in SSA (see _block_counters)
SSA_COUNTERS = 16


def _block_counters(program: Program, leaders: list[int]) -> tuple[set[int], set[int]]:
    """(blocks whose counter lives in SSA, blocks that can run more than once per call).

    SSA counters are promoted to registers and stored at every exit. In large programs every one of
    them is live across the whole function, and with hundreds of them LLVM's time grew with blocks x
    code (BitNet's 1,716-SIW step program spent half its compile time and 70 % of its object size on
    them). There only the blocks of the smallest innermost loops (the hot ones) keep SSA counters, up
    to SSA_COUNTERS; other blocks in loops increment the counts array in memory, and blocks outside
    every loop store 1 into it: a block can run more than once only inside the pc range [target,
    branch] of a backward branch (any cycle of the CFG has, for each of its SIWs X, a backward edge
    from a pc >= X to a pc <= X)."""
    spans = [(siw[0].args[-1].value, pc) for pc, siw in enumerate(program.code) if siw[0].op.branch]
    spans = sorted({(t, s) for t, s in spans if 0 <= t <= s}, key=lambda ts: (ts[1] - ts[0], ts))
    looped = {i for i, pc in enumerate(leaders) if any(t <= pc <= s for t, s in spans)}
    if len(program.code) <= LARGE_PROGRAM_SIWS:
        # small programs: every counter in SSA, as LLVM then sees no memory traffic between loops
        # (a store between two loops kept it from fully unrolling the bench's embedding lookup)
        return set(range(len(leaders))), looped
    ssa: set[int] = set()
    for t, s in spans:
        if any(t <= t2 <= s2 <= s and (t2, s2) != (t, s) for t2, s2 in spans):
            continue  # not innermost
        mine = {i for i, pc in enumerate(leaders) if t <= pc <= s}
        if len(ssa | mine) > SSA_COUNTERS:
            break
        ssa |= mine
    return ssa, looped


def _branch_targets(program: Program) -> set[int]:
    return {siw[0].args[-1].value for siw in program.code if siw[0].op.branch}


# loops of at most this many SIWs get a fast clone (code size: the loop is emitted twice)
FAST_LOOP_SIWS = 256


def _fast_loops(
    program: Program, leaders: list[int], edits: bool = False
) -> dict[int, tuple[int, tuple[int, ...], tuple[int, ...], bool]]:
    """Innermost loops that get a *fast clone* (``build_module`` emits them twice; see docs/jit.md).

    In a loop that writes no p register and calls no S-pipe runtime op (SALLOC, SFREE, SFLUSH,
    SPREFCH, SDEDUP: they reload every register and reset the translation state), a p register's
    translation changes only on its own slow path. So once every p register the loop uses for an S
    access is the MRU entry of its PPT set (the general code's translation flags, tested at the back
    edge), every access of every later trip is a hit that changes nothing, and the loop can run as a
    clone whose translations are loop-invariant (pointer and size hoisted, no flag tests, no slow
    path): the same PPT counters and LRU state, with the ~7-instruction check per S op reduced to one
    bounds compare against a hoisted limit.

    With several sentrons the race detector's records work the same way: in a loop with no op that
    advances the sentron's epoch (CSEND, CROUTE, collectives, CFENCE), once every p register's
    read (or, for those the loop stores through, write) is recorded at the current epoch, no later
    trip needs a check. Returns head -> (last SIW, p registers accessed, p registers stored through,
    whether the loop advances the epoch).

    ``edits`` (several sentrons, a program that edits the scroll table): an acquire (CRECV, a
    collective) may refresh the PPT (``comm.refresh``) and so invalidate every translation: loops with
    one get no clone.
    """
    code = program.code
    out: dict[int, tuple[int, tuple[int, ...], tuple[int, ...], bool]] = {}
    heads = {}
    for pc, siw in enumerate(code):
        d = siw[0]
        if d.op.branch:
            t = d.args[-1].value
            if 0 <= t <= pc:
                heads.setdefault(t, pc)
                heads[t] = max(heads[t], pc)
    for t, last in heads.items():
        if last - t + 1 > FAST_LOOP_SIWS:
            continue
        if any(t < t2 <= last2 <= last and (t2, last2) != (t, last) for t2, last2 in heads.items()):
            continue  # not innermost
        pregs: set[int] = set()
        stores: set[int] = set()
        ok = True
        releases = False
        for siw in code[t : last + 1]:
            for ins in siw:
                if ins.is_nop:
                    continue
                name = ins.op.name
                if name in ("SDEDUP", "SPREFCH", "SFLUSH", "SALLOC", "SFREE"):
                    ok = False
                if name in ("CSEND", "CROUTE", "CBAR", "CREDUCE", "CCAST", "CFENCE"):
                    releases = True
                if edits and name in ("CRECV", "CBAR", "CREDUCE", "CCAST"):
                    ok = False
                _, wr = L.regs_of(ins)
                if any(c == "p" for c, _ in wr):
                    ok = False
                if name in ("SGATHER", "SSCATTR"):
                    m = ins.args[0] if name == "SSCATTR" else ins.args[1]
                    pregs.add(m.base)
                    if name == "SSCATTR":
                        stores.add(m.base)
        if ok and pregs:
            out[t] = (last, tuple(sorted(pregs)), tuple(sorted(stores)), releases)
    return out


# A bounding register above this proves nothing: with it, bound + the small addends below never wrap.
BOUND_MAX = 1 << 40
_ADDEND_MAX = 1 << 20
_ALIGN_TOP = 40  # "aligned to every power of two that matters" (the optimistic start of the fixpoint)


@dataclass(frozen=True)
class Bound:
    """An offset register's value is ``z + k`` with ``0 <= z <= (M & ~(2**align - 1))`` and ``z`` a
    multiple of ``2**align``, where ``M`` is register ``m`` (loop-invariant) or the constant ``c``."""

    m: int | None
    c: int
    k: int
    align: int

    def low_zeros(self) -> int:
        """Trailing zero bits known of the value itself (z's, and k's)."""
        return min(self.align, (self.k & -self.k).bit_length() - 1) if self.k else self.align


def _bounded_offsets(
    program: Program, t: int, last: int
) -> tuple[dict[int, Bound], dict[tuple[int, int], tuple[int, int, Bound]]]:
    """Offset registers of a fast loop whose value is bounded on every trip, and the S accesses that
    the bound keeps inside their scroll: ``(head bounds, {(pc, slot): (p, bytes, bound)})``.

    A stream walks a working set with ``DADD r, x, 64`` + ``DAND r, r, m``, ``m`` loop-invariant
    (``SEG - 1``): after the ``DAND`` the offset is ``<= m`` whatever ``x`` was, and a multiple of 64
    when ``x`` is, so ``<= m & ~63``. Forward over the loop body (a straight line; the only branch is
    the back edge), each r register carries a :class:`Bound`: ``DAND.i64 r, x, m`` with ``m`` written
    nowhere in the loop (or an immediate) gives ``z = x & m`` (aligned as far as ``x`` is known to
    be); ``DADD.i64 r, x, imm`` (0 <= imm <= 2**20) adds ``imm`` to ``k``; ``DMOV r, x`` copies the
    bound, ``DMOV r, imm`` is the constant; any other write forgets it. The head bounds are the
    greatest fixpoint: start from the bounds the body establishes, aligned optimistically, and keep a
    register (at the smaller alignment) only while the end of the body re-establishes its ``(m, k)``.
    The fast clone's dispatch checks once per entry that every head bound holds now and every
    bounding register is <= BOUND_MAX (nothing wraps), and for each access that its largest offset
    ``(M & ~(2**align - 1)) + k`` is ``<u max(size - bytes + 1, 0)``; the clone then omits those
    accesses' bounds checks (they cannot fail), while any other entry runs the general loop with every
    check. Access sizes come from ``lowering.access_extent``, the rule the lowering checks; an
    access's displacement ``[p + r + d]`` with ``0 < d <= _ADDEND_MAX`` moves its bound by ``d`` (any
    other displacement is not proved).
    """
    code = program.code
    for pc in range(t, last + 1):
        for ins in code[pc]:
            if ins.is_nop:
                continue
            if ins.op.name == "DHALT" or (ins.op.branch and not (pc == last and ins.args[-1].value == t)):
                return {}, {}
    written = set()
    for siw in code[t : last + 1]:
        for ins in siw:
            if not ins.is_nop:
                written |= {i for c, i in L.regs_of(ins)[1] if c == "r"}

    def reg(a) -> int | None:
        return a.idx if isinstance(a, Reg) and a.cls == "r" else None

    def transfer(ins, state: dict[int, Bound]) -> None:
        wr = [i for c, i in L.regs_of(ins)[1] if c == "r"]
        new = None
        name = ins.op.name
        if len(wr) == 1 and name == "DMOV" and reg(ins.args[0]) == wr[0]:
            a = ins.args[1]
            if reg(a) in state:
                new = state[reg(a)]
            elif isinstance(a, Imm) and ins.type in (None, "i64") and 0 <= a.value <= BOUND_MAX:
                new = Bound(None, 0, a.value, _ALIGN_TOP)
        elif len(wr) == 1 and ins.type == "i64" and len(ins.args) == 3 and reg(ins.args[0]) == wr[0]:
            x, y = ins.args[1], ins.args[2]
            if name == "DAND":
                for a, mask in ((x, y), (y, x)):
                    ax = state[reg(a)].low_zeros() if reg(a) in state else 0
                    if reg(mask) is not None and reg(mask) not in written:
                        new = Bound(reg(mask), 0, 0, ax)
                        break
                    if isinstance(mask, Imm) and 0 <= mask.value <= BOUND_MAX:
                        new = Bound(None, mask.value, 0, ax)
                        break
            elif name == "DADD" and reg(x) in state and isinstance(y, Imm) and 0 <= y.value <= _ADDEND_MAX:
                bd = state[reg(x)]
                new = Bound(bd.m, bd.c, bd.k + y.value, bd.align)
        for i in wr:
            state.pop(i, None)
        if new is not None:
            state[wr[0]] = new

    def run(head: dict[int, Bound]):
        state = dict(head)
        proven = {}
        for pc in range(t, last + 1):
            for slot, ins in enumerate(code[pc]):
                if ins.is_nop:
                    continue
                ext = L.access_extent(ins)
                if ext is not None and reg(ext[1]) in state:
                    bd, d = state[reg(ext[1])], ext[3]
                    if d:  # [p + r + d]: the offset's bound moves by d (a negative d is not proved)
                        bd = Bound(bd.m, bd.c, bd.k + d, bd.align) if 0 < d <= _ADDEND_MAX else None
                    if bd is not None:
                        proven[(pc, slot)] = (ext[0], ext[2], bd)
                transfer(ins, state)
        return state, proven

    first, _ = run({})
    head = {r: Bound(bd.m, bd.c, bd.k, _ALIGN_TOP) for r, bd in first.items()}
    while True:
        end, proven = run(head)
        keep = {}
        for r, bd in head.items():
            e = end.get(r)
            if e is not None and (e.m, e.c, e.k) == (bd.m, bd.c, bd.k):
                keep[r] = Bound(bd.m, bd.c, bd.k, min(bd.align, e.align))
        if keep == head:
            break
        head = keep
    return head, proven


def _bounded_indexes(
    program: Program, t: int, last: int
) -> dict[tuple[int, int], tuple[int, int, int, int, bool]]:
    """Indexed S accesses of a fast loop whose every index lane is bounded within the trip:
    ``{(pc, slot): (p, offset, element bytes, c, window)}``.

    ``DAND.i32 v, x, c`` (0 <= c <= 2**20) leaves every i32 lane of ``v`` in ``0..c``; an indexed access
    ``[p + off + v]`` with a constant ``off >= 0`` later in the same trip (``v`` not written in between;
    nothing is assumed at the loop head) then touches bytes ``off .. off + size * (c + 1)`` only, so it
    is in bounds on every trip if the scroll holds that many bytes -- one check at the clone's dispatch
    instead of a 16-lane compare per access. ``window``: a 16 x 32-bit gather that also satisfies the
    permute window's conditions (``off % 4 == 0``, lanes below 256 bytes; the dispatch checks the scroll
    holds 256 bytes), so the clone emits only the permute path (``lowering._gather_window_indexed``)."""
    code = program.code
    for pc in range(t, last + 1):
        for ins in code[pc]:
            if ins.is_nop:
                continue
            if ins.op.name == "DHALT" or (ins.op.branch and not (pc == last and ins.args[-1].value == t)):
                return {}
    vbound: dict[int, int] = {}
    out = {}
    for pc in range(t, last + 1):
        for slot, ins in enumerate(code[pc]):
            if ins.is_nop:
                continue
            name = ins.op.name
            if name in ("SGATHER", "SSCATTR"):
                store = name == "SSCATTR"
                m, reg = (ins.args[0], ins.args[1]) if store else (ins.args[1], ins.args[0])
                if (
                    m.mode == MEM_INDEXED
                    and isinstance(m.off, Imm)
                    and 0 <= m.off.value <= BOUND_MAX
                    and m.extra.idx in vbound
                    and reg.cls == "v"
                    and L.lanes(ins.type) <= 16
                ):
                    size = L.type_size(ins.type)
                    c = vbound[m.extra.idx]
                    off = m.off.value
                    window = (
                        not store
                        and L.lanes(ins.type) == 16
                        and size == 4
                        and off % 4 == 0
                        and off + 4 * (c + 1) <= L.WINDOW
                    )
                    out[(pc, slot)] = (m.base, off, size, c, window)
            new = None
            if (
                name == "DAND"
                and ins.type == "i32"
                and isinstance(ins.args[0], Reg)
                and ins.args[0].cls == "v"
                and isinstance(ins.args[2], Imm)
                and 0 <= ins.args[2].value <= _ADDEND_MAX
            ):
                new = ins.args[2].value
            for c_, i in L.regs_of(ins)[1]:
                if c_ == "v":
                    vbound.pop(i, None)
            if new is not None:
                vbound[ins.args[0].idx] = new
    return out


@dataclass
class _Variant:
    limit: str  # "none" | "local" | "shared"
    portable: bool
    ppt_sets: int
    cpu: str
    features: str
    ppt_ways: int = 4
    precise: bool = False  # registers written back at fault exits (else: faults are replayed)
    single: bool = True  # one sentron: the C pipe is a ring in the stack frame (see jit_comm.py)
    race: bool = True  # several sentrons: the native race detector (off only to measure its cost)
    lift: bool = False  # tier 0: ``DMOV r, imm`` reads the immediate from the module's IMMS table


# Programs above SPLIT_SIWS are lowered as several *region* functions of about REGION_SIWS SIWs each,
# called in turn by a small dispatcher (see _regions).
SPLIT_SIWS = 1536
REGION_SIWS = 512
# A loop-free stretch of at least this many SIWs between two nests of small loops is a *cold* region of
# its own (compiled with the light pipeline, see _light_optimise); shorter ones join a hot region.
COLD_MIN_SIWS = 24
COLD_WORK = 0.25  # compile work of a cold SIW against a hot one (balancing parts: build_parts)


def _c_ops(program: Program) -> bool:
    return any(not siw[2].is_nop for siw in program.code)


def block_limited(program: Program, v: _Variant) -> bool:
    """Whether ``v``'s native code checks its step limit once per block (``_build_function``): a run
    that stops on it stopped at the start of the block the limit falls in, and the engine finishes it
    on the interpreter (``JitEngine._limit_on_interp``)."""
    return v.limit == "local" and not _c_ops(program)


def _back_edges(program: Program) -> list[tuple[int, int]]:
    """(target, pc) of every backward (or self) branch: the loops of the program."""
    out = []
    for pc, siw in enumerate(program.code):
        d = siw[0]
        if d.op.branch:
            t = d.args[-1].value
            if 0 <= t <= pc:
                out.append((t, pc))
    return out


def _hot_spans(program: Program) -> list[tuple[int, int]]:
    """``[a, z)`` of every nest of loops of at most REGION_SIWS SIWs (overlapping loops merged): the code
    that runs many times per trip of anything around it, kept whole in one function and fully optimised."""
    spans: list[list[int]] = []
    for t, pc in sorted(_back_edges(program)):
        if pc - t + 1 > REGION_SIWS:
            continue
        if spans and t < spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], pc + 1)
        else:
            spans.append([t, pc + 1])
    return [(a, z) for a, z in spans]


def _regions(program: Program, leaders: list[int], v: _Variant) -> list[tuple[int, int]]:
    """The pc ranges ``[a, z)`` lowered as separate LLVM functions: one range for most programs.

    Every S check's fault edge leaves every loop around it, and LLVM's loop passes (IndVarSimplify
    above all) take time that grows with a loop's size times its exits: a model step is one layer loop
    around ~2,000 SIWs, and its compile time grew with the square of the program (9 s of a 2,142-SIW
    step's ~14 s). A large program is therefore cut, at block leaders, into regions of about
    REGION_SIWS SIWs, never inside a loop of at most REGION_SIWS SIWs (the hot loop nests stay whole,
    in one function, with every optimisation); a larger loop's back edge then goes through the
    dispatcher, which costs a register spill and reload per trip of that (long) body. A loop-free stretch
    of at least COLD_MIN_SIWS SIWs between the nests of small loops becomes regions of its own, *cold*
    ones (no back edge inside: see ``_cold``), which get the light pipeline. Regions hand their
    registers on through the context block, as at a callback. Not split: one-sentron programs with
    C-pipe ops (their message ring lives in the function's stack frame) and programs with more
    collective groups than the context carries."""
    code = program.code
    n = len(code)
    if n <= SPLIT_SIWS or (v.single and _c_ops(program)) or len(program.groups) + 1 > CSEQ_WORDS:
        return [(0, n)]
    spans = _hot_spans(program)
    inside = [False] * (n + 1)  # a cut before this pc would split a small loop
    for a, z in spans:
        for pc in range(a + 1, z):
            inside[pc] = True
    allowed = [pc for pc in leaders if pc > 0 and not inside[pc]]
    lead = set(allowed)
    regions: list[tuple[int, int]] = []

    def chop(a: int, z: int) -> None:
        """``[a, z)`` (loop-free at this level: cut anywhere allowed) as regions of at most REGION_SIWS."""
        start, prev = a, None
        for pc in allowed[bisect.bisect_right(allowed, a) : bisect.bisect_left(allowed, z)]:
            if pc - start > REGION_SIWS and prev is not None and prev > start:
                regions.append((start, prev))
                start = prev
            prev = pc
        if z - start > REGION_SIWS and prev is not None and prev > start:
            regions.append((start, prev))
            start = prev
        regions.append((start, z))

    cur, pos = 0, 0  # the open (hot) region starts at cur; everything before pos is placed
    for a, z in [*spans, (n, n)]:
        if a - pos >= COLD_MIN_SIWS and (pos == 0 or pos in lead) and (a == n or a in lead):
            if cur < pos:
                regions.append((cur, pos))
            chop(pos, a)
            cur = a
        if z > a and z - cur > REGION_SIWS and cur < a and a in lead:
            regions.append((cur, a))  # the open region would grow too long: the nest starts a new one
            cur = a
        pos = z
    if cur < n:
        regions.append((cur, n))
    return regions


def _cold(program: Program, regions: list[tuple[int, int]]) -> list[bool]:
    """Per region: no loop lies inside it (no branch back to a pc of the same region). Such code runs
    once per trip of whatever loop is around it (the dispatcher's), so it gets the light pipeline."""
    starts = [a for a, _ in regions]
    hot = [False] * len(regions)
    for t, pc in _back_edges(program):
        k = bisect.bisect_right(starts, pc) - 1
        if t >= regions[k][0]:
            hot[k] = True
    return [not h for h in hot]


_gc_lock = threading.Lock()
_gc_depth = 0  # in-process builds running now (threads)
_gc_was_enabled = False  # the collector's state when the first of them started


@contextlib.contextmanager
def _collector_paused():
    """No cyclic collections while an IR module is built in this process. The builder allocates ~10
    objects per IR instruction and frees none until the end, so generational collections walk a
    growing heap that holds no garbage (about half of a model step's build time, docs/jit.md). The
    collector is restored when the last concurrent build ends (its state as the first one found it);
    compile children run without it altogether (``_child_main``)."""
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()


def build_module(program: Program, v: _Variant) -> tuple[str, list[int]]:
    """LLVM IR text of the program's function ``vtpu_entry(ctx)`` and the block leaders."""
    texts, leaders = build_parts(program, v, 1)
    return texts[0], leaders


TABLE = "vtpu_regions"  # a split program's dispatcher calls its regions through this table (parts > 1)


def build_parts(
    program: Program, v: _Variant, parts: int = 1, only: int | None = None
) -> tuple[list[str], list[int]]:
    """LLVM IR texts of the program and its block leaders: one module, or (a split program, ``parts`` >
    1) a dispatcher module, whose global ``TABLE`` holds the regions' addresses (filled at load), and
    ``parts - 1`` modules of consecutive regions, compiled in parallel and loaded separately."""
    with _collector_paused():
        try:
            return _build_parts(program, v, parts, only)
        finally:
            L.forget_regs()


def _module_text(mod) -> str:
    """``str(mod)``, byte for byte (tests/test_jit_irbuild.py), with the instructions' cached texts joined
    directly rather than through llvmlite's per-instruction format() and __str__ layers."""
    lines = [
        f'; ModuleID = "{mod.name}"',
        f'target triple = "{mod.triple}"',
        f'target datalayout = "{mod.data_layout}"',
        "",
    ]
    lines += [it.get_declaration() for it in mod.get_identified_types().values()]
    for gv in mod.globals.values():
        if not (isinstance(gv, ir.Function) and gv.blocks):
            lines.append(str(gv))
            continue
        buf: list[str] = []
        gv.descr_prototype(buf)
        buf.append("{\n")
        for blk in gv.blocks:
            buf.append(f"{blk._format_name()}:\n")
            for ins in blk.instructions:
                try:
                    t = ins._StrCaching__cached_str
                except AttributeError:
                    t = _fast_str(ins)
                buf.append(f"  {t}\n")
        buf.append("}\n")
        lines.append("".join(buf))
    lines += mod._get_metadata_lines()
    return "\n".join(lines)


def _meta(ins) -> str:
    """llvmlite's ``_stringify_metadata(leading_comma=True)``."""
    md = ins.metadata
    if not md:
        return ""
    return "".join([f", !{k} {v.get_reference()}" for k, v in md.items()])


def _fast_str(ins) -> str:
    """``str(ins)`` for the instructions the JIT's builder leaves to llvmlite -- branches (their weights
    are set after they are made), plain calls, float compares and shuffles -- without llvmlite's
    format layers; anything unusual (call attributes, a calling convention, fast-math flags, varargs)
    goes through ``str``. Byte for byte llvmlite's text (tests/test_jit_irbuild.py)."""
    c = ins.__class__
    ref = irbase._ref
    if c is _BR or c is _CBR:
        ops = ", ".join([f"{op.type} {ref(op)}" for op in ins.operands])
        return f"{ins.opname} {ops}{_meta(ins)}"
    if c is _CALL:
        fnty = ins.callee.function_type
        if ins.cconv or ins.tail or ins.arg_attributes or ins.attributes or ins.fastmath or fnty.var_arg:
            return str(ins)
        args = ", ".join([f"{a.type} {ref(a)}" for a in ins.operands[1:]])
        text = f"call {fnty.return_type} {ref(ins.callee)}({args}){_meta(ins)}"
        return text if isinstance(ins.type, ir.VoidType) else f"{ref(ins)} = {text}"
    if c is _FCMP:
        a, b = ins.operands
        flags = "".join([" " + f for f in ins.flags])
        text = f"fcmp{flags} {ins.op} {a.type} {ref(a)}, {ref(b)} {_meta(ins)}".rstrip()
        return f"{ref(ins)} = {text}"
    if c is _SHUF:
        ops = ", ".join([f"{op.type} {ref(op)}" for op in ins.operands])
        return f"{ref(ins)} = shufflevector {ops} {_meta(ins)}".rstrip()
    return str(ins)


if llvm is not None:
    _I = ir.instructions
    _BR, _CBR, _CALL, _FCMP, _SHUF = (
        _I.Branch,
        _I.ConditionalBranch,
        _I.CallInstr,
        _I.FCMPInstr,
        _I.ShuffleVector,
    )


def _text(mod) -> str:
    """The module's IR text (``_module_text``); the module is taken apart after (``_dismantle``)."""
    text = _module_text(mod)
    _dismantle(mod)
    return text


def _dismantle(mod) -> None:
    """Break the reference cycles of a built module (instruction <-> block <-> function <-> module, and
    phis with the values of their loop), so that reference counting frees it at once. Left to the
    cyclic collector, its ~200,000 objects (a model step) were all young when the collector came back
    on after the build (``_collector_paused``): that first collection cost 0.12-0.16 s, a third of
    the step's IR build, against ~0.03 s for this walk and the frees."""
    phi = ir.PhiInstr
    for gv in list(mod.globals.values()):
        if isinstance(gv, ir.Function):
            for blk in gv.blocks:
                for ins in blk.instructions:
                    ins.operands = ()
                    ins.parent = None
                    if ins.__class__ is phi:
                        ins.incomings = []
                blk.instructions = []
                blk.parent = blk.terminator = None
            gv.blocks = []
            gv.args = ()
            gv.return_value = None
        gv.parent = None
    mod.globals.clear()
    mod.metadata, mod.namedmetadata, mod._metadatacache = [], {}, {}  # metadata nodes point back too
    mod.__dict__.pop("_vtpu_weights", None)  # (irbase.weigh)


IMMS = "vtpu_imms"  # tier 0: the module's table of DMOV immediates (``_imm_slots``), filled at load


def _imm_slots(program: Program) -> tuple[dict[tuple[int, int], int], list[int]]:
    """Tier 0 (``_Variant.lift``): every ``DMOV r, imm`` reads its immediate from entry k of the module's
    ``IMMS`` table, which the loader fills with this program's values (``_fill_imms``). Programs that
    differ only in those immediates -- a model's prefill variants differ only in their chunk size --
    then have the same IR text and share one compiled object (``_compile_tier0``). (pc, slot) -> k, and
    the values (as u64)."""
    slots: dict[tuple[int, int], int] = {}
    values: list[int] = []
    inner = _innermost(program)
    for pc, siw in enumerate(program.code):
        if inner[pc]:
            continue
        for slot, ins in enumerate(siw):
            x = _lifted(ins)
            if x is not None:
                slots[(pc, slot)] = len(values)
                values.append(x & 0xFFFF_FFFF_FFFF_FFFF)
    return slots, values


def _innermost(program: Program) -> list[bool]:
    """Per pc: inside an innermost loop (a loop with no loop inside). Tier 0 keeps the immediates there
    in the code: read from the table in every trip, they made tier-0 prefill ~15 % slower, and a
    model's variants differ only in immediates outside them (chunk sizes, loop counts)."""
    loops = _back_edges(program)
    out = [False] * len(program.code)
    for t, pc in loops:
        if not any(t <= t2 and pc2 <= pc and (t2, pc2) != (t, pc) for t2, pc2 in loops):
            out[t : pc + 1] = [True] * (pc + 1 - t)
    return out


def _lifted(ins) -> int | None:
    """The immediate tier 0 reads from the IMMS table for ``ins`` (the i64 it stands for), or None: the
    immediate of ``DMOV r, imm`` and of the scalar i64 ``DADD``/``DSUB r, r, imm`` (loop counts, chunk
    sizes and strides: what a model's step variants differ in)."""
    name, args = ins.op.name, ins.args
    if name == "DMOV" and isinstance(args[1], Imm) and args[0].cls != "v":
        return args[1].value if ins.type != "f32" else args[1].value & 0xFFFFFFFF
    if (
        name in ("DADD", "DSUB")
        and ins.type == "i64"
        and args[0].cls == "r"
        and isinstance(args[1], Reg)
        and isinstance(args[2], Imm)
    ):
        return args[2].value
    return None


def build_tier0(program: Program, v: _Variant) -> tuple[str, list[int]]:
    """The tier-0 module (immediates lifted, ``_imm_slots``): its IR text and the values of its table."""
    vals: list[int] = []
    with _collector_paused():
        try:
            text = _build_parts(program, replace(v, lift=True), 1, None, vals)[0][0]
        finally:
            L.forget_regs()
    return text, vals


def _build_parts(
    program: Program, v: _Variant, parts: int, only: int | None, imm_values: list[int] | None = None
) -> tuple[list[str], list[int]]:
    leaders = _leaders(program)
    n = len(program.code)
    regions = _regions(program, leaders, v)

    imms = None
    rt = None
    if v.lift:
        slots, values = _imm_slots(program)
        if imm_values is not None:
            imm_values[:] = values

    def module():
        nonlocal imms, rt
        mod = ir.Module(name="vtpu")
        mod.triple = llvm.get_process_triple()
        if v.lift and values:
            ty = ir.ArrayType(L.I64, len(values))
            g = ir.GlobalVariable(mod, ty, name=IMMS)
            g.initializer = ir.Constant(ty, None)  # written at load: not a constant LLVM may fold
            imms = (g, slots)
        if _segmented(v):
            ty = ir.ArrayType(L.PTR, len(L.RT_FNS))
            rt = ir.GlobalVariable(mod, ty, name=RT)
            rt.initializer = ir.Constant(ty, None)  # the runtime's addresses, written at load (_fill_rt)
        return mod

    cold = _cold(program, regions)
    if len(regions) == 1:
        mod = module()
        fn = ir.Function(mod, ir.FunctionType(L.I64, [L.PTR]), name="vtpu_entry")
        if cold[0]:
            fn.attributes.add("cold")  # a loop-free program: the light pipeline (_light_optimise)
        _build_function(program, v, mod, fn, leaders, 0, n, None, imms=imms, rt=rt)
        return [_text(mod)], leaders
    # entries of each region: its first pc and every target of a branch from another region
    entries = [{a} for a, _ in regions]
    starts = [a for a, _ in regions]

    def region_of(pc: int) -> int:
        return bisect.bisect_right(starts, pc) - 1

    for pc, siw in enumerate(program.code):
        d = siw[0]
        if d.op.branch:
            t = d.args[-1].value
            if 0 <= t < n and region_of(t) != region_of(pc):
                entries[region_of(t)].add(t)
    fty = ir.FunctionType(L.I64, [L.PTR, L.I64])
    ngroups = len(program.groups) + 1
    analysis: list[_Analysis] = []  # made on first use (the dispatcher alone needs none)

    def add_regions(mod, ks, linkage: str) -> list:
        if not analysis:
            analysis.append(_Analysis.of(program, leaders, v))
        an = analysis[0]
        fns = []
        shared: dict = {}  # per module: the helper functions its regions call
        for k in ks:
            a, z = regions[k]
            fn = ir.Function(mod, fty, name=f"vtpu_region{k}")
            fn.linkage = linkage
            fn.attributes.add("noinline")
            if cold[k]:
                fn.attributes.add("cold")  # no loop inside: the light pipeline (_light_optimise)
            _build_function(program, v, mod, fn, leaders, a, z, (sorted(entries[k]), shared), an, imms, rt)
            fns.append(fn)
        return fns

    parts = max(1, min(parts, len(regions) + 1))
    if parts == 1:
        mod = module()
        _build_dispatcher(mod, add_regions(mod, range(len(regions)), "internal"), entries, ngroups)
        return [_text(mod)], leaders
    # ``only``: just that part's text (a child process builds its own part)
    texts = []
    if only in (None, 0):
        dmod = module()
        _build_dispatcher(dmod, len(regions), entries, ngroups)
        texts.append(_text(dmod))
    # consecutive regions, about the same compile work per part (a cold SIW costs about a quarter)
    work = [(z - a) * (COLD_WORK if c else 1) for (a, z), c in zip(regions, cold, strict=True)]
    total = sum(work)
    acc, chunk, made = 0, [], 1
    for k in range(len(regions)):
        chunk.append(k)
        acc += work[k]
        if acc * (parts - 1) >= total * made or k == len(regions) - 1:
            if only in (None, made):
                mod = module()
                add_regions(mod, chunk, "external")
                texts.append(_text(mod))
            made += 1
            chunk = []
    return texts, leaders


def _build_dispatcher(mod, fns, entries: list[set[int]], ngroups: int) -> None:
    """``vtpu_entry(ctx)`` of a split program: zero what the regions accumulate in the context, then call
    the region holding ``pc`` until one returns a status (>= 0); a negative return is ``~next pc``.
    ``fns``: the region functions, or their number (they are then called through ``TABLE``)."""
    fn = ir.Function(mod, ir.FunctionType(L.I64, [L.PTR]), name="vtpu_entry")
    fn.attributes.add("nounwind")
    ctx = fn.args[0]
    ctx.name = "ctx"
    entry = fn.append_basic_block("entry")
    b = irbase.builder(entry)

    def cptr(off: int):
        return b.gep(ctx, [ir.Constant(L.I64, off)], inbounds=True, source_etype=L.I8)

    zero = ir.Constant(L.I64, 0)
    tsc = b.call(
        mod.globals.get("llvm.readcyclecounter")
        or ir.Function(mod, ir.FunctionType(L.I64, []), name="llvm.readcyclecounter"),
        [],
    )
    b.store(tsc, cptr(L.OFF_TSC0), align=1)
    b.store(zero, cptr(L.OFF_FASTHITS), align=1)
    b.store(zero, cptr(OFF_LSTEPS), align=1)
    for k in range(len(jit_comm.STAT_NAMES)):
        b.store(zero, cptr(L.OFF_CSTAT + 8 * k), align=1)
    for g in range(ngroups):
        b.store(zero, cptr(OFF_CSEQ + 8 * g), align=1)
    loop = fn.append_basic_block("dispatch")
    bad = fn.append_basic_block("nowhere")
    b.branch(loop)
    b.position_at_end(loop)
    pc = b.phi(L.I64, name="pc")
    pc.add_incoming(zero, entry)
    sw = b.switch(pc, bad)
    table = None
    if isinstance(fns, int):
        tty = ir.ArrayType(L.PTR, fns)
        table = ir.GlobalVariable(mod, tty, name=TABLE)
        table.initializer = ir.Constant(tty, None)
        fns = range(fns)
    rty = ir.FunctionType(L.I64, [L.PTR, L.I64])
    for k, f in enumerate(fns):
        blk = fn.append_basic_block(f"call{k}")
        for t in sorted(entries[k]):
            sw.add_case(ir.Constant(L.I64, t), blk)
        b.position_at_end(blk)
        if table is not None:
            fp = b.load(
                b.gep(table, [zero, ir.Constant(L.I64, k)], inbounds=True, source_etype=tty), typ=L.PTR
            )
            f = L._FnPtr(fp, rty)
        r = b.call(f, [ctx, pc])
        done = fn.append_basic_block(f"ret{k}")
        more = fn.append_basic_block(f"next{k}")
        b.cbranch(b.icmp_signed(">=", r, zero), done, more)
        b.position_at_end(done)
        b.ret(r)
        b.position_at_end(more)
        pc.add_incoming(b.xor(r, ir.Constant(L.I64, -1)), more)
        b.branch(loop)
    b.position_at_end(bad)  # no region starts there: cannot happen (every exit targets an entry)
    b.ret(ir.Constant(L.I64, L.ST_ERROR))


@dataclass
class _Analysis:
    """What the lowering needs to know of the whole program (computed once, shared by its regions)."""

    targets: set[int]
    block_of: list[int]
    raw: set[int]
    consts: dict[int, dict[int, int]]
    counters: tuple[set[int], set[int]]
    fast_loops: dict

    @staticmethod
    def of(program: Program, leaders: list[int], v: _Variant) -> _Analysis:
        block_of = []
        bi = -1
        for pc in range(len(program.code)):
            if bi + 1 < len(leaders) and leaders[bi + 1] == pc:
                bi += 1
            block_of.append(bi)
        return _Analysis(
            _branch_targets(program),
            block_of,
            set() if v.precise else _raw_across_blocks(program.code),
            _const_coords(program, leaders),
            _block_counters(program, leaders),
            _fast_loops(
                program,
                leaders,
                edits=not v.single and any(ins.op.edits_scrolls for siw in program.code for ins in siw),
            ),
        )


RT = "vtpu_rt"  # tier 0: the module's table of the runtime's PPT helpers (lowering.RT_FNS), filled at load


def _segmented(v: _Variant) -> bool:
    """Tier-0 code with segment translations and the runtime table: one sentron, the fast variant, no
    step limit (a limit exit in the middle of a segment would leave PPT work done ahead)."""
    return v.lift and not v.precise and v.single and v.limit == "none"


_RUNTIMES: dict[tuple, tuple] = {}  # (sets, ways, cpu, features) -> (engine, addresses): kept for good


def _runtime(v: _Variant) -> list[int]:
    """The addresses of ``lowering.RT_FNS``, compiled once per process and PPT geometry into an engine of
    their own (tier-0 modules call them through their ``RT`` table; a second object in a program's
    engine is what crashed before, docs/jit.md): ~10 ms of LLVM per tier-0 module less."""
    key = (v.ppt_sets, v.ppt_ways, v.cpu, v.features)
    with _llvm_lock:  # one copy per key, ever: tables already filled point into it
        return _runtime_locked(key)


def _runtime_locked(key: tuple) -> list[int]:
    sets, ways, cpu, features = key
    got = _RUNTIMES.get(key)
    if got is None:
        mod = ir.Module(name="vtpu_rt")
        mod.triple = llvm.get_process_triple()
        tr = L.emit_ppt_translate(mod, sets, ways)
        slow = L.emit_ppt_slow(mod, tr)
        seq = L.emit_ppt_seq(mod, slow)
        for fn in (slow, seq):
            fn.linkage = "external"
        tm = _target_machine(cpu, features, 2)
        m = llvm.parse_assembly(str(mod))
        m.triple = tm.triple
        m.data_layout = str(tm.target_data)
        m.verify()
        _optimise_all(m, tm, 2)
        engine = llvm.create_mcjit_compiler(m, tm)
        engine.finalize_object()
        addrs = [engine.get_function_address(name) for name in L.RT_FNS]
        if not all(addrs):
            raise JitError("the tier-0 runtime has no PPT helpers")
        got = _RUNTIMES[key] = (engine, addrs)
    return got[1]


def _fill_rt(engine, v: _Variant) -> None:
    """Write the runtime's helper addresses into a tier-0 program's ``RT`` table (when it has one)."""
    addr = engine.get_global_value_address(RT)
    if addr:
        (ctypes.c_uint64 * len(L.RT_FNS)).from_address(addr)[:] = _runtime(v)


def _segment_plan(code: list, leaders: set[int], hi: int):
    """``plan(pc, slot)``: the p registers of the S accesses (``SGATHER``/``SSCATTR``, each translating
    its base once) from (pc, slot) on, in execution order (SIW by SIW, slots D, S, C), up to the end
    of the basic block or, before it, anything that could move a translation or the PPT between two of
    them: an op writing a p register, any other S op (the scroll-table callbacks), any C op (a
    blocking one calls back). D ops neither translate nor call back. At most ``SEQ_MAX`` accesses;
    memoised per (pc, slot)."""
    memo: dict[tuple[int, int], tuple[int, ...]] = {}

    def plan(pc: int, slot: int) -> tuple[int, ...]:
        got = memo.get((pc, slot))
        if got is not None:
            return got
        seq: list[int] = []
        p, first = pc, slot
        while p < hi and len(seq) < L.SEQ_MAX:
            siw = code[p]
            stop = False
            for ins in siw[first:]:
                if ins.is_nop:
                    continue
                name = ins.op.name
                if name in ("SGATHER", "SSCATTR"):
                    seq.append((ins.args[0] if name == "SSCATTR" else ins.args[1]).base)
                    if len(seq) == L.SEQ_MAX:
                        break
                elif ins.op.pipe != "D" or any(c == "p" for c, _ in L.regs_of(ins)[1]):
                    stop = True
                    break
            d = siw[0]
            if stop or d.op.branch or d.op.name == "DHALT" or p + 1 in leaders:
                break
            p, first = p + 1, 0
        got = memo[(pc, slot)] = tuple(seq)
        return got

    return plan


def _build_function(
    program: Program,
    v: _Variant,
    mod,
    fn,
    leaders: list[int],
    lo: int,
    hi: int,
    region,
    an: _Analysis | None = None,
    imms=None,
    rt=None,
) -> None:
    """Lower the SIWs ``[lo, hi)`` into ``fn``: the whole program (``region`` None: ``fn(ctx)``), or one
    region of a split program (``region`` = (entry pcs, state shared by the regions' lowerers):
    ``fn(ctx, entry pc)``, which returns a status or ``~next pc``)."""
    fn.attributes.add("nounwind")
    ctx = fn.args[0]
    ctx.name = "ctx"
    feats = {f[1:] for f in v.features.split(",") if f.startswith("+")}
    lw = L.Lowerer(
        fn,
        mod,
        ctx,
        portable=v.portable,
        features=feats,
        ppt_sets=v.ppt_sets,
        ppt_ways=v.ppt_ways,
        precise=v.precise,
    )
    lw.mru_mask = len(program.code) > MRU_MASK_SIWS  # see Lowerer.make_allocas
    lw.imms = imms
    if _segmented(v):
        # tier 0: one PPT check per segment of accesses (Lowerer._segment), on the mask, the helpers
        # through the module's runtime table
        lw.mru_mask = True
        lw.segment_plan = _segment_plan(program.code, set(leaders), hi)
        lw.rt_table = rt
    split = region is not None
    if split:
        for attr in (
            "_ppt_fn",
            "_pslow_fn",
            "_slot_fn",
            "_race_fn_cache",
        ):  # module-level helpers: made once
            if attr in region[1]:
                setattr(lw, attr, region[1][attr])
    code = program.code
    n = len(code)
    an = an or _Analysis.of(program, leaders, v)
    targets, block_of = an.targets, an.block_of
    mine = [pc for pc in leaders if lo <= pc < hi]
    # a one-sentron step limit is checked once per block (a block that would cross it exits at its start,
    # registers written back, and the engine runs the rest on the interpreter: JitEngine._limit_on_interp)
    # -- a precise exit per SIW made LLVM 15x slower on a model step; a program with C-pipe ops keeps the
    # check per SIW (its messages in flight live in the native ring, which the interpreter cannot see)
    block_limit = block_limited(program, v)
    block_len = {pc: z - pc for pc, z in zip(mine, [*mine[1:], hi], strict=True)}
    entry = fn.append_basic_block("entry")
    blocks = {pc: fn.append_basic_block(f"siw{pc}") for pc in mine}
    end = fn.append_basic_block("end")
    lw.exit_block = fn.append_basic_block("exit")
    conts: dict[int, ir.Block] = {}  # a split program's exits to another region, by target pc
    b = irbase.builder(entry)
    lw.b = b
    lw.make_allocas(b, len(leaders), keep={block_of[pc] for pc in mine} if split else None)
    jit_comm.setup(lw, program, v.single, race=v.race)
    used, written = set(), set()
    for siw in code[lo:hi]:
        for ins in siw:
            rd, wr = L.regs_of(ins)
            used |= rd | wr
            written |= wr
    if split:
        # a raw f32 register may arrive un-canonicalised from another region: this one canonicalises it
        # before it leaves the program (or a callback sees it), and must then store it back
        raw = {("v", i) for i in an.raw}
        used |= raw
        written |= raw
    lw.set_usage(used, written)
    if not v.precise:
        lw.raw_regs = an.raw
        if not split:  # a region's entries and exits keep the raw_regs protocol
            lw.nan_plan = L.NanPlan(program.code, an.raw)
    lw.block_consts = an.consts
    lw.load_state()
    zero = ir.Constant(L.I64, 0)
    # block counters: in SSA (stored at every exit) or in the counts array itself, which the engine
    # hands over zeroed (a fresh array per sentron and call)
    hot, looped = an.counters
    lw.COUNTS = [c if i in hot else None for i, c in enumerate(lw.COUNTS)]
    counts_base = lw.cload(L.OFF_COUNTS_PTR, L.PTR)
    for c in lw.COUNTS:
        if c is not None:
            b.store(zero, c)
    b.store(zero, lw.FASTHITS)
    b.store(zero, lw.TRSLOW)
    b.store(lw.cload(OFF_LSTEPS, L.I64) if split else zero, lw.STEPS)
    if split:
        for g, a in lw.CSEQ.items():
            b.store(lw.cload(OFF_CSEQ + 8 * g, L.I64), a)
    for i in range(8):
        b.store(ir.Constant(L.PTR, None), lw.TPTR[i])
        b.store(zero, lw.TSIZE[i])
        if not lw.mru_mask:
            b.store(zero, lw.TSET[i])
        b.store(zero, lw.TIDX[i])
    limit = lw.cload(L.OFF_MAXSTEPS, L.I64)
    abort_ptr = lw.cload(L.OFF_ABORT_PTR, L.PTR)
    steps_ptr = lw.cload(L.OFF_STEPS_PTR, L.PTR)
    if not split:
        lw.cstore(lw.call("llvm.readcyclecounter", L.I64, []), L.OFF_TSC0)
        b.branch(blocks[0] if n else end)
    elif len(region[0]) == 1:
        b.branch(blocks[lo])
    else:
        sw = b.switch(fn.args[1], blocks[lo])
        for t in region[0]:
            sw.add_case(ir.Constant(L.I64, t), blocks[t])

    fast_loops = {t: f for t, f in an.fast_loops.items() if lo <= t and f[0] < hi}
    # back edge -> (dispatch block, clone blocks): see _fast_loops
    dispatch = {t: fn.append_basic_block(f"dispatch{t}") for t in fast_loops}
    clones = {
        t: {pc: fn.append_basic_block(f"fsiw{pc}") for pc in mine if t <= pc <= last}
        for t, (last, *_) in fast_loops.items()
    }

    def cont(t: int):
        """The exit to pc ``t`` of another region (split programs)."""
        if t not in conts:
            conts[t] = fn.append_basic_block(f"to{t}")
        return conts[t]

    def target_block(t: int):
        if loop_head is None and t in dispatch:
            return dispatch[t]
        if t in bmap:
            return bmap[t]
        if t in blocks:
            return blocks[t]
        return end if t >= n else cont(t)

    def emit(pcs, bmap_: dict, loop: int | None) -> None:
        """Lower the SIWs ``pcs`` into the blocks ``bmap`` (leader -> block); ``loop``: the head of the
        fast clone being emitted (its back edge stays in the clone), or None for the general code."""
        nonlocal bmap, loop_head
        bmap, loop_head = bmap_, loop
        for pc in pcs:
            siw = code[pc]
            lw.pc = pc
            if pc in bmap:
                if b.block.terminator is None:
                    b.branch(bmap[pc])
                b.position_at_end(bmap[pc])
                lw.block_start()
                if pc in targets:  # loop heads: honour Ctrl-C and other sentrons' faults
                    lw.slot = 0
                    flag = b.load_atomic(abort_ptr, "monotonic", 4, typ=L.I32)
                    go = fn.append_basic_block(f"go{pc}")
                    stop_cond = b.icmp_unsigned("!=", flag, ir.Constant(L.I32, 0))
                    if v.precise:
                        stop = fn.append_basic_block(f"stop{pc}")
                        irbase.weigh(b.cbranch(stop_cond, stop, go), [1, 1 << 20])
                        b.position_at_end(stop)
                        lw.exit_with(L.ST_ABORT, counted=0)
                    else:  # the run is replayed or abandoned: nothing to write back
                        irbase.weigh(b.cbranch(stop_cond, lw.get_fault_block(), go), [1, 1 << 20])
                        lw.fault_phi.add_incoming(ir.Constant(L.I64, L.ST_ABORT | (pc << 16)), b.block)
                    b.position_at_end(go)
                cnt = lw.COUNTS[block_of[pc]]
                if cnt is None:  # see _block_counters
                    idx = ir.Constant(L.I64, block_of[pc])
                    cp = b.gep(counts_base, [idx], source_etype=L.I64)
                    if block_of[pc] in looped:
                        b.store(b.add(b.load(cp, typ=L.I64, align=8), ir.Constant(L.I64, 1)), cp, align=8)
                    else:
                        b.store(ir.Constant(L.I64, 1), cp, align=8)
                else:
                    b.store(b.add(b.load(cnt), ir.Constant(L.I64, 1)), cnt)
            lw.slot = 0
            if block_limit and pc in bmap:
                st = b.load(lw.STEPS)
                nxt_st = b.add(st, ir.Constant(L.I64, block_len[pc]))
                lw.fault_if(b.icmp_signed(">", nxt_st, limit), L.ST_LIMIT)
                b.store(nxt_st, lw.STEPS)
            elif v.limit == "local" and not block_limit:
                st = b.load(lw.STEPS)
                lw.fault_if(b.icmp_signed("==", st, limit), L.ST_LIMIT)
                b.store(b.add(st, ir.Constant(L.I64, 1)), lw.STEPS)
            elif v.limit == "shared":
                old = b.atomic_rmw("add", steps_ptr, ir.Constant(L.I64, 1), "monotonic")
                lw.fault_if(b.icmp_signed(">=", old, limit), L.ST_LIMIT)
            c_ins = siw[2]
            if c_ins.op.blocking:
                lw.slot = 2
                jit_comm.ready(lw, c_ins)
            lw.branch = None
            lw.halt = False
            for slot, ins in enumerate(siw):
                if ins.is_nop:
                    continue
                lw.slot = slot
                L.LOWER[ins.op.name](lw, ins)
                if ins.op.name != "SCOORD":  # p writes through callbacks (SALLOC ...) forget constants
                    for cls, i in L.regs_of(ins)[1]:
                        if cls == "p":
                            lw.pconst.pop(i, None)
            lw.slot = 0
            follows = pc + 1 in blocks or pc + 1 >= n or pc + 1 == hi
            nxt = target_block(pc + 1) if follows else None
            if lw.halt or lw.branch is not None or nxt is not None:
                lw.block_end()  # only registers in raw_regs may cross a block boundary un-canonicalised
            if lw.halt:
                lw.exit_with(L.ST_OK, pc=pc + 1)
            elif lw.branch is not None:
                cond, t = lw.branch
                if cond is None:
                    b.branch(target_block(t))
                else:
                    b.cbranch(cond, target_block(t), nxt)
            elif follows:
                b.branch(nxt)

    bmap: dict = blocks
    loop_head: int | None = None
    emit(range(lo, hi), blocks, None)
    for t, (last, pregs, stores, releases) in fast_loops.items():
        # dispatch: every p register the loop accesses is its PPT set's MRU entry (and, several
        # sentrons in a loop that keeps its epoch, has its read/write recorded) -> the fast clone
        if b.block.terminator is None:
            b.branch(end)
        b.position_at_end(dispatch[t])
        ok = lw.mru_all(pregs)
        known_race = lw.race and not releases
        for i in pregs:
            if known_race:
                rec = b.load(lw.WREC[i])
                if i not in stores:
                    rec = b.or_(rec, b.load(lw.RREC[i]))
                ok = b.and_(ok, rec)
        head_bounds, proven = _bounded_offsets(program, t, last)
        indexed = _bounded_indexes(program, t, last)
        if proven:
            ok = b.and_(ok, _bounds_hold(lw, head_bounds, proven))
        for p, off, size, c, window in sorted(set(indexed.values())):
            need = max(off + size * (c + 1), L.WINDOW if window else 0)
            ok = b.and_(ok, b.icmp_signed(">=", b.load(lw.TSIZE[p]), ir.Constant(L.I64, need)))
        b.cbranch(ok, clones[t][t], blocks[t])
        lw.known_mru, lw.known_race = True, known_race
        lw.unchecked = set(proven) | set(indexed)
        lw.window_proven = {k for k, v in indexed.items() if v[4]}
        try:
            emit(range(t, last + 1), clones[t], t)
        finally:
            lw.known_mru, lw.known_race, lw.unchecked, lw.window_proven = False, False, set(), set()
        if b.block.terminator is None:
            b.branch(target_block(last + 1) if last + 1 < n else end)
    if n and b.block.terminator is None:
        b.branch(end)
    b.position_at_end(end)
    lw.block_start()
    lw.pc = n
    lw.exit_with(L.ST_OK, pc=n)
    lw.pending = set()  # every path into the exits below has canonicalised what it must (block_end)
    b.position_at_end(lw.exit_block)
    _leave(lw, split)
    b.ret(lw.cload(L.OFF_STATUS, L.I64))
    for t, blk in conts.items():
        b.position_at_end(blk)
        _leave(lw, split)
        b.ret(ir.Constant(L.I64, ~t))
    if lw.fault_block is not None:
        # the shared fault exit: (status, slot, pc) come from the phi; block counts are stored (they
        # say how far the run got, for the replay); no register is written back
        b.position_at_end(lw.fault_block)
        code = lw.fault_phi
        counts_ptr = lw.cload(L.OFF_COUNTS_PTR, L.PTR)
        st = b.and_(code, ir.Constant(L.I64, 0xFF))
        lw.cstore(st, L.OFF_STATUS)
        lw.cstore(b.lshr(code, ir.Constant(L.I64, 16)), L.OFF_PC)
        lw.cstore(b.and_(b.lshr(code, ir.Constant(L.I64, 8)), ir.Constant(L.I64, 0xFF)), L.OFF_SLOT)
        lw.cstore(b.zext(b.icmp_unsigned("!=", st, ir.Constant(L.I64, L.ST_ABORT)), L.I64), L.OFF_COUNTED)
        _store_counts(lw, counts_ptr, split)
        lw.cstore(lw.call("llvm.readcyclecounter", L.I64, []), L.OFF_TSC1)
        b.ret(st)
    if split:
        for attr in ("_ppt_fn", "_pslow_fn", "_slot_fn", "_race_fn_cache"):
            if getattr(lw, attr, None) is not None:
                region[1][attr] = getattr(lw, attr)


def _store_counts(lw, counts_ptr, add: bool) -> None:
    """SSA block counters -> the counts array (added to it in a region: other calls counted too)."""
    b = lw.b
    for i, c in enumerate(lw.COUNTS):
        if c is not None:
            p = b.gep(counts_ptr, [ir.Constant(L.I64, i)], source_etype=L.I64)
            val = b.load(c)
            b.store(b.add(b.load(p, typ=L.I64, align=8), val) if add else val, p, align=8)


def _leave(lw, split: bool) -> None:
    """A function's normal exit: registers, counters and statistics -> ctx. A region adds its counters
    to the context's (the dispatcher zeroed them) and hands on its step count and collective sequence
    numbers."""
    b = lw.b
    lw.spill_state()
    _store_counts(lw, lw.cload(L.OFF_COUNTS_PTR, L.PTR), split)
    hits = b.sub(b.load(lw.FASTHITS), b.load(lw.TRSLOW))
    if not split:
        lw.cstore(hits, L.OFF_FASTHITS)
        jit_comm.store_stats(lw)
    else:
        lw.cstore(b.add(lw.cload(L.OFF_FASTHITS, L.I64), hits), L.OFF_FASTHITS)
        for k, s in enumerate(lw.STATS):
            off = L.OFF_CSTAT + 8 * k
            lw.cstore(b.add(lw.cload(off, L.I64), b.load(s)), off)
        lw.cstore(b.load(lw.STEPS), OFF_LSTEPS)
        for g, a in lw.CSEQ.items():
            lw.cstore(b.load(a), OFF_CSEQ + 8 * g)
    lw.cstore(lw.call("llvm.readcyclecounter", L.I64, []), L.OFF_TSC1)


def _bounds_hold(lw, head: dict[int, Bound], proven: dict[tuple[int, int], tuple[int, int, Bound]]):
    """i1 at a fast clone's dispatch: the bounds of ``_bounded_offsets`` hold now, so the proven
    accesses stay inside their scrolls on every trip of the clone."""
    b = lw.b
    i64 = L.I64

    def c64(x: int):
        return ir.Constant(i64, x)

    def zmax(bd: Bound):
        """The largest z: M rounded down to the alignment."""
        mv = c64(bd.c) if bd.m is None else lw.rget(bd.m)
        return b.and_(mv, c64(~((1 << bd.align) - 1)))

    ok = ir.Constant(L.I1, 1)
    for m in sorted(({bd.m for bd in head.values()} | {bd.m for _, _, bd in proven.values()}) - {None}):
        ok = b.and_(ok, b.icmp_unsigned("<=", lw.rget(m), c64(BOUND_MAX)))
    for r, bd in sorted(head.items(), key=lambda kv: kv[0]):
        z = b.sub(lw.rget(r), c64(bd.k))
        ok = b.and_(ok, b.icmp_unsigned("<=", z, zmax(bd)))
        ok = b.and_(ok, b.icmp_unsigned("==", b.and_(z, c64((1 << bd.align) - 1)), c64(0)))
    for p, nbytes, bd in sorted(set(proven.values()), key=repr):
        top = b.add(zmax(bd), c64(bd.k))
        ok = b.and_(ok, b.icmp_unsigned("<", top, L._ends(lw, b.load(lw.TSIZE[p]), nbytes)))
    return ok


def _optimise(mod, tm, level: int = 3) -> None:
    pto = llvm.create_pipeline_tuning_options(speed_level=level)
    pto.loop_vectorization = level >= 2
    pto.slp_vectorization = level >= 2
    # O3's loop unrolling made LLVM 22's instruction selection (SelectionDAG::Legalize) spin forever on a
    # generated program (tests/data/jit_o3_unroll_hang.ll); without it that program compiles in ms, and
    # the phase-0 programs measured the same within noise (geomean 1.53-1.73 with, 1.58-1.59 without)
    pto.loop_unrolling = level < 3
    pb = llvm.create_pass_builder(tm, pto)
    mpm = pb.getModulePassManager()
    mpm.run(mod, pb)


def _light_optimise(mod, tm) -> None:
    """Cold functions (``cold``: a region, or a whole program, with no loop inside) get a light pipeline
    -- registers into SSA (SROA), dead code out, the CFG simplified -- and then ``optnone``, so the
    module pipeline skips them and instruction selection takes the fast path. Their code runs once per
    trip of an outer loop (or once per run), so O2's loop, vectorisation and InstCombine work bought
    nothing there; the hot loop nests (every function with a loop) keep the full pipeline."""
    cold = [f for f in mod.functions if not f.is_declaration and b"cold" in b" ".join(f.attributes).split()]
    if not cold:
        return
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=0))
    fpm = llvm.create_new_function_pass_manager()
    fpm.add_sroa_pass()
    fpm.add_simplify_cfg_pass()
    fpm.add_dead_code_elimination_pass()
    for f in cold:
        fpm.run(f, pb)
        f.add_function_attribute("optnone")
        if b"noinline" not in b" ".join(f.attributes).split():
            f.add_function_attribute("noinline")  # optnone requires it


def _optimise_all(mod, tm, opt: int) -> None:
    """The light pipeline on cold functions, then ``opt`` on the rest."""
    _light_optimise(mod, tm)
    if opt:
        _optimise(mod, tm, opt)


TIER0_OPT = 0  # the optimisation level of tier-0 code (see _all_cold and docs/jit.md, "Tiers")


def _all_cold(mod) -> None:
    """Tier 0 (``opt`` 0): every defined function is treated as cold -- the light pipeline, ``optnone``,
    and instruction selection's fast path at codegen level 0 -- so native code is ready in a fraction of
    the full compile (the 2B decode step: ~0.3 against ~3.2 CPU-s of LLVM). Same IR, same semantics:
    only LLVM's optimisation differs, and no optimisation may change what the IR computes."""
    for f in mod.functions:
        if not f.is_declaration and b"cold" not in b" ".join(f.attributes).split():
            f.add_function_attribute("cold")


# instruction selection stays on the fast path for optnone functions at any level; level 1 adds the greedy
# register allocator: +0.4 CPU-s on the 2B decode step, whose tier-0 code then runs within ~5 % of the
# tier-1 code (66 against 64 ms per token) instead of ~1.45x slower at level 0 (89-98 ms)
TIER0_CODEGEN = 1


def _compile_object(ir_text: str, v: _Variant, opt: int) -> bytes:
    tm = _target_machine(v.cpu, v.features, opt=min(opt, 3) if opt != TIER0_OPT else TIER0_CODEGEN)
    mod = llvm.parse_assembly(ir_text)
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    mod.verify()
    if opt == TIER0_OPT:
        _all_cold(mod)
    _optimise_all(mod, tm, opt)
    return _emit_object(tm, mod, ir_text)


def _emit_object(tm, mod, ir_text: str) -> bytes:
    """The object code of an optimised module (``ir_text``: the IR it was parsed from). Not LLVM's
    ``-regalloc``: the first emission of a process fixes the allocator for the rest of it (docs/jit.md,
    "Tiers"), so it cannot be chosen per tier."""
    if ir_text.count("\n") <= LARGE_IR_LINES:
        return tm.emit_object(mod)
    # LLVM's register coalescer is superlinear on the long straight-line blocks of large programs (40 %
    # of all compile time on a 1,254-SIW BitNet layer); without it codegen is 3-4x faster for code
    # about 5 % larger. The option is process-wide, so it is set only around this emission.
    with _init_lock:
        llvm.set_option("vtpu", "-join-liveintervals=0")
        try:
            return tm.emit_object(mod)
        finally:
            llvm.set_option("vtpu", "-join-liveintervals=1")


def emit_assembly(
    program: Program, *, precise: bool = False, portable: bool = False, opt: int = 3, ppt_sets: int = 64
) -> str:
    """The optimised x86 assembly of a program's native function (for inspecting the lowering)."""
    _init()
    cpu, features = host_target(portable or _portable_env())
    v = _Variant("none", portable, ppt_sets, cpu, features, 4, precise, True)
    text = build_tier0(program, v)[0] if opt == TIER0_OPT else build_module(program, v)[0]
    tm = _target_machine(cpu, features, opt=min(opt, 3) if opt != TIER0_OPT else TIER0_CODEGEN)
    mod = llvm.parse_assembly(text)
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    if opt == TIER0_OPT:
        _all_cold(mod)
    _optimise_all(mod, tm, opt)
    return tm.emit_assembly(mod)


PACK_MAGIC = b"VTPUPRT1"  # several objects of one program (build_parts): magic, parts, regions, lengths


def _pack(objs: list[bytes], regions: int) -> bytes:
    if len(objs) == 1:
        return objs[0]
    head = struct.pack(f"<8sII{len(objs)}Q", PACK_MAGIC, len(objs), regions, *map(len, objs))
    return head + b"".join(objs)


def _unpack(blob: bytes) -> tuple[list[bytes], int]:
    if not blob.startswith(PACK_MAGIC):
        return [blob], 0
    nparts, regions = struct.unpack_from("<II", blob, 8)
    lens = struct.unpack_from(f"<{nparts}Q", blob, 16)
    off, out = 16 + 8 * nparts, []
    for n in lens:
        out.append(blob[off : off + n])
        off += n
    return out, regions


def _load_object(obj: bytes, v: _Variant):
    """Load a compiled program: (what keeps its code mapped, entry address). A program in parts loads
    each part into its own engine and writes its regions' addresses into the dispatcher's table."""
    objs, regions = _unpack(obj)
    if len(objs) == 1:
        return _load_one(objs[0], v)
    engines = []
    for o in objs:
        engines.append(_load_one(o, v, entry=False)[0])
    table = engines[0].get_global_value_address(TABLE)
    if not table:
        raise JitError("compiled dispatcher has no region table")
    slots = (ctypes.c_uint64 * regions).from_address(table)
    for k in range(regions):
        addr = 0
        for e in engines[1:]:
            addr = addr or e.get_function_address(f"vtpu_region{k}")
        if not addr:
            raise JitError(f"compiled program has no region {k}")
        slots[k] = addr
    return tuple(engines), engines[0].get_function_address("vtpu_entry")


def _load_one(obj: bytes, v: _Variant, entry: bool = True):
    tm = _target_machine(v.cpu, v.features)
    backing = llvm.parse_assembly("")
    backing.triple = tm.triple
    engine = llvm.create_mcjit_compiler(backing, tm)
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    if not entry:
        return engine, 0
    addr = engine.get_function_address("vtpu_entry")
    if not addr:
        raise JitError("compiled object has no vtpu_entry")
    return engine, addr


@dataclass
class Compiled:
    key: str
    entry: int
    leaders: list[int]
    compile_s: float
    cache_hit: str  # "memory" | "disk" | "" (compiled now)
    variant: _Variant
    opt: int = 2  # the optimisation level it was compiled at (TIER0_OPT: tier-0 code)

    @property
    def tier(self) -> int:
        """0: quick code (every function through the light pipeline); 1: the fully optimised code."""
        return 0 if self.opt == TIER0_OPT else 1


# Programs with more SIWs than this compile at O2 (no measurable run-time change on f32_gemm and
# ternary_gemv, about 10 % less compile time; O1 halves the pass time but runs 25-30 % slower).
LARGE_PROGRAM_SIWS = 512
# Programs with more SIWs than this keep the p registers' MRU flags in one mask and translate slowly out
# of line (Lowerer.mru_mask: a sixth less IR for a model step); smaller ones keep one flag per register.
MRU_MASK_SIWS = LARGE_PROGRAM_SIWS
LARGE_IR_LINES = 20_000  # IR above this size is emitted without register coalescing (see _compile_object)


CACHE_ENTRIES = 256  # compiled objects kept per cache directory (least recently written go first)


def program_key(program: Program, v, opt: int) -> str:
    """The cache key: the whole program (its canonical .siw encoding: code, groups, data, outputs -- the
    lowering bakes groups and scroll layout in), the variant, the optimisation level and the versions of
    vtpu, llvmlite and the JIT's own sources."""
    from vtpu_cli.binary.siwfile import encoding_digest

    h = hashlib.sha256()
    h.update(encoding_digest(program))
    for part in (
        repr(v).encode(),
        str(opt).encode(),
        f"{SPLIT_SIWS}/{REGION_SIWS}/{COLD_MIN_SIWS}/{MRU_MASK_SIWS}".encode(),
        __version__.encode(),
        llvmlite.__version__.encode(),
        _source_hash().encode(),
    ):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


SEAL_BYTES = 32


def _seal(key: str, obj: bytes) -> bytes:
    """The trailer stored after a cached object: SHA-256 of its key and bytes. A truncated, corrupted or
    substituted object (one written for another key) fails the check and is recompiled."""
    return hashlib.sha256(key.encode() + b"\0" + obj).digest()


def _private_dir(path: Path) -> bool:
    """Only a directory owned by this user and not writable by group or others may feed native code
    into this process (a shared or world-writable cache could hand us anyone's machine code)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return False
    return not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _read_cached(path: Path, fpath: Path, key: str) -> bytes | None:
    """A cached object, or None: the directory must be private, the file ours, not a link, not group- or
    world-writable, and its seal must match."""
    if not _private_dir(path):
        return None
    try:
        fd = os.open(fpath, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            return None
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or not stat.S_ISREG(st.st_mode):
            return None
        with os.fdopen(fd, "rb") as f:
            fd = -1
            blob = f.read()
    except OSError:
        return None
    finally:
        if fd >= 0:
            os.close(fd)
    obj, seal = blob[:-SEAL_BYTES], blob[-SEAL_BYTES:]
    if len(blob) <= SEAL_BYTES or _seal(key, obj) != seal:
        return None
    return obj


def _prune_cache(path: Path) -> None:
    files = sorted(path.glob("jit-*.o"), key=lambda f: f.stat().st_mtime)
    for f in files[:-CACHE_ENTRIES]:
        f.unlink(missing_ok=True)


COMPILE_TIMEOUT_ENV = "VTPU_JIT_COMPILE_TIMEOUT"
COMPILE_TIMEOUT_S = 120.0  # a large program's LLVM compile may take at most this much CPU time
WALL_PER_CPU_S = 10.0  # and at most this many times as long on the wall clock (a busy host's share of a core)
CHILD_IR_LINES = LARGE_IR_LINES  # IR above this is compiled in a child process, under the time limit


LOCK_POLL_S = 0.25  # how often a compile waiting for another process's object looks for it


def _lock_alive(lock: Path) -> bool:
    """Whether the process named in a compile lock still runs."""
    try:
        pid = int(lock.read_text().strip() or "0")
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - the cache directory is private: not expected
        return True
    return True


@contextlib.contextmanager
def _compiling(path: Path, key: str):
    """Hold ``jit-<key>.lock`` in the cache directory while this process compiles ``key`` for the disk
    cache, so that two detached compiles of one program -- a second cold ``vtpu generate`` started
    before the first one's background compiles finished -- do not both do the work: the later one
    waits, looking for the object every ``LOCK_POLL_S``, and yields it when it appears (the caller then
    compiles nothing). A lock whose process is gone, or older than the compile's wall-clock limit, is
    taken over; a directory where no lock can be made costs only the duplicate work. Yields the object
    another process stored, or None: compile it here."""
    name = f"jit-{key[:40]}"
    lock, fpath = path / f"{name}.lock", path / f"{name}.o"
    deadline = time.monotonic() + compile_timeout_s() * WALL_PER_CPU_S
    fd = -1
    while fd < 0:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            obj = _read_cached(path, fpath, key)
            if obj is not None:
                yield obj
                return
            if not _lock_alive(lock) or time.monotonic() > deadline:
                with contextlib.suppress(OSError):
                    os.unlink(lock)
                continue
            time.sleep(LOCK_POLL_S)
        except OSError:
            yield None
            return
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield _read_cached(path, fpath, key)  # stored between this process's cache miss and its lock
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)


def compile_timeout_s() -> float:
    """``$VTPU_JIT_COMPILE_TIMEOUT`` (CPU seconds) or :data:`COMPILE_TIMEOUT_S`."""
    try:
        t = float(os.environ.get(COMPILE_TIMEOUT_ENV, COMPILE_TIMEOUT_S))
    except ValueError:
        return COMPILE_TIMEOUT_S
    return t if t > 0 else COMPILE_TIMEOUT_S


def _compile_bounded(ir_text: str, v: _Variant, opt: int) -> bytes:
    """LLVM's compile of ``ir_text``, bounded in time for large IR.

    Some program shapes (many loops nested in one outer loop) still compile superlinearly, and a
    thread inside LLVM cannot be stopped; so large IR is compiled by a child process, which is killed
    at the limit, and the program then runs on the interpreter with the reason (``L.Unsupported``).
    Small IR (most programs) compiles in-process: a child costs ~0.3 s of start-up."""
    if ir_text.count("\n") <= CHILD_IR_LINES:
        with _llvm_lock:
            return _compile_object(ir_text, v, opt)
    return _in_child(("ir", ir_text, v, opt))


def _child_command() -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a compile child, which must import exactly the parent's
    vtpu_cli: ``-P`` keeps the working directory off its path (another checkout, or a hostile package
    of that name where the user runs vtpu), and the directory the parent's package was imported from
    goes first on ``PYTHONPATH`` (a parent run from a source tree, or a stale install elsewhere on the
    path, would otherwise give the child a different vtpu_cli)."""
    import sys

    root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ)
    rest = [d for d in env.get("PYTHONPATH", "").split(os.pathsep) if d and d != root]
    env["PYTHONPATH"] = os.pathsep.join([root, *rest])
    cmd = [sys.executable, "-P", "-c", "from vtpu_cli.engines.jit.compile import _child_main; _child_main()"]
    return cmd, env


_spare: tuple | None = None  # (process, command, environment): a started child with no job yet
_spare_lock = threading.Lock()


def _spawn(cmd: list[str], env: dict[str, str]):
    import subprocess

    return subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


def prestart_child() -> None:
    """Start a compile child now, before its job exists: it imports vtpu and LLVM (~0.3 s) while the
    caller still loads or lowers, and the next :func:`_in_child` gives it its job. For a caller that is
    about to compile in a child (a model starting its step variants together), which stops it with
    :func:`drop_spare` if no job took it (a spare left running exits when this process does: its stdin
    closes)."""
    global _spare
    cmd, env = _child_command()
    with _spare_lock:
        if _spare is None or _spare[0].poll() is not None:
            _spare = (_spawn(cmd, env), cmd, env)


def drop_spare() -> None:
    """Stop the spare child if no job took it (every compile of a start ran in this process): it would
    otherwise wait, with vtpu and LLVM loaded, until this process ends (a server runs for days)."""
    global _spare
    with _spare_lock:
        got, _spare = _spare, None
    if got is not None:
        got[0].kill()
        got[0].wait()


def _take_spare(cmd: list[str], env: dict[str, str]):
    """The spare child, when it was started as ``cmd`` would start one now (else None)."""
    global _spare
    with _spare_lock:
        got, _spare = _spare, None
    if got is None:
        return None
    p, c, e = got
    if (c, e) == (cmd, env) and p.poll() is None:
        return p
    p.kill()
    p.wait()
    return None


def _in_child(job: tuple, nice: int = 0) -> bytes:
    """Run ``job`` (see :func:`_child_main`) in a child process under the time limit (the spare one of
    :func:`prestart_child`, if any); its object. ``nice``: the child lowers its scheduling priority by
    this much (a background tier-1 compile, which must not slow down the tier-0 code it will replace)."""
    import pickle
    import signal
    import subprocess

    limit = compile_timeout_s()
    wall = limit * WALL_PER_CPU_S
    cmd, env = _child_command()
    p = _take_spare(cmd, env) or _spawn(cmd, env)
    try:
        stdout, stderr = p.communicate(pickle.dumps((limit, job, nice)), timeout=wall)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise L.Unsupported(
            f"its native compile ran over {wall:g} s of wall-clock time, {WALL_PER_CPU_S:g}x its CPU-time "
            f"limit ({COMPILE_TIMEOUT_ENV} raises the limit)"
        ) from None
    p = subprocess.CompletedProcess(cmd, p.returncode, stdout, stderr)
    if p.returncode == -getattr(signal, "SIGXCPU", -1):
        raise L.Unsupported(
            f"its native compile ran over {limit:g} s of CPU time ({COMPILE_TIMEOUT_ENV} raises the limit)"
        )
    if p.returncode != 0 or not p.stdout:
        why = (p.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {p.returncode}"])[-1]
        raise L.Unsupported(f"its native compile failed in a child process: {why[:200]}")
    return p.stdout


BACKGROUND_NICE = 10  # how much lower a background (tier-1) compile's children run (see compile_program)
JOBS_ENV = "VTPU_JIT_JOBS"
PART_SIWS = 768  # a split program is compiled in parts of about this many SIWs, in parallel


def compile_parts(program: Program) -> int:
    """How many modules a program is compiled as (``build_parts``): one, or for a split program a
    dispatcher and up to ``$VTPU_JIT_JOBS`` (default: the CPU count, at most 8) parts of regions, each
    compiled by its own child process at the same time."""
    n = len(program.code)
    if n <= SPLIT_SIWS:
        return 1
    try:
        jobs = int(os.environ.get(JOBS_ENV, "0")) or (os.cpu_count() or 1)
    except ValueError:
        jobs = os.cpu_count() or 1
    jobs = min(jobs, 8, -(-n // PART_SIWS))
    return 1 + jobs if jobs > 1 else 1


def _compile_split(program: Program, v: _Variant, opt: int, parts: int, nice: int = 0) -> bytes:
    """A split program in ``parts`` modules (``build_parts``), packed into one object blob (``_pack``):
    the dispatcher here, every other part lowered and compiled by its own child process, all at once
    (so the Python IR building runs in parallel too, also across variants compiled at the same time)."""
    from concurrent.futures import ThreadPoolExecutor

    dispatcher = build_parts(program, v, parts, only=0)[0][0]

    def part(i: int) -> bytes:
        if i == 0:
            return _compile_bounded(dispatcher, v, opt)
        return _in_child(("part", program, v, opt, parts, i, _sizes()), nice)

    with ThreadPoolExecutor(max_workers=parts, thread_name_prefix="vtpu-jit-part") as pool:
        objs = list(pool.map(part, range(parts)))
    return _pack(objs, len(_regions(program, _leaders(program), v)))


def _sizes() -> tuple[int, int, int, int]:
    """The module-level size limits a child must lower with (tests change them)."""
    return (SPLIT_SIWS, REGION_SIWS, COLD_MIN_SIWS, MRU_MASK_SIWS)


def compile_detached(program: Program, on_sent=None, **kw) -> None:
    """Compile ``program`` at tier 1 (``compile_program(program, **kw)``) in a detached child process
    that stores the object in the disk cache, and wait for it. The child runs in its own session at
    background priority (``_background_priority``; its own children inherit it): the process that
    started it may end first -- a short ``vtpu generate`` -- and the optimised code still reaches the
    cache for the next start. ``on_sent()`` is called once the child holds its whole job. Raises
    :class:`JitError` with the child's reason when it fails."""
    import pickle
    import subprocess

    kw["cache_dir"] = str(kw.get("cache_dir") or default_cache_dir())
    cmd, env = _child_command()
    job = ("store", program, kw, _sizes())
    blob = pickle.dumps((compile_timeout_s(), job, BACKGROUND_NICE))
    p = subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a Ctrl-C of the terminal is for the run, not for the cache's compile
    )
    try:  # the child reads its whole job before it writes anything: no deadlock on the pipes
        p.stdin.write(blob)
        p.stdin.close()
    except BrokenPipeError:
        pass  # it died at once: its status and stderr say why
    if on_sent is not None:
        on_sent()
    err = p.stderr.read()
    p.stderr.close()
    p.wait()
    if p.returncode != 0:
        why = (err.decode(errors="replace").strip().splitlines() or [f"exit status {p.returncode}"])[-1]
        raise JitError(f"the background compile failed: {why[:200]}")


def _limit_cpu(seconds: float) -> None:
    """Bound this process's CPU time: past ``seconds`` the kernel sends SIGXCPU, which ends it. CPU time,
    not wall time, is what a runaway compile consumes; a host busy with other work only stretches the
    wall clock (the parent's wall limit is :data:`WALL_PER_CPU_S` times longer)."""
    try:
        import math
        import resource

        used = resource.getrusage(resource.RUSAGE_SELF)
        soft = math.ceil(used.ru_utime + used.ru_stime + seconds)  # RLIMIT_CPU counts whole seconds
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5))
    except (ImportError, ValueError, OSError):  # pragma: no cover - no rlimits: the wall limit still holds
        pass


def _limit_wall(cpu_limit: float) -> int:
    """A detached compile runs at background priority: on a host that is never idle it could wait for
    CPU time without end, so it also ends (SIGALRM) after :data:`WALL_PER_CPU_S` times its CPU limit on
    the wall clock. Returns the seconds set (0: no alarms here)."""
    import signal

    if not hasattr(signal, "alarm"):  # pragma: no cover - not POSIX
        return 0
    secs = max(1, int(cpu_limit * WALL_PER_CPU_S))
    signal.alarm(secs)
    return secs


def _background_priority(nice: int) -> None:
    """Run this process (and the children it starts) only on CPU time nothing else wants: Linux's
    ``SCHED_IDLE`` class where there is one, else ``nice``. A niceness of 10 was not enough: a model step's
    background compile is several processes (a detached compile and its parts), and the kernel's load
    balancing put some of them beside the sentron thread, whose share of its core then fell to ~3/4 --
    on a 2-core host the tier-0 decode ran 1.5x and the prompt's prefill 1.6x slower while the tier-1
    code was compiled, more than tier 1 then gains (decode 5 %, prefill 22 %)."""
    try:
        os.nice(nice)
    except OSError:  # pragma: no cover - no permission to change it: run at the same priority
        pass
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is not None:
        try:
            os.sched_setscheduler(0, idle, os.sched_param(0))
        except OSError:  # pragma: no cover - not allowed here: the niceness still applies
            pass


def _child_main() -> None:
    """The child of :func:`_in_child`: a job pickled on stdin, its object on stdout. LLVM is initialised
    before the job is read (a spare child, :func:`prestart_child`, is ready when its job comes); no job
    (the parent exited with the spare unused): exit quietly."""
    import pickle
    import sys

    # a short-lived single-job process: no cyclic collections (the module builder allocates ~10 objects
    # per IR instruction and frees none until the end, so generational passes over that heap were about
    # half of a model step's build time; in the parent process it is paused around each build)
    gc.disable()
    _init()
    blob = sys.stdin.buffer.read()
    if not blob:
        return
    limit, job, nice = pickle.loads(blob)
    if nice:
        _background_priority(nice)
    _limit_cpu(limit)
    global SPLIT_SIWS, REGION_SIWS, COLD_MIN_SIWS, MRU_MASK_SIWS
    if job[0] == "store":  # ("store", program, compile_program's keywords, sizes): compile_detached
        _, program, kw, (SPLIT_SIWS, REGION_SIWS, COLD_MIN_SIWS, MRU_MASK_SIWS) = job
        _limit_wall(limit)
        compile_program(program, exclusive=True, **kw)
        return
    if job[0] == "tier0":  # ("tier0", program, variant, sizes): _tier0_parts of its tier-0 module
        _, program, v, (SPLIT_SIWS, REGION_SIWS, COLD_MIN_SIWS, MRU_MASK_SIWS) = job
        text, vals = build_tier0(program, v)
        obj = _compile_object(text, v, TIER0_OPT)
        sys.stdout.buffer.write(_pack_imms(vals) + obj)
        sys.stdout.buffer.flush()
        return
    if job[0] == "ir":  # ("ir", IR text, variant, opt)
        _, ir_text, v, opt = job
    elif job[0] == "module":  # ("module", program, variant, opt, sizes): the whole one-module program
        _, program, v, opt, (SPLIT_SIWS, REGION_SIWS, COLD_MIN_SIWS, MRU_MASK_SIWS) = job
        ir_text = build_module(program, v)[0]
    else:  # ("part", program, variant, opt, parts, i, split sizes): lower part i of build_parts
        _, program, v, opt, parts, i, (SPLIT_SIWS, REGION_SIWS, COLD_MIN_SIWS, MRU_MASK_SIWS) = job
        ir_text = build_parts(program, v, parts, only=i)[0][0]
    sys.stdout.buffer.write(_compile_object(ir_text, v, opt))
    sys.stdout.buffer.flush()


PROGRESS_AFTER_S = 2.0  # a compile running longer than this shows a transient status line on a terminal


class _Progress:
    """A transient "JIT: compiling N SIWs ... 12 s" line on stderr while a long compile runs (only when
    stderr is a terminal; shown from a helper thread after PROGRESS_AFTER_S, removed at the end). Of
    compiles running at once, one shows its line (a terminal has room for one live status)."""

    _showing = threading.Lock()

    def __init__(self, siws: int):
        self.siws = siws
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _Progress:
        import sys

        if sys.stderr is not None and sys.stderr.isatty():
            self.thread = threading.Thread(target=self._show, name="vtpu-jit-progress", daemon=True)
            self.thread.start()
        return self

    def _show(self) -> None:
        t0 = time.monotonic()
        if self.done.wait(PROGRESS_AFTER_S) or not _Progress._showing.acquire(blocking=False):
            return
        try:
            from rich.console import Console

            def text() -> str:
                return f"JIT: compiling {self.siws:,} SIWs … {time.monotonic() - t0:.0f} s"

            with Console(stderr=True).status(text()) as status:
                while not self.done.wait(0.5):
                    status.update(text())
        finally:
            _Progress._showing.release()

    def __exit__(self, *exc) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()


_tier0_busy = 0  # tier-0 compiles now running in this process
_tier0_lock = threading.Lock()
TIER0_CHILD_SIWS = LARGE_PROGRAM_SIWS  # a tier-0 compile started beside another runs in a child above this


class _Tier0Job:
    """A tier-0 compile other compiles of the same shape (``_shape_key``) may share: ``shape`` is its
    program's ``_shape_digest``; when ``done`` is set, ``obj`` is its object (None if it failed)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.shape = b""
        self.obj: bytes | None = None


_TIER0_JOBS: dict[int, _Tier0Job] = {}  # shape key -> the latest tier-0 compile of that shape
TIER0_JOBS_KEPT = 8


def _shape_rows(program: Program) -> list[tuple]:
    """Every instruction with its lifted immediate (``_imm_slots``) left out."""
    rows = []
    inner = _innermost(program)
    for pc, siw in enumerate(program.code):
        for ins in siw:
            args = ins.args
            if not inner[pc] and _lifted(ins) is not None:
                args = args[:-1]
            rows.append((ins.op.code, ins.mod, ins.type, ins.type2, args))
    return rows


def _shape_key(program: Program, v: _Variant) -> int:
    """The program with its lifted immediates (``_imm_slots``) left out, and the variant: which
    compiles may share an object (a hint: a hash; ``_shape_digest`` decides)."""
    try:
        return hash((tuple(_shape_rows(program)), tuple(program.groups), repr(v)))
    except TypeError:  # something unhashable in the program: it shares with nothing
        return id(program)


def _shape_digest(program: Program, v: _Variant) -> bytes:
    """SHA-256 of everything a tier-0 module's IR text is made from: the instructions with their lifted
    immediates left out, the groups and the variant. The lowering never reads a lifted immediate's
    value -- it loads it from the IMMS table -- and no analysis does either: the fast loops, whose
    bounds proofs take constants from the code, are innermost loops, and an innermost loop's
    immediates are never lifted (``_innermost``); every other analysis reads registers, branch targets
    and coordinates. So equal digests mean equal IR text (tests/test_jit_review_s8.py checks it on
    random programs with random immediates), and a compile of the same digest as an earlier one can
    take that one's object without building its own text (~0.7 s of CPU for a 2B prefill variant)."""
    blob = repr((_shape_rows(program), program.groups, repr(v), IMMS)).encode()
    return hashlib.sha256(blob).digest()


def _pack_imms(vals: list[int]) -> bytes:
    return struct.pack(f"<I{len(vals)}Q", len(vals), *vals)


def _unpack_imms(blob: bytes, off: int) -> tuple[list[int], int]:
    (n,) = struct.unpack_from("<I", blob, off)
    return list(struct.unpack_from(f"<{n}Q", blob, off + 4)), off + 4 + 8 * n


def _fill_imms(engine, vals: list[int]) -> None:
    """Write a tier-0 program's immediates into the table of its loaded code (see ``_imm_slots``)."""
    if not vals:
        return
    addr = engine.get_global_value_address(IMMS)
    if not addr:
        raise JitError(f"tier-0 code has no {IMMS} table")
    (ctypes.c_uint64 * len(vals)).from_address(addr)[:] = vals


_placement = threading.local()  # .here: where this thread's tier-0 compiles run (tier0_placement)


@contextlib.contextmanager
def tier0_placement(here: bool):
    """Tier-0 compiles started by this thread inside the block run in this process (``here``) or in a
    child (programs of more than ``TIER0_CHILD_SIWS``), whatever order they arrive in: a model's start
    keeps its largest variant here and sends the others to children (``CompiledModel._start_all``).
    Without it the first of several concurrent compiles stays here -- the decode step, the smallest,
    which then finished ~0.5 s before the 64-token prefill's child."""
    old = getattr(_placement, "here", None)
    _placement.here = here
    try:
        yield
    finally:
        _placement.here = old


def _compile_tier0(program: Program, v: _Variant, share: bool = True) -> tuple[bytes, list[int]]:
    """Tier-0 code and its immediates (``_imm_slots``): linear in the program (no loop passes) and needed
    now, so no time limit. The first of several compiles started together (a model's step variants)
    runs in this process; the others each in a child, so that their Python IR building uses the other
    cores instead of queueing for this process's interpreter lock (a child costs ~0.3 s to start, so
    small programs and lone compiles stay here). A compile of the same shape as an earlier one (a
    model's prefill variants differ only in immediates) whose ``_shape_digest`` matches -- so its IR
    text would be the same -- takes that compile's object without building its IR, waiting for it if
    it is still running; otherwise (a different digest, or the earlier compile failed) it builds and
    compiles its own (``share=False``, a ``no_cache`` compile: neither takes nor offers one)."""
    global _tier0_busy
    shape = _shape_key(program, v)
    digest_of_shape = _shape_digest(program, v) if share else b""
    with _tier0_lock:
        beside = _tier0_busy > 0
        _tier0_busy += 1
        twin = _TIER0_JOBS.get(shape) if share else None
        job = _Tier0Job()
        job.shape = digest_of_shape
        if twin is None and share:
            _TIER0_JOBS[shape] = job
            while len(_TIER0_JOBS) > TIER0_JOBS_KEPT:
                del _TIER0_JOBS[next(iter(_TIER0_JOBS))]
    try:
        if twin is not None:
            if twin.shape == digest_of_shape:
                twin.done.wait()
                if twin.obj is not None:
                    return twin.obj, _imm_slots(program)[1]
            text, vals = build_tier0(program, v)
            with _llvm_lock:
                return _compile_object(text, v, TIER0_OPT), vals
        here = getattr(_placement, "here", None)
        if (not here if here is not None else beside) and len(program.code) > TIER0_CHILD_SIWS:
            out = _in_child(("tier0", program, v, _sizes()))
            vals, off = _unpack_imms(out, 0)
            obj = out[off:]
        else:
            text, vals = build_tier0(program, v)
            with _llvm_lock:
                obj = _compile_object(text, v, TIER0_OPT)
        job.obj = obj
        return obj, vals
    finally:
        job.done.set()  # a failed compile too: a twin waiting for it then compiles its own
        with _tier0_lock:
            _tier0_busy -= 1
            if job.obj is None and _TIER0_JOBS.get(shape) is job:
                del _TIER0_JOBS[shape]  # failed: the next compile of this shape is a first one again


def auto_opt(program: Program) -> int:
    """The default optimisation level for a program: O3, or O2 for large (generated, unrolled) ones."""
    return 3 if len(program.code) <= LARGE_PROGRAM_SIWS else 2


def compile_program(
    program: Program,
    *,
    sentrons: int = 1,
    max_steps: int | None = None,
    ppt_sets: int = 64,
    cache_dir: str | os.PathLike | None = None,
    no_cache: bool = False,
    portable: bool = False,
    opt: int | None = None,
    ppt_ways: int = 4,
    precise: bool = False,
    disk: bool = True,
    cached_only: bool = False,
    background: bool = False,
    exclusive: bool = False,
) -> Compiled | None:
    """Compile (or fetch from the caches) the native function for a program and engine variant.

    ``precise=False`` (the fast variant): fault exits write no registers back; the engine replays a
    faulting run (see ``JitEngine.run``). A step limit always uses the precise variant.
    ``opt=TIER0_OPT`` (tier 0): quick code, compiled in this process. ``disk=False``: neither read nor
    write the disk cache (tier-0 objects are never stored). ``cached_only``: return ``None`` rather
    than compile. ``background``: a tier-1 compile behind running tier-0 code -- all of its lowering
    and LLVM work runs in child processes at a lower priority (``BACKGROUND_NICE``), so it holds
    neither this process's GIL nor a core the tier-0 code needs. ``exclusive`` (the detached compile
    of ``compile_detached``): one process at a time compiles a key for the disk cache; another one
    asked for it meanwhile waits for that object (``_compiling``)."""
    _init()
    opt = auto_opt(program) if opt is None else opt
    portable = portable or _portable_env()
    cpu, features = host_target(portable)
    limit = "none" if max_steps is None else ("local" if sentrons == 1 else "shared")
    precise = precise or limit != "none"
    v = _Variant(
        limit, portable, ppt_sets, cpu, features, ppt_ways, precise, sentrons == 1, jit_comm.RACE_CHECK
    )
    key = program_key(program, v, opt)
    t0 = time.perf_counter()
    leaders = _leaders(program)
    if not no_cache and key in _loaded:
        engine, addr = _loaded[key]
        return Compiled(key, addr, leaders, time.perf_counter() - t0, "memory", v, opt)
    obj = None
    imms: list[int] = []  # tier 0: the immediates its table holds (_imm_slots)
    if opt == TIER0_OPT:
        disk = False  # a tier-0 object needs its program's immediates written in at load: never stored
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    fpath = path / f"jit-{key[:40]}.o"
    hit = ""
    if not no_cache and disk:
        obj = _read_cached(path, fpath, key)
        hit = "disk" if obj is not None else ""
    if obj is None and cached_only:
        return None
    claim = _compiling(path, key) if exclusive and not no_cache and disk else contextlib.nullcontext()
    with claim as stored:
        if obj is None and stored is not None:
            obj, hit = stored, "disk"  # another process compiled it meanwhile
        if obj is None:
            nice = BACKGROUND_NICE if background else 0
            with _Progress(len(program.code)) if not background else contextlib.nullcontext():
                parts = compile_parts(program) if opt != TIER0_OPT else 1
                if parts > 1:
                    obj = _compile_split(program, v, opt, parts, nice)
                elif opt == TIER0_OPT:
                    obj, imms = _compile_tier0(program, v, share=not no_cache)
                elif background and len(program.code) > LARGE_PROGRAM_SIWS:
                    obj = _in_child(("module", program, v, opt, _sizes()), nice)
                else:
                    text, leaders = build_module(program, v)
                    obj = _compile_bounded(text, v, opt)
            if not no_cache and disk:
                try:
                    path.mkdir(mode=0o700, parents=True, exist_ok=True)
                    if _private_dir(path):
                        write_atomic(fpath, obj + _seal(key, obj))
                        _prune_cache(path)
                except (OSError, VtpuError):
                    pass  # an unwritable cache only costs the next run a compile
    with _llvm_lock:
        engine, addr = _load_object(obj, v)
        _fill_imms(engine, imms)
        if opt == TIER0_OPT:
            _fill_rt(engine, v)
    if key in _loaded:  # a no_cache recompile: engines still running the earlier copy keep its code mapped
        _superseded.append(_loaded[key])
    _loaded[key] = (engine, addr)
    return Compiled(key, addr, leaders, time.perf_counter() - t0, hit, v, opt)


# =================================================================== TSC
def tsc_hz() -> tuple[float, str]:
    """TSC ticks per second and how they were obtained (one calibration for the whole project: cycles.py)."""
    from vtpu_cli.core.cycles import tsc_hz as calibrated

    return calibrated(), "TSC (rdtsc) calibrated against the monotonic clock (median of 5 windows)"


# =================================================================== runtime
