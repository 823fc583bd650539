"""vBench: run the suite in vtpu_cli/bench/programs/, verify every result, measure honestly, judge the gates.

A benchmark is a program plus a TOML manifest (vtpu_cli/bench/programs/NAME.toml); its numpy side (inputs,
reference check, work, baseline) lives in benchcases.py. Nothing counts unless verified; a gate
criterion that could not be measured makes the gate an error (exit 3), never a pass.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from vtpu_cli.core.errors import Exit, VtpuError

# The seed's targets (absolute, for an 8-core 4 GHz node / 5 such nodes) and how they are normalised.
PHASE0_OPS_PER_CYCLE = 2.5
PHASE1_HIT_RATE = 0.95
PHASE1_NODE_GOPS = 60.0  # for 8 cores x 4 GHz
PHASE1_NODE_CORE_GHZ = 8 * 4.0
PHASE2_LATENCY_US = 100.0
PHASE2_CLUSTER_GOPS = 300.0  # for 5 such nodes
PHASE2_COMM_OVERHEAD = 0.06
GATES = ("phase0", "phase1", "phase2")
# Timed runs per program (full sizes): with the runs of all programs alternated, a burst of other work
# on the host lands on one or two runs of each program, and the median of 11 ignores up to 5 of them.
DEFAULT_REPEATS = 11


def bench_dir() -> Path:
    """The suite: ``$VTPU_BENCH_DIR`` if set, else the programs shipped inside the package (package data,
    so ``vtpu bench`` works from any directory after ``pip install``)."""
    env = os.environ.get("VTPU_BENCH_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "programs"


@dataclass
class Manifest:
    name: str
    path: Path
    program: Path
    summary: str
    phases: list[str]
    sentrons: int
    reference: str
    kind: str = "stream"
    structured: bool = False
    throughput: bool = False
    params: dict = field(default_factory=dict)

    def params_for(self, size: str) -> dict:
        p = self.params.get(size) or self.params.get("quick") or {}
        return dict(p)


def load_manifests(directory: Path | None = None) -> list[Manifest]:
    directory = directory or bench_dir()
    if not directory.is_dir():
        raise VtpuError(
            f"benchmark directory {directory} not found",
            hint="VTPU_BENCH_DIR must name a directory of benchmark manifests (unset it to use the built-in suite)",
        )
    out = []
    for path in sorted(directory.glob("*.toml")):
        try:
            doc = tomllib.loads(path.read_text())
            m = Manifest(
                name=doc["name"],
                path=path,
                program=(path.parent / doc["program"]).resolve(),
                summary=doc.get("summary", ""),
                phases=list(doc.get("phases", [])),
                sentrons=int(doc.get("sentrons", 1)),
                reference=doc["reference"],
                kind=doc.get("kind", "stream"),
                structured=bool(doc.get("structured", False)),
                throughput=bool(doc.get("throughput", False)),
                params=doc.get("params", {}),
            )
        except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as e:
            raise VtpuError(f"{path}: bad benchmark manifest ({e})") from None
        out.append(m)
    return out


# ----------------------------------------------------------------------------- host
def host_info() -> dict:
    from vtpu_cli.core.cycles import core_clock, cycle_source

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    feats: list[str] = []
    try:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        flat = llvm.get_host_cpu_features().flatten()
        feats = sorted(
            f[1:] for f in flat.split(",") if f.startswith("+") and f[1:].startswith(("avx512", "gfni"))
        )
        cpu_name = llvm.get_host_cpu_name()
    except Exception:  # pragma: no cover
        cpu_name = "unknown"
    cs = cycle_source()
    clock = core_clock()
    return {
        "cpu": cpu,
        "llvm_cpu": cpu_name,
        "features": feats,
        "cores": os.cpu_count() or 1,
        "tsc_ghz": cs["tsc_hz"] / 1e9,
        "core_ghz": clock["core_hz"] / 1e9 if clock["core_hz"] else None,
        "core_clock_method": clock["method"],
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "reported_mhz": cs["reported_mhz"],
        "cycle_source": cs,
    }


# ----------------------------------------------------------------------------- running one benchmark
@dataclass
class Engine:
    name: str
    available: bool
    reason: str = ""


def pick_engine(name: str) -> Engine:
    if name == "interp":
        return Engine("interp", True)
    try:
        from vtpu_cli.engines.jit.compile import jit_available

        ok, why = jit_available()
    except ImportError as e:
        ok, why = False, f"the jit engine is not built ({e})"
    return Engine("jit", ok, why)


def assemble_program(m: Manifest, params: dict):
    """The bench program with its parameters as defines (each program's own ``.const`` lines hold the
    quick-size defaults, so it also assembles on its own)."""
    from vtpu_cli.asm.assembler import assemble

    return assemble(
        m.program.read_text(), str(m.program), defines={k: str(int(v)) for k, v in params.items()}
    )


def _memory(program, inputs: dict):

    from vtpu_cli.engines.interp.interpreter import load_memory
    from vtpu_cli.machine.memory import Memory, scroll_buffer

    mem = Memory()
    load_memory(program, mem)
    for c, val in inputs.items():
        if isinstance(c, str):
            continue
        dtype, shape, raw = val
        if c in mem.table:
            mem.free(c)
        mem.add(c, scroll_buffer(len(raw), raw), dtype=dtype, shape=tuple(shape))
    return mem


def _execute(engine: str, program, sentrons: int, mem):
    """One run; returns (result, seconds, cycles or None). The JIT runs its optimised (tier-1) code
    only: tiered compilation is off here, whatever a caller's context asks (docs/jit.md, "Tiers")."""
    from vtpu_cli.engines.select import EngineOptions, run_program

    if engine == "jit":
        from vtpu_cli.engines.jit.engine import tiered_engines

        with tiered_engines(False):
            res = run_program(program, mem, EngineOptions(engine=engine, sentrons=sentrons))
    else:
        res = run_program(program, mem, EngineOptions(engine=engine, sentrons=sentrons))
    if res.engine == "interp":
        return res, res.wall_s, None
    secs = getattr(res, "run_s", None) or res.wall_s
    return res, secs, getattr(res, "cycles", None)


