"""Choosing an engine: the one place that decides between the JIT and the interpreter, and says why.

Rule: ``engine="interp"`` runs the interpreter. ``engine="jit"`` runs native code unless the JIT
cannot run this program (llvmlite missing, an op or a sentron count it does not support, or a trace
was asked for: traces record the interpreter's lockstep schedule); then the interpreter runs and the
result's ``fallback`` carries the reason. Callers never special-case engines.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from vtpu_cli.binary.program import Program
from vtpu_cli.engines.base import Engine, RunResult, world_size_from_env
from vtpu_cli.machine.memory import Memory

ENGINES = ("jit", "interp")


@dataclass
class EngineOptions:
    """Everything an engine needs besides the program and its memory."""

    engine: str = "jit"
    sentrons: int = 1
    max_steps: int | None = None
    topology: object = None  # a fleet.topology.Topology, or None for the default ring
    trace: bool = False
    cache_dir: str | os.PathLike | None = None
    no_cache: bool = False
    portable: bool = False
    opt: int | None = None
    rerunnable: bool = False  # JIT: the program may be re-run after a failed run (no pre-run snapshot)


class Fallback:
    """The interpreter standing in for the JIT: its result records the reason."""

    def __init__(self, inner: Engine, reason: str):
        self.inner, self.reason = inner, reason
        self.program, self.n, self.mem = inner.program, inner.n, inner.mem

    def run(self) -> RunResult:
        res = self.inner.run()
        res.engine, res.fallback = "interp", self.reason
        return res


def open_engine(program: Program, memory: Memory, o: EngineOptions) -> Engine:
    """The engine that will run ``program``; ``fallback_reason(engine)`` says why it is not the JIT.

    Under ``mpiexec`` with more than one rank, a rerunnable program of several sentrons (a model's step,
    run by every rank with the same inputs) gets the SPMD rank engine once it is registered
    (:func:`register_rank_engine`; ``cluster/spmd.py``): each rank runs its share of the sentrons, and
    after every run each rank's memory and status are the whole run's. Decided from the environment,
    without importing MPI otherwise."""
    if _rank_engine is not None and spmd_wanted(o):
        return _rank_engine(program, memory, o)
    return open_local_engine(program, memory, o)


RankEngineFactory = Callable[[Program, Memory, EngineOptions], Engine]
_rank_engine: RankEngineFactory | None = None


def register_rank_engine(factory: RankEngineFactory | None) -> None:
    """Install the SPMD rank engine (``vtpu_cli.cluster.spmd`` does so when imported: the cluster layer
    sits above this one). Until then, under mpiexec every rank runs every sentron itself: the same
    results, no speed-up."""
    global _rank_engine
    _rank_engine = factory


def spmd_wanted(o: EngineOptions) -> bool:
    """Whether ``o`` asks for the SPMD rank engine: several ranks, a rerunnable program of several
    sentrons (a model's step; ``vtpu run`` under mpiexec has its own path), no trace."""
    return o.rerunnable and o.sentrons > 1 and not o.trace and world_size_from_env() > 1


def open_local_engine(program: Program, memory: Memory, o: EngineOptions) -> Engine:
    """:func:`open_engine` in this process only, whatever the environment says."""
    from vtpu_cli.engines.interp.interpreter import Interpreter

    if o.engine not in ENGINES:
        raise ValueError(f"unknown engine {o.engine!r} (choose from {', '.join(ENGINES)})")

    def interp() -> Engine:
        return Interpreter(
            program, o.sentrons, max_steps=o.max_steps, trace=o.trace, topology=o.topology, memory=memory
        )

    if o.engine == "interp":
        return interp()
    if o.trace:
        return Fallback(interp(), "--trace records the interpreter's lockstep schedule")
    try:
        from vtpu_cli.engines.jit.engine import JitEngine
    except ImportError as e:  # pragma: no cover - llvmlite missing
        return Fallback(interp(), f"the JIT cannot load ({e})")
    eng = JitEngine(
        program,
        o.sentrons,
        max_steps=o.max_steps,
        topology=o.topology,
        memory=memory,
        cache_dir=o.cache_dir,
        no_cache=o.no_cache,
        portable=o.portable,
        opt=o.opt,
        rerunnable=o.rerunnable,
    )
    eng.compile()
    if eng.fallback_reason is not None:
        return Fallback(interp(), eng.fallback_reason)
    return eng


def fallback_reason(engine: Engine) -> str | None:
    """Why the interpreter stands in for the JIT (None when the engine is the one asked for)."""
    return engine.reason if isinstance(engine, Fallback) else None


def run_program(program: Program, memory: Memory, o: EngineOptions) -> RunResult:
    """Open the engine and run it: the one call the runner, the bench and the API make."""
    return open_engine(program, memory, o).run()
