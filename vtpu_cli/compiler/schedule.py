"""Dependency analysis and list scheduling of allocated code into SIWs.

Per basic block, a DAG is built over physical registers (RAW edges weighted with the producer's
latency class from the op table, WAR and WAW edges of distance 1), the flags register, memory and
collectives. Two memory accesses are ordered only when at least one writes and they may alias: same
scroll, and byte ranges that overlap (ranges relative to the same offset-register value are compared
exactly; unknown ranges alias). Blocking C ops and fences order all memory ops and each other.

The list scheduler fills one D, one S and one C slot per SIW, cycle by cycle, taking the ready op with
the longest latency-weighted path to the end of the block. An op is *ready* in SIW t when every
predecessor sits in an SIW before t, so no SIW ever holds two dependent ops (the assembler's
intra-SIW hazard rule holds by construction; ``check_hazards`` re-verifies it). Latency is a priority
and a preference only: the engines expose results to the next SIW, so the scheduler never emits an
empty SIW to wait for a latency, it fills the slot with the best dependency-ready op instead.
The block's branch goes into the last SIW (it takes effect after the whole SIW).

Speed: register keys are small ints (last writer and readers in lists indexed by key), edges are
plain ints (the few that weigh more than 1 are listed apart), implied write-after-write edges are
left out; one pass over the block builds the dependencies and the per-op tables (latency, pipe and
dependency kind come from one tuple per op name), one backward pass over the predecessor sets builds
the successor lists and the priorities; the ready/pending heaps hold ints that encode (priority,
index), so no sort per block; the blocks emit the final SIW tuples. The schedule is the same as with
the explicit (successor, latency) edge lists, which tests/phx_speed_ref.py keeps as the reference.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from vtpu_cli.binary.program import Instr, Mem, nop
from vtpu_cli.compiler.ir import (
    _SET_ARGS,
    _SET_BASE,
    _SET_DISP,
    _SET_EXTRA,
    _SET_MOD,
    _SET_MODE,
    _SET_OFF,
    _SET_OP,
    _SET_TYPE,
    _SET_TYPE2,
    VI,
    Label,
    VMem,
    VReg,
    _imm,
    _instr,
    _mem,
)

PIPE_INDEX = {"D": 0, "S": 1, "C": 2}


@dataclass
class Scheduled:
    siws: list  # SIW tuples (D, S, C) with NOPs in empty slots (:class:`_SIWs`)
    lines: list[int]
    labels: dict[str, int]
    critical_path: int = 0
    blocks: int = 0
    stats: dict = field(default_factory=dict)
    branches: list[int] | None = None  # indexes of the SIWs that hold a branch (always in the D slot)
    ops: list[int] | None = None  # non-NOP ops per SIW


_FLAG = 256  # the flags register, beside the physical register keys (regalloc.REG_KEY: 0..255)
_NKEYS = _FLAG + 1
_KEY = {"r": 0, "v": 64, "p": 128, "m": 192}


class _Key:
    """A physical register key where the scheduler reads a virtual register's ``key`` (spill code and
    the flags register: the dependency loop reads ``.key`` from whatever it is given)."""

    __slots__ = ("key",)

    def __init__(self, key: int):
        self.key = key


_KEYS = tuple(_Key(k) for k in range(_NKEYS))
_FLAG_KEY = _KEYS[_FLAG]


def int_keys(ins) -> tuple[set, set]:
    """(reads, writes) of an allocated instruction as scheduler keys."""
    r, w = ins.regs()
    return {_KEY[c] + i for c, i in r}, {_KEY[c] + i for c, i in w}


def _key_lists(ins) -> tuple[list, list]:
    """(reads, writes) of an allocated instruction (spill code, the spill-scroll setup) as key objects."""
    r, w = int_keys(ins)
    return [_KEYS[k] for k in r], [_KEYS[k] for k in w]


_new = object.__new__


def _physical(it: VI, imms: dict) -> Instr:
    """The physical instruction of an allocated IR instruction (registers -> their ``phys``)."""
    args = []
    for a in it.args:
        c = a.__class__
        if c is VReg:
            args.append(a.phys)
        elif c is VMem:
            off = a.off
            off = off.phys if off.__class__ is VReg else _imm(off, imms)
            extra = a.extra
            if extra.__class__ is VReg:
                extra = extra.phys
            elif isinstance(extra, int):
                extra = _imm(extra, imms)
            args.append(_mem(a.base.phys.idx, off, a.mode, extra, a.disp))
        else:
            args.append(a)
    return _instr(it.op, it.mod, it.type, it.type2, tuple(args))


def schedule(items: list, reorder: bool = True, on_block=None) -> Scheduled:
    """Schedule the allocator's items (Labels, allocated ``VI``s, (Instr, MemInfo, line) triples) block
    by block (blocks end before a label and after a branch); ``on_block(fraction done)`` is called
    every 256 blocks (progress).

    One pass over the items builds each instruction's physical ``Instr`` and, at the same time, the
    dependency DAG of its block and the block's per-op tables (what a separate allocator rewrite, block
    split and DAG pass did): register keys come from the virtual registers' ``key`` (set by the
    allocator's scan), the op's latency, pipe (0 D, 1 S, 2 C) and dependency kind from one table per op
    name (:func:`_op_info`). At a block's end :func:`_list_schedule` orders it.

    Dependencies: RAW edges weigh the producer's latency, every other edge 1, so only the RAW
    successors of ops whose latency exceeds 1 carry information beyond the edge itself: they are listed
    again in ``raw[j]`` (edges are plain ints). A write-after-write edge is left out when the register
    was read since it was last written: each such reader depends on the earlier write (RAW, latency >=
    1) and the new write depends on the reader (WAR), so the edge is implied -- with the same
    readiness, the same latency-ready SIW and the same priorities (every latency is >= 1), i.e. the
    same schedule with ~20% fewer edges."""
    if not reorder:
        return _in_order(items)
    siws = _SIWs()
    lines: list[int] = []
    labels: dict[str, int] = {}
    branches: list[int] = []
    ops: list[int] = []
    crit = 0
    nblocks = 0
    labelled = False  # labels seen since the last block ended (a trailing group counts as a block)
    done_items = 0
    n_items = len(items)
    infos = _INFO
    imms: dict = {}
    label, vi, vreg, vmem = Label, VI, VReg, VMem
    new = _new
    set_op, set_mod, set_type, set_type2, set_args = _SET_OP, _SET_MOD, _SET_TYPE, _SET_TYPE2, _SET_ARGS
    set_base, set_off, set_mode, set_extra, set_disp = _SET_BASE, _SET_OFF, _SET_MODE, _SET_EXTRA, _SET_DISP
    flag_key = _FLAG_KEY
    has_nop = False
    # block state (reset at each block's end)
    i = -1
    raw: list = []  # per op: a list only for ops of latency > 1 that have RAW successors
    preds_of: list = []
    last_w = [-1] * _NKEYS  # per register key: its last writer and its readers since then
    readers: list = [None] * _NKEYS
    mem_loads: dict[str, list] = {}
    mem_stores: dict[str, list] = {}
    since_barrier: list[int] = []
    last_barrier = -1
    lat_of: list[int] = []
    pipe_of: list[int] = []
    ins_of: list = []
    line_of: list[int] = []
    pr: set = set()

    def mem_of(a: VMem) -> Mem:
        """The physical ``Mem`` of a memory operand (immediates shared per value)."""
        off = a.off
        if off.__class__ is vreg:
            off = off.phys
        else:
            o = imms.get(off)
            off = o if o is not None else _imm(off, imms)
        extra = a.extra
        if extra.__class__ is vreg:
            extra = extra.phys
        elif isinstance(extra, int):
            o = imms.get(extra)
            extra = o if o is not None else _imm(extra, imms)
        m = new(Mem)
        set_base(m, a.base.phys.idx)
        set_off(m, off)
        set_mode(m, a.mode)
        set_extra(m, extra)
        set_disp(m, a.disp)
        return m

    for it in items:
        if it.__class__ is vi:
            op = it.op
            # the physical instruction: each operand by its class, unrolled for the usual operand
            # counts (a register -> its ``phys``, a memory operand -> a Mem, anything else as is)
            a = it.args
            n = len(a)
            if n == 4:
                x0, x1, x2, x3 = a
                args = (
                    x0.phys if x0.__class__ is vreg else x0 if x0.__class__ is not vmem else mem_of(x0),
                    x1.phys if x1.__class__ is vreg else x1 if x1.__class__ is not vmem else mem_of(x1),
                    x2.phys if x2.__class__ is vreg else x2 if x2.__class__ is not vmem else mem_of(x2),
                    x3.phys if x3.__class__ is vreg else x3 if x3.__class__ is not vmem else mem_of(x3),
                )
            elif n == 2:
                x0, x1 = a
                args = (
                    x0.phys if x0.__class__ is vreg else x0 if x0.__class__ is not vmem else mem_of(x0),
                    x1.phys if x1.__class__ is vreg else x1 if x1.__class__ is not vmem else mem_of(x1),
                )
            elif n == 3:
                x0, x1, x2 = a
                args = (
                    x0.phys if x0.__class__ is vreg else x0 if x0.__class__ is not vmem else mem_of(x0),
                    x1.phys if x1.__class__ is vreg else x1 if x1.__class__ is not vmem else mem_of(x1),
                    x2.phys if x2.__class__ is vreg else x2 if x2.__class__ is not vmem else mem_of(x2),
                )
            else:
                args = tuple(
                    [
                        x.phys if x.__class__ is vreg else x if x.__class__ is not vmem else mem_of(x)
                        for x in a
                    ]
                )
            ins = new(Instr)  # slotted: set through its slots' descriptors (see ir._instr)
            set_op(ins, op)
            set_mod(ins, it.mod)
            set_type(ins, it.type)
            set_type2(ins, it.type2)
            set_args(ins, args)
            reads, writes = it._rw
            mem = it.mem
            line = it.line
        elif it.__class__ is label:
            if i >= 0:
                crit += _list_schedule(
                    i + 1, preds_of, raw, pr, lat_of, pipe_of, ins_of, line_of, siws, lines, branches, ops
                )
                nblocks += 1
                done_items += i + 1
                if on_block is not None and nblocks % 256 == 255:
                    on_block(done_items / n_items)
                i = -1
                raw, preds_of, lat_of, pipe_of, ins_of, line_of = [], [], [], [], [], []
                last_w = [-1] * _NKEYS
                readers = [None] * _NKEYS
                mem_loads, mem_stores, since_barrier, last_barrier = {}, {}, [], -1
            labels[it.name] = len(siws)
            labelled = True
            continue
        else:  # spill code: (Instr, MemInfo, line)
            ins, mem, line = it[0], it[1], it[2]
            op = ins.op
            reads, writes = _key_lists(ins)
        i += 1
        inf = infos.get(op.name)
        if inf is None:
            inf = _op_info(op)
        lat, pipe, kind = inf
        lat_of.append(lat)
        pipe_of.append(pipe)
        ins_of.append(ins)
        line_of.append(line)
        raw.append(None)
        if kind & 19:
            if kind & 16:  # a NOP op in the code: the report counts NOP slots itself
                has_nop = True
            if kind & 1:
                writes = [*writes, flag_key]
            if kind & 2:
                reads = [*reads, flag_key]
        pr = set()
        for v in reads:
            k = v.key
            w = last_w[k]
            if w >= 0:
                pr.add(w)
                if lat_of[w] > 1:  # (listed twice when two operands read k: max() ignores that)
                    rw = raw[w]
                    if rw is None:
                        raw[w] = [i]
                    else:
                        rw.append(i)
            lst = readers[k]
            if lst is None:
                readers[k] = [i]
            else:
                lst.append(i)
        # memory (before the writes: the address uses the values read now)
        if kind & 4:  # a blocking C op or a fence
            pr.update(since_barrier)
            if last_barrier >= 0:
                pr.add(last_barrier)
            last_barrier = i
            since_barrier = []
        elif mem is not None or kind & 8:
            if mem is None:
                mem = _ANY_WRITE
            if last_barrier >= 0:
                pr.add(last_barrier)
            since_barrier.append(i)
            rel = mem.rel
            if rel is not None:  # the offset register's value: identified by its last writer
                # (one int, key + 512 * (writer + 1), for a register key: no tuple to build and hash)
                if rel.__class__ is vreg:
                    rel = rel.key
                rel = rel + 512 * (last_w[rel] + 1) if rel.__class__ is int else (rel, -1)
            sc = mem.scroll
            # (only scan a table that holds this scroll, the '*' scroll, or when this access is '*')
            if mem_stores and (sc == "*" or sc in mem_stores or "*" in mem_stores):
                _mem_conflicts(mem_stores, mem, rel, pr)
            if mem.write:
                if mem_loads and (sc == "*" or sc in mem_loads or "*" in mem_loads):
                    _mem_conflicts(mem_loads, mem, rel, pr)
                tab = mem_stores
            else:
                tab = mem_loads
            # record the access: tab[scroll] = [{rel: {bucket: [(i, lo, hi)]}}, unknown [i], all [i],
            # {rel: [i]}, pending [(i, lo, hi, rel)]] -- the fourth lists each access with a known range
            # once per offset-register value (what an access relative to another value conflicts with,
            # whatever the bytes); accesses with a known range wait in the pending list until the table
            # is first asked about their scroll (:func:`_index_pending`): most tables never are
            # (loads of inputs and weights that nothing in the block stores to)
            ent = tab.get(sc)
            if ent is None:
                ent = tab[sc] = [{}, [], [], {}, []]
            ent[2].append(i)
            lo = mem.lo
            if lo is None:
                ent[1].append(i)
            else:
                ent[4].append((i, lo, mem.hi, rel))
        for v in writes:
            k = v.key
            rl = readers[k]
            if rl:
                pr.update(rl)
                readers[k] = None
            else:
                w = last_w[k]
                if w >= 0:
                    pr.add(w)
            last_w[k] = i
        pr.discard(i)
        preds_of.append(pr if pr else None)
        if op.branch:
            crit += _list_schedule(
                i + 1, preds_of, raw, pr, lat_of, pipe_of, ins_of, line_of, siws, lines, branches, ops
            )
            nblocks += 1
            labelled = False
            done_items += i + 1
            if on_block is not None and nblocks % 256 == 255:
                on_block(done_items / n_items)
            i = -1
            raw, preds_of, lat_of, pipe_of, ins_of, line_of = [], [], [], [], [], []
            last_w = [-1] * _NKEYS
            readers = [None] * _NKEYS
            mem_loads, mem_stores, since_barrier, last_barrier = {}, {}, [], -1
        else:
            labelled = False
    if i >= 0:
        crit += _list_schedule(
            i + 1, preds_of, raw, pr, lat_of, pipe_of, ins_of, line_of, siws, lines, branches, ops
        )
        nblocks += 1
    elif labelled:
        nblocks += 1
    return Scheduled(siws, lines, labels, crit, nblocks, branches=branches, ops=None if has_nop else ops)


_INFO: dict[str, tuple[int, int, int]] = {}  # op name -> (latency, pipe index, kind bits of _kind)


def _op_info(op) -> tuple[int, int, int]:
    inf = _INFO[op.name] = (op.latency, PIPE_INDEX[op.pipe], _kind(op))
    return inf


_KIND: dict[str, int] = {}  # op name -> bits: 1 writes flags, 2 reads flags, 4 barrier, 8 S-pipe memory,
# 16 a NOP op


def _kind(op) -> int:
    k = (1 if op.writes_flags else 0) | (2 if op.reads_flags else 0)
    if op.pipe == "C" and (op.blocking or op.name == "CFENCE"):
        k |= 4
    if op.pipe == "S" and not op.no_memory:
        k |= 8
    if op.is_nop:
        k |= 16
    _KIND[op.name] = k
    return k


class _AnyWrite:
    scroll = "*"
    write = True
    lo = None
    hi = None
    rel = None


_ANY_WRITE = _AnyWrite()


_BUCKET = 64


def _index_pending(ent: list) -> None:
    """Index a scroll's pending known-range accesses by offset-register value and 64-byte bucket."""
    by_rel, lists, pending = ent[0], ent[3], ent[4]
    for rec4 in pending:
        i, lo, hi, rel = rec4
        buckets = by_rel.get(rel)
        if buckets is None:
            buckets = by_rel[rel] = {}
            lists[rel] = [i]
        else:
            lists[rel].append(i)
        rec = (i, lo, hi)
        for bk in range(lo // _BUCKET, (hi - 1) // _BUCKET + 1):
            lst = buckets.get(bk)
            if lst is None:
                buckets[bk] = [rec]
            else:
                lst.append(rec)
    ent[4] = []


def _mem_conflicts(table: dict, mem, rel, out: set) -> None:
    """Add to ``out`` the earlier accesses in ``table`` that may alias ``mem``: same scroll and
    overlapping bytes; ranges relative to different offset-register values, unknown ranges and the '*'
    scroll always alias."""
    if mem.scroll == "*":
        for ent in table.values():
            out.update(ent[2])
        return
    for sc in (mem.scroll, "*"):
        ent = table.get(sc)
        if ent is None:
            continue
        if sc == "*" or mem.lo is None:
            out.update(ent[2])
            continue
        if ent[4]:
            _index_pending(ent)
        out.update(ent[1])
        lo0, hi0 = mem.lo, mem.hi
        for r, idx in ent[3].items():
            if r != rel:
                out.update(idx)
        buckets = ent[0].get(rel)
        if buckets is not None:
            for bk in range(lo0 // _BUCKET, (hi0 - 1) // _BUCKET + 1):
                lst = buckets.get(bk)
                if lst is not None:
                    for j, lo, hi in lst:
                        if lo0 < hi and lo < hi0:
                            out.add(j)


def _list_schedule(
    n: int,
    preds_of: list,
    raw: list,
    term_preds: set,
    lat_of: list,
    pipe_of: list,
    ins_of: list,
    line_of: list,
    out: list,
    out_lines: list,
    out_branches: list,
    out_ops: list,
) -> int:
    """List-schedule one block of ``n`` ops into SIWs ((D, S, C) tuples, NOPs in empty slots) appended
    to ``out`` (their source lines to ``out_lines``, where a branch went to ``out_branches``, the ops
    per SIW to ``out_ops``); returns the block's critical path.

    One backward pass over the predecessor sets builds the successor lists (each op's, in decreasing
    index order; the heaps below order by key, so the order is immaterial), the predecessor counts and
    the priorities, pushed from each op (final once every later op is done) into its predecessors:
    prio = max(latency, 1 + prio of any successor, latency + prio of a RAW successor).

    Ready ops wait in one heap per pipe keyed by ``(crit - priority) * n + index`` (decreasing
    priority, ties by program order, as one int instead of a (-priority, index) tuple: no sort of the
    block needed); ops whose predecessors are placed but whose latency has not elapsed wait in a
    second heap per pipe keyed by ``earliest SIW * span + that key``. Only edges of latency > 1 can
    delay an op beyond the next SIW, so only those (``raw``) update the latency-ready SIW."""
    succs: list[list[int]] = [[] for _ in range(n)]
    npred = [0] * n
    prio = lat_of[:]
    free: list[int] = []  # ops without predecessors (ready at the start)
    for i in range(n - 1, -1, -1):
        p = prio[i]
        rw = raw[i]  # (only ops of latency > 1 have a list)
        if rw is not None:
            lat = lat_of[i]
            for j in rw:
                v = lat + prio[j]
                if v > p:
                    p = v
            prio[i] = p
        ps = preds_of[i]
        if ps is not None:
            npred[i] = len(ps)
            p += 1
            for j in ps:
                succs[j].append(i)
                if prio[j] < p:
                    prio[j] = p
        else:
            free.append(i)
    nd, ns, nc = _NOPS
    term = ins_of[-1] if ins_of[-1].op.branch else None
    crit = max(prio)
    body_n = n
    if term is not None:
        body_n = n - 1
        npred[body_n] += n  # never reaches 0: the branch is placed after the loop
    top = crit * n
    span = top + n  # every ready key is below it
    earliest = [0] * n  # latency-ready SIW
    # ready-heap key of op i: top - prio[i] * n + i (decreasing priority, then index)
    a0: list[int] = []
    a1: list[int] = []
    a2: list[int] = []
    avail = (a0, a1, a2)
    for i in free:
        if i < body_n:
            avail[pipe_of[i]].append(top - prio[i] * n + i)
    heapify = heapq.heapify
    heapify(a0)
    heapify(a1)
    heapify(a2)
    q0: list[int] = []
    q1: list[int] = []
    q2: list[int] = []
    pending = (q0, q1, q2)
    heappush, heappop = heapq.heappush, heapq.heappop
    base = len(out)
    siws: list[tuple] = []
    add_siw = siws.append
    add_line = out_lines.append
    add_ops = out_ops.append
    left = body_n
    t = 0
    i0 = i1 = i2 = -1
    while left:
        if q0 or q1 or q2:
            lim = (t + 1) * span  # pending keys below this are latency-ready now (earliest <= t)
            while q0 and q0[0] < lim:
                heappush(a0, heappop(q0) % span)
            while q1 and q1[0] < lim:
                heappush(a1, heappop(q1) % span)
            while q2 and q2[0] < lim:
                heappush(a2, heappop(q2) % span)
        # one op per pipe: the ready op of highest priority, else the latency-earliest pending one
        if a0 or q0:
            i0 = heappop(a0) % n if a0 else heappop(q0) % span % n
            d = ins_of[i0]
            line = line_of[i0]
            k = 1
        else:
            i0 = -1
            d = nd
            line = _NO_LINE
            k = 0
        if a1 or q1:
            i1 = heappop(a1) % n if a1 else heappop(q1) % span % n
            s1 = ins_of[i1]
            ln = line_of[i1]
            if ln < line:
                line = ln
            k += 1
        else:
            i1 = -1
            s1 = ns
        if a2 or q2:
            i2 = heappop(a2) % n if a2 else heappop(q2) % span % n
            c2 = ins_of[i2]
            ln = line_of[i2]
            if ln < line:
                line = ln
            k += 1
        else:
            i2 = -1
            c2 = nc
        if not k:  # pragma: no cover - a DAG always has a ready op
            raise AssertionError("scheduler found no ready op")
        add_siw((d, s1, c2))
        add_line(line)
        add_ops(k)
        left -= k
        t1 = t + 1
        # release the successors of the SIW's ops (unrolled per slot)
        if i0 >= 0:
            rw = raw[i0]  # RAW successors of an op of latency > 1: not ready before t + latency
            if rw is not None:
                e = t + lat_of[i0]
                for j in rw:
                    if e > earliest[j]:
                        earliest[j] = e
            for j in succs[i0]:
                c = npred[j] - 1
                npred[j] = c
                if not c:
                    e = earliest[j]
                    if e <= t1:  # ready in the next SIW: straight to the ready heap (same order)
                        heappush(avail[pipe_of[j]], top - prio[j] * n + j)
                    else:
                        heappush(pending[pipe_of[j]], e * span + top - prio[j] * n + j)
        if i1 >= 0:
            rw = raw[i1]  # RAW successors of an op of latency > 1: not ready before t + latency
            if rw is not None:
                e = t + lat_of[i1]
                for j in rw:
                    if e > earliest[j]:
                        earliest[j] = e
            for j in succs[i1]:
                c = npred[j] - 1
                npred[j] = c
                if not c:
                    e = earliest[j]
                    if e <= t1:  # ready in the next SIW: straight to the ready heap (same order)
                        heappush(avail[pipe_of[j]], top - prio[j] * n + j)
                    else:
                        heappush(pending[pipe_of[j]], e * span + top - prio[j] * n + j)
        if i2 >= 0:
            rw = raw[i2]  # RAW successors of an op of latency > 1: not ready before t + latency
            if rw is not None:
                e = t + lat_of[i2]
                for j in rw:
                    if e > earliest[j]:
                        earliest[j] = e
            for j in succs[i2]:
                c = npred[j] - 1
                npred[j] = c
                if not c:
                    e = earliest[j]
                    if e <= t1:  # ready in the next SIW: straight to the ready heap (same order)
                        heappush(avail[pipe_of[j]], top - prio[j] * n + j)
                    else:
                        heappush(pending[pipe_of[j]], e * span + top - prio[j] * n + j)
        t = t1
    if term is not None:
        # the branch goes into the last SIW unless that holds an op it depends on (i0, i1, i2: the
        # last SIW's ops) or its D slot is taken
        pos = len(siws) - 1
        if i0 in term_preds or i1 in term_preds or i2 in term_preds:
            pos += 1
        if 0 <= pos < len(siws) and siws[pos][0] is nd:
            siws[pos] = (term, siws[pos][1], siws[pos][2])
            out_ops[base + pos] += 1
        else:
            pos = len(siws)
            siws.append((term, ns, nc))
            out_lines.append(line_of[-1])
            out_ops.append(1)
        out_branches.append(base + pos)
    out.extend(siws)
    return crit


_NO_LINE = 1 << 62  # above every source line


def _in_order(items: list) -> Scheduled:
    """``-O0``: one op per SIW in program order."""
    nd, ns, nc = _NOPS
    siws = _SIWs()
    lines: list[int] = []
    labels: dict[str, int] = {}
    branches: list[int] = []
    imms: dict = {}
    blocks = 0
    open_block = False
    nop_ops = False  # a NOP op in the code: the report counts NOP slots itself
    for it in items:
        c = it.__class__
        if c is Label:
            if open_block:
                blocks += 1
                open_block = False
            labels[it.name] = len(siws)
            continue
        if c is VI:
            ins, line = _physical(it, imms), it.line
        else:
            ins, line = it[0], it[2]
        p = PIPE_INDEX[ins.op.pipe]
        nop_ops = nop_ops or ins.op.is_nop
        if ins.op.branch:
            branches.append(len(siws))
        siws.append((ins, ns, nc) if p == 0 else (nd, ins, nc) if p == 1 else (nd, ns, ins))
        lines.append(line)
        open_block = not ins.op.branch
        if ins.op.branch:
            blocks += 1
    return Scheduled(
        siws, lines, labels, 0, blocks, branches=branches, ops=None if nop_ops else [1] * len(siws)
    )


class _SIWs(list):
    """The scheduler's SIWs: already (D, S, C) tuples with NOPs in empty slots (the blocks build them
    so; no second pass over every SIW to fill the slots)."""


_NOPS = (nop("D"), nop("S"), nop("C"))  # immutable: shared by every empty slot


def to_siws(siws: list) -> list:
    """SIW tuples with NOPs in empty slots: a copy of :func:`schedule`'s SIWs, which are built so; [D,
    S, C] lists with None for empty slots are converted."""
    if siws.__class__ is _SIWs:
        return list(siws)
    nd, ns, nc = _NOPS
    return [(d or nd, s or ns, c or nc) for d, s, c in siws]


def check_hazards(code: list) -> list[str]:
    """The assembler's intra-SIW rule on finished SIWs: no slot reads or writes what another writes."""
    errors = []
    for k, siw in enumerate(code):
        regs = [ins.regs() for ins in siw if not ins.is_nop]
        for a in range(len(regs)):
            ra, wa = regs[a]
            for b in range(a + 1, len(regs)):
                rb, wb = regs[b]
                if (wa & (rb | wb)) | (wb & ra):
                    errors.append(f"SIW {k}: hazard between slots")
    return errors


__all__ = ["schedule", "check_hazards", "to_siws", "Scheduled", "Instr"]
