"""phextcc compile speed in IR ops/s (issue #13's target: >= 200k on every program below).

    python benchmarks/phx_speed.py                   # fresh process per compile, median of --runs
    python benchmarks/phx_speed.py --warm            # in one process, after one warm-up compile
    python benchmarks/phx_speed.py --tree A --tree B # two source trees alternated run by run (A/B)
    python benchmarks/phx_speed.py --instructions --tree A --tree B  # instruction counts (valgrind)

Each measurement is the CPU time (``time.process_time``: the build machine is shared, wall time is
inflated by load) of one ``compile_phx`` call -- parse, lowering, register allocation, scheduling, the
Program and its report -- in a fresh Python process with the compiler (and numpy, which it imports
lazily) imported: what ``vtpu cc`` pays beyond the interpreter start-up and imports, or with ``--warm`` in a process that has compiled the
program once already. IR ops are the level-1 IR instructions (``--report``'s ``ir_ops``); IR ops/s
is IR ops / compile time (what ``--report`` prints). The ``.siw`` encoding of the result
(``siwfile.encode``, which ``vtpu cc`` runs after the compile) is timed apart. With
several ``--tree`` the trees take turns (run 1 of every tree, then run 2, ...), so load changes on a
shared machine hit both alike; every tree compiles the same source text (generated once, here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from phx_compile import layer_src, model_src  # noqa: E402

MATMUL = "input x: f32[{m}, {k}]\nweight w: f32[{k}, {n}]\noutput y: f32[{m}, {n}]\ny = matmul(x, w)\n"


def programs() -> list[tuple[str, str, dict]]:
    """(name, source, compile_phx keyword arguments): the programs issue #13's speed target names."""
    return [
        ("model 30 layers D=2560 -O2", model_src(2560), {"opt": 2, "force_loops": True}),
        ("model 30 layers D=1024 -O2", model_src(1024), {"opt": 2, "force_loops": True}),
        ("layer D=2560 -O3", layer_src(2560), {"opt": 3}),
        ("matmul 16x64x64 -O2", MATMUL.format(m=16, k=64, n=64), {"opt": 2}),
        ("programs/phx/mlp.phx -O2", (ROOT / "programs" / "phx" / "mlp.phx").read_text(), {"opt": 2}),
        ("tiny model 16 sentrons -O2", tiny_model_src(), {"opt": 2, "sentrons": 16, "force_loops": True}),
    ]


def tiny_model_src() -> str:
    """A 2-layer model step at hidden 64 (issue #13's per-sentron code: compiled for 16 sentrons)."""
    from vtpu_cli.models.compiled import StepShape

    return StepShape(64, 128, 2, 1, 32, 2, 256, 64, 1e-5).text()


# the child: compile the file given in argv once (or warm + repeat times), print JSON; with a fourth
# argument "imports" it stops after the imports, with "compile" after one compile (--instructions)
CHILD = r"""
import json, sys, time
import numpy  # imported lazily by the compile (constant data): an import, not compile time
from vtpu_cli.compiler import compile_phx
from vtpu_cli.binary.siwfile import encode
src = open(sys.argv[1]).read()
kw = json.loads(sys.argv[2])
warm = int(sys.argv[3])
if sys.argv[4:] == ["imports"]:
    raise SystemExit(0)
if sys.argv[4:] == ["compile"]:
    compile_phx(src, "bench.phx", **kw)
    raise SystemExit(0)
times, enc = [], []
for k in range(warm + 1 if warm else 1):
    t0 = time.process_time()
    prog, rep = compile_phx(src, "bench.phx", **kw)
    t1 = time.process_time()
    encode(prog)
    times.append(t1 - t0)
    enc.append(time.process_time() - t1)
keep = slice(1, None) if warm else slice(None)
print(json.dumps({"ir_ops": rep["total"]["ir_ops"], "siws": rep["total"]["siws"], "times": times[keep], "enc": enc[keep]}))
"""


def run_child(tree: Path, path: str, kw: dict, warm: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), VTPU_PHX_TUNE="0")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, path, json.dumps(kw), str(warm)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=str(tree),
    )
    return json.loads(out.stdout)


