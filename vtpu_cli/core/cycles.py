"""CPU cycle measurement: the time-stamp counter (TSC) and its frequency.

Hardware cycle counters (perf) are not exposed on the VMs this project runs on, so cycles are TSC
ticks: read with ``rdtsc`` through a three-instruction function compiled once with llvmlite, and
converted with the TSC frequency, calibrated against ``time.perf_counter_ns`` (and compared with the
kernel's reported ``cpu MHz``). Every report says which source it used.
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


@functools.lru_cache(maxsize=1)
def tsc_hz(calibrate_s: float = 0.05) -> float:
    """TSC ticks per second, calibrated against the monotonic clock (median of 5 windows)."""
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
