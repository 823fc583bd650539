"""Checkpoint files: every sentron's state, the C-pipe queues and every scroll, in one atomic file.

A checkpoint is taken at a barrier (docs/cluster.md: every K-th ``CBAR`` on group ``all``), when every
live sentron has just left it and no C-pipe item is in flight, so the state is one consistent cut that
any rank count, or one process, can continue from. ``DIR/checkpoint.npz`` is a numpy ``.npz`` (zip) of
plain arrays, loaded without pickle: ``manifest`` (UTF-8 JSON: format, version, the program's digest,
sentron count, scalar state, clocks, queues, counters, scroll metadata), ``vregs`` (N x 32 x 64 bytes)
and one ``scroll_<i>`` byte array per scroll. It is written to a temporary file and renamed, so a
crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vtpu_cli.binary.program import Program
from vtpu_cli.core.errors import FormatError, VtpuError
from vtpu_cli.core.fileio import write_atomic

FORMAT = "vtpu-checkpoint"
VERSION = 1
FILE = "checkpoint.npz"


def program_digest(program: Program) -> str:
    """What a checkpoint must be resumed with: the program's code, data and groups."""
    from vtpu_cli.binary.siwfile import encoding_digest

    return encoding_digest(program).hex()


@dataclass
class Checkpoint:
    """One consistent cut of a run (see the module docstring for the file layout)."""

    digest: str
    sentrons: int
    barriers: int  # CBAR-all instances the run had completed
    states: list[dict]  # per sentron: r, p, m (hex), flags, pc, halted, coll_seq, cbars
    vregs: np.ndarray  # (N, 32, 64) uint8
    clocks: list[list[int]]
    queues: list[
        tuple[int, int, list[tuple[str, list[int], int]]]
    ]  # (src, dst, [(payload hex, clock, hops)])
    counts: list[int]
    fleet: dict  # messages, bytes, hops, routed, instances
    scrolls: list[tuple[dict, np.ndarray]] = field(default_factory=list)  # (metadata, bytes)


def save(directory: str | Path, ck: Checkpoint) -> int:
    """Write ``ck`` atomically into ``directory`` (created if needed); returns the file's size in bytes."""
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VtpuError(f"cannot create checkpoint directory {d}: {e.strerror}") from None
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "digest": ck.digest,
        "sentrons": ck.sentrons,
        "barriers": ck.barriers,
        "states": ck.states,
        "clocks": ck.clocks,
        "queues": ck.queues,
        "counts": ck.counts,
        "fleet": ck.fleet,
        "scrolls": [meta for meta, _ in ck.scrolls],
    }
    arrays = {"manifest": np.frombuffer(json.dumps(manifest).encode(), np.uint8), "vregs": ck.vregs}
    for i, (_, raw) in enumerate(ck.scrolls):
        arrays[f"scroll_{i}"] = raw
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = buf.getvalue()
    try:
        write_atomic(str(d / FILE), blob)
    except OSError as e:
        raise VtpuError(f"cannot write checkpoint {d / FILE}: {e.strerror}") from None
    return len(blob)


def load(directory: str | Path, program: Program, sentrons: int) -> Checkpoint:
    """Read the checkpoint in ``directory`` for ``program`` run on ``sentrons`` sentrons; a clear error
    (exit 2) for a missing, corrupt or foreign checkpoint."""
    path = Path(directory) / FILE
    if not path.exists():
        raise VtpuError(
            f"no checkpoint in {directory} (expected {path.name})", hint="write one with checkpointing on"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            m = json.loads(bytes(z["manifest"]).decode())
            if m.get("format") != FORMAT or m.get("version") != VERSION:
                raise FormatError(f"{path}: not a version-{VERSION} vtpu checkpoint")
            vregs = np.array(z["vregs"], np.uint8)
            scrolls = [(meta, np.array(z[f"scroll_{i}"], np.uint8)) for i, meta in enumerate(m["scrolls"])]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: corrupt checkpoint ({e})") from None
    if m["sentrons"] != sentrons:
        raise VtpuError(
            f"the checkpoint in {directory} is of a run with {m['sentrons']} sentrons, not {sentrons}",
            hint=f"resume with --sentrons {m['sentrons']}",
        )
    if m["digest"] != program_digest(program):
        raise VtpuError(f"the checkpoint in {directory} was written by another program")
    return Checkpoint(
        m["digest"],
        m["sentrons"],
        m["barriers"],
        m["states"],
        vregs,
        m["clocks"],
        [(q[0], q[1], [tuple(x) for x in q[2]]) for q in m["queues"]],
        m["counts"],
        m["fleet"],
        scrolls,
    )
