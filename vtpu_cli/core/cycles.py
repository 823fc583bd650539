"""CPU cycle measurement: the time-stamp counter (TSC), its frequency, and the core clock.

Hardware cycle counters (perf) are not exposed on the VMs this project runs on, so time is read as TSC
ticks: ``rdtsc`` through a three-instruction function compiled once with llvmlite, converted with the
TSC frequency, calibrated against ``time.perf_counter_ns`` (and compared with the kernel's reported
``cpu MHz``). The TSC runs at a constant rate that is not the core clock (turbo, power states), so
``core_clock`` measures the core clock in the same run: a chain of dependent register-register 64-bit
adds (latency one core cycle on x86-64 cores) runs for a known number of cycles while the TSC counts
ticks; the ratio is core cycles per TSC tick. Every report says which source it used.
"""

from __future__ import annotations

import ctypes
import functools
import time

_KEEP: list = []  # keep the execution engine alive


@functools.lru_cache(maxsize=1)
def tsc_reader():
    """A ctypes function returning the TSC, or None when it cannot be built on this host."""
    try:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        ir = """
        declare i64 @llvm.x86.rdtsc()
        define i64 @vtpu_rdtsc() {
          %t = call i64 @llvm.x86.rdtsc()
          ret i64 %t
        }
        """
        mod = llvm.parse_assembly(ir)
        target = llvm.Target.from_default_triple()
        tm = target.create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten()
        )
        ee = llvm.create_mcjit_compiler(mod, tm)
        ee.finalize_object()
        addr = ee.get_function_address("vtpu_rdtsc")
        _KEEP.append((ee, mod))
        return ctypes.CFUNCTYPE(ctypes.c_uint64)(addr)
    except Exception:  # pragma: no cover - non-x86 hosts
        return None


def read_tsc() -> int:
    fn = tsc_reader()
    if fn is None:
        raise RuntimeError("no TSC on this host")
    return fn()


def _boot_key() -> str | None:
    """What a TSC calibration stays valid for: this boot of this CPU (the TSC rate is fixed per boot)."""
    try:
        boot = open("/proc/sys/kernel/random/boot_id").read().strip()
    except OSError:
        return None
    import platform

    return f"{boot} {platform.machine()} {platform.processor()}"


@functools.lru_cache(maxsize=1)
def tsc_hz(calibrate_s: float = 0.05) -> float:
    """TSC ticks per second, calibrated against the monotonic clock (median of 5 windows), once per boot:
    the result is kept in the private cache folder (``tsc.json``), so a short run does not spend 50 ms
    calibrating."""
    import json

    from vtpu_cli.core.resources import private_cache_dir

    key = _boot_key()
    folder = private_cache_dir("clock") if key else None
    if folder is not None:
        try:
            saved = json.loads((folder / "tsc.json").read_text())
            if saved.get("key") == key and saved.get("hz", 0) > 0:
                return float(saved["hz"])
        except (OSError, ValueError, AttributeError):
            pass
    hz = _calibrate(calibrate_s)
    if folder is not None and hz > 0:
        from vtpu_cli.core.fileio import write_atomic

        try:
            write_atomic(folder / "tsc.json", json.dumps({"key": key, "hz": hz}).encode())
        except Exception:  # noqa: BLE001 - an unwritable cache only costs the next run a calibration
            pass
    return hz


def _calibrate(calibrate_s: float) -> float:
    fn = tsc_reader()
    if fn is None:
        return 0.0
    rates = []
    for _ in range(5):
        t0, c0 = time.perf_counter_ns(), fn()
        while time.perf_counter_ns() - t0 < calibrate_s * 1e9 / 5:
            pass
        t1, c1 = time.perf_counter_ns(), fn()
        rates.append((c1 - c0) / ((t1 - t0) * 1e-9))
    rates.sort()
    return rates[len(rates) // 2]


ADDS_PER_TRIP = 64


@functools.lru_cache(maxsize=1)
def _add_chain():
    """A ctypes function running ``n`` trips of 64 dependent ``addq %rdx, %rax`` (plus a decrement and
    branch that run in parallel with the chain), or None when it cannot be built on this host. The
    addend is a register: recent Intel cores (Golden Cove) fold chains of *immediate* adds at rename,
    which would make the chain run faster than one add per cycle."""
    body = (
        "xorl %eax, %eax\\0Amovl $$1, %edx\\0A1:\\0A"
        + "addq %rdx, %rax\\0A" * ADDS_PER_TRIP
        + "decq %rcx\\0Ajnz 1b"
    )
    return _asm_loop("vtpu_add_chain", body, "~{rdx}")


def _asm_loop(name: str, body: str, clobbers: str):
    """A ctypes ``u64 name(u64 n)`` running the x86 loop ``body`` (rcx counts the trips; the result is
    rax), or None when it cannot be built on this host (no llvmlite, not x86)."""
    try:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        llvm.initialize_native_asmparser()  # inline asm needs the parser (else LLVM aborts the process)
        ir = f"""
        define i64 @{name}(i64 %n) {{
          %r = call {{i64, i64}} asm sideeffect "{body}", "=&{{rax}},={{rcx}},1,{clobbers},~{{flags}}"(i64 %n)
          %a = extractvalue {{i64, i64}} %r, 0
          ret i64 %a
        }}
        """
        mod = llvm.parse_assembly(ir)
        tm = llvm.Target.from_default_triple().create_target_machine(cpu=llvm.get_host_cpu_name())
        ee = llvm.create_mcjit_compiler(mod, tm)
        ee.finalize_object()
        addr = ee.get_function_address(name)
        _KEEP.append((ee, mod))
        return ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint64)(addr)
    except Exception:  # pragma: no cover - non-x86 hosts
        return None


