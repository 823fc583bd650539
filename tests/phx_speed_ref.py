"""The phextcc back end as it was before the compile-speed work: register allocation
(``vtpu_cli/compiler/regalloc.py``) and list scheduling (``vtpu_cli/compiler/schedule.py``), kept
verbatim as the reference the optimised back end must match byte for byte (tests/test_phx_speed.py).

It consumes the same level-1 IR (``VI`` with ``regs()``) and produces the same item formats, so the
driver can run either; only the speed differs.
"""

# ruff: noqa
from __future__ import annotations

import heapq
from bisect import insort
from collections import deque
from dataclasses import dataclass, field

from vtpu_cli.binary.program import Imm, Instr, Mem, Reg, nop
from vtpu_cli.compiler.ir import VI, CompileError, Label, MemInfo, VMem, VReg
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
    """Linear scan per class. Returns (assignment vreg -> idx, spilled set).

    ``active`` is kept sorted by (end, id) with ``bisect``; expired intervals leave from the front
    (in end order, so freed registers queue up least-recently-freed first)."""
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
        active: list = []  # (end, id, vreg), sorted
        for v in vs:
            s = start[v]
            n_exp = 0
            for a in active:
                if a[0] < s:
                    free.append(assign[a[2]])
                    n_exp += 1
                else:
                    break
            if n_exp:
                del active[:n_exp]
            ev = end[v]
            if free:
                assign[v] = free.popleft()
                insort(active, (ev, v.id, v))
                continue
            # spill the interval ending last (never a nospill one)
            victim = None
            for k in range(len(active) - 1, -1, -1):
                if not active[k][2].nospill:
                    victim = k
                    break
            if victim is not None and active[victim][0] > ev:
                vv = active.pop(victim)[2]
                assign[v] = assign.pop(vv)
                spilled.add(vv)
                insort(active, (ev, v.id, v))
            elif not v.nospill:
                spilled.add(v)
            else:
                raise CompileError(f"too many live {cls} registers that cannot be spilled", vreg=v)
    for v in spilled:
        if v.cls not in ("r", "v"):
            raise CompileError(f"out of {v.cls} registers ({REG_COUNTS[v.cls]})", vreg=v)
    return assign, spilled


def allocate(code: list, allow_spill: bool = True) -> Allocated | None:
    """Allocate ``code``; with ``allow_spill=False`` returns None instead of spilling."""
    instrs, blocks, succs = _blocks(code)
    if not instrs:
        return Allocated([i for i in code if isinstance(i, Label)])
    start, end = _intervals(instrs, blocks, succs)
    try:
        assign, spilled = _scan(start, end, reserve=False)
        if spilled:
            if not allow_spill:
                return None
            assign, spilled = _scan(start, end, reserve=True)
    except CompileError as e:
        if e.vreg is not None and e.vreg in start:
            e.line = instrs[start[e.vreg]].line
        raise
    slots: dict[VReg, int] = {}
    nbytes = 0
    for v in sorted(spilled, key=lambda v: v.id):
        slots[v] = nbytes
        nbytes += 64 if v.cls == "v" else 8
    out: list = []
    spill_ops = 0
    preg: dict[VReg, Reg] = {v: Reg(v.cls, i) for v, i in assign.items()}
    pkey: dict[VReg, int] = {v: REG_KEY[v.cls] + i for v, i in assign.items()}
    mcache: dict = {}

    def conv_mem(a: VMem, m: dict):
        off = a.off
        off = m[off] if isinstance(off, VReg) else Imm(off)
        extra = a.extra
        if isinstance(extra, VReg):
            extra = m[extra]
        elif isinstance(extra, int):
            extra = Imm(extra)
        return Mem(m[a.base].idx, off, a.mode, extra, a.disp)

    append = out.append
    for it in code:
        if it.__class__ is Label:
            append(it)
            continue
        reads, writes = it.regs()
        if spilled and (any(v in spilled for v in reads) or any(v in spilled for v in writes)):
            out.extend(_rewrite_spilled(it, reads, writes, spilled, slots, preg, conv_mem))
            continue
        args = []
        for a in it.args:
            cls = a.__class__
            if cls is VReg:
                a = preg[a]
            elif cls is VMem:
                c = mcache.get(id(a))  # by identity: VMem's dataclass hash is slow, objects are shared
                if c is None:
                    c = mcache[id(a)] = conv_mem(a, preg)
                a = c
            args.append(a)
        mem = it.mem
        if mem is not None and mem.rel.__class__ is VReg:
            mem = MemInfo(mem.scroll, mem.write, mem.lo, mem.hi, pkey[mem.rel])
        rk = {pkey[v] for v in reads}
        wk = {pkey[v] for v in writes}
        append((Instr(it.op, it.mod, it.type, it.type2, tuple(args)), mem, it.line, (rk, wk)))
    if spilled:
        spill_ops = sum(
            1 for it in out if it.__class__ is tuple and it[1] is not None and it[1].scroll == SPILL_SCROLL
        )
    used: dict[str, set] = {}
    for v, i in assign.items():
        used.setdefault(v.cls, set()).add(i)
    if spilled:
        out = [_spill_setup(nbytes)] + out
    return Allocated(out, len(spilled), spill_ops, nbytes, {k: len(v) for k, v in used.items()})


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


