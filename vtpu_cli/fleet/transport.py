"""C-pipe transports: what moves messages between sentrons and holds collective rendezvous.

The fleet semantics (:class:`vtpu_cli.fleet.cpipe.Fleet`: blocking rules, vector clocks, group
checks, statistics) are written once against :class:`Transport`. A transport only stores and
delivers: per (sender, receiver) FIFO queues of at most :data:`QUEUE_CAPACITY` messages, and one
rendezvous record per collective instance (group id, sequence number). :class:`InProcessTransport`
serves sentrons of one process; an MPI transport implements the same five methods across ranks.
The JIT's native C pipe (``engines/jit/comm.py``) is the same design in native code: lock-free rings
of the same capacity and rendezvous slots combined in the order :mod:`vtpu_cli.fleet.collectives`
defines.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

QUEUE_CAPACITY = 16


@dataclass
class Message:
    """One C-pipe message: sender, payload bytes, the sender's vector clock, routing hops."""

    src: int
    payload: bytes
    clock: list[int]
    hops: int = 0


@dataclass
class Rendezvous:
    """One collective instance: who has arrived with what, and who has left."""

    kind: str
    members: tuple[int, ...]
    contrib: dict[int, object] = field(default_factory=dict)
    clocks: list[list[int]] = field(default_factory=list)
    result: object = None
    done: set = field(default_factory=set)


class Transport(Protocol):
    """Message and rendezvous storage beneath the fleet semantics."""

    n: int

    def can_send(self, src: int, dst: int) -> bool:
        """False while the (src, dst) queue is full (the sender blocks)."""

    def send(self, src: int, dst: int, msg: Message) -> None: ...

    def pending(self, src: int, dst: int) -> bool:
        """True when a message from ``src`` waits for ``dst``."""

    def recv(self, src: int, dst: int) -> Message:
        """The oldest message from ``src`` to ``dst`` (only called when :meth:`pending`)."""

    def rendezvous(self, key: tuple[int, int], kind: str, members: tuple[int, ...]) -> Rendezvous:
        """The record for collective ``key`` = (group, sequence), created on first arrival."""

    def retire(self, key: tuple[int, int]) -> None:
        """Every member has left collective ``key``: its record may go."""


class InProcessTransport:
    """Sentrons in one process: deques and a dict (the interpreter runs them in one thread)."""

    def __init__(self, n: int, capacity: int = QUEUE_CAPACITY):
        self.n = n
        self.capacity = capacity
        self.queues: dict[tuple[int, int], deque] = {}
        self.colls: dict[tuple[int, int], Rendezvous] = {}

    def _queue(self, src: int, dst: int) -> deque:
        q = self.queues.get((src, dst))
        if q is None:
            q = self.queues[(src, dst)] = deque()
        return q

    def can_send(self, src: int, dst: int) -> bool:
        return len(self._queue(src, dst)) < self.capacity

    def send(self, src: int, dst: int, msg: Message) -> None:
        self._queue(src, dst).append(msg)

    def pending(self, src: int, dst: int) -> bool:
        return bool(self.queues.get((src, dst)))

    def recv(self, src: int, dst: int) -> Message:
        return self.queues[(src, dst)].popleft()

    def rendezvous(self, key: tuple[int, int], kind: str, members: tuple[int, ...]) -> Rendezvous:
        c = self.colls.get(key)
        if c is None:
            c = self.colls[key] = Rendezvous(kind, members)
        return c

    def retire(self, key: tuple[int, int]) -> None:
        self.colls.pop(key, None)