def instructions(tree: Path, path: str, kw: dict) -> int:
    """Machine instructions of one fresh-process compile: the child under valgrind's instruction
    counter (cachegrind without cache simulation), once compiling (no .siw encoding) and once stopping
    after the imports, the difference. Unlike CPU time it does not move with the load of a shared
    machine (fixed hash seed, no address randomisation, one BLAS thread: identical runs count
    identically), so two trees compare in one run each; it weighs every instruction alike (no cache
    misses), so it ranks changes rather than predicting milliseconds."""
    # one BLAS thread: numpy's import starts OpenBLAS workers whose spin-waits count instructions by
    # the clock (1.5M-instruction steps between identical runs); hash seed fixed
    env = dict(os.environ, PYTHONPATH=str(tree), VTPU_PHX_TUNE="0", PYTHONHASHSEED="0")
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # address-space randomisation off where setarch can (object addresses order the sets of IR
    # registers): identical runs then count identically
    norandom = ["setarch", platform.machine(), "-R"] if shutil.which("setarch") else []
    counts = []
    for extra in ("imports", "compile"):
        out = subprocess.run(
            [*norandom, "valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
            + [sys.executable, "-c", CHILD, path, json.dumps(kw), "0", extra],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=str(tree),
        ).stderr
        m = re.search(r"I\s+refs:\s+([\d,]+)", out)
        if m is None:
            raise SystemExit(f"no instruction count in valgrind's output:\n{out[-2000:]}")
        counts.append(int(m.group(1).replace(",", "")))
    return counts[1] - counts[0]


def main_instructions(trees: list[Path], progs: list, files: dict) -> None:
    print("phextcc compile, machine instructions of one fresh-process compile (valgrind)")
    print("| program | tree | IR ops | M instructions | instructions per IR op |")
    print("|---|---|---|---|---|")
    got: dict = {}
    for name, _, kw in progs:
        ops = run_child(trees[0], str(files[name]), kw, 0)["ir_ops"]
        for t in trees:
            n = got[(str(t), name)] = instructions(t, str(files[name]), kw)
            print(f"| {name} | {t.name} | {ops:,} | {n / 1e6:.1f} | {n / ops:,.0f} |")
    if len(trees) == 2:
        print()
        for name, _, _ in progs:
            b, n = (got[(str(t), name)] for t in trees)
            print(f"{name}: {trees[0].name} / {trees[1].name} = {b / n:.3f}x instructions")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="measurements per program and tree (median)")
    ap.add_argument("--tree", action="append", type=Path, help="source tree (default: this one)")
    ap.add_argument("--warm", action="store_true", help="in-process: one warm-up, then --runs compiles")
    ap.add_argument("--only", default="", help="programs whose name contains this text")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument(
        "--instructions",
        action="store_true",
        help="count machine instructions under valgrind instead of timing (load-independent)",
    )
    a = ap.parse_args()
    if a.instructions and shutil.which("valgrind") is None:
        print("phx_speed.py: --instructions needs valgrind on PATH", file=sys.stderr)
        return 2
    trees = [t.resolve() for t in (a.tree or [ROOT])]
    progs = [p for p in programs() if a.only in p[0]]
    times: dict = {(str(t), name): [] for t in trees for name, _, _ in progs}
    enc: dict = {(str(t), name): [] for t in trees for name, _, _ in progs}
    meta: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for k, (name, src, _) in enumerate(progs):
            files[name] = Path(tmp) / f"p{k}.phx"
            files[name].write_text(src)
        if a.instructions:
            main_instructions(trees, progs, files)
            return 0
        rounds = 1 if a.warm else a.runs
        for _ in range(rounds):
            for name, _, kw in progs:
                for t in trees:
                    r = run_child(t, str(files[name]), kw, a.runs if a.warm else 0)
                    times[(str(t), name)] += r["times"]
                    enc[(str(t), name)] += r["enc"]
                    meta[(str(t), name)] = (r["ir_ops"], r["siws"])
    mode = "warm, in-process" if a.warm else "fresh process"
    print(f"phextcc compile CPU time, median of {a.runs} ({mode})")
    print("| program | tree | IR ops | SIWs | compile CPU ms | IR ops/s | + encode ms |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for name, _, _ in progs:
        for t in trees:
            ops, siws = meta[(str(t), name)]
            ms = statistics.median(times[(str(t), name)]) * 1e3
            ems = statistics.median(enc[(str(t), name)]) * 1e3
            rows.append(
                {"program": name, "tree": str(t), "ir_ops": ops, "siws": siws, "ms": ms, "encode_ms": ems}
            )
            print(f"| {name} | {t.name} | {ops:,} | {siws:,} | {ms:.1f} | {ops / ms:.0f}k | {ems:.1f} |")
    if len(trees) == 2:
        print()
        for name, _, _ in progs:
            b, n = (statistics.median(times[(str(t), name)]) for t in trees)
            eb, en = (statistics.median(enc[(str(t), name)]) for t in trees)
            print(f"{name}: {trees[0].name} / {trees[1].name} = {b / n:.2f}x compile, {eb / en:.2f}x encode")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
