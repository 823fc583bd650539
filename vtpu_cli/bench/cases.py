"""The numpy side of every benchmark: generated inputs, the reference check, the work a run
represents and the same work done by numpy (the baseline). Manifests name their case by `reference`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vtpu_cli.core import coords
from vtpu_cli.isa.ternary import pack_codes


@dataclass
class Case:
    inputs: Callable  # (params, rng, sentrons) -> {packed coord: (dtype, shape, bytes)}
    check: Callable  # (result, program, inputs, params) -> (ok, detail)
    work: Callable  # (params, sentrons) -> {"flop": n, "weights": n, "bytes": n, "messages": n}
    baseline: Callable | None = None  # (inputs, params) -> zero-argument callable: the same work in numpy
    baseline_what: str = ""  # what the baseline does (shown in the JSON)
    # (inputs, params) -> (zero-argument callable streaming the same bytes, bytes read): the roofline
    roofline: Callable | None = None


CASES: dict[str, Case] = {}


def case(name: str):
    def deco(fn):
        CASES[name] = Case(**fn())
        return fn

    return deco


def no_inputs(params, rng, n: int = 1) -> dict:
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
# The phase-0 streams (generate.py) read their trip count and segment size from the PARAMS scroll and
# walk input segments X0.. of SEG bytes with an offset that advances 64 bytes every half loop trip and
# wraps; half h reads vector j_h = h mod (SEG / 64). Values are 0/1 (f32) or small integers, so every
# float sum below 2**24 is exact and the checks are equalities.
SEG_BASE = "1.2.4/1.1.1/1.1.1"


def seg_coord(i: int) -> int:
    return coords.parse_packed(f"1.2.4/1.1.1/1.1.{i + 1}")


def out_coord(k: int, sentron: int) -> int:
    """Output k (0-based, in the order the program names them) of a sentron."""
    return coords.parse_packed(f"1.2.4/1.1.{2 + k}/1.1.{1 + sentron}")


def visits(p: dict, parity: int | None = None) -> np.ndarray:
    """How many halves read each vector slot (only even or odd halves with ``parity``)."""
    v = p["SEG"] // 64
    h = np.arange(2 * p["ITERS"])
    if parity is not None:
        h = h[h % 2 == parity]
    return np.bincount(h % v, minlength=v).astype(np.float64)


def stream_inputs(p, rng, n, segs: int, outs: list[int], kind: str = "bits", extra: dict | None = None):
    """Input segments (random 0/1 f32, or small i32), zeroed per-sentron outputs of the given sizes."""
    seg = p["SEG"]
    out = {}
    for i in range(segs):
        size = seg + (extra or {}).get(i, 0)
        if kind == "bits":
            x = rng.integers(0, 2, size // 4).astype(np.float32)
        else:
            x = rng.integers(-1000, 1000, size // 4).astype(np.int32)
        out[seg_coord(i)] = ("f32" if kind == "bits" else "i32", (size // 4,), x.tobytes())
        out[f"_x{i}"] = x
    for s in range(n):
        for k, size in enumerate(outs):
            out[out_coord(k, s)] = ("f32", (size // 4,), bytes(size))
    return out


def out_array(res, k: int, s: int, dtype) -> np.ndarray:
    return np.frombuffer(bytes(res.memory.table[out_coord(k, s)].buf), dtype)


def _vecs(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64).reshape(-1, 16)


def _first_bad(checks: list[tuple[bool, str]]) -> tuple[bool, str]:
    for ok, what in checks:
        if not ok:
            return False, what
    return True, ""


@case("d_heavy")
def _d_heavy():
    from vtpu_cli.bench.generate import D_HEAVY_FMAS

    def check(res, prog, inp, p):
        groups = p["SEG"] // 256  # half h reads vectors 4g .. 4g + 3 of X0, g = h mod groups
        h = np.arange(2 * p["ITERS"])
        c = np.bincount(h % groups, minlength=groups).astype(np.float64)
        x = _vecs(inp["_x0"]).reshape(groups, 4, 16)
        checks = []
        for s in range(len(res.sentrons)):
            acc = out_array(res, 0, s, "<f4").reshape(len(D_HEAVY_FMAS), 16)
            for k, (a, b) in enumerate(D_HEAVY_FMAS):
                want = c @ (x[:, a] * x[:, b])
                checks.append((np.array_equal(acc[k], want), f"sentron {s} ACC[{k}] = {acc[k][:4]}..."))
        return _first_bad(checks)

    return {
        "inputs": lambda p, rng, n=1: stream_inputs(p, rng, n, 1, [64 * len(D_HEAVY_FMAS)]),
        "check": check,
        "work": lambda p, n: {
            "flop": n * p["ITERS"] * 2 * len(D_HEAVY_FMAS) * 16 * 2,
            "bytes": n * p["ITERS"] * 2 * 256,
        },
    }


@case("s_heavy")
def _s_heavy():
    def check(res, prog, inp, p):
        v = p["SEG"] // 64
        c = visits(p).astype(np.int64)
        x0, x1, x2, x3 = (inp[f"_x{i}"] for i in range(4))
        y_want = x0.reshape(v, 16) + x1[16 * np.arange(v)[:, None] + 2 * np.arange(16)]  # stride 8 bytes
        w_want = x2[x0 & 63]
        r7_want = int(c @ x3.view(np.int64).reshape(v, 8)[:, 0])
        checks = []
        for s in range(len(res.sentrons)):
            r7 = res.sentrons[s].R[7]
            checks += [
                (np.array_equal(out_array(res, 0, s, "<i4").reshape(v, 16), y_want), f"sentron {s}: Y"),
                (np.array_equal(out_array(res, 1, s, "<i4"), w_want), f"sentron {s}: W"),
                (r7 == r7_want, f"sentron {s}: r7 = {r7}, want {r7_want}"),
            ]
        return _first_bad(checks)

    def inputs(p, rng, n=1):
        seg = p["SEG"]
        return stream_inputs(p, rng, n, 4, [seg, seg], kind="i32", extra={1: 64, 2: 256 - seg})

    return {
        "inputs": inputs,
        "check": check,
        # per half: contiguous and strided loads (64 + 128 bytes), a 64-byte indexed gather, an 8-byte
        # scalar load, two 64-byte stores
        "work": lambda p, n: {"bytes": n * p["ITERS"] * 2 * (64 + 128 + 64 + 8 + 128)},
    }


@case("c_heavy")
def _c_heavy():
    def check(res, prog, inp, p):
        halves = 2 * p["ITERS"]
        c = visits(p).astype(np.int64)
        x0 = inp["_x0"]
        acc_want = (c @ x0.astype(np.int64).reshape(-1, 16)).astype(
            np.int32
        )  # i32 lanes wrap like the program
        checks = []
        for s, st in enumerate(res.sentrons):
            checks += [
                (
                    st.R[4] == halves - 1 and st.R[6] == halves * (halves - 1) // 2,
                    f"r4={st.R[4]} r6={st.R[6]}",
                ),
                (np.array_equal(out_array(res, 0, s, "<i4"), x0), f"sentron {s}: Y"),
                (np.array_equal(out_array(res, 1, s, "<i4"), acc_want), f"sentron {s}: ACC"),
            ]
        return _first_bad(checks)

    return {
        "inputs": lambda p, rng, n=1: stream_inputs(p, rng, n, 1, [p["SEG"], 64], kind="i32"),
        "check": check,
        "work": lambda p, n: {"messages": n * p["ITERS"] * 4, "bytes": n * p["ITERS"] * 2 * (8 + 64)},
    }


@case("balanced")
def _balanced():
    def check(res, prog, inp, p):
        c, ce = visits(p), visits(p, parity=0)
        x = [_vecs(inp[f"_x{i}"]) for i in range(6)]
        want = [
            c @ (x[0] * x[0]),
            c @ (x[1] * x[1]) + x[1][-1] ** 2,  # the prologue's message about the slot before the first
            c @ (x[2] * x[2]),
            c @ (x[3] * x[3]),
            c @ (x[4] * x[5]),
            ce @ (x[2] * x[0]),
        ]
        checks = []
        for s in range(len(res.sentrons)):
            acc = out_array(res, 2, s, "<f4").reshape(6, 16)
            for k in range(6):
                checks.append((np.array_equal(acc[k], want[k]), f"sentron {s} ACC[{k}] = {acc[k][:4]}..."))
            checks.append((np.array_equal(out_array(res, 0, s, "<f4"), inp["_x0"]), f"sentron {s}: Y"))
            checks.append((np.array_equal(out_array(res, 1, s, "<f4"), inp["_x1"]), f"sentron {s}: Z"))
        return _first_bad(checks)

    return {
        "inputs": lambda p, rng, n=1: stream_inputs(p, rng, n, 6, [p["SEG"], p["SEG"], 384]),
        "check": check,
        "work": lambda p, n: {
            "flop": n * p["ITERS"] * 11 * 16 * 2,
            "bytes": n * p["ITERS"] * 2 * 8 * 64,
            "messages": n * p["ITERS"] * 4,
        },
    }


@case("double_buffer")
def _double_buffer():
    def check(res, prog, inp, p):
        c = visits(p)
        x = inp["_x0"]
        want_acc = 3 * (c @ _vecs(x))
        want_y = 3 * np.roll(x.reshape(-1, 16), 1, axis=0).reshape(-1)
        checks = []
        for s in range(len(res.sentrons)):
            acc = out_array(res, 1, s, "<f4")
            checks.append(
                (np.array_equal(acc, want_acc), f"sentron {s}: ACC[0] = {acc[0]}, want {want_acc[0]}")
            )
            checks.append((np.array_equal(out_array(res, 0, s, "<f4"), want_y), f"sentron {s}: Y"))
        return _first_bad(checks)

    return {
        "inputs": lambda p, rng, n=1: stream_inputs(p, rng, n, 1, [p["SEG"], 64]),
        "check": check,
        "work": lambda p, n: {"flop": n * p["ITERS"] * 2 * 16 * 2, "bytes": n * p["ITERS"] * 2 * 128},
    }


# ----------------------------------------------------------------------------- kernels with useful work
@case("ternary_gemv")
def _ternary_gemv():
    def inputs(p, rng, n=1):
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
        """numpy from the same 2-bit bytes: decode blocks of 256 rows through a 256 x 4 lookup table to
        f32 (1 MiB, cache-resident) and multiply with OpenBLAS sgemv; the weights never exist as a whole
        in a wider type."""
        rows = p["ROWS"]
        packed = np.frombuffer(inp[coords.parse_packed("1.2.6/1.1.1/1.1.1")][2], np.uint8).reshape(-1, 256)[
            :rows
        ]
        x = np.frombuffer(inp[coords.parse_packed("1.2.6/1.1.1/1.1.2")][2], np.int8).astype(np.float32)
        lut = ((np.arange(256)[:, None] >> (2 * np.arange(4))) & 3).astype(np.float32) - 1
        block = 256

        def run():
            y = np.empty(rows, np.float32)
            for r in range(0, rows, block):
                w = lut[packed[r : r + block]].reshape(-1, 1024)
                y[r : r + block] = w @ x
            return y

        return run

    def roofline(inp, p):
        """Streaming read of the weight bytes: numpy's vectorised sum of 64-bit words (the fastest one-pass
        read numpy offers here: ~26 GB/s against ~23 for count_nonzero on this host)."""
        data = inp[coords.parse_packed("1.2.6/1.1.1/1.1.1")][2]
        nbytes = p["ROWS"] * 256
        words = np.frombuffer(data, np.uint64)[: nbytes // 8]
        return words.sum, nbytes

    return {
        "inputs": inputs,
        "check": check,
        "baseline": baseline,
        "baseline_what": "numpy from the same 2-bit bytes: LUT decode of 256-row blocks + OpenBLAS sgemv",
        "roofline": roofline,
        "work": lambda p, n: {
            "weights": p["ROWS"] * 1024,
            "flop": 2 * p["ROWS"] * 1024,
            "bytes": p["ROWS"] * 256,
        },
    }


@case("f32_gemm")
def _f32_gemm():
    def inputs(p, rng, n=1):
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
