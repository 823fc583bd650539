"""The numpy side of every benchmark: generated inputs, the reference check, the work a run
represents and the same work done by numpy (the baseline). Manifests name their case by `reference`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vtpu_cli.core import coords


@dataclass
class Case:
    inputs: Callable  # (params, rng) -> {packed coord: (dtype, shape, bytes)}
    check: Callable  # (result, program, inputs, params) -> (ok, detail)
    work: Callable  # (params, sentrons) -> {"flop": n, "weights": n, "bytes": n, "messages": n}
    baseline: Callable | None = (
        None  # (inputs, params) -> zero-argument callable doing the same work in numpy
    )


CASES: dict[str, Case] = {}


def case(name: str):
    def deco(fn):
        CASES[name] = Case(**fn())
        return fn

    return deco


def no_inputs(params, rng) -> dict:
    return {}


def scroll(result, program, name: str, dtype) -> np.ndarray:
    sc = result.memory.table.get(program.coord_names[name])
    if sc is None:
        raise KeyError(f"scroll {name} missing")
    return np.frombuffer(bytes(sc.buf), dtype)


def f32_reg(v: int) -> float:
    return float(np.array([v & 0xFFFFFFFF], "<u4").view("<f4")[0])


def _ok(cond: bool, detail: str) -> tuple[bool, str]:
    return bool(cond), "" if cond else detail


def row_coord(base: str, k: int) -> int:
    """Coordinate of row k of a table starting at `base`, as SINDEX.carry along the scroll gives it."""
    return coords.advance_packed(coords.parse_packed(base), 8, k, "carry")


# ----------------------------------------------------------------------------- streams
@case("d_heavy")
def _d_heavy():
    def check(res, prog, inp, p):
        acc = scroll(res, prog, "ACC", "<f4")
        return _ok(np.all(acc == np.float32(0.5 * p["ITERS"])), f"ACC[0] = {acc[0]}, want {0.5 * p['ITERS']}")

    return {"inputs": no_inputs, "check": check, "work": lambda p, n: {"flop": p["ITERS"] * 4 * 16 * 2}}


@case("s_heavy")
def _s_heavy():
    def check(res, prog, inp, p):
        out = scroll(res, prog, "OUT", "<i4")
        x = np.arange(64, dtype=np.int32)
        want = np.concatenate([x[:16] + x[1:32:2], x[16:32], x[1:32:2]])
        r5 = res.sentrons[0].R[5]
        return _ok(np.array_equal(out, want) and r5 == 3 * (p["ITERS"] - 1), f"OUT/r5 mismatch (r5={r5})")

    return {"inputs": no_inputs, "check": check, "work": lambda p, n: {"bytes": p["ITERS"] * (64 * 6 + 4)}}


@case("c_heavy")
def _c_heavy():
    def check(res, prog, inp, p):
        s = res.sentrons[0]
        n = p["ITERS"]
        return _ok(s.R[4] == n - 1 and s.R[6] == n * (n - 1) // 2, f"r4={s.R[4]} r6={s.R[6]}")

    return {
        "inputs": no_inputs,
        "check": check,
        "work": lambda p, n: {"messages": p["ITERS"], "bytes": 8 * p["ITERS"]},
    }


@case("balanced")
def _balanced():
    def check(res, prog, inp, p):
        want = np.float32(0.5 * p["ITERS"])
        accs = [
            np.frombuffer(bytes(res.memory.table[coords.home_packed(s.id)].buf), "<f4") for s in res.sentrons
        ]
        good = all(s.R[4] == p["ITERS"] - 1 for s in res.sentrons)
        return _ok(all(np.all(a == want) for a in accs) and good, f"ACC[0] = {accs[0][0]}, want {want}")

    return {"inputs": no_inputs, "check": check, "work": lambda p, n: {"flop": n * p["ITERS"] * 16 * 2}}


@case("double_buffer")
def _double_buffer():
    def inputs(p, rng):
        x = rng.integers(-9, 10, (3, 16)).astype(np.float32)
        tiles = np.concatenate([x, 1 - x])  # every lane of a round sums to 3 (exact for any ITERS < 5e6)
        return {coords.parse_packed("1.2.5/1.1.1/1.1.1"): ("f32", (6, 16), tiles.tobytes())}

    def check(res, prog, inp, p):
        x = np.frombuffer(next(iter(inp.values()))[2], np.float32).reshape(6, 16)
        y = scroll(res, prog, "Y", "<f4").reshape(6, 16)
        acc = scroll(res, prog, "ACC", "<f4")
        want_acc = np.float32(p["ITERS"] * 9)
        return _ok(
            np.array_equal(y, 3 * x) and np.all(acc == want_acc), f"ACC[0] = {acc[0]}, want {want_acc}"
        )

    return {
        "inputs": inputs,
        "check": check,
        "work": lambda p, n: {"flop": p["ITERS"] * 6 * 16 * 2, "bytes": p["ITERS"] * 6 * 128},
    }


# ----------------------------------------------------------------------------- kernels with useful work
def pack_codes(codes: np.ndarray) -> np.ndarray:
    """Ternary codes (0, 1, 2) -> packed bytes, code k at bits 2*(k%4) of byte k//4, row by row."""
    c = codes.reshape(codes.shape[0], -1, 4).astype(np.uint8)
    return (c[..., 0] | (c[..., 1] << 2) | (c[..., 2] << 4) | (c[..., 3] << 6)).astype(np.uint8)


