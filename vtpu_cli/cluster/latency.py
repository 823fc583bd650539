"""C-pipe one-way latency between sentrons on different ranks, against the same exchange in one process.

:func:`measure_latency` starts ``mpiexec -n 2 python -m vtpu_cli.cluster.latency`` (the phase-2 gate
calls it). Sentron 0 lives on rank 0 and sentron 1 on rank 1; they play ping-pong through the C-pipe
transport (the same ``send``/``pending``/``recv`` calls CSEND and CRECV make, credits included), and
each round trip's time halved is one one-way sample. The baselines are the same ping-pong through
:class:`~vtpu_cli.fleet.transport.InProcessTransport` in rank 0's process, and as plain
``MPI_Send``/``MPI_Recv`` of the same bytes between the two ranks (the floor MPI sets on this host). Both are reported as median
and 99th percentile in microseconds, with the ratio of the medians.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from vtpu_cli.cluster.env import emit_result, launch_with_result
from vtpu_cli.core.errors import Exit, VtpuError
from vtpu_cli.fleet.transport import InProcessTransport, Message

PINGPONG_VASM = """\
; ping-pong: sentron 0 sends a message to sentron 1 and waits for the answer, TRIPS times (one-way
; latency = run time / (2 x TRIPS)); sentrons beyond 1 do nothing
.output r6
    DMOV r1, sid
    DMOV r6, 0
    DMOV r5, {trips}
    DCMP.eq r9, r1, 0
    DBRF pong
ping:
                                 |                          | CPACK.i64 m0, r5
                                 |                          | CSEND m0, 1
                                 |                          | CRECV m1, 1
    DADD r6, r6, 1
    DLOOP r5, ping
    DHALT
pong:
    DCMP.eq r9, r1, 1
    DBRF end
back:
                                 |                          | CRECV m1, 0
                                 |                          | CSEND m1, 0
    DADD r6, r6, 1
    DLOOP r5, back
end:
"""
PINGPONG_TRIPS = 500

PAYLOAD = bytes(64)  # one vector register's worth, what CPACK of a v register sends


def find_mpiexec() -> str | None:
    """mpiexec next to this Python (the mpich wheel installs it there), else on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    if here.exists():
        return str(here)
    return shutil.which("mpiexec")


def measure_latency(samples: int = 2000, warmup: int = 200, ranks: int = 2, timeout_s: float = 120.0) -> dict:
    """One-way C-pipe latency across ranks vs in one process: ``{"cross_rank": {...}, "in_process": {...},
    "raw_mpi": {...}, "ratio": float, ...}`` with ``median_us`` and ``p99_us`` each (``raw_mpi``: plain
    MPI_Send/MPI_Recv of the same 64 bytes, the floor under the transport on this host). Raises :class:`VtpuError` with exit
    code 3 when MPI is not installed."""
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise VtpuError(
            "measuring cross-rank latency needs mpiexec",
            hint="pip install 'vtpu[cluster]' (mpi4py and the mpich wheel)",
            exit_code=Exit.ERROR,
        )
    cmd = [
        mpiexec,
        "-n",
        str(ranks),
        sys.executable,
        "-m",
        "vtpu_cli.cluster.latency",
        str(samples),
        str(warmup),
    ]
    try:
        p, result = launch_with_result(cmd, dict(os.environ), timeout_s)
    except subprocess.TimeoutExpired:
        raise VtpuError(
            f"latency measurement did not finish in {timeout_s:.0f} s", exit_code=Exit.ERROR
        ) from None
    if p.returncode != 0:
        raise VtpuError(
            f"latency measurement failed (exit {p.returncode}): "
            f"{(p.stderr.strip() or p.stdout.strip())[-400:]}",  # the launcher reports on stdout
            exit_code=Exit.ERROR,
        )
    if not result:
        raise VtpuError(
            f"latency measurement gave no result (exit 0); stderr: {p.stderr.strip()[-400:] or 'empty'}",
            exit_code=Exit.ERROR,
        )
    return json.loads(result)


