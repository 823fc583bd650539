"""Locating data shipped with the package (the Lark grammars), the user's cache folders and the cores this
process may use."""

from __future__ import annotations

import os
from pathlib import Path


def grammar_text(name: str) -> str:
    """The text of ``grammar/<name>``: from the installed ``vtpu_cli.grammar`` package, or from the
    source tree when a checkout's ``vtpu_cli`` shadows the installed one (e.g. ``python -m pytest``)."""
    try:
        from importlib.resources import files

        return (files("vtpu_cli.grammar") / name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return (Path(__file__).resolve().parents[2] / "grammar" / name).read_text(encoding="utf-8")


def grammar_cache_path(name: str, text: str) -> str | None:
    """Where Lark keeps the parse tables built from a grammar (Lark's own ``cache=`` file), so a
    process does not rebuild them (~0.3 s): ``$VTPU_CACHE_DIR`` or ``~/.cache/vtpu``, in a folder
    private to the user (the file is a pickle: never load one that others could have written). The
    name carries a hash of the grammar and Lark's version, so an edit or an upgrade starts afresh.
    None when no private cache folder can be had (then the tables are built every time)."""
    import hashlib

    try:
        import lark

        base = private_cache_dir("grammar")
        if base is None:
            return None
        digest = hashlib.sha256(f"{lark.__version__}\0{text}".encode()).hexdigest()[:16]
        return str(base / f"{name}-{digest}.lark")
    except (OSError, RuntimeError, AttributeError):
        return None


CACHE_ENV = "VTPU_CACHE_DIR"


def cache_base() -> Path:
    """``$VTPU_CACHE_DIR``, or ``~/.cache/vtpu`` when it is unset or empty: the one root of every vtpu
    cache (each kind in its own sub-folder), read when asked so that a test or a caller can redirect it."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "vtpu")


def private_cache_dir(kind: str) -> Path | None:
    """``cache_base()/<kind>``, created 0700; None unless it is owned by this user and not writable by
    others (what is read back from it must be ours), or when it cannot be created."""
    import stat

    try:
        base = cache_base() / kind
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = base.stat()
        if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return None
        return base
    except (OSError, RuntimeError):
        return None


CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"  # cgroup v2: "<quota> <period>" or "max <period>"


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, bounded by a cgroup v2 CPU quota (a container
    limited to 2 CPUs on a 64-core host sees all 64 in its affinity)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    try:
        with open(CGROUP_CPU_MAX, encoding="ascii") as f:
            quota, period = f.read().split()[:2]
        if quota != "max" and int(period) > 0:
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cores
