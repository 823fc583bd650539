"""The MPI transport: the C-pipe :class:`~vtpu_cli.fleet.transport.Transport` across ranks.

Sentrons are spread over the ranks of a communicator by **block distribution** (:func:`block_range`:
rank r holds a contiguous run of ids, the first ``N mod R`` ranks one more). Each rank keeps the
queues whose *receiver* it holds; a message to a sentron elsewhere goes out with ``isend`` and lands in
the receiver's queue. Queue capacity is kept with credits: the sender counts its messages in flight per
(sender, receiver) pair and the receiver returns the credits for the messages taken at its next poll,
so a full queue blocks the sender as in one process (conservatively while credits are on their way).

A collective instance (group, sequence) has one :class:`Rendezvous` record on every rank that holds a
member. Local arrivals are broadcast to the other member ranks by :meth:`MpiTransport.poll`; remote
ones are filed into the record, so every rank sees every contribution and folds them itself in the
order :mod:`vtpu_cli.fleet.collectives` defines: the bits do not depend on which rank computes them.

Everything on the data tag from one rank is processed in send order (MPI's non-overtaking rule) and
*causally*: each item carries the sender's count of memory-update batches applied per rank, and is
held until the receiver has applied as many (see :meth:`MpiTransport.broadcast_update`, used by the
cluster layer to keep scrolls coherent at every release). Remote scroll access
(:meth:`MpiTransport.request`, the substrate router's relay) and control traffic (termination waves,
stop, checkpoints) use tags of their own and are handed to callbacks as soon as they arrive.
"""

from __future__ import annotations

import pickle
from collections import deque
from collections.abc import Callable
from typing import Any

from vtpu_cli.fleet.transport import QUEUE_CAPACITY, Message, Rendezvous

TAG_DATA = 11
TAG_CTRL = 12
TAG_SCROLL = 13  # remote scroll access (the substrate router): requests are served as soon as they arrive
_FIN = ("fin",)  # the last item a rank sends on a tag in a run (MpiTransport.finish)


def block_range(rank: int, n: int, ranks: int) -> range:
    """The sentron ids rank ``rank`` holds when ``n`` sentrons are block-distributed over ``ranks``."""
    base, extra = divmod(n, ranks)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def rank_table(n: int, ranks: int) -> list[int]:
    """Sentron id -> rank under :func:`block_range`."""
    out = [0] * n
    for r in range(ranks):
        for sid in block_range(r, n, ranks):
            out[sid] = r
    return out


