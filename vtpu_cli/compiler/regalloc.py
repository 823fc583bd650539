"""Register allocation: virtual registers -> r0-r15 / v0-v31 / p0-p7 / m0-m3, with spilling.

Liveness is computed on the CFG of the linear IR (blocks split at labels and after branches), each
virtual register gets the hull of the positions where it is live, and a linear scan assigns registers
per class. Free registers are reused least-recently-freed first, which keeps false (WAR/WAW)
dependencies between unrelated values rare, so the post-allocation scheduler can still pack SIWs.

When a class runs out of registers the interval that ends last is spilled to the *spill scroll*
(a private scroll at library 999 of the sentron's home coordinate, allocated at program start): every
read of a spilled register becomes an SGATHER into a reserved temporary right before the use and every
write an SSCATTR right after. Reserved when spilling: p7 (the spill scroll), r13-r15, v29-v31.

Speed (this runs once per IR instruction; see tests/test_phx_speed.py for the bit-identity checks):
blocks, liveness and intervals are found in one pass; the interval, physical register and scheduler
key of a virtual register live on the VReg object during the allocation (attribute loads instead of
dict lookups); operand roles come from functions generated per op (``ir._rw_func``); Instr/Mem/Imm
are built without their frozen-dataclass ``__init__``; the per-instruction loops use no
comprehensions (each is a function call in Python 3.11).
"""

from __future__ import annotations

from bisect import insort
from collections import deque
from dataclasses import dataclass, field
from operator import attrgetter

from vtpu_cli.binary.program import Imm, Instr, Mem, Reg
from vtpu_cli.compiler.ir import _RW, VI, CompileError, Label, MemInfo, VMem, VReg, _imm, _mem, _rw_func
from vtpu_cli.isa.table import BY_NAME, REG_COUNTS

SPILL_SCROLL = "$spill"
# physical register -> the int the scheduler keys dependencies by (ints hash faster than ("r", 3))
REG_KEY = {"r": 0, "v": 64, "p": 128, "m": 192}
SPILL_P = 7
TEMPS = {"r": (13, 14, 15), "v": (29, 30, 31), "p": (), "m": ()}


@dataclass
class Allocated:
    """Physical code: Labels and (Instr, MemInfo | None, line) triples (labels still symbolic)."""

    items: list
    spills: int = 0  # spilled virtual registers
    spill_ops: int = 0  # inserted spill loads and stores
    spill_bytes: int = 0
    regs_used: dict = field(default_factory=dict)


