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

from vtpu_cli.binary.program import Imm, Instr, Mem, Reg
from vtpu_cli.compiler.ir import _RW, VI, CompileError, Label, MemInfo, VMem, VReg, _meminfo, _rw_func
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


def _liveness(code: list, vregs: list):
    """Basic blocks, liveness and live intervals in one pass over the IR (blocks split at labels and
    after branches). Returns the instructions; sets ``v.start``/``v.end`` (the first and last
    instruction index where the virtual register ``v`` is live) and appends each register to
    ``vregs`` in order of first appearance (the caller resets them: they must start at -1)."""
    label_block: dict[str, int] = {}
    pending_labels: list[str] = []
    instrs: list[VI] = []
    firsts: list[int] = []  # per block: first and last instruction index, use and def sets
    lasts: list[int] = []
    use: list[set] = []
    defs: list[set] = []
    seen = vregs.append
    u: set = set()
    d: set = set()
    first = -1
    i = 0
    add = instrs.append
    rwf = _RW
    for it in code:
        if it.__class__ is Label:
            if first >= 0:
                firsts.append(first)
                lasts.append(i - 1)
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
        rw = it._rw
        if rw is None:
            op = it.op
            rw = it._rw = (rwf.get(op.name) or _rw_func(op))(it.args)
        r, w = rw
        for v in r:
            if v not in d:
                u.add(v)
            if v.start < 0:
                v.start = i
                seen(v)
            v.end = i
        for v in w:
            d.add(v)
            if v.start < 0:
                v.start = i
                seen(v)
            v.end = i
        add(it)
        i += 1
        if it.op.branch:
            firsts.append(first)
            lasts.append(i - 1)
            use.append(u)
            defs.append(d)
            first = -1
    if first >= 0:
        firsts.append(first)
        lasts.append(i - 1)
        use.append(u)
        defs.append(d)
    nb = len(firsts)
    for name in pending_labels:
        label_block[name] = nb  # label at the very end: falls off the program
    succs: list[list[int]] = []
    for b in range(nb):
        last = instrs[lasts[b]]
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
    live_in = [set() for _ in range(nb)]
    live_out = [set() for _ in range(nb)]
    changed = True
    while changed:
        changed = False
        for b in range(nb - 1, -1, -1):
            sb = succs[b]
            if not sb:
                out = set()
            elif len(sb) == 1:
                out = live_in[sb[0]]
            else:
                out = live_in[sb[0]] | live_in[sb[1]]
                for x in sb[2:]:  # pragma: no cover - a block has at most two successors
                    out |= live_in[x]
            inn = use[b] | (out - defs[b]) if out else use[b]
            if out != live_out[b] or inn != live_in[b]:
                live_out[b], live_in[b] = out, inn
                changed = True
    for b in range(nb):
        first, last = firsts[b], lasts[b]
        for v in live_in[b]:  # (every live register was seen: live sets grow from use sets)
            if v.start > first:
                v.start = first
        for v in live_out[b]:
            if v.end < last:
                v.end = last
    return instrs


_ID_SPAN = 1 << 32  # interval keys: position * _ID_SPAN + register id (ids are per-compile counters)


def _scan(vregs: list, reserve: bool):
    """Linear scan per class. Returns ({class: {vreg: idx}}, spilled set).

    Intervals are handled as int keys ``position * _ID_SPAN + id`` (ordered like the (position, id)
    pairs, compared without tuples): the classes' intervals are sorted by start key, and ``active``
    is kept sorted by end key with ``bisect``; expired intervals leave from the front (in end order,
    so freed registers queue up least-recently-freed first)."""
    per_cls: dict[str, dict[VReg, int]] = {}
    spilled: set[VReg] = set()
    span = _ID_SPAN
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
        free = deque(avail)
        assign = per_cls[cls] = {}
        keys.sort()
        active: list[int] = []  # end keys, sorted
        reg_of: dict[int, int] = {}  # end key -> physical register
        for key in keys:
            i = key % span
            v = byid[i]
            lim = key - i  # start * span: active end keys below it have expired
            if active and active[0] < lim:
                n_exp = 0
                for a in active:
                    if a < lim:
                        free.append(reg_of.pop(a))
                        n_exp += 1
                    else:
                        break
                del active[:n_exp]
            ek = v.end * span + i
            if free:
                r = assign[v] = reg_of[ek] = free.popleft()
                insort(active, ek)
                continue
            # spill the interval ending last (never a nospill one)
            victim = None
            for k in range(len(active) - 1, -1, -1):
                if not byid[active[k] % span].nospill:
                    victim = k
                    break
            if victim is not None and active[victim] > ek:
                vk = active.pop(victim)
                vv = byid[vk % span]
                r = reg_of.pop(vk)
                del assign[vv]
                assign[v] = reg_of[ek] = r
                spilled.add(vv)
                insort(active, ek)
            elif not v.nospill:
                spilled.add(v)
            else:
                raise CompileError(f"too many live {cls} registers that cannot be spilled", vreg=v)
    for v in spilled:
        if v.cls not in ("r", "v"):
            raise CompileError(f"out of {v.cls} registers ({REG_COUNTS[v.cls]})", vreg=v)
    return per_cls, spilled


_new = object.__new__