class MpiTransport:
    """C-pipe storage for the sentrons of one rank, exchanging with the other ranks over ``comm``.

    The interpreter loop on each rank calls :meth:`poll` between rounds (it never blocks); counters
    ``sent``/``received`` (data items) feed the cluster layer's termination detection."""

    def __init__(self, comm: Any, n: int, capacity: int = QUEUE_CAPACITY):
        try:  # the cluster extra; a one-rank stand-in communicator (checkpointing in one process) needs none
            from mpi4py import MPI

            self._mpi: Any = MPI
            self._status: Any = MPI.Status()
            self._any_source, self._any_tag = MPI.ANY_SOURCE, MPI.ANY_TAG
        except ImportError:
            self._mpi, self._status, self._any_source, self._any_tag = None, None, -2, -1
        self.comm = comm
        self.n = n
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.capacity = capacity
        self.owner = rank_table(n, self.size)
        self.local = block_range(self.rank, n, self.size)
        self.queues: dict[tuple[int, int], deque] = {}
        self.in_flight: dict[tuple[int, int], int] = {}  # remote-bound messages not yet credited
        self.colls: dict[tuple[int, int], Rendezvous] = {}
        self._bcast: dict[tuple[int, int], set[int]] = {}  # contributions already broadcast per record
        self.applied = [0] * self.size  # memory-update batches applied, per originating rank
        self.held: list[deque] = [deque() for _ in range(self.size)]
        self.sent = 0
        self.received = 0
        self.changes = 0  # state changes from the network (the loop's "something happened")
        self.remote_messages = 0
        self.remote_bytes = 0
        self.update_bytes = 0
        self.instances: dict[str, int] = {}  # collective instances this rank accounts for, by kind
        self._reqs: list = []
        self._owed: dict[tuple[int, int], int] = {}  # credits for messages taken, not yet returned
        self._bufs: list[bytes] = []  # what each pending Isend sends: alive until it completes
        self.before_remote: Callable[[], list | None] | None = None  # dirty scrolls to ship first
        self.apply_update: Callable[[list], None] | None = None
        self.on_control: Callable[[int, Any], None] | None = None
        self.on_request: Callable[[int, Any], Any] | None = None  # serves remote scroll access
        # items of kinds this class does not know (the JIT bridge's, ``cluster/bridge.py``), delivered in
        # the same order and counted the same way as messages
        self.on_item: Callable[[int, tuple], None] | None = None
        self._answers: dict[int, Any] = {}
        self._next_request = 0
        self.in_request = 0  # > 0 while a sentron of this rank waits for a remote scroll access
        self._fins = {TAG_DATA: 0, TAG_CTRL: 0}  # end-of-run marks received (see finish)
        self.finished = False

    # ------------------------------------------------------------------ sending
    def _isend(self, obj: Any, dest: int, tag: int = TAG_DATA) -> None:
        """Pickle once and send without blocking; the buffer lives until the send completes."""
        if self._mpi is None:  # pragma: no cover - a one-rank communicator sends nothing
            raise AssertionError("a one-rank run has no other rank")
        data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        self._reqs.append(self.comm.Isend([data, self._mpi.BYTE], dest=dest, tag=tag))
        self._bufs.append(data)
        if len(self._reqs) > 64:
            self._settle()

    def _settle(self) -> None:
        keep = [(r, b) for r, b in zip(self._reqs, self._bufs, strict=True) if not r.Test()]
        self._reqs = [r for r, _ in keep]
        self._bufs = [b for _, b in keep]

    def _data(self, obj: tuple, dest: int) -> None:
        self.sent += 1
        # the causal dependencies; None while no memory update was ever applied (the common case)
        self._isend(obj + (list(self.applied) if any(self.applied) else None,), dest)

    def _release_memory(self) -> None:
        """Ship the scrolls written here since the last release before anything that may order them."""
        if self.before_remote is None:
            return
        entries = self.before_remote()
        if entries:
            self.broadcast_update(entries)

    def broadcast_update(self, entries: list, nbytes: int | None = None) -> None:
        """Send one memory-update batch to every other rank (applied there before later items);
        ``nbytes``: its payload size for the statistics, when the entries are not whole scrolls."""
        for r in range(self.size):
            if r != self.rank:
                self._data(("u", entries), r)
        self.applied[self.rank] += 1
        if nbytes is None:
            nbytes = sum(len(e[-1] or b"") for e in entries)
        self.update_bytes += nbytes * (self.size - 1)

    def send_control(self, obj: Any, dest: int) -> None:
        self._isend(obj, dest, TAG_CTRL)

    # ------------------------------------------------------------------ Transport protocol
    def _queue(self, src: int, dst: int) -> deque:
        q = self.queues.get((src, dst))
        if q is None:
            q = self.queues[(src, dst)] = deque()
        return q

    def can_send(self, src: int, dst: int) -> bool:
        if self.owner[dst] == self.rank:
            return len(self._queue(src, dst)) < self.capacity
        return self.in_flight.get((src, dst), 0) < self.capacity

    def send(self, src: int, dst: int, msg: Message) -> None:
        r = self.owner[dst]
        if r == self.rank:
            self._queue(src, dst).append(msg)
            return
        self._release_memory()
        self.in_flight[(src, dst)] = self.in_flight.get((src, dst), 0) + 1
        self.remote_messages += 1
        self.remote_bytes += len(msg.payload)
        self._data(("m", src, dst, msg.payload, msg.clock, msg.hops), r)

    def pending(self, src: int, dst: int) -> bool:
        return bool(self.queues.get((src, dst)))

    def recv(self, src: int, dst: int) -> Message:
        msg = self.queues[(src, dst)].popleft()
        if self.owner[src] != self.rank:  # the credit goes back at the next poll, off the critical path
            self._owed[(src, dst)] = self._owed.get((src, dst), 0) + 1
        return msg

    def rendezvous(self, key: tuple[int, int], kind: str, members: tuple[int, ...]) -> Rendezvous:
        c = self.colls.get(key)
        if c is None:
            c = self.colls[key] = Rendezvous(kind, members)
        elif not c.members and members:
            c.members = members
        return c

    def retire(self, key: tuple[int, int]) -> None:
        c = self.colls.pop(key, None)
        self._bcast.pop(key, None)
        if c is not None:
            self._account(c)

    def _account(self, c: Rendezvous) -> None:
        """Count each collective instance once in the whole run: on the rank of its lowest member."""
        if c.members and self.owner[min(c.members)] == self.rank:
            self.instances[c.kind] = self.instances.get(c.kind, 0) + 1

    # ------------------------------------------------------------------ progress
    def poll(self) -> bool:
        """Broadcast new local arrivals at collectives, retire finished records, take in what arrived.

        Returns True when anything changed that may let a blocked sentron proceed."""
        before = self.changes
        if self._owed:
            for (src, dst), k in self._owed.items():
                self._data(("c", src, dst, k), self.owner[src])
            self._owed.clear()
        if not self.in_request:  # a release waits until the write-backs it must follow are acknowledged
            self._push_collectives()
        st = self._status
        comm = self.comm
        while comm.Iprobe(source=self._any_source, tag=self._any_tag, status=st):
            src, tag = st.Get_source(), st.Get_tag()
            buf = bytearray(st.Get_count(self._mpi.BYTE))
            comm.Recv([buf, self._mpi.BYTE], source=src, tag=tag)
            obj = pickle.loads(buf)
            if obj == _FIN:
                self._fins[tag] += 1
                continue
            if tag == TAG_CTRL:
                if self.on_control is not None:
                    self.on_control(src, obj)
                continue
            self.received += 1
            if tag == TAG_SCROLL:
                self._scroll_access(src, obj)
                continue
            self.held[src].append(obj)
        for r, q in enumerate(self.held):
            if q:
                self._drain(r)
        return self.changes != before

    def _drain(self, r: int) -> None:
        q = self.held[r]
        applied = self.applied
        while q:
            obj = q[0]
            deps = obj[-1]
            if deps is not None and any(applied[k] < deps[k] for k in range(self.size) if k != r):
                return
            q.popleft()
            self._deliver(r, obj)

    def _deliver(self, r: int, obj: tuple) -> None:
        kind = obj[0]
        self.changes += 1
        if kind == "m":
            _, src, dst, payload, clock, hops, _deps = obj
            self._queue(src, dst).append(Message(src, payload, clock, hops))
        elif kind == "c":
            _, src, dst, k, _deps = obj
            self.in_flight[(src, dst)] -= k
        elif kind == "k":
            _, key, kind_, members, sid, value, clock, _deps = obj
            c = self.colls.get(key)
            if c is None:
                c = self.colls[key] = Rendezvous(kind_, members)
            elif c.kind != kind_ and not getattr(c, "mismatch", False):
                # the local members' next ready() reports the mismatch; a later arrival of the record's
                # first kind must not turn it back (the members would then fold a barrier's None)
                c.kind = kind_
                c.mismatch = True  # type: ignore[attr-defined]
            if sid not in c.contrib:
                c.contrib[sid] = value
                c.clocks.append(clock)
            self._bcast.setdefault(key, set()).add(sid)
        elif kind == "u":
            _, entries, _deps = obj
            if self.apply_update is not None:
                self.apply_update(entries)
            self.applied[r] += 1
        elif self.on_item is not None:
            self.on_item(r, obj[:-1])

    def send_item(self, obj: tuple, dest: int) -> None:
        """A data item of the caller's own kind (see ``on_item``), counted for termination detection."""
        self._data(obj, dest)

    def _push_collectives(self) -> None:
        for key, c in list(self.colls.items()):
            sent = self._bcast.setdefault(key, set())
            fresh = [sid for sid in c.contrib if sid not in sent and self.owner[sid] == self.rank]
            if fresh:
                dests = sorted({self.owner[m] for m in c.members} - {self.rank})
                if dests:
                    self._release_memory()
                sids = list(c.contrib)
                for sid in fresh:
                    clock = c.clocks[sids.index(sid)]
                    for r in dests:
                        self._data(("k", key, c.kind, c.members, sid, c.contrib[sid], clock), r)
                    sent.add(sid)
            if c.members and len(c.contrib) == len(c.members):
                mine = [m for m in c.members if self.owner[m] == self.rank]
                if all(m in c.done for m in mine):
                    self.retire(key)

    def request(self, dest: int, obj: Any) -> Any:
        """A blocking round trip to rank ``dest`` (remote scroll access). Waiting, this rank keeps serving
        others' requests and taking in C-pipe traffic, so two ranks asking each other cannot deadlock."""
        self._next_request += 1
        rid = self._next_request
        self.sent += 1
        self._isend(("q", rid, obj), dest, TAG_SCROLL)
        self.in_request += 1
        try:
            while rid not in self._answers:
                self.poll()
        finally:
            self.in_request -= 1
        return self._answers.pop(rid)

    def _scroll_access(self, src: int, obj: tuple) -> None:
        if obj[0] == "a":
            self._answers[obj[1]] = obj[2]
            return
        answer = self.on_request(src, obj[2]) if self.on_request is not None else None
        self.sent += 1
        self._isend(("a", obj[1], answer), src, TAG_SCROLL)

    def finish(self, timeout_s: float = 10.0) -> bool:
        """End of this run's traffic, on every rank (collective): each rank marks the end of what it sent
        on the data and control tags, and takes in everything up to every other rank's marks (MPI keeps
        order per source and tag). A freed communicator's context can be reused by the next ``Dup``, so
        an item left unreceived here would otherwise reach a later run. Idempotent; False on timeout."""
        if self.finished or self.size == 1:
            return True
        self.finished = True
        for r in range(self.size):
            if r != self.rank:
                self._isend(_FIN, r, TAG_DATA)
                self._isend(_FIN, r, TAG_CTRL)
        import time

        deadline = time.monotonic() + timeout_s
        want = self.size - 1
        while min(self._fins.values()) < want:
            self.poll()
            if time.monotonic() > deadline:
                return False
        while not self.quiet() and time.monotonic() < deadline:
            self.poll()
        return True

    def quiet(self) -> bool:
        """No send of this rank is still incomplete (used before the final exchange)."""
        self._settle()
        return not self._reqs
