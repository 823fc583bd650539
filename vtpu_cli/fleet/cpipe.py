"""The interpreter's C pipe: message queues, barriers, collectives, routing and race detection.

Semantics (documented in docs/fleet.md):

* Queues are per (sender, receiver) pair, FIFO, capacity :data:`QUEUE_CAPACITY` messages; CSEND
  blocks while the queue is full, CRECV blocks while it is empty.
* A collective (CBAR, CREDUCE, CCAST) on a group completes when every member has entered the same
  collective (the n-th collective a member executes on a group matches every other member's n-th);
  values are combined in ascending sentron-id order, so results never depend on timing.
* Memory model: a scroll written by one sentron may be accessed by another only after they have
  synchronised (a message from the writer received after the write, or a collective both took part
  in after the write). Vector clocks track this; a violation is a fault ("data race").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vtpu_cli.binary.program import Instr, Reg
from vtpu_cli.core import coords
from vtpu_cli.fleet.collectives import reduce_in_order
from vtpu_cli.fleet.transport import QUEUE_CAPACITY, InProcessTransport, Message, Transport
from vtpu_cli.isa.table import ANY_SENDER
from vtpu_cli.machine.semantics import OpFault, bytes_to_scalar, reg_bytes


@dataclass
class FleetStats:
    messages: int = 0
    bytes: int = 0
    hops: int = 0
    routed: int = 0
    barriers: int = 0
    collectives: int = 0
    wait_rounds: dict[str, int] = field(default_factory=dict)


class Fleet:
    """C-pipe semantics (blocking rules, vector clocks, statistics) over a :class:`Transport` that moves
    the messages and holds collective rendezvous; in-process by default."""

    def __init__(
        self, n: int, groups: list, topology=None, race_check: bool = True, transport: Transport | None = None
    ):
        self.n = n
        self.groups = groups
        self.transport = transport if transport is not None else InProcessTransport(n)
        self.stats = FleetStats()
        self.topology = topology
        # vector clock per sentron; own entry starts at 1 so an unsynchronised peer (which knows 0) is behind
        self.clock = [[1 if i == j else 0 for j in range(n)] for i in range(n)]
        self.changes = 0  # arrivals at collectives: state changes that are not SIW progress
        self.race_check = race_check and n > 1
        self.homes: dict[int, int] = {}
        # the race history of freed coordinates (writer, its epoch, reads since): a later SALLOC of the
        # same coordinate continues it (see note_lifetime)
        self.tombs: dict[int, tuple[int, int, dict[int, int]]] = {}

    # ------------------------------------------------------------------ helpers
    def members(self, gid: int, ins: Instr) -> tuple[int, ...]:
        if gid == 0:
            return tuple(range(self.n))
        name, members = self.groups[gid - 1]
        if members is None:
            return tuple(range(self.n))
        bad = [m for m in members if m >= self.n]
        if bad:
            raise OpFault(ins, f"group {name} names sentron {bad[0]} but the fleet has {self.n} sentron(s)")
        return members

    def _release(self, sid: int) -> list[int]:
        c = self.clock[sid]
        snap = list(c)
        c[sid] += 1
        return snap

    def _acquire(self, sid: int, other: list[int]) -> None:
        c = self.clock[sid]
        for i, v in enumerate(other):
            if v > c[i]:
                c[i] = v

    def _wait(self, s, what: str, on) -> bool:
        s.wait = (what, tuple(on))
        self.stats.wait_rounds[what] = self.stats.wait_rounds.get(what, 0) + 1
        return False

    def _check_dest(self, ins: Instr, dst: int) -> None:
        if not 0 <= dst < self.n:
            raise OpFault(ins, f"no sentron {dst}: the fleet has sentrons 0..{self.n - 1}")

    # ------------------------------------------------------------------ memory model
    def note_access(self, s, sc, write: bool, ins: Instr, what: str = "", wrote: str = "wrote") -> None:
        """The happens-before check of one access to scroll ``sc`` (``what``: how the message names it,
        default "store to" / "load from"; ``wrote``: what the last writer did); raises the data-race
        fault."""
        if not self.race_check:
            return
        me = s.id
        clock = self.clock[me]
        what = what or ("store to" if write else "load from")
        if sc.writer >= 0 and sc.writer != me and clock[sc.writer] < sc.write_epoch:
            raise OpFault(
                ins,
                f"data race: {what} {coords.format_packed(sc.coord)}, which sentron {sc.writer} "
                f"{wrote} without synchronising "
                f"with sentron {me} (use a message or CBAR between them)",
            )
        reads = sc.__dict__.setdefault("_reads", {})
        if write:
            for r, epoch in reads.items():
                if r != me and clock[r] < epoch:
                    raise OpFault(
                        ins,
                        f"data race: {what} {coords.format_packed(sc.coord)}, which sentron {r} "
                        f"read without synchronising with sentron {me}",
                    )
            reads.clear()
            sc.writer, sc.write_epoch = me, clock[me]
        else:
            reads[me] = clock[me]

    def note_lifetime(self, s, sc, ins: Instr, free: bool) -> None:
        """SALLOC (after it, ``free=False``) and SFREE (before it) write the coordinate: another sentron's
        access to the scroll, or a SALLOC/SFREE of the same coordinate, not ordered with them by a
        message or a collective is a data race -- the scroll then exists or not depending on timing.
        A freed coordinate's history is kept, and a later SALLOC of it continues it."""
        if not self.race_check:
            return
        if free:
            self.note_access(s, sc, True, ins, "SFREE of")
            self.tombs[sc.coord] = (sc.writer, sc.write_epoch, dict(sc.__dict__.get("_reads", {})))
            return
        tomb = self.tombs.pop(sc.coord, None)
        if tomb is not None:
            sc.writer, sc.write_epoch, sc._reads = tomb[0], tomb[1], tomb[2]
        self.note_access(s, sc, True, ins, "SALLOC of", "freed" if tomb is not None else "wrote")

    def fence(self, s) -> None:
        self.clock[s.id][s.id] += 1

    # ------------------------------------------------------------------ op builders
    def build(self, ins: Instr, s):
        name = ins.op.name
        return getattr(self, "_b_" + name.lower())(ins, s)

    def _b_csend(self, ins: Instr, s):
        m, dst = ins.args

        def target() -> int:
            return s.R[dst.idx] if isinstance(dst, Reg) else dst.value

        def ready() -> bool:
            d = target()
            self._check_dest(ins, d)
            if not self.transport.can_send(s.id, d):
                return self._wait(s, f"CSEND to {d} (queue full)", [d])
            return True

        def run() -> None:
            d = target()
            payload = s.M[m.idx]
            self.transport.send(s.id, d, Message(s.id, payload, self._release(s.id)))
            self.stats.messages += 1
            self.stats.bytes += len(payload)

        return ready, run

    def _b_crecv(self, ins: Instr, s):
        m, src, rs = ins.args
        chosen = [None]

        def ready() -> bool:
            want = s.R[src.idx] if isinstance(src, Reg) else src.value
            if want == ANY_SENDER:
                for k in range(self.n):
                    if self.transport.pending(k, s.id):
                        chosen[0] = k
                        return True
                return self._wait(s, "CRECV from any", [k for k in range(self.n) if k != s.id] or [s.id])
            self._check_dest(ins, want)
            if self.transport.pending(want, s.id):
                chosen[0] = want
                return True
            return self._wait(s, f"CRECV from {want}", [want])

        def run() -> None:
            msg: Message = self.transport.recv(chosen[0], s.id)
            s.M[m.idx] = msg.payload
            self._acquire(s.id, msg.clock)
            if rs is not None:
                s.R[rs.idx] = msg.src

        return ready, run

    def _b_croute(self, ins: Instr, s):
        m, p = ins.args

        def dest() -> int:
            target = s.P[p.idx]
            d = self.homes.get(target)
            if d is None:
                raise OpFault(ins, f"no sentron has home coordinate {coords.format_packed(target)}")
            return d

        def ready() -> bool:
            d = dest()
            if not self.transport.can_send(s.id, d):
                return self._wait(s, f"CROUTE to {d} (queue full)", [d])
            return True

        def run() -> None:
            d = dest()
            hops = len(self.topology.route(s.id, d)) - 1 if self.topology is not None and d != s.id else 0
            payload = s.M[m.idx]
            self.transport.send(s.id, d, Message(s.id, payload, self._release(s.id), hops))
            self.stats.messages += 1
            self.stats.routed += 1
            self.stats.bytes += len(payload)
            self.stats.hops += hops

        return ready, run

    def _collective(self, ins: Instr, s, kind: str, gid: int, contribution):
        """Shared arrival logic: returns (ready, finish) closures for one collective op."""
        key_box = [None]

        def ready() -> bool:
            members = self.members(gid, ins)
            if s.id not in members:
                raise OpFault(
                    ins,
                    f"sentron {s.id} is not a member of group "
                    f"{'all' if gid == 0 else self.groups[gid - 1][0]}",
                )
            seq = s.coll_seq.get(gid, 0)
            key = (gid, seq)
            key_box[0] = key
            c = self.transport.rendezvous(key, kind, members)
            if c.kind != kind:
                raise OpFault(
                    ins,
                    f"collective mismatch on group {gid}: sentron {s.id} is in {kind} while "
                    f"another member is in {c.kind}",
                )
            if s.id not in c.contrib:
                self.changes += 1
                c.contrib[s.id] = contribution()
                c.clocks.append(self._release(s.id))
            if len(c.contrib) < len(c.members):
                missing = [x for x in c.members if x not in c.contrib]
                gname = "all" if gid == 0 else self.groups[gid - 1][0]
                return self._wait(s, f"{kind} on group {gname}", missing)
            return True

        def finish():
            key = key_box[0]
            c = self.transport.rendezvous(key, kind, ())
            if not c.done:
                for clk in c.clocks:  # a completed collective synchronises every member
                    for mbr in c.members:
                        self._acquire(mbr, clk)
                if kind == "CBAR":
                    self.stats.barriers += 1
                else:
                    self.stats.collectives += 1
            c.done.add(s.id)
            s.coll_seq[gid] = key[1] + 1
            if len(c.done) == len(c.members):
                self.transport.retire(key)
            return c

        return ready, finish

    def _b_cbar(self, ins: Instr, s):
        (g,) = ins.args
        ready, finish = self._collective(ins, s, "CBAR", g.value, lambda: None)
        return ready, finish

    def _b_creduce(self, ins: Instr, s):
        d, src, g = ins.args
        t, op = ins.type, ins.mod
        vec = d.cls == "v"

        def contribution():
            if vec:
                return s.view(t)[src.idx].copy()
            return np.frombuffer(
                reg_bytes(s, src, t), dtype={"f32": "<f4", "i32": "<i4", "i64": "<i8"}[t]
            ).copy()

        ready, finish = self._collective(ins, s, "CREDUCE", g.value, contribution)

        def run():
            c = finish()
            if c.result is None:
                c.result = reduce_in_order(c.contrib, op, t)
            if vec:
                s.view(t)[d.idx][:] = c.result
            else:
                s.R[d.idx] = bytes_to_scalar(c.result.tobytes(), t)

        return ready, run

    def _b_ccast(self, ins: Instr, s):
        d, src, root, g = ins.args
        t = ins.type

        def root_id() -> int:
            return s.R[root.idx] if isinstance(root, Reg) else root.value

        def contribution():
            r = root_id()
            if s.id == r:
                return s.V[src.idx].tobytes() if src.cls == "v" else reg_bytes(s, src, t)
            return None

        ready0, finish = self._collective(ins, s, "CCAST", g.value, contribution)

        def ready():
            r = root_id()
            members = self.members(g.value, ins)
            if r not in members:
                raise OpFault(ins, f"CCAST root {r} is not a member of the group")
            return ready0()

        def run():
            c = finish()
            payload = c.contrib[root_id()]
            if d.cls == "v":
                s.V[d.idx][:] = np.frombuffer(payload, np.uint8)
            else:
                s.R[d.idx] = bytes_to_scalar(payload, t)

        return ready, run


__all__ = ["Fleet", "QUEUE_CAPACITY", "Message", "Transport"]