def _instr(op, mod, type, type2, args) -> Instr:
    """``Instr(op, mod, type, type2, args)`` without the frozen dataclass ``__init__`` (which sets each
    field through ``object.__setattr__``: 0.8 us, the largest per-instruction cost of the rewrite);
    the instance is identical (tests/test_phx_speed.py checks equality and hash)."""
    o = _new(Instr)
    d = o.__dict__
    d["op"] = op
    d["mod"] = mod
    d["type"] = type
    d["type2"] = type2
    d["args"] = args
    return o


def _mem(base: int, off, mode: int, extra) -> Mem:
    """``Mem(base, off, mode, extra)``, built like :func:`_instr`."""
    o = _new(Mem)
    d = o.__dict__
    d["base"] = base
    d["off"] = off
    d["mode"] = mode
    d["extra"] = extra
    return o


def _imm(value: int, cache: dict) -> Imm:
    """A shared ``Imm(value)`` (immutable; built like :func:`_instr`)."""
    o = cache.get(value)
    if o is None:
        o = cache[value] = _new(Imm)
        o.__dict__["value"] = value
    return o


def allocate(code: list, allow_spill: bool = True) -> Allocated | None:
    """Allocate ``code``; with ``allow_spill=False`` returns None instead of spilling.

    Items out: Labels and (Instr, MemInfo | None, line, read keys, written keys) with the scheduler's
    int register keys (``REG_KEY``); spill code and its setup are (Instr, MemInfo, line) triples."""
    vregs: list[VReg] = []
    try:
        return _allocate(code, allow_spill, vregs)
    finally:
        for v in vregs:  # the intervals live on the registers during the allocation only
            v.start = -1


def _allocate(code: list, allow_spill: bool, vregs: list) -> Allocated | None:
    instrs = _liveness(code, vregs)
    if not instrs:
        return Allocated([i for i in code if isinstance(i, Label)])
    try:
        assign, spilled = _scan(vregs, reserve=False)
        if spilled:
            if not allow_spill:
                return None
            assign, spilled = _scan(vregs, reserve=True)
    except CompileError as e:
        if e.vreg is not None and e.vreg.start >= 0:
            e.line = instrs[e.vreg.start].line
        raise
    slots: dict[VReg, int] = {}
    nbytes = 0
    for v in sorted(spilled, key=lambda v: v.id):
        slots[v] = nbytes
        nbytes += 64 if v.cls == "v" else 8
    out: list = []
    spill_ops = 0
    preg: dict[VReg, Reg] = {}  # (the spill rewrite's map; the other instructions read v.phys)
    used: dict[str, int] = {}
    for cls, asg in assign.items():
        regs = [Reg(cls, i) for i in range(REG_COUNTS[cls])]
        base = REG_KEY[cls]
        for v, i in asg.items():
            v.phys = regs[i]
            v.key = base + i
        if spilled:
            preg.update({v: regs[i] for v, i in asg.items()})
        used[cls] = len(set(asg.values()))
    imms: dict = {}

    def conv_mem(a: VMem, m) -> Mem:
        off = a.off
        off = m[off] if off.__class__ is VReg else _imm(off, imms)
        extra = a.extra
        if extra.__class__ is VReg:
            extra = m[extra]
        elif isinstance(extra, int):
            extra = _imm(extra, imms)
        return _mem(m[a.base].idx, off, a.mode, extra)

    append = out.append
    new = _new
    vreg, vmem, label, meminfo = VReg, VMem, Label, _meminfo
    for it in code:
        if it.__class__ is label:
            append(it)
            continue
        reads, writes = it._rw  # computed by _liveness
        if spilled and (any(v in spilled for v in reads) or any(v in spilled for v in writes)):
            out.extend(_rewrite_spilled(it, reads, writes, spilled, slots, preg, conv_mem))
            continue
        # (plain loops: a comprehension is a function call per instruction in Python 3.11)
        args = []
        for a in it.args:
            c = a.__class__
            if c is vreg:
                args.append(a.phys)
            elif c is vmem:  # conv(a) inlined
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
                md = m.__dict__
                md["base"] = a.base.phys.idx
                md["off"] = off
                md["mode"] = a.mode
                md["extra"] = extra
                args.append(m)
            else:
                args.append(a)
        rk = []
        for v in reads:
            rk.append(v.key)
        wk = []
        for v in writes:
            wk.append(v.key)
        mem = it.mem
        if mem is not None and mem.rel.__class__ is vreg:
            mem = meminfo(mem.scroll, mem.write, mem.lo, mem.hi, mem.rel.key)
        ins = new(Instr)  # _instr() inlined: no call per instruction
        d = ins.__dict__
        d["op"] = it.op
        d["mod"] = it.mod
        d["type"] = it.type
        d["type2"] = it.type2
        d["args"] = tuple(args)
        append((ins, mem, it.line, rk, wk))
    if spilled:
        spill_ops = sum(
            1 for it in out if it.__class__ is tuple and it[1] is not None and it[1].scroll == SPILL_SCROLL
        )
    if spilled:
        out = [_spill_setup(nbytes)] + out
    return Allocated(out, len(spilled), spill_ops, nbytes, {k: v for k, v in used.items() if v})


def _rewrite_spilled(it, reads, writes, spilled, slots, preg, conv_mem):
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
    m = _Both(tmap, preg)
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
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __getitem__(self, k):
        r = self.a.get(k)
        return r if r is not None else self.b[k]


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