# ---------------------------------------------------------------- scheduling
PIPE_INDEX = {"D": 0, "S": 1, "C": 2}


@dataclass
class Scheduled:
    siws: list  # list of [D, S, C] Instr lists (None = empty slot)
    lines: list[int]
    labels: dict[str, int]
    critical_path: int = 0
    blocks: int = 0
    stats: dict = field(default_factory=dict)


def _split(items: list):
    """Blocks of (Instr, MemInfo, line) with the labels that precede each block."""
    blocks = []
    cur: list = []
    labels: list[str] = []
    for it in items:
        if isinstance(it, Label):
            if cur:
                blocks.append((labels, cur))
                cur, labels = [], []
            labels.append(it.name)
            continue
        cur.append(it)
        if it[0].op.branch:
            blocks.append((labels, cur))
            cur, labels = [], []
    if cur or labels:
        blocks.append((labels, cur))
    return blocks


_FLAG = 256  # the flags register, beside the physical register keys (regalloc.REG_KEY: 0..255)
_KEY = {"r": 0, "v": 64, "p": 128, "m": 192}


def int_keys(ins) -> tuple[set, set]:
    """(reads, writes) of an allocated instruction as scheduler keys (an item without the
    allocator's precomputed keys: spill code, the spill-scroll setup)."""
    r, w = ins.regs()
    return {_KEY[c] + i for c, i in r}, {_KEY[c] + i for c, i in w}