def _liveness(code: list, vregs: list) -> int:
    """Basic blocks, liveness and live intervals in one pass over the IR (blocks split at labels and
    after branches). Returns the number of instructions; sets ``v.start``/``v.end`` (the first and
    last instruction index where the virtual register ``v`` is live) and appends each register to
    ``vregs`` in order of first appearance (the caller resets them: they must start at -1).

    A register's first occurrence in a block is found from ``v.end`` (the index of its previous
    occurrence: before the block's first instruction means not yet seen in this block), so each
    occurrence costs one attribute test instead of set lookups; the block's use set holds the
    registers whose first occurrence in it reads them, its def set those whose first occurrence writes
    them (the ones both read first and written later are in the use set, where the def set does not
    matter: in = use | (out - def))."""
    label_block: dict[str, int] = {}
    pending_labels: list[str] = []
    firsts: list[int] = []  # per block: first instruction index, last instruction, use and def sets
    lasts: list[int] = []
    last_ins: list = []
    use: list[set] = []
    defs: list[set] = []
    seen = vregs.append
    u: set = set()
    d: set = set()
    uadd = u.add
    dadd = d.add
    first = -1
    i = 0
    rwf = _RW
    label = Label
    prev = None
    for it in code:
        if it.__class__ is label:
            if first >= 0:
                firsts.append(first)
                lasts.append(i - 1)
                last_ins.append(prev)
                use.append(u)
                defs.append(d)
                first = -1
            pending_labels.append(it.name)
            continue
        if first < 0:
            if pending_labels:
                nb = len(firsts)
                for name in pending_labels:
                    label_block[name] = nb
                pending_labels = []
            first = i
            u = set()
            d = set()
            uadd = u.add
            dadd = d.add
        op = it.op
        rw = it._rw
        if rw is None:
            rw = it._rw = (rwf.get(op.name) or _rw_func(op))(it.args)
        r, w = rw
        for v in r:
            if v.end < first:  # first occurrence in this block (v.end is -1 before the first ever)
                if v.start < 0:
                    v.start = i
                    seen(v)
                uadd(v)
            v.end = i
        for v in w:
            if v.end < first:
                if v.start < 0:
                    v.start = i
                    seen(v)
                dadd(v)
            v.end = i
        i += 1
        if op.branch:
            firsts.append(first)
            lasts.append(i - 1)
            last_ins.append(it)
            use.append(u)
            defs.append(d)
            first = -1
        else:
            prev = it
    if first >= 0:
        firsts.append(first)
        lasts.append(i - 1)
        last_ins.append(prev)
        use.append(u)
        defs.append(d)
    nb = len(firsts)
    if nb == 1 and not last_ins[0].op.branch:
        # one block, no successor: live-in = use (registers read before any write start at 0)
        for v in use[0]:
            v.start = 0
        return i
    for name in pending_labels:
        label_block[name] = nb  # label at the very end: falls off the program
    succs: list[list[int]] = []
    for b in range(nb):
        last = last_ins[b]
        s = []
        if last.op.branch:
            target = next(a for a in last.args if isinstance(a, Label))
            tb = label_block.get(target.name)
            if tb is not None and tb < nb:
                s.append(tb)
            if last.op.name != "DJMP" and b + 1 < nb:
                s.append(b + 1)
        elif b + 1 < nb:
            s.append(b + 1)
        succs.append(s)
    # worklist of changes: live-in starts as the use set; what a block's live-in gains is passed to
    # its predecessors' live-out once (and what that adds to their live-in, beyond their defs, on to
    # theirs), so each register enters each set once instead of every set being rebuilt at every
    # visit. The sets only grow, and the least fixpoint does not depend on the visiting order.
    preds: list[list[int]] = [[] for _ in range(nb)]
    for b in range(nb):
        for x in succs[b]:
            preds[x].append(b)
    live_in = use  # (the use sets themselves: not needed apart from here)
    live_out = [set() for _ in range(nb)]
    new_in = [set(u) for u in use]  # what each block's live-in gained since it was last passed on
    work = [b for b in range(nb) if use[b] and preds[b]]  # popped from the end: the last block first
    queued = [False] * nb
    for b in work:
        queued[b] = True
    while work:
        b = work.pop()
        queued[b] = False
        gained = new_in[b]
        new_in[b] = set()
        for x in preds[b]:
            out = live_out[x]
            add = gained - out
            if add:
                out |= add
                add -= defs[x]
                add -= live_in[x]
                if add:
                    live_in[x] |= add
                    if preds[x]:
                        new_in[x] |= add
                        if not queued[x]:
                            queued[x] = True
                            work.append(x)
    for b in range(nb):
        first, last = firsts[b], lasts[b]
        for v in live_in[b]:  # (every live register was seen: live sets grow from use sets)
            if v.start > first:
                v.start = first
        for v in live_out[b]:
            if v.end < last:
                v.end = last
    return i


_ID_SPAN = 1 << 32  # interval keys: position * _ID_SPAN + register id (ids are per-compile counters)
_ID = attrgetter("id")
_REG_BITS = 6  # an active entry is (end key << _REG_BITS) | physical register (every class has < 64)


