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


def time_sides(argv_env: dict[str, tuple[list[str], dict]], runs: int) -> dict[str, float]:
    """Median wall ms per side; the sides alternate run by run so both see the same machine load."""
    for argv, env in argv_env.values():
        # warm caches, untimed; the cwd is neutral so `python -m` cannot pick up the wrong checkout
        subprocess.run(argv, env=env, capture_output=True, check=False, cwd=env["VTPU_BENCH_CWD"])
    ts: dict[str, list[float]] = {side: [] for side in argv_env}
    for _ in range(runs):
        for side, (argv, env) in argv_env.items():
            t0 = time.perf_counter()
            subprocess.run(argv, env=env, capture_output=True, check=False, cwd=env["VTPU_BENCH_CWD"])
            ts[side].append(time.perf_counter() - t0)
    return {side: statistics.median(v) * 1e3 for side, v in ts.items()}


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
    head = f"{'command':32} {'current ms':>11}" + (f" {'baseline ms':>12} {'ratio':>7}" if a.baseline else "")
    print(f"median of {a.runs} runs each\n" + head)
    for name, r in results.items():
        line = f"{name:32} {r['current']:11.1f}"
        if a.baseline:
            line += f" {r['baseline']:12.1f} {r['baseline'] / r['current']:6.2f}x"
        print(line)


if __name__ == "__main__":
    main()