def _median(xs):
    return statistics.median(xs) if xs else None


# Every program entry of the JSON has exactly these keys (None where a value does not apply or was not
# measured); tests/test_bench.py validates it.
PROGRAM_KEYS = (
    "name", "summary", "phases", "structured", "throughput", "sentrons", "engine", "native", "fallback",
    "params", "verified", "error", "ops", "siws", "ops_per_siw", "seconds", "seconds_all", "tsc_ticks",
    "cycle_source", "core_per_tsc", "core_ghz", "alu_per_cycle", "preempted_runs", "cycles", "ops_per_tsc",
    "ops_per_cycle", "ops_per_cycle_all", "cpu_seconds", "ops_per_cpu_cycle", "gops",
    "ppt_hit_rate", "ppt_translations", "work", "rates", "baseline", "roofline", "latency_us",
)  # fmt: skip


def empty_entry(m: Manifest, engine: str, n: int, params: dict) -> dict:
    out: dict = dict.fromkeys(PROGRAM_KEYS)
    out.update(
        name=m.name,
        summary=m.summary,
        phases=m.phases,
        structured=m.structured,
        throughput=m.throughput,
        sentrons=n,
        engine=engine,
        native=False,
        params=params,
        verified=False,
        work={},
        rates={},
    )
    return out


def _time_best(fn, repeats: int, pick=statistics.median) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return pick(ts)


class _Timed:
    """One benchmark being measured: set up once (assemble, inputs), then timed one run at a time, so that
    :func:`run_interleaved` can alternate the runs of several programs (a burst of other work on the host
    then lands on a run or two of each program, not on every run of one). Around every run the core clock
    and the ALU probe are measured (``cycles.clock_sample``), so each run's core cycles use the clock of
    its own minutes, and each run's ops per core cycle is kept; the reported figures are medians."""

    def __init__(
        self,
        m: Manifest,
        engine: str,
        size: str,
        repeats: int,
        sentrons: int | None = None,
        baseline_repeats: int = 5,
    ):
        import numpy as np

        from vtpu_cli.bench.cases import CASES

        self.m, self.engine, self.repeats = m, engine, max(repeats, 1)
        self.baseline_repeats = baseline_repeats
        case = CASES.get(m.reference)
        if case is None:
            raise VtpuError(f"{m.path}: unknown reference case {m.reference!r}")
        self.case = case
        self.params = m.params_for(size)
        self.n = sentrons or m.sentrons
        self.out = empty_entry(m, engine, self.n, self.params)
        self.done = False
        # per timed run, index-aligned: seconds, native TSC ticks (None without), process CPU seconds,
        # core cycles per TSC tick measured around it (None when not measurable)
        self.times: list[float] = []
        self.ticks: list[float | None] = []
        self.cpu: list[float] = []
        self.ratios: list[float | None] = []
        self.alu: list[float] = []
        self.preempted = 0  # timed runs during which this process waited for a CPU (PREEMPTED_FRACTION)
        self.res = None
        # one untimed run first when several are timed: the first run of a program in a process pays
        # one-time costs (the JIT's compile or cache load, first touches) that its other runs do not
        self.warmup = engine == "jit" and self.repeats >= 3
        self.failed = False  # an engine error or a run that did not end ok: reported as it is, unverified
        try:
            self.program = assemble_program(m, self.params)
        except VtpuError as e:
            self.out["error"] = f"does not assemble: {e.message}"
            self.done = True
            return
        rng = np.random.default_rng(12345)
        self.inputs = case.inputs(self.params, rng, self.n)

    def once(self) -> None:
        """One timed run (fresh memory); marks the benchmark done after its last run or a failure."""
        from vtpu_cli.core.cycles import clock_sample

        out, engine = self.out, self.engine
        mem = _memory(self.program, self.inputs)
        if self.warmup:
            self.warmup = False
            try:
                res = _execute(engine, self.program, self.n, mem)[0]
            except Exception:  # noqa: BLE001 - the timed run below meets the error again and reports it
                res = None
            if res is not None and res.status == "ok":
                return
            mem = _memory(self.program, self.inputs)  # a failing warm-up: the timed run reports it
        before = clock_sample()
        w0 = _runqueue_wait_ns()
        c0 = time.process_time()
        try:
            res, secs, cyc = _execute(engine, self.program, self.n, mem)
        except Exception as e:  # an engine error is this program's failure, not the whole run's
            out["error"] = f"engine error: {type(e).__name__}: {e}"
            self.done = self.failed = True
            return
        cpu = time.process_time() - c0
        w1 = _runqueue_wait_ns()
        after = clock_sample()
        self.res = res
        used = getattr(res, "engine", engine)
        out["engine"] = used
        out["fallback"] = getattr(res, "fallback", None)
        out["native"] = (
            engine == "jit"
            and used == "jit"
            and not getattr(res, "replay", "")
            and getattr(res, "tier", 1) == 1
        )
        if res.status != "ok":
            out["error"] = f"run {res.status}: {res.fault.render() if res.fault else ''}"
            self.done = self.failed = True
            return
        if engine == "jit" and not out["native"]:
            why = out["fallback"] or (
                f"a native fault was replayed ({res.replay})"
                if getattr(res, "replay", "")
                else "it ran tier-0 code, not the optimised code"
            )
            out["error"] = f"did not run natively: {why}"
        self.cpu.append(cpu)
        if w0 is not None and w1 is not None and secs:
            self.preempted += (w1 - w0) * 1e-9 > PREEMPTED_FRACTION * secs
        self.times.append(secs)
        self.ticks.append(cyc)
        # the higher reading of the two: a window in which the thread was preempted can only read low
        rs = [c["core_per_tsc"] for c in (before, after) if c["core_per_tsc"]]
        self.ratios.append(max(rs) if rs else None)
        alus = [c["alu_per_cycle"] for c in (before, after) if c["alu_per_cycle"]]
        if alus:
            self.alu.append(max(alus))
        if len(self.times) >= self.repeats:
            self.done = True

    def finish(self) -> dict:
        out = self.out
        if self.failed or self.res is None or not self.times:
            return out
        return _finish(self, out)