def _scan(vregs: list, reserve: bool) -> tuple[dict[str, int], set]:
    """Linear scan per class: sets each register's ``phys`` and scheduler ``key``. Returns (registers
    used per class, spilled set); a spilled register's ``phys`` is meaningless.

    Intervals are handled as int keys ``position * _ID_SPAN + id`` (ordered like the (position, id)
    pairs, compared without tuples): the classes' intervals are sorted by start key, and ``active``
    is kept sorted by end key with ``bisect``, each entry carrying its physical register in its low
    bits (unique end keys: the register never decides the order); expired intervals leave from the
    front (in end order, so freed registers queue up least-recently-freed first)."""
    used: dict[str, int] = {}
    spilled: set[VReg] = set()
    # the smallest power of two above every id keeps the (position, id) order; small keys are
    # one-digit Python ints (faster arithmetic and comparisons than the fixed 2**32 span)
    span = 1 << max(map(_ID, vregs)).bit_length() if vregs else _ID_SPAN
    bits = _REG_BITS
    mask = (1 << bits) - 1
    by_cls: dict[str, list[int]] = {}
    byid: dict[int, VReg] = {}
    for v in vregs:
        i = v.id
        byid[i] = v
        lst = by_cls.get(v.cls)
        if lst is None:
            by_cls[v.cls] = [v.start * span + i]
        else:
            lst.append(v.start * span + i)
    for cls, keys in by_cls.items():
        avail = [i for i in range(REG_COUNTS[cls])]
        if reserve:
            avail = [i for i in avail if i not in TEMPS[cls] and not (cls == "p" and i == SPILL_P)]
        regs = _PHYS[cls]
        base = REG_KEY[cls]
        free = deque(avail)
        pops = 0
        keys.sort()
        active: list[int] = []  # (end key << bits) | register, sorted
        for key in keys:
            i = key % span
            v = byid[i]
            lim = (key - i) << bits  # start * span, shifted: active entries below it have expired
            if active and active[0] < lim:
                n_exp = 0
                for a in active:
                    if a < lim:
                        free.append(a & mask)
                        n_exp += 1
                    else:
                        break
                del active[:n_exp]
            ek = (v.end * span + i) << bits
            if free:
                r = free.popleft()
                pops += 1
                v.phys = regs[r]
                v.key = base + r
                insort(active, ek | r)
                continue
            # spill the interval ending last (never a nospill one)
            victim = None
            for k in range(len(active) - 1, -1, -1):
                if not byid[(active[k] >> bits) % span].nospill:
                    victim = k
                    break
            if victim is not None and active[victim] > ek:
                vk = active.pop(victim)
                r = vk & mask
                spilled.add(byid[(vk >> bits) % span])
                v.phys = regs[r]
                v.key = base + r
                insort(active, ek | r)
            elif not v.nospill:
                spilled.add(v)
            else:
                raise CompileError(f"too many live {cls} registers that cannot be spilled", vreg=v)
        # every register handed out stays assigned (a spilled one's passes to its replacement), and
        # the free queue hands out each register once before any freed one: min(pops, registers)
        used[cls] = min(pops, len(avail))
    for v in spilled:
        if v.cls not in ("r", "v"):
            raise CompileError(f"out of {v.cls} registers ({REG_COUNTS[v.cls]})", vreg=v)
    return used, spilled


_PHYS = {cls: tuple(Reg(cls, i) for i in range(n)) for cls, n in REG_COUNTS.items()}


def allocate(code: list, allow_spill: bool = True) -> Allocated | None:
    """Allocate ``code``; with ``allow_spill=False`` returns None instead of spilling.

    Items out: Labels, the IR instructions themselves (``VI``: every virtual register's ``phys`` and
    scheduler ``key``, ``REG_KEY``, are set; the scheduler builds the physical ``Instr`` as it reads
    each one, so there is no rewrite pass) and, where registers spilled, (Instr, MemInfo, line)
    triples for the instructions touching them, their spill code and the spill-setup marker first."""
    vregs: list[VReg] = []
    try:
        return _allocate(code, allow_spill, vregs)
    finally:
        for v in vregs:  # the intervals live on the registers during the allocation only
            v.start = -1
            v.end = -1


