"""Cluster throughput and communication overhead at several rank counts (the phase-2 gate's workload).

:func:`measure_scaling` runs one program on the same N sentrons at 1, 2, 4 ... ranks (1 rank: the same
cluster engine in one process, no MPI) and reports, per rank count, the median over repeats of:
wall time of the run, non-NOP ops executed, ops/s, and the **communication overhead** = 1 - (time the
ranks spent in rounds where one of their sentrons executed an SIW) / (their wall time), summed over
ranks: the share of rank time that went to polling, transport work and waiting for other sentrons.
Every run's outputs are compared with the 1-rank run's: a result that differs is reported, not timed.

The default workload (:data:`OVERHEAD_VASM`) is a data-parallel step repeated: each sentron runs a block
of f32 FMAs on its own vectors, then the sentrons all-reduce the result with ``CREDUCE`` (16 lanes).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from vtpu_cli.cluster.env import emit_result, launch_with_result
from vtpu_cli.core.errors import Exit, VtpuError

OVERHEAD_VASM = """\
; Data-parallel steps: ROUNDS x (INNER x 4 independent f32 FMA chains, then an all-reduce of 16 lanes).
.output v6.f32
    DBCAST.f32 v1, 0.5
    DBCAST.f32 v2, 0.25
    DMOV r1, {rounds}
round:
    DMOV r2, {inner}
inner:
    DFMA.f32 v3, v1, v2, v3
    DFMA.f32 v4, v1, v2, v4
    DFMA.f32 v5, v1, v2, v5
    DFMA.f32 v7, v1, v2, v7
    DLOOP r2, inner
                                 |                          | CREDUCE.add.f32 v6, v3, all
    DLOOP r1, round
"""


def workload(rounds: int = 20, inner: int = 50) -> str:
    """The default overhead workload's assembly."""
    return OVERHEAD_VASM.format(rounds=rounds, inner=inner)


def _run_once(program_text: str, name: str, n: int, engine: str = "interp") -> dict | None:
    """One run on this process's ranks; the report on rank 0, None elsewhere. ``engine="jit"``: the
    JIT on every rank where the program allows it (else the interpreter, as ``vtpu run`` would)."""
    from vtpu_cli.asm.assembler import assemble
    from vtpu_cli.cluster.ranks import (
        Checkpointing,
        ClusterEngine,
        LocalComm,
        init_mpi,
        jit_reason,
        under_mpi,
    )
    from vtpu_cli.engines.base import load_memory
    from vtpu_cli.engines.select import EngineOptions
    from vtpu_cli.fleet.topology import parse_topology
    from vtpu_cli.machine.memory import Memory

    program = assemble(program_text, name)
    mem = Memory()
    load_memory(program, mem)
    comm = init_mpi() if under_mpi() else LocalComm()
    opts = EngineOptions(engine=engine, sentrons=n, topology=parse_topology("ring", n))
    jit = None
    if engine == "jit":  # at one rank too: the same rank engine, with no other rank to talk to
        jit, _ = jit_reason(program, mem, opts, Checkpointing())
        if comm.Get_size() > 1:
            jit = jit if all(comm.allgather(jit is not None)) else None
    eng = ClusterEngine(program, mem, opts, comm, None, jit=jit)
    t0 = time.perf_counter()
    try:
        res = eng.inner.run()
    finally:
        eng.comm.Free()
    wall = time.perf_counter() - t0
    if eng.inner.rank != 0:
        return None
    timing = eng.inner.per_rank
    rank_wall = sum(t["wall_s"] for t in timing)
    busy = sum(t["exec_s"] for t in timing)
    outs = [(s.id, s.R[:], s.V.tobytes().hex()) for s in res.sentrons]
    return {
        "status": res.status,
        "wall_s": wall,
        "ops": res.ops,
        "ops_per_s": res.ops / wall if wall > 0 else 0.0,
        "overhead": 1.0 - busy / rank_wall if rank_wall > 0 else 0.0,
        "busy_s": busy,
        "rank_wall_s": rank_wall,
        "engine": res.engine,
        "remote_messages": sum(t["remote_messages"] for t in timing),
        "update_bytes": sum(t["update_bytes"] for t in timing),
        "state_digest": hashlib.sha256(json.dumps(outs).encode()).hexdigest(),
    }


def main(argv: list[str]) -> int:
    """``python -m vtpu_cli.cluster.scaling FILE|- N REPEATS [ENGINE]``: repeated runs, one JSON list on
    rank 0."""
    src, n, repeats = argv[0], int(argv[1]), int(argv[2])
    engine = argv[3] if len(argv) > 3 else "interp"
    text = workload() if src == "-" else Path(src).read_text()
    out = [_run_once(text, src, n, engine) for _ in range(repeats)]
    if out[0] is not None:
        emit_result(json.dumps(out))
    return 0


def measure_scaling(
    program: str | Path | None = None,
    sentrons: int = 4,
    ranks: tuple[int, ...] = (1, 2, 4),
    repeats: int = 3,
    timeout_s: float = 300.0,
    engine: str = "interp",
) -> dict:
    """Throughput and overhead of ``program`` (default: :func:`workload`) on ``sentrons`` sentrons at each
    rank count; raises :class:`VtpuError` (exit 3) when a rank count above 1 is asked and MPI is missing.
    ``engine="jit"`` runs the JIT on every rank (above 1 rank; its ``overhead`` is None)."""
    from vtpu_cli.cluster.latency import find_mpiexec

    src = "-" if program is None else str(program)
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE")}
    report: dict = {"sentrons": sentrons, "program": src if program else "overhead workload", "ranks": {}}
    base_digest = None
    for r in ranks:
        cmd = [sys.executable, "-m", "vtpu_cli.cluster.scaling", src, str(sentrons), str(repeats), engine]
        if r > 1:
            mpiexec = find_mpiexec()
            if mpiexec is None:
                raise VtpuError(
                    "measuring cluster scaling needs mpiexec",
                    hint="pip install 'vtpu[cluster]'",
                    exit_code=Exit.ERROR,
                )
            cmd = [mpiexec, "-n", str(r), *cmd]
        try:
            p, result = launch_with_result(cmd, env, timeout_s)
        except subprocess.TimeoutExpired:
            raise VtpuError(
                f"the {r}-rank run did not finish in {timeout_s:.0f} s", exit_code=Exit.ERROR
            ) from None
        if p.returncode != 0:
            raise VtpuError(f"the {r}-rank run failed: {p.stderr.strip()[-400:]}", exit_code=Exit.ERROR)
        if not result:
            raise VtpuError(
                f"the {r}-rank run gave no result: {p.stderr.strip()[-400:]}", exit_code=Exit.ERROR
            )
        runs = json.loads(result)
        digests = {x["state_digest"] for x in runs}
        base_digest = base_digest if base_digest is not None else next(iter(digests))
        entry = {
            "wall_s": statistics.median(x["wall_s"] for x in runs),
            "ops": runs[0]["ops"],
            "ops_per_s": statistics.median(x["ops_per_s"] for x in runs),
            "overhead": None
            if runs[0]["overhead"] is None
            else statistics.median(x["overhead"] for x in runs),
            "engine": runs[0].get("engine", "interp"),
            "remote_messages": runs[0]["remote_messages"],
            "update_bytes": runs[0]["update_bytes"],
            "status": runs[0]["status"],
            "same_result": digests == {base_digest},
        }
        report["ranks"][r] = entry
    return report


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
