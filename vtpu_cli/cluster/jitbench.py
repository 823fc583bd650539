"""Interpreter-per-rank against JIT-per-rank under mpiexec, in the same launch (docs/cluster.md).

:func:`measure_engines` starts ``mpiexec -n R python -m vtpu_cli.cluster.jitbench`` once; inside it every
workload runs ``repeats`` times on each engine, alternating interpreter and JIT so that both see the same
machine load. A run's time is rank 0's wall time of ``ClusterEngine.run`` (the run and the final
exchange; MPI start-up, loading and the JIT's compile are outside it, the compile being reported apart).
Every run's sentron state is hashed, and a JIT run whose state differs from the interpreter's is
reported as such. Medians and the ratio interpreter / JIT come back as one dict.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import time

from vtpu_cli.cluster.latency import PINGPONG_TRIPS, PINGPONG_VASM
from vtpu_cli.core.errors import Exit, VtpuError

# C-heavy: ROUNDS x (a 16-lane ring pass to the right, a 16-lane i32 CREDUCE, a barrier), no memory.
# (The third workload, scaling.workload(), is compute between collectives: 20 x (200 f32 FMAs, CREDUCE).)
C_HEAVY_VASM = """\
; C-pipe heavy: every round passes a vector right around the ring, all-reduces it and meets at a barrier.
.output v1.i32, v3.i32, r8
    DMOV r1, sid
    DMOV r4, scount
    DADD r2, r1, 1
    DCMP.eq r9, r2, r4
    DBRF right_ok
    DMOV r2, 0
right_ok:
    DADD r3, r1, r4
    DSUB r3, r3, 1
    DCMP.ge r9, r3, r4
    DBRF left_ok
    DSUB r3, r3, r4
left_ok:
    DADD r6, r1, 1
    DBCAST.i32 v1, r6
    DMOV r5, {rounds}
    DMOV r8, 0
round:
                                 |                          | CPACK.i32 m0, v1
                                 |                          | CSEND m0, r2
                                 |                          | CRECV m1, r3
                                 |                          | CUNPACK.i32 v2, m1
    DADD.i32 v1, v1, v2
                                 |                          | CREDUCE.add.i32 v3, v1, all
                                 |                          | CBAR all
    DADD r8, r8, 1
    DLOOP r5, round
"""


def c_heavy(rounds: int = 200) -> str:
    """The C-heavy workload's assembly."""
    return C_HEAVY_VASM.format(rounds=rounds)


def workloads() -> dict[str, tuple[str, int]]:
    """name -> (assembly, sentrons)."""
    from pathlib import Path

    from vtpu_cli.cluster.scaling import workload

    ring = (Path(__file__).resolve().parents[2] / "programs" / "fleet" / "ring_allreduce.vasm").read_text()
    return {
        "ring_allreduce": (ring, 16),
        "c_heavy": (c_heavy(), 8),
        "fma_creduce": (workload(), 4),
        "pingpong": (PINGPONG_VASM.format(trips=PINGPONG_TRIPS), 2),
    }


def _once(text: str, name: str, n: int, engine: str) -> dict | None:
    from vtpu_cli.asm.assembler import assemble
    from vtpu_cli.cluster.ranks import Checkpointing, ClusterEngine, init_mpi, jit_reason
    from vtpu_cli.engines.base import load_memory
    from vtpu_cli.engines.select import EngineOptions
    from vtpu_cli.fleet.topology import parse_topology
    from vtpu_cli.machine.memory import Memory

    program = assemble(text, name)
    mem = Memory()
    load_memory(program, mem)
    comm = init_mpi()
    opts = EngineOptions(engine=engine, sentrons=n, topology=parse_topology("ring", n))
    jit, why = (None, None)
    if engine == "jit":
        jit, why = jit_reason(program, mem, opts, Checkpointing())
        if jit is None:
            raise VtpuError(f"{name} does not run on the JIT under mpiexec: {why}")
    eng = ClusterEngine(program, mem, opts, comm, None, exit_workers=False, jit=jit)
    comm.Barrier()
    t0 = time.perf_counter()
    res = eng.run()
    wall = time.perf_counter() - t0
    if eng.inner.rank != 0:
        return None
    outs = [(s.id, [int(x) for x in s.R], s.V.tobytes().hex()) for s in res.sentrons]
    return {
        "engine": res.engine,
        "status": res.status,
        "wall_s": wall,
        "ops": res.ops,
        "compile_s": getattr(res, "compile_s", 0.0),
        "digest": hashlib.sha256(json.dumps(outs).encode()).hexdigest(),
    }


def main(argv: list[str]) -> int:
    """``python -m vtpu_cli.cluster.jitbench REPEATS`` under mpiexec: one JSON document on rank 0."""
    repeats = int(argv[0]) if argv else 5
    out: dict = {}
    for name, (text, n) in workloads().items():
        runs: dict[str, list] = {"interp": [], "jit": []}
        _once(text, name, n, "jit")  # warm-up: compiles (and caches) the program
        for _ in range(repeats):
            for engine in ("interp", "jit"):
                runs[engine].append(_once(text, name, n, engine))
        out[name] = {"sentrons": n, "runs": runs}
    if out and next(iter(out.values()))["runs"]["jit"][0] is not None:
        print(json.dumps(out), flush=True)
    return 0


def measure_engines(ranks: int = 2, repeats: int = 5, timeout_s: float = 300.0) -> dict:
    """Interpreter-per-rank and JIT-per-rank medians for each workload at ``ranks`` ranks, with the ratio."""
    from vtpu_cli.cluster.latency import find_mpiexec

    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise VtpuError("measuring needs mpiexec", hint="pip install 'vtpu[cluster]'", exit_code=Exit.ERROR)
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE")}
    cmd = [mpiexec, "-n", str(ranks), sys.executable, "-m", "vtpu_cli.cluster.jitbench", str(repeats)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    if p.returncode != 0:
        raise VtpuError(f"the benchmark failed: {p.stderr.strip()[-600:]}", exit_code=Exit.ERROR)
    raw = json.loads(p.stdout.strip().splitlines()[-1])
    report: dict = {"ranks": ranks, "repeats": repeats, "workloads": {}}
    for name, w in raw.items():
        entry: dict = {"sentrons": w["sentrons"]}
        for engine, runs in w["runs"].items():
            entry[engine] = {
                "median_ms": statistics.median(r["wall_s"] for r in runs) * 1e3,
                "min_ms": min(r["wall_s"] for r in runs) * 1e3,
                "ops": runs[0]["ops"],
                "status": runs[0]["status"],
                "engine": runs[0]["engine"],
            }
        entry["ratio"] = entry["interp"]["median_ms"] / entry["jit"]["median_ms"]
        if name == "pingpong":  # one-way latency: half a round trip (start-up and exchange included)
            for engine in ("interp", "jit"):
                entry[engine]["one_way_us"] = entry[engine]["median_ms"] * 1e3 / (2 * PINGPONG_TRIPS)
        digests = {r["digest"] for runs in w["runs"].values() for r in runs}
        entry["same_result"] = len(digests) == 1
        report["workloads"][name] = entry
    return report


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        print(json.dumps(measure_engines(int(sys.argv[2]) if len(sys.argv) > 2 else 2), indent=2))
    else:
        raise SystemExit(main(sys.argv[1:]))
