"""The JIT under mpiexec: a rank's native sentrons and a bridge that plays every other rank's sentrons.

Every rank builds the whole fleet block (``engines/jit/comm.py``) for all N sentrons, as one process
would, but starts native threads only for its own block of ids. The :class:`Bridge` (a Python thread:
the rank's main thread, between MPI polls) stands in for the others, using only the block's own
protocol, so the native code is the single-process code, unchanged:

* **Messages.** For a ring (local sender -> remote receiver) the bridge is the consumer: it ships every
  slot the sender published (the whole 64-byte slot and its length, so the receiver sees the bytes one
  process would) and advances the ring's head only when the receiver's rank returns a credit, i.e.
  when the receiver took the message. A full queue therefore blocks ``CSEND`` as in one process (a
  little longer while credits travel). For a ring (remote sender -> local receiver) it is the
  producer: it fills the slot and publishes the tail (release), and returns a credit when the local
  receiver has moved the head. Each ring keeps one producer and one consumer.
* **Collectives.** Once every local member of a group has arrived at instance ``s`` (the slot's
  arrival counter, minus what the bridge itself added, reaches ``L * (s // 2 + 1)``), the bridge sends
  their kinds, roots and contributions to the other member ranks in one item; a rank receiving it
  writes them into slot ``s & 1`` and adds the arrivals with an atomic add (:func:`host_atomics`).
  Every rank then folds all contributions natively, in ascending sentron id: the bits of one process.
  A slot is never overwritten early: a member can arrive at ``s + 2`` only after ``s + 1`` completed,
  which needs every local member's arrival at ``s + 1``, after it has read ``s``.
* **The race detector's vector clocks** (``comm.py``) travel with each message and each arrival and are
  written where the native receiver merges them, so synchronisation across ranks is seen natively.
  Stores made on another rank are not recorded in this rank's writer words (a race between a remote
  writer and a local reader goes unnoticed, as on the interpreter ranks).
* **Progress.** Each change the bridge makes bumps the change counter of the remote sentron it plays
  (only the bridge writes those), so the watchdog epoch of ``comm.py`` covers it. The rank is *idle*
  when every live local sentron is blocked having checked at the current epoch and the bridge has
  nothing to move: the distributed termination waves of ``ranks.py`` use exactly that.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from vtpu_cli.engines.jit import comm
from vtpu_cli.engines.jit.abi import OFF_BLOCKED, OFF_FLEET, OFF_SEEN
from vtpu_cli.fleet.transport import QUEUE_CAPACITY

MASK = QUEUE_CAPACITY - 1
NAP_US = int(os.environ.get("VTPU_CLUSTER_NAP_US", "20"))  # a blocked sentron's sleep when oversubscribed
SYS_FUTEX, FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 202, 128, 129  # x86-64 Linux (the JIT's only target)
SYS_SCHED_YIELD = 24
RING_BELL = os.environ.get("VTPU_CLUSTER_BELL", "1") != "0"


def ring_bell() -> None:
    """Wake the sentrons of this process sleeping in their nap (the bridge delivered something)."""
    host_atomics()[4]()


def oversubscribed(local_sentrons: int) -> bool:
    """More threads on this host (every rank's sentrons and bridge) than cores: blocked sentrons then
    sleep instead of yielding (``$VTPU_CLUSTER_WAIT`` = ``nap`` or ``yield`` decides instead)."""
    how = os.environ.get("VTPU_CLUSTER_WAIT", "")
    if how in ("nap", "yield"):
        return how == "nap"
    per_host = int(os.environ.get("MPI_LOCALNRANKS", "1") or 1)
    return (local_sentrons + 1) * per_host > (os.cpu_count() or 1)


def wait_fn(local_sentrons: int) -> int:
    """What blocked sentrons call: the nap when oversubscribed, else ``sched_yield`` (the JIT's default);
    both add the cycles they wait to :func:`waited_cycles`."""
    return host_atomics()[3] if oversubscribed(local_sentrons) else host_atomics()[5]


def waited_cycles() -> int:
    """TSC cycles the blocked sentrons of this process have spent in :func:`wait_fn` so far (all runs):
    the difference over a run is the sentrons' time waiting in the C pipe, less their first short spin."""
    import ctypes

    return ctypes.c_int64.from_address(host_atomics()[6]).value


_BLOCKED = (OFF_BLOCKED - OFF_FLEET) // 8
_SEEN = (OFF_SEEN - OFF_FLEET) // 8


class Bridge:
    """Moves one rank's share of the native C pipe across ranks (see the module docstring)."""

    def __init__(
        self,
        hub: Any,
        n: int,
        groups: list,
        owner: list[int],
        rank: int,
        transport: Any,
        native: bool = False,
        native_colls: bool = False,
    ):
        """``native``: messages and credits go through the native pump (``cluster/pump.py``), and with
        ``native_colls`` collectives too; this bridge then moves what is left."""
        self.hub, self.n, self.owner, self.rank, self.tr = hub, n, owner, rank, transport
        self.moved = 0  # every change this bridge made (the activity the termination waves compare)
        # called once per step before anything that releases (a message, a collective arrival) is sent:
        # the memory writes that must travel first (RankJit's replicated scrolls)
        self.before_release: Any = None
        self._released = False
        transport.on_item = self.deliver
        if hub.fleet_blk is None:  # one sentron: no fleet block, nothing crosses ranks
            self.out, self.in_list, self.colls, self.blk = [], [], [], None
            return
        blk, lay = hub.fleet_blk, hub.fleet_lay
        self.blk, self.lay = blk, lay
        self.q = blk.view(np.uint64)
        self.addr = blk.ctypes.data
        self.fetch_add, self.store_release, *_ = host_atomics()
        local = [s for s in range(n) if owner[s] == rank]
        remote = [s for s in range(n) if owner[s] != rank]
        self.local = local
        self.chg = [lay["chg"] // 8 + 8 * s for s in range(n)]  # u64 index of each change counter
        self.chg_view = blk[lay["chg"] : lay["chg"] + 64 * n].view(np.uint64)[::8]  # one per cache line

        def ring(s: int, d: int) -> int:
            return comm.RINGS_OFF + (s * n + d) * comm.RING_BYTES

        # rings this rank consumes for a remote receiver, and produces for a local receiver
        self.out = [] if native else [(s, d, ring(s, d)) for s in local for d in remote]
        self.out_tail = np.array([(r + comm.R_TAIL) // 8 for _, _, r in self.out], np.int64)
        self.shipped = np.zeros(len(self.out), np.uint64)
        self.inn = {} if native else {(s, d): ring(s, d) for s in remote for d in local}
        self.in_list = list(self.inn.items())
        self.in_head = np.array([(r + comm.R_HEAD) // 8 for _, r in self.in_list], np.int64)
        self.credited = np.zeros(len(self.in_list), np.uint64)
        # collectives: the groups with members both here and elsewhere
        self.colls = []
        for g in range(len(groups) + 1):
            members = tuple(range(n)) if g == 0 or groups[g - 1][1] is None else tuple(groups[g - 1][1])
            if any(m >= n for m in members):
                continue  # the group names a sentron the run lacks: every member faults natively
            mine = [m for m in members if owner[m] == rank]
            dests = sorted({owner[m] for m in members} - {rank})
            if mine and dests and not native_colls:
                self.colls.append([g, mine, dests, 0, [0, 0]])  # gid, local, ranks, next seq, added/slot

    # ------------------------------------------------------------------ the fleet block's addresses
    def _slot(self, g: int, seq: int) -> int:
        lay = self.lay
        return lay["groups"] + (2 * g + (seq & 1)) * lay["slot_bytes"]

    def _msg_clock(self, s: int, d: int, slot: int) -> int:
        """Where the race detector's vector clock of ring (s -> d)'s ``slot`` lives (``comm.msg_clock``):
        it travels with the message, so the receiver synchronises with the sender as in one process."""
        lay = self.lay
        return lay["msgclk"] + ((s * self.n + d) * QUEUE_CAPACITY + slot) * lay["row"]

    def _coll_clock(self, g: int, seq: int, m: int) -> int:
        """Where member ``m``'s clock for collective ``seq`` of group ``g`` lives (``comm.coll_clock``)."""
        lay = self.lay
        return lay["collclk"] + ((2 * g + (seq & 1)) * self.n + m) * lay["row"]

    def _bump(self, sid: int) -> None:
        """A remote sentron's state changed here: advance its change counter (the bridge and the native
        pump write it, never the sentrons)."""
        self.fetch_add(self.addr + 8 * self.chg[sid], 1)

    def epoch(self) -> int:
        """The watchdog epoch: the sum of every sentron's change counter."""
        if self.blk is None:
            return 0
        return int(self.chg_view.sum())

    # ------------------------------------------------------------------ outgoing
    def step(self) -> bool:
        """Ship what local sentrons published for other ranks; return credits. True when anything moved."""
        if self.blk is None:
            return False
        q, blk, tr = self.q, self.blk, self.tr
        moved = False
        self._released = False
        batches: dict[int, list] = {}
        if self.out:
            tails = q[self.out_tail]
            for i in np.nonzero(tails != self.shipped)[0]:
                s, d, r = self.out[i]
                for k in range(int(self.shipped[i]), int(tails[i])):
                    slot = k & MASK
                    data = blk[r + comm.R_DATA + 64 * slot : r + comm.R_DATA + 64 * slot + 64].tobytes()
                    ln = int(q[(r + comm.R_LEN) // 8 + slot])
                    clk = self._msg_clock(s, d, slot)
                    batches.setdefault(self.owner[d], []).append(
                        (s, d, data, ln, blk[clk : clk + 8 * self.n].tobytes())
                    )
                self.shipped[i] = tails[i]
        if batches:
            self._release()
        for dest, msgs in batches.items():
            tr.send_item(("jm", msgs), dest)
            tr.remote_messages += len(msgs)
            tr.remote_bytes += sum(m[3] for m in msgs)
            moved = True
        if self.in_list:
            heads = q[self.in_head]
            credits: dict[int, list] = {}
            for i in np.nonzero(heads != self.credited)[0]:
                (s, d), _ = self.in_list[i]
                credits.setdefault(self.owner[s], []).append((s, d, int(heads[i] - self.credited[i])))
                self.credited[i] = heads[i]
            for dest, cr in credits.items():
                tr.send_item(("jc", cr), dest)
                moved = True
        for c in self.colls:
            moved |= self._ship_arrivals(c)
        if moved:
            self.moved += 1
        return moved

    def _ship_arrivals(self, c: list) -> bool:
        g, mine, dests, _, added = c
        lay, q, blk = self.lay, self.q, self.blk
        moved = False
        while True:
            seq = c[3]
            base = self._slot(g, seq)
            arrived = int(q[(base + comm.S_ARRIVE) // 8]) - added[seq & 1]
            if arrived < len(mine) * (seq // 2 + 1):
                return moved
            entries = []
            for m in mine:
                kind = int(q[(base + comm.S_KINDS) // 8 + m])
                root = int(q[(base + lay["slot_roots"]) // 8 + m])
                off = base + lay["slot_contrib"] + 64 * m
                clk = self._coll_clock(g, seq, m)
                entries.append(
                    (m, kind, root, blk[off : off + 64].tobytes(), blk[clk : clk + 8 * self.n].tobytes())
                )
            self._release()
            for r in dests:
                self.tr.send_item(("jk", g, seq, entries), r)
            c[3] = seq + 1
            moved = True

    def _release(self) -> None:
        if not self._released and self.before_release is not None:
            self.before_release()
        self._released = True

    # ------------------------------------------------------------------ incoming (from the transport's poll)
    def deliver(self, _src: int, obj: tuple) -> None:
        if self.blk is None:  # pragma: no cover - one sentron: no other rank sends bridge items
            return
        kind = obj[0]
        q, blk = self.q, self.blk
        self.moved += 1
        if kind == "jm":
            for s, d, data, ln, clock in obj[1]:
                r = self.inn[(s, d)]
                tail = int(q[(r + comm.R_TAIL) // 8])
                slot = tail & MASK
                blk[r + comm.R_DATA + 64 * slot : r + comm.R_DATA + 64 * slot + 64] = np.frombuffer(
                    data, np.uint8
                )
                q[(r + comm.R_LEN) // 8 + slot] = ln
                clk = self._msg_clock(s, d, slot)
                blk[clk : clk + len(clock)] = np.frombuffer(clock, np.uint8)
                self.store_release(self.addr + r + comm.R_TAIL, tail + 1)
                self._bump(s)
        elif kind == "jc":
            for s, d, k in obj[1]:
                r = comm.RINGS_OFF + (s * self.n + d) * comm.RING_BYTES
                self.store_release(self.addr + r + comm.R_HEAD, int(q[(r + comm.R_HEAD) // 8]) + k)
                self._bump(d)
        elif kind == "jk":
            _, g, seq, entries = obj
            lay = self.lay
            base = self._slot(g, seq)
            for m, kd, root, data, clock in entries:
                q[(base + comm.S_KINDS) // 8 + m] = kd
                q[(base + lay["slot_roots"]) // 8 + m] = root
                off = base + lay["slot_contrib"] + 64 * m
                blk[off : off + 64] = np.frombuffer(data, np.uint8)
                clk = self._coll_clock(g, seq, m)
                blk[clk : clk + len(clock)] = np.frombuffer(clock, np.uint8)
            for c in self.colls:
                if c[0] == g:
                    c[4][seq & 1] += len(entries)
            self.fetch_add(self.addr + base + comm.S_ARRIVE, len(entries))
            for m, *_ in entries:
                self._bump(m)
        else:  # pragma: no cover - an item kind of a newer vtpu
            raise RuntimeError(f"unknown bridge item {kind!r}")

    # ------------------------------------------------------------------ idleness
    def all_blocked(self, sens: list, epoch: int) -> bool:
        """Every live local sentron is blocked in the C pipe having checked at ``epoch``."""
        for sid in list(self.hub.live):
            x = sens[sid].ext
            if x[_BLOCKED] != 1 or x[_SEEN] != epoch:
                return False
        return True


# --------------------------------------------------------------- host-side atomics (the cluster bridge)
_HOST_ATOMICS: tuple | None = None


def host_atomics() -> tuple:
    """``(fetch_add, store_release, engine, nap address, ring, yield address, wait counter address)``:
    ctypes functions on 8-byte fleet-block words, the blocked sentrons' nap (or yield) and the bridge's
    doorbell (see below); both waits add the TSC cycles they took to the wait counter.

    Under mpiexec a Python thread (:class:`Bridge`) stands in for the sentrons of other ranks: it
    adds their arrivals to collective counters that local native threads increment concurrently (a
    read-modify-write from numpy could lose one of theirs), and it publishes ring tails and heads after
    the data they cover. Both are two tiny native functions compiled once per process."""
    global _HOST_ATOMICS
    if _HOST_ATOMICS is not None:
        return _HOST_ATOMICS
    import ctypes

    import llvmlite.binding as llvm
    from llvmlite import ir
    from llvmlite.ir import instructions

    from vtpu_cli.engines.jit.compile import _init, _target_machine, host_target
    from vtpu_cli.engines.jit.irbase import I64, PTR

    _init()
    mod = ir.Module(name="vtpu_host_atomics")
    add = ir.Function(mod, ir.FunctionType(I64, [PTR, I64]), name="vtpu_fetch_add")
    b = ir.IRBuilder(add.append_basic_block("entry"))
    b.ret(b.atomic_rmw("add", add.args[0], add.args[1], "seq_cst"))
    rel = ir.Function(mod, ir.FunctionType(ir.VoidType(), [PTR, I64]), name="vtpu_store_release")
    b = ir.IRBuilder(rel.append_basic_block("entry"))
    b._insert(instructions.StoreAtomicInstr(b.block, rel.args[1], rel.args[0], "release", 8))
    b.ret_void()
    # The nap of a blocked sentron on an oversubscribed host (returns 0: sched_yield's type): a futex wait
    # of at most NAP_US on a doorbell word that the bridge rings (vtpu_ring) after delivering anything,
    # so a delivery wakes its receiver at once; a local peer's change is seen when the wait times out.
    # A ring between the sentron's check and its read of the doorbell costs one timeout, never a hang.
    i32 = ir.IntType(32)
    syscall = ir.Function(mod, ir.FunctionType(I64, [I64], var_arg=True), name="syscall")
    bell = ir.GlobalVariable(mod, i32, name="vtpu_doorbell")
    bell.initializer = ir.Constant(i32, 0)
    ts_t = ir.LiteralStructType([I64, I64])
    ts = ir.GlobalVariable(mod, ts_t, name="vtpu_nap_timeout")
    ts.initializer = ir.Constant(ts_t, [ir.Constant(I64, 0), ir.Constant(I64, NAP_US * 1000)])
    ts.global_constant = True
    waited = ir.GlobalVariable(mod, I64, name="vtpu_wait_cycles")
    waited.initializer = ir.Constant(I64, 0)
    rdtsc = ir.Function(mod, ir.FunctionType(I64, []), name="llvm.readcyclecounter")
    nap = ir.Function(mod, ir.FunctionType(i32, []), name="vtpu_nap")
    b = ir.IRBuilder(nap.append_basic_block("entry"))
    t0 = b.call(rdtsc, [])
    seen = b.load_atomic(bell, "acquire", 4, typ=i32)
    args = [ir.Constant(I64, SYS_FUTEX), bell, ir.Constant(I64, FUTEX_WAIT_PRIVATE), b.zext(seen, I64), ts]
    b.call(syscall, args + [ir.Constant(I64, 0), ir.Constant(I64, 0)])
    b.atomic_rmw("add", waited, b.sub(b.call(rdtsc, []), t0), "monotonic")
    b.ret(ir.Constant(i32, 0))
    yld = ir.Function(mod, ir.FunctionType(i32, []), name="vtpu_yield")
    b = ir.IRBuilder(yld.append_basic_block("entry"))
    t0 = b.call(rdtsc, [])
    b.call(syscall, [ir.Constant(I64, SYS_SCHED_YIELD)])
    b.atomic_rmw("add", waited, b.sub(b.call(rdtsc, []), t0), "monotonic")
    b.ret(ir.Constant(i32, 0))
    ring = ir.Function(mod, ir.FunctionType(ir.VoidType(), []), name="vtpu_ring")
    b = ir.IRBuilder(ring.append_basic_block("entry"))
    b.atomic_rmw("add", bell, ir.Constant(i32, 1), "seq_cst")
    wake = [
        ir.Constant(I64, SYS_FUTEX),
        bell,
        ir.Constant(I64, FUTEX_WAKE_PRIVATE),
        ir.Constant(I64, 1 << 30),
    ]
    b.call(syscall, wake)
    b.ret_void()
    llvm.add_symbol("syscall", ctypes.cast(ctypes.CDLL(None).syscall, ctypes.c_void_p).value)
    tm = _target_machine(*host_target(True))
    llmod = llvm.parse_assembly(str(mod))
    llmod.triple = tm.triple
    engine = llvm.create_mcjit_compiler(llmod, tm)
    engine.finalize_object()
    fa = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64)(
        engine.get_function_address("vtpu_fetch_add")
    )
    sr = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)(
        engine.get_function_address("vtpu_store_release")
    )
    rg = ctypes.CFUNCTYPE(None)(engine.get_function_address("vtpu_ring"))
    # the engine owns the code: keep it alive with the functions
    _HOST_ATOMICS = (
        fa,
        sr,
        engine,
        engine.get_function_address("vtpu_nap"),
        rg,
        engine.get_function_address("vtpu_yield"),
        engine.get_global_value_address("vtpu_wait_cycles"),
    )
    return _HOST_ATOMICS


class ScrollTwins:
    """Memory across JIT ranks for programs that store (``SSCATTR``; the scroll table itself stays fixed):
    every rank keeps its own image, a *twin* of every scroll records what the other ranks know, and
    the bytes that differ from it -- this rank's stores since its last release -- go to every other
    rank before anything that releases leaves the rank (:attr:`Bridge.before_release`). The transport
    delivers causally (an item is held until the updates its sender had applied are applied here), so
    a sentron that receives a message or completes a collective sees every store ordered before it,
    on any rank: what the memory model (docs/interpreter.md) lets a conforming program observe.

    Only bytes that changed travel, never a whole scroll: two ranks storing into different parts of one
    scroll (rows of an output) do not overwrite each other's parts. At the end each rank's unshipped
    changes go to rank 0, which then holds the whole image."""

    def __init__(self, mem: Any, skip: set[int] | frozenset[int] = frozenset()):
        """``skip``: scrolls never stored to (declared weights): no twin, never compared, never sent."""
        self.mem = mem
        self.twins = {
            c: np.array(sc.buf, np.uint8).reshape(-1).copy() for c, sc in mem.table.items() if c not in skip
        }
        self.bytes_out = 0

    def diff(self, only: set[int] | None = None) -> list:
        """The runs of bytes that changed since the last call, per scroll: ``[(coord, starts, lengths,
        bytes)]`` (int64 arrays and the changed bytes back to back; vectorised: a float tensor's changes
        come as many short runs, broken wherever a byte happens to keep its value). ``only``: the
        scrolls that can have changed (the others are not compared)."""
        out = []
        for c, twin in self.twins.items():
            if only is not None and c not in only:
                continue
            cur = self.mem.table[c].buf.copy()  # once: a store landing meanwhile is in the next diff
            idx = np.flatnonzero(cur != twin)
            if not idx.size:
                continue
            cut = np.flatnonzero(np.diff(idx) > 1)
            starts = np.concatenate((idx[:1], idx[cut + 1]))
            ends = np.concatenate((idx[cut], idx[-1:])) + 1
            out.append((c, starts, ends - starts, cur[idx].tobytes()))
            self.bytes_out += int(idx.size)
            twin[idx] = cur[idx]
        return out

    def apply(self, entries: list) -> None:
        """Another rank's changed bytes: into the scroll and its twin (so they are not sent back)."""
        for c, starts, lengths, data in entries:
            buf, twin = self.mem.table[c].buf, self.twins.get(c)
            if twin is None:  # another rank stored into a scroll this one takes for read-only
                raise RuntimeError(f"a store into {c:#x}, which this rank keeps no twin of")
            idx = run_indices(starts, lengths)
            a = np.frombuffer(data, np.uint8)
            buf[idx] = a
            twin[idx] = a

    @staticmethod
    def size(entries: list) -> int:
        return sum(len(e[3]) for e in entries)


def run_indices(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The byte offsets covered by runs (``starts[i]``, ``lengths[i]`` bytes each), in order."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, np.int64)
    first = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return first + np.arange(total)
