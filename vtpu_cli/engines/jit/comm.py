"""The JIT's native C pipe: message rings, barriers and collectives in LLVM IR (no Python per op).

Semantics are the interpreter's ``Fleet`` (``fleet.py``): one FIFO queue of capacity
:data:`fleet.QUEUE_CAPACITY` per (sender, receiver) pair, CSEND blocks while it is full and CRECV while
it is empty; the n-th collective a member executes on a group matches every other member's n-th, and
values are combined in ascending sentron id, so collectives produce the interpreter's bits.

*One sentron* (compile-time variant ``single``): the only queue (0 -> 0) is a 16-slot ring in the
native function's own stack frame (the tail a private counter, the head read atomically from an escaped
slot; message lengths and occupancy proved at compile time where they can be, ``ring_analysis``),
collectives complete at once; a
CSEND to a full queue or a CRECV from an empty one cannot ever proceed, so it exits with
``ST_DEADLOCK`` and the engine replays the run in the interpreter for the exact report.

*Several sentrons*: a shared *fleet block* (built by :func:`build_fleet_block`, pointer in the context)
holds one single-producer/single-consumer ring per ordered pair (tail written only by the sender, head
only by the receiver, release/acquire), two collective slots per group (the n-th collective uses slot
n & 1; a monotonic arrival counter per slot, so no reset is needed: collective n is complete when the
counter reaches (n // 2 + 1) * members), and tables (group membership, sentron homes, hop counts).
A blocked sentron spins (``pause``) and then yields (``sched_yield``) so 16 sentrons on 2 cores still
progress. Every state change (send, receive, arrival) increments the sentron's own change counter
after it is published (the *epoch* is the sum of all counters); a sentron whose readiness check fails
records the epoch it read before the check and sets its *blocked* flag. The engine's watchdog (``jit.py``) declares a deadlock when every live sentron is
blocked having checked after the last state change -- the interpreter's own criterion -- and aborts
the run; the run is then replayed in the interpreter, whose report (wait graph included) is the golden
one. Conditions native code does not report (a collective kind mismatch, CCAST members that disagree
on the root) exit with ``ST_REPLAY``, which is replayed the same way; faults are replayed as usual.
"""

from __future__ import annotations

import collections
import os
import weakref

import numpy as np
from llvmlite import ir

from vtpu_cli.binary.program import Imm, Instr, Reg
from vtpu_cli.core import buffers, coords
from vtpu_cli.engines.jit import irbase
from vtpu_cli.engines.jit.irbase import (
    I1,
    I8,
    I32,
    I64,
    I128,
    OFF_CSTAT,
    OFF_FLEET,
    OFF_SCOUNT,
    OFF_SID,
    PTR,
    ST_DEADLOCK,
    ST_REPLAY,
    VB,
    Unsupported,
    _fminmax,
    _vt,
    ity,
    weigh,
)
from vtpu_cli.fleet.transport import QUEUE_CAPACITY
from vtpu_cli.isa.table import ANY_SENDER, type_size

# --------------------------------------------------------------- the fleet block (byte offsets)
H_EPOCH, H_N, H_GINFO, H_HOMES, H_HOPS, H_GROUPS = 0, 64, 72, 80, 88, 96
H_SLOTB, H_CONTRIB, H_ROOTS, H_GINFOB = 104, 112, 120, 128
H_RMSG, H_RCOLL, H_RROW = 136, 144, 152  # race detector: message clocks, collective clocks, row bytes
H_CHG = 160  # per-sentron state-change counters (one cache line each; their sum is the watchdog epoch)
# the collective wait log: its address (0: off), bytes per sentron, entries per sentron
H_WLOG, H_WLOGB, H_WLOGCAP = 168, 176, 184
# the scroll-table generation: bumped by the host at every SALLOC/SFREE/SFLUSH of a run (several
# sentrons); a sentron whose own ``tgen`` differs at an acquire (or while it waits) scrubs its PPT
H_TGEN = 192
RINGS_OFF = 256
R_TAIL, R_HEAD, R_LEN, R_DATA = 0, 64, 128, 256
RING_BYTES = R_DATA + 64 * QUEUE_CAPACITY
G_COUNT, G_MIN, G_BAD, G_MEMB = 0, 8, 16, 32
S_ARRIVE, S_KINDS = 0, 64
SPIN_PAUSES = 64  # pause iterations before a blocked sentron starts yielding its core
KIND = {"CBAR": 1, "CREDUCE": 2, "CCAST": 3}
assert QUEUE_CAPACITY & (QUEUE_CAPACITY - 1) == 0


def _r64(x: int) -> int:
    return (x + 63) // 64 * 64


def fleet_layout(n: int, ngroups: int, cap: int = 16) -> dict:
    """Byte offsets of the fleet block's parts for ``n`` sentrons, ``ngroups`` groups (``all``
    included) and a scroll table of ``cap`` slots (the race detector keeps one entry per slot)."""
    slot_roots = S_KINDS + 8 * n
    slot_contrib = _r64(slot_roots + 8 * n)
    slot_bytes = _r64(slot_contrib + 64 * n)
    ginfo_bytes = _r64(G_MEMB + n)
    groups = RINGS_OFF + n * n * RING_BYTES
    ginfo = groups + 2 * slot_bytes * ngroups
    homes = ginfo + ginfo_bytes * ngroups
    hops = _r64(homes + 16 * n)
    # race detector (docs/jit.md "Race detector"): a vector clock row per sentron, one per message slot
    # of every ring and one per member of each group's two collective slots; a writer word per scroll
    # (own cache line: readers poll it) and a row of read epochs per sentron (written only by its owner)
    row = _r64(8 * n)
    chg = _r64(hops + 8 * n * n)
    clocks = chg + 64 * n
    msgclk = clocks + n * row
    collclk = msgclk + n * n * QUEUE_CAPACITY * row
    writer = collclk + ngroups * 2 * n * row
    reads = writer + 64 * cap
    total = _r64(reads + n * 8 * cap)
    return dict(
        slot_roots=slot_roots,
        slot_contrib=slot_contrib,
        slot_bytes=slot_bytes,
        ginfo_bytes=ginfo_bytes,
        groups=groups,
        ginfo=ginfo,
        homes=homes,
        hops=hops,
        chg=chg,
        row=row,
        clocks=clocks,
        msgclk=msgclk,
        collclk=collclk,
        writer=writer,
        reads=reads,
        cap=cap,
        total=total,
    )


def race_words(lay: dict, base: int, sid: int) -> tuple[int, int, int, int]:
    """The context's four race-detector pointers for sentron ``sid`` of a fleet block at ``base``."""
    return (
        base + lay["clocks"] + sid * lay["row"],
        base + lay["reads"] + sid * 8 * lay["cap"],
        base + lay["writer"],
        base + lay["reads"],
    )


# ---- the collective wait log (diagnosis, off by default)
# With ``WAIT_LOG_ENTRIES`` > 0 (or the environment variable VTPU_JIT_WAIT_LOG) every fleet block gets a
# log: per sentron a 64-byte header (entries written, the TSC at the function's entry) and then one
# 32-byte entry per collective it took part in (SIW index, TSC at its arrival, TSC when it could leave,
# the PPT translations its slow path made so far: a count the host's load does not change).
# Between two entries a sentron is busy; from arrival to leaving it waits. Native code reads the log's
# address from the fleet block at each collective (one load and a branch when the log is off) and
# stops writing at the capacity (the count keeps growing, so an overflow is visible).
WAIT_LOG_ENTRIES = int(os.environ.get("VTPU_JIT_WAIT_LOG", "0") or 0)
WLOG_HEAD, WLOG_ENTRY = 64, 32
WAIT_LOG_DTYPE = np.dtype([("pc", "<u8"), ("arrive", "<u8"), ("leave", "<u8"), ("slow", "<u8")])
wait_logs: collections.deque = collections.deque(maxlen=64)  # (n, u8 log) of the latest fleet blocks


def _new_wait_log(n: int) -> tuple[np.ndarray, int]:
    """A zeroed log for ``n`` sentrons (64-byte aligned view, bytes per sentron), kept in ``wait_logs``."""
    stride = WLOG_HEAD + WLOG_ENTRY * WAIT_LOG_ENTRIES
    log = buffers.aligned_zeros(n * stride)
    wait_logs.append((n, log, log))
    return log, stride


