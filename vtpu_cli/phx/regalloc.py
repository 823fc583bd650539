"""Register allocation: virtual registers -> r0-r15 / v0-v31 / p0-p7 / m0-m3, with spilling.

Liveness is computed on the CFG of the linear IR (blocks split at labels and after branches), each
virtual register gets the hull of the positions where it is live, and a linear scan assigns registers
per class. Free registers are reused least-recently-freed first, which keeps false (WAR/WAW)
dependencies between unrelated values rare, so the post-allocation scheduler can still pack SIWs.

When a class runs out of registers the interval that ends last is spilled to the *spill scroll*
(a private scroll at library 999 of the sentron's home coordinate, allocated at program start): every
read of a spilled register becomes an SGATHER into a reserved temporary right before the use and every
write an SSCATTR right after. Reserved when spilling: p7 (the spill scroll), r13-r15, v29-v31.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..isa import BY_NAME, REG_COUNTS
from ..program import Imm, Instr, Mem, Reg
from .ir import VI, CompileError, Label, MemInfo, VMem, VReg

SPILL_SCROLL = "$spill"
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


def _blocks(code: list):
    """Split into basic blocks: list of (instr indexes, successor block ids)."""
    label_block: dict[str, int] = {}
    cur: list[int] = []
    blocks: list[list[int]] = []
    pending_labels: list[str] = []
    instrs: list[VI] = []
    for it in code:
        if isinstance(it, Label):
            if cur:
                blocks.append(cur)
                cur = []
            pending_labels.append(it.name)
            continue
        if not cur:
            for name in pending_labels:
                label_block[name] = len(blocks)
            pending_labels = []
        cur.append(len(instrs))
        instrs.append(it)
        if it.op.branch:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    for name in pending_labels:
        label_block[name] = len(blocks)  # label at the very end: falls off the program
    succs: list[list[int]] = []
    for b, idxs in enumerate(blocks):
        last = instrs[idxs[-1]]
        s = []
        if last.op.branch:
            target = next(a for a in last.args if isinstance(a, Label))
            tb = label_block.get(target.name)
            if tb is not None and tb < len(blocks):
                s.append(tb)
            if last.op.name != "DJMP" and b + 1 < len(blocks):
                s.append(b + 1)
        elif b + 1 < len(blocks):
            s.append(b + 1)
        succs.append(s)
    return instrs, blocks, succs


def _intervals(instrs: list[VI], blocks, succs):
    nb = len(blocks)
    use = [set() for _ in range(nb)]
    defs = [set() for _ in range(nb)]
    start: dict[VReg, int] = {}
    end: dict[VReg, int] = {}
    for b, idxs in enumerate(blocks):
        u, d = use[b], defs[b]
        for i in idxs:
            r, w = instrs[i].regs()
            for v in r:
                if v not in d:
                    u.add(v)
                if v not in start:
                    start[v] = i
                end[v] = i
            for v in w:
                d.add(v)
                if v not in start:
                    start[v] = i
                end[v] = i
    live_in = [set() for _ in range(nb)]
    live_out = [set() for _ in range(nb)]
    changed = True
    while changed:
        changed = False
        for b in range(nb - 1, -1, -1):
            out = set()
            for s in succs[b]:
                out |= live_in[s]
            inn = use[b] | (out - defs[b])
            if out != live_out[b] or inn != live_in[b]:
                live_out[b], live_in[b] = out, inn
                changed = True
    for b, idxs in enumerate(blocks):
        first, last = idxs[0], idxs[-1]
        for v in live_in[b]:
            if start.get(v, first + 1) > first:
                start[v] = first
        for v in live_out[b]:
            if end.get(v, -1) < last:
                end[v] = last
    return start, end


def _scan(start, end, reserve: bool):
    """Linear scan per class. Returns (assignment vreg -> idx, spilled set)."""
    assign: dict[VReg, int] = {}
    spilled: set[VReg] = set()
    by_cls: dict[str, list[VReg]] = {}
    for v in start:
        by_cls.setdefault(v.cls, []).append(v)
    for cls, vs in by_cls.items():
        avail = [i for i in range(REG_COUNTS[cls])]
        if reserve:
            avail = [i for i in avail if i not in TEMPS[cls] and not (cls == "p" and i == SPILL_P)]
        free = deque(avail)
        vs.sort(key=lambda v: (start[v], v.id))
        active: list[VReg] = []  # sorted by end
        for v in vs:
            s = start[v]
            keep = []
            for a in active:
                if end[a] < s:
                    free.append(assign[a])
                else:
                    keep.append(a)
            active = keep
            if free:
                assign[v] = free.popleft()
                active.append(v)
                active.sort(key=lambda a: end[a])
                continue
            # spill the interval ending last (never a nospill one)
            cands = [a for a in active if not a.nospill]
            victim = max(cands, key=lambda a: end[a]) if cands else None
            if victim is not None and end[victim] > end[v]:
                assign[v] = assign.pop(victim)
                spilled.add(victim)
                active.remove(victim)
                active.append(v)
                active.sort(key=lambda a: end[a])
            elif not v.nospill:
                spilled.add(v)
            else:
                raise CompileError(f"too many live {cls} registers that cannot be spilled")
    for v in spilled:
        if v.cls not in ("r", "v"):
            raise CompileError(f"out of {v.cls} registers ({REG_COUNTS[v.cls]}); split the computation")
    return assign, spilled


def allocate(code: list) -> Allocated:
    instrs, blocks, succs = _blocks(code)
    if not instrs:
        return Allocated([i for i in code if isinstance(i, Label)])
    start, end = _intervals(instrs, blocks, succs)
    assign, spilled = _scan(start, end, reserve=False)
    if spilled:
        assign, spilled = _scan(start, end, reserve=True)
    slots: dict[VReg, int] = {}
    nbytes = 0
    for v in sorted(spilled, key=lambda v: v.id):
        slots[v] = nbytes
        nbytes += 64 if v.cls == "v" else 8
    out: list = []
    spill_ops = 0
    used: dict[str, set] = {}

    def phys(v: VReg) -> Reg:
        used.setdefault(v.cls, set()).add(assign[v])
        return Reg(v.cls, assign[v])

    for it in code:
        if isinstance(it, Label):
            out.append(it)
            continue
        temps_r = list(TEMPS["r"])
        temps_v = list(TEMPS["v"])
        tmap: dict[VReg, Reg] = {}
        pre, post = [], []
        reads, writes = it.regs()
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
        spill_ops += len(pre) + len(post)

        def conv(a, tmap=tmap):
            if isinstance(a, VReg):
                return tmap[a] if a in tmap else phys(a)
            if isinstance(a, VMem):
                off = conv(a.off) if isinstance(a.off, VReg) else Imm(a.off)
                extra = a.extra
                if isinstance(extra, VReg):
                    extra = conv(extra)
                elif isinstance(extra, int):
                    extra = Imm(extra)
                return Mem(conv(a.base).idx, off, a.mode, extra)
            return a

        args = tuple(conv(a) for a in it.args)
        mem = it.mem
        if mem is not None and isinstance(mem.rel, VReg):
            r = conv(mem.rel)
            mem = MemInfo(mem.scroll, mem.write, mem.lo, mem.hi, (r.cls, r.idx))
        out.extend(pre)
        out.append((Instr(it.op, it.mod, it.type, it.type2, args), mem, it.line))
        out.extend(post)
    if spilled:
        out = [_spill_setup(nbytes)] + out
    return Allocated(out, len(spilled), spill_ops, nbytes, {k: len(v) for k, v in used.items()})


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