def build_dag(block: list):
    """Edges of one block: succs[i] = [(j, latency)], preds count; priority = critical path.

    ``block`` items are (instr, MemInfo, line[, (reads, writes)]); the optional fourth element gives
    the register keys (the allocator supplies them, so they are not recomputed from operands)."""
    n = len(block)
    succs: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    npred = [0] * n
    last_w: dict = {}
    readers: dict = {}
    version: dict = {}
    mem_loads: dict[str, dict] = {}
    mem_stores: dict[str, dict] = {}
    since_barrier: list[int] = []
    last_barrier = -1
    lat_of = [it[0].op.latency for it in block]
    last_w_get = last_w.get
    readers_get = readers.get

    for i, it in enumerate(block):
        ins, mem = it[0], it[1]
        op = ins.op
        reads, writes = it[3] if len(it) > 3 else int_keys(ins)
        kind = _KIND.get(op.name)
        if kind is None:
            kind = _kind(op)
        if kind & 1:
            writes = [*writes, _FLAG]
        if kind & 2:
            reads = [*reads, _FLAG]
        preds: dict[int, int] = {}  # j -> latency of the first edge j -> i
        for k in reads:
            w = last_w_get(k)
            if w is not None and w not in preds:
                preds[w] = lat_of[w]
            lst = readers_get(k)
            if lst is None:
                readers[k] = [i]
            else:
                lst.append(i)
        # memory (before bumping versions: the address uses the values read now)
        if kind & 8 and mem is None:
            mem = _ANY_WRITE
        if kind & 4:  # a blocking C op or a fence
            for j in since_barrier:
                preds.setdefault(j, 1)
            if last_barrier >= 0:
                preds.setdefault(last_barrier, 1)
            last_barrier = i
            since_barrier = []
        elif mem is not None:
            if last_barrier >= 0:
                preds.setdefault(last_barrier, 1)
            since_barrier.append(i)
            rel = (mem.rel, version.get(mem.rel, 0)) if mem.rel is not None else None
            sc = mem.scroll
            # (only scan a table that holds this scroll, the '*' scroll, or when this access is '*')
            if mem_stores and (sc == "*" or sc in mem_stores or "*" in mem_stores):
                for j in _mem_conflicts(mem_stores, mem, rel):
                    preds.setdefault(j, 1)
            if mem.write and mem_loads and (sc == "*" or sc in mem_loads or "*" in mem_loads):
                for j in _mem_conflicts(mem_loads, mem, rel):
                    preds.setdefault(j, 1)
            _mem_record(mem_stores if mem.write else mem_loads, mem, rel, i)
        for k in writes:
            rl = readers_get(k)
            if rl:
                for r in rl:
                    if r not in preds:
                        preds[r] = 1
                readers[k] = []
            w = last_w_get(k)
            if w is not None and w not in preds:
                preds[w] = 1
            last_w[k] = i
            version[k] = version.get(k, 0) + 1
        preds.pop(i, None)
        if preds:
            npred[i] = len(preds)
            for j, lat in preds.items():
                succs[j].append((i, lat))
    prio = [0] * n
    for i in range(n - 1, -1, -1):
        best = lat_of[i]
        for j, lat in succs[i]:
            v = lat + prio[j]
            if v > best:
                best = v
        prio[i] = best
    return succs, npred, prio


_KIND: dict[str, int] = {}  # op name -> bits: 1 writes flags, 2 reads flags, 4 barrier, 8 S-pipe memory


def _kind(op) -> int:
    k = (1 if op.writes_flags else 0) | (2 if op.reads_flags else 0)
    if op.pipe == "C" and (op.blocking or op.name == "CFENCE"):
        k |= 4
    if op.pipe == "S" and not op.no_memory:
        k |= 8
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


