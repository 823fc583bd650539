"""Tier-0 JIT compile cost by phase: CPU milliseconds per 1,000 SIWs on the bench programs (issue #13).

    python benchmarks/jit_compile.py [--runs 3] [--json] [PROGRAM ...]

For each ``vtpu_cli/bench/programs/*.vasm`` (or the named ones): assemble, then time with
``time.process_time()`` the phases of a tier-0 compile as ``compile._compile_object`` runs them --
``build`` (``build_tier0``: the Python IR builder), ``parse`` (``llvm.parse_assembly`` + verify),
``opt`` (``_all_cold`` + ``_optimise_all(mod, tm, 0)``) and ``emit`` (``_emit_object``: ``tm.emit_object``
with the options ``_compile_object`` sets, such as no register coalescing for large IR). Each
phase's time is the median of ``--runs`` runs; the table gives ms per 1,000 SIWs per program and over
all of them (the sum of the medians over the sum of the SIWs), and the one-time cost of the tier-0
runtime (``compile._runtime``: the PPT helpers every tier-0 program calls, compiled once per process).
Not a test: timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from pathlib import Path

from llvmlite import binding as llvm

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.engines.jit import compile as jc

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ROOT / "vtpu_cli" / "bench" / "programs"
PHASES = ("build", "parse", "opt", "emit")


def one(prog, v, tm) -> tuple[dict[str, float], int]:
    """CPU seconds of each phase of one tier-0 compile, and the IR's line count."""
    t: dict[str, float] = {}
    gc.collect()
    c0 = time.process_time()
    text, _ = jc.build_tier0(prog, v)
    c1 = time.process_time()
    mod = llvm.parse_assembly(text)
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    mod.verify()
    c2 = time.process_time()
    jc._all_cold(mod)
    jc._optimise_all(mod, tm, jc.TIER0_OPT)
    c3 = time.process_time()
    jc._emit_object(tm, mod, text)
    c4 = time.process_time()
    t["build"], t["parse"], t["opt"], t["emit"] = c1 - c0, c2 - c1, c3 - c2, c4 - c3
    return t, text.count("\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("programs", nargs="*", help="program names (default: all bench programs)")
    a = ap.parse_args()
    jc._init()
    cpu, feats = jc.host_target()
    v = jc._Variant("none", False, 64, cpu, feats, 4, False, True, lift=True)
    tm = jc._target_machine(cpu, feats, opt=jc.TIER0_CODEGEN)
    c0 = time.process_time()
    jc._runtime(v)  # the PPT helpers tier-0 code calls: compiled once per process (not per program)
    runtime_ms = 1000 * (time.process_time() - c0)
    paths = sorted(PROGRAMS.glob("*.vasm"))
    if a.programs:
        paths = [p for p in paths if p.stem in a.programs]
    rows = []
    for p in paths:
        prog = assemble(p.read_text(), str(p), base_dir=str(p.parent))
        runs = []
        for _ in range(a.runs):
            t, lines = one(prog, v, tm)
            runs.append(t)
        med = {k: statistics.median(r[k] for r in runs) for k in PHASES}
        rows.append({"program": p.stem, "siws": len(prog.code), "ir_lines": lines, **med})
    total = {"program": "total", "siws": sum(r["siws"] for r in rows)}
    total["ir_lines"] = sum(r["ir_lines"] for r in rows)
    for k in PHASES:
        total[k] = sum(r[k] for r in rows)
    rows.append(total)
    if a.json:
        print(json.dumps({"programs": rows, "runtime_once_ms": runtime_ms}, indent=1))
        return
    print(f"{'program':<18}{'SIWs':>6}{'IR/SIW':>8}" + "".join(f"{k:>8}" for k in PHASES) + f"{'total':>8}")
    print(f"  (CPU ms per 1,000 SIWs, median of {a.runs} runs per phase)")
    for r in rows:
        per = {k: 1e6 * r[k] / r["siws"] for k in PHASES}
        print(
            f"{r['program']:<18}{r['siws']:>6}{r['ir_lines'] / r['siws']:>8.1f}"
            + "".join(f"{per[k]:>8.0f}" for k in PHASES)
            + f"{sum(per.values()):>8.0f}"
        )
    print(f"  + the tier-0 runtime (PPT helpers), once per process: {runtime_ms:.0f} CPU ms")


if __name__ == "__main__":
    main()
