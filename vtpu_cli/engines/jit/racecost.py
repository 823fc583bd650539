"""What the JIT's native race detector costs: ``python -m vtpu_cli.engines.jit.racecost [--rounds K]``.

Runs a ring all-reduce with S-pipe traffic (each trip: a load of the sentron's own input scroll and of
a table every sentron reads, CSEND to the right neighbour, CRECV from the left, a store to the
sentron's own output scroll) on 2 and 4 sentrons, with the race detector compiled in and out, in
alternating order in one process (the cache key includes the switch). Prints ops per core cycle
(TSC ticks x the core clock measured by the add chain in the same run), medians of ``--rounds``.
Every run must end ok with no native race flag (``replay == ""``).
"""

from __future__ import annotations

import argparse
import os
import statistics

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.core.cycles import core_clock
from vtpu_cli.engines.jit import comm
from vtpu_cli.engines.jit.engine import JitEngine

MAX_SENTRONS = 8


def ring_source(trips: int, seg: int = 4096, messages: bool = True) -> str:
    """The ring all-reduce (race-free: own scrolls are private, the shared table is only read); without
    ``messages`` the same loop with its C ops replaced by a register move and one CBAR after the loop
    (every S access then hits the detector's fast path: the epoch does not change in the loop)."""
    lines = [
        ".coord TABLE = 1.2.5/1.1.1/1.1.1",
        f".zero TABLE i32[{seg // 4}]",
    ]
    for s in range(MAX_SENTRONS):
        lines += [
            f".coord IN{s} = 1.2.5/1.1.2/1.1.{s + 1}",
            f".zero IN{s} i32[{seg // 4}]",
            f".coord OUT{s} = 1.2.5/1.1.3/1.1.{s + 1}",
            f".zero OUT{s} i32[{seg // 4}]",
        ]
    lines += [
        ".output r6",
        "    DMOV r9, sid                 | SCOORD p0, 1.2.5/1.1.2/1.1.1",
        "    DMOV r8, scount              | SINDEX.add p0, p0, 8, r9",
        "                                 | SCOORD p1, 1.2.5/1.1.3/1.1.1",
        "                                 | SINDEX.add p1, p1, 8, r9",
        "                                 | SCOORD p2, TABLE",
        "    DADD r10, r9, 1",
        "    DCMP.eq r12, r10, r8",
        "    DBRF right_ok",
        "    DMOV r10, 0",
        "right_ok:",
        "    DADD r11, r9, r8",
        "    DSUB r11, r11, 1",
        "    DCMP.ge r12, r11, r8",
        "    DBRF left_ok",
        "    DSUB r11, r11, r8",
        "left_ok:",
        f"    DMOV r1, {trips}",
        f"    DMOV r5, {seg - 1}",
        "    DMOV r2, 0",
        "    DMOV r6, 0",
        "loop:",
        "    DADD r3, r2, 64              | SGATHER.i32 v1, [p0 + r2]",
        "    DAND r3, r3, r5              | SGATHER.i32 v2, [p2 + r2]",
        "    DADD.i32 v3, v1, v2",
    ]
    if messages:
        lines += [
            "                                 |                              | CPACK.i32 m0, v3",
            "                                 |                              | CSEND m0, r10",
            "                                 |                              | CRECV m1, r11",
            "                                 |                              | CUNPACK.i32 v4, m1",
        ]
    else:
        lines.append("    DADD.i32 v4, v3, v1")
    lines += [
        "    DADD.i32 v5, v5, v4          | SSCATTR.i32 [p1 + r2], v4",
        "    DADD r6, r6, 1",
        "    DMOV r2, r3",
        "    DLOOP r1, loop",
        "    CBAR 0",
        "                                 | SGATHER.i32 v6, [p2]",
    ]
    return "\n".join(lines) + "\n"


def measure(n: int, race: bool, trips: int, messages: bool = True) -> tuple[int, int]:
    """(ops, TSC ticks) of one native run with the detector on or off."""
    comm.RACE_CHECK = race
    try:
        prog = assemble(ring_source(trips, messages=messages), "ring_race.vasm")
        res = JitEngine(prog, n).run()
    finally:
        comm.RACE_CHECK = True
    if res.engine != "jit" or res.status != "ok" or res.replay:
        raise RuntimeError(
            f"ring on {n} sentrons did not run natively and race-free: {res.status} {res.replay}"
        )
    return res.ops, res.cycles


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--trips", type=int, default=200_000)
    a = ap.parse_args(argv)
    clock = core_clock()
    core_per_tsc = clock["core_per_tsc"] or 1.0
    print(f"core clock {clock['core_hz'] or 0:.3e} Hz; load average {os.getloadavg()[0]:.1f}")
    for messages, trips, what in (
        (True, a.trips, "ring all-reduce"),
        (False, 20 * a.trips, "private stream"),
    ):
        for n in (2, 4):
            rates: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(a.rounds):
                for race in (False, True):
                    ops, ticks = measure(n, race, trips, messages)
                    rates[race].append(ops / (ticks * core_per_tsc))
            off, on = statistics.median(rates[False]), statistics.median(rates[True])
            print(
                f"{what}, {n} sentrons: {off:.4f} ops/core cycle without the detector, {on:.4f} with "
                f"(medians of {a.rounds}: {on / off:.2f}x; best {max(rates[False]):.4f} / {max(rates[True]):.4f})"
            )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
