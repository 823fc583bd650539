"""One program run many times on every rank of ``mpiexec`` (SPMD): a model's step, token after token.

Every rank runs the same caller code (``vtpu generate``): it loads the same weights, writes the same
inputs into the same scrolls and asks :func:`vtpu_cli.engines.select.open_engine` for an engine with
``EngineOptions(rerunnable=True, sentrons=N)``. Under mpiexec with more than one rank that gives
:class:`SpmdEngine` (registered when this module is imported): each ``run()`` is one cluster run
(:class:`~vtpu_cli.cluster.ranks.ClusterEngine`) in which each rank runs its block of the N sentrons
natively (:class:`~vtpu_cli.cluster.ranks.RankJit`; the program is compiled once, on every rank), and
which ends with **the same memory on every rank**: each rank's stores not yet shipped go to every other
rank (``RankJit._share_final_stores``), so outputs (logits, the sampled token) and state kept between
runs (a KV cache) agree everywhere and the caller's sampling loop takes the same path on every rank.
Status and fault are rank 0's, agreed by every rank; registers are the whole run's on rank 0 and each
rank's own sentrons' elsewhere.

Where the JIT ranks cannot run the program (it changes the scroll table, the JIT cannot compile it, one
sentron), every rank runs every sentron in its own process instead, with the single-process engine:
the same results (a conforming program is deterministic), no speed-up, and the reason in ``reason``.

Memory cost: the stores that travel are found by comparing every scroll with a *twin*
(:class:`~vtpu_cli.cluster.bridge.ScrollTwins`); the twins are made once, kept between runs, and leave
out the tensors the program declares as ``weight`` (never stored to), so memory-mapped weights are
neither copied nor compared.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from vtpu_cli.binary.program import Program
from vtpu_cli.engines.base import Engine, RunResult
from vtpu_cli.engines.select import EngineOptions, Fallback, open_local_engine, register_rank_engine
from vtpu_cli.machine.memory import Memory

AGREE_TAG_BASE, AGREE_TAGS = 1000, 30000  # tags on the world communicator for the engine agreement


def weight_coords(program: Program) -> set[int]:
    """The scrolls of every tensor the program declares as ``weight`` (each layer of a stack)."""
    return {t.coord + layer for t in program.tensors if t.role == "weight" for layer in range(t.layers)}


class SpmdEngine:
    """This rank's engine for repeated runs of one program on the JIT ranks (see the module docstring)."""

    def __init__(self, program: Program, memory: Memory, o: EngineOptions, world: Any, jit: Any):
        self.program, self.n, self.mem, self.o = program, o.sentrons, memory, o
        self.world, self.jit = world, jit
        self.rank, self.size = world.Get_rank(), world.Get_size()
        self.reason: str | None = None
        jit.rerunnable = True
        self.twins: Any = None
        self.runs = 0

    def scroll_twins(self, mem: Memory) -> Any:
        """The twins the JIT ranks compare stores against, made at the first run that needs them and kept
        (after every run each rank's memory equals its twins: the final stores went everywhere)."""
        from vtpu_cli.cluster.bridge import ScrollTwins

        if self.twins is None or self.twins.mem is not mem:
            self.twins = ScrollTwins(mem, skip=weight_coords(self.program))
        return self.twins

    def run(self) -> RunResult:
        from vtpu_cli.cluster.ranks import ClusterEngine

        _signals_once(self.rank)
        self.runs += 1
        eng = ClusterEngine(
            self.program, self.mem, self.o, self.world, None, exit_workers=False, jit=self.jit, spmd=self
        )
        try:
            with np.errstate(all="ignore"):
                res = eng.run()
        except BaseException:
            self.twins = None  # the memory may no longer match them
            raise
        if res.status != "ok":
            self.twins = None  # a replay ran on the interpreter ranks: only rank 0's image is whole
        return res


_SIGNALS = False


def _signals_once(rank: int) -> None:
    """Name this rank when a signal stops it (``ranks._name_on_signal``); Python lets only the main thread
    install handlers, and a model opens its variants' engines from worker threads."""
    global _SIGNALS
    if not _SIGNALS and threading.current_thread() is threading.main_thread():
        from vtpu_cli.cluster.ranks import _name_on_signal

        _name_on_signal(rank)
        _SIGNALS = True


def _agree(world: Any, program: Program, why: str | None) -> str | None:
    """The first reason any rank has not to run ``program`` on the JIT ranks (None: no rank has one), on
    every rank. Point to point with a tag from the program's digest, not a collective: a model opens
    its variants' engines from several threads at once, in an order that differs between ranks, and
    collectives on one communicator must be called in the same order everywhere."""
    from vtpu_cli.cluster.checkpoint import program_digest
    from vtpu_cli.core.errors import VtpuError

    digest = program_digest(program)
    tag = AGREE_TAG_BASE + int(digest[:8], 16) % AGREE_TAGS
    rank, size = world.Get_rank(), world.Get_size()
    if rank:
        world.send((digest, why), dest=0, tag=tag)
        got, agreed = world.recv(source=0, tag=tag)
    else:
        whys = [why]
        for r in range(1, size):
            got, w = world.recv(source=r, tag=tag)
            if got != digest:
                break
            whys.append(w)
        agreed = next((w for w in whys if w is not None), None)
        for r in range(1, size):
            world.send((digest, agreed), dest=r, tag=tag)
    if got != digest:  # two programs opened at once whose digests share a tag (about 1 in 30,000)
        raise VtpuError("the ranks could not agree on how to run a program: open its engines one at a time")
    return agreed


def open_spmd(program: Program, memory: Memory, o: EngineOptions) -> Engine:
    """:func:`vtpu_cli.engines.select.open_engine` under mpiexec for a rerunnable program: the
    :class:`SpmdEngine` when every rank can run its sentrons on the JIT, else this process's own engine
    for all sentrons (each rank computes everything; the reason is the result's ``fallback``)."""
    from vtpu_cli.cluster.ranks import Checkpointing, init_mpi, jit_reason

    world = init_mpi()
    rank, size = world.Get_rank(), world.Get_size()
    _signals_once(rank)
    jit, why = None, None
    if o.engine == "jit":
        try:
            jit, why = jit_reason(program, memory, o, Checkpointing())
        except Exception as e:  # every rank must reach the agreement below, whatever happened here
            jit, why = None, f"the JIT could not prepare this program on rank {rank} ({e})"
    else:
        why = "the interpreter was asked for"
    why = _agree(world, program, why)  # every rank takes the same path
    if why is None:
        return SpmdEngine(program, memory, o, world, jit)
    local = open_local_engine(program, memory, o)
    if o.engine != "jit":
        return local
    if not isinstance(local, Fallback):  # the single-process JIT runs what the JIT ranks could not
        return local
    why = f"under mpiexec ({size} ranks) every rank runs all {o.sentrons} sentrons itself: {why}"
    return Fallback(local.inner, why)


register_rank_engine(open_spmd)
