"""Whether a run goes through the cluster engine, decided from the environment and the options alone,
so that an ordinary ``vtpu run`` never imports the MPI machinery (start-up)."""

from __future__ import annotations

import os
from typing import Any

SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")
CHECKPOINT_VARS = ("VTPU_CHECKPOINT", "VTPU_RESUME")


def world_size_from_env() -> int:
    """The rank count mpiexec announced to this process (1 when not started by mpiexec)."""
    for var in SIZE_VARS:
        v = os.environ.get(var)
        if v and v.isdigit():
            return int(v)
    return 1


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