def _allocate(code: list, allow_spill: bool, vregs: list) -> Allocated | None:
    if not _liveness(code, vregs):
        return Allocated([i for i in code if isinstance(i, Label)])
    try:
        used, spilled = _scan(vregs, reserve=False)
        if spilled:
            if not allow_spill:
                return None
            used, spilled = _scan(vregs, reserve=True)
    except CompileError as e:
        if e.vreg is not None and e.vreg.start >= 0:
            e.line = _instr_at(code, e.vreg.start).line
        raise
    slots: dict[VReg, int] = {}
    nbytes = 0
    for v in sorted(spilled, key=lambda v: v.id):
        slots[v] = nbytes
        nbytes += 64 if v.cls == "v" else 8
    if not spilled:
        # the scheduler builds the physical instructions from the IR and the registers' phys/key
        return Allocated(code, 0, 0, 0, {k: v for k, v in used.items() if v})
    out: list = []
    imms: dict = {}

    def conv_mem(a: VMem, m) -> Mem:
        off = a.off
        off = m[off] if off.__class__ is VReg else _imm(off, imms)
        extra = a.extra
        if extra.__class__ is VReg:
            extra = m[extra]
        elif isinstance(extra, int):
            extra = _imm(extra, imms)
        return _mem(m[a.base].idx, off, a.mode, extra, a.disp)

    append = out.append
    for it in code:
        if it.__class__ is Label:
            append(it)
            continue
        reads, writes = it._rw  # computed by _liveness
        if any(v in spilled for v in reads) or any(v in spilled for v in writes):
            out.extend(_rewrite_spilled(it, reads, writes, spilled, slots, conv_mem))
        else:
            append(it)
    spill_ops = sum(
        1 for it in out if it.__class__ is tuple and it[1] is not None and it[1].scroll == SPILL_SCROLL
    )
    out = [_spill_setup(nbytes)] + out
    return Allocated(out, len(spilled), spill_ops, nbytes, {k: v for k, v in used.items() if v})


def _instr_at(code: list, k: int) -> VI:
    """The ``k``-th instruction of ``code`` (labels not counted)."""
    return [it for it in code if it.__class__ is not Label][k]


def _rewrite_spilled(it, reads, writes, spilled, slots, conv_mem):
    """An instruction touching spilled registers: loads into reserved temporaries before it, stores
    after it."""
    temps_r = list(TEMPS["r"])
    temps_v = list(TEMPS["v"])
    tmap: dict[VReg, Reg] = {}
    pre, post = [], []
    for v in reads:
        if v in spilled and v not in tmap:
            t = (temps_r if v.cls == "r" else temps_v).pop(0)
            tmap[v] = Reg(v.cls, t)
    for v in writes:
        if v in spilled and v not in tmap:
            # written after every read of the op: the first temporary may be shared with a source
            tmap[v] = Reg(v.cls, TEMPS[v.cls][0])
    for v in dict.fromkeys(reads):
        if v in spilled:
            pre.append(_spill_access(False, v, tmap[v], slots[v], it.line))
    for v in dict.fromkeys(writes):
        if v in spilled:
            post.append(_spill_access(True, v, tmap[v], slots[v], it.line))
    m = _Both(tmap)
    args = []
    for a in it.args:
        if isinstance(a, VReg):
            a = m[a]
        elif isinstance(a, VMem):
            a = conv_mem(a, m)
        args.append(a)
    mem = it.mem
    if mem is not None and isinstance(mem.rel, VReg):
        r = m[mem.rel]
        mem = MemInfo(mem.scroll, mem.write, mem.lo, mem.hi, REG_KEY[r.cls] + r.idx)
    ins = Instr(it.op, it.mod, it.type, it.type2, tuple(args))
    return pre + [(ins, mem, it.line)] + post


class _Both:
    """A spill temporary where the instruction has one, else the register's assigned ``phys``."""

    __slots__ = ("a",)

    def __init__(self, a):
        self.a = a

    def __getitem__(self, k):
        r = self.a.get(k)
        return r if r is not None else k.phys


def _spill_access(store: bool, v: VReg, reg: Reg, slot: int, line: int):
    t = "i64" if v.cls == "r" else "i32"
    mem = Mem(SPILL_P, Imm(slot), 0, None)
    info = MemInfo(SPILL_SCROLL, store, slot, slot + (8 if v.cls == "r" else 64))
    if store:
        return (Instr(BY_NAME["SSCATTR"], None, t, None, (mem, reg)), info, line)
    return (Instr(BY_NAME["SGATHER"], None, t, None, (reg, mem)), info, line)


def _spill_setup(nbytes: int):
    """Marker replaced by the driver with the spill-scroll setup (needs the sentron count)."""
    return ("spill-setup", nbytes)
