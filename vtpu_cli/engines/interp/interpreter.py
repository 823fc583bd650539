"""The reference interpreter: the golden model every other engine must match bit for bit.

Sentrons run in lockstep rounds in a fixed order (sentron 0, 1, ... N-1; each executes one SIW or
waits one round), so a run is reproducible and the round number is a natural cycle count for traces.
A single sentron runs without the scheduler. Within an SIW the slots execute D, S, C; they are
independent by construction, so the order only matters for what a fault leaves behind.
"""

from __future__ import annotations

import time

import numpy as np

from vtpu_cli.binary.program import Program
from vtpu_cli.engines.base import (  # noqa: F401  (STATUS_* and load_memory are re-exported)
    STATUS_DEADLOCK,
    STATUS_FAULT,
    STATUS_LIMIT,
    STATUS_OK,
    Fault,
    RunResult,
    SemanticsEnv,
    SentronState,
    count_ops,
    load_memory,
)
from vtpu_cli.fleet.cpipe import Fleet
from vtpu_cli.machine.memory import Memory
from vtpu_cli.machine.semantics import SEM, OpFault


def _raiser(e: OpFault):
    def fault():
        raise e

    return fault


class Interpreter:
    def __init__(
        self,
        program: Program,
        sentrons: int = 1,
        *,
        max_steps: int | None = None,
        trace: bool = False,
        topology=None,
        memory: Memory | None = None,
    ):
        if sentrons < 1:
            raise ValueError("at least one sentron")
        self.program = program
        self.n = sentrons
        self.max_steps = max_steps
        self.tracing = trace
        self.mem = memory if memory is not None else Memory()
        if memory is None:
            load_memory(program, self.mem)
        self.fleet = Fleet(sentrons, program.groups, topology)
        self.env = SemanticsEnv(self.mem, self.fleet)
        self.states = [SentronState(i, sentrons) for i in range(sentrons)]
        self.fleet.homes = {s.home: s.id for s in self.states}
        self.counts = [0] * len(program.code)
        self.code = [self._compile(s) for s in self.states]
        self.trace: list | None = [] if trace else None

    def _compile(self, s: SentronState) -> list:
        out = []
        for siw in self.program.code:
            fns = []
            ready = None
            for ins in siw:
                if ins.is_nop:
                    continue
                try:
                    built = SEM[ins.op.name](ins, s, self.env)
                except OpFault as e:  # defensive: the loader's check_instr rejects these
                    built = _raiser(e)
                if isinstance(built, tuple):
                    ready, run = built
                    fns.append(run)
                else:
                    fns.append(built)
            out.append((tuple(fns), ready))
        return out

    # ------------------------------------------------------------------ running
    def _fault(self, s: SentronState, pc: int, e: OpFault) -> Fault:
        return Fault.from_op(self.program, s.id, pc, e)

    def run(self) -> RunResult:
        t0 = time.perf_counter()
        with np.errstate(all="ignore"):
            if self.n == 1 and not self.tracing:
                status, fault, rounds = self._run_single(self.states[0])
            else:
                status, fault, rounds = self._run_fleet()
        wall = time.perf_counter() - t0
        siws, ops = count_ops(self.program, self.counts)
        return RunResult(
            status, fault, self.states, self.mem, self.fleet, siws, ops, rounds, wall, self.trace
        )

    def _run_single(self, s: SentronState):
        code = self.code[0]
        counts = self.counts
        ncode = len(code)
        limit = self.max_steps if self.max_steps is not None else -1
        steps = 0
        pc = s.pc
        try:
            while pc < ncode:
                if steps == limit:
                    s.pc = pc
                    return STATUS_LIMIT, self._limit_fault(), steps
                fns, ready = code[pc]
                if ready is not None and not ready():
                    s.pc = pc
                    return STATUS_DEADLOCK, self._deadlock(), steps
                s.pc = pc + 1
                for f in fns:
                    f()
                counts[pc] += 1
                steps += 1
                if s.halted:
                    break
                pc = s.pc
        except OpFault as e:
            s.pc = pc
            return STATUS_FAULT, self._fault(s, pc, e), steps
        s.halted = True
        return STATUS_OK, None, steps

    def _run_fleet(self):
        states = self.states
        counts = self.counts
        code = self.code
        ncode = len(self.program.code)
        limit = self.max_steps
        total = 0
        rounds = 0
        trace = self.trace
        wait_open: dict[int, list] = {}
        fleet = self.fleet
        while True:
            progress = False
            live = False
            changes = fleet.changes
            for s in states:
                if s.halted:
                    continue
                live = True
                pc = s.pc
                if pc >= ncode:
                    s.halted = True
                    continue
                if limit is not None and total >= limit:
                    return STATUS_LIMIT, self._limit_fault(), rounds
                fns, ready = code[s.id][pc]
                try:
                    if ready is not None and not ready():
                        if trace is not None:
                            self._trace_wait(s, rounds, wait_open)
                        continue
                    s.wait = None
                    s.pc = pc + 1
                    for f in fns:
                        f()
                except OpFault as e:
                    s.pc = pc
                    return STATUS_FAULT, self._fault(s, pc, e), rounds
                if trace is not None:
                    self._trace_siw(s, pc, rounds, wait_open)
                counts[pc] += 1
                total += 1
                progress = True
                if s.pc >= ncode:
                    s.halted = True
            if not live:
                break
            rounds += 1
            if not progress and fleet.changes == changes:
                if all(s.halted or s.wait is not None for s in states) and any(not s.halted for s in states):
                    return STATUS_DEADLOCK, self._deadlock(), rounds
                if all(s.halted for s in states):
                    break
        if trace is not None:
            for sid in list(wait_open):
                self._close_wait(sid, rounds, wait_open)
        return STATUS_OK, None, rounds

    # ------------------------------------------------------------------ diagnostics
    def _limit_fault(self) -> Fault:
        return Fault(
            "step-limit",
            f"stopped after {self.max_steps} SIWs (--max-steps): the program may not terminate",
            waits=[],
        )

    def _deadlock(self) -> Fault:
        waits = []
        lines = []
        for s in self.states:
            if s.halted:
                continue
            what, on = s.wait if s.wait else ("?", ())
            ins_pc = s.pc
            line = (
                self.program.lines[ins_pc] if self.program.lines and ins_pc < len(self.program.lines) else 0
            )
            waits.append(
                {"sentron": s.id, "siw": ins_pc, "line": line, "waits_in": what, "waits_for": list(on)}
            )
            who = ", ".join(map(str, on)) if on else "nobody"
            lines.append(
                f"  sentron {s.id} at SIW {ins_pc}{f' (line {line})' if line else ''}: "
                f"waits in {what}, for sentron(s) {who}"
            )
        halted = [s.id for s in self.states if s.halted]
        tail = f"\n  halted: {', '.join(map(str, halted))}" if halted else ""
        return Fault("deadlock", "every live sentron is blocked\n" + "\n".join(lines) + tail, waits=waits)

    # ------------------------------------------------------------------ tracing
    def _trace_siw(self, s: SentronState, pc: int, t: int, wait_open: dict) -> None:
        if s.id in wait_open:
            self._close_wait(s.id, t, wait_open)
        for k, ins in enumerate(self.program.code[pc]):
            if not ins.is_nop:
                self.trace.append(
                    {
                        "name": ins.mnemonic(),
                        "ph": "X",
                        "ts": t,
                        "dur": 1,
                        "pid": s.id,
                        "tid": k,
                        "args": {"siw": pc},
                    }
                )

    def _trace_wait(self, s: SentronState, t: int, wait_open: dict) -> None:
        w = wait_open.get(s.id)
        label = s.wait[0] if s.wait else "wait"
        if w is None or w[1] != label:
            if w is not None:
                self._close_wait(s.id, t, wait_open)
            wait_open[s.id] = [t, label, list(s.wait[1]) if s.wait else []]

    def _close_wait(self, sid: int, t: int, wait_open: dict) -> None:
        start, label, on = wait_open.pop(sid)
        self.trace.append(
            {
                "name": label,
                "ph": "X",
                "ts": start,
                "dur": max(t - start, 1),
                "pid": sid,
                "tid": 3,
                "args": {"waits_for": on},
            }
        )


def chrome_trace(result: RunResult, program: Program, source: str = "") -> dict:
    """Chrome/Perfetto trace JSON: one process per sentron, one thread per pipe plus a wait track.

    Timestamps are interpreter rounds (one SIW per round per sentron), shown as microseconds.
    """
    events = []
    for s in result.sentrons:
        events.append({"name": "process_name", "ph": "M", "pid": s.id, "args": {"name": f"sentron {s.id}"}})
        for k, name in enumerate(["D pipe", "S pipe", "C pipe", "waits"]):
            events.append({"name": "thread_name", "ph": "M", "pid": s.id, "tid": k, "args": {"name": name}})
            events.append(
                {"name": "thread_sort_index", "ph": "M", "pid": s.id, "tid": k, "args": {"sort_index": k}}
            )
    events.extend(result.trace or [])
    return {
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {
            "source": source,
            "time_unit": "interpreter round (1 SIW per sentron)",
            "siws": result.siws,
            "sentrons": len(result.sentrons),
        },
    }
