"""Start-up benchmark: wall time of short vtpu commands, median of N runs each (issue #16).

    python benchmarks/startup.py [--runs 10] [--baseline PATH] [--json]

Each command runs as a fresh process, as a user or CI would run it. The JIT cache and the grammar cache
are warmed by one untimed run first, so "run" measures a cached run. ``--baseline PATH`` times the same
commands from another checkout (e.g. a ``git worktree`` of an older commit) in the same session and
prints the ratio, so both sides see the same machine load. Not a test: timings are reported, never
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commands(tmp: str) -> dict[str, list[str]]:
    vadd = str(ROOT / "programs" / "vadd.vasm")
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "vtpu --help": ["--help"],
        "vtpu asm vadd.vasm": ["asm", vadd, "-o", os.path.join(tmp, "vadd.siw")],
        "vtpu run vadd.vasm (cached)": ["run", vadd],
    }


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_sides(argv_env: dict[str, tuple[list[str], dict]], runs: int) -> dict[str, float]:
    """Median wall ms (and CPU ms, ``<side>_cpu``: user + system of the process, which a loaded machine
    inflates less than wall time) per side; the sides alternate run by run so both see the same load."""
    for argv, env in argv_env.values():
        # warm caches, untimed; the cwd is neutral so `python -m` cannot pick up the wrong checkout
        subprocess.run(argv, env=env, capture_output=True, check=False, cwd=env["VTPU_BENCH_CWD"])
    ts: dict[str, list[float]] = {side: [] for side in argv_env}
    cpu: dict[str, list[float]] = {side: [] for side in argv_env}
    for _ in range(runs):
        for side, (argv, env) in argv_env.items():
            c0, t0 = _child_cpu(), time.perf_counter()
            subprocess.run(argv, env=env, capture_output=True, check=False, cwd=env["VTPU_BENCH_CWD"])
            ts[side].append(time.perf_counter() - t0)
            cpu[side].append(_child_cpu() - c0)
    out = {side: statistics.median(v) * 1e3 for side, v in ts.items()}
    out.update({f"{side}_cpu": statistics.median(v) * 1e3 for side, v in cpu.items()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--baseline", help="another checkout to time the same commands from")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="vtpu-startup-")
    sides = {"current": str(ROOT)}
    if a.baseline:
        sides["baseline"] = str(Path(a.baseline).resolve())
    results: dict[str, dict[str, float]] = {}
    for name, argv in commands(tmp).items():
        full = argv if argv[0] == sys.executable else [sys.executable, "-m", "vtpu_cli.cli.main", *argv]
        per_side = {
            side: (
                full,
                dict(
                    os.environ,
                    PYTHONPATH=root,
                    VTPU_CACHE_DIR=os.path.join(tmp, f"cache-{side}"),
                    VTPU_BENCH_CWD=tmp,
                    # byte-code as an installed package has it (pip compiles it at install time), kept
                    # out of the checkout; PYTHONDONTWRITEBYTECODE in the caller's environment is lifted
                    PYTHONPYCACHEPREFIX=os.path.join(tmp, f"pyc-{side}"),
                    PYTHONDONTWRITEBYTECODE="",
                ),
            )
            for side, root in sides.items()
        }
        results[name] = time_sides(per_side, a.runs)
    if a.json:
        print(json.dumps({"runs": a.runs, "median_ms": results}, indent=2))
        return
    head = f"{'command':30} {'wall ms':>8} {'cpu ms':>7}"
    if a.baseline:
        head += f" {'base wall':>10} {'base cpu':>9} {'wall ratio':>10}"
    print(f"median of {a.runs} runs each (load average {os.getloadavg()[0]:.1f})\n" + head)
    for name, r in results.items():
        line = f"{name:30} {r['current']:8.1f} {r['current_cpu']:7.1f}"
        if a.baseline:
            line += f" {r['baseline']:10.1f} {r['baseline_cpu']:9.1f} {r['baseline'] / r['current']:9.2f}x"
        print(line)


if __name__ == "__main__":
    main()
