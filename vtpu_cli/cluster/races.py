"""Data races between sentrons on different ranks (docs/cluster.md, "Data races across ranks").

In one process the C pipe checks every scroll access against the scroll's last writer and the reads
since (``Fleet.note_access``), in the lockstep order. Across ranks there is no common order and a
remote access may never reach this rank's copy of the scroll, so each rank *records* its sentrons'
accesses instead, and rank 0 runs the same check over all ranks' records at the end of the run.

A record is the first access of a kind (load or store) by a sentron to a scroll within one epoch of
that sentron's own clock, with the sentron's whole vector clock at that moment. Later accesses of the
same kind in the same epoch add nothing: their clocks only grow (acquires), so anything racing with
one of them races with the first, and what is ordered after the first is ordered after them (the
epoch decides that). An access ``a`` by sentron i happens before ``b`` exactly when
``clock_b[i] >= epoch_a``; if it does, ``sum(clock_a) < sum(clock_b)``, so ordering the records by
clock sum (then sentron, then program order) is a linear extension of happens-before. Replaying the
one-process check (last writer, reads since) along such an order finds a race exactly when some pair
of conflicting accesses is unordered -- no false positives for a conforming program.

The check only says *whether* a race happened: the report itself (which sentron, which SIW, which
message) is the single-process interpreter's, rerun on rank 0 from the memory the run started from.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from vtpu_cli.machine.memory import Memory

# (coord, sentron, store?, epoch) -> the sentron's vector clock at its first such access
AccessLog = dict[tuple[int, int, bool, int], tuple[int, ...]]


def record(log: AccessLog, coord: int, sid: int, write: bool, clock: list[int]) -> None:
    """Note an access (called for every load and store of a sentron of this rank; cheap when repeated)."""
    k = (coord, sid, write, clock[sid])
    if k not in log:
        log[k] = tuple(clock)


def entries(log: AccessLog) -> list[tuple[int, int, bool, int, tuple[int, ...]]]:
    """The records in program order (what a rank sends to rank 0)."""
    return [(c, sid, w, e, clk) for (c, sid, w, e), clk in log.items()]


def find_race(per_rank: list[list]) -> tuple[int, int, int] | None:
    """``(coord, sentron, other sentron)`` of a race among all ranks' records, else None."""
    by_coord: dict[int, list] = {}
    for rank, recs in enumerate(per_rank):
        for idx, (coord, sid, write, epoch, clk) in enumerate(recs):
            by_coord.setdefault(coord, []).append((sum(clk), sid, rank, idx, write, epoch, clk))
    for coord, recs in by_coord.items():
        if len({r[1] for r in recs}) < 2 or not any(r[4] for r in recs):
            continue  # one sentron only, or loads only: nothing can race
        recs.sort(key=lambda r: r[:4])
        writer, wepoch = -1, 0
        reads: dict[int, int] = {}
        for _, sid, _, _, write, epoch, clk in recs:
            if writer >= 0 and writer != sid and clk[writer] < wepoch:
                return coord, sid, writer
            if write:
                for r, ep in reads.items():
                    if r != sid and clk[r] < ep:
                        return coord, sid, r
                reads.clear()
                writer, wepoch = sid, epoch
            else:
                reads[sid] = epoch
    return None


class StartImage:
    """Rank 0's memory as the run started, for the golden rerun, kept copy-on-write: a scroll's bytes
    are copied only just before something first writes them in place (a store, a shipped update, a
    write-back from another rank), so read-only data (weights) is never copied. Writes that replace a
    scroll's buffer (allocation, freeing, a move to the cold tier) leave the kept one untouched."""

    def __init__(self, mem: Memory):
        self.scrolls: dict[int, tuple[Any, Any, dict]] = {}
        self.pending: dict[int, list[int]] = {}  # id of a buffer still shared with the run -> coords
        for c, sc in mem.table.items():
            buf = sc.buf
            if isinstance(buf, np.memmap):  # cold: the backing file is rewritten by the next flush
                buf = np.array(buf)
            else:
                self.pending.setdefault(id(buf), []).append(c)
            self.scrolls[c] = (sc, buf, dict(sc.__dict__))
        self.rest = (
            [list(w) for w in mem._cache],
            copy.copy(mem.stats),
            list(mem._order),
            list(mem._hot_lru),
            mem._cold_end,
        )
        self.copied = 0  # bytes copied so far

    def before_write(self, buf: Any) -> None:
        """Called before ``buf`` is written in place; cheap when it is not a kept buffer."""
        coords = self.pending.pop(id(buf), None)
        if coords:
            keep = np.array(buf, copy=True)
            self.copied += keep.nbytes
            for c in coords:
                sc, _, fields = self.scrolls[c]
                self.scrolls[c] = (sc, keep, fields)

    def restore(self, mem: Memory) -> None:
        """Put ``mem`` back as it was (the run's changes are lost)."""
        mem.table.clear()
        for c, (sc, buf, fields) in self.scrolls.items():
            sc.__dict__.clear()
            sc.__dict__.update(fields)
            sc.buf = buf
            mem.table[c] = sc
        self.pending.clear()
        cache, stats, order, hot, cold_end = self.rest
        mem._cache[:] = [list(w) for w in cache]
        mem.stats = copy.copy(stats)
        mem._order[:] = order
        mem._hot_lru[:] = hot
        mem._cold_end = cold_end