def _runqueue_wait_ns() -> int | None:
    """Nanoseconds the threads of this process have spent runnable but not running (waiting on a run queue
    while another task held the CPU): the sum of the second field of ``/proc/self/task/*/schedstat``
    (Linux); None where it is not available."""
    total = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    for t in tasks:
        try:
            with open(f"/proc/self/task/{t}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total


# A timed run counts as preempted when the process's threads waited this fraction of its time on a run queue.
PREEMPTED_FRACTION = 0.01


def run_interleaved(benches: list[_Timed], progress=None) -> list[dict]:
    """Run the benchmarks' timed runs round-robin (one run of each in turn) until each has its repeats or
    failed; returns their results in order. ``progress()`` is called after every run."""
    while any(not b.done for b in benches):
        for b in benches:
            if not b.done:
                b.once()
                if progress is not None:
                    progress()
    return [b.finish() for b in benches]


def run_benchmark(
    m: Manifest, engine: str, size: str, repeats: int, sentrons: int | None = None, baseline_repeats: int = 5
) -> dict:
    """Run, verify and measure one benchmark; never raises for a program that fails (``error`` says)."""
    return run_interleaved([_Timed(m, engine, size, repeats, sentrons, baseline_repeats)])[0]


def _finish(b: _Timed, out: dict) -> dict:
    """Verify the last run's output and turn the runs' measurements into the program's entry."""
    from vtpu_cli.core.cycles import tsc_hz

    res, case, program, inputs, params, n, m = b.res, b.case, b.program, b.inputs, b.params, b.n, b.m
    times, cpu, ratios, baseline_repeats = b.times, b.cpu, b.ratios, b.baseline_repeats
    ticks = b.ticks if all(t is not None for t in b.ticks) else []
    ok, detail = case.check(res, program, inputs, params)
    out["verified"] = bool(ok)
    if not ok:
        out["error"] = f"output does not match the reference: {detail}"
    secs = _median(times)
    hz = tsc_hz()
    if ticks:
        source = "tsc (rdtsc around the native run)"
        run_ticks = list(ticks)
    elif hz:
        source = "tsc-derived (wall time x calibrated TSC frequency)"
        run_ticks = [t * hz for t in times]
    else:
        source, run_ticks = "none", []
    tk = _median(run_ticks)
    # each run's core cycles: its ticks x the core clock measured around that run
    run_cycles = [t * r for t, r in zip(run_ticks, ratios, strict=True) if r]
    cycles = _median(run_cycles) if run_cycles and len(run_cycles) == len(run_ticks) else None
    known = [r for r in ratios if r]
    core_per_tsc = _median(known) if known else None
    # On-CPU ticks of a run: its native TSC ticks, or the process CPU time around the whole run (engine
    # set-up included) in ticks, whichever is less. Both include every tick the native code ran on a
    # core; the TSC also counts the time the thread was preempted by other processes, the CPU time the
    # run's Python around it. So this is an upper bound of the ticks the run used on a core (ops per
    # on-CPU cycle a lower bound), and the same as the TSC count for a run no one preempted.
    # Every per-cycle figure converts each run with the clock measured around that run, then takes the median.
    on_cycles = [min(t, c * hz) * r for t, c, r in zip(ticks, cpu, ratios, strict=False) if r] if hz else []
    cpu_cycles = [c * hz * r for c, r in zip(cpu, ratios, strict=True) if r] if hz else []
    ops = res.ops
    out.update(
        {
            "ops": ops,
            "siws": res.siws,
            "ops_per_siw": ops / res.siws if res.siws else 0.0,
            "seconds": secs,
            "seconds_all": times,
            "tsc_ticks": tk,
            "cycle_source": source,
            "core_per_tsc": core_per_tsc,
            "core_ghz": core_per_tsc * hz / 1e9 if core_per_tsc and hz else None,
            "alu_per_cycle": _median(b.alu) if b.alu else None,
            "preempted_runs": b.preempted,
            "cycles": cycles,
            "ops_per_tsc": ops / tk if tk else None,
            "ops_per_cycle": ops / cycles if cycles else None,
            "ops_per_cycle_all": [ops / c for c in run_cycles] if cycles else None,
            "cpu_seconds": _median(cpu),
            "ops_per_cpu_cycle": ops / _median(cpu_cycles)
            if cpu_cycles and len(cpu_cycles) == len(cpu) and _median(cpu_cycles)
            else None,
            "gops": ops / secs / 1e9 if secs else None,
            "ppt_hit_rate": res.memory.stats.hit_rate if res.memory.stats.translations else None,
            "ppt_translations": res.memory.stats.translations,
        }
    )
    work = case.work(params, n)
    rates = {}
    if secs:
        if "flop" in work:
            rates["gflops"] = work["flop"] / secs / 1e9
        if "weights" in work:
            rates["gweights"] = work["weights"] / secs / 1e9
        if "bytes" in work:
            rates["gbytes"] = work["bytes"] / secs / 1e9
        if "messages" in work:
            rates["messages_per_s"] = work["messages"] / secs
    if ticks and len(on_cycles) == len(ticks):  # see above (docs/bench.md keeps the program keys fixed)
        rates["ops_per_oncpu_cycle"] = ops / _median(on_cycles)
    out["work"] = work
    out["rates"] = rates
    if m.kind == "latency" and "round_trips" in work:
        one_way = sorted(t / (2 * work["round_trips"]) * 1e6 for t in times)
        out["latency_us"] = {
            "median": statistics.median(one_way),
            "p99": one_way[min(len(one_way) - 1, math.ceil(0.99 * len(one_way)) - 1)],
            "samples": len(one_way),
            "what": "one-way, per run mean of ping-pong",
        }
    if case.baseline is not None and secs:
        bs = _time_best(case.baseline(inputs, params), baseline_repeats)
        out["baseline"] = {
            "what": case.baseline_what or "numpy/OpenBLAS on the same work",
            "seconds": bs,
            "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
            "ratio": bs / secs if secs else None,
        }
    if case.roofline is not None and secs and "bytes" in work:
        fn, nbytes = case.roofline(inputs, params)
        # the roofline is an upper bound: the fastest of the reads (a slow one was preempted)
        rs = _time_best(fn, max(baseline_repeats, 9), pick=min)
        stream = nbytes / rs
        out["roofline"] = {
            "what": "numpy streaming read of the same bytes, fastest of 9 (the memory-bandwidth roofline, this run)",
            "bytes": nbytes,
            "stream_gbytes": stream / 1e9,
            "gbytes": work["bytes"] / secs / 1e9,
            "fraction": work["bytes"] / secs / stream,
        }
    return out


# ----------------------------------------------------------------------------- gates
def _geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs and all(x > 0 for x in xs) else None


def criterion(
    name: str, value, threshold, op: str, *, unit: str = "", original: str = "", missing: str = ""
) -> dict:
    """A gate criterion: passed is None when not measured (missing says why)."""
    if value is None:
        passed = None
    else:
        passed = value >= threshold if op == ">=" else value <= threshold
    return {
        "name": name,
        "value": value,
        "threshold": threshold,
        "op": op,
        "unit": unit,
        "passed": passed,
        "original_target": original,
        "not_measured": missing or None,
    }


def _why_bad(p: dict) -> str:
    """Why a program's measurement cannot count towards a JIT gate ('' when it can)."""
    if p.get("error") and not p.get("verified"):
        return f"{p['name']}: {p['error']}"
    if not p.get("verified"):
        return f"{p['name']}: not verified"
    if not p.get("native"):
        return f"{p['name']}: did not run natively ({p.get('fallback') or p.get('error') or 'engine ' + str(p.get('engine'))})"
    if not p.get("ops_per_cycle"):
        return f"{p['name']}: no cycle count"
    return ""


def _phase2_measurements(host: dict) -> dict | None:
    """The MPI parts of phase 2, measured by spawning mpiexec: cross-rank C-pipe latency, and the
    cluster workload's throughput and communication overhead at one rank per core (None without MPI)."""
    from vtpu_cli.cluster.latency import mpi_capability
    from vtpu_cli.cluster.scaling import measure_scaling, workload

    mpi = mpi_capability()
    if mpi is None:
        return None
    ranks = max(2, host["cores"])
    try:
        # throughput and communication overhead on the JIT ranks (how a cluster runs); the interpreter
        # ranks' run is the fallback when the JIT ranks cannot run the workload
        sc = measure_scaling(sentrons=ranks, ranks=(ranks,), repeats=3)
        with tempfile.TemporaryDirectory(prefix="vtpu-phase2-") as d:
            big = Path(d) / "workload.vasm"  # the same steps with 4000x the compute: native code is fast
            big.write_text(workload(rounds=20, inner=200_000))
            scj = measure_scaling(big, sentrons=ranks, ranks=(ranks,), repeats=3, engine="jit")
    except VtpuError as e:
        mpi["scaling_error"] = e.message
        return mpi
    entry, jit = sc["ranks"][ranks], scj["ranks"][ranks]
    jit_ok = jit["status"] == "ok" and jit["same_result"]
    if jit_ok and jit.get("overhead") is not None:  # sentrons' native time less their C-pipe waits
        mpi["overhead"], mpi["overhead_engine"] = jit["overhead"], "jit"
    elif entry["status"] == "ok" and entry["same_result"]:
        mpi["overhead"], mpi["overhead_engine"] = entry["overhead"], "interp"
    if jit_ok:
        mpi["gops"], mpi["gops_engine"] = jit["ops_per_s"] / 1e9, "jit"
    elif entry["status"] == "ok" and entry["same_result"]:
        mpi["gops"], mpi["gops_engine"] = entry["ops_per_s"] / 1e9, "interp"
    mpi["scaling"], mpi["scaling_jit"] = sc, scj
    return mpi


def evaluate_gate(
    gate: str, programs: list[dict], host: dict, engine: str, capabilities: dict | None = None
) -> list[dict]:
    """Judge a gate from measured program results (pure: tests inject measurements)."""
    capabilities = capabilities or {}
    crit = []
    core_ghz = host["cores"] * (host.get("core_ghz") or host["tsc_ghz"])
    if gate == "phase0":
        ps = [p for p in programs if "phase0" in p["phases"]]
        why = ""
        if engine != "jit":
            why = "phase 0 is defined on the JIT engine; this run used " + engine
        elif not ps:
            why = "no phase-0 programs ran"
        bad = [_why_bad(p) for p in ps if _why_bad(p)]
        vals = [p["ops_per_cycle"] for p in ps if not _why_bad(p)]
        value = None if why else (_geomean(vals) if not bad else 0.0)
        c = criterion(
            "geomean ops per core cycle, 1 sentron, JIT (phase-0 programs)",
            value,
            PHASE0_OPS_PER_CYCLE,
            ">=",
            original=f">= {PHASE0_OPS_PER_CYCLE} ops/cycle (same on any host)",
            missing=why,
        )
        tsc = [p.get("ops_per_tsc") for p in ps if not _why_bad(p)]
        c["per_tsc_tick"] = None if why or bad or not all(tsc) else _geomean(tsc)
        on = [(p.get("rates") or {}).get("ops_per_oncpu_cycle") for p in ps if not _why_bad(p)]
        c["per_oncpu_cycle"] = None if why or bad or not all(on) else _geomean(on)
        alu = [p["alu_per_cycle"] for p in ps if p.get("alu_per_cycle")]
        c["alu_per_cycle"] = statistics.median(alu) if alu else None
        good = [p for p in ps if not _why_bad(p)]
        c["preempted_runs"] = sum(p.get("preempted_runs") or 0 for p in good)
        c["timed_runs"] = sum(len(p.get("ops_per_cycle_all") or []) for p in good)
        if bad and not why:
            c["note"] = "a program that faulted, did not run natively or was not verified counts as 0: " + (
                "; ".join(bad)
            )
        crit.append(c)
    elif gate == "phase1":
        ps = [p for p in programs if p.get("structured")]
        rates = [p["ppt_hit_rate"] for p in ps if p.get("verified") and p.get("ppt_hit_rate") is not None]
        bad = [p["name"] for p in ps if not p.get("verified")]
        why = "" if ps else "no structured programs ran"
        value = None if why else (0.0 if bad else (min(rates) if rates else None))
        crit.append(
            criterion(
                "PPT hit rate, structured programs (minimum)",
                value,
                PHASE1_HIT_RATE,
                ">=",
                original=">= 95%",
                missing=why or ("" if value is not None else "no translations"),
            )
        )
        tp = [p for p in programs if p.get("throughput")]
        ghz = max((p["core_ghz"] for p in tp if p.get("core_ghz")), default=None) or host["tsc_ghz"]
        core_ghz = host["cores"] * ghz
        threshold = PHASE1_NODE_GOPS / PHASE1_NODE_CORE_GHZ * core_ghz
        why = ""
        if engine != "jit":
            why = "node throughput is defined on the JIT engine; this run used " + engine
        elif not tp:
            why = "no throughput program ran"
        elif any(p["sentrons"] != host["cores"] for p in tp):
            why = f"throughput must run one sentron per core ({host['cores']})"
        value = None if why else (0.0 if any(_why_bad(p) for p in tp) else max(p["gops"] for p in tp))
        crit.append(
            criterion(
                f"node Gops/s, one sentron per core ({host['cores']} cores x {ghz:.2f} GHz core clock)",
                value,
                threshold,
                ">=",
                unit="Gops/s",
                original=f">= {PHASE1_NODE_GOPS:g} Gops/s for an 8-core 4 GHz node "
                f"= {PHASE1_NODE_GOPS / PHASE1_NODE_CORE_GHZ:.3f} Gops/s per core-GHz",
                missing=why,
            )
        )
    elif gate == "phase2":
        mpi = capabilities.get("mpi")
        why = "" if mpi else "the MPI runtime is not installed (pip install 'vtpu[cluster]')"
        crit.append(
            criterion(
                "C-pipe latency between processes (one-way, median)",
                None if why else mpi.get("latency_us"),
                PHASE2_LATENCY_US,
                "<=",
                unit="us",
                original="<= 100 us",
                missing=why,
            )
        )
        crit.append(
            criterion(
                "cluster Gops/s (normalised per core-GHz)",
                None if why else mpi.get("gops"),
                PHASE2_CLUSTER_GOPS / (5 * PHASE1_NODE_CORE_GHZ) * core_ghz,
                ">=",
                unit="Gops/s",
                original=">= 300 Gops/s for 5 nodes of 8 cores x 4 GHz",
                missing=why or ("" if mpi.get("gops") is not None else "cluster throughput not measured"),
            )
        )
        if mpi and mpi.get("gops_engine"):
            crit[-1]["note"] = (
                f"cluster throughput measured with every rank on the {mpi['gops_engine']} engine"
            )
        crit.append(
            criterion(
                "communication overhead",
                None if why else mpi.get("overhead"),
                PHASE2_COMM_OVERHEAD,
                "<=",
                original="<= 6%",
                missing=why
                or ("" if mpi.get("overhead") is not None else "communication overhead not measured"),
            )
        )
        if mpi and mpi.get("overhead_engine"):
            crit[-1]["note"] = (
                f"communication overhead measured with every rank on the {mpi['overhead_engine']} engine"
            )
    else:
        raise VtpuError(f"unknown gate {gate!r}", hint="gates: " + ", ".join(GATES))
    return crit


def gate_exit(criteria: list[dict]) -> int:
    if any(c["passed"] is None for c in criteria):
        return int(Exit.ERROR)
    return int(Exit.OK) if all(c["passed"] for c in criteria) else int(Exit.FAULT)


def sopdw(price: float | None, gops: float | None) -> dict:
    """Ops/s per W per $: needs an energy counter (RAPL via powercap) and a price."""
    rapl = Path("/sys/class/powercap")
    readable = rapl.is_dir() and any(p.name.startswith("intel-rapl") for p in rapl.iterdir())
    if not readable:
        return {"value": None, "not_measured": "no readable energy counter (RAPL/powercap) on this host"}
    if price is None:
        return {"value": None, "not_measured": "no --price given"}
    return {"value": None, "not_measured": "energy sampling around runs is not implemented yet"}


# ----------------------------------------------------------------------------- the command
def bench_command(
    names: list[str],
    gate: str | None,
    quick: bool,
    engine_name: str,
    sentrons: int | None,
    json_path: Path | None,
    list_only: bool,
    repeats: int | None,
    price: float | None,
) -> int:
    import json
    import shutil

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    to_stdout = json_path is not None and str(json_path) == "-"
    con = Console(
        highlight=False, width=max(shutil.get_terminal_size((160, 40)).columns, 150), stderr=to_stdout
    )
    if json_path is not None and not to_stdout:
        check_writable(Path(json_path))
    manifests = load_manifests()
    if list_only:
        t = Table(title=f"vBench suite ({len(manifests)} programs)")
        for col in ("name", "phases", "sentrons", "summary"):
            t.add_column(col)
        for m in manifests:
            t.add_row(m.name, ", ".join(m.phases), str(m.sentrons), m.summary)
        con.print(t)
        return int(Exit.OK)
    by_name = {m.name: m for m in manifests}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise VtpuError(f"unknown benchmark(s): {', '.join(unknown)}", hint="see `vtpu bench --list`")
    if gate is not None and gate not in GATES:
        raise VtpuError(f"unknown gate {gate!r}", hint="gates: " + ", ".join(GATES))
    selected = [by_name[n] for n in names] if names else manifests
    if gate and not names:
        selected = [
            m for m in manifests if gate in m.phases or (gate == "phase1" and (m.structured or m.throughput))
        ]
    host = host_info()
    engine = pick_engine(engine_name)
    if not engine.available:
        con.print(f"[yellow]engine {engine_name} unavailable: {engine.reason}[/yellow]", highlight=False)
        if gate is None:
            raise VtpuError(
                f"the {engine_name} engine is not available: {engine.reason}", exit_code=Exit.ERROR
            )
    size = "quick" if quick else ("interp" if engine.name == "interp" else "full")
    reps = repeats or (3 if quick else DEFAULT_REPEATS)
    results = []
    if engine.available:
        with Progress(console=Console(stderr=True), transient=True) as prog:
            benches = []
            for m in selected:
                n = sentrons
                if m.throughput and gate == "phase1":
                    n = host["cores"]
                benches.append(
                    _Timed(m, engine.name, size, reps if m.kind != "latency" else max(reps, 20), n)
                )
            task = prog.add_task(
                "benchmarks (interleaved runs)",
                total=sum(b.repeats + b.warmup for b in benches if not b.done),
            )
            results = run_interleaved(benches, progress=lambda: prog.advance(task))
            for m, r in zip(selected, results, strict=True):
                r["structured"], r["throughput"] = m.structured, m.throughput
    caps = {"mpi": _phase2_measurements(host)} if gate == "phase2" else {}
    criteria = (
        evaluate_gate(gate, results, host, engine.name if engine.available else "none", caps) if gate else []
    )
    if gate:
        code = gate_exit(criteria)
        passed = code == Exit.OK
    else:
        errors = [r for r in results if r.get("error") and r.get("ops") is None]
        code = (
            int(Exit.ERROR)
            if errors
            else (int(Exit.OK) if all(r["verified"] for r in results) else int(Exit.FAULT))
        )
        passed = code == Exit.OK
    doc = {
        "gate": gate,
        "passed": passed,
        "exit_code": code,
        "engine": engine.name,
        "size": size,
        "cycle_source": host["cycle_source"]["source"],
        "host": host,
        "criteria": criteria,
        "programs": results,
        "sopdw": sopdw(price, max((r.get("gops") or 0) for r in results) if results else None),
    }
    _print_results(con, doc)
    text = json.dumps(doc, indent=2, default=float)
    if to_stdout:
        import sys

        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    elif json_path is not None:
        from vtpu_cli.core.fileio import write_atomic

        write_atomic(str(json_path), text.encode())
    return code


def check_writable(path: Path) -> None:
    """Refuse, before anything runs, an output path that cannot be written (the run takes minutes)."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise VtpuError(f"cannot write {path}: it is a directory")
    if not parent.is_dir():
        raise VtpuError(f"cannot write {path}: directory {parent} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise VtpuError(f"cannot write {path}: permission denied")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise VtpuError(f"cannot write {path}: directory {parent} is not writable")


WORK_UNITS = {"gweights": "G weights/s", "gflops": "GFLOP/s", "gbytes": "GB/s", "messages_per_s": "msg/s"}


def _fmt(x, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def _down(x, digits: int = 3) -> str:
    """A measured value shown truncated (never rounded up) to ``digits`` decimals."""
    return "-" if x is None else f"{math.floor(x * 10**digits) / 10**digits:.{digits}f}"


def _print_results(con, doc: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(
        title=f"vBench ({doc['engine']}, {doc['size']} sizes; TSC {doc['host']['tsc_ghz']:.3f} GHz, core clock "
        + (f"{doc['host']['core_ghz']:.3f} GHz" if doc["host"].get("core_ghz") else "not measured")
        + " (add chain; per program in the JSON)"
        + (f"; load average {doc['host']['load_average']:.1f}" if doc["host"].get("load_average") else "")
        + ")"
    )
    for col in (
        "program",
        "engine",
        "verified",
        "sentrons",
        "ops",
        "ops/SIW",
        "ops/core cycle",
        "ops/TSC tick",
        "Gops/s",
        "useful work",
        "vs numpy",
        "roofline",
        "PPT hit",
        "latency µs (med/p99)",
    ):
        t.add_column(col, justify="left" if col in ("program", "useful work", "engine") else "right")
    for r in doc["programs"]:
        rates = r.get("rates", {})
        key = next((k for k in ("gweights", "gflops", "gbytes", "messages_per_s") if k in rates), None)
        work = f"{rates[key]:.3g} {WORK_UNITS[key]}" if key else ""
        base = r.get("baseline")
        lat = r.get("latency_us")
        roof = r.get("roofline")
        eng = r.get("engine") or "-"
        if r.get("engine") == "jit" and not r.get("native"):
            eng = "[red]jit (not native)[/red]"
        t.add_row(
            r["name"],
            eng,
            "yes" if r["verified"] else "[red]NO[/red]",
            str(r["sentrons"]),
            _fmt(r.get("ops"), ","),
            _fmt(r.get("ops_per_siw"), ".2f"),
            _down(r.get("ops_per_cycle")),
            _down(r.get("ops_per_tsc")),
            _fmt(r.get("gops"), ".3f"),
            escape(work) or "-",
            _fmt(base["ratio"], ".3g") + "x" if base and base.get("ratio") else "-",
            f"{roof['fraction'] * 100:.1f}% of {roof['stream_gbytes']:.3g} GB/s" if roof else "-",
            _fmt(r["ppt_hit_rate"] * 100, ".1f") + "%" if r.get("ppt_hit_rate") is not None else "-",
            f"{lat['median']:.2f} / {lat['p99']:.2f}" if lat else "-",
        )
    con.print(t)
    for r in doc["programs"]:
        if r.get("error"):
            con.print(f"[red]{r['name']}:[/red] {escape(r['error'])}")
    if doc["criteria"]:
        g = Table(
            title=f"gate {doc['gate']}: "
            + (
                "PASSED"
                if doc["passed"]
                else ("NOT MEASURED" if doc["exit_code"] == Exit.ERROR else "FAILED")
            )
        )
        for col in ("criterion", "value", "threshold (this host)", "original target", "result"):
            g.add_column(col)
        for c in doc["criteria"]:
            val = (
                "-"
                if c["value"] is None
                else (f"{_down(c['value'] * 100, 2)}%" if "hit rate" in c["name"] else _down(c["value"]))
            )
            thr = (
                f"{c['op']} "
                + (
                    f"{c['threshold'] * 100:.0f}%"
                    if "hit rate" in c["name"] or "overhead" in c["name"]
                    else f"{c['threshold']:.3f}"
                )
                + (f" {c['unit']}" if c["unit"] else "")
            )
            res = (
                ("[green]pass[/green]" if c["passed"] else "[red]fail[/red]")
                if c["passed"] is not None
                else f"[yellow]not measured: {escape(c['not_measured'])}[/yellow]"
            )
            g.add_row(escape(c["name"]), val, thr, escape(c["original_target"]), res)
        con.print(g)
        for c in doc["criteria"]:
            if c.get("per_tsc_tick") is not None:
                con.print(
                    f"{escape(c['name'])}: per TSC tick instead of per core cycle: {_down(c['per_tsc_tick'])}"
                )
            if c.get("per_oncpu_cycle") is not None:
                con.print(
                    f"{escape(c['name'])}: per on-CPU core cycle (each run's native TSC ticks or its process "
                    f"CPU time, whichever is less: time other processes held the core left out): "
                    f"{_down(c['per_oncpu_cycle'])}"
                )
            if c.get("timed_runs"):
                con.print(
                    f"timed runs during which this process waited >= {PREEMPTED_FRACTION:.0%} of the run for a "
                    f"CPU (preempted): {c['preempted_runs']} of {c['timed_runs']} (their TSC ticks include the wait)"
                )
            if c.get("alu_per_cycle") is not None:
                con.print(
                    f"ALU probe around the runs (8 independent add chains, median): {c['alu_per_cycle']:.2f} adds "
                    "per core cycle (a core of its own retires about one per integer ALU: ~4.7 on Golden "
                    "Cove-class cores; lower: its other hardware thread was busy, and per-cycle figures read low)"
                )
            if c.get("note"):
                con.print(f"[yellow]{escape(c['note'])}[/yellow]")
    s = doc["sopdw"]
    con.print(f"SOPDW: {'not measured (' + s['not_measured'] + ')' if s['value'] is None else s['value']}")


# ----------------------------------------------------------------------------- short runs
def short_runs(names: list[str], iters: int = 50_000, runs: int = 300) -> list[dict]:
    """The phase-0 programs at their full-size working sets but ``ITERS = iters`` (about a millisecond a
    run), ``runs`` times each on the JIT with fresh memory: the fastest run and the 25th percentile, in
    ops per TSC tick and per core cycle. A run this short usually completes inside one scheduler time
    slice, so on a shared host the fastest of many is the code's own speed, which a gate run of tens of
    milliseconds rarely sees. Every run must be native and ok; the last one's output is verified."""
    import numpy as np

    from vtpu_cli.bench.cases import CASES
    from vtpu_cli.core.cycles import clock_sample

    ms = {m.name: m for m in load_manifests()}
    sample0 = clock_sample(0.001, 21)
    clock0 = sample0["core_per_tsc"]
    out = []
    for name in names:
        if name not in ms:
            raise VtpuError(f"no bench program {name!r}", hint=f"one of: {', '.join(sorted(ms))}")
        m = ms[name]
        params = m.params_for("full")
        params["ITERS"] = iters
        program = assemble_program(m, params)
        case = CASES[m.reference]
        inputs = case.inputs(params, np.random.default_rng(12345), 1)
        ticks, res = [], None
        for _ in range(runs):
            res, _, cyc = _execute("jit", program, 1, _memory(program, inputs))
            if res.status != "ok" or res.engine != "jit" or getattr(res, "replay", "") or not cyc:
                raise VtpuError(f"{name}: a short run did not run natively to completion ({res.status})")
            ticks.append(cyc)
        ok, detail = case.check(res, program, inputs, params)
        if not ok:
            raise VtpuError(f"{name}: output does not match the reference: {detail}")
        ticks.sort()
        out.append(
            {
                "name": name,
                "ops": res.ops,
                "best": res.ops / ticks[0],
                "q25": res.ops / ticks[len(ticks) // 4],
            }
        )
    sample1 = clock_sample(0.001, 21)
    clock1 = sample1["core_per_tsc"]
    ratio = max((r for r in (clock0, clock1) if r), default=None)
    alus = [a for a in (sample0["alu_per_cycle"], sample1["alu_per_cycle"]) if a]
    for o in out:
        o["core_per_tsc"] = ratio
        o["alu_per_cycle"] = min(alus) if alus else None  # the lower: whether the core was shared at all
        o["best_core"] = o["best"] / ratio if ratio else None
    return out


def _short_main(argv: list[str]) -> int:
    """``python -m vtpu_cli.bench.suite [--iters N] [--runs N] [NAME ...]`` (default: the phase-0 set)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m vtpu_cli.bench.suite", description=short_runs.__doc__)
    ap.add_argument("--iters", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("names", nargs="*")
    a = ap.parse_args(argv)
    if a.iters < 1 or a.runs < 1:
        ap.error("--iters and --runs must be at least 1")
    names = a.names or sorted(m.name for m in load_manifests() if "phase0" in m.phases)
    try:
        rows = short_runs(names, a.iters, a.runs)
    except VtpuError as e:
        print(f"error: {e.message}")
        return 1
    for r in rows:
        core = f"{r['best_core']:.3f}" if r["best_core"] else "-"
        print(
            f"{r['name']:14s} ops/TSC tick best {r['best']:.3f} (25th pct {r['q25']:.3f})  ops/core cycle best {core}"
        )
    best = _geomean([r["best"] for r in rows])
    ratio = rows[0]["core_per_tsc"] if rows else None
    alu = rows[0]["alu_per_cycle"] if rows else None
    print(
        f"geomean ops/TSC tick {best:.3f}"
        + (f", ops/core cycle {best / ratio:.3f} (core/TSC {ratio:.3f})" if ratio else "")
        + (f"; ALU probe {alu:.2f} adds per core cycle (see docs/bench.md)" if alu else "")
    )
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_short_main(sys.argv[1:]))
