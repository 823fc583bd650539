"""The substrate router: every scroll lives on one home rank; other ranks reach it through that rank.

**Home-rank rule.** A coordinate's *home sentron* is its position in the sequence of sentron home
coordinates, modulo the sentron count: read the nine parts (each 1..999) as a base-999 number with the
scroll part least significant, ``index = sum((part_i - 1) * 999**(8 - i))``, and take ``index mod N``.
Sentron s's own home coordinate (``1.1.1/1.1.1/1.1.(s+1)`` for s < 999) is therefore homed with s,
and so is anything ``CROUTE`` would deliver there: the coordinate is the route. The scroll's *home rank*
is the rank holding its home sentron (block placement).

**Replicas.** Every rank loaded the program's data and the ``--mem`` inputs. Those scrolls stay on every
rank as read-only *replicas* until something first writes (or frees) one: the first write goes through
the home rank, which drops every other rank's replica, waiting for each to acknowledge, before the write
proceeds. Weights and other read-only inputs therefore cost no traffic at all.

**Access.** Otherwise a rank keeps only the scrolls it is home to (a distributed PPT: each rank
translates what it owns). An S-pipe access to a scroll homed elsewhere asks the home rank (MPI point-to-point relay,
served as soon as it arrives): the first access fetches the whole scroll into a per-rank cache, with
its size, type and race-detection metadata, so bounds checks and fault messages are the local ones;
a store writes the cached copy, which goes back to the home rank (acknowledged) before anything next
leaves the rank (a *release*: a message or a collective arrival) and before the cache is dropped. The cache is dropped whenever a sentron of the rank *acquires*
(completes a ``CRECV``, ``CBAR``, ``CREDUCE`` or ``CCAST``): under the memory model a conforming
program cannot legally observe another sentron's write without such an acquire in between, so reads
in between may use the cache. ``SALLOC``, ``SFREE``, ``SPREFCH`` and ``SFLUSH`` of a remote scroll are
performed by its home rank.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vtpu_cli.core import coords
from vtpu_cli.fleet.mpi import MpiTransport
from vtpu_cli.machine.memory import MemFault, Memory, Scroll

ACQUIRES = frozenset({"CRECV", "CBAR", "CREDUCE", "CCAST"})
METHODS = ("translate", "alloc", "free", "prefetch", "flush")


def home_sentron(coord: int, n: int) -> int:
    """The sentron a packed coordinate is homed with (see the module docstring)."""
    index = 0
    for part in coords.unpack(coord).parts:
        index = index * 999 + (part - 1)
    return index % n


class Router:
    """Installs itself on a rank's :class:`Memory` (the methods the S-pipe semantics call) and serves
    the other ranks' requests for the scrolls homed here."""

    def __init__(self, mem: Memory, tr: MpiTransport, n: int):
        self.mem, self.tr, self.n = mem, tr, n
        self.orig = {name: getattr(mem, name) for name in METHODS}
        self.cache: dict[int, Scroll] = {}
        self.written: dict[int, None] = {}  # cached remote scrolls stored to in the current SIW
        self.bytes_in = 0
        self.bytes_out = 0
        self.remote_accesses = 0
        self.before_write: Any = None  # called with a buffer about to be written in place (races.StartImage)
        self.failed: MemFault | None = None  # a write-back the home refused, raised at the next SIW's end
        self.replicas = {c for c in mem.table if not self.is_local(c)}  # foreign scrolls held read-only
        self.shared = {c for c in mem.table if self.is_local(c)}  # homed here, replicated elsewhere
        for name in METHODS:
            setattr(mem, name, getattr(self, name))
        tr.on_request = self.serve

    def uninstall(self) -> None:
        for name in METHODS:
            self.mem.__dict__.pop(name, None)

    def home_rank(self, coord: int) -> int:
        return self.tr.owner[home_sentron(coord, self.n)]

    def is_local(self, coord: int) -> bool:
        return self.home_rank(coord) == self.tr.rank

    def drop_foreign(self) -> None:
        """Forget the copies of scrolls homed elsewhere that are not replicas (rank 0 holds some after a
        checkpoint's gather)."""
        free = self.orig["free"]
        for coord in [c for c in self.mem.table if not self.is_local(c) and c not in self.replicas]:
            free(coord)

    def _drop_replica(self, coord: int) -> None:
        if coord in self.replicas:
            self.replicas.discard(coord)
            if coord in self.mem.table:
                self.orig["free"](coord)

    def _claim(self, coord: int) -> None:
        """Before the first write to a replica: the home drops every other copy, then ours becomes the
        cached copy of a remote scroll."""
        sc = self.mem.table[coord]
        self._ask(coord, "claim", coord)
        self.replicas.discard(coord)
        if self.mem.table.get(coord) is sc:  # a racing write elsewhere may have had the home drop it already
            self.orig["free"](coord)
        self.cache[coord] = sc  # the semantics hold this object: the write lands here and is put home

    def _invalidate(self, coord: int, except_rank: int) -> None:
        """Home rank: every other rank drops its replica of ``coord``, and says so, before we go on."""
        self.shared.discard(coord)
        for r in range(self.tr.size):
            if r not in (self.tr.rank, except_rank):
                self.tr.request(r, ("drop", coord))

    def home_entries(self) -> list:
        """Every scroll homed here, as memory-update entries (for rank 0's final image)."""
        out = []
        for coord, sc in self.mem.table.items():
            if self.is_local(coord):
                meta = (sc.dtype, tuple(sc.shape), sc.align, sc.owner, sc.writer, sc.write_epoch)
                out.append((coord, meta, sc.buf.tobytes()))
        return out

    # ------------------------------------------------------------------ the Memory methods
    def _ask(self, coord: int, *request: Any) -> Any:
        self.remote_accesses += 1
        answer = self.tr.request(self.home_rank(coord), request)
        if isinstance(answer, str):
            raise MemFault(answer)
        return answer

    def translate(self, coord: int) -> Scroll:
        if self.is_local(coord) or coord in self.replicas:
            return self.orig["translate"](coord)
        sc = self.cache.get(coord)
        if sc is None:
            meta, raw = self._ask(coord, "get", coord)
            dtype, shape, align, owner, writer, epoch = meta
            sc = Scroll(coord, np.frombuffer(raw, np.uint8).copy(), dtype, tuple(shape), align, owner)
            sc.writer, sc.write_epoch = writer, epoch
            self.cache[coord] = sc
            self.bytes_in += len(raw)
        return sc

    def note_write(self, coord: int) -> None:
        if coord in self.replicas:
            self._claim(coord)
        elif coord in self.shared:
            self._invalidate(coord, except_rank=self.tr.rank)
        if not self.is_local(coord):
            self.written[coord] = None

    def after_step(self, acquired: bool) -> None:
        """End of an SIW: after an acquire, write back and drop the cache; report a failed write-back."""
        if acquired:
            self.write_back()
            self.cache.clear()
        if self.failed is not None:
            failed, self.failed = self.failed, None
            raise failed

    def write_back(self) -> None:
        """Send the remote scrolls stored to since the last write-back home, each acknowledged: called
        before anything leaves this rank (a release), so whoever acquires from it finds them there."""
        while self.written:  # taken off first: waiting for the home polls, which may release again
            coord = next(iter(self.written))
            del self.written[coord]
            sc = self.cache.get(coord)
            if sc is None:
                continue
            raw = sc.buf.tobytes()
            try:
                self._ask(coord, "put", coord, raw, sc.writer, sc.write_epoch)
            except MemFault as e:  # a racing SFREE/SALLOC at the home: the writer's next SIW faults
                self.failed = self.failed or e
            self.bytes_out += len(raw)

    def alloc(self, coord: int, size: int, align: int, owner: int) -> Scroll:
        if self.is_local(coord):
            return self.orig["alloc"](coord, size, align, owner)
        self.cache.pop(coord, None)
        self._ask(coord, "alloc", coord, size, align, owner)
        return self.translate(coord)

    def free(self, coord: int) -> None:
        if coord in self.replicas or coord in self.shared:
            self.note_write(coord)  # no rank may keep a copy of what is freed
        self.written.pop(coord, None)
        self.cache.pop(coord, None)
        if self.is_local(coord):
            return self.orig["free"](coord)
        self._ask(coord, "free", coord)

    def prefetch(self, coord: int) -> None:
        if self.is_local(coord) or coord in self.replicas:
            return self.orig["prefetch"](coord)
        self._ask(coord, "prefetch", coord)

    def flush(self, coord: int) -> None:
        if self.is_local(coord) or coord in self.replicas:
            return self.orig["flush"](coord)
        self._ask(coord, "flush", coord)

    # ------------------------------------------------------------------ serving the other ranks
    def serve(self, src: int, req: tuple) -> Any:
        """One request for a scroll homed here: the answer, or the fault message as a string."""
        kind, coord = req[0], req[1]
        try:
            if kind == "get":
                sc = self.orig["translate"](coord)
                meta = (sc.dtype, tuple(sc.shape), sc.align, sc.owner, sc.writer, sc.write_epoch)
                return meta, sc.buf.tobytes()
            if kind == "put":
                raw, writer, epoch = req[2], req[3], req[4]
                sc = self.mem.table.get(coord)
                if sc is None or sc.size != len(raw):
                    return (
                        f"scroll {coords.format_packed(coord)} was freed or reallocated while being written"
                    )
                if self.before_write is not None:
                    self.before_write(sc.buf)
                sc.buf[:] = np.frombuffer(raw, np.uint8)
                sc.writer, sc.write_epoch = writer, epoch
                return None
            if kind == "alloc":
                self.orig["alloc"](coord, *req[2:])
                return None
            if kind == "claim":
                self._invalidate(coord, except_rank=src)
                return None
            if kind == "drop":
                self._drop_replica(coord)
                return None
            if kind in ("free", "prefetch", "flush"):
                self.orig[kind](coord)
                return None
        except MemFault as e:
            return str(e)
        return f"unknown scroll request {kind!r}"