def _mem_record(table: dict, mem, rel, i: int) -> None:
    """Index an access: table[scroll] = {rel: {bucket: [(i, lo, hi)]}, "unknown": [i], "all": [i]}."""
    ent = table.setdefault(mem.scroll, {"rels": {}, "unknown": [], "all": []})
    ent["all"].append(i)
    if mem.lo is None:
        ent["unknown"].append(i)
        return
    buckets = ent["rels"].setdefault(rel, {})
    for bk in range(mem.lo // _BUCKET, (mem.hi - 1) // _BUCKET + 1):
        buckets.setdefault(bk, []).append((i, mem.lo, mem.hi))


def _mem_conflicts(table: dict, mem, rel):
    """Earlier accesses in ``table`` that may alias ``mem``: same scroll and overlapping bytes; ranges
    relative to different offset-register values, unknown ranges and the '*' scroll always alias."""
    if mem.scroll == "*":
        for ent in table.values():
            yield from ent["all"]
        return
    for sc in (mem.scroll, "*"):
        ent = table.get(sc)
        if ent is None:
            continue
        if sc == "*" or mem.lo is None:
            yield from ent["all"]
            continue
        yield from ent["unknown"]
        for r, buckets in ent["rels"].items():
            if r != rel:
                for lst in buckets.values():
                    for j, _lo, _hi in lst:
                        yield j
                continue
            for bk in range(mem.lo // _BUCKET, (mem.hi - 1) // _BUCKET + 1):
                for j, lo, hi in buckets.get(bk, ()):
                    if mem.lo < hi and lo < mem.hi:
                        yield j


def schedule_block(block: list, reorder: bool = True):
    """SIWs ([D, S, C] slots) for one block; returns (siws, lines, critical path)."""
    if not block:
        return [], [], 0
    if not reorder:
        siws = []
        for it in block:
            ins = it[0]
            slots = [None, None, None]
            slots[PIPE_INDEX[ins.op.pipe]] = ins
            siws.append(slots)
        return siws, [b[2] for b in block], 0
    term = block[-1] if block[-1][0].op.branch else None
    succs, npred, prio = build_dag(block)
    crit = max(prio) if prio else 0
    body_n = len(block) - (1 if term is not None else 0)
    npred = list(npred)
    earliest = [0] * len(block)  # latency-ready SIW
    placed = [-1] * len(block)
    avail: list[list] = [[], [], []]
    pending: list[list] = [[], [], []]
    pipe_of = [PIPE_INDEX[it[0].op.pipe] for it in block]
    heappush, heappop = heapq.heappush, heapq.heappop
    for i in range(body_n):
        if npred[i] == 0:
            heappush(avail[pipe_of[i]], (-prio[i], i))
    siws: list[list] = []
    lines: list[int] = []
    done = 0
    t = 0
    while done < body_n:
        for p in range(3):
            pend = pending[p]
            while pend and pend[0][0] <= t:
                _, negp, i = heappop(pend)
                heappush(avail[p], (negp, i))
        slots = [None, None, None]
        chosen = []
        line = None
        for p in range(3):
            if avail[p]:
                i = heappop(avail[p])[1]
            elif pending[p]:
                i = heappop(pending[p])[2]
            else:
                continue
            it = block[i]
            slots[p] = it[0]
            chosen.append(i)
            if line is None or it[2] < line:
                line = it[2]
        if not chosen:  # pragma: no cover - a DAG always has a ready op
            raise AssertionError("scheduler found no ready op")
        if len(chosen) > 1 and _siw_hazard([block[i] for i in chosen]):  # pragma: no cover
            raise AssertionError("scheduler produced an intra-SIW hazard")
        siws.append(slots)
        lines.append(line)
        done += len(chosen)
        t1 = t + 1
        for i in chosen:
            placed[i] = t
            for j, lat in succs[i]:
                e = t + lat
                if e > earliest[j]:
                    earliest[j] = e
                npred[j] -= 1
                if npred[j] == 0 and j < body_n:
                    e = earliest[j]
                    if e <= t1:  # ready in the next SIW: straight to the ready heap (same order)
                        heappush(avail[pipe_of[j]], (-prio[j], j))
                    else:
                        heappush(pending[pipe_of[j]], (e, -prio[j], j))
        t = t1
    if term is not None:
        ti = len(block) - 1
        need = 0
        # the branch must not share an SIW with an op it depends on
        for i in range(body_n):
            for j, _lat in succs[i]:
                if j == ti:
                    need = max(need, placed[i] + 1)
        pos = max(need, len(siws) - 1)
        if 0 <= pos < len(siws) and siws[pos][0] is None:
            siws[pos][0] = term[0]
        else:
            siws.append([term[0], None, None])
            lines.append(term[2])
    return siws, lines, crit


def schedule(items: list, reorder: bool = True, on_block=None) -> Scheduled:
    """Schedule every block; ``on_block(fraction done)`` is called every 256 blocks (progress)."""
    siws: list = []
    lines: list[int] = []
    labels: dict[str, int] = {}
    crit = 0
    blocks = _split(items)
    for k, (labs, block) in enumerate(blocks):
        if on_block is not None and k % 256 == 255:
            on_block(k / len(blocks))
        for name in labs:
            labels[name] = len(siws)
        s, ln, c = schedule_block(block, reorder)
        siws.extend(s)
        lines.extend(ln)
        crit += c
    return Scheduled(siws, lines, labels, crit, len(blocks))


def to_siws(siws: list) -> list:
    """[D, S, C] lists -> SIW tuples with NOPs in empty slots."""
    nd, ns, nc = nop("D"), nop("S"), nop("C")  # immutable: shared by every empty slot
    return [(d or nd, s or ns, c or nc) for d, s, c in siws]


def _siw_hazard(items: list) -> bool:
    """The intra-SIW rule on scheduler items (a tripwire: the DAG already forbids it)."""
    rws = []
    for it in items:
        r, w = it[3] if len(it) > 3 else int_keys(it[0])
        rws.append((r if r.__class__ is set else set(r), w if w.__class__ is set else set(w)))
    for a in range(len(rws)):
        ra, wa = rws[a]
        for b in range(a + 1, len(rws)):
            rb, wb = rws[b]
            if (wa & (rb | wb)) or (wb & ra):
                return True
    return False


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


_SCHEDULE_ALL = ["schedule", "schedule_block", "build_dag", "check_hazards", "to_siws", "Scheduled", "Instr"]


# ----------------------------------------------------------------------------- .siw code section
# The encoder of vtpu_cli/binary/siwfile.py before the speed work (pools in a separate pass, one
# closure pair per slot), kept as the reference for the code section and the pools.
from vtpu_cli.binary.siwfile import CLS_IMMA, CLS_IMMB, SLOT
from vtpu_cli.isa.table import HOME_COORD, REG_CLASS_CODE, TYPES


def _fits_i32(v: int) -> bool:
    return -(1 << 31) <= v < (1 << 31)


def ref_pools(program) -> tuple[list[int], list[int]]:
    cs: set[int] = set()
    ks: set[int] = set()
    for siw in program.code:
        for ins in siw:
            for spec, arg in zip(ins.op.operands, ins.args, strict=False):
                if isinstance(arg, Imm):
                    if spec.kind == "coord":
                        if arg.value != HOME_COORD:
                            cs.add(arg.value)
                    elif not _fits_i32(arg.value):
                        ks.add(arg.value)
                elif isinstance(arg, Mem):
                    for sub in (arg.off, arg.extra):
                        if isinstance(sub, Imm) and not _fits_i32(sub.value):
                            ks.add(sub.value)
    cs.update(program.coord_names.values())
    cs.update(d.coord for d in program.data)
    cs.update(o.coord for o in program.outputs if o.kind == "scroll")
    cs.update(t.coord for t in program.tensors)
    return sorted(cs), sorted(ks)


def ref_code_section(program) -> bytes:
    coords_, consts_ = ref_pools(program)
    coord_index = {c: i for i, c in enumerate(coords_)}
    const_index = {k: i for i, k in enumerate(consts_)}

    def slot(ins) -> bytes:
        op = ins.op
        fields: list[int] = []
        imms: list[int] = []
        flags = 0
        disp = 0

        def put_imm(value: int, coord: bool = False) -> int:
            nonlocal flags
            s = len(imms)
            if coord and value != HOME_COORD:
                value = coord_index[value]
            elif not coord and not _fits_i32(value):
                value = const_index[value]
                flags |= 1 << s
            imms.append(value)
            return CLS_IMMA if s == 0 else CLS_IMMB

        def reg_byte(r: Reg) -> int:
            return REG_CLASS_CODE[r.cls] << 5 | r.idx

        for spec, arg in zip(op.operands, ins.args, strict=False):
            if arg is None:
                fields.extend([0] * (3 if spec.kind == "mem" else 1))
            elif isinstance(arg, Reg):
                fields.append(reg_byte(arg))
            elif isinstance(arg, Imm):
                fields.append(put_imm(arg.value, spec.kind == "coord") << 5)
            elif isinstance(arg, Mem):
                flags |= arg.mode << 2
                fields.append(REG_CLASS_CODE["p"] << 5 | arg.base)
                for sub in (arg.off, arg.extra):
                    if sub is None:
                        fields.append(0)
                    elif isinstance(sub, Reg):
                        fields.append(reg_byte(sub))
                    else:
                        fields.append(put_imm(sub.value) << 5)
                if arg.disp:  # svISA v2: flag bit 4, the displacement in the next free immediate
                    disp = arg.disp
        fields.extend([0] * (4 - len(fields)))
        if disp:
            flags |= 0x10
            imms.append(disp)
        imms.extend([0] * (2 - len(imms)))
        t = ins.type
        if op.name == "DMOV":
            t = (t or "i64") if isinstance(ins.args[1], Imm) else None
        tcode = (TYPES[t][0] if t else 0) | ((TYPES[ins.type2][0] if ins.type2 else 0) << 4)
        mod = op.mods.index(ins.mod) if ins.mod is not None else 0
        return SLOT.pack(op.code, tcode, mod, flags, *fields, *imms)

    return b"".join(slot(ins) for siw in program.code for ins in siw)