def mpi_capability(samples: int = 2000) -> dict | None:
    """What the phase-2 gate needs from the MPI runtime: ``{"latency_us": median one-way across ranks,
    "latency_p99_us", "in_process_us"}``, or None when mpiexec or mpi4py is not installed."""
    try:
        r = measure_latency(samples=samples, warmup=max(samples // 10, 10))
    except VtpuError:
        return None
    prog = r.get("program", {}).get("cross_rank", {})
    inproc = r.get("program", {}).get("in_process", {})
    # the gate's figure: sentron to sentron through the runtime programs use (the JIT on every rank, its
    # native message path), per hop; the transport's own Python ping-pong is reported beside it
    if prog.get("median_us") is not None:
        lat, p99, what = prog["median_us"], prog["p99_us"], "program (JIT ranks), per hop"
    else:
        lat, p99, what = r["cross_rank"]["median_us"], r["cross_rank"]["p99_us"], "C-pipe transport"
    return {
        "latency_us": lat,
        "latency_p99_us": p99,
        "latency_what": what,
        "in_process_us": inproc.get("marginal_us", r["in_process"]["median_us"]),
        "program_marginal_us": prog.get("marginal_us"),
        "transport_latency_us": r["cross_rank"]["median_us"],
        "transport_latency_p99_us": r["cross_rank"]["p99_us"],
        "transport_in_process_us": r["in_process"]["median_us"],
        "raw_mpi_us": r["raw_mpi"]["median_us"],
    }


def _summary(one_way_s: list[float]) -> dict:
    a = np.asarray(one_way_s) * 1e6
    return {"median_us": float(np.median(a)), "p99_us": float(np.percentile(a, 99)), "samples": int(a.size)}


def _in_process(samples: int, warmup: int) -> list[float]:
    tr = InProcessTransport(2)
    out = []
    for i in range(samples + warmup):
        t0 = time.perf_counter()
        tr.send(0, 1, Message(0, PAYLOAD, [1, 0]))
        while not tr.pending(0, 1):  # pragma: no cover - always ready in one process
            pass
        tr.recv(0, 1)
        tr.send(1, 0, Message(1, PAYLOAD, [0, 1]))
        tr.recv(1, 0)
        if i >= warmup:
            out.append((time.perf_counter() - t0) / 2)
    return out


def _cross_rank(samples: int, warmup: int) -> list[float] | None:
    from vtpu_cli.cluster.ranks import init_mpi
    from vtpu_cli.fleet.mpi import MpiTransport

    comm = init_mpi()
    tr = MpiTransport(comm, comm.Get_size())  # one sentron per rank: sentron r lives on rank r
    me = comm.Get_rank()
    out = []
    comm.Barrier()
    if me == 0:
        for i in range(samples + warmup):
            t0 = time.perf_counter()
            while not tr.can_send(0, 1):
                tr.poll()
            tr.send(0, 1, Message(0, PAYLOAD, [1, 0]))
            while not tr.pending(1, 0):
                tr.poll()
            tr.recv(1, 0)
            if i >= warmup:
                out.append((time.perf_counter() - t0) / 2)
    elif me == 1:
        for _ in range(samples + warmup):
            while not tr.pending(0, 1):
                tr.poll()
            tr.recv(0, 1)
            while not tr.can_send(1, 0):
                tr.poll()
            tr.send(1, 0, Message(1, PAYLOAD, [0, 1]))
    while not tr.quiet():
        tr.poll()
    comm.Barrier()
    for _ in range(3):  # the last credits
        tr.poll()
    return out if me == 0 else None


def _raw_mpi(samples: int, warmup: int) -> list[float] | None:
    """The floor under the transport: the same ping-pong as plain MPI_Send/MPI_Recv of 64 bytes."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    me = comm.Get_rank()
    buf = bytearray(PAYLOAD)
    out = []
    comm.Barrier()
    for i in range(samples + warmup):
        if me == 0:
            t0 = time.perf_counter()
            comm.Send(buf, dest=1, tag=7)
            comm.Recv(buf, source=1, tag=7)
            if i >= warmup:
                out.append((time.perf_counter() - t0) / 2)
        elif me == 1:
            comm.Recv(buf, source=0, tag=7)
            comm.Send(buf, dest=0, tag=7)
    comm.Barrier()
    return out if me == 0 else None


PROGRAM_TRIPS = (100, 1100)  # the two ping-pong lengths whose difference gives the per-hop time
PROGRAM_RUNS = 5


def _pingpong(trips: int) -> Any:
    from vtpu_cli.asm.assembler import assemble

    return assemble(PINGPONG_VASM.format(trips=trips), "pingpong.vasm")


def _program_cross_rank(runs: int) -> dict | None:
    """The whole-program ping-pong (``jitbench.PINGPONG_VASM``: sentron 0 on rank 0, sentron 1 on rank 1,
    each on the JIT) at two lengths, ``runs`` times each, alternating. Per hop: the TSC of every message
    rank 0's native pump delivered (each one a round trip after the one before, both sentrons' work
    included), halved; and the marginal time, (median run time at the long length - at the short one) /
    the hops between them. Rank 0 returns the summary, the other ranks None."""
    from vtpu_cli.cluster import pump
    from vtpu_cli.cluster.ranks import Checkpointing, ClusterEngine, init_mpi, jit_reason
    from vtpu_cli.engines.base import load_memory
    from vtpu_cli.engines.jit.compile import tsc_hz
    from vtpu_cli.engines.select import EngineOptions
    from vtpu_cli.machine.memory import Memory

    comm = init_mpi()
    hz, _ = tsc_hz()
    pump.HOP_LOG = max(PROGRAM_TRIPS) + 16
    walls: dict[int, list[float]] = {t: [] for t in PROGRAM_TRIPS}
    hops: list[float] = []
    engines = {}
    for t in PROGRAM_TRIPS:
        prog = _pingpong(t)
        mem = Memory()
        load_memory(prog, mem)
        opts = EngineOptions(sentrons=2)
        jit, why = jit_reason(prog, mem, opts, Checkpointing())
        if jit is None:
            raise VtpuError(f"the ping-pong does not run on the JIT ranks: {why}")
        engines[t] = (prog, mem, opts, jit)
    for k in range(runs + 1):  # the first round warms up
        for t in PROGRAM_TRIPS:
            prog, mem, opts, jit = engines[t]
            eng = ClusterEngine(prog, mem, opts, comm, None, exit_workers=False, jit=jit)
            comm.Barrier()
            t0 = time.perf_counter()
            res = eng.run()
            wall = time.perf_counter() - t0
            if res.status != "ok":
                raise VtpuError(f"the ping-pong ended {res.status}")
            npath = eng.inner.npath
            if k and comm.Get_rank() == 0:
                walls[t].append(wall)
                if npath is not None and t == max(PROGRAM_TRIPS) and hz:
                    hops += list(np.diff(npath.deliveries()) / hz / 2)
    pump.HOP_LOG = 0
    if comm.Get_rank() != 0:
        return None
    lo, hi = PROGRAM_TRIPS
    marginal = (float(np.median(walls[hi])) - float(np.median(walls[lo]))) / (2 * (hi - lo))
    out = _summary(hops) if hops else {"median_us": None, "p99_us": None, "samples": 0}
    out["mean_us"] = float(np.mean(hops)) * 1e6 if hops else None  # ~ the marginal time: the same hops
    out["marginal_us"] = marginal * 1e6
    out["native_path"] = bool(hops)
    return out


def _program_in_process(runs: int) -> dict:
    """The same ping-pong on the single-process JIT: the marginal time per hop (as across ranks)."""
    from vtpu_cli.engines.base import load_memory
    from vtpu_cli.engines.select import EngineOptions, open_local_engine
    from vtpu_cli.machine.memory import Memory

    walls: dict[int, list[float]] = {t: [] for t in PROGRAM_TRIPS}
    for k in range(runs + 1):
        for t in PROGRAM_TRIPS:
            prog = _pingpong(t)
            mem = Memory()
            load_memory(prog, mem)
            eng = open_local_engine(prog, mem, EngineOptions(sentrons=2))
            t0 = time.perf_counter()
            res = eng.run()
            if k:
                walls[t].append(time.perf_counter() - t0)
            if res.status != "ok" or res.engine != "jit":
                raise VtpuError(f"the in-process ping-pong ended {res.status} on {res.engine}")
    lo, hi = PROGRAM_TRIPS
    return {
        "marginal_us": (float(np.median(walls[hi])) - float(np.median(walls[lo]))) / (2 * (hi - lo)) * 1e6,
        "median_run_ms": float(np.median(walls[hi])) * 1e3,
    }


def main(argv: list[str]) -> int:
    samples = int(argv[0]) if argv else 2000
    warmup = int(argv[1]) if len(argv) > 1 else 200
    cross = _cross_rank(samples, warmup)
    raw = _raw_mpi(samples, warmup)
    program = _program_cross_rank(PROGRAM_RUNS)
    if cross is not None and raw is not None and program is not None:
        base = _in_process(samples, warmup)
        c, b = _summary(cross), _summary(base)
        inproc = _program_in_process(PROGRAM_RUNS)
        doc = {
            "cross_rank": c,
            "in_process": b,
            "raw_mpi": _summary(raw),
            "ratio": c["median_us"] / b["median_us"] if b["median_us"] else None,
            "payload_bytes": len(PAYLOAD),
            "what": "one-way = half a ping-pong round trip through the C-pipe transport (send/pending/recv)",
            "program": {
                "cross_rank": program,
                "in_process": inproc,
                "what": "a whole vasm ping-pong on the JIT (sentron 0 on rank 0, sentron 1 on rank 1 / both "
                "in one process): per hop, half of each round trip seen by rank 0's native pump, and the "
                f"marginal run time per hop between {PROGRAM_TRIPS[0]} and {PROGRAM_TRIPS[1]} round trips",
            },
        }
        emit_result(json.dumps(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
