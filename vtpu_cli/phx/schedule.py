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
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from ..program import Instr, nop
from .ir import Label

PIPE_INDEX = {"D": 0, "S": 1, "C": 2}
_PURE_S = {"SCOORD", "SINDEX", "SPART", "SDEDUP"}


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


def build_dag(block: list):
    """Edges of one block: succs[i] = [(j, latency)], preds count; priority = critical path."""
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
    edges: set = set()

    def edge(a: int, b: int, lat: int) -> None:
        if a == b:
            return
        key = (a, b)
        if key in edges:
            return
        edges.add(key)
        succs[a].append((b, lat))
        npred[b] += 1

    for i, (ins, mem, _line) in enumerate(block):
        op = ins.op
        reads, writes = ins.regs()
        if op.writes_flags:
            writes = writes | {("f", 0)}
        if op.reads_flags:
            reads = reads | {("f", 0)}
        for k in reads:
            w = last_w.get(k)
            if w is not None:
                edge(w, i, block[w][0].op.latency)
            readers.setdefault(k, []).append(i)
        # memory (before bumping versions: the address uses the values read now)
        is_barrier = op.pipe == "C" and (op.blocking or op.name == "CFENCE")
        if op.pipe == "S" and mem is None and op.name not in _PURE_S:
            mem = _ANY_WRITE
        if is_barrier:
            for j in since_barrier:
                edge(j, i, 1)
            if last_barrier >= 0:
                edge(last_barrier, i, 1)
            last_barrier = i
            since_barrier = []
        elif mem is not None:
            if last_barrier >= 0:
                edge(last_barrier, i, 1)
            since_barrier.append(i)
            rel = (mem.rel, version.get(mem.rel, 0)) if mem.rel is not None else None
            for j in _mem_conflicts(mem_stores, mem, rel):
                edge(j, i, 1)
            if mem.write:
                for j in _mem_conflicts(mem_loads, mem, rel):
                    edge(j, i, 1)
            _mem_record(mem_stores if mem.write else mem_loads, mem, rel, i)
        for k in writes:
            for r in readers.get(k, ()):
                edge(r, i, 1)
            w = last_w.get(k)
            if w is not None:
                edge(w, i, 1)
            last_w[k] = i
            readers[k] = []
            version[k] = version.get(k, 0) + 1
    prio = [0] * n
    for i in range(n - 1, -1, -1):
        best = block[i][0].op.latency
        for j, lat in succs[i]:
            v = lat + prio[j]
            if v > best:
                best = v
        prio[i] = best
    return succs, npred, prio


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
        for ins, _m, _l in block:
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
    for i in range(body_n):
        if npred[i] == 0:
            heapq.heappush(avail[PIPE_INDEX[block[i][0].op.pipe]], (-prio[i], i))
    siws: list[list] = []
    lines: list[int] = []
    done = 0
    t = 0
    while done < body_n:
        for p in range(3):
            pend = pending[p]
            while pend and pend[0][0] <= t:
                _, negp, i = heapq.heappop(pend)
                heapq.heappush(avail[p], (negp, i))
        slots = [None, None, None]
        chosen = []
        for p in range(3):
            if avail[p]:
                _, i = heapq.heappop(avail[p])
            elif pending[p]:
                _, _, i = heapq.heappop(pending[p])
            else:
                continue
            slots[p] = block[i][0]
            chosen.append(i)
        if not chosen:  # pragma: no cover - a DAG always has a ready op
            raise AssertionError("scheduler found no ready op")
        siws.append(slots)
        lines.append(min(block[i][2] for i in chosen))
        for i in chosen:
            placed[i] = t
            done += 1
        for i in chosen:
            for j, lat in succs[i]:
                if t + lat > earliest[j]:
                    earliest[j] = t + lat
                npred[j] -= 1
                if npred[j] == 0 and j < body_n:
                    e = max(earliest[j], t + 1)
                    heapq.heappush(pending[PIPE_INDEX[block[j][0].op.pipe]], (e, -prio[j], j))
        t += 1
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


def schedule(items: list, reorder: bool = True) -> Scheduled:
    siws: list = []
    lines: list[int] = []
    labels: dict[str, int] = {}
    crit = 0
    blocks = _split(items)
    for labs, block in blocks:
        for name in labs:
            labels[name] = len(siws)
        s, ln, c = schedule_block(block, reorder)
        siws.extend(s)
        lines.extend(ln)
        crit += c
    return Scheduled(siws, lines, labels, crit, len(blocks))


