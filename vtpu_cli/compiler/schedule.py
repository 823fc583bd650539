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

from vtpu_cli.binary.program import Instr, nop
from vtpu_cli.compiler.ir import Label

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


__all__ = ["schedule", "schedule_block", "build_dag", "check_hazards", "to_siws", "Scheduled", "Instr"]
