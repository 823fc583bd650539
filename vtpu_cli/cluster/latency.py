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

import numpy as np

from vtpu_cli.cluster.env import emit_result, launch_with_result
from vtpu_cli.core.errors import Exit, VtpuError
from vtpu_cli.fleet.transport import InProcessTransport, Message

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
    return {
        "latency_us": r["cross_rank"]["median_us"],
        "latency_p99_us": r["cross_rank"]["p99_us"],
        "in_process_us": r["in_process"]["median_us"],
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


def main(argv: list[str]) -> int:
    samples = int(argv[0]) if argv else 2000
    warmup = int(argv[1]) if len(argv) > 1 else 200
    cross = _cross_rank(samples, warmup)
    raw = _raw_mpi(samples, warmup)
    if cross is not None and raw is not None:
        base = _in_process(samples, warmup)
        c, b = _summary(cross), _summary(base)
        doc = {
            "cross_rank": c,
            "in_process": b,
            "raw_mpi": _summary(raw),
            "ratio": c["median_us"] / b["median_us"] if b["median_us"] else None,
            "payload_bytes": len(PAYLOAD),
            "what": "one-way = half a ping-pong round trip through the C-pipe transport (send/pending/recv)",
        }
        emit_result(json.dumps(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
