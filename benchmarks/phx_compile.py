"""phextcc compile speed at model scale: SIWs, compile time and IR ops/s against hidden size.

    python benchmarks/phx_compile.py                 # the table of docs/phx.md (median of --repeat runs)
    python benchmarks/phx_compile.py --digest F.json # SHA-256 of the .siw bytes of every corpus program
    python benchmarks/phx_compile.py --check F.json  # compare against a saved digest (exit 1 on change)

Programs: ``programs/phx/bitnet_layer.phx`` (one decoder layer for one token) with its shape constants
replaced, and the shipped model program ``vtpu_cli/models/phx/bitnet.phx`` with a 30-layer shape header
(``vtpu_cli/models/compiled.py``), compiled as the model runner compiles it (``-O2``, loop lowering).
The digest corpus adds every ``programs/phx`` example at -O0..-O3 (tuning off: deterministic).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vtpu_cli.binary.siwfile import encode  # noqa: E402
from vtpu_cli.compiler import compile_phx  # noqa: E402

# hidden -> (ffn, heads, kv heads, head dim): BitNet-like proportions (2560 is BitNet b1.58 2B4T)
SHAPES = {
    256: (704, 4, 2, 64),
    512: (1408, 8, 2, 64),
    1024: (2816, 16, 4, 64),
    2560: (6912, 20, 5, 128),
}


def layer_src(d: int) -> str:
    f, h, g, hd = SHAPES[d]
    text = (ROOT / "programs" / "phx" / "bitnet_layer.phx").read_text()
    for k, v in dict(D=d, F=f, H=h, G=g, HD=hd, KV=g * hd, T=4096).items():
        text = re.sub(rf"^const {k} = \d+", f"const {k} = {v}", text, flags=re.M)
    return text


def model_src(d: int, layers: int = 30) -> str:
    from vtpu_cli.models.compiled import StepShape

    f, h, g, hd = SHAPES[d]
    return StepShape(d, f, h, g, hd, layers, 128256, 4096, 1e-5).text()


def programs() -> list[tuple[str, str, dict]]:
    """(name, source, compile_phx keyword arguments) of the digest corpus."""
    out = []
    for p in sorted((ROOT / "programs" / "phx").glob("*.phx")):
        for opt in (0, 1, 2, 3):
            out.append((f"{p.name} -O{opt}", p.read_text(), {"opt": opt}))
    for d in SHAPES:
        out.append((f"layer D={d}", layer_src(d), {"opt": 3}))
        out.append((f"model30 D={d}", model_src(d), {"opt": 2, "force_loops": True}))
    out += [(n, s, kw) for n, s, kw in straight_line() if n.startswith("matmul")]
    lets = "\n".join(f"let v{i}: f32x16 = load(x, {i * 64})" for i in range(40))  # 40 live vectors: spills
    spill = f"input x: f32[640]\noutput y: f32[16]\n{lets}\nlet s: f32x16 = {' + '.join(f'v{i}' for i in range(40))}\n"
    spill += "store(y, 0, s)\n"
    for n in (1, 2):
        out.append((f"spilling, {n} sentron(s)", spill, {"opt": 2, "sentrons": n}))
    return out


def straight_line() -> list[tuple[str, str, dict]]:
    """Unrolled (straight-line) programs, where per-op costs dominate, and the shipped examples."""
    mm = "input x: f32[{m}, {k}]\nweight w: f32[{k}, {n}]\noutput y: f32[{m}, {n}]\ny = matmul(x, w)\n"
    out = [
        ("matmul 16x64x64", mm.format(m=16, k=64, n=64), {"opt": 2}),
        ("matmul 8x32x48", mm.format(m=8, k=32, n=48), {"opt": 2}),
    ]
    for p in ("mlp", "lm_head", "ternary_mlp"):
        out.append(
            (f"programs/phx/{p}.phx", (ROOT / "programs" / "phx" / f"{p}.phx").read_text(), {"opt": 2})
        )
    return out


def digest() -> dict[str, str]:
    res = {}
    for name, src, kw in programs():
        prog, _ = compile_phx(src, name, **kw)
        res[name] = hashlib.sha256(encode(prog)).hexdigest()
    return res


def measure(src: str, repeat: int, **kw) -> dict:
    times, rep = [], None
    for _ in range(repeat):  # CPU time: the build machine is shared, wall time is inflated by load
        t0 = time.process_time()
        _, rep = compile_phx(src, "bench.phx", **kw)
        times.append(time.process_time() - t0)
    t = statistics.median(times)
    return {
        "siws": rep["total"]["siws"],
        "ir_ops": rep["total"]["ir_ops"],
        "s": t,
        "ops_s": rep["total"]["ir_ops"] / t,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digest", metavar="FILE")
    ap.add_argument("--check", metavar="FILE")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args()
    if a.digest:
        Path(a.digest).write_text(json.dumps(digest(), indent=1))
        return 0
    if a.check:
        want = json.loads(Path(a.check).read_text())
        got = digest()
        bad = [k for k in want if got.get(k) != want[k]]
        for k in bad:
            print(f"CHANGED: {k}")
        print(f"{len(want) - len(bad)}/{len(want)} programs bit-identical")
        return 1 if bad else 0
    compile_phx(layer_src(256), "warm.phx", opt=3)  # grammar tables, imports
    rows = {}
    print(
        "| D | layer SIWs | layer IR ops | layer compile | layer IR ops/s | 30-layer SIWs | IR ops | compile | IR ops/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for d in SHAPES:
        lay = measure(layer_src(d), a.repeat, opt=3)
        mod = measure(model_src(d), a.repeat, opt=2, force_loops=True)
        rows[d] = {"layer": lay, "model": mod}
        print(
            f"| {d} | {lay['siws']:,} | {lay['ir_ops']:,} | {lay['s']:.3f} s | {lay['ops_s'] / 1e3:.0f}k "
            f"| {mod['siws']:,} | {mod['ir_ops']:,} | {mod['s']:.3f} s | {mod['ops_s'] / 1e3:.0f}k |",
            flush=True,
        )
    print()
    print("| program | SIWs | IR ops | compile | IR ops/s |")
    print("|---|---|---|---|---|")
    for name, src, kw in straight_line():
        r = measure(src, a.repeat, **kw)
        rows[name] = r
        print(
            f"| {name} | {r['siws']:,} | {r['ir_ops']:,} | {r['s'] * 1e3:.0f} ms | {r['ops_s'] / 1e3:.0f}k |",
            flush=True,
        )
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