def core_clock(window_s: float = 0.001, windows: int = 21) -> dict:
    """Core cycles per TSC tick, measured now: the highest of ``windows`` add-chain runs of ~``window_s``.

    The highest, not the median: a window in which the thread was preempted (the TSC keeps counting) or
    interrupted can only read low, and on a shared 2-core VM a 10 ms window is preempted half the time.
    Returns {"core_per_tsc", "core_hz", "method"}; core_per_tsc is None when it cannot be measured."""
    chain, tsc = _add_chain(), tsc_reader()
    hz = tsc_hz()
    if chain is None or tsc is None or not hz:
        return {"core_per_tsc": None, "core_hz": None, "method": "not measured (no TSC or no x86 JIT)"}
    trips = max(1000, int(window_s * hz / ADDS_PER_TRIP))  # ~window_s if the core ran at the TSC rate
    chain(1000)  # warm up (page in, wake the core)
    ratios = []
    for _ in range(windows):
        t0 = tsc()
        n = chain(trips)
        t1 = tsc()
        if n != trips * ADDS_PER_TRIP:  # pragma: no cover - the chain did not run as written
            return {"core_per_tsc": None, "core_hz": None, "method": "add chain returned a wrong sum"}
        ratios.append(trips * ADDS_PER_TRIP / (t1 - t0))
    r = max(ratios)
    return {
        "core_per_tsc": r,
        "core_hz": r * hz,
        "method": f"{ADDS_PER_TRIP} dependent 64-bit adds per trip (1 core cycle each) timed with rdtsc, "
        f"highest of {windows} windows of {window_s * 1e3:g} ms",
    }


ALU_CHAINS = 8
ALU_ROUNDS = 8  # adds per trip: ALU_CHAINS x ALU_ROUNDS


@functools.lru_cache(maxsize=1)
def _alu_probe():
    """A ctypes function running ``n`` trips of 64 register adds in 8 independent chains, or None.

    Unlike the add chain it is throughput-bound: a core retires it at about as many adds per cycle as it
    has integer ALUs (~4.7 of a 4.85 ceiling on a Golden Cove-class core: 64 adds and a decrement-and-
    branch on 5 ALUs). It touches no memory, so when it reads low at a steady clock the core itself was
    delivering less -- on a VM, typically the other hardware thread of the physical core running
    someone else's work -- and no layout, cache or scheduling effect of this process can explain it."""
    regs = ("rax", "rbx", "rsi", "rdi", "r8", "r9", "r10", "r11")
    zero = "".join(f"xorq %{r}, %{r}\\0A" for r in regs)
    adds = "".join(f"addq %rdx, %{r}\\0A" for r in regs) * ALU_ROUNDS
    body = zero + "movl $$1, %edx\\0A1:\\0A" + adds + "decq %rcx\\0Ajnz 1b"
    return _asm_loop("vtpu_alu_probe", body, ",".join(f"~{{{r}}}" for r in ("rdx", *regs[1:])))


def clock_sample(window_s: float = 0.0005, windows: int = 5) -> dict:
    """The core clock and the core's ALU throughput, measured now (cheap enough to take around every
    timed run): {"core_per_tsc", "alu_per_cycle"} (None where not measurable).

    ``core_per_tsc`` is :func:`core_clock`'s (highest of ``windows`` add-chain windows); ``alu_per_cycle``
    is the independent-adds probe's adds per core cycle (highest of ``windows`` windows; see
    :func:`_alu_probe`): a figure that says whether the core was this process's alone while the run
    beside it was timed. It is reported, never used to correct a measurement."""
    clock = core_clock(window_s, windows)
    r = clock["core_per_tsc"]
    probe, tsc = _alu_probe(), tsc_reader()
    if r is None or probe is None or tsc is None:
        return {"core_per_tsc": r, "alu_per_cycle": None}
    adds = ALU_CHAINS * ALU_ROUNDS
    trips = max(100, int(window_s * tsc_hz() * r * 4 / adds))  # ~window_s at 4 adds per core cycle
    probe(100)
    best = 0.0
    for _ in range(windows):
        t0 = tsc()
        n = probe(trips)
        t1 = tsc()
        if n != trips * ALU_ROUNDS:  # pragma: no cover - the probe did not run as written
            return {"core_per_tsc": r, "alu_per_cycle": None}
        best = max(best, trips * adds / (t1 - t0))
    return {"core_per_tsc": r, "alu_per_cycle": best / r}


def reported_mhz() -> float:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1])
    except OSError:
        pass
    return 0.0


def cycle_source() -> dict:
    """What cycles mean in reports on this host."""
    hz = tsc_hz()
    return {
        "source": "tsc" if hz else "wall-clock",
        "tsc_hz": hz,
        "reported_mhz": reported_mhz(),
        "note": "TSC ticks (constant rate); hardware cycle counters are not exposed here"
        if hz
        else "no TSC: cycles are not available",
    }