def read_wait_log(n: int, log: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Per sentron: (TSC at the function's entry, its entries in order) of one run's log."""
    stride = log.size // n
    out = []
    for s in range(n):
        part = log[s * stride : (s + 1) * stride]
        head = part[:WLOG_HEAD].view(np.uint64)
        cnt = min(int(head[0]), (stride - WLOG_HEAD) // WLOG_ENTRY)
        out.append((int(head[1]), part[WLOG_HEAD:].view(WAIT_LOG_DTYPE)[:cnt].copy()))
    return out


def build_fleet_block(n: int, groups: list, topology=None, cap: int = 16):
    """(raw buffer, 64-byte aligned u8 view, layout) of a fresh fleet block for ``n`` sentrons."""
    ng = len(groups) + 1
    lay = fleet_layout(n, ng, cap)
    blk = raw = buffers.aligned_zeros(lay["total"])
    q = blk.view(np.uint64)
    q[H_CHG // 8] = lay["chg"]
    q[H_RMSG // 8] = lay["msgclk"]
    q[H_RCOLL // 8] = lay["collclk"]
    q[H_RROW // 8] = lay["row"]
    for s in range(n):  # own clock entries start at 1: a peer that knows 0 has not synchronised
        q[(lay["clocks"] + s * lay["row"]) // 8 + s] = 1
    q[H_N // 8] = n
    q[H_GROUPS // 8] = lay["groups"]
    q[H_GINFO // 8] = lay["ginfo"]
    q[H_HOMES // 8] = lay["homes"]
    q[H_HOPS // 8] = lay["hops"]
    q[H_SLOTB // 8] = lay["slot_bytes"]
    q[H_CONTRIB // 8] = lay["slot_contrib"]
    q[H_ROOTS // 8] = lay["slot_roots"]
    q[H_GINFOB // 8] = lay["ginfo_bytes"]
    if WAIT_LOG_ENTRIES > 0:
        log, stride = _new_wait_log(n)
        q[H_WLOG // 8] = log.ctypes.data
        q[H_WLOGB // 8] = stride
        q[H_WLOGCAP // 8] = WAIT_LOG_ENTRIES
    for g in range(ng):
        base = lay["ginfo"] + g * lay["ginfo_bytes"]
        members = None if g == 0 else groups[g - 1][1]
        if members is None:
            members = tuple(range(n))
        bad = any(m >= n for m in members)
        ok = [m for m in members if m < n]
        q[(base + G_COUNT) // 8] = len(members)
        q[(base + G_MIN) // 8] = min(ok) if ok else 0
        q[(base + G_BAD) // 8] = int(bad)
        for m in ok:
            blk[base + G_MEMB + m] = 1
    for s in range(n):
        h = coords.home_packed(s)
        q[(lay["homes"] + 16 * s) // 8] = h & 0xFFFFFFFFFFFFFFFF
        q[(lay["homes"] + 16 * s) // 8 + 1] = h >> 64
    if topology is not None:
        hops = hop_table(topology, n)
        q[lay["hops"] // 8 : lay["hops"] // 8 + n * n] = hops.reshape(-1)
    return raw, blk, lay


_HOPS: dict = {}


def hop_table(topology, n: int) -> np.ndarray:
    """Hops between every pair of sentrons (n x n, u64), memoised per topology (hashable by kind and
    shape): routing every pair in Python took most of a 16-sentron run's start-up."""
    key = (topology, n)
    t = _HOPS.get(key)
    if t is None:
        t = np.zeros((n, n), np.uint64)
        for s in range(n):
            for d in range(n):
                if s != d:
                    t[s, d] = len(topology.route(s, d)) - 1
        if len(_HOPS) > 64:
            _HOPS.clear()
        _HOPS[key] = t
    return t


# --------------------------------------------------------------- IR helpers
def _c(x: int):

    return ir.Constant(I64, x)


def _gep(lw, base, off):

    if isinstance(off, int):
        off = _c(off)
    return lw.b.gep(base, [off], source_etype=I8)


def _ld(lw, base, off, ty=None, order=None):

    ty = ty or I64
    p = _gep(lw, base, off)
    if order:
        return lw.b.load_atomic(p, order, 8, typ=ty)
    return lw.b.load(p, typ=ty, align=8)


def _store_atomic(lw, val, ptr, order, align):
    """IRBuilder.store_atomic without its typed-pointer check (opaque pointers on LLVM 22)."""
    from llvmlite.ir import instructions

    lw.b._insert(instructions.StoreAtomicInstr(lw.b.block, val, ptr, order, align))


def _st(lw, val, base, off, order=None, align=8):
    p = _gep(lw, base, off)
    if order:
        _store_atomic(lw, val, p, order, 8)
    else:
        lw.b.store(val, p, align=align)


def _operand(lw, arg):

    return ir.Constant(I64, arg.value) if isinstance(arg, Imm) else lw.rget(arg.idx)


def _bump(lw, slot, by) -> None:
    b = lw.b
    b.store(b.add(b.load(slot), by), slot)


class _CState:
    """What the ready phase computed for the run phase of the same SIW (values dominate the C slot)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


# --------------------------------------------------------------- setup (allocas) and exit
STAT_NAMES = ("messages", "bytes", "routed", "hops", "barriers", "collectives")
OFF_ESCAPE = 3040  # three free context words after the C-pipe statistics (2944 + 6*8 = 2992 .. 3072)


# The native race detector (several sentrons). Switching it off makes racy programs exit 0 on the JIT
# while the interpreter faults: it exists only so that ``python -m vtpu_cli.engines.jit.racecost`` can
# measure what the detector costs in the same run.
RACE_CHECK = True


def setup(lw, program, single: bool, race: bool = True) -> None:
    """Allocas for the C pipe (called in the entry block, after ``make_allocas``)."""

    b = lw.b
    lw.single = single
    # several sentrons and an op that edits the scroll table (SALLOC, SFREE, SFLUSH): the table is
    # edited in place while the others run, and each acquire checks whether this sentron's PPT is stale
    lw.edits = not single and any(ins.op.edits_scrolls for siw in program.code for ins in siw)
    # the race detector: several sentrons and at least one S-pipe load or store or scroll-table edit
    lw.race = (
        race
        and not single
        and (lw.edits or any(ins.op.name in ("SGATHER", "SSCATTR") for siw in program.code for ins in siw))
    )
    lw.groups = program.groups
    lw.cstate = None
    lw.STATS = [b.alloca(I64, name=f"cstat_{k}") for k in STAT_NAMES]
    for s in lw.STATS:
        b.store(_c(0), s)
    lw.CSEQ = {}
    ngroups = len(program.groups) + 1
    for g in range(ngroups):
        a = b.alloca(I64, name=f"cseq{g}")
        b.store(_c(0), a)
        lw.CSEQ[g] = a
    lw.CHOSEN = b.alloca(I64, name="cchosen")
    lw.SPIN = b.alloca(I64, name="cspin")
    if single:
        # entry k at byte k * SINGLE_ENTRY: the 64-byte payload, then its length (one index for both)
        lw.RING = b.alloca(ir.ArrayType(I8, SINGLE_ENTRY * QUEUE_CAPACITY), name="ring")
        lw.RING.align = 64
        lw.HEAD = b.alloca(I64, name="rhead")
        lw.TAIL = b.alloca(I64, name="rtail")
        b.store(_c(0), lw.HEAD)
        b.store(_c(0), lw.TAIL)
        # Publish the ring's and the head's addresses in the context (otherwise unused slots): they escape,
        # so LLVM keeps the queue's stores, and the head it reads (atomically) is a value it cannot relate
        # to the tail, so it cannot forward a payload from the send to the receive through a register.
        # The tail is private (a register in the loop): only the send's address derives from it, and
        # knowing it does not tell LLVM which entry a receive reads (a store and a load per trip fewer).
        for k, slot in enumerate((lw.RING, lw.HEAD)):
            lw.cstore(slot, OFF_ESCAPE + 8 * k)
        lw.ring_known, lw.ring_all, lw.ring_occ = (
            ring_analysis(program) if STATIC_LENGTHS else ({}, False, {})
        )


def store_stats(lw) -> None:
    """At the normal exit: the C-pipe statistics -> ctx."""

    for k, s in enumerate(lw.STATS):
        lw.cstore(lw.b.load(s), OFF_CSTAT + 8 * k)


# --------------------------------------------------------------- blocking (several sentrons)
def _wait_until(lw, check) -> None:
    """Emit: until ``check()`` (an i1 computed in the current block) holds, spin then yield; record
    the epoch seen and the blocked flag for the watchdog; leave on abort."""
    from vtpu_cli.engines.jit.irbase import (
        I32,
        I64,
        OFF_ABORT_PTR,
        OFF_BLOCKED,
        OFF_SEEN,
        OFF_YIELD,
        PTR,
        ST_ABORT,
        _FnPtr,
    )

    b = lw.b
    tag = f"{lw.pc}"
    ready = lw.new_block(f"cready_{tag}")
    first = check()
    slow = lw.new_block(f"cwait_{tag}")
    weigh(b.cbranch(first, ready, slow), [1 << 10, 1])
    b.position_at_end(slow)
    b.store(_c(0), lw.SPIN)
    loop = lw.new_block(f"cwloop_{tag}")
    b.branch(loop)
    b.position_at_end(loop)
    fb = lw.cload(lw_off_fleet(), PTR)
    epoch = _changes(lw, fb)
    ok = check()
    failed = lw.new_block(f"cwfail_{tag}")
    unblock = lw.new_block(f"cwunblock_{tag}")
    b.cbranch(ok, unblock, failed)
    b.position_at_end(failed)
    _store_atomic(lw, epoch, lw.cptr(OFF_SEEN), "release", 8)
    _store_atomic(lw, _c(1), lw.cptr(OFF_BLOCKED), "release", 8)
    abort_ptr = lw.cload(OFF_ABORT_PTR, PTR)
    flag = b.load_atomic(abort_ptr, "monotonic", 4, typ=I32)
    spin = lw.new_block(f"cwspin_{tag}")
    stop_cond = b.icmp_unsigned("!=", flag, ir.Constant(I32, 0))
    if lw.precise:
        stop = lw.new_block(f"cwstop_{tag}")
        b.cbranch(stop_cond, stop, spin)
        b.position_at_end(stop)
        _store_atomic(lw, _c(0), lw.cptr(OFF_BLOCKED), "release", 8)
        lw.exit_with(ST_ABORT)
    else:
        b.cbranch(stop_cond, lw.get_fault_block(), spin)
        lw.fault_phi.add_incoming(_c(ST_ABORT | (lw.slot << 8) | (lw.pc << 16)), b.block)
    b.position_at_end(spin)
    n = b.load(lw.SPIN)
    b.store(b.add(n, _c(1)), lw.SPIN)
    pause = lw.new_block(f"cwpause_{tag}")
    yld = lw.new_block(f"cwyield_{tag}")
    yptr = lw.cload(OFF_YIELD, PTR)
    few = b.icmp_unsigned("<", n, _c(SPIN_PAUSES))
    nul = b.icmp_unsigned("==", b.ptrtoint(yptr, I64), _c(0))
    b.cbranch(b.or_(few, nul), pause, yld)
    b.position_at_end(pause)
    lw.call("llvm.x86.sse2.pause", ir.VoidType(), [])
    b.branch(loop)
    b.position_at_end(yld)
    # a sentron that waits keeps up with the scroll table (its scrub lets freed buffers go: ``reclaim``)
    refresh(lw, fb)
    b.call(_FnPtr(yptr, ir.FunctionType(I32, [])), [])
    b.branch(loop)
    b.position_at_end(unblock)
    _store_atomic(lw, _c(0), lw.cptr(OFF_BLOCKED), "release", 8)
    b.branch(ready)
    b.position_at_end(ready)


def lw_off_fleet() -> int:

    return OFF_FLEET


def _fleet(lw):

    return lw.cload(lw_off_fleet(), PTR)


def _epoch_bump(lw, fb) -> None:
    """A state change was published (send, receive, arrival): advance this sentron's change counter.

    One counter per sentron, on its own cache line and written only by its owner (a plain load and a
    release store): a global counter bumped with a locked add bounced one cache line between every
    pair of communicating threads on every C op. The watchdog epoch is the sum of all counters."""
    b = lw.b
    sid = lw.cload(OFF_SID, I64)
    p = _gep(lw, fb, b.add(_ld(lw, fb, H_CHG), b.mul(sid, _c(64))))
    _store_atomic(lw, b.add(b.load(p, typ=I64, align=8), _c(1)), p, "release", 8)


def _changes(lw, fb):
    """The watchdog epoch: the sum of every sentron's change counter (acquire loads), read before a
    readiness check. Each counter only grows, so a change published during the reading makes the sum
    differ from the watchdog's later one (no false deadlock); one seen here is visible to the check."""
    b = lw.b
    n = _ld(lw, fb, H_N)
    base = _gep(lw, fb, _ld(lw, fb, H_CHG))
    pre = b.block
    head = lw.new_block(f"chg_{lw.pc}")
    body = lw.new_block(f"chgb_{lw.pc}")
    done = lw.new_block(f"chgd_{lw.pc}")
    b.branch(head)
    b.position_at_end(head)
    k = b.phi(I64)
    acc = b.phi(I64)
    k.add_incoming(_c(0), pre)
    acc.add_incoming(_c(0), pre)
    b.cbranch(b.icmp_unsigned("<", k, n), body, done)
    b.position_at_end(body)
    x = _ld(lw, base, b.mul(k, _c(64)), order="acquire")
    k.add_incoming(b.add(k, _c(1)), body)
    acc.add_incoming(b.add(acc, x), body)
    b.branch(head)
    b.position_at_end(done)
    return acc


def _ring(lw, fb, n, src, dst):
    b = lw.b
    idx = b.add(b.mul(src, n), dst)
    return _gep(lw, fb, b.add(_c(RINGS_OFF), b.mul(idx, _c(RING_BYTES))))


def _nonempty(lw, ring):
    b = lw.b
    tail = _ld(lw, ring, R_TAIL, order="acquire")
    head = _ld(lw, ring, R_HEAD)
    return b.icmp_unsigned("!=", tail, head)


# --------------------------------------------------------------- ready phase (before the SIW's slots)
def ready(lw, ins: Instr) -> None:
    name = ins.op.name
    lw.cstate = None
    if lw.single:
        _ready_single(lw, ins)
        return
    {
        "CSEND": _ready_send,
        "CROUTE": _ready_send,
        "CRECV": _ready_recv,
        "CBAR": _ready_coll,
        "CREDUCE": _ready_coll,
        "CCAST": _ready_coll,
    }[name](lw, ins)


def run(lw, ins: Instr) -> None:
    name = ins.op.name
    if lw.single:
        _run_single(lw, ins)
    else:
        {
            "CSEND": _run_send,
            "CROUTE": _run_send,
            "CRECV": _run_recv,
            "CBAR": _run_coll,
            "CREDUCE": _run_coll,
            "CCAST": _run_coll,
        }[name](lw, ins)
    lw.cstate = None


def _group_members_static(lw, gid: int, n: int):
    """Members of a group for ``n`` sentrons, or None when the group names a sentron >= n."""
    if gid == 0:
        return tuple(range(n))
    members = lw.groups[gid - 1][1]
    if members is None:
        return tuple(range(n))
    if any(m >= n for m in members):
        return None
    return members


def _check_mixed(ins: Instr) -> None:

    if ins.op.name in ("CREDUCE", "CCAST"):
        d, src = ins.args[0], ins.args[1]
        if isinstance(src, Reg) and d.cls != src.cls:
            raise Unsupported(f"{ins.mnemonic()}: mixed scalar/vector operands are not lowered natively")


# ---- one sentron
RING_ORDER = "unordered"
# The one-sentron ring: entry k (payload, then length) at byte k * SINGLE_ENTRY of one stack array, and
# head and tail count *bytes* (SINGLE_ENTRY per message), so an entry's address is one ``and`` of the
# counter (no shift, and payload and length share it). Full: tail - head >= capacity * SINGLE_ENTRY.
SINGLE_ENTRY = 128
_RING_MASK = SINGLE_ENTRY * QUEUE_CAPACITY - 1 & ~(SINGLE_ENTRY - 1)
# State the ring's invariant ``head <= tail`` to LLVM at every send (``llvm.assume``, and ``nuw`` on the
# counters' increments; true facts, not
# a barrier: a receive needs a message, so head never passes tail). LLVM then knows that a receive
# after a send in the same trip cannot find the queue empty, drops those tests, and with the exits gone
# keeps one head and one tail store per trip: balanced's loop 109 -> 83 instructions, 3.7 -> 4.8 ops per
# TSC tick. LLVM may then read c_heavy's 8-byte i64 message (CPACK.i64, length 8) with an 8-byte load,
# the message register's other 56 (zero) bytes being dead: that is all the work an 8-byte message is,
# and bench/native.py counts a scalar message as a scalar access (docs/jit.md, issue #11).
QUEUE_INVARIANT = True
_NUW = ("nuw",)  # with the invariant: the byte counters never wrap (2**64 bytes of messages)


# Message lengths of the one-sentron ring, proved at compile time (:func:`ring_lengths`): a receive whose
# message length is known needs no length load, and when every receive's is known no send stores one.
# The payload still goes through the ring's memory (the counted write and read); only the 8-byte length
# word beside it, whose value the compiler knows, is no longer written and read back. Issue #11: the
# length store was a quarter of balanced's stores, and these loops are bound by stores (about one a cycle).
STATIC_LENGTHS = True
_TOP = None  # an unknown queue (or length)
RING_ANALYSIS_STEPS = 200_000  # SIW transfers the analysis may take before it gives up (all unknown)


def _join_len(a, b):
    return a if a == b else None


def _join(x, y):
    """Join of two abstract states (queue, lengths): elementwise where the queues are equally long."""
    qx, lx = x
    qy, ly = y
    if qx is _TOP or qy is _TOP or len(qx) != len(qy):
        q = _TOP
    else:
        q = tuple(_join_len(a, b) for a, b in zip(qx, qy, strict=True))
    return q, tuple(_join_len(a, b) for a, b in zip(lx, ly, strict=True))


def ring_lengths(program) -> tuple[dict[int, int], bool]:
    """The length of the message every CRECV of a one-sentron program receives, where it is the same on
    every path: ``({pc: length}, every receive known)`` (see :func:`ring_analysis`)."""
    known, every, _ = ring_analysis(program)
    return known, every


_LAST_RING: tuple = (None, None, None)  # (weak reference to a program, its code's (id, length), analysis)


def ring_analysis(program) -> tuple[dict[int, int], bool, dict[int, int]]:
    """:func:`_ring_analysis`, remembered for the last program: a split program's regions each set up the
    C pipe, and scanning a 200,000-SIW program once per region would cost minutes."""
    global _LAST_RING
    ref, code, result = _LAST_RING
    key = (id(program.code), len(program.code))
    if ref is not None and ref() is program and code == key:
        return result
    result = _ring_analysis(program)
    _LAST_RING = (weakref.ref(program), key, result)
    return result


def _ring_analysis(program) -> tuple[dict[int, int], bool, dict[int, int]]:
    """``(lengths, every receive known, occupancy)``: the length of the message every CRECV of a
    one-sentron program receives where it is the same on every path, whether that holds for every
    reachable receive, and the number of messages in the ring before the C op of each SIW where that is
    the same on every path (a send there then cannot find the ring full, nor a receive find it empty,
    and the native code tests neither).

    A forward dataflow over the SIWs: the abstract state is the ring's queue (a tuple of message lengths,
    an int or None each, oldest first; None for the whole queue when its occupancy is unknown) and the
    length of each m register (None: unknown, as at entry, where it comes from the context). CPACK sets a
    length (64 for a vector, the type size for a scalar), CSEND/CROUTE append the register's, CRECV pops
    the oldest. The ring is empty at entry (an alloca of the native function) and only this sentron
    uses it, so the concrete queue at every SIW is one the abstract state describes. Where paths meet
    with queues of different occupancy (a loop that sends more than it receives) the queue becomes
    unknown; past 16 messages a send faults, so the queue is unknown there too."""
    code = program.code
    n = len(code)
    recvs = [pc for pc in range(n) if any(ins.op.name == "CRECV" for ins in code[pc])]
    if not recvs and not any(ins.op.name in ("CSEND", "CROUTE") for siw in code for ins in siw):
        return {}, True, {}
    nregs = 4
    state: dict[int, tuple] = {0: ((), (None,) * nregs)}
    work = [0]
    got: dict[int, int | None] = {}
    steps = 0
    while work:
        steps += 1
        if steps > RING_ANALYSIS_STEPS:
            return {}, False, {}
        pc = work.pop()
        q, ln = state[pc]
        ln = list(ln)
        branch = None
        halts = False
        for ins in code[pc]:
            name = ins.op.name
            if ins.op.branch:
                branch = ins
            elif name == "DHALT":
                halts = True
            elif name == "CPACK":
                m, src = ins.args
                ln[m.idx] = 64 if getattr(src, "cls", None) == "v" else type_size(ins.type)
            elif name in ("CSEND", "CROUTE"):
                if q is not _TOP:
                    q = q + (ln[ins.args[0].idx],) if len(q) < QUEUE_CAPACITY else _TOP
            elif name == "CRECV":
                if q is _TOP or not q:  # unknown, or empty: a one-sentron receive then never returns
                    got[pc] = None
                    ln[ins.args[0].idx] = None
                else:
                    got[pc] = _join_len(got[pc], q[0]) if pc in got else q[0]
                    ln[ins.args[0].idx] = q[0]
                    q = q[1:]
        out = (q, tuple(ln))
        succ = []
        if not halts:
            if branch is None or branch.op.name != "DJMP":
                succ.append(pc + 1)
            if branch is not None:
                succ.append(branch.args[-1].value)
        for t in succ:
            if not 0 <= t < n:
                continue
            old = state.get(t)
            new = out if old is None else _join(old, out)
            if new != old:
                state[t] = new
                work.append(t)
    known = {pc: v for pc, v in got.items() if v is not None}
    occupancy = {pc: len(q) for pc, (q, _) in state.items() if q is not _TOP}
    return known, all(pc in known for pc in recvs if pc in state), occupancy


def _ring_ld(lw, ptr):
    """The head of the one-sentron ring is read atomically (monotonic): LLVM then keeps the ring in
    memory instead of promoting it to registers and deleting it, so a self-send costs what a queue costs
    and benchmarks of the C pipe measure message traffic, not the optimiser. (With the tail private too,
    LLVM proved the receive's entry the send's and forwarded the payload: balanced's fast loop then did
    14 of its 16 reads, double_buffer's 2 of 4; ``bench/native.py`` fails that.)"""

    return lw.b.load_atomic(ptr, RING_ORDER, 8, typ=I64)


def _ready_single(lw, ins: Instr) -> None:

    b = lw.b
    name = ins.op.name
    _check_mixed(ins)
    if name in ("CSEND", "CROUTE"):
        if name == "CSEND":
            dst = ins.args[1]
            if isinstance(dst, Imm):
                if dst.value != 0:
                    lw.fault_now()
            else:
                lw.fault_if(b.icmp_unsigned("!=", lw.rget(dst.idx), _c(0)))
        else:
            home = coords.home_packed(0)
            lw.fault_if(b.icmp_unsigned("!=", lw.pget(ins.args[1].idx), ir.Constant(I128, home)))
        tail = b.load(lw.TAIL)
        if lw.ring_occ.get(lw.pc, QUEUE_CAPACITY) >= QUEUE_CAPACITY:  # not proved to have room
            head = _ring_ld(lw, lw.HEAD)
            if QUEUE_INVARIANT:
                lw.call("llvm.assume", ir.VoidType(), [b.icmp_unsigned("<=", head, tail)])
            full = b.icmp_unsigned(">=", b.sub(tail, head), _c(QUEUE_CAPACITY * SINGLE_ENTRY))
            lw.fault_if(full, ST_DEADLOCK)
        # one thread owns both ends: the run phase stores at the tail read here (no second load)
        lw.cstate = _CState(tail=tail)
    elif name == "CRECV":
        src = ins.args[1]
        if isinstance(src, Imm):
            if src.value not in (0, ANY_SENDER):
                lw.fault_now()
        else:
            w = lw.rget(src.idx)
            lw.fault_if(b.and_(b.icmp_unsigned("!=", w, _c(0)), b.icmp_signed("!=", w, _c(ANY_SENDER))))
        head = _ring_ld(lw, lw.HEAD)
        if lw.ring_occ.get(lw.pc, 0) == 0:  # not proved to hold a message
            empty = b.icmp_unsigned("==", b.load(lw.TAIL), head)
            lw.fault_if(empty, ST_DEADLOCK)
        lw.cstate = _CState(head=head)
    else:
        gid = ins.args[-1].value
        if _group_members_static(lw, gid, 1) is None:
            lw.fault_now()
        if name == "CCAST":
            root = ins.args[2]
            if isinstance(root, Imm):
                if root.value != 0:
                    lw.fault_now()
            else:
                lw.fault_if(b.icmp_unsigned("!=", lw.rget(root.idx), _c(0)))


def _payload_in(lw, m):
    b = lw.b
    return b.load(lw.M[m.idx]), b.load(lw.ML[m.idx])


def _run_single(lw, ins: Instr) -> None:

    b = lw.b
    name = ins.op.name
    st = lw.STATS
    if name in ("CSEND", "CROUTE"):
        vec, ln = _payload_in(lw, ins.args[0])
        tail = lw.cstate.tail if lw.cstate is not None else b.load(lw.TAIL)
        entry = b.gep(lw.RING, [ir.Constant(I32, 0), b.and_(tail, _c(_RING_MASK))], inbounds=True)
        b.store(vec, b.bitcast(entry, VB.as_pointer()), align=64)
        if not lw.ring_all:  # some receive reads the length from the ring
            b.store(ln, b.bitcast(b.gep(entry, [_c(64)], inbounds=True), I64.as_pointer()), align=8)
        b.store(b.add(tail, _c(SINGLE_ENTRY), flags=_NUW if QUEUE_INVARIANT else ()), lw.TAIL)
        _bump(lw, st[0], _c(1))
        _bump(lw, st[1], ln)
        if name == "CROUTE":
            _bump(lw, st[2], _c(1))
    elif name == "CRECV":
        m, _, rs = ins.args
        head = lw.cstate.head if lw.cstate is not None else _ring_ld(lw, lw.HEAD)
        entry = b.gep(lw.RING, [ir.Constant(I32, 0), b.and_(head, _c(_RING_MASK))], inbounds=True)
        vec = b.load(b.bitcast(entry, VB.as_pointer()), align=64)
        known = lw.ring_known.get(lw.pc)
        if known is not None:  # proved at compile time: the same on every path (ring_lengths)
            ln = _c(known)
        else:
            ln = b.load(b.bitcast(b.gep(entry, [_c(64)], inbounds=True), I64.as_pointer()), align=8)
        b.store(vec, lw.M[m.idx])
        b.store(ln, lw.ML[m.idx])
        _store_atomic(
            lw, b.add(head, _c(SINGLE_ENTRY), flags=_NUW if QUEUE_INVARIANT else ()), lw.HEAD, RING_ORDER, 8
        )
        if rs is not None:
            lw.rset(rs.idx, _c(0))
    elif name == "CBAR":
        _bump(lw, st[4], _c(1))
    else:
        d, src = ins.args[0], ins.args[1]
        t = ins.type
        contrib = _contribution(lw, ins, src, t)
        if name == "CREDUCE" and t == "f32":
            contrib = _canon_bytes(lw, contrib)
        _deliver(lw, ins, d, contrib, t)
        _bump(lw, st[5], _c(1))


def _contribution(lw, ins, src, t):
    """A collective's contribution as 64 bytes (scalars: the low type-size bytes, zero above)."""

    b = lw.b
    if isinstance(src, Reg) and src.cls == "v":
        return lw.vraw(src.idx)

    x = _operand(lw, src)
    size = type_size(t)
    if size < 8:
        x = b.and_(x, _c((1 << (8 * size)) - 1))
    v = b.insert_element(ir.Constant(_vt(8, I64), [0] * 8), x, ir.Constant(ir.IntType(32), 0))
    return b.bitcast(v, VB)


def _canon_bytes(lw, v):

    b = lw.b
    f = b.bitcast(v, _vt(16, ir.FloatType()))
    return b.bitcast(lw.canon(f), VB)


def _deliver(lw, ins, d, vec, t) -> None:
    """A collective's 64-byte result -> the destination register (scalars as the interpreter reads them)."""

    b = lw.b
    if d.cls == "v":
        lw.vset(d.idx, vec)
        return
    size = type_size(t)
    x = b.extract_element(b.bitcast(vec, _vt(64 // size, ity(t))), ir.Constant(ir.IntType(32), 0))
    if t in ("f32", "bf16"):
        lw.rset(d.idx, b.zext(x, I64))
    else:
        lw.rset(d.idx, b.sext(x, I64) if t != "i64" else x)


# ---- several sentrons: messages
def _ready_send(lw, ins: Instr) -> None:

    b = lw.b
    fb = _fleet(lw)
    n = _ld(lw, fb, H_N)
    sid = lw.cload(OFF_SID, I64)
    if ins.op.name == "CSEND":
        d = _operand(lw, ins.args[1])
        lw.fault_if(b.icmp_unsigned(">=", d, n))
    else:  # CROUTE: the sentron whose home is p
        coord = lw.pget(ins.args[1].idx)
        lo = b.trunc(coord, I64)
        hi = b.trunc(b.lshr(coord, ir.Constant(coord.type, 64)), I64)
        homes = _gep(lw, fb, _ld(lw, fb, H_HOMES))
        pre = b.block
        loop = lw.new_block(f"croute_{lw.pc}")
        body = lw.new_block(f"croute_b_{lw.pc}")
        done = lw.new_block(f"croute_d_{lw.pc}")
        b.branch(loop)
        b.position_at_end(loop)
        k = b.phi(I64)
        k.add_incoming(_c(0), pre)
        b.cbranch(b.icmp_unsigned("<", k, n), body, done)
        b.position_at_end(body)
        e = _gep(lw, homes, b.mul(k, _c(16)))
        same = b.and_(b.icmp_unsigned("==", _ld(lw, e, 0), lo), b.icmp_unsigned("==", _ld(lw, e, 8), hi))
        k1 = b.add(k, _c(1))
        k.add_incoming(k1, body)
        b.cbranch(same, done, loop)
        b.position_at_end(done)
        d = k
        lw.fault_if(b.icmp_unsigned(">=", d, n))
    ring = _ring(lw, fb, n, sid, d)

    def check():
        tail = _ld(lw, ring, R_TAIL)
        head = _ld(lw, ring, R_HEAD, order="acquire")
        return b.icmp_unsigned("<", b.sub(tail, head), _c(QUEUE_CAPACITY))

    _wait_until(lw, check)
    lw.cstate = _CState(fb=fb, ring=ring, n=n, sid=sid, d=d)


def _run_send(lw, ins: Instr) -> None:
    b = lw.b
    cs = lw.cstate
    st = lw.STATS
    vec, ln = _payload_in(lw, ins.args[0])
    ring = cs.ring
    tail = _ld(lw, ring, R_TAIL)
    slot = b.and_(tail, _c(QUEUE_CAPACITY - 1))
    _st(lw, vec, ring, b.add(_c(R_DATA), b.mul(slot, _c(64))), align=64)
    _st(lw, ln, ring, b.add(_c(R_LEN), b.mul(slot, _c(8))))
    if lw.race:  # a message to oneself synchronises with nobody: no release, the epoch stays
        _if(
            lw,
            b.icmp_unsigned("!=", cs.d, cs.sid),
            lambda: race_release(lw, msg_clock(lw, cs.fb, cs.n, cs.sid, cs.d, slot), cs.n, cs.sid),
        )
    _st(lw, b.add(tail, _c(1)), ring, R_TAIL, order="release")
    _epoch_bump(lw, cs.fb)
    _bump(lw, st[0], _c(1))
    _bump(lw, st[1], ln)
    if ins.op.name == "CROUTE":
        _bump(lw, st[2], _c(1))
        hops = _gep(lw, cs.fb, _ld(lw, cs.fb, H_HOPS))
        _bump(lw, st[3], _ld(lw, hops, b.mul(b.add(b.mul(cs.sid, cs.n), cs.d), _c(8))))


def _ready_recv(lw, ins: Instr) -> None:

    b = lw.b
    fb = _fleet(lw)
    n = _ld(lw, fb, H_N)
    sid = lw.cload(OFF_SID, I64)
    src = ins.args[1]
    want = _operand(lw, src)
    static_any = isinstance(src, Imm) and src.value == ANY_SENDER
    if not static_any:
        isany = b.icmp_signed("==", want, _c(ANY_SENDER))
        lw.fault_if(b.and_(b.not_(isany), b.icmp_unsigned(">=", want, n)))

    def scan():
        pre = b.block
        loop = lw.new_block(f"crany_{lw.pc}")
        body = lw.new_block(f"crany_b_{lw.pc}")
        done = lw.new_block(f"crany_d_{lw.pc}")
        b.branch(loop)
        b.position_at_end(loop)
        k = b.phi(I64)
        k.add_incoming(_c(0), pre)
        b.cbranch(b.icmp_unsigned("<", k, n), body, done)
        b.position_at_end(body)
        ne = _nonempty(lw, _ring(lw, fb, n, k, sid))
        k1 = b.add(k, _c(1))
        k.add_incoming(k1, body)
        b.cbranch(ne, done, loop)
        b.position_at_end(done)
        b.store(k, lw.CHOSEN)
        return b.icmp_unsigned("<", k, n)

    def check():
        if static_any:
            return scan()
        pre = b.block
        one = lw.new_block(f"crone_{lw.pc}")
        anyb = lw.new_block(f"crany0_{lw.pc}")
        join = lw.new_block(f"crjoin_{lw.pc}")
        b.cbranch(isany, anyb, one)
        b.position_at_end(one)
        b.store(want, lw.CHOSEN)
        ok1 = _nonempty(lw, _ring(lw, fb, n, want, sid))
        one_end = b.block
        b.branch(join)
        b.position_at_end(anyb)
        ok2 = scan()
        any_end = b.block
        b.branch(join)
        b.position_at_end(join)
        ph = b.phi(ir.IntType(1))
        ph.add_incoming(ok1, one_end)
        ph.add_incoming(ok2, any_end)
        del pre
        return ph

    _wait_until(lw, check)
    lw.cstate = _CState(fb=fb, n=n, sid=sid)


def _run_recv(lw, ins: Instr) -> None:

    b = lw.b
    cs = lw.cstate
    m, _, rs = ins.args
    k = b.load(lw.CHOSEN)
    ring = _ring(lw, cs.fb, cs.n, k, cs.sid)
    head = _ld(lw, ring, R_HEAD)
    slot = b.and_(head, _c(QUEUE_CAPACITY - 1))
    vec = b.load(_gep(lw, ring, b.add(_c(R_DATA), b.mul(slot, _c(64)))), typ=VB, align=64)
    ln = _ld(lw, ring, b.add(_c(R_LEN), b.mul(slot, _c(8))))
    b.store(vec, lw.M[m.idx])
    b.store(ln, lw.ML[m.idx])
    if lw.race:
        _if(
            lw,
            b.icmp_unsigned("!=", k, cs.sid),
            lambda: race_acquire(lw, msg_clock(lw, cs.fb, cs.n, k, cs.sid, slot), cs.n),
        )
    _st(lw, b.add(head, _c(1)), ring, R_HEAD, order="release")
    _epoch_bump(lw, cs.fb)
    if rs is not None:
        lw.rset(rs.idx, k)
    refresh(lw, cs.fb)


# ---- several sentrons: collectives
def _ready_coll(lw, ins: Instr) -> None:

    _check_mixed(ins)
    b = lw.b
    name = ins.op.name
    gid = ins.args[-1].value
    fb = _fleet(lw)
    n = _ld(lw, fb, H_N)
    sid = lw.cload(OFF_SID, I64)
    gi = _gep(lw, fb, b.add(_ld(lw, fb, H_GINFO), b.mul(_c(gid), _ld(lw, fb, H_GINFOB))))
    lw.fault_if(b.icmp_unsigned("!=", _ld(lw, gi, G_BAD), _c(0)))

    def member(k):
        return b.icmp_unsigned("!=", b.load(_gep(lw, gi, b.add(_c(G_MEMB), k)), typ=I8), ir.Constant(I8, 0))

    root = None
    if name == "CCAST":
        root = _operand(lw, ins.args[2])
        inr = b.icmp_unsigned("<", root, n)
        safe = b.select(inr, root, _c(0))
        lw.fault_if(b.or_(b.not_(inr), b.not_(member(safe))))
    lw.fault_if(b.not_(member(sid)))
    count = _ld(lw, gi, G_COUNT)
    seq = b.load(lw.CSEQ[gid])
    slotb = _ld(lw, fb, H_SLOTB)
    grp = b.add(_ld(lw, fb, H_GROUPS), b.mul(_c(gid * 2), slotb))
    slot = _gep(lw, fb, b.add(grp, b.mul(b.and_(seq, _c(1)), slotb)))
    _st(lw, _c(KIND[name]), slot, b.add(_c(S_KINDS), b.mul(sid, _c(8))))
    roots_off = _ld(lw, fb, H_ROOTS)
    contrib_off = _ld(lw, fb, H_CONTRIB)
    if name == "CCAST":
        _st(lw, root, slot, b.add(roots_off, b.mul(sid, _c(8))))
    if name != "CBAR":
        vec = _contribution(lw, ins, ins.args[1], ins.type)
        _st(lw, vec, slot, b.add(contrib_off, b.mul(sid, _c(64))), align=64)
    if lw.race:
        race_release(lw, coll_clock(lw, fb, n, gid, seq, sid), n, sid)
    t_arrive = lw.call("llvm.readcyclecounter", I64, [])
    b.atomic_rmw("add", _gep(lw, slot, S_ARRIVE), _c(1), "acq_rel")
    _epoch_bump(lw, fb)
    target = b.mul(b.add(b.lshr(seq, _c(1)), _c(1)), count)

    def check():
        return b.icmp_unsigned(">=", _ld(lw, slot, S_ARRIVE, order="acquire"), target)

    _wait_until(lw, check)
    _log_wait(lw, fb, sid, t_arrive)
    lw.cstate = _CState(
        fb=fb,
        n=n,
        sid=sid,
        gi=gi,
        slot=slot,
        seq=seq,
        root=root,
        roots_off=roots_off,
        contrib_off=contrib_off,
        member=member,
    )


def _log_wait(lw, fb, sid, t_arrive) -> None:
    """Emit: when the fleet block has a wait log, append (SIW index, arrival TSC, TSC now) to this
    sentron's part and record the function's entry TSC in its header."""
    from vtpu_cli.engines.jit.irbase import OFF_PPTHITS, OFF_PPTMISSES, OFF_TSC0

    b = lw.b
    wl = _ld(lw, fb, H_WLOG)
    on = lw.new_block(f"cwlog_{lw.pc}")
    put = lw.new_block(f"cwlogput_{lw.pc}")
    done = lw.new_block(f"cwlogdone_{lw.pc}")
    weigh(b.cbranch(b.icmp_unsigned("!=", wl, _c(0)), on, done), [1, 1 << 10])
    b.position_at_end(on)
    t_leave = lw.call("llvm.readcyclecounter", I64, [])
    base = b.inttoptr(b.add(wl, b.mul(sid, _ld(lw, fb, H_WLOGB))), PTR)
    cnt = _ld(lw, base, 0)
    _st(lw, b.add(cnt, _c(1)), base, _c(0))
    _st(lw, lw.cload(OFF_TSC0, I64), base, _c(8))
    b.cbranch(b.icmp_unsigned("<", cnt, _ld(lw, fb, H_WLOGCAP)), put, done)
    b.position_at_end(put)
    e = b.add(_c(WLOG_HEAD), b.mul(cnt, _c(WLOG_ENTRY)))
    _st(lw, _c(lw.pc), base, e)
    _st(lw, t_arrive, base, b.add(e, _c(8)))
    _st(lw, t_leave, base, b.add(e, _c(16)))
    slow = b.add(lw.cload(OFF_PPTHITS, I64), lw.cload(OFF_PPTMISSES, I64))
    _st(lw, slow, base, b.add(e, _c(24)))
    b.branch(done)
    b.position_at_end(done)


def _members_loop(lw, n, member, body_fn, init):
    """for k in 0..n-1 with member(k): acc = body_fn(k, acc, first); returns acc (init when no member)."""

    b = lw.b
    pre = b.block
    head = lw.new_block(f"cml_{lw.pc}")
    test = lw.new_block(f"cmlt_{lw.pc}")
    body = lw.new_block(f"cmlb_{lw.pc}")
    nxt = lw.new_block(f"cmln_{lw.pc}")
    done = lw.new_block(f"cmld_{lw.pc}")
    b.branch(head)
    b.position_at_end(head)
    k = b.phi(I64)
    acc = b.phi(init.type)
    first = b.phi(I1)
    k.add_incoming(_c(0), pre)
    acc.add_incoming(init, pre)
    first.add_incoming(ir.Constant(I1, 1), pre)
    b.cbranch(b.icmp_unsigned("<", k, n), test, done)
    b.position_at_end(test)
    b.cbranch(member(k), body, nxt)
    b.position_at_end(body)
    acc2 = body_fn(k, acc, first)
    body_end = b.block
    b.branch(nxt)
    b.position_at_end(nxt)
    accn = b.phi(init.type)
    accn.add_incoming(acc, test)
    accn.add_incoming(acc2, body_end)
    firstn = b.phi(I1)
    firstn.add_incoming(first, test)
    firstn.add_incoming(ir.Constant(I1, 0), body_end)
    k1 = b.add(k, _c(1))
    k.add_incoming(k1, nxt)
    acc.add_incoming(accn, nxt)
    first.add_incoming(firstn, nxt)
    b.branch(head)
    b.position_at_end(done)
    return acc


def _run_coll(lw, ins: Instr) -> None:

    b = lw.b
    cs = lw.cstate
    name = ins.op.name
    gid = ins.args[-1].value
    mykind = _c(KIND[name])
    slot = cs.slot

    # every member entered the same kind of collective (and CCAST: names the same root)
    def agree(k, acc, first):
        ok = b.icmp_unsigned("==", _ld(lw, slot, b.add(_c(S_KINDS), b.mul(k, _c(8)))), mykind)
        if name == "CCAST":
            ok = b.and_(
                ok, b.icmp_unsigned("==", _ld(lw, slot, b.add(cs.roots_off, b.mul(k, _c(8)))), cs.root)
            )
        return b.and_(acc, ok)

    same = _members_loop(lw, cs.n, cs.member, agree, ir.Constant(I1, 1))
    lw.fault_if(b.not_(same), ST_REPLAY)
    if lw.race:  # a completed collective synchronises every member
        _for(lw, cs.n, lambda k: race_acquire(lw, coll_clock(lw, cs.fb, cs.n, gid, cs.seq, k), cs.n))
    if name == "CREDUCE":
        d = ins.args[0]
        t, op = ins.type, ins.mod
        lanes_t = {"f32": ir.FloatType(), "i32": ir.IntType(32), "i64": I64}[t]
        cnt = 64 // type_size(t)
        vt = _vt(cnt, lanes_t)

        def combine(k, acc, first):
            x = b.bitcast(
                b.load(_gep(lw, slot, b.add(cs.contrib_off, b.mul(k, _c(64)))), typ=VB, align=64), vt
            )
            if op == "add":
                r = b.fadd(acc, x) if t == "f32" else b.add(acc, x)
            elif t == "f32":
                r = _fminmax(lw, "DMIN" if op == "min" else "DMAX", acc, x)
            else:
                lt = b.icmp_signed("<" if op == "min" else ">", acc, x)
                r = b.select(lt, acc, x)
            return b.select(first, x, r)

        init = b.bitcast(ir.Constant(VB, [0] * 64), vt)
        res = _members_loop(lw, cs.n, cs.member, combine, init)
        out = b.bitcast(res, VB)
        if t == "f32":
            out = _canon_bytes(lw, out)
        _deliver(lw, ins, d, out, t)
    elif name == "CCAST":
        d = ins.args[0]
        vec = b.load(_gep(lw, slot, b.add(cs.contrib_off, b.mul(cs.root, _c(64)))), typ=VB, align=64)
        _deliver(lw, ins, d, vec, ins.type)
    b.store(b.add(cs.seq, _c(1)), lw.CSEQ[gid])
    lowest = b.icmp_unsigned("==", _ld(lw, cs.gi, G_MIN), cs.sid)
    k = 4 if name == "CBAR" else 5
    _bump(lw, lw.STATS[k], b.zext(lowest, I64))
    refresh(lw, cs.fb)


# --------------------------------------------------------------- scroll-table edits (several sentrons)
# SALLOC, SFREE and SFLUSH run in the host (a callback, under the run's lock), which edits the one scroll
# table every sentron looks misses up in, in place: a coordinate keeps its slot while anyone may still
# look it up (a freed one marked TAB_DEAD; its slot is recycled later), then the host bumps the fleet
# block's generation (H_TGEN). Another sentron's PPT and p registers may still hold the old pointer. A
# program without races reaches such a scroll again only after an acquire ordered after the edit (the
# edits are race-checked like writes -- SFLUSH like a read), so every acquire (and every turn of a wait)
# compares the generation with the sentron's own (``tgen``) and, when they differ, scrubs its PPT
# natively (``vtpu_ppt_scrub``: freed scrolls dropped, moved ones repointed) and translates every p
# register again. A racy program is caught by the race detector; buffers freed or moved by an edit
# stay alive until every running sentron has refreshed past it, so a stale pointer used before that
# never touches freed memory. See docs/jit.md "Scroll-table edits with several sentrons".
def refresh(lw, fb) -> None:
    """After an acquire (CRECV, the end of a collective) and at each turn of a wait: refresh this
    sentron's PPT when the scroll table changed since it last did (one load and a compare when not)."""
    if not lw.edits:
        return
    from vtpu_cli.engines.jit.irbase import OFF_TGEN

    b = lw.b
    gen = _ld(lw, fb, _c(H_TGEN), order="acquire")
    stale = b.icmp_unsigned("!=", gen, lw.cload(OFF_TGEN, I64))
    go = lw.new_block(f"refresh_{lw.pc}")
    done = lw.new_block(f"refreshed_{lw.pc}")
    weigh(b.cbranch(stale, go, done), [1, 1 << 10])
    b.position_at_end(go)
    b.call(lw.scrub_fn(), [lw.ctx, gen])
    lw.forget_translations()
    b.branch(done)
    b.position_at_end(done)
    lw.static_mru.clear()


def note_lifetime(lw, pidx: int, op: str) -> None:
    """The race check of a scroll-table edit ``op`` through p[pidx], several sentrons
    (``Fleet.note_lifetime``): SALLOC after it and SFREE before it record a write, SFLUSH before it a
    read, with the cold checks of an S access. Before SFREE/SFLUSH a coordinate with no live entry needs
    none (the op then faults in the host)."""
    if not lw.race:
        return
    store = op != "SFLUSH"
    b = lw.b
    coord = lw.pget(pidx)
    lo = b.trunc(coord, I64)
    hi = b.trunc(b.lshr(coord, ir.Constant(I128, 64)), I64)
    idx = b.call(lw.find_fn(), [lw.ctx, lo, hi])
    sid = lw.cload(OFF_SID, I64)
    epoch = _ld(lw, _race_ptr(lw, RACE_OWN_CLOCK), b.mul(sid, _c(8)))
    rd, wr = _race_fns(lw)
    val = b.or_(b.shl(epoch, _c(WRITER_SHIFT)), b.add(sid, _c(1))) if store else epoch
    fn = wr if store else rd

    def check():
        lw.fault_if(b.icmp_unsigned("!=", b.call(fn, [lw.ctx, idx, val]), _c(0)), ST_REPLAY)

    if op == "SALLOC":
        # SALLOC: the scroll it just made is gone already -- another sentron freed it without
        # synchronising (a race, or a fault, in the golden model): the interpreter replays the run
        lw.fault_if(b.icmp_signed("<", idx, _c(0)), ST_REPLAY)
        check()
        return
    _if(lw, b.icmp_signed(">=", idx, _c(0)), check)


# --------------------------------------------------------------- race detector (several sentrons)
# The interpreter's rule (``Fleet.note_access``) at scroll granularity, natively: every sentron keeps a
# vector clock (its own row of the fleet block, written only by itself); CSEND/CROUTE and the arrival at
# a collective publish a copy of it (with the message / in the collective slot) and then advance the
# sender's own entry; CRECV and the end of a collective merge the published copies (element-wise max);
# CFENCE advances the own entry. Per scroll (scroll-table slot) there is a *writer word*,
# ``epoch << 16 | (sid + 1)``, and per sentron and scroll the epoch of its last read. An access whose
# record is already current (a read at the epoch already recorded, a write by the recorded writer at
# its current epoch) changes nothing and needs no check: whoever races with it later sees the record.
# Otherwise a cold function records the access with a sequentially consistent exchange/store and then
# reads the other side's records (writers: the writer word and every read epoch; readers: the writer
# word), so of two concurrent racing accesses at least one sees the other (store -> load ordering).
# Unlike the interpreter, read epochs are never cleared at a write: an older read epoch r of sentron
# k is covered by every later writer w that passed its writer check (w synchronised with the writer
# that checked r, so clock_w[k] >= r), so keeping it cannot flag a race-free program.
# A race exits with ST_REPLAY: the engine replays the run in the interpreter, whose report is golden.
# The only intended difference: the end of a collective merges clocks in each member's own C slot,
# after its S slot of the same SIW, where the interpreter merges for every member when the first one
# finishes; an S op bundled with a collective may so be flagged natively and then found race-free by
# the replay (the replay's result is used: exit codes never differ, the run is only slower).
RACE_OWN_CLOCK, RACE_OWN_READS, RACE_WRITERS, RACE_READS = 0, 8, 16, 24
WRITER_SHIFT = 16  # sid + 1 < 65536 (VTPU_JIT_MAX_SENTRONS may raise the default 64)


def _race_ptr(lw, k: int, b=None, ctx=None):
    from vtpu_cli.engines.jit.irbase import OFF_RACE

    b = b or lw.b
    ctx = ctx if ctx is not None else lw.ctx
    return b.load(b.gep(ctx, [_c(OFF_RACE + k)], inbounds=True, source_etype=I8), typ=PTR, align=8)


def _if(lw, cond, body_fn) -> None:
    """if cond: body_fn() (the body may contain loops; it must not change the LLVM-level registers
    that later code reads through phis: it only touches memory)."""
    b = lw.b
    then = lw.new_block(f"if_{lw.pc}")
    done = lw.new_block(f"fi_{lw.pc}")
    b.cbranch(cond, then, done)
    b.position_at_end(then)
    body_fn()
    b.branch(done)
    b.position_at_end(done)


def _for(lw, n, body_fn) -> None:
    """for k in 0..n-1: body_fn(k) (the body may contain loops of its own)."""
    b = lw.b
    pre = b.block
    head = lw.new_block(f"for_{lw.pc}")
    body = lw.new_block(f"forb_{lw.pc}")
    done = lw.new_block(f"ford_{lw.pc}")
    b.branch(head)
    b.position_at_end(head)
    k = b.phi(I64)
    k.add_incoming(_c(0), pre)
    b.cbranch(b.icmp_unsigned("<", k, n), body, done)
    b.position_at_end(body)
    body_fn(k)
    k.add_incoming(b.add(k, _c(1)), b.block)
    b.branch(head)
    b.position_at_end(done)


def _clock_loop(lw, dst, src, n, merge: bool) -> None:
    """dst[k] = src[k] (copy) or dst[k] = max(dst[k], src[k]) (merge) for k < n (u64 clock rows)."""
    b = lw.b

    def body(k):
        off = b.mul(k, _c(8))
        x = _ld(lw, src, off)
        if merge:
            y = _ld(lw, dst, off)
            x = b.select(b.icmp_unsigned(">", x, y), x, y)
        _st(lw, x, dst, off)

    _for(lw, n, body)


def _tick(lw, sid) -> None:
    """Advance this sentron's own clock entry (after a release, or at CFENCE): every access record of
    the old epoch is stale, so the next access through any p register checks again."""
    b = lw.b
    lw.forget_races()
    own = _race_ptr(lw, RACE_OWN_CLOCK)
    off = b.mul(sid, _c(8))
    _st(lw, b.add(_ld(lw, own, off), _c(1)), own, off)


def race_release(lw, dst, n, sid) -> None:
    """Publish a copy of this sentron's clock at ``dst`` (before the message / arrival is published),
    then advance its own entry (the interpreter's ``Fleet._release``)."""
    _clock_loop(lw, dst, _race_ptr(lw, RACE_OWN_CLOCK), n, merge=False)
    _tick(lw, sid)


def race_acquire(lw, src, n) -> None:
    """Merge a published clock into this sentron's (``Fleet._acquire``)."""
    _clock_loop(lw, _race_ptr(lw, RACE_OWN_CLOCK), src, n, merge=True)


def msg_clock(lw, fb, n, src, dst, slot):
    """Where the clock of ring (src -> dst)'s message slot ``slot`` lives."""
    b = lw.b
    idx = b.add(b.mul(b.add(b.mul(src, n), dst), _c(QUEUE_CAPACITY)), slot)
    return _gep(lw, fb, b.add(_ld(lw, fb, H_RMSG), b.mul(idx, _ld(lw, fb, H_RROW))))


def coll_clock(lw, fb, n, gid: int, seq, member):
    """Where ``member``'s clock for the collective ``seq`` on group ``gid`` lives."""
    b = lw.b
    idx = b.add(b.mul(b.add(_c(2 * gid), b.and_(seq, _c(1))), n), member)
    return _gep(lw, fb, b.add(_ld(lw, fb, H_RCOLL), b.mul(idx, _ld(lw, fb, H_RROW))))


def cfence(lw) -> None:
    """CFENCE: with several sentrons it also advances the own clock entry (``Fleet.fence``)."""
    lw.b.fence("seq_cst")
    if lw.race:
        _tick(lw, lw.cload(OFF_SID, I64))


def _race_fns(lw):
    """The two cold out-of-line checks (emitted once per module): i64 f(ctx, slot, epoch_or_word)."""
    fns = getattr(lw, "_race_fn_cache", None)
    if fns is not None:
        return fns
    from vtpu_cli.engines.jit.irbase import OFF_TABMASK

    out = []
    for name in ("vtpu_race_read", "vtpu_race_write"):
        fn = ir.Function(lw.module, ir.FunctionType(I64, [PTR, I64, I64]), name=name)
        fn.linkage = "internal"
        for a in ("noinline", "nounwind", "cold"):
            fn.attributes.add(a)
        ctx, idx, val = fn.args
        b = irbase.builder(fn.append_basic_block("entry"))

        def gep(base, off, b=b):
            return b.gep(base, [off], source_etype=I8)

        own = _race_ptr(lw, RACE_OWN_CLOCK, b, ctx)
        sid = b.load(b.gep(ctx, [_c(OFF_SID)], inbounds=True, source_etype=I8), typ=I64, align=8)
        wptr = gep(_race_ptr(lw, RACE_WRITERS, b, ctx), b.mul(idx, _c(64)))
        if name == "vtpu_race_read":
            mine = gep(_race_ptr(lw, RACE_OWN_READS, b, ctx), b.mul(idx, _c(8)))
            b._insert(ir.instructions.StoreAtomicInstr(b.block, val, mine, "seq_cst", 8))
            w = b.load_atomic(wptr, "seq_cst", 8, typ=I64)
        else:
            w = b.atomic_rmw("xchg", wptr, val, "seq_cst")
        wid = b.sub(b.and_(w, _c((1 << WRITER_SHIFT) - 1)), _c(1))
        other = b.and_(b.icmp_unsigned("!=", w, _c(0)), b.icmp_unsigned("!=", wid, sid))
        known = b.load(gep(own, b.mul(b.select(other, wid, sid), _c(8))), typ=I64, align=8)
        bad = b.and_(other, b.icmp_unsigned("<", known, b.lshr(w, _c(WRITER_SHIFT))))
        if name == "vtpu_race_read":
            b.ret(b.zext(bad, I64))
        else:
            race = fn.append_basic_block("race")
            scan = fn.append_basic_block("scan")
            b.cbranch(bad, race, scan)
            b.position_at_end(race)
            b.ret(_c(1))
            b.position_at_end(scan)
            n = b.load(b.gep(ctx, [_c(OFF_SCOUNT)], inbounds=True, source_etype=I8), typ=I64, align=8)
            cap = b.add(
                b.load(b.gep(ctx, [_c(OFF_TABMASK)], inbounds=True, source_etype=I8), typ=I64, align=8), _c(1)
            )
            reads = _race_ptr(lw, RACE_READS, b, ctx)
            head = fn.append_basic_block("head")
            body = fn.append_basic_block("body")
            ok = fn.append_basic_block("ok")
            b.branch(head)
            b.position_at_end(head)
            k = b.phi(I64)
            k.add_incoming(_c(0), scan)
            b.cbranch(b.icmp_unsigned("<", k, n), body, ok)
            b.position_at_end(body)
            r = b.load_atomic(gep(reads, b.mul(b.add(b.mul(k, cap), idx), _c(8))), "seq_cst", 8, typ=I64)
            kb = b.load(gep(own, b.mul(k, _c(8))), typ=I64, align=8)
            hit = b.and_(b.icmp_unsigned("!=", k, sid), b.icmp_unsigned("<", kb, r))
            k.add_incoming(b.add(k, _c(1)), body)
            b.cbranch(hit, race, head)
            b.position_at_end(ok)
            b.ret(_c(0))
        out.append(fn)
    lw._race_fn_cache = tuple(out)
    return lw._race_fn_cache


def note_access(lw, pidx: int, store: bool) -> None:
    """The race check of one S-pipe access through p[pidx] (after its bounds check), several sentrons
    only: a current record costs two loads and a compare; anything else calls the cold check, and a
    race exits with ST_REPLAY."""
    if not lw.race or lw.known_race:  # known_race: a fast loop clone whose records are all current
        return
    b = lw.b
    current = lw.b.load(lw.WREC[pidx])
    if not store:  # this sentron's own write at this epoch covers its reads (see the comment above)
        current = b.or_(current, b.load(lw.RREC[pidx]))
    check = lw.new_block(f"racechk_{lw.pc}_{lw.slot}")
    skip = lw.new_block(f"raceok_{lw.pc}_{lw.slot}")
    weigh(b.cbranch(current, skip, check), [1 << 10, 1])
    b.position_at_end(check)
    idx = b.load(lw.TIDX[pidx])
    sid = lw.cload(OFF_SID, I64)
    own = _race_ptr(lw, RACE_OWN_CLOCK)
    epoch = _ld(lw, own, b.mul(sid, _c(8)))
    rd, wr = _race_fns(lw)
    if store:
        want = b.or_(b.shl(epoch, _c(WRITER_SHIFT)), b.add(sid, _c(1)))
        cur = b.load_atomic(
            _gep(lw, _race_ptr(lw, RACE_WRITERS), b.mul(idx, _c(64))), "unordered", 8, typ=I64
        )
        val, fn = want, wr
    else:
        cur = _ld(lw, _race_ptr(lw, RACE_OWN_READS), b.mul(idx, _c(8)))
        val, fn = epoch, rd
    slow = lw.new_block(f"race_{lw.pc}_{lw.slot}")
    done = lw.new_block(f"raced_{lw.pc}_{lw.slot}")
    weigh(b.cbranch(b.icmp_unsigned("!=", cur, val), slow, done), [1, 1 << 10])
    b.position_at_end(slow)
    lw.fault_if(b.icmp_unsigned("!=", b.call(fn, [lw.ctx, idx, val]), _c(0)), ST_REPLAY)
    b.branch(done)
    b.position_at_end(done)
    b.store(ir.Constant(I1, 1), (lw.WREC if store else lw.RREC)[pidx])
    b.branch(skip)
    b.position_at_end(skip)
