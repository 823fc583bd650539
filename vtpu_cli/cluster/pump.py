"""The native half of the JIT ranks' bridge: point-to-point messages across ranks without Python.

The Python bridge (:mod:`vtpu_cli.cluster.bridge`) moved every message through a Python loop on each
rank: a step costs tens of microseconds of Python, and on a host with fewer cores than threads the
loop also naps between polls, so a hop took about 200 us where MPI itself takes a few. Here the same
protocol (the bridge is consumer of rings local sender -> remote receiver, producer of rings remote
sender -> local receiver, credits return when the receiver took a message) runs in native code,
``vtpu_pump``, compiled once per process with llvmlite and calling MPI's C functions directly
(``MPI_Iprobe``/``MPI_Recv``/``MPI_Send`` of the library mpi4py loaded, on a communicator of its own):

* **Who pumps.** A sentron blocked in the C pipe calls the pump from its wait function (the JIT's
  ``OFF_YIELD`` hook) before it yields or naps, so the waiting receiver itself takes the message off
  MPI and the waiting sender's rank ships it: no thread hand-off on the path. The Python bridge calls
  it too, every step, for messages published while no local sentron waits. A try-lock makes one
  pump run at a time per rank; the others go on waiting. A blocked sentron whose pump moved nothing
  pumps again at once (when this host's sentron threads fit its cores, yielding every 16th time; else
  it yields first) while the
  pump moved something within the last ``$VTPU_CLUSTER_HOT_S`` (0.2 ms: an exchange in progress), else
  it takes the usual wait (the nap on an oversubscribed host).
* **Wire format** (8-byte words): a message ``[1, s, d, len, data x 8, clock x N]`` (the slot's 64 bytes
  and its length, and the race detector's vector clock); a credit ``[2, s, d, k]``.
* **Progress accounting.** Each delivery bumps the change counter of the remote sentron played (an
  atomic add: the Python bridge bumps them too, for collectives) and rings the doorbell of napping
  sentrons. The pump counts sends, receives and moves; the termination waves add them to the Python
  transport's, so "every item sent was received" covers both paths.

Used only when the program does not store (``SSCATTR``): stores must reach other ranks before the
messages ordered after them, which the Python transport's causal delivery guarantees and this path
does not. Collectives, stores and the control plane stay in Python. ``$VTPU_CLUSTER_NATIVE=0`` turns
the native path off (the Python bridge then moves messages as before).
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy as np

from vtpu_cli.engines.jit import comm
from vtpu_cli.fleet.transport import QUEUE_CAPACITY

ENABLED = os.environ.get("VTPU_CLUSTER_NATIVE", "1") != "0"
TAG = 7  # on the pump's own communicator
# a blocked sentron yields instead of napping while the pump moved something this recently (a hot exchange)
HOT_S = float(os.environ.get("VTPU_CLUSTER_HOT_S", "0.0002"))
# hot: spin (pump again at once) instead of yielding -- by default when this host's sentron threads
# (every rank's) fit its cores; "1" or "0" decides instead
HOT_SPIN = os.environ.get("VTPU_CLUSTER_HOT_SPIN", "auto")
SPIN_YIELD = 1 << int(os.environ.get("VTPU_CLUSTER_SPIN_YIELD_LOG2", "4"))  # a hot spinner yields every 16th
HOP_LOG = 0  # how many delivery times each run records (set by the latency measurement)
K_MSG, K_CREDIT = 1, 2
ENTRY = 10  # words per ring entry: tail, head, data0, len0, clk0, peer rank, shipped/credited, s, d, chg
E_TAIL, E_HEAD, E_DATA, E_LEN, E_CLK, E_PEER, E_COUNT, E_S, E_D, E_CHG = range(ENTRY)
# header words of the state block
(
    H_LOCK,
    H_NOUT,
    H_NIN,
    H_OUT,
    H_IN,
    H_INMAP,
    H_OUTMAP,
    H_COMM,
    H_BYTE,
    H_ANY,
    H_SENT,
    H_RECEIVED,
    H_MOVED,
    H_RBUF,
    H_SBUF,
    H_STATUS,
    H_ROW,
    H_CLKW,
    H_MAXBYTES,
    H_WAIT,
    H_N,
    H_RING,
    H_MSGS,
    H_YIELD,
    H_HOT,
    H_LAST,
    H_LOG,
    H_LOGN,
    H_LOGI,
    H_NGR,
    H_GTAB,
    H_GMAP,
    H_CHGBASE,
    H_ENTW,
    H_HOTSPIN,
    H_SENTTO,
    H_SPINS,
) = range(37)
HEADER = 40
K_COLL = 3
# words per collective group entry: gid, local members (count, ptr), member ranks (count, ptr), next
# instance to ship, arrivals added per slot parity, then per parity the slot's arrival counter, kinds,
# roots, contributions and member clocks (absolute addresses)
(
    G_ID,
    G_NMINE,
    G_MINE,
    G_NDEST,
    G_DEST,
    G_SEQ,
    G_ADDED,
    _G_ADDED1,
    G_ARRIVE,
    _A1,
    G_KINDS,
    _K1,
    G_ROOTS,
    _R1,
    G_CONTRIB,
    _C1,
    G_CLK,
    _CL1,
) = range(18)
GENTRY = 18
MAX_NATIVE_COLL_SENTRONS = 32  # above this a collective item could pass MPI's eager limit: Python moves them

_PUMP: tuple | None = None


def _mpi_functions() -> dict[str, int]:
    """Addresses of the MPI functions in the library mpi4py loaded (the process has exactly one)."""
    from mpi4py import MPI

    path = None
    with open("/proc/self/maps") as f:
        for line in f:
            name = line.rsplit("/", 1)[-1]
            if name.startswith("libmpi") and ".so" in name:
                path = line.split()[-1]
                break
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL) if path else ctypes.CDLL(MPI.__file__)
    return {
        name: ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
        for name in ("MPI_Iprobe", "MPI_Recv", "MPI_Send")
    }


def native_pump() -> tuple:
    """``(engine, pump_try, wait address, state global address)``, compiled on first use."""
    global _PUMP
    if _PUMP is not None:
        return _PUMP
    import llvmlite.binding as llvm
    from llvmlite import ir
    from llvmlite.ir import instructions
    from mpi4py import MPI

    from vtpu_cli.engines.jit.compile import _init, _target_machine, host_target

    _init()
    i32, i64 = ir.IntType(32), ir.IntType(64)
    ptr = ir.PointerType()
    hcomm = ir.IntType(8 * MPI._sizeof(MPI.Comm))
    htype = ir.IntType(8 * MPI._sizeof(MPI.Datatype))
    mod = ir.Module(name="vtpu_pump")
    iprobe = ir.Function(mod, ir.FunctionType(i32, [i32, i32, hcomm, ptr, ptr]), name="MPI_Iprobe")
    recv = ir.Function(mod, ir.FunctionType(i32, [ptr, i32, htype, i32, i32, hcomm, ptr]), name="MPI_Recv")
    send = ir.Function(mod, ir.FunctionType(i32, [ptr, i32, htype, i32, i32, hcomm]), name="MPI_Send")
    state_g = ir.GlobalVariable(mod, i64, name="vtpu_pump_state")
    state_g.initializer = ir.Constant(i64, 0)
    fallback_g = ir.GlobalVariable(mod, i64, name="vtpu_pump_fallback")  # the wait fn without a run
    fallback_g.initializer = ir.Constant(i64, 0)

    def c(x: int) -> ir.Constant:
        return ir.Constant(i64, x)

    rdtsc0 = ir.Function(mod, ir.FunctionType(i64, []), name="llvm.readcyclecounter")
    # ---------------------------------------------------------------- i64 vtpu_pump(ptr st)
    fn = ir.Function(mod, ir.FunctionType(i64, [ptr]), name="vtpu_pump")
    st = fn.args[0]
    b = ir.IRBuilder(fn.append_basic_block("entry"))

    def at(base, idx) -> Any:  # address of word idx (an i64 value or int) of base (ptr)
        return b.gep(base, [idx if isinstance(idx, ir.Value) else c(idx)], source_etype=i64)

    def word(base, idx) -> Any:
        return b.load(at(base, idx), typ=i64)

    def put(base, idx, v) -> None:
        b.store(v, at(base, idx))

    def aptr(v) -> Any:  # an address held in a word
        return b.inttoptr(v, ptr)

    def store_release(builder: Any, v: Any, p: Any) -> None:
        builder._insert(instructions.StoreAtomicInstr(builder.block, v, p, "release", 8))

    def copy_words(dst, src, count) -> None:
        """dst[0:count] = src[0:count] (ptrs, count an i64 value)."""
        head = b.block
        loop = fn.append_basic_block("copy")
        done = fn.append_basic_block("copied")
        b.cbranch(b.icmp_unsigned("!=", count, c(0)), loop, done)
        b.position_at_end(loop)
        i = b.phi(i64)
        i.add_incoming(c(0), head)
        b.store(b.load(b.gep(src, [i], source_etype=i64), typ=i64), b.gep(dst, [i], source_etype=i64))
        nxt = b.add(i, c(1))
        i.add_incoming(nxt, b.block)
        b.cbranch(b.icmp_unsigned("<", nxt, count), loop, done)
        b.position_at_end(done)

    moved = b.alloca(i64, name="moved")
    b.store(c(0), moved)
    rang = b.alloca(i64, name="rang")
    b.store(c(0), rang)
    flag = b.alloca(i32, name="flag")
    comm_h = b.trunc(word(st, H_COMM), hcomm) if hcomm.width < 64 else word(st, H_COMM)
    byte_h = b.trunc(word(st, H_BYTE), htype) if htype.width < 64 else word(st, H_BYTE)
    any_src = b.trunc(word(st, H_ANY), i32)
    tag = ir.Constant(i32, TAG)
    status = aptr(word(st, H_STATUS))
    rbuf = aptr(word(st, H_RBUF))
    sbuf = aptr(word(st, H_SBUF))
    n = word(st, H_N)
    clkw = word(st, H_CLKW)
    row = word(st, H_ROW)

    def for_range(count, body) -> None:
        """for idx in range(count): body(idx) (count an i64 value; body may open blocks)."""
        pre = b.block
        loop = fn.append_basic_block("for")
        done = fn.append_basic_block("endfor")
        b.cbranch(b.icmp_signed(">", count, c(0)), loop, done)
        b.position_at_end(loop)
        idx = b.phi(i64)
        idx.add_incoming(c(0), pre)
        body(idx)
        nxt = b.add(idx, c(1))
        idx.add_incoming(nxt, b.block)
        b.cbranch(b.icmp_signed("<", nxt, count), loop, done)
        b.position_at_end(done)

    def by_parity(entry, field, par) -> Any:  # field of parity 0, or the word after it for parity 1
        return word(entry, b.add(c(field), par))

    def add_moved(v) -> None:
        b.store(b.add(b.load(moved, typ=i64), v), moved)

    entw = word(st, H_ENTW)

    def count_to(rank_v) -> None:  # items sent to each rank: the drain at the end needs them
        slot_p = at(aptr(word(st, H_SENTTO)), rank_v)
        b.store(b.add(b.load(slot_p, typ=i64), c(1)), slot_p)

    def bump(entry) -> None:
        b.atomic_rmw("add", aptr(word(entry, E_CHG)), c(1), "seq_cst")
        add_moved(c(1))

    # incoming: up to 64 items per call
    rloop = fn.append_basic_block("rloop")
    rbody = fn.append_basic_block("rbody")
    rdone = fn.append_basic_block("rdone")
    b.branch(rloop)
    b.position_at_end(rloop)
    k = b.phi(i64)
    k.add_incoming(c(0), fn.blocks[0])
    b.store(ir.Constant(i32, 0), flag)
    b.call(iprobe, [any_src, tag, comm_h, flag, status])
    got = b.icmp_unsigned("!=", b.load(flag, typ=i32), ir.Constant(i32, 0))
    b.cbranch(b.and_(got, b.icmp_unsigned("<", k, c(64))), rbody, rdone)
    b.position_at_end(rbody)
    b.call(recv, [rbuf, b.trunc(word(st, H_MAXBYTES), i32), byte_h, any_src, tag, comm_h, status])
    put(st, H_RECEIVED, b.add(word(st, H_RECEIVED), c(1)))
    kind, s, d = word(rbuf, 0), word(rbuf, 1), word(rbuf, 2)
    pair = b.add(b.mul(s, n), d)
    on_msg = fn.append_basic_block("on_msg")
    on_credit = fn.append_basic_block("on_credit")
    on_coll = fn.append_basic_block("on_coll")
    rnext = fn.append_basic_block("rnext")
    sw = b.switch(kind, on_credit)
    sw.add_case(c(K_MSG), on_msg)
    sw.add_case(c(K_COLL), on_coll)
    # a collective's arrivals from another rank: into the slot, then add them to its arrival counter
    # (local members add to it concurrently: an atomic add), as the Python bridge's "jk" item does
    b.position_at_end(on_coll)
    ge = at(aptr(word(st, H_GTAB)), b.mul(word(aptr(word(st, H_GMAP)), s), c(GENTRY)))
    cseq = d  # [3, g, seq, count]
    cpar = b.and_(cseq, c(1))
    cnt = word(rbuf, 3)
    kinds_b, roots_b = by_parity(ge, G_KINDS, cpar), by_parity(ge, G_ROOTS, cpar)
    contrib_b, clk_b = by_parity(ge, G_CONTRIB, cpar), by_parity(ge, G_CLK, cpar)

    def take(jx) -> None:
        ent = at(rbuf, b.add(c(4), b.mul(jx, entw)))
        m = word(ent, 0)
        b.store(word(ent, 1), aptr(b.add(kinds_b, b.mul(m, c(8)))))
        b.store(word(ent, 2), aptr(b.add(roots_b, b.mul(m, c(8)))))
        copy_words(aptr(b.add(contrib_b, b.mul(m, c(64)))), at(ent, 3), c(8))
        copy_words(aptr(b.add(clk_b, b.mul(m, row))), at(ent, 11), clkw)

    for_range(cnt, take)
    added_p = at(ge, b.add(c(G_ADDED), cpar))
    b.store(b.add(b.load(added_p, typ=i64), cnt), added_p)
    b.atomic_rmw("add", aptr(by_parity(ge, G_ARRIVE, cpar)), cnt, "seq_cst")

    def bump_member(jx) -> None:
        m = word(at(rbuf, b.add(c(4), b.mul(jx, entw))), 0)
        b.atomic_rmw("add", aptr(b.add(word(st, H_CHGBASE), b.mul(m, c(64)))), c(1), "seq_cst")

    for_range(cnt, bump_member)
    add_moved(c(1))
    b.store(c(1), rang)
    b.branch(rnext)
    b.position_at_end(on_msg)
    # a message for a local receiver: fill the ring's next slot, then publish the tail
    e = at(aptr(word(st, H_IN)), b.mul(word(aptr(word(st, H_INMAP)), pair), c(ENTRY)))
    tail_p = aptr(word(e, E_TAIL))
    tail = b.load(tail_p, typ=i64)
    slot = b.and_(tail, c(QUEUE_CAPACITY - 1))
    copy_words(aptr(b.add(word(e, E_DATA), b.mul(slot, c(64)))), at(rbuf, 4), c(8))
    b.store(word(rbuf, 3), aptr(b.add(word(e, E_LEN), b.mul(slot, c(8)))))
    copy_words(aptr(b.add(word(e, E_CLK), b.mul(slot, row))), at(rbuf, 12), clkw)
    store_release(b, b.add(tail, c(1)), tail_p)
    bump(e)
    b.store(c(1), rang)
    # the delivery log (measurements): the TSC of each delivery while there is room
    li = word(st, H_LOGI)
    logit = fn.append_basic_block("logit")
    b.cbranch(b.icmp_unsigned("<", li, word(st, H_LOGN)), logit, rnext)
    b.position_at_end(logit)
    b.store(b.call(rdtsc0, []), at(aptr(word(st, H_LOG)), li))
    put(st, H_LOGI, b.add(li, c(1)))
    b.branch(rnext)
    # a credit for a ring whose remote receiver took k messages: move its head
    b.position_at_end(on_credit)
    e = at(aptr(word(st, H_OUT)), b.mul(word(aptr(word(st, H_OUTMAP)), pair), c(ENTRY)))
    head_p = aptr(word(e, E_HEAD))
    store_release(b, b.add(b.load(head_p, typ=i64), word(rbuf, 3)), head_p)
    bump(e)
    b.branch(rnext)
    b.position_at_end(rnext)
    knext = b.add(k, c(1))
    k.add_incoming(knext, rnext)
    b.branch(rloop)

    # outgoing messages: every slot local senders published for a remote receiver
    b.position_at_end(rdone)
    nout = word(st, H_NOUT)
    oloop = fn.append_basic_block("oloop")
    obody = fn.append_basic_block("obody")
    oship = fn.append_basic_block("oship")
    onext = fn.append_basic_block("onext")
    odone = fn.append_basic_block("odone")
    pre = b.block
    b.cbranch(b.icmp_unsigned("!=", nout, c(0)), oloop, odone)
    b.position_at_end(oloop)
    i = b.phi(i64)
    i.add_incoming(c(0), pre)
    e = at(aptr(word(st, H_OUT)), b.mul(i, c(ENTRY)))
    b.branch(obody)
    b.position_at_end(obody)
    tail = b.load_atomic(aptr(word(e, E_TAIL)), "acquire", 8, typ=i64)
    shipped = word(e, E_COUNT)
    b.cbranch(b.icmp_unsigned("!=", shipped, tail), oship, onext)
    b.position_at_end(oship)
    slot = b.and_(shipped, c(QUEUE_CAPACITY - 1))
    put(sbuf, 0, c(K_MSG))
    put(sbuf, 1, word(e, E_S))
    put(sbuf, 2, word(e, E_D))
    put(sbuf, 3, b.load(aptr(b.add(word(e, E_LEN), b.mul(slot, c(8)))), typ=i64))
    copy_words(at(sbuf, 4), aptr(b.add(word(e, E_DATA), b.mul(slot, c(64)))), c(8))
    copy_words(at(sbuf, 12), aptr(b.add(word(e, E_CLK), b.mul(slot, row))), clkw)
    nbytes = b.trunc(b.mul(b.add(clkw, c(12)), c(8)), i32)
    b.call(send, [sbuf, nbytes, byte_h, b.trunc(word(e, E_PEER), i32), tag, comm_h])
    count_to(word(e, E_PEER))
    put(e, E_COUNT, b.add(shipped, c(1)))
    put(st, H_SENT, b.add(word(st, H_SENT), c(1)))
    put(st, H_MSGS, b.add(word(st, H_MSGS), c(1)))
    add_moved(c(1))
    b.branch(obody)
    b.position_at_end(onext)
    inext = b.add(i, c(1))
    i.add_incoming(inext, onext)
    b.cbranch(b.icmp_unsigned("<", inext, nout), oloop, odone)

    # credits: rings whose local receiver took messages since the last credit
    b.position_at_end(odone)
    nin = word(st, H_NIN)
    cloop = fn.append_basic_block("cloop")
    csend = fn.append_basic_block("csend")
    cnext = fn.append_basic_block("cnext")
    cdone = fn.append_basic_block("cdone")
    pre = b.block
    b.cbranch(b.icmp_unsigned("!=", nin, c(0)), cloop, cdone)
    b.position_at_end(cloop)
    j = b.phi(i64)
    j.add_incoming(c(0), pre)
    e = at(aptr(word(st, H_IN)), b.mul(j, c(ENTRY)))
    head = b.load_atomic(aptr(word(e, E_HEAD)), "acquire", 8, typ=i64)
    credited = word(e, E_COUNT)
    b.cbranch(b.icmp_unsigned("!=", head, credited), csend, cnext)
    b.position_at_end(csend)
    put(sbuf, 0, c(K_CREDIT))
    put(sbuf, 1, word(e, E_S))
    put(sbuf, 2, word(e, E_D))
    put(sbuf, 3, b.sub(head, credited))
    b.call(send, [sbuf, ir.Constant(i32, 32), byte_h, b.trunc(word(e, E_PEER), i32), tag, comm_h])
    count_to(word(e, E_PEER))
    put(e, E_COUNT, head)
    put(st, H_SENT, b.add(word(st, H_SENT), c(1)))
    add_moved(c(1))
    b.branch(cnext)
    b.position_at_end(cnext)
    jnext = b.add(j, c(1))
    j.add_incoming(jnext, cnext)
    b.cbranch(b.icmp_unsigned("<", jnext, nin), cloop, cdone)

    b.position_at_end(cdone)

    # collectives: once every local member of a group arrived at its next instance, their kinds, roots,
    # contributions and clocks go to every other member rank in one item
    def ship_group(gi) -> None:
        ge = at(aptr(word(st, H_GTAB)), b.mul(gi, c(GENTRY)))
        check = fn.append_basic_block("gcheck")
        ship = fn.append_basic_block("gship")
        gdone = fn.append_basic_block("gdone")
        b.branch(check)
        b.position_at_end(check)
        seq = word(ge, G_SEQ)
        par = b.and_(seq, c(1))
        nmine = word(ge, G_NMINE)
        arrived = b.sub(
            b.load_atomic(aptr(by_parity(ge, G_ARRIVE, par)), "acquire", 8, typ=i64),
            by_parity(ge, G_ADDED, par),
        )
        need = b.mul(nmine, b.add(b.lshr(seq, c(1)), c(1)))
        b.cbranch(b.icmp_signed(">=", arrived, need), ship, gdone)
        b.position_at_end(ship)
        put(sbuf, 0, c(K_COLL))
        put(sbuf, 1, word(ge, G_ID))
        put(sbuf, 2, seq)
        put(sbuf, 3, nmine)
        kinds_b, roots_b = by_parity(ge, G_KINDS, par), by_parity(ge, G_ROOTS, par)
        contrib_b, clk_b = by_parity(ge, G_CONTRIB, par), by_parity(ge, G_CLK, par)
        mine = aptr(word(ge, G_MINE))

        def pack(jx) -> None:
            ent = at(sbuf, b.add(c(4), b.mul(jx, entw)))
            m = word(mine, jx)
            put(ent, 0, m)
            put(ent, 1, b.load(aptr(b.add(kinds_b, b.mul(m, c(8)))), typ=i64))
            put(ent, 2, b.load(aptr(b.add(roots_b, b.mul(m, c(8)))), typ=i64))
            copy_words(at(ent, 3), aptr(b.add(contrib_b, b.mul(m, c(64)))), c(8))
            copy_words(at(ent, 11), aptr(b.add(clk_b, b.mul(m, row))), clkw)

        for_range(nmine, pack)
        nbytes = b.trunc(b.mul(b.add(c(4), b.mul(nmine, entw)), c(8)), i32)
        dests = aptr(word(ge, G_DEST))
        ndest = word(ge, G_NDEST)

        def send_to(rx) -> None:
            b.call(send, [sbuf, nbytes, byte_h, b.trunc(word(dests, rx), i32), tag, comm_h])
            count_to(word(dests, rx))

        for_range(ndest, send_to)
        put(ge, G_SEQ, b.add(seq, c(1)))
        put(st, H_SENT, b.add(word(st, H_SENT), ndest))
        add_moved(c(1))
        b.branch(check)
        b.position_at_end(gdone)

    for_range(word(st, H_NGR), ship_group)
    ring = fn.append_basic_block("ring")
    out = fn.append_basic_block("out")
    b.cbranch(b.icmp_unsigned("!=", b.load(rang, typ=i64), c(0)), ring, out)
    b.position_at_end(ring)
    b.call(_fnptr(b, word(st, H_RING), ir.FunctionType(ir.VoidType(), []), ptr), [])
    b.branch(out)
    b.position_at_end(out)
    m = b.load(moved, typ=i64)
    put(st, H_MOVED, b.add(word(st, H_MOVED), m))
    b.ret(m)

    # ---------------------------------------------------------------- i64 vtpu_pump_try(ptr st)
    tryf = ir.Function(mod, ir.FunctionType(i64, [ptr]), name="vtpu_pump_try")
    b = ir.IRBuilder(tryf.append_basic_block("entry"))
    lock = b.gep(tryf.args[0], [c(H_LOCK)], source_etype=i64)
    res = b.cmpxchg(lock, c(0), c(1), "acquire", "monotonic")
    won = b.extract_value(res, 1)
    yes = tryf.append_basic_block("yes")
    no = tryf.append_basic_block("no")
    b.cbranch(won, yes, no)
    b.position_at_end(yes)
    r = b.call(fn, [tryf.args[0]])
    store_release(b, c(0), lock)
    b.ret(r)
    b.position_at_end(no)
    b.ret(c(-1))

    # ---------------------------------------------------------------- i32 vtpu_pump_wait(void)
    rdtsc = rdtsc0

    def word_of(builder: Any, base: Any, idx: int) -> Any:
        return builder.load(builder.gep(base, [c(idx)], source_etype=i64), typ=i64)

    wait = ir.Function(mod, ir.FunctionType(i32, []), name="vtpu_pump_wait")
    b = ir.IRBuilder(wait.append_basic_block("entry"))
    sv = b.load_atomic(state_g, "acquire", 8, typ=i64)
    have = wait.append_basic_block("have")
    idle = wait.append_basic_block("idle")
    none = wait.append_basic_block("none")
    b.cbranch(b.icmp_unsigned("!=", sv, c(0)), have, none)
    b.position_at_end(none)
    b.call(_fnptr(b, b.load(fallback_g, typ=i64), ir.FunctionType(i32, []), ptr), [])
    b.ret(ir.Constant(i32, 0))
    b.position_at_end(have)
    stp = b.inttoptr(sv, ptr)
    r = b.call(tryf, [stp])
    did = wait.append_basic_block("did")
    now = b.call(rdtsc, [])
    last_p = b.gep(stp, [c(H_LAST)], source_etype=i64)
    b.cbranch(b.icmp_signed(">", r, c(0)), did, idle)
    b.position_at_end(did)
    b._insert(instructions.StoreAtomicInstr(b.block, now, last_p, "monotonic", 8))
    b.ret(ir.Constant(i32, 0))
    # nothing moved: while messages flowed lately (a ping-pong), yield and come back soon; else the usual
    # wait (the nap on an oversubscribed host); both count their cycles as waiting
    b.position_at_end(idle)
    hot = b.icmp_signed(
        "<", b.sub(now, b.load_atomic(last_p, "monotonic", 8, typ=i64)), word_of(b, stp, H_HOT)
    )
    spin = wait.append_basic_block("spin")
    rest = wait.append_basic_block("rest")
    b.cbranch(b.and_(hot, b.icmp_unsigned("!=", word_of(b, stp, H_HOTSPIN), c(0))), spin, rest)
    # back to the sentron's check at once (it pumps again on its next wait) -- but every SPIN_YIELD-th time
    # yield: two spinners that the scheduler put on one core would otherwise hand over only when a time
    # slice ends (a bimodal latency: 3 us or 100-200 us per hop, measured)
    b.position_at_end(spin)
    spins_p = b.gep(stp, [c(H_SPINS)], source_etype=i64)
    nspin = b.add(b.load(spins_p, typ=i64), c(1))
    b.store(nspin, spins_p)
    yield_now = wait.append_basic_block("spin_yield")
    go_on = wait.append_basic_block("spin_on")
    b.cbranch(b.icmp_unsigned("==", b.and_(nspin, c(SPIN_YIELD - 1)), c(0)), yield_now, go_on)
    b.position_at_end(yield_now)
    b.call(_fnptr(b, word_of(b, stp, H_YIELD), ir.FunctionType(i32, []), ptr), [])
    b.ret(ir.Constant(i32, 0))
    b.position_at_end(go_on)
    b.ret(ir.Constant(i32, 0))
    b.position_at_end(rest)
    wv = b.select(hot, word_of(b, stp, H_YIELD), word_of(b, stp, H_WAIT))
    b.call(_fnptr(b, wv, ir.FunctionType(i32, []), ptr), [])
    b.ret(ir.Constant(i32, 0))

    fns = _mpi_functions()
    for name, addr in fns.items():
        llvm.add_symbol(name, addr)
    tm = _target_machine(*host_target(True))
    llmod = llvm.parse_assembly(str(mod))
    llmod.triple = tm.triple
    engine = llvm.create_mcjit_compiler(llmod, tm)
    engine.finalize_object()
    pump_try = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)(engine.get_function_address("vtpu_pump_try"))
    _PUMP = (
        engine,
        pump_try,
        engine.get_function_address("vtpu_pump_wait"),
        engine.get_global_value_address("vtpu_pump_state"),
        engine.get_global_value_address("vtpu_pump_fallback"),
    )
    return _PUMP


def _signed(x: int) -> int:
    x &= (1 << 64) - 1
    return x - (1 << 64) if x >> 63 else x


def native_wanted() -> bool:
    """Whether runs use the native message path (``$VTPU_CLUSTER_NATIVE``, default on)."""
    return ENABLED


def pump_wait(idle_wait: int) -> int:
    """The address of the wait function that pumps first (``i32 f(void)``, the JIT's wait hook);
    ``idle_wait`` (the nap or the yield) is what it calls until a run installs its state, and after."""
    pumped = native_pump()
    ctypes.c_int64.from_address(pumped[4]).value = idle_wait
    return pumped[2]


def _fnptr(b: Any, addr: Any, fty: Any, ptr: Any) -> Any:
    """A callable for an indirect call through the function address ``addr`` (an i64 value)."""
    from vtpu_cli.engines.jit.irbase import _FnPtr

    return _FnPtr(b.inttoptr(addr, ptr), fty)


class NativePath:
    """This rank's native message path for one run: the rings it plays, the pump's state block and its
    own communicator (a duplicate, made collectively by every rank at the run's start)."""

    def __init__(
        self, hub: Any, n: int, groups: list, owner: list[int], rank: int, mpi_comm: Any, wait_fn: int
    ):
        from mpi4py import MPI

        from vtpu_cli.cluster.bridge import host_atomics
        from vtpu_cli.engines.jit.compile import tsc_hz

        self.engine, self.try_fn, self.wait_addr, self.state_addr, _ = native_pump()
        self.comm = mpi_comm
        blk, lay = hub.fleet_blk, hub.fleet_lay
        base = blk.ctypes.data
        local = [s for s in range(n) if owner[s] == rank]
        remote = [s for s in range(n) if owner[s] != rank]

        def entry(s: int, d: int, peer: int) -> list[int]:
            r = base + comm.RINGS_OFF + (s * n + d) * comm.RING_BYTES
            clk = base + lay["msgclk"] + (s * n + d) * QUEUE_CAPACITY * lay["row"]
            played = d if owner[s] == rank else s  # the remote sentron whose state this path changes
            chg = base + lay["chg"] + 64 * played
            return [
                r + comm.R_TAIL,
                r + comm.R_HEAD,
                r + comm.R_DATA,
                r + comm.R_LEN,
                clk,
                peer,
                0,
                s,
                d,
                chg,
            ]

        outs = [entry(s, d, owner[d]) for s in local for d in remote]
        ins = [entry(s, d, owner[s]) for s in remote for d in local]
        # initial counters: the rings are fresh (head = tail = 0)
        self.out_tab = np.array(outs or [[0] * ENTRY], np.int64)
        self.in_tab = np.array(ins or [[0] * ENTRY], np.int64)
        self.out_map = np.full(n * n, -1, np.int64)
        self.in_map = np.full(n * n, -1, np.int64)
        for k, (s, d) in enumerate((s, d) for s in local for d in remote):
            self.out_map[s * n + d] = k
        for k, (s, d) in enumerate((s, d) for s in remote for d in local):
            self.in_map[s * n + d] = k
        # collectives: the groups with members both here and elsewhere (as the Python bridge picks them)
        self.colls = n <= MAX_NATIVE_COLL_SENTRONS
        gtab, self.keep = [], []
        self.gmap = np.full(len(groups) + 1, -1, np.int64)
        for g in range(len(groups) + 1) if self.colls else ():
            members = tuple(range(n)) if g == 0 or groups[g - 1][1] is None else tuple(groups[g - 1][1])
            if any(m >= n for m in members):
                continue  # the group names a sentron the run lacks: every member faults natively
            mine = np.array([m for m in members if owner[m] == rank], np.int64)
            dests = np.array(sorted({owner[m] for m in members} - {rank}), np.int64)
            if not (mine.size and dests.size):
                continue
            self.keep += [mine, dests]
            slots = [base + lay["groups"] + (2 * g + par) * lay["slot_bytes"] for par in (0, 1)]
            clks = [base + lay["collclk"] + (2 * g + par) * n * lay["row"] for par in (0, 1)]
            self.gmap[g] = len(gtab)
            gtab.append(
                [g, mine.size, mine.ctypes.data, dests.size, dests.ctypes.data, 0, 0, 0]
                + [sl + comm.S_ARRIVE for sl in slots]
                + [sl + comm.S_KINDS for sl in slots]
                + [sl + lay["slot_roots"] for sl in slots]
                + [sl + lay["slot_contrib"] for sl in slots]
                + clks
            )
        self.gtab = np.array(gtab or [[0] * GENTRY], np.int64)
        maxw = max(12 + n, 4 + n * (11 + n) if self.colls else 0)
        self.rbuf = np.zeros(maxw, np.int64)
        self.sbuf = np.zeros(maxw, np.int64)
        self.status = np.zeros(max(8, MPI._sizeof(MPI.Status) // 8 + 1), np.int64)
        st = self.st = np.zeros(HEADER, np.int64)
        st[H_NOUT], st[H_NIN] = len(outs), len(ins)
        st[H_OUT], st[H_IN] = self.out_tab.ctypes.data, self.in_tab.ctypes.data
        st[H_INMAP], st[H_OUTMAP] = self.in_map.ctypes.data, self.out_map.ctypes.data
        st[H_COMM] = _signed(MPI._handleof(mpi_comm))  # a handle mpi4py shows as unsigned
        st[H_BYTE] = _signed(MPI._handleof(MPI.BYTE))
        st[H_ANY] = MPI.ANY_SOURCE
        st[H_RBUF], st[H_SBUF], st[H_STATUS] = (
            self.rbuf.ctypes.data,
            self.sbuf.ctypes.data,
            self.status.ctypes.data,
        )
        st[H_ROW], st[H_CLKW], st[H_MAXBYTES] = lay["row"], n, 8 * maxw
        st[H_WAIT], st[H_N] = wait_fn, n
        st[H_RING] = ctypes.cast(host_atomics()[4], ctypes.c_void_p).value
        st[H_YIELD] = host_atomics()[5]
        hz, _ = tsc_hz()
        st[H_HOT] = int(HOT_S * (hz or 3e9))
        if HOT_SPIN in ("0", "1"):
            st[H_HOTSPIN] = int(HOT_SPIN)
        else:
            per_host = int(os.environ.get("MPI_LOCALNRANKS", "1") or 1)
            st[H_HOTSPIN] = int(len(local) * per_host <= (os.cpu_count() or 1))
        st[H_NGR], st[H_GTAB], st[H_GMAP] = len(gtab), self.gtab.ctypes.data, self.gmap.ctypes.data
        st[H_CHGBASE], st[H_ENTW] = base + lay["chg"], 11 + n
        self.sentto = np.zeros(mpi_comm.Get_size(), np.int64)
        st[H_SENTTO] = self.sentto.ctypes.data
        self.log = np.zeros(HOP_LOG, np.int64)  # delivery times, for measurements (HOP_LOG > 0)
        st[H_LOG], st[H_LOGN] = self.log.ctypes.data, HOP_LOG
        self.active = bool(outs or ins)

    def install(self) -> None:
        """From now on blocked sentrons pump (the wait function reads the state through a global)."""
        ctypes.c_int64.from_address(self.state_addr).value = self.st.ctypes.data

    def uninstall(self) -> None:
        """After every sentron thread has stopped: the state block may go."""
        ctypes.c_int64.from_address(self.state_addr).value = 0

    def drain(self, run_comm: Any, timeout_s: float = 30.0) -> None:
        """After every sentron thread has stopped, on every rank (a collective on ``run_comm``): take in
        every item other ranks sent on the pump's communicator, sending nothing more, so that it can be
        freed. (An item left in flight -- a run stopped by a fault while arrivals travelled -- would
        otherwise be matched on the next communicator that reuses its context: the replay's.)"""
        import time

        expected = sum(run_comm.alltoall([int(x) for x in self.sentto]))
        st = self.st
        st[H_NOUT] = st[H_NIN] = st[H_NGR] = 0  # receive only
        deadline = time.monotonic() + timeout_s
        while self.received < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the native message path still misses {expected - self.received} item(s) after {timeout_s:.0f} s"
                )
            self.pump()

    def pump(self) -> int:
        """One pump from the bridge's thread (0 when another thread holds the pump)."""
        return max(0, self.try_fn(self.st.ctypes.data))

    def deliveries(self) -> np.ndarray:
        """The TSC of each message delivered on this rank (the first ``HOP_LOG``), in order."""
        return self.log[: int(self.st[H_LOGI])].copy()

    @property
    def sent(self) -> int:
        return int(self.st[H_SENT])

    @property
    def received(self) -> int:
        return int(self.st[H_RECEIVED])

    @property
    def moved(self) -> int:
        return int(self.st[H_MOVED])

    @property
    def messages(self) -> int:
        return int(self.st[H_MSGS])
