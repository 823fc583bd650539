"""Whether a run goes through the cluster engine, decided from the environment and the options alone,
so that an ordinary ``vtpu run`` never imports the MPI machinery (start-up)."""

from __future__ import annotations

import os
from typing import Any

from vtpu_cli.engines.base import MPI_SIZE_VARS as SIZE_VARS  # noqa: F401  (re-exported)
from vtpu_cli.engines.base import world_size_from_env

CHECKPOINT_VARS = ("VTPU_CHECKPOINT", "VTPU_RESUME")
RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


def rank_from_env() -> int:
    """This process's rank as mpiexec announced it (0 when not started by mpiexec): SPMD callers print
    only on rank 0 without initialising MPI to ask."""
    for var in RANK_VARS:
        v = os.environ.get(var)
        if v and v.isdigit():
            return int(v)
    return 0


def under_mpi() -> bool:
    """True when this process is one of several ranks started by mpiexec (checked without MPI_Init)."""
    return world_size_from_env() > 1


def cluster_wanted(o: Any) -> bool:
    """True when the run needs the cluster engine: under mpiexec, or checkpointing or resuming."""
    return (
        under_mpi()
        or bool(getattr(o, "checkpoint", None) or getattr(o, "resume", None))
        or any(os.environ.get(v) for v in CHECKPOINT_VARS)
    )


RESULT_FILE_VAR = "VTPU_RESULT_FILE"


def emit_result(text: str) -> None:
    """A measurement child's result, from rank 0: into ``$VTPU_RESULT_FILE`` when the parent set it (the
    launcher's forwarding of stdout has been seen to drop a rank's last line), else on stdout."""
    path = os.environ.get(RESULT_FILE_VAR)
    if path:
        from vtpu_cli.core.fileio import write_atomic

        write_atomic(path, text.encode())
    else:
        print(text, flush=True)


def launch_with_result(
    cmd: list[str], env: dict[str, str], timeout: float, tries: int = 3
) -> tuple[Any, str]:
    """Run a measurement child (``subprocess.run``) with a result file; returns the completed process and
    the result text (the file's, else stdout's last line; empty when there is none).

    A launch that exits 0 without any result is tried again (up to ``tries`` launches): on a loaded host
    about one mpiexec launch in ten did so, rank 0 having printed nothing (cause not found). A launch
    that runs past ``timeout`` is tried once more (the test suite's 2-rank latency measurement, ~2 s,
    once hung for its whole 120 s on a 2-core host and did not again in 10 runs); a second timeout
    raises ``subprocess.TimeoutExpired``."""
    import subprocess
    import tempfile
    from pathlib import Path

    timeouts, p = 0, None
    for _ in range(tries):
        with tempfile.TemporaryDirectory(prefix="vtpu-result-") as d:
            path = Path(d) / "result.json"
            try:
                p = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    env={**env, RESULT_FILE_VAR: str(path)},
                )
            except subprocess.TimeoutExpired:
                timeouts += 1
                if timeouts > 1:
                    raise
                continue
            if path.exists():
                return p, path.read_text()
        lines = p.stdout.strip().splitlines()
        if lines or p.returncode != 0:
            return p, lines[-1] if lines else ""
    if p is None:  # every launch (one: tries=1) ran past the limit
        raise subprocess.TimeoutExpired(cmd, timeout)
    return p, ""