@case("ternary_gemv")
def _ternary_gemv():
    def inputs(p, rng):
        rows = p["ROWS"]
        codes = rng.integers(0, 3, (rows + 1, 1024), dtype=np.uint8)  # + one padding row (prefetched)
        x = rng.integers(-128, 128, 1024, dtype=np.int8)
        return {
            coords.parse_packed("1.2.6/1.1.1/1.1.1"): ("t2", (rows + 1, 1024), pack_codes(codes).tobytes()),
            coords.parse_packed("1.2.6/1.1.1/1.1.2"): ("i8", (1024,), x.tobytes()),
            coords.parse_packed("1.2.6/1.1.1/1.1.3"): ("i32", (rows,), bytes(4 * rows)),
            "_codes": codes,
        }

    def check(res, prog, inp, p):
        w = inp["_codes"][: p["ROWS"]].astype(np.int32) - 1
        x = np.frombuffer(inp[coords.parse_packed("1.2.6/1.1.1/1.1.2")][2], np.int8).astype(np.int32)
        y = scroll(res, prog, "Y", "<i4")
        want = w @ x
        bad = np.nonzero(y != want)[0]
        return _ok(bad.size == 0, f"{bad.size} rows differ, first row {bad[0] if bad.size else -1}")

    def baseline(inp, p):
        w = inp["_codes"][: p["ROWS"]].astype(np.float32) - 1
        x = np.frombuffer(inp[coords.parse_packed("1.2.6/1.1.1/1.1.2")][2], np.int8).astype(np.float32)
        return lambda: w @ x  # OpenBLAS sgemv on the same weights (as f32)

    return {
        "inputs": inputs,
        "check": check,
        "baseline": baseline,
        "work": lambda p, n: {
            "weights": p["ROWS"] * 1024,
            "flop": 2 * p["ROWS"] * 1024,
            "bytes": p["ROWS"] * 256,
        },
    }


@case("f32_gemm")
def _f32_gemm():
    def inputs(p, rng):
        m = 4 * p["BLOCKS"]
        a = rng.integers(-4, 5, (m, 64)).astype(np.float32)  # small integers: every sum is exact
        b = rng.integers(-4, 5, (64, 64)).astype(np.float32)
        out = {row_coord("1.2.7/1.1.1/1.1.1", i): ("f32", (64,), a[i].tobytes()) for i in range(m)}
        out.update({row_coord("1.2.7/1.1.3/1.1.1", i): ("f32", (64,), bytes(256)) for i in range(m)})
        out[coords.parse_packed("1.2.7/1.1.2/1.1.1")] = ("f32", (64, 64), b.tobytes())
        out["_a"], out["_b"] = a, b
        return out

    def check(res, prog, inp, p):
        want = inp["_a"] @ inp["_b"]
        got = np.stack(
            [
                np.frombuffer(bytes(res.memory.table[row_coord("1.2.7/1.1.3/1.1.1", i)].buf), np.float32)
                for i in range(want.shape[0])
            ]
        )
        return _ok(np.array_equal(got, want), f"max |diff| {np.abs(got - want).max()}")

    def baseline(inp, p):
        a, b = inp["_a"], inp["_b"]
        reps = p["REPS"]

        def run():
            for _ in range(reps):
                a @ b

        return run

    return {
        "inputs": inputs,
        "check": check,
        "baseline": baseline,
        "work": lambda p, n: {"flop": 2 * p["REPS"] * 4 * p["BLOCKS"] * 64 * 64},
    }


@case("embedding")
def _embedding():
    def check(res, prog, inp, p):
        table = np.stack([np.frombuffer(d.data, np.float32) for d in prog.data if d.shape == (16,)])
        tokens = np.frombuffer(next(d.data for d in prog.data if d.dtype == "i32" and not d.zero), np.int32)
        out = scroll(res, prog, "OUT", "<f4").reshape(16, 16)
        return _ok(np.array_equal(out, table[tokens]), "embeddings differ")

    def baseline(inp, p):
        rng = np.random.default_rng(0)
        table = rng.standard_normal((256, 16)).astype(np.float32)
        tokens = rng.integers(0, 256, 16)

        def run():
            uniq, inverse = np.unique(tokens, return_inverse=True)
            return table[uniq][inverse]

        return run

    return {
        "inputs": no_inputs,
        "check": check,
        "baseline": baseline,
        "work": lambda p, n: {"bytes": 16 * 64},
    }


@case("ring_allreduce")
def _ring():
    def check(res, prog, inp, p):
        n = len(res.sentrons)
        want = np.arange(1, 17, dtype=np.int32) * (n * (n + 1) // 2)
        ok = all(s.R[8] == 1 and np.array_equal(s.view("i32")[1], want) for s in res.sentrons)
        return _ok(ok, "ring result differs from CREDUCE or numpy")

    return {
        "inputs": no_inputs,
        "check": check,
        "work": lambda p, n: {"messages": n * (n - 1), "bytes": 64 * n * (n - 1)},
    }


@case("pingpong")
def _pingpong():
    def check(res, prog, inp, p):
        s0, s1 = res.sentrons[0], res.sentrons[1]
        return _ok(s0.R[3] == 1 and s0.R[6] == p["ITERS"] and s1.R[6] == p["ITERS"], "round trips lost")

    return {
        "inputs": no_inputs,
        "check": check,
        "work": lambda p, n: {
            "messages": 2 * p["ITERS"],
            "bytes": 16 * p["ITERS"],
            "round_trips": p["ITERS"],
        },
    }


@case("row_walk")
def _row_walk():
    def check(res, prog, inp, p):
        r9 = f32_reg(res.sentrons[0].R[9])
        return _ok(r9 == 672.0, f"r9 = {r9}, want 672.0")

    return {"inputs": no_inputs, "check": check, "work": lambda p, n: {"bytes": 8 * 64 * 256}}