def to_siws(siws: list) -> list:
    """[D, S, C] lists -> SIW tuples with NOPs in empty slots."""
    out = []
    for d, s, c in siws:
        out.append((d or nop("D"), s or nop("S"), c or nop("C")))
    return out


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


__all__ = ["schedule", "schedule_block", "build_dag", "check_hazards", "to_siws", "Scheduled", "Instr"]


# ---------------------------------------------------------------------- pre-pass on virtual registers
class _VAdapter:
    """Lets build_dag see an IR instruction (virtual registers as keys)."""

    __slots__ = ("op", "_r", "_w", "vi")

    def __init__(self, vi):
        self.vi = vi
        self.op = vi.op
        r, w = vi.regs()
        self._r, self._w = set(r), set(w)

    def regs(self):
        return self._r, self._w


def prepass(code: list, vlimit: int = 22) -> list:  # noqa: C901
    """Reorder each block of the virtual-register IR by list scheduling, so independent tiles
    interleave before registers are assigned; a new vector value is not started while ``vlimit``
    vector values are live (keeps the allocator from spilling)."""
    out: list = []
    cur: list = []

    def flush():
        if cur:
            out.extend(_prepass_block(cur, vlimit))
            cur.clear()

    for it in code:
        if isinstance(it, Label):
            flush()
            out.append(it)
            continue
        cur.append(it)
        if it.op.branch:
            flush()
    flush()
    return out


def _prepass_block(block: list, vlimit: int) -> list:
    if len(block) < 3:
        return list(block)
    term = block[-1] if block[-1].op.branch else None
    items = [(_VAdapter(vi), vi.mem, vi.line) for vi in block]
    succs, npred, prio = build_dag(items)
    body_n = len(block) - (1 if term is not None else 0)
    uses: dict = {}
    for a, _m, _l in items[:body_n]:
        for v in a._r:
            uses[v] = uses.get(v, 0) + 1
    live = {"v": 0, "p": 0, "r": 0}
    limit = {"v": vlimit, "p": 6, "r": 10}

    def starts_new(a) -> bool:
        """Would this op push a register class over its pressure limit (new values minus last uses)?"""
        delta = {}
        for v in a._w:
            if v.cls in live and v not in a._r and uses.get(v, 0) > 0:
                delta[v.cls] = delta.get(v.cls, 0) + 1
        if not delta:
            return False
        for v in a._r:
            if v.cls in delta and uses.get(v, 0) == 1:
                delta[v.cls] -= 1
        return any(d > 0 and live[c] + d > limit[c] for c, d in delta.items())

    npred = list(npred)
    avail: list[list] = [[], [], []]
    for i in range(body_n):
        if npred[i] == 0:
            heapq.heappush(avail[PIPE_INDEX[block[i].op.pipe]], (-prio[i], i))
    order: list[int] = []
    while len(order) < body_n:
        chosen = []
        for p in range(3):
            h = avail[p]
            if not h:
                continue
            pick = None
            # prefer an op that does not start a new value of a class at its pressure limit
            skipped = []
            while h and len(skipped) < 6:
                cand = heapq.heappop(h)
                if not starts_new(items[cand[1]][0]):
                    pick = cand
                    break
                skipped.append(cand)
            for s in skipped:
                heapq.heappush(h, s)
            if pick is not None:
                chosen.append(pick[1])
        if not chosen:
            # everything ready starts a new value: take the best one anyway
            p = max(range(3), key=lambda q: -avail[q][0][0] if avail[q] else -1)
            chosen.append(heapq.heappop(avail[p])[1])
        for i in chosen:
            order.append(i)
            a = items[i][0]
            for v in a._r:
                if v.cls in live:
                    uses[v] -= 1
                    if uses[v] == 0:
                        live[v.cls] -= 1
            for v in a._w:
                if v.cls in live and v not in a._r and uses.get(v, 0) > 0:
                    live[v.cls] += 1
        for i in chosen:
            for j, _lat in succs[i]:
                npred[j] -= 1
                if npred[j] == 0 and j < body_n:
                    heapq.heappush(avail[PIPE_INDEX[block[j].op.pipe]], (-prio[j], j))
    res = [block[i] for i in order]
    if term is not None:
        res.append(term)
    return res
